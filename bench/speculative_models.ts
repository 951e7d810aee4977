// The models `tslm bench speculative` decodes with, trained once on the quickstart corpus and
// cached under bench/.cache/speculative/ (a killed run resumes from its last checkpoint):
//   base   stories15M's shape (6 layers × 288, 6 heads; the quickstart tokenizer's 2048-token
//          vocabulary, 256 positions) — the model whose decoding is sped up;
//   draft  the quickstart LLaMA (4 × 128, 0.99M parameters) on the same tokenizer — the draft model.
// Medusa heads are trained on the base by the bench (tslm medusa train) and cached beside them.
//
//   node dist/bench/speculative_models.js [--base-steps N] [--draft-steps N]   (prepare only)
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, shutdown } from '../src/backend/index.js';
import { PRESETS } from '../src/train/presets.js';
import { quickstart } from '../src/train/quickstart.js';
import { runTraining } from '../src/train/run.js';
import { findCheckpoint } from '../src/train/checkpoint.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** bench/.cache/speculative in the repository (dist/bench/… → ../../bench/.cache). */
export const CACHE = path.resolve(here, '..', '..', 'bench', '.cache', 'speculative');

export const BASE_CONFIG = { ...PRESETS['15m'], vocab_size: 2048, max_position_embeddings: 256 };
export const DEFAULT_BASE_STEPS = 1000;
export const DEFAULT_DRAFT_STEPS = 1500;

export interface SpeculativeModels {
  /** The models' HF directories (the runs' final checkpoints). */
  base: string;
  draft: string;
  tokenizer: string;
  data: string;
}

/** Train (or resume) what is missing; a model counts as ready once its done.json is written. */
export async function prepareModels(o: { baseSteps?: number; draftSteps?: number; log?: (s: string) => void } = {}): Promise<SpeculativeModels> {
  const log = o.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const base = path.join(CACHE, 'base'), draft = path.join(CACHE, 'draft');
  const baseSteps = o.baseSteps ?? DEFAULT_BASE_STEPS, draftSteps = o.draftSteps ?? DEFAULT_DRAFT_STEPS;
  if (!ready(base, baseSteps)) {
    log(`training the base model (stories15M shape, ${baseSteps} steps of 16 × 128 tokens; minutes to an hour on 2 cores, once) → ${base}`);
    const r = await quickstart({ out: base, steps: baseSteps, config: BASE_CONFIG, log, resume: findCheckpoint(base) !== null });
    writeFileSync(path.join(base, 'done.json'), JSON.stringify({ steps: baseSteps, valLoss: r.valLoss }) + '\n');
    r.model.dispose();
  }
  const tokenizer = path.join(base, 'tokenizer.json'), data = path.join(base, 'data');
  if (!ready(draft, draftSteps)) {
    log(`training the draft model (quickstart LLaMA, ${draftSteps} steps) → ${draft}`);
    const r = await runTraining({
      data, out: draft, config: 'quickstart', tokenizer, steps: draftSteps, batchSize: 16, seqLen: 128, lr: 2e-3, warmupSteps: 100,
      minLrRatio: 0.1, weightDecay: 0.1, evalEvery: Math.max(1, Math.floor(draftSteps / 5)), evalBatches: 20, seed: 1337, valFraction: 0.05, log,
      resume: findCheckpoint(draft) !== null,
    });
    writeFileSync(path.join(draft, 'done.json'), JSON.stringify({ steps: draftSteps, valLoss: r.valLoss }) + '\n');
    r.model.dispose();
  }
  return { base: path.join(base, 'checkpoint'), draft: path.join(draft, 'checkpoint'), tokenizer, data };
}

/** Whether dir's done.json records a finished run with these settings (e.g. { steps: 1000 }). */
export function ready(dir: string, settings: number | Record<string, number>): boolean {
  const want = typeof settings === 'number' ? { steps: settings } : settings;
  const f = path.join(dir, 'done.json');
  if (!existsSync(f)) return false;
  try {
    const done = JSON.parse(readFileSync(f, 'utf8')) as Record<string, unknown>;
    return Object.entries(want).every(([k, v]) => done[k] === v);
  } catch {
    return false;
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (name: string): number | undefined => {
    const i = process.argv.indexOf(name);
    return i > 0 ? Number(process.argv[i + 1]) : undefined;
  };
  const threads = arg('--threads');
  await init(threads ? { threads } : {});
  try {
    const m = await prepareModels({ baseSteps: arg('--base-steps'), draftSteps: arg('--draft-steps') });
    console.log(JSON.stringify(m));
  } finally {
    await shutdown();
  }
}
