// A tiny chat model for the server tests: a byte-level BPE tokenizer trained on a few English and
// Chinese sentences, a randomly initialised 2-layer LLaMA (GQA) — or Mamba, or a Mixtral MoE —, ChatML in
// tokenizer_config.json, written as an HF directory. Its output is noise, but every token it emits
// decodes to text.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { trainByteLevelBPE } from '../../src/tokenizers/index.js';
import { createModel } from '../../src/models/index.js';
import { saveModel } from '../../src/io/index.js';
import { Generator } from '../../src/tensor/index.js';

export const CHATML = "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const TEXT = [
  'The quick brown fox jumps over the lazy dog.',
  'A language model predicts the next token of a text.',
  'Servers answer requests from many clients at once.',
  '床前明月光，疑是地上霜。举头望明月，低头思故乡。',
  'Hello, world! How are you today? I am fine, thank you.',
  '{"name": "tslm", "tokens": [1, 2, 3], "ok": true}',
].join('\n');

/** Write the tiny model into a fresh temporary directory (or `dir`) and return its path. */
export async function makeTinyModelDir(dir?: string, opts: { seed?: number; maxPositions?: number; family?: 'llama' | 'mamba' | 'mixtral' } = {}): Promise<string> {
  const out = dir ?? mkdtempSync(path.join(tmpdir(), 'tslm-serve-model-'));
  const tok = trainByteLevelBPE(Array(20).fill(TEXT), { vocabSize: 360, specialTokens: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] });
  const ids = { vocab_size: tok.vocabSize, bos_token_id: 0, eos_token_id: tok.specialTokens.get('<|im_end|>'), tie_word_embeddings: true };
  const config = opts.family === 'mamba'
    ? { model_type: 'mamba', hidden_size: 64, num_hidden_layers: 2, state_size: 8, ...ids }
    : {
      model_type: 'llama', hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
      max_position_embeddings: opts.maxPositions ?? 512, rms_norm_eps: 1e-5, rope_theta: 10000, ...ids,
      // a mixture of experts: 4 experts of 64, top-2 (Mixtral's layout)
      ...(opts.family === 'mixtral' ? { model_type: 'mixtral', intermediate_size: 64, num_local_experts: 4, num_experts_per_tok: 2 } : {}),
    };
  const model = createModel(config, 'tiny', { generator: new Generator(opts.seed ?? 1) });
  await saveModel(model, out, { tokenizer: tok });
  model.dispose();
  writeFileSync(path.join(out, 'tokenizer_config.json'), JSON.stringify({
    chat_template: CHATML, bos_token: '<|endoftext|>', eos_token: '<|im_end|>',
  }, null, 2));
  return out;
}

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'tslm.js');

/** Start `tslm serve` as a process and resolve with the URL it prints on its first stdout line. */
export function serveProcess(args: string[]): Promise<{ proc: ChildProcess; url: string }> {
  const p = spawn(process.execPath, [bin, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '', err = '';
    const timer = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 60000);
    p.stderr!.on('data', (d) => { err += d; });
    p.stdout!.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) { clearTimeout(timer); resolve({ proc: p, url: m[1] }); }
    });
    p.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited with ${code}: ${err}`)); });
  });
}
