// The Node-free loaders the browser entry point uses give what the file loaders give: safetensors
// parsed from bytes, a tokenizer from its file's bytes, a model from a config object + weights.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  loadModel, parseSafetensorsBytes, readSafetensors, saveModel, modelFromBytes, serializeSafetensors,
  TruncatedError, TensorError, MissingTensorError,
} from '../../src/io/index.js';
import { HFTokenizer, loadTokenizer, tokenizerFromBytes, trainByteLevelBPE, TokenizerFormatError } from '../../src/tokenizers/index.js';
import { LlamaForCausalLM, parseLlamaConfig } from '../../src/models/index.js';
import { Generator, tensor } from '../../src/tensor/index.js';
import { ioFixture, tempDir } from './util.js';

test('parseSafetensorsBytes reads what readSafetensors reads, as views of the buffer', async () => {
  const buf = new Uint8Array(readFileSync(ioFixture('mixed.safetensors')));
  const a = parseSafetensorsBytes(buf, 'mixed.safetensors');
  const b = await readSafetensors(buf, 'mixed.safetensors');
  assert.deepEqual(a.metadata, b.metadata);
  assert.deepEqual(a.tensors.map((t) => [t.name, t.dtype, t.shape]), b.tensors.map((t) => [t.name, t.dtype, t.shape]));
  for (let i = 0; i < a.tensors.length; i++) {
    assert.deepEqual([...a.tensors[i].data], [...b.tensors[i].data]);
    assert.equal(a.tensors[i].data.buffer, buf.buffer);
  }
  // Round trip, and the same errors as the file reader.
  assert.deepEqual(parseSafetensorsBytes(serializeSafetensors(a.tensors, a.metadata)).tensors.map((t) => t.name), a.tensors.map((t) => t.name));
  assert.throws(() => parseSafetensorsBytes(buf.subarray(0, 20), 'cut.safetensors'), (e: Error) => e instanceof TruncatedError || /cut\.safetensors/.test(e.message));
  assert.throws(() => parseSafetensorsBytes(buf.subarray(0, buf.length - 1), 'short.safetensors'), (e: Error) => e instanceof TensorError && /short\.safetensors/.test(e.message));
});

test('tokenizerFromBytes and HFTokenizer.fromText build what loadTokenizer builds', (t) => {
  const dir = tempDir(t);
  const tok = trainByteLevelBPE(['hello world, hello tokens', '你好，世界'], { vocabSize: 300, specialTokens: ['<|endoftext|>', '<|im_end|>'] });
  const file = path.join(dir, 'tokenizer.json');
  tok.save(file);
  const config = { eos_token: '<|im_end|>', bos_token: '<|endoftext|>' };
  const fromFile = loadTokenizer(file, { config });
  const fromBytes = tokenizerFromBytes(new Uint8Array(readFileSync(file)), 'tokenizer.json', { config });
  const fromText = HFTokenizer.fromText(readFileSync(file, 'utf8'), 'tokenizer.json', config);
  const text = 'hello 世界<|im_end|>';
  for (const x of [fromBytes, fromText]) {
    assert.deepEqual(x.encode(text), fromFile.encode(text));
    assert.equal(x.eosId, fromFile.eosId);
    assert.equal(x.bosId, fromFile.bosId);
  }
  assert.equal(HFTokenizer.fromFile(file).vocabSize, tok.vocabSize);
  assert.throws(() => tokenizerFromBytes(new TextEncoder().encode('{"model": '), 'broken.json'), (e: Error) => e instanceof TokenizerFormatError && /broken\.json.*not valid JSON/.test(e.message));
  assert.throws(() => HFTokenizer.fromFile(path.join(dir, 'missing.json')), (e: Error) => e instanceof TokenizerFormatError && /missing\.json.*cannot be read/.test(e.message));
  // SentencePiece and llama2.c files by content too.
  const sp = path.resolve(ioFixture('x'), '..', '..', 'tokenizers', 'sp_bpe.model');
  assert.deepEqual(tokenizerFromBytes(new Uint8Array(readFileSync(sp)), 'sp_bpe.model').encode('hello world'), loadTokenizer(sp).encode('hello world'));
});

test('modelFromBytes builds the model loadModel loads (same logits), and checks the weights', async (t) => {
  const dir = tempDir(t);
  const cfg = parseLlamaConfig({ model_type: 'llama', vocab_size: 40, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64 });
  const m0 = new LlamaForCausalLM(cfg, { generator: new Generator(5) });
  await saveModel(m0, dir);
  m0.dispose();
  const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
  const weights = new Uint8Array(readFileSync(path.join(dir, 'model.safetensors')));
  const a = (await loadModel(dir)).model;
  const b = modelFromBytes(config, weights);
  const ids = tensor([[1, 2, 3, 4]], [1, 4], 'i32');
  assert.deepEqual(b.forward(ids, null).toArray(), a.forward(ids, null).toArray());
  a.dispose();
  b.dispose();
  // A missing tensor names the tensor and the source.
  const { tensors } = parseSafetensorsBytes(weights);
  assert.throws(() => modelFromBytes(config, tensors.filter((x) => x.name !== 'model.norm.weight'), { source: 'page.safetensors' }),
    (e: Error) => e instanceof MissingTensorError && /page\.safetensors/.test(e.message) && /model\.norm\.weight/.test(e.message));
});
