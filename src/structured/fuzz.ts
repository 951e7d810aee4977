// Property-based checking of the token engine against an outside JSON Schema validator (ajv in the
// tests and `tslm bench structured --fuzz N`): a seeded generator of random schemas (objects with
// many optional keys whose names share prefixes, nesting, arrays, enums, const, bounded strings
// and numbers, the built-in formats, anyOf, overlapping oneOf, not, if/then/else, required
// subsets), of candidate valid instances drawn from a
// schema, and of mutations of them (a required key dropped, a wrong type, a bound crossed, an
// undeclared key, a missed enum value …). `fuzzEngine` feeds each instance, serialised compactly
// with its keys in schema order (the order the grammar emits), token by token through the masks
// of a TokenMatcher and compares the verdict with the validator's: an instance the engine accepts
// must be valid (soundness), and the valid ones it rejects are counted (completeness, measured).
import { Ajv } from 'ajv';
import addFormatsMod from 'ajv-formats';
import { SchemaCompiler } from './schema.js';
import type { JsonSchema } from './schema.js';
import { TokenMatcher, DEAD } from './matcher.js';
import type { TokenVocab } from './vocab.js';
import { StructuredError } from './errors.js';
import { generateStructured } from './api.js';
import type { CausalLM } from '../models/causal.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';

const addFormats = ((addFormatsMod as unknown as { default?: unknown }).default ?? addFormatsMod) as (a: Ajv) => void;

/** ajv (draft-07, with ajv-formats' full formats) as the outside validator: a compiled check per schema. */
export function ajvValidator(): (schema: JsonSchema) => (v: unknown) => boolean {
  const ajv = new Ajv({ strict: false });
  addFormats(ajv);
  return (schema) => { const f = ajv.compile(schema); return (v) => f(v) as boolean; };
}

type Obj = Record<string, unknown>;

/** A seeded generator of 32-bit floats in [0, 1) (mulberry32). */
export class Rng {
  private s: number;
  constructor(seed: number) { this.s = seed >>> 0; }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number { return lo + Math.floor(this.next() * (hi - lo + 1)); }
  pick<T>(xs: readonly T[]): T { return xs[Math.floor(this.next() * xs.length)]; }
  chance(p: number): boolean { return this.next() < p; }
}

/** The formats the compiler supports (schema.ts FORMATS), with a generator of valid values. */
const FORMAT_GEN: Record<string, (r: Rng) => string> = {
  date: (r) => `${r.int(1000, 2999)}-${pad(r.int(1, 12))}-${pad(r.int(1, 28))}`,
  time: (r) => `${pad(r.int(0, 23))}:${pad(r.int(0, 59))}:${pad(r.int(0, 59))}${r.chance(0.3) ? '.' + r.int(0, 999) : ''}${r.chance(0.5) ? 'Z' : `${r.pick(['+', '-'])}${pad(r.int(0, 23))}:${pad(r.int(0, 59))}`}`,
  'date-time': (r) => `${FORMAT_GEN.date(r)}T${FORMAT_GEN.time(r)}`,
  email: (r) => `${word(r, 'abcxyz019_+-', 1, 8)}${r.chance(0.3) ? '.' + word(r, 'abc', 1, 3) : ''}@${word(r, 'abcdefgh0123', 1, 8)}.${r.pick(['com', 'org', 'io', 'museum'])}`,
  uuid: (r) => [8, 4, 4, 4, 12].map((n) => word(r, '0123456789abcdef', n, n)).join('-'),
  uri: (r) => `${r.pick(['http', 'https'])}://${word(r, 'abc123', 1, 6)}.${word(r, 'abcxyz', 2, 3)}${r.chance(0.6) ? '/' + word(r, 'aB3._~-', 0, 6) : ''}${r.chance(0.3) ? '?q=' + word(r, 'ab1', 1, 3) : ''}${r.chance(0.2) ? '#' + word(r, 'xy', 1, 3) : ''}`,
};
export const FUZZ_FORMATS = Object.keys(FORMAT_GEN);

/** Patterns (of strings and of patternProperties keys), with a generator of strings that match them. */
const PATTERN_GEN: Record<string, (r: Rng) => string> = {
  '^[a-z]+$': (r) => word(r, 'abcxyz', 1, 8),
  '^[A-Z][a-z0-9_]*$': (r) => r.pick(['A', 'Q', 'Z']) + word(r, 'ab09_', 0, 7),
  '[0-9]': (r) => word(r, 'ab -', 1, 3) + r.int(0, 9) + word(r, 'xy.', 0, 3),
  '^x-': (r) => 'x-' + word(r, 'abé -', 0, 6) + (r.chance(0.2) ? '😀' : ''),
  '_id$': (r) => word(r, 'usr', 1, 4) + '_id',
};
const FUZZ_PATTERNS = Object.keys(PATTERN_GEN);

const pad = (n: number) => String(n).padStart(2, '0');
function word(r: Rng, alphabet: string, lo: number, hi: number): string {
  let s = '';
  for (let i = r.int(lo, hi); i > 0; i--) s += alphabet[r.int(0, alphabet.length - 1)];
  return s;
}

// Property names: real-world shapes (Salesforce-style "ns__Name__c" with shared prefixes, ids,
// snake and camel case, long names, digits, a few punctuation characters).
const SEGS = ['Id', 'Name', 'Date', 'Notes', 'Owner', 'Created', 'Boats', 'Attendance', 'Account', 'user', 'email', 'type', 'value', 'data', 'item', 'count', 'is', 'x', 'a', 'total', 'Modstamp', 'System', 'Received', 'Connection'];
function propName(r: Rng): string {
  switch (r.int(0, 6)) {
    case 0: return r.pick(['Attachments', 'ConnectionReceivedId', 'CreatedDate', 'Id', 'IsDeleted', 'Name', 'Notes', 'OwnerId', 'SystemModstamp', 'id', 'name', 'type', 'value']);
    case 1: return `${r.pick(['vera', 'ns', 'acme'])}__${r.pick(SEGS)}${r.chance(0.5) ? r.int(0, 12) : ''}__${r.pick(['r', 'c'])}`;
    case 2: { const n = r.int(1, 4); const p: string[] = []; for (let i = 0; i < n; i++) p.push(r.pick(SEGS).toLowerCase()); return p.join('_'); }
    case 3: { const n = r.int(1, 4); let s = r.pick(SEGS).toLowerCase(); for (let i = 1; i < n; i++) s += r.pick(SEGS); return s; }
    case 4: { let s = ''; while (s.length < r.int(25, 60)) s += r.pick(SEGS) + (r.chance(0.3) ? '_' : ''); return s; }
    // (No integer-like names: JavaScript orders them first in an object, not in schema order.)
    case 5: return r.pick(['a', 'b', 'a1', '1a', 'x_', '_', '__', '$ref_', 'key-1', 'k.2', 'with space', 'é']);
    default: return `${r.pick(SEGS)}${r.int(0, 99)}`;
  }
}

export interface GenOptions {
  /** Deepest nesting of objects/arrays/anyOf (default 3). */
  maxDepth?: number;
  /** Most declared properties of an object (default 14). */
  maxProps?: number;
  /** Include the string formats (default true). */
  formats?: boolean;
}

const SCALAR_STRINGS = ['', 'a', 'ab', 'abc', 'yes', 'no', 'red', 'green', 'blue', 'reddish', 'Name', 'é', 'x y', 'a"b', 'tab\t'];

/**
 * A schema for `not` (or a oneOf branch to be told apart): the shapes whose complement the
 * compiler writes exactly — a type, an enum or const, a required name, a bound, a property's
 * value, additionalProperties false, items — sometimes two of them together.
 */
function genNegatable(r: Rng, keys: string[]): Obj {
  const one = (): Obj => {
    switch (r.int(0, 8)) {
      case 0: return { type: r.pick(['string', 'integer', 'number', 'null', 'boolean', 'object', 'array']) };
      case 1: return { enum: [r.pick(SCALAR_STRINGS), r.pick([0, 1, 5, -1, 2.5, null, true])] };
      case 2: return { const: r.pick([() => r.pick(SCALAR_STRINGS), () => r.int(-5, 20), () => null, () => false]) () };
      case 3: return keys.length ? { required: [r.pick(keys)] } : { type: 'object' };
      case 4: return { [r.pick(['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'])]: r.int(-20, 20) };
      case 5: return { [r.pick(['minLength', 'maxLength'])]: r.int(0, 3) };
      case 6: return keys.length ? { properties: { [r.pick(keys)]: { type: r.pick(['string', 'integer', 'boolean']) } } } : { minItems: 1 };
      case 7: return { properties: Object.fromEntries(keys.slice(0, 2).map((k) => [k, {}])), additionalProperties: false };
      default: return { type: 'array', items: { type: r.pick(['string', 'integer']) } };
    }
  };
  return r.chance(0.3) ? { ...one(), ...one() } : one();
}

/**
 * A random JSON Schema (draft-07 keywords that the compiler supports): patterns and formats with
 * length bounds, patternProperties and propertyNames, not, oneOf (branches that may overlap) and
 * if/then/else included. Not generated: unknown keywords and formats.
 */
export function genSchema(r: Rng, opts: GenOptions = {}, depth = 0): Obj {
  const maxDepth = opts.maxDepth ?? 3;
  const kinds = depth >= maxDepth
    ? ['string', 'integer', 'number', 'boolean', 'null', 'enum', 'const']
    : ['object', 'object', 'object', 'array', 'array', 'string', 'integer', 'number', 'boolean', 'enum', 'const', 'anyOf', 'null', 'oneOf', 'not', 'if'];
  const kind = depth === 0 ? (r.chance(0.8) ? 'object' : r.pick(kinds)) : r.pick(kinds);
  switch (kind) {
    case 'object': {
      const n = r.int(0, opts.maxProps ?? 8);
      const properties: Obj = {};
      for (let i = 0; i < n; i++) {
        const k = propName(r);
        if (!(k in properties)) properties[k] = genSchema(r, opts, depth + 1);
      }
      const s: Obj = { type: 'object', properties };
      // patternProperties (keys may match several patterns, and declared names may match them) and propertyNames.
      if (r.chance(0.25)) {
        const pp: Obj = {};
        for (let i = r.int(1, 2); i > 0; i--) pp[r.pick(FUZZ_PATTERNS)] = genSchema(r, { ...opts, maxDepth: Math.min(maxDepth, depth + 2) }, depth + 1);
        s.patternProperties = pp;
      }
      if (r.chance(0.08)) s.propertyNames = r.pick([{ minLength: 1 }, { maxLength: 80 }, { pattern: '^[^\\n]*$' }]);
      const keys = Object.keys(properties);
      if (keys.length && r.chance(0.6)) s.required = keys.filter(() => r.chance(0.3));
      const ap = r.next();
      if (ap < 0.3) s.additionalProperties = false;
      else if (ap < 0.4) s.additionalProperties = true;
      else if (ap < 0.5) s.additionalProperties = { type: r.pick(['integer', 'string', 'boolean']) };
      genObjectCounts(r, s, keys);
      // Objects told apart by required names or a property's value (oneOf), or a name forbidden (not).
      if (keys.length && r.chance(0.15)) s.not = genNegatable(r, keys);
      else if (keys.length >= 2 && r.chance(0.15)) s.oneOf = [{ required: [keys[0]] }, r.chance(0.5) ? { required: [keys[1]] } : genNegatable(r, keys)];
      return s;
    }
    case 'array': {
      const s: Obj = { type: 'array' };
      if (r.chance(0.8)) s.items = genSchema(r, opts, depth + 1);
      if (r.chance(0.4)) s.minItems = r.int(0, 3);
      if (r.chance(0.4)) s.maxItems = r.int((s.minItems as number | undefined) ?? 0, 4);
      // uniqueItems over enumerable items (what the compiler makes exact).
      if (r.chance(0.15)) { s.uniqueItems = true; s.items = r.pick([{ type: 'boolean' }, { enum: ['a', 'b', 'c', 1, null] }, { type: 'integer', minimum: 0, maximum: 4 }]); }
      return s;
    }
    case 'string': {
      const s: Obj = { type: 'string' };
      if ((opts.formats ?? true) && r.chance(0.25)) {
        s.format = r.pick(FUZZ_FORMATS);
        // A length bound with a format: the intersection of the two languages.
        if (r.chance(0.25)) s[r.chance(0.5) ? 'maxLength' : 'minLength'] = r.int(8, 30);
        return s;
      }
      if (r.chance(0.2)) s.pattern = r.pick(FUZZ_PATTERNS);
      if (r.chance(0.4)) s.minLength = r.int(0, 4);
      if (r.chance(0.4)) s.maxLength = r.int((s.minLength as number | undefined) ?? 0, 12);
      return s;
    }
    case 'integer': case 'number': {
      const s: Obj = { type: kind };
      const frac = kind === 'number' && r.chance(0.5);
      const v = () => (frac ? Math.round((r.next() * 400 - 200) * 4) / 4 : r.int(-300, 300));
      if (r.chance(0.5)) s[r.chance(0.2) ? 'exclusiveMinimum' : 'minimum'] = v();
      if (r.chance(0.5)) {
        const lo = (s.minimum ?? s.exclusiveMinimum) as number | undefined;
        let hi = v();
        if (lo !== undefined && hi < lo + 2) hi = lo + r.int(2, 50);
        s[r.chance(0.2) ? 'exclusiveMaximum' : 'maximum'] = hi;
      }
      if (r.chance(0.2)) s.multipleOf = r.pick(kind === 'integer' ? [2, 3, 7, 10, 0.5] : [3, 0.5, 0.25, 2.5, 0.01, 0.1]);
      return s;
    }
    case 'boolean': return { type: 'boolean' };
    case 'null': return { type: 'null' };
    case 'enum': {
      const vals = new Map<string, unknown>();
      for (let i = r.int(1, 6); i > 0; i--) {
        const x = r.pick([() => r.pick(SCALAR_STRINGS), () => r.int(-5, 100), () => null, () => r.chance(0.5), () => r.int(-50, 50) / 4]) ();
        vals.set(JSON.stringify(x), x);
      }
      return { enum: [...vals.values()] };
    }
    case 'const': return { const: r.pick([() => r.pick(SCALAR_STRINGS), () => r.int(-5, 100), () => null, () => true]) () };
    case 'not': {
      const base = r.chance(0.5) ? genSchema(r, { ...opts, formats: false }, maxDepth) : {};
      return { ...base, not: genNegatable(r, Object.keys((base.properties ?? {}) as Obj)) };
    }
    case 'if': {
      const s: Obj = { if: genNegatable(r, ['a', 'b']) };
      if (r.chance(0.8)) s.then = genSchema(r, { ...opts, formats: false }, depth + 1);
      if (r.chance(0.8)) s.else = genSchema(r, { ...opts, formats: false }, depth + 1);
      return s;
    }
    default: {
      const branches: Obj[] = [];
      for (let i = r.int(2, 3); i > 0; i--) branches.push(kind === 'oneOf' && r.chance(0.4) ? genNegatable(r, ['a', 'b']) : genSchema(r, { ...opts, formats: kind !== 'oneOf' && opts.formats !== false }, depth + 1));
      return { [kind === 'oneOf' ? 'oneOf' : 'anyOf']: branches };
    }
  }
}

const CHARS = ['a', 'b', 'z', 'Q', '0', '7', ' ', '_', '-', '.', ':', '/', '"', '\\', '\n', '\t', 'é', 'ß', '中', '😀', '\u0001', '\u007f', '~', '{', '}', ','];

function genString(r: Rng, lo: number, hi: number): string {
  let s = '';
  const n = r.int(lo, hi);
  for (let i = 0; i < n; i++) s += r.chance(0.7) ? r.pick(['a', 'b', 'e', 'o', 's', 't', ' ']) : r.pick(CHARS);
  return s;
}

function numBounds(s: Obj): { lo: number; hi: number; exLo: boolean; exHi: boolean } {
  const lo = (s.minimum ?? s.exclusiveMinimum ?? -1000) as number, hi = (s.maximum ?? s.exclusiveMaximum ?? 1000) as number;
  return { lo, hi, exLo: s.exclusiveMinimum !== undefined, exHi: s.exclusiveMaximum !== undefined };
}

/** minProperties / maxProperties and dependencies (array form, or a schema of required names) on a generated object. */
function genObjectCounts(r: Rng, s: Obj, keys: string[]): void {
  if (r.chance(0.15)) s.minProperties = r.int(0, 4);
  if (r.chance(0.15)) s.maxProperties = r.int((s.minProperties as number | undefined) ?? 0, 5);
  if (keys.length >= 2 && r.chance(0.25)) {
    const deps: Obj = {};
    for (let i = r.int(1, 3); i > 0; i--) {
      const t = r.pick(keys), need = keys.filter((k) => k !== t && r.chance(0.3));
      if (need.length) deps[t] = r.chance(0.7) ? need : { required: need };
    }
    if (Object.keys(deps).length) s.dependencies = deps;
  }
}

/** A value that is a multiple of m (for genValid: exact decimal text where m is a decimal). */
function multipleIn(r: Rng, m: number, lo: number, hi: number): number {
  const a = Math.ceil(lo / m), b = Math.floor(hi / m);
  const n = a <= b ? r.int(a, b) : a;
  return Number((n * m).toFixed(6));
}

/** A valid instance of a schema made by genSchema (objects' keys in schema order, undeclared keys last). */
export function genValid(r: Rng, s: Obj): unknown {
  if (s.const !== undefined) return s.const;
  if (Array.isArray(s.enum)) return r.pick(s.enum);
  if (Array.isArray(s.anyOf)) return genValid(r, r.pick(s.anyOf as Obj[]));
  // oneOf / not / if: a candidate (the validator decides): a branch's instance, or the rest's.
  if (Array.isArray(s.oneOf) && (s.type === undefined || r.chance(0.3))) return genValid(r, r.pick(s.oneOf as Obj[]));
  if (s.if !== undefined && s.type === undefined) {
    const pick = r.pick([s.then, s.else, s.if].filter((x) => x !== undefined)) as Obj;
    return genValid(r, pick);
  }
  if (s.not !== undefined && s.type === undefined && s.enum === undefined && s.const === undefined) return r.pick([null, true, 0, 3, -7, 2.5, 'a', 'abc', '', [], [1, 'x'], { a: 1 }, {}, { b: 'x' }]);
  switch (s.type) {
    case 'null': return null;
    case 'boolean': return r.chance(0.5);
    case 'string':
      if (typeof s.format === 'string') return FORMAT_GEN[s.format](r);
      if (typeof s.pattern === 'string') {
        // A match of the pattern within the length bounds (the validator decides when none is found).
        const lo = (s.minLength as number | undefined) ?? 0, hi = (s.maxLength as number | undefined) ?? Infinity;
        let v = '';
        for (let k = 0; k < 20; k++) { v = PATTERN_GEN[s.pattern](r); const n = [...v].length; if (n >= lo && n <= hi) break; }
        return v;
      }
      return genString(r, (s.minLength as number | undefined) ?? 0, (s.maxLength as number | undefined) ?? ((s.minLength as number | undefined) ?? 0) + 8);
    case 'integer': case 'number': {
      const { lo, hi, exLo, exHi } = numBounds(s);
      if (typeof s.multipleOf === 'number') {
        const m = s.multipleOf;
        for (let k = 0; k < 20; k++) { const x = multipleIn(r, m, lo, hi); if ((x > lo || (x === lo && !exLo)) && (x < hi || (x === hi && !exHi))) return x; }
        return multipleIn(r, m, lo, hi);
      }
      if (s.type === 'integer' || r.chance(0.3)) {
        const a = Math.ceil(lo) + (exLo && Number.isInteger(lo) ? 1 : 0), b = Math.floor(hi) - (exHi && Number.isInteger(hi) ? 1 : 0);
        return r.chance(0.2) ? r.pick([a, b]) : r.int(a, b);
      }
      for (;;) {
        const x = r.chance(0.1) ? r.pick([lo, hi]) : Math.round((lo + r.next() * (hi - lo)) * 1000) / 1000;
        if (x > lo || (x === lo && !exLo)) if (x < hi || (x === hi && !exHi)) return x;
      }
    }
    case 'array': {
      const lo = (s.minItems as number | undefined) ?? 0, hi = (s.maxItems as number | undefined) ?? lo + 3;
      const out: unknown[] = [];
      for (let i = r.int(lo, hi); i > 0; i--) out.push(s.items ? genValid(r, s.items as Obj) : r.pick([1, 'x', null, true, [], {}]));
      if (s.uniqueItems === true) return out.filter((x, i) => out.findIndex((y) => JSON.stringify(y) === JSON.stringify(x)) === i);
      return out;
    }
    case 'object': {
      const props = (s.properties ?? {}) as Record<string, Obj>;
      const req = new Set((s.required ?? []) as string[]);
      const out: Obj = {};
      for (const [k, sub] of Object.entries(props)) if (req.has(k) || r.chance(0.5)) out[k] = genValid(r, sub);
      // Keys of patternProperties (after the declared ones, where the grammar writes them).
      for (const [p, sub] of Object.entries((s.patternProperties ?? {}) as Record<string, Obj>)) {
        if (!r.chance(0.6)) continue;
        const k = PATTERN_GEN[p](r);
        if (!(k in props) && !(k in out)) out[k] = genValid(r, sub);
      }
      const ap = s.additionalProperties;
      // Dependencies: the names a present trigger needs (to a fixed point), in schema order.
      const deps = (s.dependencies ?? {}) as Record<string, string[] | { required: string[] }>;
      for (let changed = true; changed;) {
        changed = false;
        for (const [t, d] of Object.entries(deps)) if (t in out) for (const k of Array.isArray(d) ? d : d.required) if (!(k in out)) { out[k] = genValid(r, props[k]); changed = true; }
      }
      // minProperties: more declared keys first (schema order kept), then extra keys where allowed;
      // maxProperties: optional keys dropped from the end (ajv decides whether the result is valid).
      const minP = (s.minProperties as number | undefined) ?? 0, maxP = (s.maxProperties as number | undefined) ?? Infinity;
      for (const k of Object.keys(props)) if (!(k in out) && Object.keys(out).length < minP) out[k] = genValid(r, props[k]);
      const ordered: Obj = {};
      for (const k of Object.keys(props)) if (k in out) ordered[k] = out[k];
      const extra = () => { const k = 'extra_' + r.int(0, 9); if (!(k in props)) ordered[k] = typeof ap === 'object' ? genValid(r, ap as Obj) : r.pick([1, 'x', null]); };
      if (ap !== false && r.chance(0.2)) extra();
      for (let i = 0; ap !== false && Object.keys(ordered).length < minP && i < 20; i++) extra();
      for (const k of Object.keys(ordered).reverse()) if (Object.keys(ordered).length > maxP && !req.has(k)) delete ordered[k];
      return ordered;
    }
  }
  return null;
}

/** A place in an instance: its value, the schema it is checked against (null: unknown) and how to replace it. */
interface Site { value: unknown; schema: Obj | null; set: (v: unknown) => void; parentObj?: Obj }

function sites(v: unknown, s: Obj | null, set: (v: unknown) => void, out: Site[]): void {
  out.push({ value: v, schema: s, set });
  // Inside anyOf the branch is unknown: mutations there are generic.
  const known = s && !s.anyOf && !s.oneOf && s.if === undefined ? s : null;
  if (Array.isArray(v)) v.forEach((x, i) => sites(x, known && known.items ? known.items as Obj : null, (y) => { v[i] = y; }, out));
  else if (v !== null && typeof v === 'object') {
    const o = v as Obj, props = (known?.properties ?? {}) as Record<string, Obj>;
    for (const k of Object.keys(o)) sites(o[k], props[k] ?? null, (y) => { o[k] = y; }, out);
  }
}

export const MUTATIONS = ['drop-required', 'wrong-type', 'out-of-range', 'extra-key', 'enum-miss', 'format-break', 'string-edit', 'not-multiple', 'duplicate-item', 'dependency-break', 'count-break'] as const;
export type Mutation = typeof MUTATIONS[number];

const OTHER_TYPE: unknown[] = [null, true, 0, -3, 2.5, '', 'x', [], [1], {}, { a: 1 }];

/**
 * A mutation of a valid instance (a deep copy; null when the mutation has no site in it). The
 * result may still be valid (an extra key where undeclared keys are allowed): the validator decides.
 */
export function mutate(r: Rng, schema: Obj, valid: unknown, kind: Mutation): unknown | null {
  const root = { v: structuredClone(valid) };
  const all: Site[] = [];
  sites(root.v, schema, (y) => { root.v = y; }, all);
  const fit = (p: (x: Site) => boolean) => all.filter(p);
  const isObj = (x: unknown): x is Obj => x !== null && typeof x === 'object' && !Array.isArray(x);
  let cands: Site[];
  switch (kind) {
    case 'drop-required':
      cands = fit((x) => isObj(x.value) && Array.isArray(x.schema?.required) && (x.schema!.required as string[]).some((k) => k in (x.value as Obj)));
      if (!cands.length) return null;
      { const x = r.pick(cands), o = x.value as Obj; delete o[r.pick((x.schema!.required as string[]).filter((k) => k in o))]; }
      break;
    case 'wrong-type':
      cands = all;
      { const x = r.pick(cands); let y: unknown; do y = r.pick(OTHER_TYPE); while (typeof y === typeof x.value && Array.isArray(y) === Array.isArray(x.value) && (y === null) === (x.value === null)); x.set(structuredClone(y)); }
      break;
    case 'out-of-range':
      cands = fit((x) => x.schema !== null && (
        (typeof x.value === 'number' && ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'].some((k) => k in x.schema!)) ||
        (typeof x.value === 'string' && ('minLength' in x.schema! || 'maxLength' in x.schema!)) ||
        (Array.isArray(x.value) && ('minItems' in x.schema! || 'maxItems' in x.schema!))));
      if (!cands.length) return null;
      {
        const x = r.pick(cands), s = x.schema!;
        if (typeof x.value === 'number') {
          const k = r.pick(['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'].filter((k) => k in s));
          const b = s[k] as number, below = k.endsWith('inimum');
          // Just across the bound, a unit or more away, or across it within its unit (147.9 for a maximum of 147.25).
          const d = r.pick([0, 0.001, 0.25, 0.5, 1, 7, -1]);
          if (d >= 0) x.set(below ? b - d : b + d);
          else { const u = Math.floor(b) + (below ? 0.1 : 0.9); x.set(below ? (u < b ? u : b - 0.001) : (u > b ? u : b + 0.001)); }
        } else if (typeof x.value === 'string') {
          x.set('maxLength' in s && r.chance(0.6) ? x.value + 'abcdefgh'.slice(0, r.int(1, 3)) + 'x'.repeat(Math.max(0, (s.maxLength as number) - x.value.length)) : [...x.value].slice(0, Math.max(0, ((s.minLength as number | undefined) ?? 1) - 1)).join(''));
        } else {
          const a = x.value as unknown[];
          if ('maxItems' in s && (r.chance(0.6) || !('minItems' in s))) { while (a.length <= (s.maxItems as number)) a.push(a.length ? structuredClone(a[0]) : 0); }
          else a.length = Math.max(0, (s.minItems as number) - 1);
        }
      }
      break;
    case 'extra-key':
      cands = fit((x) => isObj(x.value));
      if (!cands.length) return null;
      {
        const x = r.pick(cands), o = x.value as Obj;
        const props = (x.schema?.properties ?? {}) as Obj;
        let k = propName(r);
        while (k in props || k in o) k += '_';
        o[k] = r.pick([1, 'x', null, true]);
      }
      break;
    case 'enum-miss':
      cands = fit((x) => x.schema !== null && (Array.isArray(x.schema.enum) || x.schema.const !== undefined));
      if (!cands.length) return null;
      { const x = r.pick(cands); x.set(typeof x.value === 'string' ? x.value + r.pick(['x', 'ish', ' ']) : typeof x.value === 'number' ? x.value + 1 : r.pick(['null', 0, false])); }
      break;
    case 'format-break':
      cands = fit((x) => typeof x.value === 'string' && typeof x.schema?.format === 'string');
      if (!cands.length) return null;
      {
        const x = r.pick(cands), v = x.value as string;
        const i = r.int(0, v.length - 1);
        x.set(r.pick([v.slice(0, i) + v.slice(i + 1), v.slice(0, i) + r.pick(['9', 'A', ' ', '/', '@', '-']) + v.slice(i + 1), v + r.pick(['Z', '0', ' ', '.'])]));
      }
      break;
    case 'string-edit':
      cands = fit((x) => typeof x.value === 'string');
      if (!cands.length) return null;
      // At a code point boundary (a lone surrogate is no Unicode text).
      { const x = r.pick(cands), v = [...(x.value as string)], i = r.int(0, v.length); x.set([...v.slice(0, i), r.pick(CHARS), ...v.slice(i)].join('')); }
      break;
    case 'not-multiple':
      cands = fit((x) => typeof x.value === 'number' && typeof x.schema?.multipleOf === 'number');
      if (!cands.length) return null;
      { const x = r.pick(cands), m = x.schema!.multipleOf as number; x.set(Number(((x.value as number) + r.pick([1, m / 2, m / 3, 0.001, 0.07])).toFixed(6))); }
      break;
    case 'duplicate-item':
      cands = fit((x) => Array.isArray(x.value) && x.value.length > 0 && x.schema?.uniqueItems === true);
      if (!cands.length) return null;
      { const a = r.pick(cands).value as unknown[]; a.splice(r.int(0, a.length), 0, structuredClone(r.pick(a))); }
      break;
    case 'dependency-break':
      // A key a present trigger needs dropped, or a trigger added without what it needs.
      cands = fit((x) => isObj(x.value) && isObj(x.schema?.dependencies));
      if (!cands.length) return null;
      {
        const x = r.pick(cands), o = x.value as Obj, deps = x.schema!.dependencies as Record<string, string[] | { required: string[] }>;
        const [t, d] = r.pick(Object.entries(deps)), need = Array.isArray(d) ? d : d.required;
        if (t in o && need.some((k) => k in o)) delete o[r.pick(need.filter((k) => k in o))];
        else { o[t] = r.pick([1, 'x', null]); for (const k of need) delete o[k]; }
      }
      break;
    case 'count-break':
      cands = fit((x) => isObj(x.value) && (typeof x.schema?.minProperties === 'number' || typeof x.schema?.maxProperties === 'number'));
      if (!cands.length) return null;
      {
        const x = r.pick(cands), o = x.value as Obj, s = x.schema!;
        if (typeof s.maxProperties === 'number' && (r.chance(0.5) || typeof s.minProperties !== 'number')) {
          for (const k of Object.keys((s.properties ?? {}) as Obj)) if (Object.keys(o).length <= s.maxProperties && !(k in o)) o[k] = 1;
          for (let i = 0; Object.keys(o).length <= s.maxProperties; i++) o[`zz${i}`] = 1;
        } else for (const k of Object.keys(o).reverse()) if (Object.keys(o).length >= (s.minProperties as number)) delete o[k];
      }
      break;
  }
  return root.v;
}

/** What the fuzzer needs of a tokenizer. */
export interface FuzzTokenizer { encode(text: string): number[] }

export interface FuzzOptions {
  /** Schemas to try. */
  schemas: number;
  seed?: number;
  /** Valid instances per schema (default 3); every mutation kind is tried once on each. */
  validPerSchema?: number;
  gen?: GenOptions;
  /** The outside validator: a compiled check per schema. */
  validator: (schema: JsonSchema) => (v: unknown) => boolean;
  /** Called with every unsound acceptance, crash and (up to a few) valid rejections. */
  report?: (line: string) => void;
  /** Most valid rejections passed to `report` (default 10). */
  reportRejected?: number;
  /** Stop after this many milliseconds (the schemas tried so far are counted). */
  timeLimitMs?: number;
}

export interface FuzzStats {
  schemas: number;
  compiled: number;
  /** Schemas the compiler refused, by error class name. */
  refused: Record<string, number>;
  instances: number;
  /** Per instance kind ('valid' or a mutation): instances, validator-valid, engine-accepted. */
  byKind: Record<string, { n: number; valid: number; accepted: number; unsound: number; validRejected: number }>;
  /** Instances the engine accepts and the validator rejects. */
  unsound: number;
  /** Validator-valid instances the engine rejects. */
  validRejected: number;
  validTotal: number;
  /** Tokens where the mask and the automaton's step disagree (must be 0). */
  maskMismatch: number;
  /** Exceptions other than the compiler's documented refusals. */
  crashes: number;
  ms: number;
}

/** Feeds token ids through the masks of m: accepted when every token is allowed and the end is reachable. Counts mask/step disagreements into `mismatch`. */
export function engineAccepts(m: TokenMatcher, ids: readonly number[], mismatch: { n: number; fault?: number }): boolean {
  let s = m.initial;
  for (const [i, id] of ids.entries()) {
    const allowed = m.allows(s, id);
    const t = m.advance(s, id);
    if (allowed !== (t !== DEAD)) mismatch.n++;
    if (!allowed || t === DEAD) { mismatch.fault = i; return false; }
    s = t;
  }
  const acc = m.automaton.accepting(s);
  const eos = m.vocab.eosIds;
  if (eos.length && m.allows(s, eos[0]) !== acc) mismatch.n++;
  return acc;
}

/** Runs the property check; see the file's head. */
export function fuzzEngine(tok: FuzzTokenizer, vocab: TokenVocab, opts: FuzzOptions): FuzzStats {
  const r = new Rng(opts.seed ?? 1);
  const report = opts.report ?? (() => {});
  const st: FuzzStats = { schemas: 0, compiled: 0, refused: {}, instances: 0, byKind: {}, unsound: 0, validRejected: 0, validTotal: 0, maskMismatch: 0, crashes: 0, ms: 0 };
  const t0 = performance.now();
  let reportedRejects = 0;
  for (let i = 0; i < opts.schemas; i++) {
    if (opts.timeLimitMs !== undefined && performance.now() - t0 > opts.timeLimitMs) break;
    const schema = genSchema(r, opts.gen);
    st.schemas++;
    const sj = JSON.stringify(schema);
    let m: TokenMatcher;
    try {
      m = new TokenMatcher(new SchemaCompiler(schema).compile(), vocab);
    } catch (e) {
      if (e instanceof StructuredError) { st.refused[e.constructor.name] = (st.refused[e.constructor.name] ?? 0) + 1; continue; }
      st.crashes++; report(`crash compiling ${sj}: ${(e as Error).stack}`); continue;
    }
    st.compiled++;
    const check = opts.validator(schema);
    const cases: Array<[string, unknown]> = [];
    for (let k = 0; k < (opts.validPerSchema ?? 3); k++) {
      const v = genValid(r, schema);
      cases.push(['valid', v]);
      for (const kind of MUTATIONS) { const x = mutate(r, schema, v, kind); if (x !== null) cases.push([kind, x]); }
    }
    const seen = new Set<string>();
    for (const [kind, inst] of cases) {
      const text = JSON.stringify(inst);
      if (text === undefined || seen.has(text)) continue;
      seen.add(text);
      const valid = check(JSON.parse(text));
      let acc: boolean;
      const mm: { n: number; fault?: number } = { n: 0 };
      let ids: number[] = [];
      try { ids = tok.encode(text); acc = engineAccepts(m, ids, mm); } catch (e) {
        st.crashes++; report(`crash on ${text} with ${sj}: ${(e as Error).stack}`); continue;
      }
      if (mm.n) { st.maskMismatch += mm.n; report(`mask/step disagree on ${text} with ${sj}`); }
      st.instances++;
      const b = (st.byKind[kind] ??= { n: 0, valid: 0, accepted: 0, unsound: 0, validRejected: 0 });
      b.n++;
      if (valid) { b.valid++; st.validTotal++; }
      if (acc) b.accepted++;
      if (acc && !valid) { b.unsound++; st.unsound++; report(`UNSOUND (${kind}): engine accepts ${text} for ${sj}`); }
      if (!acc && valid) {
        b.validRejected++; st.validRejected++;
        if (reportedRejects++ < (opts.reportRejected ?? 10)) report(`valid rejected (${kind}): ${mm.fault === undefined ? `${text} (the end)` : `${JSON.stringify(m.vocab.text(ids.slice(0, mm.fault)))} ⟨${JSON.stringify(m.vocab.text([ids[mm.fault]]))}⟩`} for ${sj}`);
      }
    }
  }
  st.ms = performance.now() - t0;
  return st;
}

/** The figures of a run, as lines. */
export function fuzzSummary(st: FuzzStats): string[] {
  const pct = (a: number, b: number) => (b ? ((100 * a) / b).toFixed(1) : '–') + '%';
  const lines = [
    `schemas tried ${st.schemas}, compiled ${st.compiled} (${pct(st.compiled, st.schemas)})${Object.keys(st.refused).length ? `, refused: ${Object.entries(st.refused).map(([k, n]) => `${k} ${n}`).join(', ')}` : ''}`,
    `instances ${st.instances} (${st.validTotal} valid per the validator) in ${(st.ms / 1000).toFixed(1)} s`,
    `unsound acceptances (engine accepts, validator rejects): ${st.unsound}`,
    `valid instances rejected by the engine: ${st.validRejected} of ${st.validTotal} (${pct(st.validRejected, st.validTotal)}); accepted ${pct(st.validTotal - st.validRejected, st.validTotal)}`,
    `mask/step disagreements: ${st.maskMismatch}; crashes: ${st.crashes}`,
    'kind             instances  valid  accepted  unsound  valid-rejected',
  ];
  for (const [k, b] of Object.entries(st.byKind)) lines.push(`${k.padEnd(16)} ${String(b.n).padStart(9)} ${String(b.valid).padStart(6)} ${String(b.accepted).padStart(9)} ${String(b.unsound).padStart(8)} ${String(b.validRejected).padStart(15)}`);
  return lines;
}

export interface SampleStats {
  schemas: number; samples: number; complete: number; invalid: number; budget: number; crashes: number; ms: number;
  /** Complete outputs with a key twice in one object (JSON.parse keeps the last, so ajv cannot see it). */
  duplicateKeys: number;
}

/**
 * Whether JSON text has an object with the same key twice (the text is valid JSON, or the start of
 * valid JSON: a string left open ends the reading). Keys are compared as JSON.parse decodes them.
 */
export function hasDuplicateKeys(text: string): boolean {
  const stack: Array<Set<string> | null> = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{') { stack.push(new Set()); expectKey = true; }
    else if (c === '[') { stack.push(null); expectKey = false; }
    else if (c === '}' || c === ']') { stack.pop(); expectKey = false; }
    else if (c === ',') expectKey = stack.length > 0 && stack[stack.length - 1] !== null;
    else if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (j >= text.length) return false;
      if (expectKey) {
        const k = JSON.parse(text.slice(i, j + 1)) as string, keys = stack[stack.length - 1]!;
        if (keys.has(k)) return true;
        keys.add(k);
        expectKey = false;
      }
      i = j;
    }
  }
  return false;
}

/**
 * Constrained sampling from `model` (a randomly initialised one does: the masks do the work) for
 * random schemas that compile: every complete output must validate. Outputs the token budget cut
 * short are counted apart (`budget`: the processor closes the output when it can).
 */
export function fuzzSampling(model: CausalLM, tok: Tokenizer, opts: { schemas: number; seed?: number; seedsPerSchema?: number; maxNewTokens?: number; gen?: GenOptions;
  validator: (schema: JsonSchema) => (v: unknown) => boolean; report?: (line: string) => void; timeLimitMs?: number }): SampleStats {
  const r = new Rng(opts.seed ?? 7);
  const report = opts.report ?? (() => {});
  const st: SampleStats = { schemas: 0, samples: 0, complete: 0, invalid: 0, budget: 0, crashes: 0, ms: 0, duplicateKeys: 0 };
  const t0 = performance.now();
  while (st.schemas < opts.schemas) {
    if (opts.timeLimitMs !== undefined && performance.now() - t0 > opts.timeLimitMs) break;
    const schema = genSchema(r, opts.gen ?? { maxDepth: 2, maxProps: 6 });
    // As generation compiles it (declared properties only: a schema that needs an undeclared key is refused there).
    try { new SchemaCompiler(schema, { additionalProperties: 'declared' }).compile(); } catch (e) { if (e instanceof StructuredError) continue; throw e; }
    st.schemas++;
    const check = opts.validator(schema);
    for (let k = 0; k < (opts.seedsPerSchema ?? 2); k++) {
      st.samples++;
      let res;
      // Every other sample with extra keys where the schema allows them ('allow': objects without
      // additionalProperties get undeclared keys too), which no key may repeat.
      const extra = k % 2 === 1;
      try {
        res = generateStructured(model, tok, [1], { schema, temperature: 1, seed: r.int(1, 1 << 30), maxNewTokens: opts.maxNewTokens ?? 96, ...(extra ? { schemaOptions: { additionalProperties: 'allow' } } : {}) });
      } catch (e) {
        if (e instanceof StructuredError && e.name === 'TokenBudgetError') { st.budget++; continue; }
        if (extra && e instanceof StructuredError && e.name !== 'StructuredError') { st.samples--; continue; }
        st.crashes++; report(`crash sampling ${JSON.stringify(schema)}: ${(e as Error).stack}`); continue;
      }
      if (!res.complete) { st.budget++; continue; }
      st.complete++;
      let v: unknown, ok = false;
      try { v = JSON.parse(res.text); ok = check(v); } catch { ok = false; }
      if (!ok) { st.invalid++; report(`INVALID sample ${res.text} for ${JSON.stringify(schema)}`); }
      else if (hasDuplicateKeys(res.text)) { st.duplicateKeys++; report(`duplicate key in sample ${res.text} for ${JSON.stringify(schema)}`); }
    }
  }
  st.ms = performance.now() - t0;
  return st;
}
