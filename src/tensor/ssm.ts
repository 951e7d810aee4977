// State-space-model ops with autograd: the depthwise causal convolution along time (Mamba's
// conv1d, S4D's long convolution) and Mamba-1's selective scan, each one fused kernel forward
// and one backward (backend/kernels.ts: causal_conv1d_*, selective_scan_*).
//
// Layout is (batch, time, channel) throughout. Inputs may be views whose last dimension is
// contiguous (slices of a projection's output): the kernels take the batch and time strides.
//
// Memory of the scan's backward: nothing per time step is stored. The forward keeps the state
// h (Bt, Din, N) at the start of every chunk of `scanChunk(L, N)` steps (1579 steps for N = 16,
// so one checkpoint, or none without `state`, for any usual training length); the backward
// recomputes each chunk's states from its checkpoint in per-thread scratch and walks it
// backwards. Cost: one extra forward pass. Peak extra memory: the checkpoints plus dB/dC
// partials over channel groups (≤ the size of u), freed when the backward returns.
import { H } from '../backend/heap.js';
import { META } from '../backend/index.js';
import { Tensor } from './tensor.js';
import { isGradEnabled, needsGrad, record } from './autograd.js';
import { DTypeError, ShapeError, fmtShape } from './errors.js';
import { contiguous, kernel, reshape, sum } from './ops.js';

/** Largest convolution kernel length (the wasm kernel packs K taps and a time tile in scratch). */
export const MAX_CONV_K = 32768;
/** Largest state size N of the scan (the wasm kernel's per-thread scratch bound). */
export const MAX_SCAN_N = 8192;

function requireF32(op: string, name: string, t: Tensor): void {
  if (t.dtype !== 'f32') throw new DTypeError(op, `${name} must be f32, got ${t.dtype}`);
}
function expectShape(op: string, name: string, t: Tensor, want: number[], dims: string): void {
  if (t.ndim !== want.length || t.shape.some((s, i) => s !== want[i])) {
    throw new ShapeError(op, `${name} must be ${dims} = ${fmtShape(want)}, got ${fmtShape(t.shape)}`);
  }
}
/** t itself when its last dimension is contiguous (the kernels take the other strides), else a copy. */
function rows(t: Tensor): Tensor {
  return t.shape[t.ndim - 1] <= 1 || t.strides[t.ndim - 1] === 1 ? t : contiguous(t);
}
function noGradInput(op: string, name: string, t: Tensor): void {
  if (t.requiresGrad && isGradEnabled()) {
    throw new TypeError(`${op}: ${name} is a decoding state and gets no gradient; pass it detached (or under noGrad)`);
  }
}

export interface CausalConv1dOptions {
  /** (C): added to every output. */
  bias?: Tensor | null;
  /**
   * (B, K−1, C): the K−1 inputs that precede x[:, 0] (a decoding state; zeros when absent). It
   * gets no gradient: passing one that requires grad (with grad on) is an error.
   */
  initial?: Tensor | null;
}

/**
 * Depthwise causal convolution along time: x (B, L, C), w (C, K) →
 * y[b, l, c] = bias[c] + Σ_{k<K} w[c, k]·xx[b, l + k, c], xx = concat(initial or zeros, x) along
 * time. This is PyTorch's `F.conv1d(x.transpose(1, 2), w.unsqueeze(1), bias, padding=K−1,
 * groups=C)[..., :L]` transposed back (Mamba's conv1d with weight (C, 1, K)); K = L gives S4D's
 * long convolution. x may be a view with a contiguous last dim (a slice of a projection).
 * Returns y (B, L, C) contiguous; gradients for x, w and bias.
 */
export function causalConv1d(x: Tensor, w: Tensor, opts: CausalConv1dOptions = {}): Tensor {
  const op = 'causalConv1d';
  const bias = opts.bias ?? null, initial = opts.initial ?? null;
  requireF32(op, 'x', x);
  requireF32(op, 'w', w);
  if (x.ndim !== 3) throw new ShapeError(op, `x must be (B, L, C), got ${fmtShape(x.shape)}`);
  const [B, L, C] = x.shape;
  if (w.ndim !== 2 || w.shape[0] !== C) throw new ShapeError(op, `w must be (C, K) with C = ${C}, got ${fmtShape(w.shape)}`);
  const K = w.shape[1];
  if (K < 1 || K > MAX_CONV_K) throw new ShapeError(op, `kernel length K = ${K} must be in [1, ${MAX_CONV_K}]`);
  if (bias) { requireF32(op, 'bias', bias); expectShape(op, 'bias', bias, [C], '(C)'); }
  if (initial) {
    requireF32(op, 'initial', initial);
    expectShape(op, 'initial', initial, [B, K - 1, C], '(B, K−1, C)');
    noGradInput(op, 'initial', initial);
  }
  const xr = rows(x), wc = contiguous(w), bc = bias ? contiguous(bias) : null;
  const ic = initial && K > 1 ? contiguous(initial) : null;
  const y = Tensor.empty([B, L, C]);
  // Causal taps with a zero prefix: about half of them when K ≈ L.
  const work = 2 * B * L * C * (ic ? K : Math.min(K, L));
  const args = (t: Tensor | null): number => (t ? t.ptr : 0);
  if (y.size) kernel('causal_conv1d_fwd', [y.ptr, xr.ptr, wc.ptr, args(bc), args(ic), B, L, C, K, xr.strides[0], xr.strides[1]], work);
  const inputs = [xr, wc, ...(bc ? [bc] : [])];
  if (needsGrad(...inputs)) {
    record(y, op, inputs, (g) => {
      const dy = contiguous(g);
      const dx = xr.requiresGrad ? Tensor.empty([B, L, C]) : null;
      const dw = wc.requiresGrad ? Tensor.empty([C, K]) : null;
      const db = bc && bc.requiresGrad ? Tensor.empty([C]) : null;
      if (C && (dx || dw || db)) {
        kernel('causal_conv1d_bwd', [args(dx), args(dw), args(db), dy.ptr, xr.ptr, wc.ptr, args(ic), B, L, C, K, xr.strides[0], xr.strides[1]], 2 * work);
      }
      return [dx, dw, db];
    });
  }
  return y;
}

export interface SelectiveScanOptions {
  /** (Din): skip connection, y += D·u. */
  D?: Tensor | null;
  /** (Bt, L, Din): output gate, y ·= silu(z). */
  z?: Tensor | null;
  /** (Din): added to delta before the softplus. */
  deltaBias?: Tensor | null;
  /** dt = softplus(delta + deltaBias) (PyTorch's, threshold 20); default false. */
  deltaSoftplus?: boolean;
  /**
   * (Bt, Din, N) contiguous: the initial state h_0, overwritten in place with the final state
   * h_L (decoding). No gradient flows through it (one that requires grad, with grad on, is an
   * error). Absent: h_0 = 0.
   */
  state?: Tensor | null;
}

/** Time steps per backward chunk: its states (and exp(dt·A)) fit the wasm kernel's scratch. */
export function scanChunk(L: number, N: number): number {
  return Math.max(1, Math.min(L, Math.floor(131072 / (5 * N + 3))));
}

/**
 * Channels per backward work item (a multiple of 4): about 64 (batch row, group) items so that
 * threads balance, groups of at least 2N channels so that the dB/dC partials (one per group)
 * stay within the size of u, and at most what the kernel's scratch holds.
 */
export function scanGroup(Bt: number, Din: number, N: number): number {
  const G = Math.max(1, Math.min(Math.ceil(64 / Math.max(1, Bt)), Math.floor(Din / (2 * N))));
  const group = 4 * Math.ceil(Math.ceil(Din / G) / 4);
  return Math.max(4, Math.min(group, 4 * Math.floor(65536 / (4 * N + 2))));
}

/**
 * Mamba-1's selective scan (mamba_ssm's selective_scan_fn) in (batch, time, channel) layout:
 * u, delta (Bt, L, Din), A (Din, N), B, C (Bt, L, N) shared by all channels. With
 * dt = delta + deltaBias (softplus'd if deltaSoftplus), per batch row and channel d:
 *   h_t = exp(dt_t·A[d]) ⊙ h_{t−1} + dt_t·u_t·B_t,   y_t = h_t·C_t + D·u_t  (· silu(z_t))
 * Returns y (Bt, L, Din) contiguous. u, delta, z, B, C may be views with a contiguous last dim
 * (slices of in_proj / x_proj outputs). Gradients (exact, by the reverse-time recurrence) for
 * every input that requires grad except `state`.
 */
export function selectiveScan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, opts: SelectiveScanOptions = {}): Tensor {
  const op = 'selectiveScan';
  const D = opts.D ?? null, z = opts.z ?? null, dbias = opts.deltaBias ?? null, state = opts.state ?? null;
  const sp = opts.deltaSoftplus ? 1 : 0;
  for (const [n, t] of [['u', u], ['delta', delta], ['A', A], ['B', B], ['C', C], ['D', D], ['z', z], ['deltaBias', dbias], ['state', state]] as const) {
    if (t) requireF32(op, n, t);
  }
  if (u.ndim !== 3) throw new ShapeError(op, `u must be (Bt, L, Din), got ${fmtShape(u.shape)}`);
  const [Bt, L, Din] = u.shape;
  if (A.ndim !== 2 || A.shape[0] !== Din) throw new ShapeError(op, `A must be (Din, N) with Din = ${Din}, got ${fmtShape(A.shape)}`);
  const N = A.shape[1];
  if (N < 1 || N > MAX_SCAN_N) throw new ShapeError(op, `state size N = ${N} must be in [1, ${MAX_SCAN_N}]`);
  expectShape(op, 'delta', delta, [Bt, L, Din], '(Bt, L, Din)');
  expectShape(op, 'B', B, [Bt, L, N], '(Bt, L, N)');
  expectShape(op, 'C', C, [Bt, L, N], '(Bt, L, N)');
  if (z) expectShape(op, 'z', z, [Bt, L, Din], '(Bt, L, Din)');
  if (D) expectShape(op, 'D', D, [Din], '(Din)');
  if (dbias) expectShape(op, 'deltaBias', dbias, [Din], '(Din)');
  if (state) {
    expectShape(op, 'state', state, [Bt, Din, N], '(Bt, Din, N)');
    if (!state.isContiguous()) throw new ShapeError(op, 'state must be contiguous (it is updated in place)');
    noGradInput(op, 'state', state);
  }
  const ur = rows(u), dr = rows(delta), Br = rows(B), Cr = rows(C), zr = z ? rows(z) : null;
  const Ac = contiguous(A), Dc = D ? contiguous(D) : null, bc = dbias ? contiguous(dbias) : null;
  const y = Tensor.empty([Bt, L, Din]);
  if (!y.size) return y;
  const meta = [ur.strides[0], ur.strides[1], dr.strides[0], dr.strides[1], zr ? zr.strides[0] : 0, zr ? zr.strides[1] : 0,
    Br.strides[0], Br.strides[1], Cr.strides[0], Cr.strides[1]];
  const setMeta = (): void => { H.i32.set(meta, META >>> 2); };
  const p = (t: Tensor | null): number => (t ? t.ptr : 0);
  const inputs: Tensor[] = [ur, dr, Ac, Br, Cr, ...(Dc ? [Dc] : []), ...(zr ? [zr] : []), ...(bc ? [bc] : [])];
  const grad = needsGrad(...inputs);
  const chunk = scanChunk(L, N), nChunks = Math.ceil(L / chunk);
  // The backward restarts every chunk from a checkpoint; a lone chunk starting from zeros needs none.
  const ckpt = grad && (state || nChunks > 1) ? Tensor.empty([Bt, nChunks, Din, N]) : null;
  const work = Bt * L * Din * N * 12;
  setMeta();
  kernel('selective_scan_fwd', [y.ptr, p(ckpt), p(state), ur.ptr, dr.ptr, Ac.ptr, Br.ptr, Cr.ptr, p(Dc), p(zr), p(bc), Bt, L, Din, N, sp, chunk, META], work);
  if (grad) {
    record(y, op, inputs, (g) => {
      const dy = contiguous(g);
      const group = scanGroup(Bt, Din, N), G = Math.ceil(Din / group);
      const want = (t: Tensor | null): boolean => !!t && t.requiresGrad;
      const du = want(ur) ? Tensor.empty([Bt, L, Din]) : null;
      const ddelta = want(dr) || want(bc) ? Tensor.empty([Bt, L, Din]) : null;
      const dz = want(zr) ? Tensor.empty([Bt, L, Din]) : null;
      const dA = want(Ac) ? Tensor.empty([Bt, Din, N]) : null;
      const dD = want(Dc) ? Tensor.empty([Bt, Din]) : null;
      const db = want(bc) ? Tensor.empty([Bt, Din]) : null;
      const dB = want(Br) ? Tensor.empty([G, Bt, L, N]) : null;
      const dC = want(Cr) ? Tensor.empty([G, Bt, L, N]) : null;
      setMeta();
      kernel('selective_scan_bwd', [p(du), p(ddelta), p(dz), p(dA), p(dD), p(db), p(dB), p(dC), dy.ptr, p(ckpt), ur.ptr, dr.ptr, Ac.ptr,
        Br.ptr, Cr.ptr, p(Dc), p(zr), p(bc), Bt, L, Din, N, sp, chunk, group, META], 2 * work);
      const total = (t: Tensor | null, shape: number[]): Tensor | null => (!t ? null : t.shape[0] === 1 ? reshape(t, shape) : sum(t, 0));
      const res: (Tensor | null)[] = [du, want(dr) ? ddelta : null, total(dA, [Din, N]), total(dB, [Bt, L, N]), total(dC, [Bt, L, N])];
      if (Dc) res.push(total(dD, [Din]));
      if (zr) res.push(dz);
      if (bc) res.push(total(db, [Din]));
      return res;
    });
  }
  return y;
}
