// Instruction tuning proof on a quickstart model: LoRA SFT on a small synthetic instruction task
// (repeat / first word / last word / count the words, in Alpaca's prompt format), with greedy
// exact match and response-token loss on held-out examples before and after, and the memory of
// LoRA training beside full fine-tuning.
//
// The base is a `tslm quickstart` checkpoint: --model DIR, else $TSLM_SFT_BASE, else
// ./tslm-quickstart/checkpoint; when none exists a short quickstart (--quickstart-steps, default
// 600) is trained into a temporary directory first.
// Memory: each mode (LoRA, full) runs a few identical training steps in its own process
// (this file with --child) so that the wasm heap's peak and the process's peak RSS belong to
// that mode alone; trainable parameters and AdamW state are counted exactly.
//
//   node dist/bench/sft.js [--model DIR] [--steps N] [--json]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { init, shutdown, heapStats } from '../src/backend/index.js';
import { Generator } from '../src/tensor/random.js';
import { tensor } from '../src/tensor/ops.js';
import { scope } from '../src/tensor/storage.js';
import { loadModel } from '../src/io/model.js';
import { quickstart } from '../src/train/quickstart.js';
import { AdamW } from '../src/train/optim.js';
import { paramGroups } from '../src/train/trainer.js';
import { applyLora, trainableSummary, LLAMA_LORA_TARGETS } from '../src/lora/model.js';
import { SftBatcher, tokenizeRow } from '../src/sft/data.js';
import type { AlpacaRow } from '../src/sft/data.js';
import { exactMatch, responseLoss, sftTrain } from '../src/sft/train.js';
import type { Tokenizer } from '../src/tokenizers/tokenizer.js';

export interface Row { metric: string; lora: number | string; full: number | string | null; unit: string }

const WORDS = ['man', 'time', 'house', 'water', 'city', 'school', 'money', 'world', 'church', 'road', 'war', 'door', 'book', 'night', 'family', 'river', 'army', 'music', 'hand', 'child',
  'woman', 'horse', 'table', 'paper', 'dog', 'street', 'heart', 'mother', 'father', 'friend', 'garden', 'power', 'letter', 'island', 'doctor', 'market', 'summer', 'winter', 'wall', 'ship',
  'king', 'girl', 'boy', 'fire', 'land', 'field', 'car', 'bed', 'hill', 'sea'];

/** The synthetic task: rows from words, the instruction telling which word operation to do. */
export function syntheticRows(n: number, seed: number): AlpacaRow[] {
  const g = new Generator(seed);
  const pick = () => WORDS[g.int(WORDS.length)];
  const rows: AlpacaRow[] = [];
  for (let i = 0; i < n; i++) {
    const ws = Array.from({ length: 3 + g.int(2) }, pick);
    switch (g.int(4)) {
      case 0: rows.push({ instruction: 'Repeat the word.', input: ws[0], output: ws[0] }); break;
      case 1: rows.push({ instruction: 'What is the first word?', input: ws.join(' '), output: ws[0] }); break;
      case 2: rows.push({ instruction: 'What is the last word?', input: ws.join(' '), output: ws[ws.length - 1] }); break;
      default: rows.push({ instruction: 'How many words are there?', input: ws.join(' '), output: String(ws.length) });
    }
  }
  return rows;
}

interface ChildSpec { model: string; mode: 'lora' | 'full'; steps: number; batch: number; r: number; seed: number }
interface ChildResult { trainable: number; total: number; optimizerBytes: number; gradBytes: number; heapPeakMiB: number; heapModelMiB: number; maxRssMiB: number; msPerStep: number }

const LORA = { r: 8, lora_alpha: 16, lora_dropout: 0.05, target_modules: [...LLAMA_LORA_TARGETS] };

/** A few identical training steps of one mode; the peaks belong to this process alone. */
async function child(spec: ChildSpec): Promise<void> {
  await init();
  const { model, tokenizer } = await loadModel(spec.model);
  const tok = tokenizer!;
  const examples = syntheticRows(64, spec.seed).map((r) => tokenizeRow(r, tok));
  if (spec.mode === 'lora') applyLora(model, { ...LORA, r: spec.r });
  const heapModel = heapStats().inUse;
  const opt = new AdamW(paramGroups(model, 0), { lr: 1e-4 });
  const batcher = new SftBatcher(examples, spec.batch, tok.eosId ?? 0, spec.seed);
  model.train(true);
  let gradBytes = 0;
  const t0 = performance.now();
  for (let s = 0; s < spec.steps; s++) {
    const b = batcher.next();
    scope(() => model.loss(tensor(b.ids, [b.batch, b.length], 'i32'), tensor(b.targets, [b.batch, b.length], 'i32')).backward());
    gradBytes = opt.params.reduce((n, p) => n + (p.grad ? p.grad.size * 4 : 0), 0);
    opt.step();
    opt.zeroGrad();
  }
  const ms = (performance.now() - t0) / spec.steps;
  const { trainable, total } = trainableSummary(model);
  const optimizerBytes = Object.values(opt.stateDict().tensors).reduce((n, t) => n + t.size * 4, 0);
  const res: ChildResult = {
    trainable, total, optimizerBytes, gradBytes, heapPeakMiB: heapStats().peak / 2 ** 20, heapModelMiB: heapModel / 2 ** 20,
    maxRssMiB: process.resourceUsage().maxRSS / 1024, msPerStep: ms,
  };
  process.stdout.write(JSON.stringify(res) + '\n');
  await shutdown();
}

function runChild(spec: ChildSpec): ChildResult {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', JSON.stringify(spec)], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`sft memory child (${spec.mode}) failed with exit ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildResult;
}

async function baseModelDir(opts: { model?: string; quickstartSteps?: number; log: (l: string) => void }): Promise<string> {
  for (const d of [opts.model, process.env.TSLM_SFT_BASE, path.join('tslm-quickstart', 'checkpoint')]) {
    if (d && existsSync(path.join(d, 'config.json'))) return d;
  }
  const out = mkdtempSync(path.join(tmpdir(), 'tslm-sft-quickstart-'));
  opts.log(`no quickstart model found: training one (${opts.quickstartSteps ?? 600} steps) in ${out} …`);
  const r = await quickstart({ out, steps: opts.quickstartSteps ?? 600 });
  r.model.dispose();
  r.tokens.close();
  return r.checkpoint;
}

export async function benchSft(opts: { log?: (line: string) => void; model?: string; steps?: number; quickstartSteps?: number; memorySteps?: number } = {}): Promise<Row[]> {
  const log = opts.log ?? (() => {});
  await init();
  const dir = await baseModelDir({ model: opts.model, quickstartSteps: opts.quickstartSteps, log });
  const { model, tokenizer } = await loadModel(dir);
  const tok: Tokenizer = tokenizer!;
  log(`base: ${dir} (${(model.numParameters() / 1e6).toFixed(2)}M parameters)`);
  const train = syntheticRows(2000, 1), held = syntheticRows(100, 2);
  const trainKeys = new Set(train.map((r) => `${r.instruction}|${r.input}`));
  const heldOut = held.filter((r) => !trainKeys.has(`${r.instruction}|${r.input}`)).slice(0, 80);
  const trainEx = train.map((r) => tokenizeRow(r, tok)), heldEx = heldOut.map((r) => tokenizeRow(r, tok));
  const padId = tok.eosId ?? 0;
  model.eval();
  const lossBefore = responseLoss(model, heldEx, 16, padId);
  const emBefore = exactMatch(model, tok, heldOut, { maxNewTokens: 8 });
  log(`before: held-out response loss ${lossBefore.toFixed(3)}, exact match ${(100 * emBefore.accuracy).toFixed(1)}% (${heldOut.length} held-out examples)`);
  applyLora(model, LORA);
  const { trainable, total } = trainableSummary(model);
  const steps = opts.steps ?? 250;
  const t0 = performance.now();
  sftTrain(model, trainEx, {
    steps, batchSize: 16, lr: 5e-3, warmupSteps: 20, seed: 0, val: heldEx, evalEvery: Math.max(1, Math.floor(steps / 3)), padId,
    onStep: (s) => { if (s.valLoss !== undefined || s.step % 50 === 0) log(`step ${s.step}/${steps} loss ${s.loss.toFixed(3)}${s.valLoss !== undefined ? ` held-out ${s.valLoss.toFixed(3)}` : ''} (${s.seconds.toFixed(0)} s)`); },
  });
  const seconds = (performance.now() - t0) / 1000;
  const lossAfter = responseLoss(model, heldEx, 16, padId);
  const emAfter = exactMatch(model, tok, heldOut, { maxNewTokens: 8 });
  log(`after:  held-out response loss ${lossAfter.toFixed(3)}, exact match ${(100 * emAfter.accuracy).toFixed(1)}%`);
  const perTask = [...new Set(heldOut.map((r) => r.instruction))].map((inst) => {
    const idx = heldOut.map((r, i) => (r.instruction === inst ? i : -1)).filter((i) => i >= 0);
    const acc = (answers: string[]) => +((100 * idx.filter((i) => answers[i].trim() === heldOut[i].output).length) / idx.length).toFixed(1);
    return { inst, n: idx.length, before: acc(emBefore.answers), after: acc(emAfter.answers) };
  });
  for (const t of perTask) log(`  ${t.inst} (${t.n} held-out): exact match ${t.before}% → ${t.after}%`);
  heldOut.slice(0, 4).forEach((r, i) => log(`  ${r.instruction} [${r.input}] → ${JSON.stringify(emAfter.answers[i])} (expected ${JSON.stringify(r.output)}; before ${JSON.stringify(emBefore.answers[i])})`));
  model.dispose();
  await shutdown();

  log('memory: a few training steps of each mode in its own process …');
  const spec = { model: dir, steps: opts.memorySteps ?? 4, batch: 16, r: LORA.r, seed: 3 };
  const lora = runChild({ ...spec, mode: 'lora' }), full = runChild({ ...spec, mode: 'full' });
  const mib = (b: number) => +(b / 2 ** 20).toFixed(3);
  const rows: Row[] = [
    { metric: 'held-out exact match before', lora: +(100 * emBefore.accuracy).toFixed(1), full: null, unit: '%' },
    { metric: 'held-out exact match after', lora: +(100 * emAfter.accuracy).toFixed(1), full: null, unit: '%' },
    ...perTask.map((t) => ({ metric: `  "${t.inst}" (${t.n}): before → after`, lora: `${t.before} → ${t.after}`, full: null, unit: '%' })),
    { metric: 'held-out response loss before', lora: +lossBefore.toFixed(4), full: null, unit: 'nats/token' },
    { metric: 'held-out response loss after', lora: +lossAfter.toFixed(4), full: null, unit: 'nats/token' },
    { metric: 'LoRA SFT steps (batch 16)', lora: steps, full: null, unit: 'steps' },
    { metric: 'LoRA SFT time', lora: +seconds.toFixed(1), full: null, unit: 's' },
    { metric: 'trainable parameters', lora: lora.trainable, full: full.trainable, unit: `of ${full.total}` },
    { metric: 'gradients', lora: mib(lora.gradBytes), full: mib(full.gradBytes), unit: 'MiB' },
    { metric: 'AdamW state', lora: mib(lora.optimizerBytes), full: mib(full.optimizerBytes), unit: 'MiB' },
    { metric: 'heap: model (+ adapters)', lora: +lora.heapModelMiB.toFixed(2), full: +full.heapModelMiB.toFixed(2), unit: 'MiB' },
    { metric: 'heap: peak during training', lora: +lora.heapPeakMiB.toFixed(2), full: +full.heapPeakMiB.toFixed(2), unit: 'MiB' },
    { metric: 'process peak RSS', lora: +lora.maxRssMiB.toFixed(0), full: +full.maxRssMiB.toFixed(0), unit: 'MiB' },
    { metric: 'time per step', lora: +lora.msPerStep.toFixed(0), full: +full.msPerStep.toFixed(0), unit: 'ms' },
  ];
  void trainable; void total;
  return rows;
}

function table(rows: Row[]): string {
  const head = ['metric', 'LoRA', 'full FT', 'unit'];
  const body = rows.map((r) => [r.metric, String(r.lora), r.full === null ? '' : String(r.full), r.unit]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (c: string[]) => c.map((x, i) => (i === 0 || i === 3 ? x.padEnd(w[i]) : x.padStart(w[i]))).join('  ');
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...body.map(line)].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { child: { type: 'string' }, model: { type: 'string' }, steps: { type: 'string' }, 'quickstart-steps': { type: 'string' }, json: { type: 'boolean', default: false } } });
  if (values.child) return child(JSON.parse(values.child) as ChildSpec);
  const rows = await benchSft({
    model: values.model, steps: values.steps ? Number(values.steps) : undefined, quickstartSteps: values['quickstart-steps'] ? Number(values['quickstart-steps']) : undefined,
    log: values.json ? undefined : (l) => console.log(l),
  });
  console.log(values.json ? JSON.stringify(rows, null, 2) : '\n' + table(rows));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => { console.error(e); process.exit(1); });
}
