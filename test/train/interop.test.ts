// Interop: a checkpoint tslm trained and wrote (test/fixtures/interop/<variant>/, made by
// scripts/gen_interop_fixtures.mjs) loads into an independent PyTorch LLaMA (scripts/ref_llama.py,
// via scripts/check_interop.py) and gives the same next-token loss on a batch. Here tslm loads
// the committed checkpoint and recomputes its loss on both backends; torch_loss.json is the
// reference's. No Python runs in this test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { init, shutdown, loadModel, noGrad, scope, tensor, withBackend } from '../../src/index.js';
import type { LlamaForCausalLM } from '../../src/index.js';
import { fixture, fixturePath } from '../helpers.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

interface Batch { input_ids: number[][]; tslm_loss: number }
interface TorchLoss { loss: number; loss_float64: number; batch_shape: number[] }

for (const variant of ['llama_gqa_tied', 'llama_gqa_untied']) {
  test(`${variant}: tslm's checkpoint gives PyTorch's loss (|Δ| ≤ 1e-5)`, async () => {
    const batch = fixture<Batch>(`interop/${variant}/batch.json`);
    const ref = fixture<TorchLoss>(`interop/${variant}/torch_loss.json`);
    const { model, config } = await loadModel(fixturePath(`interop/${variant}`));
    try {
      assert.equal(config.tie_word_embeddings, variant.endsWith('_tied'));
      assert.equal((model as LlamaForCausalLM).lm_head === null, variant.endsWith('_tied'), 'tied checkpoints have no lm_head');
      const [B, T1] = ref.batch_shape;
      assert.deepEqual([batch.input_ids.length, batch.input_ids[0].length], [B, T1]);
      for (const b of ['ref', 'wasm'] as const) {
        const loss = withBackend(b, () => noGrad(() => scope(() => model.loss(tensor(batch.input_ids, [B, T1], 'i32')).item())));
        assert.ok(Math.abs(loss - ref.loss) <= 1e-5, `${variant} [${b}]: tslm loss ${loss}, PyTorch ${ref.loss} (|Δ| ${Math.abs(loss - ref.loss).toExponential(2)})`);
        assert.ok(Math.abs(loss - ref.loss_float64) <= 1e-5, `${variant} [${b}]: tslm loss ${loss}, PyTorch float64 ${ref.loss_float64}`);
      }
    } finally {
      model.dispose();
    }
  });
}
