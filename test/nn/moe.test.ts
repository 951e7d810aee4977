// The mixture-of-experts block's machinery, checked against plain loops and finite differences on
// both backends (model-level parity with PyTorch is in test/models/moe.test.ts): indexAddRows,
// the block against a per-token reference, capacity dropping, the router's NaN and config errors,
// active-parameter counts, and the loss parts and report of a training run.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { init, shutdown, scope, noGrad, Generator, createModel } from '../../src/index.js';
import { indexAddRows } from '../../src/tensor/nn.js';
import { SparseMoeBlock } from '../../src/nn/moe.js';
import type { LlamaForCausalLM } from '../../src/index.js';
import { expertLoadSvg, partsCurveSvg } from '../../src/train/report.js';
import { BACKENDS, assertClose, gradcheck, onBackends, randArray } from '../helpers.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

test('indexAddRows: a scatter-add of rows (repeated indices accumulate) with its gradient, on both backends', () => {
  const g = new Generator(3);
  for (const [M, D, n] of [[7, 5, 4], [33, 17, 9], [1, 3, 2]]) {
    const src = randArray(M * D, g), idx = Array.from({ length: M }, (_, i) => (i * 7 + 3) % n);
    const want = new Array(n * D).fill(0);
    for (let i = 0; i < M; i++) for (let d = 0; d < D; d++) want[idx[i] * D + d] += src[i * D + d];
    for (const b of BACKENDS) {
      T.withBackend(b, () => scope(() => {
        const got = indexAddRows(T.tensor(src, [M, D]), T.tensor(idx, [M], 'i32'), n).toArray() as number[];
        assertClose(got, want, 1e-6, 1e-6, `[${b}] M=${M} D=${D}`);
      }));
    }
  }
  onBackends((b) => {
    const x = T.tensor(randArray(6 * 4, g), [6, 4]).requiresGrad_();
    gradcheck(`indexAddRows [${b}]`, (s) => indexAddRows(s, T.tensor([2, 0, 2, 1, 0, 2], [6], 'i32'), 3), [x]);
  });
  assert.throws(() => indexAddRows(T.tensor(randArray(4, g), [2, 2]), T.tensor([0, 5], [2], 'i32'), 3), /index 5 at position 1 is out of range \[0, 3\)/);
});

/** The block on a batch, one token at a time with plain loops over its weights (the per-token definition). */
function reference(block: SparseMoeBlock, x: number[], N: number, capacity = Infinity): number[] {
  const { hidden: D, experts: E, topK: k, expertSize: I, renormalize } = block.o;
  const W = (t: T.Tensor) => t.toArray() as number[];
  const Wg = W(block.gate.weight);
  const silu = (v: number) => v / (1 + Math.exp(-v));
  const mlp = (m: T.Module, xr: number[], width: number): number[] => {
    const ws = Object.fromEntries(m.namedTensors().map(([n, t]) => [n.split('.')[0], W(t)]));
    const [g, u, d] = [ws[block.o.expertNames.gate], ws[block.o.expertNames.up], ws[block.o.expertNames.down]];
    const act = Array.from({ length: width }, (_, i) => { let a = 0, b = 0; for (let j = 0; j < D; j++) { a += g[i * D + j] * xr[j]; b += u[i * D + j] * xr[j]; } return silu(a) * b; });
    return Array.from({ length: D }, (_, o) => { let s = 0; for (let i = 0; i < width; i++) s += d[o * width + i] * act[i]; return s; });
  };
  const out: number[] = [];
  const taken = new Array(E).fill(0); // assignments per expert so far, in token order
  for (let t = 0; t < N; t++) {
    const xr = x.slice(t * D, (t + 1) * D);
    const logits = Array.from({ length: E }, (_, e) => { let s = 0; for (let j = 0; j < D; j++) s += Wg[e * D + j] * xr[j]; return s; });
    const mx = Math.max(...logits), ex = logits.map((v) => Math.exp(v - mx)), z = ex.reduce((a, b) => a + b, 0);
    const p = ex.map((v) => v / z);
    const top = p.map((v, e) => [v, e]).sort((a, b) => b[0] - a[0]).slice(0, k);
    const norm = renormalize ? top.reduce((s, [v]) => s + v, 0) : 1;
    const y = new Array(D).fill(0);
    for (const [v, e] of top) {
      if (taken[e]++ >= capacity) continue; // dropped: this expert is full
      mlp(block.experts[e], xr, I).forEach((o, d) => { y[d] += (v / norm) * o; });
    }
    if (block.shared_expert && block.shared_expert_gate) {
      const sg = W(block.shared_expert_gate.weight).reduce((s, w, j) => s + w * xr[j], 0);
      mlp(block.shared_expert, xr, block.o.sharedExpertSize!).forEach((o, d) => { y[d] += o / (1 + Math.exp(-sg)); });
    }
    out.push(...y);
  }
  return out;
}

const opts = (o: Partial<SparseMoeBlock['o']> = {}): SparseMoeBlock['o'] => ({
  hidden: 12, experts: 5, topK: 2, expertSize: 7, renormalize: true, sharedExpertSize: null, expertNames: { gate: 'w1', up: 'w3', down: 'w2' },
  jitter: 0, capacityFactor: 0, name: 'test.moe', generator: new Generator(5), std: 0.3, ...o,
});

test('SparseMoeBlock equals the per-token definition (Mixtral and Qwen2-MoE shapes), with gradients, on both backends', () => {
  for (const o of [opts(), opts({ renormalize: false, sharedExpertSize: 6, expertNames: { gate: 'gate_proj', up: 'up_proj', down: 'down_proj' }, topK: 3 })]) {
    const block = new SparseMoeBlock(o);
    const N = 9, x = randArray(N * o.hidden, new Generator(8));
    const want = reference(block, x, N);
    for (const b of BACKENDS) {
      T.withBackend(b, () => {
        scope(() => assertClose(noGrad(() => block.forward(T.tensor(x, [1, N, o.hidden]))).toArray() as number[], want, 1e-5, 1e-5, `[${b}] forward`));
        // every weight gets the gradient of Σ r·y: finite differences on a small block
        const small = new SparseMoeBlock({ ...o, hidden: 4, expertSize: 3, sharedExpertSize: o.sharedExpertSize ? 2 : null, experts: 3, topK: 2 });
        const xin = T.tensor(randArray(3 * 4, new Generator(9)), [1, 3, 4]).requiresGrad_();
        const params = small.parameters();
        gradcheck(`moe block [${b}]`, (xx) => small.forward(xx), [xin, ...params], { eps: 1e-3, atol: 3e-3, rtol: 3e-3 });
        small.dispose();
      });
    }
    block.dispose();
  }
});

test('capacity factor: in training an expert takes at most ⌈cf·N·k/E⌉ assignments, in token order; nothing is dropped in eval', () => {
  const block = new SparseMoeBlock(opts({ capacityFactor: 0.5 }));
  const N = 10, xs = randArray(N * 12, new Generator(11)), x = T.tensor(xs, [1, N, 12]);
  const rec: { logits: T.Tensor; load: number[]; dropped: number }[] = [];
  scope(() => {
    block.train(true);
    const y = block.forward(x, rec);
    const cap = Math.ceil((0.5 * N * 2) / 5);
    const over = rec[0].load.reduce((s, n) => s + Math.max(0, n - cap), 0);
    assert.ok(over > 0, 'the test needs an overloaded expert');
    assert.equal(rec[0].dropped, over);
    assertClose(y.toArray() as number[], reference(block, xs, N, cap), 1e-5, 1e-5, 'training: the per-token definition without the dropped assignments');
    block.train(false);
    assertClose(block.forward(x).toArray() as number[], reference(block, xs, N), 1e-5, 1e-5, 'eval: nothing dropped');
  });
  block.dispose();
});

test('bad input: top-k above the experts, a NaN router, num_experts_per_tok > experts in a config; active parameters', () => {
  assert.throws(() => new SparseMoeBlock(opts({ topK: 6 })), /test\.moe: top-k 6 must be in \[1, 5\]/);
  const block = new SparseMoeBlock(opts());
  T.fill_(block.gate.weight, NaN);
  assert.throws(() => scope(() => block.forward(T.tensor(randArray(24, new Generator(1)), [1, 2, 12]))), /test\.moe: router probabilities: 1 non-finite value/);
  block.dispose();
  const base = { model_type: 'mixtral', vocab_size: 32, hidden_size: 16, intermediate_size: 8, num_hidden_layers: 2, num_attention_heads: 2, max_position_embeddings: 16 };
  assert.throws(() => createModel({ ...base, num_local_experts: 2, num_experts_per_tok: 3 }, 'm/config.json'), /m\/config\.json: field "num_experts_per_tok" \(3\) exceeds "num_local_experts" \(2\)/);
  assert.throws(() => createModel({ ...base, model_type: 'qwen2_moe', num_experts: 4, mlp_only_layers: [5] }, 'q/config.json'), /q\/config\.json: field "mlp_only_layers" must be a list of layer indices in \[0, 2\)/);
  const m = createModel({ ...base, num_local_experts: 4, num_experts_per_tok: 1 }, 'cfg') as LlamaForCausalLM;
  const expert = 3 * 16 * 8;
  assert.equal(m.numParameters() - m.numActiveParameters(), 2 * 3 * expert, 'two layers × three idle experts');
  m.dispose();
});

test('loss parts: the load-balancing and z losses enter the loss with their coefficients; the report charts them', () => {
  const cfg = { model_type: 'mixtral', vocab_size: 32, hidden_size: 16, intermediate_size: 8, num_hidden_layers: 2, num_attention_heads: 2, max_position_embeddings: 16, num_local_experts: 4, num_experts_per_tok: 2 };
  const ids = T.tensor([[1, 5, 9, 3, 7, 2, 8, 4, 6]], undefined, 'i32');
  const losses = [{}, { output_router_logits: true, router_aux_loss_coef: 0.5 }, { router_z_loss_coef: 0.25 }].map((extra) => {
    const m = createModel({ ...cfg, ...extra }, 'cfg', { generator: new Generator(2) });
    const l = noGrad(() => scope(() => m.loss(ids).item()));
    const parts = m.lossParts()!;
    m.dispose();
    return { l, parts };
  });
  const { aux_loss: aux, router_z_loss: z } = losses[0].parts.values;
  assert.ok(aux > 0 && z > 0);
  assertClose([losses[1].l - losses[0].l], [0.5 * aux], 1e-5, 1e-4, 'aux enters only with output_router_logits');
  assertClose([losses[2].l - losses[0].l], [0.25 * z], 1e-5, 1e-4, 'z-loss');
  const load = losses[0].parts.expertLoad!;
  assert.equal(load.length, 2);
  for (const row of load) assertClose([row.reduce((a, b) => a + b, 0)], [1], 1e-9, 0, 'shares sum to 1');
  const metrics = [1, 2, 3].map((step) => ({ step, loss: 3, lr: 1e-3, gradNorm: 1, tokens: step, tokensPerSecond: 1, elapsedSeconds: step, parts: { aux_loss: aux + step, router_z_loss: z }, expertLoad: load }));
  assert.match(partsCurveSvg(metrics), /<svg[\s\S]*aux_loss[\s\S]*router_z_loss/);
  assert.match(expertLoadSvg(metrics), /Expert utilisation[\s\S]*MoE layer 1/);
  assert.equal(expertLoadSvg(metrics.map(({ expertLoad: _e, parts: _p, ...m }) => m)), '');
});
