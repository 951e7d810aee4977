// `tslm bench speculative`: plain decoding beside Medusa heads, a draft model and prompt lookup
// on a model trained by tslm (stories15M's shape on the quickstart corpus; a quickstart-size
// draft; 4 Medusa heads trained on the base's own greedy text — all trained once and cached by
// speculative_models.ts under bench/.cache/speculative): wall-clock decode tokens/s on an
// input-grounded prompt (a passage twice, then its beginning again: the continuation can copy it)
// and on an open prompt (little to copy), greedy (outputs checked identical to plain) and sampled,
// at 1 and 2 threads; mean accepted length and acceptance rate. Medusa with prompt lookup's
// copies as candidates (medusa+lookup: `--medusa DIR --lookup`) runs beside them.
//
//   node dist/bench/speculative.js [--threads 1,2] [--reps N] [--tokens N] [--lookup-draft N] [--medusa-dtype q8_0|f32] [--tie-lm-head] [--json]
//   node dist/bench/speculative.js <model dir> [draft dir] [medusa dir]   (other models)
//   node dist/bench/speculative.js --cost-shapes 42m,110m [--threads 1,2] [--dtype q8_0] [--reps N]  (forward cost of T tokens and of the heads, random weights; best of N interleaved rounds)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { init, shutdown } from '../src/backend/index.js';
import { loadModel, saveModel } from '../src/io/model.js';
import { generate } from '../src/generate/generate.js';
import * as T from '../src/tensor/ops.js';
import { noGrad } from '../src/tensor/autograd.js';
import { scope } from '../src/tensor/storage.js';
import type { CausalLM } from '../src/models/causal.js';
import { createModel } from '../src/models/index.js';
import { PRESETS } from '../src/train/presets.js';
import { Generator } from '../src/tensor/random.js';
import type { SpeculativeOptions, SpeculativeStats } from '../src/generate/stepped.js';
import { loadMedusaHeads, quantizeMedusaHeads } from '../src/io/medusa.js';
import { MedusaHeads } from '../src/nn/medusa.js';
import { trainMedusa } from '../src/train/medusa.js';
import { CACHE, prepareModels, ready } from './speculative_models.js';
import type { GenerateOptions, GenerationResult } from '../src/generate/generate.js';

export interface ChainRow {
  threads: number;
  prompt: 'grounded' | 'open';
  mode: 'greedy' | 'sampled';
  method: 'plain' | 'medusa' | 'lookup' | 'draft' | 'medusa+lookup';
  prompt_tokens: number;
  tokens: number;
  decode_tokens_per_s: number;
  /** decode tokens/s over plain decoding's (same prompt, mode and threads). */
  speedup: number;
  mean_accepted_length: number | null;
  acceptance_rate: number | null;
  /** Greedy: the output equals plain greedy decoding's. */
  identical: boolean | null;
  /** CLI rows: wall seconds of the whole `tslm generate` process. */
  cli_wall_s?: number;
}

/** The grounded prompt is this passage twice, then its start again: the rest is there to copy. */
export const GROUNDED_TEXT = 'Mr. Johnson, the new director of the museum, told the board that the building needs a new roof.';

/**
 * The passage twice, then its first words (about 30 characters) again, ending at a word's end:
 * a prompt ending in a space leaves a lone space token that the passage never holds, so the copy's
 * tokens (" of", not "of") would not follow it.
 */
export function groundedPrompt(text: string): string {
  const cut = text.lastIndexOf(' ', 30);
  return `${text}\n${text}\n${text.slice(0, cut > 0 ? cut : 30)}`;
}

export async function benchSpeculativeModels(opts: {
  model: string; draft?: string; medusa?: string; threads?: number[]; tokens?: number; reps?: number; log?: (line: string) => void;
  grounded?: string; open?: string; lookup?: { ngram?: number; numDraft?: number }; numDraft?: number; choices?: number[][];
  /** The heads' weights in memory (default q8_0, as `tslm generate --medusa`). */
  medusaDtype?: 'f32' | 'q8_0';
}): Promise<ChainRow[]> {
  const log = opts.log ?? (() => {});
  const rows: ChainRow[] = [];
  const costs: ({ threads: number } & ReturnType<typeof verificationCost>)[] = [];
  for (const threads of opts.threads ?? [1, 2]) {
    await init({ threads, backend: 'wasm' });
    try {
      const { model, tokenizer } = await loadModel(opts.model);
      const draft = opts.draft ? (await loadModel(opts.draft)).model : null;
      const heads: MedusaHeads | null = opts.medusa ? (await loadMedusaHeads(opts.medusa, { base: model, dtype: opts.medusaDtype ?? 'q8_0' })).heads : null;
      model.eval();
      draft?.eval();
      if (!tokenizer) throw new Error(`bench speculative: no tokenizer in ${opts.model}`);
      const text = opts.grounded ?? GROUNDED_TEXT;
      const grounded = tokenizer.encode(groundedPrompt(text));
      const open = tokenizer.encode(opts.open ?? 'Once upon a time');
      const ctx = model.contextLength;
      costs.push({ threads, ...verificationCost(model, heads) });
      for (const [name, prompt] of [['grounded', grounded], ['open', open]] as const) {
        const tokens = Math.min(opts.tokens ?? 64, ctx - prompt.length);
        for (const mode of ['greedy', 'sampled'] as const) {
          const base: GenerateOptions = { maxNewTokens: tokens, stopIds: [], ...(mode === 'sampled' ? { temperature: 0.7, topP: 0.9, seed: 1 } : {}) };
          const methods: [ChainRow['method'], SpeculativeOptions | null][] = [['plain', null]];
          if (heads) methods.push(['medusa', { medusa: { heads, choices: opts.choices } }]);
          if (draft) methods.push(['draft', { draft, numDraft: opts.numDraft }]);
          methods.push(['lookup', { lookup: opts.lookup ?? {} }]);
          // Medusa with prompt lookup's copies as candidates (`--medusa DIR --lookup`).
          if (heads) methods.push(['medusa+lookup', { medusa: { heads, choices: opts.choices, lookup: { ...opts.lookup } } }]);
          let plainRate = 0, plainIds: number[] = [];
          // The methods' runs interleaved (a warm-up round, then reps rounds), the fastest of each kept.
          const runs = methods.map(([, spec]) => (): GenerationResult => generate(model, prompt, spec ? { ...base, speculative: spec } : base));
          const fastest = bestInterleaved(runs, opts.reps ?? 8);
          for (const [i, [method]] of methods.entries()) {
            const r = fastest[i];
            const rate = r.stats.decodeTokens / (r.stats.decodeMs / 1000);
            if (method === 'plain') { plainRate = rate; plainIds = r.ids[0]; }
            const s = (r.stats as { speculative?: SpeculativeStats }).speculative;
            const row: ChainRow = {
              threads, prompt: name, mode, method, prompt_tokens: prompt.length, tokens: r.ids[0].length,
              decode_tokens_per_s: round(rate), speedup: round(rate / plainRate),
              mean_accepted_length: s ? round(s.meanAcceptedLength) : null, acceptance_rate: s ? round(s.acceptanceRate) : null,
              identical: mode === 'greedy' ? JSON.stringify(r.ids[0]) === JSON.stringify(plainIds) : null,
            };
            rows.push(row);
            log(`${String(threads).padStart(7)}  ${name.padEnd(8)} ${mode.padEnd(7)} ${method.padEnd(13)} ${String(row.tokens).padStart(6)} ${row.decode_tokens_per_s.toFixed(1).padStart(9)} ${`${row.speedup.toFixed(2)}×`.padStart(8)}` +
              (s ? ` ${row.mean_accepted_length!.toFixed(2).padStart(9)} ${row.acceptance_rate!.toFixed(2).padStart(11)}` : `${'-'.padStart(10)}${'-'.padStart(12)}`) + (row.identical === false ? '  OUTPUT DIFFERS' : row.identical ? '  identical' : ''));
          }
        }
      }
      model.dispose();
      draft?.dispose();
      heads?.dispose();
    } finally {
      await shutdown();
    }
  }
  log(`\nwhat a step costs (ms, best of 30 interleaved rounds after 60 positions of context; × one decoding step): T tokens verified in one forward (a chain), the Medusa heads on one position`);
  for (const c of costs) {
    log(`${c.threads} thread(s): ${c.rows.map((r) => `T=${r.tokens} ${r.ms.toFixed(2)} (${(r.ms / c.rows[0].ms).toFixed(2)}×)`).join('  ')}${c.headsMs !== null ? `  heads ${c.headsMs.toFixed(2)} (${(c.headsMs / c.rows[0].ms).toFixed(2)}×)` : ''}`);
  }
  return rows;
}

/**
 * The forward of T = 1, 2, 4, 5, 8 tokens (logits of every one) after 60 positions, and the
 * heads on one hidden state: the cost side of speculative decoding.
 */
function verificationCost(model: CausalLM, heads: MedusaHeads | null, rounds = 30, others: MedusaHeads[] = []): { rows: { tokens: number; ms: number }[]; headsMs: number | null; othersMs: number[] } {
  const st = model.newState(1, 128);
  // Every measurement takes its turn in each round (best of `rounds` each): on a shared machine
  // the load changes during a run, and ratios between rows measured minutes apart would carry it.
  const jobs: (() => void)[] = [1, 2, 4, 5, 8].map((n) => () => { model.forward(T.tensor([Array.from({ length: n }, (_, i) => 5 + i)], [1, n], 'i32'), st).data(); });
  if (heads) {
    // All K heads on one position as decoding runs them (forwardMany: tied heads in one product with the base head).
    for (const hs of [heads, ...others]) {
      const ks = hs.heads.map((_, k) => k);
      jobs.push(() => { const x = model.hidden(T.tensor([[5]], [1, 1], 'i32'), st); hs.forwardMany(x, ks).data(); });
    }
    jobs.push(() => { model.hidden(T.tensor([[5]], [1, 1], 'i32'), st).data(); });
  }
  const best = jobs.map(() => Infinity);
  try {
    noGrad(() => scope(() => { model.forward(T.tensor([Array.from({ length: 60 }, (_, i) => 3 + i)], [1, 60], 'i32'), st); }));
    for (let r = 0; r < rounds; r++) {
      jobs.forEach((f, j) => {
        const t0 = performance.now();
        noGrad(() => scope(f));
        best[j] = Math.min(best[j], performance.now() - t0);
        st.truncate(60);
      });
    }
    const rows = [1, 2, 4, 5, 8].map((n, i) => ({ tokens: n, ms: best[i] }));
    const hidden = best[best.length - 1];
    return { rows, headsMs: heads ? best[5] - hidden : null, othersMs: heads ? others.map((_, i) => best[6 + i] - hidden) : [] };
  } finally {
    st.dispose();
  }
}


/** Per run function, its result with the shortest decode time over reps interleaved rounds (after a warm-up round). */
function bestInterleaved(runs: (() => GenerationResult)[], reps: number): GenerationResult[] {
  for (const run of runs) run();
  const out: (GenerationResult | null)[] = runs.map(() => null);
  for (let i = 0; i < reps; i++) {
    runs.forEach((run, j) => {
      const r = run();
      if (!out[j] || r.stats.decodeMs < out[j]!.stats.decodeMs) out[j] = r;
    });
  }
  return out as GenerationResult[];
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

/**
 * The bench's Medusa heads: Medusa-1 steps (16 rows of 128 tokens) on the base's greedy
 * continuations of MEDUSA_PROMPTS prompts. Heads cached with other settings are trained again.
 */
export const MEDUSA_STEPS = 250;
export const MEDUSA_PROMPTS = 1024;

export const HEADER = `${'threads'.padStart(7)}  ${'prompt'.padEnd(8)} ${'mode'.padEnd(7)} ${'method'.padEnd(13)} ${'tokens'.padStart(6)} ${'tok/s'.padStart(9)} ${'speedup'.padStart(8)} ${'accepted'.padStart(9)} ${'acceptance'.padStart(11)}`;

/**
 * The benchmark on the cached models (trained on first use: see speculative_models.ts), with
 * Medusa heads trained on the base (cached too).
 */
export async function benchSpeculative(opts: { threads?: number[] | number; reps?: number; tokens?: number; lookup?: { numDraft?: number }; medusaDtype?: 'f32' | 'q8_0'; tieLmHead?: boolean; log?: (line: string) => void } = {}): Promise<ChainRow[]> {
  const log = opts.log ?? (() => {});
  const threads = typeof opts.threads === 'number' ? [opts.threads] : opts.threads ?? [1, 2];
  await init({ threads: Math.max(...threads) });
  let models;
  // --tie-lm-head: heads whose LM head is the base's (trained with tieLmHead), cached apart.
  const medusa = path.join(CACHE, opts.tieLmHead ? 'medusa-tied' : 'medusa');
  try {
    models = await prepareModels({ log });
    const settings = { steps: MEDUSA_STEPS, prompts: MEDUSA_PROMPTS };
    if (!ready(medusa, settings)) {
      log(`training Medusa heads on the base (4 heads × 1 layer, Medusa-1${opts.tieLmHead ? ', LM heads tied to the base head' : ''}, ${MEDUSA_STEPS} steps on its own greedy continuations of ${MEDUSA_PROMPTS} prompts) → ${medusa}`);
      const t0 = performance.now();
      const r = await trainMedusa({ model: models.base, out: medusa, heads: 4, layers: 1, steps: MEDUSA_STEPS, prompts: MEDUSA_PROMPTS, tieLmHead: opts.tieLmHead, log });
      const seconds = Math.round((performance.now() - t0) / 1000);
      log(`Medusa heads trained in ${seconds} s`);
      writeFileSync(path.join(medusa, 'done.json'), JSON.stringify({ ...settings, seconds, accuracy: r.after }) + '\n');
      r.base.dispose();
      r.heads.dispose();
    }
  } finally {
    await shutdown();
  }
  log(`\nbase ${models.base} (stories15M shape), draft ${models.draft} (quickstart), Medusa heads ${medusa}; best of ${opts.reps ?? 8} interleaved runs after a warm-up; speedup: decode tokens/s over plain decoding's; accepted: tokens per target call`);
  log(HEADER);
  const rows = await benchSpeculativeModels({ model: models.base, draft: models.draft, medusa, threads, reps: opts.reps, tokens: opts.tokens ?? 96, lookup: opts.lookup, medusaDtype: opts.medusaDtype, log });
  rows.push(...cliRuns(models.base, medusa, Math.max(...threads), opts.tokens ?? 96, log));
  return rows;
}

/**
 * `tslm generate` as a user runs it, each run a fresh process (load and first-run costs
 * included): plain, --medusa and --lookup on the open prompt, greedy; rounds interleaved, the
 * median of 5 kept. Wall seconds per process, and the decode tokens/s the CLI reports.
 */
function cliRuns(base: string, medusa: string, threads: number, tokens: number, log: (l: string) => void): ChainRow[] {
  const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'tslm.js');
  const methods: [ChainRow['method'], string[]][] = [['plain', []], ['medusa', ['--medusa', medusa]], ['lookup', ['--lookup']], ['medusa+lookup', ['--medusa', medusa, '--lookup']]];
  const runs: { wall: number; rate: number; ids: string }[][] = methods.map(() => []);
  for (let round = 0; round < 5; round++) {
    methods.forEach(([, flags], i) => {
      const t0 = performance.now();
      const r = spawnSync(process.execPath, [bin, 'generate', '--model', base, '--prompt', 'Once upon a time', '--max-tokens', String(tokens), '--threads', String(threads), '--print-ids', ...flags], { encoding: 'utf8' });
      const wall = (performance.now() - t0) / 1000;
      if (r.status !== 0) throw new Error(`tslm generate ${flags.join(' ')} failed: ${r.stderr}`);
      const rate = Number(/decode: \d+ tokens, ([\d.]+) tok\/s/.exec(r.stderr)?.[1]);
      runs[i].push({ wall, rate, ids: r.stdout.trim().split('\n').pop()! });
    });
  }
  const median = (x: number[]) => [...x].sort((a, b) => a - b)[Math.floor(x.length / 2)];
  const plainRate = median(runs[0].map((r) => r.rate)), plainWall = median(runs[0].map((r) => r.wall));
  log(`\ntslm generate in fresh processes (open prompt, greedy, ${tokens} tokens, ${threads} threads; median of 5 interleaved rounds): wall s per process, decode tok/s as the CLI reports it`);
  return methods.map(([method], i) => {
    const rate = median(runs[i].map((r) => r.rate)), wall = median(runs[i].map((r) => r.wall));
    const identical = runs[i].every((r) => r.ids === runs[0][0].ids);
    log(`  ${method.padEnd(13)} ${wall.toFixed(2)} s (${(plainWall / wall).toFixed(2)}× plain's)  decode ${rate.toFixed(1)} tok/s (${(rate / plainRate).toFixed(2)}×)${identical ? '  identical' : '  OUTPUT DIFFERS'}`);
    return {
      threads, prompt: 'open', mode: 'greedy', method, prompt_tokens: -1, tokens, decode_tokens_per_s: round(rate),
      speedup: round(rate / plainRate), mean_accepted_length: null, acceptance_rate: null, identical, cli_wall_s: round(wall),
    } as ChainRow;
  });
}

/**
 * verificationCost on random-weight models of preset shapes (the quickstart vocabulary) with 4
 * one-layer Medusa heads made from the base: the cost side at other sizes. dtype 'q8_0': the
 * model quantised as `--dtype q8_0` loads it (saved, then loaded back), and the heads too.
 */
export async function verificationCostAtShapes(shapes: string[], threads: number[], log: (l: string) => void, dtype: 'f32' | 'q8_0' = 'f32', rounds = 30): Promise<void> {
  for (const th of threads) {
    await init({ threads: th });
    try {
      for (const shape of shapes) {
        let m = createModel({ ...PRESETS[shape], vocab_size: 2048 }, shape, { generator: new Generator(1) });
        if (dtype === 'q8_0') {
          const dir = mkdtempSync(path.join(tmpdir(), 'tslm-cost-'));
          try {
            await saveModel(m, dir);
            m.dispose();
            m = (await loadModel(dir, { dtype: 'q8_0' })).model;
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }
        }
        m.eval();
        const heads = MedusaHeads.fromBase(m, { heads: 4, layers: 1 });
        // The heads in f32 (an f32 model only), then quantised as decoding loads them.
        const f32Heads = dtype === 'f32' ? verificationCost(m, heads, rounds).headsMs! : null;
        quantizeMedusaHeads(heads);
        // Beside them, heads tied to the base's output head (ResBlocks q8_0; the LM products: one K-row product with the base head).
        const tied = MedusaHeads.fromBase(m, { heads: 4, layers: 1 }).tie(m);
        quantizeMedusaHeads(tied);
        const c = verificationCost(m, heads, rounds, [tied]);
        const tiedMs = c.othersMs[0];
        const ratio = (ms: number) => `${ms.toFixed(2)} ms (${(ms / c.rows[0].ms).toFixed(2)}×)`;
        log(`${shape} (random weights, ${dtype}), ${th} thread(s): ${c.rows.map((r) => `T=${r.tokens} ${ratio(r.ms)}`).join('  ')}  heads q8_0 ${ratio(c.headsMs!)}${f32Heads !== null ? `, f32 ${ratio(f32Heads)}` : ''}, tied ${ratio(tiedMs)}`);
        heads.dispose();
        tied.dispose();
        m.dispose();
      }
    } finally {
      await shutdown();
    }
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { threads: { type: 'string' }, reps: { type: 'string' }, tokens: { type: 'string' }, json: { type: 'boolean', default: false }, 'cost-shapes': { type: 'string' }, dtype: { type: 'string' }, 'medusa-dtype': { type: 'string' }, 'lookup-draft': { type: 'string' }, 'tie-lm-head': { type: 'boolean', default: false } } });
  const threads = values.threads?.split(',').map(Number);
  if (values['cost-shapes']) {
    const dtype = values.dtype ?? 'f32';
    if (dtype !== 'f32' && dtype !== 'q8_0') throw new Error(`--dtype: expected f32 or q8_0, got ${dtype}`);
    await verificationCostAtShapes(values['cost-shapes'].split(','), threads ?? [1, 2], (l) => console.log(l), dtype, values.reps ? Number(values.reps) : 30);
    process.exit(0);
  }
  const common = {
    threads, reps: values.reps ? Number(values.reps) : undefined, tokens: values.tokens ? Number(values.tokens) : undefined, log: values.json ? undefined : (l: string) => console.log(l),
    lookup: values['lookup-draft'] ? { numDraft: Number(values['lookup-draft']) } : undefined,
    medusaDtype: values['medusa-dtype'] === 'f32' ? 'f32' as const : 'q8_0' as const,
  };
  const tieLmHead = values['tie-lm-head'];
  const rows = positionals.length
    ? (console.log(HEADER), await benchSpeculativeModels({ model: positionals[0], draft: positionals[1], medusa: positionals[2], ...common }))
    : await benchSpeculative({ ...common, tieLmHead });
  if (values.json) console.log(JSON.stringify(rows));
}
