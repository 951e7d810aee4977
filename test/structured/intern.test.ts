// Content keys of the schema compiler (issue #20's compile target): SeqInterner's hash-consing of
// number sequences against a map of their text, and SchemaCompiler.keyOf against a plain
// serialisation of JSON values (key order kept; -0, undefined, holes and non-finite numbers told
// apart) — equal keys exactly for equal contents; uniqueConcat (allOf's merged required lists)
// against the Set it stands for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SeqInterner } from '../../src/structured/intern.js';
import { Rng } from '../../src/structured/fuzz.js';
import { SchemaCompiler } from '../../src/structured/index.js';
import { uniqueConcat } from '../../src/structured/schema.js';

test('SeqInterner: the same id exactly for the same sequence, nested sequences written above their parent, leaves equal to nothing', () => {
  const r = new Rng(9);
  for (let round = 0; round < 20; round++) {
    const ids = new SeqInterner();
    const ref = new Map<string, number>();
    const leaves = new Set<number>(), given = new Set<number>();
    // A sequence of random numbers (a small alphabet, so that many recur), with nested sequences
    // interned while it is written: their ids are elements of it, as keyOf's members are.
    const write = (depth: number): { id: number; text: string } => {
      const at = ids.mark();
      const parts: number[] = [];
      const n = r.int(0, r.chance(0.05) ? 300 : 6);
      for (let i = 0; i < n; i++) {
        let x: number;
        if (depth < 3 && r.chance(0.2)) x = write(depth + 1).id;
        else if (r.chance(0.05)) { x = ids.fresh(); leaves.add(x); }
        else x = r.pick([0, 1, 2, -1, -2, -3, 2 ** 31 - 1, -(2 ** 31), r.int(0, 3)]);
        ids.push(x); parts.push(x);
      }
      const text = parts.join(',');
      const id = ids.intern(at);
      assert.equal(ids.mark(), at, 'the scratch stack is back where the sequence began');
      check(id, text);
      return { id, text };
    };
    const check = (id: number, text: string) => {
      assert.ok(!leaves.has(id), 'a sequence never has a leaf\'s id');
      const known = ref.get(text);
      if (known === undefined) {
        assert.ok(!given.has(id), `a new sequence [${text}] got the id of another`);
        given.add(id);
        ref.set(text, id);
      } else assert.equal(id, known, `[${text}] met again`);
    };
    for (let t = 0; t < 3000; t++) write(0);
    assert.equal(ids.size, ref.size + leaves.size);
  }
});

/** The plain reference: a text naming the content, told apart where keyOf must tell contents apart. */
function plainKey(x: unknown): string {
  if (x === undefined) return 'u';
  if (typeof x === 'number') return Object.is(x, -0) ? 'n-0' : `n${x}`;
  if (typeof x === 'string') return JSON.stringify(x);
  if (typeof x === 'boolean' || x === null) return String(x);
  if (Array.isArray(x)) {
    let out = '[';
    for (let i = 0; i < x.length; i++) out += (i ? ',' : '') + (i in x ? plainKey(x[i]) : 'hole');
    return out + ']';
  }
  return '{' + Object.keys(x as object).map((k) => JSON.stringify(k) + ':' + plainKey((x as Record<string, unknown>)[k])).join(',') + '}';
}

test('SchemaCompiler.keyOf: equal keys exactly for equal contents (order kept, -0, undefined, holes, NaN, shared parts)', () => {
  const r = new Rng(31);
  const c = new SchemaCompiler({});
  const keyOf = (x: unknown): number => (c as unknown as { keyOf(x: unknown): number }).keyOf(x);
  const shared: unknown[] = [];
  const leaf = (): unknown => r.pick([0, -0, 1, 1.5, -1, NaN, Infinity, -Infinity, 1e21, true, false, null, undefined, '', 'a', 'b', '0', 'n0', 'u', 'null', '[', ',', '{}']);
  const value = (depth: number): unknown => {
    if (shared.length && r.chance(0.1)) return r.pick(shared);
    if (depth > 3 || r.chance(0.4)) return leaf();
    let v: unknown;
    if (r.chance(0.4)) {
      const a: unknown[] = [];
      const n = r.int(0, 3);
      for (let i = 0; i < n; i++) if (!r.chance(0.1)) a[i] = value(depth + 1);
      if (r.chance(0.1)) a.length = n + 1;
      v = a;
    } else {
      const o: Record<string, unknown> = {};
      for (let i = r.int(0, 3); i > 0; i--) o[r.pick(['a', 'b', 'c', 'type', '__proto__', '0', ''])] = value(depth + 1);
      if (r.chance(0.05)) Object.defineProperty(o, '__proto__', { value: value(depth + 1), enumerable: true, writable: true, configurable: true });
      v = o;
    }
    if (r.chance(0.3)) shared.push(v);
    return v;
  };
  const byKey = new Map<number, string>(), byText = new Map<string, number>();
  for (let t = 0; t < 20000; t++) {
    const v = value(0);
    const k = keyOf(v), text = plainKey(v);
    assert.equal(keyOf(v), k, 'the same object, the same key');
    const seen = byText.get(text);
    if (seen === undefined) {
      assert.equal(byKey.get(k), undefined, `${text} got the key of ${byKey.get(k)}`);
      byText.set(text, k); byKey.set(k, text);
    } else assert.equal(k, seen, `${text} met again`);
  }
  assert.ok(byText.size > 2000, `${byText.size} distinct contents`);
  // Not JSON: a function's key equals no other, itself included.
  const f = () => 0;
  assert.notEqual(keyOf(f), keyOf(f));
});

test('uniqueConcat: the same list as [...new Set([...a, ...b])], short lists and long', () => {
  const r = new Rng(12);
  const pool: unknown[] = ['a', 'b', 'c', '', 'constructor', 0, -0, NaN, 1, null, undefined, true];
  for (let t = 0; t < 5000; t++) {
    const list = () => Array.from({ length: r.int(0, r.chance(0.1) ? 40 : 6) }, () => (r.chance(0.7) ? r.pick(pool) : `k${r.int(0, 30)}`));
    const a = list(), b = list();
    const got = uniqueConcat(a, b), want = [...new Set([...a, ...b])];
    assert.equal(got.length, want.length, `${String(a)} + ${String(b)}`);
    for (let i = 0; i < got.length; i++) assert.ok(Object.is(got[i], want[i]), `${String(a)} + ${String(b)}: at ${i}`);
  }
});
