// `tslm generate`: text (or token ids) from a model file, streamed, with speed on stderr.
import { parseArgs } from 'node:util';
import { steadyYoungGeneration } from '../heap.js';
import { UsageError, num } from '../args.js';
import { init, shutdown } from '../../backend/index.js';
import { loadModel, QUANTIZE_ON_LOAD } from '../../io/model.js';
import { KV_DTYPES } from '../../models/llama.js';
import type { KVDType } from '../../models/llama.js';
import type { LoadDType } from '../../io/model.js';
import { generate } from '../../generate/generate.js';
import type { GenerateOptions } from '../../generate/generate.js';
import { readFileSync } from 'node:fs';
import type { JsonSchema } from '../../structured/index.js';
import { parseJson } from '../../tokenizers/guard.js';
import { isMixedModalDir, MIXED_MODAL_FILE } from '../../vision/mixed_file.js';
import { normalizeSpeculativeArgs, speculativeFrom, speculativeHelp, speculativeLine, speculativeOptions, speculativeUsage } from '../speculative.js';

export const usage = `tslm generate --model <hf-dir|file.bin|file.gguf> [--prompt "…"] [--max-tokens N]
      [--temperature T] [--top-k K] [--top-p P] [--min-p P] [--repetition-penalty R]
      [--seed S] [--stop STR]… [--tokenizer FILE] [--adapter DIR] [--print-ids] [--threads N] [--dtype f32|q8_0|q4_0|q4_k|q6_k|f16|bf16] [--kv-dtype f32|bf16]
      [--schema FILE.json [--strict] [--allow-extra-keys] | --regex RE | --grammar FILE.gbnf]
      [--image IN.png] [--image-out OUT.png] [--guidance S [--negative-prompt "…"]]
${speculativeUsage}
    Generate from a prompt (from BOS when none is given); text streams to stdout, prefill and
    decode tokens/s go to stderr. --print-ids prints the generated ids on the last line.
    --schema/--regex/--grammar constrain the output (JSON Schema, regex, llama.cpp GBNF).
    With --schema an object without additionalProperties gets only its declared properties
    (--allow-extra-keys: extra keys as JSON Schema allows them, non-empty and not declared
    names); unknown keywords and formats are ignored (--strict refuses them).
    --adapter applies a LoRA adapter (PEFT directory) to the model. A GGUF's quantised weights
    (Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K, Q6_K) and a LLaMA's F16/BF16 weights (GGUF or
    safetensors) stay as stored in memory (fused dequantise-and-dot kernels); --dtype f32 widens
    them to f32 on load; --dtype q8_0|q4_0|q4_k|q6_k quantises a LLaMA's f32/f16/bf16 linear
    weights and embedding as they load (llama.cpp's quantisers), --dtype f16|bf16 rounds them to
    16 bits (nearest, ties to even). --kv-dtype bf16 keeps a LLaMA's KV cache in bfloat16 (each
    key and value rounded to nearest even): half the cache's memory and of the bytes attention
    reads per token; f32 keeps it exact. Without --kv-dtype the cache is bf16 for quantised
    weights (as llama.cpp's default 16-bit cache) and f32 for f32, F16 and BF16 weights.
    A mixed-modal model (tslm mixed-modal train) reads and writes images: --image puts a PNG
    into the prompt (as its image tokens, before the text; the answer is text: a caption),
    --image-out makes the continuation an image (its tokens decoded to a PNG), drawn with
    classifier-free guidance 3 unless --guidance says otherwise.
    --guidance S: classifier-free guidance (HF's guidance_scale): each step's log-probabilities
    are pushed away from those after --negative-prompt (default: BOS alone, the unconditional
    continuation) by S·(log p(·|prompt) − log p(·|negative)); 1 is off. Two forwards per step.
${speculativeHelp}`;

/** --kv-dtype: the KV cache's element type, f32 or bf16 (absent: bf16 for quantised weights, else f32). */
export function kvDtypeOption(v: string | undefined): KVDType | undefined {
  if (v === undefined || (KV_DTYPES as readonly string[]).includes(v)) return v as KVDType | undefined;
  throw new UsageError(`--kv-dtype: invalid value '${v}' (${KV_DTYPES.join(' or ')}: the KV cache's element type; bf16 halves its memory; without --kv-dtype, bf16 for quantised weights and f32 otherwise)`);
}

/** --dtype: f32 (dequantise), q8_0, q4_0, q4_k, q6_k, f16, bf16 (convert on load) or absent (as stored). */
export function dtypeOption(v: string | undefined): LoadDType {
  if (v === undefined) return 'native';
  if (v === 'f32' || (QUANTIZE_ON_LOAD as readonly string[]).includes(v)) return v as LoadDType;
  throw new UsageError(`--dtype: invalid value '${v}' (f32 widens a quantised or 16-bit model to f32, ${QUANTIZE_ON_LOAD.join(', ')} convert an f32 one as it loads; without --dtype the weights load as stored)`);
}

export const samplingOptions = {
  'max-tokens': { type: 'string' }, temperature: { type: 'string' }, 'top-k': { type: 'string' }, 'top-p': { type: 'string' },
  'min-p': { type: 'string' }, 'typical-p': { type: 'string' }, 'repetition-penalty': { type: 'string' }, seed: { type: 'string' },
  stop: { type: 'string', multiple: true }, threads: { type: 'string' },
} as const;

export { num };

export function samplingFrom(values: Record<string, unknown>): GenerateOptions {
  const v = values as Record<string, string | undefined>;
  return {
    maxNewTokens: num(v['max-tokens'], 'max-tokens', (x) => Number.isInteger(x) && x >= 0) ?? 128,
    temperature: num(v.temperature, 'temperature', (x) => x >= 0) ?? 0,
    topK: num(v['top-k'], 'top-k', (x) => Number.isInteger(x) && x >= 0),
    topP: num(v['top-p'], 'top-p', (x) => x > 0 && x <= 1),
    minP: num(v['min-p'], 'min-p', (x) => x >= 0 && x <= 1),
    typicalP: num(v['typical-p'], 'typical-p', (x) => x > 0 && x <= 1),
    repetitionPenalty: num(v['repetition-penalty'], 'repetition-penalty', (x) => x > 0),
    seed: num(v.seed, 'seed', Number.isInteger) ?? 0,
  };
}

export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args: normalizeSpeculativeArgs(args),
    options: { model: { type: 'string' }, prompt: { type: 'string' }, tokenizer: { type: 'string' }, adapter: { type: 'string' }, dtype: { type: 'string' }, 'kv-dtype': { type: 'string' }, 'print-ids': { type: 'boolean', default: false }, ...samplingOptions,
      schema: { type: 'string' }, regex: { type: 'string' }, grammar: { type: 'string' }, image: { type: 'string' }, 'image-out': { type: 'string' }, guidance: { type: 'string' }, 'negative-prompt': { type: 'string' }, strict: { type: 'boolean', default: false }, 'allow-extra-keys': { type: 'boolean', default: false }, ...speculativeOptions },
  });
  if (!values.model) { console.error('tslm generate: --model is required'); return 2; }
  const opts = samplingFrom(values);
  const dtype = dtypeOption(values.dtype), kvDtype = kvDtypeOption(values['kv-dtype']);
  if (dtype !== 'native' && dtype !== 'f32' && values.adapter) throw new UsageError(`--adapter with --dtype ${dtype} is not supported yet (apply the adapter to the f32 model, or merge it first with tslm merge-lora)`);
  if ([values.schema, values.regex, values.grammar].filter((x) => x !== undefined).length > 1) throw new UsageError('give at most one of --schema, --regex, --grammar');
  const readArg = (path: string, flag: string) => { try { return readFileSync(path, 'utf8'); } catch (e) { throw new UsageError(`--${flag} ${path}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`); } };
  if ((values.strict || values['allow-extra-keys']) && values.schema === undefined) throw new UsageError('--strict and --allow-extra-keys apply to --schema');
  const schemaOptions = { strict: values.strict, additionalProperties: values['allow-extra-keys'] ? 'allow' as const : 'declared' as const };
  const constraint = values.schema !== undefined ? { schema: parseJson(readArg(values.schema, 'schema'), (d) => new Error(`--schema ${values.schema}: not valid JSON: ${d}`)) as JsonSchema, schemaOptions } : values.regex !== undefined ? { regex: values.regex } : values.grammar !== undefined ? { grammar: readArg(values.grammar, 'grammar') } : null;
  await init({ threads: num(values.threads, 'threads', (x) => Number.isInteger(x) && x > 0) });
  steadyYoungGeneration(); // again: starting the kernel threads reset V8's flags (see heap.ts)
  try {
    // Images in and out need a mixed-modal model: checked (and an input picture read) before the weights load.
    // The modules of images, constraints and adapters load only when asked for: importing them
    // costs a fresh process ~0.3 s and ~10 MB before the model is read.
    const vision = isMixedModalDir(values.model) ? await import('../../vision/mixed_cli.js') : null;
    const mixed = vision ? await vision.loadMixedModal(values.model) : null;
    if ((values.image !== undefined || values['image-out'] !== undefined) && !mixed) {
      throw new UsageError(`--image and --image-out need a mixed-modal model (text and image tokens, made by tslm mixed-modal train); ${values.model} is text-only (no ${MIXED_MODAL_FILE})`);
    }
    if (mixed && constraint) throw new UsageError('--schema/--regex/--grammar are not available with a mixed-modal model');
    // Classifier-free guidance: asked for, or a mixed-modal model's default when it draws.
    const speculating = (values.medusa ?? values['draft-model'] ?? values.lookup) !== undefined;
    const scale = num(values.guidance, 'guidance', (x) => x >= 0) ?? (vision && values['image-out'] !== undefined && !speculating ? vision.IMAGE_GUIDANCE : 1);
    if (values['negative-prompt'] !== undefined && values.guidance === undefined) throw new UsageError('--negative-prompt is the prompt --guidance pushes away from: give --guidance too');
    if (scale !== 1 && speculating) throw new UsageError('--guidance is not available with speculative decoding (--medusa, --draft-model, --lookup)');
    const imageIds = vision && mixed && values.image !== undefined ? vision.imagePromptTokens(mixed.imageTokenizer, mixed.vocab, vision.readPng(values.image), values.image) : [];
    const { model, tokenizer } = await loadModel(values.model, { tokenizer: values.tokenizer, dtype, kvDtype });
    if (values.adapter) await (await import('../../lora/peft.js')).loadAdapter(model, values.adapter);
    model.eval();
    const bos = tokenizer?.bosId ?? model.config.bos_token_id ?? 1;
    let prompt: number[];
    if (values.prompt !== undefined) {
      if (!tokenizer) throw new Error(`${values.model}: no tokenizer found for the prompt text; pass --tokenizer <tokenizer.json|tokenizer.model|tokenizer.bin>`);
      prompt = [bos, ...tokenizer.encode(values.prompt)];
    } else prompt = [bos];
    if (values.prompt) process.stdout.write(values.prompt);
    let eos = tokenizer?.eosId !== null && tokenizer?.eosId !== undefined ? [tokenizer.eosId] : model.config.eos_token_id ?? [];
    // A mixed-modal model's image tokens (the input picture's go before the text), kept well-formed by ImageSpanProcessor.
    if (vision && mixed) {
      prompt = [prompt[0], ...imageIds, ...prompt.slice(1)];
      opts.processors = [new vision.ImageSpanProcessor(mixed.vocab, { images: values['image-out'] !== undefined ? 'only' : values.image !== undefined ? false : true })];
      if (values['image-out'] !== undefined) { opts.maxNewTokens = mixed.vocab.codesPerImage + 2; eos = []; }
    }
    if (constraint) {
      if (!tokenizer) throw new Error(`${values.model}: a constraint needs the tokenizer; pass --tokenizer <tokenizer.json|tokenizer.model|tokenizer.bin>`);
      const { constraintProcessor, TokenVocab } = await import('../../structured/index.js');
      opts.processors = [constraintProcessor(constraint, tokenizer)];
      eos = TokenVocab.fromTokenizer(tokenizer).eosIds;
    }
    const speculative = await speculativeFrom(values, model);
    if (values['negative-prompt'] !== undefined && !tokenizer) throw new Error(`${values.model}: no tokenizer found for the negative prompt text; pass --tokenizer <tokenizer.json|tokenizer.model|tokenizer.bin>`);
    const guidance = scale !== 1 ? { scale, negative: [bos, ...(values['negative-prompt'] ? tokenizer!.encode(values['negative-prompt']) : [])] } : undefined;
    const r = generate(model, prompt, {
      ...opts, stopIds: eos, stopStrings: values.stop, tokenizer: tokenizer ?? undefined, guidance,
      // A mixed-modal model's image tokens are not text: they are shown as one [image] mark.
      onToken: tokenizer ? (e) => process.stdout.write(mixed ? mixed.vocab.shown(e.id, e.text) : e.text) : undefined,
      speculative: speculative ?? undefined,
    });
    if (tokenizer) process.stdout.write('\n');
    const s = r.stats;
    console.error(`prefill: ${s.promptTokens} tokens, ${s.prefillTokensPerSecond.toFixed(1)} tok/s; decode: ${s.decodeTokens} tokens, ${s.decodeTokensPerSecond.toFixed(1)} tok/s; finish: ${r.finishReason[0]}`);
    if (s.speculative) console.error(speculativeLine(s.speculative));
    if (vision && mixed && values['image-out'] !== undefined) {
      const px = vision.imageFromTokens(mixed.imageTokenizer, mixed.vocab, r.ids[0]);
      if (!px) throw new Error(`the model did not complete an image in ${r.ids[0].length} tokens`);
      const S = mixed.imageTokenizer.config.image_size;
      vision.writePng(values['image-out'], { width: S, height: S, pixels: px });
      console.error(`image: ${values['image-out']} (${S}×${S}, ${mixed.vocab.codesPerImage} image tokens${guidance ? `, classifier-free guidance ${guidance.scale}` : ''})`);
    }
    if (values['print-ids'] || !tokenizer) console.log(r.ids[0].join(' '));
    model.dispose();
  } finally {
    await shutdown();
  }
  return 0;
}
