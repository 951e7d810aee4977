// Text input for the classic models: streaming UTF-8 line reading, word/character tokenisation,
// a small seeded RNG.
import { openSync, readSync, closeSync } from 'node:fs';

export type TokenMode = 'word' | 'char';

/** The token that stands for a run of whitespace in character mode. */
export const SPACE_TOKEN = '▁';

const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/**
 * Split one line into tokens. `word`: on whitespace. `char`: into grapheme clusters (so a
 * Chinese character, an accented letter or an emoji is one token); a run of whitespace between
 * characters becomes one `▁` token, leading and trailing whitespace is dropped.
 */
export function tokenize(line: string, mode: TokenMode = 'word'): string[] {
  if (mode === 'word') {
    const t = line.trim();
    return t === '' ? [] : t.split(/\s+/u);
  }
  const out: string[] = [];
  let space = false;
  for (const { segment } of segmenter.segment(line.trim())) {
    if (/^\s+$/u.test(segment)) { space = true; continue; }
    if (space) { out.push(SPACE_TOKEN); space = false; }
    out.push(segment);
  }
  return out;
}

/**
 * Lines of a UTF-8 file, read in 1 MiB chunks (constant memory for large corpora).
 * Yields `[line, lineNumber]` (1-based), without the line terminator (\n or \r\n).
 */
export function* readLines(file: string): Generator<[string, number]> {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    const dec = new TextDecoder('utf-8');
    let rest = '', lineNo = 0, n: number;
    while ((n = readSync(fd, buf, 0, buf.length, null)) > 0) {
      rest += dec.decode(buf.subarray(0, n), { stream: true });
      let start = 0, nl: number;
      while ((nl = rest.indexOf('\n', start)) >= 0) {
        let end = nl;
        if (end > start && rest.charCodeAt(end - 1) === 13) end--;
        yield [rest.slice(start, end), ++lineNo];
        start = nl + 1;
      }
      rest = rest.slice(start);
    }
    rest += dec.decode();
    if (rest.length > 0) yield [rest.endsWith('\r') ? rest.slice(0, -1) : rest, ++lineNo];
  } finally {
    closeSync(fd);
  }
}

/** Tokenised non-empty lines of a file. */
export function* readSentences(file: string, mode: TokenMode = 'word'): Generator<string[]> {
  for (const [line] of readLines(file)) {
    const t = tokenize(line, mode);
    if (t.length > 0) yield t;
  }
}

/** A small, fast, seeded PRNG (mulberry32); `next()` is uniform in [0, 1). */
export class Rng {
  private s: number;
  constructor(seed = 1) { this.s = seed >>> 0 || 0x9e3779b9; }
  nextU32(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  next(): number { return this.nextU32() / 4294967296; }
}

/** Format a duration in seconds as h:mm:ss or m:ss. */
export function formatEta(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return '?';
  const s = Math.round(sec), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(r).padStart(2, '0')}` : `${m}:${String(r).padStart(2, '0')}`;
}
