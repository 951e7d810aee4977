// `tslm bench [matmul|ops]`: kernel throughput beside numpy.
import { closeSync, existsSync, openSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { shutdown } from '../../backend/index.js';

/** Benchmarks beyond the kernels: module under bench/ and its exported function. */
const SUITES: Record<string, { module: string; fn: string; what: string; threads: 'list' | 'one' | 'none' }> = {
  llama: { module: 'llama.js', fn: 'benchLlama', what: 'prefill and decode tokens/s of the 15M LLaMA beside llama.cpp (node-llama-cpp) on its GGUF', threads: 'list' },
  train: { module: 'train.js', fn: 'benchTrain', what: 'training tokens/s and peak RSS of the 260K and 15M configs beside PyTorch', threads: 'one' },
  classic: { module: 'classic.js', fn: 'benchClassic', what: 'n-gram build time and word2vec words/s beside gensim', threads: 'none' },
  features: { module: 'features.js', fn: 'benchFeatures', what: 'n-gram feature vectorising (docs/s, MB/s) beside scikit-learn with an identical-matrix check, and naive Bayes / logistic regression accuracy beside sklearn on the same features', threads: 'none' },
  match: { module: 'match.js', fn: 'benchMatch', what: 'q-gram fuzzy matching over 1M candidates (Brown snippets with edits): index build time and memory, top-10 queries/s by metric and with thresholds, beside a brute-force scan and scikit-learn + scipy sparse Jaccard (TSLM_BENCH_MATCH_N sets the count)', threads: 'none' },
  sft: { module: 'sft.js', fn: 'benchSft', what: 'LoRA SFT on a quickstart model: held-out exact match before/after, memory vs full fine-tuning', threads: 'none' },
  serve: { module: 'serve.js', fn: 'benchServe', what: 'tslm serve under 1, 4 and 8 concurrent streaming clients: latency p50/p99, time to first token, tokens/s', threads: 'one' },
  structured: { module: 'structured.js', fn: 'benchStructured', what: 'schema compile time and per-token mask time (32K and 128K vocabularies)', threads: 'none' },
  ssm: { module: 'ssm.js', fn: 'benchSsm', what: 'state-space models: selective scan and Mamba training beside PyTorch, LLaMA vs Mamba vs S4D of equal size trained on the quickstart corpus (validation perplexity, tokens/s, peak memory), decode speed and decoding-state bytes at 256 and 4,096 tokens of context (LLaMA, the same with a sliding window of 256 — a rolling KV cache —, Mamba)', threads: 'one' },
  moe: { module: 'moe.js', fn: 'benchMoe', what: 'a mixture of experts (8 experts, top-2) beside dense models of its active and of its total size on the quickstart corpus (validation perplexity, tokens/s, memory), its decode speed, and its training beside PyTorch', threads: 'one' },
  speculative: { module: 'speculative.js', fn: 'benchSpeculative', what: 'speculative decoding on a stories15M-shape model trained on the quickstart corpus (trained once, cached under bench/.cache): plain vs Medusa heads vs a quickstart-size draft model vs prompt lookup vs Medusa with lookup copies, greedy (identical output) and sampled, 1 and 2 threads: decode speedup, mean accepted length', threads: 'list' },
  rl: { module: 'rl.js', fn: 'benchRl', what: 'rollout throughput for RL (G = 8 samples of 8 prompts with log-probabilities, continuous batching) beside plain batched generation of the same 64 sequences, rl demo and stories15M shapes', threads: 'one' },
  vision: { module: 'vision.js', fn: 'benchVision', what: 'image ops: conv2d and conv_transpose2d forward and forward + backward GFLOP/s on an MNIST tokenizer\'s shapes, beside PyTorch', threads: 'one' },
  quant: { module: 'quant.js', fn: 'benchQuant', what: 'GGUF Q8_0, Q4_0, Q4_K, Q6_K weights kept quantised (F16, BF16 kept 16-bit) vs dequantised to f32 (--dtype f32) in `tslm generate`, beside llama.cpp on the same file: prefill and decode tokens/s and peak RSS, 15M and 110M shapes, 1 and 2 threads, each run a fresh process; perplexity of each dtype vs f32 (TSLM_BENCH_QUANT_MODELS, TSLM_BENCH_QUANT_DTYPES choose)', threads: 'list' },
  browser: { module: 'browser_train.js', fn: 'benchBrowser', what: 'training tokens/s of the quickstart LLaMA in the playground\'s Train tab (headless Chromium, Web Workers) beside the same TrainSession in Node, same threads, one run', threads: 'one' },
  runtime: { module: 'runtime.js', fn: 'benchRuntime', what: 'model load time, per-draw sampling cost, and 2-thread decode with one core busy, beside llama.cpp', threads: 'none' },
};

export const usage = `tslm bench [matmul|ops|${Object.keys(SUITES).join('|')}|all] [--json] [--threads N[,N]] [--seconds S]
tslm bench fuzz [--per-format N (200)] [--seed S] [--format NAME]… [--keep DIR] [--timeout S (30)] [--jobs J (2)]
    Mutants of every format tslm reads, run as \`tslm generate/ngram/word2vec/train/finetune/dpo/schema\`
    in child processes, and hostile requests to \`tslm serve\` (src/fuzz/): issue #21's table, each
    failure with a reproducer (the mutant kept under --keep). Exit code 1 on any failure.
tslm bench structured --fuzz N [--seed S]
    The structured-generation engine against ajv on N random schemas (src/structured/fuzz.ts) and
    constrained sampling on N/10 of them; exit code 1 on any unsound acceptance, invalid sample or crash.
tslm bench structured --corpus <dir> [--every K] [--limit N] [--filter TEXT] [--slowest N] [--generating] [--record FILE]
    The engine on a folder of real-world schemas (MaskBench's {"schema", "tests"} files, or bare
    schemas): how many compile, are refused (and why) or crash; valid instances accepted and
    invalid ones accepted, by the files' own "valid" flags and as judged by ajv + ajv-formats in
    the schema's draft (with the flags ajv disputes); token-weighted mean mask, per-schema p99,
    compile mean and max, with cold caches per schema (LLaMA-2 32K vocabulary, one thread).
    --slowest N also lists the N slowest compiles and the N worst per-schema p99s; --record FILE
    writes one JSON line per schema (file, status, compile ms, mask count, p99 µs, acceptance
    counts, trie nodes walked, parser states built and stacks expanded building them: work
    that load does not change, and p99Work, the work of the mask at the p99 rank by work), to compare two runs schema by schema.
    The summary also gives the per-schema p99 of that work (trie nodes walked + 20 × parser
    states built; a full walk of the 32K trie is over 20,000). Schemas are
    compiled as \`tslm schema check\` reads them (members in any order); --generating compiles them
    as generation does (additionalProperties 'declared': schema order, declared keys only), for
    the masks a server computes (its acceptance counts then leave out valid undeclared keys).
    Exit code 1 on a crash or an acceptance ajv judges invalid.
    Without a name: matmul GFLOP/s and elementwise throughput / per-op overhead of the wasm
    backend on 1 and all threads, beside numpy when python3 has it. 'all' runs every suite
    (${Object.entries(SUITES).map(([k, v]) => `${k}: ${v.what}`).join('; ')}).
    With --json, prints one JSON array of rows.`;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: 'boolean', default: false }, threads: { type: 'string' }, seconds: { type: 'string' }, fuzz: { type: 'string' }, seed: { type: 'string' },
      'per-format': { type: 'string' }, format: { type: 'string', multiple: true }, keep: { type: 'string' }, timeout: { type: 'string' }, jobs: { type: 'string' },
      corpus: { type: 'string' }, every: { type: 'string' }, limit: { type: 'string' }, filter: { type: 'string' }, slowest: { type: 'string' }, generating: { type: 'boolean' }, record: { type: 'string' } },
  });
  if (positionals[0] === 'fuzz') return (await import('../../fuzz/cli.js')).benchFuzz(values);
  // The benchmarks (bench/) are left out of the npm package: they compare against peers that a
  // clone of the repository installs (devDependencies, python3's numpy/torch).
  if (!existsSync(new URL('../../../bench/matmul.js', import.meta.url))) {
    console.error('tslm bench: the benchmarks are not in the npm package; run them from a clone of the tslm repository (npm ci, then npm run bench)');
    return 2;
  }
  if (values.fuzz !== undefined) {
    // `tslm bench structured --fuzz N [--seed S]`: the token engine against ajv on N random schemas.
    const n = Number(values.fuzz), seed = values.seed === undefined ? 1 : Number(values.seed);
    if ((positionals[0] ?? '') !== 'structured') { console.error('tslm bench: --fuzz goes with structured'); return 2; }
    if (!(Number.isInteger(n) && n >= 1) || !Number.isInteger(seed)) { console.error(`tslm bench: --fuzz must be a positive integer (and --seed an integer), got '${values.fuzz}'`); return 2; }
    const { fuzzStructured } = (await import('../../../bench/structured.js')) as { fuzzStructured: (o: { schemas: number; seed: number; log: (l: string) => void }) => Promise<boolean> };
    try { return (await fuzzStructured({ schemas: n, seed, log: (l) => console.log(l) })) ? 0 : 1; } finally { await shutdown(); }
  }
  if (values.corpus !== undefined) {
    if ((positionals[0] ?? '') !== 'structured') { console.error('tslm bench: --corpus goes with structured'); return 2; }
    const every = values.every === undefined ? 1 : Number(values.every), limit = values.limit === undefined ? undefined : Number(values.limit);
    const slowest = values.slowest === undefined ? 0 : Number(values.slowest);
    if (!(Number.isInteger(every) && every >= 1) || (limit !== undefined && !(Number.isInteger(limit) && limit >= 1)) || !(Number.isInteger(slowest) && slowest >= 0)) { console.error('tslm bench: --every, --limit and --slowest must be positive integers'); return 2; }
    const { corpusStructured, recordLine } = await import('../../../bench/structured_corpus.js');
    let out: number | undefined;
    if (values.record !== undefined) {
      try { out = openSync(values.record, 'w'); } catch (e) { console.error(`tslm bench: --record: cannot write '${values.record}': ${(e as Error).message}`); return 2; }
    }
    const record = out === undefined ? undefined : (r: Parameters<typeof recordLine>[0]) => writeSync(out!, recordLine(r) + '\n');
    try { return (await corpusStructured({ dir: values.corpus, every, limit, filter: values.filter, slowest, generating: values.generating, record, log: (l) => console.log(l) })) ? 0 : 1; } finally { if (out !== undefined) closeSync(out); await shutdown(); }
  }
  const which = positionals[0] ?? 'kernels';
  if (!['kernels', 'all', 'matmul', 'ops', ...Object.keys(SUITES)].includes(which)) {
    console.error(`tslm bench: unknown benchmark '${which}' (matmul, ops, ${Object.keys(SUITES).join(', ')}, all)`);
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
    const kernels = which === 'kernels' || which === 'all';
    if (kernels || which === 'matmul') {
      if (!values.json) console.log(`\nmatmul (f32), best of repeated runs\n${MATMUL_HEADER}`);
      const { rows, blas } = await benchMatmul({ threads, minSeconds, log: values.json ? undefined : (line) => console.log(line) });
      if (!values.json) console.log(blas ? `numpy peer: OpenBLAS kernel ${blas}` : 'numpy peer: not installed (python3 -c "import numpy" failed)');
      json.push(...rows.map(({ m, n, k, threads: t, gflops, peer_gflops }) => ({ m, n, k, threads: t, gflops: round(gflops), peer_gflops: peer_gflops === null ? null : round(peer_gflops) })));
    }
    if (kernels || which === 'ops') {
      if (!values.json) console.log(`\nelementwise and reductions (f32, 4M elements), per-op overhead\n${OPS_HEADER}`);
      const rows = await benchOps({ threads, minSeconds, log: values.json ? undefined : (r) => console.log(formatOpsRow(r)) });
      if (which === 'ops') json.push(...rows.map((r) => ({ ...r, tslm: round(r.tslm), numpy: r.numpy === null ? null : round(r.numpy) })));
    }
    for (const [name, suite] of Object.entries(SUITES)) {
      if (which !== name && which !== 'all') continue;
      if (!values.json) console.log(`\n${name}: ${suite.what}`);
      await shutdown();
      const mod = (await import(`../../../bench/${suite.module}`)) as Record<string, (o: { log?: (l: string) => void; threads?: number[] | number }) => Promise<unknown[]>>;
      const th = suite.threads === 'list' ? threads : suite.threads === 'one' && threads ? threads[threads.length - 1] : undefined;
      const rows = await mod[suite.fn]({ log: values.json ? undefined : (l) => console.log(l), threads: th });
      if (which === name) json.push(...rows);
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
