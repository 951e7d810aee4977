// Choosing the next token from processed logits.
import { Generator } from '../tensor/random.js';
import { H } from '../backend/heap.js';
import { backend } from '../backend/index.js';
import { scope } from '../tensor/storage.js';
import { empty, exp } from '../tensor/ops.js';

export function argmaxOf(logits: Float32Array): number {
  let best = 0, v = logits[0];
  for (let i = 1; i < logits.length; i++) if (logits[i] > v) { v = logits[i]; best = i; }
  return best;
}

// sampleFrom's probabilities (Math.exp path): one buffer reused across calls (a fresh 32K-entry
// Float64Array per token cost more than the exponentials).
let probs = new Float64Array(0);
/** From this many entries on, the wasm backend computes the exponentials (one vectorised op). */
const KERNEL_EXP_MIN = 4096;

/** Draw from softmax(logits) with the seeded generator (−Infinity entries are never drawn). */
export function sampleFrom(logits: Float32Array, g: Generator): number {
  const n = logits.length;
  let m = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > m) m = logits[i];
  if (m === -Infinity) throw new Error('sampling: every token is masked');
  if (n >= KERNEL_EXP_MIN && backend().name === 'wasm') {
    // e^{l − m} in f32 by the backend's exp (relative error < 1e-6; 32K entries: ~200 µs per
    // draw in all against ~370 with Math.exp), drawn from in place.
    return scope(() => {
      const x = empty([n]);
      const xo = x.ptr >>> 2;
      const f = H.f32;
      for (let i = 0; i < n; i++) f[xo + i] = logits[i] - m;
      const eo = exp(x).ptr >>> 2;
      return draw(H.f32, eo, n, g, logits);
    });
  }
  if (probs.length < n) probs = new Float64Array(n);
  const p = probs;
  for (let i = 0; i < n; i++) {
    const l = logits[i];
    p[i] = l === -Infinity ? 0 : Math.exp(l - m);
  }
  return draw(p, 0, n, g, logits);
}

/** An index i with probability p[o + i] / Σ p[o, o + n) (sums in f64). */
function draw(p: Float32Array | Float64Array, o: number, n: number, g: Generator, logits: Float32Array): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += p[o + i];
  let u = g.uniform() * s;
  for (let i = 0; i < n; i++) {
    const q = p[o + i];
    u -= q;
    if (u < 0 && q > 0) return i;
  }
  for (let i = n - 1; i >= 0; i--) if (p[o + i] > 0) return i;
  return argmaxOf(logits);
}

/** log-softmax of one row, for logprobs. */
export function logSoftmaxOf(logits: Float32Array): Float32Array {
  let m = -Infinity;
  for (const l of logits) if (l > m) m = l;
  let s = 0;
  for (const l of logits) s += Math.exp(l - m);
  const lse = m + Math.log(s);
  return logits.map((l) => l - lse);
}
