// Hostile and corrupt llama2.c checkpoints (issue #21): the header fully determines the file's
// size, so absurd fields are refused by name before any per-layer list is built, truncation at
// every 4-byte boundary names the tensor cut short, and NaN/Inf weights are named. The base files
// are written by llama2.c's export.py layout (test/fixtures/io, scripts/gen_io_fixtures.py).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { init, shutdown } from '../../src/backend/index.js';
import { ConfigFieldError, FormatError, NonFiniteWeightError, TruncatedError, loadModel, readLlama2c } from '../../src/io/index.js';
import { ioFixture, tempDir } from './util.js';
import { rejectsWith, rss, setI32 } from './hostile_util.js';

before(async () => { await init({ threads: 1 }); });
after(async () => { await shutdown(); });

const V1 = new Uint8Array(readFileSync(ioFixture('llama2c_unshared_v1.bin')));
const LEGACY = new Uint8Array(readFileSync(ioFixture('llama2c_shared_legacy.bin')));
const FIELDS = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'];

test('absurd header fields are refused by name, at once and without allocating', async () => {
  const t0 = performance.now();
  const rss0 = rss();
  for (const [file, base, at] of [['v1.bin', V1, 8], ['legacy.bin', LEGACY, 0]] as const) {
    for (const [field, v, re] of [
      ['n_layers', 5e7, /50000000 is more than the limit of 4096/],
      ['dim', 2 ** 30, /more than the limit/],
      ['hidden_dim', 2 ** 31 - 1, /more than the limit/],
      ['vocab_size', 2 ** 30, /more than the limit/],
      ['seq_len', 2 ** 31 - 1, /more than the limit/],
      ['n_heads', 3, /does not divide dim/],
      ['n_kv_heads', 0, /must be positive/],
      ['dim', -8, /must be positive/],
    ] as const) {
      const buf = setI32(base, at + 4 * FIELDS.indexOf(field), v);
      await rejectsWith(readLlama2c(buf, { label: file }), { cls: ConfigFieldError, file, names: [field, re] }, `${file} ${field} = ${v}`);
    }
  }
  // n_layers within the limit but more than the file holds: the tensor cut short and the header's fields
  await rejectsWith(readLlama2c(setI32(V1, 16, 4000), { label: 'v1.bin' }), { cls: TruncatedError, file: 'v1.bin', names: [/tensor 'model\.layers\.\d+\.[a-z_.]+' \(the header declares dim 8, hidden_dim 16, n_layers 4000/] });
  // fewer layers than the file holds: trailing bytes, the header named
  await rejectsWith(readLlama2c(setI32(V1, 16, 1), { label: 'v1.bin' }), { cls: FormatError, file: 'v1.bin', names: ['data', /bytes after the last tensor: the header \(dim 8, hidden_dim 16, n_layers 1/] });
  assert.ok(performance.now() - t0 < 3000, `${performance.now() - t0} ms`);
  assert.ok(rss() - rss0 < 256 << 20, `RSS grew by ${((rss() - rss0) / 2 ** 20).toFixed(0)} MB`);
});

test('truncated at every 4-byte boundary: the header field or the tensor cut short is named', async () => {
  for (const [file, base] of [['v1.bin', V1], ['legacy.bin', LEGACY]] as const) {
    for (let k = 0; k < base.length; k += 4) {
      const e = await rejectsWith(readLlama2c(base.subarray(0, k), { label: file }), { cls: TruncatedError, file }, `${file} cut at ${k}`);
      assert.match(e.message, /truncated: (header field \w+|magic or dim|version|shared_classifier|header padding|tensor '[^']+' \(the header declares)/, `${file} cut at ${k}: ${e.message}`);
    }
  }
});

test('NaN or Inf in a llama2.c weight: refused naming the file, the tensor and the index', async (t) => {
  const dir = tempDir(t);
  const p = path.join(dir, 'nan.bin');
  // v1: rms_att_weight of layer 0 (dim 8 floats) comes first, at byte 256; then layer 1's
  const buf = V1.slice();
  new DataView(buf.buffer).setFloat32(256 + 4 * (8 + 3), NaN, true);
  writeFileSync(p, buf);
  const e = await rejectsWith(loadModel(p), { cls: NonFiniteWeightError, file: 'nan.bin', names: ["tensor 'model.layers.1.input_layernorm.weight'", 'at index 3', 'NaN'] });
  assert.equal((e as NonFiniteWeightError).index, 3);
  (await loadModel(p, { allowNonFinite: true })).model.dispose();
});
