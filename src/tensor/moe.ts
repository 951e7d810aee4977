// Mixture-of-experts decoding op (inference only, no autograd): the experts a router chose for a
// few token rows, run through two fused kernels that read only those experts' weights
// (backend/kernels.ts: moe_swiglu, moe_down).
import { H } from '../backend/heap.js';
import { META } from '../backend/index.js';
import { Tensor } from './tensor.js';
import { needsGrad } from './autograd.js';
import { DTypeError, ShapeError, fmtShape } from './errors.js';
import { kernel } from './ops.js';

/** One (token row, expert) pair: a SwiGLU expert's weights as HF stores them, and its routing weight. */
export interface MoeSlot {
  /** (I, D) */
  gate: Tensor;
  /** (I, D) */
  up: Tensor;
  /** (D, I) */
  down: Tensor;
  /** The token row of x and h. */
  row: number;
  /** The routing weight that scales this expert's output. */
  scale: number;
}

/** i32 fields per slot in the meta block (see KERNEL_ARGS.moe_swiglu). */
const SLOT = 6;
/** The most slots one call takes (the shared meta block holds 1024 i32). */
export const MAX_MOE_SLOTS = Math.floor(1024 / SLOT);

/**
 * In place, no autograd: h[row] += Σ over slots of scale · down(silu(gate · x[row]) ⊙ (up · x[row])),
 * for x and h (N, D) contiguous f32; the slots are added to each row in the order given. Two
 * kernels whatever the number of slots; weights of experts in no slot are not read.
 */
export function moeExpertsInto_(h: Tensor, x: Tensor, slots: readonly MoeSlot[]): void {
  const op = 'moeExpertsInto_';
  if (needsGrad(h, x) || slots.some((s) => needsGrad(s.gate, s.up, s.down))) throw new Error(`${op}: inference only (call it under noGrad)`);
  if (x.ndim !== 2 || h.ndim !== 2 || h.shape[0] !== x.shape[0] || h.shape[1] !== x.shape[1]) {
    throw new ShapeError(op, `h ${fmtShape(h.shape)} and x ${fmtShape(x.shape)} must both be (N, D)`);
  }
  const [N, D] = x.shape;
  for (const [name, t] of [['h', h], ['x', x]] as const) {
    if (t.dtype !== 'f32') throw new DTypeError(op, `${name} must be f32, got ${t.dtype}`);
    if (!t.isContiguous()) throw new ShapeError(op, `${name} must be contiguous`);
  }
  if (slots.length > MAX_MOE_SLOTS) throw new ShapeError(op, `${slots.length} slots exceed the ${MAX_MOE_SLOTS} one call takes`);
  let width = 0;
  slots.forEach((s, i) => {
    const I = s.gate.shape[0];
    checkWeight(op, i, 'gate', s.gate, I, D);
    checkWeight(op, i, 'up', s.up, I, D);
    checkWeight(op, i, 'down', s.down, D, I);
    if (!Number.isInteger(s.row) || s.row < 0 || s.row >= N) throw new ShapeError(op, `slot ${i}: row ${s.row} outside [0, ${N})`);
    width += I;
  });
  if (!width || !D) return;
  const act = Tensor.empty([width]);
  const m = META >>> 2;
  slots.forEach((s, i) => {
    const q = m + i * SLOT;
    H.i32[q] = s.gate.ptr; H.i32[q + 1] = s.up.ptr; H.i32[q + 2] = s.down.ptr;
    H.i32[q + 3] = s.gate.shape[0]; H.i32[q + 4] = s.row; H.f32[q + 5] = s.scale;
  });
  kernel('moe_swiglu', [act.ptr, x.ptr, META, slots.length, D], 4 * width * D);
  kernel('moe_down', [h.ptr, act.ptr, META, slots.length, D], 2 * width * D);
  act.dispose();
}

function checkWeight(op: string, i: number, name: string, t: Tensor, rows: number, cols: number): void {
  if (t.dtype !== 'f32') throw new DTypeError(op, `slot ${i}: ${name} must be f32, got ${t.dtype}`);
  if (t.ndim !== 2 || t.shape[0] !== rows || t.shape[1] !== cols) throw new ShapeError(op, `slot ${i}: ${name} must be ${fmtShape([rows, cols])}, got ${fmtShape(t.shape)}`);
  if (!t.isContiguous()) throw new ShapeError(op, `slot ${i}: ${name} must be contiguous`);
}
