// Hostile schemas and the server's defences (issue #21): compiling on a worker thread within a
// time budget (the grammar sent back as plain arrays), a time limit per token mask, and schemas
// whose size once meant quadratic work or a call-stack overflow.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  compileJsonSchema, Grammar, TokenMatcher, TokenVocab, ComplexityError, UnsupportedKeywordError, InvalidSchemaError, StructuredError,
} from '../../src/structured/index.js';
import type { JsonSchema } from '../../src/structured/index.js';
import { compileJsonSchemaOffThread, compileConstraintOffThread, compilePool, CompilePool } from '../../src/structured/compile_worker.js';
import { HFTokenizer } from '../../src/tokenizers/hf.js';
import { llama2Json } from '../tokenizers/real_vocabs.js';
import { acceptor, ajvValid, suiteGroups, canonical, compileGroup } from './suite_util.js';

after(() => compilePool().close());

const consts = (n: number): JsonSchema => ({ oneOf: Array.from({ length: n }, (_, i) => ({ const: `value-${i}` })) });

test('Grammar.toData → new Grammar: the same rules and the same verdicts on the JSON Schema test suite', () => {
  let checked = 0;
  for (const g of suiteGroups()) {
    let grammar: Grammar, compiler;
    try { ({ grammar, compiler } = compileGroup(g.schema, { additionalProperties: 'declared' })); } catch { continue; }
    const copy = new Grammar(grammar.toData());
    const a = acceptor(grammar), b = acceptor(copy);
    for (const t of g.tests) {
      const text: string = JSON.stringify(canonical(t.data, g.schema, compiler));
      assert.equal(b(text), a(text), `${g.file} / ${g.description}: ${text}`);
    }
    assert.equal(copy.toString(), grammar.toString(), `${g.file} / ${g.description}`);
    checked++;
  }
  assert.ok(checked > 60, `${checked} groups`);
});

test('a grammar with lazily built rules, or one already matched, is not sent as data', () => {
  const lazy = compileJsonSchema({ type: 'object', properties: { a: {}, b: {} } }); // members in any order ('schema' mode)
  assert.throws(() => lazy.toData(), StructuredError);
  const g = compileJsonSchema({ type: 'string', maxLength: 50 }, { additionalProperties: 'declared' });
  g.toData();
  acceptor(g)('"abc"');
  assert.throws(() => g.toData(), /already matched/);
});

test('off the thread: the same grammar and masks as compiling here; errors keep their class and fields', async () => {
  const tok = new HFTokenizer(await llama2Json());
  const vocab = TokenVocab.fromTokenizer(tok);
  const schemas: JsonSchema[] = [
    { type: 'object', properties: { name: { type: 'string', maxLength: 300 }, tags: { type: 'array', items: { enum: ['a', 'b', '中文'] }, maxItems: 40 }, n: { type: 'integer', minimum: -5, maximum: 1234 } }, required: ['name'] },
    { type: 'string', pattern: '^[a-z]+-[0-9]{2,4}$' },
    { anyOf: [{ type: 'number' }, { type: 'object', properties: { k: { const: 1 } }, required: ['k'] }] },
  ];
  const instances = [{ name: 'x', tags: ['a', '中文'], n: 7 }, 'ab-123', { k: 1 }];
  for (const [i, s] of schemas.entries()) {
    const here = compileJsonSchema(s, { additionalProperties: 'declared' });
    const there = await compileJsonSchemaOffThread(s, { additionalProperties: 'declared' });
    assert.equal(there.toString(), here.toString());
    const mh = new TokenMatcher(here, vocab), mt = new TokenMatcher(there, vocab);
    let sh = mh.initial, st = mt.initial;
    for (const id of tok.encode(JSON.stringify(instances[i]))) {
      assert.deepEqual(mt.mask(st), mh.mask(sh));
      sh = mh.advance(sh, id); st = mt.advance(st, id);
    }
    assert.ok(mt.automaton.accepting(st));
  }
  // 'schema' mode has lazily built rules: compiled again on this thread, the same grammar.
  const anyOrder = { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'string' } } } as JsonSchema;
  const g = await compileJsonSchemaOffThread(anyOrder);
  assert.ok(acceptor(g)('{"b":"x","a":1}'));
  // GBNF and regex constraints.
  assert.ok(acceptor(await compileConstraintOffThread({ regex: '[0-9]{3}' }))('123'));
  assert.ok(acceptor(await compileConstraintOffThread({ grammar: 'root ::= "yes" | "no"' }))('no'));
  // Errors: the class, the message and the fields the server reports.
  await assert.rejects(compileJsonSchemaOffThread({ type: 'bogus' } as unknown as JsonSchema), (e: unknown) => e instanceof InvalidSchemaError && e.keyword === 'type' && e.pointer === '#/type');
  await assert.rejects(compileJsonSchemaOffThread({ unevaluatedProperties: false } as JsonSchema), (e: unknown) => e instanceof UnsupportedKeywordError && e.keyword === 'unevaluatedProperties');
  await assert.rejects(compileJsonSchemaOffThread('{"type":'), StructuredError);
});

test('a compilation past its time budget is stopped: a ComplexityError naming the budget, the event loop free meanwhile, the pool usable after', async () => {
  const pool = new CompilePool(1);
  try {
    await pool.compile({ kind: 'schema', json: '{"type":"integer"}', options: {} }); // the thread started
    let maxLag = 0, last = performance.now();
    const iv = setInterval(() => { const t = performance.now(); maxLag = Math.max(maxLag, t - last - 5); last = t; }, 5);
    const t0 = performance.now();
    // Compiling this takes a good part of a second even on an idle machine (8,000 oneOf branches,
    // told apart by their required property): far over a 40 ms budget however fast the machine.
    const hostile = JSON.stringify({ oneOf: Array.from({ length: 8000 }, (_, i) => ({ type: 'object', properties: { a: { const: i } }, required: ['a'] })) });
    try {
      await assert.rejects(pool.compile({ kind: 'schema', json: hostile, options: { additionalProperties: 'declared' } }, { timeoutMs: 40 }),
        (e: unknown) => e instanceof ComplexityError && /compile time exceeds 40 ms/.test(e.message));
    } finally { clearInterval(iv); } // (a failed assertion must not leave the interval holding the process open)
    const took = performance.now() - t0;
    assert.ok(took < 2000, `rejected after ${took.toFixed(0)} ms`);
    // Compiled on this thread it would block the loop for the whole compilation.
    assert.ok(maxLag < 400, `event loop blocked ${maxLag.toFixed(0)} ms`);
    assert.equal(pool.threads, 0);
    const g = await pool.compile({ kind: 'schema', json: '{"enum":[1,2]}', options: {} });
    assert.ok(acceptor(g)('2'));
  } finally { await pool.close(); }
});

test('a oneOf of thousands of consts compiles in linear time, and a value two branches share is still refused', () => {
  const t0 = performance.now();
  const g = compileJsonSchema(consts(20_000), { additionalProperties: 'declared' });
  const ms = performance.now() - t0;
  const a = acceptor(g);
  assert.ok(a('"value-19999"') && a('"value-0"') && !a('"value-20000"'));
  // Every pair was checked before: 200 million checks, minutes. (Generous: a loaded CI machine.)
  assert.ok(ms < 20_000, `${ms.toFixed(0)} ms`);
  // Branches listing shared values, and branches without a list, are still told apart.
  const s: JsonSchema = { oneOf: [{ const: 'a' }, { enum: ['b', 'c'] }, { enum: ['c', 'd'] }, { type: 'string', maxLength: 1 }, { const: { k: [1, 2] } }, { enum: [{ k: [1, 2] }, 5] }] };
  const b = acceptor(compileJsonSchema(s, { additionalProperties: 'declared' }));
  for (const v of ['a', 'b', 'c', 'd', 'e', 'ab', { k: [1, 2] }, 5, 6]) assert.equal(b(JSON.stringify(v)), ajvValid(s, v), JSON.stringify(v));
  // Objects told apart by a required property listing its values (a discriminator), beside
  // branches without it: exactly one branch, as ajv says.
  const u: JsonSchema = { oneOf: [
    { type: 'object', properties: { kind: { const: 'a' }, x: { type: 'integer' } }, required: ['kind'] },
    { type: 'object', properties: { kind: { enum: ['b', 'c'] } }, required: ['kind'] },
    { type: 'object', properties: { kind: { enum: ['c', 'd'] }, y: {} }, required: ['kind'] },
    { type: 'object', properties: { kind: { type: 'string' } }, required: ['kind', 'z'] },
    { type: 'object', properties: { other: { const: 1 } }, required: ['other'] },
  ] };
  const c = acceptor(compileJsonSchema(u));
  for (const v of [{ kind: 'a' }, { kind: 'b' }, { kind: 'c' }, { kind: 'd' }, { kind: 'a', z: 1 }, { kind: 'e', z: 1 }, { other: 1 }, { other: 1, kind: 'b' }, { kind: 'c', y: 1 }, { kind: 'a', x: 'no' }]) {
    assert.equal(c(JSON.stringify(v)), ajvValid(u, v), JSON.stringify(v));
  }
  // Thousands of such branches: no longer every pair checked.
  const t1 = performance.now();
  compileJsonSchema({ oneOf: Array.from({ length: 2000 }, (_, i) => ({ type: 'object', properties: { a: { const: i } }, required: ['a'] })) }, { additionalProperties: 'declared' });
  assert.ok(performance.now() - t1 < 20_000);
});

test('objects with thousands of properties compile without overflowing the call stack', () => {
  const props = (n: number): JsonSchema => ({ type: 'object', properties: Object.fromEntries(Array.from({ length: n }, (_, i) => [`p${i}`, { type: 'integer' }])), required: ['p7'] });
  for (const mode of ['declared', 'schema'] as const) {
    const a = acceptor(compileJsonSchema(props(3000), { additionalProperties: mode }));
    assert.ok(a('{"p7":1,"p2999":2}'), mode);
    assert.ok(!a('{"p2999":2}'), mode);
  }
  // Far larger: more optional properties in a row than the matcher has parallel parses, refused
  // before the grammar is built.
  const t0 = performance.now();
  assert.throws(() => compileJsonSchema(props(20_000), { additionalProperties: 'declared' }), (e: unknown) => e instanceof ComplexityError && /optional properties in a row exceeds 4000/.test(e.message));
  assert.ok(performance.now() - t0 < 2000);
  // As many required ones compile (one parse at each key).
  const req = props(5000) as { required: string[]; properties: object };
  req.required = Object.keys(req.properties);
  assert.ok(acceptor(compileJsonSchema(req, { additionalProperties: 'declared' }))(JSON.stringify(Object.fromEntries(req.required.map((k) => [k, 1])))));
});

test('a time limit per token mask: a ComplexityError past it; retried, the same masks as without a limit', async () => {
  const tok = new HFTokenizer(await llama2Json());
  const vocab = TokenVocab.fromTokenizer(tok);
  // A thousand object branches, each told apart by its one key: states of a thousand parses.
  const s: JsonSchema = { anyOf: Array.from({ length: 1000 }, (_, i) => ({ type: 'object', properties: { [`k${i}`]: { const: i } }, required: [`k${i}`] })) };
  const limited = new TokenMatcher(compileJsonSchema(s, { additionalProperties: 'declared' }), vocab, { maskTimeMs: 1 });
  const free = new TokenMatcher(compileJsonSchema(s, { additionalProperties: 'declared' }), vocab);
  let sl = limited.initial, sf = free.initial;
  for (const id of tok.encode('{"k999":999}')) {
    let mask: Uint32Array | undefined;
    for (let tries = 0; mask === undefined; tries++) {
      assert.ok(tries < 10_000);
      try { mask = limited.mask(sl); } catch (e) { assert.ok(e instanceof ComplexityError && /one token mask exceeds 1 ms/.test(e.message), String(e)); }
    }
    assert.deepEqual(mask, free.mask(sf));
    sl = limited.advance(sl, id); sf = free.advance(sf, id);
  }
  assert.ok(limited.automaton.accepting(sl));
  // Whether the 1 ms limit bit above depends on the machine; a limit already past always does.
  const none = new TokenMatcher(compileJsonSchema(s, { additionalProperties: 'declared' }), vocab, { maskTimeMs: 0 });
  assert.throws(() => none.mask(none.initial), (e: unknown) => e instanceof ComplexityError && /one token mask exceeds 0 ms/.test(e.message));
});

test('declared sizes past the grammar limit are refused before anything is built, and errors keep long pointers short', () => {
  for (const [s, want] of [
    [{ type: 'array', minItems: 1e9 }, /minItems 1000000000 at #/],
    [{ type: 'object', maxProperties: 1e9, additionalProperties: { type: 'integer' } }, /maxProperties 1000000000 at #/],
    [{ type: 'object', properties: { a: {} }, minProperties: 1e7 }, /minProperties 10000000 at #/],
    [{ type: 'string', minLength: 1e12 }, /grammar size/],
  ] as Array<[JsonSchema, RegExp]>) {
    const t0 = performance.now();
    assert.throws(() => compileJsonSchema(s), (e: unknown) => e instanceof ComplexityError && want.test(e.message), JSON.stringify(s));
    assert.ok(performance.now() - t0 < 1000, `${JSON.stringify(s)}: ${(performance.now() - t0).toFixed(0)} ms`);
  }
  // A property name too long to spell out (a 10 MB required name overflowed the stack after 15 s).
  const t1 = performance.now();
  assert.throws(() => compileJsonSchema({ type: 'object', required: ['x'.repeat(10_000_000)] }), (e: unknown) => e instanceof ComplexityError && /length of one property name exceeds 2048 \(at #: one of 10000000 characters\)/.test(e.message));
  assert.ok(performance.now() - t1 < 2000);
  assert.throws(() => compileJsonSchema({ const: 'y'.repeat(200_000) }), (e: unknown) => e instanceof ComplexityError && /length of one literal/.test(e.message));
  const long = 'k'.repeat(2048);
  assert.ok(acceptor(compileJsonSchema({ type: 'object', properties: { [long]: { type: 'integer' } }, required: [long] }))(JSON.stringify({ [long]: 5, z: 1 })));
  let deep: JsonSchema = { type: 'integer' };
  for (let i = 0; i < 5000; i++) deep = { anyOf: [deep] };
  assert.throws(() => compileJsonSchema(deep), (e: unknown) => e instanceof ComplexityError && e.message.length < 600 && /nesting depth exceeds 200/.test(e.message));
});
