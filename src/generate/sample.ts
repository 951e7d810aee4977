// Choosing the next token from processed logits.
import { Generator } from '../tensor/random.js';

export function argmaxOf(logits: Float32Array): number {
  let best = 0, v = logits[0];
  for (let i = 1; i < logits.length; i++) if (logits[i] > v) { v = logits[i]; best = i; }
  return best;
}

/** Draw from softmax(logits) with the seeded generator (−Infinity entries are never drawn). */
export function sampleFrom(logits: Float32Array, g: Generator): number {
  let m = -Infinity;
  for (const l of logits) if (l > m) m = l;
  if (m === -Infinity) throw new Error('sampling: every token is masked');
  let s = 0;
  const p = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) s += p[i] = logits[i] === -Infinity ? 0 : Math.exp(logits[i] - m);
  let u = g.uniform() * s;
  for (let i = 0; i < p.length; i++) {
    u -= p[i];
    if (u < 0 && p[i] > 0) return i;
  }
  for (let i = p.length - 1; i >= 0; i--) if (p[i] > 0) return i;
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
