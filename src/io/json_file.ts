// JSON files a user names (config.json, adapter_config.json, generation_config.json, an index,
// trainer_state.json): the path must be a regular file (a directory, or a symlink to a device or
// FIFO, is a clear error, not a hang or a read of /dev/zero), of bounded size, UTF-8, and valid
// JSON; errors name the file and the line/column, never its contents (see json.ts).
import { readFileSync, statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { FormatError, IoError } from './errors.js';
import { parseJsonObject } from './json.js';
import { checkRegularFile, fsError } from './bytes.js';
import type { JsonParseOptions } from './json.js';

/** Config-like JSON files larger than this are refused (real ones are kilobytes; an index of a huge model, a few MB). */
export const JSON_FILE_MAX_BYTES = 64 << 20;

export interface JsonFileOptions extends JsonParseOptions {
  maxBytes?: number;
}

function decode(buf: Uint8Array, file: string, field: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    throw new FormatError(file, field, 'is not valid UTF-8');
  }
}

/** Read a JSON file that must hold an object; `field` names it in errors ("config", "adapter config", …). */
export async function readJsonObjectFile(file: string, field: string, opts: JsonFileOptions = {}): Promise<Record<string, unknown>> {
  const max = opts.maxBytes ?? JSON_FILE_MAX_BYTES;
  let buf: Uint8Array;
  try {
    checkRegularFile(file, await stat(file), max, field);
    buf = await readFile(file);
  } catch (e) {
    if (e instanceof IoError) throw e;
    throw fsError(file, e);
  }
  if (buf.length > max) throw new FormatError(file, field, `the file is more than the ${max}-byte limit for this file`);
  return parseJsonObject(decode(buf, file, field), file, field, opts);
}

/** readJsonObjectFile, synchronously. */
export function readJsonObjectFileSync(file: string, field: string, opts: JsonFileOptions = {}): Record<string, unknown> {
  const max = opts.maxBytes ?? JSON_FILE_MAX_BYTES;
  let buf: Uint8Array;
  try {
    checkRegularFile(file, statSync(file), max, field);
    buf = readFileSync(file);
  } catch (e) {
    if (e instanceof IoError) throw e;
    throw fsError(file, e);
  }
  if (buf.length > max) throw new FormatError(file, field, `the file is more than the ${max}-byte limit for this file`);
  return parseJsonObject(decode(buf, file, field), file, field, opts);
}
