// Hostile and corrupt GGUF files (issue #21): every declared count, length, dimension, offset and
// type id is checked against the file before anything is allocated or looped over; truncation at
// every byte is a checked error naming the file and the field; block_count 1e9 is refused by
// field; NaN/Inf weights (F32, F16, Q8_0) are named by tensor and index.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { init, shutdown } from '../../src/backend/index.js';
import {
  ConfigFieldError, FormatError, GgufFile, IoError, NonFiniteWeightError, TensorError, TruncatedError, UnsupportedDTypeError,
  gv, loadModel, readModelGguf, serializeGguf, serializeLlamaGguf,
} from '../../src/io/index.js';
import type { GgufValue } from '../../src/io/index.js';
import { tempDir, tinyLlamaConfig, tinyLlamaTensors } from './util.js';
import { tinySpmTokenizer } from './tiny_llama.js';
import { rejectsWith, rss, throwsWith } from './hostile_util.js';

before(async () => { await init({ threads: 1 }); });
after(async () => { await shutdown(); });

/** A GGUF written byte by byte (so that any field can hold anything). */
class Raw {
  private b: number[] = [];
  u8(v: number) { this.b.push(v & 0xff); return this; }
  u32(v: number) { for (let i = 0; i < 4; i++) this.b.push((v >>> (8 * i)) & 0xff); return this; }
  u64(v: bigint | number) { let x = BigInt(v); for (let i = 0; i < 8; i++) { this.b.push(Number(x & 0xffn)); x >>= 8n; } return this; }
  str(s: string, len?: bigint | number) { const e = new TextEncoder().encode(s); this.u64(len ?? e.length); for (const c of e) this.b.push(c); return this; }
  pad(align = 32) { while (this.b.length % align) this.b.push(0); return this; }
  bytes(n: number) { for (let i = 0; i < n; i++) this.b.push(0); return this; }
  get length() { return this.b.length; }
  done() { return Uint8Array.from(this.b); }
}
/** "GGUF", version 3, the counts. */
const head = (nTensors: bigint | number, nKv: bigint | number) => new Raw().u32(0x46554747).u32(3).u64(nTensors).u64(nKv);
const F = 'h.gguf';
const bad = (b: Uint8Array, cls: Function | Function[], ...names: (string | RegExp)[]) => throwsWith(() => GgufFile.fromBuffer(b, F), { cls, file: F, names });

test('truncated at every byte of a small GGUF: a checked error naming the file and the field', () => {
  const md = new Map<string, GgufValue>([['general.architecture', gv.str('llama')], ['a.n', gv.u32(7)], ['a.list', gv.strings(['x', 'yy'])], ['a.f', gv.f32s([1, 2, 3])]]);
  const whole = serializeGguf({ metadata: md, tensors: [{ name: 'w', dtype: 'F32', shape: [2, 3], data: new Uint8Array(24) }, { name: 'b', dtype: 'F16', shape: [5], data: new Uint8Array(10) }] });
  assert.equal(GgufFile.fromBuffer(whole).tensors.length, 2);
  const f = GgufFile.fromBuffer(whole);
  const end = f.header.dataStart + Math.max(...f.tensors.map((t) => t.offset + t.nbytes)); // the padding after the last tensor is optional
  for (let k = 0; k < end; k++) {
    bad(whole.subarray(0, k), [TruncatedError, FormatError, TensorError]);
  }
});

test('huge declared counts, lengths and dimensions are refused before allocating', () => {
  const t0 = performance.now();
  const rss0 = rss();
  bad(head(2n ** 40n, 0).done(), TruncatedError, /tensor infos/);
  bad(head(0, 2n ** 40n).done(), TruncatedError, /metadata entries/);
  bad(head(2n ** 62n, 0).done(), FormatError, 'tensor count', /absurdly large/);
  bad(head(0, 1).str('k', 2n ** 60n).bytes(16).done(), FormatError, /metadata key #0 \(string length\)/);
  bad(head(0, 1).str('k', 2n ** 40n).bytes(64).done(), TruncatedError, /metadata key #0/);
  bad(head(0, 1).str('k').u32(8).str('v', 2n ** 33n).bytes(16).done(), TruncatedError, /k \(string of 8589934592 bytes\)/);
  bad(head(0, 1).str('arr').u32(9).u32(4).u64(2n ** 40n).bytes(64).done(), TruncatedError, /arr \(array of 1099511627776 u32\)/);
  bad(head(0, 1).str('arr').u32(9).u32(8).u64(2n ** 30n).bytes(64).done(), TruncatedError, /arr \(array of 1073741824 string\)/);
  bad(head(0, 1).str('arr').u32(9).u32(9).u64(2n ** 30n).bytes(64).done(), TruncatedError, /arr/);
  bad(head(0, 1).str('k').u32(77).bytes(16).done(), FormatError, 'k', /unknown value type 77/);
  bad(head(0, 1).str('arr').u32(9).u32(55).u64(1).bytes(16).done(), FormatError, 'arr', /unknown array item type 55/);
  bad(head(0, 1).str('b').u32(7).u8(5).bytes(16).done(), FormatError, 'b', /bool must be 0 or 1/);
  // tensor infos: dims, type ids, offsets vs the data section and the alignment, 4 GiB+ tensors
  const info = (ne: (number | bigint)[], type: number, offset: number | bigint, dataBytes = 64, nDims = ne.length) => {
    const r = head(1, 0).str('w').u32(nDims);
    for (const d of ne) r.u64(d);
    return r.u32(type).u64(offset).pad().bytes(dataBytes).done();
  };
  assert.equal(GgufFile.fromBuffer(info([4, 4], 0, 0)).tensors[0].nbytes, 64);
  bad(info([4, 4], 0, 0, 63), TensorError, "tensor 'w'", /out of range/);
  bad(info([2 ** 32, 1], 0, 0), TensorError, "tensor 'w'", /\[0, 17179869184\) is out of range/);
  bad(info([2n ** 40n, 2n ** 20n], 0, 0), TensorError, "tensor 'w'", /too many elements/);
  bad(info([4, 4], 0, 2n ** 50n), TensorError, "tensor 'w'", /out of range/);
  bad(info([4, 4], 0, 8), TensorError, "tensor 'w'", /not a multiple of the alignment 32/);
  bad(info([4, 4], 99, 0), UnsupportedDTypeError, "tensor 'w'", /ggml type 99/);
  bad(info([4, 4, 1, 1, 1], 0, 0), TensorError, "tensor 'w'", /n_dims 5 exceeds 4/);
  bad(info([4, 4], 0, 0, 64, 2 ** 31), TensorError, "tensor 'w'", /n_dims/);
  bad(info([31, 1], 8, 0), TensorError, "tensor 'w'", /block size 32/);
  // two tensors overlapping; the same name twice
  const two = (o2: number, n2 = 'v') => head(2, 0).str('w').u32(1).u64(16).u32(0).u64(0).str(n2).u32(1).u64(16).u32(0).u64(o2).pad().bytes(128).done();
  bad(two(32), TensorError, /overlaps tensor 'w'/);
  bad(two(64, 'w'), TensorError, "tensor 'w'", /duplicate tensor name/);
  assert.ok(performance.now() - t0 < 2000, `${performance.now() - t0} ms`);
  assert.ok(rss() - rss0 < 256 << 20, `RSS grew by ${((rss() - rss0) / 2 ** 20).toFixed(0)} MB`);
});

const cfg = tinyLlamaConfig({ num_hidden_layers: 2, vocab_size: 300 });
function modelGguf(dtype: 'F32' | 'F16' | 'Q8_0' = 'F32'): Uint8Array {
  return serializeLlamaGguf({ config: cfg, tensors: tinyLlamaTensors(cfg, 3), tokenizer: tinySpmTokenizer(300), dtype });
}
/** The same file with metadata key `key` replaced (re-serialized with the same tensors). */
function withMetadata(buf: Uint8Array, key: string, v: GgufValue): Uint8Array {
  const f = GgufFile.fromBuffer(buf);
  const md = new Map(f.metadata);
  md.set(key, v);
  const tensors = f.tensors.map((t) => ({ name: t.name, dtype: (['F32', 'F16'] as const)[t.ggmlType] ?? 'Q8_0' as const, shape: t.shape, data: buf.subarray(f.header.dataStart + t.offset, f.header.dataStart + t.offset + t.nbytes) }));
  return serializeGguf({ metadata: md, tensors });
}

test('a model GGUF declaring block_count 1e9 (or other absurd dimensions) is refused by key, at once', async (t) => {
  const dir = tempDir(t);
  const good = modelGguf();
  assert.equal((await readModelGguf(good)).config.num_hidden_layers, 2);
  const t0 = performance.now();
  const rss0 = rss();
  for (const [key, v, re] of [
    ['llama.block_count', gv.u32(1e9), /1000000000 is more than the limit of 4096/],
    ['llama.block_count', gv.u64(2n ** 60n), /more than the limit/],
    ['llama.embedding_length', gv.u32(2 ** 31), /more than the limit/],
    ['llama.feed_forward_length', gv.u64(2n ** 40n), /more than the limit/],
    ['llama.context_length', gv.u32(0), /positive integer/],
    ['llama.attention.head_count', gv.u32(3), /does not divide/],
    ['llama.block_count', gv.u32(3), /model\.layers\.2\.|blk\.2|missing/],
  ] as [string, GgufValue, RegExp][]) {
    const p = path.join(dir, 'm.gguf');
    writeFileSync(p, withMetadata(good, key, v));
    await rejectsWith(loadModel(p), { cls: IoError, file: 'm.gguf', names: [re] }, `${key}`);
  }
  assert.ok(performance.now() - t0 < 5000, `${performance.now() - t0} ms`);
  assert.ok(rss() - rss0 < 256 << 20, `RSS grew by ${((rss() - rss0) / 2 ** 20).toFixed(0)} MB`);
  await rejectsWith(readModelGguf(withMetadata(good, 'llama.block_count', gv.u32(1e9)), { label: 'b.gguf' }), { cls: ConfigFieldError, file: 'b.gguf', names: ['llama.block_count'] });
});

test('non-finite weights in F32, F16 and Q8_0 GGUF tensors: named by tensor and first index', async (t) => {
  const dir = tempDir(t);
  const p = path.join(dir, 'nan.gguf');
  for (const dtype of ['F32', 'F16', 'Q8_0'] as const) {
    const buf = modelGguf(dtype).slice();
    const f = GgufFile.fromBuffer(buf);
    const ti = f.info('blk.1.ffn_down.weight'); // HF model.layers.1.mlp.down_proj.weight, [64, 128]: the same flat order
    const at = f.header.dataStart + ti.offset;
    const dv = new DataView(buf.buffer);
    let index: number;
    if (dtype === 'F32') { index = 300; dv.setFloat32(at + 4 * index, NaN, true); }
    else if (dtype === 'F16') { index = 129; dv.setUint16(at + 2 * index, 0x7c00, true); } // +Inf
    else { index = 5 * 32; dv.setUint16(at + 34 * 5, 0xfc00, true); } // block 5's scale = -Inf
    writeFileSync(p, buf);
    const e = await rejectsWith(loadModel(p), { cls: NonFiniteWeightError, file: 'nan.gguf', names: ["tensor 'model.layers.1.mlp.down_proj.weight'", `at index ${index}`] }, dtype);
    assert.match(e.message, /\[\d+, \d+\]/);
    (await loadModel(p, { allowNonFinite: true })).model.dispose();
  }
});
