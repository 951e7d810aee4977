// GGUF: round trips of every metadata type and tensor type, the LLaMA mapping (names, ne order,
// q/k permutation), and bad input. The outside reference (node-llama-cpp) is in llamacpp.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  serializeGguf, readGguf, writeGguf, GgufFile, gv, ggufPlain, fromFloat32, toFloat32,
  serializeLlamaGguf, readLlamaGguf, writeLlamaGguf, hfToGgufName, ggufToHfName, permuteQK, unpermuteQK,
  FormatError, TensorError, TruncatedError, UnsupportedDTypeError, ConfigFieldError, MissingTensorError, UnexpectedTensorError,
} from '../../src/io/index.js';
import type { GgufValue, RawTensor } from '../../src/io/index.js';
import { tempDir, rng, randTensor, tinyLlamaConfig, tinyLlamaTensors } from './util.js';
import { tinySpmTokenizer } from './tiny_llama.js';

test('metadata of every type and tensors of every type round-trip; offsets aligned', async (t) => {
  const md = new Map<string, GgufValue>([
    ['general.architecture', gv.str('test')],
    ['general.alignment', gv.u32(64)],
    ['u8', gv.u8(255)], ['i8', gv.i8(-128)], ['u16', gv.u16(65535)], ['i16', gv.i16(-32768)],
    ['u32', gv.u32(4294967295)], ['i32', gv.i32(-2147483648)], ['f32', gv.f32(Math.fround(0.1))], ['f64', gv.f64(0.1)],
    ['u64', gv.u64(2n ** 64n - 1n)], ['i64', gv.i64(-(2n ** 63n))], ['bool', gv.bool(true)], ['str', gv.str('héllo ▁ 🦙')],
    ['empty', gv.str('')],
    ['strs', gv.strings(['a', '', 'ü'])], ['f32s', gv.f32s([1, 2.5])], ['i32s', gv.i32s([-1, 2])],
    ['bools', { type: 'array', itemType: 'bool', value: [true, false] }],
    ['nested', { type: 'array', itemType: 'array', value: [gv.u32s([1, 2]), gv.strings(['x'])] as any }],
    ['u64s', { type: 'array', itemType: 'u64', value: BigUint64Array.from([1n, 2n ** 60n]) }],
  ]);
  const r = rng(1);
  const tensors: RawTensor[] = [
    randTensor('a', [3, 5], r, 'F32'), randTensor('b', [7], r, 'F16'), randTensor('c', [2, 64], r, 'Q8_0'),
    randTensor('d', [2, 3, 4], r, 'BF16'), { name: 'e', dtype: 'I32', shape: [3], data: new Uint8Array(new Int32Array([1, -2, 3]).buffer) },
    randTensor('f', [1, 1, 2, 2], r, 'F64'),
  ];
  const bytes = serializeGguf({ metadata: md, tensors });
  const g = await readGguf(bytes);
  assert.equal(g.version, 3);
  assert.equal(g.alignment, 64);
  assert.deepEqual([...g.metadata.keys()], [...md.keys()]);
  for (const [k, v] of md) {
    assert.equal(g.metadata.get(k)!.type, v.type, k);
    assert.deepEqual(ggufPlain(g.metadata.get(k)), ggufPlain(v), k);
  }
  for (const [i, x] of g.tensors.entries()) {
    assert.equal(x.name, tensors[i].name);
    assert.equal(x.dtype, tensors[i].dtype);
    assert.deepEqual(x.shape, tensors[i].shape);
    assert.deepEqual(x.data, tensors[i].data);
  }
  const f = GgufFile.fromBuffer(bytes);
  assert.deepEqual(f.info('d').ne, [4, 3, 2]); // ne[0] fastest
  assert.equal(f.header.dataStart % 64, 0);
  for (const ti of f.tensors) assert.equal(ti.offset % 64, 0);
  // the file writer streams the same bytes; lazy reads from the file agree
  const dir = tempDir(t);
  const p = path.join(dir, 'x.gguf');
  await writeGguf(p, { metadata: md, tensors });
  const ff = await GgufFile.open(p);
  try {
    assert.deepEqual((await ff.read('c')).data, tensors[2].data);
    assert.equal(ff.get('str'), 'héllo ▁ 🦙');
  } finally { await ff.close(); }
  assert.throws(() => serializeGguf({ metadata: { x: gv.u8(256) }, tensors: [] }), /x: value 256 is out of range \[0, 255\]/);
  assert.throws(() => serializeGguf({ metadata: {}, tensors: [tensors[0], tensors[0]] }), /tensor 'a': appears twice/);
});

test('HF ↔ GGUF tensor names', () => {
  const pairs = [
    ['model.embed_tokens.weight', 'token_embd.weight'], ['model.norm.weight', 'output_norm.weight'], ['lm_head.weight', 'output.weight'],
    ['model.layers.3.input_layernorm.weight', 'blk.3.attn_norm.weight'], ['model.layers.3.self_attn.q_proj.weight', 'blk.3.attn_q.weight'],
    ['model.layers.3.self_attn.k_proj.weight', 'blk.3.attn_k.weight'], ['model.layers.3.self_attn.v_proj.weight', 'blk.3.attn_v.weight'],
    ['model.layers.3.self_attn.o_proj.weight', 'blk.3.attn_output.weight'], ['model.layers.3.post_attention_layernorm.weight', 'blk.3.ffn_norm.weight'],
    ['model.layers.12.mlp.gate_proj.weight', 'blk.12.ffn_gate.weight'], ['model.layers.12.mlp.down_proj.weight', 'blk.12.ffn_down.weight'],
    ['model.layers.12.mlp.up_proj.weight', 'blk.12.ffn_up.weight'],
  ];
  for (const [h, g] of pairs) { assert.equal(hfToGgufName(h), g); assert.equal(ggufToHfName(g), h); }
  assert.equal(hfToGgufName('model.layers.0.mlp.foo.weight'), undefined);
});

test('permuteQK is the inverse of unpermuteQK and matches transformers permute on a small case', () => {
  // 1 head, head_dim 4, 1 column: Meta rows [r0 r1 r2 r3] pair (0,1),(2,3) → HF [r0 r2 r1 r3]
  const t = fromFloat32('q', [4, 1], Float32Array.from([0, 1, 2, 3]));
  assert.deepEqual(Array.from(toFloat32(permuteQK(t, 1))), [0, 2, 1, 3]);
  const r = rng(2);
  const w = randTensor('k', [24, 5], r);
  assert.deepEqual(permuteQK(unpermuteQK(w, 3), 3).data, w.data);
  const q8 = randTensor('k', [8, 64], r, 'Q8_0');
  assert.deepEqual(unpermuteQK(permuteQK(q8, 2), 2).data, q8.data);
});

test('LLaMA GGUF round trip: config, tokenizer, tensors (F32 exact, Q8_0 as quantized)', async () => {
  for (const over of [{}, { tie_word_embeddings: true }, { rms_norm_eps: 1e-6, rope_theta: 500000, num_key_value_heads: 1 }]) {
    const cfg = tinyLlamaConfig(over);
    const ts = tinyLlamaTensors(cfg, 3);
    const tokenizer = tinySpmTokenizer(cfg.vocab_size as number);
    const bytes = serializeLlamaGguf({ config: cfg, tensors: ts, tokenizer });
    const back = await readLlamaGguf(bytes);
    for (const k of ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'vocab_size', 'max_position_embeddings', 'rms_norm_eps', 'rope_theta']) {
      assert.equal(back.config[k], cfg[k], k);
    }
    assert.equal(back.config.tie_word_embeddings, !!cfg.tie_word_embeddings);
    assert.deepEqual(back.tensors.map((x) => x.name).sort(), ts.map((x) => x.name).sort());
    const byName = new Map(back.tensors.map((x) => [x.name, x]));
    for (const x of ts) assert.deepEqual(byName.get(x.name)!.data, x.data, x.name);
    assert.deepEqual(back.tokenizer!.tokens, tokenizer.tokens);
    assert.deepEqual(Array.from(back.tokenizer!.tokenTypes!), Array.from(tokenizer.tokenTypes!));
    assert.equal(back.tokenizer!.bosId, 1);
    assert.equal(back.tokenizer!.addBos, true);
    // stored layout is interleaved
    const raw = await readLlamaGguf(bytes, { qkLayout: 'interleaved' });
    const q = raw.tensors.find((x) => x.name === 'model.layers.0.self_attn.q_proj.weight')!;
    assert.deepEqual(q.data, unpermuteQK(ts.find((x) => x.name === q.name)!, cfg.num_attention_heads as number).data);
  }
  const cfg = tinyLlamaConfig();
  const ts = tinyLlamaTensors(cfg, 4);
  const back = await readLlamaGguf(serializeLlamaGguf({ config: cfg, tensors: ts, tokenizer: tinySpmTokenizer(300), dtype: 'Q8_0' }));
  const g = back.tensors.find((x) => x.name === 'model.layers.1.mlp.down_proj.weight')!;
  assert.equal(g.dtype, 'Q8_0');
  assert.equal(back.tensors.find((x) => x.name === 'model.norm.weight')!.dtype, 'F32'); // 1-D stays F32
  const orig = toFloat32(ts.find((x) => x.name === g.name)!), deq = toFloat32(g);
  for (let i = 0; i < orig.length; i++) assert.ok(Math.abs(orig[i] - deq[i]) < 0.01);
  // Q8_0 rows that are not whole blocks fall back to F16 (as convert_hf_to_gguf.py does)
  const odd = tinyLlamaConfig({ hidden_size: 48, num_attention_heads: 4, num_key_value_heads: 4 });
  const oddBack = await readLlamaGguf(serializeLlamaGguf({ config: odd, tensors: tinyLlamaTensors(odd, 5), tokenizer: tinySpmTokenizer(300), dtype: 'Q8_0' }));
  assert.equal(oddBack.tensors.find((x) => x.name === 'model.layers.0.self_attn.q_proj.weight')!.dtype, 'F16');
  assert.equal(oddBack.tensors.find((x) => x.name === 'model.layers.0.mlp.down_proj.weight')!.dtype, 'Q8_0');
});

// ---- bad input ----------------------------------------------------------------------------

class B {
  parts: number[] = [];
  u32(v: number) { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, v, true); this.parts.push(...b); return this; }
  u64(v: bigint | number) { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(v), true); this.parts.push(...b); return this; }
  str(s: string) { const e = new TextEncoder().encode(s); this.u64(e.length); this.parts.push(...e); return this; }
  raw(...b: number[]) { this.parts.push(...b); return this; }
  pad(a = 32) { while (this.parts.length % a) this.parts.push(0); return this; }
  zeros(n: number) { for (let i = 0; i < n; i++) this.parts.push(0); return this; }
  get bytes() { return new Uint8Array(this.parts); }
}
const head = (nT: number | bigint, nKv: number | bigint, version = 3) => new B().u32(0x46554747).u32(version).u64(nT).u64(nKv);
/** One F32 tensor info: name, ne, type, offset. */
const info = (b: B, name: string, ne: number[], type = 0, offset = 0) => { b.str(name).u32(ne.length); ne.forEach((d) => b.u64(d)); return b.u32(type).u64(offset); };

function bad(bytes: Uint8Array, cls: Function, re: RegExp): void {
  assert.throws(() => GgufFile.fromBuffer(bytes, 'bad.gguf'), (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${(e as Error).name}: ${(e as Error).message}`);
    assert.match((e as Error).message, /^bad\.gguf: /);
    assert.match((e as Error).message, re);
    return true;
  });
}

test('bad GGUF: each a clear error naming the file and the field or tensor, no huge allocations', async (t) => {
  const okBytes = info(head(1, 0), 'w', [4]).pad().zeros(16).bytes;
  GgufFile.fromBuffer(okBytes); // sanity
  bad(new TextEncoder().encode('GGML\x03\0\0\0'), FormatError, /magic: expected "GGUF": this is not a GGUF file/);
  bad(head(0, 0, 1).bytes, FormatError, /version: unsupported GGUF version 1 \(GGUF v1 is not supported\)/);
  bad(head(0, 0, 0x03000000).bytes, FormatError, /version: unsupported GGUF version 50331648 \(a big-endian file\?\)/);
  bad(new Uint8Array([0x47, 0x47, 0x55, 0x46, 3, 0, 0]), TruncatedError, /truncated: version needs 4 byte\(s\) at offset 4, but the file has 7 bytes/);
  bad(head(0, 1).str('general.name').u32(8).u64(1000).raw(65, 66).bytes, TruncatedError, /truncated: general\.name \(string of 1000 bytes\) needs 1000 byte\(s\) at offset \d+/);
  bad(head(0, 1).u64(2n ** 62n).zeros(16).bytes, FormatError, /metadata key #0 \(string length\): value \d+ at offset 24 is absurdly large/);
  bad(head(0, 1).u64(2n ** 40n).zeros(16).bytes, TruncatedError, /metadata key #0 \(string of 1099511627776 bytes\) needs 1099511627776 byte/);
  bad(head(0, 1).str('tokenizer.ggml.tokens').u32(9).u32(8).u64(2n ** 50n).zeros(16).bytes, TruncatedError, /tokenizer\.ggml\.tokens \(array of 1125899906842624 string\)/);
  bad(head(0, 1).str('x').u32(9).u32(4).u64(1e9).zeros(16).bytes, TruncatedError, /x \(array of 1000000000 u32\) needs 4000000000 byte/);
  bad(head(0, 2n ** 40n).bytes, TruncatedError, /truncated: 1099511627776 metadata entries and 0 tensor infos \(the header's counts\) needs 14293651161088 byte\(s\) at offset 24, but the file has 24 bytes/);
  bad(head(2n ** 40n, 0).bytes, TruncatedError, /0 metadata entries and 1099511627776 tensor infos/);
  bad(head(0, 1).str('x').u32(42).zeros(8).bytes, FormatError, /x: unknown value type 42/);
  bad(head(0, 1).str('x').u32(9).u32(77).u64(0).bytes, FormatError, /x: unknown array item type 77/);
  bad(head(0, 1).str('b').u32(7).raw(2).bytes, FormatError, /b: bool must be 0 or 1, got 2/);
  bad(head(0, 2).str('k').u32(4).u32(1).str('k').u32(4).u32(1).bytes, FormatError, /k: duplicate metadata key/);
  bad(head(0, 1).str('general.alignment').u32(4).u32(48).bytes, FormatError, /general\.alignment: must be a u32 power of two, got 48/);
  bad(head(0, 1).str('general.alignment').u32(5).u32(32).bytes, FormatError, /general\.alignment: must be a u32 power of two/);
  bad(head(0, 1).str('k').u32(8).u64(2).raw(0xff, 0xfe).bytes, FormatError, /k: invalid UTF-8 at offset/);
  // string arrays (vocabularies) name the item at fault
  bad(head(0, 1).str('t').u32(9).u32(8).u64(3).str('a').u64(2).raw(0xff, 0xfe).str('c').bytes, FormatError, /t\[1\]: invalid UTF-8 at offset 66/);
  bad(head(0, 1).str('t').u32(9).u32(8).u64(2).str('a').u64(2n ** 62n).zeros(8).bytes, FormatError, /t\[1\] \(string length\): value 4611686018427387904 at offset 58 is absurdly large/);
  bad(head(0, 1).str('t').u32(9).u32(8).u64(2).str('a').u64(40).raw(65).bytes, TruncatedError, /t\[1\] \(string of 40 bytes\) needs 40 byte/);
  bad(info(head(1, 0), 'w', [4], 99).pad().zeros(16).bytes, UnsupportedDTypeError, /tensor 'w': unsupported dtype ggml type 99/);
  bad(info(head(1, 0), 'w', [1, 1, 1, 1, 1]).pad().bytes, TensorError, /tensor 'w': n_dims 5 exceeds 4/);
  bad(info(head(1, 0), 'w', [4], 0, 8).pad().zeros(48).bytes, TensorError, /tensor 'w': offset 8 is not a multiple of the alignment 32/);
  bad(info(head(1, 0), 'w', [4], 0, 32).pad().zeros(16).bytes, TensorError, /tensor 'w': data \[32, 48\) is out of range: the data section has 16 bytes/);
  bad(info(head(1, 0), 'w', [100]).pad().zeros(16).bytes, TensorError, /tensor 'w': data \[0, 400\) is out of range/);
  bad(info(head(1, 0), 'w', [2 ** 40, 2 ** 40]).pad().zeros(16).bytes, TensorError, /tensor 'w': ne \[1099511627776, 1099511627776\] has too many elements/);
  bad(info(head(1, 0), 'q', [33], 8).pad().zeros(64).bytes, TensorError, /tensor 'q': ne\[0\] = 33 is not a multiple of Q8_0's block size 32/);
  bad(info(info(head(2, 0), 'a', [16]), 'b', [16], 0, 32).pad().zeros(96).bytes, TensorError, /tensor 'b': data at offset 32 overlaps tensor 'a' \[0, 64\)/);
  bad(info(info(head(2, 0), 'a', [4]), 'a', [4], 0, 32).pad().zeros(64).bytes, TensorError, /tensor 'a': duplicate tensor name/);
  bad(info(head(1, 0), 'w', [4]).bytes.subarray(0, 50), TruncatedError, /truncated: offset of tensor 'w' needs 8 byte\(s\) at offset 49, but the file has 50 bytes/);
  // unsupported but known types list fine and fail on read
  const q2 = GgufFile.fromBuffer(info(head(1, 0), 'q2', [256], 10).pad().zeros(96).bytes, 'q2.gguf');
  await assert.rejects(q2.read('q2'), /q2\.gguf: tensor 'q2': unsupported dtype Q2_K/);

  // a truncated file on disk: the path and the tensor
  const dir = tempDir(t);
  const p = path.join(dir, 'trunc.gguf');
  const cfg = tinyLlamaConfig();
  const full = serializeLlamaGguf({ config: cfg, tensors: tinyLlamaTensors(cfg, 1), tokenizer: tinySpmTokenizer(300) });
  writeFileSync(p, full.subarray(0, full.length - 1000));
  await assert.rejects(GgufFile.open(p), (e: unknown) => e instanceof TensorError && (e as Error).message.startsWith(p) && /tensor 'output\.weight': data .* out of range/.test((e as Error).message));
  writeFileSync(p, full.subarray(0, 5000));
  await assert.rejects(GgufFile.open(p), (e: unknown) => e instanceof TruncatedError && /trunc\.gguf: truncated: tokenizer\.ggml\.scores \(array of 300 f32\) needs 1200 byte/.test((e as Error).message));
});

test('bad LLaMA GGUF: wrong architecture, missing keys, missing/extra tensors, bad dims', async (t) => {
  const cfg = tinyLlamaConfig();
  const ts = tinyLlamaTensors(cfg, 1);
  const tokenizer = tinySpmTokenizer(300);
  const g = await readGguf(serializeLlamaGguf({ config: cfg, tensors: ts, tokenizer }));
  const rewrite = (edit: (md: Map<string, GgufValue>, tensors: RawTensor[]) => void) => {
    const md = new Map(g.metadata);
    const tensors = [...g.tensors];
    edit(md, tensors);
    return serializeGguf({ metadata: md, tensors });
  };
  const rej = (bytes: Uint8Array, cls: Function, re: RegExp) => assert.rejects(readLlamaGguf(bytes, { label: 'm.gguf' }), (e: unknown) => {
    assert.ok(e instanceof cls, `${(e as Error).name}: ${(e as Error).message}`);
    assert.match((e as Error).message, re);
    return true;
  });
  await rej(rewrite((md) => md.set('general.architecture', gv.str('mamba'))), ConfigFieldError, /m\.gguf: general\.architecture: expected "llama", got "mamba"/);
  await rej(rewrite((md) => md.delete('llama.block_count')), ConfigFieldError, /m\.gguf: llama\.block_count: is missing/);
  await rej(rewrite((md) => md.set('llama.embedding_length', gv.str('64'))), ConfigFieldError, /llama\.embedding_length: must be an integer, got type string/);
  await rej(rewrite((md) => md.set('llama.attention.head_count', gv.u32(5))), ConfigFieldError, /m\.gguf: llama\.attention\.head_count: 5 does not divide llama\.embedding_length 64/);
  await rej(rewrite((md) => md.set('llama.attention.head_count_kv', gv.u32(3))), ConfigFieldError, /num_key_value_heads: 3 does not divide num_attention_heads 4/);
  await rej(rewrite((_, ts2) => ts2.splice(ts2.findIndex((x) => x.name === 'blk.1.ffn_up.weight'), 1)), MissingTensorError, /m\.gguf: tensor 'model\.layers\.1\.mlp\.up_proj\.weight': missing/);
  await rej(rewrite((_, ts2) => ts2.push(randTensor('blk.0.attn_q.bias', [64], rng(1)))), UnexpectedTensorError, /tensor 'blk\.0\.attn_q\.bias': is not a llama tensor/);
  await rej(rewrite((_, ts2) => ts2.push(randTensor('blk.2.attn_norm.weight', [64], rng(1)))), UnexpectedTensorError, /tensor 'model\.layers\.2\.input_layernorm\.weight': unexpected/);
  await rej(rewrite((_, ts2) => { const i = ts2.findIndex((x) => x.name === 'blk.0.attn_k.weight'); ts2[i] = randTensor('blk.0.attn_k.weight', [64, 64], rng(1)); }), TensorError, /tensor 'model\.layers\.0\.self_attn\.k_proj\.weight': shape \[64, 64\] does not match the config's \[32, 64\]/);

  // writing: config/tokenizer inconsistencies
  assert.throws(() => serializeLlamaGguf({ config: cfg, tensors: ts, tokenizer: tinySpmTokenizer(299) }), /tokenizer\.ggml\.tokens: has 299 tokens but vocab_size is 300/);
  assert.throws(() => serializeLlamaGguf({ config: { ...cfg, num_attention_heads: 5 }, tensors: ts, tokenizer }), /num_attention_heads: 5 does not divide hidden_size 64/);
  assert.throws(() => serializeLlamaGguf({ config: cfg, tensors: ts.slice(1), tokenizer }), /tensor 'model\.embed_tokens\.weight': missing/);
  assert.throws(() => serializeLlamaGguf({ config: cfg, tensors: [...ts, randTensor('model.layers.0.mlp.extra.weight', [2], rng(1))], tokenizer }), /tensor 'model\.layers\.0\.mlp\.extra\.weight': unexpected/);
  assert.throws(() => serializeLlamaGguf({ config: cfg, tensors: ts, tokenizer: { ...tokenizer, bosId: 300 } }), /tokenizer\.bosId: 300 is not a token id/);
  const dir = tempDir(t);
  await assert.rejects(writeLlamaGguf(path.join(dir, 'x.gguf'), { config: { ...cfg, hidden_size: 0 }, tensors: ts, tokenizer }), /x\.gguf: hidden_size: must be a positive integer, got 0/);
});
