// Base inputs for the fuzzer: one small valid file (or directory) per format, written by the
// library itself into a temporary directory in a few seconds.
import { mkdirSync, writeFileSync, cpSync } from 'node:fs';
import path from 'node:path';
import { init } from '../backend/index.js';
import { createModel } from '../models/index.js';
import { saveModel, exportGguf, exportLlama2c } from '../io/model.js';
import type { GgufTokenizer } from '../io/gguf_arch.js';
import { trainByteLevelBPE } from '../tokenizers/trainer.js';
import { Llama2cTokenizer } from '../tokenizers/llama2c.js';
import { applyLora, saveAdapter } from '../lora/index.js';
import { trainNgram, writeArpa, KeyedVectors } from '../classic/index.js';
import type { CausalLM } from '../models/index.js';
import { Rng } from './rng.js';
import { runTraining } from '../train/run.js';

export const CORPUS = [
  'the quick brown fox jumps over the lazy dog',
  'a cat sat on the mat and the dog sat on the log',
  'the dog chased the cat around the garden',
  'she sells sea shells by the sea shore',
  'the rain in spain stays mainly in the plain',
  'a stitch in time saves nine',
  'all that glitters is not gold',
  'the early bird catches the worm',
  'the cat and the dog are friends',
  'every cloud has a silver lining',
];

export interface BaseInputs {
  dir: string;
  /** HF directory: config.json, model.safetensors, tokenizer.json, tokenizer_config.json. */
  hf: string;
  gguf: string;
  llama2c: string;
  llama2cTokenizer: string;
  peft: string;
  arpa: string;
  w2vText: string;
  w2vBin: string;
  trainJsonl: string;
  trainConfig: string;
  alpacaJson: string;
  alpacaJsonl: string;
  pairs: string;
  schema: string;
  instance: string;
  /** A `tslm train` output folder after 2 steps: checkpoint/, tokens.bin, metrics.jsonl (what --resume reads). */
  trainRun: string;
}

const LLAMA = { model_type: 'llama', hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 256, rms_norm_eps: 1e-5, rope_theta: 10000 };

/** <unk>, <s>, </s>, the 256 byte tokens, then a few pieces: `size` tokens. */
function spmVocab(size: number): { tokens: string[]; scores: number[]; types: number[] } {
  const tokens = ['<unk>', '<s>', '</s>'], scores = [0, 0, 0], types = [2, 3, 3];
  for (let b = 0; b < 256; b++) { tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`); scores.push(0); types.push(6); }
  const pieces = ['▁', ...'abcdefghijklmnopqrstuvwxyz', '▁the', '▁a', 'he', 'in', 'er', 'an', 'th', 'at', 'on', 'hi'];
  for (let i = 0; tokens.length < size; i++) { tokens.push(i < pieces.length ? pieces[i] : `▁w${i}`); scores.push(-i); types.push(1); }
  return { tokens, scores, types };
}

function weights(m: CausalLM, seed: number): void {
  // Larger-than-default random weights so the tiny model's output varies with the prompt.
  const r = new Rng(seed);
  for (const [, t] of m.namedParameters()) {
    const d = t.data() as Float32Array;
    for (let i = 0; i < d.length; i++) d[i] = (r.next() - 0.5) * 0.5;
  }
}

/** Write every base input under `dir` (created). */
export async function makeBaseInputs(dir: string): Promise<BaseInputs> {
  await init({ threads: 1 });
  mkdirSync(dir, { recursive: true });
  const p = (f: string): string => path.join(dir, f);

  // HF directory with a byte-level BPE tokenizer.json trained on the corpus
  // A long special token and a 4,096-token context, as large-vocabulary models have: a prompt of
  // hundreds of kilobytes then passes the server's byte bound and has to be tokenised.
  const tok = trainByteLevelBPE(CORPUS.join('\n'), { vocabSize: 300, specialTokens: ['<s>', '</s>', `<|${'long'.repeat(60)}|>`] });
  const hfModel = createModel({ ...LLAMA, max_position_embeddings: 4096, vocab_size: tok.vocabSize, bos_token_id: tok.bosId ?? 0, eos_token_id: tok.eosId ?? 1 });
  weights(hfModel, 1);
  const hf = p('hf');
  await saveModel(hfModel, hf, { tokenizer: tok });
  writeFileSync(path.join(hf, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>', add_bos_token: true, model_max_length: 256,
    chat_template: "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}" }, null, 2));

  // GGUF and llama2.c: a SentencePiece-style vocabulary of 300 tokens
  const v = spmVocab(300);
  const spModel = createModel({ ...LLAMA, vocab_size: 300, bos_token_id: 1, eos_token_id: 2 });
  weights(spModel, 2);
  const gtok: GgufTokenizer = { model: 'llama', pre: 'default', tokens: v.tokens, scores: v.scores, tokenTypes: v.types, bosId: 1, eosId: 2, unkId: 0, addBos: true, addEos: false };
  const gguf = p('model.gguf');
  await exportGguf(spModel, gguf, gtok);
  const l2c = p('l2c');
  mkdirSync(l2c);
  const llama2c = path.join(l2c, 'model.bin');
  await exportLlama2c(spModel, llama2c);
  const l2cVocab = v.tokens.map((t, i) => (i === 1 ? '\n<s>\n' : i === 2 ? '\n</s>\n' : t.replaceAll('▁', ' ')));
  const l2ct = new Llama2cTokenizer(l2cVocab, Float32Array.from(v.scores));
  const llama2cTokenizer = path.join(l2c, 'tokenizer.bin');
  writeFileSync(llama2cTokenizer, l2ct.serialize());

  // PEFT adapter on the HF model
  const peft = p('peft');
  applyLora(hfModel, { r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj'], seed: 3 });
  await saveAdapter(hfModel, peft, { baseModel: hf });
  hfModel.dispose(); spModel.dispose();

  // ARPA and word2vec
  const sentences = CORPUS.map((s) => s.split(' '));
  const arpa = p('lm.arpa');
  writeArpa(trainNgram(sentences, { order: 3, discountFallback: true }), arpa);
  const words = [...new Set(sentences.flat())];
  const r = new Rng(4), dim = 8;
  const kv = new KeyedVectors(words, dim, Float32Array.from({ length: words.length * dim }, () => r.next() - 0.5));
  const w2vText = p('vectors.txt'), w2vBin = p('vectors.bin');
  kv.save(w2vText); kv.save(w2vBin, { binary: true });

  // data files
  const trainJsonl = p('train.jsonl');
  writeFileSync(trainJsonl, Array.from({ length: 40 }, (_, i) => JSON.stringify({ text: CORPUS[i % CORPUS.length] + ` ${i}.` })).join('\n') + '\n');
  const trainConfig = p('train_config.json');
  writeFileSync(trainConfig, JSON.stringify({ ...LLAMA, vocab_size: tok.vocabSize }));
  const rows = CORPUS.map((s, i) => ({ instruction: `Repeat sentence ${i}.`, input: i % 2 ? '' : s.split(' ')[0], output: s }));
  const alpacaJson = p('alpaca.json'), alpacaJsonl = p('alpaca.jsonl');
  writeFileSync(alpacaJson, JSON.stringify(rows, null, 2));
  writeFileSync(alpacaJsonl, rows.map((x) => JSON.stringify(x)).join('\n') + '\n');
  const pairs = p('pairs.jsonl');
  writeFileSync(pairs, CORPUS.map((s, i) => JSON.stringify({ prompt: `Say sentence ${i}: `, chosen: s, rejected: CORPUS[(i + 3) % CORPUS.length] })).join('\n') + '\n');
  const schema = p('schema.json'), instance = p('instance.json');
  writeFileSync(schema, JSON.stringify({ type: 'object', properties: { name: { type: 'string', maxLength: 20 }, age: { type: 'integer', minimum: 0 }, tags: { type: 'array', items: { enum: ['a', 'b'] } } }, required: ['name'] }));
  writeFileSync(instance, JSON.stringify({ name: 'cat', age: 3, tags: ['a'] }));
  // A training run to resume: 2 steps, checkpointed at the end.
  const trainRun = p('run');
  const run = await runTraining({
    data: trainJsonl, config: trainConfig, tokenizer: path.join(hf, 'tokenizer.json'), out: trainRun,
    steps: 2, batchSize: 2, seqLen: 16, evalEvery: 0, log: () => {}, progress: () => {},
  });
  run.model.dispose();
  return { dir, hf, gguf, llama2c, llama2cTokenizer, peft, arpa, w2vText, w2vBin, trainJsonl, trainConfig, alpacaJson, alpacaJsonl, pairs, schema, instance, trainRun };
}

/** Copy a base directory (a mutant replaces one file in the copy). */
export function copyDir(from: string, to: string): void { cpSync(from, to, { recursive: true }); }
