// LoRA: base + PEFT adapter logits against PyTorch (scripts/gen_lora_fixtures.py), PEFT save/load,
// merge/unmerge/fuse, several adapters, bad adapters, SVD extraction.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, cpSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as T from '../../src/index.js';
import { init, shutdown, scope, noGrad, withBackend, Generator } from '../../src/index.js';
import { LlamaForCausalLM, parseLlamaConfig } from '../../src/models/llama.js';
import { readSafetensors, writeSafetensors, toFloat32, fromFloat32 } from '../../src/io/index.js';
import { Linear } from '../../src/nn/layers.js';
import {
  LoRALinear, LoraError, applyLora, setAdapter, mergeLora, unmergeLora, fuseLora, saveAdapter, loadAdapter,
  extractLora, addExtractedAdapter, svd, adapterNames, trainableSummary, selectTargets,
} from '../../src/lora/index.js';
import { assertClose, fixture, fixturePath, gradcheck } from '../helpers.js';
import { loraLinear } from '../../src/nn/lora.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

interface BaseFx { config: Record<string, unknown>; input_ids: number[][]; logits: number[] }
interface AdFx { input_ids: number[][]; logits: number[]; scale: number }

async function baseModel(): Promise<LlamaForCausalLM> {
  const fx = fixture<BaseFx>('lora/base.json');
  const model = new LlamaForCausalLM(parseLlamaConfig(fx.config, 'base.json'));
  const { tensors } = await readSafetensors(fixturePath('lora/base.safetensors'));
  scope(() => model.loadStateDict(Object.fromEntries(tensors.map((t) => [t.name, T.tensor(toFloat32(t), t.shape)]))));
  return model.eval();
}

function logits(model: LlamaForCausalLM, ids: number[][]): number[] {
  return noGrad(() => scope(() => model.forward(T.tensor(ids, undefined, 'i32')).toArray()));
}

const base = fixture<BaseFx>('lora/base.json');

for (const name of ['all_r4', 'qv_r8_rslora']) {
  test(`${name}: base + PEFT adapter logits match PyTorch (W + scale·B·A), unmerged and merged`, async () => {
    const fx = fixture<AdFx>(`lora/${name}.json`);
    const model = await baseModel();
    const cfg = await loadAdapter(model, fixturePath(`lora/${name}`));
    assert.equal(cfg.peft_type, 'LORA');
    for (const b of ['ref', 'wasm'] as const) {
      withBackend(b, () => assertClose(logits(model, fx.input_ids), fx.logits, 1e-4, 1e-4, `${name} [${b}] unmerged`));
    }
    mergeLora(model);
    assertClose(logits(model, fx.input_ids), fx.logits, 1e-4, 1e-4, `${name} merged`);
    unmergeLora(model);
    assertClose(logits(model, fx.input_ids), fx.logits, 1e-4, 1e-4, `${name} unmerged again`);
    setAdapter(model, null);
    assertClose(logits(model, base.input_ids), base.logits, 1e-4, 1e-4, `${name} adapter off = base`);
    model.dispose();
  });
}

test('several adapters loaded and switched at inference', async () => {
  const model = await baseModel();
  await loadAdapter(model, fixturePath('lora/all_r4'), { name: 'a' });
  await loadAdapter(model, fixturePath('lora/qv_r8_rslora'), { name: 'b' });
  assert.deepEqual(adapterNames(model).sort(), ['a', 'b']);
  const fa = fixture<AdFx>('lora/all_r4.json'), fb = fixture<AdFx>('lora/qv_r8_rslora.json');
  assertClose(logits(model, fb.input_ids), fb.logits, 1e-4, 1e-4, 'b active after loading');
  setAdapter(model, 'a');
  assertClose(logits(model, fa.input_ids), fa.logits, 1e-4, 1e-4, 'a');
  setAdapter(model, 'b');
  assertClose(logits(model, fb.input_ids), fb.logits, 1e-4, 1e-4, 'b');
  setAdapter(model, null);
  assertClose(logits(model, base.input_ids), base.logits, 1e-4, 1e-4, 'none');
  assert.throws(() => setAdapter(model, 'c'), /no adapter "c" is loaded \(have "a", "b"\)/);
  // the state dict holds only the active adapter, under PEFT's names
  setAdapter(model, 'a');
  const names = Object.keys(model.stateDict());
  assert.ok(names.includes('model.layers.0.mlp.down_proj.lora_A.weight'));
  setAdapter(model, 'b');
  assert.ok(!Object.keys(model.stateDict()).includes('model.layers.0.mlp.down_proj.lora_A.weight'));
  model.dispose();
});

test('LoRALinear: B starts at zero, base frozen, only adapters trainable; rsLoRA scale; dropout only in training', () => {
  scope(() => {
    const g = new Generator(3);
    const lin = new Linear(6, 5, { bias: true, generator: g });
    lin.freeze();
    const l = LoRALinear.fromLinear(lin, { r: 2, lora_alpha: 4, lora_dropout: 0.5, generator: g });
    const x = T.randn([3, 6], { generator: g });
    l.eval();
    assertClose(noGrad(() => l.forward(x).toArray()), noGrad(() => lin.forward(x).toArray()), 0, 0, 'B = 0 → base');
    assert.deepEqual(l.namedParameters().map(([n]) => n), ['lora_A.weight', 'lora_B.weight']);
    assert.deepEqual(l.adapter('default')!.scale, 2);
    const rs = LoRALinear.fromLinear(new Linear(16, 16), { r: 4, lora_alpha: 8, use_rslora: true });
    assert.equal(rs.adapter('default')!.scale, 4);
    // gradients reach A and B only
    T.fill_(l.lora_B!.weight, 0.1);
    l.train();
    const y = T.sum(l.forward(x));
    y.backward();
    assert.ok(l.lora_A!.weight.grad && l.lora_B!.weight.grad);
    assert.equal(l.weight.grad, null);
    // forward = base + x Aᵀ Bᵀ · scale (eval: no dropout)
    l.eval();
    const want = T.add(lin.forward(x), T.mul(T.matmul(T.matmul(x, T.transpose(l.lora_A!.weight)), T.transpose(l.lora_B!.weight)), 2));
    assertClose(noGrad(() => l.forward(x).toArray()), noGrad(() => want.toArray()), 1e-6, 1e-5, 'forward');
    // toLinear fuses
    const fused = l.toLinear();
    assertClose(noGrad(() => fused.forward(x).toArray()), noGrad(() => want.toArray()), 1e-5, 1e-5, 'fused');
  });
});

test('bad input: rank larger than a dimension, unknown target modules, adapter shapes that disagree with the base', async () => {
  const model = await baseModel();
  assert.throws(() => applyLora(model, { r: 40, lora_alpha: 16, target_modules: ['q_proj'] }), (e: Error) => e instanceof LoraError && /rank r = 40 is larger than a dimension of model\.layers\.0\.self_attn\.q_proj \(32×32; at most 32\)/.test(e.message));
  assert.throws(() => applyLora(model, { r: 4, lora_alpha: 16, target_modules: ['q_proj', 'qkv'] }), /unknown target module\(s\) "qkv"; this model's linear layers are q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head/);
  // A regex target (PEFT's re.fullmatch) whose backtracking would take exponential time on a
  // module name is refused before it runs; PEFT's usual patterns select as before.
  for (const bad of ['(.*.*)*x', '(a|a)+$', '((q|k)_proj)*z']) {
    const t0 = performance.now();
    assert.throws(() => applyLora(model, { r: 4, lora_alpha: 16, target_modules: bad }), (e: Error) => e instanceof LoraError && /exponential time/.test(e.message), bad);
    assert.ok(performance.now() - t0 < 1000);
  }
  assert.throws(() => applyLora(model, { r: 4, lora_alpha: 16, target_modules: '(q_proj' }), (e: Error) => e instanceof LoraError && /not a valid regular expression/.test(e.message));
  assert.equal(adapterNames(model).length, 0, 'nothing applied on error');
  const sel = applyLora(model, { r: 2, lora_alpha: 4, target_modules: '.*\\.(q_proj|v_proj)' }, 'regex');
  assert.deepEqual([...new Set(sel.map((l) => l.key))].sort(), ['q_proj', 'v_proj']);
  // an adapter made for another model: lora_B of v_proj with 32 rows instead of 16
  const dir = mkdtempSync(path.join(tmpdir(), 'tslm-lora-bad-'));
  try {
    cpSync(fixturePath('lora/qv_r8_rslora'), dir, { recursive: true });
    const file = path.join(dir, 'adapter_model.safetensors');
    const { tensors } = await readSafetensors(file);
    const bad = tensors.map((t) => t.name === 'base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight' ? fromFloat32(t.name, [32, 8], new Float32Array(256)) : t);
    await writeSafetensors(file, bad);
    await assert.rejects(loadAdapter(model, dir), /tensor base_model\.model\.model\.layers\.1\.self_attn\.v_proj\.lora_B\.weight has shape \[32, 8\], the base model's model\.layers\.1\.self_attn\.v_proj \(16×32\) with r = 8 needs \[16, 8\]/);
    const cfg = JSON.parse(readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
    writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({ ...cfg, target_modules: ['q_proj', 'c_attn'] }));
    await assert.rejects(loadAdapter(model, dir), /adapter_config\.json: unknown target module\(s\) "c_attn"/);
    writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({ ...cfg, peft_type: 'IA3' }));
    await assert.rejects(loadAdapter(model, dir), /peft_type is "IA3"; only "LORA"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    model.dispose();
  }
});

test("target_modules as PEFT's list form reads it: a name or a dotted suffix of the module's path; any family", async () => {
  const model = await baseModel();
  const names = (targets: string[]) => { const sel = selectTargets(model, targets).map((l) => l.name); return sel; };
  assert.deepEqual(names(['self_attn.q_proj']), names(['q_proj']));
  assert.deepEqual(names(['layers.1.mlp.down_proj']), ['model.layers.1.mlp.down_proj']);
  assert.deepEqual(names(['model.layers.0.self_attn.v_proj', 'o_proj']), ['model.layers.0.self_attn.v_proj', 'model.layers.0.self_attn.o_proj', 'model.layers.1.self_attn.o_proj']);
  assert.throws(() => names(['attn.q_proj']), /unknown target module\(s\) "attn\.q_proj"/, 'a suffix must start at a dot');
  model.dispose();
  const mamba = T.createModel({ model_type: 'mamba', vocab_size: 40, hidden_size: 16, state_size: 4, num_hidden_layers: 2 }, 'cfg');
  assert.deepEqual(selectTargets(mamba, ['mixer.in_proj']).map((l) => l.name), ['backbone.layers.0.mixer.in_proj', 'backbone.layers.1.mixer.in_proj']);
  assert.deepEqual(T.defaultLoraTargets('mamba'), ['in_proj', 'out_proj']);
  assert.deepEqual(T.defaultLoraTargets('llama'), ['q_proj', 'v_proj']);
  applyLora(mamba, { r: 2, lora_alpha: 4, target_modules: T.defaultLoraTargets('mamba') });
  assert.deepEqual(trainableSummary(mamba).trainable, 2 * 2 * ((16 + 64) + (32 + 16))); // layers × r × (in + out) of in_proj and out_proj
  mamba.dispose();
});

test('save in PEFT format and load back; fuse gives a plain model with HF names', async () => {
  const model = await baseModel();
  applyLora(model, { r: 2, lora_alpha: 4, target_modules: ['q_proj', 'down_proj'], seed: 5 });
  const { trainable, total } = trainableSummary(model);
  assert.equal(trainable, 2 * (2 * (32 + 32) + 2 * (48 + 32)));
  assert.ok(total > trainable);
  for (const [, p] of model.namedParameters()) T.fill_(p, 0.05); // B ≠ 0
  const want = logits(model, base.input_ids);
  const dir = mkdtempSync(path.join(tmpdir(), 'tslm-lora-'));
  try {
    await saveAdapter(model, dir, { baseModel: 'my/base' });
    const cfg = JSON.parse(readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
    assert.equal(cfg.peft_type, 'LORA');
    assert.equal(cfg.r, 2);
    assert.equal(cfg.lora_alpha, 4);
    assert.deepEqual(cfg.target_modules, ['down_proj', 'q_proj']);
    assert.equal(cfg.base_model_name_or_path, 'my/base');
    assert.equal(cfg.task_type, 'CAUSAL_LM');
    const { tensors, metadata } = await readSafetensors(path.join(dir, 'adapter_model.safetensors'));
    assert.deepEqual(metadata, { format: 'pt' });
    assert.equal(tensors.length, 8);
    assert.ok(tensors.some((t) => t.name === 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight' && t.shape.join() === '2,32'));
    assert.ok(tensors.some((t) => t.name === 'base_model.model.model.layers.1.mlp.down_proj.lora_B.weight' && t.shape.join() === '32,2'));
    const fresh = await baseModel();
    await loadAdapter(fresh, dir);
    assertClose(logits(fresh, base.input_ids), want, 1e-6, 1e-6, 'reloaded');
    fuseLora(fresh);
    assertClose(logits(fresh, base.input_ids), want, 1e-5, 1e-5, 'fused');
    assert.deepEqual(Object.keys(fresh.stateDict()).sort(), Object.keys((await baseModel()).stateDict()).sort());
    fresh.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
    model.dispose();
  }
});

test('fused lora_linear: gradients by finite differences; with dropout equal to the composite with the same mask', () => {
  for (const b of ['ref', 'wasm'] as const) withBackend(b, () => scope(() => {
    const g = new Generator(9);
    const mk = (shape: number[]) => T.randn(shape, { generator: g }).requiresGrad_();
    const x = mk([2, 3, 5]), W = mk([4, 5]), bias = mk([4]), A = mk([2, 5]), B = mk([4, 2]);
    gradcheck(`lora_linear [${b}]`, (x_, W_, b_, A_, B_) => loraLinear(x_, W_, b_, A_, B_, 1.5), [x, W, bias, A, B]);
    const r = T.randn([2, 3, 4], { generator: g });
    const grads = (f: () => T.Tensor) => {
      for (const t of [x, W, bias, A, B]) t.grad = null;
      const y = f();
      T.sum(T.mul(y, r)).backward();
      return [y, ...[x, W, bias, A, B].map((t) => t.grad!)].map((t) => t.toArray());
    };
    const fused = grads(() => loraLinear(x, W, bias, A, B, 1.5, { p: 0.4, generator: new Generator(3) }));
    const composite = grads(() => {
      const m = T.mul(T.gt(T.rand(x.shape, { generator: new Generator(3) }), 0.4), 1 / 0.6);
      return T.add(T.linear(x, W, bias), T.mul(T.linear(T.linear(T.mul(x, m), A), B), 1.5));
    });
    fused.forEach((v, i) => assertClose(v, composite[i], 1e-5, 1e-5, `[${b}] output/grad ${i}`));
  }));
});

test('svd: reconstructs a matrix, values descending', () => {
  const g = new Generator(1);
  for (const [m, n] of [[7, 4], [4, 9]]) {
    const a = Array.from({ length: m * n }, () => g.normal());
    const { U, S, V } = svd(a, m, n);
    for (let i = 1; i < S.length; i++) assert.ok(S[i - 1] >= S[i]);
    const rec = new Float64Array(m * n);
    for (let k = 0; k < S.length; k++) for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) rec[i * n + j] += U[k][i] * S[k] * V[k][j];
    assertClose(rec, a, 1e-9, 0, `svd ${m}×${n}`);
  }
});

test('extract a LoRA from a fine-tuned model by truncated SVD, with the reconstruction error per rank', async () => {
  const b = await baseModel();
  const tuned = await baseModel();
  await loadAdapter(tuned, fixturePath('lora/all_r4'));
  fuseLora(tuned); // a "fully fine-tuned" model whose delta has rank 4 per layer
  const ex = extractLora(b, tuned, { rank: 4, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], ranks: [1, 2, 4, 8] });
  const err = Object.fromEntries(ex.errors.map((e) => [e.rank, e.relativeError]));
  assert.ok(err[1] > err[2] && err[2] > 0.05, `rank 1/2 errors ${err[1]}, ${err[2]}`);
  assert.ok(err[4] < 1e-4 && err[8] < 1e-4, `rank 4 error ${err[4]}`);
  addExtractedAdapter(b, ex);
  const fx = fixture<AdFx>('lora/all_r4.json');
  assertClose(logits(b, fx.input_ids), fx.logits, 2e-4, 1e-4, 'extracted adapter');
  assert.throws(() => extractLora(b, tuned, { rank: 33 }), /rank 33 must be an integer in \[1, 16\]/);
  b.dispose();
  tuned.dispose();
});
