// `tslm gatt`: Ghost Attention data (LLaMA 2 §3.3). Samples the model's replies to multi-turn
// dialogues with the instruction on every user turn, then writes chat rows where the instruction
// stays only in the first user turn, for `tslm finetune --gatt` (loss on the last reply only).
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { UsageError } from '../args.js';
import { init, shutdown } from '../../backend/index.js';
import { loadModel } from '../../io/model.js';
import { SftDataError } from '../../sft/data.js';
import { gattSample, gattTrainingRows, readGattDialogs } from '../../sft/gatt.js';
import { num } from '../args.js';

export const usage = `tslm gatt --model <dir> --data <dialogs.jsonl> --out <rows.jsonl> [--max-new-tokens 64]
      [--temperature 0.7] [--top-p P] [--seed S] [--placement prefix|suffix] [--tokenizer FILE] [--threads N]
    Ghost Attention data (LLaMA 2 §3.3): for each dialogue {"instruction", "turns": [user, …],
    "system"?}, samples the model's replies (ChatML) with the instruction on every user turn,
    then writes chat rows {messages, instruction} with the instruction in the first user turn
    only. Train on them with tslm finetune --gatt (loss on the last assistant turn only).`;

export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' }, tokenizer: { type: 'string' },
      'max-new-tokens': { type: 'string' }, temperature: { type: 'string' }, 'top-p': { type: 'string' }, seed: { type: 'string' },
      placement: { type: 'string' }, threads: { type: 'string' },
    },
  });
  for (const k of ['model', 'data', 'out'] as const) if (!values[k]) { console.error(`tslm gatt: --${k} is required\n\n${usage}`); return 2; }
  const pos = (x: number) => Number.isInteger(x) && x > 0;
  const placement = values.placement ?? 'prefix';
  if (placement !== 'prefix' && placement !== 'suffix') throw new UsageError(`--placement: expected prefix or suffix, got '${placement}'`);
  const maxNewTokens = num(values['max-new-tokens'], 'max-new-tokens', pos) ?? 64;
  const temperature = num(values.temperature, 'temperature', (x) => x >= 0) ?? 0.7;
  const topP = num(values['top-p'], 'top-p', (x) => x > 0 && x <= 1);
  const seed = num(values.seed, 'seed', Number.isInteger) ?? 0;
  const dialogs = readGattDialogs(values.data!);
  await init({ threads: num(values.threads, 'threads', pos) });
  try {
    const { model, tokenizer } = await loadModel(values.model!, { tokenizer: values.tokenizer });
    if (!tokenizer) throw new SftDataError(`${values.model}: no tokenizer found; pass --tokenizer`);
    model.eval();
    try {
      const sampled = gattSample(model, tokenizer, dialogs, {
        maxNewTokens, temperature, topP, seed, placement,
        onDialog: (i) => { if ((i + 1) % 10 === 0 || i + 1 === dialogs.length) console.error(`sampled ${i + 1}/${dialogs.length} dialogues`); },
      });
      const rows = sampled.map((r) => gattTrainingRows([r], r.instruction, { placement })[0]);
      writeFileSync(values.out!, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
      const turns = rows.reduce((s, r) => s + r.messages.filter((m) => m.role === 'assistant').length, 0);
      console.error(`wrote ${rows.length} GAtt rows (${turns} assistant turns, the last of each trained) to ${values.out}`);
    } finally {
      model.dispose();
    }
  } finally {
    await shutdown();
  }
  return 0;
}
