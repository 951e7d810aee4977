// TrainSession (what the playground's Train tab runs in a worker) in Node: uploads read or refused
// with messages naming the file and line, a corpus too small for the vocabulary or the sequence
// length refused, a snapshot (cloned as IndexedDB stores it) resumed bit for bit, and the HF files
// and the GGUF it writes loaded back with the same logits and tokenizer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { init, shutdown } from '../../src/backend/index.js';
import { TrainSession, documentsFromBytes, documentsFromText, DataError } from '../../src/train/index.js';
import { modelFromBytes, readLlamaGguf, ggufTokenizerOf } from '../../src/io/index.js';
import { HFTokenizer } from '../../src/tokenizers/index.js';
import { createModel } from '../../src/models/index.js';
import { f32StateDict } from '../../src/io/dtypes.js';

before(async () => { await init({ threads: 1 }); });
after(async () => { await shutdown(); });

const TEXT = [
  'The quick brown fox jumps over the lazy dog. A language model predicts the next token of a text.',
  '床前明月光，疑是地上霜。举头望明月，低头思故乡。学而时习之，不亦说乎？',
  'Servers answer requests from many clients at once; the page stays responsive while a worker trains.',
].join('\n').repeat(12);
const TINY = {
  config: { model_type: 'llama', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: 300, max_position_embeddings: 32, rms_norm_eps: 1e-5, tie_word_embeddings: true },
  steps: 8, batchSize: 2, seqLen: 16, lr: 1e-2, warmupSteps: 1, seed: 3,
};
const enc = new TextEncoder();

test('uploads: text and JSONL documents; empty, binary, non-UTF-8 and bad JSONL lines are DataErrors naming the file', () => {
  assert.deepEqual(documentsFromBytes('a.txt', enc.encode('中文 text')), ['中文 text']);
  assert.deepEqual(documentsFromBytes('rows.jsonl', enc.encode('{"text": "one"}\n\n{"text": "二"}\r\n')), ['one', '二']);
  const bad: [string, Uint8Array, RegExp][] = [
    ['e.txt', new Uint8Array(0), /^e\.txt: the file is empty$/],
    ['b.txt', Uint8Array.from({ length: 500 }, (_, i) => i % 256), /^b\.txt: looks like a binary file/],
    ['l1.txt', Uint8Array.from([0x61, 0xff, 0xfe, 0x62]), /^l1\.txt: is not UTF-8 text$/],
    ['w.txt', enc.encode(' \n\t '), /^w\.txt: there is no text/],
    ['r.jsonl', enc.encode('{"text": "ok"}\n{"text": 3}\n'), /^r\.jsonl:2: expected an object with a string "text" field$/],
    ['j.jsonl', enc.encode('{"text": "ok"}\n\n{oops\n'), /^j\.jsonl:3: not valid JSON$/],
  ];
  for (const [name, bytes, re] of bad) assert.throws(() => documentsFromBytes(name, bytes), (e: unknown) => e instanceof DataError && re.test((e as Error).message), name);
  assert.throws(() => documentsFromText('x.jsonl', '\n\n'), /x\.jsonl: no line has any text/);
});

test('a corpus too small for the vocabulary, or for 20 sequences (one for validation), is refused with what to change', () => {
  assert.throws(() => TrainSession.create(['tiny text, tiny text'], { ...TINY, config: { ...TINY.config, vocab_size: 2048 } }),
    (e: unknown) => e instanceof DataError && /too small for a 2048-token vocabulary: only \d+ tokens could be learnt/.test((e as Error).message));
  assert.throws(() => TrainSession.create([TEXT.slice(0, 200)], { ...TINY, config: { ...TINY.config, vocab_size: 260 }, seqLen: 32 }),
    (e: unknown) => e instanceof DataError && /is \d+ tokens long after tokenising, too few for sequences of 32 \(at least 641 are needed: 20 sequences, one held out/.test((e as Error).message));
});

test('a snapshot, cloned as IndexedDB keeps it, resumes bit for bit; the loss falls', async () => {
  const a = TrainSession.create([TEXT], TINY);
  for (let i = 0; i < 3; i++) await a.step();
  const snap = structuredClone(a.snapshot());
  while (!a.done) await a.step();
  const b = TrainSession.resume(snap);
  assert.equal(b.state.step, 3);
  while (!b.done) await b.step();
  assert.deepEqual(b.metrics.map((m) => m.loss), a.metrics.map((m) => m.loss));
  assert.ok(Buffer.from(b.hfFiles()['model.safetensors']).equals(Buffer.from(a.hfFiles()['model.safetensors'])), 'the weights differ');
  const l = a.metrics.map((m) => m.loss);
  assert.ok(l[l.length - 1] < l[0] - 0.3, `loss ${l[0]} → ${l[l.length - 1]}`);
  assert.equal(typeof a.sample('The ', { maxNewTokens: 5 }), 'string');
  assert.throws(() => TrainSession.resume({ ...snap, format: 'other' } as never), /not a tslm training session/);
  a.dispose();
  b.dispose();
});

test('the HF files and the GGUF load back with the session\'s logits and tokenizer', async () => {
  const s = TrainSession.create([TEXT], TINY);
  for (let i = 0; i < 2; i++) await s.step();
  const ids = [0, 3, 100, 200, 7];
  const want = s.logits(ids);
  const f = s.hfFiles();
  const config = JSON.parse(new TextDecoder().decode(f['config.json']));
  const tok = HFTokenizer.fromText(new TextDecoder().decode(f['tokenizer.json']));
  assert.deepEqual(tok.encode('举头望明月 fox'), s.tokenizer.encode('举头望明月 fox'));
  const hf = modelFromBytes(config, f['model.safetensors']);
  const g = await readLlamaGguf(s.gguf());
  const fromGguf = createModel(g.config, 'gguf');
  fromGguf.loadStateDict(f32StateDict(g.tensors));
  for (const [what, m] of [['HF', hf], ['GGUF', fromGguf]] as const) {
    const got = (m as typeof hf).forward(
      (await import('../../src/tensor/index.js')).tensor(Int32Array.from(ids), [1, ids.length], 'i32'),
    ).data() as Float32Array;
    assert.deepEqual(Array.from(got), Array.from(want), what);
    m.dispose();
  }
  // The GGUF's tokenizer: GPT-2 BPE with every token and merge, <|endoftext|> as a control token.
  const gt = ggufTokenizerOf(s.tokenizer, 'tokenizer.json');
  assert.equal(gt.tokens.length, s.tokenizer.vocabSize);
  assert.equal(gt.tokens[gt.eosId!], '<|endoftext|>');
  assert.equal(gt.tokenTypes![gt.eosId!], 3);
  assert.equal(g.tokenizer?.model, 'gpt2');
  assert.deepEqual(g.tokenizer?.merges, gt.merges);
  s.dispose();
});

test('LoraSession: Alpaca rows, steps, and an adapter (PEFT files) that loadAdapter puts on the same base model with the same logits', async () => {
  const { LoraSession, instructionRowsFromBytes } = await import('../../src/sft/index.js');
  const { loadAdapter } = await import('../../src/lora/index.js');
  const { Generator, tensor } = await import('../../src/tensor/index.js');
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const path = (await import('node:path')).default;
  assert.throws(() => instructionRowsFromBytes('r.jsonl', new Uint8Array(0)), /r\.jsonl: the file is empty/);
  assert.throws(() => instructionRowsFromBytes('r.jsonl', enc.encode('{"instruction": "a"}\n')), /r\.jsonl:1/);
  const rows = instructionRowsFromBytes('rows.jsonl', enc.encode(Array.from({ length: 8 }, (_, i) => JSON.stringify({ instruction: `Say ${i}`, output: `答 ${i}` })).join('\n')));
  const tok = TrainSession.create([TEXT], TINY).tokenizer;
  const config = { ...TINY.config, vocab_size: tok.vocabSize, max_position_embeddings: 512 };
  const base = () => createModel(config, 'tiny', { generator: new Generator(9) });
  const s = LoraSession.create(base(), tok, rows, { r: 2, loraAlpha: 4, steps: 6, batchSize: 4, lr: 0.02, seed: 1 });
  assert.equal(s.info.trainable, 2 * (32 + 32) + 2 * (32 + 16)); // r·(in + out) of q_proj (32→32) and v_proj (32→16), r = 2
  while (!s.done) await s.step();
  assert.equal(s.metrics.length, 6);
  assert.equal(typeof s.sample('Say 3'), 'string');
  const dir = mkdtempSync(path.join(tmpdir(), 'tslm-lora-session-'));
  try {
    for (const [name, bytes] of Object.entries(s.adapterFiles('tiny'))) writeFileSync(path.join(dir, name), bytes);
    const m = base();
    const cfg = await loadAdapter(m, dir);
    assert.equal(cfg.base_model_name_or_path, 'tiny');
    const ids = [1, 2, 3, 40, 50];
    assert.deepEqual(Array.from(m.forward(tensor(Int32Array.from(ids), [1, ids.length], 'i32')).data() as Float32Array), Array.from(s.logits(ids)));
    m.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
    s.dispose();
  }
});

test('the GGUF download in llama.cpp (node-llama-cpp): our tokens for English and Chinese, our logits within 2e-3 of the logit scale', { timeout: 120000 }, async (t) => {
  const { loadNodeLlamaCpp } = await import('../../bench/peers/nlc.js');
  const { evalWithLlamaCpp, logitGap } = await import('../io/llamacpp_util.js');
  const r = await loadNodeLlamaCpp({ maxThreads: 2 });
  if ('error' in r) return t.skip(r.error);
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const path = (await import('node:path')).default;
  const dir = mkdtempSync(path.join(tmpdir(), 'tslm-session-gguf-'));
  const s = TrainSession.create([TEXT], TINY);
  try {
    for (let i = 0; i < 3; i++) await s.step();
    const file = path.join(dir, 'model.gguf');
    writeFileSync(file, s.gguf());
    const text = 'The quick fox, "at once"; 举头望明月 42';
    const ids = s.tokenizer.encode(text);
    const m = await r.llama.loadModel({ modelPath: file, gpuLayers: 0 });
    try { assert.deepEqual(Array.from(m.tokenize(text) as number[]), ids, 'llama.cpp tokenises the GGUF\'s tokenizer differently'); } finally { await m.dispose(); }
    const V = s.tokenizer.vocabSize, n = Math.min(ids.length, 12);
    const mine = s.logits(ids.slice(0, n));
    const theirs = await evalWithLlamaCpp(r.llama, file, ids.slice(0, n), 2, V);
    for (let p = 0; p < n; p++) {
      const { worst, scale } = logitGap(Float64Array.from(mine.subarray(p * V, (p + 1) * V)), theirs.logits[p]);
      assert.ok(worst <= 2e-3 * Math.max(1, scale), `position ${p}: max |Δlogit| ${worst} (logit scale ${scale})`);
    }
  } finally {
    s.dispose();
    await r.llama.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});
