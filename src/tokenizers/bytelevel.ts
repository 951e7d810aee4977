// GPT-2's byte ↔ printable-character map and the pre-tokenisation regexes of GPT-2 and LLaMA-3.

/** GPT-2's bytes_to_unicode: each byte to a printable character ('Ġ' for space, 'Ċ' for newline). */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const out = new Array<string>(256);
  bs.forEach((b, i) => (out[b] = String.fromCodePoint(cs[i])));
  return out;
})();

export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

const enc = new TextEncoder();

/** Text → its UTF-8 bytes written with BYTE_TO_CHAR. */
export function toByteLevel(text: string): string {
  let s = '';
  for (const b of enc.encode(text)) s += BYTE_TO_CHAR[b];
  return s;
}

/** A byte-level string back to bytes; characters outside the map contribute their own UTF-8. */
export function fromByteLevel(s: string, out: number[] = []): number[] {
  for (const ch of s) {
    const b = CHAR_TO_BYTE.get(ch);
    if (b !== undefined) out.push(b);
    else for (const x of enc.encode(ch)) out.push(x);
  }
  return out;
}

/** GPT-2's pre-tokenisation pattern (also HF's ByteLevel pre-tokenizer with use_regex). */
export const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** LLaMA-3's (tiktoken cl100k-style) pattern, as written in its tokenizer.json (Oniguruma syntax). */
export const LLAMA3_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/**
 * Translates a tokenizer.json regex (Oniguruma / Rust syntax) into a JavaScript RegExp with the
 * 'u' flag. Handles what the GPT-2, LLaMA-3 and Qwen patterns use: inline case-insensitive groups
 * `(?i:...)` (ASCII letters expanded to classes), possessive/atomic forms are rejected.
 * Throws SyntaxError for what cannot be translated.
 */
export function translateRegex(pattern: string, flags = 'gu'): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    if (pattern.startsWith('(?i:', i)) {
      // Copy the group, expanding ASCII letters outside classes to [xX].
      let depth = 1;
      let j = i + 4;
      let body = '';
      let inClass = false;
      for (; j < pattern.length && depth > 0; j++) {
        const c = pattern[j];
        if (c === '\\') {
          body += c + pattern[j + 1];
          j++;
          continue;
        }
        if (inClass) {
          if (c === ']') inClass = false;
          if (/[a-zA-Z]/.test(c)) body += c.toLowerCase() + c.toUpperCase();
          else body += c;
          continue;
        }
        if (c === '[') inClass = true;
        if (c === '(') depth++;
        if (c === ')') {
          depth--;
          if (depth === 0) break;
        }
        body += /[a-zA-Z]/.test(c) ? `[${c.toLowerCase()}${c.toUpperCase()}]` : c;
      }
      if (depth !== 0) throw new SyntaxError(`unbalanced (?i: group in ${JSON.stringify(pattern)}`);
      out += '(?:' + body + ')';
      i = j;
      continue;
    }
    if (pattern[i] === '\\') {
      const n = pattern[i + 1];
      if (n === 'A') out += '^';
      else if (n === 'z') out += '$';
      else out += pattern.slice(i, i + 2);
      i++;
      continue;
    }
    out += pattern[i];
  }
  return new RegExp(out, flags);
}

/** All matches of a global regex, as strings (empty matches skipped). */
export function findAll(re: RegExp, text: string): string[] {
  const out: string[] = [];
  re.lastIndex = 0;
  for (const m of text.matchAll(re)) if (m[0].length > 0) out.push(m[0]);
  return out;
}
