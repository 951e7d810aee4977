// Medusa heads (Cai et al. 2024, FasterDecoding/Medusa): K extra decoding heads on a base
// model's last hidden state h (after the final norm). Head k (0-based) guesses the token k+2
// positions ahead of h's position (the base's own head guesses the next one, k = −1):
//
//   x₀ = h;  x_{j+1} = x_j + SiLU(W x_j + b)   for j < medusa_num_layers   // ResBlock, W zero-initialised
//   logits_k = x_L U_kᵀ                                                     // U_k (V, D), no bias, from the base head
//
// As in the Medusa repo (`nn.Sequential(*([ResBlock(hidden_size)] * medusa_num_layers), …)`),
// a head's residual layers are ONE module applied medusa_num_layers times: the weights are
// shared across a head's layers (its state dict lists the same tensor under every layer index).
// Heads do not share anything with each other. With W = 0 a fresh head is x ↦ x + SiLU(b) = x
// (b = 0) followed by a copy of the base head: before training, every head predicts what the
// base predicts for the next token.
import { Tensor } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { noGrad } from '../tensor/autograd.js';
import { ShapeError, fmtShape } from '../tensor/errors.js';
import { Module } from './module.js';
import { Linear } from './layers.js';

export interface MedusaHeadsConfig {
  /** K: number of heads. */
  medusa_num_heads: number;
  /** Residual layers per head (applications of the head's one ResBlock); 0 = the LM head alone. */
  medusa_num_layers: number;
  hidden_size: number;
  vocab_size: number;
}

export class MedusaConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MedusaConfigError';
  }
}

/** x + SiLU(W x + b): W (D, D) zero-initialised, b (D) zero. */
export class ResBlock extends Module {
  linear: Linear;
  constructor(hidden: number) {
    super();
    this.linear = new Linear(hidden, hidden, { bias: true });
    T.fill_(this.linear.weight, 0); // an identity block at the start (the repo's init.zeros_)
  }
  forward(x: Tensor): Tensor {
    return T.add(x, T.silu(this.linear.forward(x)));
  }
}

/** One head: its ResBlock (applied `layers` times; null when layers = 0) and its own LM head. */
export class MedusaHead extends Module {
  block: ResBlock | null;
  lm_head: Linear;
  constructor(readonly layers: number, hidden: number, vocab: number) {
    super();
    this.block = layers > 0 ? new ResBlock(hidden) : null;
    this.lm_head = new Linear(hidden, vocab, { bias: false });
  }
  /** The head's last hidden state x_L (…, D). */
  hidden(h: Tensor): Tensor {
    let x = h;
    for (let j = 0; j < this.layers; j++) x = this.block!.forward(x);
    return x;
  }
  forward(h: Tensor): Tensor {
    return this.lm_head.forward(this.hidden(h));
  }
}

export class MedusaHeads extends Module {
  heads: MedusaHead[];
  readonly config: MedusaHeadsConfig;

  /**
   * Heads for a base of this hidden size and vocabulary. `lmHead` (V, D), e.g. the base's untied
   * lm_head or its tied embedding, initialises every head's LM head (otherwise they are random,
   * normal(0, 0.02), which only a loader that overwrites them should want).
   */
  constructor(config: MedusaHeadsConfig, opts: { lmHead?: Tensor } = {}) {
    super();
    checkMedusaConfig(config);
    this.config = { ...config };
    const { medusa_num_heads: K, medusa_num_layers: L, hidden_size: D, vocab_size: V } = config;
    if (opts.lmHead && opts.lmHead.shape.join() !== [V, D].join()) {
      throw new ShapeError('MedusaHeads', `lmHead has shape ${fmtShape(opts.lmHead.shape)}, expected [${V}, ${D}] (vocab_size, hidden_size)`);
    }
    this.heads = Array.from({ length: K }, () => new MedusaHead(L, D, V));
    if (opts.lmHead) noGrad(() => { for (const h of this.heads) T.copyInto(h.lm_head.weight, opts.lmHead!); });
  }

  /**
   * Fresh heads for a base model (anything with HF config sizes and a linear output head
   * `project`, as every CausalLM): the LM heads start as copies of the base's output head,
   * read through project() so that tied and untied heads of every family are handled alike.
   */
  static fromBase(base: MedusaBase, opts: { heads: number; layers: number }): MedusaHeads {
    const D = base.config.hidden_size, V = base.config.vocab_size;
    const w = baseHeadWeight(base);
    try {
      return new MedusaHeads({ medusa_num_heads: opts.heads, medusa_num_layers: opts.layers, hidden_size: D, vocab_size: V }, { lmHead: w });
    } finally {
      w.dispose();
    }
  }

  get numHeads(): number { return this.config.medusa_num_heads; }
  get numLayers(): number { return this.config.medusa_num_layers; }

  /** K logits tensors (…, V), head k's guess for the token k+2 positions after each of h's (…, D). */
  forward(h: Tensor): Tensor[] {
    const D = this.config.hidden_size;
    if (h.ndim < 1 || h.shape[h.ndim - 1] !== D) throw new ShapeError('MedusaHeads.forward', `hidden states of shape ${fmtShape(h.shape)}, expected (…, ${D}) (hidden_size)`);
    return this.heads.map((head) => head.forward(h));
  }

  /** Head k's logits (…, V) alone. */
  forwardHead(h: Tensor, k: number): Tensor {
    const D = this.config.hidden_size;
    if (h.ndim < 1 || h.shape[h.ndim - 1] !== D) throw new ShapeError('MedusaHeads.forwardHead', `hidden states of shape ${fmtShape(h.shape)}, expected (…, ${D}) (hidden_size)`);
    if (!Number.isInteger(k) || k < 0 || k >= this.heads.length) throw new RangeError(`MedusaHeads.forwardHead: head ${k} outside [0, ${this.heads.length})`);
    return this.heads[k].forward(h);
  }

  /** Error (naming the field) unless these heads fit a base of this hidden size and vocabulary. */
  checkBase(base: { config: { hidden_size: number; vocab_size: number } }, source = 'Medusa heads'): void {
    checkHeadsFitBase(this.config, base.config, source);
  }
}

/** What MedusaHeads needs of a base model (CausalLM has it). */
export interface MedusaBase {
  config: { hidden_size: number; vocab_size: number };
  project(h: Tensor): Tensor;
}

/**
 * The base's output-head matrix (V, D), read as project(I_D)ᵀ: exact for a linear head without
 * bias (tied embedding or lm_head), the only kind the model families have. An unscoped tensor.
 */
export function baseHeadWeight(base: MedusaBase): Tensor {
  const D = base.config.hidden_size, V = base.config.vocab_size;
  return noGrad(() => T.contiguous(T.transpose(base.project(eye(D)))));
}

function eye(n: number): Tensor {
  const a = new Float32Array(n * n);
  for (let i = 0; i < n; i++) a[i * n + i] = 1;
  return T.tensor(a, [n, n]);
}

export function checkMedusaConfig(c: MedusaHeadsConfig, source = 'Medusa config'): void {
  const int = (v: unknown, min: number) => typeof v === 'number' && Number.isInteger(v) && v >= min;
  if (!int(c.medusa_num_heads, 1)) throw new MedusaConfigError(`${source}: medusa_num_heads must be an integer ≥ 1, got ${JSON.stringify(c.medusa_num_heads)}`);
  if (!int(c.medusa_num_layers, 0)) throw new MedusaConfigError(`${source}: medusa_num_layers must be an integer ≥ 0, got ${JSON.stringify(c.medusa_num_layers)}`);
  if (!int(c.hidden_size, 1)) throw new MedusaConfigError(`${source}: hidden_size must be an integer ≥ 1, got ${JSON.stringify(c.hidden_size)}`);
  if (!int(c.vocab_size, 1)) throw new MedusaConfigError(`${source}: vocab_size must be an integer ≥ 1, got ${JSON.stringify(c.vocab_size)}`);
}

export function checkHeadsFitBase(c: { hidden_size: number; vocab_size: number }, base: { hidden_size: number; vocab_size: number }, source: string): void {
  if (c.hidden_size !== base.hidden_size) throw new MedusaConfigError(`${source}: hidden_size ${c.hidden_size} does not match the base model's hidden_size ${base.hidden_size}`);
  if (c.vocab_size !== base.vocab_size) throw new MedusaConfigError(`${source}: vocab_size ${c.vocab_size} does not match the base model's vocab_size ${base.vocab_size}`);
}
