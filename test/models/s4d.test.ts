// The S4D language model against the independent float64 PyTorch reference (scripts/ref_s4d.py,
// fixtures test/fixtures/s4d/lm/<case>/ from scripts/gen_s4d_fixtures.py): logits, loss, the
// gradient of every parameter, modal states, greedy tokens, left padding; decoding with the state
// (step by step, chunked prefill, clone/select/append/truncate) against the full forward;
// save/load; config validation.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as T from '../../src/index.js';
import {
  init, shutdown, scope, noGrad, withBackend, Tensor, generate, createModel, loadModel, saveModel, supportedModelTypes,
  ConfigError, DecodeStateError,
} from '../../src/index.js';
import { S4DForCausalLM, parseS4DConfig } from '../../src/models/s4d.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { assertClose, fixturePath } from '../helpers.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

interface Expected {
  input_ids: number[][]; loss: number;
  greedy: { prompt: number[]; ids: number[] };
  padded: { input_ids: number[][]; pad_left: number[] };
  tensors: Record<string, number[]>; parameters: Record<string, number[]>;
}
const CASES = ['tied', 'untied_bias'] as const;
const dirOf = (c: string): string => fixturePath(`s4d/lm/${c}`);

const loaded = new Map<string, { model: S4DForCausalLM; exp: Expected; want: Record<string, { shape: number[]; data: Float32Array }> }>();
async function caseOf(c: string) {
  if (!loaded.has(c)) {
    const { model } = await loadModel(dirOf(c));
    assert.ok(model instanceof S4DForCausalLM);
    const exp = JSON.parse(readFileSync(path.join(dirOf(c), 'expected.json'), 'utf8')) as Expected;
    const st = await readSafetensors(path.join(dirOf(c), 'expected.safetensors'));
    const want = Object.fromEntries(st.tensors.map((t) => [t.name, { shape: t.shape, data: new Float32Array(t.data.slice().buffer) }]));
    loaded.set(c, { model, exp, want });
  }
  return loaded.get(c)!;
}
after(() => { for (const { model } of loaded.values()) model.dispose(); });

const ids = (rows: number[][]): Tensor => T.tensor(rows, undefined, 'i32');
const BACKENDS = ['ref', 'wasm'] as const;

test('config: parsing, defaults, configJson round trip, errors naming the field', () => {
  const raw = JSON.parse(readFileSync(path.join(dirOf('untied_bias'), 'config.json'), 'utf8'));
  const c = parseS4DConfig(raw, 'config.json');
  assert.deepEqual(parseS4DConfig(new S4DForCausalLM(c).configJson()), c);
  const json = new S4DForCausalLM(c).configJson();
  assert.deepEqual(json.architectures, ['S4DForCausalLM']);
  for (const k of ['vocab_size', 'hidden_size', 'state_size', 'expand', 'num_hidden_layers', 'layer_norm_epsilon', 's4d_init', 'dt_min', 'dt_max',
    'use_bias', 'tie_word_embeddings', 'initializer_range', 'bos_token_id', 'eos_token_id', 'pad_token_id']) assert.ok(k in json, `configJson lacks ${k}`);
  const d = parseS4DConfig({ model_type: 's4d', vocab_size: 10, hidden_size: 8, num_hidden_layers: 1 });
  assert.deepEqual([d.state_size, d.expand, d.layer_norm_epsilon, d.s4d_init, d.dt_min, d.dt_max, d.use_bias, d.tie_word_embeddings, d.initializer_range, d.bos_token_id, d.eos_token_id, d.pad_token_id],
    [64, 2, 1e-5, 'lin', 0.001, 0.1, false, true, 0.02, null, null, null]);
  const base = { model_type: 's4d', vocab_size: 10, hidden_size: 8, num_hidden_layers: 1, state_size: 4 };
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ ...base, state_size: 7 }, /cfg\.json: field "state_size" must be even/],
    [{ ...base, s4d_init: 'cubic' }, /field "s4d_init" must be one of lin, inv, real, legs, got "cubic"/],
    [{ ...base, vocab_size: undefined }, /missing required field "vocab_size"/],
    [{ ...base, hidden_size: undefined }, /missing required field "hidden_size"/],
    [{ ...base, num_hidden_layers: undefined }, /missing required field "num_hidden_layers"/],
    [{ ...base, expand: 1.5 }, /field "expand" must be a positive integer/],
    [{ ...base, dt_min: 0.5, dt_max: 0.1 }, /field "dt_min" \(0.5\) exceeds "dt_max"/],
    [{ ...base, use_bias: 'yes' }, /field "use_bias" must be true or false/],
    [{ ...base, eos_token_id: -1 }, /field "eos_token_id"/],
  ];
  for (const [r, re] of bad) assert.throws(() => createModel(r, 'cfg.json'), (e: Error) => e instanceof ConfigError && re.test(e.message), re.source);
  assert.ok(supportedModelTypes().includes('s4d'));
  const m = createModel(base);
  assert.ok(m instanceof S4DForCausalLM && m.contextLength === Infinity);
  m.dispose();
});

test('tensor names and shapes are the ones the reference writes (HF Mamba-style names)', async () => {
  for (const c of CASES) {
    const { model, exp } = await caseOf(c);
    assert.deepEqual(model.namedTensors().map(([n, t]) => [n, t.shape]), Object.entries(exp.parameters), c);
  }
  const { model } = await caseOf('tied');
  assert.deepEqual(model.namedTensors().slice(0, 9).map(([n]) => n), [
    'backbone.embeddings.weight', 'backbone.layers.0.norm.weight', 'backbone.layers.0.mixer.in_proj.weight',
    'backbone.layers.0.mixer.kernel.log_dt', 'backbone.layers.0.mixer.kernel.log_A_real', 'backbone.layers.0.mixer.kernel.A_imag',
    'backbone.layers.0.mixer.kernel.C', 'backbone.layers.0.mixer.D', 'backbone.layers.0.mixer.out_proj.weight',
  ]);
});

for (const c of CASES) {
  test(`${c}: logits, loss and the gradient of every parameter match PyTorch`, async () => {
    const { model, exp, want } = await caseOf(c);
    for (const b of BACKENDS) withBackend(b, () => scope(() => {
      const x = ids(exp.input_ids);
      const logits = noGrad(() => model.forward(x));
      assert.deepEqual(logits.shape, want.logits.shape);
      assertClose(logits.toArray(), want.logits.data, 1e-5, 1e-5, `${c} [${b}] logits`);
      for (const [, p] of model.namedParameters()) p.grad = null;
      const loss = model.loss(x);
      assert.ok(Math.abs(loss.item() - exp.loss) < 2e-6, `${c} [${b}] loss ${loss.item()} vs ${exp.loss}`);
      loss.backward();
      for (const [n, p] of model.namedParameters()) {
        const g = want[`grad.${n}`];
        assert.ok(p.grad, `${c} [${b}]: no gradient for ${n}`);
        const scale = Math.max(...g.data.map(Math.abs));
        assertClose(p.grad!.toArray(), g.data, 2e-5 * scale, 1e-4, `${c} [${b}] d loss / d ${n}`);
        p.grad!.dispose();
        p.grad = null;
      }
    }));
  });

  test(`${c}: decoding with the state — step by step, chunked prefill and the modal states — equals the full forward`, async () => {
    const { model, exp, want } = await caseOf(c);
    for (const b of BACKENDS) withBackend(b, () => noGrad(() => scope(() => {
      const x = ids(exp.input_ids), Tn = x.shape[1];
      const full = model.forward(x).toArray();
      const s1 = model.newState(2);
      const steps = T.concat(Array.from({ length: Tn }, (_, t) => model.forward(T.slice(x, 1, t, t + 1), s1)), 1);
      assertClose(steps.toArray(), full, 1e-5, 1e-5, `${c} [${b}] step by step vs full`);
      assertClose(steps.toArray(), want.logits.data, 1e-5, 1e-5, `${c} [${b}] step by step vs PyTorch`);
      const s2 = model.newState(2);
      const chunked = T.concat([model.forward(T.slice(x, 1, 0, 5), s2), model.forward(T.slice(x, 1, 5), s2)], 1);
      assertClose(chunked.toArray(), full, 1e-5, 1e-5, `${c} [${b}] chunked prefill vs full`);
      assert.equal(s2.length, Tn);
      for (let i = 0; i < model.config.num_hidden_layers; i++) {
        assertClose(s1.tensors[i].toArray(), want[`state.${i}`].data, 1e-5, 1e-4, `${c} [${b}] layer ${i} state (steps)`);
        assertClose(s2.tensors[i].toArray(), want[`state.${i}`].data, 1e-5, 1e-4, `${c} [${b}] layer ${i} state (chunks)`);
      }
      s1.dispose();
      s2.dispose();
    })));
  });

  test(`${c}: greedy generate() gives the reference's tokens; a left-padded batch decodes each row as alone`, async () => {
    const { model, exp } = await caseOf(c);
    for (const b of BACKENDS) withBackend(b, () => {
      const r = generate(model, exp.greedy.prompt, { maxNewTokens: exp.greedy.ids.length, stopIds: [] });
      assert.deepEqual(r.ids[0], exp.greedy.ids, `${c} [${b}] greedy ids`);
      const other = exp.input_ids[1].slice(0, 9);
      const both = generate(model, [exp.greedy.prompt, other], { maxNewTokens: 6, stopIds: [] });
      assert.deepEqual(both.ids[0], exp.greedy.ids.slice(0, 6), `${c} [${b}] padded row`);
      assert.deepEqual(both.ids[1], generate(model, other, { maxNewTokens: 6, stopIds: [] }).ids[0], `${c} [${b}] longer row`);
    });
  });

  test(`${c}: padLeft — a left-padded row gives the same logits as the unpadded one, and matches PyTorch`, async () => {
    const { model, exp, want } = await caseOf(c);
    for (const b of BACKENDS) withBackend(b, () => noGrad(() => scope(() => {
      const P = exp.padded.pad_left[0], V = model.config.vocab_size, Tn = exp.padded.input_ids[0].length;
      const padded = model.forward(ids(exp.padded.input_ids), null, { padLeft: exp.padded.pad_left });
      assertClose(padded.toArray(), want['padded.logits'].data, 1e-5, 1e-5, `${c} [${b}] padded logits vs PyTorch`);
      const alone = model.forward(ids([exp.padded.input_ids[0].slice(P)])).toArray();
      assertClose(padded.toArray().slice(P * V, Tn * V), alone, 1e-5, 1e-5, `${c} [${b}] padded row vs alone`);
      // the same through a state, prefill then a step
      const s = model.newState(2);
      model.forward(ids(exp.padded.input_ids), s, { padLeft: exp.padded.pad_left });
      const next = model.forward(ids([[5], [7]]), s, { padLeft: exp.padded.pad_left }).toArray();
      const s0 = model.newState(1);
      model.forward(ids([exp.padded.input_ids[0].slice(P)]), s0);
      assertClose(next.slice(0, V), model.forward(ids([[5]]), s0).toArray(), 1e-5, 1e-5, `${c} [${b}] padded row decodes as alone`);
      s.dispose();
      s0.dispose();
    })));
  });
}

test('DecodeState operations keep decoding exact: clone, select, append, truncate with history', async () => {
  const { model, exp } = await caseOf('tied');
  const [p0, p1] = exp.input_ids;
  const V = model.config.vocab_size;
  /** Logits of decoding `toks` one at a time after `prompt`, from a fresh state (the truth). */
  const alone = (prompt: number[], toks: number[]): number[][] => {
    const s = model.newState(1);
    model.forward(ids([prompt]), s);
    const out = toks.map((t) => model.forward(ids([[t]]), s).toArray());
    s.dispose();
    return out;
  };
  for (const b of BACKENDS) withBackend(b, () => noGrad(() => scope(() => {
    // clone: both copies continue identically; the clone is independent
    const s = model.newState(1);
    model.forward(ids([p0.slice(0, 6)]), s);
    const c = s.clone();
    assertClose(model.forward(ids([[3]]), c).toArray(), alone(p0.slice(0, 6), [3])[0], 1e-5, 1e-5, `[${b}] clone`);
    assertClose(model.forward(ids([[4]]), s).toArray(), alone(p0.slice(0, 6), [4])[0], 1e-5, 1e-5, `[${b}] original after the clone moved`);
    // select: rows reordered and dropped
    const two = model.newState(2);
    model.forward(ids([p0.slice(0, 7), p1.slice(0, 7)]), two);
    two.select([1, 0]);
    const l2 = model.forward(ids([[9], [8]]), two).toArray();
    assertClose(l2.slice(0, V), alone(p1.slice(0, 7), [9])[0], 1e-5, 1e-5, `[${b}] select row 1 → 0`);
    assertClose(l2.slice(V), alone(p0.slice(0, 7), [8])[0], 1e-5, 1e-5, `[${b}] select row 0 → 1`);
    two.select([1]);
    assertClose(model.forward(ids([[2]]), two).toArray(), alone(p0.slice(0, 7), [8, 2])[1], 1e-5, 1e-5, `[${b}] select one row`);
    // append: a shorter state joins a longer one (left padding of the shorter row)
    const big = model.newState(2);
    big.select([]);
    const a = model.newState(1), bst = model.newState(1);
    model.forward(ids([p0.slice(0, 4)]), a);
    model.forward(ids([p1.slice(0, 9)]), bst);
    big.append(a);
    big.append(bst);
    assert.equal(big.length, 9);
    const la = model.forward(ids([[6], [7]]), big, { padLeft: [5, 0] }).toArray();
    assertClose(la.slice(0, V), alone(p0.slice(0, 4), [6])[0], 1e-5, 1e-5, `[${b}] appended shorter row`);
    assertClose(la.slice(V), alone(p1.slice(0, 9), [7])[0], 1e-5, 1e-5, `[${b}] appended longer row`);
    // truncate: with history, prefill goes one position at a time and any of the last k positions can be restored
    const h = model.newState(1, undefined, { history: 6 });
    const pre = model.forward(ids([p0.slice(0, 6)]), h).toArray();
    assertClose(pre, noGrad(() => model.forward(ids([p0.slice(0, 6)]))).toArray(), 1e-5, 1e-5, `[${b}] prefill with snapshots`);
    const first = [5, 6, 7].map((t) => model.forward(ids([[t]]), h).toArray());
    h.truncate(7);
    assertClose(model.forward(ids([[6]]), h).toArray(), first[1], 1e-5, 1e-5, `[${b}] after truncate(7)`);
    h.truncate(5);
    assertClose(model.forward(ids([[p0[5]]]), h).toArray(), pre.slice(5 * V), 1e-5, 1e-5, `[${b}] after truncate(5) into the prefill`);
    assert.throws(() => h.truncate(1), DecodeStateError);
    h.truncate(0);
    assertClose(model.forward(ids([p0.slice(0, 6)]), h).toArray(), pre, 1e-5, 1e-5, `[${b}] after truncate(0)`);
    for (const st of [s, c, two, big, a, bst, h]) st.dispose();
  })));
  // a state of another shape is refused
  const other = createModel({ model_type: 's4d', vocab_size: V, hidden_size: 8, num_hidden_layers: 1, state_size: 4 }) as S4DForCausalLM;
  const st = other.newState(1);
  assert.throws(() => noGrad(() => model.forward(ids([[1]]), st)), DecodeStateError);
  st.dispose();
  other.dispose();
});

test('continuous batching (DecodeBatch): requests joining a running batch decode as alone', async () => {
  const { model, exp } = await caseOf('untied_bias');
  const prompts = [exp.greedy.prompt, exp.input_ids[1].slice(0, 7), exp.input_ids[0].slice(2, 11)];
  const solo = prompts.map((p) => generate(model, p, { maxNewTokens: 8, stopIds: [] }).ids[0]);
  const batch = new T.DecodeBatch(model, 4);
  const reqs = [batch.add(prompts[0], { maxNewTokens: 8, stopIds: [] })];
  batch.step();
  batch.step();
  reqs.push(batch.add(prompts[1], { maxNewTokens: 8, stopIds: [] }), batch.add(prompts[2], { maxNewTokens: 8, stopIds: [] }));
  while (batch.step());
  batch.dispose();
  assert.deepEqual(reqs.map((r) => r.result().ids[0]), solo);
  assert.deepEqual(solo[0], exp.greedy.ids.slice(0, 8));
});

test('save/load through saveModel/loadModel round-trips exactly', async () => {
  const { model, exp } = await caseOf('untied_bias');
  const dir = mkdtempSync(path.join(tmpdir(), 'tslm-s4d-'));
  try {
    await saveModel(model, dir);
    const { model: back, config } = await loadModel(dir);
    assert.equal(config.model_type, 's4d');
    assert.ok(back instanceof S4DForCausalLM);
    assert.deepEqual(back.config, model.config);
    const mine = Object.fromEntries(model.namedTensors().map(([n, t]) => [n, t.toArray()]));
    for (const [n, t] of back.namedTensors()) assert.deepEqual(t.toArray(), mine[n], n);
    noGrad(() => scope(() => assert.deepEqual(back.forward(ids(exp.input_ids)).toArray(), model.forward(ids(exp.input_ids)).toArray())));
    back.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('training: AdamW steps on a tiny S4D model lower the loss, every parameter moves, memory stays flat', () => {
  const m = createModel({ model_type: 's4d', vocab_size: 16, hidden_size: 16, num_hidden_layers: 2, state_size: 8, dt_min: 0.01, dt_max: 0.3 }, 'config.json', { generator: new T.Generator(3) }) as S4DForCausalLM;
  const opt = new T.AdamW(m.parameters(), { lr: 1e-2, weightDecay: 0 });
  const before = m.namedParameters().map(([n, p]) => [n, p.toArray()] as const);
  // a periodic sequence: predictable only by remembering the last few tokens
  const seq = [Array.from({ length: 33 }, (_, i) => [3, 1, 4, 1, 5, 9, 2][i % 7])];
  const losses: number[] = [];
  let inUse = 0;
  for (let step = 0; step < 30; step++) {
    scope(() => {
      opt.zeroGrad();
      const loss = m.loss(ids(seq));
      loss.backward();
      opt.step();
      losses.push(loss.item());
    });
    if (step === 5) inUse = T.heapStats().inUse;
  }
  assert.ok(losses[29] < 0.5 * losses[0], `loss ${losses[0]} → ${losses[29]}`);
  for (const [n, v] of before) assert.notDeepEqual(m.stateDict()[n].toArray(), v, `${n} did not train`);
  assert.ok(T.heapStats().inUse <= inUse, `heap grew from ${inUse} to ${T.heapStats().inUse}`);
  m.dispose();
});
