// Hostile and corrupt safetensors files and HF model directories (issue #21): every mutation is
// refused with the right error class, naming the file and the field or tensor, before anything
// is allocated for it; messages never quote the file's text. The bases are files written by the
// reference tools (test/fixtures/io: huggingface/safetensors and llama2.c's export.py).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync, copyFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { init, shutdown } from '../../src/backend/index.js';
import { heapStats } from '../../src/backend/heap.js';
import {
  ConfigFieldError, FormatError, IoError, NonFiniteWeightError, TensorError, TruncatedError, UnsupportedDTypeError,
  SafetensorsFile, loadModel, modelFromBytes, parseSafetensorsBytes, readLlama2c, serializeSafetensors, setAllowNonFinite, readHfDir,
} from '../../src/io/index.js';
import type { RawTensor } from '../../src/io/index.js';
import { ioFixture, tempDir } from './util.js';
import { rejectsWith, rss, setU64, throwsWith } from './hostile_util.js';

before(async () => { await init({ threads: 1 }); });
after(async () => { await shutdown(); });

const MIXED = new Uint8Array(readFileSync(ioFixture('mixed.safetensors')));
const enc = new TextEncoder();

/** A safetensors file from a header (object or raw text) and a data section. */
function craft(header: unknown, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): Uint8Array {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const body = enc.encode(text);
  const out = new Uint8Array(8 + body.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(body.length), true);
  out.set(body, 8);
  out.set(data, 8 + body.length);
  return out;
}
const ANY = [IoError];

test('truncated at every byte: a checked error naming the file and the header, a tensor or the data', () => {
  const headerLen = Number(new DataView(MIXED.buffer).getBigUint64(0, true));
  for (let k = 0; k < MIXED.length; k++) {
    const e = throwsWith(() => parseSafetensorsBytes(MIXED.subarray(0, k), 'cut.safetensors'), { cls: [TruncatedError, FormatError, TensorError], file: 'cut.safetensors' }, `cut at ${k}`);
    if (k < 8) assert.match(e.message, /header length/);
    else if (k < 8 + headerLen) assert.match(e.message, /header length: \d+ runs past the end of the file/);
    else assert.match(e.message, /tensor '[^']+': data_offsets \[\d+, \d+\] are out of range|data:/, `cut at ${k}`);
  }
  assert.equal(parseSafetensorsBytes(MIXED, 'whole').tensors.length, 9);
});

test('declared sizes against the file: header length, offsets, shapes of 4 GiB and more', () => {
  const f = 'x.safetensors';
  const bad = (b: Uint8Array, cls: Function, ...names: (string | RegExp)[]) => throwsWith(() => parseSafetensorsBytes(b, f), { cls, file: f, names });
  const ok = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const data8 = new Uint8Array(8);
  bad(setU64(craft(ok, data8), 0, 2n ** 63n), FormatError, 'header length', /runs past the end/);
  bad(setU64(craft(ok, data8), 0, 2n ** 32n + 8n), FormatError, 'header length');
  bad(setU64(craft(ok, data8), 0, 0), FormatError, 'header');
  // data_offsets out of range, reversed, overlapping, leaving a gap; not integers
  bad(craft({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 16] } }, data8), TensorError, "tensor 'a'", /out of range/);
  bad(craft({ a: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, data8), TensorError, "tensor 'a'", /end before they begin/);
  bad(craft({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, data8), TensorError, /tensor '[ab]'/, /overlap/);
  bad(craft({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, data8), TensorError, "tensor 'a'", /gap/);
  bad(craft({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 2 ** 53 + 2] } }, data8), TensorError, "tensor 'a'", 'data_offsets');
  bad(craft({ a: { dtype: 'F32', shape: [2], data_offsets: [-8, 0] } }, data8), TensorError, "tensor 'a'", 'data_offsets');
  bad(craft({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8.5] } }, data8), TensorError, "tensor 'a'", 'data_offsets');
  // shape product vs the byte range, incl. shapes of 4 GiB, 16 GiB and more than 2^53 elements
  bad(craft({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, data8), TensorError, "tensor 'a'", /needs 12/);
  bad(craft({ a: { dtype: 'F32', shape: [1 << 30], data_offsets: [0, 2 ** 32] } }, data8), TensorError, "tensor 'a'", /out of range/);
  bad(craft({ a: { dtype: 'F32', shape: [65536, 65536], data_offsets: [0, 8] } }, data8), TensorError, "tensor 'a'", /needs 17179869184/);
  bad(craft({ a: { dtype: 'F32', shape: [2 ** 20, 2 ** 20, 2 ** 20, 2 ** 20], data_offsets: [0, 8] } }, data8), TensorError, "tensor 'a'", /too many elements/);
  bad(craft({ a: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, data8), TensorError, "tensor 'a'", 'shape');
  // dtype unknown or not a string; duplicate names (JSON.parse alone would keep the last)
  bad(craft({ a: { dtype: 'F128', shape: [2], data_offsets: [0, 8] } }, data8), UnsupportedDTypeError, "tensor 'a'", 'F128');
  bad(craft({ a: { dtype: 7, shape: [2], data_offsets: [0, 8] } }, data8), TensorError, "tensor 'a'", 'dtype');
  bad(craft('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', data8), FormatError, 'header', /key "a" appears twice/);
  bad(craft({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, __metadata__: { k: 5 } }, data8), FormatError, '__metadata__.k');
  bad(craft('[1, 2]', data8), FormatError, 'header');
});

test('header JSON: syntax errors by line and column without quoting the text; bounded nesting', () => {
  const f = 'h.safetensors';
  const secret = 'SECRET-TOKEN-9f8e7d';
  const e = throwsWith(() => parseSafetensorsBytes(craft(`{"a": {"dtype": "F32",\n "${secret}": tru}}`), f), { cls: FormatError, file: f, names: ['header', /line 2, column \d+/], not: [secret, 'tru}'] });
  assert.match(e.message, /is not valid JSON/);
  throwsWith(() => parseSafetensorsBytes(craft(`{"${secret}": ["x",`), f), { cls: FormatError, file: f, names: [/unexpected end/, /line 1/], not: [secret] });
  throwsWith(() => parseSafetensorsBytes(craft(`${secret}`), f), { cls: FormatError, file: f, names: ['header'], not: [secret, 'SECRET'] });
  const deep = `{"__metadata__": ${'['.repeat(100000)}${']'.repeat(100000)}}`;
  throwsWith(() => parseSafetensorsBytes(craft(deep), f), { cls: FormatError, file: f, names: ['header', /nesting deeper than 8 levels/] });
});

test('a path that is a directory, a device or a FIFO is a clear error, before it is opened', async (t) => {
  const dir = tempDir(t);
  mkdirSync(path.join(dir, 'd.safetensors'));
  await rejectsWith(SafetensorsFile.open(path.join(dir, 'd.safetensors')), { cls: IoError, file: 'd.safetensors', names: ['is a directory'] });
  symlinkSync('/dev/zero', path.join(dir, 'z.safetensors'));
  await rejectsWith(SafetensorsFile.open(path.join(dir, 'z.safetensors')), { cls: IoError, file: 'z.safetensors', names: ['not a regular file'] });
  execFileSync('mkfifo', [path.join(dir, 'f.safetensors')]);
  await rejectsWith(SafetensorsFile.open(path.join(dir, 'f.safetensors')), { cls: IoError, file: 'f.safetensors', names: ['not a regular file'] });
  await rejectsWith(SafetensorsFile.open(path.join(dir, 'none.safetensors')), { cls: IoError, file: 'none.safetensors', names: ['does not exist'] });
});

// ---- HF model directories -------------------------------------------------------------------

/** An HF directory from llama2.c's reference export: config from the checkpoint's header, weights from its HF safetensors. */
async function hfDir(t: { after: (fn: () => void) => void }, config?: Record<string, unknown>): Promise<{ dir: string; config: Record<string, unknown>; tensors: RawTensor[] }> {
  const dir = tempDir(t);
  const ck = await readLlama2c(ioFixture('llama2c_unshared_v1.bin'));
  const cfg = config ?? ck.config;
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
  copyFileSync(ioFixture('llama2c_unshared_hf.safetensors'), path.join(dir, 'model.safetensors'));
  return { dir, config: ck.config, tensors: parseSafetensorsBytes(new Uint8Array(readFileSync(ioFixture('llama2c_unshared_hf.safetensors')))).tensors };
}

test('config.json: huge declared sizes are refused by field, fast and without allocating', async (t) => {
  const { dir, config } = await hfDir(t);
  const cfgFile = path.join(dir, 'config.json');
  const heap0 = heapStats();
  const rss0 = rss();
  const t0 = performance.now();
  for (const [field, v, re] of [
    ['num_hidden_layers', 1e8, /more than the limit of 4096/],
    ['hidden_size', 1e12, /more than the limit/],
    ['intermediate_size', 2 ** 40, /more than the limit/],
    ['vocab_size', 1e9, /more than the limit/],
    ['num_attention_heads', 3, /does not divide hidden_size/],
    ['num_key_value_heads', 5, /does not divide num_attention_heads/],
    ['max_position_embeddings', 2 ** 40, /more than the limit/],
    ['hidden_size', -64, /positive integer/],
    ['num_hidden_layers', 'x'.repeat(100000), /positive integer/],
  ] as const) {
    writeFileSync(cfgFile, JSON.stringify({ ...config, [field]: v }));
    const e = await rejectsWith(loadModel(dir), { cls: [ConfigFieldError], file: 'config.json', names: [field, re] }, `${field} = ${String(v).slice(0, 20)}`);
    assert.ok(e.message.length < 400, `a short message: ${e.message.length} characters`);
  }
  assert.ok(performance.now() - t0 < 5000, 'rejected in well under a second each');
  assert.ok(rss() - rss0 < 256 << 20, `RSS grew by ${((rss() - rss0) / 2 ** 20).toFixed(0)} MB`);
  assert.equal(heapStats().inUse, heap0.inUse, 'nothing allocated on the heap');
});

test('a config whose tensors are not checked by family (qwen2) but describes a far larger model: refused by the heap budget, nothing leaks', async (t) => {
  const { dir, config } = await hfDir(t);
  const heap0 = heapStats();
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, model_type: 'qwen2', architectures: ['Qwen2ForCausalLM'], hidden_size: 4096, num_attention_heads: 32, num_key_value_heads: 32, intermediate_size: 11008, num_hidden_layers: 64 }));
  await rejectsWith(loadModel(dir), { cls: ConfigFieldError, file: 'config.json', names: [/describes a model larger than the weights in .*model\.safetensors/] });
  const h = heapStats();
  assert.equal(h.inUse, heap0.inUse, 'the half-built model was released');
  assert.ok(h.memoryBytes - heap0.memoryBytes < 512 << 20, `the heap grew by ${h.memoryBytes - heap0.memoryBytes} bytes`);
});

test('config.json that is a directory, a device, a FIFO or not JSON: clear errors that never quote it', async (t) => {
  const { dir } = await hfDir(t);
  const cfgFile = path.join(dir, 'config.json');
  const { rmSync } = await import('node:fs');
  rmSync(cfgFile);
  mkdirSync(cfgFile);
  await rejectsWith(loadModel(dir), { cls: IoError, file: 'config.json', names: ['is a directory'] });
  rmSync(cfgFile, { recursive: true });
  symlinkSync('/dev/zero', cfgFile);
  await rejectsWith(loadModel(dir), { cls: IoError, file: 'config.json', names: ['not a regular file'] });
  rmSync(cfgFile);
  execFileSync('mkfifo', [cfgFile]);
  await rejectsWith(loadModel(dir), { cls: IoError, file: 'config.json', names: ['not a regular file'] });
  rmSync(cfgFile);
  // a symlink to a file that is not JSON (what leaked into a server's 500): position only
  const target = path.join(dir, 'secret.txt');
  writeFileSync(target, 'root:x:0:0:SECRET-LINE\nsecond line\n');
  symlinkSync(target, cfgFile);
  await rejectsWith(loadModel(dir), { cls: ConfigFieldError, file: 'config.json', names: ['config', /not valid JSON: .* at line 1, column 1/], not: ['root', 'SECRET', 'second'] });
  rmSync(cfgFile);
  writeFileSync(cfgFile, '{\n  "hidden_size": 64,\n  "SECRET-KEY": [1, 2,, 3]\n}');
  await rejectsWith(loadModel(dir), { cls: ConfigFieldError, file: 'config.json', names: [/line 3, column 23/], not: ['SECRET'] });
  writeFileSync(cfgFile, '[1, 2]');
  await rejectsWith(loadModel(dir), { cls: ConfigFieldError, file: 'config.json', names: [/must be a JSON object/] });
  writeFileSync(cfgFile, `{"a": ${'['.repeat(200000)}${']'.repeat(200000)}}`);
  await rejectsWith(loadModel(dir), { cls: ConfigFieldError, file: 'config.json', names: [/nesting deeper than 64 levels/] });
});

/** The tensors with element `index` of tensor `name` set to `value` (as its dtype stores it). */
function poison(tensors: RawTensor[], name: string, index: number, value: number): RawTensor[] {
  return tensors.map((t) => {
    if (t.name !== name) return t;
    const data = t.data.slice();
    new DataView(data.buffer).setFloat32(index * 4, value, true);
    return { ...t, data };
  });
}

test('non-finite weights are refused naming the file, the tensor and the first bad index; allowNonFinite loads them', async (t) => {
  const { dir, config, tensors } = await hfDir(t);
  const st = path.join(dir, 'model.safetensors');
  const heap0 = heapStats().inUse;
  for (const [name, index, value, at] of [
    ['model.layers.1.mlp.down_proj.weight', 37, NaN, '[2, 5]'],
    ['model.embed_tokens.weight', 0, Infinity, '[0, 0]'],
    ['model.norm.weight', 7, -Infinity, null],
  ] as const) {
    writeFileSync(st, serializeSafetensors(poison(tensors, name, index, value), { format: 'pt' }));
    const e = await rejectsWith(loadModel(dir), { cls: NonFiniteWeightError, file: 'model.safetensors', names: [`tensor '${name}'`, `at index ${index}`, String(value)] });
    if (at) assert.ok(e.message.includes(at), e.message);
    assert.equal((e as NonFiniteWeightError).index, index);
    // the same bytes in memory
    throwsWith(() => modelFromBytes(config, serializeSafetensors(poison(tensors, name, index, value)), { source: 'w.safetensors' }), { cls: NonFiniteWeightError, file: 'w.safetensors', names: [name, `index ${index}`] });
  }
  assert.equal(heapStats().inUse, heap0, 'refused before the model was built');
  // allowed: by option, and process-wide (the CLI's --allow-nonfinite)
  const m = await loadModel(dir, { allowNonFinite: true });
  m.model.dispose();
  setAllowNonFinite(true);
  try { (await loadModel(dir)).model.dispose(); } finally { setAllowNonFinite(false); }
  // the raw reader (conversion tools) still reads such a file
  assert.equal((await readHfDir(dir)).tensors.length, tensors.length);
});
