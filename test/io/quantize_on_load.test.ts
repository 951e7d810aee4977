// --dtype q8_0: an f32 model (HF directory or GGUF) quantised to Q8_0 as it loads decodes exactly
// as the Q8_0 GGUF that `exportGguf` would write of it (the same quantizer, ggml's
// quantize_row_q8_0): bit-identical logits, the same tensors kept quantised, and the CLI flag.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as T from '../../src/index.js';
import { init, shutdown, scope, noGrad, loadModel, writeLlamaGguf, writeHfDir } from '../../src/index.js';
import type { CausalLM } from '../../src/index.js';
import { quantizeInHeap } from '../../src/io/model.js';
import { fromFloat32 } from '../../src/io/dtypes.js';
import { tempDir, tinyLlamaConfig, tinyLlamaTensors } from './util.js';
import { tinySpmTokenizer } from './tiny_llama.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'tslm.js');
before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

const PROMPT = [1, 270, 5, 290, 100, 33, 261, 299];
const logitsOf = (m: CausalLM) => noGrad(() => scope(() => m.forward(T.tensor([PROMPT], undefined, 'i32')).toArray() as number[]));

test('an f32 HF directory or GGUF loaded with dtype q8_0 equals the Q8_0 GGUF of the same weights, bit for bit', async (t) => {
  const dir = tempDir(t);
  const cfg = tinyLlamaConfig();
  const tensors = tinyLlamaTensors(cfg, 5);
  const tok = tinySpmTokenizer(cfg.vocab_size as number);
  const q8 = path.join(dir, 'q8.gguf'), f32 = path.join(dir, 'f32.gguf'), hf = path.join(dir, 'hf');
  await writeLlamaGguf(q8, { config: cfg, tensors, tokenizer: tok, dtype: 'Q8_0' });
  await writeLlamaGguf(f32, { config: cfg, tensors, tokenizer: tok, dtype: 'F32' });
  await writeHfDir(hf, { config: cfg, tensors });
  const ref = await loadModel(q8);
  const want = logitsOf(ref.model);
  const kinds = (m: CausalLM) => Object.fromEntries(Object.entries(m.stateDict()).map(([k, v]) => [k, v.dtype]));
  for (const src of [f32, hf]) {
    const m = await loadModel(src, { dtype: 'q8_0' });
    assert.deepEqual(kinds(m.model), kinds(ref.model), `${path.basename(src)}: the same tensors quantised`);
    assert.deepEqual(logitsOf(m.model), want, `${path.basename(src)}: the same logits`);
    m.model.dispose();
  }
  const mistral = path.join(dir, 'mistral');
  await writeHfDir(mistral, { config: { ...cfg, model_type: 'mistral', architectures: ['MistralForCausalLM'] }, tensors });
  await assert.rejects(loadModel(mistral, { dtype: 'q8_0' }), /mistral: dtype q8_0 \(quantising on load\) is available for dense LLaMA models \(model_type llama\); this one is mistral/);
  const plain = await loadModel(hf);
  assert.ok(Object.values(plain.model.stateDict()).every((v) => v.dtype === 'f32'), 'without dtype an f32 model stays f32');
  plain.model.dispose();
  ref.model.dispose();

});

test('quantizeInHeap: a matrix quantised by the kernels a slice of rows at a time is io\'s quantiser\'s bytes, each type, whatever the slice', () => {
  const N = 37, K = 512, x = new Float32Array(N * K);
  let s = 7;
  for (let i = 0; i < x.length; i++) { s = (s * 1103515245 + 12345) >>> 0; x[i] = ((s >>> 8) / 2 ** 24 - 0.5) * 2 ** ((s & 15) - 6); }
  for (const dtype of ['Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q4_K', 'Q5_K', 'Q6_K'] as const) {
    const want = fromFloat32('w', [N, K], x, dtype).data;
    // one slice, a row per slice, slices that do not divide the rows, and a slice smaller than a row
    for (const slice of [1 << 22, K, 5 * K, 7 * K + 50, 10]) {
      const r = quantizeInHeap('w', [N, K], x, dtype, slice);
      assert.equal(r.dtype, dtype);
      assert.deepEqual(r.shape, [N, K]);
      assert.deepEqual(r.data, want, `${dtype}, slice of ${slice} values`);
    }
  }
});

test('--dtype accepts f32, q8_0, q4_0, q4_k, q6_k, f16, bf16 and names the choices otherwise', () => {
  const r = spawnSync(process.execPath, [BIN, 'generate', '--model', 'x', '--dtype', 'q5_k'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--dtype: invalid value 'q5_k' \(f32 widens a quantised or 16-bit model to f32, q8_0, q4_0, q4_k, q6_k, f16, bf16 convert an f32 one as it loads/);
  const s = spawnSync(process.execPath, [BIN, 'serve', '--model', 'x', '--dtype', 'f64'], { encoding: 'utf8' });
  assert.equal(s.status, 2);
  assert.match(s.stderr, /--dtype: invalid value 'f64'/);
});
