// LoRA (Hu et al. 2021): a frozen linear layer plus a trainable low-rank update,
//
//   y = x Wᵀ + b + scale · dropout(x) Aᵀ Bᵀ,   A (r, in), B (out, r), scale = α / r   (rsLoRA: α / √r)
//
// with B starting at zero, so the adapted model starts equal to the base. As mlx-examples does,
// the adapter wraps a layer: LoRALinear.fromLinear(linear) after model.freeze(), toLinear() to
// fuse. Field names follow PEFT's modules (lora_A.weight, lora_B.weight), so the model's tensor
// names are PEFT's adapter names without the "base_model.model." prefix. Several adapters can
// be held by one layer; the active one is in lora_A/lora_B, the others out of the state dict.
import { Tensor } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { needsGrad, noGrad, record } from '../tensor/autograd.js';
import { scope, unscoped } from '../tensor/storage.js';
import { Generator, defaultGenerator } from '../tensor/random.js';
import { Module, parameter } from './module.js';
import { Linear } from './layers.js';

export class LoraError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoraError';
  }
}

/** Hyper-parameters of one adapter (PEFT's LoraConfig field names). */
export interface LoraOptions {
  r: number;
  lora_alpha: number;
  lora_dropout?: number;
  /** rsLoRA (Kalajdzievski 2023): scale α/√r instead of α/r. */
  use_rslora?: boolean;
}

export function loraScale(o: LoraOptions): number {
  return o.use_rslora ? o.lora_alpha / Math.sqrt(o.r) : o.lora_alpha / o.r;
}

/** One factor of an adapter: a bias-free projection holding `weight` (PEFT's nn.Linear). */
export class LoraFactor extends Module {
  constructor(public weight: Tensor) {
    super();
  }
}

export interface Adapter {
  lora_A: LoraFactor;
  lora_B: LoraFactor;
  options: Required<LoraOptions>;
  scale: number;
}

export class LoRALinear extends Module {
  /** The base layer's weight (out, in) and bias, shared with the Linear it wraps (frozen). */
  weight: Tensor;
  bias: Tensor | null;
  /** The active adapter's factors (null when no adapter is active). */
  lora_A: LoraFactor | null = null;
  lora_B: LoraFactor | null = null;
  readonly inFeatures: number;
  readonly outFeatures: number;
  private _adapters = new Map<string, Adapter>();
  private _active: string | null = null;
  /** The adapter currently added into `weight` (merge()), if any. */
  private _merged: string | null = null;
  private _generator: Generator;

  constructor(base: Linear, opts: { generator?: Generator } = {}) {
    super();
    this.weight = base.weight;
    this.bias = base.bias;
    this.inFeatures = base.inFeatures;
    this.outFeatures = base.outFeatures;
    this._generator = opts.generator ?? defaultGenerator;
  }

  /**
   * Wrap a Linear with a new adapter `name` (default "default"): A ~ U(−1/√in, 1/√in) as PEFT's
   * kaiming_uniform(a=√5), B = 0. The base parameters keep their requiresGrad (freeze() first).
   */
  static fromLinear(linear: Linear, opts: LoraOptions & { name?: string; generator?: Generator }): LoRALinear {
    const l = new LoRALinear(linear, { generator: opts.generator });
    l.addAdapter(opts.name ?? 'default', opts, opts.generator);
    return l;
  }

  get activeAdapter(): string | null { return this._active; }
  get adapterNames(): string[] { return [...this._adapters.keys()]; }
  get mergedAdapter(): string | null { return this._merged; }
  adapter(name: string): Adapter | undefined { return this._adapters.get(name); }

  /** Add an adapter (and make it active). `factors` gives its A (r, in) and B (out, r) instead of the init. */
  addAdapter(name: string, o: LoraOptions, generator?: Generator, factors?: { A: Tensor; B: Tensor }): Adapter {
    if (this._adapters.has(name)) throw new LoraError(`adapter "${name}" already exists on this layer`);
    const r = o.r;
    if (!Number.isInteger(r) || r < 1) throw new LoraError(`LoRA rank r must be a positive integer, got ${r}`);
    if (r > Math.min(this.inFeatures, this.outFeatures)) {
      throw new LoraError(`LoRA rank r = ${r} is larger than a dimension of the ${this.outFeatures}×${this.inFeatures} layer (at most ${Math.min(this.inFeatures, this.outFeatures)})`);
    }
    const p = o.lora_dropout ?? 0;
    if (!(p >= 0 && p < 1)) throw new LoraError(`lora_dropout must be in [0, 1), got ${p}`);
    if (!(Number.isFinite(o.lora_alpha) && o.lora_alpha > 0)) throw new LoraError(`lora_alpha must be a positive number, got ${o.lora_alpha}`);
    const options: Required<LoraOptions> = { r, lora_alpha: o.lora_alpha, lora_dropout: p, use_rslora: o.use_rslora ?? false };
    let A: Tensor, B: Tensor;
    if (factors) {
      const ea = [r, this.inFeatures].join(), eb = [this.outFeatures, r].join();
      if (factors.A.shape.join() !== ea) throw new LoraError(`lora_A has shape [${factors.A.shape}], the layer expects [${ea}]`);
      if (factors.B.shape.join() !== eb) throw new LoraError(`lora_B has shape [${factors.B.shape}], the layer expects [${eb}]`);
      A = parameter(() => T.clone(factors.A));
      B = parameter(() => T.clone(factors.B));
    } else {
      const bound = 1 / Math.sqrt(this.inFeatures);
      A = parameter(() => T.rand([r, this.inFeatures], { generator: generator ?? this._generator, low: -bound, high: bound }));
      B = parameter(() => T.zeros([this.outFeatures, r]));
    }
    const ad: Adapter = { lora_A: new LoraFactor(A), lora_B: new LoraFactor(B), options, scale: loraScale(options) };
    this._adapters.set(name, ad);
    this.setAdapter(name);
    return ad;
  }

  /** Make `name` the active adapter (null: the base layer alone). A merged layer must be unmerged first. */
  setAdapter(name: string | null): void {
    if (name !== null && !this._adapters.has(name)) throw new LoraError(`no adapter "${name}" (have ${this.adapterNames.map((n) => `"${n}"`).join(', ') || 'none'})`);
    if (this._merged !== null && name !== this._merged) throw new LoraError(`adapter "${this._merged}" is merged into the weights; unmerge() before switching to ${name === null ? 'none' : `"${name}"`}`);
    this._active = name;
    const ad = name === null ? null : this._adapters.get(name)!;
    this.lora_A = ad ? ad.lora_A : null;
    this.lora_B = ad ? ad.lora_B : null;
  }

  deleteAdapter(name: string): void {
    const ad = this._adapters.get(name);
    if (!ad) return;
    if (this._merged === name) this.unmerge();
    if (this._active === name) this.setAdapter(null);
    this._adapters.delete(name);
    ad.lora_A.dispose();
    ad.lora_B.dispose();
  }

  /** scale · B A (out, in) of an adapter. */
  delta(name = this._active): Tensor {
    const ad = name === null ? undefined : this._adapters.get(name);
    if (!ad) throw new LoraError(`no adapter ${name === null ? '(none active)' : `"${name}"`}`);
    return noGrad(() => T.mul(T.matmul(ad.lora_B.weight, ad.lora_A.weight), ad.scale));
  }

  forward(x: Tensor): Tensor {
    if (this._active === null || this._merged !== null) return T.linear(x, this.weight, this.bias);
    const ad = this._adapters.get(this._active)!;
    const p = this.training ? ad.options.lora_dropout : 0;
    return loraLinear(x, this.weight, this.bias, ad.lora_A.weight, ad.lora_B.weight, ad.scale, { p, generator: this._generator });
  }

  /** W ← W + scale·B·A for the active adapter (inference without the extra matmuls). */
  merge(): void {
    if (this._merged !== null) throw new LoraError(`adapter "${this._merged}" is already merged`);
    if (this._active === null) throw new LoraError('no active adapter to merge');
    scope(() => T.addInPlace(this.weight, this.delta()));
    this._merged = this._active;
  }

  /** W ← W − scale·B·A: undo merge(). */
  unmerge(): void {
    if (this._merged === null) throw new LoraError('no adapter is merged');
    const name = this._merged;
    scope(() => T.addInPlace(this.weight, T.neg(this.delta(name))));
    this._merged = null;
  }

  /**
   * Fuse the active adapter (if any) into a plain Linear that takes this layer's weight
   * (W + scale·B·A) and bias; the adapters are released.
   */
  toLinear(): Linear {
    if (this._active !== null && this._merged === null) this.merge();
    const lin = unscoped(() => new Linear(this.inFeatures, this.outFeatures, { bias: false }));
    lin.weight.dispose();
    lin.weight = this.weight;
    lin.bias = this.bias;
    this._merged = null;
    for (const n of this.adapterNames) {
      const ad = this._adapters.get(n)!;
      ad.lora_A.dispose();
      ad.lora_B.dispose();
    }
    this._adapters.clear();
    this._active = null;
    this.lora_A = this.lora_B = null;
    return lin;
  }
}

/**
 * y = x Wᵀ + b + s · (dropout_p(x) Aᵀ) Bᵀ as one autograd node. The composite would keep two
 * extra (…, out) activations per adapted layer (the B product and the sum) and four (…, in)
 * ones for dropout; this keeps only the (…, r) product (the dropout mask is drawn again in
 * backward from the saved generator state), so LoRA training needs about the activation memory
 * of the frozen model. Gradients:
 *   u = d Aᵀ·s (…, r), d = x ⊙ m/(1−p);  gu = g B (…, r)
 *   dx = g W + s (gu A) ⊙ m/(1−p),  dA = s guᵀ d,  dB = gᵀ u,  dW = gᵀ x,  db = Σ g
 */
export function loraLinear(x: Tensor, W: Tensor, bias: Tensor | null, A: Tensor, B: Tensor, s: number, opts: { p?: number; generator?: Generator } = {}): Tensor {
  const p = opts.p ?? 0;
  const inF = W.shape[1], outF = W.shape[0], r = A.shape[0];
  // The dropout mask m/(1−p) (0 or 1/(1−p)) is not kept for backward: it is drawn again there
  // from the generator's state saved here.
  const gen = opts.generator ?? defaultGenerator;
  const genState = p > 0 ? gen.getState() : null;
  const dropMask = (): Tensor | null => {
    if (!genState) return null;
    const g = new Generator();
    g.setState(genState);
    return T.mul(T.gt(T.rand(x.shape, { generator: g }), p), 1 / (1 - p));
  };
  const { y, u } = noGrad(() => scope(() => {
    const mask = p > 0 ? T.mul(T.gt(T.rand(x.shape, { generator: gen }), p), 1 / (1 - p)) : null;
    const d = mask ? T.mul(x, mask) : x;
    const u = T.mul(T.linear(d, A), s);
    const y = T.linear(x, W, bias);
    T.addInPlace(y, T.linear(u, B));
    return { y, u };
  }));
  const inputs = [x, W, A, B, ...(bias ? [bias] : [])];
  if (!needsGrad(...inputs)) return y;
  return record(y, 'lora_linear', inputs, (g) => {
    const mask = dropMask();
    const lead = g.shape.slice(0, -1);
    const g2 = T.reshape(T.contiguous(g), [-1, outF]);
    const x2 = T.reshape(T.contiguous(x), [-1, inF]);
    const u2 = T.reshape(u, [-1, r]);
    const gu = T.matmul(g2, B); // (N, r)
    let dx: Tensor | null = null;
    if (x.requiresGrad) {
      const lo = T.mul(T.matmul(gu, A), s);
      dx = T.add(T.matmul(g2, W), mask ? T.mul(lo, T.reshape(mask, [-1, inF])) : lo);
      dx = T.reshape(dx, [...lead, inF]);
    }
    const d2 = mask ? T.mul(x2, T.reshape(mask, [-1, inF])) : x2;
    return [
      dx,
      W.requiresGrad ? T.matmul(T.transpose(g2), x2) : null,
      A.requiresGrad ? T.mul(T.matmul(T.transpose(gu), d2), s) : null,
      B.requiresGrad ? T.matmul(T.transpose(g2), u2) : null,
      ...(bias ? [bias.requiresGrad ? T.sum(g2, 0) : null] : []),
    ];
  });
}
