// HF model directories: config.json + model.safetensors or shards; validation against the config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  readHfDir, writeHfDir, readHfConfig, openHfWeights, readLlama2c, writeLlama2c, convertDType, llamaDims,
  ConfigFieldError, MissingTensorError, UnexpectedTensorError, TensorError, IoError,
} from '../../src/io/index.js';
import { tempDir, tinyLlamaConfig, tinyLlamaTensors, ioFixture } from './util.js';

test('write and read an HF directory, single file and sharded, F32/F16/BF16', async (t) => {
  const cfg = tinyLlamaConfig();
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    const ts = tinyLlamaTensors(cfg, 2, dtype);
    const dir = path.join(tempDir(t), 'm');
    assert.deepEqual(await writeHfDir(dir, { config: cfg, tensors: ts }), ['model.safetensors', 'config.json']);
    assert.deepEqual(readdirSync(dir).sort(), ['config.json', 'model.safetensors']);
    const back = await readHfDir(dir);
    assert.deepEqual(back.config, cfg);
    assert.deepEqual(back.metadata, { format: 'pt' });
    const byName = new Map(back.tensors.map((x) => [x.name, x]));
    for (const x of ts) { assert.equal(byName.get(x.name)!.dtype, x.shape.length === 2 ? dtype : 'F32'); assert.deepEqual(byName.get(x.name)!.data, x.data); }
    // now sharded into the same directory: the single file is replaced by shards + index
    const files = await writeHfDir(dir, { config: cfg, tensors: ts }, { maxShardSize: 40_000 });
    assert.ok(files.length > 3);
    assert.deepEqual(readdirSync(dir).sort(), [...files].sort());
    const back2 = await readHfDir(dir);
    assert.equal(back2.tensors.length, ts.length);
    // and back to one file: the shards and index are removed
    await writeHfDir(dir, { config: cfg, tensors: ts });
    assert.deepEqual(readdirSync(dir).sort(), ['config.json', 'model.safetensors']);
  }
});

test('llama2.c → HF directory → llama2.c is lossless', async (t) => {
  const ck = await readLlama2c(ioFixture('llama2c_unshared_v1.bin'));
  const dir = tempDir(t);
  await writeHfDir(path.join(dir, 'hf'), ck);
  const hf = await readHfDir(path.join(dir, 'hf'));
  await writeLlama2c(path.join(dir, 'out.bin'), hf, { version: 1 });
  assert.ok(readFileSync(path.join(dir, 'out.bin')).equals(readFileSync(ioFixture('llama2c_unshared_v1.bin'))));
  // and from bf16 weights the dims survive (values rounded)
  await writeHfDir(path.join(dir, 'bf'), { config: ck.config, tensors: ck.tensors.map((x) => convertDType(x, 'BF16')) });
  const bf = await readHfDir(path.join(dir, 'bf'));
  assert.equal(bf.tensors[0].dtype, 'BF16');
});

test('bad HF directories: config errors name config.json and the field; tensors are checked against it', async (t) => {
  const cfg = tinyLlamaConfig();
  const ts = tinyLlamaTensors(cfg, 3);
  const dir = tempDir(t);
  const cfgPath = path.join(dir, 'config.json');
  await writeHfDir(dir, { config: cfg, tensors: ts });
  const withCfg = async (c: unknown, re: RegExp, cls: Function = ConfigFieldError) => {
    writeFileSync(cfgPath, typeof c === 'string' ? c : JSON.stringify(c));
    await assert.rejects(readHfDir(dir), (e: unknown) => {
      assert.ok(e instanceof cls, `${(e as Error).name}: ${(e as Error).message}`);
      assert.match((e as Error).message, re);
      return true;
    });
  };
  await withCfg({ ...cfg, num_attention_heads: 5 }, /config\.json: num_attention_heads: 5 does not divide hidden_size 64/);
  await withCfg({ ...cfg, num_key_value_heads: 3 }, /config\.json: num_key_value_heads: 3 does not divide num_attention_heads 4/);
  await withCfg({ ...cfg, hidden_size: '64' }, /config\.json: hidden_size: must be a positive integer, got "64"/);
  await withCfg({ ...cfg, intermediate_size: undefined }, /config\.json: intermediate_size: is missing/);
  await withCfg({ ...cfg, tie_word_embeddings: 'yes' }, /tie_word_embeddings: must be a boolean/);
  await withCfg('{"hidden_size": 64,', /config\.json: config: is not valid JSON/);
  await withCfg({ ...cfg, num_hidden_layers: 3 }, /model\.safetensors: tensor 'model\.layers\.2\.input_layernorm\.weight': missing/, MissingTensorError);
  await withCfg({ ...cfg, num_hidden_layers: 1 }, /model\.safetensors: tensor 'model\.layers\.1\.input_layernorm\.weight': unexpected/, UnexpectedTensorError);
  await withCfg({ ...cfg, vocab_size: 301 }, /model\.safetensors: tensor 'lm_head\.weight': shape \[300, 64\] does not match the config's \[301, 64\]/, TensorError);
  // tied embeddings with an lm_head.weight stored anyway (as some exports do) is accepted
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, tie_word_embeddings: true }));
  assert.equal((await readHfDir(dir)).tensors.length, ts.length);
  // non-LLaMA model types are read without the LLaMA check
  writeFileSync(cfgPath, JSON.stringify({ model_type: 'something_else' }));
  assert.equal((await readHfDir(dir)).tensors.length, ts.length);
  assert.deepEqual(await readHfConfig(dir), { model_type: 'something_else' });
  await assert.rejects(openHfWeights(tempDir(t)), (e: unknown) => e instanceof IoError && /no model\.safetensors or model\.safetensors\.index\.json/.test((e as Error).message));
  assert.throws(() => llamaDims({ ...cfg, head_dim: 15 }), /head_dim: RoPE needs an even head dimension, got 15/);
  assert.equal(llamaDims({ ...cfg, hidden_size: 60, head_dim: 16 }).headDim, 16); // explicit head_dim need not divide
});
