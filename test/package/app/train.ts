// A page's training worker, bundled by esbuild from `tslm/browser`: a tiny LLaMA on the bytes of a
// short text, a few AdamW steps with the wasm kernels on 2 threads (or on 1 where the page is not
// cross-origin isolated). Reports every step's loss, or the error, to the page.
import { init, backend, scope, tensor, Generator, AdamW, LlamaForCausalLM, parseLlamaConfig } from 'tslm/browser';

declare const self: { postMessage(m: unknown): void; crossOriginIsolated: boolean };

const STEPS = 8, B = 4, T = 32;
try {
  // The kernel files sit in ./tslm/ beside this bundle (copied from node_modules/tslm/dist/wasm/,
  // and worker.js bundled from tslm/worker): esbuild does not copy what modules load at run time.
  await init({ threads: 2, assets: new URL('./tslm/', import.meta.url) });
  const bytes = new TextEncoder().encode('The quick brown fox jumps over the lazy dog. 春眠不覺曉，處處聞啼鳥。'.repeat(8));
  const batch: number[] = [];
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) batch.push(bytes[b * 7 + t]);
  const config = parseLlamaConfig({ hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 256, max_position_embeddings: 64 });
  const model = new LlamaForCausalLM(config, { generator: new Generator(1) });
  const opt = new AdamW(model.parameters(), { lr: 1e-2 });
  const losses: number[] = [];
  for (let step = 0; step < STEPS; step++) {
    losses.push(scope(() => {
      const loss = model.loss(tensor(batch, [B, T], 'i32'));
      loss.backward();
      return loss.item();
    }));
    opt.step();
    opt.zeroGrad();
  }
  self.postMessage({ ok: true, losses, threads: backend().threads, threadsUnavailable: backend().threadsUnavailable ?? null, crossOriginIsolated: self.crossOriginIsolated });
} catch (e) {
  self.postMessage({ ok: false, error: String((e as Error)?.stack ?? e), crossOriginIsolated: self.crossOriginIsolated });
}
