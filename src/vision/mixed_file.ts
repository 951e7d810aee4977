// The file that marks a mixed-modal model directory, in a module of its own: a command can tell a
// text-only model from a mixed-modal one without loading the image tokenizer and training code
// (mixed_train.ts), whose import costs a fresh `tslm generate` time and memory.
import { existsSync } from 'node:fs';
import path from 'node:path';

export const MIXED_MODAL_FILE = 'mixed_modal.json';

/** Whether `dir` is a directory holding mixed_modal.json. */
export function isMixedModalDir(dir: string): boolean {
  return existsSync(path.join(dir, MIXED_MODAL_FILE));
}
