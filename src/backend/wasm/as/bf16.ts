// bfloat16 storage for the KV cache (contracts: bf16_pack / bf16_widen and the kvHalf argument
// of rope_qkv and attention_fwd in ../../kernels.ts; reference: ../../ref/nn.ts).
//
// A bf16 value is the top half of an f32's bits, so widening is exact and costs one interleave
// with zeros per four values (x86 punpcklwd); narrowing rounds to nearest, ties to even, and
// keeps NaN a (quiet) NaN, as PyTorch's f32 → bf16 conversion does.
import { shareStart } from './vmath';

// Four bf16 (8 bytes at p) as f32x4.
// @ts-ignore: decorator
@inline export function bf4(p: usize): v128 {
  return bfLo(v128.load64_zero(p));
}
// Values 0–3 and 4–7 of eight bf16 held in v, as f32x4.
// @ts-ignore: decorator
@inline export function bfLo(v: v128): v128 { return i8x16.shuffle(i8x16.splat(0), v, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23); }
// @ts-ignore: decorator
@inline export function bfHi(v: v128): v128 { return i8x16.shuffle(i8x16.splat(0), v, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31); }
// The first t (0–3) bf16 at p as f32x4, the other lanes 0.
// @ts-ignore: decorator
@inline export function bfN(p: usize, t: i32): v128 {
  let v = i32x4.splat(0);
  v = i32x4.replace_lane(v, 0, (<i32>load<u16>(p)) << 16);
  if (t > 1) v = i32x4.replace_lane(v, 1, (<i32>load<u16>(p, 2)) << 16);
  if (t > 2) v = i32x4.replace_lane(v, 2, (<i32>load<u16>(p, 4)) << 16);
  return v;
}

// f32 → bf16, round to nearest even; NaN stays a quiet NaN.
// @ts-ignore: decorator
@inline export function toBf16(x: f32): u16 {
  const u = reinterpret<u32>(x);
  if ((u & 0x7fffffff) > 0x7f800000) return <u16>((u >> 16) | 0x40);
  return <u16>((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

// dst[0, n) (bf16) = src[0, n) (f32), rounded as toBf16.
export function bf16_pack(dst: usize, src: usize, n: i32, tid: i32, nt: i32): void {
  const s = shareStart(n, tid, nt, 16), e = shareStart(n, tid + 1, nt, 16);
  for (let i = s; i < e; i++) store<u16>(dst + ((<usize>i) << 1), toBf16(load<f32>(src + ((<usize>i) << 2))));
}

// dst[0, n) (f32) = src[0, n) (bf16), exactly.
export function bf16_widen(dst: usize, src: usize, n: i32, tid: i32, nt: i32): void {
  const s = shareStart(n, tid, nt, 16), e = shareStart(n, tid + 1, nt, 16);
  let i = s;
  for (; i + 8 <= e; i += 8) {
    const v = v128.load(src + ((<usize>i) << 1));
    v128.store(dst + ((<usize>i) << 2), bfLo(v));
    v128.store(dst + ((<usize>i) << 2), bfHi(v), 16);
  }
  for (; i < e; i++) store<u32>(dst + ((<usize>i) << 2), (<u32>load<u16>(src + ((<usize>i) << 1))) << 16);
}
