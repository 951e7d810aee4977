// Shared helpers for the structured-generation tests: the JSON Schema Test Suite (draft 4, npm
// json-schema-test-suite), ajv (the outside reference), canonical key order for instances, and
// checking text or tokens.
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';
import { SchemaCompiler, TokenMatcher, ByteAutomaton, DEAD } from '../../src/structured/index.js';
import type { JsonSchema, SchemaOptions, Grammar, TokenVocab } from '../../src/structured/index.js';

const require = createRequire(import.meta.url);

const AjvMod = require('ajv');
const addFormatsMod = require('ajv-formats');
/** ajv (draft-07) with ajv-formats' full formats: the reference the engine is checked against. */
export const ajv = new (AjvMod.default ?? AjvMod)({ strict: false, logger: false });
(addFormatsMod.default ?? addFormatsMod)(ajv);
export const ajvValid = (schema: JsonSchema, v: unknown): boolean => ajv.validate(schema as object, v) as boolean;

const enc = new TextEncoder();
/** Byte-level check of texts against one grammar (one automaton, its caches shared by the calls). */
export function acceptor(g: Grammar): (text: string) => boolean {
  const a = new ByteAutomaton(g);
  return (text) => { const s = a.advanceBytes(a.initial, enc.encode(text)); return s !== DEAD && a.accepting(s); };
}
/** Whether the grammar accepts the text (a fresh automaton). */
export const accepts = (g: Grammar, text: string): boolean => acceptor(g)(text);

/**
 * Compares the mask of state s (with a budget of bytes after the token) with a brute-force check
 * of every token through the byte automaton; `what` names the case in the failure.
 */
export function assertMaskBrute(m: TokenMatcher, vocab: TokenVocab, s: number, what: string, budget = Infinity): void {
  const mask = m.mask(s, budget);
  for (let id = 0; id < vocab.size; id++) {
    const b = vocab.bytes[id];
    const t = b === null ? DEAD : m.automaton.advanceBytes(s, b);
    let want = t !== DEAD && m.automaton.minComplete(t) <= budget;
    if (vocab.eosIds.includes(id)) want = m.automaton.accepting(s);
    const got = (mask[id >>> 5] & (1 << (id & 31))) !== 0;
    if (got !== want) assert.fail(`${vocab.size} vocab, ${what}: token ${id} ${JSON.stringify(vocab.text([id]))} mask ${got} brute ${want}`);
  }
}

export interface SuiteGroup { file: string; description: string; schema: JsonSchema; tests: Array<{ description: string; data: unknown; valid: boolean }> }

/** Every test group of draft 4 (required tests and the optional format/bignum/zeroTerminatedFloats ones). */
export function suiteGroups(): SuiteGroup[] {
  const suite = require('json-schema-test-suite') as { draft4(): Array<{ name: string; schemas: Array<{ description: string; schema: JsonSchema; tests: SuiteGroup['tests'] }> }> };
  return suite.draft4().flatMap((f) => f.schemas.map((g) => ({ file: f.name, description: g.description, schema: g.schema, tests: g.tests })));
}

/**
 * The instance with object keys in the order the grammar emits them: the schema's declared
 * properties first (in schema order), then the others (which the grammar puts last).
 */
export function canonical(data: unknown, schema: JsonSchema, c: SchemaCompiler, depth = 0): unknown {
  if (depth > 50 || typeof schema !== 'object' || data === null || typeof data !== 'object') return data;
  let s: JsonSchema = schema;
  try { s = c.normalize(schema, '#'); } catch { return data; }
  if (typeof s !== 'object') return data;
  if (typeof s.$ref === 'string') { try { return canonical(data, c.resolve(s.$ref, '#').schema, c, depth + 1); } catch { return data; } }
  const branches = (s.anyOf ?? s.oneOf) as JsonSchema[] | undefined;
  if (branches) return canonical(data, branches.find((b) => typeof b === 'object' && (b as Record<string, unknown>).properties) ?? branches[0], c, depth + 1);
  if (Array.isArray(data)) {
    const items = s.items;
    return data.map((x, i) => canonical(x, Array.isArray(items) ? (items[i] ?? (s as Record<string, unknown>).additionalItems ?? true) : (items as JsonSchema) ?? true, c, depth + 1));
  }
  const props = (s.properties ?? {}) as Record<string, JsonSchema>;
  const order = [...Object.keys(props), ...((s.required ?? []) as string[])];
  const obj = data as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of order) if (k in obj && !(k in out)) out[k] = canonical(obj[k], props[k] ?? (s.additionalProperties as JsonSchema) ?? true, c, depth + 1);
  for (const k of Object.keys(obj)) if (!(k in out)) out[k] = canonical(obj[k], (s.additionalProperties as JsonSchema) ?? true, c, depth + 1);
  return out;
}

export function compileGroup(schema: JsonSchema, opts: SchemaOptions = {}): { grammar: Grammar; compiler: SchemaCompiler } {
  const compiler = new SchemaCompiler(schema, opts);
  return { grammar: compiler.compile(), compiler };
}

/** Token-level check: every token allowed (by the mask when `useMask`) and the end reachable. */
export function acceptsTokens(m: TokenMatcher, ids: number[], useMask = false): boolean {
  let s = m.initial;
  for (const id of ids) {
    if (useMask && !m.allows(s, id)) return false;
    s = m.advance(s, id);
    if (s === DEAD) return false;
  }
  return m.automaton.accepting(s);
}
