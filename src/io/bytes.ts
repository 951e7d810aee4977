// Small file helpers (Node.js): reading a header prefix by prefix, exact reads, atomic writes.
// The bounds-checked reader itself is Node-free, in reader.ts.
import { open, rename, rm, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { TruncatedError } from './errors.js';
import { NeedMoreBytes } from './reader.js';

export { NeedMoreBytes, ByteReader } from './reader.js';

/**
 * Parse a header from the start of a file without reading the whole file: read a prefix, and
 * read a longer one while the parser asks for more (NeedMoreBytes).
 */
export async function parsePrefix<T>(fh: FileHandle, fileSize: number, parse: (prefix: Uint8Array) => T, first = 1 << 20): Promise<T> {
  let want = Math.min(first, fileSize);
  for (;;) {
    const buf = new Uint8Array(want);
    await readExactly(fh, buf, 0, 'header', fileSize);
    try {
      return parse(buf);
    } catch (e) {
      if (!(e instanceof NeedMoreBytes)) throw e;
      want = Math.min(fileSize, Math.max(e.upTo, want * 2));
    }
  }
}

export async function readExactly(fh: FileHandle, into: Uint8Array, position: number, what: string, fileSize: number, file = ''): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const { bytesRead } = await fh.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) throw new TruncatedError(file, what, position, into.length, Math.min(fileSize, position + done));
    done += bytesRead;
  }
}

export async function fileSizeOf(path: string): Promise<number> {
  return (await stat(path)).size;
}

let tmpCounter = 0;
export function tmpPathFor(path: string): string {
  return `${path}.tmp-${process.pid}-${Date.now().toString(36)}-${tmpCounter++}`;
}

/**
 * Write a file atomically: `write` fills a temporary file next to `path` (through the handle
 * it gets), which is synced and renamed over `path` only when everything succeeded.
 */
export async function writeAtomic(path: string, write: (fh: FileHandle) => Promise<void>): Promise<void> {
  const tmp = tmpPathFor(path);
  const fh = await open(tmp, 'w');
  try {
    await write(fh);
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  await rename(tmp, path);
}

/** Write chunks at the current end of a file, sequentially. */
export async function writeAll(fh: FileHandle, chunk: Uint8Array): Promise<void> {
  let done = 0;
  while (done < chunk.length) {
    const { bytesWritten } = await fh.write(chunk, done, chunk.length - done);
    done += bytesWritten;
  }
}
