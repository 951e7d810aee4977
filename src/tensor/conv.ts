// Image ops: 2-d convolution and its transpose (im2col / col2im kernels and a matmul per group),
// group normalisation, nearest-neighbour upsampling and average pooling. Layout NCHW, as
// PyTorch's; every op has its gradient (conv's through the kernels' adjoint pair, the rest as
// composites of ops.ts).
import { Tensor } from './tensor.js';
import { needsGrad, record } from './autograd.js';
import { ShapeError, fmtShape } from './errors.js';
import { add, contiguous, expand, kernel, matmul, mean, mul, reshape, rsqrt, slice, sub, transpose, zeros } from './ops.js';

type Pair = number | readonly [number, number];

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
}

export interface ConvTranspose2dOptions extends Conv2dOptions {
  /** Extra rows / columns on the output's bottom and right edge (each smaller than the stride or the dilation). */
  outputPadding?: Pair;
}

function pair(op: string, name: string, v: Pair | undefined, def: number, min: number): [number, number] {
  const p: [number, number] = v === undefined ? [def, def] : typeof v === 'number' ? [v, v] : [v[0], v[1]];
  for (const x of p) if (!Number.isInteger(x) || x < min) throw new ShapeError(op, `${name} must be an integer ≥ ${min} (or a pair of them), got ${JSON.stringify(v)}`);
  return p;
}

/** The geometry of one im2col: image (planes, H, W), kernel, strides, padding, dilation, grid (OH, OW). */
interface Geometry { planes: number; H: number; W: number; kh: number; kw: number; sh: number; sw: number; ph: number; pw: number; dh: number; dw: number; OH: number; OW: number }

const args = (g: Geometry): number[] => [g.planes, g.H, g.W, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.OH, g.OW];

/** Patches of x (B, C, H, W) as columns (B, C·kh·kw, OH·OW). */
function im2col(x: Tensor, g: Geometry): Tensor {
  const xc = contiguous(x);
  const [B, C] = xc.shape;
  const cols = Tensor.empty([B, C * g.kh * g.kw, g.OH * g.OW]);
  if (cols.size) kernel('im2col', [cols.ptr, xc.ptr, ...args(g)], cols.size);
  if (needsGrad(xc)) {
    record(cols, 'im2col', [xc], (gy) => {
      const gx = zeros(xc.shape);
      const gc = contiguous(gy);
      if (gc.size) kernel('col2im', [gx.ptr, gc.ptr, ...args(g)], gc.size);
      return [gx];
    });
  }
  return cols;
}

/** Columns (B, C·kh·kw, OH·OW) summed back into an image (B, C, H, W): the adjoint of im2col. */
function col2im(cols: Tensor, B: number, C: number, g: Geometry): Tensor {
  const cc = contiguous(cols);
  const x = zeros([B, C, g.H, g.W]);
  if (cc.size) kernel('col2im', [x.ptr, cc.ptr, ...args(g)], cc.size);
  if (needsGrad(cc)) {
    record(x, 'col2im', [cc], (gy) => {
      const gc = Tensor.empty(cc.shape);
      const gyc = contiguous(gy);
      if (gc.size) kernel('im2col', [gc.ptr, gyc.ptr, ...args(g)], gc.size);
      return [gc];
    });
  }
  return x;
}

function checkBias(op: string, bias: Tensor | null | undefined, C: number): void {
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== C)) throw new ShapeError(op, `bias must be (${C}), got ${fmtShape(bias.shape)}`);
}

function addBias(y: Tensor, bias: Tensor | null | undefined): Tensor {
  return bias ? add(y, reshape(bias, [1, bias.shape[0], 1, 1])) : y;
}

/**
 * 2-d convolution (torch.nn.functional.conv2d): x (B, Cin, H, W), weight (Cout, Cin/groups, kh, kw),
 * bias (Cout) → (B, Cout, OH, OW), OH = ⌊(H + 2·ph − dh·(kh − 1) − 1) / sh⌋ + 1.
 */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, o: Conv2dOptions = {}): Tensor {
  const op = 'conv2d';
  if (x.ndim !== 4) throw new ShapeError(op, `input must be (B, C, H, W), got ${fmtShape(x.shape)}`);
  if (weight.ndim !== 4) throw new ShapeError(op, `weight must be (Cout, Cin/groups, kh, kw), got ${fmtShape(weight.shape)}`);
  const [B, Cin, H, W] = x.shape, [Cout, Cg, kh, kw] = weight.shape;
  const groups = o.groups ?? 1;
  if (!Number.isInteger(groups) || groups < 1 || Cin % groups || Cout % groups) throw new ShapeError(op, `groups ${groups} must divide the input channels ${Cin} and the output channels ${Cout}`);
  if (Cg !== Cin / groups) throw new ShapeError(op, `weight ${fmtShape(weight.shape)} expects ${Cg * groups} input channels (${Cg} per group × ${groups}), the input has ${Cin}`);
  checkBias(op, bias, Cout);
  const [sh, sw] = pair(op, 'stride', o.stride, 1, 1), [ph, pw] = pair(op, 'padding', o.padding, 0, 0), [dh, dw] = pair(op, 'dilation', o.dilation, 1, 1);
  const OH = Math.floor((H + 2 * ph - dh * (kh - 1) - 1) / sh) + 1, OW = Math.floor((W + 2 * pw - dw * (kw - 1) - 1) / sw) + 1;
  if (OH < 1 || OW < 1) throw new ShapeError(op, `a ${kh}×${kw} kernel (dilation ${dh}×${dw}) does not fit the ${H}×${W} input with padding ${ph}×${pw}`);
  const cols = im2col(x, { planes: B * Cin, H, W, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW }); // (B, Cin·kh·kw, L)
  const K = Cg * kh * kw, L = OH * OW;
  // Per group: (Cout/g, K) · (B, K, L); the weight broadcasts over the batch.
  const y = groups === 1
    ? matmul(reshape(weight, [Cout, K]), cols)
    : matmul(reshape(weight, [groups, Cout / groups, K]), reshape(cols, [B, groups, K, L]));
  return addBias(reshape(y, [B, Cout, OH, OW]), bias);
}

/**
 * Transposed 2-d convolution (torch.nn.functional.conv_transpose2d): x (B, Cin, H, W), weight
 * (Cin, Cout/groups, kh, kw), bias (Cout) → (B, Cout, OH, OW) with
 * OH = (H − 1)·sh − 2·ph + dh·(kh − 1) + output_padding + 1. The gradient of conv2d's input.
 */
export function convTranspose2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, o: ConvTranspose2dOptions = {}): Tensor {
  const op = 'convTranspose2d';
  if (x.ndim !== 4) throw new ShapeError(op, `input must be (B, C, H, W), got ${fmtShape(x.shape)}`);
  if (weight.ndim !== 4) throw new ShapeError(op, `weight must be (Cin, Cout/groups, kh, kw), got ${fmtShape(weight.shape)}`);
  const [B, Cin, H, W] = x.shape, [Cw, Cg, kh, kw] = weight.shape;
  const groups = o.groups ?? 1;
  if (Cw !== Cin) throw new ShapeError(op, `weight ${fmtShape(weight.shape)} expects ${Cw} input channels, the input has ${Cin}`);
  if (!Number.isInteger(groups) || groups < 1 || Cin % groups) throw new ShapeError(op, `groups ${groups} must divide the input channels ${Cin}`);
  const Cout = Cg * groups;
  checkBias(op, bias, Cout);
  const [sh, sw] = pair(op, 'stride', o.stride, 1, 1), [ph, pw] = pair(op, 'padding', o.padding, 0, 0), [dh, dw] = pair(op, 'dilation', o.dilation, 1, 1);
  const [oph, opw] = pair(op, 'outputPadding', o.outputPadding, 0, 0);
  if ((oph >= sh && oph >= dh) || (opw >= sw && opw >= dw)) throw new ShapeError(op, `output padding ${oph}×${opw} must be smaller than the stride ${sh}×${sw} or the dilation ${dh}×${dw}`);
  const OH = (H - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1, OW = (W - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1;
  if (OH < 1 || OW < 1) throw new ShapeError(op, `padding ${ph}×${pw} leaves no output for a ${H}×${W} input`);
  const Ci = Cin / groups, K = Cg * kh * kw, L = H * W;
  // Per group: columns (B, K, L) = weightᵀ (K, Ci) · x (B, Ci, L), then summed into the image.
  const cols = groups === 1
    ? matmul(transpose(reshape(weight, [Cin, K]), 0, 1), reshape(x, [B, Cin, L]))
    : matmul(transpose(reshape(weight, [groups, Ci, K]), 1, 2), reshape(x, [B, groups, Ci, L]));
  const y = col2im(reshape(cols, [B, Cout * kh * kw, L]), B, Cout, { planes: B * Cout, H: OH, W: OW, kh, kw, sh, sw, ph, pw, dh, dw, OH: H, OW: W });
  return addBias(y, bias);
}

/**
 * Group normalisation (torch.nn.functional.group_norm): x (B, C, …) normalised over each group
 * of C/groups channels and the positions (biased variance), then weight·x + bias per channel.
 */
export function groupNorm(x: Tensor, groups: number, weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  const op = 'groupNorm';
  if (x.ndim < 2) throw new ShapeError(op, `input must be (B, C, …), got ${fmtShape(x.shape)}`);
  const [B, C] = x.shape;
  if (!Number.isInteger(groups) || groups < 1 || C % groups) throw new ShapeError(op, `groups ${groups} must divide the channels ${C}`);
  for (const [n, t] of [['weight', weight], ['bias', bias]] as const) if (t && (t.ndim !== 1 || t.shape[0] !== C)) throw new ShapeError(op, `${n} must be (${C}), got ${fmtShape(t.shape)}`);
  const xr = reshape(x, [B, groups, -1]);
  const mu = mean(xr, 2, true);
  const d = sub(xr, mu);
  const v = mean(mul(d, d), 2, true);
  let y = reshape(mul(d, rsqrt(add(v, eps))), x.shape);
  const per = [1, C, ...x.shape.slice(2).map(() => 1)];
  if (weight) y = mul(y, reshape(weight, per));
  if (bias) y = add(y, reshape(bias, per));
  return y;
}

/** Nearest-neighbour upsampling by an integer factor (torch's interpolate(mode='nearest', scale_factor=s)). */
export function upsampleNearest2d(x: Tensor, scale: number): Tensor {
  if (x.ndim !== 4) throw new ShapeError('upsampleNearest2d', `input must be (B, C, H, W), got ${fmtShape(x.shape)}`);
  if (!Number.isInteger(scale) || scale < 1) throw new ShapeError('upsampleNearest2d', `scale must be a positive integer, got ${scale}`);
  const [B, C, H, W] = x.shape;
  if (scale === 1) return x;
  const e = expand(reshape(x, [B, C, H, 1, W, 1]), [B, C, H, scale, W, scale]);
  return reshape(contiguous(e), [B, C, H * scale, W * scale]);
}

/** Average pooling with a k×k window and stride k (torch's avg_pool2d(x, k)): rows and columns past the last full window are dropped. */
export function avgPool2d(x: Tensor, k: number): Tensor {
  if (x.ndim !== 4) throw new ShapeError('avgPool2d', `input must be (B, C, H, W), got ${fmtShape(x.shape)}`);
  const [B, C, H, W] = x.shape;
  if (!Number.isInteger(k) || k < 1 || k > H || k > W) throw new ShapeError('avgPool2d', `window ${k} must be a positive integer no larger than the ${H}×${W} input`);
  const OH = Math.floor(H / k), OW = Math.floor(W / k);
  let t = x;
  if (OH * k !== H) t = slice(t, 2, 0, OH * k);
  if (OW * k !== W) t = slice(t, 3, 0, OW * k);
  return mean(reshape(contiguous(t), [B, C, OH, k, OW, k]), [3, 5]);
}
