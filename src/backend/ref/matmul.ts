import { H } from '../heap.js';

/** Reference batched matmul; see KERNEL_ARGS.sgemm. Accumulates in f64. */
export function sgemm(
  a: number, b: number, c: number, M: number, N: number, K: number,
  sAm: number, sAk: number, sBk: number, sBn: number, ldc: number,
  batch: number, sAb: number, sBb: number, sCb: number, beta: number,
): void {
  const f = H.f32;
  const a0 = a >>> 2, b0 = b >>> 2, c0 = c >>> 2;
  for (let bt = 0; bt < batch; bt++) {
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        const ab = a0 + bt * sAb + m * sAm, bb = b0 + bt * sBb + n * sBn;
        for (let k = 0; k < K; k++) s += f[ab + k * sAk] * f[bb + k * sBk];
        const ci = c0 + bt * sCb + m * ldc + n;
        f[ci] = beta ? f[ci] + s : s;
      }
    }
  }
}
