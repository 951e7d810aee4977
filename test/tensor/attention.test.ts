// The fused attention kernels (attention_fwd / attention_bwd) three ways:
//   1. `attention` (fused) against `attentionComposite` (matmul + mask + softmax + matmul):
//      outputs and q/k/v gradients on both backends, over decode (T = 1), T = S, KV-cache views
//      (S > T, k/v strided slices of a larger cache, q a transposed view), GQA ratios 1, 2, 4,
//      D not a multiple of 4, Dv ≠ D, batch > 1, causal and not;
//   2. finite-difference gradients of a tiny case;
//   3. the wasm kernels against the ref kernels directly on awkward sizes (key counts around
//      the block size 64, odd head dims, strided k/v), through backend.call and share by share
//      with nt = 3 (the shares must cover every output exactly once).
// Tolerances (|a − b| ≤ atol + rtol·|b|; inputs uniform in [−1, 1] or [−2, 2]):
//   fused vs composite, forward ............ atol 2e-6, rtol 1e-5
//   fused vs composite, gradients .......... atol 1e-5, rtol 1e-4
//   wasm vs ref kernel: o, lse ............. atol 2e-6, rtol 1e-5; dq, dk, dv: atol 1e-5, rtol 1e-4
//   finite differences ..................... gradcheck's defaults (eps 1e-3, atol = rtol = 2e-3)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { Generator, Tensor, tensor, init, shutdown, scope, withBackend, heapStats } from '../../src/index.js';
import { assertClose, gradcheck, randArray, BACKENDS } from '../helpers.js';
import { alloc, release, views } from '../../src/backend/heap.js';
import { refBackend } from '../../src/backend/ref/index.js';
import { wasmBackend } from '../../src/backend/index.js';
import type { WasmBackend } from '../../src/backend/wasm/index.js';
import { bf16BitsToF32, f32ToBf16Bits } from '../../src/io/dtypes.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

const FWD = { atol: 2e-6, rtol: 1e-5 };
const GRAD = { atol: 1e-5, rtol: 1e-4 };

interface Cfg {
  B: number; Hq: number; Hkv: number; T: number; S: number; D: number; Dv: number; causal: boolean;
  /** k/v are the first S positions of a (B, Smax, Hkv, ·) cache, viewed as (B, Hkv, S, ·). */
  cache?: number;
  /** q is a transposed view of a (B, T, Hq, D) tensor. */
  qView?: boolean;
  scale?: number;
}
const label = (c: Cfg): string =>
  `B${c.B} Hq${c.Hq} Hkv${c.Hkv} T${c.T} S${c.S} D${c.D} Dv${c.Dv}${c.causal ? ' causal' : ''}${c.cache ? ` cache${c.cache}` : ''}${c.qView ? ' qview' : ''}`;

const CASES: Cfg[] = [
  // decode: one query against a cache
  { B: 1, Hq: 4, Hkv: 4, T: 1, S: 9, D: 8, Dv: 8, causal: true, cache: 16, qView: true },
  { B: 2, Hq: 4, Hkv: 1, T: 1, S: 70, D: 6, Dv: 6, causal: true, cache: 80 },
  // T = S (training)
  { B: 1, Hq: 2, Hkv: 2, T: 7, S: 7, D: 5, Dv: 5, causal: true },
  { B: 2, Hq: 4, Hkv: 2, T: 13, S: 13, D: 8, Dv: 3, causal: true, qView: true },
  { B: 1, Hq: 4, Hkv: 1, T: 66, S: 66, D: 7, Dv: 9, causal: true },
  { B: 3, Hq: 2, Hkv: 1, T: 5, S: 5, D: 4, Dv: 4, causal: false },
  // S > T: prefill after a cache, chunked decoding
  { B: 2, Hq: 2, Hkv: 1, T: 3, S: 11, D: 9, Dv: 4, causal: true, cache: 20, qView: true },
  { B: 1, Hq: 8, Hkv: 2, T: 5, S: 130, D: 3, Dv: 7, causal: true, cache: 140 },
  { B: 2, Hq: 3, Hkv: 3, T: 4, S: 9, D: 6, Dv: 10, causal: false, cache: 12 },
  { B: 1, Hq: 2, Hkv: 2, T: 6, S: 3, D: 4, Dv: 4, causal: false, scale: 0.7 },
];

function leaf(g: Generator, shape: number[], lo = -1, hi = 1): Tensor {
  return tensor(randArray(shape.reduce((a, b) => a * b, 1), g, lo, hi), shape).requiresGrad_();
}

// First in the file: heapStats().peak is a high-water mark that cannot be reset, so each
// measurement is the rise of the peak above what is in use, fused first (the smaller).
test('fused attention stores no (T, S) tensors: peak heap far below the composite', () => {
  const g = new Generator(3);
  const [B, H, Tn, D] = [2, 4, 256, 16];
  const rise = (fn: typeof T.attention): number => scope(() => {
    const q = leaf(g, [B, H, Tn, D]), k = leaf(g, [B, H, Tn, D]), v = leaf(g, [B, H, Tn, D]);
    const base = Math.max(heapStats().inUse, heapStats().peak);
    T.sum(fn(q, k, v, { causal: true })).backward();
    return heapStats().peak - base;
  });
  const scores = B * H * Tn * Tn * 4;
  const fused = rise(T.attention);
  const comp = rise(T.attentionComposite);
  assert.ok(fused < scores / 2, `fused peak rise ${fused} is below half a score tensor (${scores} bytes)`);
  assert.ok(comp >= 2 * scores, `composite peak rise ${comp} holds several score tensors (${scores} bytes each)`);
});

/** Leaves and a builder of the (q, k, v) views over them. */
function inputs(c: Cfg, g: Generator): { leaves: Tensor[]; build: () => [Tensor, Tensor, Tensor] } {
  const q = leaf(g, c.qView ? [c.B, c.T, c.Hq, c.D] : [c.B, c.Hq, c.T, c.D], -2, 2);
  const k = leaf(g, c.cache ? [c.B, c.cache, c.Hkv, c.D] : [c.B, c.Hkv, c.S, c.D], -2, 2);
  const v = leaf(g, c.cache ? [c.B, c.cache, c.Hkv, c.Dv] : [c.B, c.Hkv, c.S, c.Dv]);
  const build = (): [Tensor, Tensor, Tensor] => [
    c.qView ? T.transpose(q, 1, 2) : q,
    c.cache ? T.transpose(T.slice(k, 1, 0, c.S), 1, 2) : k,
    c.cache ? T.transpose(T.slice(v, 1, 0, c.S), 1, 2) : v,
  ];
  return { leaves: [q, k, v], build };
}

function run(c: Cfg, fn: typeof T.attention, leaves: Tensor[], build: () => [Tensor, Tensor, Tensor], up: Tensor): { out: number[]; grads: number[][] } {
  for (const l of leaves) l.grad = null;
  const [q, k, v] = build();
  if (c.cache) assert.ok(!k.isContiguous() && !v.isContiguous(), 'k/v are strided views');
  const o = fn(q, k, v, { causal: c.causal, scale: c.scale });
  assert.deepEqual(o.shape, [c.B, c.Hq, c.T, c.Dv]);
  o.backward(up);
  return { out: o.toArray(), grads: leaves.map((l) => l.grad!.toArray()) };
}

for (const c of CASES) {
  test(`fused attention matches the composite: ${label(c)}`, () => {
    for (const b of BACKENDS) withBackend(b, () => scope(() => {
      const g = new Generator(c.B * 1000 + c.T * 31 + c.S);
      const { leaves, build } = inputs(c, g);
      const up = tensor(randArray(c.B * c.Hq * c.T * c.Dv, g), [c.B, c.Hq, c.T, c.Dv]);
      const fused = run(c, T.attention, leaves, build, up);
      const comp = run(c, T.attentionComposite, leaves, build, up);
      assertClose(fused.out, comp.out, FWD.atol, FWD.rtol, `${label(c)} [${b}] output`);
      ['q', 'k', 'v'].forEach((n, i) => assertClose(fused.grads[i], comp.grads[i], GRAD.atol, GRAD.rtol, `${label(c)} [${b}] d${n}`));
    }));
  });
}

test('attention over bf16 pairs (kvBf16, a bf16 KV cache) equals attention over the widened keys and values: fused, strided, masked; inference only', () => {
  for (const b of BACKENDS) withBackend(b, () => scope(() => {
    const g = new Generator(17);
    // A cache-like layout: k/v (B, Hkv, 9, D/2) pairs, of which the first S = 7 positions are used.
    const q = tensor(randArray(2 * 4 * 3 * 6, g), [2, 4, 3, 6]);
    const k = T.slice(T.toBf16Pairs(tensor(randArray(2 * 2 * 9 * 6, g), [2, 2, 9, 6])), 2, 0, 7);
    const v = T.slice(T.toBf16Pairs(tensor(randArray(2 * 2 * 9 * 4, g), [2, 2, 9, 4])), 2, 0, 7);
    const kw = T.fromBf16Pairs(k), vw = T.fromBf16Pairs(v);
    const mask = tensor(randArray(7, g), [1, 7]);
    for (const opts of [{ causal: true }, {}, { mask }]) {
      assertClose(T.attention(q, k, v, { ...opts, kvBf16: true }).toArray(), T.attention(q, kw, vw, opts).toArray(), FWD.atol, FWD.rtol, `[${b}] ${JSON.stringify(Object.keys(opts))}`);
    }
    assert.throws(() => T.attention(q, T.slice(k, 3, 0, 2), v, { kvBf16: true }), /incompatible/);
    const ql = tensor(randArray(2 * 4 * 3 * 6, g), [2, 4, 3, 6]).requiresGrad_();
    assert.throws(() => T.attention(ql, k, v, { kvBf16: true }), /inference only/);
  }));
});

test('a mask falls back to the composite; causal T = 1 equals non-causal', () => {
  for (const b of BACKENDS) withBackend(b, () => scope(() => {
    const g = new Generator(5);
    const q = leaf(g, [1, 2, 1, 4]), k = leaf(g, [1, 1, 6, 4]), v = leaf(g, [1, 1, 6, 3]);
    const mask = tensor(randArray(6, g), [1, 6]);
    assertClose(T.attention(q, k, v, { mask }).toArray(), T.attentionComposite(q, k, v, { mask }).toArray(), 0, 0, 'mask');
    assertClose(T.attention(q, k, v, { causal: true }).toArray(), T.attention(q, k, v).toArray(), 0, 0, 'T=1');
  }));
});

test('finite-difference gradients of fused attention (GQA, KV cache, odd D, Dv ≠ D)', () => {
  for (const b of BACKENDS) withBackend(b, () => {
    const g = new Generator(11);
    const mk = (shape: number[]): Tensor => tensor(randArray(shape.reduce((a, x) => a * x, 1), g), shape).keep().requiresGrad_();
    const cases: [string, Tensor[], boolean][] = [
      ['causal S>T G=2', [mk([1, 2, 2, 3]), mk([1, 1, 4, 3]), mk([1, 1, 4, 5])], true],
      ['non-causal B=2', [mk([2, 2, 3, 5]), mk([2, 2, 2, 5]), mk([2, 2, 2, 2])], false],
    ];
    for (const [name, xs, causal] of cases) {
      gradcheck(`attention ${name} [${b}]`, (q, k, v) => T.attention(q, k, v, { causal }), xs);
      for (const x of xs) { x.grad?.dispose(); x.dispose(); }
    }
  });
});

// ---- the kernels directly --------------------------------------------------------------------

interface KCase { B: number; Hq: number; Hkv: number; T: number; S: number; D: number; Dv: number; causal: number; pad: number }
const KCASES: KCase[] = [];
for (const [T_, S] of [[1, 1], [1, 64], [1, 65], [3, 63], [64, 64], [65, 65], [5, 130], [7, 129], [2, 0], [0, 5]] as const) {
  for (const [D, Dv] of [[1, 1], [3, 5], [7, 2], [33, 17], [16, 8]] as const) {
    KCASES.push({ B: 2, Hq: 4, Hkv: (T_ + S) % 2 ? 2 : 1, T: T_, S, D, Dv, causal: S >= T_ ? (D + S) % 2 : 0, pad: D % 3 });
  }
}

test('wasm attention kernels match the ref kernels (awkward sizes, strided k/v, nt = 3 shares)', () => {
  const be = wasmBackend() as WasmBackend;
  const exp = (be as unknown as { exportsObj: Record<string, (...a: number[]) => void> }).exportsObj;
  const g = new Generator(99);
  for (const c of KCASES) {
    const { B, Hq, Hkv, T: Tq, S, D, Dv, causal, pad } = c;
    const ptrs: number[] = [];
    const put = (a: ArrayLike<number>): number => { const p = alloc(Math.max(4, a.length * 4)); views().f32.set(a, p >>> 2); ptrs.push(p); return p; };
    const rnd = (n: number, lo = -2, hi = 2): number[] => randArray(n, g, lo, hi);
    // q contiguous; k and v in a (B, S+pad, Hkv, D+pad) layout: strided batch/head/sequence dims.
    const kw = D + pad, vw = Dv + pad, Sp = S + pad;
    const q = put(rnd(B * Hq * Tq * D)), k = put(rnd(B * Sp * Hkv * kw)), v = put(rnd(B * Sp * Hkv * vw, -1, 1));
    const dO = put(rnd(B * Hq * Tq * Dv, -1, 1));
    const strides = [Hq * Tq * D, Tq * D, D, Sp * Hkv * kw, kw, Hkv * kw, Sp * Hkv * vw, vw, Hkv * vw];
    const scale = 1 / Math.sqrt(D);
    const dims = [B, Hq, Hkv, Tq, S, D, Dv];
    const sizes = { o: B * Hq * Tq * Dv, lse: B * Hq * Tq, dq: B * Hq * Tq * D, dk: B * Hkv * S * D, dv: B * Hkv * S * Dv };
    const runMode = (mode: 'ref' | 'call' | 'nt3'): Record<string, Float32Array> => {
      const fill = mode === 'ref' ? -777.25 : 1234.5;
      const out: Record<string, number> = {};
      for (const [n, len] of Object.entries(sizes)) out[n] = put(new Float32Array(len).fill(fill));
      // The backward uses the ref forward's o and lse in every mode (so only the bwd differs).
      const fwdArgs = [out.o, out.lse, q, k, v, ...dims, ...strides, scale, causal, 0];
      const work = B * Hq * Tq * S * (D + Dv) + 1e6;
      const call = (name: 'attention_fwd' | 'attention_bwd', args: number[]): void => {
        if (mode === 'ref') refBackend.call(name, args, work);
        else if (mode === 'call') be.call(name, args, work);
        else for (let t = 2; t >= 0; t--) exp[name](...args, t, 3);
      };
      call('attention_fwd', fwdArgs);
      const res: Record<string, Float32Array> = {};
      const H = views();
      res.o = H.f32.slice(out.o >>> 2, (out.o >>> 2) + sizes.o);
      res.lse = H.f32.slice(out.lse >>> 2, (out.lse >>> 2) + sizes.lse);
      if (mode !== 'ref') { H.f32.set(refOut.o, out.o >>> 2); H.f32.set(refOut.lse, out.lse >>> 2); }
      call('attention_bwd', [out.dq, out.dk, out.dv, q, k, v, out.o, out.lse, dO, ...dims, ...strides, scale, causal]);
      for (const n of ['dq', 'dk', 'dv']) res[n] = views().f32.slice(out[n] >>> 2, (out[n] >>> 2) + sizes[n as keyof typeof sizes]);
      return res;
    };
    let refOut: Record<string, Float32Array> = {};
    try {
      refOut = runMode('ref');
      for (const mode of ['call', 'nt3'] as const) {
        const got = runMode(mode);
        const what = `${JSON.stringify(c)} ${mode}`;
        assertClose(got.o, refOut.o, FWD.atol, FWD.rtol, `${what} o`);
        assertClose(got.lse, refOut.lse, FWD.atol, FWD.rtol, `${what} lse`);
        for (const n of ['dq', 'dk', 'dv']) assertClose(got[n], refOut[n], GRAD.atol, GRAD.rtol, `${what} ${n}`);
      }
    } finally {
      for (const p of ptrs) release(p);
    }
  }
});

test('attention_fwd over a bf16 KV cache (kvHalf) equals f32 attention over the widened keys and values: ref and wasm, nt = 3 shares', () => {
  const be = wasmBackend() as WasmBackend;
  const exp = (be as unknown as { exportsObj: Record<string, (...a: number[]) => void> }).exportsObj;
  const g = new Generator(7);
  for (const c of KCASES) {
    const { B, Hq, Hkv, T: Tq, S, D, Dv, causal, pad } = c;
    const ptrs: number[] = [];
    const put = (a: ArrayLike<number>): number => { const p = alloc(Math.max(4, a.length * 4)); views().f32.set(a, p >>> 2); ptrs.push(p); return p; };
    // k and v as bf16 in a (B, S+pad, Hkv, D+pad) layout (strides count values), and the same values widened to f32.
    const kw = D + pad, vw = Dv + pad, Sp = S + pad;
    const bf = (n: number, lo: number, hi: number): { h: number; f: number } => {
      const x = randArray(n, g, lo, hi), bits = new Uint16Array(n).map((_, i) => f32ToBf16Bits(x[i]));
      const h = alloc(Math.max(4, 2 * n)); ptrs.push(h);
      views().u16.set(bits, h >>> 1);
      return { h, f: put(Array.from(bits, bf16BitsToF32)) };
    };
    const q = put(randArray(B * Hq * Tq * D, g, -2, 2)), k = bf(B * Sp * Hkv * kw, -2, 2), v = bf(B * Sp * Hkv * vw, -1, 1);
    const strides = [Hq * Tq * D, Tq * D, D, Sp * Hkv * kw, kw, Hkv * kw, Sp * Hkv * vw, vw, Hkv * vw];
    const dims = [B, Hq, Hkv, Tq, S, D, Dv];
    const no = B * Hq * Tq * Dv, nl = B * Hq * Tq, work = B * Hq * Tq * S * (D + Dv) + 1e6;
    const run = (mode: 'f32' | 'ref' | 'call' | 'nt3'): Float32Array[] => {
      const o = put(new Float32Array(no).fill(mode === 'f32' ? -777.25 : 1234.5)), lse = put(new Float32Array(nl).fill(-1));
      const args = [o, lse, q, mode === 'f32' ? k.f : k.h, mode === 'f32' ? v.f : v.h, ...dims, ...strides, 1 / Math.sqrt(D), causal, mode === 'f32' ? 0 : 1];
      if (mode === 'f32' || mode === 'ref') refBackend.call('attention_fwd', args, work);
      else if (mode === 'call') be.call('attention_fwd', args, work);
      else for (let t = 2; t >= 0; t--) exp.attention_fwd(...args, t, 3);
      const H = views();
      return [H.f32.slice(o >>> 2, (o >>> 2) + no), H.f32.slice(lse >>> 2, (lse >>> 2) + nl)];
    };
    try {
      const [o32, l32] = run('f32');
      for (const mode of ['ref', 'call', 'nt3'] as const) {
        const [o, l] = run(mode), what = `${JSON.stringify(c)} ${mode}`;
        assertClose(o, o32, FWD.atol, FWD.rtol, `${what} o`);
        assertClose(l, l32, FWD.atol, FWD.rtol, `${what} lse`);
      }
    } finally {
      for (const p of ptrs) release(p);
    }
  }
});
