// The causal-LM contract: what every model family implements, and all that generation,
// continuous batching, training, instruction tuning, LoRA, serving, benchmarks and the CLI know
// of a model. A new family is one file with a class extending CausalLM and a registry entry
// (models/index.ts); nothing above models/ asks which family it holds.
//
//   logits = model.forward(ids, state)   // ids (B, T) i32 → (B, T, V); the state advances by T
//   loss   = model.loss(ids)             // next-token cross-entropy (shared by every family)
//   state  = model.newState(B, maxLength) // a KV cache, a conv + SSM state, … (DecodeState)
import { Tensor } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { crossEntropy } from '../tensor/nn.js';
import { Module } from '../nn/module.js';

/** The config fields every family has (Hugging Face config.json names); families add their own. */
export interface ModelConfig {
  model_type: string;
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  tie_word_embeddings: boolean;
  bos_token_id: number | null;
  eos_token_id: number[] | null;
}

export interface ForwardOptions {
  /**
   * Left padding of a batch of unequal lengths: row b's first padLeft[b] positions (counted from
   * the start of the decoding state) are padding, which no later position of the row sees.
   */
  padLeft?: number[];
  /** Only the last position's logits (B, 1, V): the prefill before decoding. */
  lastOnly?: boolean;
  /**
   * The T new tokens form a tree (speculative decoding: Medusa's candidates verified in one
   * pass): token i sits at position state.length + depth[i] and sees every earlier position of
   * the state and new token j iff mask[i·T + j] is 1 (the diagonal included; a parent precedes
   * its children). Only for families with `treeAttention`; the state still advances by T
   * (DecodeState.compact keeps the accepted path).
   */
  tree?: TreeInput;
}

/** A token tree for ForwardOptions.tree. */
export interface TreeInput {
  /** Per new token, its depth below the state's last position (0 for the root). */
  depth: readonly number[];
  /** (T, T) row-major: 1 where token i may attend to token j. */
  mask: Uint8Array;
}

/** Check a tree input for T new tokens; returns an error message or null. */
export function treeInputError(tree: TreeInput, Tn: number): string | null {
  const { depth, mask } = tree;
  if (depth.length !== Tn) return `tree.depth has ${depth.length} entries for ${Tn} new tokens`;
  if (mask.length !== Tn * Tn) return `tree.mask has ${mask.length} entries, expected ${Tn}×${Tn}`;
  for (let i = 0; i < Tn; i++) {
    if (!Number.isInteger(depth[i]) || depth[i] < 0 || depth[i] > i) return `tree.depth[${i}] = ${depth[i]} is not an integer in [0, ${i}]`;
    if (!mask[i * Tn + i]) return `tree.mask: token ${i} does not see itself`;
    let seen = 0;
    for (let j = 0; j < Tn; j++) {
      if (!mask[i * Tn + j]) continue;
      if (j > i) return `tree.mask: token ${i} sees the later token ${j} (a parent must precede its children)`;
      seen++;
    }
    if (seen !== depth[i] + 1) return `tree.mask: token ${i} at depth ${depth[i]} sees ${seen} tokens (its ancestors and itself are ${depth[i] + 1})`;
  }
  return null;
}

/**
 * A family's decoding state for `batch` sequences (rows): a KV cache for attention, conv and SSM
 * states for a recurrent model. Every row has consumed `length` positions (a row's leading ones
 * may be padding, see ForwardOptions.padLeft); forward() with the state continues from there.
 * The operations below are what generation, continuous batching and speculative decoding need.
 */
export interface DecodeState {
  /** Rows in use. */
  readonly batch: number;
  /** Rows the state's storage holds (append() may grow `batch` up to it). */
  readonly capacity: number;
  /** Positions consumed by every row. */
  readonly length: number;
  /** Positions the state can hold (Infinity when it does not grow with the sequence). */
  readonly maxLength: number;
  /** Roll back to `length` positions (speculative decoding); an error when the state cannot. */
  truncate(length: number): void;
  /** Keep these rows, in this order: new row i is old row rows[i] (continuous batching). */
  select(rows: readonly number[]): void;
  /**
   * Add the rows of `src` (a state of the same model) after this state's rows, aligned so that
   * every row ends at the same position: length becomes max(this.length, src.length), and the
   * rows that were shorter get padding on the left (their padLeft grows by the difference).
   */
  append(src: DecodeState): void;
  /** Drop the first n positions of every row (padding that every row has). */
  dropLeading(n: number): void;
  /**
   * After a forward that appended positions start…length−1 (a tree of candidates), keep
   * positions start + keep[j] (keep strictly ascending) as start + j and drop the rest: length
   * becomes start + keep.length. States that cannot (recurrent ones) throw DecodeStateError.
   */
  compact(start: number, keep: readonly number[]): void;
  clone(): DecodeState;
  dispose(): void;
}

export class DecodeStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecodeStateError';
  }
}

/**
 * What the last loss() call was made of beyond the cross-entropy, for training metrics and
 * reports (e.g. a mixture of experts' auxiliary losses and expert load); null: nothing more.
 */
export interface LossParts {
  /** Named scalars (aux_loss, router_z_loss, …), each as it entered the loss before its coefficient. */
  values: Record<string, number>;
  /** Per MoE layer, the fraction of token assignments each expert received. */
  expertLoad?: number[][];
}

/** A causal language model of any family. */
export abstract class CausalLM extends Module {
  abstract readonly config: ModelConfig;

  /** Positions the model can process in one sequence (Infinity for recurrent families). */
  abstract get contextLength(): number;

  /** Whether forward() takes ForwardOptions.tree (attention families) — tree-based speculative decoding. */
  get treeAttention(): boolean {
    return false;
  }

  /**
   * Hidden states after the final norm (B, T, D) for input ids (B, T) (i32); with a state,
   * positions continue after it and the state advances by T.
   */
  abstract hidden(ids: Tensor, state?: DecodeState | null, opts?: ForwardOptions): Tensor;

  /** Output logits (…, V) from hidden states (…, D). */
  abstract project(h: Tensor): Tensor;

  /**
   * A decoding state for `batch` rows of up to maxLength positions (default: contextLength).
   * `history`: how many of the latest positions truncate() must be able to roll back (recurrent
   * families keep a snapshot per position for that; a KV cache can always roll back, except on
   * sliding-window layers, whose rolling buffer keeps `history` positions more than the window).
   */
  abstract newState(batch: number, maxLength?: number, opts?: { history?: number }): DecodeState;

  /** The model's config as an HF config.json object (with architectures), for saving. */
  abstract configJson(): Record<string, unknown>;

  /** Parameters a token passes through (less than numParameters() for a mixture of experts). */
  numActiveParameters(): number {
    return this.numParameters();
  }

  /** The parts of the last loss() beyond the cross-entropy (null for most families). */
  lossParts(): LossParts | null {
    return null;
  }

  /** Logits (B, T, V); with lastOnly, only the last position's (B, 1, V). */
  forward(ids: Tensor, state: DecodeState | null = null, opts: ForwardOptions = {}): Tensor {
    const h = this.hidden(ids, state, opts);
    return this.project(opts.lastOnly ? T.slice(h, 1, -1) : h);
  }

  /**
   * Mean next-token cross-entropy. Without targets, ids (B, T+1) hold inputs and shifted
   * targets: positions 0…T−1 are fed and predict 1…T. With targets (B, T) (e.g. −100 on prompt
   * tokens for instruction tuning), ids (B, T) are the inputs.
   */
  loss(ids: Tensor, targets?: Tensor, opts: { ignoreIndex?: number } = {}): Tensor {
    const pair = nextTokenPair(ids, targets);
    return crossEntropyFlat(this.forward(pair.inputs), pair.targets, opts.ignoreIndex);
  }
}

/** What loss() predicts from what: ids and the given targets, or ids (B, T) shifted (positions 0…T−2 predict 1…T−1). */
export function nextTokenPair(ids: Tensor, targets?: Tensor): { inputs: Tensor; targets: Tensor } {
  if (targets) return { inputs: ids, targets };
  const Tn = ids.shape[1];
  return { inputs: T.contiguous(T.slice(ids, 1, 0, Tn - 1)), targets: T.contiguous(T.slice(ids, 1, 1, Tn)) };
}

function crossEntropyFlat(logits: Tensor, targets: Tensor, ignoreIndex?: number): Tensor {
  const V = logits.shape[logits.ndim - 1];
  return crossEntropy(T.reshape(logits, [-1, V]), T.reshape(targets, [-1]), { ignoreIndex });
}

/** Validate a row selection against a state's rows (shared by every family's select()). */
export function checkRows(rows: readonly number[], batch: number, what: string): void {
  for (const r of rows) {
    if (!Number.isInteger(r) || r < 0 || r >= batch) throw new DecodeStateError(`${what}.select: row ${r} outside [0, ${batch})`);
  }
}
