// `tslm finetune`: supervised fine-tuning on instruction data, LoRA (PEFT adapter out) or full.
import { parseArgs } from 'node:util';
import { UsageError } from '../args.js';
import { init, shutdown } from '../../backend/index.js';
import { finetune } from '../../sft/finetune.js';
import { num } from '../args.js';

export const usage = `tslm finetune --model <dir> --data <file> --out <dir> [--lora-r 8] [--lora-alpha 16]
      [--lora-dropout 0.05] [--lora-targets q_proj,v_proj (default: the family's, in_proj,out_proj for Mamba)] [--rslora] [--full] [--template alpaca|chat]
      [--steps N | --epochs E] [--batch-size B] [--lr LR] [--warmup N] [--max-length T] [--pack T]
      [--val-fraction F] [--train-on-prompt] [--gatt] [--seed S] [--tokenizer FILE] [--threads N]
    Instruction tuning on Alpaca JSON/JSONL ({instruction, input, output}) or chat JSONL
    ({messages}), loss on response tokens only. LoRA by default: writes a PEFT adapter
    (adapter_config.json, adapter_model.safetensors) to --out; --full writes a whole HF model.
    --gatt (Ghost Attention, chat rows as tslm gatt writes them): loss on the last assistant
    turn of each row only.`;

export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' }, tokenizer: { type: 'string' },
      'lora-r': { type: 'string' }, 'lora-alpha': { type: 'string' }, 'lora-dropout': { type: 'string' }, 'lora-targets': { type: 'string' },
      rslora: { type: 'boolean', default: false }, full: { type: 'boolean', default: false }, template: { type: 'string' },
      steps: { type: 'string' }, epochs: { type: 'string' }, 'batch-size': { type: 'string' }, lr: { type: 'string' }, warmup: { type: 'string' },
      'max-length': { type: 'string' }, pack: { type: 'string' }, 'val-fraction': { type: 'string' }, 'train-on-prompt': { type: 'boolean', default: false },
      gatt: { type: 'boolean', default: false },
      seed: { type: 'string' }, threads: { type: 'string' }, 'weight-decay': { type: 'string' }, 'grad-clip': { type: 'string' },
    },
  });
  for (const k of ['model', 'data', 'out'] as const) if (!values[k]) { console.error(`tslm finetune: --${k} is required\n\n${usage}`); return 2; }
  const pos = (x: number) => Number.isInteger(x) && x > 0;
  if (values.full && (values['lora-r'] || values['lora-alpha'] || values['lora-targets'])) throw new UsageError('--full and --lora-* options exclude each other');
  if (values.gatt && values['train-on-prompt']) throw new UsageError('--gatt and --train-on-prompt exclude each other (--gatt masks every turn but the last)');
  if (values.gatt && values.template === 'alpaca') throw new UsageError('--gatt trains chat rows; --template alpaca does not apply');
  const template = values.template ?? (values.gatt ? 'chat' : 'alpaca');
  if (template !== 'alpaca' && template !== 'chat') throw new UsageError(`--template: expected alpaca or chat, got '${template}'`);
  const r = num(values['lora-r'], 'lora-r', pos) ?? 8;
  const lora = values.full ? null : {
    r, lora_alpha: num(values['lora-alpha'], 'lora-alpha', (x) => x > 0) ?? 2 * r,
    lora_dropout: num(values['lora-dropout'], 'lora-dropout', (x) => x >= 0 && x < 1) ?? 0.05,
    target_modules: values['lora-targets']?.split(',').map((s) => s.trim()).filter(Boolean),
    use_rslora: values.rslora,
  };
  await init({ threads: num(values.threads, 'threads', pos) });
  try {
    const res = await finetune({
      model: values.model!, data: values.data!, out: values.out!, tokenizer: values.tokenizer, lora,
      format: { template, maxLength: num(values['max-length'], 'max-length', pos), trainOnPrompt: values['train-on-prompt'], ...(values.gatt ? { trainTurns: 'last' as const } : {}) },
      packLength: num(values.pack, 'pack', pos), valFraction: num(values['val-fraction'], 'val-fraction', (x) => x >= 0 && x < 1),
      steps: num(values.steps, 'steps', pos), epochs: num(values.epochs, 'epochs', (x) => x > 0), batchSize: num(values['batch-size'], 'batch-size', pos),
      lr: num(values.lr, 'lr', (x) => x > 0) ?? (lora ? 2e-3 : 2e-4), warmupSteps: num(values.warmup, 'warmup', (x) => Number.isInteger(x) && x >= 0),
      weightDecay: num(values['weight-decay'], 'weight-decay', (x) => x >= 0), gradClip: num(values['grad-clip'], 'grad-clip', (x) => x >= 0),
      seed: num(values.seed, 'seed', Number.isInteger),
    });
    const v = (x: number | null) => (x === null ? '-' : x.toFixed(4));
    console.error(`done: validation loss ${v(res.valLossBefore)} → ${v(res.valLossAfter)}; ${values.out}`);
    res.model.dispose();
  } finally {
    await shutdown();
  }
  return 0;
}
