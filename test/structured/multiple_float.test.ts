// Decimal `multipleOf` (0.01, 0.1, 0.05, 0.001 …) checked against ajv, the outside reference: ajv
// computes x / m in doubles and wants an integer, so about one in seven multiples of 0.01 fails
// (0.07, 0.14, 0.29 …). multiple.ts's per-divisor analysis (segments of N = v·10^k with the
// residues mod 5^k that pass) must agree with ajv on every value it covers, exhaustively on small
// ranges and by samples at every magnitude, and the grammar built from it must accept exactly the
// texts ajv accepts there (trailing zeros, fewer fraction digits, negative values, bounds), never
// one ajv rejects, and sample valid numbers under token masks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileJsonSchema, TokenMatcher, TokenVocab, DEAD } from '../../src/structured/index.js';
import type { JsonSchema } from '../../src/structured/index.js';
import { boundN, floatAccepts, floatMultiples, multipleOfPlan } from '../../src/structured/multiple.js';
import type { FloatMultiples } from '../../src/structured/multiple.js';
import { ajv, acceptor } from './suite_util.js';

/** A small deterministic generator (xorshift). */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 2 ** 32; };
}

/** The decimal text of N / 10^k with exactly k fraction digits (k ≥ 1). */
const fixed = (N: number, k: number): string => { const t = String(N).padStart(k + 1, '0'); return `${t.slice(0, -k)}.${t.slice(-k)}`; };

const fm = (m: number): FloatMultiples => { const f = floatMultiples(m); assert.ok(f, `analysis of ${m}`); return f; };

test('multipleOf analysis: equal to ajv on every multiple of small magnitude and on samples of every magnitude', () => {
  const r = rng(7);
  for (const [m, exhaustive] of [[0.01, 200_000], [0.1, 30_000], [0.05, 30_000], [0.001, 30_000], [0.005, 30_000], [0.02, 20_000], [0.3, 20_000], [0.07, 20_000], [1.1, 20_000], [0.45, 10_000], [0.008, 10_000]] as const) {
    const f = fm(m), check = ajv.compile({ multipleOf: m });
    let valid = 0, accepted = 0, samples = 0;
    const one = (N: number) => {
      const want = check(Number(fixed(N, f.k))) as boolean, got = floatAccepts(f, N);
      // Sound everywhere; exact below the cap (above it: the residues that pass in a whole coarse segment).
      if (got) assert.ok(want, `${m}: accepts ${fixed(N, f.k)}, which ajv rejects`);
      else if (N < f.cap && N % f.M === 0) assert.ok(!want, `${m}: rejects ${fixed(N, f.k)}, which ajv accepts`);
      if (want) valid++;
      if (got) accepted++;
    };
    for (let N = 0; N < Math.min(exhaustive, f.nMax); N++) one(N);
    // Log-uniform samples up to nMax, each with its neighbours among the multiples of M.
    for (let i = 0; i < 4000; i++) {
      const N0 = Math.floor(2 ** (r() * Math.log2(f.nMax - 1))), base = N0 - (N0 % f.M);
      for (const N of [base, base + f.M, base + 2 * f.M]) if (N < f.nMax) { one(N); samples++; }
    }
    // 0.01, 0.1, 0.05, 0.005: exact up to 10^12 at least; the others (odd numerators, 5^3 residues of 0.001) above a cap.
    if (m === 0.01 || m === 0.1 || m === 0.05 || m === 0.005 || m === 0.02) { assert.ok(f.cap >= 1e12 * f.P, `${m}: exact only below ${f.cap / f.P}`); assert.equal(accepted, valid); }
    else assert.ok(accepted > 0.4 * valid, `${m}: ${accepted} of ${valid} valid`);
    assert.ok(samples > 10_000);
  }
  // The values of the issue: ajv rejects 0.07, 0.14, 0.28, 0.29, 0.47, 19.99 for 0.01 (x / 0.01 is 7.000000000000001,
  // 1998.9999999999998 …) and accepts 99.99, 10.99.
  const f = fm(0.01), check = ajv.compile({ multipleOf: 0.01 });
  for (const t of ['0.07', '0.14', '0.28', '0.29', '0.47', '19.99', '1234.56']) { assert.equal(check(Number(t)), false, t); assert.equal(floatAccepts(f, Math.round(Number(t) * 100)), false, t); }
  for (const t of ['99.99', '10.99', '0.01', '9.99', '4.99']) { assert.equal(check(Number(t)), true, t); assert.equal(floatAccepts(f, Math.round(Number(t) * 100)), true, t); }
});

test('multipleOf bounds as ajv compares them: the least / greatest N whose double passes', () => {
  const f = fm(0.01);
  // 0.1 is the double 0.1000000000000000055…: N = 10 gives that very double, so x ≥ 0.1 holds at N = 10.
  assert.equal(boundN(f, 0.1, false, false), 10);
  assert.equal(boundN(f, 0.1, false, true), 11);
  assert.equal(boundN(f, 99.99, true, true), 9998);
  assert.equal(boundN(f, 99.99, true, false), 9999);
  assert.equal(boundN(f, -1, false, false), 0);
  assert.equal(boundN(f, -1, true, false), -1);
  assert.equal(boundN(f, 10.005, false, false), 1001);
  assert.equal(boundN(f, 1e300, false, false), f.nMax);
});

/** Number texts for N / 10^k: the fixed form, the shortest, with a trailing zero, with 15 fraction digits, and negated. */
function texts(k: number, from: number, to: number): string[] {
  const out: string[] = [];
  for (let N = from; N < to; N++) {
    const t = fixed(Math.abs(N), k), sign = N < 0 ? '-' : '';
    out.push(sign + t, sign + t.replace(/\.?0+$/, '') || '0', `${sign}${t}0`, sign + t.padEnd(t.indexOf('.') + 16, '0'));
  }
  return out;
}

test('multipleOf grammars accept exactly what ajv accepts (exhaustive small ranges, bounds, integers, trailing zeros, signs)', () => {
  const cases: Array<[JsonSchema, string[], number]> = [
    [{ type: 'number', multipleOf: 0.01 }, texts(2, -20_000, 20_000), 67_000],
    [{ type: 'number', multipleOf: 0.01, minimum: 0, maximum: 1000 }, texts(2, -300, 3000), 10_000],
    [{ type: 'number', multipleOf: 0.01, exclusiveMinimum: -10.005, exclusiveMaximum: 99.99 }, texts(2, -2000, 12_000), 30_000],
    [{ type: 'number', multipleOf: 0.01, minimum: -0.5, maximum: 0.29 }, texts(2, -100, 100), 250],
    [{ type: 'integer', multipleOf: 0.01, minimum: -50 }, [...texts(2, -6000, 6000), ...Array.from({ length: 400 }, (_, i) => String(i - 100))], 400],
    [{ type: 'number', multipleOf: 0.1, minimum: -3.3, exclusiveMaximum: 120 }, texts(1, -2000, 2000), 3000],
    [{ type: 'number', multipleOf: 0.05 }, texts(2, -5000, 5000), 5000],
    [{ type: 'number', multipleOf: 0.001, maximum: 12.3449 }, texts(3, -3000, 15_000), 1000],
    [{ type: 'number', multipleOf: 0.005, exclusiveMinimum: 0 }, texts(3, -100, 5000), 3000],
    [{ type: 'number', multipleOf: 0.07, minimum: -50 }, texts(2, -6000, 6000), 2000],
    [{ type: 'number', multipleOf: 0.3, minimum: 0.3, maximum: 0.3 }, texts(1, -10, 10), 4],
    [{ multipleOf: 0.01 }, ['true', '"a"', '1.5', '0.29', '0.3', '-0.07', '-0.00'], 3],
  ];
  for (const [schema, ts, least] of cases) {
    const acc = acceptor(compileJsonSchema(schema)), check = ajv.compile(schema as object);
    const m = (schema as { multipleOf: number }).multipleOf, f = fm(m);
    let accepted = 0;
    for (const t of ts) {
      const valid = check(JSON.parse(t)) as boolean, a = acc(t);
      if (a) { accepted++; assert.ok(valid, `${JSON.stringify(schema)}: accepts ${t}, which ajv rejects`); }
      // Exact where the analysis is: |v| below the cap, and for integer schemas texts without a '.'.
      else if (valid && Math.abs(Number(t)) * f.P < f.cap && !((schema as { type?: string }).type === 'integer' && t.includes('.'))) {
        assert.fail(`${JSON.stringify(schema)}: rejects ${t}, which ajv accepts`);
      }
    }
    assert.ok(accepted >= least, `${JSON.stringify(schema)}: ${accepted} < ${least}`);
  }
});

test('multipleOf grammars: samples under token masks are valid, and masks agree with the byte automaton', () => {
  const enc = new TextEncoder();
  const pieces = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '.', '-', '00', '99', '.9', '.0', '10', '0.0', '.00', '123', '7.', '9.99', '.07', '50'];
  const vocab = new TokenVocab([...pieces.map((p) => enc.encode(p)), null], [pieces.length]);
  const r = rng(11);
  for (const schema of [{ type: 'number', multipleOf: 0.01 }, { type: 'number', multipleOf: 0.01, minimum: 0, exclusiveMaximum: 100 }, { type: 'integer', multipleOf: 0.1, maximum: 40 }, { type: 'number', multipleOf: 0.001 }] as JsonSchema[]) {
    const mt = new TokenMatcher(compileJsonSchema(schema), vocab), check = ajv.compile(schema as object);
    let done = 0;
    for (let run = 0; run < 150; run++) {
      let s = mt.initial, text = '';
      for (let step = 0; step < 30; step++) {
        const mask = mt.mask(s), ids: number[] = [];
        for (let id = 0; id < vocab.size; id++) {
          const on = (mask[id >>> 5] & (1 << (id & 31))) !== 0;
          const b = vocab.bytes[id];
          const want = b === null ? mt.automaton.accepting(s) : mt.automaton.advanceBytes(s, b) !== DEAD;
          assert.equal(on, want, `${JSON.stringify(schema)} after ${JSON.stringify(text)}: token ${id}`);
          if (on) ids.push(id);
        }
        assert.ok(ids.length > 0, `${JSON.stringify(schema)}: no token after ${JSON.stringify(text)}`);
        // Stop at the end token with some chance once allowed, so texts of every length come out.
        const eos = ids.includes(pieces.length);
        const id = eos && (r() < 0.3 || step > 20) ? pieces.length : ids.filter((x) => x !== pieces.length)[Math.floor(r() * (ids.length - (eos ? 1 : 0)))] ?? pieces.length;
        if (id === pieces.length) { done++; break; }
        s = mt.advance(s, id);
        text += pieces[id];
      }
      if (mt.automaton.accepting(s)) assert.ok(check(JSON.parse(text)), `${JSON.stringify(schema)}: sampled ${text}, which ajv rejects`);
    }
    assert.ok(done > 100, `${JSON.stringify(schema)}: ${done} of 150 samples ended`);
  }
});

test('multipleOf plans: decimal divisors use the analysis, within a budget; others keep the subset of exact doubles', () => {
  for (const m of [0.01, 0.1, 0.05, 0.02, 0.2, 0.3, 0.001, 0.005, 0.07, 1.1]) assert.equal(multipleOfPlan(m).kind, 'float', `${m}`);
  // 5^4 residues: over the bound on the analysis; the multiples of 0.0625 (exact doubles) as before.
  assert.deepEqual(multipleOfPlan(0.0001), { kind: 'decimals', num: 625, k: 4, maxAbs: 2 ** 49 });
  assert.equal(multipleOfPlan(0.25).kind, 'decimals');
  // The grammar of 0.01 on the whole line stays small (about 1,300 rules, shared by both signs).
  const g = compileJsonSchema({ type: 'number', multipleOf: 0.01 });
  assert.ok(g.names.length < 2000, `${g.names.length} rules`);
});
