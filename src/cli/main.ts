// The `tslm` command line: thin wrappers over the library.
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { shutdown } from '../backend/index.js';

const USAGE = `tslm — language models in TypeScript

Usage:
  tslm bench [matmul|ops] [--json] [--threads N] [--seconds S]
      Matmul GFLOP/s (and elementwise throughput / per-op overhead) of the wasm
      backend on 1 and all threads, beside numpy when python3 has it.
      With --json, prints one JSON array of rows.
  tslm version
  tslm help
`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'bench':
      return bench(rest);
    case 'version':
    case '--version': {
      const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'));
      console.log(pkg.version);
      return 0;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return 0;
    default:
      console.error(`tslm: unknown command '${cmd}'\n\n${USAGE}`);
      return 2;
  }
}

async function bench(args: string[]): Promise<number> {
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
  if (threads && threads.some((t) => !(t >= 1))) {
    console.error(`tslm bench: --threads must be positive integers, got '${values.threads}'`);
    return 2;
  }
  const minSeconds = values.seconds ? Number(values.seconds) : undefined;
  const { benchMatmul, MATMUL_HEADER } = await import('../../bench/matmul.js');
  const { benchOps, OPS_HEADER, formatOpsRow } = await import('../../bench/ops.js');
  const json: unknown[] = [];
  try {
    if (which === 'all' || which === 'matmul') {
      if (!values.json) console.log(`\nmatmul (f32), best of repeated runs\n${MATMUL_HEADER}`);
      const { rows, blas } = await benchMatmul({
        threads, minSeconds,
        log: values.json ? undefined : (line) => console.log(line),
      });
      if (!values.json && blas) console.log(`numpy peer: OpenBLAS kernel ${blas}`);
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
