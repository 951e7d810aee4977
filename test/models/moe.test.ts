// Mixture-of-experts parity with an independent PyTorch implementation (scripts/ref_moe.py,
// fixtures from scripts/gen_moe_fixtures.py; see test/fixtures/moe/README.md): HF Mixtral and
// Qwen2-MoE layouts and our capacity dropping — logits, cross-entropy, load-balancing loss,
// z-loss, total loss and the gradient of every parameter to 1e-4, greedy tokens, on both
// backends; the checkpoints load and save through the HF directory path, and tslm generate runs
// them without a tokenizer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as T from '../../src/index.js';
import { init, shutdown, scope, noGrad, withBackend, generate, loadModel, saveModel, createModel, readSafetensors } from '../../src/index.js';
import type { CausalLM } from '../../src/index.js';
import { BACKENDS, assertClose, fixture, fixturePath } from '../helpers.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

interface Expected {
  mode: 'eval' | 'training';
  tokens: number[][];
  loss: number; ce: number; aux: number; z: number;
  dropped?: number;
  greedy: { prompt: number[]; ids: number[] };
  params: number; active_params: number;
}

/** The fixture's model; `output_router_logits` on, since the fixture's loss includes the aux term. */
async function loadCase(name: string): Promise<{ model: CausalLM; fx: Expected; want: Map<string, Float32Array> }> {
  const dir = fixturePath(`moe/${name}`);
  const config = fixture<Record<string, unknown>>(`moe/${name}/config.json`);
  const { tensors } = await readSafetensors(path.join(dir, 'model.safetensors'));
  const model = createModel({ ...config, output_router_logits: true }, `${name}/config.json`);
  scope(() => model.loadStateDict(Object.fromEntries(tensors.map((t) => [t.name, T.tensor(T.toFloat32(t), t.shape)])), { source: name }));
  const fx = fixture<Expected>(`moe/${name}/expected.json`);
  const exp = await readSafetensors(path.join(dir, 'expected.safetensors'));
  return { model, fx, want: new Map(exp.tensors.map((t) => [t.name, T.toFloat32(t)])) };
}

for (const name of ['mixtral', 'qwen2_moe', 'capacity']) {
  test(`moe ${name}: logits, cross-entropy, aux and z losses, total loss and every gradient match the PyTorch reference`, async () => {
    const { model, fx, want } = await loadCase(name);
    try {
      assert.equal(model.numParameters(), fx.params);
      assert.equal(model.numActiveParameters(), fx.active_params);
      model.train(fx.mode === 'training');
      const inputs = T.tensor(fx.tokens.map((r) => r.slice(0, -1)), undefined, 'i32');
      for (const b of BACKENDS) {
        withBackend(b, () => scope(() => {
          assertClose(noGrad(() => model.forward(inputs)).toArray() as number[], want.get('logits')!, 1e-4, 1e-4, `${name} [${b}] logits`);
          for (const [, p] of model.namedParameters()) p.grad = null;
          const loss = model.loss(T.tensor(fx.tokens, undefined, 'i32'));
          const parts = model.lossParts()!;
          assertClose([loss.item()], [fx.loss], 1e-5, 1e-5, `${name} [${b}] total loss`);
          assertClose([parts.values.aux_loss, parts.values.router_z_loss], [fx.aux, fx.z], 1e-5, 1e-5, `${name} [${b}] aux, z`);
          if (fx.dropped !== undefined) assertClose([parts.values.dropped_fraction * fx.tokens.length * (fx.tokens[0].length - 1) * 2 * 2], [fx.dropped], 1e-9, 0, 'dropped assignments (2 layers × 20 rows × k 2)');
          loss.backward();
          let n = 0;
          for (const [pname, p] of model.namedParameters()) {
            const g = want.get(`grad.${pname}`);
            assert.ok(g, `${name}: the reference has no gradient for ${pname}`);
            assertClose(p.grad!.toArray() as number[], g, 1e-5, 1e-4, `${name} [${b}] grad ${pname}`);
            p.grad = null;
            n++;
          }
          assert.equal(n, [...want.keys()].filter((k) => k.startsWith('grad.')).length, 'every reference gradient compared');
        }));
      }
      if (fx.mode === 'training') {
        model.eval();
        assertClose(noGrad(() => scope(() => model.forward(inputs).toArray() as number[])), want.get('logits_eval')!, 1e-4, 1e-4, `${name} eval logits: nothing dropped`);
      }
      model.eval();
      for (const b of BACKENDS) {
        const g = withBackend(b, () => generate(model, fx.greedy.prompt, { maxNewTokens: fx.greedy.ids.length, stopIds: [] }));
        assert.deepEqual(g.ids[0], fx.greedy.ids, `${name} [${b}] greedy tokens`);
      }
    } finally {
      model.dispose();
    }
  });
}

test('moe checkpoints load from and save to HF directories unchanged (the config as written, output_router_logits included)', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tslm-moe-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const name of ['mixtral', 'qwen2_moe']) {
    const a = await loadModel(fixturePath(`moe/${name}`));
    a.model.eval();
    const x = T.tensor([[3, 9, 27, 17, 51]], undefined, 'i32');
    const ref = noGrad(() => a.model.forward(x).toArray());
    await saveModel(a.model, path.join(dir, name));
    const b = await loadModel(path.join(dir, name));
    b.model.eval();
    assert.deepEqual(noGrad(() => b.model.forward(x).toArray()), ref);
    const cfg = fixture<Record<string, unknown>>(`moe/${name}/config.json`);
    for (const k of ['model_type', 'num_experts_per_tok', 'router_aux_loss_coef', 'output_router_logits', name === 'mixtral' ? 'num_local_experts' : 'num_experts'])
      assert.deepEqual(b.config[k], cfg[k], `${name}: ${k}`);
    a.model.dispose();
    b.model.dispose();
  }
});
