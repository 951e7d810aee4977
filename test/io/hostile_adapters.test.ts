// Non-finite values and hostile JSON beside the model weights (issue #21): the bit-level scan
// agrees with decoding (toFloat32, itself checked against torch) on random bytes of every float
// dtype, views at odd offsets included; PEFT adapters (PEFT-written fixtures), training
// checkpoints (weights and optimizer moments) and Medusa heads with NaN/Inf are refused naming the
// file, the tensor and the index; their JSON files get line/column errors that never quote them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { init, shutdown } from '../../src/backend/index.js';
import * as T from '../../src/tensor/ops.js';
import { Generator } from '../../src/tensor/random.js';
import { IoError, NonFiniteWeightError, firstNonFinite, toFloat32, parseSafetensorsBytes, serializeSafetensors, readSafetensors } from '../../src/io/index.js';
import type { RawDType, RawTensor } from '../../src/io/index.js';
import { createModel } from '../../src/models/index.js';
import { loadAdapter } from '../../src/lora/peft.js';
import { LoraError } from '../../src/nn/lora.js';
import { AdamW } from '../../src/train/optim.js';
import { CheckpointError, loadCheckpoint, readTrainerState, saveCheckpoint } from '../../src/train/checkpoint.js';
import { MedusaHeads } from '../../src/nn/medusa.js';
import { loadMedusaHeads, saveMedusaHeads } from '../../src/io/medusa.js';
import { fixturePath } from '../helpers.js';
import { tempDir, tinyLlamaConfig, uniformRng } from './util.js';
import { rejectsWith, throwsWith } from './hostile_util.js';

before(async () => { await init({ threads: 1 }); });
after(async () => { await shutdown(); });

test('the non-finite scan (stored bits) agrees with decoding on random bytes of every float dtype, at any alignment', () => {
  const u = uniformRng(21);
  const sizes: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, Q8_0: 34 };
  let found = 0, clean = 0;
  for (let trial = 0; trial < 400; trial++) {
    const dtype = (['F32', 'F16', 'BF16', 'F64', 'Q8_0'] as RawDType[])[trial % 5];
    const n = 1 + Math.floor(u() * 40);
    const elems = dtype === 'Q8_0' ? n * 32 : n;
    const shift = Math.floor(u() * 4);
    const backing = new Uint8Array(n * sizes[dtype] + shift);
    // mostly ordinary values; now and then a byte pattern that may make a NaN/Inf (or a huge F64)
    for (let i = 0; i < backing.length; i++) backing[i] = u() < 0.02 ? 0xff : Math.floor(u() * 256) & 0xbf;
    const t: RawTensor = { name: 'x', dtype, shape: dtype === 'Q8_0' ? [n, 32] : [elems], data: backing.subarray(shift) };
    const want = Array.from(toFloat32(t)).findIndex((x) => !Number.isFinite(x));
    const got = firstNonFinite(t);
    assert.equal(got?.index ?? -1, want, `${dtype} × ${elems} at offset ${shift}`);
    if (got) { assert.ok(!Number.isFinite(got.value)); found++; } else clean++;
  }
  assert.ok(found > 50 && clean > 50, `both kinds were tried: ${found} with, ${clean} without`);
});

/** Set element `index` of tensor `name` (F32) in a safetensors file to `value`. */
function poisonFile(file: string, name: string, index: number, value: number): void {
  const { tensors, metadata } = parseSafetensorsBytes(new Uint8Array(readFileSync(file)));
  const out = tensors.map((t) => {
    if (t.name !== name) return t;
    const data = t.data.slice();
    new DataView(data.buffer).setFloat32(4 * index, value, true);
    return { ...t, data };
  });
  writeFileSync(file, serializeSafetensors(out, metadata));
}

async function loraBase() {
  const fx = JSON.parse(readFileSync(fixturePath('lora/base.json'), 'utf8')) as { config: Record<string, unknown> };
  const model = createModel(fx.config, 'base.json');
  const { tensors } = await readSafetensors(fixturePath('lora/base.safetensors'));
  model.loadStateDict(Object.fromEntries(tensors.map((t) => [t.name, { shape: t.shape, data: toFloat32(t) }])));
  return model;
}

test('PEFT adapters: NaN/Inf factors named; adapter_config.json errors by line/column, never quoted; a directory; r out of range', async (t) => {
  const dir = path.join(tempDir(t), 'ad');
  cpSync(fixturePath('lora/all_r4'), dir, { recursive: true });
  const weights = path.join(dir, 'adapter_model.safetensors');
  const name = parseSafetensorsBytes(new Uint8Array(readFileSync(weights))).tensors[2].name;
  poisonFile(weights, name, 5, Infinity);
  const model = await loraBase();
  try {
    await rejectsWith(loadAdapter(model, dir), { cls: NonFiniteWeightError, file: 'adapter_model.safetensors', names: [`tensor '${name}'`, 'at index 5', 'Infinity'] });
    await loadAdapter(model, dir, { allowNonFinite: true, name: 'allowed' });
    const cfgFile = path.join(dir, 'adapter_config.json');
    const good = readFileSync(cfgFile, 'utf8');
    writeFileSync(cfgFile, '{\n "peft_type": "LORA",\n "SECRET": nope\n}');
    await rejectsWith(loadAdapter(model, dir), { cls: LoraError, file: 'adapter_config.json', names: ['adapter config', /line 3, column 12/], not: ['SECRET', 'nope'] });
    writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(good), r: 1e9 }));
    await rejectsWith(loadAdapter(model, dir), { cls: LoraError, file: 'adapter_config.json', names: ['r is 1000000000, more than the limit'] });
    // A 10 MB string where an object of patterns belongs: refused at once (its ten million
    // characters were once listed as keys: half a minute and a gigabyte).
    writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(good), rank_pattern: 'x'.repeat(10_000_000) }));
    const t0 = performance.now();
    await rejectsWith(loadAdapter(model, dir), { cls: LoraError, file: 'adapter_config.json', names: ['rank_pattern must be an object of module patterns, got a string of 10000000 characters'] });
    assert.ok(performance.now() - t0 < 3000, `${(performance.now() - t0).toFixed(0)} ms`);
    writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(good), alpha_pattern: { 'q_proj': 8 } }));
    await rejectsWith(loadAdapter(model, dir), { cls: LoraError, file: 'adapter_config.json', names: ['alpha_pattern is set'] });
    rmSync(cfgFile);
    mkdirSync(cfgFile);
    await rejectsWith(loadAdapter(model, dir), { cls: LoraError, file: 'adapter_config.json', names: ['is a directory'] });
  } finally {
    model.dispose();
  }
});

test('training checkpoints: NaN weights or optimizer moments named; trainer_state.json errors by line/column', async (t) => {
  const out = tempDir(t);
  const cfg = tinyLlamaConfig({ hidden_size: 16, intermediate_size: 32, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: 40 });
  const model = createModel(cfg);
  const opt = new AdamW(model.parameters());
  try {
    const dir = await saveCheckpoint(out, { model, opt, state: { step: 3, tokens: 10, elapsedSeconds: 1 }, options: {} as never, train: {} as never });
    await loadCheckpoint(dir, model, opt);
    const w = path.join(dir, 'model.safetensors');
    const good = readFileSync(w);
    poisonFile(w, 'model.layers.0.mlp.up_proj.weight', 17, NaN);
    await rejectsWith(loadCheckpoint(dir, model, opt), { cls: NonFiniteWeightError, file: 'model.safetensors', names: ["tensor 'model.layers.0.mlp.up_proj.weight'", 'at index 17', '([1, 1])'] });
    writeFileSync(w, good);
    const o = path.join(dir, 'optimizer.safetensors');
    const m = new Float32Array(16).fill(0.5);
    m[9] = -Infinity;
    writeFileSync(o, serializeSafetensors([{ name: 'model.norm.weight.exp_avg', dtype: 'F32', shape: [16], data: new Uint8Array(m.buffer) }], { format: 'tslm-adamw' }));
    await rejectsWith(loadCheckpoint(dir, model, opt), { cls: NonFiniteWeightError, file: 'optimizer.safetensors', names: ["tensor 'model.norm.weight.exp_avg'", 'at index 9'] });
    await loadCheckpoint(dir, model, opt, { allowNonFinite: true });
    const st = path.join(dir, 'trainer_state.json');
    writeFileSync(st, '{"format": "tslm-trainer-state",\n"version": 1, "SECRET" 5}');
    throwsWith(() => readTrainerState(dir), { cls: CheckpointError, file: 'trainer_state.json', names: [/line 2, column 24/], not: ['SECRET'] });
    writeFileSync(st, JSON.stringify({ format: 'tslm-trainer-state', version: 1, state: { step: -1 }, config: {}, optimizerSteps: {} }));
    throwsWith(() => readTrainerState(dir), { cls: CheckpointError, file: 'trainer_state.json', names: ['state.step'] });
  } finally {
    model.dispose();
  }
});

test('Medusa heads: a NaN weight is named (not reported as layers that differ)', async (t) => {
  const dir = tempDir(t);
  const g = new Generator(3);
  const heads = new MedusaHeads({ medusa_num_heads: 2, medusa_num_layers: 2, hidden_size: 8, vocab_size: 11 }, { lmHead: T.tensor(Float32Array.from({ length: 88 }, () => g.uniform()), [11, 8]) });
  await saveMedusaHeads(heads, dir);
  heads.dispose();
  const f = path.join(dir, 'medusa_lm_head.safetensors');
  poisonFile(f, '1.1.linear.weight', 12, NaN);
  await rejectsWith(loadMedusaHeads(dir), { cls: NonFiniteWeightError, file: 'medusa_lm_head.safetensors', names: ["tensor '1.1.linear.weight'", 'at index 12'] });
});

test('Medusa config.json: medusa_num_heads / medusa_num_layers beyond the limits are refused by field, at once', async (t) => {
  const dir = tempDir(t);
  const g = new Generator(4);
  const heads = new MedusaHeads({ medusa_num_heads: 1, medusa_num_layers: 1, hidden_size: 4, vocab_size: 5 }, { lmHead: T.tensor(Float32Array.from({ length: 20 }, () => g.uniform()), [5, 4]) });
  await saveMedusaHeads(heads, dir);
  heads.dispose();
  const cfgFile = path.join(dir, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
  for (const [field, v] of [['medusa_num_heads', 1e9], ['medusa_num_layers', 2 ** 31]] as const) {
    writeFileSync(cfgFile, JSON.stringify({ ...cfg, [field]: v }));
    const t0 = performance.now();
    await rejectsWith(loadMedusaHeads(dir), { cls: IoError, file: 'config.json', names: [field, /more than the limit of 256/] });
    assert.ok(performance.now() - t0 < 1000);
  }
});
