// Small file helpers (Node.js): reading a header prefix by prefix, exact reads, atomic writes.
// The bounds-checked reader itself is Node-free, in reader.ts. node:fs/promises is imported when a
// helper first runs, not statically: the formats that import these helpers (GGUF, llama2.c) also
// serialise to bytes in a page (tslm/browser), where the file helpers are never called.
import type { FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { FormatError, IoError, TruncatedError } from './errors.js';
import { NeedMoreBytes } from './reader.js';

export { NeedMoreBytes, ByteReader } from './reader.js';

// (a variable specifier, so that bundlers leave the import alone)
const FS_PROMISES = 'node:fs/promises';
let fsp: Promise<typeof import('node:fs/promises')> | null = null;
const fs = () => (fsp ??= import(/* webpackIgnore: true */ /* @vite-ignore */ FS_PROMISES) as Promise<typeof import('node:fs/promises')>);

// node:fs, for the synchronous reads of deferred tensors (loaded by the first openRegularFile).
const FS = 'node:fs';
let fsSync: typeof import('node:fs') | null = null;

/**
 * A synchronous reader of `file` at a position (RawSource.readAt: the bytes read, 0 at the end),
 * for a tensor's bytes read straight into the heap after the header was parsed. Each call opens
 * and closes the file (a call reads up to a few MiB), so nothing stays open after loading. Needs
 * a previous openRegularFile (which loads node:fs).
 */
export function syncRangeReader(file: string): (into: Uint8Array, position: number) => number {
  const f = fsSync;
  if (!f) throw new Error('syncRangeReader: node:fs is not loaded (call openRegularFile first)');
  return (into, position) => {
    let fd: number;
    try { fd = f.openSync(file, 'r'); } catch (e) { throw fsError(file, e); }
    try {
      return f.readSync(fd, into, 0, into.length, position);
    } finally {
      f.closeSync(fd);
    }
  };
}

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

/** An fs error as an IoError naming the file and the cause (the code, not Node's message, which repeats the path). */
export function fsError(file: string, e: unknown): IoError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new IoError(file, 'does not exist');
  if (code === 'EISDIR') return new IoError(file, 'is a directory, expected a file');
  if (code === 'EACCES' || code === 'EPERM') return new IoError(file, 'cannot be read (permission denied)');
  if (code === 'ELOOP') return new IoError(file, 'cannot be read (too many levels of symbolic links)');
  return new IoError(file, `cannot be read (${code ?? 'I/O error'})`);
}

/** Throw unless `st` (of `file`, symlinks followed) is a regular file of at most maxBytes. */
export function checkRegularFile(file: string, st: Stats, maxBytes: number, field: string): void {
  if (st.isDirectory()) throw new IoError(file, 'is a directory, expected a file');
  if (!st.isFile()) throw new IoError(file, 'is not a regular file (a device, FIFO or socket?)');
  if (st.size > maxBytes) throw new FormatError(file, field, `the file is ${st.size} bytes, more than the ${maxBytes}-byte limit for this file`);
}

/**
 * Open a file the user named for reading: a directory, a device, FIFO or socket (also through a
 * symlink) is an IoError before anything is opened (opening a FIFO would block), as is a missing
 * or unreadable file. Returns the handle and the size.
 */
export async function openRegularFile(file: string): Promise<{ fh: FileHandle; size: number }> {
  let fh: FileHandle;
  const { open, stat } = await fs();
  fsSync ??= await (import(/* webpackIgnore: true */ /* @vite-ignore */ FS) as Promise<typeof import('node:fs')>);
  try {
    checkRegularFile(file, await stat(file), Number.MAX_SAFE_INTEGER, 'file');
    fh = await open(file, 'r');
  } catch (e) {
    if (e instanceof IoError) throw e;
    throw fsError(file, e);
  }
  try {
    const st = await fh.stat();
    checkRegularFile(file, st, Number.MAX_SAFE_INTEGER, 'file');
    return { fh, size: st.size };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

export async function fileSizeOf(path: string): Promise<number> {
  return (await (await fs()).stat(path)).size;
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
  const { open, rename, rm } = await fs();
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
