// `tslm bench [matmul|ops]`: kernel throughput beside numpy.
import { parseArgs } from 'node:util';
import { shutdown } from '../../backend/index.js';

export const usage = `tslm bench [matmul|ops] [--json] [--threads N[,N]] [--seconds S]
    Matmul GFLOP/s (and elementwise throughput / per-op overhead) of the wasm
    backend on 1 and all threads, beside numpy when python3 has it.
    With --json, prints one JSON array of rows.`;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: 'boolean', default: false }, threads: { type: 'string' }, seconds: { type: 'string' } },
  });
  const which = positionals[0] ?? 'all';
  if (!['all', 'matmul', 'ops'].includes(which)) {
    console.error(`tslm bench: unknown benchmark '${which}' (matmul, ops)`);
    return 2;
  }
  const threads = values.threads ? values.threads.split(',').map(Number) : undefined;
  if (threads && threads.some((t) => !(Number.isInteger(t) && t >= 1))) {
    console.error(`tslm bench: --threads must be positive integers, got '${values.threads}'`);
    return 2;
  }
  const minSeconds = values.seconds ? Number(values.seconds) : undefined;
  if (minSeconds !== undefined && !(minSeconds > 0)) {
    console.error(`tslm bench: --seconds must be a positive number, got '${values.seconds}'`);
    return 2;
  }
  const { benchMatmul, MATMUL_HEADER } = await import('../../../bench/matmul.js');
  const { benchOps, OPS_HEADER, formatOpsRow } = await import('../../../bench/ops.js');
  const json: unknown[] = [];
  try {
    if (which === 'all' || which === 'matmul') {
      if (!values.json) console.log(`\nmatmul (f32), best of repeated runs\n${MATMUL_HEADER}`);
      const { rows, blas } = await benchMatmul({ threads, minSeconds, log: values.json ? undefined : (line) => console.log(line) });
      if (!values.json) console.log(blas ? `numpy peer: OpenBLAS kernel ${blas}` : 'numpy peer: not installed (python3 -c "import numpy" failed)');
      json.push(...rows.map(({ m, n, k, threads: t, gflops, peer_gflops }) => ({ m, n, k, threads: t, gflops: round(gflops), peer_gflops: peer_gflops === null ? null : round(peer_gflops) })));
    }
    if (which === 'all' || which === 'ops') {
      if (!values.json) console.log(`\nelementwise and reductions (f32, 4M elements), per-op overhead\n${OPS_HEADER}`);
      const rows = await benchOps({ threads, minSeconds, log: values.json ? undefined : (r) => console.log(formatOpsRow(r)) });
      if (which === 'ops') json.push(...rows.map((r) => ({ ...r, tslm: round(r.tslm), numpy: r.numpy === null ? null : round(r.numpy) })));
    }
  } finally {
    await shutdown();
  }
  if (values.json) console.log(JSON.stringify(json));
  return 0;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
