// `tslm train`: pre-train a model of any family (LLaMA, Mamba, S4D, …) on a corpus.
import { parseArgs } from 'node:util';
import { init, shutdown } from '../../backend/index.js';
import { runTraining } from '../../train/run.js';
import { PRESETS } from '../../train/presets.js';
import { num } from '../args.js';

export const usage = `tslm train --data <file|dir> --config <config.json|preset> --out <dir> [--steps N]
      [--batch-size B] [--seq-len T] [--grad-accum K] [--lr LR] [--warmup N] [--min-lr-ratio R]
      [--weight-decay W] [--grad-clip C] [--eval-every N] [--eval-batches N] [--seed S]
      [--tokenizer FILE] [--resume] [--threads N]
    Train from scratch any family the config's model_type names (llama, mistral, qwen2, mamba,
    s4d). Presets: ${Object.keys(PRESETS).join(', ')} (llama2.c's TinyStories LLaMA sizes, the
    quickstart LLaMA, and Mamba / S4D models of the quickstart's and the 15M LLaMA's size).
    Data: .txt/.md files, folders, JSONL {"text": …} or Parquet. Without --tokenizer a byte-level
    BPE of the config's vocab_size is trained on the data. Writes metrics.jsonl, loss.svg,
    report.html and an atomic checkpoint (HF layout + optimizer + data position) to --out;
    --resume continues bit-for-bit. Ctrl-C saves a checkpoint and stops.`;

export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      data: { type: 'string' }, config: { type: 'string' }, out: { type: 'string' }, steps: { type: 'string' },
      'batch-size': { type: 'string' }, 'seq-len': { type: 'string' }, 'grad-accum': { type: 'string' }, lr: { type: 'string' },
      warmup: { type: 'string' }, 'min-lr-ratio': { type: 'string' }, 'weight-decay': { type: 'string' }, 'grad-clip': { type: 'string' },
      'eval-every': { type: 'string' }, 'eval-batches': { type: 'string' }, seed: { type: 'string' }, tokenizer: { type: 'string' },
      resume: { type: 'boolean', default: false }, threads: { type: 'string' },
    },
  });
  for (const k of ['data', 'config', 'out'] as const) if (!values[k]) { console.error(`tslm train: --${k} is required\n\n${usage}`); return 2; }
  const pos = (x: number) => Number.isInteger(x) && x > 0;
  const ac = new AbortController();
  const onSigint = () => { console.error('\ninterrupted: saving a checkpoint after this step (Ctrl-C again to quit now)'); ac.abort(); process.off('SIGINT', onSigint); };
  process.on('SIGINT', onSigint);
  await init({ threads: num(values.threads, 'threads', pos) });
  try {
    const r = await runTraining({
      data: values.data!, config: values.config!, out: values.out!, tokenizer: values.tokenizer, resume: values.resume, signal: ac.signal,
      steps: num(values.steps, 'steps', pos), batchSize: num(values['batch-size'], 'batch-size', pos), seqLen: num(values['seq-len'], 'seq-len', pos),
      gradAccum: num(values['grad-accum'], 'grad-accum', pos), lr: num(values.lr, 'lr', (x) => x > 0), warmupSteps: num(values.warmup, 'warmup', (x) => Number.isInteger(x) && x >= 0),
      minLrRatio: num(values['min-lr-ratio'], 'min-lr-ratio', (x) => x >= 0 && x <= 1), weightDecay: num(values['weight-decay'], 'weight-decay', (x) => x >= 0),
      gradClip: num(values['grad-clip'], 'grad-clip', (x) => x >= 0), evalEvery: num(values['eval-every'], 'eval-every', (x) => Number.isInteger(x) && x >= 0),
      evalBatches: num(values['eval-batches'], 'eval-batches', pos), seed: num(values.seed, 'seed', Number.isInteger),
    });
    console.error(`done: step ${r.state.step}, validation loss ${r.valLoss?.toFixed(4) ?? '-'}${r.valLoss !== null ? ` (perplexity ${Math.exp(r.valLoss).toFixed(2)})` : ''}; checkpoint ${r.checkpoint}; report ${values.out}/report.html`);
    r.model.dispose();
    r.tokens.close();
  } finally {
    process.off('SIGINT', onSigint);
    await shutdown();
  }
  return 0;
}
