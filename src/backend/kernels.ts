// The kernel interface: one table, shared by every backend. Each entry lists the kernel's
// arguments in order. Conventions (for `ref` and `wasm` alike):
//   - pointers are byte addresses into the shared heap (backend/heap.ts); elements are 4 bytes
//     (f32, or i32 for indices);
//   - strides and sizes are in elements;
//   - `meta` points at an i32 block the caller filled (shapes and strides, layout per kernel);
//   - every kernel is additionally called with (tid, nt) appended: it computes only its own
//     share of the work, so the `wasm` backend can run it on nt threads at once; the shares of
//     all nt calls cover the output exactly once.
// Adding a fused op = one entry here + one function in ref/ + one export in wasm/as/.

export const KERNEL_ARGS = {
  // C[b] (M×N, row stride ldc) = op(A[b]) (M×K) · op(B[b]) (K×N) (+ C[b] when beta = 1).
  // A[b][m,k] is at a + 4·(b·sAb + m·sAm + k·sAk); B[b][k,n] at b + 4·(b·sBb + k·sBk + n·sBn).
  sgemm: ['a', 'b', 'c', 'M', 'N', 'K', 'sAm', 'sAk', 'sBk', 'sBn', 'ldc', 'batch', 'sAb', 'sBb', 'sCb', 'beta'],
  // dst[i] = src[i] over an ndim-dimensional index space; meta = [shape(ndim), dstStrides(ndim),
  // srcStrides(ndim)]; 4-byte elements copied bit for bit (f32 or i32). n = product of shape.
  copy: ['dst', 'src', 'ndim', 'meta', 'n'],
  // out (contiguous, n elements) = a ⊙ b with broadcasting by strides: meta = [shape(ndim),
  // aStrides(ndim), bStrides(ndim)] (a stride of 0 broadcasts). op: BinaryOp.
  binary: ['op', 'out', 'a', 'b', 'ndim', 'meta', 'n'],
  // out = cond ≠ 0 ? a : b, broadcasting like binary; meta = [shape, condStrides, aStrides, bStrides].
  where: ['out', 'cond', 'a', 'b', 'ndim', 'meta', 'n'],
  // out[i] = f(a[i]) over n contiguous elements; alpha/beta parameterise some ops. op: UnaryOp.
  unary: ['op', 'out', 'a', 'n', 'alpha', 'beta'],
  // gx[i] = gy[i] · f'(x[i]) (y = f(x) is given too, for ops whose derivative uses it).
  unary_bwd: ['op', 'gx', 'x', 'y', 'gy', 'n', 'alpha', 'beta'],
  // a is contiguous (outer, r, inner); out (outer, inner) = reduction over r. op: ReduceOp.
  // ARGMAX/ARGMIN write i32 indices.
  reduce: ['op', 'out', 'a', 'outer', 'r', 'inner'],
  // out = cumulative sum of a (outer, r, inner) along r.
  cumsum: ['out', 'a', 'outer', 'r', 'inner'],
  // Row-wise softmax (log = 0) or log-softmax (log = 1) of a contiguous (rows, cols).
  softmax: ['out', 'a', 'rows', 'cols', 'log'],
  // Backward of softmax given its output y: gx = y·(gy − Σ gy·y); of log-softmax: gx = gy − e^y·Σgy.
  softmax_bwd: ['gx', 'y', 'gy', 'rows', 'cols', 'log'],
  // Per-row cross-entropy of logits (rows, V) against i32 targets, with label smoothing eps:
  // loss[r] = (1−eps)·(lse − x[t]) + eps·(lse − mean(x)); rows whose target equals `ignore` get 0.
  // lse[r] receives the row's logsumexp for the backward pass. Targets outside [0, V) other than
  // `ignore` are the caller's to reject.
  cross_entropy: ['loss', 'lse', 'logits', 'targets', 'rows', 'V', 'ignore', 'eps'],
  // gx[r] = scale·(softmax(x[r]) − (1−eps)·onehot(t) − eps/V), zero for ignored rows.
  cross_entropy_bwd: ['gx', 'logits', 'lse', 'targets', 'rows', 'V', 'ignore', 'eps', 'scale'],
  // out[i, :] = table[idx[i], :] for n i32 indices (checked by the caller), dim columns.
  embedding: ['out', 'table', 'idx', 'n', 'dim'],
  // gtable[idx[i], :] += gout[i, :] (repeated indices accumulate).
  embedding_bwd: ['gtable', 'gout', 'idx', 'n', 'dim'],
  // RMSNorm over rows of x (rows, dim): out = x·rstd·w, rstd[r] = 1/sqrt(mean(x²)+eps).
  rmsnorm: ['out', 'rstd', 'x', 'w', 'rows', 'dim', 'eps'],
  // gx from gy (w and the saved rstd); gw (dim) = Σ_rows gy·x·rstd is written by rmsnorm_bwd_w.
  rmsnorm_bwd: ['gx', 'x', 'w', 'rstd', 'gy', 'rows', 'dim'],
  rmsnorm_bwd_w: ['gw', 'x', 'rstd', 'gy', 'rows', 'dim'],
  // LayerNorm over rows: out = (x−mean)·rstd·w + b (w, b may be 0 = absent).
  layernorm: ['out', 'mean', 'rstd', 'x', 'w', 'b', 'rows', 'dim', 'eps'],
  layernorm_bwd: ['gx', 'x', 'w', 'mean', 'rstd', 'gy', 'rows', 'dim'],
  // gw = Σ gy·x̂, gb = Σ gy (gw/gb may be 0 = not wanted).
  layernorm_bwd_wb: ['gw', 'gb', 'x', 'mean', 'rstd', 'gy', 'rows', 'dim'],
  // Rotary embedding of x viewed as (outer, T, inner, D): position t uses cos/sin rows
  // cos[t, 0..D/2), sin[t, 0..D/2). interleaved = 0: rotate-half (HF) pairs (i, i+D/2);
  // interleaved = 1: pairs (2i, 2i+1). sign = −1 applies the inverse rotation (the backward).
  rope: ['out', 'x', 'cos', 'sin', 'outer', 'T', 'inner', 'D', 'interleaved', 'sign'],
  // Fused scaled-dot-product attention with grouped KV heads (flash-attention style: no (T, S)
  // score matrix). q (B, Hq, T, D), k (B, Hkv, S, D), v (B, Hkv, S, Dv) are strided in their
  // first three dims (element q[b,h,i,c] at q + 4·(b·sQb + h·sQh + i·sQt + c); the last dim is
  // contiguous), query head h uses KV head ⌊h/(Hq/Hkv)⌋. causal = 1: query i sits at position
  // S−T+i and sees keys 0 … S−T+i (S ≥ T). Writes o (B, Hq, T, Dv) contiguous and the per-row
  // logsumexp of the scaled scores lse (B, Hq, T) (−inf and o = 0 for a row that sees no key).
  // kvHalf = 1: k and v hold bfloat16 values (2 bytes each: element k[b,h,j,c] at
  // k + 2·(b·sKb + h·sKh + j·sKs + c)), widened exactly (a bf16 KV cache).
  attention_fwd: ['o', 'lse', 'q', 'k', 'v', 'B', 'Hq', 'Hkv', 'T', 'S', 'D', 'Dv',
    'sQb', 'sQh', 'sQt', 'sKb', 'sKh', 'sKs', 'sVb', 'sVh', 'sVs', 'scale', 'causal', 'kvHalf'],
  // Its backward from o, lse and dout (B, Hq, T, Dv) contiguous: dq (B, Hq, T, D), dk (B, Hkv, S, D)
  // and dv (B, Hkv, S, Dv), all contiguous and overwritten (dk/dv summed over the query heads
  // that share a KV head). Probabilities are recomputed from lse.
  attention_bwd: ['dq', 'dk', 'dv', 'q', 'k', 'v', 'o', 'lse', 'dout', 'B', 'Hq', 'Hkv', 'T', 'S', 'D', 'Dv',
    'sQb', 'sQh', 'sQt', 'sKb', 'sKh', 'sKs', 'sVb', 'sVh', 'sVs', 'scale', 'causal'],
  // AdamW step on n contiguous parameters: m, v updated in place; p −= lr·(wd·p) then
  // p −= lr·(m/bc1)/(sqrt(v̂/bc2)+eps), where v̂ = v, or with AMSGrad (vmax ≠ 0) the running
  // maximum vmax = max(vmax, v).
  adamw: ['p', 'g', 'm', 'v', 'vmax', 'n', 'lr', 'beta1', 'beta2', 'eps', 'wd', 'bc1', 'bc2'],
  // SGD with momentum as PyTorch: d = g + wd·p; buf = mom·buf + (1−damp)·d (buf = d on the
  // first step: first = 1); d = nesterov ? d + mom·buf : buf; p −= lr·d. buf may be 0 when mom = 0.
  sgd: ['p', 'g', 'buf', 'n', 'lr', 'momentum', 'dampening', 'wd', 'nesterov', 'first'],
  // out[i] = value for n elements (f32).
  fill: ['out', 'n', 'value'],
  // Inference fusions of a decoder layer (no backward):
  // out (rows, n) = silu(gu[:, 0:n]) ⊙ gu[:, n:2n] for gu (rows, 2n), both contiguous; the same
  // rounding as unary SILU followed by binary MUL.
  swiglu: ['out', 'gu', 'rows', 'n'],
  // x: B·T contiguous rows of (Hq + 2·Hkv)·D floats (the q, k, v heads of a fused projection,
  // row b·T + t). Rotates the q heads in place (rope with sign 1; interleaved as for rope) and
  // writes the rotated k heads and the v heads to kc and vc: head h of row (b, t) goes to element
  // offset b·sKb + h·sKh + t·sKs of each (a KV cache slice that starts at the step's first
  // position). Position t uses cos/sin row t (T, D/2). kvHalf = 1: kc and vc hold bfloat16 (2
  // bytes an element, offsets as above), each value rounded to nearest even (NaN kept a NaN).
  rope_qkv: ['x', 'kc', 'vc', 'cos', 'sin', 'B', 'T', 'Hq', 'Hkv', 'D', 'sKb', 'sKh', 'sKs', 'interleaved', 'kvHalf'],
  // dst (n bfloat16, 2 bytes each) = src (n f32), rounded to nearest even, NaN kept a (quiet) NaN.
  bf16_pack: ['dst', 'src', 'n'],
  // dst (n f32) = src (n bfloat16), exactly.
  bf16_widen: ['dst', 'src', 'n'],
  // State-space-model kernels (ref/ssm.ts, wasm/as/ssm.ts; ops in tensor/ssm.ts).
  // Depthwise causal convolution along time (Mamba's conv1d, S4D's long convolution): x (B, L, C)
  // with strided rows (x[b,l,c] at x + 4·(b·sXb + l·sXl + c)), w (C, K), bias (C) or 0, init
  // (B, K−1, C) contiguous or 0 (zeros): the K−1 inputs that precede x[:, 0]. Writes y (B, L, C)
  // contiguous: y[b,l,c] = bias[c] + Σ_{k<K} w[c,k]·xx[b,l+k,c], xx = concat(init, x) along time.
  causal_conv1d_fwd: ['y', 'x', 'w', 'bias', 'init', 'B', 'L', 'C', 'K', 'sXb', 'sXl'],
  // Its backward from dy (B, L, C) contiguous: dx (B, L, C) contiguous, dw (C, K) and dbias (C),
  // each 0 = not wanted, all overwritten. No gradient for init.
  causal_conv1d_bwd: ['dx', 'dw', 'dbias', 'dy', 'x', 'w', 'init', 'B', 'L', 'C', 'K', 'sXb', 'sXl'],
  // Mamba-1's selective scan in (batch, time, channel) layout. u, delta, z (Bt, L, Din) and
  // B, C (Bt, L, N) are strided in their first two dims, meta = [sUb, sUl, sDb, sDl, sZb, sZl,
  // sBb, sBl, sCb, sCl] (u[b,t,d] at u + 4·(b·sUb + t·sUl + d), delta by sD·, z by sZ·, B by sB·,
  // C by sC·; last dims contiguous); A (Din, N), D (Din), dbias (Din) contiguous; D, z, dbias
  // may be 0 (absent). Per (b, d), with h (N) starting from state[b,d,:] (state (Bt, Din, N), or
  // zeros when state = 0):
  //   dt = delta[b,t,d] + dbias[d], then softplus(dt) (PyTorch's: dt > 20 → dt) if softplus = 1
  //   h[n] = exp(dt·A[d,n])·h[n] + dt·u[b,t,d]·B[b,t,n]
  //   y[b,t,d] = (Σ_n h[n]·C[b,t,n] + D[d]·u[b,t,d]) · (z ? silu(z[b,t,d]) : 1)
  // y (Bt, L, Din) contiguous. The final h goes back to state (in place) when state ≠ 0. When
  // ckpt ≠ 0, h before step t is written to ckpt (Bt, ⌈L/chunk⌉, Din, N) at chunk t/chunk for
  // every t that is a multiple of chunk (what the backward restarts from).
  selective_scan_fwd: ['y', 'ckpt', 'state', 'u', 'delta', 'A', 'Bm', 'Cm', 'D', 'z', 'dbias',
    'Bt', 'L', 'Din', 'N', 'softplus', 'chunk', 'meta'],
  // Its backward from dy (Bt, L, Din) contiguous and the forward's ckpt (same chunk), recomputing
  // the states chunk by chunk. Writes du, ddelta, dz (Bt, L, Din) contiguous (ddelta is the
  // gradient for delta, through the softplus); per batch row partials dA (Bt, Din, N), dD
  // (Bt, Din), ddbias (Bt, Din) (= ddelta summed over t); and per channel group partials dB, dC
  // (G, Bt, L, N) where group g holds channels [g·group, (g+1)·group), G = ⌈Din/group⌉ (group a
  // multiple of 4): the caller sums partials over their first dim. Every output may be 0 (not
  // wanted) and is overwritten. The wasm kernel keeps a chunk of states in its per-thread
  // scratch: it needs chunk·(5N+3) ≤ 131072, (group/4)·(4N+2) ≤ 65536 and N ≤ 8192.
  selective_scan_bwd: ['du', 'ddelta', 'dz', 'dA', 'dD', 'ddbias', 'dB', 'dC', 'dy', 'ckpt', 'u', 'delta', 'A', 'Bm', 'Cm',
    'D', 'z', 'dbias', 'Bt', 'L', 'Din', 'N', 'softplus', 'chunk', 'group', 'meta'],
  // Mixture-of-experts decoding (inference, no backward; ref/moe.ts, wasm/as/moe.ts, op in
  // tensor/moe.ts): the experts chosen for a few token rows, only their weights read. `slots`
  // (token row, expert) pairs; meta = 6 i32 per slot: [gate, up, down, width, row, scale]: gate
  // and up point at the slot's expert weights (width, D), down at (D, width), all contiguous f32;
  // row is the token row of x and h (N, D) contiguous; scale holds the f32 bits of the slot's
  // routing weight. act (Σ width, contiguous) holds slot s's activations after those of slots < s.
  // moe_swiglu: act_s[i] = scale_s · silu(gate_s[i,:]·x[row_s]) · (up_s[i,:]·x[row_s]), i < width_s.
  // Image patches as columns (the im2col of a 2-d convolution): x (planes, H, W) contiguous,
  // planes = B·C; cols (planes, kh, kw, OH·OW) — for one image (C·kh·kw, OH·OW) — with
  // cols[p, i, j, oh·OW + ow] = x[p, oh·sh − ph + i·dh, ow·sw − pw + j·dw], 0 outside the image.
  im2col: ['cols', 'x', 'planes', 'H', 'W', 'kh', 'kw', 'sh', 'sw', 'ph', 'pw', 'dh', 'dw', 'OH', 'OW'],
  // The adjoint: x[p, …] += every column entry im2col would read from it (x is accumulated into;
  // threads split the planes, so no two write the same element).
  col2im: ['x', 'cols', 'planes', 'H', 'W', 'kh', 'kw', 'sh', 'sw', 'ph', 'pw', 'dh', 'dw', 'OH', 'OW'],
  moe_swiglu: ['act', 'x', 'meta', 'slots', 'D'],
  // moe_down: h[row_s, d] += down_s[d,:]·act_s for every slot, in slot order (each row of h sees
  // its slots' sums added one after another, whatever the thread split).
  moe_down: ['h', 'act', 'meta', 'slots', 'D'],
  // Q8_0 weights (inference; ref/quant.ts, wasm/as/quant.ts, ops in tensor/ops.ts linear and
  // tensor/nn.ts embedding). A Q8_0 matrix W (N×K, K a multiple of 32) is N contiguous rows of
  // K/32 blocks of 34 bytes: an f16 scale d (little-endian), then 32 int8 q; element j of a block
  // is f32(d)·q[j] (ggml's dequantize_row_q8_0).
  // out (M×N, row stride ldo) = x (M×K f32, row stride ldx) · Wᵀ (+ out when beta = 1); threads
  // split N. For M ≥ 9 (prefill) the products are exact f32 ones of the dequantised weights; for
  // M ≤ 8 (decoding, verifying up to 8 speculative tokens) each row of x is first rounded to Q8_0 blocks as llama.cpp does (per block dx
  // = amax/127 in f32, qx = x·(127/amax) rounded to nearest, ties to even) and every block adds
  // f32(d·dx)·Σ q·qx (an exact integer dot product): llama.cpp's vec_dot_q8_0_q8_0 (the wasm
  // kernel assumes finite scales there: loaders refuse NaN/±inf ones unless allowed). K ≤ 131072.
  q8_0_matmul: ['out', 'x', 'w', 'M', 'N', 'K', 'ldx', 'ldo', 'beta'],
  // out[i, :] (n×K f32, contiguous) = row idx[i] of W dequantised, for n i32 indices (checked by
  // the caller): the gather of a Q8_0 embedding table, bit for bit ggml's dequantisation.
  q8_0_rows: ['out', 'w', 'idx', 'n', 'K'],
  // The other ggml block types kept in memory, named by their ggml type id `type` (Q4_0 2, Q4_1 3,
  // Q5_0 6, Q4_K 12, Q5_K 13, Q6_K 14; layouts and dequantisation in ref/ggml_blocks.ts). W (N×K,
  // K a multiple of the block: 32, or 256 for the K types) is N rows of K/block blocks.
  // quant_matmul: as q8_0_matmul. For M ≥ 9 (prefill) exact f32 products of the dequantised
  // weights; for M < 9 (decoding) x rounded as llama.cpp's CPU path rounds it for the type (Q8_0
  // blocks for Q4_0/Q4_1/Q5_0, Q8_K blocks of 256 for the K types) and every block's exact integer
  // sums scaled in f32 (ggml's vec_dot_<type>_q8_<0|K>); the wasm kernel assumes finite scales.
  // Every type but Q8_0 (Q4_0, Q4_1, Q5_0, Q4_K, Q5_K, Q6_K) takes the rounded path for every M (its
  // prefill is an integer GEMM, as llama.cpp's; ref/quant.ts INT_PREFILL lists them).
  quant_matmul: ['out', 'x', 'w', 'M', 'N', 'K', 'ldx', 'ldo', 'beta', 'type'],
  // F16 (type 1) and BF16 (type 30) weights (2 bytes a value, any K) go through the same two
  // kernels: widened to f32 exactly, x kept f32 for every M (exact products, f32 sums); the wasm
  // decoding path (M < 9) assumes finite F16 weights (loaders widen an F16 matrix with inf/NaN
  // to f32); quant_rows widens every pattern exactly, inf and NaN payloads included.
  // quant_rows: as q8_0_rows, bit for bit ggml's dequantize_row_<type>.
  quant_rows: ['out', 'w', 'idx', 'n', 'K', 'type'],
  // out (nb Q8_0 blocks of 34 bytes) = x (nb·32 f32) rounded as ggml's quantize_row_q8_0_ref
  // (io/dtypes.ts quantizeQ8_0): per block amax = MAX(amax, |x|), d = amax/127 in f32, stored as
  // its f16 (round to nearest even), q = roundf(f32(x·f32(1/d))) (0 where d = 0); threads split
  // the blocks. Quantises weights as they load (Medusa heads) from the heap.
  quantize_q8_0: ['out', 'x', 'nb'],
  // out (nb blocks of ggml type `type`: Q4_0 2, Q4_1 3, Q5_0 6, Q4_K 12, Q5_K 13, Q6_K 14) = x
  // (nb·32 or nb·256 f32) quantised byte for byte as io/quantize.ts's quantisers (ggml's
  // quantize_row_<type>_ref: every operation in f32, nearest_int's ties to even, make_qkx2_quants
  // and make_qx_quants's trial scales in the same order); threads split the blocks. Quantises
  // weights as they load (--dtype q4_0|q4_k|q6_k) from the heap.
  quantize_blocks: ['out', 'x', 'nb', 'type'],
} as const;

export const enum BinaryOp { ADD = 0, SUB = 1, MUL = 2, DIV = 3, POW = 4, MAX = 5, MIN = 6, EQ = 7, GT = 8, LT = 9, GE = 10, LE = 11 }
export const enum UnaryOp {
  NEG = 0, EXP = 1, LOG = 2, SQRT = 3, RSQRT = 4, ABS = 5, TANH = 6, SIGMOID = 7, SILU = 8,
  GELU = 9, GELU_TANH = 10, RELU = 11, SOFTPLUS = 12, CLAMP = 13, POWS = 14, AFFINE = 15,
  // out = alpha / a
  RDIV = 16,
  // out = 1 if a > alpha else 0 (used for dropout masks); no backward
  STEP = 17,
  SIN = 18, COS = 19,
}
export const enum ReduceOp { SUM = 0, MAX = 1, MIN = 2, LOGSUMEXP = 3, ARGMAX = 4, ARGMIN = 5 }

export type KernelName = keyof typeof KERNEL_ARGS;
export const KERNEL_NAMES = Object.keys(KERNEL_ARGS).sort() as KernelName[];

/** A backend's implementation of one kernel: the listed arguments, then tid and nt. */
export type KernelFn = (...args: number[]) => void;
export type KernelTable = { [K in KernelName]: KernelFn };

export interface Backend {
  readonly name: 'ref' | 'wasm';
  /** Number of threads the backend may use (1 for ref). */
  readonly threads: number;
  /** Why fewer threads run than init() asked for (a page that is not cross-origin isolated); null or absent otherwise. */
  readonly threadsUnavailable?: string | null;
  /**
   * Run a kernel. `work` is a rough count of scalar operations; small jobs run on the calling
   * thread only, large ones are split over all threads.
   */
  call(kernel: KernelName, args: number[], work: number): void;
  /**
   * A batch of kernel calls run in order by one `run()` (a decoding step's kernels): the same
   * kernels with the same shares as `call` would run one by one, posted to the threads as one job.
   */
  batch(): KernelBatch;
}

/**
 * Kernel calls collected by `add` and run in order by `run` (see Backend.batch). The calls stay
 * after a run: a caller that runs the same calls again with a few arguments changed (a decoding
 * step at the next position) patches them with `set` and `setWork` instead of adding them again.
 */
export interface KernelBatch {
  /** Appends a call; its arguments are checked as `call` checks them. */
  add(kernel: KernelName, args: number[], work: number): void;
  /** How many calls the batch holds. */
  readonly length: number;
  /** Argument j of call i. */
  set(i: number, j: number, value: number): void;
  /** The work of call i (which decides its threads, as `call`'s does). */
  setWork(i: number, work: number): void;
  /** Runs the calls in order. */
  run(): void;
  /** Drops every call. */
  clear(): void;
  dispose(): void;
}

/** A batch that runs its calls one by one through `call` (a backend without a list job). */
export class SequentialBatch implements KernelBatch {
  private calls: { kernel: KernelName; args: number[]; work: number }[] = [];
  constructor(private backend: Pick<Backend, 'call'>) {}
  add(kernel: KernelName, args: number[], work: number): void {
    checkKernelArgs(kernel, args);
    this.calls.push({ kernel, args, work });
  }
  get length(): number {
    return this.calls.length;
  }
  set(i: number, j: number, value: number): void {
    this.calls[i].args[j] = value;
  }
  setWork(i: number, work: number): void {
    this.calls[i].work = work;
  }
  run(): void {
    for (const c of this.calls) this.backend.call(c.kernel, c.args, c.work);
  }
  clear(): void {
    this.calls = [];
  }
  dispose(): void {
    this.calls = [];
  }
}

/** Refuses a call whose argument count is not the kernel's (a KernelArgumentError). */
export function checkKernelArgs(kernel: KernelName, args: readonly number[]): void {
  const want = KERNEL_ARGS[kernel].length;
  if (args.length !== want) throw new KernelArgumentError(kernel, want, args.length);
}

export class KernelArgumentError extends Error {
  constructor(kernel: string, expected: number, got: number) {
    super(`kernel ${kernel}: expected ${expected} arguments, got ${got}`);
    this.name = 'KernelArgumentError';
  }
}

/** Split `count` items over nt threads: the [start, end) range of thread tid. */
export function shareOf(count: number, tid: number, nt: number): [number, number] {
  const per = Math.ceil(count / nt);
  const s = Math.min(count, tid * per);
  return [s, Math.min(count, s + per)];
}
