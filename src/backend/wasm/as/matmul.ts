// Batched matmul (see KERNEL_ARGS.sgemm in ../../kernels.ts). Placeholder: scalar loops,
// split over threads by rows of C.
export function sgemm(
  a: usize, b: usize, c: usize, M: i32, N: i32, K: i32,
  sAm: i32, sAk: i32, sBk: i32, sBn: i32, ldc: i32,
  batch: i32, sAb: i32, sBb: i32, sCb: i32, beta: i32, tid: i32, nt: i32,
): void {
  const rows = batch * M;
  const per = (rows + nt - 1) / nt;
  const r0 = tid * per;
  const r1 = min(rows, r0 + per);
  for (let r = r0; r < r1; r++) {
    const bt = r / M, m = r % M;
    for (let n = 0; n < N; n++) {
      let s: f32 = 0;
      const ab = a + ((<usize>(bt * sAb + m * sAm)) << 2), bb = b + ((<usize>(bt * sBb + n * sBn)) << 2);
      for (let k = 0; k < K; k++) s += load<f32>(ab + ((<usize>(k * sAk)) << 2)) * load<f32>(bb + ((<usize>(k * sBk)) << 2));
      const cp = c + ((<usize>(bt * sCb + m * ldc + n)) << 2);
      store<f32>(cp, beta ? load<f32>(cp) + s : s);
    }
  }
}
