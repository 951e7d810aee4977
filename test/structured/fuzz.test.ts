// The token engine against ajv on random schemas and instances (src/structured/fuzz.ts), over the
// real LLaMA-2 32K vocabulary, and the regressions the fuzzer and issue #20 found:
//  - soundness: every instance the engine accepts (token by token, through the masks) validates
//    with ajv — no exception; no crash; masks agree with the automaton's steps;
//  - completeness, measured: the share of ajv-valid instances the engine accepts (a floor);
//  - constrained sampling from a randomly initialised LLaMA: every complete output validates.
// A longer run: `npx tslm bench structured --fuzz N`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LlamaForCausalLM, parseLlamaConfig } from '../../src/index.js';
import { TokenMatcher, ByteAutomaton, DEAD, StructuredError, compileJsonSchema } from '../../src/structured/index.js';
import type { JsonSchema } from '../../src/structured/index.js';
import { fuzzEngine, fuzzSummary, fuzzSampling, ajvValidator, engineAccepts, Rng } from '../../src/structured/fuzz.js';
import { llama2Json } from '../tokenizers/real_vocabs.js';
import { main } from '../../src/cli/main.js';
import { llama2Setup } from './llama2_setup.js';

const L = llama2Setup();

const validator = ajvValidator();

function accepts(schema: JsonSchema, value: unknown): boolean {
  const m = new TokenMatcher(compileJsonSchema(schema), L.vocab);
  const mm = { n: 0 };
  const acc = engineAccepts(m, L.tok.encode(JSON.stringify(value)), mm);
  assert.equal(mm.n, 0, 'masks agree with the automaton');
  return acc;
}

// Issue #20: ~5% of real-world schemas crashed in ByteAutomaton.plainClosure (a node table read
// from before the steps that grew it).
const SALESFORCE: JsonSchema = { type: 'object', properties: { Attachments: { type: 'array' }, ConnectionReceivedId: { type: 'integer' }, CreatedDate: { type: 'string' }, Id: { type: 'integer' }, IsDeleted: { type: 'string' }, Name: { type: 'string' }, Notes: { type: 'array' }, OwnerId: { type: 'integer' }, SystemModstamp: { type: 'string' }, vera__Attendance__r: { type: 'array' }, vera__Boats1__r: { type: 'array' }, vera__Date__c: { type: 'string' } } };
const SALESFORCE_INSTANCE = { Attachments: [], ConnectionReceivedId: 1, CreatedDate: 'x', Id: 1, Name: 'a', vera__Boats1__r: [] };

test('issue #20 reproducer: many optional keys with shared prefixes, masks over LLaMA-2 (no crash, accepted)', () => {
  assert.equal(accepts(SALESFORCE, SALESFORCE_INSTANCE), true);
  // An undeclared key after them, and an invalid value.
  assert.equal(accepts(SALESFORCE, { ...SALESFORCE_INSTANCE, vera__Date__x: 'y' }), true);
  assert.equal(accepts(SALESFORCE, { ...SALESFORCE_INSTANCE, Id: 'one' }), false);
});

test('issue #20 reproducer through `tslm schema check`', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tslm-fuzz-'));
  try {
    const f = (name: string, v: unknown) => { const p = path.join(dir, name); writeFileSync(p, JSON.stringify(v)); return p; };
    const schema = f('schema.json', SALESFORCE), t = f('tokenizer.json', await llama2Json()), inst = f('inst.json', SALESFORCE_INSTANCE);
    const lines: string[] = [];
    const log = console.log, err = console.error;
    console.log = (...a: unknown[]) => { lines.push(a.join(' ')); };
    console.error = (...a: unknown[]) => { lines.push(a.join(' ')); };
    let rc: number;
    try { rc = await main(['schema', 'check', '--schema', schema, '--tokenizer', t, inst]); } finally { console.log = log; console.error = err; }
    assert.equal(rc, 0, lines.join('\n'));
    assert.match(lines.join('\n'), /inst\.json: accept/);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('fuzzer find: a number with a fractional maximum refuses I.F above it in its last unit, and accepts those below', () => {
  const s = { type: 'number', minimum: 22.75, maximum: 147.25 };
  for (const v of [147.75, 147.5, 148, 22.5, 22.7, -1]) { assert.equal(validator(s)(v), false); assert.equal(accepts(s, v), false, `${v} accepted`); }
  for (const v of [146.9, 147, 147.1, 147.25, 22.75, 22.8, 23, 100]) assert.equal(accepts(s, v), true, `${v} rejected`);
  for (const v of [0.5, -0.5, 3.999]) assert.equal(accepts({ type: 'number', exclusiveMaximum: 4 }, v), true, `${v} < 4`);
  assert.equal(accepts({ type: 'number', exclusiveMaximum: 4 }, 4), false);
  // The unit beside an exclusive integer bound, past it (a fuzzer find: 225.5 > 225 was refused).
  for (const [s2, v, ok] of [[{ exclusiveMinimum: 225 }, 225.5, true], [{ exclusiveMinimum: 225 }, 225, false], [{ exclusiveMinimum: 225 }, 224.9, false],
    [{ exclusiveMaximum: -43 }, -43.5, true], [{ exclusiveMaximum: -43 }, -43, false], [{ exclusiveMaximum: 0, minimum: -1 }, -0.5, true]] as const) {
    assert.equal(accepts({ type: 'number', ...s2 }, v), ok, `${JSON.stringify(s2)} ${v}`);
  }
});

// Numbers as text (what a model writes, not only what JSON.stringify does): long fractions parse
// to the nearest double, and "147.999999999999999" is 148.
test('bounded numbers as text against ajv: never accepted when invalid (long fractions included), nearly all valid ones accepted', () => {
  const enc = new TextEncoder();
  const bounds = [0, 1, -1, 4, -4, 148, -148, 147.25, -147.25, 0.5, -0.5, 22.75, -22.75, 0.1, 3.14159, -0.001, 99.9, 12345678.125];
  const fracs = ['', '.0', '.1', '.25', '.5', '.75', '.9', '.999999999999999', '.99999999999999', '.000000000000001', '.2499999999999999', '.25000000001', '.09', '.001', '.14159', '.1416', '.125', '.1249'];
  let n = 0, valid = 0, accepted = 0;
  const bad: string[] = [];
  const r = new Rng(5);
  for (let k = 0; k < 120; k++) {
    const s: Record<string, unknown> = { type: 'number' };
    const a = r.pick(bounds), c = r.pick(bounds);
    if (r.chance(0.7)) s[r.chance(0.4) ? 'exclusiveMinimum' : 'minimum'] = Math.min(a, c);
    if (r.chance(0.7)) s[r.chance(0.4) ? 'exclusiveMaximum' : 'maximum'] = Math.max(a, c);
    let A: ByteAutomaton;
    try { A = new ByteAutomaton(compileJsonSchema(s)); } catch (e) { assert.ok(e instanceof StructuredError, String(e)); continue; }
    const check = validator(s);
    const texts = new Set<string>();
    for (const x of [a, c]) for (let d = -2; d <= 2; d++) for (const f of fracs) { const i = Math.abs(Math.trunc(x) + d); texts.add(`${i}${f}`); texts.add(`-${i}${f}`); }
    for (const t of texts) {
      n++;
      const st = A.advanceBytes(A.initial, enc.encode(t));
      const acc = st !== DEAD && A.accepting(st), ok = check(JSON.parse(t));
      if (ok) valid++;
      if (ok && acc) accepted++;
      if (acc && !ok && bad.length < 10) bad.push(`${JSON.stringify(s)}: ${t}`);
    }
  }
  assert.deepEqual(bad, []);
  // The valid ones rejected: more than 15 fraction digits, "-0", "x.0" at an integer bound.
  assert.ok(n > 20_000 && accepted >= 0.9 * valid, JSON.stringify({ n, valid, accepted }));
  // Next to an exclusive integer bound: a fraction that rounds to the bound is refused, one that does not is accepted.
  const ex = new ByteAutomaton(compileJsonSchema({ type: 'number', exclusiveMaximum: 148, exclusiveMinimum: -148 }));
  const acc = (t: string) => { const st = ex.advanceBytes(ex.initial, enc.encode(t)); return st !== DEAD && ex.accepting(st); };
  for (const t of ['147.999999999999999', '-147.999999999999999', '148', '-148']) assert.equal(acc(t), false, t);
  for (const t of ['147.99999999999', '-147.99999999999', '147.5', '0']) assert.equal(acc(t), true, t);
});

test('random schemas and instances: the engine never accepts what ajv rejects, and accepts nearly all it validates', () => {
  const lines: string[] = [];
  const st = fuzzEngine(L.tok, L.vocab, { schemas: 200, seed: 20, validator, report: (l) => lines.push(l.slice(0, 2000)), timeLimitMs: 10_000 });
  console.log(fuzzSummary(st).map((l) => `# ${l}`).join('\n'));
  const bad = lines.filter((l) => !l.startsWith('valid rejected'));
  assert.equal(st.crashes, 0, bad.join('\n'));
  assert.equal(st.unsound, 0, bad.join('\n'));
  assert.equal(st.maskMismatch, 0, bad.join('\n'));
  // Random combinations of not, oneOf, patterns and bounds are sometimes unsatisfiable: refused as such.
  assert.ok(st.schemas >= 60 && st.compiled + (st.refused.UnsatisfiableError ?? 0) >= 0.9 * st.schemas, JSON.stringify(st));
  assert.ok(st.instances >= 600 && st.validTotal >= 250, JSON.stringify(st));
  // Every mutation kind met an ajv-invalid instance that the engine refused.
  for (const k of ['drop-required', 'wrong-type', 'out-of-range', 'extra-key', 'enum-miss']) assert.ok(st.byKind[k] && st.byKind[k].n - st.byKind[k].valid > 5, k);
  // Known gaps (see the report of issue #20): undeclared non-ASCII keys, the formats' subsets of ajv's, long fractions.
  const rate = (st.validTotal - st.validRejected) / st.validTotal;
  assert.ok(rate >= 0.95, `valid accepted ${(rate * 100).toFixed(1)}%\n${lines.join('\n')}`);
});

test('constrained sampling on random schemas (random LLaMA, 32K vocabulary): every complete output validates with ajv', () => {
  const model = new LlamaForCausalLM(parseLlamaConfig({ hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: L.tok.vocabSize, max_position_embeddings: 256, initializer_range: 0.5 }));
  model.eval();
  try {
    const lines: string[] = [];
    const st = fuzzSampling(model, L.tok, { schemas: 24, seed: 21, validator, report: (l) => lines.push(l.slice(0, 2000)), timeLimitMs: 8_000 });
    console.log(`# ${st.samples} samples on ${st.schemas} schemas: ${st.complete} complete, ${st.invalid} invalid, ${st.budget} cut by the budget, ${st.duplicateKeys} with a duplicate key, in ${(st.ms / 1000).toFixed(1)} s`);
    assert.equal(st.crashes, 0, lines.join('\n'));
    assert.equal(st.invalid, 0, lines.join('\n'));
    assert.equal(st.duplicateKeys, 0, lines.join('\n'));
    assert.ok(st.complete >= 16 && st.complete >= 0.9 * st.samples, JSON.stringify(st));
  } finally { model.dispose(); }
});
