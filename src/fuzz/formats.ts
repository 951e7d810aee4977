// Every format the fuzzer mutates: which base files a mutant's workspace holds, which file(s)
// get mutated and by which mutators, and the user-facing command that reads them.
import path from 'node:path';
import type { BaseInputs } from './inputs.js';
import {
  type Mutator, type Expect, TEXT_MUTATORS, JSON_MUTATORS, SAFETENSORS_MUTATORS, GGUF_MUTATORS, LLAMA2C_MUTATORS, TOKENIZER_BIN_MUTATORS,
  ARPA_MUTATORS, W2V_TEXT_MUTATORS, W2V_BIN_MUTATORS, SCHEMA_MUTATORS, truncateRandom, emptyFile, byteFlip, appendGarbage, jsonMutator, onJsonlLine,
  truncateAt, text,
} from './mutators.js';

export interface Target {
  /** Path inside the workspace of the file that gets mutated. */
  file: string;
  mutators: Record<string, Mutator>;
}
export interface FormatSpec {
  name: string;
  /** Base files or directories copied into the workspace: [source, name in the workspace]. */
  files: (b: BaseInputs) => [string, string][];
  targets: Target[];
  /** The command's arguments (after `tslm`), relative to the workspace. */
  args: string[];
  /** The command prints numbers that must be finite (scores, similarities, losses). */
  checkOutput: boolean;
  /** Exit code 1 with this on stdout is a normal answer, not an error (schema check's 'reject'). */
  exit1Answer?: RegExp;
}

const generic = (truncExpect: Expect, emptyExpect: Expect): Record<string, Mutator> => ({
  'truncate-random': truncateRandom(truncExpect), 'byte-flip': byteFlip, 'append-garbage': appendGarbage, empty: emptyFile(emptyExpect),
});
const jsonlLines: Record<string, Mutator> = Object.fromEntries(Object.entries(JSON_MUTATORS).map(([k, m]) => [`line-${k}`, onJsonlLine(m)]));

/** A config.json field set to a value the model cannot have. */
const CONFIG_FIELDS = ['num_hidden_layers', 'hidden_size', 'intermediate_size', 'num_attention_heads', 'num_key_value_heads', 'vocab_size', 'head_dim'];
const configField: Mutator = (b, r) => {
  let cfg: Record<string, unknown>;
  try { cfg = JSON.parse(text(b)); } catch { return null; }
  const f = r.pick(CONFIG_FIELDS), v = r.pick([0, -1, 1e8, 1e9, 2 ** 31 - 1, 2 ** 32, 1.5, '16', null, 3]);
  if (cfg[f] === v) return null;
  return { kind: `config-${f}=${JSON.stringify(v)}`, expect: 'reject', data: new TextEncoder().encode(JSON.stringify({ ...cfg, [f]: v })) };
};
const configLoose: Mutator = (b, r) => {
  let cfg: Record<string, unknown>;
  try { cfg = JSON.parse(text(b)); } catch { return null; }
  const f = r.pick(['max_position_embeddings', 'rope_theta', 'rms_norm_eps', 'bos_token_id', 'eos_token_id', 'model_type', 'tie_word_embeddings', 'torch_dtype', 'rope_scaling']);
  const v = r.pick([0, -1, 1e9, 2 ** 32, 1e308, 'x', null, [], {}, true]);
  return { kind: `config-${f}=${JSON.stringify(v)}`, expect: 'any', data: new TextEncoder().encode(JSON.stringify({ ...cfg, [f]: v })) };
};

/** tokenizer.json: a vocabulary or added-token id set out of range. */
const tokenizerIds: Mutator = (b, r) => {
  let doc: { model?: { vocab?: Record<string, number>; type?: string }; added_tokens?: { id: number }[] };
  try { doc = JSON.parse(text(b)); } catch { return null; }
  const v = r.pick([1e9, 2 ** 31 - 1, 2 ** 32, -1, 1.5]);
  if (r.bool() && doc.added_tokens?.length) {
    const t = r.pick(doc.added_tokens); t.id = v;
    return { kind: `tokenizer.json-added_tokens id=${v}`, expect: 'reject', data: new TextEncoder().encode(JSON.stringify(doc)) };
  }
  const vocab = doc.model?.vocab; if (!vocab) return null;
  const k = r.pick(Object.keys(vocab)); vocab[k] = v;
  return { kind: `tokenizer.json-vocab id=${v}`, expect: 'reject', data: new TextEncoder().encode(JSON.stringify(doc)) };
};
const tokenizerModelType: Mutator = (b, r) => {
  let doc: { model?: { type?: string } };
  try { doc = JSON.parse(text(b)); } catch { return null; }
  if (!doc.model) return null;
  doc.model.type = r.pick(['Unigram', 'WordPiece', 'XYZ', '']);
  return { kind: `tokenizer.json-model.type=${doc.model.type}`, expect: 'reject', data: new TextEncoder().encode(JSON.stringify(doc)) };
};

/** tokens.bin: one token id set out of the vocabulary (or to a huge value). */
const tokenId: Mutator = (b, r) => {
  if (b.length < 8) return null;
  const out = new Uint8Array(b);
  const dv = new DataView(out.buffer);
  const width = 4; // a little-endian int32 per token (see TokenFile)
  const i = r.int(Math.floor(out.length / width)) * width;
  const v = r.pick([5000, 65535, 2 ** 31 - 1, 2 ** 32 - 1]); // the last is -1 as an int32
  dv.setUint32(i, v, true);
  return { kind: `tokens.bin id=${v} at byte ${i}`, expect: 'reject', data: out };
};

const textTarget = (extra: Record<string, Mutator>, truncExpect: Expect, emptyExpect: Expect): Record<string, Mutator> => ({ ...extra, ...TEXT_MUTATORS, ...generic(truncExpect, emptyExpect) });

/** ARPA: cutting anywhere before the last line leaves declared n-grams missing. */
const arpaTruncate: Mutator = (b, r) => {
  const end = text(b).lastIndexOf('\\end\\');
  const at = 1 + r.int(b.length - 1);
  return truncateAt(b, at, 'truncate-random', at <= end ? 'reject' : 'any');
};
/** word2vec text: cutting anywhere but the final newline drops a word or a component. */
const w2vTruncate: Mutator = (b, r) => { const at = 1 + r.int(b.length - 2); return truncateAt(b, at, 'truncate-random', 'reject'); };

const safetensors = { ...SAFETENSORS_MUTATORS, ...generic('reject', 'reject') };
const json = (extra: Record<string, Mutator> = {}): Record<string, Mutator> => ({ ...extra, ...JSON_MUTATORS, ...generic('any', 'any'), bom: TEXT_MUTATORS.bom, 'invalid-utf8': TEXT_MUTATORS['invalid-utf8'] });

export const FORMATS: FormatSpec[] = [
  {
    name: 'HF dir / safetensors', files: (b) => [[b.hf, 'model']], checkOutput: false,
    targets: [
      { file: 'model/config.json', mutators: json({ 'config-field': configField, 'config-field-2': configField, 'config-loose': configLoose }) },
      { file: 'model/model.safetensors', mutators: safetensors },
    ],
    args: ['generate', '--model', 'model', '--prompt', 'hi', '--max-tokens', '4'],
  },
  {
    name: 'tokenizer.json', files: (b) => [[b.hf, 'model']], checkOutput: false,
    targets: [
      { file: 'model/tokenizer.json', mutators: json({ ids: tokenizerIds, 'ids-2': tokenizerIds, 'model-type': tokenizerModelType, ...TEXT_MUTATORS }) },
      { file: 'model/tokenizer_config.json', mutators: json() },
    ],
    args: ['generate', '--model', 'model', '--prompt', 'hi there 中文', '--max-tokens', '4'],
  },
  {
    name: 'GGUF', files: (b) => [[b.gguf, 'model.gguf']], checkOutput: false,
    targets: [{ file: 'model.gguf', mutators: { ...GGUF_MUTATORS, 'header-field-2': GGUF_MUTATORS['header-field'], 'header-field-3': GGUF_MUTATORS['header-field'], ...generic('reject', 'reject') } }],
    args: ['generate', '--model', 'model.gguf', '--prompt', 'hi', '--max-tokens', '4'],
  },
  {
    name: 'llama2.c', files: (b) => [[path.dirname(b.llama2c), 'l2c']], checkOutput: false,
    targets: [
      { file: 'l2c/model.bin', mutators: { ...LLAMA2C_MUTATORS, 'header-field-2': LLAMA2C_MUTATORS['header-field'], ...generic('reject', 'reject') } },
      { file: 'l2c/tokenizer.bin', mutators: { ...TOKENIZER_BIN_MUTATORS, ...generic('reject', 'reject') } },
    ],
    args: ['generate', '--model', 'l2c/model.bin', '--tokenizer', 'l2c/tokenizer.bin', '--prompt', 'hi', '--max-tokens', '4'],
  },
  {
    name: 'PEFT adapter', files: (b) => [[b.hf, 'model'], [b.peft, 'adapter']], checkOutput: false,
    targets: [
      { file: 'adapter/adapter_config.json', mutators: json({ r: jsonMutator('huge-number', 'reject', /^\/r$/), alpha: jsonMutator('wrong-type', 'reject', /^\/lora_alpha$/), targets: jsonMutator('wrong-type', 'any', /^\/target_modules/) }) },
      { file: 'adapter/adapter_model.safetensors', mutators: safetensors },
    ],
    args: ['generate', '--model', 'model', '--adapter', 'adapter', '--prompt', 'hi', '--max-tokens', '4'],
  },
  {
    name: 'ARPA', files: (b) => [[b.arpa, 'lm.arpa']], checkOutput: true,
    targets: [{ file: 'lm.arpa', mutators: { ...ARPA_MUTATORS, ...textTarget({}, 'reject', 'reject'), 'truncate-random': arpaTruncate } }],
    args: ['ngram', 'score', '--model', 'lm.arpa', '--text', 'the cat sat on the mat\nthe dog 中文'],
  },
  {
    name: 'word2vec text', files: (b) => [[b.w2vText, 'vectors.txt']], checkOutput: true,
    targets: [{ file: 'vectors.txt', mutators: { ...W2V_TEXT_MUTATORS, ...textTarget({}, 'reject', 'reject'), 'truncate-random': w2vTruncate } }],
    args: ['word2vec', 'similar', '--vectors', 'vectors.txt', 'cat', '--topn', '3'],
  },
  {
    name: 'word2vec binary', files: (b) => [[b.w2vBin, 'vectors.bin']], checkOutput: true,
    targets: [{ file: 'vectors.bin', mutators: { ...W2V_BIN_MUTATORS, 'header-count-2': W2V_BIN_MUTATORS['header-count'], ...generic('reject', 'reject') } }],
    args: ['word2vec', 'similar', '--vectors', 'vectors.bin', 'cat', '--topn', '3'],
  },
  {
    name: 'JSONL (train)', files: (b) => [[b.trainJsonl, 'train.jsonl'], [b.trainConfig, 'config.json'], [path.join(b.hf, 'tokenizer.json'), 'tokenizer.json']], checkOutput: true,
    targets: [{ file: 'train.jsonl', mutators: { ...jsonlLines, ...textTarget({}, 'any', 'any') } }],
    args: ['train', '--data', 'train.jsonl', '--config', 'config.json', '--tokenizer', 'tokenizer.json', '--out', 'out', '--steps', '1', '--batch-size', '2', '--seq-len', '16', '--eval-every', '0'],
  },
  {
    // --resume reads the run's checkpoint (weights, optimizer moments, trainer state with the
    // run's options and data-loader position), its token file and its metrics.
    name: 'training checkpoint (resume)',
    files: (b) => [[b.trainRun, 'run'], [b.trainJsonl, 'train.jsonl'], [b.trainConfig, 'config.json'], [path.join(b.hf, 'tokenizer.json'), 'tokenizer.json']],
    checkOutput: true,
    targets: [
      { file: 'run/checkpoint/trainer_state.json', mutators: json({ 'state-field': jsonMutator('huge-number', 'any', /^\/(state|train|options|optimizerSteps)\//), 'state-type': jsonMutator('wrong-type', 'any', /^\/(state|train|options|optimizerSteps)\//), 'options-field': jsonMutator('huge-number', 'any', /^\/options\//), 'options-type': jsonMutator('wrong-type', 'any', /^\/options\//) }) },
      { file: 'run/checkpoint/optimizer.safetensors', mutators: safetensors },
      { file: 'run/checkpoint/model.safetensors', mutators: safetensors },
      { file: 'run/tokens.bin', mutators: { ...generic('any', 'any'), 'token-id': tokenId } },
      { file: 'run/metrics.jsonl', mutators: { ...jsonlLines, ...textTarget({}, 'any', 'any') } },
    ],
    args: ['train', '--data', 'train.jsonl', '--config', 'config.json', '--tokenizer', 'tokenizer.json', '--out', 'run', '--steps', '3', '--batch-size', '2', '--seq-len', '16', '--eval-every', '0', '--resume'],
  },
  {
    name: 'Alpaca (finetune)', files: (b) => [[b.hf, 'model'], [b.alpacaJson, 'alpaca.json'], [b.alpacaJsonl, 'alpaca.jsonl']], checkOutput: true,
    targets: [
      { file: 'alpaca.json', mutators: { ...json(), ...TEXT_MUTATORS } },
      { file: 'alpaca.jsonl', mutators: { ...jsonlLines, ...textTarget({}, 'any', 'any') } },
    ],
    // the data file is the mutated one (alpaca.json or alpaca.jsonl), filled in by the runner
    args: ['finetune', '--model', 'model', '--data', '{target}', '--out', 'out', '--steps', '1', '--batch-size', '1', '--max-length', '256'],
  },
  {
    name: 'preference pairs (dpo)', files: (b) => [[b.hf, 'model'], [b.pairs, 'pairs.jsonl']], checkOutput: true,
    targets: [{ file: 'pairs.jsonl', mutators: { ...jsonlLines, ...textTarget({}, 'any', 'any') } }],
    args: ['dpo', '--model', 'model', '--data', 'pairs.jsonl', '--out', 'out', '--steps', '1', '--batch-size', '1', '--max-length', '64'],
  },
  {
    name: 'JSON Schema', files: (b) => [[b.schema, 'schema.json'], [b.instance, 'instance.json'], [path.join(b.hf, 'tokenizer.json'), 'tokenizer.json']], checkOutput: false,
    targets: [{ file: 'schema.json', mutators: { ...SCHEMA_MUTATORS, ...json(), ...TEXT_MUTATORS } }],
    exit1Answer: /: reject\b/,
    args: ['schema', 'check', '--schema', 'schema.json', '--tokenizer', 'tokenizer.json', 'instance.json'],
  },
];

export function findFormat(name: string): FormatSpec | undefined {
  const norm = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]/g, '');
  return FORMATS.find((f) => norm(f.name) === norm(name)) ?? FORMATS.find((f) => norm(f.name).startsWith(norm(name))) ?? FORMATS.find((f) => norm(f.name).includes(norm(name)));
}
