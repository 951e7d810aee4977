// `tslm merge-lora`: fuse a PEFT LoRA adapter into its base model (W + scale·B·A) and save it.
import { parseArgs } from 'node:util';
import { init, shutdown } from '../../backend/index.js';
import { loadModel, saveModel } from '../../io/model.js';
import { loadAdapter } from '../../lora/peft.js';
import { fuseLora } from '../../lora/model.js';

export const usage = `tslm merge-lora --model <dir> --adapter <dir> --out <dir> [--dtype F32|F16|BF16]
    Merge a LoRA adapter (PEFT format) into the base model's weights; writes an HF directory
    (config.json, model.safetensors, tokenizer.json) that loads without the adapter.`;

export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { model: { type: 'string' }, adapter: { type: 'string' }, out: { type: 'string' }, dtype: { type: 'string' }, tokenizer: { type: 'string' } } });
  for (const k of ['model', 'adapter', 'out'] as const) if (!values[k]) { console.error(`tslm merge-lora: --${k} is required\n\n${usage}`); return 2; }
  const dtype = (values.dtype ?? 'F32').toUpperCase();
  if (!['F32', 'F16', 'BF16'].includes(dtype)) { console.error(`tslm merge-lora: --dtype must be F32, F16 or BF16`); return 2; }
  await init();
  try {
    const { model, tokenizer } = await loadModel(values.model!, { tokenizer: values.tokenizer, dtype: 'f32' });
    const cfg = await loadAdapter(model, values.adapter!);
    fuseLora(model);
    await saveModel(model, values.out!, { tokenizer, dtype: dtype as 'F32' | 'F16' | 'BF16' });
    console.error(`merged LoRA r=${cfg.r} alpha=${cfg.lora_alpha} on ${[cfg.target_modules].flat().join(',')} into ${values.out}`);
    model.dispose();
  } finally {
    await shutdown();
  }
  return 0;
}
