// Bounds-checked little-endian reading over a byte prefix of a file. Node-free (the browser
// entry point uses it); the file helpers that feed it prefixes are in bytes.ts.
import { FormatError, TruncatedError } from './errors.js';

/** Thrown by ByteReader when the prefix it holds is too short but the file is long enough: read more. */
export class NeedMoreBytes extends Error {
  constructor(readonly upTo: number) { super(`need ${upTo} bytes`); }
}

export class ByteReader {
  pos = 0;
  private readonly dv: DataView;
  private static readonly utf8 = new TextDecoder('utf-8', { fatal: true });

  /** `buf` is the first buf.length bytes of a file of `fileSize` bytes. */
  constructor(readonly buf: Uint8Array, readonly file: string, readonly fileSize = buf.length) {
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get remaining(): number { return this.fileSize - this.pos; }

  need(n: number, field: string): void {
    const end = this.pos + n;
    if (end > this.fileSize || !Number.isSafeInteger(end)) throw new TruncatedError(this.file, field, this.pos, n, this.fileSize);
    if (end > this.buf.length) throw new NeedMoreBytes(end);
  }
  u8(field: string): number { this.need(1, field); return this.dv.getUint8(this.pos++); }
  i8(field: string): number { this.need(1, field); return this.dv.getInt8(this.pos++); }
  u16(field: string): number { this.need(2, field); const v = this.dv.getUint16(this.pos, true); this.pos += 2; return v; }
  i16(field: string): number { this.need(2, field); const v = this.dv.getInt16(this.pos, true); this.pos += 2; return v; }
  u32(field: string): number { this.need(4, field); const v = this.dv.getUint32(this.pos, true); this.pos += 4; return v; }
  i32(field: string): number { this.need(4, field); const v = this.dv.getInt32(this.pos, true); this.pos += 4; return v; }
  f32(field: string): number { this.need(4, field); const v = this.dv.getFloat32(this.pos, true); this.pos += 4; return v; }
  f64(field: string): number { this.need(8, field); const v = this.dv.getFloat64(this.pos, true); this.pos += 8; return v; }
  u64(field: string): bigint { this.need(8, field); const v = this.dv.getBigUint64(this.pos, true); this.pos += 8; return v; }
  i64(field: string): bigint { this.need(8, field); const v = this.dv.getBigInt64(this.pos, true); this.pos += 8; return v; }
  /** A u64 used as a count, length or offset: must fit a JS safe integer. */
  u64n(field: string): number {
    this.need(8, field);
    // Two u32 halves: no BigInt per call (a GGUF vocabulary reads one length per token).
    const lo = this.dv.getUint32(this.pos, true), hi = this.dv.getUint32(this.pos + 4, true);
    if (hi > 0x1fffff) throw new FormatError(this.file, field, `value ${this.dv.getBigUint64(this.pos, true)} at offset ${this.pos} is absurdly large`);
    this.pos += 8;
    return hi * 0x100000000 + lo;
  }
  /** Whether the next n bytes are in the prefix held (n ≥ 0). */
  holds(n: number): boolean { return this.pos + n <= this.buf.length; }
  bytes(n: number, field: string): Uint8Array {
    this.need(n, field);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  /** The next n bytes (in the prefix: see holds) as UTF-8, or null where they are not valid UTF-8 (nothing read then). */
  utf8Or(n: number): string | null {
    try {
      const s = ByteReader.utf8.decode(this.buf.subarray(this.pos, this.pos + n));
      this.pos += n;
      return s;
    } catch {
      return null;
    }
  }
  utf8(n: number, field: string): string {
    const at = this.pos;
    const b = this.bytes(n, field);
    try { return ByteReader.utf8.decode(b); } catch { throw new FormatError(this.file, field, `invalid UTF-8 at offset ${at}`); }
  }
}
