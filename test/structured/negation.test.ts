// not, if/then/else, contains and exact oneOf (issue #20), checked against ajv (draft-07, with
// ajv-formats) on a pool of instances and on number/string spellings a model may write: every
// instance the grammar accepts validates, and the ones ajv validates are accepted (keys in schema
// order); complements this compiler cannot write are refused naming 'not' and the keyword's pointer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileJsonSchema, UnsupportedKeywordError, StructuredError } from '../../src/structured/index.js';
import type { Grammar, JsonSchema } from '../../src/structured/index.js';
import { ajv, ajvValid, accepts } from './suite_util.js';



/** The value with its top-level keys in every order (objects of up to 3 keys). */
function orders(v: unknown): unknown[] {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return [v];
  const perms = (ks: string[]): string[][] => (ks.length <= 1 ? [ks] : ks.flatMap((k, i) => perms([...ks.slice(0, i), ...ks.slice(i + 1)]).map((p) => [k, ...p])));
  return perms(Object.keys(v)).map((ks) => Object.fromEntries(ks.map((k) => [k, (v as Record<string, unknown>)[k]])));
}

const POOL: unknown[] = [null, true, false, 0, 1, -1, 1.5, -2.25, 2, 5, 4.9, 5.1, 10, 0.5, -0.5, 2.5, -3.75, 7.125, 123.5, 3000000000, '', 'a', 'b', 'ab', 'abc', 'foo', 'fo', 'fooo', 'x"y', 'é', 'a\nb',
  {}, { a: 1 }, { b: 1 }, { a: 1, b: 2 }, { a: 'x' }, { a: 1.5 }, { a: null, b: 'x' }, { kind: 'a' }, { kind: 'b', x: 1 }, { kind: 'a', x: 'y' }, { c: true },
  { radius: 1 }, { a: 1, radius: 2 }, { b: 1, c: 2 }, { a: 1, b: 2, c: 3 }, { length: 1, width: 2 }, { radius: 1, length: 2, width: 3 }, { length: 1 },
  [], [1], ['a', 1], [1, 2, 3], [1, 3], ['a', 2, 1], [3, 'b'], ['a', 'b'], [1.5], [null], [[1]]];

/** Schemas whose compiled grammar must agree with ajv on every pool instance. */
const EXACT: JsonSchema[] = [
  // not: types, exclusions, bounds, required, properties, combinators, booleans
  { not: { type: 'string' } }, { not: { type: ['object', 'array', 'null'] } }, { not: { type: 'integer' } }, { type: 'number', not: { type: 'integer' } },
  { not: { enum: ['a', 'ab', 1, null, true] } }, { type: 'string', not: { const: 'foo' } }, { type: 'string', maxLength: 3, not: { enum: ['fo', 'foo', 'fooo', ''] } },
  { type: 'number', not: { enum: [5, 1.5] } }, { type: 'integer', minimum: 0, maximum: 10, not: { enum: [0, 5, 10] } }, { not: { const: false } },
  { not: { minimum: 2 } }, { not: { exclusiveMaximum: 5 } }, { type: 'number', minimum: -3, maximum: 5, not: { type: 'integer' } }, { exclusiveMinimum: -4, exclusiveMaximum: 3, not: { type: 'integer' } }, { type: 'number', not: { minimum: 1, maximum: 5 } }, { not: { minLength: 2, maxLength: 3 } }, { not: { minItems: 1 } },
  { not: { required: ['a'] } }, { not: { required: ['a', 'b'] } }, { properties: { a: { not: {} } } }, { properties: { a: false, b: true } },
  { not: { properties: { a: { type: 'integer' } } } }, { not: { not: { type: 'integer' } } }, { not: { anyOf: [{ type: 'string' }, { type: 'null' }] } },
  { not: { allOf: [{ type: 'object' }, { required: ['a'] }] } }, { not: { oneOf: [{ type: 'integer' }, { minimum: 2 }] } }, { anyOf: [{ not: true }, { type: 'string' }] }, { anyOf: [{ not: false }] },
  { not: { type: 'object', properties: { a: {} }, additionalProperties: false } }, { type: 'object', properties: { a: { type: 'integer' }, b: {} }, not: { properties: { a: {} }, additionalProperties: false } },
  { not: { additionalProperties: { type: 'number' } } },
  // a witness member together with counting and dependencies (the object keywords' recursion)
  { type: 'object', properties: { a: { type: 'integer' } }, maxProperties: 2, not: { properties: { a: {} }, additionalProperties: false } },
  { type: 'object', properties: { a: {}, b: {} }, minProperties: 2, dependencies: { a: ['b'] }, not: { properties: { b: {} }, additionalProperties: false } },
  // a witness key that patternProperties or propertyNames speak for: their schemas, not additionalProperties's
  { type: 'object', properties: { a: {} }, patternProperties: { '^b': { type: 'string' } }, not: { properties: { a: {} }, additionalProperties: false } },
  { type: 'object', properties: { a: {} }, patternProperties: { '^b': {} }, additionalProperties: false, not: { properties: { a: {} }, additionalProperties: false } },
  { type: 'object', propertyNames: { maxLength: 1 }, not: { properties: { a: {} }, additionalProperties: false } },
  // contains beside uniqueItems (items of a finite domain: the set of values used tracks the witnesses)
  { type: 'array', items: { enum: [1, 2, 3, 'a', 'b'] }, uniqueItems: true, contains: { type: 'string' } },
  { if: { type: 'array', items: { type: 'string' } }, then: { const: 45 }, else: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 4 }, uniqueItems: true } },
  { type: 'array', items: { enum: [1, 2, 3, 'a', 'b'] }, uniqueItems: true, allOf: [{ contains: { const: 1 } }, { contains: { type: 'string' } }] },
  { not: { items: { type: 'integer' } } }, { not: { items: [{ type: 'string' }] } }, { not: { items: [{ type: 'integer' }, {}], additionalItems: false } }, { not: { contains: { type: 'integer' } } },
  { $defs: { s: { type: 'string' } }, not: { $ref: '#/$defs/s' } },
  // excluded values from a pattern's language (a DFA minus the strings), and not of patterns (a DFA difference)
  { not: { pattern: '^a' } }, { type: 'string', not: { pattern: 'o' } }, { type: 'string', maxLength: 3, not: { pattern: '^[ab]+$' } }, { if: { pattern: 'a' }, then: { minLength: 3 } },
  { oneOf: [{ type: 'string' }, { pattern: '^a' }] }, { allOf: [{ not: { pattern: '^f' } }, { not: { pattern: 'b$' } }] }, { not: { not: { pattern: '^fo' } } },
  { type: 'string', pattern: '^a', not: { const: 'ab' } }, { type: 'string', pattern: '^[a-z]+$', maxLength: 3, not: { enum: ['a', 'abc', 'foo'] } },
  // contains
  { type: 'array', contains: { type: 'string' } }, { contains: { const: 1 }, maxItems: 2 }, { type: 'array', items: { type: 'number' }, contains: { type: 'integer' } },
  { allOf: [{ contains: { type: 'string' } }, { contains: { type: 'integer' } }] }, { allOf: [{ contains: { const: 1 } }, { contains: { minimum: 2 } }], maxItems: 2 },
  { not: { allOf: [{ contains: { type: 'string' } }, { contains: { type: 'integer' } }] } },
  // if / then / else
  { if: { properties: { kind: { const: 'a' } } }, then: { required: ['x'] }, else: { required: ['kind'] } },
  { if: { type: 'string' }, then: { minLength: 2 } }, { if: { type: 'integer' }, else: { type: 'string' } }, { type: 'object', if: { required: ['a'] }, then: { properties: { a: { type: 'integer' } } }, else: { required: ['b'] } },
  // oneOf that overlaps: each branch without the others
  { oneOf: [{ required: ['radius'] }, { required: ['length', 'width'] }] }, { oneOf: [{ required: ['a'] }, { required: ['b'] }] },
  { oneOf: [{ type: 'number' }, { type: 'integer', minimum: 0 }] }, { oneOf: [{ const: 1 }, { type: 'number', maximum: 5 }] },
  { oneOf: [{ type: 'string' }, { maxLength: 1 }, { enum: ['ab', 1] }] },
  { type: 'object', properties: { a: {}, b: {} }, oneOf: [{ properties: { a: {} }, additionalProperties: false }, { properties: { b: {} }, additionalProperties: false }] },
  { oneOf: [{ properties: { a: { type: 'integer' } }, additionalProperties: { type: 'integer' } }, { properties: { b: {} }, additionalProperties: false }] },
  { allOf: [{ oneOf: [{ required: ['a'] }, { required: ['b'] }] }, { type: 'object' }] },
  { allOf: [{ oneOf: [{ required: ['a'] }, { required: ['b'] }] }, { oneOf: [{ required: ['c'] }, { required: ['radius'] }] }] },
  { anyOf: [{ type: 'object' }, { type: 'string' }], oneOf: [{ required: ['a'] }, { minLength: 2 }] },
  // anyOf branches that look empty but are not (a value left, a `not` that excludes less, other types), and one that is
  { anyOf: [{ type: 'object', required: ['a'], properties: { a: { allOf: [{ enum: [1, 2] }, { not: { const: 1 } }] } } }, { type: 'string' }] },
  { anyOf: [{ type: 'object', required: ['a'], properties: { a: { allOf: [{ const: 1 }, { not: { const: 1, type: 'string' } }] } } }, { type: 'string' }] },
  { anyOf: [{ type: ['object', 'string'], required: ['a'], properties: { a: false } }, { type: 'null' }] }, { anyOf: [{ required: ['a'], properties: { a: { const: 1, not: { enum: [1] } } } }, { type: 'null' }] },
  { anyOf: [{ type: 'object', required: ['a'], properties: { a: { allOf: [{ const: 1 }, { not: { enum: [1, 2] } }] } } }, { type: 'string' }] },
];

test('not / if-then-else / contains / overlapping oneOf: the grammar agrees with ajv on every pool instance', () => {
  for (const schema of EXACT) {
    let g: Grammar;
    try { g = compileJsonSchema(schema); } catch (e) { assert.fail(`${JSON.stringify(schema)} refused: ${(e as Error).message}`); }
    let valid = 0;
    for (const v of POOL) {
      const ok = ajvValid(schema, v);
      if (ok) valid++;
      // Keys are emitted in the schema's order (declared, then required, then the others): a
      // valid object is accepted in one of its key orders, an invalid one in none.
      const texts = orders(v).map((x) => JSON.stringify(x));
      const acc = texts.filter((t) => accepts(g, t));
      if (!ok) assert.deepEqual(acc, [], `${JSON.stringify(schema)}: engine accepts ${acc[0]}, ajv rejects it`);
      else assert.ok(acc.length > 0, `${JSON.stringify(schema)} on ${texts[0]}: engine rejects, ajv accepts`);
    }
    assert.ok(valid >= 1 && valid < POOL.length || JSON.stringify(schema).includes('"not":false') || JSON.stringify(schema).includes('"not":true'), `${JSON.stringify(schema)}: ${valid} valid`);
  }
});

test('"at most one of these keys" as allOf of if/then pairs: exact, and only the branches that can match are compiled', () => {
  // prometheus' idiom: if key i is present and not null, every other key is null or absent. The
  // pairs' product has 2^n anyOf branches; all but n + 1 require a key to be null and not null.
  const keys = ['a', 'b', 'c', 'd', 'e', 'f'];
  const schema: JsonSchema = {
    type: 'object', properties: Object.fromEntries(keys.map((k) => [k, { type: ['integer', 'null'] }])), additionalProperties: false,
    allOf: keys.map((k) => ({ if: { not: { properties: { [k]: { const: null } } } }, then: { properties: Object.fromEntries(keys.filter((x) => x !== k).map((x) => [x, { const: null }])) } })),
  };
  const g = compileJsonSchema(schema);
  const values = [undefined, null, 1];
  let checked = 0;
  // Every object over the first four keys (3^4), the others absent; then two set among all six.
  const objs: Record<string, unknown>[] = [];
  for (let n = 0; n < 81; n++) {
    const o: Record<string, unknown> = {};
    for (let i = 0, m = n; i < 4; i++, m = Math.floor(m / 3)) if (values[m % 3] !== undefined) o[keys[i]] = values[m % 3];
    objs.push(o);
  }
  for (let i = 0; i < keys.length; i++) for (let j = i + 1; j < keys.length; j++) objs.push({ [keys[i]]: 1, [keys[j]]: 2 }, { [keys[i]]: 1, [keys[j]]: null });
  for (const o of objs) {
    const text = JSON.stringify(Object.fromEntries(keys.filter((k) => k in o).map((k) => [k, o[k]])));
    assert.equal(accepts(g, text), ajvValid(schema, o), text);
    checked++;
  }
  assert.equal(checked, 81 + 30);
  // With the 57 empty branches compiled (as before they were left out) the grammar had 254 rules; now 42.
  assert.ok(g.names.length < 100, `${g.names.length} rules`);
});

test('excluded values cannot get through in another spelling (escapes, 5.0, 5e0 …), and the rest of the range stays', () => {
  const cases: Array<[JsonSchema, string[]]> = [
    [{ type: 'string', not: { enum: ['a', 'x"y', 'é', 'a\nb'] } }, ['"a"', '"\\u0061"', '"\\u0041"', '"x\\"y"', '"x\\u0022y"', '"\\u00e9"', '"é"', '"\\u00E9"', '"a\\nb"', '"a\\u000ab"', '"a\\/"', '"b"', '"ab"', '""', '"\\\\"']],
    [{ type: 'number', not: { enum: [5, 0, -2.5] } }, ['5', '5.0', '5.00', '5e0', '50e-1', '0.5e1', '4.99999999999999999', '5.000000000000001', '4.5', '5.5', '0', '-0', '0.0', '0e5', '-2.5', '-2.50', '-25e-1', '-2.4', '-2.6', '1e2', '7']],
    [{ type: 'integer', not: { const: 3 } }, ['3', '3.0', '2', '4', '-3', '30']],
    [{ not: { type: 'integer' } }, ['1', '1.0', '1.5', '-0.5', '1e1', '1.000000000000001', '0.1', '"1"', '999999999999999.9', '123456789012345.5']],
  ];
  for (const [schema, texts] of cases) {
    const g = compileJsonSchema(schema);
    let acc = 0;
    for (const t of texts) {
      const a = accepts(g, t), ok = ajvValid(schema, JSON.parse(t));
      if (a) { acc++; assert.ok(ok, `${JSON.stringify(schema)}: ${t} accepted, ajv rejects it`); }
    }
    assert.ok(acc >= 3, `${JSON.stringify(schema)}: ${acc} accepted`);
  }
  // JSON.stringify's spelling of the values that remain is accepted.
  const g = compileJsonSchema({ type: 'string', not: { enum: ['a', 'ab'] } });
  for (const v of ['', 'b', 'abc', 'aa', 'a"', 'é', '\n', 'x\u0001']) assert.equal(accepts(g, JSON.stringify(v)), true, JSON.stringify(v));
  for (const v of ['a', 'ab']) assert.equal(accepts(g, JSON.stringify(v)), false, v);
});

test('complements this compiler cannot write are refused, naming not and the keyword', () => {
  const cases: Array<[JsonSchema, string, string]> = [
    [{ not: { type: 'string', format: 'email' } }, 'not', '#/not/format'],
    [{ not: { patternProperties: { '^x': { type: 'string' } } } }, 'not', '#/not/patternProperties'],
    [{ not: { uniqueItems: true } }, 'not', '#/not/uniqueItems'],
    [{ properties: { a: { not: { multipleOf: 3 } } } }, 'not', '#/properties/a/not/multipleOf'],
    [{ not: { enum: [{ a: 1 }] } }, 'not', '#'],
    [{ if: { format: 'email' }, then: { minLength: 2 } }, 'not', '#/if/format'],
    [{ oneOf: [{ type: 'string' }, { format: 'email' }] }, 'oneOf', '#'],
  ];
  for (const [schema, kw, ptr] of cases) {
    assert.throws(() => compileJsonSchema(schema), (e: unknown) => e instanceof UnsupportedKeywordError && e.keyword === kw && e.pointer === ptr, JSON.stringify(schema));
  }
  assert.throws(() => compileJsonSchema({ not: true }), /unsatisfiable/);
  // multipleOf beside not integer: the non-integer multiples of a fraction are not written; an integer's are none.
  assert.throws(() => compileJsonSchema({ type: 'number', multipleOf: 0.5, not: { type: 'integer' } }), (e: unknown) => e instanceof UnsupportedKeywordError && e.keyword === 'multipleOf');
  assert.throws(() => compileJsonSchema({ properties: { x: { type: 'number', multipleOf: 0.01 } }, not: { properties: { x: { type: 'integer' } } } }), (e: unknown) => e instanceof UnsupportedKeywordError && e.keyword === 'multipleOf');
  assert.throws(() => compileJsonSchema({ type: 'number', multipleOf: 2, not: { type: 'integer' } }), /unsatisfiable/);
  // Excluded objects the rest rules out are no obstacle.
  assert.doesNotThrow(() => compileJsonSchema({ type: 'string', not: { enum: [{ a: 1 }, 'x'] } }));
});

test('recursive and self-referent negations end quickly with a result or a clear error', () => {
  const t0 = performance.now();
  for (const schema of [{ not: { $ref: '#' } }, { properties: { a: { not: { $ref: '#' } } } }, { $defs: { n: { not: { $ref: '#/$defs/n' } } }, $ref: '#/$defs/n' },
    { type: 'object', properties: { a: { $ref: '#' } }, not: { properties: { a: { $ref: '#' } } } }] as JsonSchema[]) {
    try {
      const g = compileJsonSchema(schema);
      for (const v of [{}, { a: 1 }, { a: { a: 1 } }, 1, 'x']) if (accepts(g, JSON.stringify(v))) assert.ok(ajvValidSafe(schema, v), `${JSON.stringify(schema)}: ${JSON.stringify(v)}`);
    } catch (e) { assert.ok(e instanceof StructuredError, `${JSON.stringify(schema)}: ${(e as Error).stack}`); }
  }
  assert.ok(performance.now() - t0 < 5000);
});

function ajvValidSafe(schema: JsonSchema, v: unknown): boolean {
  try { return ajvValid(schema, v); } catch { return true; }
}
