// The token engine against ajv on random schemas and instances (src/structured/fuzz.ts), over the
// real LLaMA-2 32K vocabulary, and the regressions the fuzzer and issue #20 found:
//  - soundness: every instance the engine accepts (token by token, through the masks) validates
//    with ajv — no exception; no crash; masks agree with the automaton's steps;
//  - completeness, measured: the share of ajv-valid instances the engine accepts (a floor);
//  - constrained sampling from a randomly initialised LLaMA: every complete output validates.
// A longer run: `npx tslm bench structured --fuzz N`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { init, shutdown, LlamaForCausalLM, parseLlamaConfig } from '../../src/index.js';
import { HFTokenizer } from '../../src/tokenizers/hf.js';
import { TokenVocab, TokenMatcher, compileJsonSchema } from '../../src/structured/index.js';
import type { JsonSchema } from '../../src/structured/index.js';
import { fuzzEngine, fuzzSummary, fuzzSampling, ajvValidator, engineAccepts } from '../../src/structured/fuzz.js';
import { llama2Json } from '../tokenizers/real_vocabs.js';
import { main } from '../../src/cli/main.js';

let tok: HFTokenizer;
let vocab: TokenVocab;
const validator = ajvValidator();

before(async () => {
  await init({ threads: 1 });
  tok = new HFTokenizer(await llama2Json());
  vocab = TokenVocab.fromTokenizer(tok);
});
after(async () => { await shutdown(); });

function accepts(schema: JsonSchema, value: unknown): boolean {
  const m = new TokenMatcher(compileJsonSchema(schema), vocab);
  const mm = { n: 0 };
  const acc = engineAccepts(m, tok.encode(JSON.stringify(value)), mm);
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

test('fuzzer find: a number with a fractional maximum refuses I.F above it in its last unit', () => {
  const s = { type: 'number', minimum: 22.75, maximum: 147.25 };
  for (const v of [147.75, 147.5, 148, 22.5, -1]) { assert.equal(validator(s)(v), false); assert.equal(accepts(s, v), false, `${v} accepted`); }
  for (const v of [146.9, 147, 23, 23.5, 100]) assert.equal(accepts(s, v), true, `${v} rejected`);
  for (const v of [0.5, -0.5, 3.999]) assert.equal(accepts({ type: 'number', exclusiveMaximum: 4 }, v), true, `${v} < 4`);
  assert.equal(accepts({ type: 'number', exclusiveMaximum: 4 }, 4), false);
});

test('random schemas and instances: the engine never accepts what ajv rejects, and accepts nearly all it validates', () => {
  const lines: string[] = [];
  const st = fuzzEngine(tok, vocab, { schemas: 200, seed: 20, validator, report: (l) => lines.push(l.slice(0, 2000)), timeLimitMs: 10_000 });
  console.log(fuzzSummary(st).map((l) => `# ${l}`).join('\n'));
  const bad = lines.filter((l) => !l.startsWith('valid rejected'));
  assert.equal(st.crashes, 0, bad.join('\n'));
  assert.equal(st.unsound, 0, bad.join('\n'));
  assert.equal(st.maskMismatch, 0, bad.join('\n'));
  assert.ok(st.schemas >= 60 && st.compiled >= 0.9 * st.schemas, JSON.stringify(st));
  assert.ok(st.instances >= 600 && st.validTotal >= 250, JSON.stringify(st));
  // Every mutation kind met an ajv-invalid instance that the engine refused.
  for (const k of ['drop-required', 'wrong-type', 'out-of-range', 'extra-key', 'enum-miss']) assert.ok(st.byKind[k] && st.byKind[k].n - st.byKind[k].valid > 5, k);
  // Known gaps (see the report of issue #20): fractional bounds' last unit, undeclared non-ASCII keys, format subsets.
  const rate = (st.validTotal - st.validRejected) / st.validTotal;
  assert.ok(rate >= 0.95, `valid accepted ${(rate * 100).toFixed(1)}%\n${lines.join('\n')}`);
});

test('constrained sampling on random schemas (random LLaMA, 32K vocabulary): every complete output validates with ajv', () => {
  const model = new LlamaForCausalLM(parseLlamaConfig({ hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: tok.vocabSize, max_position_embeddings: 256, initializer_range: 0.5 }));
  model.eval();
  try {
    const lines: string[] = [];
    const st = fuzzSampling(model, tok, { schemas: 24, seed: 21, validator, report: (l) => lines.push(l.slice(0, 2000)), timeLimitMs: 8_000 });
    console.log(`# ${st.samples} samples on ${st.schemas} schemas: ${st.complete} complete, ${st.invalid} invalid, ${st.budget} cut by the budget, in ${(st.ms / 1000).toFixed(1)} s`);
    assert.equal(st.crashes, 0, lines.join('\n'));
    assert.equal(st.invalid, 0, lines.join('\n'));
    assert.ok(st.complete >= 16 && st.complete >= 0.9 * st.samples, JSON.stringify(st));
  } finally { model.dispose(); }
});
