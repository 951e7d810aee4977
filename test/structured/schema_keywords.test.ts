// Issue #20's object, array and number keywords checked against ajv (with ajv-formats, the outside
// reference): multipleOf, minProperties / maxProperties, dependencies / dependentRequired /
// dependentSchemas and uniqueItems. Each schema is compiled and many instances (valid and invalid,
// keys in schema order) are run through the byte automaton: every accepted instance must validate
// (soundness), and the valid ones the compiler promises are accepted. Where exactness is impossible
// the schema is refused with an UnsupportedKeywordError naming the keyword and its JSON pointer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { compileJsonSchema, UnsupportedKeywordError } from '../../src/structured/index.js';
import type { JsonSchema } from '../../src/structured/index.js';
import { ajvMultipleOf, multipleOfPlan } from '../../src/structured/multiple.js';
import { ajv as ajv7, acceptor } from './suite_util.js';

const require = createRequire(import.meta.url);
const AjvMod = require('ajv');
const addFormatsMod = require('ajv-formats');
// dependentRequired / dependentSchemas are 2019-09 keywords (draft-07's ajv ignores them).
const Ajv2019 = require('ajv/dist/2019');
const ajv19 = new (Ajv2019.default ?? Ajv2019)({ strict: false, logger: false });
(addFormatsMod.default ?? addFormatsMod)(ajv19);
const ajv = { compile: (s: JsonSchema) => (typeof s === 'object' && (s.dependentRequired || s.dependentSchemas || JSON.stringify(s).includes('"dependent')) ? ajv19 : ajv7).compile(s) };
const schemaAcceptor = (schema: JsonSchema) => acceptor(compileJsonSchema(schema));

/** Every text the engine accepts validates with ajv; returns how many valid texts it accepts and rejects. */
function sound(schema: JsonSchema, texts: string[]): { accepted: number; rejected: string[] } {
  const acc = schemaAcceptor(schema), check = ajv.compile(schema);
  let accepted = 0;
  const rejected: string[] = [];
  for (const t of texts) {
    const valid = check(JSON.parse(t)) as boolean, a = acc(t);
    assert.ok(!a || valid, `${JSON.stringify(schema)}: accepts ${t}, which ajv rejects`);
    if (a) accepted++;
    else if (valid) rejected.push(t);
  }
  return { accepted, rejected };
}

function refuses(schema: JsonSchema, keyword: string, pointer: string): void {
  assert.throws(() => compileJsonSchema(schema), (e: unknown) => e instanceof UnsupportedKeywordError && e.keyword === keyword && e.pointer === pointer, JSON.stringify(schema));
}

test('multipleOf: ajvMultipleOf is ajv\'s rule, and every multiple the plan of a decimal divisor generates passes it', () => {
  for (const m of [0.01, 0.1, 0.0001, 2.5, 7, 0.3]) {
    const check = ajv.compile({ multipleOf: m });
    for (const x of [0, 1, 0.3, 0.07, 10.99, 7.5, 21, 1e15, 3e20, 0.0075, -4.2]) assert.equal(ajvMultipleOf(x, m), check(x) as boolean, `${x} / ${m}`);
  }
  // Divisors outside multiple.ts's analysis (0.0001: 5^4 residues; 0.13, 0.11: numerators past its
  // budget): only their multiples that are exact doubles (multiples of 0.0625, 3.25 …); ajv passes
  // every one of them. (0.01, 0.1 … are exact: multiple_float.test.ts.)
  for (const [m, step] of [[0.0001, 0.0625], [0.0005, 0.0625], [0.13, 3.25], [0.11, 2.75]] as const) {
    const plan = multipleOfPlan(m);
    const got = plan.kind === 'integers' ? plan.divisor : plan.kind === 'decimals' ? plan.num / 10 ** plan.k : NaN;
    assert.equal(got, step, `${m}`);
    const check = ajv.compile({ multipleOf: m });
    for (let n = -20000; n < 20000; n++) assert.ok(check(n * step), `${n * step} / ${m}`);
    for (let e = 2; e < 15; e++) for (const x of [10 ** e, 10 ** e - step, 2 ** Math.floor(e * 3.3), 999_999_999_999_999 - (999_999_999_999_999 % step)]) if (x % step === 0) assert.ok(check(x), `${x} / ${m}`);
  }
  assert.equal(multipleOfPlan(0.25).kind, 'decimals');
  assert.equal(multipleOfPlan(6.75).kind, 'decimals');
  // 0.00002: the double nearest is too far from 2/10^5 for the proof, and 5^5 residues are past the analysis.
  assert.equal(multipleOfPlan(0.00002).kind, 'refuse');
  assert.deepEqual(multipleOfPlan(11), { kind: 'integers', divisor: 11 });
});

test('multipleOf on integers and numbers (remainder automata within the bounds) against ajv', () => {
  const texts: string[] = [];
  for (let i = -400; i <= 400; i++) texts.push(String(i), String(i / 4), String(i / 100), String(i / 10), (i * 0.07).toFixed(2), String(i * 1.5), String(i * 6.75), String(i * 2.5));
  texts.push('1000000', '999999999999995', '-999999999999990', '10.99', '10.50', '0.0', '-0.0', '-0.25', '1e2', '77.0', '123456789012345');
  const cases: Array<[JsonSchema, number]> = [
    [{ type: 'integer', multipleOf: 7 }, 114], [{ type: 'integer', multipleOf: 11, minimum: -50, maximum: 333 }, 35], [{ type: 'integer', multipleOf: 11, exclusiveMinimum: -44, exclusiveMaximum: 44 }, 7],
    [{ type: 'number', multipleOf: 0.01, minimum: 0 }, 401], [{ type: 'number', multipleOf: 2.5, exclusiveMinimum: -10.3, maximum: 40.2 }, 20],
    [{ type: 'number', multipleOf: 0.25 }, 1601], [{ type: 'number', multipleOf: 1.5 }, 533], [{ type: 'number', multipleOf: 6.75, minimum: 1 }, 200],
    [{ type: 'number', multipleOf: 0.1 }, 801], [{ type: 'number', multipleOf: 1 }, 801], [{ type: 'integer', multipleOf: 1000, minimum: 5 }, 1],
    [{ multipleOf: 3 }, 267], [{ type: 'integer', multipleOf: 0.5, maximum: 17 }, 418], [{ type: 'number', multipleOf: 0.5, minimum: -3, exclusiveMaximum: 2 }, 10],
    [{ type: 'integer', format: 'int32', multipleOf: 5 }, 161], [{ type: 'integer', multipleOf: 5, minimum: 3, maximum: 4 }, 0],
  ];
  for (const [schema, least] of cases) {
    if (least === 0) { assert.throws(() => compileJsonSchema(schema)); continue; }
    const { accepted } = sound(schema, texts);
    assert.ok(accepted >= least, `${JSON.stringify(schema)}: accepted ${accepted} < ${least}`);
  }
  // Exact where promised: every valid integer multiple in range, and for dyadic divisors every multiple I.F.
  const acc = schemaAcceptor({ type: 'number', multipleOf: 0.25, minimum: -2, maximum: 3.5 });
  for (let n = -8; n <= 14; n++) assert.ok(acc(String(n / 4)), `${n / 4}`);
  assert.ok(!acc('3.75') && !acc('-2.25') && !acc('0.3'));
  refuses({ type: 'number', multipleOf: 1e-7 }, 'multipleOf', '#/multipleOf');
  refuses({ properties: { a: { multipleOf: 123457 } } }, 'multipleOf', '#/properties/a/multipleOf');
});

/**
 * Objects over `names` (every subset, in schema order, each value from `pool`, and optionally
 * extra keys at the end) as JSON texts: an exhaustive family for small objects.
 */
function objects(names: string[], pool: unknown[], extras: string[] = [], limit = 4000): string[] {
  const out: string[] = [];
  const all = [...names, ...extras];
  for (let mask = 0; mask < 1 << all.length && out.length < limit; mask++) {
    const keys = all.filter((_, i) => mask & (1 << i));
    // Value choices: the first pool value everywhere, then each key in turn with each other value.
    const variants: unknown[][] = [keys.map(() => pool[0])];
    for (let k = 0; k < keys.length; k++) for (const v of pool.slice(1)) variants.push(keys.map((_, j) => (j === k ? v : pool[0])));
    for (const vals of variants) out.push(JSON.stringify(Object.fromEntries(keys.map((k, j) => [k, vals[j]]))));
  }
  return out;
}

test('minProperties / maxProperties: members counted in the recursion, extra keys included', () => {
  const cases: JsonSchema[] = [
    { type: 'object', properties: { a: {}, b: {}, c: {} }, minProperties: 2 },
    { type: 'object', properties: { a: {}, b: {}, c: {} }, maxProperties: 1 },
    { type: 'object', properties: { a: {}, b: {}, c: {} }, required: ['b'], minProperties: 2, maxProperties: 2 },
    { type: 'object', properties: { a: { type: 'integer' }, b: {} }, additionalProperties: false, minProperties: 1 },
    { type: 'object', minProperties: 1, maxProperties: 3 },
    { type: 'object', properties: { a: {} }, additionalProperties: { type: 'integer' }, minProperties: 3 },
    { type: 'object', maxProperties: 0 },
  ];
  for (const schema of cases) {
    const { accepted, rejected } = sound(schema, objects(['a', 'b', 'c'], [1, 'x', null], ['zz', 'q']));
    assert.ok(accepted > 0, JSON.stringify(schema));
    // Exact: every valid object in schema order is accepted.
    assert.deepEqual(rejected, [], `${JSON.stringify(schema)} rejects valid ${rejected.slice(0, 3).join(' ')}`);
  }
  // Unsatisfiable counts are errors, not grammars that accept nothing silently.
  assert.throws(() => compileJsonSchema({ type: 'object', properties: { a: {} }, additionalProperties: false, minProperties: 2 }));
  assert.throws(() => compileJsonSchema({ type: 'object', required: ['a', 'b'], maxProperties: 1 }));
});

test('dependencies / dependentRequired / dependentSchemas: presence constraints tracked over schema order', () => {
  const cases: JsonSchema[] = [
    { type: 'object', properties: { a: {}, b: {}, c: {} }, dependencies: { a: ['c'] } },
    { type: 'object', properties: { a: {}, b: {}, c: {} }, dependencies: { c: ['a', 'b'] } },
    { type: 'object', properties: { a: {}, b: {}, c: {} }, dependentRequired: { b: ['a'], a: ['c'] } },
    { type: 'object', properties: { a: {}, b: {}, c: {} }, dependencies: { a: ['b'], b: ['a'] }, maxProperties: 2 },
    { type: 'object', properties: { a: {}, b: {} }, dependencies: { a: ['zz'] } },
    { type: 'object', properties: { a: {}, b: {} }, additionalProperties: false, dependencies: { a: ['zz'] } },
    { type: 'object', properties: { a: {}, b: {}, c: {} }, dependencies: { c: { not: { required: ['a'] } } } },
    { type: 'object', properties: { a: {}, b: {}, c: {} }, dependencies: { a: { required: ['c'], properties: { c: { type: 'integer' } } } } },
    { type: 'object', properties: { a: {}, b: {}, c: {} }, dependentSchemas: { c: { properties: { a: { type: 'string' }, b: { type: 'integer' } } } } },
    { type: 'object', properties: { a: {}, b: { type: ['integer', 'string'] }, c: {} }, dependencies: { c: { properties: { b: { type: 'string' } } }, a: { properties: { b: { type: ['integer', 'null'] } } } } },
    { type: 'object', properties: { a: {}, b: {} }, dependencies: { b: { $ref: '#/definitions/needsA' } }, definitions: { needsA: { required: ['a'] } } },
    { type: 'object', properties: { a: {}, b: {} }, dependencies: { b: false } },
    { type: 'object', properties: { a: {}, b: {}, c: {} }, dependencies: { a: ['b'] }, minProperties: 2 },
    { type: 'object', properties: { a: {}, b: {}, c: {} }, dependencies: { b: { allOf: [{ required: ['c'] }, { $ref: '#/definitions/aInt' }] } }, definitions: { aInt: { properties: { a: { type: 'integer' } } } } },
    { allOf: [{ type: 'object', properties: { a: {}, b: {}, c: {} }, dependencies: { a: ['b'], c: { properties: { a: { type: 'string' } } } } }, { dependencies: { a: ['c'], c: ['b'] } }] },
  ];
  for (const schema of cases) {
    // A name only a dependency mentions is emitted after the declared ones, before extra keys.
    const order = JSON.stringify(schema).includes('"zz"') ? ['a', 'b', 'zz'] : ['a', 'b', 'c'];
    const { accepted, rejected } = sound(schema, objects(order, [1, 'x', null], [order[2] === 'zz' ? 'c' : 'zz']));
    assert.ok(accepted > 0, JSON.stringify(schema));
    assert.deepEqual(rejected, [], `${JSON.stringify(schema)} rejects valid ${rejected.slice(0, 3).join(' ')}`);
  }
  refuses({ type: 'object', properties: { a: {} }, dependencies: { a: { properties: { b: {} }, additionalProperties: false } } }, 'dependencies', '#/dependencies/a');
  refuses({ properties: { o: { dependentSchemas: { a: { minProperties: 3 } } } } }, 'dependentSchemas', '#/properties/o/dependentSchemas/a');
});

/** Every array of up to `n` items from `pool`, as JSON texts. */
function arrays(pool: unknown[], n: number): string[] {
  const out: string[] = ['[]'];
  let layer: unknown[][] = [[]];
  for (let k = 1; k <= n; k++) {
    layer = layer.flatMap((a) => pool.map((v) => [...a, v]));
    for (const a of layer) out.push(JSON.stringify(a));
  }
  return out;
}

test('uniqueItems: finite item domains (set of used values in the state) and disjoint tuples, exact; other items refused', () => {
  const cases: Array<[JsonSchema, unknown[]]> = [
    [{ type: 'array', items: { enum: ['a', 'b', 'c'] }, uniqueItems: true }, ['a', 'b', 'c', 'd']],
    [{ type: 'array', items: { type: 'boolean' }, uniqueItems: true, minItems: 1 }, [true, false, null]],
    [{ type: 'array', items: [{ type: 'string' }, { type: 'integer' }], additionalItems: false, uniqueItems: true }, ['a', 1, 2, 'b']],
    [{ type: 'array', items: [{ enum: [1, 2] }, { enum: [2, 3] }], additionalItems: { const: 1 }, uniqueItems: true, maxItems: 3 }, [1, 2, 3]],
    [{ type: 'array', items: { anyOf: [{ const: 1 }, { type: 'null' }, { enum: [{ a: 1, b: 2 }] }] }, uniqueItems: true }, [1, null, { b: 2, a: 1 }, 2]],
    [{ type: 'array', items: { type: 'integer', minimum: 0, maximum: 3 }, uniqueItems: true, minItems: 2 }, [0, 1, 3, 4]],
    [{ type: 'array', items: { $ref: '#/definitions/c' }, definitions: { c: { enum: ['x', 'y'] } }, uniqueItems: true }, ['x', 'y', 'z']],
    [{ type: 'array', items: { type: 'string' }, uniqueItems: true, maxItems: 1 }, ['x', 'y', 1]],
    [{ type: 'array', items: { enum: [1, 2, 3] }, uniqueItems: true, maxItems: 2 }, [1, 2, 3]],
    [{ type: 'array', items: { enum: [1, 2] }, uniqueItems: false }, [1, 2]],
  ];
  for (const [schema, pool] of cases) {
    const { accepted, rejected } = sound(schema, arrays(pool, 4));
    assert.ok(accepted > 0, JSON.stringify(schema));
    // {"b": 2, "a": 1} is written {"a":1,"b":2} (the enum's text).
    assert.deepEqual(rejected.filter((t) => !t.includes('"b":2,"a":1')), [], `${JSON.stringify(schema)} rejects valid ${rejected.slice(0, 3).join(' ')}`);
  }
  assert.throws(() => compileJsonSchema({ type: 'array', items: { enum: ['a', 'b'] }, uniqueItems: true, minItems: 3 }));
  refuses({ type: 'array', items: { type: 'string' }, uniqueItems: true }, 'uniqueItems', '#/uniqueItems');
  refuses({ properties: { a: { type: 'array', items: { type: 'integer', minimum: 0 }, uniqueItems: true } } }, 'uniqueItems', '#/properties/a/uniqueItems');
  refuses({ type: 'array', items: [{ type: 'string' }, { type: 'string' }], additionalItems: false, uniqueItems: true }, 'uniqueItems', '#/uniqueItems');
});

test('generation modes: a name a dependency requires is emitted as a required one would be (declared), never under forbid', () => {
  const schema: JsonSchema = { type: 'object', properties: { a: {} }, required: ['a'], dependencies: { a: ['b'] } };
  const accepts = (opts: { additionalProperties: 'declared' | 'forbid' }, text: string) => acceptor(compileJsonSchema(schema, opts))(text);
  assert.equal(accepts({ additionalProperties: 'declared' }, '{"a":1,"b":2}'), true);
  assert.equal(accepts({ additionalProperties: 'declared' }, '{"a":1}'), false);
  assert.equal(accepts({ additionalProperties: 'declared' }, '{"a":1,"b":2,"c":3}'), false);
  // forbid: b can never be emitted, so a cannot be present, and a is required: nothing is valid.
  assert.throws(() => compileJsonSchema(schema, { additionalProperties: 'forbid' }));
});

test("'declared' mode: extra keys only where minProperties needs them", () => {
  const schema: JsonSchema = { type: 'object', properties: { a: { type: 'integer' } }, minProperties: 2 };
  const acc = acceptor(compileJsonSchema(schema, { additionalProperties: 'declared' }));
  assert.equal(acc('{"a":1,"b":2}'), true);
  assert.equal(acc('{"a":1}'), false);
  assert.equal(acc('{"a":1,"":2}'), false);
  assert.equal(acc('{"a":1,"a":2}'), false);
  assert.equal(acceptor(compileJsonSchema({ type: 'object', properties: { a: {} } }, { additionalProperties: 'declared' }))('{"a":1,"b":2}'), false, 'no extra keys where none are needed');
});
