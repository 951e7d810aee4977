// What the model-family benchmarks share (bench ssm, bench moe): each measurement in a child
// process of its own (so its peak RSS is one model's), one JSON line back:
//   train    training steps (forward + backward + clip + AdamW) on random tokens: tokens/s
//   compare  a whole run of runTraining on a prepared corpus and tokenizer: validation
//            perplexity, tokens/s, memory
//   decode   greedy decoding tokens/s after contexts of given lengths (the decode path warmed)
// and the quickstart corpus with one tokenizer for every model compared.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { init, shutdown, heapStats } from '../src/backend/index.js';
import { tensor } from '../src/tensor/ops.js';
import { scope } from '../src/tensor/storage.js';
import { noGrad } from '../src/tensor/autograd.js';
import { Generator } from '../src/tensor/random.js';
import { createModel } from '../src/models/index.js';
import { DEFAULT_TRAIN_OPTIONS, createOptimizer } from '../src/train/trainer.js';
import { clipGradNorm } from '../src/train/optim.js';
import { PRESETS } from '../src/train/presets.js';
import { runTraining } from '../src/train/run.js';
import { brownText } from '../src/train/quickstart.js';
import { trainByteLevelBPE } from '../src/tokenizers/trainer.js';
import { generate } from '../src/generate/generate.js';

export const PYTHON = '/usr/bin/python3';
const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(here, '..', '..');
export const WARMUP = 2;

export type ChildSpec =
  | { kind: 'train'; preset: string; batch: number; seq: number; steps: number; threads: number }
  | { kind: 'compare'; preset: string; data: string; tokenizer: string; out: string; steps: number; threads: number }
  | { kind: 'decode'; config: Record<string, unknown>; contexts: number[]; tokens: number; threads: number; reps?: number };

function cpuNow(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** A child process: one measurement, one JSON line on stdout. */
async function child(spec: ChildSpec): Promise<void> {
  await init({ threads: spec.threads, backend: 'wasm' });
  let out: Record<string, unknown>;
  if (spec.kind === 'train') out = trainSteps(spec);
  else if (spec.kind === 'compare') out = await trainOnCorpus(spec);
  else out = decodeAtContexts(spec);
  await shutdown();
  process.stdout.write(JSON.stringify({ ...out, peak_rss_mib: process.resourceUsage().maxRSS / 1024 }) + '\n');
}

/** Training steps on random tokens, as bench/train.ts times LLaMA. */
function trainSteps(spec: Extract<ChildSpec, { kind: 'train' }>): Record<string, unknown> {
  const { batch: B, seq: L } = spec;
  const model = createModel({ ...PRESETS[spec.preset] }, spec.preset, { generator: new Generator(0) });
  const opt = createOptimizer(model, { ...DEFAULT_TRAIN_OPTIONS, batchSize: B, seqLen: L });
  const g = new Generator(1), V = model.config.vocab_size;
  const ms: number[] = [], losses: number[] = [];
  let cpu0 = 0;
  for (let s = 0; s < spec.steps; s++) {
    if (s === WARMUP) cpu0 = cpuNow();
    const ids = new Int32Array(B * (L + 1));
    for (let i = 0; i < ids.length; i++) ids[i] = g.int(V);
    const t0 = performance.now();
    losses.push(scope(() => {
      const loss = model.loss(tensor(ids, [B, L + 1], 'i32'));
      loss.backward();
      return loss.item();
    }));
    clipGradNorm(opt.params, 1.0);
    opt.step();
    opt.zeroGrad();
    ms.push(performance.now() - t0);
  }
  const timed = ms.slice(WARMUP);
  const res = {
    tokens_per_s: (B * L * timed.length) / (timed.reduce((a, b) => a + b, 0) / 1000),
    tokens_per_cpu_s: (B * L * timed.length) / ((cpuNow() - cpu0) / 1e6),
    ms_per_step: ms.map((x) => Math.round(x)), loss_first: losses[0], loss_last: losses[losses.length - 1],
    params: model.numParameters(), heap_peak_mib: heapStats().peak / 2 ** 20,
  };
  model.dispose();
  return res;
}

/** One model trained on the prepared corpus with the shared tokenizer (runTraining, as tslm train does). */
async function trainOnCorpus(spec: Extract<ChildSpec, { kind: 'compare' }>): Promise<Record<string, unknown>> {
  const r = await runTraining({
    data: spec.data, out: spec.out, config: spec.preset, tokenizer: spec.tokenizer, steps: spec.steps, batchSize: 16, seqLen: 128,
    lr: 2e-3, warmupSteps: Math.min(50, Math.ceil(spec.steps / 10)), minLrRatio: 0.1, weightDecay: 0.1, evalEvery: spec.steps, evalBatches: 40,
    seed: 1337, valFraction: 0.05, log: () => {}, progress: () => {},
  });
  const res = {
    model_type: r.model.config.model_type, params: r.model.numParameters(), active_params: r.model.numActiveParameters(), val_loss: r.valLoss, val_ppl: Math.exp(r.valLoss ?? NaN),
    tokens: r.state.tokens, seconds: r.state.elapsedSeconds, tokens_per_s: r.state.tokens / r.state.elapsedSeconds,
    heap_peak_mib: heapStats().peak / 2 ** 20,
  };
  r.model.dispose();
  r.tokens.close();
  return res;
}

/** Greedy decoding speed after contexts of each length (prefill untimed). */
function decodeAtContexts(spec: Extract<ChildSpec, { kind: 'decode' }>): Record<string, unknown> {
  const model = createModel(spec.config, 'bench', { generator: new Generator(3) });
  model.eval();
  const g = new Generator(5), V = model.config.vocab_size;
  const rows: { context: number; decode_tok_s: number; prefill_tok_s: number; state_kib: number }[] = [];
  // Steady state: V8 keeps optimising the decode path over the first ~1,000 tokens (more code on a MoE path).
  const warm = Array.from({ length: 64 }, () => g.int(V));
  for (let i = 0; i < 8; i++) noGrad(() => generate(model, warm, { maxNewTokens: 128, stopIds: [] }));
  for (const ctx of spec.contexts) {
    const prompt = Array.from({ length: ctx }, () => g.int(V));
    let best = 0, prefill = 0;
    for (let rep = 0; rep < (spec.reps ?? 5); rep++) {
      const r = noGrad(() => generate(model, prompt, { maxNewTokens: spec.tokens, stopIds: [] }));
      best = Math.max(best, r.stats.decodeTokensPerSecond);
      prefill = Math.max(prefill, r.stats.prefillTokensPerSecond);
    }
    // The decoding state generate() allocates for this run (heap bytes of a fresh one, batch 1).
    const used = heapStats().inUse, st = model.newState(1, ctx + spec.tokens), stateBytes = heapStats().inUse - used;
    st.dispose();
    rows.push({ context: ctx, decode_tok_s: best, prefill_tok_s: prefill, state_kib: stateBytes / 1024 });
  }
  const res = { model_type: model.config.model_type, params: model.numParameters(), rows, heap_peak_mib: heapStats().peak / 2 ** 20 };
  model.dispose();
  return res;
}

export function runChild(spec: ChildSpec): Record<string, any> {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', JSON.stringify(spec)], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`bench child (${spec.kind}) failed with exit ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

export function torchAvailable(): boolean {
  return spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
}

/** Run a PyTorch peer script (bench/peers/NAME) with `threads` threads; its last stdout line is JSON. */
export function runPython(script: string, args: string[], threads: number): Record<string, any> {
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  const r = spawnSync(PYTHON, [path.join(root, 'bench', 'peers', script), ...args, '--threads', String(threads)], { encoding: 'utf8', env, maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`PyTorch peer ${script} failed with exit ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

/** The quickstart corpus and one tokenizer for every model of the comparison. */
export function prepareCorpus(dir: string): { data: string; tokenizer: string } {
  const data = path.join(dir, 'data');
  mkdirSync(data, { recursive: true });
  const brown = brownText();
  writeFileSync(path.join(data, 'brown.jsonl'), brown.map((d) => JSON.stringify({ text: d.text })).join('\n') + '\n');
  const zh = path.join(root, 'data', 'quickstart', 'zh-classics.txt');
  if (!existsSync(zh)) throw new Error(`${zh}: the embedded Chinese corpus is missing`);
  copyFileSync(zh, path.join(data, 'zh-classics.txt'));
  const texts = [...brown.map((d) => d.text), readFileSync(zh, 'utf8')];
  const tok = trainByteLevelBPE(texts, { vocabSize: Number(PRESETS.quickstart.vocab_size), specialTokens: ['<|endoftext|>'] });
  const tokenizer = path.join(dir, 'tokenizer.json');
  tok.save(tokenizer);
  return { data, tokenizer };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url) && process.argv[2] === '--child') {
  child(JSON.parse(process.argv[3]) as ChildSpec).catch((e) => { console.error(e instanceof Error ? e.stack : e); process.exit(1); });
}
