// Optimizers with PyTorch's update rules (torch.optim.SGD, torch.optim.AdamW), gradient
// clipping by global norm. Updates run as fused backend kernels (adamw, sgd) on each parameter.
import { Tensor } from '../tensor/tensor.js';
import { kernel, zeros, findNonFinite, scaleInPlace } from '../tensor/ops.js';
import { unscoped } from '../tensor/storage.js';
import { ShapeError } from '../tensor/errors.js';
import { H } from '../backend/heap.js';

export interface ParamGroup<O> {
  params: Tensor[];
  /** Per-group overrides of the optimizer's options. */
  options?: Partial<O>;
}

function checkParams(op: string, params: Tensor[]): void {
  for (const p of params) {
    if (!p.requiresGrad) throw new ShapeError(op, `parameter ${p.name ?? p.toString()} does not require grad`);
    if (!p.isContiguous() || p.dtype !== 'f32') throw new ShapeError(op, `parameter ${p.name ?? p.toString()} must be a contiguous f32 tensor`);
  }
}

abstract class Optimizer<O extends { lr: number }> {
  readonly groups: { params: Tensor[]; options: O }[];
  /** Steps taken. */
  stepCount = 0;
  constructor(params: Tensor[] | ParamGroup<O>[], defaults: O, name: string) {
    const groups: ParamGroup<O>[] = params.length && params[0] instanceof Tensor ? [{ params: params as Tensor[] }] : (params as ParamGroup<O>[]);
    this.groups = groups.map((g) => ({ params: g.params, options: { ...defaults, ...g.options } }));
    for (const g of this.groups) checkParams(name, g.params);
  }
  /** Set the learning rate of every group (schedules call this each step). */
  setLr(lr: number): void {
    for (const g of this.groups) g.options.lr = lr;
  }
  get params(): Tensor[] {
    return this.groups.flatMap((g) => g.params);
  }
  /** Drop the gradients (PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }
  abstract step(): void;
}

export interface SGDOptions { lr: number; momentum: number; dampening: number; weightDecay: number; nesterov: boolean }

/** torch.optim.SGD: momentum buffers start as the first (decayed) gradient. */
export class SGD extends Optimizer<SGDOptions> {
  private buf = new Map<Tensor, Tensor>();
  constructor(params: Tensor[] | ParamGroup<SGDOptions>[], opts: Partial<SGDOptions> = {}) {
    super(params, { lr: 1e-3, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, ...opts }, 'SGD');
    for (const g of this.groups) {
      if (g.options.nesterov && (g.options.momentum <= 0 || g.options.dampening !== 0)) throw new ShapeError('SGD', 'Nesterov momentum requires a momentum and zero dampening');
    }
  }
  step(): void {
    this.stepCount++;
    for (const { params, options: o } of this.groups) {
      for (const p of params) {
        if (!p.grad) continue;
        let b = this.buf.get(p);
        const first = o.momentum !== 0 && !b ? 1 : 0;
        if (o.momentum !== 0 && !b) {
          b = unscoped(() => zeros(p.shape));
          this.buf.set(p, b);
        }
        kernel('sgd', [p.ptr, p.grad.ptr, b ? b.ptr : 0, p.size, o.lr, o.momentum, o.dampening, o.weightDecay, o.nesterov ? 1 : 0, first], p.size);
      }
    }
  }
  stateDict(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    this.params.forEach((p, i) => { const b = this.buf.get(p); if (b) out[`${i}.momentum_buffer`] = b; });
    return out;
  }
}

export interface AdamWOptions { lr: number; betas: [number, number]; eps: number; weightDecay: number; amsgrad: boolean }

/** torch.optim.AdamW: decoupled weight decay, bias-corrected moments. */
export class AdamW extends Optimizer<AdamWOptions> {
  private state = new Map<Tensor, { m: Tensor; v: Tensor; vmax: Tensor | null; step: number }>();
  constructor(params: Tensor[] | ParamGroup<AdamWOptions>[], opts: Partial<AdamWOptions> = {}) {
    super(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, amsgrad: false, ...opts }, 'AdamW');
  }
  step(): void {
    this.stepCount++;
    for (const { params, options: o } of this.groups) {
      const [b1, b2] = o.betas;
      for (const p of params) {
        if (!p.grad) continue;
        let s = this.state.get(p);
        if (!s) {
          s = unscoped(() => ({ m: zeros(p.shape), v: zeros(p.shape), vmax: o.amsgrad ? zeros(p.shape) : null, step: 0 }));
          this.state.set(p, s);
        }
        s.step++;
        const bc1 = 1 - Math.pow(b1, s.step), bc2 = 1 - Math.pow(b2, s.step);
        kernel('adamw', [p.ptr, p.grad.ptr, s.m.ptr, s.v.ptr, s.vmax ? s.vmax.ptr : 0, p.size, o.lr, b1, b2, o.eps, o.weightDecay, bc1, bc2], p.size);
      }
    }
  }
  /** Moment tensors and step counts, keyed by parameter index (for checkpoints). */
  stateDict(): { tensors: Record<string, Tensor>; steps: number[] } {
    const tensors: Record<string, Tensor> = {};
    const steps: number[] = [];
    this.params.forEach((p, i) => {
      const s = this.state.get(p);
      steps.push(s ? s.step : 0);
      if (s) { tensors[`${i}.exp_avg`] = s.m; tensors[`${i}.exp_avg_sq`] = s.v; if (s.vmax) tensors[`${i}.max_exp_avg_sq`] = s.vmax; }
    });
    return { tensors, steps };
  }
  loadStateDict(sd: { tensors: Record<string, Tensor>; steps: number[] }): void {
    this.params.forEach((p, i) => {
      const m = sd.tensors[`${i}.exp_avg`], v = sd.tensors[`${i}.exp_avg_sq`];
      if (!m || !v) return;
      if (m.shape.join() !== p.shape.join() || v.shape.join() !== p.shape.join()) throw new ShapeError('AdamW.loadStateDict', `state of parameter ${i} has shape ${m.shape} but the parameter has ${p.shape}`);
      this.state.set(p, { m, v, vmax: sd.tensors[`${i}.max_exp_avg_sq`] ?? null, step: sd.steps[i] });
    });
  }
}

/**
 * Scale gradients so that their global L2 norm is at most maxNorm (torch.nn.utils.clip_grad_norm_:
 * coefficient maxNorm / (norm + 1e-6), applied only when below 1). Returns the norm before
 * clipping. With errorIfNonfinite, a NaN/Inf norm throws naming the first offending parameter.
 */
export function clipGradNorm(params: Tensor[], maxNorm: number, opts: { errorIfNonfinite?: boolean } = {}): number {
  let total = 0;
  const withGrad = params.filter((p) => p.grad);
  for (const p of withGrad) total += sumSquares(p.grad!);
  const norm = Math.sqrt(total);
  if (!Number.isFinite(norm) && opts.errorIfNonfinite) {
    for (const p of withGrad) {
      const bad = findNonFinite(p.grad!);
      if (bad) throw new Error(`clipGradNorm: gradient of ${p.name ?? p.toString()} has ${bad.count} non-finite value(s), first ${bad.value} at flat index ${bad.index}`);
    }
    throw new Error(`clipGradNorm: total gradient norm is ${norm}`);
  }
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) for (const p of withGrad) scaleInPlace(p.grad!, coef);
  return norm;
}

function sumSquares(g: Tensor): number {
  // f64 accumulation of Σ g² (the reduction precision PyTorch's CPU kernels approach).
  const p = g.ptr >>> 2;
  let s = 0;
  for (let i = 0; i < g.size; i++) { const v = H.f32[p + i]; s += v * v; }
  return s;
}
