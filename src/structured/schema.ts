// JSON Schema → grammar. Every validation keyword either shapes the grammar or raises
// UnsupportedKeywordError naming it and its JSON pointer. Words outside the JSON Schema vocabulary
// (misspellings, vendor words such as "enumNames") and unknown `format` values are annotations, as
// the specification says, and are ignored — unless `strict` is set, which refuses them. The grammar
// accepts only instances the schema accepts (sound, checked against ajv + ajv-formats); it may
// leave some valid instances out (e.g. when generating, properties come in the schema's order —
// checking, 'schema' mode, accepts any order), which the documentation of each construct below says.
import { GrammarBuilder, FREE_KEY_NODE, END } from './grammar.js';
import type { Grammar, Sym } from './grammar.js';
import { charsSym, regexSyms } from './regex.js';
import { ajvMultipleOf, boundN, digitsInRange, floatMultipleAlts, floatMultiples, multipleDfa, multipleOfPlan } from './multiple.js';
import type { MultiplePlan } from './multiple.js';
import { ComplexityError, InvalidSchemaError, RegexError, StructuredError, UnsatisfiableError, UnsupportedKeywordError } from './errors.js';
import { Dfa, regexDfa, intersect, union, minus, productGraph, productClass, lengthBounded, lazyLengthSyms, charsDfa, stringsDfa, emptyDfa, isEmpty, languageSyms, uniformChain, minimize, minusStrings, minusNames, DFA_MAX_STATES } from './dfa.js';
import { SeqInterner } from './intern.js';

export type JsonSchema = boolean | { [k: string]: unknown };

export interface SchemaOptions {
  /** 'compact' (no whitespace, the default) or 'flexible' (up to maxWhitespace of space/newline/tab between tokens). */
  whitespace?: 'compact' | 'flexible';
  /** Longest whitespace run in flexible mode (default 8: bounded, so a model cannot loop on whitespace). */
  maxWhitespace?: number;
  /**
   * 'schema' (default of the compiler and of `tslm schema check`): follow additionalProperties
   * (absent = allowed, JSON Schema's semantics). 'declared' (the default when generating, as
   * XGrammar's strict mode): an object without additionalProperties gets only its declared
   * properties; where the schema allows extra keys (additionalProperties true or a schema) they
   * are non-empty and none of the declared names. 'allow' (generating with extra keys, as JSON
   * Schema allows them): as 'schema', with the extra keys non-empty. 'forbid': never emit
   * undeclared properties. In every mode a declared property is emitted at most once, and extra
   * keys are never a declared name; in every mode but 'schema' the keys of extra properties and of
   * free-form objects are non-empty. The grammar lets an extra key repeat (a context-free grammar
   * cannot remember an unbounded set of keys): when generating, ConstraintProcessor's uniqueKeys
   * (keys.ts) takes the tokens that would repeat one out of each mask.
   */
  additionalProperties?: 'schema' | 'declared' | 'allow' | 'forbid';
  /** Allow one leading space (SentencePiece vocabularies begin words with "▁"); default true. */
  leadingSpace?: boolean;
  /** 'json' (default) or 'yaml': block-style YAML for the same schema. */
  output?: 'json' | 'yaml';
  /** Deepest schema nesting followed (default 200). */
  maxDepth?: number;
  /**
   * Refuse words outside the JSON Schema vocabulary (except "x-" extensions) and unknown `format`
   * values with an UnsupportedKeywordError naming the word and its JSON pointer (default false:
   * they are annotations and ignored, as the specification says).
   */
  strict?: boolean;
}

/**
 * Internal keyword (never in the schemas users write): values the instance must not equal — what
 * `not` of enum/const becomes. Strings, numbers, booleans and null are excluded exactly; an
 * excluded object or array that the rest of the schema allows is refused.
 */
export const NOT_IN = 'tslm:notIn';
/**
 * Internal keyword: { names, schema } — the object has a key outside `names` whose value matches
 * `schema` (what `not` of additionalProperties becomes: names = the properties it declares).
 */
export const EXTRA = 'tslm:extraKey';
/** Internal keyword: a number that is not an integer (the complement of type 'integer' among numbers). */
export const FRACTION = 'tslm:notInteger';
/** Internal keyword: more contains schemas (from other allOf branches), each with its own witness. */
export const CONTAINS_ALL = 'tslm:containsAll';
/** Internal keyword: patterns a string must not match (what `not` of pattern becomes; dfa.ts's difference). */
export const NOT_PATTERN = 'tslm:notPattern';
const ANNOTATIONS = new Set(['title', 'description', 'default', 'examples', 'example', '$comment', '$schema', '$id', 'id', 'readOnly', 'writeOnly', 'deprecated', 'discriminator', 'xml', 'externalDocs', '$defs', 'definitions',
  '$anchor', '$vocabulary', 'contentMediaType', 'contentEncoding', 'contentSchema']);
const SUPPORTED = new Set(['type', 'properties', 'required', 'additionalProperties', 'items', 'prefixItems', 'additionalItems', 'enum', 'const', 'anyOf', 'oneOf', 'allOf', '$ref',
  'minLength', 'maxLength', 'pattern', 'format', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'minItems', 'maxItems', 'nullable', 'uniqueItems', 'minProperties', 'multipleOf',
  'patternProperties', 'dependencies', 'dependentRequired', 'dependentSchemas', 'maxProperties', 'propertyNames', 'not', 'if', 'then', 'else', NOT_IN, NOT_PATTERN, EXTRA, FRACTION, CONTAINS_ALL, 'contains']);
const KNOWN_UNSUPPORTED = new Set(['unevaluatedProperties', 'unevaluatedItems', 'minContains', 'maxContains',
  '$dynamicRef', '$dynamicAnchor', '$recursiveRef', '$recursiveAnchor', 'disallow', 'extends', 'divisibleBy',
  // ajv-formats' keywords
  'formatMaximum', 'formatMinimum', 'formatExclusiveMaximum', 'formatExclusiveMinimum']);
/** Annotations, and words outside the vocabulary (which the specification says to ignore). */
const ignored = (k: string) => ANNOTATIONS.has(k) || !(SUPPORTED.has(k) || KNOWN_UNSUPPORTED.has(k));
const TYPES = ['null', 'boolean', 'object', 'array', 'number', 'string'] as const;
type JType = typeof TYPES[number] | 'integer';
/**
 * Most declared properties whose members are accepted in any order: at a key, each name is a parse
 * of its own, and the matcher allows 5,000 parallel parses (AutomatonLimits.maxStacks).
 */
const MAX_ANY_ORDER = 1000;
/** Most optional properties in a row (below the matcher's 5,000 parallel parses, with room for the rest of a state). */
const MAX_OPTIONAL_RUN = 4000;
/** Longest property name (characters) an object may declare or require. */
const MAX_NAME = 2048;
/**
 * The characters of keys matching no pattern of patternProperties, when written: printable ASCII
 * without '"' and '\\' — and every other character that needs no escape (DEL and non-ASCII)
 * where a pattern takes a character past ASCII, unless beside many declared names (see unmatchedKeyChars).
 */
const UNESCAPED_KEY_CHARS: Array<[number, number]> = [[0x20, 0x21], [0x23, 0x5b], [0x5d, 0x7e]];
const UNESCAPED_KEY_CHARS_WIDE: Array<[number, number]> = [[0x20, 0x21], [0x23, 0x5b], [0x5d, 0x10ffff]];
/**
 * The characters of keys matching none of the patterns (automata Ps): where a pattern's keys may
 * hold a character past ASCII, those keys may too, so that the two read every character but the
 * patterns' own ASCII ones alike. (Where a pattern's loop takes every character and the other
 * keys only ASCII, an ASCII letter leads into both and any other letter into one: a state that
 * no plain shape settles, walked through the whole vocabulary token by token.) Where every
 * pattern is ASCII, so are the other keys: they part at the same characters. Beside declared
 * names whose trie branches into many characters at a node (`branchy`: more than
 * NAMES_BRANCH_WIDE) they are ASCII too: the names' trie parts from them at its own letters, and
 * the lead bytes of multi-byte characters would be eight more byte classes at such a key
 * position, past the 31 a plain shape counts.
 */
function unmatchedKeyChars(Ps: Dfa[], branchy: boolean): Array<[number, number]> {
  return !branchy && Ps.some((d) => d.trans.some((es) => es.length > 0 && es[es.length - 1][1] >= 0x80)) ? UNESCAPED_KEY_CHARS_WIDE : UNESCAPED_KEY_CHARS;
}
/** Most characters declared names may branch into after one prefix, for unmatchedKeyChars. */
const NAMES_BRANCH_WIDE = 12;
/** The most distinct next characters after any common prefix of the names (the empty one included): the widest node of their trie. */
function namesBranch(names: string[]): number {
  type Node = Map<number, Node>;
  const root: Node = new Map();
  let most = 0;
  for (const n of names) {
    let at = root;
    for (const ch of n) {
      const c = ch.codePointAt(0)!;
      let kid = at.get(c);
      if (kid === undefined) { kid = new Map(); at.set(c, kid); if (at.size > most) most = at.size; }
      at = kid;
    }
  }
  return most;
}
/** Integers and integer parts have at most 15 digits (exact in a double). */
const LIM = 999_999_999_999_999;

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);
/**
 * A copy of x without the keys `drop`, as `{ ...x }` and then `delete` make it, but with V8's fast
 * properties: a delete turns the copy into a hash table (a third of normalize's allOf flattening,
 * and every later read of the part, merge and content key slower). An own `__proto__` key
 * (JSON.parse makes one) is copied as a key, as the spread copies it.
 */
function without(x: Obj, ...drop: string[]): Obj {
  const out: Obj = {};
  for (const k of Object.keys(x)) {
    if (drop.includes(k)) continue;
    if (k === '__proto__') Object.defineProperty(out, k, { value: x[k], enumerable: true, writable: true, configurable: true });
    else out[k] = x[k];
  }
  return out;
}
/** Whether `k` is x's only own key (what `without(x, k)` would leave empty). */
function onlyKey(x: Obj, k: string): boolean {
  const keys = Object.keys(x);
  return keys.length === 1 && keys[0] === k;
}
const esc = (k: string) => (k.includes('~') || k.includes('/') ? k.replace(/~/g, '~0').replace(/\//g, '~1') : k);
/**
 * A declared member of an object: its name's key (`"name":`), its value's symbol, and kv, the
 * member's symbols (key, value, white space), built when a rule needs them — the any-order member
 * rules are shared by name and value symbol (memberRule), so most objects never do (semgrep: 30,000
 * entries of 1,453 objects).
 */
class MemberEntry {
  private kvSyms: Sym[] | undefined;
  constructor(readonly name: string, readonly required: boolean, readonly schema: JsonSchema, readonly ptr: string, readonly key: Sym[], readonly value: Sym, private readonly ws: Sym[]) {}
  get kv(): Sym[] {
    if (this.kvSyms === undefined) {
      const kv = this.key.slice();
      kv.push(this.value);
      for (const w of this.ws) kv.push(w);
      this.kvSyms = kv;
    }
    return this.kvSyms;
  }
}

/** An undeclared key's characters (printable ASCII but '"' and '\\'), as a predicate and as keyTrie's 16 × 16 bits. */
const keyChar = (x: number) => x >= 0x20 && x < 0x7f && x !== 0x22 && x !== 0x5c;
const KEY_CHAR_BITS = new Uint16Array(16);
for (let x = 0; x < 256; x++) if (keyChar(x)) KEY_CHAR_BITS[x >>> 4] |= 1 << (x & 15);
const KEY_ENC = new TextEncoder();
/**
 * A name's bytes as keyTrie reads them, one character per byte: the UTF-8 of its JSON-escaped
 * text; the name itself where every character is a key character (nearly every name: printable
 * ASCII, which JSON writes as it is), without encoding or copying it.
 */
function keyBytes(n: string): string {
  for (let i = 0; i < n.length; i++) {
    if (keyChar(n.charCodeAt(i))) continue;
    let out = '';
    for (const x of KEY_ENC.encode(JSON.stringify(n).slice(1, -1))) out += String.fromCharCode(x);
    return out;
  }
  return n;
}
const jp = (ptr: string, ...keys: (string | number)[]) => { let out = ptr; for (const k of keys) out += '/' + esc(String(k)); return out; };
/** jp(ptr, kw, i) for a keyword kw (no '~' or '/' to escape) and an index: the allOf parts' pointers, built for every part flattened. */
const jpAt = (ptr: string, kw: string, i: number) => ptr + '/' + kw + '/' + i;

/** Compiles a JSON Schema to a grammar (JSON text, or YAML with output: 'yaml'). */
export function compileJsonSchema(schema: JsonSchema, opts: SchemaOptions = {}): Grammar {
  return new SchemaCompiler(schema, opts).compile();
}

export class SchemaCompiler {
  readonly b = new GrammarBuilder();
  private readonly refRules = new Map<string, number>();
  private readonly unsat: string[] = [];
  private depth = 0;
  /** negate's work so far (bounded: negations of recursive schemas could otherwise grow without end). */
  private negations = 0;
  /** The complement of each $ref target (one object each, so its grammar is built once: refSym's role for them). */
  private readonly negRefs = new Map<string, JsonSchema>();
  private readonly negRules = new WeakMap<object, Sym>();
  private readonly negRefObjs = new WeakSet<object>();
  /**
   * Compiled values by the schema's content (see keyOf): a sub-schema met again — a property
   * schema in each of a oneOf's branches, the branches' products with negations, items repeated
   * over definitions — is one rule instead of a grammar of its own each time (semgrep compiled
   * 43,000 values of 2,000 distinct contents). `height`: the nesting depth its compile reached
   * below the caller, so that a reuse deeper down still meets maxDepth as compiling it again would;
   * `unsat`: how many `never`s compiling it again would add (the message's count stays the same).
   */
  private readonly valueMemo = new Map<number, { sym: Sym; height: number; unsat: number }>();
  /**
   * Content keys of objects and arrays (by identity: the compiler never changes a schema object
   * once made). A Map emptied when compile() ends (a WeakMap's insertions were the most of keyOf's
   * time: circleciconfig keys 10,000 new objects a compile).
   */
  private readonly contentKeys = new Map<object, number>();
  /** keyOf's ids: K_* below, then strings', numbers', and objects' and arrays' (sequences of their members' ids). */
  private readonly contentIds = newContentIds();
  private readonly strKeys = new Map<string, number>();
  private readonly numKeys = new Map<number, number>();
  /** The deepest `depth` reached (for valueMemo's height). */
  private reach = 0;
  private unique = 0;
  /** `never`s added while compiling what a second compile finds done ($ref targets, cached rules): not repeated by one. */
  private hiddenUnsat = 0;
  private readonly ws: Sym[];
  private readonly yaml: boolean;

  constructor(readonly root: JsonSchema, readonly opts: SchemaOptions = {}) {
    const maxWs = opts.maxWhitespace ?? 8;
    this.ws = opts.whitespace === 'flexible' ? [this.b.rule('ws', [this.b.repeat('ws', [this.b.cls([0x20, 0x0a, 0x09])], 0, maxWs)])] : [];
    this.yaml = opts.output === 'yaml';
  }

  compile(): Grammar {
    const b = this.b;
    try {
      const v = this.yaml ? this.yamlValue(this.root, '#', 0) : this.value(this.root, '#');
      const lead = this.opts.leadingSpace === false ? [] : [b.opt('lead', [b.cls([0x20])])];
      const root = b.rule('root', [[...lead, ...this.ws, v, ...(this.yaml ? [b.opt('nl', b.lit('\n'))] : this.ws)]]);
      return b.build(root);
    } catch (e) {
      // Deep recursion the limits above did not foresee: a clear error, not a crash.
      if (e instanceof RangeError && /call stack/.test(e.message)) throw new ComplexityError('schema recursion', 'the call stack', 'the schema is too deeply nested or too large to compile');
      if (e instanceof UnsatisfiableError && this.unsat.length) throw new UnsatisfiableError(this.unsat[0].split(': ')[0], this.unsat[0].split(': ').slice(1).join(': ') + (this.unsat.length > 1 ? ` (and ${this.unsat.length - 1} more)` : ''));
      throw e;
    } finally {
      // The merges and complements kept for the compile (they hold schema objects strongly; the
      // grammar's lazy rules keep this compiler as long as a matcher lives).
      this.pairs.clear(); this.propMerges.clear(); this.propWraps.clear(); this.negated.clear(); this.contentKeys.clear(); this.checked.clear();
    }
  }

  private never(ptr: string, why: string): Sym {
    this.unsat.push(`${ptr || '#'}: ${why}`);
    return this.b.rule('never', []);
  }

  private lit(s: string): Sym[] { return this.b.lit(s); }

  // ---- schema structure -------------------------------------------------------------------

  private enter<T>(ptr: string, f: () => T): T {
    const max = this.opts.maxDepth ?? 200;
    if (++this.depth > max) throw new ComplexityError('schema nesting depth', max, `at ${ptr}`);
    if (this.depth > this.reach) this.reach = this.depth;
    try { return f(); } finally { this.depth--; }
  }

  /** Schema objects checkKeywords passed (an allOf part met again in each variant of an object is not read again). */
  private readonly checked = new Set<Obj>();

  private checkKeywords(s: Obj, ptr: string): void {
    if (this.checked.has(s)) return;
    this.checkKeywordsOf(s, ptr);
    this.checked.add(s);
  }

  private checkKeywordsOf(s: Obj, ptr: string): void {
    for (const k of Object.keys(s)) {
      if (ANNOTATIONS.has(k) || SUPPORTED.has(k)) continue;
      if (KNOWN_UNSUPPORTED.has(k)) throw new UnsupportedKeywordError(k, jp(ptr, k));
      // Words outside the vocabulary validate nothing (annotations, containers for $ref targets,
      // vendor words, misspellings): ignored, as the specification says, unless strict.
      if (this.opts.strict && !k.startsWith('x-')) {
        const near = [...SUPPORTED, ...KNOWN_UNSUPPORTED].find((w) => editDistance(w.toLowerCase(), k.toLowerCase()) <= (w.length > 5 ? 2 : 1));
        throw new UnsupportedKeywordError(k, jp(ptr, k), `unknown keyword (strict mode${near ? `; did you mean '${near}'?` : ''})`);
      }
    }
    if (s.format !== undefined && typeof s.format === 'string' && formatKind(s.format) === 'unknown' && this.opts.strict) {
      throw new UnsupportedKeywordError('format', jp(ptr, 'format'), `unknown format '${s.format}' (strict mode; known: ${[...Object.keys(FORMATS), ...NUMBER_FORMATS, ...ANY_FORMATS].join(', ')})`);
    }
  }

  /** resolve's targets by reference (the root is never changed: a reference met again resolves to the same schema). */
  private readonly resolved = new Map<string, { schema: JsonSchema; ptr: string }>();

  /** Resolves a local $ref ("#", "#/$defs/x", "#/definitions/x", any JSON pointer). */
  resolve(ref: unknown, ptr: string): { schema: JsonSchema; ptr: string } {
    if (typeof ref === 'string') {
      const known = this.resolved.get(ref);
      if (known !== undefined) return { schema: known.schema, ptr: known.ptr };
    }
    const t = this.resolveOnce(ref, ptr);
    this.resolved.set(ref as string, t);
    return { schema: t.schema, ptr: t.ptr };
  }

  private resolveOnce(ref: unknown, ptr: string): { schema: JsonSchema; ptr: string } {
    if (typeof ref !== 'string') throw new InvalidSchemaError('$ref', ptr, 'must be a string');
    if (!ref.startsWith('#')) throw new UnsupportedKeywordError('$ref', ptr, `remote reference '${ref}' (only local '#/…' references are supported)`);
    let frag: string;
    try { frag = decodeURIComponent(ref.slice(1)); } catch { throw new InvalidSchemaError('$ref', ptr, `bad percent-encoding in '${ref}'`); }
    if (frag !== '' && !frag.startsWith('/')) throw new UnsupportedKeywordError('$ref', ptr, `anchor reference '${ref}'`);
    let cur: unknown = this.root;
    for (const raw of frag === '' ? [] : frag.slice(1).split('/')) {
      const k = raw.replace(/~1/g, '/').replace(/~0/g, '~');
      if (Array.isArray(cur) && /^\d+$/.test(k)) cur = cur[Number(k)];
      else if (isObj(cur) && Object.prototype.hasOwnProperty.call(cur, k)) cur = cur[k];
      else throw new InvalidSchemaError('$ref', ptr, `'${ref}' does not resolve`);
    }
    if (typeof cur !== 'boolean' && !isObj(cur)) throw new InvalidSchemaError('$ref', ptr, `'${ref}' is not a schema`);
    return { schema: cur as JsonSchema, ptr: '#' + frag };
  }

  private refSym(ref: unknown, ptr: string, yamlIndent = -1): Sym {
    const key = `${ref}@${yamlIndent}`;
    const known = this.refRules.get(key);
    if (known !== undefined) return known;
    const t = this.resolve(ref, jp(ptr, '$ref'));
    const id = this.b.rule('ref');
    this.refRules.set(key, id);
    this.b.define(id, [[this.once(() => (yamlIndent < 0 ? this.value(t.schema, t.ptr) : this.yamlValue(t.schema, t.ptr, yamlIndent)))]]);
    return id;
  }

  private readonly memberKeys = new Map<string, Sym[]>();
  /** `"name":` with the whitespace around the colon (shared: not to be changed). */
  private memberKey(name: string): Sym[] {
    let k = this.memberKeys.get(name);
    if (k === undefined) { k = [...this.lit(JSON.stringify(name)), ...this.ws, ...this.lit(':'), ...this.ws]; this.memberKeys.set(name, k); }
    return k;
  }

  /** Runs what a later compile of the same schema finds done (a $ref target, a cached rule): its `never`s are not repeated then. */
  private once<T>(f: () => T): T {
    const u0 = this.unsat.length;
    try { return f(); } finally { this.hiddenUnsat += this.unsat.length - u0; }
  }

  /**
   * A key equal for schemas of equal content (JSON values, key order kept, -0, undefined and
   * non-finite numbers told apart): a number, one per distinct content — strings and numbers by
   * a map each, objects and arrays as the sequence of their members' keys, hash-consed (intern.ts),
   * so a key costs as much as its object's own members. (semgrep's 43,000 merged objects were 13%
   * of its compile in building and hashing text keys; joined text keys were still 15–19% of
   * semgrep's and circleciconfig's.)
   */
  private keyOf(x: unknown, depth = 0): number {
    const ids = this.contentIds;
    switch (typeof x) {
      case 'boolean': return x ? K_TRUE : K_FALSE;
      case 'string': {
        // Interned: the same string (a description copied into each merged object) is hashed once.
        let id = this.strKeys.get(x);
        if (id === undefined) { id = ids.fresh(); this.strKeys.set(x, id); }
        return id;
      }
      case 'number': {
        if (Object.is(x, -0)) return K_MINUS_ZERO;
        let id = this.numKeys.get(x);
        if (id === undefined) { id = ids.fresh(); this.numKeys.set(x, id); }
        return id;
      }
      case 'undefined': return K_UNDEFINED;
      case 'object': {
        if (x === null) return K_NULL;
        const known = this.contentKeys.get(x);
        if (known !== undefined) return known;
        // Deeper than any schema the compiler follows (maxDepth): a key of its own, equal to no other.
        if (depth > 256) { const id = ids.fresh(); this.contentKeys.set(x, id); return id; }
        const at = ids.mark();
        if (Array.isArray(x)) {
          ids.push(TAG_ARRAY);
          for (let i = 0; i < x.length; i++) ids.push(i in x ? this.keyOf(x[i], depth + 1) : TAG_HOLE);
        } else {
          ids.push(TAG_OBJECT);
          for (const k of Object.keys(x)) { ids.push(this.keyOf(k)); ids.push(this.keyOf((x as Obj)[k], depth + 1)); }
        }
        const id = ids.intern(at);
        this.contentKeys.set(x, id);
        return id;
      }
      // Not JSON (functions, symbols, bigints): never equal to another.
      default: return ids.fresh();
    }
  }

  /**
   * The schema reduced to one object without allOf/$ref-with-siblings where possible:
   * allOf branches are merged keyword by keyword (types intersected, properties merged,
   * bounds tightened, enums intersected); what cannot be merged raises an error naming it.
   */
  normalize(s: JsonSchema, ptr: string, inline = 0): JsonSchema {
    if (typeof s === 'boolean') return s;
    if (!isObj(s)) throw new InvalidSchemaError('(schema)', ptr, `must be an object or a boolean, got ${JSON.stringify(s)}`);
    this.checkKeywords(s, ptr);
    if (s.$ref !== undefined) {
      const siblings = Object.keys(s).filter((k) => k !== '$ref' && !ignored(k));
      if (siblings.length === 0) return s;
      if (inline > 16) throw new UnsupportedKeywordError('$ref', ptr, 'recursive reference combined with sibling keywords');
      const t = this.resolve(s.$ref, jp(ptr, '$ref'));
      const rest = without(s, '$ref');
      return this.normalize({ allOf: [t.schema, rest] }, ptr, inline + 1);
    }
    if (hasLogic(s)) return this.normalize(this.expandLogic(s, ptr), ptr, inline);
    if (s.allOf === undefined) return s;
    if (!Array.isArray(s.allOf) || s.allOf.length === 0) throw new InvalidSchemaError('allOf', ptr, 'must be a non-empty array');
    const parts: Obj[] = [];
    const rest = without(s, 'allOf');
    const add = (x: JsonSchema, p: string, depth: number): boolean => {
      if (depth > 16) throw new UnsupportedKeywordError('allOf', p, 'recursive reference inside allOf');
      if (x === true) return true;
      if (x === false) return false;
      if (!isObj(x)) throw new InvalidSchemaError('allOf', p, 'branches must be schemas');
      this.checkKeywords(x, p);
      if (x.$ref !== undefined) {
        const t = this.resolve(x.$ref, jp(p, '$ref'));
        if (!add(t.schema, t.ptr, depth + 1)) return false;
        return (onlyKey(x, '$ref') && depth < 16) || add(without(x, '$ref'), p, depth + 1);
      }
      if (hasLogic(x)) return add(this.expandLogic(x, p), p, depth + 1);
      if (x.allOf !== undefined) {
        if (!Array.isArray(x.allOf)) throw new InvalidSchemaError('allOf', p, 'must be an array');
        const list = x.allOf as JsonSchema[];
        for (let i = 0; i < list.length; i++) if (!add(list[i], jpAt(p, 'allOf', i), depth + 1)) return false;
        // The rest of a pair `both` made (of any `{ allOf: [...] }`) is empty: a part without keys
        // merges to nothing (only the depth bound, checked first, sees it).
        return (onlyKey(x, 'allOf') && depth < 16) || add(without(x, 'allOf'), p, depth + 1);
      }
      // A part without keys (an empty rest of expandLogic) changes no merge.
      if (Object.keys(x).length > 0) parts.push(x);
      return true;
    };
    if (!add(rest, ptr, 0)) return false;
    const list = s.allOf as JsonSchema[];
    for (let i = 0; i < list.length; i++) if (!add(list[i], jpAt(ptr, 'allOf', i), 0)) return false;
    return mergeSchemas(parts, ptr, this.merger);
  }

  /** `{ allOf: [x, y] }`, one object per pair (x and y by identity; see `both`). */
  private readonly pairs = new Map<unknown, Map<unknown, Obj>>();
  /**
   * `{ allOf: [x, y] }` for mergeSchemas, the same object for the same x and y: a property merged
   * again in each variant of an object (semgrep's rule object, ~1,500 variants of its if/then/else
   * branches) is the same schema object each time, so its content key (keyOf) is found by identity
   * instead of being built again for each variant, and it is allocated once.
   */
  private readonly both = (x: unknown, y: unknown): Obj => {
    let m = this.pairs.get(x);
    if (m === undefined) { m = new Map(); this.pairs.set(x, m); }
    let o = m.get(y);
    if (o === undefined) { o = { allOf: [x, y] }; m.set(y, o); }
    return o;
  };
  private readonly propMerges = new Map<unknown, Map<unknown, Obj>>();
  private readonly propWraps = new Map<unknown, Map<unknown, Map<unknown, Obj>>>();
  /**
   * What mergeSchemas builds of the parts' `properties`, each step a new object made once per
   * inputs (by identity), so that an object's variants merged from the same parts share their
   * `properties` (semgrep: 1,557 maps of 24 properties, keyed once each before): `props` adds
   * another part's properties (a name in both: the allOf of its two schemas), `wrap` puts every
   * property that `own` (a part's properties) does not declare under that part's additionalProperties.
   */
  private readonly merger: Merger = {
    both: this.both,
    props: (cur, v) => {
      let m = this.propMerges.get(cur);
      if (m === undefined) { m = new Map(); this.propMerges.set(cur, m); }
      let o = m.get(v);
      if (o === undefined) { o = mergeProps(cur, v, this.both); m.set(v, o); }
      return o;
    },
    wrap: (cur, own, ap) => {
      let m = this.propWraps.get(cur);
      if (m === undefined) { m = new Map(); this.propWraps.set(cur, m); }
      let m2 = m.get(own);
      if (m2 === undefined) { m2 = new Map(); m.set(own, m2); }
      let o = m2.get(ap);
      if (o === undefined) { o = wrapProps(cur, own, ap, this.both); m2.set(ap, o); }
      return o;
    },
    // A pair of anyOf branches, normalized to judge it; a pair this cannot normalize may match
    // (its error, if any, is met where the branch is compiled). Its negations count toward the
    // compile's bound as the branch's own do (no corpus schema is refused for it: grammar_pair).
    empty: (x) => {
      try { return surelyEmptyObject(this.normalize(x, '#')); } catch { return false; }
    },
  };

  /** `not` and `if`/`then`/`else` as allOf parts: the negation (see negate) and (if ∧ then) ∨ (¬if ∧ else). */
  private expandLogic(x: Obj, p: string): Obj {
    const rest = without(x, 'not', 'if', 'then', 'else');
    const parts: JsonSchema[] = [rest];
    if (x.not !== undefined) parts.push(this.negate(x.not as JsonSchema, jp(p, 'not')));
    if (x.if !== undefined && (x.then !== undefined || x.else !== undefined)) {
      const c = x.if as JsonSchema;
      if (typeof c !== 'boolean' && !isObj(c)) throw new InvalidSchemaError('if', jp(p, 'if'), 'must be a schema');
      // Without then: if ∨ else (no negation needed); otherwise (if ∧ then) ∨ (¬if ∧ else).
      if (x.then === undefined) parts.push({ anyOf: [c, x.else as JsonSchema] });
      else parts.push({ anyOf: [{ allOf: [c, x.then] }, { allOf: [this.negate(c, jp(p, 'if')), x.else ?? true] }] });
    }
    return { allOf: parts };
  }

  /**
   * A schema accepting exactly the instances `n` rejects, written in the keywords this compiler
   * compiles: ¬(k1 ∧ k2 ∧ …) = ¬k1 ∨ ¬k2 ∨ … (anyOf), each keyword's complement within the type
   * it applies to — the other types for `type`, flipped bounds, exclusions (NOT_IN) for enum/const,
   * a forbidden property for each required name, a present property whose value fails its schema
   * (a nested `not`, compiled when reached), allOf/anyOf/oneOf by De Morgan, $ref resolved.
   * Keywords whose complement it cannot express raise UnsupportedKeywordError('not', pointer).
   */
  negate(n: JsonSchema, ptr: string, depth = 0): JsonSchema {
    if (!isObj(n)) return this.negateNew(n, ptr, depth);
    // The complement of a schema object met again (a oneOf branch negated in each variant of an
    // object): the same object as the first time, with the negations a second computation would
    // count (its $ref targets' complements are then known); where those would pass the bound, it
    // is computed again, to fail where it would have.
    let m = this.negated.get(n);
    const hit = m?.get(depth);
    if (hit !== undefined && this.negations + hit.count <= 4000) { this.negations += hit.count; return hit.out; }
    const n0 = this.negations, k0 = this.negKnown;
    const out = this.negateNew(n, ptr, depth);
    if (m === undefined) { m = new Map(); this.negated.set(n, m); }
    m.set(depth, { out, count: this.negations - n0 - (this.negKnown - k0) });
    return out;
  }

  /** negate's results by schema object and depth, with the negations computing one again counts. */
  private readonly negated = new Map<object, Map<number, { out: JsonSchema; count: number }>>();
  /** Negations made so far inside complements of $ref targets now in negRefs (a second computation does not make them). */
  private negKnown = 0;

  private negateNew(n: JsonSchema, ptr: string, depth: number): JsonSchema {
    if (n === true) return false;
    if (n === false) return true;
    if (!isObj(n)) throw new InvalidSchemaError('not', ptr, `must be a schema, got ${JSON.stringify(n)}`);
    if (depth > 16) throw new UnsupportedKeywordError('not', ptr, 'recursive reference inside not');
    if (++this.negations > 4000) throw new ComplexityError('negations (not / oneOf / if)', 4000, `at ${ptr}`);
    this.checkKeywords(n, ptr);
    const out: JsonSchema[] = [];
    const no = (k: string, why = `the complement of '${k}'`): never => { throw new UnsupportedKeywordError('not', jp(ptr, k), why); };
    const list = (k: string): JsonSchema[] => {
      if (!Array.isArray(n[k]) || (n[k] as unknown[]).length === 0) throw new InvalidSchemaError(k, jp(ptr, k), 'must be a non-empty array');
      return n[k] as JsonSchema[];
    };
    const bound = (k: string): number => {
      if (typeof n[k] !== 'number' || !Number.isFinite(n[k])) throw new InvalidSchemaError(k, jp(ptr, k), 'must be a number');
      return n[k] as number;
    };
    for (const k of Object.keys(n)) {
      if (ignored(k)) continue;
      const v = n[k];
      switch (k) {
        case 'not': out.push(v as JsonSchema); break;
        case 'allOf': list(k).forEach((br, i) => out.push(this.negate(br, jp(ptr, k, i), depth + 1))); break;
        case 'anyOf': out.push({ allOf: list(k).map((br, i) => this.negate(br, jp(ptr, k, i), depth + 1)) }); break;
        case 'oneOf': {
          // None matches, or two do.
          const l = list(k);
          out.push({ allOf: l.map((br, i) => this.negate(br, jp(ptr, k, i), depth + 1)) });
          for (let i = 0; i < l.length; i++) for (let j = i + 1; j < l.length; j++) out.push({ allOf: [l[i], l[j]] });
          break;
        }
        case '$ref': {
          const t = this.resolve(v, jp(ptr, k));
          let x = this.negRefs.get(t.ptr);
          if (x === undefined) {
            const n0 = this.negations, k0 = this.negKnown;
            x = this.negateNew(t.schema, t.ptr, depth + 1);
            if (isObj(x)) { this.negRefs.set(t.ptr, x); this.negRefObjs.add(x); this.negKnown = k0 + (this.negations - n0); }
          }
          out.push(x);
          break;
        }
        case 'if': {
          if (n.then === undefined && n.else === undefined) break;
          // ¬((c ∧ t) ∨ (¬c ∧ e)) = (c ∧ ¬t) ∨ (¬c ∧ ¬e)
          const c = v as JsonSchema;
          if (n.then !== undefined) out.push({ allOf: [c, this.negate(n.then as JsonSchema, jp(ptr, 'then'), depth + 1)] });
          if (n.else !== undefined) out.push({ allOf: [this.negate(c, jp(ptr, 'if'), depth + 1), this.negate(n.else as JsonSchema, jp(ptr, 'else'), depth + 1)] });
          break;
        }
        case 'then': case 'else': case 'type': case 'nullable': break;
        case 'enum': if (!Array.isArray(v)) throw new InvalidSchemaError(k, jp(ptr, k), 'must be an array'); out.push({ [NOT_IN]: v }); break;
        case 'const': out.push({ [NOT_IN]: [v] }); break;
        case NOT_IN: out.push({ enum: v }); break;
        case 'minLength': case 'minItems': { const m = intKw(n, k, ptr)!; if (m > 0) out.push({ type: k === 'minLength' ? 'string' : 'array', [k === 'minLength' ? 'maxLength' : 'maxItems']: m - 1 }); break; }
        case 'maxLength': case 'maxItems': out.push({ type: k === 'maxLength' ? 'string' : 'array', [k === 'maxLength' ? 'minLength' : 'minItems']: intKw(n, k, ptr)! + 1 }); break;
        case 'minimum': out.push({ type: 'number', [n.exclusiveMinimum === true ? 'maximum' : 'exclusiveMaximum']: bound(k) }); break;
        case 'maximum': out.push({ type: 'number', [n.exclusiveMaximum === true ? 'minimum' : 'exclusiveMinimum']: bound(k) }); break;
        case 'exclusiveMinimum': if (typeof v !== 'boolean') out.push({ type: 'number', maximum: bound(k) }); break;
        case 'exclusiveMaximum': if (typeof v !== 'boolean') out.push({ type: 'number', minimum: bound(k) }); break;
        case 'pattern': if (typeof v !== 'string') throw new InvalidSchemaError(k, jp(ptr, k), 'must be a string'); out.push({ type: 'string', [NOT_PATTERN]: [v] }); break;
        case NOT_PATTERN: for (const x of v as string[]) out.push({ type: 'string', pattern: x }); break;
        case 'format': {
          const kind = typeof v === 'string' ? formatKind(v) : 'unknown';
          if (kind === 'string' || kind === 'refuse' || v === 'int32' || v === 'int64') no(k, `the values that are not a valid '${v}'`);
          break;
        }
        case 'uniqueItems': if (v === true) no(k); break;
        case 'items':
          if (Array.isArray(v)) {
            v.forEach((x, i) => { if (!trivial(x)) out.push({ type: 'array', minItems: i + 1, items: [...Array<JsonSchema>(i).fill(true), { not: x }] }); });
          } else if (!trivial(v)) out.push({ type: 'array', contains: { not: v } });
          break;
        case 'contains': out.push({ type: 'array', items: { not: v } }); break;
        case 'additionalItems':
          if (!Array.isArray(n.items) || trivial(v)) break;
          // false: more items than the tuple has; a schema: an item past the tuple that fails it (not compiled).
          if (v === false) out.push({ type: 'array', minItems: n.items.length + 1 });
          else no(k);
          break;
        case 'required': {
          if (!Array.isArray(v) || v.some((r) => typeof r !== 'string')) throw new InvalidSchemaError(k, jp(ptr, k), 'must be an array of strings');
          for (const r of v as string[]) out.push({ type: 'object', properties: { [r]: false } });
          break;
        }
        case 'properties':
          if (!isObj(v)) throw new InvalidSchemaError(k, jp(ptr, k), 'must be an object');
          for (const [name, x] of Object.entries(v)) if (!trivial(x)) out.push({ type: 'object', required: [name], properties: { [name]: { not: x } } });
          break;
        case 'additionalProperties':
          if (trivial(v)) break;
          if (isObj(n.patternProperties) && Object.keys(n.patternProperties).length) no('patternProperties');
          out.push({ type: 'object', [EXTRA]: { names: Object.keys(isObj(n.properties) ? n.properties : {}), schema: { not: v } } });
          break;
        case EXTRA: no(k, 'the complement of a required undeclared key');
        case CONTAINS_ALL: (v as JsonSchema[]).forEach((x) => out.push({ type: 'array', items: { not: x } })); break;
        case FRACTION: out.push({ type: ['null', 'boolean', 'object', 'array', 'string', 'integer'] }); break;
        case 'patternProperties': case 'dependencies': case 'dependentRequired': if (!(isObj(v) && Object.keys(v).length === 0)) no(k); break;
        default: no(k);
      }
    }
    if (n.type !== undefined) {
      const has = new Set(this.typesOf(n, ptr));
      const rest = TYPES.filter((t) => !has.has(t) && !(t === 'number' && has.has('integer')));
      if (has.has('integer') && !has.has('number')) out.push({ type: 'number', [FRACTION]: true });
      if (rest.length) out.push({ type: rest });
    }
    return out.length === 0 ? false : out.length === 1 ? out[0] : { anyOf: out };
  }

  // ---- JSON ---------------------------------------------------------------------------------

  value(s0: JsonSchema, ptr: string): Sym {
    if (isObj(s0) && this.negRules.has(s0)) return this.negRules.get(s0)!;
    const key = this.keyOf(s0);
    const hit = this.valueMemo.get(key);
    if (hit !== undefined && this.depth + hit.height <= (this.opts.maxDepth ?? 200)) {
      for (let i = 0; i < hit.unsat; i++) this.unsat.push(this.unsat[0]);
      if (this.depth + hit.height > this.reach) this.reach = this.depth + hit.height;
      return hit.sym;
    }
    const d0 = this.depth, r0 = this.reach, u0 = this.unsat.length, h0 = this.hiddenUnsat;
    this.reach = d0;
    let sym: Sym, height: number;
    try {
      if (isObj(s0) && this.negRefObjs.has(s0)) {
        sym = this.b.rule('not-ref');
        this.negRules.set(s0, sym);
        this.b.define(sym, [[this.once(() => this.valueOf(s0, ptr))]]);
      } else sym = this.valueOf(s0, ptr);
    } finally {
      height = this.reach - d0;
      if (r0 > this.reach) this.reach = r0;
    }
    if (hit === undefined) this.valueMemo.set(key, { sym, height, unsat: this.unsat.length - u0 - (this.hiddenUnsat - h0) });
    return sym;
  }

  private valueOf(s0: JsonSchema, ptr: string): Sym {
    return this.enter(ptr, () => {
      const s = this.normalize(s0, ptr);
      const b = this.b;
      if (s === true) return this.anyValue();
      if (s === false) return this.never(ptr, 'schema is false');
      if (s.$ref !== undefined) return this.refSym(s.$ref, ptr);
      const alts = this.combinators(s, ptr, (br, p) => this.value(br, p));
      if (alts !== null) return alts;
      if (s.enum !== undefined || s.const !== undefined) return this.enumSym(s, ptr, (v) => b.lit(JSON.stringify(v)));
      const types = this.typesOf(s, ptr);
      const out: Sym[][] = [];
      for (const t of types) {
        switch (t) {
          case 'null': if (!excludes(s, null)) out.push(this.lit('null')); break;
          case 'boolean': for (const x of [true, false]) if (!excludes(s, x)) out.push(this.lit(String(x))); break;
          case 'string': out.push([this.stringSym(s, ptr)]); break;
          case 'number': case 'integer': out.push([this.numberSym(s, ptr, t === 'integer')]); break;
          case 'object': this.containerExclusions(s, ptr, t); out.push([this.objectSym(s, ptr)]); break;
          case 'array': this.containerExclusions(s, ptr, t); out.push([this.arraySym(s, ptr)]); break;
        }
      }
      if (out.length === 0) return this.never(ptr, 'no type is allowed');
      return b.alt('value', out);
    });
  }

  /**
   * anyOf / oneOf (sibling keywords, an anyOf beside a oneOf included, distributed into each
   * branch); null when absent. oneOf: where two branches are not provably disjoint, branch i is
   * compiled as allOf(branch i, ¬branch j) (see negate), so exactly one matches.
   */
  private combinators(s: Obj, ptr: string, compile: (br: JsonSchema, p: string) => Sym): Sym | null {
    if (s.anyOf === undefined && s.oneOf === undefined) return null;
    const kw = s.oneOf !== undefined ? 'oneOf' : 'anyOf';
    const list = s[kw];
    if (!Array.isArray(list) || list.length === 0) throw new InvalidSchemaError(kw, ptr, 'must be a non-empty array');
    const rest = without(s, kw);
    const hasRest = Object.keys(rest).some((k) => !ignored(k));
    let branches = (list as JsonSchema[]).map((br, i) => {
      const p = jpAt(ptr, kw, i);
      return { p, schema: hasRest ? this.normalize({ allOf: [rest, br] }, p) : this.normalize(br, p) };
    });
    // anyOf branches that surely match nothing are left out (the product of if/then pairs that
    // exclude each other, as `at most one of these keys` is written: 57 of prometheus' 64 branches
    // at each of its six places require a property to be null and not null).
    if (kw === 'anyOf') {
      const live = branches.filter(({ schema }) => !surelyEmptyObject(schema));
      if (live.length === 0) return this.never(ptr, 'no anyOf branch can match');
      branches = live;
    }
    // Branches that only list values (const / enum): one enum, compiled as one trie of the values
    // (thousands of alternatives of one literal each are thousands of parallel parses). oneOf
    // keeps the values exactly one branch lists.
    const lists = branches.map(({ schema }) => listedValues(schema));
    if (lists.every((l) => l !== null)) {
      const count = new Map<string, number>(), values: unknown[] = [];
      for (const l of lists as unknown[][]) {
        for (const k of new Set(l.map(canonicalJson))) count.set(k, (count.get(k) ?? 0) + 1);
      }
      const seen = new Set<string>();
      for (const v of (lists as unknown[][]).flat()) {
        const k = canonicalJson(v);
        if (seen.has(k) || (kw === 'oneOf' && count.get(k) !== 1)) continue;
        seen.add(k);
        values.push(v);
      }
      if (values.length === 0) return this.never(ptr, `no value is listed by exactly one ${kw} branch`);
      return compile({ enum: values }, ptr);
    }
    if (kw === 'oneOf') {
      const overlaps = branches.map(() => [] as number[]);
      // Branches listing their values (const / enum) overlap only where they share one, and so do
      // branches requiring a property that lists its values (a discriminator: the one most
      // branches have): those pairs are found through a map of the values, not by trying every
      // pair (a oneOf of 30,000 consts was 450 million checks). Every other pair is checked.
      const discriminant = (schema: JsonSchema, name: string): unknown[] | null => {
        if (typeof schema !== 'object' || schema.$ref !== undefined || !Array.isArray(schema.required) || !schema.required.includes(name)) return null;
        const ps = schema.properties as Obj | undefined, p = ps?.[name];
        return isObj(p) && p.$ref === undefined ? enumValues(p) : null;
      };
      const votes = new Map<string, number>();
      for (const { schema } of branches) {
        if (typeof schema !== 'object' || !Array.isArray(schema.required)) continue;
        for (const k of new Set(schema.required as string[])) if (typeof k === 'string' && discriminant(schema, k)) votes.set(k, (votes.get(k) ?? 0) + 1);
      }
      let prop: string | null = null;
      for (const [k, n] of votes) if (n >= 2 && (prop === null || n > votes.get(prop)!)) prop = k;
      const keyed = branches.map(({ schema }) => {
        if (typeof schema !== 'object' || schema.$ref !== undefined) return null;
        const own = enumValues(schema);
        if (own) return { space: '=', vals: own };
        const d = prop === null ? null : discriminant(schema, prop);
        return d ? { space: `.${prop}`, vals: d } : null;
      });
      const byValue = new Map<string, number[]>();
      const sharing = branches.map(() => new Set<number>());
      for (let i = 0; i < branches.length; i++) {
        for (const v of keyed[i]?.vals ?? []) {
          const k = `${keyed[i]!.space}\0${canonicalJson(v)}`;
          const seen = byValue.get(k);
          if (seen === undefined) { byValue.set(k, [i]); continue; }
          for (const j of seen) if (j !== i) { sharing[i].add(j); sharing[j].add(i); }
          if (seen[seen.length - 1] !== i) seen.push(i);
        }
      }
      // Per space, the branches outside it (a pair across spaces is checked).
      const outside = new Map<string, number[]>();
      for (const space of new Set(keyed.map((k) => k?.space).filter((x): x is string => x !== undefined))) {
        outside.set(space, branches.map((_, i) => i).filter((i) => keyed[i]?.space !== space));
      }
      for (let i = 0; i < branches.length; i++) {
        const k = keyed[i];
        const others = k === null ? branches.keys() : [...sharing[i], ...outside.get(k.space)!].sort((x, y) => x - y);
        for (const j of others) {
          if (j > i && !this.disjoint(branches[i].schema, branches[j].schema)) { overlaps[i].push(j); overlaps[j].push(i); }
        }
      }
      const negs = new Map<number, JsonSchema>();
      const neg = (j: number, i: number): JsonSchema => {
        let x = negs.get(j);
        if (x === undefined) {
          try { x = this.negate((list as JsonSchema[])[j], jp(ptr, kw, j)); } catch (e) {
            if (!(e instanceof UnsupportedKeywordError)) throw e;
            throw new UnsupportedKeywordError('oneOf', ptr, `branches ${i} and ${j} may both match an instance, and exactly-one needs the complement of branch ${j}, which is not supported (${e.message})`);
          }
          negs.set(j, x);
        }
        return x;
      };
      for (const [i, br] of branches.entries()) {
        if (overlaps[i].length === 0) continue;
        const parts = [br.schema, ...overlaps[i].map((j) => neg(j, i))];
        br.schema = this.normalize({ allOf: parts }, br.p);
      }
      // A complement that fails only when compiled (in its context) is named as the oneOf's.
      return this.b.alt(kw, branches.map(({ schema, p }, i) => {
        try { return [compile(schema, p)]; } catch (e) {
          if (!(e instanceof UnsupportedKeywordError) || e.keyword !== 'not' || overlaps[i].length === 0) throw e;
          throw new UnsupportedKeywordError('oneOf', ptr, `branches ${i} and ${overlaps[i].join('/')} may both match an instance, and exactly-one needs a complement that is not supported (${e.message})`);
        }
      }));
    }
    return this.b.alt(kw, branches.map(({ schema, p }) => [compile(schema, p)]));
  }

  /** Provably no instance matches both (by type, by enum/const, or by a required const/enum property). */
  private disjoint(a: JsonSchema, b: JsonSchema): boolean {
    if (a === false || b === false) return true;
    if (a === true || b === true) return false;
    if (a.$ref !== undefined) return this.disjoint(this.normalize(this.resolve(a.$ref, '#').schema, '#'), b);
    if (b.$ref !== undefined) return this.disjoint(a, this.normalize(this.resolve(b.$ref, '#').schema, '#'));
    const ta = this.possibleTypes(a), tb = this.possibleTypes(b);
    if (![...ta].some((t) => tb.has(t) || (t === 'integer' && tb.has('number')) || (t === 'number' && tb.has('integer')))) return true;
    const va = enumValues(a), vb = enumValues(b);
    if (va && vb && !va.some((x) => vb.some((y) => deepEqual(x, y)))) return true;
    if (va && !va.some((x) => this.mayMatch(x, b))) return true;
    if (vb && !vb.some((x) => this.mayMatch(x, a))) return true;
    const pa = a.properties as Obj | undefined, pb = b.properties as Obj | undefined;
    const ra = (a.required as string[] | undefined) ?? [], rb = (b.required as string[] | undefined) ?? [];
    if (pa && pb) {
      for (const k of ra) {
        if (!rb.includes(k)) continue;
        const ea = isObj(pa[k]) ? enumValues(pa[k] as Obj) : null, eb = isObj(pb[k]) ? enumValues(pb[k] as Obj) : null;
        if (ea && eb && !ea.some((x) => eb.some((y) => deepEqual(x, y)))) return true;
      }
    }
    return false;
  }

  private mayMatch(v: unknown, s: Obj): boolean {
    try { return validate(v, s, this); } catch { return true; }
  }

  private possibleTypes(s: Obj): Set<JType> {
    const ev = enumValues(s);
    if (ev) return new Set(ev.map(jsonType));
    if (s.type === undefined) return new Set([...TYPES, 'integer']);
    const t = Array.isArray(s.type) ? s.type : [s.type];
    const out = new Set<JType>(t as JType[]);
    if (s.nullable === true) out.add('null');
    return out;
  }

  private typesOf(s: Obj, ptr: string): JType[] {
    let types: JType[];
    if (s.type === undefined) types = [...TYPES];
    else {
      const t = Array.isArray(s.type) ? s.type : [s.type];
      for (const x of t) if (!(TYPES as readonly string[]).includes(x as string) && x !== 'integer') throw new InvalidSchemaError('type', jp(ptr, 'type'), `unknown type ${JSON.stringify(x)}`);
      types = [...new Set(t as JType[])];
      if (types.includes('number')) types = types.filter((x) => x !== 'integer');
    }
    if (s.nullable === true && !types.includes('null')) types.push('null');
    else if (s.nullable !== undefined && typeof s.nullable !== 'boolean') throw new InvalidSchemaError('nullable', jp(ptr, 'nullable'), 'must be a boolean');
    return types;
  }

  private enumSym(s: Obj, ptr: string, render: (v: unknown) => Sym[]): Sym {
    let values: unknown[];
    if (s.const !== undefined) values = [s.const];
    else {
      if (!Array.isArray(s.enum)) throw new InvalidSchemaError('enum', jp(ptr, 'enum'), 'must be an array');
      values = s.enum;
    }
    if (s.const !== undefined && s.enum !== undefined) values = values.filter((v) => (s.enum as unknown[]).some((e) => deepEqual(e, v)));
    const rest = without(s, 'enum', 'const');
    const ok = values.filter((v) => validate(v, rest, this, ptr));
    if (ok.length === 0) return this.never(ptr, 'no enum/const value satisfies the other keywords');
    return this.b.trie('enum', ok.map(render));
  }

  /** Excluded objects/arrays (NOT_IN) that the rest of the schema may allow: refused (their complement is not compiled). */
  private containerExclusions(s: Obj, ptr: string, t: 'object' | 'array'): void {
    const rest = without(s, NOT_IN);
    for (const v of (s[NOT_IN] ?? []) as unknown[]) {
      if (jsonType(v) !== t) continue;
      let may = true;
      try { may = validate(v, rest, this, ptr); } catch { /* undecided: may match */ }
      if (may) throw new UnsupportedKeywordError('not', ptr, `excluding the ${t} value ${JSON.stringify(v).slice(0, 60)}`);
    }
  }

  /**
   * A JSON string (quotes included) of minL..maxL characters that is none of `ex`: the complement
   * of their trie over code points. Characters are written as JSON.stringify writes them (one
   * spelling each, so no excluded value gets through as another spelling); other escapes are left out.
   */
  private stringExcluding(ex: string[], minL: number, maxL: number): Sym {
    const b = this.b;
    type Node = { end: boolean; kids: Map<number, Node> };
    const trie: Node = { end: false, kids: new Map() };
    for (const x of ex) {
      let cur = trie;
      for (const ch of x) {
        const cp = ch.codePointAt(0)!;
        let nx = cur.kids.get(cp);
        if (!nx) { nx = { end: false, kids: new Map() }; cur.kids.set(cp, nx); }
        cur = nx;
      }
      cur.end = true;
    }
    const quote = b.cls([0x22]);
    const charNot = (cps: number[]): Sym => {
      const out: Array<[number, number]> = [];
      let lo = 0;
      for (const c of [...cps].sort((x, y) => x - y)) { if (c > lo) out.push([lo, c - 1]); lo = Math.max(lo, c + 1); }
      if (lo <= 0x10ffff) out.push([lo, 0x10ffff]);
      return charsSym(b, out, 'json');
    };
    const free = (d: number): Sym => b.cached(`xstr-free:${minL}:${maxL}:${d}`, () => b.seq('xstr-free', [...b.repeat('chars', [charNot([])], Math.max(0, minL - d), maxL - d), quote]));
    const node = (n: Node, d: number): Sym => {
      const alts: Sym[][] = [];
      if (!n.end && d >= minL) alts.push([quote]);
      if (d < maxL) {
        alts.push([charNot([...n.kids.keys()]), free(d + 1)]);
        for (const [cp, kid] of n.kids) alts.push([charsSym(b, [[cp, cp]], 'json'), node(kid, d + 1)]);
      }
      return b.rule('xstr', alts);
    };
    return b.seq('string', [quote, node(trie, 0)]);
  }

  private anyValue(): Sym {
    return this.b.cached('any', () => {
      const b = this.b, ws = this.ws;
      const value = b.rule('any-value');
      const str = this.plainString(0, Infinity);
      // When generating (every mode but 'schema'), keys of free-form objects are non-empty.
      const key = (this.opts.additionalProperties ?? 'schema') === 'schema' ? str : this.plainString(1, Infinity);
      const member = b.rule('any-member', [[key, ...ws, ...this.lit(':'), ...ws, value, ...ws]]);
      const more = b.rule('any-members');
      b.define(more, [[...this.lit(','), ...ws, member, more], []]);
      const obj = b.rule('any-object', [[...this.lit('{'), ...ws, b.opt('any-m', [member, more]), ...this.lit('}')]]);
      const elem = b.rule('any-elem', [[value, ...ws]]);
      const moreE = b.rule('any-elems');
      b.define(moreE, [[...this.lit(','), ...ws, elem, moreE], []]);
      const arr = b.rule('any-array', [[...this.lit('['), ...ws, b.opt('any-e', [elem, moreE]), ...this.lit(']')]]);
      b.define(value, [[obj], [arr], [str], [this.numberSym({}, '#', false)], this.lit('true'), this.lit('false'), this.lit('null')]);
      return value;
    });
  }

  /** One JSON string character (as JSON.stringify writes it, plus the other valid escapes), counted as one code point. */
  private jsonChar(): Sym {
    return this.b.cached('jsonchar', () => {
      const b = this.b;
      const hex = b.cls((x) => (x >= 0x30 && x <= 0x39) || (x >= 0x41 && x <= 0x46) || (x >= 0x61 && x <= 0x66));
      const hexNoD = b.cls((x) => (x >= 0x30 && x <= 0x39) || (x >= 0x41 && x <= 0x46 && x !== 0x44) || (x >= 0x61 && x <= 0x66 && x !== 0x64));
      const d07 = b.cls((x) => x >= 0x30 && x <= 0x37);
      // \uXXXX escapes other than surrogates (a lone surrogate would change the code point count).
      const u = b.alt('uesc', [[hexNoD, hex, hex, hex], [b.cls([0x44, 0x64]), d07, hex, hex]]);
      const escp = b.alt('esc', [[b.cls([...'"\\/bfnrt'].map((c) => c.charCodeAt(0)))], [b.cls([0x75]), u]]);
      return b.alt('char', [[charsSym(b, [[0x20, 0x21], [0x23, 0x5b], [0x5d, 0x10ffff]], 'raw')], [b.cls([0x5c]), escp]]);
    });
  }

  private plainString(min: number, max: number): Sym {
    return this.b.cached(`str:${min}:${max}`, () => this.b.seq('string', [...this.lit('"'), ...this.b.repeat('chars', [this.jsonChar()], min, max), ...this.lit('"')]));
  }

  private stringSym(s: Obj, ptr: string): Sym {
    const minL = intKw(s, 'minLength', ptr) ?? 0, maxL = intKw(s, 'maxLength', ptr) ?? Infinity;
    if (minL > maxL) return this.never(ptr, `minLength ${minL} > maxLength ${maxL}`);
    const b = this.b;
    if (s.format !== undefined && typeof s.format !== 'string') throw new InvalidSchemaError('format', jp(ptr, 'format'), 'must be a string');
    const fmt = s.format as string | undefined;
    const kind = fmt === undefined ? null : formatKind(fmt);
    if (kind === 'refuse') throw new UnsupportedKeywordError('format', jp(ptr, 'format'), `format '${fmt}' (ajv-formats checks it; this compiler supports ${Object.keys(FORMATS).join(', ')})`);
    // Formats of numbers (int32, …), always-valid ones (password, binary) and unknown ones do not constrain strings.
    const strFormat = kind === 'string' ? fmt : undefined;
    for (const k of ['pattern', 'format'] as const) {
      if (s[k] === undefined || (k === 'format' && strFormat === undefined)) continue;
      if (typeof s[k] !== 'string') throw new InvalidSchemaError(k, jp(ptr, k), 'must be a string');
    }
    // Excluded values (not enum/const) that the rest allows.
    const ex = ((s[NOT_IN] ?? []) as unknown[]).filter((v): v is string => {
      if (typeof v !== 'string') return false;
      const n = [...v].length;
      if (n < minL || n > maxL) return false;
      try { return validate(v, { pattern: s.pattern, format: strFormat }, this, ptr); } catch { return true; }
    });
    if (ex.length && (s.pattern !== undefined || strFormat !== undefined || s[NOT_PATTERN] !== undefined)) {
      // The language of pattern / format / lengths (a DFA over code points) minus the excluded strings.
      let d: Dfa;
      try { d = minusStrings(this.stringLanguage(s, ptr)!, new Set(ex), { what: 'the values not excluded' }); } catch (e) {
        if (e instanceof ComplexityError) throw new UnsupportedKeywordError('not', ptr, `excluding values from strings with '${s.pattern !== undefined ? 'pattern' : 'format'}': ${e.message}`);
        throw e;
      }
      if (isEmpty(d)) return this.never(ptr, 'every string the pattern / format allows is excluded');
      return this.dfaString(d);
    }
    if (ex.length) return this.stringExcluding([...new Set(ex)], minL, maxL);
    // Two or more of pattern, format and a length bound: the intersection of their languages (a DFA).
    const lengthBound = minL > 0 || maxL < Infinity;
    if (s[NOT_PATTERN] !== undefined) {
      // Patterns excluded by not: the language of the rest minus theirs (a DFA).
      const d = this.stringLanguage(s, ptr)!;
      if (isEmpty(d)) return this.never(ptr, 'no string satisfies the patterns excluded by not');
      return this.dfaString(d);
    }
    if (+(s.pattern !== undefined) + +(strFormat !== undefined) + +lengthBound >= 2) {
      // A language C^{lo..hi} of one class (a pattern such as ^[a-z0-9_]+$) bounded in length is a
      // bounded repetition, with no counter product: the JSON string rules where C is every code point.
      const base = this.stringLanguage({ pattern: s.pattern, format: strFormat }, ptr);
      const u = base ? uniformChain(base) : null;
      if (u) {
        const lo = Math.max(u.lo, minL), hi = Math.min(u.hi, maxL);
        if (lo > hi) return this.never(ptr, `no string satisfies ${['pattern', 'format', 'minLength', 'maxLength'].filter((k) => s[k] !== undefined).join(' + ')}`);
        if (u.chars.length === 1 && u.chars[0][0] === 0 && u.chars[0][1] === 0x10ffff) return this.plainString(lo, hi);
        return b.seq('string', [...this.lit('"'), ...(u.chars.length ? b.repeat('chars', [charsSym(b, u.chars, 'json')], lo, hi) : []), ...this.lit('"')]);
      }
      const key = JSON.stringify([s.pattern, strFormat, minL, maxL]);
      if (base && lengthBound) {
        // A large product of the pattern / format's automaton with the length counter: its rules
        // built while matching (the same language as the product's, see lazyLengthSyms).
        const lazy = b.cached(`strlazy:${key}`, () => lazyLengthSyms(b, base, minL, loweredMax(base, minL, maxL), 'json') ?? END);
        if (lazy !== END) return b.cached(`strlazy-q:${key}`, () => b.seq('string', [...this.lit('"'), lazy, ...this.lit('"')]));
      }
      const d = this.stringLanguage(s, ptr)!;
      if (isEmpty(d)) return this.never(ptr, `no string satisfies ${['pattern', 'format', 'minLength', 'maxLength'].filter((k) => s[k] !== undefined).join(' + ')}`);
      return b.cached(`strdfa:${key}`, () => this.dfaString(d));
    }
    let body: Sym[];
    if (s.pattern !== undefined) {
      try { body = regexSyms(b, s.pattern as string, 'json', true); }
      catch (e) { if (e instanceof RegexError) throw new UnsupportedKeywordError('pattern', jp(ptr, 'pattern'), e.message); throw e; }
    } else if (strFormat !== undefined) {
      const re = FORMATS[strFormat];
      body = [b.cached(`fmt:${strFormat}`, () => b.seq(`fmt-${strFormat}`, regexSyms(b, re, 'json', false)))];
    } else return this.plainString(minL, maxL);
    return b.seq('string', [...this.lit('"'), ...body, ...this.lit('"')]);
  }

  /** A JSON string whose contents are the automaton's language. */
  private dfaString(d: Dfa): Sym {
    return this.b.seq('string', [...this.lit('"'), ...languageSyms(this.b, d, 'json'), ...this.lit('"')]);
  }

  private readonly dfaCache = new Map<string, Dfa | Error>();

  /**
   * The strings that a schema's string keywords allow (pattern, a string format, minLength,
   * maxLength), as a DFA over code points; null where none of them constrains strings. For the
   * string languages of other keywords (propertyNames, the keys of patternProperties; `not`
   * of a pattern is the complement: dfa.ts's complement). Raises UnsupportedKeywordError naming
   * the keyword where a regex cannot be parsed or the automaton grows past its bound.
   */
  stringLanguage(s: Obj, ptr: string): Dfa | null {
    const minL = intKw(s, 'minLength', ptr) ?? 0, maxL = intKw(s, 'maxLength', ptr) ?? Infinity;
    const fmt = typeof s.format === 'string' ? s.format : undefined;
    const kind = fmt === undefined ? null : formatKind(fmt);
    if (kind === 'refuse') throw new UnsupportedKeywordError('format', jp(ptr, 'format'), `format '${fmt}' (ajv-formats checks it; this compiler supports ${Object.keys(FORMATS).join(', ')})`);
    const strFormat = kind === 'string' ? fmt : undefined;
    if (s.pattern !== undefined && typeof s.pattern !== 'string') throw new InvalidSchemaError('pattern', jp(ptr, 'pattern'), 'must be a string');
    const pattern = s.pattern as string | undefined;
    const notPatterns = (s[NOT_PATTERN] ?? []) as string[];
    if (pattern === undefined && strFormat === undefined && minL === 0 && maxL === Infinity && notPatterns.length === 0) return null;
    const key = JSON.stringify([pattern, strFormat, minL, maxL, notPatterns]);
    const known = this.dfaCache.get(key);
    if (known instanceof Error) throw known;
    if (known) return known;
    const what = ['pattern', 'format', 'minLength', 'maxLength'].filter((k) => s[k] !== undefined);
    let d: Dfa | null = null;
    try {
      if (pattern !== undefined) {
        try { d = regexDfa(pattern, true, { tails: this.regexTails }); }
        catch (e) { if (e instanceof RegexError) throw new UnsupportedKeywordError('pattern', jp(ptr, 'pattern'), e.message); throw e; }
      }
      if (strFormat !== undefined) { const f = formatDfa(strFormat); d = d ? intersect(d, f, { what: `pattern and format '${strFormat}'` }) : f; }
      if (minL > 0 || maxL < Infinity) d = d ? boundedLanguage(d, minL, maxL, what.join(' + ')) : charsDfa(undefined, minL, maxL);
      for (const np of notPatterns) {
        let x: Dfa;
        try { x = regexDfa(np, true); } catch (e) { if (e instanceof RegexError) throw new UnsupportedKeywordError('not', jp(ptr, 'not', 'pattern'), e.message); throw e; }
        try { d = minus(d ?? charsDfa(), x, { what: `the strings outside /${np}/` }); } catch (e) {
          if (e instanceof ComplexityError) throw new UnsupportedKeywordError('not', jp(ptr, 'not', 'pattern'), e.message);
          throw e;
        }
      }
    } catch (e) {
      if (!(e instanceof ComplexityError)) throw e;
      const err = new UnsupportedKeywordError(what.find((k) => k !== 'pattern' && k !== 'format') ?? 'format', ptr, `together with ${what.filter((k) => k === 'pattern' || k === 'format').map((k) => `'${k}'`).join(' and ')}: ${e.message}`);
      this.dfaCache.set(key, err);
      throw err;
    }
    this.dfaCache.set(key, d!);
    return d;
  }

  private numberSym(s: Obj, ptr: string, integer: boolean): Sym {
    const b = this.b;
    if (s[FRACTION] === true && s[NOT_IN] === undefined) {
      if (integer || s.format === 'int32' || s.format === 'int64') return this.never(ptr, 'an integer that is not an integer');
      // The fractions below know no divisor: the multiples of an integer are integers, and the
      // non-integer multiples of any other divisor are not written (refused, not loosened).
      if (s.multipleOf !== undefined) {
        const m = multipleOfKw(s, ptr);
        if (Number.isInteger(m)) return this.never(ptr, `a multiple of ${m} that is not an integer`);
        throw new UnsupportedKeywordError('multipleOf', jp(ptr, 'multipleOf'), `the multiples of ${m} that are not integers (multipleOf beside not {"type": "integer"})`);
      }
      // ±I.F with a nonzero digit in F and at most 15 digits in all (no such decimal parses to an
      // integer), for the units (I, I+1) inside the bounds: exact for integer bounds; a unit that a
      // fractional bound cuts is left out (fewer values, never more).
      const bnd = (k: string): number | undefined => (typeof s[k] === 'number' ? s[k] as number : undefined);
      const lo = [bnd('minimum'), bnd('exclusiveMinimum')].filter((x): x is number => x !== undefined).reduce((x, y) => Math.max(x, y), -Infinity);
      const hi = [bnd('maximum'), bnd('exclusiveMaximum')].filter((x): x is number => x !== undefined).reduce((x, y) => Math.min(x, y), Infinity);
      const digit = b.byteRange(0x30, 0x39), nz = b.byteRange(0x31, 0x39), zero = b.cls([0x30]);
      const fnz = (m: number): Sym => b.cached(`fnz:${m}`, () => b.rule('fnz', [[nz, ...b.repeat('fdigits', [digit], 0, m - 1)], ...(m > 1 ? [[zero, fnz(m - 1)]] : [])]));
      const units = (from: number, to: number, minus: boolean): Sym[][] => {
        const out: Sym[][] = [];
        for (let L = 1; L <= 14; L++) {
          const a = Math.max(from, L === 1 ? 0 : 10 ** (L - 1)), z = Math.min(to, 10 ** L - 1);
          if (a <= z) out.push([...(minus ? this.lit('-') : []), intRange(b, a, z), ...this.lit('.'), fnz(15 - L)]);
        }
        return out;
      };
      const alts = [
        ...units(Math.max(0, lo === -Infinity ? 0 : Math.ceil(lo)), hi === Infinity ? LIM : Math.floor(hi) - 1, false),
        ...units(Math.max(0, hi === Infinity ? 0 : Math.ceil(-hi)), lo === -Infinity ? LIM : Math.floor(-lo) - 1, true),
      ];
      return alts.length ? b.alt('fraction', alts) : this.never(ptr, 'no non-integer number within the bounds');
    }
    if (s[NOT_IN] !== undefined) {
      // Excluded values: the range cut at each of them (exclusive bounds, which are exact).
      const BOUNDS = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'];
      const bounds: Obj = {};
      for (const k of BOUNDS) if (s[k] !== undefined) bounds[k] = s[k];
      const ex = [...new Set(((s[NOT_IN]) as unknown[]).filter((v): v is number => typeof v === 'number' && (!integer || Number.isInteger(v)) && validate(v, bounds, this, ptr)))].sort((x, y) => x - y);
      const base: Obj = { ...s };
      delete base[NOT_IN];
      if (ex.length === 0) return this.numberSym(base, ptr, integer);
      for (const k of BOUNDS) delete base[k];
      const pick = (ks: string[]) => Object.fromEntries(ks.filter((k) => s[k] !== undefined).map((k) => [k, s[k]]));
      const pieces: Obj[] = [{ ...base, ...pick(['minimum', 'exclusiveMinimum']), exclusiveMaximum: ex[0] }];
      for (let i = 1; i < ex.length; i++) pieces.push({ ...base, exclusiveMinimum: ex[i - 1], exclusiveMaximum: ex[i] });
      pieces.push({ ...base, ...pick(['maximum', 'exclusiveMaximum']), exclusiveMinimum: ex[ex.length - 1] });
      // A piece too narrow for the number grammar is left out (fewer values, never more).
      const syms = pieces.flatMap((p) => { try { return [[this.numberSym(p, ptr, integer)]]; } catch (e) { if (e instanceof UnsupportedKeywordError) return []; throw e; } });
      return syms.length ? b.alt('number', syms) : this.never(ptr, 'no number outside the excluded values');
    }
    // ajv-formats' int32 / int64 (OpenAPI) accept integers only (int32 in [-2^31, 2^31 - 1]).
    const intFormat = s.format === 'int32' || s.format === 'int64' ? s.format : null;
    if (intFormat) integer = true;
    const num = (k: string): number | undefined => {
      const v = s[k];
      if (v === undefined || typeof v === 'boolean') return undefined;
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new InvalidSchemaError(k, jp(ptr, k), 'must be a number');
      return v;
    };
    let lo = num('minimum'), hi = num('maximum');
    let exLo = s.exclusiveMinimum === true, exHi = s.exclusiveMaximum === true;
    if (s.exclusiveMinimum === true && lo === undefined) throw new InvalidSchemaError('exclusiveMinimum', jp(ptr, 'exclusiveMinimum'), 'true needs minimum');
    if (s.exclusiveMaximum === true && hi === undefined) throw new InvalidSchemaError('exclusiveMaximum', jp(ptr, 'exclusiveMaximum'), 'true needs maximum');
    const eLo = num('exclusiveMinimum'), eHi = num('exclusiveMaximum');
    if (eLo !== undefined && (lo === undefined || eLo >= lo)) { lo = eLo; exLo = true; }
    if (eHi !== undefined && (hi === undefined || eHi <= hi)) { hi = eHi; exHi = true; }
    if (lo !== undefined && hi !== undefined && (lo > hi || (lo === hi && (exLo || exHi)))) return this.never(ptr, `empty range: minimum ${lo} / maximum ${hi}`);
    const iLo = lo === undefined ? -LIM : exLo && Number.isInteger(lo) ? lo + 1 : Math.ceil(lo);
    const iHi = hi === undefined ? LIM : exHi && Number.isInteger(hi) ? hi - 1 : Math.floor(hi);
    if (s.multipleOf !== undefined) {
      const m = multipleOfKw(s, ptr);
      const plan = multipleOfPlan(m);
      if (plan.kind === 'refuse') throw new UnsupportedKeywordError('multipleOf', jp(ptr, 'multipleOf'), plan.why);
      if (plan.kind === 'integers' && plan.divisor === 1) integer = true;
      else {
        const [aLo, aHi] = intFormat === 'int32' ? [Math.max(iLo, -(2 ** 31)), Math.min(iHi, 2 ** 31 - 1)] : [iLo, iHi];
        const key = `multiple:${m}:${JSON.stringify(plan)}:${integer}:${aLo}:${aHi}:${lo}:${hi}:${exLo}:${exHi}`;
        return b.cached(key, () => this.multipleSym(plan, m, integer, aLo, aHi, lo, hi, exLo, exHi, ptr));
      }
    }
    if (integer && lo === undefined && hi === undefined && intFormat === null) {
      // Unbounded: any JSON integer as JavaScript prints one (up to 21 digits; every such decimal
      // parses to an integral double, 234567890123456800 included).
      return b.cached('integer', () => b.seq('integer', [b.opt('minus', this.lit('-')), b.alt('int', [this.lit('0'), [b.byteRange(0x31, 0x39), ...b.repeat('digits', [b.byteRange(0x30, 0x39)], 0, 20)]])]));
    }
    if (integer) {
      const [aLo, aHi] = intFormat === 'int32' ? [Math.max(iLo, -(2 ** 31)), Math.min(iHi, 2 ** 31 - 1)] : [iLo, iHi];
      if (aLo > aHi) return this.never(ptr, `no integer in the range (${lo}, ${hi})${intFormat ? ` of format ${intFormat}` : ''}`);
      return intRange(b, Math.max(aLo, -LIM), Math.min(aHi, LIM));
    }
    if (lo === undefined && hi === undefined) {
      return b.cached('number', () => {
        const digit = b.byteRange(0x30, 0x39);
        // Up to 21 integer digits and 20 fraction digits (JavaScript prints up to 17 significant
        // digits, and integers below 1e21 in full). Exponents keep the value finite (ajv refuses
        // Infinity): below 1e21 · 10^287, or negative (of up to 3 digits; a tiny value is 0).
        const intPart = b.alt('int', [this.lit('0'), [b.byteRange(0x31, 0x39), ...b.repeat('digits', [digit], 0, 20)]]);
        const frac = b.opt('frac', [...this.lit('.'), ...b.repeat('fdigits', [digit], 1, 20)]);
        const d = (lo: string, hi: string) => b.byteRange(lo.charCodeAt(0), hi.charCodeAt(0));
        const up = b.alt('eup', [[digit], [digit, digit], [d('0', '1'), digit, digit], [d('2', '2'), d('0', '7'), digit], [d('2', '2'), d('8', '8'), d('0', '7')]]);
        const down = b.alt('edown', [[digit], [digit, digit], [digit, digit, digit]]);
        const exp = b.opt('exp', [b.cls([0x65, 0x45]), b.alt('esign', [[b.opt('plus', this.lit('+')), up], [...this.lit('-'), down]])]);
        return b.seq('number', [b.opt('minus', this.lit('-')), intPart, frac, exp]);
      });
    }
    const alts: Sym[][] = [];
    const digit = b.byteRange(0x30, 0x39);
    const frac = [...this.lit('.'), ...b.repeat('fdigits', [digit], 1, 15)];
    if (iLo <= iHi) alts.push([intRange(b, Math.max(iLo, -LIM), Math.min(iHi, LIM))]);
    // Non-negative I.F lies in [I, I+1): allowed when that interval is inside the range (I + 1 ≤ hi,
    // exclusive or not: I.F < I + 1).
    const pLo = Math.max(0, lo === undefined ? 0 : exLo && Number.isInteger(lo) ? lo + 1 : Math.ceil(lo));
    let pHi = Math.min(LIM - 1, hi === undefined ? LIM - 1 : Math.floor(hi) - 1);
    // Negative -I.F lies in (-(I+1), -I].
    const nLo = Math.max(0, hi === undefined ? 0 : exHi ? Math.floor(-hi) + 1 : Math.ceil(-hi));
    let nHi = Math.min(LIM - 1, lo === undefined ? LIM - 1 : Math.floor(-lo) - 1);
    // Next to an exclusive integer bound, I.F of more than 15 significant digits can parse to the
    // bound itself (147.999999999999999 is the double 148): that unit is cut to 15 digits (distinct
    // decimals of at most 15 significant digits are distinct doubles).
    const capped = (I: number, neg: boolean) => {
      const n = 15 - String(I).length;
      if (n > 0) alts.push([...(neg ? this.lit('-') : []), intRange(b, I, I), ...this.lit('.'), ...b.repeat('fdigits', [digit], 1, n)]);
    };
    if (hi !== undefined && exHi && Number.isInteger(hi) && hi >= 1 && pHi === hi - 1 && pLo <= pHi) { pHi--; capped(hi - 1, false); }
    if (lo !== undefined && exLo && Number.isInteger(lo) && lo <= -1 && nHi === -lo - 1 && nLo <= nHi) { nHi--; capped(-lo - 1, true); }
    if (pLo <= pHi) alts.push([intRange(b, pLo, pHi), ...frac]);
    if (nLo <= nHi) alts.push([...this.lit('-'), intRange(b, nLo, nHi), ...frac]);
    // The unit a fractional bound cuts (where the other bound is outside it): I.F with 0.F below
    // (above) the bound's fraction, at most 15 significant digits in all.
    const partial = (I: number, neg: boolean, bound: number, le: boolean, strict: boolean) => {
      const t = String(Math.abs(bound)), dot = t.indexOf('.');
      const n = 15 - String(I).length;
      if (t.includes('e') || t.length - 1 > 15 || n <= 0) return;
      const f = fracDigits(b, dot < 0 ? '' : t.slice(dot + 1), le, strict, n);
      if (f !== null) alts.push([...(neg ? this.lit('-') : []), intRange(b, I, I), ...this.lit('.'), f]);
    };
    // The unit beside an exclusive integer bound, on the far side of it: 0.F > 0.
    if (lo !== undefined && exLo && Number.isInteger(lo) && lo >= 0 && (hi === undefined || hi >= lo + 1)) partial(lo, false, lo, false, true);
    if (hi !== undefined && exHi && Number.isInteger(hi) && hi <= 0 && (lo === undefined || lo <= hi - 1)) partial(-hi, true, hi, false, true);
    if (hi !== undefined && !Number.isInteger(hi)) {
      const I = Math.floor(Math.abs(hi));
      // hi ≥ 0: I.F ≤ hi, and I ≥ lo; hi < 0: -I.F ≤ hi (0.F ≥ frac), and -(I+1) ≥ lo.
      if (hi > 0 && (lo === undefined || lo < I || (lo === I && !exLo))) partial(I, false, hi, true, exHi);
      if (hi < 0 && (lo === undefined || lo <= -(I + 1))) partial(I, true, hi, false, exHi);
    }
    if (lo !== undefined && !Number.isInteger(lo)) {
      const I = Math.floor(Math.abs(lo));
      // lo ≥ 0: I.F ≥ lo, and I + 1 ≤ hi; lo < 0: -I.F ≥ lo (0.F ≤ frac), and -I ≤ hi.
      if (lo > 0 && (hi === undefined || hi >= I + 1)) partial(I, false, lo, false, exLo);
      if (lo < 0 && (hi === undefined || hi > -I || (hi === -I && !exHi))) partial(I, true, lo, true, exLo);
    }
    if (alts.length === 0 && lo !== undefined && hi !== undefined && lo >= 0 && Math.floor(lo) === Math.floor(hi)) {
      // Within one unit: I0.F with a fixed number of fraction digits.
      const k = Math.max(decimals(lo), decimals(hi)) + 1;
      if (k <= 12) {
        const I0 = Math.floor(lo), sc = 10 ** k;
        const fLo = Math.round((lo - I0) * sc) + (exLo ? 1 : 0), fHi = Math.round((hi - I0) * sc) - (exHi ? 1 : 0);
        if (fLo <= fHi) alts.push([intRange(b, I0, I0), ...this.lit('.'), b.alt('frac', sameLen(b, String(fLo).padStart(k, '0'), String(fHi).padStart(k, '0')))]);
      }
    }
    if (alts.length === 0) throw new UnsupportedKeywordError(s.minimum !== undefined ? 'minimum' : 'exclusiveMinimum', ptr, `number range (${lo}, ${hi}) is too narrow for this compiler`);
    return b.alt('number', alts);
  }

  /**
   * multipleOf other than 1 (multiple.ts). 'float' divisors (0.01, 0.1 …): the texts ±I or ±I.F
   * (trailing zeros included) of the multiples that pass ajv's floating-point check, with the
   * bounds applied to N = |x|·10^k as ajv compares (the double of the text against the bound):
   * exact within the analysis' range. Otherwise: integers in [iLo, iHi] the remainder automaton
   * accepts, and for a dyadic divisor on numbers also I.F in the units [I, I + 1) wholly inside the
   * bounds, and the multiples in the units a bound cuts one by one.
   */
  private multipleSym(plan: MultiplePlan & { kind: 'integers' | 'decimals' | 'float' }, m: number, integer: boolean, iLo: number, iHi: number,
    lo: number | undefined, hi: number | undefined, exLo: boolean, exHi: boolean, ptr: string): Sym {
    const b = this.b;
    if (plan.kind === 'float') {
      // N / 10^k for the N the analysis accepts (multiple.ts), cut by the bounds as ajv compares
      // (the double of the text against the bound): N in [pLo, pHi] for v ≥ 0, and |v| = N in
      // [nLo, nHi] for -N / 10^k (lo ≤ −fl(N / 10^k) ≤ hi).
      const fm = floatMultiples(plan.m)!, P = fm.P;
      let pLo = lo === undefined ? 0 : boundN(fm, lo, false, exLo), pHi = hi === undefined ? fm.nMax - 1 : boundN(fm, hi, true, exHi);
      let nLo = hi === undefined ? 0 : boundN(fm, -hi, false, exHi), nHi = lo === undefined ? fm.nMax - 1 : boundN(fm, -lo, true, exLo);
      if (integer) {
        // (A product past 2^53 rounds but stays past nMax − 1, so min / max still pick the right bound.)
        pLo = Math.max(pLo, Math.max(iLo, 0) * P); pHi = Math.min(pHi, iHi * P);
        nLo = Math.max(nLo, Math.max(-iHi, 0) * P); nHi = Math.min(nHi, -iLo * P);
      }
      const alts = [
        ...floatMultipleAlts(b, fm, pLo, pHi, integer, 15),
        ...floatMultipleAlts(b, fm, nLo, nHi, integer, 15).map((a) => [...this.lit('-'), ...a]),
      ];
      return alts.length ? b.alt('multiple', alts) : this.never(ptr, 'no multiple of multipleOf in the range');
    }
    const dfa = plan.kind === 'integers' ? multipleDfa(plan.divisor, 0) : multipleDfa(plan.num, plan.k);
    const top = Math.min(LIM, plan.kind === 'decimals' ? plan.maxAbs - 1 : LIM);
    const alts: Sym[][] = [];
    const minus = this.lit('-');
    const end = (q: number): Sym[] | null => (dfa.accept[q] ? [] : null);
    const memoInt = new Map<string, Sym[] | null>(), memoDec = new Map<string, Sym[] | null>();
    alts.push(...digitsInRange(b, dfa, Math.max(iLo, 0), Math.min(iHi, top), end, 'int', memoInt));
    if (iLo < 0) alts.push(...digitsInRange(b, dfa, Math.max(iHi < 0 ? -iHi : 1, 1), Math.min(-iLo, top), end, 'int', memoInt).map((a) => [...minus, ...a]));
    if (plan.kind === 'decimals' && !integer) {
      const memo = new Map<number, Sym | null>();
      const F = (q: number): Sym | null => {
        if (memo.has(q)) return memo.get(q)!;
        const fa: Sym[][] = [];
        if (dfa.accept[q]) fa.push([]);
        for (let d = 0; d < 10; d++) {
          const t = dfa.next[q * 11 + d];
          if (t === dfa.dead) continue;
          const r = F(t);
          if (r !== null) fa.push([b.cls([0x30 + d]), r]);
        }
        const sym = fa.length ? b.rule('mul-frac', fa) : null;
        memo.set(q, sym);
        return sym;
      };
      const frac = (q: number): Sym[] | null => { const t = dfa.next[q * 11 + 10]; const r = t === dfa.dead ? null : F(t); return r === null ? null : [...this.lit('.'), r]; };
      // Units [I, I + 1) inside the bounds, and (-(I + 1), -I] for -I.F.
      const pLo = Math.max(0, lo === undefined ? 0 : exLo ? Math.floor(lo) + 1 : Math.ceil(lo)), pHi = Math.min(top - 1, hi === undefined ? LIM : Math.floor(hi) - 1);
      const nLo = Math.max(0, hi === undefined ? 0 : exHi ? Math.floor(-hi) + 1 : Math.ceil(-hi)), nHi = Math.min(top - 1, lo === undefined ? LIM : Math.floor(-lo) - 1);
      alts.push(...digitsInRange(b, dfa, pLo, pHi, frac, 'dec', memoDec));
      alts.push(...digitsInRange(b, dfa, nLo, nHi, frac, 'dec', memoDec).map((a) => [...minus, ...a]));
      // The units a bound cuts: their multiples one by one (n·num / 10^k near each bound).
      const step = plan.num / 10 ** plan.k, seen = new Set<string>();
      for (const x0 of [lo, hi]) {
        if (x0 === undefined) continue;
        const n0 = Math.floor((x0 - 1) / step), n1 = Math.ceil((x0 + 1) / step);
        if (n1 - n0 > 5000) continue;
        for (let n = n0; n <= n1; n++) {
          const t = decimalText(BigInt(n) * BigInt(plan.num), plan.k), x = Number(t);
          if (Number.isInteger(x) || seen.has(t) || Math.abs(x) >= top) continue;
          const I = Math.floor(Math.abs(x));
          if (x > 0 ? I >= pLo && I <= pHi : I >= nLo && I <= nHi) continue;
          if ((lo !== undefined && (x < lo || (exLo && x === lo))) || (hi !== undefined && (x > hi || (exHi && x === hi))) || !ajvMultipleOf(x, m)) continue;
          seen.add(t);
          alts.push(this.lit(t));
        }
      }
    }
    if (alts.length === 0) return this.never(ptr, 'no multiple of multipleOf in the range');
    return b.alt('multiple', alts);
  }

  private objectSym(s: Obj, ptr: string): Sym {
    const b = this.b, ws = this.ws;
    const props = s.properties ?? {};
    if (!isObj(props)) throw new InvalidSchemaError('properties', jp(ptr, 'properties'), 'must be an object');
    const required = (s.required ?? []) as unknown;
    if (!Array.isArray(required) || required.some((r) => typeof r !== 'string')) throw new InvalidSchemaError('required', jp(ptr, 'required'), 'must be an array of strings');
    let ap = s.additionalProperties as JsonSchema | undefined;
    if (ap !== undefined && typeof ap !== 'boolean' && !isObj(ap)) throw new InvalidSchemaError('additionalProperties', jp(ptr, 'additionalProperties'), 'must be a schema');
    const mode = this.opts.additionalProperties ?? 'schema';
    if (mode === 'forbid') ap = false;
    // Required names that properties does not declare follow additionalProperties (absent = any value).
    const apRequired = ap;
    if (mode === 'declared' && ap === undefined) ap = false;
    const req = new Set(required as string[]);
    let names = Object.keys(props);
    for (const r of req) if (!names.includes(r)) names.push(r);
    // Names the dependency keywords mention that properties does not declare are emitted as
    // declared ones (values of additionalProperties), as required ones are, unless the schema's
    // additionalProperties (or the 'forbid' mode) excludes them.
    const depNames = this.dependencyNames(s, ptr);
    if (apRequired !== false) for (const n of depNames) if (!names.includes(n)) names.push(n);
    // patternProperties and propertyNames: the keys' languages (DFAs); names outside propertyNames cannot occur.
    const pats = this.patternProps(s, ptr);
    const keyLang = s.propertyNames === undefined || s.propertyNames === true ? null : this.keyLanguageOf(s.propertyNames as JsonSchema, jp(ptr, 'propertyNames'));
    if (keyLang) {
      const bad = names.filter((n) => !keyLang.matches(n));
      const badReq = bad.find((n) => req.has(n));
      if (badReq !== undefined) return this.never(ptr, `required property '${badReq}' is not allowed by propertyNames`);
      names = names.filter((n) => !bad.includes(n));
    }
    // A name too long to spell out is refused before any trie or literal is built from it.
    // (The trie of names that undeclared keys must avoid is built one level per character.)
    const long = names.find((n) => n.length > MAX_NAME);
    if (long !== undefined) throw new ComplexityError('the length of one property name', MAX_NAME, `at ${ptr || '#'}: one of ${long.length} characters`);
    // Optional members in a row are each a parse of its own at a key, and the matcher holds at
    // most MAX_PARALLEL: refused before anything is built (50,000 optional properties built a
    // grammar of hundreds of MB first, then failed at the first mask).
    let run = 0;
    for (const n of names) {
      run = req.has(n) ? 0 : run + 1;
      if (run > MAX_OPTIONAL_RUN) throw new ComplexityError('optional properties in a row', MAX_OPTIONAL_RUN, `at ${ptr || '#'}: the object declares ${names.length}`);
    }
    const entries = names.map((name) => {
      const own = Object.prototype.hasOwnProperty.call(props, name);
      // A name matching patterns of patternProperties satisfies their schemas too (and is not additional).
      const matched = pats.length ? pats.filter((x) => x.re.test(name)) : pats;
      const p = own ? jp(ptr, 'properties', name) : matched.length ? jp(ptr, 'patternProperties', matched[0].p) : jp(ptr, 'additionalProperties');
      const schema = matched.length === 0 ? (own ? props[name] as JsonSchema : apRequired ?? true)
        : own || matched.length > 1 ? { allOf: [...(own ? [props[name] as JsonSchema] : []), ...matched.map((x) => x.schema)] } : matched[0].schema;
      const value = this.value(schema, p);
      return new MemberEntry(name, req.has(name), schema, p, this.memberKey(name), value, ws);
    });
    // Extra properties: keys that are not declared (ASCII, unescaped), values of additionalProperties.
    let extra: Sym[] | null = null;
    if (pats.length || keyLang) extra = this.keyedMembers(ptr, pats, keyLang, names, mode, ap);
    else if (ap !== false) {
      const v = this.value(ap ?? true, jp(ptr, 'additionalProperties'));
      extra = [this.keyExcluding(names, mode !== 'schema'), ...ws, ...this.lit(':'), ...ws, v, ...ws];
    }
    // EXTRA (from not additionalProperties): a witness member is required — a declared property
    // outside x.names, or an extra key outside them, with a value that also matches x.schema.
    const x = s[EXTRA] as { names: string[]; schema: JsonSchema } | undefined;
    // An undeclared witness key that matches patternProperties takes their schemas, not additionalProperties's.
    const witness = x === undefined ? undefined : {
      members: entries.map((e) => (!x.names.includes(e.name) ? [...e.key, this.value({ allOf: [e.schema, x.schema] }, e.ptr), ...ws] : null)),
      extra: pats.length || keyLang ? this.keyedMembers(ptr, pats, keyLang, [...names, ...x.names], mode, ap, x.schema)
        : ap === false ? null : [this.keyExcluding([...names, ...x.names], mode !== 'schema'), ...ws, ...this.lit(':'), ...ws, this.value({ allOf: [ap ?? true, x.schema] }, jp(ptr, 'additionalProperties')), ...ws],
    };
    // Checking instances ('schema' mode): the members in any order (the schema's order is kept
    // when generating, and where dependencies or a witness member are tracked).
    const anyOrder = mode === 'schema' && !this.yaml && (entries.length >= 2 || (entries.length === 1 && extra !== null)) && entries.length <= MAX_ANY_ORDER && witness === undefined;
    if (anyOrder && this.dependencies(s, ptr).length === 0) {
      const { minP, maxP } = propertyCount(s, ptr, entries, extra);
      // Without counts or dependencies, the members in the schema's order (which the any-order
      // rule needs only for its shortest derivation and productivity) are the required ones:
      // that sequence stands for them, instead of a grammar of the ordered members that nothing
      // would match with.
      if (minP === 0 && maxP === undefined) return b.seq('object', [...this.lit('{'), ...ws, this.anyOrderMembers(s, ptr, entries, extra, null, []), ...this.lit('}')]);
    }
    let members = this.objectMembers(s, ptr, entries, extra, witness);
    // 'declared' mode: where only extra keys can meet minProperties, they are allowed (non-empty, as the schema allows them).
    // (Not with patternProperties / propertyNames, whose keys are in `extra` already and constrain the others.)
    if (members === null && mode === 'declared' && apRequired === undefined && !pats.length && !keyLang) {
      extra = [this.keyExcluding(names, true), ...ws, ...this.lit(':'), ...ws, this.anyValue(), ...ws];
      members = this.objectMembers(s, ptr, entries, extra, witness);
    }
    if (members === null) return this.never(ptr, 'no object satisfies minProperties / maxProperties / dependencies');
    // Checking instances ('schema' mode): the members in any order (the schema's order is kept
    // when generating, and where dependencies or a witness member are tracked).
    if (anyOrder) {
      // Dependencies on names (present or absent) are checked when the object ends; dependent
      // schemas constraining values keep the schema's order (objectMembers guesses at them).
      const deps = this.dependencies(s, ptr);
      if (deps.every((d) => d.never || Object.keys(d.props).length === 0) && (deps.length === 0 || propertyCount(s, ptr, entries, extra).minP === 0)) members = this.anyOrderMembers(s, ptr, entries, extra, members, deps);
    }
    return b.seq('object', [...this.lit('{'), ...ws, members, ...this.lit('}')]);
  }

  // ---- object members: counting (minProperties / maxProperties) and dependencies ------------
  // Members are emitted in the order of `entries` (declared properties, then the other names the
  // schema mentions), then extra keys. The recursion state holds the number of members emitted so
  // far (capped at maxProperties, or at max(minProperties, 1): 0 = nothing yet, no comma) and, for
  // the dependency keywords, which later names must be present (O), which must be absent (F), and
  // which dependent schemas constrain later values (P). "a present ⇒ b present" is a constraint on
  // which optional members are taken: b after a joins O when a is taken; b before a puts a in F
  // when b is skipped. A dependent schema's property constraints on a name x that comes before its
  // trigger t are guessed at x: x's value under the merged schema (t stays possible) or under its
  // own (t joins F) — the union is exactly the valid objects.

  /** The property names that dependencies / dependentRequired / dependentSchemas mention. */
  private dependencyNames(s: Obj, ptr: string): string[] {
    const out: string[] = [];
    // The names a trigger needs before the trigger (the order people write: {"foo": 1, "bar": 2} for bar ⇒ foo).
    for (const d of this.dependencies(s, ptr)) out.push(...d.reqs, ...d.forbids, ...Object.keys(d.props), d.trigger);
    return [...new Set(out)];
  }

  /** The dependency keywords as (trigger, required names, forbidden names, property schemas); `never`: the trigger cannot be present. */
  private dependencies(s: Obj, ptr: string): Array<{ kw: string; ptr: string; trigger: string; reqs: string[]; forbids: string[]; props: Obj; never: boolean }> {
    const out: Array<{ kw: string; ptr: string; trigger: string; reqs: string[]; forbids: string[]; props: Obj; never: boolean }> = [];
    for (const kw of ['dependencies', 'dependentRequired', 'dependentSchemas']) {
      const deps = s[kw];
      if (deps === undefined) continue;
      if (!isObj(deps)) throw new InvalidSchemaError(kw, jp(ptr, kw), 'must be an object');
      for (const [trigger, d] of Object.entries(deps)) {
        const p = jp(ptr, kw, trigger);
        if (Array.isArray(d) && kw !== 'dependentSchemas') {
          if (d.some((x) => typeof x !== 'string')) throw new InvalidSchemaError(kw, p, 'must be an array of strings');
          out.push({ kw, ptr: p, trigger, reqs: d as string[], forbids: [], props: {}, never: false });
          continue;
        }
        if (kw === 'dependentRequired') throw new InvalidSchemaError(kw, p, 'must be an array of strings');
        const dep = { kw, ptr: p, trigger, reqs: [] as string[], forbids: [] as string[], props: {} as Obj, never: false };
        // The dependent schema's constraints, through $ref and allOf (conjunctions).
        const add = (x: JsonSchema, xp: string, depth: number): void => {
          if (depth > 16) throw new UnsupportedKeywordError(kw, p, 'recursive reference');
          if (x === true) return;
          if (x === false) { dep.never = true; return; }
          if (!isObj(x)) throw new InvalidSchemaError(kw, p, 'must be a schema or an array of names');
          for (const [k, v] of Object.entries(x)) {
            if (ignored(k) && k !== 'not') continue;
            if (k === '$ref') { const t = this.resolve(v, jp(xp, '$ref')); add(t.schema, t.ptr, depth + 1); continue; }
            if (k === 'allOf' && Array.isArray(v)) { v.forEach((br, i) => add(br as JsonSchema, jp(xp, 'allOf', i), depth + 1)); continue; }
            if (k === 'type') { const ts = Array.isArray(v) ? v : [v]; if (!ts.includes('object')) dep.never = true; continue; }
            if (k === 'required' && Array.isArray(v) && v.every((r) => typeof r === 'string')) { dep.reqs.push(...(v as string[])); continue; }
            if (k === 'properties' && isObj(v)) {
              for (const [n, sch] of Object.entries(v)) dep.props[n] = Object.prototype.hasOwnProperty.call(dep.props, n) ? { allOf: [dep.props[n], sch] } : sch;
              continue;
            }
            // "not": {"required": [b]}: b is absent when the trigger is present.
            if (k === 'not' && isObj(v) && Object.keys(v).every((w) => w === 'required' || ignored(w)) && Array.isArray(v.required) && v.required.length === 1 && typeof v.required[0] === 'string') {
              dep.forbids.push(v.required[0] as string);
              continue;
            }
            if (k === 'not' && isObj(v) && Object.keys(v).every((w) => ignored(w) && w !== 'not')) { dep.never = true; continue; }
            throw new UnsupportedKeywordError(kw, p, `a dependent schema with '${k}' (supported: required, properties, type, allOf / $ref of those, not of one required name)`);
          }
        };
        add(d as JsonSchema, p, 0);
        out.push(dep);
      }
    }
    return out;
  }

  /**
   * The members rule (null when no member list satisfies the constraints); see above. `entries`:
   * the names in emission order with their schemas and plain key/value symbols; `extra`: one
   * extra member (key and value), or null; `witness` (from not additionalProperties): one member
   * must be a witness — `members[i]` is entry i as one, `extra` an extra member as one.
   */
  private objectMembers(s: Obj, ptr: string, entries: Array<{ name: string; required: boolean; schema: JsonSchema; ptr: string; key: Sym[]; kv: Sym[] }>, extra: Sym[] | null,
    witness?: { members: Array<Sym[] | null>; extra: Sym[] | null }): Sym | null {
    const b = this.b, ws = this.ws, n = entries.length;
    const { minP, maxP, next } = propertyCount(s, ptr, entries, extra);
    const index = new Map(entries.map((e, i) => [e.name, i]));
    // Dependencies by index; a dependency on a name that cannot be emitted makes its trigger impossible.
    type Dep = { kw: string; ptr: string; t: number; reqs: number[]; forbids: number[]; props: Map<number, JsonSchema> };
    const deps: Dep[] = [];
    const never = new Set<number>();
    for (const d of this.dependencies(s, ptr)) {
      const t = index.get(d.trigger);
      if (t === undefined) continue;
      if (d.never || d.reqs.some((r) => !index.has(r)) || d.forbids.includes(d.trigger)) { never.add(t); continue; }
      const props = new Map<number, JsonSchema>();
      for (const [name, sch] of Object.entries(d.props)) { const i = index.get(name); if (i !== undefined) props.set(i, sch as JsonSchema); }
      deps.push({ kw: d.kw, ptr: d.ptr, t, reqs: d.reqs.map((r) => index.get(r)!), forbids: d.forbids.flatMap((f) => (index.has(f) ? [index.get(f)!] : [])), props });
    }
    // Values under dependent schemas: the property's schema merged with theirs (by the set of dependencies).
    const merged = new Map<string, Sym>();
    const valueUnder = (i: number, ds: Dep[]): Sym[] => {
      if (ds.length === 0) return entries[i].kv;
      const key = `${i}:${ds.map((d) => deps.indexOf(d)).join(',')}`;
      let v = merged.get(key);
      if (v === undefined) {
        try { v = this.value({ allOf: [entries[i].schema, ...ds.map((d) => d.props.get(i)!)] }, entries[i].ptr); } catch (e) {
          if (e instanceof UnsupportedKeywordError && e.keyword === 'allOf') throw new UnsupportedKeywordError(ds[0].kw, ds[0].ptr, `merging the dependent schema of '${entries[i].name}': ${e.message}`);
          throw e;
        }
        merged.set(key, v);
      }
      return [...entries[i].key, v, ...ws];
    };
    const sep = (c: number) => (c === 0 ? [] : [...this.lit(','), ...ws]);
    // Extra members after the declared ones, E(c, w): c members so far; w = the witness (if one is needed) emitted.
    const extraMemo = new Map<string, Sym | null>();
    const E = (c: number, w: boolean): Sym | null => {
      const mk = `${c}:${w}`;
      if (extraMemo.has(mk)) return extraMemo.get(mk)!;
      if (!w) {
        // A witness among the extra members: none yet, so no end here.
        if (!witness?.extra || (maxP !== undefined && c >= maxP)) { extraMemo.set(mk, null); return null; }
        const id = b.rule('extra-w');
        extraMemo.set(mk, id);
        const alts: Sym[][] = [];
        const done = E(next(c), true);
        if (done !== null) alts.push([...sep(c), ...witness.extra, done]);
        const more = extra ? E(next(c), false) : null;
        if (more !== null) alts.push([...sep(c), ...extra!, more]);
        b.define(id, alts);
        return id;
      }
      if (extra && next(c) === c && maxP === undefined) {
        // The loop at the cap (c ≥ minProperties here).
        const id = b.rule('extra');
        extraMemo.set(mk, id);
        b.define(id, [[], [...sep(c), ...extra, id]]);
        return id;
      }
      const alts: Sym[][] = [];
      if (c >= minP) alts.push([]);
      if (extra && (maxP === undefined || c < maxP)) {
        const r = E(next(c), true);
        if (r !== null) alts.push([...sep(c), ...extra, r]);
      }
      const sym = alts.length === 0 ? null : b.rule('extra', alts);
      extraMemo.set(mk, sym);
      return sym;
    };
    const memo = new Map<string, Sym | null>();
    let states = 0;
    const maxStates = Math.max(20_000, 4 * n);
    const has = (set: number[], i: number) => set.includes(i);
    const R = (i: number, c: number, O: number[], F: number[], P: Dep[], w: boolean): Sym | null => {
      if (i === n) return O.length ? null : E(c, w);
      const key = `${i}:${c}:${O.join(',')}:${F.join(',')}:${P.map((d) => deps.indexOf(d)).join(',')}:${w}`;
      if (memo.has(key)) return memo.get(key)!;
      if (++states > maxStates) {
        const kw = deps.length ? deps[0].kw : maxP !== undefined ? 'maxProperties' : 'minProperties';
        throw new UnsupportedKeywordError(kw, deps.length ? deps[0].ptr : jp(ptr, kw), 'too many combinations of present and absent members to track');
      }
      const keep = (set: number[]) => set.filter((x) => x > i).sort((a, z) => a - z);
      const live = (ds: Dep[]) => ds.filter((d) => [...d.props.keys()].some((x) => x > i));
      const must = entries[i].required || has(O, i), banned = has(F, i) || never.has(i);
      const alts: Sym[][] = [];
      if (!must) {
        // Skipped: triggers after i that require i become impossible.
        const F2 = [...F];
        for (const d of deps) if (d.t > i && has(d.reqs, i)) F2.push(d.t);
        const r = R(i + 1, c, keep(O), [...new Set(keep(F2))], live(P), w);
        if (r !== null) alts.push([r]);
      }
      if (!banned && (maxP === undefined || c < maxP)) {
        const now = deps.filter((d) => d.t === i);
        const O2 = [...O, ...now.flatMap((d) => d.reqs)];
        const F2 = [...F, ...now.flatMap((d) => d.forbids)];
        // Taken: triggers after i that forbid i become impossible.
        for (const d of deps) if (d.t > i && has(d.forbids, i)) F2.push(d.t);
        const P2 = [...P, ...now];
        const mandatory = P2.filter((d) => d.props.has(i));
        const open = [...new Set(deps.filter((d) => d.t > i && d.props.has(i) && !has(F2, d.t)).map((d) => d.t))];
        if (open.length > 3) throw new UnsupportedKeywordError(deps[0].kw, deps[0].ptr, `more than 3 dependent schemas constrain '${entries[i].name}' before their trigger`);
        for (let mask = 0; mask < 1 << open.length; mask++) {
          const chosen = open.filter((_, j) => mask & (1 << j));
          const ds = [...mandatory, ...deps.filter((d) => chosen.includes(d.t) && d.props.has(i))];
          const F3 = [...F2, ...open.filter((t) => !chosen.includes(t))];
          if (O2.some((x) => F3.includes(x) && x > i)) continue;
          const r = R(i + 1, next(c), keep([...new Set(O2)]), [...new Set(keep(F3))], live(P2), w);
          if (r !== null) alts.push([...sep(c), ...valueUnder(i, ds), r]);
          // This member as the witness (its value also matches the witness schema; not under dependent schemas).
          const wm = witness?.members[i];
          if (!w && wm && ds.length === 0) {
            const rw = R(i + 1, next(c), keep([...new Set(O2)]), [...new Set(keep(F3))], live(P2), true);
            if (rw !== null) alts.push([...sep(c), ...wm, rw]);
          }
        }
      }
      const sym = alts.length === 0 ? null : b.rule('members', alts);
      memo.set(key, sym);
      return sym;
    };
    // E(c, ·) calls only E(c + 1, ·): built from the largest count down, the recursion stays one
    // level deep (maxProperties 10000 would otherwise overflow the call stack).
    if (maxP !== undefined && maxP > 500) for (let c = maxP; c >= 0; c--) { E(c, true); E(c, false); }
    // R(i, …) calls R(i + 1, …): with many members, the states without pending dependencies are
    // built from the last member up, so the recursion below stays shallow (5,000 properties
    // overflowed the call stack). Counts beyond `cap` are not tracked (see propertyCount).
    const cap = maxP ?? Math.max(minP, 1);
    if (n > 200 && (cap + 1) * n * 2 <= maxStates) {
      for (let i = n - 1; i > 0; i--) for (let c = Math.min(cap, i); c >= 0; c--) { R(i, c, [], [], [], true); if (witness) R(i, c, [], [], [], false); }
    }
    return R(0, 0, [], [], [], witness === undefined);
  }

  /**
   * The members of an object in any order, each entry at most once and extra members anywhere
   * ('schema' mode: instances are checked as JSON Schema reads them, whatever their key order).
   * One rule per (entries seen, members counted as objectMembers counts them) — 2^n of them, so
   * they are built lazily (GrammarBuilder.lazy), only those a parse meets. `ordered`, the same
   * members in the entries' order, has the same shortest derivation and serves the build's analyses.
   */
  private anyOrderMembers(s: Obj, ptr: string, entries: Array<{ name: string; required: boolean; kv: Sym[] }>, extra: Sym[] | null, ordered: Sym | null,
    deps: Array<{ trigger: string; reqs: string[]; forbids: string[]; never: boolean }> = []): Sym {
    const b = this.b, n = entries.length;
    const { minP, maxP, next } = propertyCount(s, ptr, entries, extra);
    // Dependencies by entry index (minProperties is 0 here): a present trigger needs its names and
    // excludes others; a trigger whose names cannot all be present never is.
    // (Only built where there are dependencies: most objects have none.)
    const index = new Map(deps.length ? entries.map((e, i) => [e.name, i]) : []);
    const never = new Set<number>(), needs: number[][] = deps.length ? entries.map(() => []) : [], bans: number[][] = deps.length ? entries.map(() => []) : [];
    // What the rules built while matching need of the entries (the closures below keep only this).
    const required = entries.map((e) => e.required);
    for (const d of deps) {
      const t = index.get(d.trigger);
      if (t === undefined) continue;
      if (d.never || d.reqs.some((r) => !index.has(r)) || d.forbids.includes(d.trigger)) { never.add(t); continue; }
      needs[t].push(...d.reqs.map((r) => index.get(r)!));
      bans[t].push(...d.forbids.flatMap((f) => (index.has(f) ? [index.get(f)!] : [])));
    }
    // The names that must still come from (seen): the required ones and, to a fixed point, those
    // present triggers need; null when a present trigger excludes one of them (or a never-trigger is seen).
    const forced = (seen: Uint8Array): Set<number> | null => {
      const all = new Set<number>();
      for (let i = 0; i < n; i++) if (seen[i] || required[i]) all.add(i);
      for (let grew = true; grew;) {
        grew = false;
        for (const i of [...all]) for (const j of needs[i]) if (!all.has(j)) { all.add(j); grew = true; }
      }
      for (const i of all) if (never.has(i) || bans[i].some((j) => all.has(j))) return null;
      return all;
    };
    // One rule per member (name and value) and one per extra member, shared by the objects that have it.
    // (Keyed by the name and the value's symbol where the entry has them: joining the symbols of
    // every entry of every object variant was 7% of semgrep's compile.)
    const kv = entries.map((e) => (e instanceof MemberEntry ? this.memberRule(e) : b.cached(`member:${e.kv.join(',')}`, () => b.seq('member', e.kv))));
    const ex = extra === null ? null : b.cached(`extra-member:${extra.join(',')}`, () => b.seq('extra-member', extra));
    const sep = b.cached('comma', () => b.rule('comma', [[...this.lit(','), ...this.ws]]));
    const states = new Map<string, number>();
    // The shortest rest from (seen, c): the required entries not seen, and as many of the cheapest
    // other members (entries not seen, extra members) as minProperties still needs.
    const shortest = (g: Grammar, seen: Uint8Array, c: number): number => {
      let len = 0, count = 0;
      const pool: number[] = [];
      const must = deps.length ? forced(seen) : null;
      if (deps.length && must === null) return Infinity;
      for (let i = 0; i < n; i++) {
        if (seen[i]) continue;
        if (must ? must.has(i) : required[i]) { len += g.ruleMinLen(kv[i]); count++; } else pool.push(g.ruleMinLen(kv[i]));
      }
      if (maxP !== undefined && c + count > maxP) return Infinity;
      const more = Math.max(0, minP - c - count);
      if (more > 0) {
        if (ex !== null) for (let k = 0; k < more; k++) pool.push(g.ruleMinLen(ex));
        if (pool.length < more) return Infinity;
        pool.sort((x, y) => x - y);
        for (let k = 0; k < more; k++) len += pool[k];
        count += more;
      }
      return len + (c > 0 ? count : Math.max(0, count - 1)) * g.ruleMinLen(sep);
    };
    // A state is keyed by its count and a digit per member (seen or not); sk, the digits, is kept
    // with the state, and a successor's key is made from it (a join of the members per successor
    // was quadratic in the members: kb_1161's objects of hundreds of properties).
    const alts = (g: Grammar, seen: Uint8Array, c: number, sk: string): Sym[][] => {
      const out: Sym[][] = [];
      const must = deps.length ? forced(seen) : null;
      if (c >= minP && (deps.length ? must !== null && [...must].every((i) => seen[i]) : required.every((r, i) => !r || seen[i]))) out.push([]);
      if (maxP !== undefined && c >= maxP) return out;
      const lead = c > 0 ? [sep] : [];
      const c2 = next(c);
      for (let i = 0; i < n; i++) {
        if (seen[i] || never.has(i)) continue;
        const tk = sk.slice(0, i) + '1' + sk.slice(i + 1);
        let r = states.get(`${c2}:${tk}`);
        if (r === undefined) {
          const to = seen.slice();
          to[i] = 1;
          r = state(g, to, c2, tk);
        }
        out.push([...lead, kv[i], r]);
      }
      if (ex !== null) out.push([...lead, ex, state(g, seen, c2, sk)]);
      return out;
    };
    const state = (g: Grammar, seen: Uint8Array, c: number, sk: string): number => {
      const key = `${c}:${sk}`;
      let r = states.get(key);
      if (r === undefined) {
        r = g.lazyRule('members-any-order', shortest(g, seen, c), (gg) => alts(gg, seen, c, sk));
        states.set(key, r);
      }
      return r;
    };
    // Without `ordered`: the required members, comma-separated, derive what the members in any order derive shortest.
    // (A loop, not flatMap: flatMap was most of this function's time in semgrep's 1,436 objects.)
    let first: Sym[];
    if (ordered !== null) first = [ordered];
    else {
      first = [];
      for (let i = 0; i < n; i++) if (required[i]) { if (first.length) first.push(sep); first.push(kv[i]); }
    }
    const none = '0'.repeat(n);
    const root = b.lazy('members-any-order', [first], (g) => alts(g, new Uint8Array(n), 0, none));
    states.set(`0:${none}`, root);
    return root;
  }

  /** The member rules of declared members, by value symbol and name (a rule each, made when first needed). */
  private readonly memberRules = new Map<Sym, Map<string, Sym>>();
  private memberRule(e: MemberEntry): Sym {
    let m = this.memberRules.get(e.value);
    if (m === undefined) { m = new Map(); this.memberRules.set(e.value, m); }
    let r = m.get(e.name);
    if (r === undefined) { r = this.b.seq('member', e.kv); m.set(e.name, r); }
    return r;
  }

  /** patternProperties as a list of (pattern, RegExp as ajv compiles it, schema); [] when absent. */
  private patternProps(s: Obj, ptr: string): Array<{ p: string; re: RegExp; schema: JsonSchema }> {
    const pp = s.patternProperties;
    if (pp === undefined) return [];
    if (!isObj(pp)) throw new InvalidSchemaError('patternProperties', jp(ptr, 'patternProperties'), 'must be an object');
    return Object.entries(pp).map(([p, schema]) => {
      let re: RegExp;
      try { re = new RegExp(p, 'u'); } catch (e) { throw new InvalidSchemaError('patternProperties', jp(ptr, 'patternProperties', p), `not a regular expression: ${(e as Error).message}`); }
      return { p, re, schema: schema as JsonSchema };
    });
  }

  /**
   * The undeclared members of an object with patternProperties and/or propertyNames. Keys are
   * partitioned by the set of patterns they match (each part a DFA: the intersection of those
   * patterns, minus the others, within propertyNames, minus the declared names); a key of a part
   * gets the allOf of its patterns' schemas, a key matching none gets additionalProperties (and is
   * written without escapes: printable ASCII as keyExcluding's, or wider, see unmatchedKeyChars).
   * Mode 'forbid' emits none; 'declared' (with additionalProperties absent) only the keys of
   * patterns. In every mode but 'schema' the keys are non-empty.
   */
  /** keyedMembers' partitions of the keys, by patterns, names, propertyNames and mode. */
  private readonly keyClasses = new Map<string, Array<{ set: number[]; d: Dfa }>>();
  /** Tails of patterns after a literal, shared by the patterns' automata (see DfaLimits.tails). */
  private readonly regexTails = new Map<string, Dfa>();
  /** keyedMembers' automata of patternProperties' patterns, by source. */
  private readonly patternDfas = new Map<string, Dfa>();
  /** keyPartition's classes, by patterns, propertyNames, mode and whether additionalProperties is false. */
  private readonly keyParts = new Map<string, Array<{ set: number[]; d: Dfa }>>();
  /** The grammar symbols of a key language (keyedMembers), by automaton. */
  private readonly dfaSymsOf = new WeakMap<Dfa, Sym[]>();
  private readonly dfaIds = new WeakMap<Dfa, number>();
  private dfaId(d: Dfa): number {
    let id = this.dfaIds.get(d);
    if (id === undefined) { id = this.unique++; this.dfaIds.set(d, id); }
    return id;
  }
  /** keyLanguage of a propertyNames schema, once per content. */
  private readonly keyLangs = new Map<number, Dfa | null>();
  private keyLanguageOf(s: JsonSchema, ptr: string): Dfa | null {
    const k = this.keyOf(s);
    let d = this.keyLangs.get(k);
    if (d === undefined) { d = this.keyLanguage(s, ptr); this.keyLangs.set(k, d); }
    return d;
  }

  /**
   * The keys partitioned by the patterns they match (keyedMembers, before the declared names are
   * taken out): a class per set of patterns, with its language; keys matching no pattern (when
   * additionalProperties is not false) written without escapes (unmatchedKeyChars).
   */
  private keyPartition(pats: Array<{ p: string; schema: JsonSchema }>, keyLang: Dfa | null, mode: string, ap: JsonSchema | undefined, limits: { maxStates: number; what: string }, ptr: string, branchy: boolean): Array<{ set: number[]; d: Dfa }> {
    const all = keyLang === null && mode === 'schema' ? charsDfa() : null;
    let universe = keyLang ?? all ?? charsDfa();
    if (mode !== 'schema') universe = intersect(universe, charsDfa(undefined, 1), limits);
    // Two patterns or more: the classes read from one product of all the automata (the chain
    // below builds a product per class and pattern, and one per class of the printable keys);
    // where that product does not fit, or a pattern is refused (a schema error), the chain decides
    // (and names the error as it always has); any other error is a bug and is not hidden.
    if (pats.length >= 2 && pats.length <= 30) {
      try {
        const classes = this.keyPartitionAtOnce(pats, universe, ap, limits, branchy);
        if (classes) return classes;
      } catch (e) {
        if (!(e instanceof StructuredError)) throw e;
      }
    }
    let classes = [{ set: [] as number[], d: universe }];
    const Ps = pats.map(({ p }) => this.patternDfa(p, limits));
    Ps.forEach((P, i) => {
      const next: typeof classes = [];
      for (const c of classes) {
        // (Every string ∩ P is P itself: the same automaton, its grammar symbols shared.)
        const inP = c.d === all ? P : intersect(c.d, P, limits), outP = minus(c.d, P, limits);
        if (!isEmpty(inP)) next.push({ set: [...c.set, i], d: inP });
        if (!isEmpty(outP)) next.push({ set: c.set, d: outP });
      }
      if (next.length > 32) throw new UnsupportedKeywordError('patternProperties', jp(ptr, 'patternProperties'), `${next.length} combinations of overlapping patterns (at most 32)`);
      classes = next;
    });
    // Keys matching no pattern follow additionalProperties; when written: unescaped (unmatchedKeyChars).
    return classes.filter((c) => c.set.length > 0 || ap !== false).map((c) => (c.set.length === 0 ? { set: c.set, d: intersect(c.d, charsDfa(unmatchedKeyChars(Ps, branchy)), limits) } : c));
  }

  /** A pattern's automaton; a pattern met in several objects (a definition's patternProperties inlined) is one. */
  private patternDfa(p: string, limits: { maxStates: number; what: string }): Dfa {
    let P = this.patternDfas.get(p);
    if (P === undefined) { P = regexDfa(p, true, { ...limits, tails: this.regexTails }); this.patternDfas.set(p, P); }
    return P;
  }

  /**
   * keyPartition's classes from one product of the universe and every pattern (productGraph): a
   * class per set of patterns that some key matches exactly, in the chain's order (a pattern's
   * class before the rest, pattern by pattern), each the automaton the chain builds
   * (productClass); null where the chain would refuse the classes (more than 32 after a pattern).
   */
  private keyPartitionAtOnce(pats: Array<{ p: string }>, universe: Dfa, ap: JsonSchema | undefined, limits: { maxStates: number; what: string }, branchy: boolean): Array<{ set: number[]; d: Dfa }> | null {
    const Ps = pats.map(({ p }) => this.patternDfa(p, limits));
    const g = productGraph([universe, ...Ps], limits);
    // The sets of patterns keys match (bit i + 1: pattern i), each once.
    const sigs = [...new Set(g.acc.filter((bits) => bits & 1).map((bits) => bits >>> 1))];
    // The chain's count of classes after each pattern (its error past 32).
    for (let i = 0; i < pats.length; i++) {
      const mask = 2 ** (i + 1) - 1;
      if (new Set(sigs.map((x) => x & mask)).size > 32) return null;
    }
    const setOf = (x: number): number[] => { const out: number[] = []; for (let i = 0; i < pats.length; i++) if (x & (1 << i)) out.push(i); return out; };
    // The chain's order: pattern 0's classes first, within them pattern 1's, …; the rest last.
    const bitRev = (x: number): number => { let r = 0; for (let i = 0; i < pats.length; i++) if (x & (1 << i)) r |= 1 << (pats.length - 1 - i); return r; };
    sigs.sort((x, y) => bitRev(y) - bitRev(x));
    const out: Array<{ set: number[]; d: Dfa }> = [];
    for (const x of sigs) {
      if (x === 0 && ap === false) continue;
      out.push({ set: setOf(x), d: productClass(g, (x << 1) | 1, x === 0 ? unmatchedKeyChars(Ps, branchy) : undefined) });
    }
    return out;
  }

  private keyedMembers(ptr: string, pats: Array<{ p: string; schema: JsonSchema }>, keyLang: Dfa | null, names: string[], mode: string, ap: JsonSchema | undefined, also?: JsonSchema): Sym[] | null {
    if (mode === 'forbid') return null;
    const b = this.b, ws = this.ws;
    const limits = { maxStates: 50_000, what: `the keys of the object at ${ptr || '#'}` };
    const refuse = (e: unknown): never => {
      if (e instanceof ComplexityError || e instanceof RegexError) throw new UnsupportedKeywordError(pats.length ? 'patternProperties' : 'propertyNames', jp(ptr, pats.length ? 'patternProperties' : 'propertyNames'), e.message);
      throw e;
    };
    // Objects with the same patterns, names and propertyNames (a definition inlined in many places) share the partition.
    const memoKey = `${JSON.stringify(pats.map((x) => x.p))}|${keyLang === null ? '' : this.dfaId(keyLang)}|${JSON.stringify(names)}|${mode}|${ap === false}`;
    let classes: Array<{ set: number[]; d: Dfa }> = this.keyClasses.get(memoKey) ?? [];
    if (!this.keyClasses.has(memoKey)) try {
      // The partition by the patterns alone is shared by objects with other names (a definition's
      // patternProperties inlined beside different properties): only the names are taken out here.
      const branchy = namesBranch(names) > NAMES_BRANCH_WIDE;
      const partKey = `${JSON.stringify(pats.map((x) => x.p))}|${keyLang === null ? '' : this.dfaId(keyLang)}|${mode}|${ap === false}|${branchy}`;
      let parts = this.keyParts.get(partKey);
      if (parts === undefined) { parts = this.keyPartition(pats, keyLang, mode, ap, limits, ptr, branchy); this.keyParts.set(partKey, parts); }
      classes = parts.map((c) => {
        const own = names.filter((n) => c.d.matches(n));
        return { set: c.set, d: own.length ? minusNames(c.d, own, limits) : c.d };
      });
      this.keyClasses.set(memoKey, classes);
    } catch (e) { refuse(e); }
    // `also`: a schema every value must match too (a witness member's, see objectSym).
    const and = (x: JsonSchema): JsonSchema => (also === undefined ? x : { allOf: [x, also] });
    const alts: Sym[][] = [];
    for (const { set, d } of classes) {
      if (isEmpty(d)) continue;
      let v: Sym;
      if (set.length === 0) v = this.value(and(ap ?? true), jp(ptr, 'additionalProperties'));
      else if (set.length === 1) v = this.value(and(pats[set[0]].schema), jp(ptr, 'patternProperties', pats[set[0]].p));
      else {
        try { v = this.value(and({ allOf: set.map((i) => pats[i].schema) }), jp(ptr, 'patternProperties', pats[set[0]].p)); }
        catch (e) {
          if (e instanceof UnsupportedKeywordError) throw new UnsupportedKeywordError('patternProperties', jp(ptr, 'patternProperties'), `keys matching ${set.map((i) => `/${pats[i].p}/`).join(' and ')} (${e.message})`);
          throw e;
        }
      }
      let keySyms = this.dfaSymsOf.get(d);
      if (keySyms === undefined) { keySyms = languageSyms(b, d, 'json'); this.dfaSymsOf.set(d, keySyms); }
      alts.push([...this.lit('"'), ...keySyms, ...this.lit('"'), ...ws, ...this.lit(':'), ...ws, v, ...ws]);
    }
    return alts.length ? [b.alt('extra-member', alts)] : null;
  }

  /**
   * The strings a schema accepts, as a DFA (for propertyNames: keys are strings); null when it
   * accepts every string. type, pattern, format, minLength/maxLength, enum/const, anyOf, allOf and
   * $ref are followed; keywords of other types do not constrain strings; the rest is refused.
   */
  keyLanguage(s0: JsonSchema, ptr: string, depth = 0): Dfa | null {
    if (depth > 16) throw new UnsupportedKeywordError('propertyNames', ptr, 'recursive reference');
    const s = this.normalize(s0, ptr);
    if (s === true) return null;
    if (s === false) return emptyDfa();
    if (s.$ref !== undefined) return this.keyLanguage(this.resolve(s.$ref, jp(ptr, '$ref')).schema, ptr, depth + 1);
    const limits = { what: `propertyNames at ${ptr}` };
    try {
      if (s.anyOf !== undefined || s.oneOf !== undefined) {
        if (s.oneOf !== undefined) throw new UnsupportedKeywordError('propertyNames', jp(ptr, 'oneOf'), 'oneOf of string languages');
        if (!Array.isArray(s.anyOf) || s.anyOf.length === 0) throw new InvalidSchemaError('anyOf', jp(ptr, 'anyOf'), 'must be a non-empty array');
        const rest: Obj = { ...s };
        delete rest.anyOf;
        let d: Dfa | null = emptyDfa();
        for (const [i, br] of (s.anyOf as JsonSchema[]).entries()) {
          const x = this.keyLanguage({ allOf: [rest, br] }, jp(ptr, 'anyOf', i), depth + 1);
          if (x === null) return null;
          d = union(d!, x, limits);
        }
        return d;
      }
      if (this.typesOf(s, ptr).indexOf('string') < 0) return emptyDfa();
      let d = this.stringLanguage(s, ptr);
      if (s.enum !== undefined || s.const !== undefined) {
        const vals = s.const !== undefined ? [s.const] : Array.isArray(s.enum) ? s.enum : null;
        if (vals === null) throw new InvalidSchemaError('enum', jp(ptr, 'enum'), 'must be an array');
        let strs = vals.filter((v): v is string => typeof v === 'string');
        if (s.const !== undefined && Array.isArray(s.enum)) strs = strs.filter((v) => (s.enum as unknown[]).includes(v));
        const e = stringsDfa(strs);
        d = d ? intersect(d, e, limits) : e;
      }
      // Values excluded by not (enum / const): the strings among them are left out.
      const ex = ((s[NOT_IN] ?? []) as unknown[]).filter((v): v is string => typeof v === 'string');
      if (ex.length) d = minusStrings(d ?? charsDfa(), new Set(ex), limits);
      return d;
    } catch (e) {
      if (e instanceof ComplexityError) throw new UnsupportedKeywordError('propertyNames', ptr, e.message);
      throw e;
    }
  }

  /** A JSON string key that is none of `names` (nor empty, with `nonEmpty`): printable ASCII without escapes (the complement of a trie). */
  private keyExcluding(names: string[], nonEmpty: boolean): Sym {
    // Objects with the same declared names (a definition inlined many times) share one rule.
    return this.b.cached(`extra-key:${nonEmpty}:${JSON.stringify(names)}`, () => this.keyTrie(names, nonEmpty));
  }

  /**
   * An undeclared key: any key of printable ASCII without escapes but the names (one rule per
   * node of their trie, named FREE_KEY_NODE: ByteAutomaton recognises those frames as closed
   * under plain characters without walking the trie, see closureByStacks).
   */
  /** keyTrie's node rules by their rest (see there): by the id of its sequence in trieIds. */
  private readonly trieNodes = new Map<number, Sym>();
  private readonly trieIds = new SeqInterner();
  /** Per byte x: the class of the key characters but x (0: not made yet). */
  private readonly keyCharsBut = new Int32Array(256);
  /** keyTrie's node rules of one child (a key character) by a number: (child rule × 256 + byte) × 2 + quoted. */
  private readonly trieChains = new Map<number, Sym>();

  private keyTrie(names: string[], nonEmpty: boolean): Sym {
    const b = this.b;
    // The names' bytes sorted (a name before those it begins): the trie's nodes are ranges of
    // them, without a map per node (Kubernetes objects of many long names: 40,000 maps a schema).
    // Children are taken in the order the names first meet them, as a trie built name by name.
    const keys = names.map((n, i) => ({ k: keyBytes(n), i }));
    keys.sort((x, y) => {
      const a = x.k, c = y.k, n = Math.min(a.length, c.length);
      for (let j = 0; j < n; j++) if (a.charCodeAt(j) !== c.charCodeAt(j)) return a.charCodeAt(j) - c.charCodeAt(j);
      return a.length - c.length || x.i - y.i;
    });
    const quote = b.cls([0x22]);
    const free = b.cached('key-free', () => b.seq('key-free', [...b.repeat('key-char', [b.cls(keyChar)], 0, Infinity), quote]));
    const bits = new Uint16Array(16);
    const chain: number[] = [];
    let top = 0;
    // Nodes with the same rest (whether a name ends there, and the same children) are one rule,
    // in this trie and the tries of other objects: the names' tails are shared.
    const node = (lo: number, hi: number, d0: number, root = false): Sym => {
      // Nodes of one child, a key character (most nodes: the rest of one long name), followed
      // down without recursion (a name of 2,048 characters is as many levels), then built from
      // the bottom up, each keyed by a number.
      // (The chain's levels, (whether a name ends there, byte) each, on one stack for the whole
      // trie: the levels of the nodes below are above them, and popped before these are read.)
      const base = top;
      let i = lo, d = d0, end = false;
      for (;;) {
        end = false;
        while (i < hi && keys[i].k.length === d) { end = true; i++; }
        if (!(i < hi && keys[hi - 1].k.charCodeAt(d) === keys[i].k.charCodeAt(d) && keyChar(keys[i].k.charCodeAt(d)))) break;
        chain[top++] = end ? 1 : 0; chain[top++] = keys[i].k.charCodeAt(d);
        d++;
      }
      const last = top;
      let k = branch(i, hi, d, end, root && last === base);
      top = base;
      for (let c = last - 2; c >= base; c -= 2) {
        const x = chain[c + 1];
        const quoted = chain[c] === 0 && !(root && c === base && nonEmpty);
        const nk = (k * 256 + x) * 2 + (quoted ? 1 : 0);
        const known = this.trieChains.get(nk);
        if (known !== undefined) { k = known; continue; }
        // (The class of the key characters but x: one lookup per byte.)
        let but = this.keyCharsBut[x];
        if (but === 0) {
          bits.set(KEY_CHAR_BITS);
          bits[x >>> 4] &= ~(1 << (x & 15));
          but = this.keyCharsBut[x] = b.clsOfBits(bits);
        }
        const only = b.byteCls(x);
        const alts: Sym[][] = quoted ? [[quote]] : [];
        alts.push([but, free], [only, k]);
        const r = b.rule(FREE_KEY_NODE, alts);
        this.trieChains.set(nk, r);
        k = r;
      }
      return k;
    };
    // A node of no child, of several, or of one that is not a key character (names [i, hi) at
    // depth d, past those that end there).
    const branch = (i: number, hi: number, d: number, end: boolean, root: boolean): Sym => {
      const groups: Array<{ x: number; lo: number; hi: number; first: number }> = [];
      while (i < hi) {
        const x = keys[i].k.charCodeAt(d);
        let j = i, first = keys[i].i;
        while (j < hi && keys[j].k.charCodeAt(d) === x) { if (keys[j].i < first) first = keys[j].i; j++; }
        groups.push({ x, lo: i, hi: j, first });
        i = j;
      }
      if (groups.length > 1) groups.sort((p, q) => p.first - q.first);
      const kids: Array<[number, Sym]> = [];
      for (const g of groups) if (keyChar(g.x)) kids.push([g.x, node(g.lo, g.hi, d + 1)]);
      const quoted = !end && !(root && nonEmpty);
      // Keyed by the sequence (quoted, then each child's byte and rule, then −1 − each byte that
      // is not a key character), hash-consed: no text per node.
      const ids = this.trieIds, at = ids.mark();
      ids.push(quoted ? 1 : 0);
      for (const [x, k] of kids) { ids.push(x); ids.push(k); }
      for (const g of groups) if (!keyChar(g.x)) ids.push(-1 - g.x);
      const key = ids.intern(at);
      const known = this.trieNodes.get(key);
      if (known !== undefined) return known;
      const alts: Sym[][] = [];
      if (quoted) alts.push([quote]);
      // The plain characters but the node's children.
      bits.set(KEY_CHAR_BITS);
      for (const g of groups) bits[g.x >>> 4] &= ~(1 << (g.x & 15));
      const others = b.clsOfBits(bits);
      alts.push([others, free]);
      for (const [x, k] of kids) alts.push([b.byteCls(x), k]);
      const r = b.rule(FREE_KEY_NODE, alts);
      this.trieNodes.set(key, r);
      return r;
    };
    return b.seq('extra-key', [quote, node(0, keys.length, 0, true)]);
  }

  private arraySym(s: Obj, ptr: string): Sym {
    const b = this.b, ws = this.ws;
    const { prefix, rest, min, max, unique } = this.arrayShape(s, ptr);
    if (min > max) return this.never(ptr, `minItems ${min} > maxItems ${max}`);
    // contains (and those of other allOf branches): for each, some item (a witness) also matches it.
    const needs = [...(s.contains !== undefined ? [s.contains as JsonSchema] : []), ...((s[CONTAINS_ALL] ?? []) as JsonSchema[])];
    for (const c of needs) if (typeof c !== 'boolean' && !isObj(c)) throw new InvalidSchemaError('contains', jp(ptr, 'contains'), 'must be a schema');
    if (unique && !this.distinctTuple(prefix, rest, max, ptr)) return this.uniqueArraySym(s, ptr, prefix, rest, min, max, needs);
    const prefixSyms = prefix.map((x, i) => this.value(x, jp(ptr, s.prefixItems !== undefined ? 'prefixItems' : 'items', i)));
    const restSym = rest === false ? null : this.value(rest, jp(ptr, s.prefixItems !== undefined || Array.isArray(s.items) ? (s.prefixItems !== undefined ? 'items' : 'additionalItems') : 'items'));
    const elem = (i: number): Sym | null => (i < prefixSyms.length ? prefixSyms[i] : restSym);
    // `seen` = the bit set of the contains already witnessed.
    if (needs.length > 4) throw new ComplexityError('contains across allOf branches', 4, `at ${ptr}`);
    const full = (1 << needs.length) - 1;
    const witness = new Map<string, Sym | null>();
    const wElem = (i: number, set: number): Sym | null => {
      const key = `${Math.min(i, prefix.length)}:${set}`;
      if (!witness.has(key)) {
        const base = i < prefix.length ? prefix[i] : rest;
        witness.set(key, base === false ? null : this.value({ allOf: [base, ...needs.filter((_, j) => set & (1 << j))] }, jp(ptr, 'contains')));
      }
      return witness.get(key)!;
    };
    const memo = new Map<string, Sym>();
    const top = Math.max(prefix.length, min);
    // A rule per index up to `top` (per set of witnesses): refused before building when they
    // cannot fit (minItems 1e9 built two million rules first, for seconds).
    const limit = b.limits.maxSymbols ?? 2_000_000;
    if (top * (full + 1) * 3 > limit) throw new ComplexityError('grammar size (symbols)', limit, `${min > prefix.length ? `minItems ${min}` : `${prefix.length} items`} at ${ptr || '#'}`);
    // Past the prefix and minItems, with no contains: (, item){0, max − i}, a bounded repetition
    // (a lazy chain: maxItems 131072 was 131,072 rules).
    const chain = needs.length === 0 && max < Infinity && restSym !== null;
    const A = (i: number, seen: number): Sym => {
      const key = `${i >= top && max === Infinity && i >= 1 ? -1 : i}:${seen}`;
      const m = memo.get(key);
      if (m !== undefined) return m;
      if (chain && i >= top && i >= 1 && i < max) {
        const r = b.seq('items', b.repeat('items', [...this.lit(','), ...ws, restSym, ...ws], 0, max - i));
        memo.set(key, r);
        return r;
      }
      const id = b.rule('items');
      memo.set(key, id);
      const alts: Sym[][] = [];
      if (i >= min && seen === full) alts.push([]);
      const e = elem(i), sep = i === 0 ? [] : [...this.lit(','), ...ws];
      if (i < max && e !== null) alts.push([...sep, e, ...ws, A(i + 1, seen)]);
      const open = full & ~seen;
      if (i < max) for (let set = open; set > 0; set = (set - 1) & open) { const w = wElem(i, set); if (w !== null) alts.push([...sep, w, ...ws, A(i + 1, seen | set)]); }
      b.define(id, alts);
      return id;
    };
    // A(i, ·) calls only A(i + 1, ·): built from the last index down, the recursion stays one
    // level deep (maxItems 10000 would otherwise overflow the call stack).
    const last = max === Infinity ? top + 1 : max;
    if (last > 500 && !chain) for (let i = last; i >= 1; i--) for (let seen = 0; seen <= full; seen++) if ((seen & full) === seen) A(i, seen);
    return b.seq('array', [...this.lit('['), ...ws, A(0, 0), ...this.lit(']')]);
  }

  // ---- uniqueItems ---------------------------------------------------------------------------
  // Exact in two cases: a tuple whose items are pairwise disjoint (by type, enum/const, …; no
  // constraint to add), and items of finite, small domains (enum, const, boolean, null, small
  // integer ranges, anyOf of those), where the recursion state is the set of values used so far
  // (the number of items is its size). Otherwise refused by name.

  /** Whether every array the shape allows has pairwise-disjoint items (a tuple of disjoint schemas, at most its length). */
  private distinctTuple(prefix: JsonSchema[], rest: JsonSchema, max: number, ptr: string): boolean {
    const n = Math.min(max, rest === false ? prefix.length : Infinity);
    if (n > prefix.length) return false;
    const parts = prefix.slice(0, n).map((x, i) => this.normalize(x, jp(ptr, 'items', i)));
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) if (!this.disjoint(parts[i], parts[j])) return false;
    return true;
  }

  /** The values of a schema when they are few (at most `limit`), else null. */
  private finiteDomain(x: JsonSchema, ptr: string, limit = 16, depth = 0): unknown[] | null {
    if (depth > 16) return null;
    const s = this.normalize(x, ptr);
    if (s === false) return [];
    if (s === true) return null;
    if (s.$ref !== undefined) { const t = this.resolve(s.$ref, jp(ptr, '$ref')); return this.finiteDomain(t.schema, t.ptr, limit, depth + 1); }
    let cands: unknown[] | null = null;
    if (s.enum !== undefined || s.const !== undefined) cands = enumValues(s) ?? null;
    else if (Array.isArray(s.anyOf)) {
      const rest: Obj = { ...s };
      delete rest.anyOf;
      cands = [];
      for (const [i, br] of (s.anyOf as JsonSchema[]).entries()) {
        const d = this.finiteDomain(br, jp(ptr, 'anyOf', i), limit, depth + 1);
        if (d === null) return null;
        cands.push(...d.filter((v) => { try { return validate(v, rest, this, ptr); } catch { return false; } }));
      }
      return dedupe(cands).length <= limit ? dedupe(cands) : null;
    } else if (s.type !== undefined && s.oneOf === undefined) {
      cands = [];
      for (const t of this.typesOf(s, ptr)) {
        if (t === 'boolean') cands.push(true, false);
        else if (t === 'null') cands.push(null);
        else if (t === 'integer' && typeof s.minimum === 'number' && typeof s.maximum === 'number' && s.maximum - s.minimum < limit) {
          for (let v = Math.ceil(s.minimum); v <= s.maximum; v++) cands.push(v);
        } else return null;
      }
    }
    if (cands === null) return null;
    try {
      const ok = dedupe(cands).filter((v) => validate(v, s, this, ptr));
      return ok.length <= limit ? ok : null;
    } catch (e) { if (e instanceof StructuredError) return null; throw e; }
  }

  private uniqueArraySym(s: Obj, ptr: string, prefix: JsonSchema[], rest: JsonSchema, min: number, max: number, needs: JsonSchema[]): Sym {
    const b = this.b, ws = this.ws;
    const refuse = (why: string) => new UnsupportedKeywordError('uniqueItems', jp(ptr, 'uniqueItems'), why);
    const restPtr = jp(ptr, s.prefixItems !== undefined ? 'items' : Array.isArray(s.items) ? 'additionalItems' : 'items');
    const doms = prefix.map((x, i) => this.finiteDomain(x, jp(ptr, s.prefixItems !== undefined ? 'prefixItems' : 'items', i)));
    const restDom = rest === false ? [] : this.finiteDomain(rest, restPtr);
    if (doms.some((d) => d === null) || restDom === null) throw refuse('items that are not enumerable (enum, const, boolean, null, a small integer range, at most 16 values) nor a tuple of disjoint items');
    const values = dedupe([...doms.flat(), ...restDom] as unknown[]);
    if (values.length > 16) throw refuse(`${values.length} distinct item values (at most 16 are tracked)`);
    const at = (v: unknown) => values.findIndex((u) => deepEqual(u, v));
    const domIdx = doms.map((d) => d!.map(at)), restIdx = restDom.map(at);
    // contains (arraySym's needs): the values each one accepts; an array ends only once every
    // one has a witness among the values used.
    if (needs.length > 16) throw new ComplexityError('contains across allOf branches', 16, `at ${ptr}`);
    const full = (1 << needs.length) - 1;
    const meets = values.map((v) => {
      let bits = 0;
      for (const [j, c] of needs.entries()) {
        try { if (validate(v, c, this, jp(ptr, 'contains'))) bits |= 1 << j; } catch (e) {
          if (e instanceof StructuredError) throw refuse(`contains beside it: ${e.message}`);
          throw e;
        }
      }
      return bits;
    });
    const lits = values.map((v) => this.lit(JSON.stringify(v)));
    // A(used): the items after those in `used` (a bit set of values; its size is the count so far).
    const memo = new Map<number, Sym | null>();
    let states = 0;
    const A = (used: number): Sym | null => {
      if (memo.has(used)) return memo.get(used)!;
      if (++states > 4096) throw refuse('too many sets of used values to track');
      let i = 0, met = 0;
      for (let u = used; u; u &= u - 1) { i++; met |= meets[31 - Math.clz32(u & -u)]; }
      const alts: Sym[][] = [];
      if (i >= min && met === full) alts.push([]);
      if (i < max) {
        for (const v of i < domIdx.length ? domIdx[i] : restIdx) {
          if (used & (1 << v)) continue;
          const r = A(used | (1 << v));
          if (r !== null) alts.push([...(i === 0 ? [] : [...this.lit(','), ...ws]), ...lits[v], ...ws, r]);
        }
      }
      const sym = alts.length === 0 ? null : b.rule('uitems', alts);
      memo.set(used, sym);
      return sym;
    };
    const items = A(0);
    if (items === null) return this.never(ptr, needs.length ? 'no array of distinct items satisfies minItems and contains' : 'no array of distinct items satisfies minItems');
    return b.seq('array', [...this.lit('['), ...ws, items, ...this.lit(']')]);
  }

  private arrayShape(s: Obj, ptr: string): { prefix: JsonSchema[]; rest: JsonSchema; min: number; max: number; unique: boolean } {
    let prefix: JsonSchema[] = [];
    let rest: JsonSchema = true;
    if (s.prefixItems !== undefined) {
      if (!Array.isArray(s.prefixItems)) throw new InvalidSchemaError('prefixItems', jp(ptr, 'prefixItems'), 'must be an array');
      prefix = s.prefixItems as JsonSchema[];
      rest = (s.items as JsonSchema | undefined) ?? true;
    } else if (Array.isArray(s.items)) {
      prefix = s.items as JsonSchema[];
      rest = (s.additionalItems as JsonSchema | undefined) ?? true;
    } else if (s.items !== undefined) rest = s.items as JsonSchema;
    const min = intKw(s, 'minItems', ptr) ?? 0;
    let max = intKw(s, 'maxItems', ptr) ?? Infinity;
    if (rest === false) max = Math.min(max, prefix.length);
    if (s.uniqueItems !== undefined && typeof s.uniqueItems !== 'boolean') throw new InvalidSchemaError('uniqueItems', jp(ptr, 'uniqueItems'), 'must be a boolean');
    return { prefix, rest, min, max, unique: s.uniqueItems === true && max > 1 };
  }

  // ---- YAML ---------------------------------------------------------------------------------
  // Block YAML: mappings as "key: value" lines and sequences as "- item" lines, indented by two
  // spaces per level; scalars as in JSON (double-quoted strings, numbers, true/false/null), and
  // empty or enum-valued containers in flow style ({} / [] / JSON), which YAML also reads.

  yamlValue(s0: JsonSchema, ptr: string, indent: number): Sym {
    return this.enter(ptr, () => {
      if (indent > 40) throw new ComplexityError('YAML nesting depth', 20, `at ${ptr}`);
      const s = this.normalize(s0, ptr);
      const b = this.b;
      // Inside a container a scalar follows "key:" / "-" after one space; a block starts on a new line.
      const sp = indent > 0 ? this.lit(' ') : [];
      if (s === true) return b.seq('yany', [...sp, this.anyValue()]);
      if (s === false) return this.never(ptr, 'schema is false');
      if (s.$ref !== undefined) return this.refSym(s.$ref, ptr, indent);
      const alts = this.combinators(s, ptr, (br, p) => this.yamlValue(br, p, indent));
      if (alts !== null) return alts;
      if (s.enum !== undefined || s.const !== undefined) return this.enumSym(s, ptr, (v) => [...sp, ...b.lit(JSON.stringify(v))]);
      const out: Sym[][] = [];
      for (const t of this.typesOf(s, ptr)) {
        if (t === 'object' || t === 'array') this.containerExclusions(s, ptr, t);
        if (t === 'object') out.push([this.yamlObject(s, ptr, indent)]);
        else if (t === 'array') out.push([this.yamlArray(s, ptr, indent)]);
        else if (t === 'null') { if (!excludes(s, null)) out.push([...sp, ...this.lit('null')]); }
        else if (t === 'boolean') { for (const x of [true, false]) if (!excludes(s, x)) out.push([...sp, ...this.lit(String(x))]); }
        else if (t === 'string') out.push([...sp, this.stringSym(s, ptr)]);
        else out.push([...sp, this.numberSym(s, ptr, t === 'integer')]);
      }
      if (out.length === 0) return this.never(ptr, 'no type is allowed');
      return b.alt('value', out);
    });
  }

  private yamlObject(s: Obj, ptr: string, indent: number): Sym {
    const b = this.b;
    const props = (s.properties ?? {}) as Obj;
    if (!isObj(props)) throw new InvalidSchemaError('properties', jp(ptr, 'properties'), 'must be an object');
    const req = new Set((s.required ?? []) as string[]);
    for (const k of ['patternProperties', 'propertyNames']) if (s[k] !== undefined && !(isObj(s[k]) && Object.keys(s[k] as Obj).length === 0) && s[k] !== true) throw new UnsupportedKeywordError(k, jp(ptr, k), 'in YAML output');
    let ap = s.additionalProperties as JsonSchema | undefined;
    if (this.opts.additionalProperties === 'forbid' || (this.opts.additionalProperties === 'declared' && ap === undefined)) ap = false;
    if (ap !== false && !(ap === undefined && Object.keys(props).length > 0)) {
      if (ap !== undefined || Object.keys(props).length === 0) {
        // Free-form mappings: flow JSON.
        if (ap === undefined || ap === true) return b.seq('yfree', [...(indent > 0 ? this.lit(' ') : []), this.value({ type: 'object' }, ptr)]);
        throw new UnsupportedKeywordError('additionalProperties', jp(ptr, 'additionalProperties'), 'a schema for extra properties in YAML output');
      }
    }
    const names = Object.keys(props);
    if (s[EXTRA] !== undefined) throw new UnsupportedKeywordError('not', ptr, 'the complement of additionalProperties in YAML output');
    for (const r of req) if (!names.includes(r)) throw new UnsupportedKeywordError('required', jp(ptr, 'required'), `'${r}' is not in properties (YAML output)`);
    for (const k of ['maxProperties', 'dependencies', 'dependentRequired', 'dependentSchemas']) if (s[k] !== undefined) throw new UnsupportedKeywordError(k, jp(ptr, k), 'in YAML output');
    if ((intKw(s, 'minProperties', ptr) ?? 0) > req.size) throw new UnsupportedKeywordError('minProperties', jp(ptr, 'minProperties'), `more than the ${req.size} required properties (YAML output)`);
    const pad = ' '.repeat(indent);
    const entries = names.map((name) => ({
      required: req.has(name),
      kv: [...this.lit(`\n${pad}${JSON.stringify(name)}:`), this.yamlValue(props[name] as JsonSchema, jp(ptr, 'properties', name), indent + 2)],
    }));
    const memo = new Map<string, Sym>();
    const R = (i: number, first: boolean): Sym => {
      const key = `${i}:${first}`;
      if (memo.has(key)) return memo.get(key)!;
      const id = b.rule('ymembers');
      memo.set(key, id);
      const alts: Sym[][] = [];
      if (i === names.length) alts.push(first ? this.lit(indent > 0 ? ' {}' : '{}') : []);
      else {
        alts.push([...entries[i].kv, R(i + 1, false)]);
        if (!entries[i].required) alts.push([R(i + 1, first)]);
      }
      b.define(id, alts);
      return id;
    };
    return R(0, true);
  }

  private yamlArray(s: Obj, ptr: string, indent: number): Sym {
    const b = this.b;
    if (s.contains !== undefined || s[CONTAINS_ALL] !== undefined) throw new UnsupportedKeywordError('contains', jp(ptr, 'contains'), 'in YAML output');
    const { prefix, rest, min, max, unique } = this.arrayShape(s, ptr);
    if (min > max) return this.never(ptr, `minItems ${min} > maxItems ${max}`);
    if (unique && !this.distinctTuple(prefix, rest, max, ptr)) throw new UnsupportedKeywordError('uniqueItems', jp(ptr, 'uniqueItems'), 'in YAML output');
    const pad = ' '.repeat(indent);
    const item = (x: JsonSchema, p: string) => [...this.lit(`\n${pad}-`), this.yamlValue(x, p, indent + 2)];
    const prefixSyms = prefix.map((x, i) => item(x, jp(ptr, 'items', i)));
    const restSyms = rest === false ? null : item(rest, jp(ptr, 'items'));
    const memo = new Map<number, Sym>();
    const top = Math.max(prefix.length, min);
    const A = (i: number): Sym => {
      const key = i >= top && max === Infinity && i >= 1 ? -1 : i;
      if (memo.has(key)) return memo.get(key)!;
      const id = b.rule('yitems');
      memo.set(key, id);
      const alts: Sym[][] = [];
      if (i >= min) alts.push(i === 0 ? this.lit(indent > 0 ? ' []' : '[]') : []);
      const e = i < prefixSyms.length ? prefixSyms[i] : restSyms;
      if (i < max && e !== null) alts.push([...e, A(i + 1)]);
      b.define(id, alts);
      return id;
    };
    return A(0);
  }
}

// ---- helpers ----------------------------------------------------------------------------------

/** keyOf's ids of the constants (the first ids of newContentIds), and the tags that begin a sequence (negative: no id). */
const K_TRUE = 0, K_FALSE = 1, K_NULL = 2, K_UNDEFINED = 3, K_MINUS_ZERO = 4;
const TAG_ARRAY = -1, TAG_OBJECT = -2, TAG_HOLE = -3;
function newContentIds(): SeqInterner {
  const ids = new SeqInterner();
  for (let k = 0; k <= K_MINUS_ZERO; k++) ids.fresh();
  return ids;
}
/** Whether the schema's exclusions (NOT_IN) name the value. */
const excludes = (s: Obj, v: unknown) => ((s[NOT_IN] ?? []) as unknown[]).some((e) => deepEqual(e, v));
/** Keywords the normalizer rewrites into allOf parts. */
const hasLogic = (x: Obj) => x.not !== undefined || x.if !== undefined || x.then !== undefined || x.else !== undefined;
/** A schema every instance satisfies (true, or only annotations). */
const trivial = (x: unknown) => x === true || (isObj(x) && Object.keys(x).every(ignored));
/** Most states of a length product whose maxLength was lowered (see boundedLanguage). */
const LOWERED_STATES = 2000;

/**
 * d's strings of minL..maxL code points. Where the exact product (d's states × the counter) grows
 * past its bound and maxLength is large, maxLength is lowered to the largest count that fits in
 * LOWERED_STATES states, if that is still at least 64 and minLength: a smaller language (sound; a
 * documented gap: an email with pattern "[0-9]" under maxLength 1024 is accepted up to 180 characters). Otherwise the
 * ComplexityError stands.
 */
function boundedLanguage(d: Dfa, minL: number, maxL: number, what: string): Dfa {
  return lengthBounded(minimize(d), minL, loweredMax(d, minL, maxL), { what });
}

/** The maxLength boundedLanguage applies to d's strings: maxL, or lower where the product would be too large. */
function loweredMax(d: Dfa, minL: number, maxL: number): number {
  const m = minimize(d);
  // (The product has at most m.size × (maxL + 1) states; where that is past the bound, lowered at once.)
  if (maxL === Infinity || m.size * (maxL + 1) <= DFA_MAX_STATES) return maxL;
  const k = Math.floor(LOWERED_STATES / m.size) - 1;
  return k < Math.max(minL, 64) || k >= maxL ? maxL : k;
}

/**
 * minProperties / maxProperties as the member recursions count: bounds that cannot bind are
 * dropped (fewer states) — minProperties up to the required count, maxProperties from the number
 * of entries on when no extra member is allowed. The count is capped at maxProperties, or at
 * max(minProperties, 1) (0 = nothing yet, no comma): `next` counts one more member.
 */
function propertyCount(s: Obj, ptr: string, entries: Array<{ required: boolean }>, extra: unknown[] | null): { minP: number; maxP: number | undefined; next: (c: number) => number } {
  let minP = intKw(s, 'minProperties', ptr) ?? 0, maxP = intKw(s, 'maxProperties', ptr);
  if (minP <= entries.filter((e) => e.required).length) minP = 0;
  if (maxP !== undefined && extra === null && maxP >= entries.length) maxP = undefined;
  const cap = maxP ?? Math.max(minP, 1);
  // With extra members, one rule per count up to the cap: refused before building when they
  // cannot fit the grammar (maxProperties 1e9 built two million rules first, for seconds).
  if (extra !== null && cap * 6 > 2_000_000) throw new ComplexityError('grammar size (symbols)', 2_000_000, `${maxP !== undefined ? 'maxProperties' : 'minProperties'} ${cap} at ${ptr || '#'}`);
  return { minP, maxP, next: (c: number) => (maxP === undefined ? Math.min(c + 1, cap) : c + 1) };
}

function intKw(s: Obj, k: string, ptr: string): number | undefined {
  const v = s[k];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new InvalidSchemaError(k, jp(ptr, k), 'must be a non-negative integer');
  return v;
}

/** multipleOf's divisor (the keyword present), checked: a finite number greater than 0. */
function multipleOfKw(s: Obj, ptr: string): number {
  const m = s.multipleOf;
  if (typeof m !== 'number' || !Number.isFinite(m) || m <= 0) throw new InvalidSchemaError('multipleOf', jp(ptr, 'multipleOf'), 'must be a number greater than 0');
  return m;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0];
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const t = d[j];
      d[j] = Math.min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = t;
    }
  }
  return d[b.length];
}

/** The decimal text of v / 10^k (v an integer), without trailing fraction zeros. */
function decimalText(v: bigint, k: number): string {
  const neg = v < 0n, d = (neg ? -v : v).toString().padStart(k + 1, '0');
  const int = d.slice(0, d.length - k), frac = d.slice(d.length - k).replace(/0+$/, '');
  return (neg ? '-' : '') + int + (frac ? '.' + frac : '');
}

function decimals(x: number): number {
  const s = String(x);
  if (s.includes('e')) return 20;
  const i = s.indexOf('.');
  return i < 0 ? 0 : s.length - i - 1;
}

/**
 * Digit strings F of 1 to n digits with 0.F ≤ 0.f (le) or 0.F ≥ 0.f, strictly with `strict` (f: the
 * fraction digits of a bound, its last one nonzero, or none); null when there is none.
 */
function fracDigits(b: GrammarBuilder, f: string, le: boolean, strict: boolean, n: number): Sym | null {
  const digit = b.byteRange(0x30, 0x39), zero = b.cls([0x30]);
  const any = (m: number): Sym[] => b.repeat('fdigits', [digit], 0, m);
  const memo = new Map<string, Sym | null>();
  // The rest F' (at most `left` digits) against f from digit i; `first`: F' is all of F (not empty).
  const rest = (i: number, left: number, first: boolean): Sym | null => {
    const key = `${i}:${left}:${first}`;
    if (memo.has(key)) return memo.get(key)!;
    const alts: Sym[][] = [];
    if (i < f.length) {
      const d = f.charCodeAt(i);
      // F' ending here: 0 < 0.f[i..] (its last digit is nonzero).
      if (le && !first) alts.push([]);
      if (left > 0) {
        if (le && d > 0x30) alts.push([b.byteRange(0x30, d - 1), ...any(left - 1)]);
        if (!le && d < 0x39) alts.push([b.byteRange(d + 1, 0x39), ...any(left - 1)]);
        const r = rest(i + 1, left - 1, false);
        if (r !== null) alts.push([b.cls([d]), r]);
      }
    } else if (le) {
      if (!strict) alts.push(b.repeat('zeros', [zero], 0, left));
    } else if (!strict) alts.push(any(left));
    else if (left > 0) {
      // Some digit after f's must be nonzero.
      alts.push([b.byteRange(0x31, 0x39), ...any(left - 1)]);
      const r = rest(i, left - 1, false);
      if (r !== null) alts.push([zero, r]);
    }
    const sym = alts.length === 0 ? null : b.rule('frac-bound', alts);
    memo.set(key, sym);
    return sym;
  };
  return rest(0, n, true);
}

/** Alternatives (digit classes) matching the equal-length digit strings in [x, y]. */
function sameLen(b: GrammarBuilder, x: string, y: string): Sym[][] {
  const n = x.length;
  if (n === 0) return [[]];
  const D = (c: string) => b.cls([c.charCodeAt(0)]);
  const R = (lo: number, hi: number) => b.byteRange(0x30 + lo, 0x30 + hi);
  const any = (k: number) => Array.from({ length: k }, () => R(0, 9));
  if (x === y) return [[...x].map(D)];
  if (x[0] === y[0]) return sameLen(b, x.slice(1), y.slice(1)).map((a) => [D(x[0]), ...a]);
  const x0 = +x[0], y0 = +y[0], xr = x.slice(1), yr = y.slice(1);
  const xZero = /^0*$/.test(xr), yNine = /^9*$/.test(yr);
  const out: Sym[][] = [];
  if (!xZero) out.push(...sameLen(b, xr, '9'.repeat(n - 1)).map((a) => [D(x[0]), ...a]));
  const mLo = xZero ? x0 : x0 + 1, mHi = yNine ? y0 : y0 - 1;
  if (mLo <= mHi) out.push([R(mLo, mHi), ...any(n - 1)]);
  if (!yNine) out.push(...sameLen(b, '0'.repeat(n - 1), yr).map((a) => [D(y[0]), ...a]));
  return out;
}

/** Non-negative integers in [lo, hi] without leading zeros. */
function nonNeg(b: GrammarBuilder, lo: number, hi: number): Sym[][] {
  const out: Sym[][] = [];
  for (let d = String(lo).length; d <= String(hi).length; d++) {
    const a = Math.max(lo, d === 1 ? 0 : 10 ** (d - 1)), z = Math.min(hi, 10 ** d - 1);
    if (a <= z) out.push(...sameLen(b, String(a), String(z)));
  }
  return out;
}

/** Integers in [lo, hi] as JSON writes them (no "-0"). */
export function intRange(b: GrammarBuilder, lo: number, hi: number): Sym {
  return b.cached(`int:${lo}:${hi}`, () => {
    const alts: Sym[][] = [];
    if (hi >= 0) alts.push(...nonNeg(b, Math.max(lo, 0), hi));
    if (lo < 0) {
      const minus = b.cls([0x2d]);
      alts.push(...nonNeg(b, hi < 0 ? -hi : 1, -lo).map((a) => [minus, ...a]));
    }
    return b.rule('int', alts);
  });
}

// ---- formats ----------------------------------------------------------------------------------
// Each string format is a regular language written from its RFC's grammar, and is a subset of
// ajv-formats' full definition (the reference the tests compare with, in both directions). Where
// it is smaller than ajv-formats the gap is named here:
//  - date-time / time: RFC 3339 forms only ("T"/"t" separator, "Z"/"z" or ±hh:mm offset), not the
//    space separator or ±hhmm / ±hh offsets ajv also takes; a leap second (:60) only at 23:59 in
//    UTC (Z or ±00:00).
//  - hostname (RFC 1123): the 253-character limit is kept by allowing up to 3 labels of up to 63
//    characters followed by up to 4 labels of up to 14 (names with more or longer labels are left out).
//  - uri / uri-reference: RFC 3986 exactly; ajv-formats also takes some strings RFC 3986 rejects
//    (text after "scheme:/" or "scheme://" that is not an authority, ':' in the first segment of a
//    relative reference, '"'), and rejects an absolute URI with an empty path ("urn:"), as here.
//  - url: host names with a letter TLD (no IP addresses, no user:password@, ASCII labels).
//  - byte: one line of base64 (ajv's check is per line).
// With minLength/maxLength a format (or pattern) is intersected with the length bound; where that
// product is too large, a large maxLength is lowered to what fits (boundedLanguage), else refused.
const HEX = '[0-9a-fA-F]';
const DEC_OCTET = String.raw`(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)`;
const IPV4 = String.raw`${DEC_OCTET}(?:\.${DEC_OCTET}){3}`;
const H16 = `${HEX}{1,4}`;
const LS32 = `(?:${H16}:${H16}|${IPV4})`;
/** RFC 4291 §2.2 text forms, as RFC 3986's IPv6address: 8 groups, "::" for one run of zero groups, an IPv4 tail. */
const IPV6 = '(?:' + [
  `(?:${H16}:){6}${LS32}`,
  `::(?:${H16}:){5}${LS32}`,
  `(?:${H16})?::(?:${H16}:){4}${LS32}`,
  `(?:(?:${H16}:){0,1}${H16})?::(?:${H16}:){3}${LS32}`,
  `(?:(?:${H16}:){0,2}${H16})?::(?:${H16}:){2}${LS32}`,
  `(?:(?:${H16}:){0,3}${H16})?::${H16}:${LS32}`,
  `(?:(?:${H16}:){0,4}${H16})?::${LS32}`,
  `(?:(?:${H16}:){0,5}${H16})?::${H16}`,
  `(?:(?:${H16}:){0,6}${H16})?::`,
].join('|') + ')';
// RFC 3986 appendix A.
const PCT = `%${HEX}${HEX}`;
const PCHAR = `(?:[a-zA-Z0-9._~!$&'()*+,;=:@-]|${PCT})`;
const PCHAR_NC = `(?:[a-zA-Z0-9._~!$&'()*+,;=@-]|${PCT})`;
const SEGMENT = `${PCHAR}*`;
const AUTHORITY = `(?:(?:[a-zA-Z0-9._~!$&'()*+,;=:-]|${PCT})*@)?` +
  String.raw`(?:\[(?:${IPV6}|[vV]${HEX}+\.[a-zA-Z0-9._~!$&'()*+,;=:-]+)\]|(?:[a-zA-Z0-9._~!$&'()*+,;=-]|${PCT})*)(?::\d*)?`;
const PATH_ABEMPTY = `(?:/${SEGMENT})*`;
const PATH_ABSOLUTE = `/(?:${PCHAR}+(?:/${SEGMENT})*)?`;
const PATH_ROOTLESS = `${PCHAR}+(?:/${SEGMENT})*`;
const PATH_NOSCHEME = `${PCHAR_NC}+(?:/${SEGMENT})*`;
const QUERY_FRAGMENT = String.raw`(?:\?(?:${PCHAR}|[/?])*)?(?:#(?:${PCHAR}|[/?])*)?`;
const SCHEME = '[a-zA-Z][a-zA-Z0-9+.-]*:';
// ajv-formats (and so this compiler) leaves out an absolute URI with an empty path ("urn:" or "x:?q").
const URI = `${SCHEME}(?://${AUTHORITY}${PATH_ABEMPTY}|${PATH_ABSOLUTE}|${PATH_ROOTLESS})${QUERY_FRAGMENT}`;
const URI_REFERENCE = `(?:${SCHEME}(?://${AUTHORITY}${PATH_ABEMPTY}|${PATH_ABSOLUTE}|${PATH_ROOTLESS})?|//${AUTHORITY}${PATH_ABEMPTY}|${PATH_ABSOLUTE}|${PATH_NOSCHEME})?${QUERY_FRAGMENT}`;
const label = (max: number) => `[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,${max - 2}}[a-zA-Z0-9])?`;
const HOSTNAME = String.raw`${label(63)}(?:\.${label(63)}){0,2}(?:\.${label(14)}){0,4}\.?`;
const DATE_MD = String.raw`(?:0[1-9]|1[0-2])-(?:0[1-9]|1\d|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31`;
const LEAP_YEAR = String.raw`(?:\d\d(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26]|00)00)`;
const DATE = String.raw`(?:\d{4}-(?:${DATE_MD})|${LEAP_YEAR}-02-29)`;
const TIME = String.raw`(?:(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?(?:[zZ]|[+-](?:[01]\d|2[0-3]):[0-5]\d)|23:59:60(?:\.\d+)?(?:[zZ]|[+-]00:00))`;
const DURATION_TIME = String.raw`T(?:\d+H(?:\d+M)?(?:\d+S)?|\d+M(?:\d+S)?|\d+S)`;
const JSON_POINTER = '(?:/(?:[^~/]|~[01])*)*';

/** String formats: regular languages within ajv-formats' full definitions. */
const FORMATS: Record<string, string> = {
  date: DATE,
  time: TIME,
  'date-time': `${DATE}[tT]${TIME}`,
  duration: String.raw`P(?:\d+W|(?:\d+Y(?:\d+M)?(?:\d+D)?|\d+M(?:\d+D)?|\d+D)(?:${DURATION_TIME})?|${DURATION_TIME})`,
  // A subset of ajv-formats' email (lower case; local part of letters, digits, _ + - and dots; host
  // labels of letters and digits with inner hyphens, as hostnames; a top-level domain of two or
  // more letters): ajv's whole language, with its large punctuation alphabet in the local part,
  // made masks several times slower on real vocabularies (bench structured), so the narrower one
  // stays, a documented gap.
  email: '[a-z0-9_+-]+(?:\\.[a-z0-9_+-]+)*@(?:[a-z0-9]+(?:-[a-z0-9]+)*\\.)+[a-z]{2,}',
  uuid: `(?:[uU][rR][nN]:[uU][uU][iI][dD]:)?${HEX}{8}-(?:${HEX}{4}-){3}${HEX}{12}`,
  uri: URI,
  'uri-reference': URI_REFERENCE,
  url: String.raw`(?:[hH][tT][tT][pP][sS]?|[fF][tT][pP])://[a-zA-Z0-9]+(?:-[a-zA-Z0-9]+)*(?:\.[a-zA-Z0-9]+(?:-[a-zA-Z0-9]+)*)*\.[a-zA-Z]{2,}(?::\d{2,5})?(?:/\S*)?`,
  hostname: HOSTNAME,
  ipv4: IPV4,
  ipv6: IPV6,
  byte: '(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?',
  'json-pointer': JSON_POINTER,
  'relative-json-pointer': String.raw`(?:0|[1-9]\d*)(?:#|${JSON_POINTER})`,
};
/** ajv-formats' formats of numbers: int32 and int64 make the value an integer (int32 in range); float and double accept every number. */
const NUMBER_FORMATS = ['int32', 'int64', 'float', 'double'];
/** ajv-formats' formats that accept every string. */
const ANY_FORMATS = ['password', 'binary'];

/** ajv-formats' formats this compiler cannot express (ignoring them would accept invalid instances). */
const REFUSED_FORMATS = ['regex', 'uri-template', 'iso-time', 'iso-date-time', 'json-pointer-uri-fragment'];

/**
 * 'string': compiled (FORMATS); 'number' / 'any': see above; 'refuse': ajv-formats checks it and
 * this compiler cannot, so ignoring it would accept invalid instances; 'unknown': an annotation,
 * ignored (refused in strict mode).
 */
export function formatKind(name: string): 'string' | 'number' | 'any' | 'refuse' | 'unknown' {
  if (Object.prototype.hasOwnProperty.call(FORMATS, name)) return 'string';
  if (NUMBER_FORMATS.includes(name)) return 'number';
  if (ANY_FORMATS.includes(name)) return 'any';
  if (REFUSED_FORMATS.includes(name)) return 'refuse';
  return 'unknown';
}

/** Formats whose language here is exactly ajv-formats' (the tests compare them both ways). */
const EXACT_FORMATS = new Set(['date', 'uuid', 'ipv4', 'ipv6', 'duration', 'json-pointer', 'relative-json-pointer']);
/**
 * For the other formats, a necessary condition of ajv-formats' check (a larger language): a value
 * that fails it is certainly rejected by ajv-formats.
 */
const FORMAT_NECESSARY: Record<string, RegExp> = {
  uri: /^[a-zA-Z][a-zA-Z0-9+.-]*:/,
  hostname: /^[a-zA-Z0-9.-]+$/,
  time: /^\d\d:\d\d:\d\d(?:\.\d+)?(?:[zZ]|[+-]\d\d(?::?\d\d)?)$/,
  'date-time': /^\d{4}-\d\d-\d\d[tT\s]\d\d:\d\d:\d\d(?:\.\d+)?(?:[zZ]|[+-]\d\d(?::?\d\d)?)$/,
  url: /^[^:]+:\/\/\S+$/,
  email: /^[^@\s]+@[^@\s]+$/,
};
const formatRegexes = new Map<string, RegExp>();
const formatDfas = new Map<string, Dfa | ComplexityError>();

/** A string format's language (FORMATS, whole string) as a DFA; ComplexityError where it is too large. */
export function formatDfa(name: string): Dfa {
  let d = formatDfas.get(name);
  if (d === undefined) {
    try { d = regexDfa(FORMATS[name], false, { what: `format '${name}'` }); } catch (e) { if (!(e instanceof ComplexityError)) throw e; d = e; }
    formatDfas.set(name, d);
  }
  if (d instanceof ComplexityError) throw d;
  return d;
}

/**
 * Whether a value passes a format as ajv-formats (full) checks it: true, false, or — where this
 * compiler's language is smaller than ajv-formats' and the value is outside it — an
 * UnsupportedKeywordError (undecided; the oneOf check then assumes it may match). Unknown formats pass.
 */
export function formatAccepts(name: unknown, v: unknown, ptr = '#'): boolean {
  if (typeof name !== 'string') return true;
  const kind = formatKind(name);
  if (kind === 'number') {
    if (typeof v !== 'number') return true;
    if (name === 'int32') return Number.isInteger(v) && v >= -(2 ** 31) && v <= 2 ** 31 - 1;
    return name === 'int64' ? Number.isInteger(v) : true;
  }
  if (typeof v !== 'string' || kind === 'any' || kind === 'unknown') return true;
  if (kind === 'string') {
    let re = formatRegexes.get(name);
    if (!re) { re = new RegExp(`^(?:${FORMATS[name]})$`, 'u'); formatRegexes.set(name, re); }
    if (re.test(v)) return true;
    if (EXACT_FORMATS.has(name) || (FORMAT_NECESSARY[name] && !FORMAT_NECESSARY[name].test(v))) return false;
  }
  throw new UnsupportedKeywordError('format', ptr, `cannot decide whether ${JSON.stringify(v)} is a valid '${name}' as ajv-formats checks it`);
}

/**
 * A valid value of each format that passes through its states (every kind of character where a
 * format allows a large alphabet): TokenVocab.fromTokenizer builds the per-vocabulary tables of
 * those states from them, as part of preparing the vocabulary.
 */
export const FORMAT_SAMPLES: Record<string, string> = {
  date: '2024-12-31',
  time: '09:30:00.5+01:00',
  'date-time': '2024-03-14T09:30:00Z',
  email: 'a_b.c+d-1@ex4.mple.co',
  uuid: '1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed',
  uri: "https://u-1.x_Y~z!$&'()*+,;=:%41@dcos-master-1.example.com:8443/c-D.e_f~9:@!$&'()*+,;=%2F/?h=I&j.k~-/?#l.M_n~-/?",
  'uri-reference': "../a-b.C_d~9!$&'()*+,;=@%41/e:f?g=h#i",
  url: 'https://dcos-master-1.example.com:8443/a-b.C_d~9?e=f&g#h',
  hostname: 'dcos-master-1.Example.com',
  ipv4: '192.168.10.255',
  ipv6: '2001:DB8::8:800:200c:417a',
};

function dedupe(xs: unknown[]): unknown[] {
  const out: unknown[] = [];
  for (const x of xs) if (!out.some((y) => deepEqual(x, y))) out.push(x);
  return out;
}

/** JSON text of a value with object keys sorted: equal values (as JSON Schema compares them) give equal texts. */
function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Obj;
  return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
}

/** The values a schema that only lists values (const and/or enum, annotations aside) allows; null for any other schema. */
function listedValues(s: JsonSchema): unknown[] | null {
  if (typeof s !== 'object' || s === null || Array.isArray(s)) return null;
  if (!Object.keys(s).every((k) => k === 'const' || k === 'enum' || ignored(k))) return null;
  if (s.enum !== undefined && !Array.isArray(s.enum)) return null;
  if (s.const !== undefined) return s.enum === undefined || (s.enum as unknown[]).some((v) => canonicalJson(v) === canonicalJson(s.const)) ? [s.const] : [];
  return (s.enum as unknown[] | undefined) ?? null;
}

/**
 * A schema that surely matches no value, judged without compiling it: false, an empty enum, or
 * values allowed by const / enum that its allOf parts (nested { allOf: [x, y] } pairs included)
 * all exclude (NOT_IN, `not` of a const or enum). Anything else may match (false negatives only).
 */
function surelyEmptyValue(x: unknown): boolean {
  let allowed: unknown[] | null = null;
  const excluded: unknown[] = [];
  let empty = false, budget = 64;
  const visit = (s: unknown): void => {
    if (empty || --budget < 0) return;
    if (s === false) { empty = true; return; }
    if (!isObj(s)) return;
    if (s.$ref !== undefined) return;
    const own = enumValues(s);
    if (own !== null) allowed = allowed === null ? [...own] : allowed.filter((v) => own.some((w) => deepEqual(v, w)));
    if (Array.isArray(s[NOT_IN])) excluded.push(...(s[NOT_IN] as unknown[]));
    if (isObj(s.not)) { const ex = listedValues(s.not); if (ex !== null) excluded.push(...ex); }
    if (Array.isArray(s.allOf)) for (const p of s.allOf) visit(p);
  };
  visit(x);
  if (empty) return true;
  const a = allowed as unknown[] | null;
  return a !== null && a.every((v) => excluded.some((w) => deepEqual(v, w)));
}

/** An object-only schema with a required property that surely matches nothing (surelyEmptyValue). */
function surelyEmptyObject(s: JsonSchema): boolean {
  if (s === false) return true;
  if (!isObj(s) || s.$ref !== undefined) return false;
  if (Array.isArray(s.enum) && s.enum.length === 0) return true;
  const t = s.type;
  if (!(t === 'object' || (Array.isArray(t) && t.length > 0 && t.every((x) => x === 'object'))) || s.nullable === true) return false;
  const props = s.properties;
  if (!Array.isArray(s.required) || !isObj(props)) return false;
  for (const r of s.required) {
    if (typeof r === 'string' && Object.prototype.hasOwnProperty.call(props, r) && surelyEmptyValue(props[r])) return true;
  }
  return false;
}

function enumValues(s: Obj): unknown[] | null {
  if (s.const !== undefined) return [s.const];
  if (Array.isArray(s.enum)) return s.enum;
  return null;
}

function jsonType(v: unknown): JType {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v as JType;
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === (b as unknown[]).length && a.every((x, i) => deepEqual(x, (b as unknown[])[i]));
  const ka = Object.keys(a as Obj), kb = Object.keys(b as Obj);
  return ka.length === kb.length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual((a as Obj)[k], (b as Obj)[k]));
}

/** How mergeSchemas makes its new schema objects (SchemaCompiler.merger: each once per inputs). */
interface Merger {
  /** `{ allOf: [x, y] }`. */
  both(x: unknown, y: unknown): Obj;
  /** `properties` cur with v's (mergeProps). */
  props(cur: Obj, v: unknown): Obj;
  /** `properties` cur with those `own` lacks under ap (wrapProps). */
  wrap(cur: Obj, own: unknown, ap: unknown): Obj;
  /** Whether x surely matches nothing (false: it may match). */
  empty(x: Obj): boolean;
}

/** A copy of `properties` cur with v's added (a name in both: both(cur's, v's)). */
function mergeProps(cur: Obj, v: unknown, both: Merger['both']): Obj {
  const merged: Obj = { ...cur };
  for (const [n, sch] of Object.entries(v as Obj)) merged[n] = n in merged ? both(merged[n], sch) : sch;
  return merged;
}

/** A copy of `properties` cur with each name that `own` (another part's properties) lacks under ap: both(its schema, ap). */
function wrapProps(cur: Obj, own: unknown, ap: unknown, both: Merger['both']): Obj {
  const mine = isObj(own) ? own : Object.fromEntries(Object.keys(own ?? {}).map((n) => [n, true]));
  let out: Obj | null = null;
  for (const n of Object.keys(cur)) {
    if (Object.prototype.hasOwnProperty.call(mine, n)) continue;
    out ??= { ...cur };
    out[n] = both(cur[n], ap);
  }
  // (Every name declared by `own`: cur itself, never changed, as the copy would be.)
  return out ?? cur;
}

/** Merges allOf parts (already flattened, no $ref/allOf) into one schema (new objects made by `make`, which never changes one once made). */
/**
 * The values of a then b, each once, in the order first met: [...new Set([...a, ...b])] without
 * the copies and the set where the lists are short (required lists merged: the most of
 * mergeSchemas' time in semgrep). includes and Set compare alike (SameValueZero).
 */
export function uniqueConcat<T>(a: readonly T[], b: readonly T[]): T[] {
  if (a.length + b.length > 32) return [...new Set([...a, ...b])];
  const out: T[] = [];
  // (A Set keeps -0 as +0.)
  const add = (x: T) => { if (!out.includes(x)) out.push((x === 0 ? 0 : x) as T); };
  for (let i = 0; i < a.length; i++) add(a[i]);
  for (let i = 0; i < b.length; i++) add(b[i]);
  return out;
}

function mergeSchemas(parts: Obj[], ptr: string, make: Merger): JsonSchema {
  const both = make.both;
  const out: Obj = {};
  const fail = (k: string, why = 'cannot be merged across allOf branches') => { throw new UnsupportedKeywordError('allOf', jp(ptr, 'allOf'), `'${k}' ${why}`); };
  for (const p of parts) {
    for (const k of Object.keys(p)) {
      const v = p[k];
      if (ignored(k)) { if (!(k in out)) out[k] = v; continue; }
      if (!(k in out)) {
        // (properties: the part's own object, never changed: a merge makes a new one, make.props.)
        out[k] = k === 'properties' && !isObj(v) ? { ...(v as Obj) } : v;
        continue;
      }
      const cur = out[k];
      switch (k) {
        case 'type': {
          const a = (Array.isArray(cur) ? cur : [cur]) as string[], b = (Array.isArray(v) ? v : [v]) as string[];
          const inter = new Set<string>();
          for (const x of a) for (const y of b) {
            if (x === y) inter.add(x);
            else if ((x === 'integer' && y === 'number') || (x === 'number' && y === 'integer')) inter.add('integer');
          }
          out[k] = [...inter];
          break;
        }
        case 'properties': out[k] = make.props(cur as Obj, v); break;
        case 'required': out[k] = uniqueConcat(cur as string[], v as string[]); break;
        case 'minLength': case 'minItems': case 'minProperties': out[k] = Math.max(cur as number, v as number); break;
        case 'maxLength': case 'maxItems': case 'maxProperties': out[k] = Math.min(cur as number, v as number); break;
        case 'minimum': case 'maximum': {
          if (typeof (out.exclusiveMinimum ?? out.exclusiveMaximum) === 'boolean') fail(k, 'with draft-4 boolean exclusive bounds');
          out[k] = k === 'minimum' ? Math.max(cur as number, v as number) : Math.min(cur as number, v as number);
          break;
        }
        case 'exclusiveMinimum': case 'exclusiveMaximum':
          if (typeof cur === 'number' && typeof v === 'number') out[k] = k === 'exclusiveMinimum' ? Math.max(cur, v) : Math.min(cur, v);
          else if (cur !== v) fail(k);
          break;
        case 'enum': out[k] = (cur as unknown[]).filter((x) => (v as unknown[]).some((y) => deepEqual(x, y))); break;
        case NOT_IN: case NOT_PATTERN: out[k] = [...(cur as unknown[]), ...(v as unknown[])]; break;
        // Another branch's contains needs its own witness (arraySym).
        case 'contains': if (!deepEqual(cur, v)) out[CONTAINS_ALL] = [...((out[CONTAINS_ALL] ?? []) as JsonSchema[]), v]; break;
        case 'const': if (!deepEqual(cur, v)) out.enum = []; break;
        case 'items':
          if (Array.isArray(cur) || Array.isArray(v)) { if (!deepEqual(cur, v)) fail(k); }
          else out[k] = both(cur, v);
          break;
        case 'additionalProperties': out[k] = deepEqual(cur, v) ? cur : both(cur, v); break;
        case 'patternProperties': {
          const merged: Obj = { ...(cur as Obj) };
          for (const [pat, sch] of Object.entries(v as Obj)) merged[pat] = pat in merged ? both(merged[pat], sch) : sch;
          out[k] = merged;
          break;
        }
        case 'propertyNames': out[k] = deepEqual(cur, v) ? cur : both(cur, v); break;
        case 'dependencies': case 'dependentRequired': case 'dependentSchemas': {
          // Both hold: names required by both (arrays), or both dependent schemas (allOf).
          if (!isObj(cur) || !isObj(v)) fail(k);
          const m: Obj = { ...(cur as Obj) };
          const asSchema = (d: unknown) => (Array.isArray(d) ? { required: d } : d);
          for (const [n, d] of Object.entries(v as Obj)) {
            if (!Object.prototype.hasOwnProperty.call(m, n)) m[n] = d;
            else if (Array.isArray(m[n]) && Array.isArray(d)) m[n] = [...new Set([...(m[n] as unknown[]), ...d])];
            else m[n] = { allOf: [asSchema(m[n]), asSchema(d)] };
          }
          out[k] = m;
          break;
        }
        case 'anyOf': {
          if ((cur as JsonSchema[]).length * (v as JsonSchema[]).length > 256) throw new ComplexityError('alternatives of anyOf across allOf branches', 256, `at ${ptr}`);
          // Pairs that surely match nothing are left out as the product grows (make.empty), so a
          // product of n if/then pairs that exclude each other keeps n + 1 branches, not 2^n.
          const pairs = (cur as JsonSchema[]).flatMap((x) => (v as JsonSchema[]).map((y) => both(x, y)));
          const live = pairs.filter((x) => !make.empty(x));
          out[k] = live.length > 0 ? live : [false];
          break;
        }
        // A second oneOf is kept as an allOf part, which the first one's branches each take in.
        case 'oneOf': out.allOf = [...((out.allOf as JsonSchema[] | undefined) ?? []), { oneOf: v }]; break;
        default:
          if (!deepEqual(cur, v)) fail(k);
      }
    }
  }
  // additionalProperties of a part also governs the properties other parts declare.
  let allProps = out.properties as Obj | undefined;
  let restricting: unknown = undefined; // the parts' additionalProperties, all of them (both)
  for (const p of parts) {
    if (p.additionalProperties === undefined || p.additionalProperties === true) continue;
    // … and the keys of other parts' patternProperties, which one object's grammar cannot say.
    const ownPats = Object.keys((p.patternProperties ?? {}) as Obj);
    if (Object.keys((out.patternProperties ?? {}) as Obj).some((x) => !ownPats.includes(x))) fail('patternProperties', 'of one allOf branch with additionalProperties in another');
    if (allProps) allProps = make.wrap(allProps, p.properties, p.additionalProperties);
    restricting = restricting === undefined ? p.additionalProperties : both(restricting, p.additionalProperties);
  }
  if (allProps) out.properties = allProps;
  // A required name no part declares is under every part's additionalProperties (as the merged
  // additionalProperties says); it is declared with their conjunction, so that the grammar writes
  // the required key.
  if (restricting !== undefined) {
    let withRequired: Obj | null = null;
    for (const r of (out.required ?? []) as string[]) {
      if (allProps && r in allProps) continue;
      withRequired ??= { ...((out.properties ?? {}) as Obj) };
      withRequired[r] = restricting;
    }
    if (withRequired) out.properties = withRequired;
  }
  if (out.enum !== undefined && out.const !== undefined) { out.enum = (out.enum as unknown[]).filter((x) => deepEqual(x, out.const)); delete out.const; }
  return out;
}

/**
 * A small validator for enum/const values against the schema's other keywords (and for the
 * oneOf disjointness check). Keywords it cannot evaluate raise UnsupportedKeywordError.
 */
export function validate(v: unknown, s: JsonSchema, c: SchemaCompiler, ptr = '#'): boolean {
  if (s === true) return true;
  if (s === false) return false;
  const t = jsonType(v);
  const has = (k: string) => s[k] !== undefined;
  for (const k of Object.keys(s)) {
    if (ignored(k) && !KNOWN_UNSUPPORTED.has(k)) continue;
    switch (k) {
      case 'type': {
        const ts = (Array.isArray(s.type) ? s.type : [s.type]) as string[];
        if (!(ts.includes(t) || (t === 'integer' && ts.includes('number')) || (v === null && s.nullable === true))) return false;
        break;
      }
      case 'nullable': break;
      case 'enum': if (!(s.enum as unknown[]).some((e) => deepEqual(e, v))) return false; break;
      case 'const': if (!deepEqual(s.const, v)) return false; break;
      case 'minLength': if (typeof v === 'string' && [...v].length < (s.minLength as number)) return false; break;
      case 'maxLength': if (typeof v === 'string' && [...v].length > (s.maxLength as number)) return false; break;
      case 'pattern': if (typeof v === 'string' && !new RegExp(s.pattern as string, 'u').test(v)) return false; break;
      case 'format': if (!formatAccepts(s.format, v, ptr)) return false; break;
      case 'minimum': if (typeof v === 'number' && (v < (s.minimum as number) || (s.exclusiveMinimum === true && v === s.minimum))) return false; break;
      case 'maximum': if (typeof v === 'number' && (v > (s.maximum as number) || (s.exclusiveMaximum === true && v === s.maximum))) return false; break;
      case 'exclusiveMinimum': if (typeof v === 'number' && typeof s.exclusiveMinimum === 'number' && v <= s.exclusiveMinimum) return false; break;
      case 'exclusiveMaximum': if (typeof v === 'number' && typeof s.exclusiveMaximum === 'number' && v >= s.exclusiveMaximum) return false; break;
      case 'multipleOf': if (typeof v === 'number' && !ajvMultipleOf(v, s.multipleOf as number)) return false; break;
      case 'minItems': if (Array.isArray(v) && v.length < (s.minItems as number)) return false; break;
      case 'maxItems': if (Array.isArray(v) && v.length > (s.maxItems as number)) return false; break;
      case 'uniqueItems': if (Array.isArray(v) && s.uniqueItems === true && v.some((x, i) => v.some((y, j) => j > i && deepEqual(x, y)))) return false; break;
      case 'items': case 'prefixItems': case 'additionalItems': {
        if (!Array.isArray(v) || k !== 'items' && k !== 'prefixItems') break;
        const prefix = (s.prefixItems ?? (Array.isArray(s.items) ? s.items : [])) as JsonSchema[];
        const rest = (s.prefixItems !== undefined ? s.items : Array.isArray(s.items) ? s.additionalItems : s.items) as JsonSchema | undefined;
        for (let i = 0; i < v.length; i++) {
          const sch = i < prefix.length ? prefix[i] : rest ?? true;
          if (!validate(v[i], sch, c, ptr)) return false;
        }
        break;
      }
      case 'required': if (t === 'object' && !(s.required as string[]).every((r) => Object.prototype.hasOwnProperty.call(v, r))) return false; break;
      case 'properties': case 'additionalProperties': case 'patternProperties': {
        if (t !== 'object' || (k !== 'properties' && has('properties')) || (k === 'additionalProperties' && has('patternProperties'))) break;
        const props = (s.properties ?? {}) as Obj;
        const pats = Object.entries((s.patternProperties ?? {}) as Obj).map(([p, x]) => [new RegExp(p, 'u'), x as JsonSchema] as const);
        for (const [n, x] of Object.entries(v as Obj)) {
          let matched = false;
          if (Object.prototype.hasOwnProperty.call(props, n)) { matched = true; if (!validate(x, props[n] as JsonSchema, c, ptr)) return false; }
          for (const [re, sch] of pats) if (re.test(n)) { matched = true; if (!validate(x, sch, c, ptr)) return false; }
          if (!matched && !validate(x, (s.additionalProperties as JsonSchema | undefined) ?? true, c, ptr)) return false;
        }
        break;
      }
      case 'propertyNames': if (t === 'object' && !Object.keys(v as Obj).every((n) => validate(n, s.propertyNames as JsonSchema, c, ptr))) return false; break;
      case 'minProperties': if (t === 'object' && Object.keys(v as Obj).length < (s.minProperties as number)) return false; break;
      case 'maxProperties': if (t === 'object' && Object.keys(v as Obj).length > (s.maxProperties as number)) return false; break;
      case 'dependencies': case 'dependentRequired': case 'dependentSchemas': {
        if (t !== 'object' || !isObj(s[k])) break;
        for (const [name, d] of Object.entries(s[k] as Obj)) {
          if (!Object.prototype.hasOwnProperty.call(v, name)) continue;
          if (Array.isArray(d) ? !d.every((r) => Object.prototype.hasOwnProperty.call(v, r as string)) : !validate(v, d as JsonSchema, c, ptr)) return false;
        }
        break;
      }
      case 'anyOf': if (!(s.anyOf as JsonSchema[]).some((x) => validate(v, x, c, ptr))) return false; break;
      case 'not': if (validate(v, s.not as JsonSchema, c, ptr)) return false; break;
      case NOT_IN: if ((s[NOT_IN] as unknown[]).some((e) => deepEqual(e, v))) return false; break;
      case NOT_PATTERN: if (typeof v === 'string' && (s[NOT_PATTERN] as string[]).some((p) => new RegExp(p, 'u').test(v))) return false; break;
      case 'if': {
        const ok = validate(v, s.if as JsonSchema, c, ptr);
        if (ok && s.then !== undefined && !validate(v, s.then as JsonSchema, c, ptr)) return false;
        if (!ok && s.else !== undefined && !validate(v, s.else as JsonSchema, c, ptr)) return false;
        break;
      }
      case 'then': case 'else': break;
      case FRACTION: if (typeof v === 'number' && Number.isInteger(v)) return false; break;
      case 'contains': if (Array.isArray(v) && !v.some((x) => validate(x, s.contains as JsonSchema, c, ptr))) return false; break;
      case CONTAINS_ALL: if (Array.isArray(v) && !(s[CONTAINS_ALL] as JsonSchema[]).every((cs) => v.some((x) => validate(x, cs, c, ptr)))) return false; break;
      case EXTRA: {
        if (t !== 'object') break;
        const { names, schema } = s[EXTRA] as { names: string[]; schema: JsonSchema };
        if (!Object.entries(v as Obj).some(([k2, x]) => !names.includes(k2) && validate(x, schema, c, ptr))) return false;
        break;
      }
      case 'oneOf': if ((s.oneOf as JsonSchema[]).filter((x) => validate(v, x, c, ptr)).length !== 1) return false; break;
      case 'allOf': if (!(s.allOf as JsonSchema[]).every((x) => validate(v, x, c, ptr))) return false; break;
      case '$ref': if (!validate(v, c.resolve(s.$ref, ptr).schema, c, ptr)) return false; break;
      default: if (KNOWN_UNSUPPORTED.has(k)) throw new UnsupportedKeywordError(k, ptr);
    }
  }
  return true;
}

/** For messages: what failed, from an error thrown by the compiler. */
export function describeSchemaError(e: unknown): string {
  return e instanceof StructuredError ? e.message : String(e);
}
