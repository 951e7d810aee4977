// Training checkpoints: an HF model directory (config.json, model.safetensors, tokenizer.json)
// plus optimizer.safetensors (AdamW moments, by parameter name) and trainer_state.json (step,
// tokens, data-loader position, options). Written into a temporary directory that replaces the
// previous checkpoint by renames, so a crash or a full disk never leaves a half-written one:
// <out>/checkpoint is complete, or (between the two renames) <out>/checkpoint.prev is.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/ops.js';
import { unscoped } from '../tensor/storage.js';
import type { CausalLM } from '../models/causal.js';
import { modelTensors } from '../io/model.js';
import { writeHfDir, readHfDir } from '../io/hf.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import { fromFloat32, float32Values, f32StateDict } from '../io/dtypes.js';
import { checkFiniteTensors } from '../io/finite.js';
import type { FiniteOptions } from '../io/finite.js';
import { readJsonObjectFileSync } from '../io/json_file.js';
import { brief } from '../io/json.js';
import { IoError } from '../io/errors.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import type { AdamW } from './optim.js';
import { writeFileAtomic } from './report.js';
import { removeStaleTemps } from './stale.js';
import type { BatcherState } from './data.js';
import type { TrainOptions, TrainState } from './trainer.js';

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

/** O: the run's options, D: the data position (the pre-training loop's, or another trainer's: RL's prompt sampler). */
export interface TrainerStateFile<O = TrainOptions, D = BatcherState> {
  format: 'tslm-trainer-state';
  version: 1;
  state: TrainState;
  options: O;
  train: D;
  optimizerSteps: Record<string, number>;
  /** The model config (checked on resume). */
  config: Record<string, unknown>;
  extra?: Record<string, unknown>;
}

export function checkpointDir(out: string): string {
  return path.join(out, 'checkpoint');
}

/** Write a checkpoint of model, tokenizer, optimizer and trainer state under out/checkpoint. */
export async function saveCheckpoint<O = TrainOptions, D = BatcherState>(out: string, c: {
  model: CausalLM; tokenizer?: Tokenizer | null; opt: AdamW; state: TrainState; options: O; train: D; extra?: Record<string, unknown>;
  /** Writes more files into the checkpoint directory before it is put in place (e.g. a second model). */
  also?: (dir: string) => Promise<void>;
}): Promise<string> {
  mkdirSync(out, { recursive: true });
  const final = checkpointDir(out), prev = `${final}.prev`, tmp = `${final}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  try {
    const config = c.model.configJson();
    await writeHfDir(tmp, { config, tensors: modelTensors(c.model) });
    const tk = c.tokenizer as (Tokenizer & { save?: (p: string) => void }) | null | undefined;
    if (tk && tk.kind === 'hf' && typeof tk.save === 'function') tk.save(path.join(tmp, 'tokenizer.json'));
    const sd = c.opt.stateDict();
    const names = c.opt.params.map((p, i) => p.name ?? String(i));
    const raws = Object.entries(sd.tensors).map(([k, t]) => {
      const [idx, kind] = [Number(k.slice(0, k.indexOf('.'))), k.slice(k.indexOf('.') + 1)];
      return fromFloat32(`${names[idx]}.${kind}`, [...t.shape], t.data() as Float32Array);
    });
    await writeSafetensors(path.join(tmp, 'optimizer.safetensors'), raws, { format: 'tslm-adamw' });
    const stateFile: TrainerStateFile<O, D> = {
      format: 'tslm-trainer-state', version: 1, state: c.state, options: c.options, train: c.train,
      optimizerSteps: Object.fromEntries(names.map((n, i) => [n, sd.steps[i]])), config, extra: c.extra,
    };
    await c.also?.(tmp);
    writeFileSync(path.join(tmp, 'trainer_state.json'), JSON.stringify(stateFile, null, 2) + '\n');
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw new CheckpointError(`cannot write checkpoint in ${out} (${(e as Error).message}); the previous checkpoint is intact`);
  }
  rmSync(prev, { recursive: true, force: true });
  if (existsSync(final)) renameSync(final, prev);
  renameSync(tmp, final);
  rmSync(prev, { recursive: true, force: true });
  return final;
}

/** The complete checkpoint under out (the previous one if a save was interrupted), or null. */
export function findCheckpoint(out: string): string | null {
  for (const d of [checkpointDir(out), `${checkpointDir(out)}.prev`]) if (existsSync(path.join(d, 'trainer_state.json'))) return d;
  return null;
}

export function readTrainerState<O = TrainOptions, D = BatcherState>(dir: string): TrainerStateFile<O, D> {
  const f = path.join(dir, 'trainer_state.json');
  let s: TrainerStateFile<O, D>;
  // A regular file, valid JSON (errors by line/column, never quoting the text), an object.
  try { s = readJsonObjectFileSync(f, 'trainer state') as unknown as TrainerStateFile<O, D>; } catch (e) { if (e instanceof IoError) throw new CheckpointError(e.message); throw e; }
  if (s.format !== 'tslm-trainer-state' || s.version !== 1) throw new CheckpointError(`${f}: not a tslm trainer state (format ${brief(s.format)}, version ${brief(s.version)})`);
  const st = s.state as unknown as Record<string, unknown> | undefined;
  if (typeof st !== 'object' || st === null || !Number.isSafeInteger(st.step) || (st.step as number) < 0) throw new CheckpointError(`${f}: state.step must be a non-negative integer, got ${brief(st?.step)}`);
  if (typeof s.config !== 'object' || s.config === null || Array.isArray(s.config)) throw new CheckpointError(`${f}: config must be an object`);
  if (typeof s.optimizerSteps !== 'object' || s.optimizerSteps === null) throw new CheckpointError(`${f}: optimizerSteps must be an object`);
  return s;
}

/** Load weights and optimizer moments from a checkpoint into an existing model and optimizer. */
export async function loadCheckpoint<O = TrainOptions, D = BatcherState>(dir: string, model: CausalLM, opt: AdamW, opts: FiniteOptions = {}): Promise<TrainerStateFile<O, D>> {
  const st = readTrainerState<O, D>(dir);
  const mine = model.configJson();
  // Every field that shapes the model must be the same (the family's whole config, as saved).
  for (const k of new Set(['model_type', ...Object.keys(mine), ...Object.keys(st.config)])) {
    if (k === 'torch_dtype' || k === 'transformers_version' || k === 'architectures') continue;
    if (JSON.stringify(st.config[k]) !== JSON.stringify(mine[k])) {
      throw new CheckpointError(`${dir}: checkpoint has ${k} = ${JSON.stringify(st.config[k])}, this run's model has ${JSON.stringify(mine[k])}; resume with the same config`);
    }
  }
  const ck = await readHfDir(dir);
  const weights = path.join(dir, 'model.safetensors');
  model.loadStateDict(f32StateDict(ck.tensors, weights, opts), { source: weights });
  const optFile = path.join(dir, 'optimizer.safetensors');
  const { tensors } = await readSafetensors(optFile);
  checkFiniteTensors(tensors, optFile, opts); // NaN moments would make every later step NaN
  for (const n of Object.keys(st.optimizerSteps)) {
    const v = st.optimizerSteps[n];
    if (!Number.isSafeInteger(v) || v < 0) throw new CheckpointError(`${path.join(dir, 'trainer_state.json')}: optimizerSteps[${brief(n)}] must be a non-negative integer, got ${brief(v)}`);
  }
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const names = opt.params.map((p, i) => p.name ?? String(i));
  const out: Record<string, Tensor> = {};
  const steps: number[] = [];
  names.forEach((n, i) => {
    steps.push(st.optimizerSteps[n] ?? 0);
    for (const kind of ['exp_avg', 'exp_avg_sq', 'max_exp_avg_sq']) {
      const t = byName.get(`${n}.${kind}`);
      if (t) out[`${i}.${kind}`] = unscoped(() => tensor(float32Values(t, optFile), t.shape));
    }
  });
  opt.loadStateDict({ tensors: out, steps });
  opt.stepCount = st.state.step;
  return st;
}

/**
 * --resume for a trainer that logs metrics.jsonl beside its checkpoints in `out`: the checkpoint
 * loaded into model and optimizer, and metrics.jsonl cut back to the checkpoint's step (the
 * resumed run writes what came after again). Errors name the trainer (`what`).
 */
export async function resumeCheckpoint<O, D, M extends { step: number }>(what: string, out: string | undefined, model: CausalLM, opt: AdamW): Promise<{ dir: string; state: TrainerStateFile<O, D>; metrics: M[] }> {
  if (!out) throw new RangeError(`${what}: --resume needs an output directory`);
  const dir = findCheckpoint(out);
  if (!dir) throw new RangeError(`${what}: --resume: no checkpoint in ${out}`);
  const state = await loadCheckpoint<O, D>(dir, model, opt);
  removeStaleTemps(out);
  const file = path.join(out, 'metrics.jsonl');
  const metrics = readMetricsFile<M>(file, state.state.step);
  writeFileAtomic(file, metrics.map((m) => JSON.stringify(m) + '\n').join(''));
  return { dir, state, metrics };
}

/**
 * The metrics of steps 1…upTo from a metrics.jsonl, one per step (the last line written for a
 * step wins); lines that are not a JSON object with a numeric step (a line cut by a kill) or that
 * hold anything but scalars and objects of scalars (a damaged file) are skipped.
 */
/** An object of numbers, strings, booleans, nulls and objects of those (a metrics line's shape). */
function flatRecord(v: object, depth = 0): boolean {
  if (Array.isArray(v) || depth > 1) return false;
  for (const x of Object.values(v)) {
    if (x === null || typeof x === 'number' || typeof x === 'string' || typeof x === 'boolean') continue;
    if (typeof x !== 'object' || !flatRecord(x, depth + 1)) return false;
  }
  return true;
}

export function readMetricsFile<M extends { step: number }>(file: string, upTo: number): M[] {
  if (!existsSync(file)) return [];
  const byStep = new Map<number, M>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    let m: unknown;
    try { m = JSON.parse(line); } catch { continue; }
    if (typeof m !== 'object' || m === null || !Number.isInteger((m as M).step) || !flatRecord(m)) continue;
    const step = (m as M).step;
    if (step >= 1 && step <= upTo) byStep.set(step, m as M);
  }
  return [...byStep.keys()].sort((a, b) => a - b).map((k) => byStep.get(k)!);
}
