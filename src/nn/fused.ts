// Linear layers run as one matmul at inference: weights of layers with the same input size kept
// as adjacent rows of one storage (each still a parameter of its own, a view), and read back as
// one matrix while they stay that way (q/k/v, gate/up, a router and a shared expert's gate).
import { Tensor, isQuantized } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { unscoped } from '../tensor/storage.js';
import { noGrad } from '../tensor/autograd.js';
import { Linear } from './layers.js';
import { initEnabled } from './module.js';

/** A Linear layer as constructed (not a subclass or an adapter in its place), without bias, with a contiguous f32 (or quantised) weight. */
export function plainLinear(l: unknown): l is Linear {
  return l instanceof Linear && l.constructor === Linear && !l.bias && (l.weight.dtype === 'f32' || isQuantized(l.weight.dtype)) && l.weight.isContiguous();
}

/** Put the weights of linear layers with the same input size in one storage, adjacent rows, each weight staying a parameter (a view). */
export function shareStorage(ls: Linear[]): void {
  // Without initialisation (a checkpoint fills the weights next) the values need no copying, and a
  // loader's storage (deferAllocation) takes no heap until filled: one that replaces these weights
  // by quantised ones never allocates it.
  const rowsAll = ls.reduce((s, l) => s + l.weight.shape[0], 0);
  const all = unscoped(() => noGrad(() => initEnabled() ? T.concat(ls.map((l) => l.weight), 0) : Tensor.unfilled([rowsAll, ls[0].weight.shape[1]])));
  let row = 0;
  for (const l of ls) {
    const n = l.weight.shape[0];
    l.weight.dispose();
    l.weight = noGrad(() => T.slice(all, 0, row, row + n)).requiresGrad_();
    row += n;
  }
}

/**
 * The weights of linear layers as one (Σ out, in) matrix when they are plain Linear layers whose
 * weights are still adjacent in one storage (shareStorage; not after LoRA wrapped a layer or a
 * weight was replaced); else null.
 */
export function fusedRows(ls: unknown[]): Tensor | null {
  if (!plainLinear(ls[0])) return null;
  const first = ls[0].weight, cols = first.shape[1];
  let rows = 0;
  for (const l of ls) {
    if (!plainLinear(l)) return null;
    const w = l.weight;
    if (w.storage !== first.storage || w.dtype !== first.dtype || w.offset !== first.offset + rows * cols || w.shape[1] !== cols) return null;
    rows += w.shape[0];
  }
  return new Tensor(first.storage, [rows, cols], [cols, 1], first.offset, first.dtype);
}
