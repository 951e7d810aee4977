// f16/bf16 rounding against torch's casts; Q8_0 against a transcription of ggml's reference.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { f32ToF16Bits, f16BitsToF32, f32ToBf16Bits, bf16BitsToF32, quantizeQ8_0, dequantizeQ8_0, fromFloat32, toFloat32, convertDType } from '../../src/io/index.js';
import { ioExpected } from './util.js';

const exp = ioExpected();

test('f32 → f16 and bf16 round to nearest even exactly as torch does', () => {
  const bits: number[] = exp.halfround.f32_bits;
  const f = new Float32Array(new Uint32Array(bits).buffer);
  let checked = 0;
  for (let i = 0; i < f.length; i++) {
    assert.equal(f32ToF16Bits(f[i]), exp.halfround.f16_bits[i], `f16 of ${f[i]} (0x${bits[i].toString(16)})`);
    assert.equal(f32ToBf16Bits(f[i]), exp.halfround.bf16_bits[i], `bf16 of ${f[i]}`);
    checked++;
  }
  assert.ok(checked > 200);
});

test('f16 → f32 is exact for every half value, and round-trips', () => {
  for (let h = 0; h < 65536; h++) {
    const x = f16BitsToF32(h);
    if (Number.isNaN(x)) { assert.equal((h & 0x7c00), 0x7c00); continue; }
    assert.equal(f32ToF16Bits(x), h, `half 0x${h.toString(16)}`);
  }
  for (let h = 0; h < 65536; h += 7) {
    const x = bf16BitsToF32(h);
    if (!Number.isNaN(x)) assert.equal(f32ToBf16Bits(x), h);
  }
  assert.equal(f32ToF16Bits(NaN) & 0x7e00, 0x7e00);
  assert.ok(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(NaN))));
});

test('Q8_0 quantization matches ggml quantize_row_q8_0_ref byte for byte', () => {
  const x = Float32Array.from(exp.q8_0.x as number[]);
  const q = quantizeQ8_0(x);
  assert.equal(Buffer.from(q).toString('hex'), exp.q8_0.blocks_hex);
  const y = dequantizeQ8_0(q);
  // dequantized: q * f16(d); error at most half a step per block
  for (let b = 0; b < x.length / 32; b++) {
    const d = f16BitsToF32(q[b * 34] | (q[b * 34 + 1] << 8));
    for (let j = 0; j < 32; j++) assert.ok(Math.abs(y[b * 32 + j] - x[b * 32 + j]) <= d * 0.5 + Math.abs(x[b * 32 + j]) * 1e-3 + 1e-30);
  }
  assert.deepEqual(Array.from(y.subarray(32, 64)), new Array(32).fill(0)); // all-zero block
});

test('fromFloat32 / toFloat32 / convertDType', () => {
  const v = Float32Array.from([1, -2.5, 0.1, 65504, 1e-8, 3]);
  for (const dt of ['F32', 'F16', 'BF16', 'F64'] as const) {
    const t = fromFloat32('x', [2, 3], v, dt);
    const back = toFloat32(t);
    assert.equal(back.length, 6);
    if (dt === 'F32' || dt === 'F64') assert.deepEqual(Array.from(back), Array.from(v));
  }
  const q = fromFloat32('q', [2, 32], new Float32Array(64).fill(0.5), 'Q8_0');
  assert.equal(q.data.length, 68);
  for (const y of toFloat32(q)) assert.ok(Math.abs(y - 0.5) < 1e-4); // 127 · f16(0.5/127)
  assert.throws(() => fromFloat32('q', [2, 3], v, 'Q8_0'), /tensor 'q': Q8_0 needs the last dimension to be a multiple of 32/);
  assert.throws(() => fromFloat32('x', [4], v), /tensor 'x': shape \[4\] needs 4 values, got 6/);
  const h = convertDType(fromFloat32('x', [6], v), 'F16');
  assert.equal(h.dtype, 'F16');
  // unaligned views convert too
  const buf = new Uint8Array(25);
  buf.set(new Uint8Array(Float32Array.from([1, 2, 3, 4, 5, 6]).buffer), 1);
  assert.deepEqual(Array.from(toFloat32({ name: 'u', dtype: 'F32', shape: [6], data: buf.subarray(1) })), [1, 2, 3, 4, 5, 6]);
  assert.throws(() => toFloat32({ name: 'bad', dtype: 'F32', shape: [3], data: new Uint8Array(8) }), /tensor 'bad': F32 \[3\] needs 12 bytes, data has 8/);
});

test('float32Values: a view of aligned F32 bytes, a copy otherwise; f32StateDict feeds loadStateDict', async () => {
  const { float32Values, f32StateDict } = await import('../../src/io/dtypes.js');
  const { init, shutdown, Linear } = await import('../../src/index.js');
  const vals = Float32Array.from([1.5, -2, 3.25, 4, 0.5, -6]);
  const buf = new Uint8Array(4 + vals.byteLength);
  buf.set(new Uint8Array(vals.buffer), 4);
  const aligned = { name: 'weight', dtype: 'F32' as const, shape: [2, 3], data: buf.subarray(4) };
  const v = float32Values(aligned);
  assert.deepEqual(Array.from(v), Array.from(vals));
  assert.equal(v.buffer, buf.buffer, 'aligned F32: a view, no copy');
  const odd = new Uint8Array(1 + vals.byteLength);
  odd.set(new Uint8Array(vals.buffer), 1);
  const u = float32Values({ ...aligned, data: odd.subarray(1) });
  assert.deepEqual(Array.from(u), Array.from(vals));
  assert.notEqual(u.buffer, odd.buffer, 'unaligned: a copy');
  assert.throws(() => float32Values({ ...aligned, shape: [3, 3] }), /weight/);
  await init({ threads: 1 });
  try {
    const lin = new Linear(3, 2, { bias: true });
    lin.loadStateDict({ ...f32StateDict([aligned]), bias: { shape: [2], data: Float32Array.from([7, 8]) } }, { strict: false, source: 'f.safetensors' } as never);
    assert.deepEqual(Array.from(lin.weight.data()), Array.from(vals));
    assert.deepEqual(Array.from(lin.bias!.data()), [7, 8]);
    assert.throws(() => lin.loadStateDict({ weight: { shape: [3, 2], data: vals } } as never, { strict: false }), /tensor weight has shape \[3, 2\]/);
    assert.throws(() => lin.loadStateDict({ weight: { shape: [2, 3], data: vals.subarray(0, 5) } } as never, { strict: false, source: 'f.safetensors' }), /f\.safetensors: tensor weight: 5 values/);
    lin.dispose();
  } finally {
    await shutdown();
  }
});
