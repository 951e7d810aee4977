// Mamba parity with an independent PyTorch implementation (scripts/ref_mamba.py, fixtures from
// scripts/gen_mamba_fixtures.py; see test/fixtures/mamba/README.md): logits, loss and the
// gradient of every parameter to 1e-4, recurrent decoding (one token at a time, the final conv
// and SSM states), greedy tokens, HF's left-padding semantics — on both backends. Then what the
// model contract promises any family: DecodeState operations, save/load, clear config errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, copyFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as T from '../../src/index.js';
import { init, shutdown, scope, noGrad, withBackend, generate, loadModel, saveModel, createModel, readSafetensors, writeSafetensors, DecodeBatch } from '../../src/index.js';
import type { CausalLM, MambaForCausalLM, RecurrentState } from '../../src/index.js';
import { BACKENDS, assertClose, fixture, fixturePath } from '../helpers.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

interface Expected {
  input_ids: number[][];
  loss: number;
  greedy: { prompt: number[]; ids: number[] };
  padded: { input_ids: number[][]; attention_mask: number[][] };
}

const CASES = ['tied', 'untied_bias'];

async function loadCase(name: string): Promise<{ model: MambaForCausalLM; fx: Expected; want: Map<string, { shape: number[]; data: Float32Array }> }> {
  const { model } = await loadModel(fixturePath(`mamba/${name}`));
  const fx = fixture<Expected>(`mamba/${name}/expected.json`);
  const { tensors } = await readSafetensors(fixturePath(`mamba/${name}/expected.safetensors`));
  const want = new Map(tensors.map((t) => [t.name, { shape: t.shape, data: T.toFloat32(t) }]));
  return { model: model as MambaForCausalLM, fx, want };
}

const ids = (rows: number[][]) => T.tensor(rows, undefined, 'i32');

for (const name of CASES) {
  test(`mamba ${name}: logits, loss and every gradient match the PyTorch reference`, async () => {
    const { model, fx, want } = await loadCase(name);
    try {
      for (const b of BACKENDS) {
        withBackend(b, () => scope(() => {
          const logits = noGrad(() => model.forward(ids(fx.input_ids)));
          assert.deepEqual(logits.shape, want.get('logits')!.shape);
          assertClose(logits.toArray() as number[], want.get('logits')!.data, 1e-4, 1e-4, `${name} [${b}] logits`);
          for (const [, p] of model.namedParameters()) p.grad = null;
          const loss = model.loss(ids(fx.input_ids));
          assertClose([loss.item()], [fx.loss], 1e-5, 1e-5, `${name} [${b}] loss`);
          loss.backward();
          const seen = new Set<string>();
          for (const [pname, p] of model.namedParameters()) {
            const g = want.get(`grad.${pname}`);
            assert.ok(g, `${name}: the reference has no gradient for ${pname}`);
            assert.ok(p.grad, `${name} [${b}]: no gradient for ${pname}`);
            assertClose(p.grad!.toArray() as number[], g.data, 1e-5, 1e-4, `${name} [${b}] grad ${pname}`);
            seen.add(pname);
            p.grad = null;
          }
          const refGrads = [...want.keys()].filter((k) => k.startsWith('grad.')).map((k) => k.slice(5));
          assert.deepEqual(refGrads.filter((k) => !seen.has(k)), [], 'every reference gradient is compared');
        }));
      }
    } finally {
      model.dispose();
    }
  });

  test(`mamba ${name}: recurrent decoding equals the full forward; final states and greedy tokens match`, async () => {
    const { model, fx, want } = await loadCase(name);
    const c = model.config, B = fx.input_ids.length, L = fx.input_ids[0].length;
    try {
      for (const b of BACKENDS) {
        withBackend(b, () => noGrad(() => scope(() => {
          // one token at a time from an empty state
          const state = model.newState(B) as RecurrentState;
          const steps: number[][] = [];
          for (let t = 0; t < L; t++) steps.push(model.forward(ids(fx.input_ids.map((r) => [r[t]])), state).toArray() as number[]);
          const V = c.vocab_size, stepLogits = new Float32Array(B * L * V);
          steps.forEach((s, t) => { for (let r = 0; r < B; r++) stepLogits.set(s.slice(r * V, (r + 1) * V), (r * L + t) * V); });
          assertClose(stepLogits, want.get('step_logits')!.data, 1e-4, 1e-4, `${name} [${b}] step logits`);
          // final states: ours hold the last K−1 conv inputs (B, K−1, Di), the reference's the last K (B, Di, K)
          const K = c.conv_kernel, Di = c.intermediate_size;
          for (let l = 0; l < c.num_hidden_layers; l++) {
            const conv = state.rows(2 * l).toArray() as number[], ref = want.get(`cache.conv_states.${l}`)!.data;
            const refLast = new Float32Array(B * (K - 1) * Di);
            for (let r = 0; r < B; r++) for (let k = 0; k < K - 1; k++) for (let d = 0; d < Di; d++) refLast[(r * (K - 1) + k) * Di + d] = ref[(r * Di + d) * K + k + 1];
            assertClose(conv, refLast, 1e-5, 1e-5, `${name} [${b}] conv state ${l}`);
            assertClose(state.rows(2 * l + 1).toArray() as number[], want.get(`cache.ssm_states.${l}`)!.data, 1e-5, 1e-4, `${name} [${b}] ssm state ${l}`);
          }
          // prefill in one call, then steps: same logits
          const s2 = model.newState(B);
          const pre = model.forward(ids(fx.input_ids.map((r) => r.slice(0, 5))), s2);
          const rest = Array.from({ length: L - 5 }, (_, i) => model.forward(ids(fx.input_ids.map((r) => [r[5 + i]])), s2));
          const full = T.concat([pre, ...rest], 1);
          assertClose(full.toArray() as number[], want.get('logits')!.data, 1e-4, 1e-4, `${name} [${b}] prefill + steps`);
          state.dispose();
          s2.dispose();
        })));
        const g = withBackend(b, () => generate(model, fx.greedy.prompt, { maxNewTokens: fx.greedy.ids.length, stopIds: [] }));
        assert.deepEqual(g.ids[0], fx.greedy.ids, `${name} [${b}] greedy tokens`);
      }
    } finally {
      model.dispose();
    }
  });

  test(`mamba ${name}: a left-padded row computes what the row alone computes (HF's mask semantics)`, async () => {
    const { model, fx, want } = await loadCase(name);
    try {
      const padLeft = fx.padded.attention_mask.map((m) => m.filter((x) => x === 0).length);
      const V = model.config.vocab_size, L = fx.padded.input_ids[0].length;
      const got = noGrad(() => scope(() => model.forward(ids(fx.padded.input_ids), null, { padLeft }).toArray() as number[]));
      const ref = want.get('padded.logits')!.data;
      for (let r = 0; r < padLeft.length; r++) {
        const from = (r * L + padLeft[r]) * V, to = (r + 1) * L * V;
        assertClose(got.slice(from, to), ref.subarray(from, to), 1e-4, 1e-4, `${name} row ${r} real positions`);
      }
    } finally {
      model.dispose();
    }
  });
}

test('mamba: DecodeState operations keep decoding exact (clone, select, append, truncate with history) and batched generation equals solo', async () => {
  const { model, fx } = await loadCase('tied');
  try {
    noGrad(() => scope(() => {
      const [r0, r1] = fx.input_ids;
      const solo = (row: number[], n: number) => {
        const s = model.newState(1);
        const out = model.forward(ids([row.slice(0, n)]), s);
        return { s, last: T.slice(out, 1, -1).toArray() as number[] };
      };
      // clone: both copies continue identically
      const a = solo(r0, 6), c = a.s.clone();
      const x1 = model.forward(ids([[r0[6]]]), a.s).toArray() as number[];
      const x2 = model.forward(ids([[r0[6]]]), c).toArray() as number[];
      assert.deepEqual(x1, x2);
      // append two single-row states, then select them swapped: each row continues as alone
      const both = model.newState(3);
      both.select([]);
      const p = solo(r0, 4), q = solo(r1, 7);
      both.append(p.s);
      both.append(q.s);
      assert.equal(both.batch, 2);
      both.select([1, 0]);
      const step = model.forward(ids([[r1[7]], [r0[4]]]), both).toArray() as number[];
      const V = model.config.vocab_size;
      assertClose(step.slice(0, V), model.forward(ids([[r1[7]]]), q.s).toArray() as number[], 1e-5, 1e-5, 'row 0 (was row 1)');
      assertClose(step.slice(V), model.forward(ids([[r0[4]]]), p.s).toArray() as number[], 1e-5, 1e-5, 'row 1 (was row 0)');
      // truncate: a state with history rolls back and continues as if the extra tokens never came
      const h = model.newState(1, undefined, { history: 4 });
      model.forward(ids([r0.slice(0, 5)]), h);
      const before = model.forward(ids([[r0[5]]]), h.clone()).toArray() as number[];
      model.forward(ids([[7, 9, 11]]), h);
      h.truncate(5);
      assertClose(model.forward(ids([[r0[5]]]), h).toArray() as number[], before, 1e-6, 1e-6, 'after truncate');
      assert.throws(() => model.newState(1).truncate(-1), /outside/);
      const nh = model.newState(1);
      model.forward(ids([r0.slice(0, 5)]), nh);
      assert.throws(() => nh.truncate(3), /cannot roll back from 5 to 3 positions/);
      for (const s of [a.s, c, both, p.s, q.s, h, nh]) s.dispose();
    }));
    // continuous batching: two overlapping requests give the solo greedy tokens
    const prompts = [fx.input_ids[0].slice(0, 3), fx.input_ids[1].slice(0, 6)];
    const solo = prompts.map((p) => generate(model, p, { maxNewTokens: 8, stopIds: [] }).ids[0]);
    const batch = new DecodeBatch(model, 4);
    const reqs = prompts.map((p) => batch.add(p, { maxNewTokens: 8, stopIds: [] }));
    while (batch.step());
    assert.deepEqual(reqs.map((r) => r.result().ids[0]), solo);
    batch.dispose();
  } finally {
    model.dispose();
  }
});

test('mamba: save → load round trip is exact; bad configs and weights fail naming the field or tensor', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tslm-mamba-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { model } = await loadCase('untied_bias');
  const x = ids([[5, 6, 7, 8]]);
  const ref = noGrad(() => model.forward(x).toArray());
  await saveModel(model, path.join(dir, 'saved'));
  const back = await loadModel(path.join(dir, 'saved'));
  assert.deepEqual(noGrad(() => back.model.forward(x).toArray()), ref);
  assert.equal(back.config.model_type, 'mamba');
  back.model.dispose();
  model.dispose();

  // older checkpoints name the embedding backbone.embedding.weight (transformers renames it on load)
  const legacy = path.join(dir, 'legacy');
  mkdirSync(legacy);
  const { tensors } = await readSafetensors(fixturePath('mamba/tied/model.safetensors'));
  await writeSafetensors(path.join(legacy, 'model.safetensors'), tensors.map((t) => (t.name === 'backbone.embeddings.weight' ? { ...t, name: 'backbone.embedding.weight' } : t)));
  copyFileSync(fixturePath('mamba/tied/config.json'), path.join(legacy, 'config.json'));
  const old = await loadModel(legacy), cur = await loadModel(fixturePath('mamba/tied'));
  assert.deepEqual(noGrad(() => old.model.forward(x).toArray()), noGrad(() => cur.model.forward(x).toArray()));
  old.model.dispose();
  cur.model.dispose();

  const cfg = fixture<Record<string, unknown>>('mamba/tied/config.json');
  assert.throws(() => createModel({ ...cfg, model_type: 'mamba2' }, 'x/config.json'), /x\/config\.json: model_type "mamba2" is not supported \(supported: .*mamba/);
  assert.throws(() => createModel({ ...cfg, intermediate_size: 100 }, 'x/config.json'), /intermediate_size.*100.*expand × hidden_size = 2 × 32 = 64/);
  assert.throws(() => createModel({ ...cfg, state_size: 0 }, 'x/config.json'), /field "state_size" must be a positive integer/);
  assert.throws(() => createModel({ ...cfg, time_step_rank: 'big' }, 'x/config.json'), /field "time_step_rank"/);
  // weights whose shapes disagree with the config
  const bad = path.join(dir, 'bad');
  mkdirSync(bad);
  copyFileSync(fixturePath('mamba/tied/model.safetensors'), path.join(bad, 'model.safetensors'));
  writeFileSync(path.join(bad, 'config.json'), JSON.stringify({ ...cfg, state_size: 4 }));
  await assert.rejects(loadModel(bad), /bad\/model\.safetensors: tensor 'backbone\.layers\.0\.mixer\.(A_log|x_proj\.weight)': shape \[\d+, \d+\] does not match the config's/);
});

test('mamba: trains (loss falls) and its memory stays flat over steps', async () => {
  const m = createModel({ model_type: 'mamba', vocab_size: 40, hidden_size: 16, state_size: 4, num_hidden_layers: 2 }, 'cfg', { generator: new T.Generator(1) }) as CausalLM;
  const opt = new T.AdamW(m.parameters(), { lr: 1e-2 });
  const seq = Array.from({ length: 17 }, (_, i) => (i * 7) % 40);
  const batch = ids([seq, seq.map((v) => (v + 3) % 40)]);
  const losses: number[] = [];
  let heap0 = 0;
  for (let s = 0; s < 40; s++) {
    losses.push(scope(() => { const l = m.loss(batch); l.backward(); return l.item(); }));
    opt.step();
    opt.zeroGrad();
    if (s === 4) heap0 = T.heapStats().inUse;
  }
  assert.ok(losses[39] < losses[0] * 0.5, `loss ${losses[0]} → ${losses[39]}`);
  assert.equal(T.heapStats().inUse, heap0, 'heap in use after step 5 and step 40');
  m.dispose();
});
