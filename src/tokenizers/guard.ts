// Small helpers for reading untrusted text formats (tokenizers, data files, classic models),
// Node-free: JSON parsing whose errors give the line and column but never quote the text,
// short descriptions of values for messages, and the limits shared by the readers.

/** Largest vocabulary (token ids are below it). */
export const MAX_VOCAB = 1 << 24;
/** Deepest nesting of JSON values that the readers walk (tokenizer components, rows). */
export const MAX_JSON_DEPTH = 64;

/** "x" quoted and cut to `max` characters (for naming a token or word in a message). */
export function quoteShort(s: string, max = 40): string {
  const cut = s.length > max ? `${s.slice(0, max)}…` : s;
  return JSON.stringify(cut);
}

/** What a JSON value is, for messages, without printing it all: 'a string of 12 chars', '42', 'an array of 3', 'an object', 'null'. */
export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'nothing';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return v.length <= 20 ? JSON.stringify(v) : `a string of ${v.length} chars`;
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return `a ${typeof v}`;
}

/** 1-based line and column of a character offset. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1, start = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, column: offset - start + 1 };
}

/**
 * Where and why `text` is not JSON (offset, reason), or null when it is: an iterative scanner, so
 * deep nesting cannot overflow the stack. Used only to explain JSON.parse failures, whose V8
 * messages quote the text.
 */
export function jsonSyntaxError(text: string): { offset: number; reason: string } | null {
  const n = text.length;
  let i = 0;
  const stack: number[] = []; // 0x5b '[' or 0x7b '{'
  const ws = () => { while (i < n) { const c = text.charCodeAt(i); if (c === 32 || c === 9 || c === 10 || c === 13) i++; else break; } };
  const fail = (reason: string) => ({ offset: i, reason });
  const str = (): string | null => {
    i++;
    for (;;) {
      if (i >= n) return 'unterminated string';
      const c = text.charCodeAt(i);
      if (c === 34) { i++; return null; }
      if (c < 32) return 'control character in a string';
      if (c === 92) {
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) return 'bad \\u escape';
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else return 'bad escape';
      } else i++;
    }
  };
  const num = (): string | null => {
    const m = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
    m.lastIndex = i;
    if (!m.exec(text) || m.lastIndex === i) return 'unexpected character';
    i = m.lastIndex;
    return null;
  };
  // An object's key and its ':' (at the key's opening quote, whitespace skipped before).
  const key = (): string | null => {
    if (text.charCodeAt(i) !== 34) return 'expected a string key';
    const e = str();
    if (e) return e;
    ws();
    if (text.charCodeAt(i) !== 58) return "expected ':'";
    i++;
    return null;
  };
  // state: expecting a value (after '[', ',' in array, ':' or at the top)
  for (;;) {
    ws();
    if (i >= n) return fail('unexpected end of input');
    const c = text.charCodeAt(i);
    let valueDone = true;
    if (c === 123 /* { */) {
      i++;
      ws();
      if (text.charCodeAt(i) === 125) i++;
      else {
        stack.push(123);
        const e = key();
        if (e) return fail(e);
        valueDone = false;
      }
    } else if (c === 91 /* [ */) {
      i++;
      ws();
      if (text.charCodeAt(i) === 93) i++;
      else { stack.push(91); valueDone = false; }
    } else if (c === 34) {
      const e = str();
      if (e) return fail(e);
    } else if (text.startsWith('true', i)) i += 4;
    else if (text.startsWith('false', i)) i += 5;
    else if (text.startsWith('null', i)) i += 4;
    else {
      const e = num();
      if (e) return fail(e);
    }
    if (!valueDone) continue;
    // After a value: close containers or take a separator.
    for (;;) {
      ws();
      if (stack.length === 0) {
        if (i < n) return fail('unexpected text after the JSON value');
        return null;
      }
      const top = stack[stack.length - 1];
      const d = text.charCodeAt(i);
      if (i >= n) return fail('unexpected end of input');
      if (d === 44 /* , */) {
        i++;
        if (top === 123) {
          ws();
          const e = key();
          if (e) return fail(e);
        }
        break;
      }
      if ((top === 91 && d === 93) || (top === 123 && d === 125)) { stack.pop(); i++; continue; }
      return fail(top === 91 ? "expected ',' or ']'" : "expected ',' or '}'");
    }
  }
}

/**
 * JSON.parse, with a failure described as "line L, column C: reason" (never quoting the text);
 * `fail` turns that description into the caller's error.
 */
export function parseJson(text: string, fail: (detail: string) => Error): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    if (e instanceof RangeError) throw fail('too large or too deeply nested to parse');
    const err = jsonSyntaxError(text);
    if (!err) throw fail('not valid JSON');
    const { line, column } = lineColumn(text, err.offset);
    throw fail(`line ${line}, column ${column}: ${err.reason}`);
  }
}
