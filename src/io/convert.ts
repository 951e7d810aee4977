// `tslm convert`: a model (HF directory, llama2.c checkpoint or GGUF) written in another of those
// formats, with its tokenizer turned into the target's form (tokenizer_convert.ts).
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { loadModel, saveModel, exportGguf, exportLlama2c } from './model.js';
import type { ModelFormat } from './model.js';
import { GGUF_FILE_TYPE } from './gguf_arch.js';
import type { GgufMatrixDType } from './gguf_arch.js';
import { IoError } from './errors.js';
import { writeAtomic, writeAll } from './bytes.js';
import { ggufTokenizerOf, llama2cTokenizerOf, tokenizerConfigFromGguf, tokenizerJsonFromGguf } from './tokenizer_convert.js';
import type { TokenizerExtras } from './tokenizer_convert.js';
import { HFTokenizer } from '../tokenizers/hf.js';
import { SentencePieceTokenizer } from '../tokenizers/sentencepiece.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { readTokenizerConfig } from '../tokenizers/load.js';
import { chatTemplateFromConfig } from '../tokenizers/chat.js';

export type ConvertTarget = 'hf' | 'gguf' | 'llama2c';
export const CONVERT_TARGETS: readonly ConvertTarget[] = ['hf', 'gguf', 'llama2c'];

/** The weights' types each target can hold (lower case, as the CLI spells them). */
export const CONVERT_DTYPES: Record<ConvertTarget, readonly string[]> = {
  hf: ['f32', 'f16', 'bf16'],
  gguf: Object.keys(GGUF_FILE_TYPE).map((d) => d.toLowerCase()),
  llama2c: ['f32'],
};

export interface ConvertOptions {
  /** The source: an HF directory, a llama2.c .bin or a .gguf. */
  model: string;
  to: ConvertTarget;
  /** Where to write: a directory for hf, a file for gguf and llama2c. */
  out: string;
  /** The weights' type in the output (default f32). */
  dtype?: string;
  /** A tokenizer file to use instead of the one found with the model. */
  tokenizer?: string;
  /**
   * llama2.c's file version: 0 (default, as llama2.c's export.py: the legacy header that run.c
   * reads) or 1 (the "ak42" header, which run.c does not read).
   */
  llama2cVersion?: 0 | 1;
}

export interface ConvertResult {
  from: ModelFormat;
  to: ConvertTarget;
  /** Files written. */
  files: string[];
  /** What the user should know (a tokenizer that could not be carried over, …). */
  notes: string[];
}

/**
 * tokenizer_config.json's chat template and add_bos_token beside an HF directory's model. A list
 * of named templates gives its "default" one, as chat does; a list without one is a note, not an
 * error (the weights still convert).
 */
function hfExtras(dir: string): TokenizerExtras & { file?: string; config?: Record<string, unknown>; note?: string } {
  const f = path.join(dir, 'tokenizer_config.json');
  if (!existsSync(f)) return {};
  const c = readTokenizerConfig(f);
  let chatTemplate: string | undefined, note: string | undefined;
  if (c.chat_template !== undefined) {
    try { chatTemplate = chatTemplateFromConfig(c, 'default', f).template; } catch (e) { note = `${(e as Error).message}: no chat template carried over`; }
  }
  return { chatTemplate, addBos: typeof c.add_bos_token === 'boolean' ? c.add_bos_token : undefined, file: f, config: c as Record<string, unknown>, note };
}

async function writeJson(file: string, value: unknown): Promise<void> {
  const bytes = new TextEncoder().encode(JSON.stringify(value, null, 2) + '\n');
  await writeAtomic(file, (fh) => writeAll(fh, bytes));
}

/** Convert a model file or directory to another format (see ConvertOptions). */
export async function convertModel(opts: ConvertOptions): Promise<ConvertResult> {
  const { to, out } = opts;
  if (!CONVERT_TARGETS.includes(to)) throw new IoError(out, `--to ${JSON.stringify(to)} is not one of ${CONVERT_TARGETS.join(', ')}`);
  const dtype = (opts.dtype ?? 'f32').toLowerCase();
  if (!CONVERT_DTYPES[to].includes(dtype)) {
    throw new IoError(out, `dtype ${JSON.stringify(opts.dtype)} cannot be written to ${to} (it holds ${CONVERT_DTYPES[to].join(', ')})`);
  }
  if (path.resolve(out) === path.resolve(opts.model)) throw new IoError(out, 'is the model being converted: write to another path');
  // The weights as stored (quantised and 16-bit matrices kept: a 1.1B-parameter Q4_0 model does
  // not fit the heap as f32); the writers take each as f32 values, one tensor at a time (lazy),
  // and quantise or round to the target's type from there.
  const { model, tokenizer, format, tokenizerSource, ggufTokenizer } = await loadModel(opts.model, { tokenizer: opts.tokenizer });
  const notes: string[] = [];
  const files: string[] = [];
  try {
    // What the source says beside the vocabulary: an HF directory's tokenizer_config.json, a GGUF's metadata.
    const hfx = format === 'hf' ? hfExtras(opts.model) : {};
    if ('note' in hfx && hfx.note) notes.push(hfx.note);
    let extras: TokenizerExtras = hfx;
    // A GGUF's own vocabulary is written as it is (unless --tokenizer replaces it).
    const sourceGguf = opts.tokenizer ? null : ggufTokenizer;
    if (sourceGguf) extras = { chatTemplate: sourceGguf.chatTemplate, addBos: sourceGguf.addBos };
    let tokFile = tokenizerSource?.path ?? opts.tokenizer ?? opts.model;
    // A SentencePiece-style tokenizer.json (LLaMA-2's) has no scores, which GGUF's llama vocabulary
    // and tokenizer.bin need: the tokenizer.model beside it has them.
    const spBeside = path.join(opts.model, 'tokenizer.model');
    let vocabTok: Tokenizer | null = tokenizer;
    if (format === 'hf' && !opts.tokenizer && tokenizer instanceof HFTokenizer && to !== 'hf' && existsSync(spBeside)) {
      const json = tokenizer.toJSON();
      if ((json.model as Record<string, unknown>).byte_fallback === true) { vocabTok = SentencePieceTokenizer.fromFile(spBeside); tokFile = spBeside; }
    }
    if (!tokenizer) notes.push(`no tokenizer found with ${opts.model}: the output has none (pass --tokenizer FILE)`);

    if (to === 'gguf') {
      if (!tokenizer) throw new IoError(opts.model, 'has no tokenizer, and a GGUF must carry one: pass --tokenizer FILE');
      const gtok = sourceGguf ?? ggufTokenizerOf(vocabTok!, tokFile, extras);
      mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
      await exportGguf(model, out, gtok, dtype.toUpperCase() as GgufMatrixDType, { lazy: true });
      files.push(out);
    } else if (to === 'hf') {
      await saveModel(model, out, { dtype: dtype.toUpperCase() as 'F32' | 'F16' | 'BF16', lazy: true });
      files.push(path.join(out, 'config.json'), path.join(out, 'model.safetensors'));
      if (tokenizer) {
        const gtok = sourceGguf ?? (tokenizer instanceof HFTokenizer ? null : ggufTokenizerOf(tokenizer, tokFile, extras));
        const json = gtok ? tokenizerJsonFromGguf(gtok, tokFile) : (tokenizer as HFTokenizer).toJSON();
        await writeJson(path.join(out, 'tokenizer.json'), json);
        files.push(path.join(out, 'tokenizer.json'));
        const cfg = gtok ? tokenizerConfigFromGguf(gtok) : hfTokenizerConfig(tokenizer as HFTokenizer, hfx);
        await writeJson(path.join(out, 'tokenizer_config.json'), cfg);
        files.push(path.join(out, 'tokenizer_config.json'));
      }
    } else {
      mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
      await exportLlama2c(model, out, { version: opts.llama2cVersion ?? 0, lazy: true });
      files.push(out);
      if (tokenizer) {
        let l2c;
        try {
          l2c = llama2cTokenizerOf(vocabTok!, tokFile);
        } catch (e) {
          notes.push(`${(e as Error).message}: no tokenizer.bin written`);
        }
        if (l2c) {
          const tb = path.join(path.dirname(out), 'tokenizer.bin');
          const bytes = l2c.serialize();
          await writeAtomic(tb, (fh) => writeAll(fh, bytes));
          files.push(tb);
        }
      }
    }
  } finally {
    model.dispose();
  }
  return { from: format, to, files, notes };
}

/** tokenizer_config.json for a tokenizer.json source: the one beside it, else its special tokens. */
function hfTokenizerConfig(tok: HFTokenizer, extras: ReturnType<typeof hfExtras>): Record<string, unknown> {
  if (extras.config) return extras.config;
  const name = (id: number | null) => (id === null ? undefined : tok.idToToken(id));
  const out: Record<string, unknown> = { tokenizer_class: 'PreTrainedTokenizerFast' };
  const bos = name(tok.bosId), eos = name(tok.eosId);
  if (bos !== undefined) out.bos_token = bos;
  if (eos !== undefined) out.eos_token = eos;
  return out;
}
