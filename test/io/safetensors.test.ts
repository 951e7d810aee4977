// safetensors: byte-exact against the reference implementation's own test vectors and a golden
// file written from the spec (scripts/gen_io_fixtures.py); lazy and sharded reading; bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import {
  serializeSafetensors, readSafetensors, writeSafetensors, SafetensorsFile, ShardedSafetensors,
  writeShardedSafetensors, toFloat32, fromFloat32,
  FormatError, TensorError, TruncatedError, UnsupportedDTypeError, MissingTensorError, UnexpectedTensorError, IoError,
} from '../../src/io/index.js';
import type { RawTensor } from '../../src/io/index.js';
import { ioFixture, ioExpected, tempDir, rng, randTensor } from './util.js';

const f32 = (name: string, shape: number[], v: number[]): RawTensor => fromFloat32(name, shape, Float32Array.from(v));

test('serialize matches huggingface/safetensors test vectors byte for byte', () => {
  // safetensors/src/tensor.rs: test_serialization
  assert.deepEqual(Array.from(serializeSafetensors([f32('attn.0', [1, 2, 3], [0, 1, 2, 3, 4, 5])])), [
    64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100,
    116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34,
    58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115,
    101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63,
    0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
  ]);
  // test_empty (without and with metadata)
  assert.deepEqual(Array.from(serializeSafetensors([])), [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
  assert.deepEqual(Array.from(serializeSafetensors([], { framework: 'pt' })), [
    40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95,
    95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112,
    116, 34, 125, 125, 32, 32, 32, 32, 32,
  ]);
  // test_serialization_forced_alignement: header padded with spaces to a multiple of 8
  const out = serializeSafetensors([f32('attn0', [1, 1, 2, 3], [0, 1, 2, 3, 4, 5])]);
  assert.equal(out[0], 72);
  assert.deepEqual(Array.from(out.subarray(73, 80)), [32, 32, 32, 32, 32, 32, 32]);
  assert.deepEqual(Array.from(out.subarray(80, 84)), [0, 0, 0, 0]);
});

test('golden file from the spec: values, dtypes, metadata; re-serialization is byte-identical', async () => {
  const file = ioFixture('mixed.safetensors');
  const bytes = new Uint8Array(readFileSync(file));
  const exp = ioExpected().safetensors_mixed as Record<string, { dtype: string; shape: number[]; values: number[] }>;
  for (const src of [file, bytes]) {
    const { tensors, metadata } = await readSafetensors(src);
    assert.deepEqual(metadata, { format: 'pt', note: 'gen_io_fixtures.py' });
    assert.deepEqual(tensors.map((t) => t.name).sort(), Object.keys(exp).sort());
    for (const t of tensors) {
      const e = exp[t.name];
      assert.equal(t.dtype, e.dtype, t.name);
      assert.deepEqual(t.shape, e.shape, t.name);
      const got = Array.from(toFloat32(t));
      const want = e.values.map((x) => Math.fround(Number(x)));
      assert.deepEqual(got, want, t.name);
    }
    assert.deepEqual(Array.from(serializeSafetensors(tensors, metadata)), Array.from(bytes));
  }
});

test('lazy reading from a file handle; atomic write leaves no temp files', async (t) => {
  const dir = tempDir(t);
  const r = rng(3);
  const ts = [randTensor('b', [17, 3], r, 'BF16'), randTensor('a', [5], r, 'F32'), randTensor('c', [2, 2], r, 'F16')];
  const p = path.join(dir, 'x.safetensors');
  await writeSafetensors(p, ts, { k: 'v' });
  assert.deepEqual(readdirSync(dir), ['x.safetensors']);
  const f = await SafetensorsFile.open(p);
  try {
    assert.deepEqual(f.names, ['a', 'b', 'c']); // F32 first (alignment), then BF16, F16
    const b = await f.read('b');
    assert.deepEqual(b.data, ts[0].data);
    assert.equal(f.header.dataStart % 8, 0);
    await assert.rejects(f.read('nope'), (e: unknown) => e instanceof MissingTensorError && /x\.safetensors: tensor 'nope': not in this file/.test((e as Error).message));
  } finally {
    await f.close();
  }
  assert.deepEqual(readFileSync(p), Buffer.from(serializeSafetensors(ts, { k: 'v' })));
});

test('sharded write and read (model.safetensors.index.json)', async (t) => {
  const dir = tempDir(t);
  const r = rng(4);
  const ts = Array.from({ length: 7 }, (_, i) => randTensor(`layer.${i}.w`, [10, 10], r)); // 400 bytes each
  const files = await writeShardedSafetensors(dir, ts, { maxShardSize: 1000 });
  assert.deepEqual(files, ['model-00001-of-00004.safetensors', 'model-00002-of-00004.safetensors', 'model-00003-of-00004.safetensors', 'model-00004-of-00004.safetensors', 'model.safetensors.index.json']);
  const index = JSON.parse(readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
  assert.equal(index.metadata.total_size, 2800);
  assert.equal(index.weight_map['layer.6.w'], 'model-00004-of-00004.safetensors');
  const s = await ShardedSafetensors.open(path.join(dir, 'model.safetensors.index.json'));
  try {
    const all = await s.readAll();
    assert.equal(all.length, 7);
    for (const x of ts) assert.deepEqual((await s.read(x.name)).data, x.data);
    assert.deepEqual(s.metadata, { format: 'pt' });
  } finally {
    await s.close();
  }
  // one shard: a plain model.safetensors, no index
  const dir2 = tempDir(t);
  assert.deepEqual(await writeShardedSafetensors(dir2, ts, { maxShardSize: 1e9 }), ['model.safetensors']);
  // a tensor larger than the limit gets a shard of its own
  const dir3 = tempDir(t);
  const files3 = await writeShardedSafetensors(dir3, [ts[0], randTensor('big', [40, 40], r), ts[1]], { maxShardSize: 1000 });
  assert.equal(files3.length, 3); // huggingface_hub: [big], then [first, last]
  const idx3 = JSON.parse(readFileSync(path.join(dir3, 'model.safetensors.index.json'), 'utf8'));
  assert.equal(idx3.weight_map.big, 'model-00001-of-00002.safetensors');
});

// ---- bad input ----------------------------------------------------------------------------

function craft(header: unknown, dataLen: number, rawHeader?: string): Uint8Array {
  const h = new TextEncoder().encode(rawHeader ?? JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + dataLen);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  return out;
}
function rejects(buf: Uint8Array, cls: Function, re: RegExp): void {
  assert.throws(() => SafetensorsFile.fromBuffer(buf, 'bad.safetensors'), (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${(e as Error).name}: ${(e as Error).message}`);
    assert.match((e as Error).message, /^bad\.safetensors: /);
    assert.match((e as Error).message, re);
    return true;
  });
}

test('bad safetensors: each a clear error naming the file and the tensor or field', async (t) => {
  const ok = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F16', shape: [2], data_offsets: [8, 12] } };
  SafetensorsFile.fromBuffer(craft(ok, 12)); // sanity
  rejects(new Uint8Array(5), TruncatedError, /header length needs 8 byte\(s\) at offset 0, but the file has 5 bytes/);
  const past = craft(ok, 12);
  new DataView(past.buffer).setBigUint64(0, 1000n, true);
  rejects(past, FormatError, /header length: 1000 runs past the end of the file/);
  const huge = craft(ok, 12);
  new DataView(huge.buffer).setBigUint64(0, 1n << 62n, true);
  rejects(huge, FormatError, /header length: \d+ runs past the end/);
  rejects(craft(null, 0, '{"a": {"dtype": "F32",'), FormatError, /header: is not valid JSON/);
  rejects(craft(null, 0, '[1, 2]'), FormatError, /header: must be a JSON object/);
  rejects(craft({ a: { dtype: 'F17', shape: [2], data_offsets: [0, 8] } }, 8), UnsupportedDTypeError, /tensor 'a': unsupported dtype "F17"/);
  rejects(craft({ a: { dtype: 'Q8_0', shape: [32], data_offsets: [0, 34] } }, 34), UnsupportedDTypeError, /tensor 'a'/);
  rejects(craft(ok, 10), TensorError, /tensor 'b': data_offsets \[8, 12\] are out of range: the data section has 10 bytes/);
  rejects(craft({ ...ok, b: { dtype: 'F16', shape: [2], data_offsets: [6, 10] } }, 10), TensorError, /tensor 'b': data_offsets \[6, 10\] overlap tensor 'a' \[0, 8\]/);
  rejects(craft({ ...ok, b: { dtype: 'F16', shape: [2], data_offsets: [9, 13] } }, 13), TensorError, /tensor 'b': data_offsets \[9, 13\] leave a gap after byte 8/);
  rejects(craft({ ...ok, b: { dtype: 'F16', shape: [3], data_offsets: [8, 12] } }, 12), TensorError, /tensor 'b': data_offsets \[8, 12\] hold 4 bytes, but F16 \[3\] needs 6/);
  rejects(craft({ a: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, 8), TensorError, /tensor 'a': data_offsets \[8, 0\] end before they begin/);
  rejects(craft({ a: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, 8), TensorError, /tensor 'a': shape \[-2\]/);
  rejects(craft({ a: { dtype: 'F32', shape: [2**40, 2**40], data_offsets: [0, 8] } }, 8), TensorError, /tensor 'a': .*too many elements/);
  rejects(craft(ok, 20), FormatError, /data: tensors cover 12 bytes but the data section has 20/);
  rejects(craft({ __metadata__: { a: 1 } }, 0), FormatError, /__metadata__\.a: must be a string/);
  const badUtf8 = craft(null, 0, '{"a":1}');
  badUtf8[10] = 0xff;
  rejects(badUtf8, FormatError, /header: is not valid UTF-8/);

  // from a path: a truncated file names the path and the tensor
  const dir = tempDir(t);
  const p = path.join(dir, 'trunc.safetensors');
  const good = serializeSafetensors([f32('w', [4], [1, 2, 3, 4]), f32('v', [2], [5, 6])]);
  writeFileSync(p, good.subarray(0, good.length - 3));
  await assert.rejects(SafetensorsFile.open(p), (e: unknown) => e instanceof TensorError && (e as Error).message.startsWith(p) && /tensor 'w'.*out of range/.test((e as Error).message));
  writeFileSync(p, good.subarray(0, 20));
  await assert.rejects(SafetensorsFile.open(p), /trunc\.safetensors: header length: \d+ runs past the end of the file \(20 bytes\)/);

  // writing: duplicate names, wrong data length, a dtype safetensors lacks
  assert.throws(() => serializeSafetensors([f32('w', [1], [1]), f32('w', [1], [2])]), /tensor 'w': appears twice/);
  assert.throws(() => serializeSafetensors([{ name: 'w', dtype: 'F32', shape: [3], data: new Uint8Array(8) }]), /tensor 'w': F32 \[3\] needs 12 bytes, data has 8/);
  assert.throws(() => serializeSafetensors([fromFloat32('q', [32], new Float32Array(32), 'Q8_0')]), /tensor 'q': unsupported dtype Q8_0/);
});

test('bad sharded checkpoints: missing and extra tensors name the shard and the tensor', async (t) => {
  const dir = tempDir(t);
  const r = rng(5);
  const ts = [randTensor('x', [100], r), randTensor('y', [100], r), randTensor('z', [100], r)];
  await writeShardedSafetensors(dir, ts, { maxShardSize: 900 });
  const idx = path.join(dir, 'model.safetensors.index.json');
  const index = JSON.parse(readFileSync(idx, 'utf8'));
  const write = (o: unknown) => writeFileSync(idx, JSON.stringify(o));
  write({ ...index, weight_map: { ...index.weight_map, w: 'model-00001-of-00002.safetensors' } });
  await assert.rejects(ShardedSafetensors.open(idx), (e: unknown) => e instanceof MissingTensorError && /model-00001-of-00002\.safetensors: tensor 'w': listed in model\.safetensors\.index\.json but not in this shard/.test((e as Error).message));
  const { y: _y, ...rest } = index.weight_map;
  write({ ...index, weight_map: rest });
  await assert.rejects(ShardedSafetensors.open(idx), (e: unknown) => e instanceof UnexpectedTensorError && /tensor 'y': is in this shard but/.test((e as Error).message));
  write({ ...index, weight_map: { ...index.weight_map, x: 'model-00009-of-00009.safetensors' } });
  await assert.rejects(ShardedSafetensors.open(idx), (e: unknown) => e instanceof IoError && /shard 'model-00009-of-00009\.safetensors' named in weight_map does not exist/.test((e as Error).message));
  write({ ...index, weight_map: { ...index.weight_map, x: '../etc/passwd' } });
  await assert.rejects(ShardedSafetensors.open(idx), /weight_map\['x'\]: must be a file name in the same directory/);
  writeFileSync(idx, '{"weight_map": ');
  await assert.rejects(ShardedSafetensors.open(idx), /index\.json: index: is not valid JSON/);
  assert.ok(existsSync(idx));
});
