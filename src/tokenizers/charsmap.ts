// SentencePiece's precompiled normalization map (e.g. nmt_nfkc): a darts-clone double-array trie
// over UTF-8 bytes whose leaves index NUL-terminated replacement strings.
// Blob layout: uint32 LE trie size in bytes, the trie (uint32 units), then the strings.
import { TokenizerFormatError, utf8Decoder } from './tokenizer.js';

const REPLACEMENT = new Uint8Array([0xef, 0xbf, 0xbd]);

export class PrecompiledCharsMap {
  private readonly units: Uint32Array;
  private readonly strings: Uint8Array;

  constructor(blob: Uint8Array, file: string, field: string) {
    if (blob.length < 4) throw new TokenizerFormatError(file, field, `is ${blob.length} bytes, too short for its header`);
    const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    const trieSize = dv.getUint32(0, true);
    if (trieSize % 4 !== 0 || 4 + trieSize > blob.length) {
      throw new TokenizerFormatError(file, field, `trie size ${trieSize} does not fit in the ${blob.length}-byte map`);
    }
    this.units = new Uint32Array(trieSize / 4);
    for (let i = 0; i < this.units.length; i++) this.units[i] = dv.getUint32(4 + 4 * i, true);
    this.strings = blob.subarray(4 + trieSize);
  }

  /** Longest rule matching bytes[pos..]: [replacement bytes, bytes consumed], or null. */
  match(bytes: Uint8Array, pos: number): [Uint8Array, number] | null {
    const u = this.units;
    if (u.length === 0) return null;
    let nodePos = 0;
    let unit = u[0];
    nodePos ^= offset(unit);
    let bestLen = 0;
    let bestValue = 0;
    for (let i = pos; i < bytes.length; i++) {
      const c = bytes[i];
      nodePos ^= c;
      if (nodePos >= u.length) break;
      unit = u[nodePos];
      if ((unit & (0x80000000 | 0xff)) >>> 0 !== c) break;
      nodePos ^= offset(unit);
      if (nodePos >= u.length) break;
      if ((unit >>> 8) & 1) {
        bestLen = i + 1 - pos;
        bestValue = u[nodePos] & 0x7fffffff;
      }
    }
    if (bestLen === 0) return null;
    if (bestValue >= this.strings.length) return null;
    let end = bestValue;
    while (end < this.strings.length && this.strings[end] !== 0) end++;
    return [this.strings.subarray(bestValue, end), bestLen];
  }

  /** Applies the map to a whole string (HF's Precompiled normalizer, without grapheme grouping). */
  normalize(s: string): string {
    const bytes = new TextEncoder().encode(s);
    const out: number[] = [];
    for (let pos = 0; pos < bytes.length; ) {
      const [rep, n] = this.normalizePrefix(bytes, pos);
      for (const b of rep) out.push(b);
      pos += n;
    }
    return utf8Decoder.decode(new Uint8Array(out));
  }

  /** SentencePiece's normalize_prefix without user-defined symbols. */
  normalizePrefix(bytes: Uint8Array, pos: number): [Uint8Array, number] {
    const m = this.match(bytes, pos);
    if (m) return m;
    return charAt(bytes, pos);
  }
}

function offset(unit: number): number {
  return ((unit >>> 10) << ((unit & (1 << 9)) >>> 6)) >>> 0;
}

/** One UTF-8 character at pos: [its bytes, length]; malformed → [U+FFFD, 1]. */
export function charAt(bytes: Uint8Array, pos: number): [Uint8Array, number] {
  const b = bytes[pos];
  let n = b < 0x80 ? 1 : b >= 0xc2 && b < 0xe0 ? 2 : b >= 0xe0 && b < 0xf0 ? 3 : b >= 0xf0 && b < 0xf5 ? 4 : 0;
  if (n === 0 || pos + n > bytes.length) return [REPLACEMENT, 1];
  for (let i = 1; i < n; i++) if ((bytes[pos + i] & 0xc0) !== 0x80) return [REPLACEMENT, 1];
  return [bytes.subarray(pos, pos + n), n];
}
