// Training data: documents from text files, folders, JSONL ({"text": …}) and Parquet (as
// Hugging Face datasets store it), tokenised in a streaming pass into a token file on disk
// (int32, documents separated by EOS), then read back in fixed-length windows: corpora larger
// than memory work, and a batcher's position is a small state that checkpoints can save.
import { openSync, readSync, closeSync, fstatSync, readdirSync, statSync, realpathSync, writeSync, renameSync, existsSync } from 'node:fs';
import path from 'node:path';
import { readLines } from '../classic/text.js';
import { describeValue, parseJson } from '../tokenizers/guard.js';
import { DataError, looksBinary } from './batcher.js';
import type { TokenSource } from './batcher.js';

export { DataError, looksBinary, Batcher, splitBatchers, MemoryTokens } from './batcher.js';
export type { BatcherState, TokenSource } from './batcher.js';

const TEXT_EXT = new Set(['.txt', '.md', '.text']);

/** Every data file under path (a file, or a folder walked in sorted order). */
export function listDataFiles(p: string): string[] {
  let st;
  try { st = statSync(p); } catch { throw new DataError(`${p}: no such file or directory`); }
  if (st.isFile()) return [p];
  // Depth-first, names sorted, without recursion; a folder reached twice (a symlink loop) is walked once.
  const out: string[] = [];
  const seen = new Set<string>();
  const walk = (dir: string): string[] => {
    let real: string;
    try { real = realpathSync(dir); } catch { return []; }
    if (seen.has(real)) return [];
    seen.add(real);
    let names: string[];
    try { names = readdirSync(dir).sort(); } catch (e) { throw new DataError(`${dir}: cannot list (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`); }
    return names.filter((n) => !n.startsWith('.')).map((n) => path.join(dir, n));
  };
  const stack = walk(p).reverse();
  while (stack.length) {
    const full = stack.pop()!;
    let s;
    try { s = statSync(full); } catch { continue; } // a dangling link
    if (s.isDirectory()) {
      const inner = walk(full);
      for (let i = inner.length - 1; i >= 0; i--) stack.push(inner[i]);
    } else if (TEXT_EXT.has(path.extname(full)) || ['.jsonl', '.json', '.parquet'].includes(path.extname(full))) out.push(full);
  }
  if (out.length === 0) throw new DataError(`${p}: no .txt, .md, .jsonl or .parquet files found`);
  return out;
}

/** A text file larger than this is refused as one document (V8's longest string is ~512 M chars). */
export const MAX_TEXT_FILE_BYTES = 256 * 1024 * 1024;


/**
 * The documents of a data file: a text file is one document; JSONL gives each line's "text"
 * field (the line number is reported when a line is not valid JSON or has no text); Parquet
 * gives the "text" column.
 */
export async function* readDocuments(file: string, opts: { textField?: string } = {}): AsyncGenerator<string> {
  const field = opts.textField ?? 'text';
  const ext = path.extname(file);
  if (ext === '.jsonl' || ext === '.json') {
    for (const [raw, line] of readLines(file, { makeError: (f, l, d) => new DataError(`${f}:${l}: ${d}`) })) {
      const s = raw.trim();
      if (!s) continue;
      const obj = parseJson(s, (d) => new DataError(`${file}:${line}: invalid JSON (${d.replace(/^line 1, /, '')})`));
      if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new DataError(`${file}:${line}: expected an object with a string "${field}" field, got ${describeValue(obj)}`);
      const text = (obj as Record<string, unknown>)[field];
      if (typeof text !== 'string') throw new DataError(`${file}:${line}: expected an object with a string "${field}" field${field in obj ? `, got ${describeValue(text)}` : ''}`);
      yield text;
    }
    return;
  }
  if (ext === '.parquet') {
    const { asyncBufferFromFile, parquetReadObjects } = await import('hyparquet') as unknown as {
      asyncBufferFromFile(f: string): Promise<unknown>; parquetReadObjects(o: { file: unknown; columns?: string[] }): Promise<Record<string, unknown>[]>;
    };
    let rows: Record<string, unknown>[];
    try {
      rows = await parquetReadObjects({ file: await asyncBufferFromFile(file), columns: [field] });
    } catch (e) { throw new DataError(`${file}: cannot read Parquet (${(e as Error).message})`); }
    for (const [i, r] of rows.entries()) {
      if (typeof r[field] !== 'string') throw new DataError(`${file}: row ${i} has no string "${field}" column`);
      yield r[field] as string;
    }
    return;
  }
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size > MAX_TEXT_FILE_BYTES) throw new DataError(`${file}: ${size} bytes is more than the ${MAX_TEXT_FILE_BYTES} a text file (one document) may have: split it, or use JSONL with one document per line`);
    const buf = Buffer.alloc(size);
    readSync(fd, buf, 0, size, 0);
    if (looksBinary(buf)) throw new DataError(`${file}: looks like a binary file, not text`);
    const text = buf.toString('utf8');
    if (text.trim()) yield text;
  } finally {
    closeSync(fd);
  }
}

export interface TokenizeOptions {
  encode: (text: string) => number[];
  /** Appended after every document (usually the tokenizer's EOS). */
  separator?: number | null;
  onProgress?: (docs: number, tokens: number) => void;
}

/** Tokenise every document under `input` into an int32 token file (written atomically). */
export async function tokenizeToFile(input: string, outFile: string, opts: TokenizeOptions): Promise<{ documents: number; tokens: number }> {
  const tmp = `${outFile}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  let docs = 0, tokens = 0;
  try {
    for (const file of listDataFiles(input)) {
      for await (const doc of readDocuments(file)) {
        const ids = opts.encode(doc);
        if (opts.separator !== undefined && opts.separator !== null) ids.push(opts.separator);
        const arr = Int32Array.from(ids);
        writeSync(fd, new Uint8Array(arr.buffer));
        docs++;
        tokens += arr.length;
        opts.onProgress?.(docs, tokens);
      }
    }
  } finally {
    closeSync(fd);
  }
  if (tokens === 0) throw new DataError(`${input}: the corpus is empty (no text in any document)`);
  renameSync(tmp, outFile);
  return { documents: docs, tokens };
}

/** An int32 token file read in windows (no full load). */
export class TokenFile implements TokenSource {
  readonly length: number;
  private fd: number;
  constructor(readonly file: string) {
    if (!existsSync(file)) throw new DataError(`${file}: token file not found`);
    this.fd = openSync(file, 'r');
    const size = fstatSync(this.fd).size;
    if (size % 4) throw new DataError(`${file}: size ${size} is not a multiple of 4 (not an int32 token file)`);
    this.length = size / 4;
  }
  read(start: number, count: number): Int32Array {
    const out = new Int32Array(count);
    readSync(this.fd, new Uint8Array(out.buffer), 0, count * 4, start * 4);
    return out;
  }
  close(): void {
    closeSync(this.fd);
  }
}

