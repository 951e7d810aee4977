// Compile-time sharing (issue #20's compile target) that must not change a language: Hopcroft's
// partition refinement (src/structured/partition.ts) against Moore's rounds written out plainly,
// on random automata; a schema whose sub-schemas recur (oneOf branches each excluding the others,
// as semgrep's rules do) builds each distinct sub-schema once and still agrees with ajv; objects
// whose key tries share tails accept exactly their own undeclared keys; allOf merges of the same
// parts share the objects they build and change none of their inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { refinePartition } from '../../src/structured/partition.js';
import { Rng } from '../../src/structured/fuzz.js';
import { compileJsonSchema, SchemaCompiler } from '../../src/structured/index.js';
import type { JsonSchema } from '../../src/structured/index.js';
import { ajvValid, acceptor } from './suite_util.js';

/** Moore's refinement: blocks split by (block, blocks of the successors) until stable. */
function moore(N: number, A: number, delta: Int32Array, initial: Int32Array): Int32Array {
  let block = Int32Array.from(initial);
  for (let count = -1; ;) {
    const sig = new Map<string, number>();
    const next = new Int32Array(N);
    for (let q = 0; q < N; q++) {
      let k = String(block[q]);
      for (let a = 0; a < A; a++) k += ',' + block[delta[q * A + a]];
      let id = sig.get(k);
      if (id === undefined) { id = sig.size; sig.set(k, id); }
      next[q] = id;
    }
    block = next;
    if (sig.size === count) return block;
    count = sig.size;
  }
}

test('refinePartition: the same blocks as Moore\'s rounds on random automata and initial partitions', () => {
  const r = new Rng(20);
  for (let t = 0; t < 400; t++) {
    const N = r.int(1, 40), A = r.int(1, 5), k = r.int(1, Math.min(N, 4));
    const delta = new Int32Array(N * A);
    // Chains (counters) as well as random graphs: the shapes minimisation meets.
    const chain = r.chance(0.3);
    for (let q = 0; q < N; q++) for (let a = 0; a < A; a++) delta[q * A + a] = chain && a === 0 ? Math.min(q + 1, N - 1) : r.int(0, N - 1);
    const initial = new Int32Array(N);
    for (let q = 0; q < N; q++) initial[q] = q < k ? q : r.int(0, k - 1);
    const got = refinePartition(N, A, delta, initial), want = moore(N, A, delta, initial);
    for (let p = 0; p < N; p++) for (let q = 0; q < N; q++) {
      assert.equal(got[p] === got[q], want[p] === want[q], `automaton ${t}: states ${p} and ${q}`);
    }
  }
});

test('recurring sub-schemas are built once, and the grammar still agrees with ajv', () => {
  // Each definition is an object whose members must be exactly one of four (oneOf of required +
  // not required): every branch is compiled with the negations of the others, and the objects'
  // property schemas recur in every combination.
  const props = { a: { type: 'string' }, b: { type: 'integer' }, c: { $ref: '#/$defs/inner' }, d: { type: 'array', items: { $ref: '#/$defs/inner' } } };
  const one = (k: string) => ({ required: [k], not: { anyOf: Object.keys(props).filter((x) => x !== k).map((x) => ({ required: [x] })) } });
  const schema: JsonSchema = {
    $defs: {
      inner: { type: 'object', properties: { x: { type: 'boolean' }, y: { enum: ['p', 'q'] } }, additionalProperties: false },
      rule: { type: 'object', properties: props, additionalProperties: false, oneOf: Object.keys(props).map(one) },
    },
    type: 'array',
    items: { anyOf: [{ $ref: '#/$defs/rule' }, { type: 'object', properties: { rules: { type: 'array', items: { $ref: '#/$defs/rule' } } }, oneOf: Object.keys(props).map(one) }] },
  };
  const g = compileJsonSchema(schema);
  // Without sharing this grammar was 10,245 rules (each combination rebuilding every property
  // and an ordered-members grammar beside each any-order one); 862 with it.
  assert.ok(g.rules < 1500, `${g.rules} rules`);
  const accepts = acceptor(g);
  const instances: unknown[] = [
    [], [{ a: 'x' }], [{ b: 1 }], [{ c: { x: true } }], [{ d: [{ y: 'p' }, {}] }], [{ a: 'x', b: 1 }], [{}], [{ c: { x: 1 } }], [{ d: [{ z: 1 }] }],
    [{ rules: [{ a: 'x' }], b: 2 }], [{ rules: [{ a: 'x', c: {} }], b: 2 }], [{ rules: [], a: 'y' }], [{ rules: [] }], [{ a: 'x' }, { b: 3 }, { c: {} }],
    [{ d: [] }, { d: [], a: '' }], [{ b: 1.5 }], [{ rules: [{ d: [{ x: false, y: 'q' }] }], c: { y: 'p' } }],
  ];
  for (const v of instances) assert.equal(accepts(JSON.stringify(v)), ajvValid(schema, v), JSON.stringify(v));
});

test('objects whose undeclared-key tries share tails accept exactly their own undeclared keys', () => {
  // Two objects with overlapping names (the tails "Name", "Version" recur): each object's extra
  // keys are every key but its own declared names.
  const schema: JsonSchema = {
    type: 'object',
    properties: {
      first: { type: 'object', properties: { apiName: { type: 'integer' }, apiVersion: { type: 'integer' }, kind: { type: 'integer' } }, additionalProperties: { type: 'string' } },
      second: { type: 'object', properties: { apiName: { type: 'integer' }, fileName: { type: 'integer' }, version: { type: 'integer' } }, additionalProperties: { type: 'string' } },
    },
  };
  const accepts = acceptor(compileJsonSchema(schema));
  for (const key of ['apiName', 'apiVersion', 'kind', 'fileName', 'version', 'Name', 'api', 'apiNam', 'apiNames', 'kinds', 'versio', 'x', '']) {
    for (const where of ['first', 'second']) {
      for (const value of [1, 's']) {
        const v = { [where]: { [key]: value } };
        assert.equal(accepts(JSON.stringify(v)), ajvValid(schema, v), JSON.stringify(v));
      }
    }
  }
});

test('allOf merges of the same parts share what they build and change no part or earlier result', () => {
  const P = { type: 'object', properties: { a: { type: 'string' }, b: { type: 'integer' } }, additionalProperties: false };
  const Q = { properties: { b: { minimum: 0 }, c: { type: 'boolean' } }, additionalProperties: false, required: ['a', 'z'] };
  const R = { properties: { c: { type: 'boolean' }, d: {} }, additionalProperties: { type: 'number' }, required: ['w'] };
  const before = JSON.stringify([P, Q, R]);
  const c = new SchemaCompiler({});
  type M = { properties: Record<string, unknown> };
  const pq = c.normalize({ allOf: [P, Q] }, '#') as M;
  const pqJson = JSON.stringify(pq);
  // The same parts in another allOf object (another variant of an object): its merged members the
  // same objects, and so is the properties object where no required name had to be added to it.
  const again = c.normalize({ allOf: [P, Q] }, '#') as M;
  assert.notEqual(again, pq);
  assert.equal(again.properties.b, pq.properties.b);
  assert.equal(again.properties.c, pq.properties.c);
  const Q2 = { ...Q, required: ['a'] };
  const pq2 = c.normalize({ allOf: [P, Q2] }, '#') as M, pq2again = c.normalize({ allOf: [P, Q2] }, '#') as M;
  assert.notEqual(pq2again, pq2);
  assert.equal(pq2again.properties, pq2.properties);
  // Merges that extend them (more parts, other orders) leave the parts and the earlier result as they were.
  const pqr = c.normalize({ allOf: [P, Q, R] }, '#');
  c.normalize({ allOf: [R, P] }, '#');
  const qrp = c.normalize({ allOf: [Q, R, P] }, '#');
  assert.equal(JSON.stringify([P, Q, R]), before);
  assert.equal(JSON.stringify(pq), pqJson);
  // What the merges are: each part's additionalProperties over the names other parts declare, and
  // a required name no part declares under every part's additionalProperties.
  assert.deepEqual(JSON.parse(pqJson), {type: 'object', properties: {a: {allOf: [{type: 'string'}, false]}, b: {allOf: [{type: 'integer'}, {minimum: 0}]}, c: {allOf: [{type: 'boolean'}, false]}, z: {allOf: [false, false]}}, additionalProperties: false, required: ['a', 'z']});
  assert.deepEqual(pqr, {type: 'object', properties: {a: {allOf: [{allOf: [{type: 'string'}, false]}, {type: 'number'}]}, b: {allOf: [{allOf: [{type: 'integer'}, {minimum: 0}]}, {type: 'number'}]}, c: {allOf: [{allOf: [{type: 'boolean'}, {type: 'boolean'}]}, false]}, d: {allOf: [{allOf: [{}, false]}, false]}, z: {allOf: [{allOf: [false, false]}, {type: 'number'}]}, w: {allOf: [{allOf: [false, false]}, {type: 'number'}]}}, additionalProperties: {allOf: [false, {type: 'number'}]}, required: ['a', 'z', 'w']});
  assert.deepEqual(qrp, {properties: {b: {allOf: [{allOf: [{minimum: 0}, {type: 'integer'}]}, {type: 'number'}]}, c: {allOf: [{allOf: [{type: 'boolean'}, {type: 'boolean'}]}, false]}, d: {allOf: [{allOf: [{}, false]}, false]}, a: {allOf: [{allOf: [{type: 'string'}, false]}, {type: 'number'}]}, z: {allOf: [{allOf: [false, {type: 'number'}]}, false]}, w: {allOf: [{allOf: [false, {type: 'number'}]}, false]}}, additionalProperties: {allOf: [{allOf: [false, {type: 'number'}]}, false]}, required: ['a', 'z', 'w'], type: 'object'});
});

test('a complement met again is the same object, and counts toward the bound on negations as computing it again would', () => {
  // negate(x) makes 6 negations the first time (x, its two branches, the $ref target and its two
  // parts) and 3 after (the target's complement is then known): 1 + 1,331 calls reach 3,999, the
  // next one passes 4,000 and is refused, at the same place and count as without the memo.
  const c = new SchemaCompiler({ $defs: { d: { allOf: [{ minimum: 1 }, { maximum: 5 }] } } });
  const x = { anyOf: [{ $ref: '#/$defs/d' }, { required: ['b'] }] };
  const first = c.negate(x, '#');
  let ok = 1;
  let error: unknown = null;
  for (let i = 0; i < 5000 && error === null; i++) {
    try { assert.equal(c.negate(x, '#'), first); ok++; } catch (e) { error = e; }
  }
  assert.equal(ok, 1332);
  assert.ok(error instanceof Error && error.constructor.name === 'ComplexityError' && /negations .* exceeds 4000 \(at #\/anyOf\/0\)/.test(error.message), String(error));
  // The complement itself: neither branch, by ajv, on a few values.
  const schema = { $defs: { d: { allOf: [{ minimum: 1 }, { maximum: 5 }] } }, ...(first as object) };
  for (const v of [0, 1, 3, 5, 6, { b: 1 }, { a: 1 }, 'x']) {
    assert.equal(ajvValid(schema, v), !ajvValid({ $defs: schema.$defs, ...x }, v), JSON.stringify(v));
  }
});

test('the parts normalize copies without a keyword keep every other key as an own key, an own "__proto__" included, and agree with ajv', () => {
  // JSON.parse makes "__proto__" an own key (a word outside the vocabulary: ignored). A copy that
  // assigned it would set the copy's prototype, and `type` would then be read through it.
  const schemas = [
    JSON.parse('{"__proto__": {"type": "string"}, "allOf": [{"minimum": 2}]}'),
    JSON.parse('{"__proto__": {"type": "string"}, "$defs": {"n": {"minimum": 2}}, "$ref": "#/$defs/n", "maximum": 9}'),
    JSON.parse('{"__proto__": {"type": "string"}, "anyOf": [{"minimum": 2}, {"maxLength": 1}]}'),
    JSON.parse('{"allOf": [{"__proto__": {"type": "string"}, "allOf": [{"minimum": 2}]}, {"maximum": 9}]}'),
    JSON.parse('{"__proto__": {"type": "string"}, "if": {"minimum": 5}, "then": {"multipleOf": 2}, "else": {"maximum": 3}}'),
    JSON.parse('{"__proto__": {"type": "string"}, "enum": [1, 4, "ab", "abc"], "minLength": 3}'),
  ];
  for (const [i, schema] of schemas.entries()) {
    const accepts = acceptor(compileJsonSchema(schema));
    for (const v of [0, 1, 2, 3, 4, 6, 7, 12, 'a', 'ab', 'abc', null, [], {}]) {
      assert.equal(accepts(JSON.stringify(v)), ajvValid(schema, v), `schema ${i}, ${JSON.stringify(v)}`);
    }
  }
});

test('undeclared-key tries of random names (non-ASCII, escaped, prefixes of each other) accept exactly the undeclared printable keys, and the declared names with their values', () => {
  // Names as keyTrie reads them: JSON-escaped UTF-8, a byte per level; printable ASCII names read
  // as they are. The keys tried: the names, their prefixes and extensions, other ASCII keys.
  const r = new Rng(77);
  const alphabet = ['a', 'b', 'ab', 'é', '€', '😀', '"', '\\', '\n', '\u0001', '/', ' ', '~', 'A'];
  const word = () => Array.from({ length: r.int(0, 4) }, () => r.pick(alphabet)).join('');
  const printable = (k: string) => [...k].every((c) => c >= ' ' && c <= '~' && c !== '"' && c !== '\\');
  // First: tries whose nodes have the same bytes below them but different subtrees (root {a, c}).
  const fixed = [[['ab', 'cd'], ['ax', 'cd']], [['a', 'ab'], ['a', 'ax']]];
  for (let t = 0; t < 30 + fixed.length; t++) {
    const objects = (t < fixed.length ? fixed[t] : Array.from({ length: r.int(1, 3) }, () => [...new Set(Array.from({ length: r.int(1, 6) }, word))])).map((names) => {
      return { type: 'object', properties: Object.fromEntries(names.map((n) => [n, { type: 'integer' }])), additionalProperties: { type: 'string' } } as JsonSchema;
    });
    const schema: JsonSchema = { type: 'object', properties: Object.fromEntries(objects.map((o, i) => [`o${i}`, o])) };
    const accepts = acceptor(compileJsonSchema(schema));
    const keys = new Set<string>();
    for (const o of objects) for (const n of Object.keys((o as { properties: object }).properties)) {
      keys.add(n);
      for (let i = 0; i < n.length; i++) keys.add(n.slice(0, i));
      keys.add(n + 'a'); keys.add(n + '~');
    }
    for (let i = 0; i < 10; i++) keys.add(word());
    for (const [i, o] of objects.entries()) {
      const declared = new Set(Object.keys((o as { properties: object }).properties));
      for (const key of keys) {
        // Undeclared keys the grammar writes are printable ASCII without escapes (a documented narrowing).
        if (!declared.has(key) && !printable(key)) continue;
        for (const value of [1, 's']) {
          const v = { [`o${i}`]: { [key]: value } };
          assert.equal(accepts(JSON.stringify(v)), ajvValid(schema, v), JSON.stringify(v));
        }
      }
    }
  }
});

test('allOf flattening leaves out parts without keys, and refuses nesting past its bound where it did with them', () => {
  // n allOf objects around `inner`, under a root allOf: the empty rest each wrapper leaves is not
  // a part, but the bound on nesting (16) still counts it: an empty allOf at the bottom is refused
  // one level sooner than a keyword there, as its empty rest was.
  const nest = (inner: JsonSchema, n: number): JsonSchema => {
    let x = inner;
    for (let i = 0; i < n; i++) x = { allOf: [x] };
    return { $defs: { d: { maximum: 3 } }, allOf: [x] };
  };
  const at = (n: number) => '#' + '/allOf/0'.repeat(n);
  const outcome = (schema: JsonSchema) => { try { compileJsonSchema(schema); return 'ok'; } catch (e) { return `${(e as Error).constructor.name}: ${(e as Error).message}`; } };
  const refused = (ptr: string) => `UnsupportedKeywordError: unsupported JSON Schema keyword 'allOf' at ${ptr}: recursive reference inside allOf`;
  for (let n = 12; n <= 19; n++) {
    assert.equal(outcome(nest({ allOf: [] }, n)), n < 16 ? 'ok' : refused(at(n === 16 ? 17 : 18)), `empty allOf, ${n}`);
    assert.equal(outcome(nest({ minimum: 1 }, n)), n < 17 ? 'ok' : refused(at(18)), `minimum, ${n}`);
    assert.equal(outcome(nest({ $ref: '#/$defs/d' }, n)), n < 16 ? 'ok' : n === 16 ? refused('#/$defs/d') : refused(at(18)), `$ref, ${n}`);
  }
  // Parts without keys (the empty rests of pairs, $refs and if/then/else) beside ones with keys: as ajv.
  const schemas: JsonSchema[] = [
    { $defs: { d: { maximum: 9 } }, allOf: [{ allOf: [{ $ref: '#/$defs/d' }, { allOf: [{}, { minimum: 2 }] }] }, { not: { enum: [3, 6] } }] },
    { allOf: [{ if: { minimum: 5 }, then: { multipleOf: 2 }, else: { maximum: 3 } }, { allOf: [{ allOf: [{}] }, { not: { const: 4 } }] }] },
  ];
  for (const [i, schema] of schemas.entries()) {
    const accepts = acceptor(compileJsonSchema(schema));
    for (const v of [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 'a', null]) assert.equal(accepts(JSON.stringify(v)), ajvValid(schema, v), `schema ${i}, ${JSON.stringify(v)}`);
  }
});

test('additionalProperties of a part that declares every merged name leaves the merged properties object as it is', () => {
  const P = { type: 'object', properties: { a: { type: 'string' }, b: { type: 'integer' } }, additionalProperties: false };
  const c = new SchemaCompiler({});
  type M = { properties: Record<string, unknown> };
  // Only P declares names: its own properties object, not a copy of it.
  const one = c.normalize({ allOf: [P, { required: ['a'] }] }, '#') as M;
  assert.equal(one.properties, P.properties);
  // Another part's names within P's: the merge's object, wrapped by nothing.
  const two = c.normalize({ allOf: [{ properties: { a: { minLength: 2 } } }, P] }, '#') as M;
  assert.deepEqual(two.properties, { a: { allOf: [{ minLength: 2 }, { type: 'string' }] }, b: { type: 'integer' } });
  assert.deepEqual(P, { type: 'object', properties: { a: { type: 'string' }, b: { type: 'integer' } }, additionalProperties: false });
  // A name P lacks: wrapped under P's additionalProperties (a copy; P unchanged).
  const three = c.normalize({ allOf: [P, { properties: { z: {} } }] }, '#') as M;
  assert.notEqual(three.properties, P.properties);
  assert.deepEqual(three.properties, { a: { type: 'string' }, b: { type: 'integer' }, z: { allOf: [{}, false] } });
  for (const schema of [{ allOf: [P, { required: ['a'] }] }, { allOf: [{ properties: { a: { minLength: 2 } } }, P] }, { allOf: [P, { properties: { z: {} } }] }] as JsonSchema[]) {
    const accepts = acceptor(compileJsonSchema(schema));
    for (const v of [{}, { a: 'x' }, { a: 'xy' }, { a: 'x', b: 1 }, { b: 1 }, { z: 1 }, { a: 'xy', z: 1 }, { a: 1 }]) assert.equal(accepts(JSON.stringify(v)), ajvValid(schema, v), `${JSON.stringify(schema)}, ${JSON.stringify(v)}`);
  }
});
