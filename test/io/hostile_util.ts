// What the hostile-input tests share: the assertion that a rejection is the right error class,
// names the file and the field or tensor at fault, and is not an internal error leaking through.
import assert from 'node:assert/strict';

/** Substrings that betray an internal error instead of a checked one. */
const INTERNAL = [/Cannot read propert/, /is not a function/, /Maximum call stack/, /Invalid typed array length/, /Array buffer allocation failed/, /Invalid array length/, /out of memory/i, /is not iterable/, /undefined \(reading/];

export interface Expect {
  /** The error class (or one of them). */
  cls: Function | Function[];
  /** The file as the user gave it: the message must start with it (or contain it, with `contains`). */
  file: string;
  /** What the message must also name (field, tensor, index). */
  names?: (string | RegExp)[];
  /** Text that must NOT appear (file contents). */
  not?: string[];
}

export function checkError(e: unknown, x: Expect, what = ''): void {
  const msg = (e as Error)?.message ?? String(e);
  const classes = Array.isArray(x.cls) ? x.cls : [x.cls];
  assert.ok(classes.some((c) => e instanceof c), `${what}: expected ${classes.map((c) => c.name).join(' | ')}, got ${(e as Error)?.name}: ${msg}`);
  assert.ok(msg.includes(x.file), `${what}: the message does not name the file ${x.file}: ${msg}`);
  for (const n of x.names ?? []) {
    if (typeof n === 'string') assert.ok(msg.includes(n), `${what}: the message does not name ${n}: ${msg}`);
    else assert.match(msg, n, `${what}: ${msg}`);
  }
  for (const s of x.not ?? []) assert.ok(!msg.includes(s), `${what}: the message quotes the file's contents (${JSON.stringify(s)}): ${msg}`);
  for (const re of INTERNAL) assert.doesNotMatch(msg, re, `${what}: an internal error leaked: ${msg}`);
}

export async function rejectsWith(p: Promise<unknown> | (() => unknown), x: Expect, what = ''): Promise<Error> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    checkError(e, x, what);
    return e as Error;
  }
  assert.fail(`${what}: expected a ${(Array.isArray(x.cls) ? x.cls : [x.cls]).map((c) => c.name).join(' | ')}, but it loaded`);
}

export function throwsWith(fn: () => unknown, x: Expect, what = ''): Error {
  try {
    fn();
  } catch (e) {
    checkError(e, x, what);
    return e as Error;
  }
  assert.fail(`${what}: expected a ${(Array.isArray(x.cls) ? x.cls : [x.cls]).map((c) => c.name).join(' | ')}, but it returned`);
}

export function setU64(b: Uint8Array, at: number, v: bigint | number): Uint8Array {
  const out = b.slice();
  new DataView(out.buffer).setBigUint64(at, BigInt(v), true);
  return out;
}
export function setU32(b: Uint8Array, at: number, v: number): Uint8Array {
  const out = b.slice();
  new DataView(out.buffer).setUint32(at, v >>> 0, true);
  return out;
}
export function setI32(b: Uint8Array, at: number, v: number): Uint8Array {
  const out = b.slice();
  new DataView(out.buffer).setInt32(at, v, true);
  return out;
}

/** Resident set size now, in bytes. */
export function rss(): number { return process.memoryUsage().rss; }
