// Choosing the next token from processed logits.
import { Generator } from '../tensor/random.js';

export function argmaxOf(logits: Float32Array): number {
  let best = 0, v = logits[0];
  for (let i = 1; i < logits.length; i++) if (logits[i] > v) { v = logits[i]; best = i; }
  return best;
}

// sampleFrom's probabilities: one buffer reused across calls (a fresh 32K-entry Float64Array per
// token cost more than the exponentials: ~1 ms against ~0.37 ms per draw).
let probs = new Float64Array(0);

/** Draw from softmax(logits) with the seeded generator (−Infinity entries are never drawn). */
export function sampleFrom(logits: Float32Array, g: Generator): number {
  const n = logits.length;
  let m = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > m) m = logits[i];
  if (m === -Infinity) throw new Error('sampling: every token is masked');
  if (probs.length < n) probs = new Float64Array(n);
  const p = probs;
  let s = 0;
  for (let i = 0; i < n; i++) {
    const l = logits[i];
    s += p[i] = l === -Infinity ? 0 : Math.exp(l - m);
  }
  let u = g.uniform() * s;
  for (let i = 0; i < n; i++) {
    u -= p[i];
    if (u < 0 && p[i] > 0) return i;
  }
  for (let i = n - 1; i >= 0; i--) if (p[i] > 0) return i;
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
