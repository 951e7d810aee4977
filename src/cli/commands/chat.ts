// `tslm chat`: an interactive chat with a model, rendered with its chat template.
import { parseArgs } from 'node:util';
import { createInterface } from 'node:readline';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { init, shutdown } from '../../backend/index.js';
import { loadModel } from '../../io/model.js';
import { generate } from '../../generate/generate.js';
import { applyChatTemplate, chatTemplateFromConfig, CHATML_TEMPLATE } from '../../tokenizers/chat.js';
import type { ChatMessage } from '../../tokenizers/chat.js';
import { readTokenizerConfig } from '../../tokenizers/load.js';
import { isMixedModalDir, MIXED_MODAL_FILE } from '../../vision/mixed_file.js';
import { steadyYoungGeneration } from '../heap.js';
import { UsageError } from '../args.js';
import { dtypeOption, kvDtypeOption, num, samplingFrom, samplingOptions } from './generate.js';
import { normalizeSpeculativeArgs, speculativeFrom, speculativeHelp, speculativeLine, speculativeOptions, speculativeUsage } from '../speculative.js';

export const usage = `tslm chat --model <hf-dir|file.bin|file.gguf> [--system "…"] [--tokenizer FILE] [--dtype f32|q8_0|q4_0|q4_k|q6_k|f16|bf16] [--kv-dtype f32|bf16]
      [--max-tokens N] [--temperature T] [--top-p P] … [--threads N] [--image-dir DIR] [--guidance S]
${speculativeUsage}
    Interactive chat (one message per line; /reset clears the history, /exit or EOF quits).
    Uses the chat template of tokenizer_config.json, or ChatML when the model has none.
    A mixed-modal model's images are shown as [image]; with --image-dir each is also written
    there as a PNG (image-1.png, …) and its path printed. Its image codes are drawn with
    classifier-free guidance (--guidance, default 3; 1: off; the text is not guided).
${speculativeHelp}`;

/** ChatML, for models without a template of their own. */
export const DEFAULT_CHAT_TEMPLATE = CHATML_TEMPLATE;

export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({ args: normalizeSpeculativeArgs(args), options: { model: { type: 'string' }, system: { type: 'string' }, tokenizer: { type: 'string' }, dtype: { type: 'string' }, 'kv-dtype': { type: 'string' }, 'image-dir': { type: 'string' }, guidance: { type: 'string' }, ...samplingOptions, ...speculativeOptions } });
  if (!values.model) { console.error('tslm chat: --model is required'); return 2; }
  const opts = samplingFrom(values);
  await init({ threads: num(values.threads, 'threads', (x) => Number.isInteger(x) && x > 0) });
  steadyYoungGeneration(); // again: starting the kernel threads reset V8's flags (see heap.ts)
  const rl = createInterface({ input: process.stdin, terminal: false });
  // Start buffering lines now: piped input may arrive (and end) while the model loads.
  const lines = rl[Symbol.asyncIterator]();
  try {
    const { model, tokenizer } = await loadModel(values.model, { tokenizer: values.tokenizer, dtype: dtypeOption(values.dtype), kvDtype: kvDtypeOption(values['kv-dtype']) });
    if (!tokenizer) throw new Error(`${values.model}: chat needs a tokenizer; pass --tokenizer`);
    model.eval();
    const speculative = await speculativeFrom(values, model);
    // The image code loads only for a mixed-modal model (as in tslm generate).
    const vision = isMixedModalDir(values.model) ? await import('../../vision/mixed_cli.js') : null;
    const mixed = vision ? await vision.loadMixedModal(values.model) : null;
    if (values['image-dir'] !== undefined && !mixed) throw new UsageError(`--image-dir needs a mixed-modal model (tslm mixed-modal train); ${values.model} is text-only (no ${MIXED_MODAL_FILE})`);
    const guidanceScale = num(values.guidance, 'guidance', (x) => x >= 0) ?? (speculative || !vision ? 1 : vision.IMAGE_GUIDANCE);
    if (values.guidance !== undefined && !mixed) throw new UsageError('--guidance: chat guides the image codes of a mixed-modal model; for text, use tslm generate --guidance');
    if (guidanceScale !== 1 && speculative) throw new UsageError('--guidance is not available with speculative decoding (--medusa, --draft-model, --lookup)');
    let saved = 0;
    let template = DEFAULT_CHAT_TEMPLATE, bosToken = '', eosToken = '<|im_end|>';
    const cfgFile = path.join(existsSync(values.model) && !values.model.endsWith('.gguf') && !values.model.endsWith('.bin') ? values.model : path.dirname(values.model), 'tokenizer_config.json');
    if (existsSync(cfgFile)) {
      const c = readTokenizerConfig(cfgFile);
      if (c.chat_template) ({ template, bosToken, eosToken } = chatTemplateFromConfig(c, 'default', cfgFile));
    }
    const stopIds = [tokenizer.eosId, tokenizer.specialTokens.get(eosToken)].filter((x): x is number => typeof x === 'number');
    const history: ChatMessage[] = values.system ? [{ role: 'system', content: values.system }] : [];
    console.error('tslm chat — type a message; /reset clears the history, /exit quits.');
    const prompt = () => { if (process.stdin.isTTY) process.stdout.write('> '); };
    prompt();
    for (let next = await lines.next(); !next.done; next = await lines.next()) {
      const line = next.value;
      if (line === '/exit') break;
      if (line === '/reset') { history.length = values.system ? 1 : 0; prompt(); continue; }
      if (!line.trim()) { prompt(); continue; }
      history.push({ role: 'user', content: line });
      const text = applyChatTemplate(history, { template, addGenerationPrompt: true, bosToken, eosToken });
      const ids = tokenizer.encode(text, { specials: true });
      const r = generate(model, ids, {
        ...opts, stopIds, stopStrings: eosToken ? [eosToken] : undefined, tokenizer, speculative: speculative ?? undefined,
        processors: vision && mixed ? [new vision.ImageSpanProcessor(mixed.vocab)] : undefined,
        // A mixed-modal model's image codes are drawn with classifier-free guidance (negative: the
        // document start; the text is not guided), as Chameleon draws.
        guidance: mixed && guidanceScale !== 1 ? { scale: guidanceScale, negative: [ids[0]], when: (s) => mixed.vocab.state(s).inImage } : undefined,
        onToken: (e) => process.stdout.write(mixed ? mixed.vocab.shown(e.id, e.text) : e.text),
      });
      process.stdout.write('\n');
      if (vision && mixed && values['image-dir'] !== undefined) {
        mkdirSync(values['image-dir'], { recursive: true });
        const S = mixed.imageTokenizer.config.image_size;
        for (const img of mixed.vocab.images(r.ids[0])) {
          const file = path.join(values['image-dir'], `image-${++saved}.png`);
          vision.writePng(file, { width: S, height: S, pixels: mixed.imageTokenizer.decodePixels(img.codes, 1) });
          console.error(`[image: ${file}]`);
        }
      }
      console.error(`[prefill ${r.stats.prefillTokensPerSecond.toFixed(1)} tok/s, decode ${r.stats.decodeTokensPerSecond.toFixed(1)} tok/s]`);
      if (r.stats.speculative) console.error(`[${speculativeLine(r.stats.speculative)}]`);
      // A mixed-modal answer keeps its image tokens in the history (as their special tokens' text).
      history.push({ role: 'assistant', content: mixed ? tokenizer.decode(r.ids[0]) : r.text![0] });
      prompt();
    }
    model.dispose();
  } finally {
    rl.close();
    await shutdown();
  }
  return 0;
}
