// `tslm convert`: a model from one file format to another (HF directory, GGUF, llama2.c), its
// tokenizer carried into the target's form.
import { parseArgs } from 'node:util';
import { init, shutdown } from '../../backend/index.js';
import { convertModel, CONVERT_DTYPES, CONVERT_TARGETS } from '../../io/convert.js';
import type { ConvertTarget } from '../../io/convert.js';
import { UsageError } from '../args.js';

export const usage = `tslm convert --model <hf-dir|file.bin|file.gguf> --to gguf|hf|llama2c [--dtype T] [--tokenizer FILE] [--llama2c-version 0|1] --out PATH
    Write a model in another format: an HF directory (config.json, model.safetensors,
    tokenizer.json, tokenizer_config.json), a GGUF file that llama.cpp runs (its vocabulary and
    chat template inside), or a llama2.c checkpoint (with tokenizer.bin beside it).
    --dtype   the weights' type: gguf ${CONVERT_DTYPES.gguf.join('|')}; hf ${CONVERT_DTYPES.hf.join('|')}; llama2c f32
              (default f32; quantised GGUF weights are dequantised first)
    --tokenizer  a tokenizer file to use instead of the model's (tokenizer.json, tokenizer.model
              or tokenizer.bin). Byte-level BPE becomes GGUF's gpt2 vocabulary; SentencePiece and
              llama2.c vocabularies its llama one. A byte-level BPE has no tokenizer.bin form.
    --llama2c-version  0 (default: the legacy header, as llama2.c's export.py writes and run.c
              reads) or 1 (the "ak42" header).`;

export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { model: { type: 'string' }, to: { type: 'string' }, out: { type: 'string' }, dtype: { type: 'string' }, tokenizer: { type: 'string' }, 'llama2c-version': { type: 'string' } } });
  for (const k of ['model', 'to', 'out'] as const) if (!values[k]) throw new UsageError(`--${k} is required\n\n${usage}`);
  const to = values.to as ConvertTarget;
  if (!CONVERT_TARGETS.includes(to)) throw new UsageError(`--to must be one of ${CONVERT_TARGETS.join(', ')}, got '${values.to}'`);
  const dtype = (values.dtype ?? 'f32').toLowerCase();
  if (!CONVERT_DTYPES[to].includes(dtype)) throw new UsageError(`--dtype ${values.dtype} cannot be written to ${to} (it holds ${CONVERT_DTYPES[to].join(', ')})`);
  const lv = values['llama2c-version'];
  if (lv !== undefined && (to !== 'llama2c' || (lv !== '0' && lv !== '1'))) throw new UsageError(to !== 'llama2c' ? '--llama2c-version applies to --to llama2c' : `--llama2c-version: 0 or 1, got '${lv}'`);
  await init();
  try {
    const t0 = performance.now();
    const r = await convertModel({ model: values.model!, to, out: values.out!, dtype, tokenizer: values.tokenizer, llama2cVersion: lv === '1' ? 1 : 0 });
    for (const n of r.notes) console.error(`note: ${n}`);
    console.error(`converted ${r.from} → ${r.to} (${dtype}) in ${((performance.now() - t0) / 1000).toFixed(1)} s:`);
    for (const f of r.files) console.log(f);
  } finally {
    await shutdown();
  }
  return 0;
}
