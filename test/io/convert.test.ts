// tslm convert: models between HF directories, GGUF and llama2.c, with their tokenizers.
// References: sentencepiece's own ids (test/fixtures/tokenizers/sp_expected.json) for the
// tokenizer.json written from a SentencePiece vocabulary, @huggingface/tokenizers loading the
// tokenizer.json files we write, and llama.cpp (node-llama-cpp, skipped when absent) tokenising
// and decoding the GGUF files we write.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readFileSync, existsSync, writeFileSync } from 'node:fs';
import { Tokenizer as RefTokenizer } from '@huggingface/tokenizers';
import { init } from '../../src/backend/index.js';
import { heapStats, resetHeapPeak } from '../../src/backend/heap.js';
import {
  convertModel, loadModel, writeHfDir, readHfDir, readLlama2c, readModelGguf, ggufTokenizerOf, tokenizerJsonFromGguf, tokenizerFromGguf, toFloat32,
  writeModelGguf,
} from '../../src/io/index.js';
import type { RawTensor } from '../../src/io/index.js';
import { HFTokenizer, SentencePieceTokenizer, Llama2cTokenizer, trainByteLevelBPE } from '../../src/tokenizers/index.js';
import { tempDir, tinyLlamaConfig, tinyLlamaTensors } from './util.js';
import { evalWithLlamaCpp } from './llamacpp_util.js';
import { loadNodeLlamaCpp } from '../../bench/peers/nlc.js';
import type { NodeLlamaCpp } from '../../bench/peers/nlc.js';
import { main } from '../../src/cli/main.js';

const FIX = path.join(process.cwd(), 'test', 'fixtures', 'tokenizers');
const expected = JSON.parse(readFileSync(path.join(FIX, 'sp_expected.json'), 'utf8')) as {
  models: Record<string, { cases: Array<{ text: string; ids: number[] }> }>;
};

const TEXTS = [
  'Hello world', 'The jury said, "It\'s 1,234.5 dollars!"', '  leading and   inner  spaces ', 'tabs\tand\nnewlines\n\n',
  '中文的文字，也要一样。', 'emoji 🙂 and accents: café naïve', "don't we'll they're", '',
];

let llama: NodeLlamaCpp | null = null;
let skipLlamaCpp: string | false = false;
before(async () => {
  await init();
  const r = await loadNodeLlamaCpp();
  if ('error' in r) skipLlamaCpp = r.error;
  else llama = r.llama;
});
after(async () => { await llama?.dispose(); });

const CORPUS = [
  'the quick brown fox jumps over the lazy dog', 'a jury of twelve said the verdict was fair', '中文的文字，也要一样。天下大事，分久必合。',
  'numbers like 1,234 and 2026 appear here', 'she said: "it\'s time"', ...Array.from({ length: 20 }, (_, i) => `line ${i} of the story went on and on`),
].join('\n');

function sameTensors(a: readonly RawTensor[], b: readonly RawTensor[]): void {
  const byName = new Map(b.map((t) => [t.name, t]));
  assert.equal(a.length, b.length);
  for (const t of a) {
    const u = byName.get(t.name);
    assert.ok(u, `${t.name} missing after the round trip`);
    assert.deepEqual(u.shape, t.shape, t.name);
    assert.deepEqual(toFloat32(u), toFloat32(t), t.name);
  }
}

/** A tiny LLaMA HF directory with a byte-level BPE tokenizer trained on CORPUS (with Chinese) and a chat template. */
async function byteLevelModel(dir: string): Promise<{ dir: string; tok: HFTokenizer; tensors: RawTensor[] }> {
  const tok = trainByteLevelBPE(CORPUS, { vocabSize: 300, specialTokens: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] });
  const cfg = tinyLlamaConfig({ vocab_size: tok.vocabSize, bos_token_id: 0, eos_token_id: 0 });
  const tensors = tinyLlamaTensors(cfg, 3);
  const hf = path.join(dir, 'hf');
  await writeHfDir(hf, { config: cfg, tensors });
  tok.save(path.join(hf, 'tokenizer.json'));
  writeFileSync(path.join(hf, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<|endoftext|>', eos_token: '<|im_end|>', add_bos_token: false, chat_template: "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}" }));
  return { dir: hf, tok, tensors };
}

test('HF (byte-level BPE) → GGUF → HF: the same weights bit for bit, the same tokenizer (gpt2 vocabulary), the chat template carried', async (t) => {
  const dir = tempDir(t);
  const src = await byteLevelModel(dir);
  const gguf = path.join(dir, 'm.gguf');
  await convertModel({ model: src.dir, to: 'gguf', out: gguf });
  const g = await readModelGguf(gguf);
  assert.equal(g.tokenizer!.model, 'gpt2');
  assert.equal(g.tokenizer!.pre, 'gpt-2');
  assert.match(g.tokenizer!.chatTemplate!, /im_start/);
  const back = path.join(dir, 'back');
  await convertModel({ model: gguf, to: 'hf', out: back });
  sameTensors(src.tensors, (await readHfDir(back)).tensors);
  // The tokenizer.json written from the GGUF encodes as the original, here and in @huggingface/tokenizers.
  const json = JSON.parse(readFileSync(path.join(back, 'tokenizer.json'), 'utf8'));
  const mine = new HFTokenizer(json);
  const ref = new RefTokenizer(json, {});
  for (const text of [...TEXTS, '<|im_start|>user\nhi<|im_end|>']) {
    const want = src.tok.encode(text);
    assert.deepEqual(mine.encode(text), want, text);
    assert.deepEqual(ref.encode(text, { add_special_tokens: false }).ids, want, `@huggingface/tokenizers on ${JSON.stringify(text)}`);
  }
  const cfg = JSON.parse(readFileSync(path.join(back, 'tokenizer_config.json'), 'utf8'));
  assert.equal(cfg.eos_token, '<|im_end|>');
  assert.equal(cfg.add_bos_token, false);
  // Loading the GGUF itself gives that tokenizer too (it had none for gpt2 vocabularies before).
  const loaded = await loadModel(gguf);
  try {
    for (const text of TEXTS) assert.deepEqual(loaded.tokenizer!.encode(text), src.tok.encode(text), text);
  } finally {
    loaded.model.dispose();
  }
});

test('a list of named chat templates: its "default" one goes into the GGUF; a list without one converts with a note and no template', async (t) => {
  const dir = tempDir(t);
  const src = await byteLevelModel(dir);
  const cfgFile = path.join(src.dir, 'tokenizer_config.json');
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
  const named = (names: string[]) => names.map((name) => ({ name, template: `{{ '${name}' }}{% for m in messages %}{{ m['content'] }}{% endfor %}` }));
  writeFileSync(cfgFile, JSON.stringify({ ...cfg, chat_template: named(['tool_use', 'default']) }));
  const a = path.join(dir, 'a.gguf');
  const ra = await convertModel({ model: src.dir, to: 'gguf', out: a });
  assert.match((await readModelGguf(a)).tokenizer!.chatTemplate!, /^\{\{ 'default' \}\}/);
  assert.ok(!ra.notes.some((n) => /chat_template/.test(n)), ra.notes.join('; '));
  writeFileSync(cfgFile, JSON.stringify({ ...cfg, chat_template: named(['tool_use', 'rag']) }));
  const b = path.join(dir, 'b.gguf');
  const rb = await convertModel({ model: src.dir, to: 'gguf', out: b });
  assert.equal((await readModelGguf(b)).tokenizer!.chatTemplate, undefined);
  const note = rb.notes.find((n) => /chat_template/.test(n));
  assert.ok(note, `no note about the chat template in ${JSON.stringify(rb.notes)}`);
  assert.match(note, /no template named "default".*"tool_use", "rag".*no chat template carried over/);
});

test('llama.cpp reads the gpt2 vocabulary we write: same ids for every text, and the same greedy tokens as tslm on the converted file', async (t) => {
  if (skipLlamaCpp) return t.skip(skipLlamaCpp);
  const dir = tempDir(t);
  const src = await byteLevelModel(dir);
  const gguf = path.join(dir, 'm.gguf');
  await convertModel({ model: src.dir, to: 'gguf', out: gguf });
  const model = await llama!.loadModel({ modelPath: gguf, gpuLayers: 0 });
  try {
    for (const text of TEXTS) {
      assert.deepEqual([...model.tokenize(text)].map(Number), src.tok.encode(text), `llama.cpp tokenize ${JSON.stringify(text)}`);
    }
    assert.deepEqual([...model.tokenize('<|im_start|>user', true)].map(Number), src.tok.encode('<|im_start|>user'));
  } finally {
    await model.dispose();
  }
  const prompt = src.tok.encode('the jury said');
  const theirs = await evalWithLlamaCpp(llama!, gguf, prompt, 8, src.tok.vocabSize, { experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
  const { generate } = await import('../../src/generate/index.js');
  const loaded = await loadModel(gguf);
  try {
    const out = generate(loaded.model, prompt, { maxNewTokens: 8, temperature: 0, stopIds: [] });
    assert.deepEqual(out.ids[0], theirs.greedy);
  } finally {
    loaded.model.dispose();
  }
});

test('a SentencePiece model → GGUF (llama vocabulary) → tokenizer.json gives sentencepiece\'s own ids (sp_expected.json), in tslm and @huggingface/tokenizers', () => {
  const file = path.join(FIX, 'sp_bpe.model');
  const sp = SentencePieceTokenizer.fromFile(file);
  const gtok = ggufTokenizerOf(sp, file);
  assert.equal(gtok.model, 'llama');
  const json = tokenizerJsonFromGguf(gtok, file);
  const mine = new HFTokenizer(json);
  const ref = new RefTokenizer(json, {});
  const viaGguf = tokenizerFromGguf(gtok, file);
  let n = 0;
  for (const c of expected.models.sp_bpe.cases) {
    // The GGUF path has no user-defined-symbol or digit-splitting rules of its own (as in llama.cpp): skip texts that need them.
    if (c.text.includes('<|user|>')) continue;
    assert.deepEqual(mine.encode(c.text), c.ids, `tokenizer.json: ${JSON.stringify(c.text)}`);
    assert.deepEqual(ref.encode(c.text, { add_special_tokens: false }).ids, c.ids, `@huggingface/tokenizers: ${JSON.stringify(c.text)}`);
    assert.deepEqual(viaGguf.encode(c.text), c.ids, `GGUF vocabulary: ${JSON.stringify(c.text)}`);
    assert.equal(mine.decode(c.ids), sp.decode(c.ids), `decode ${JSON.stringify(c.text)}`);
    n++;
  }
  assert.ok(n >= 10, `${n} cases compared`);
});

test('a llama2.c tokenizer.bin → GGUF → tokenizer.json and back to tokenizer.bin: the same ids and the same bytes', () => {
  const file = path.join(FIX, 'tokenizer.bin');
  const l2c = Llama2cTokenizer.fromFile(file);
  const gtok = ggufTokenizerOf(l2c, file);
  assert.equal(gtok.tokens[1], '<s>');
  const json = new HFTokenizer(tokenizerJsonFromGguf(gtok, file));
  const again = tokenizerFromGguf(gtok, file) as Llama2cTokenizer;
  for (const c of expected.models.sp_bpe.cases) {
    if (c.text.includes('<|user|>')) continue;
    assert.deepEqual(json.encode(c.text), l2c.encode(c.text), JSON.stringify(c.text));
    assert.deepEqual(again.encode(c.text), l2c.encode(c.text), JSON.stringify(c.text));
  }
  for (const text of TEXTS) assert.deepEqual(json.encode(text), l2c.encode(text), JSON.stringify(text));
});

test('llama2.c ⇄ HF ⇄ GGUF: weights identical after every hop, tokenizer.bin written beside the checkpoint', async (t) => {
  const dir = tempDir(t);
  const cfg = tinyLlamaConfig({ vocab_size: 2000 });
  const tensors = tinyLlamaTensors(cfg, 5);
  const hf = path.join(dir, 'hf');
  await writeHfDir(hf, { config: cfg, tensors });
  const sp = path.join(FIX, 'sp_bpe.model');
  const bin = path.join(dir, 'l2c', 'model.bin');
  const r = await convertModel({ model: hf, to: 'llama2c', out: bin, tokenizer: sp });
  assert.deepEqual(r.files, [bin, path.join(dir, 'l2c', 'tokenizer.bin')]);
  sameTensors(tensors, (await readLlama2c(bin)).tensors);
  // export.py's default and what run.c reads: the legacy header (7 int32, dim first), not "ak42"
  const head = new Int32Array(readFileSync(bin).buffer.slice(0, 28));
  assert.deepEqual([...head], [cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.tie_word_embeddings === false ? -Number(cfg.vocab_size) : cfg.vocab_size, cfg.max_position_embeddings]);
  const v1 = path.join(dir, 'l2c', 'v1.bin');
  await convertModel({ model: hf, to: 'llama2c', out: v1, llama2cVersion: 1 });
  assert.equal(readFileSync(v1).readUInt32LE(0), 0x616b3432);
  sameTensors(tensors, (await readLlama2c(v1)).tensors);
  assert.deepEqual(readFileSync(path.join(dir, 'l2c', 'tokenizer.bin')), readFileSync(path.join(FIX, 'tokenizer.bin')), 'the tokenizer.bin llama2.c\'s tokenizer.py writes');
  const gguf = path.join(dir, 'm.gguf');
  await convertModel({ model: bin, to: 'gguf', out: gguf });
  const back = path.join(dir, 'back');
  await convertModel({ model: gguf, to: 'hf', out: back });
  sameTensors(tensors, (await readHfDir(back)).tensors);
  const loaded = await loadModel(back);
  try {
    const l2c = Llama2cTokenizer.fromFile(path.join(FIX, 'tokenizer.bin'));
    for (const text of TEXTS) assert.deepEqual(loaded.tokenizer!.encode(text), l2c.encode(text), JSON.stringify(text));
  } finally {
    loaded.model.dispose();
  }
});

test('an HF directory with a SentencePiece-style tokenizer.json (no scores) takes the vocabulary for GGUF from the tokenizer.model beside it', async (t) => {
  const dir = tempDir(t);
  const sp = path.join(FIX, 'sp_bpe.model');
  const spTok = SentencePieceTokenizer.fromFile(sp);
  const cfg = tinyLlamaConfig({ vocab_size: spTok.vocabSize });
  const hf = path.join(dir, 'hf');
  await writeHfDir(hf, { config: cfg, tensors: tinyLlamaTensors(cfg, 9) });
  writeFileSync(path.join(hf, 'tokenizer.json'), JSON.stringify(tokenizerJsonFromGguf(ggufTokenizerOf(spTok, sp), sp)));
  const gguf = path.join(dir, 'm.gguf');
  // Without tokenizer.model: refused, naming what to do.
  await assert.rejects(convertModel({ model: hf, to: 'gguf', out: gguf }), /SentencePiece-style tokenizer\.json .*convert from its tokenizer\.model/);
  writeFileSync(path.join(hf, 'tokenizer.model'), readFileSync(sp));
  await convertModel({ model: hf, to: 'gguf', out: gguf });
  const g = (await readModelGguf(gguf)).tokenizer!;
  assert.equal(g.model, 'llama');
  assert.deepEqual(g.tokens, spTok.proto.pieces.map((p) => p.piece));
  assert.deepEqual(Array.from(g.scores!), spTok.proto.pieces.map((p) => Math.fround(p.score)));
});

test('a Q8_0 GGUF converted to Q8_0 again holds the same blocks (re-quantising dequantised blocks is exact)', async (t) => {
  const dir = tempDir(t);
  const src = await byteLevelModel(dir);
  const q1 = path.join(dir, 'q1.gguf');
  const q2 = path.join(dir, 'q2.gguf');
  await convertModel({ model: src.dir, to: 'gguf', out: q1, dtype: 'q8_0' });
  // The source's blocks stay quantised in the heap while converting (the writers take one tensor
  // at a time as f32): the heap's peak is far below the model's f32 size. It holds the model's
  // Q8_0 blocks (0.27 of its f32 bytes) and, while the kernels quantise it, one matrix as f32 with
  // its blocks (the embedding: 0.17 of this tiny model); an f32 copy of the model would be ≥ 1.
  resetHeapPeak();
  const heap0 = heapStats().inUse;
  await convertModel({ model: q1, to: 'gguf', out: q2, dtype: 'q8_0' });
  const peak = heapStats().peak - heap0;
  const a = await readModelGguf(q1);
  const b = await readModelGguf(q2);
  const f32Bytes = a.tensors.reduce((n, x) => n + 4 * x.shape.reduce((p, d) => p * d, 1), 0);
  assert.ok(peak < 0.6 * f32Bytes, `the heap peaked ${peak} bytes above its start converting a model of ${f32Bytes} f32 bytes`);
  const quantised = a.tensors.filter((x) => x.dtype === 'Q8_0');
  assert.ok(quantised.length >= 8);
  for (const x of a.tensors) {
    const y = b.tensors.find((u) => u.name === x.name)!;
    assert.equal(y.dtype, x.dtype, x.name);
    assert.deepEqual(Buffer.from(y.data), Buffer.from(x.data), x.name);
  }
});

test('convert --dtype q8_0|q4_0|q4_k|q6_k quantises with the kernels: the same GGUF tensors as io\'s quantisers write', async (t) => {
  const dir = tempDir(t);
  const tok = trainByteLevelBPE(CORPUS, { vocabSize: 300, specialTokens: ['<|endoftext|>'] });
  // rows of 256 (q/k/v/o, gate, up) and 512 (down) values: whole super-blocks for Q4_K and Q6_K
  const cfg = tinyLlamaConfig({ vocab_size: tok.vocabSize, hidden_size: 256, intermediate_size: 512, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 4 });
  const hf = path.join(dir, 'hf');
  await writeHfDir(hf, { config: cfg, tensors: tinyLlamaTensors(cfg, 11) });
  tok.save(path.join(hf, 'tokenizer.json'));
  const src = await readHfDir(hf);
  for (const dtype of ['q8_0', 'q4_0', 'q4_k', 'q6_k'] as const) {
    const got = path.join(dir, `${dtype}.gguf`), want = path.join(dir, `${dtype}-io.gguf`);
    await convertModel({ model: hf, to: 'gguf', out: got, dtype });
    const g = await readModelGguf(got);
    await writeModelGguf(want, { config: src.config, tensors: src.tensors, tokenizer: g.tokenizer!, dtype: dtype.toUpperCase() as 'Q8_0' });
    const w = await readModelGguf(want);
    assert.ok(g.tensors.filter((x) => x.dtype === dtype.toUpperCase()).length >= 7, `${dtype}: the matrices quantised`);
    assert.deepEqual(g.tensors.map((x) => [x.name, x.dtype]), w.tensors.map((x) => [x.name, x.dtype]), dtype);
    for (const [i, x] of g.tensors.entries()) assert.ok(Buffer.from(x.data).equals(Buffer.from(w.tensors[i].data)), `${dtype}: ${x.name}`);
  }
});

test('tslm convert as a user runs it, and its errors', async (t) => {
  const dir = tempDir(t);
  const src = await byteLevelModel(dir);
  const out = path.join(dir, 'cli.gguf');
  const logs: string[] = [];
  const log = console.log, err = console.error;
  console.log = (...a: unknown[]) => logs.push(a.join(' '));
  console.error = (...a: unknown[]) => logs.push(a.join(' '));
  try {
    assert.equal(await main(['convert', '--model', src.dir, '--to', 'gguf', '--dtype', 'f16', '--out', out]), 0);
    assert.ok(existsSync(out));
    assert.match(logs.join('\n'), /converted hf → gguf \(f16\)/);
    logs.length = 0;
    assert.equal(await main(['convert', '--model', src.dir, '--to', 'hf', '--dtype', 'q8_0', '--out', path.join(dir, 'x')]), 2);
    assert.match(logs.join('\n'), /--dtype q8_0 cannot be written to hf \(it holds f32, f16, bf16\)/);
    logs.length = 0;
    assert.equal(await main(['convert', '--model', src.dir, '--to', 'onnx', '--out', path.join(dir, 'x')]), 2);
    assert.match(logs.join('\n'), /--to must be one of hf, gguf, llama2c/);
    logs.length = 0;
    assert.equal(await main(['convert', '--model', src.dir, '--to', 'llama2c', '--out', path.join(dir, 'l', 'model.bin')]), 0);
    assert.match(logs.join('\n'), /no llama2.c tokenizer.bin form.*no tokenizer.bin written/);
    logs.length = 0;
    assert.equal(await main(['convert', '--model', src.dir, '--to', 'llama2c', '--llama2c-version', '2', '--out', path.join(dir, 'l', 'v2.bin')]), 2);
    assert.match(logs.join('\n'), /--llama2c-version: 0 or 1, got '2'/);
    logs.length = 0;
    assert.equal(await main(['convert', '--model', src.dir, '--to', 'gguf', '--llama2c-version', '1', '--out', path.join(dir, 'z.gguf')]), 2);
    assert.match(logs.join('\n'), /--llama2c-version applies to --to llama2c/);
    logs.length = 0;
    assert.equal(await main(['convert', '--model', path.join(dir, 'missing'), '--to', 'gguf', '--out', path.join(dir, 'y.gguf')]), 1);
    assert.match(logs.join('\n'), /missing: no such file or directory/);
  } finally {
    console.log = log;
    console.error = err;
  }
});
