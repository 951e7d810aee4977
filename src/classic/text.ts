// Text input for the classic models: streaming UTF-8 line reading, word/character tokenisation,
// a small seeded RNG.
import { openSync, readSync, closeSync } from 'node:fs';
import { ClassicFormatError } from './errors.js';

export type TokenMode = 'word' | 'char';

/** The token that stands for a run of whitespace in character mode. */
export const SPACE_TOKEN = '▁';

// Made on first use: creating it loads ICU's break data (about 10 ms of a word-mode build's start-up).
let segmenter: Intl.Segmenter | null = null;

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
  segmenter ??= new Intl.Segmenter(undefined, { granularity: 'grapheme' });
  for (const { segment } of segmenter.segment(line.trim())) {
    if (/^\s+$/u.test(segment)) { space = true; continue; }
    if (space) { out.push(SPACE_TOKEN); space = false; }
    out.push(segment);
  }
  return out;
}

/** The longest line readLines accepts by default (characters). */
export const MAX_LINE_CHARS = 64 * 1024 * 1024;

export interface ReadLinesOptions {
  /** Longest line accepted (default MAX_LINE_CHARS); a longer one is an error naming its number. */
  maxLineChars?: number;
  /** The error for a line that is too long (default ClassicFormatError). */
  makeError?: (file: string, line: number, detail: string) => Error;
}

/**
 * Lines of a UTF-8 file, read in 1 MiB chunks (constant memory for large corpora; a UTF-8 BOM
 * is dropped). Yields `[line, lineNumber]` (1-based), without the line terminator (\n or \r\n).
 * A line longer than `maxLineChars` is an error, found before it is held whole.
 */
export function* readLines(file: string, opts: ReadLinesOptions = {}): Generator<[string, number]> {
  const max = opts.maxLineChars ?? MAX_LINE_CHARS;
  const tooLong = (no: number): Error => (opts.makeError ?? ((f, l, d) => new ClassicFormatError(f, l, d)))(file, no, `line is longer than ${max} characters`);
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    const dec = new TextDecoder('utf-8');
    // The start of the current line, in pieces (joined once its end is found).
    let parts: string[] = [], partsLen = 0, lineNo = 0, n: number;
    const take = (tail: string): string => {
      let line = tail;
      if (parts.length) { parts.push(tail); line = parts.join(''); parts = []; partsLen = 0; }
      return line.endsWith('\r') ? line.slice(0, -1) : line;
    };
    for (let done = false; !done; ) {
      n = readSync(fd, buf, 0, buf.length, null);
      done = n <= 0;
      const s = done ? dec.decode() : dec.decode(buf.subarray(0, n), { stream: true });
      let start = 0, nl: number;
      while ((nl = s.indexOf('\n', start)) >= 0) {
        if (partsLen + nl - start > max + 1) throw tooLong(lineNo + 1);
        yield [take(s.slice(start, nl)), ++lineNo];
        start = nl + 1;
      }
      if (start < s.length) {
        parts.push(start === 0 ? s : s.slice(start));
        partsLen += s.length - start;
        if (partsLen > max + 1) throw tooLong(lineNo + 1);
      }
    }
    if (partsLen > 0) yield [take(''), ++lineNo];
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
