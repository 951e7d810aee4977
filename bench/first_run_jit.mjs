// The first generations of a fresh process and the JIT's work during each: decode tokens/s per
// generation and the TurboFan compile time V8 reports (--trace-opt "took a, b, c ms", summed)
// between the start and the end of each, plus the deoptimisations with their source places
// (--trace-deopt-verbose). A random stories15M-shape model in Q8_0, exported to a temporary GGUF.
// Usage (after `npm run build`):
//   node bench/first_run_jit.mjs [--threads 2] [--gens 250,250,250,250] [--prompt-tokens 5] [--v8 "--flag --flag"] [--runs 1] [--top N]
// One fresh child process per run; --v8 passes V8 flags to the child (e.g. inlining limits);
// --top N lists the N functions whose compiles took longest during generation 1.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const argv = process.argv.slice(2);
const arg = (k, d) => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : d);
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => path.join(root, 'dist', p);

if (argv[0] === '--child') {
  // node first_run_jit.mjs --child <gguf> <threads> <gens> <promptTokens>
  const [, file, threads, gens, promptTokens] = argv;
  const { init, shutdown, loadModel, generate } = await import(dist('src/index.js'));
  await init({ threads: Number(threads) });
  const { model } = await loadModel(file);
  model.eval();
  const prompt = Array.from({ length: Number(promptTokens) }, (_, i) => 1 + ((i * 7919) % 1000));
  for (const [g, n] of gens.split(',').map(Number).entries()) {
    console.log(`@@start ${g + 1}`);
    const r = generate(model, prompt, { maxNewTokens: n, stopIds: [] });
    console.log(`@@end ${g + 1} ${r.stats.decodeTokensPerSecond.toFixed(1)}`);
  }
  await shutdown();
} else {
  const threads = arg('--threads', '2'), gens = arg('--gens', '250,250,250,250'), promptTokens = arg('--prompt-tokens', '5');
  const v8 = arg('--v8', '').split(' ').filter(Boolean), runs = Number(arg('--runs', '1')), top = Number(arg('--top', '0'));
  const dir = mkdtempSync(path.join(tmpdir(), 'tslm-first-run-'));
  try {
    const file = path.join(dir, 'llama15m-q8_0.gguf');
    {
      const { init, shutdown } = await import(dist('src/backend/index.js'));
      const { randomLlama15M, spmVocab, LLAMA_15M } = await import(dist('bench/llama.js'));
      const { exportGguf } = await import(dist('src/index.js'));
      await init({ threads: 1, backend: 'wasm' });
      await exportGguf(randomLlama15M(1234), file, spmVocab(LLAMA_15M.vocab_size), 'Q8_0');
      await shutdown();
    }
    console.log(`fresh processes, ${threads} thread(s), generations of ${gens} tokens after a ${promptTokens}-token prompt${v8.length ? `, V8 flags ${v8.join(' ')}` : ''}`);
    for (let run = 1; run <= runs; run++) {
      const r = spawnSync(process.execPath, [...v8, '--trace-opt', '--trace-deopt-verbose', fileURLToPath(import.meta.url), '--child', file, threads, gens, promptTokens], { encoding: 'utf8', maxBuffer: 1 << 28 });
      if (r.status !== 0) throw new Error(`child failed (${r.status}): ${r.stderr.slice(-2000)}`);
      let ms = 0, n = 0, gen = 0;
      const rows = [], deopts = [], first = new Map();
      let pending = null;
      for (const line of r.stdout.split('\n')) {
        const took = /completed compiling .*took ([\d.]+), ([\d.]+), ([\d.]+) ms/.exec(line);
        if (took) {
          const t = Number(took[1]) + Number(took[2]) + Number(took[3]);
          ms += t;
          n++;
          const fn = /<JSFunction ([^ >]+)/.exec(line)?.[1] ?? '?';
          if (gen === 1) first.set(fn, (first.get(fn) ?? 0) + t);
          continue;
        }
        const bail = /\[bailout \(kind: [^,]+, reason: ([^)]+)\).*<JSFunction (\S+)/.exec(line);
        if (bail) { pending = `${bail[2]}: ${bail[1]}`; continue; }
        const at = /;;; deoptimize at <([^>]+)>/.exec(line);
        if (at && pending) {
          if (at[1].includes('/dist/')) deopts.push(`  gen ${gen || 'load'}: ${pending} at ${at[1].replace(/.*\/dist\//, '')}`);
          pending = null;
          continue;
        }
        const start = /^@@start (\d+)/.exec(line);
        if (start) { if (gen === 0) rows.push(`  before generation 1: compiles ${ms.toFixed(0)} ms in ${n}`); gen = Number(start[1]); ms = 0; n = 0; continue; }
        const end = /^@@end (\d+) ([\d.]+)/.exec(line);
        if (end) {
          rows.push(`  generation ${end[1]}: ${end[2]} tok/s, compiles during it ${ms.toFixed(0)} ms in ${n}`);
          if (end[1] === '1' && top > 0) rows.push(`    longest: ${[...first].sort((a, b) => b[1] - a[1]).slice(0, top).map(([f, t]) => `${f} ${t.toFixed(0)} ms`).join(', ')}`);
          ms = 0;
          n = 0;
        }
      }
      console.log(`run ${run}:\n${rows.join('\n')}\n deoptimisations in the project's code:\n${deopts.join('\n') || '  none'}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
