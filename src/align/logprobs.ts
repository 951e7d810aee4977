// Per-token log-probabilities of sampled completions under a model (the policy with gradients,
// the old policy or the reference without), for the policy losses. A batch of sequences
// prompt + completion is right-padded to one length T and fed as ids[:, :T−1]; position j
// predicts token j+1. Right padding never reaches an earlier position under causal attention,
// so each row computes what it computes alone. The completion tokens' log-probabilities are
// then gathered into completion-aligned rows (B, Lc): column t is the row's t-th completion
// token, as TRL lays them out, with a mask of 1 on real tokens.
import { Tensor } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { crossEntropy, embedding, logSoftmax, softmax } from '../tensor/nn.js';
import type { CausalLM } from '../models/causal.js';

export interface PackedSequences {
  /** Input ids (B, T−1), row-major. */
  inputs: Int32Array;
  /** Target ids (B, T−1): the next token on completion positions, −100 elsewhere. */
  targets: Int32Array;
  batch: number;
  /** T − 1: positions fed to the model. */
  length: number;
  /** Lc: the longest completion. */
  completionLength: number;
  /** (B, Lc): the flat position in (B, T−1) of each completion token (a padding column points at its row's first). */
  gather: Int32Array;
  /** (B, Lc): 1 on completion tokens. */
  mask: Float32Array;
  /** Completion tokens per row. */
  completionTokens: number[];
}

/** Pack prompt + completion pairs (the completion includes a final stop id when the policy chose one). */
export function packSequences(seqs: { prompt: readonly number[]; completion: readonly number[] }[], padId: number): PackedSequences {
  const B = seqs.length;
  for (const [b, s] of seqs.entries()) if (!s.prompt.length) throw new RangeError(`packSequences: row ${b} has an empty prompt`);
  const L = Math.max(2, ...seqs.map((s) => s.prompt.length + s.completion.length)) - 1;
  const Lc = Math.max(1, ...seqs.map((s) => s.completion.length));
  const inputs = new Int32Array(B * L).fill(padId), targets = new Int32Array(B * L).fill(-100);
  const gather = new Int32Array(B * Lc), mask = new Float32Array(B * Lc);
  seqs.forEach((s, b) => {
    const all = [...s.prompt, ...s.completion], P = s.prompt.length;
    for (let j = 0; j < Math.min(L, all.length); j++) inputs[b * L + j] = all[j];
    for (let t = 0; t < Lc; t++) {
      const j = P - 1 + t;
      if (t < s.completion.length) {
        targets[b * L + j] = s.completion[t];
        gather[b * Lc + t] = b * L + j;
        mask[b * Lc + t] = 1;
      } else gather[b * Lc + t] = b * L + P - 1;
    }
  });
  return { inputs, targets, batch: B, length: L, completionLength: Lc, gather, mask, completionTokens: seqs.map((s) => s.completion.length) };
}

/** Rows [start, end) of a packed batch. */
export function sliceRows(p: PackedSequences, start: number, end: number): PackedSequences {
  const L = p.length, Lc = p.completionLength;
  return {
    inputs: p.inputs.subarray(start * L, end * L), targets: p.targets.subarray(start * L, end * L),
    batch: end - start, length: L, completionLength: Lc,
    gather: p.gather.subarray(start * Lc, end * Lc).map((x) => x - start * L), mask: p.mask.subarray(start * Lc, end * Lc),
    completionTokens: p.completionTokens.slice(start, end),
  };
}

/** One value per position (B, L) or (B, L, 1), read at the completion tokens: (B, Lc), 0 where the mask is 0. */
function atCompletion(x: Tensor, p: PackedSequences): Tensor {
  const { batch: B, length: L, completionLength: Lc } = p;
  const picked = T.reshape(embedding(T.reshape(x, [B * L, 1]), T.tensor(p.gather, [B * Lc], 'i32')), [B, Lc]);
  return T.mul(picked, T.tensor(p.mask, [B, Lc]));
}

/**
 * log π(token | prefix) of each completion token (B, Lc) (0 where the mask is 0), of the logits
 * divided by `temperature` (the distribution the tokens were sampled from). With `entropy`, also
 * the entropy of that distribution at each completion token (B, Lc) (no gradient).
 */
export function tokenLogprobs(model: CausalLM, p: PackedSequences, temperature = 1, opts: { entropy?: boolean } = {}): { logprobs: Tensor; entropy: Float32Array | null } {
  const { batch: B, length: L } = p;
  let logits = model.forward(T.tensor(p.inputs, [B, L], 'i32'));
  if (temperature !== 1) logits = T.mul(logits, 1 / temperature);
  const nll = crossEntropy(logits, T.tensor(p.targets, [B, L], 'i32'), { reduction: 'none' });
  const logprobs = T.mul(atCompletion(nll, p), -1);
  let entropy: Float32Array | null = null;
  if (opts.entropy) {
    const x = T.detach(logits);
    // H = −Σ p log p per position, then at the completion tokens.
    const h = T.mul(T.sum(T.mul(softmax(x, -1), logSoftmax(x, -1)), -1), -1);
    entropy = atCompletion(h, p).data() as Float32Array;
  }
  return { logprobs, entropy };
}

/**
 * A value head's estimate at each completion token (B, Lc): the scalar head applied to the
 * backbone's hidden state at the position that predicts the token (where its log-prob is read),
 * as TRL's PPO reads `value[:, context_length − 1 : −1]`. 0 where the mask is 0.
 */
export function tokenValues(backbone: CausalLM, head: (h: Tensor) => Tensor, p: PackedSequences): Tensor {
  const h = backbone.hidden(T.tensor(p.inputs, [p.batch, p.length], 'i32')); // (B, L, D)
  return atCompletion(head(h), p);
}
