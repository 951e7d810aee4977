// Object members in any order when checking instances ('schema' mode): every permutation of an
// instance's keys is accepted exactly when ajv accepts the instance, a declared name never twice;
// generation modes keep the schema's order. The any-order members are lazily built grammar rules
// (one per set of names seen): shortest completions and token masks are checked on them too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileJsonSchema, ByteAutomaton, TokenMatcher, TokenVocab, DEAD } from '../../src/structured/index.js';
import type { JsonSchema, SchemaOptions } from '../../src/structured/index.js';
import { HFTokenizer } from '../../src/tokenizers/hf.js';
import { llama2Json } from '../tokenizers/real_vocabs.js';
import { acceptor, ajvValid, assertMaskBrute } from './suite_util.js';

function permutations<T>(xs: T[]): T[][] {
  if (xs.length <= 1) return [xs];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
}

/** Object text with the members in the given order (values as JSON). */
const text = (members: Array<[string, unknown]>) => `{${members.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`;

const SCHEMAS: Array<{ schema: JsonSchema; values: Record<string, unknown[]> }> = [
  // Required and optional names, extra keys allowed (additionalProperties absent).
  { schema: { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'string' }, c: { type: 'boolean' } }, required: ['a', 'c'] }, values: { a: [1, 'x'], b: ['s'], c: [true], z: [0] } },
  // No extra keys; minProperties / maxProperties beyond the required count.
  { schema: { type: 'object', properties: { a: {}, b: {}, c: {}, d: {} }, additionalProperties: false, minProperties: 2, maxProperties: 3 }, values: { a: [1], b: [2], c: [3], d: [4], z: [5] } },
  // Extra keys with a schema, counted by minProperties.
  { schema: { type: 'object', properties: { a: { type: 'string' }, b: { type: 'integer' } }, additionalProperties: { type: 'integer' }, minProperties: 3 }, values: { a: ['x'], b: [2], y: [1, 'no'], z: [3] } },
  // patternProperties beside declared names (a declared name matching a pattern meets both schemas).
  { schema: { type: 'object', properties: { x1: { type: 'integer', minimum: 5 }, b: { type: 'null' } }, patternProperties: { '^x': { type: 'integer' } }, additionalProperties: false, required: ['b'] }, values: { x1: [7, 3], b: [null], x2: [1, 'q'], q: [1] } },
  // One declared name: extra keys before it as well as after.
  { schema: { type: 'object', properties: { a: { type: 'integer' } }, required: ['a'] }, values: { a: [1, 'x'], z: [0], y: [true] } },
  // Dependencies on names: a present trigger needs others (transitively) or excludes one; a trigger that is never allowed.
  { schema: { type: 'object', properties: { a: {}, b: {}, c: {}, d: {} }, dependencies: { a: ['b'], b: ['c'], d: { not: { required: ['a'] } } } }, values: { a: [1], b: [2], c: [3], d: [4], z: [0] } },
  { schema: { type: 'object', properties: { a: { type: 'integer' }, b: {}, c: {} }, required: ['c'], additionalProperties: false, dependencies: { b: false, a: ['c'] } }, values: { a: [1, 'x'], b: [2], c: [3] } },
  // A required name that properties does not declare (its value follows additionalProperties).
  { schema: { type: 'object', properties: { a: { type: 'integer' } }, required: ['a', 'k'], additionalProperties: { type: 'string' } }, values: { a: [1], k: ['v', 2], m: ['w'] } },
];

test('members in any order: every permutation and subset of keys agrees with ajv; a declared name twice is refused', () => {
  for (const { schema, values } of SCHEMAS) {
    const ok = acceptor(compileJsonSchema(schema));
    const names = Object.keys(values);
    let tried = 0, accepted = 0;
    // Every subset of the names, each value choice, every order.
    for (let mask = 0; mask < 1 << names.length; mask++) {
      const keys = names.filter((_, i) => mask & (1 << i));
      const choices: Array<Array<[string, unknown]>> = keys.reduce<Array<Array<[string, unknown]>>>((acc, k) => acc.flatMap((c) => values[k].map((v) => [...c, [k, v] as [string, unknown]])), [[]]);
      for (const members of choices) {
        const want = ajvValid(schema, Object.fromEntries(members));
        for (const order of permutations(members)) {
          tried++;
          const t = text(order);
          assert.equal(ok(t), want, `${JSON.stringify(schema)}: ${t}`);
          if (want) accepted++;
        }
      }
    }
    assert.ok(accepted > 0 && accepted < tried, `${JSON.stringify(schema)}: both outcomes tried`);
    // A declared name repeated (each value valid) is refused, before or after other members.
    const [n0, n1] = names;
    for (const t of [text([[n0, values[n0][0]], [n0, values[n0][0]]]), text([[n0, values[n0][0]], [n1, values[n1][0]], [n0, values[n0][0]]])]) assert.equal(ok(t), false, `duplicate: ${t}`);
  }
});

test('generation modes keep the schema order; checking accepts any order (also nested, and in arrays of objects)', () => {
  const schema: JsonSchema = { type: 'object', properties: { id: { type: 'integer' }, tags: { type: 'array', items: { type: 'object', properties: { k: { type: 'string' }, v: { type: 'number' } }, required: ['k'] } } }, required: ['id'] };
  const inOrder = '{"id":1,"tags":[{"k":"a","v":2},{"k":"b"}]}';
  const shuffled = '{"tags":[{"v":2,"k":"a"},{"k":"b"}],"id":1}';
  assert.equal(acceptor(compileJsonSchema(schema))(inOrder), true);
  assert.equal(acceptor(compileJsonSchema(schema))(shuffled), true);
  for (const mode of ['declared', 'allow', 'forbid'] as const) {
    const ok = acceptor(compileJsonSchema(schema, { additionalProperties: mode }));
    assert.equal(ok(inOrder), true, mode);
    assert.equal(ok(shuffled), false, mode);
  }
});

test('lazily built member rules: shortest completions from mid-object states are valid and as short as stated', () => {
  const schema: JsonSchema = { type: 'object', properties: { alpha: { type: 'string' }, b: { type: 'integer' }, c: { enum: ['xyz', 'w'] }, d: { type: 'boolean' } }, required: ['c', 'alpha', 'd'], minProperties: 4, additionalProperties: { type: 'null' } };
  const a = new ByteAutomaton(compileJsonSchema(schema));
  for (const prefix of ['{', '{"d":true', '{"d":true,', '{"c":"w","q":null', '{"b":1,"alpha":"', '{"q":null,"r":null,"d":false,"c":"w"']) {
    const s = a.advanceBytes(a.initial, new TextEncoder().encode(prefix));
    assert.ok(s !== DEAD, prefix);
    const rest = new TextDecoder().decode(a.shortestCompletion(s));
    assert.equal(rest.length, a.minComplete(s), `${prefix}: completion length`);
    const whole = prefix + rest;
    assert.ok(ajvValid(schema, JSON.parse(whole)), `${prefix} → ${whole}`);
  }
});

test('token masks at key positions of any-order members equal a brute-force check (LLaMA-2 vocabulary)', async () => {
  const tok = new HFTokenizer(await llama2Json());
  const vocab = TokenVocab.fromTokenizer(tok);
  const schema: JsonSchema = { type: 'object', properties: { name: { type: 'string' }, nickname: { type: 'string' }, age: { type: 'integer' }, email: { type: 'string' } }, required: ['name'] };
  for (const opts of [{}, { whitespace: 'flexible' }] as SchemaOptions[]) {
    const m: TokenMatcher = new TokenMatcher(compileJsonSchema(schema, opts), vocab);
    for (const prefix of ['{', '{"', '{"n', '{"age":3,"', '{"age":3,"ni', '{"email":"e","name":"n","', '{"zz":1,"']) {
      const s: number = m.automaton.advanceBytes(m.initial, new TextEncoder().encode(prefix));
      assert.ok(s !== DEAD, prefix);
      for (const budget of [Infinity, 6]) assertMaskBrute(m, vocab, s, `${prefix} (budget ${budget})`, budget);
    }
  }
});
