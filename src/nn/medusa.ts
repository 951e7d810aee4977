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
//
// Tied LM heads (tie(base)): a head whose U_k IS the base's output head (Medusa-1 with the LM
// head frozen: only the ResBlocks train) computes its logits through base.project(), and the
// heads a decoding step needs go through ONE product with the base head (forwardMany: K rows,
// which the few-row matmul kernels run for little more than one row) instead of K products with
// K matrices of the base head's size. The files keep the Medusa repo's layout: a tied head's LM
// weight is written as a copy of the base head, and loadMedusaHeads ties a head again when its
// LM weight equals the base's head bit for bit.
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
   * The base whose output head the tied heads use (null: none tied): a private field, which
   * Module does not walk (the base's tensors are not the heads' to list, save or dispose).
   */
  #shared: MedusaBase | null = null;
  /** Per head, whether its LM head is the base's (tie()). */
  #tied: boolean[] = [];
  /**
   * For inference, the tied heads' product can use a copy of the base head in another dtype
   * (quantizeMedusaHeads: Q8_0, as the untied heads' own LM heads) instead of base.project.
   */
  #projection: Linear | null = null;

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

  /**
   * Tie heads' LM heads to the base's output head (default every head): their logits become
   * base.project(x_L), and their own lm_head weights stop training (requiresGrad false; they
   * are not read while tied). The base must fit the heads (hidden size, vocabulary).
   */
  tie(base: MedusaBase, which: readonly number[] = this.heads.map((_, k) => k)): this {
    this.checkBase(base, 'MedusaHeads.tie');
    for (const k of which) {
      if (!Number.isInteger(k) || k < 0 || k >= this.heads.length) throw new RangeError(`MedusaHeads.tie: head ${k} outside [0, ${this.heads.length})`);
    }
    this.#shared = base;
    this.#tied = this.heads.map((_, k) => which.includes(k) || (this.#tied[k] ?? false));
    this.heads.forEach((h, k) => { if (this.#tied[k]) h.lm_head.weight.requiresGrad = false; });
    return this;
  }

  /**
   * The tied heads' LM product through `lm` (a copy of the base head, e.g. quantised; null: the
   * base's project()). The heads own it from then on (dispose() frees it).
   */
  setTiedProjection(lm: Linear | null): void {
    if (lm && (lm.weight.shape[0] !== this.config.vocab_size || lm.weight.shape[1] !== this.config.hidden_size)) {
      throw new ShapeError('MedusaHeads.setTiedProjection', `weight ${fmtShape(lm.weight.shape)}, expected [${this.config.vocab_size}, ${this.config.hidden_size}]`);
    }
    this.#projection?.dispose();
    this.#projection = lm;
  }

  override dispose(): void {
    this.#projection?.dispose();
    this.#projection = null;
    super.dispose();
  }

  /** Whether head k's LM head is the base's output head. */
  isTied(k: number): boolean { return this.#tied[k] ?? false; }
  /** The base the tied heads project with (null when none is tied). */
  get tiedBase(): MedusaBase | null { return this.#shared; }

  /** K logits tensors (…, V), head k's guess for the token k+2 positions after each of h's (…, D). */
  forward(h: Tensor): Tensor[] {
    this.checkHidden(h, 'MedusaHeads.forward');
    return this.heads.map((_, k) => this.headLogits(h, k));
  }

  /** Head k's logits (…, V) alone. */
  forwardHead(h: Tensor, k: number): Tensor {
    this.checkHidden(h, 'MedusaHeads.forwardHead');
    this.checkHead(k, 'MedusaHeads.forwardHead');
    return this.headLogits(h, k);
  }

  /**
   * The logits of heads ks on ONE hidden state h (…, D) of one position: (ks.length, V), row i
   * head ks[i]'s. The tied heads' last hidden states go through one product with the base head
   * (the point of tying: on a CPU a few rows cost little more than one); the others through
   * their own LM heads.
   */
  forwardMany(h: Tensor, ks: readonly number[]): Tensor {
    this.checkHidden(h, 'MedusaHeads.forwardMany');
    const D = this.config.hidden_size, V = this.config.vocab_size;
    if (h.size !== D) throw new ShapeError('MedusaHeads.forwardMany', `one hidden state expected, got shape ${fmtShape(h.shape)}`);
    if (ks.length === 0) throw new RangeError('MedusaHeads.forwardMany: no heads given');
    for (const k of ks) this.checkHead(k, 'MedusaHeads.forwardMany');
    const x = T.reshape(h, [1, D]);
    const tied = ks.filter((k) => this.isTied(k));
    let shared: Tensor | null = null;
    if (tied.length) {
      const xs = tied.map((k) => this.heads[k].hidden(x));
      shared = this.tiedProject(xs.length === 1 ? xs[0] : T.concat(xs, 0));
      shared = T.reshape(shared, [tied.length, V]);
      if (tied.length === ks.length) return shared;
    }
    const rows = ks.map((k) => {
      const i = tied.indexOf(k);
      return i >= 0 ? T.slice(shared!, 0, i, i + 1) : T.reshape(this.heads[k].forward(x), [1, V]);
    });
    return rows.length === 1 ? rows[0] : T.concat(rows, 0);
  }

  private headLogits(h: Tensor, k: number): Tensor {
    const head = this.heads[k];
    return this.isTied(k) ? this.tiedProject(head.hidden(h)) : head.forward(h);
  }

  private tiedProject(x: Tensor): Tensor {
    return this.#projection ? this.#projection.forward(x) : this.#shared!.project(x);
  }

  private checkHidden(h: Tensor, op: string): void {
    const D = this.config.hidden_size;
    if (h.ndim < 1 || h.shape[h.ndim - 1] !== D) throw new ShapeError(op, `hidden states of shape ${fmtShape(h.shape)}, expected (…, ${D}) (hidden_size)`);
  }

  private checkHead(k: number, op: string): void {
    if (!Number.isInteger(k) || k < 0 || k >= this.heads.length) throw new RangeError(`${op}: head ${k} outside [0, ${this.heads.length})`);
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
