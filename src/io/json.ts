// JSON that a user hands us (config.json, adapter_config.json, a safetensors header,
// generation_config.json, trainer_state.json, an index): parsed with bounded nesting and errors
// that name the file and the line/column, never the text (the engine's JSON.parse message quotes
// a snippet of the input, which put the bytes of a symlink's target into a server's 500).
//
// A linear, iterative scan checks the syntax and the depth first (no recursion whatever the
// input); the values then come from JSON.parse, which cannot fail on what the scan accepted.
// Node-free (safetensors_bytes.ts uses it in the browser); the file readers are in json_file.ts.
import { FormatError } from './errors.js';
import type { IoError } from './errors.js';
import { lineColumn } from '../tokenizers/guard.js';

/** Nesting deeper than this is refused (HF configs nest 3 or 4 levels). */
export const JSON_MAX_DEPTH = 64;

export interface JsonParseOptions {
  /** Deepest nesting of objects and arrays allowed (default JSON_MAX_DEPTH). */
  maxDepth?: number;
  /** Refuse a key that appears twice in the top-level object (safetensors tensor names). */
  uniqueTopLevelKeys?: boolean;
  /** The error class for a fault (default FormatError; a config reader may want ConfigFieldError). */
  errorClass?: new (file: string, field: string, detail: string) => FormatError | IoError;
}

/** Line and column (1-based, in characters) of a position in a text (shared with the tokenizers' reader). */
export { lineColumn };

interface ScanError { pos: number; what: string }

const OBJ = 1, ARR = 2;

function isWs(c: number): boolean { return c === 32 || c === 10 || c === 13 || c === 9; }
function isDigit(c: number): boolean { return c >= 48 && c <= 57; }
function isHex(c: number): boolean { return isDigit(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102); }

/**
 * Check that `text` is one JSON value nested at most `maxDepth` deep; the first fault's position
 * and a description of it (without the text), or null. With `topKeys`, the top-level object's
 * keys are collected there and a repeated one is a fault (its name is reported in `dup`).
 */
function scan(text: string, maxDepth: number, topKeys: Set<string> | null): (ScanError & { dup?: string }) | null {
  const n = text.length;
  const stack: number[] = [];
  let i = 0;
  let expectValue = true;
  const ws = () => { while (i < n && isWs(text.charCodeAt(i))) i++; };
  // A string starting at i (a quote); returns the position after it or an error.
  const str = (): ScanError | null => {
    const open = i++;
    for (;;) {
      if (i >= n) return { pos: open, what: 'unterminated string starting' };
      const c = text.charCodeAt(i);
      if (c === 34) { i++; return null; }
      if (c < 0x20) return { pos: i, what: 'control character in a string' };
      if (c === 92) {
        const e = text.charCodeAt(i + 1);
        if (e === 117) {
          for (let k = 2; k < 6; k++) if (!isHex(text.charCodeAt(i + k))) return { pos: i + 1, what: 'invalid \\u escape in a string' };
          i += 6;
        } else if (e === 34 || e === 92 || e === 47 || e === 98 || e === 102 || e === 110 || e === 114 || e === 116) i += 2;
        else return { pos: i, what: 'invalid escape in a string' };
      } else i++;
    }
  };
  const num = (): ScanError | null => {
    const start = i;
    if (text.charCodeAt(i) === 45) i++;
    if (text.charCodeAt(i) === 48) i++;
    else if (isDigit(text.charCodeAt(i))) { while (isDigit(text.charCodeAt(i))) i++; } else return { pos: start, what: 'invalid number' };
    if (text.charCodeAt(i) === 46) {
      if (!isDigit(text.charCodeAt(i + 1))) return { pos: i, what: 'invalid number (a digit must follow the point)' };
      i++;
      while (isDigit(text.charCodeAt(i))) i++;
    }
    const e = text.charCodeAt(i);
    if (e === 101 || e === 69) {
      const at = i++;
      const s = text.charCodeAt(i);
      if (s === 43 || s === 45) i++;
      if (!isDigit(text.charCodeAt(i))) return { pos: at, what: 'invalid number (a digit must follow the exponent)' };
      while (isDigit(text.charCodeAt(i))) i++;
    }
    return null;
  };
  // An object key and its colon; i at the opening quote.
  const key = (): (ScanError & { dup?: string }) | null => {
    ws();
    if (i >= n) return { pos: i, what: 'unexpected end of the text (expected a key)' };
    if (text.charCodeAt(i) !== 34) return { pos: i, what: 'expected a string key' };
    const start = i;
    const err = str();
    if (err) return err;
    if (topKeys && stack.length === 1) {
      const k = JSON.parse(text.slice(start, i)) as string;
      if (topKeys.has(k)) return { pos: start, what: 'duplicate key', dup: k };
      topKeys.add(k);
    }
    ws();
    if (i >= n) return { pos: i, what: "unexpected end of the text (expected ':')" };
    if (text.charCodeAt(i) !== 58) return { pos: i, what: "expected ':' after a key" };
    i++;
    return null;
  };
  for (;;) {
    ws();
    if (i >= n) {
      if (!expectValue && stack.length === 0) return null;
      return { pos: i, what: stack.length ? 'unexpected end of the text (unclosed object or array)' : 'unexpected end of the text' };
    }
    const c = text.charCodeAt(i);
    if (expectValue) {
      if (c === 123 || c === 91) {
        if (stack.length >= maxDepth) return { pos: i, what: `nesting deeper than ${maxDepth} levels` };
        stack.push(c === 123 ? OBJ : ARR);
        i++;
        ws();
        if (text.charCodeAt(i) === (c === 123 ? 125 : 93)) { i++; stack.pop(); expectValue = false; continue; }
        if (c === 123) { const e = key(); if (e) return e; }
        continue;
      }
      let err: ScanError | null = null;
      if (c === 34) err = str();
      else if (c === 45 || isDigit(c)) err = num();
      else if (text.startsWith('true', i)) i += 4;
      else if (text.startsWith('false', i)) i += 5;
      else if (text.startsWith('null', i)) i += 4;
      else err = { pos: i, what: 'unexpected character (expected a value)' };
      if (err) return err;
      expectValue = false;
      continue;
    }
    if (stack.length === 0) return { pos: i, what: 'unexpected text after the end of the JSON value' };
    const top = stack[stack.length - 1];
    if (c === 44) {
      i++;
      if (top === OBJ) { const e = key(); if (e) return e; }
      expectValue = true;
      continue;
    }
    if ((c === 125 && top === OBJ) || (c === 93 && top === ARR)) { i++; stack.pop(); continue; }
    return { pos: i, what: top === OBJ ? "expected ',' or '}'" : "expected ',' or ']'" };
  }
}

/**
 * Parse JSON text read from `file`; `field` names what it is in errors ("config", "header", …).
 * A fault is a FormatError naming the file, the line and column and what was expected, never the
 * text itself.
 */
export function parseJsonText(text: string, file: string, field: string, opts: JsonParseOptions = {}): unknown {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const keys = opts.uniqueTopLevelKeys ? new Set<string>() : null;
  const Err = opts.errorClass ?? FormatError;
  const err = scan(text, opts.maxDepth ?? JSON_MAX_DEPTH, keys);
  if (err) {
    const { line, column } = lineColumn(text, err.pos);
    if (err.dup !== undefined) throw new Err(file, field, `key ${JSON.stringify(err.dup.length > 200 ? err.dup.slice(0, 200) + '…' : err.dup)} appears twice (line ${line}, column ${column})`);
    throw new Err(file, field, `is not valid JSON: ${err.what} at line ${line}, column ${column}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    // The scan accepts only what JSON.parse accepts; should they ever disagree, still no text in the message.
    throw new Err(file, field, 'is not valid JSON');
  }
}

/** parseJsonText, and the value must be an object (not an array, string, number or null). */
export function parseJsonObject(text: string, file: string, field: string, opts: JsonParseOptions = {}): Record<string, unknown> {
  const v = parseJsonText(text, file, field, opts);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new (opts.errorClass ?? FormatError)(file, field, `must be a JSON object, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : `a ${typeof v}`}`);
  return v as Record<string, unknown>;
}

/** A value for an error message: JSON, cut to `max` characters (a field may hold megabytes). */
export function brief(v: unknown, max = 60): string {
  let s: string;
  try { s = JSON.stringify(v) ?? String(v); } catch { s = String(v); }
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
