// Regular string languages in JSON Schema (issue #20), checked with ajv both ways: minLength /
// maxLength together with pattern or format, patternProperties (keys matching several patterns,
// declared names that match patterns, additionalProperties for the rest, the generation modes),
// propertyNames, and their merging across allOf. Every instance the grammar accepts must
// validate; the instances written as the grammar writes them (declared keys first, in schema
// order) that validate must be accepted, except where a documented gap applies (keys matching no
// pattern are printable ASCII).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileJsonSchema, UnsupportedKeywordError, UnsatisfiableError } from '../../src/structured/index.js';
import type { JsonSchema, SchemaOptions } from '../../src/structured/index.js';
import { Rng } from '../../src/structured/fuzz.js';
import { ajv, acceptor } from './suite_util.js';


const automaton = (schema: JsonSchema, opts: SchemaOptions = {}) => acceptor(compileJsonSchema(schema, opts));

const KEYS = ['a', 'b', 'c', 'x-', 'x-1', 'x-foo', 'y_id', 'x_id', 'foo', 'Foo', 'FOO', '', 'é', 'xé', 'a"b', 'a\\b', 'ab', 'abc', 'abcdefghij', 'id', 'name', 'x-\n'];
const VALUES: unknown[] = [1, -2, 2.5, 'x', '', 'hello', true, null, [], [1], {}, { a: 1 }];
const printable = (k: string) => /^[\x20-\x7e]*$/.test(k) && !/["\\]/.test(k);

/** Random objects: declared keys (in schema order) then other keys, values from a small pool. */
function objects(r: Rng, schema: Record<string, unknown>, n: number): Array<Record<string, unknown>> {
  const declared = Object.keys((schema.properties ?? {}) as object);
  const out: Array<Record<string, unknown>> = [{}];
  for (let i = 0; i < n; i++) {
    const o: Record<string, unknown> = {};
    for (const k of declared) if (r.chance(0.5)) o[k] = r.pick(VALUES);
    for (let j = r.int(0, 3); j > 0; j--) { const k = r.pick(KEYS); if (!(k in o) && !declared.includes(k)) o[k] = r.pick(VALUES); }
    out.push(o);
  }
  return out;
}

function check(schema: Record<string, unknown>, opts: { n?: number; seed?: number; exact?: (o: Record<string, unknown>) => boolean } = {}): { accepted: number; valid: number } {
  const acc = automaton(schema);
  const validate = ajv.compile(schema);
  const r = new Rng(opts.seed ?? 1);
  let accepted = 0, valid = 0;
  const declared = new Set(Object.keys((schema.properties ?? {}) as object));
  for (const o of objects(r, schema, opts.n ?? 400)) {
    const text = JSON.stringify(o);
    const ok = validate(o) as boolean, a = acc(text);
    if (a) assert.ok(ok, `UNSOUND: accepts ${text} for ${JSON.stringify(schema)}`);
    const expectExact = (opts.exact ?? (() => true))(o) && Object.keys(o).every((k) => declared.has(k) || printable(k) || matchesAnyPattern(schema, k));
    if (ok && expectExact) assert.ok(a, `rejects valid ${text} for ${JSON.stringify(schema)}`);
    if (a) accepted++;
    if (ok) valid++;
  }
  return { accepted, valid };
}
const matchesAnyPattern = (s: Record<string, unknown>, k: string) => Object.keys((s.patternProperties ?? {}) as object).some((p) => new RegExp(p, 'u').test(k));

test('patternProperties: keys by pattern, several patterns at once, declared names matching patterns, additionalProperties for the rest', () => {
  const schemas: Array<Record<string, unknown>> = [
    { type: 'object', patternProperties: { '^x-': { type: 'string' } } },
    { type: 'object', patternProperties: { '^x-': { type: 'string' } }, additionalProperties: false },
    { type: 'object', patternProperties: { '^x-': { type: 'string' }, '_id$': { type: 'integer' } }, additionalProperties: { type: 'boolean' } },
    { type: 'object', patternProperties: { '^x': { type: ['string', 'integer'] }, '1$': { type: ['integer', 'null'] } }, additionalProperties: false },
    { type: 'object', properties: { a: { type: 'integer' }, x_id: { type: 'number' } }, patternProperties: { '_id$': { type: 'integer', minimum: 0 } }, required: ['a'] },
    { type: 'object', properties: { foo: {} }, patternProperties: { '^[a-z]+$': { type: 'string' } }, additionalProperties: false },
    { type: 'object', patternProperties: { '^[a-z]{1,3}$': { type: 'string', minLength: 1 } }, additionalProperties: { type: 'null' } },
    { type: 'object', patternProperties: { '': { type: 'integer' } } },
    { type: 'object', patternProperties: { 'é': false, '^.$': { type: 'integer' } } },
    { type: 'object', required: ['y_id'], patternProperties: { '_id$': { type: 'integer' } }, additionalProperties: false },
  ];
  let valid = 0;
  for (const [i, s] of schemas.entries()) valid += check(s, { seed: i + 1 }).valid;
  assert.ok(valid > 400, `${valid} valid instances`);
});

test('propertyNames: pattern, enum, const, length, format; with properties and patternProperties', () => {
  const schemas: Array<Record<string, unknown>> = [
    { type: 'object', propertyNames: { pattern: '^[a-z]+$' } },
    { type: 'object', propertyNames: { maxLength: 2 } },
    { type: 'object', propertyNames: { minLength: 2, maxLength: 3, pattern: '^[a-z]' }, additionalProperties: { type: 'integer' } },
    { type: 'object', propertyNames: { enum: ['a', 'b', 'foo', 7] } },
    { type: 'object', propertyNames: { const: 'id' } },
    { type: 'object', propertyNames: false },
    { type: 'object', properties: { a: {}, name: {} }, propertyNames: { pattern: '^[ab]' } },
    { type: 'object', propertyNames: { anyOf: [{ pattern: '^x-' }, { enum: ['a'] }] }, patternProperties: { '^x-': { type: 'string' } } },
    { type: 'object', propertyNames: { format: 'ipv4' } },
    { type: 'object', propertyNames: { type: 'integer' } },
    { type: 'object', propertyNames: { $ref: '#/definitions/k' }, definitions: { k: { pattern: '^[A-Z]+$' } } },
    // names excluded by not (enum / const)
    { type: 'object', propertyNames: { not: { const: 'a' } } }, { type: 'object', propertyNames: { not: { pattern: '^x' } } },
    { type: 'object', propertyNames: { maxLength: 2, not: { enum: ['a', 'ab', 'x'] } }, patternProperties: { '^a': { type: 'integer' } } },
  ];
  for (const [i, s] of schemas.entries()) check(s, { seed: 20 + i });
  assert.throws(() => compileJsonSchema({ type: 'object', required: ['name'], propertyNames: { maxLength: 2 } }), UnsatisfiableError);
  assert.throws(() => compileJsonSchema({ type: 'object', propertyNames: { oneOf: [{ pattern: '^a' }, { maxLength: 2 }] } }), (e: unknown) => e instanceof UnsupportedKeywordError && e.keyword === 'propertyNames');
});

test('minLength / maxLength with pattern and with format: exactly the intersection (ajv both ways)', () => {
  const r = new Rng(9);
  const cases: Array<[Record<string, unknown>, string[]]> = [
    [{ type: 'string', pattern: '^[a-z]+$', maxLength: 4 }, []],
    [{ type: 'string', pattern: '(ab)?', minLength: 1, maxLength: 3 }, ['"a\\', '😀😀😀', '\n']],
    [{ type: 'string', pattern: '^[^a]{2,}$', maxLength: 3 }, ['bb', 'bbb', 'bbbb']],
    [{ type: 'string', pattern: '[0-9]', minLength: 3, maxLength: 5 }, ['a1', 'a1b', 'ab1cd', 'ab1cde', '123']],
    [{ type: 'string', pattern: '^x-', minLength: 4 }, ['x-', 'x-a', 'x-ab', 'x-"\\']],
    [{ type: 'string', format: 'time', maxLength: 9 }, ['09:30:00Z', '09:30:00.5Z', '23:59:60Z']],
    [{ type: 'string', format: 'date-time', minLength: 21 }, ['2024-03-14T09:30:00Z', '2024-03-14T09:30:00.5Z']],
    [{ type: 'string', format: 'email', maxLength: 8 }, ['a@b.co', 'ab@cd.com', 'abc@d.co']],
    [{ type: 'string', format: 'ipv4', pattern: '^10\\.' }, ['10.0.0.1', '192.168.0.1', '10.1']],
    [{ type: 'string', format: 'uuid', pattern: '^0' }, ['0b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed', '1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed']],
    [{ type: 'string', pattern: 'é|😀', minLength: 1, maxLength: 2 }, ['é', 'aé', '😀😀', 'a😀b', '😀']],
  ];
  const pool = ['', 'a', 'ab', 'abc', 'abcd', 'abcde', 'x', 'x-', 'x-1', 'x-12', 'x-123', '1', '12', 'a1', 'é', 'éé', '😀', '"', '\\', 'a b', 'A'];
  for (const [s, extra] of cases) {
    const acc = automaton(s);
    const validate = ajv.compile(s);
    const strs = [...pool, ...extra];
    for (let i = 0; i < 200; i++) strs.push(r.pick(pool) + r.pick(pool));
    let valid = 0;
    for (const v of strs) {
      const ok = validate(v) as boolean;
      assert.equal(acc(JSON.stringify(v)), ok, `${JSON.stringify(s)} on ${JSON.stringify(v)}`);
      if (ok) valid++;
    }
    assert.ok(valid > 0, `some valid strings for ${JSON.stringify(s)}`);
  }
  assert.throws(() => compileJsonSchema({ type: 'string', pattern: '^a$', minLength: 2 }), UnsatisfiableError);
  assert.throws(() => compileJsonSchema({ type: 'string', pattern: '^[a-z]{5}$', maxLength: 3 }), UnsatisfiableError);
  // A product past the bound: refused, naming the keyword …
  assert.throws(() => compileJsonSchema({ type: 'string', format: 'uri', maxLength: 2048 }), (e: unknown) => e instanceof UnsupportedKeywordError && e.keyword === 'maxLength');
  // … or, where the count that fits is still large, maxLength lowered to it (a smaller language: sound).
  const email = { type: 'string', format: 'email', pattern: '[0-9]', maxLength: 1024 };
  const acc = automaton(email), validate = ajv.compile(email);
  for (const n of [1, 50, 164, 165, 300, 1000, 1025]) {
    const v = '1' + 'a'.repeat(n) + '@example.com';
    if (acc(JSON.stringify(v))) assert.ok(validate(v), `UNSOUND ${n}`);
    assert.equal(acc(JSON.stringify(v)), [...v].length <= 180, `email of ${[...v].length} characters`);
  }
  // Where the product fits, maxLength is exact: the email language alone at maxLength 1024.
  const plain = automaton({ type: 'string', format: 'email', maxLength: 1024 });
  for (const n of [1000, 1011, 1012, 1013]) assert.equal(plain(JSON.stringify('a'.repeat(n) + '@example.com')), n + 12 <= 1024, `email of ${n + 12} characters`);
});

test('generation modes: declared keeps pattern keys (non-empty), forbid emits only declared names; allOf merges patternProperties soundly', () => {
  const s = { type: 'object', properties: { a: { type: 'integer' } }, patternProperties: { '^x-': { type: 'string' }, '^$|^[a-z]{2,}$': { type: 'string' } } };
  const declared = automaton(s, { additionalProperties: 'declared' }), forbid = automaton(s, { additionalProperties: 'forbid' });
  assert.equal(declared('{"a":1,"x-q":"v"}'), true);
  assert.equal(declared('{"a":1,"":"v"}'), false, 'no empty key when generating');
  assert.equal(declared('{"a":1,"zz":"v"}'), true, 'a key matching a pattern is declared by the schema');
  assert.equal(forbid('{"a":1,"x-q":"v"}'), false);
  assert.equal(forbid('{"a":1}'), true);
  // allOf: keys of one branch's patterns are additional for the other's additionalProperties.
  assert.throws(() => compileJsonSchema({ allOf: [{ patternProperties: { '^x-': {} } }, { additionalProperties: false }] }), (e: unknown) => e instanceof UnsupportedKeywordError && /patternProperties/.test(e.message));
  check({ allOf: [{ type: 'object', patternProperties: { '^x-': { type: 'string' } } }, { patternProperties: { '^x-': { minLength: 2 }, '^a': { type: 'integer' } } }] }, { seed: 77 });
  check({ allOf: [{ type: 'object', propertyNames: { maxLength: 3 } }, { propertyNames: { pattern: '^[a-z]' } }] }, { seed: 78 });
  // enum values are filtered with patternProperties / propertyNames.
  check({ enum: [{ 'x-a': 1 }, { 'x-a': 'one' }, { b: 2 }, {}], patternProperties: { '^x-': { type: 'string' } }, propertyNames: { pattern: '^x' } }, { seed: 79 });
});
