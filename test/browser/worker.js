// Browser check, run in a module Web Worker: the wasm backend with 2 threads against ref, a
// gradient, and greedy generation from a tiny random LLaMA.
const T = await import('/dist/src/browser.js');
try {
  await T.init({ threads: 2 });
  const g = new T.Generator(1);
  const a = T.randn([64, 96], { generator: g }), b = T.randn([96, 80], { generator: g });
  const wasm = T.matmul(a, b).toArray();
  const ref = T.withBackend('ref', () => T.matmul(a, b).toArray());
  let maxErr = 0;
  for (let i = 0; i < ref.length; i++) maxErr = Math.max(maxErr, Math.abs(wasm[i] - ref[i]));
  const w = T.tensor([1, 2, 3], [3]).requiresGrad_();
  T.sum(T.mul(w, w)).backward();
  const cfg = T.parseLlamaConfig({ hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 50, max_position_embeddings: 64 });
  const model = new T.LlamaForCausalLM(cfg, { generator: new T.Generator(3) });
  const r = T.generate(model, [1, 2, 3], { maxNewTokens: 5, stopIds: [] });
  const r2 = T.withBackend('ref', () => T.generate(model, [1, 2, 3], { maxNewTokens: 5, stopIds: [] }));
  postMessage({ ok: true, crossOriginIsolated: self.crossOriginIsolated, threads: T.backend().threads, maxErr, grad: w.grad.toArray(), ids: r.ids[0], refIds: r2.ids[0] });
} catch (e) {
  postMessage({ ok: false, error: String(e && e.stack || e) });
}
