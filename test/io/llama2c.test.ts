// llama2.c checkpoints against files laid out by export.py's own logic (scripts/gen_io_fixtures.py),
// and the HF tensors its hf_export produces (q/k permuted).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  readLlama2c, serializeLlama2c, writeLlama2c, readSafetensors, unpermuteQK, permuteQK, toFloat32,
  ConfigFieldError, FormatError, TruncatedError, MissingTensorError, LLAMA2C_MAGIC,
} from '../../src/io/index.js';
import { ioFixture, ioExpected, tempDir } from './util.js';

const exp = ioExpected().llama2c;

for (const kind of ['shared', 'unshared'] as const) {
  for (const ver of ['legacy', 'v1'] as const) {
    test(`reads ${kind}-classifier ${ver} = export.py's HF tensors exactly`, async () => {
      const file = ioFixture(`llama2c_${kind}_${ver}.bin`);
      const ck = await readLlama2c(file);
      const hf = await readSafetensors(ioFixture(`llama2c_${kind}_hf.safetensors`));
      const e = exp[kind];
      assert.equal(ck.header.version, ver === 'legacy' ? 0 : 1);
      assert.deepEqual(
        { dim: ck.header.dim, hidden: ck.header.hidden_dim, n_layers: ck.header.n_layers, n_heads: ck.header.n_heads, n_kv_heads: ck.header.n_kv_heads, vocab: ck.header.vocab_size, seq_len: ck.header.seq_len },
        { dim: e.dim, hidden: e.hidden, n_layers: e.n_layers, n_heads: e.n_heads, n_kv_heads: e.n_kv_heads, vocab: e.vocab, seq_len: e.seq_len });
      assert.equal(ck.header.shared_classifier, kind === 'shared');
      assert.equal(ck.config.tie_word_embeddings, kind === 'shared');
      assert.equal(ck.config.hidden_size, e.dim);
      assert.equal(ck.qkLayout, 'rotate-half');
      assert.deepEqual(ck.tensors.map((t) => t.name).sort(), hf.tensors.map((t) => t.name).sort());
      const byName = new Map(hf.tensors.map((t) => [t.name, t]));
      for (const t of ck.tensors) {
        const h = byName.get(t.name)!;
        assert.deepEqual(t.shape, h.shape, t.name);
        assert.ok(Buffer.from(t.data).equals(Buffer.from(h.data)), `${t.name} bytes`);
      }
      if (ver === 'legacy') {
        assert.deepEqual(Array.from(ck.freqCis!.real), e.freqs_cos.map(Math.fround));
        assert.deepEqual(Array.from(ck.freqCis!.imag), e.freqs_sin.map(Math.fround));
      } else assert.equal(ck.freqCis, undefined);

      // interleaved: the file's own layout = unpermuteQK of HF's
      const raw = await readLlama2c(new Uint8Array(readFileSync(file)), { qkLayout: 'interleaved', label: 'buf.bin' });
      const q = raw.tensors.find((t) => t.name === 'model.layers.1.self_attn.q_proj.weight')!;
      const k = raw.tensors.find((t) => t.name === 'model.layers.1.self_attn.k_proj.weight')!;
      assert.deepEqual(q.data, unpermuteQK(byName.get(q.name)!, e.n_heads).data);
      assert.deepEqual(k.data, unpermuteQK(byName.get(k.name)!, e.n_kv_heads).data);
      assert.deepEqual(permuteQK(k, e.n_kv_heads).data, byName.get(k.name)!.data);
    });

    test(`writes ${kind}-classifier ${ver} byte-identical to export.py`, async (t) => {
      const hf = await readSafetensors(ioFixture(`llama2c_${kind}_hf.safetensors`));
      const ck = await readLlama2c(ioFixture(`llama2c_${kind}_${ver}.bin`));
      const want = new Uint8Array(readFileSync(ioFixture(`llama2c_${kind}_${ver}.bin`)));
      const got = serializeLlama2c({ config: ck.config, tensors: hf.tensors }, { version: ver === 'legacy' ? 0 : 1 });
      assert.equal(got.length, want.length);
      if (ver === 'v1') {
        assert.ok(Buffer.from(got).equals(Buffer.from(want)));
      } else {
        // identical except freq_cis, which we compute in double and round (run.c never reads it)
        const e = exp[kind];
        const headSize = e.dim / e.n_heads;
        const fcBytes = e.seq_len * (headSize / 2) * 4 * 2;
        const vocabDim = e.vocab * e.dim * 4;
        const fcEnd = want.length - (kind === 'unshared' ? vocabDim : 0);
        const fcStart = fcEnd - fcBytes;
        assert.ok(Buffer.from(got.subarray(0, fcStart)).equals(Buffer.from(want.subarray(0, fcStart))));
        assert.ok(Buffer.from(got.subarray(fcEnd)).equals(Buffer.from(want.subarray(fcEnd))));
        const a = new Float32Array(got.slice(fcStart, fcEnd).buffer), b = new Float32Array(want.slice(fcStart, fcEnd).buffer);
        for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-6);
      }
      const dir = tempDir(t);
      const p = path.join(dir, 'out.bin');
      await writeLlama2c(p, { config: ck.config, tensors: ck.tensors }, { version: ver === 'legacy' ? 0 : 1 });
      assert.ok(readFileSync(p).equals(Buffer.from(got)));
    });
  }
}

test('a tied checkpoint whose lm_head equals the embedding is written shared (as torch.equal in export.py)', async () => {
  const hf = await readSafetensors(ioFixture('llama2c_shared_hf.safetensors'));
  const ck = await readLlama2c(ioFixture('llama2c_shared_v1.bin'));
  const embed = hf.tensors.find((t) => t.name === 'model.embed_tokens.weight')!;
  const cfg = { ...ck.config, tie_word_embeddings: false };
  const out = serializeLlama2c({ config: cfg, tensors: [...hf.tensors, { ...embed, name: 'lm_head.weight' }] }, { version: 1 });
  assert.equal(out[36], 1);
  // F16 inputs are accepted and widened
  const f16 = hf.tensors.map((t) => ({ ...t, ...{ dtype: 'F16' as const, data: new Uint8Array(new Uint16Array(toFloat32(t).length).buffer) } }));
  assert.equal(serializeLlama2c({ config: ck.config, tensors: f16 }, { version: 1 }).length, out.length);
});

test('bad llama2.c files: truncated, trailing bytes, bad header fields, wrong version', async (t) => {
  const dir = tempDir(t);
  const good = new Uint8Array(readFileSync(ioFixture('llama2c_unshared_v1.bin')));
  const p = path.join(dir, 'bad.bin');
  const put = (b: Uint8Array) => { writeFileSync(p, b); return p; };
  await assert.rejects(readLlama2c(put(good.subarray(0, good.length - 10))), (e: unknown) =>
    e instanceof TruncatedError && /bad\.bin: truncated: tensor 'lm_head\.weight' \(the header declares dim 8, [^)]*\) needs 512 byte\(s\) at offset \d+, but the file has \d+ bytes/.test((e as Error).message));
  await assert.rejects(readLlama2c(put(good.subarray(0, 2000))), /bad\.bin: truncated: tensor 'model\.layers\.0\.self_attn\.o_proj\.weight' \([^)]*\) needs 256 byte\(s\) at offset 1952/);
  await assert.rejects(readLlama2c(put(good.subarray(0, 100))), /bad\.bin: truncated: header padding/);
  await assert.rejects(readLlama2c(put(new Uint8Array([1, 2, 3]))), /bad\.bin: truncated: magic or dim needs 4 byte/);
  const extra = new Uint8Array(good.length + 8);
  extra.set(good);
  await assert.rejects(readLlama2c(put(extra)), (e: unknown) => e instanceof FormatError && /8 bytes after the last tensor: the header \(dim 8, .*\) does not match the file/.test((e as Error).message));
  const mod = (off: number, v: number, legacy = false) => {
    const b = new Uint8Array(readFileSync(ioFixture(legacy ? 'llama2c_unshared_legacy.bin' : 'llama2c_unshared_v1.bin')));
    new DataView(b.buffer).setInt32(off, v, true);
    return put(b);
  };
  await assert.rejects(readLlama2c(mod(4, 2)), (e: unknown) => e instanceof FormatError && /version: version 2 \(Q8_0 groups\) is not supported/.test((e as Error).message));
  await assert.rejects(readLlama2c(mod(4, 7)), /version: unknown llama2\.c version 7/);
  await assert.rejects(readLlama2c(mod(8 + 3 * 4, 3)), (e: unknown) => e instanceof ConfigFieldError && /bad\.bin: n_heads: 3 does not divide dim 8/.test((e as Error).message));
  await assert.rejects(readLlama2c(mod(8 + 4 * 4, 0)), /n_kv_heads: must be positive, got 0/);
  await assert.rejects(readLlama2c(mod(16, 3, true)), /n_kv_heads: 3 does not divide n_heads 2/);
  await assert.rejects(readLlama2c(mod(0, 1 << 30, true)), /bad\.bin: /);
  const flag = new Uint8Array(good);
  flag[36] = 7;
  await assert.rejects(readLlama2c(put(flag)), /shared_classifier: must be 0 or 1, got 7/);
  assert.equal(new DataView(good.buffer).getUint32(0, true), LLAMA2C_MAGIC);

  // writing: missing tensor, config llama2.c cannot express
  const hf = await readSafetensors(ioFixture('llama2c_unshared_hf.safetensors'));
  const ck = await readLlama2c(ioFixture('llama2c_unshared_v1.bin'));
  assert.throws(() => serializeLlama2c({ config: ck.config, tensors: hf.tensors.filter((x) => x.name !== 'model.layers.1.mlp.up_proj.weight') }, { version: 1 }),
    (e: unknown) => e instanceof MissingTensorError && /tensor 'model\.layers\.1\.mlp\.up_proj\.weight': missing/.test((e as Error).message));
  assert.throws(() => serializeLlama2c({ config: { ...ck.config, rope_theta: 500000 }, tensors: hf.tensors }, { version: 1 }), /rope_theta: llama2\.c's run\.c fixes RoPE theta at 10000, got 500000/);
  assert.throws(() => serializeLlama2c({ config: { ...ck.config, num_attention_heads: 3 }, tensors: hf.tensors }, { version: 1 }), /num_attention_heads: 3 does not divide hidden_size 8/);
});
