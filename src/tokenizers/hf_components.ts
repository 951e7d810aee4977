// The normalizers, pre-tokenizers and decoders of HF tokenizer.json used by the LLaMA, Qwen,
// Mistral and GPT-2 families. Each is built from its JSON object; an unknown type is an error
// that names the field.
import { BYTE_TO_CHAR, CHAR_TO_BYTE, GPT2_PATTERN, translateRegex, toByteLevel } from './bytelevel.js';
import { byteFallbackValue, TokenizerFormatError, utf8Decoder, utf8Encoder } from './tokenizer.js';
import { PrecompiledCharsMap } from './charsmap.js';
import { describeValue, MAX_JSON_DEPTH } from './guard.js';

type Json = Record<string, unknown>;

function obj(file: string, field: string, v: unknown): Json {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new TokenizerFormatError(file, field, 'must be an object');
  return v as Json;
}
function str(file: string, field: string, v: unknown): string {
  if (typeof v !== 'string') throw new TokenizerFormatError(file, field, `must be a string, got ${describeValue(v)}`);
  return v;
}
function arr(file: string, field: string, v: unknown): unknown[] {
  if (!Array.isArray(v)) throw new TokenizerFormatError(file, field, 'must be an array');
  return v;
}

/** A Split / Replace pattern: {String: "..."} or {Regex: "..."}. */
function pattern(file: string, field: string, v: unknown): RegExp {
  const p = obj(file, field, v);
  if (typeof p.String === 'string') {
    try {
      return new RegExp(p.String.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'), 'gu');
    } catch (e) {
      throw new TokenizerFormatError(file, `${field}.String`, `cannot be matched (${(e as Error).name}: ${p.String.length} characters)`);
    }
  }
  if (typeof p.Regex === 'string') {
    try {
      return translateRegex(p.Regex);
    } catch (e) {
      const m = (e as Error).message;
      throw new TokenizerFormatError(file, `${field}.Regex`, `cannot be translated to a JavaScript regex: ${m.length > 160 ? `${m.slice(0, 160)}…` : m}`);
    }
  }
  throw new TokenizerFormatError(file, field, 'must have a String or Regex');
}

// ---------------------------------------------------------------- normalizers

export type Normalizer = (s: string) => string;

export function buildNormalizer(file: string, field: string, v: unknown, depth = 0): Normalizer {
  const n = obj(file, field, v);
  if (depth > MAX_JSON_DEPTH) throw new TokenizerFormatError(file, field, `nests Sequences deeper than ${MAX_JSON_DEPTH}`);
  const type = str(file, `${field}.type`, n.type);
  switch (type) {
    case 'Sequence': {
      const parts = arr(file, `${field}.normalizers`, n.normalizers).map((x, i) => buildNormalizer(file, `${field}.normalizers[${i}]`, x, depth + 1));
      return (s) => parts.reduce((acc, f) => f(acc), s);
    }
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD':
      return (s) => s.normalize(type);
    case 'Lowercase':
      return (s) => s.toLowerCase();
    case 'Strip': {
      const l = n.strip_left !== false;
      const r = n.strip_right !== false;
      return (s) => (l && r ? s.trim() : l ? s.trimStart() : r ? s.trimEnd() : s);
    }
    case 'StripAccents':
      return (s) => s.replace(/\p{Mn}/gu, '');
    case 'Prepend': {
      const p = str(file, `${field}.prepend`, n.prepend);
      return (s) => (s === '' ? s : p + s);
    }
    case 'Replace': {
      const re = pattern(file, `${field}.pattern`, n.pattern);
      const content = str(file, `${field}.content`, n.content);
      return (s) => s.replace(re, () => content);
    }
    case 'Precompiled': {
      const b64 = n.precompiled_charsmap;
      if (b64 == null) return (s) => s;
      const map = new PrecompiledCharsMap(Buffer.from(str(file, `${field}.precompiled_charsmap`, b64), 'base64'), file, `${field}.precompiled_charsmap`);
      return (s) => map.normalize(s);
    }
    default:
      throw new TokenizerFormatError(file, `${field}.type`, `"${type}" is not supported`);
  }
}

// ---------------------------------------------------------------- pre-tokenizers

/** Splits one piece of text into pieces; `first` says whether it starts the input. */
export type PreTokenizer = (pieces: string[], first: boolean) => string[];

type SplitBehavior = 'Removed' | 'Isolated' | 'MergedWithPrevious' | 'MergedWithNext' | 'Contiguous';

/** HF's split with a behaviour; `invert` swaps matches and gaps. */
export function splitBy(text: string, re: RegExp, behavior: SplitBehavior, invert = false): string[] {
  // Spans: [start, end, isMatch]
  const spans: Array<[number, number, boolean]> = [];
  let last = 0;
  re.lastIndex = 0;
  for (const m of text.matchAll(re)) {
    const i = m.index!;
    if (m[0].length === 0) continue;
    if (i > last) spans.push([last, i, false]);
    spans.push([i, i + m[0].length, true]);
    last = i + m[0].length;
  }
  if (last < text.length) spans.push([last, text.length, false]);
  if (invert) for (const s of spans) s[2] = !s[2];
  const out: string[] = [];
  switch (behavior) {
    case 'Removed':
      for (const [a, b, m] of spans) if (!m) out.push(text.slice(a, b));
      break;
    case 'Isolated':
      for (const [a, b] of spans) out.push(text.slice(a, b));
      break;
    case 'MergedWithPrevious': {
      let cur = '';
      let prevMatch = false;
      for (const [a, b, m] of spans) {
        if (m && !prevMatch && cur !== '') cur += text.slice(a, b);
        else {
          if (cur !== '') out.push(cur);
          cur = text.slice(a, b);
        }
        // a match ends the current piece
        if (m) {
          out.push(cur);
          cur = '';
        }
        prevMatch = m;
      }
      if (cur !== '') out.push(cur);
      break;
    }
    case 'MergedWithNext': {
      let cur = '';
      for (const [a, b, m] of spans) {
        if (m) {
          if (cur !== '') out.push(cur);
          cur = text.slice(a, b);
        } else {
          cur += text.slice(a, b);
          out.push(cur);
          cur = '';
        }
      }
      if (cur !== '') out.push(cur);
      break;
    }
    case 'Contiguous': {
      let cur = '';
      let curMatch: boolean | null = null;
      for (const [a, b, m] of spans) {
        if (curMatch === m) cur += text.slice(a, b);
        else {
          if (cur !== '') out.push(cur);
          cur = text.slice(a, b);
          curMatch = m;
        }
      }
      if (cur !== '') out.push(cur);
      break;
    }
  }
  return out.filter((s) => s !== '');
}

export interface BuiltPreTokenizer {
  run: PreTokenizer;
  /** Whether pieces come out in ByteLevel's alphabet (then the model sees byte-level strings). */
  byteLevel: boolean;
}

export function buildPreTokenizer(file: string, field: string, v: unknown, depth = 0): BuiltPreTokenizer {
  const p = obj(file, field, v);
  if (depth > MAX_JSON_DEPTH) throw new TokenizerFormatError(file, field, `nests Sequences deeper than ${MAX_JSON_DEPTH}`);
  const type = str(file, `${field}.type`, p.type);
  switch (type) {
    case 'Sequence': {
      const parts = arr(file, `${field}.pretokenizers`, p.pretokenizers).map((x, i) => buildPreTokenizer(file, `${field}.pretokenizers[${i}]`, x, depth + 1));
      return { run: (pieces, first) => parts.reduce((acc, f) => f.run(acc, first), pieces), byteLevel: parts.some((x) => x.byteLevel) };
    }
    case 'ByteLevel': {
      const addPrefix = p.add_prefix_space === true;
      const useRegex = p.use_regex !== false;
      const re = translateRegex(GPT2_PATTERN);
      return {
        byteLevel: true,
        run: (pieces, first) =>
          pieces.flatMap((s, i) => {
            if (addPrefix && first && i === 0 && !s.startsWith(' ')) s = ' ' + s;
            const parts = useRegex ? splitBy(s, re, 'Isolated') : [s];
            return parts.map(toByteLevel);
          }),
      };
    }
    case 'Metaspace': {
      const rep = str(file, `${field}.replacement`, p.replacement ?? '▁');
      let scheme = (p.prepend_scheme as string | undefined) ?? (p.add_prefix_space === false ? 'never' : 'always');
      if (!['always', 'first', 'never'].includes(scheme)) throw new TokenizerFormatError(file, `${field}.prepend_scheme`, `"${scheme}" is not supported`);
      const split = p.split !== false;
      const re = new RegExp(rep.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'), 'gu');
      return {
        byteLevel: false,
        run: (pieces, first) =>
          pieces.flatMap((s, i) => {
            s = s.replaceAll(' ', rep);
            if (!s.startsWith(rep) && (scheme === 'always' || (scheme === 'first' && first && i === 0))) s = rep + s;
            return split ? splitBy(s, re, 'MergedWithNext') : [s];
          }),
      };
    }
    case 'Split': {
      const re = pattern(file, `${field}.pattern`, p.pattern);
      const behavior = str(file, `${field}.behavior`, p.behavior) as SplitBehavior;
      if (!['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous'].includes(behavior)) {
        throw new TokenizerFormatError(file, `${field}.behavior`, `"${behavior}" is not supported`);
      }
      const invert = p.invert === true;
      return { byteLevel: false, run: (pieces) => pieces.flatMap((s) => splitBy(s, re, behavior, invert)) };
    }
    case 'Digits': {
      const re = p.individual_digits === true ? /\p{N}/gu : /\p{N}+/gu;
      return { byteLevel: false, run: (pieces) => pieces.flatMap((s) => splitBy(s, re, 'Isolated')) };
    }
    case 'Whitespace': {
      const re = /\w+|[^\w\s]+/gu;
      return { byteLevel: false, run: (pieces) => pieces.flatMap((s) => Array.from(s.matchAll(re), (m) => m[0])) };
    }
    case 'WhitespaceSplit':
      return { byteLevel: false, run: (pieces) => pieces.flatMap((s) => s.split(/\s+/u).filter((x) => x !== '')) };
    case 'Punctuation': {
      const re = /\p{P}|[$+<=>^`|~]/gu;
      return { byteLevel: false, run: (pieces) => pieces.flatMap((s) => splitBy(s, re, 'Isolated')) };
    }
    default:
      throw new TokenizerFormatError(file, `${field}.type`, `"${type}" is not supported`);
  }
}

// ---------------------------------------------------------------- decoders

/** Maps the list of token strings to a new list (HF's decode_chain); the result is joined. */
export type Decoder = (tokens: string[]) => string[];

export function buildDecoder(file: string, field: string, v: unknown, depth = 0): Decoder {
  const d = obj(file, field, v);
  if (depth > MAX_JSON_DEPTH) throw new TokenizerFormatError(file, field, `nests Sequences deeper than ${MAX_JSON_DEPTH}`);
  const type = str(file, `${field}.type`, d.type);
  switch (type) {
    case 'Sequence': {
      const parts = arr(file, `${field}.decoders`, d.decoders).map((x, i) => buildDecoder(file, `${field}.decoders[${i}]`, x, depth + 1));
      return (toks) => parts.reduce((acc, f) => f(acc), toks);
    }
    case 'ByteLevel':
      return (toks) => {
        const bytes: number[] = [];
        for (const t of toks) {
          let ok = true;
          for (const ch of t) if (!CHAR_TO_BYTE.has(ch)) ok = false;
          if (ok) for (const ch of t) bytes.push(CHAR_TO_BYTE.get(ch)!);
          else for (const b of utf8Encoder.encode(t)) bytes.push(b);
        }
        return [utf8Decoder.decode(new Uint8Array(bytes))];
      };
    case 'Metaspace': {
      const rep = str(file, `${field}.replacement`, d.replacement ?? '▁');
      const scheme = (d.prepend_scheme as string | undefined) ?? (d.add_prefix_space === false ? 'never' : 'always');
      return (toks) =>
        toks.map((t, i) => {
          t = t.replaceAll(rep, ' ');
          if (i === 0 && scheme !== 'never' && t.startsWith(' ')) t = t.slice(1);
          return t;
        });
    }
    case 'Replace': {
      const re = pattern(file, `${field}.pattern`, d.pattern);
      const content = str(file, `${field}.content`, d.content);
      return (toks) => toks.map((t) => t.replace(re, () => content));
    }
    case 'ByteFallback':
      return (toks) => {
        const out: string[] = [];
        let bytes: number[] = [];
        const flush = () => {
          if (bytes.length === 0) return;
          try {
            out.push(new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(bytes)));
          } catch {
            for (let i = 0; i < bytes.length; i++) out.push('\uFFFD');
          }
          bytes = [];
        };
        for (const t of toks) {
          const b = byteFallbackValue(t);
          if (b >= 0) bytes.push(b);
          else {
            flush();
            out.push(t);
          }
        }
        flush();
        return out;
      };
    case 'Fuse':
      return (toks) => [toks.join('')];
    case 'Strip': {
      const content = str(file, `${field}.content`, d.content);
      const start = Number(d.start ?? 0);
      const stop = Number(d.stop ?? 0);
      return (toks) =>
        toks.map((t) => {
          const cs = Array.from(t);
          let a = 0;
          let b = cs.length;
          while (a < start && a < b && cs[a] === content) a++;
          while (cs.length - b < stop && b > a && cs[b - 1] === content) b--;
          return cs.slice(a, b).join('');
        });
    }
    default:
      throw new TokenizerFormatError(file, `${field}.type`, `"${type}" is not supported`);
  }
}

export { BYTE_TO_CHAR };
