// Mamba in GGUF (llama.cpp's `mamba` architecture): the round trip HF → GGUF → HF, the layout
// convert_hf_to_gguf.py's MambaModel writes (names, ne order, stored types, A = −exp(A_log),
// metadata keys), bad input, the readModelGguf / writeModelGguf dispatch, and the outside
// reference, node-llama-cpp (llama.cpp's prebuilt binary, skipped when it is not installed):
//   - its readGgufFileInfo reads our files with the same metadata and tensor infos;
//   - llama.cpp loads the tiny random Mamba we write and its next-token logits at every prompt
//     position and its 12 greedy tokens equal those of RefMamba (tiny_mamba.ts), a plain
//     sequential-scan forward pass over the HF weights. Files with A stored without the −exp or
//     with conv1d transposed change llama.cpp's logits (the check can fail).
// llama.cpp needs nothing special for Mamba in node-llama-cpp 3.22.1: a default context (its
// recurrent memory keeps the conv and ssm states in F32, one cell per sequence; no KV-cache types
// apply), a prompt evaluated in one batch with logits for every token, clearHistory to reset the
// states, evaluate(temperature 0) for the greedy tokens. It refuses files of models with
// in_proj/out_proj biases (use_bias: "wrong number of tensors") or without conv1d bias
// (use_conv_bias false: "missing tensor 'blk.0.ssm_conv1d.bias'"), which tslm still writes and reads.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  serializeMambaGguf, writeMambaGguf, readMambaGguf, readModelGguf, writeModelGguf, readLlamaGguf, serializeLlamaGguf,
  serializeGguf, readGguf, gv, toFloat32, fromFloat32, convertDType, mambaHfToGgufName, mambaGgufToHfName, mambaDims,
  ConfigFieldError, TensorError, MissingTensorError, UnexpectedTensorError,
} from '../../src/io/index.js';
import type { GgufValue, RawTensor, RawDType } from '../../src/io/index.js';
import { tempDir, rng, randTensor, tinyLlamaConfig, tinyLlamaTensors } from './util.js';
import { tinySpmTokenizer, argmax } from './tiny_llama.js';
import { tinyMambaConfig, tinyMambaTensors, RefMamba } from './tiny_mamba.js';
import { assertSameAsGgufFileInfo, evalWithLlamaCpp, logitGap } from './llamacpp_util.js';
import { loadNodeLlamaCpp } from '../../bench/peers/nlc.js';
import type { NodeLlamaCpp } from '../../bench/peers/nlc.js';

let nlc: NodeLlamaCpp | null = null;
let llama: NodeLlamaCpp | null = null;
let skip: string | false = false;
before(async () => {
  const r = await loadNodeLlamaCpp();
  if ('error' in r) skip = r.error;
  else ({ nlc, llama } = r);
});
after(async () => { await llama?.dispose(); });

const cfg = tinyMambaConfig(); // hidden 64, d_inner 128, state 16, conv 4, dt rank 4, 2 layers, vocab 300
const tensors = tinyMambaTensors(cfg, 7);
const tokenizer = tinySpmTokenizer(300);

/** Spacing of f32 values at x. */
function ulpF32(x: number): number {
  const a = Math.abs(Math.fround(x));
  if (a < 2 ** -126) return 2 ** -149;
  return 2 ** (Math.floor(Math.log2(a)) - 23);
}
/** The stored type convert_hf_to_gguf.py gives an HF Mamba tensor for a file type. */
function expectedDType(t: RawTensor, dtype: RawDType): RawDType {
  if (t.shape.length === 1 || /\.(conv1d\.weight|A_log)$/.test(t.name)) return 'F32';
  if (dtype === 'Q8_0' && t.shape[t.shape.length - 1] % 32 !== 0) return 'F16';
  return dtype;
}

test('round trip HF → GGUF → HF: config, tokenizer and every tensor exact, A_log within an ulp (+ f32 rounding of A)', async () => {
  const variants: Record<string, unknown>[] = [
    {}, { tie_word_embeddings: true }, { use_bias: true }, { use_conv_bias: false },
    { use_bias: true, use_conv_bias: false, tie_word_embeddings: true, expand: 3, intermediate_size: 192, state_size: 8, conv_kernel: 3, time_step_rank: 5 },
  ];
  let worstAlog = 0; // in units of the bound
  for (const over of variants) {
    const c = tinyMambaConfig(over);
    for (const dtype of ['F32', 'F16', 'BF16', 'Q8_0'] as const) {
      const ts = tinyMambaTensors(c, 3);
      const label = `${JSON.stringify(over)} ${dtype}`;
      const back = await readMambaGguf(serializeMambaGguf({ config: c, tensors: ts, tokenizer, dtype }));
      assert.deepEqual(back.config, c, label);
      assert.deepEqual(back.tokenizer!.tokens, tokenizer.tokens);
      assert.deepEqual(Array.from(back.tokenizer!.scores!), Array.from(tokenizer.scores!));
      assert.deepEqual(Array.from(back.tokenizer!.tokenTypes!), Array.from(tokenizer.tokenTypes!));
      assert.deepEqual([back.tokenizer!.bosId, back.tokenizer!.eosId, back.tokenizer!.unkId, back.tokenizer!.addBos], [1, 2, 0, true]);
      assert.deepEqual(back.tensors.map((x) => x.name), ts.map((x) => x.name), label);
      for (const [i, orig] of ts.entries()) {
        const got = back.tensors[i];
        assert.deepEqual(got.shape, orig.shape, `${label} ${orig.name}`);
        assert.equal(got.dtype, expectedDType(orig, dtype), `${label} ${orig.name}`);
        if (orig.name.endsWith('.A_log')) {
          // stored as A = −exp(A_log) in f32, read as log(−A): |Δ| ≤ 1 ulp of A_log + 2⁻²⁴ (A's relative rounding)
          const a = toFloat32(orig), b = toFloat32(got);
          for (let j = 0; j < a.length; j++) {
            const bound = ulpF32(a[j]) + 2 ** -24;
            const d = Math.abs(a[j] - b[j]);
            assert.ok(d <= bound, `${label} ${orig.name}[${j}]: ${a[j]} → ${b[j]}`);
            worstAlog = Math.max(worstAlog, d / bound);
          }
        } else {
          assert.ok(Buffer.from(got.data).equals(convertDType(orig, got.dtype).data), `${label} ${orig.name}: bytes differ`);
        }
      }
    }
  }
  assert.ok(worstAlog > 0, 'A_log went through exp and log: some values should have moved'); // (the bound holds, asserted above)
  // realistic A_log = log(1..N) exactly: within one ulp
  const c = tinyMambaConfig();
  const ts = tinyMambaTensors(c, 4).map((t) => (t.name.endsWith('.A_log') ? fromFloat32(t.name, t.shape, Float32Array.from({ length: 128 * 16 }, (_, i) => Math.log((i % 16) + 1))) : t));
  const back = await readMambaGguf(serializeMambaGguf({ config: c, tensors: ts, tokenizer }));
  for (const [i, t] of ts.entries()) {
    if (!t.name.endsWith('.A_log')) continue;
    const a = toFloat32(t), b = toFloat32(back.tensors[i]);
    for (let j = 0; j < a.length; j++) assert.ok(Math.abs(a[j] - b[j]) <= ulpF32(a[j]), `${t.name}[${j}]: ${a[j]} → ${b[j]}`);
  }
});

test('GGUF layout as convert_hf_to_gguf.py writes mamba: keys, names, ne order, stored types, ssm_a = −exp(A_log)', async () => {
  const g = await readGguf(serializeMambaGguf({ config: cfg, tensors, tokenizer, dtype: 'Q8_0', name: 'tiny' }));
  const md = (k: string) => { const v = g.metadata.get(k); assert.ok(v, k); return [v.type, v.value]; };
  assert.deepEqual(md('general.architecture'), ['string', 'mamba']);
  assert.deepEqual(md('general.name'), ['string', 'tiny']);
  assert.deepEqual(md('mamba.context_length'), ['u32', 2 ** 20]);
  assert.deepEqual(md('mamba.embedding_length'), ['u32', 64]);
  assert.deepEqual(md('mamba.feed_forward_length'), ['u32', 0]);
  assert.deepEqual(md('mamba.attention.head_count'), ['u32', 0]);
  assert.deepEqual(md('mamba.block_count'), ['u32', 2]);
  assert.deepEqual(md('mamba.ssm.conv_kernel'), ['u32', 4]);
  assert.deepEqual(md('mamba.ssm.inner_size'), ['u32', 128]);
  assert.deepEqual(md('mamba.ssm.state_size'), ['u32', 16]);
  assert.deepEqual(md('mamba.ssm.time_step_rank'), ['u32', 4]);
  assert.deepEqual(md('mamba.attention.layer_norm_rms_epsilon'), ['f32', Math.fround(1e-5)]);
  assert.deepEqual(md('mamba.ssm.dt_b_c_rms'), ['bool', false]);
  assert.deepEqual(md('mamba.vocab_size'), ['u32', 300]);
  assert.deepEqual(md('general.file_type'), ['u32', 7]); // LLAMA_FTYPE_MOSTLY_Q8_0
  assert.deepEqual(md('tokenizer.ggml.model'), ['string', 'llama']);
  const info = new Map(g.tensors.map((t) => [t.name, t]));
  // [name, ne (ggml order), type] for layer 0 and the globals
  const want: [string, number[], RawDType][] = [
    ['token_embd.weight', [64, 300], 'Q8_0'],
    ['blk.0.attn_norm.weight', [64], 'F32'],
    ['blk.0.ssm_in.weight', [64, 256], 'Q8_0'],
    ['blk.0.ssm_conv1d.weight', [4, 128], 'F32'],
    ['blk.0.ssm_conv1d.bias', [128], 'F32'],
    ['blk.0.ssm_x.weight', [128, 36], 'Q8_0'],
    ['blk.0.ssm_dt.weight', [4, 128], 'F16'], // rows of 4: not whole Q8_0 blocks
    ['blk.0.ssm_dt.bias', [128], 'F32'],
    ['blk.0.ssm_a', [16, 128], 'F32'],
    ['blk.0.ssm_d', [128], 'F32'],
    ['blk.0.ssm_out.weight', [128, 64], 'Q8_0'],
    ['output_norm.weight', [64], 'F32'],
    ['output.weight', [64, 300], 'Q8_0'],
  ];
  for (const [name, ne, type] of want) {
    const t = info.get(name);
    assert.ok(t, name);
    assert.deepEqual([...t.shape].reverse(), ne, name);
    assert.equal(t.dtype, type, name);
  }
  assert.equal(g.tensors.length, 1 + 2 * 10 + 2);
  const byHf = new Map(tensors.map((t) => [t.name, t]));
  const aLog = toFloat32(byHf.get('backbone.layers.1.mixer.A_log')!);
  const a = toFloat32(info.get('blk.1.ssm_a')!);
  for (let i = 0; i < a.length; i++) assert.equal(a[i], Math.fround(-Math.exp(aLog[i])), `ssm_a[${i}]`);
  // conv1d (I, 1, K) squeezed to (I, K): the same bytes
  assert.deepEqual(info.get('blk.1.ssm_conv1d.weight')!.data, byHf.get('backbone.layers.1.mixer.conv1d.weight')!.data);
  // the name maps are inverse, and cover exactly the tensors
  for (const t of tensors) assert.equal(mambaGgufToHfName(mambaHfToGgufName(t.name)!), t.name);
  assert.equal(mambaHfToGgufName('model.layers.0.mlp.up_proj.weight'), undefined);
  // tied: no output.weight (llama.cpp falls back to token_embd)
  const tc = tinyMambaConfig({ tie_word_embeddings: true });
  const tied = await readGguf(serializeMambaGguf({ config: tc, tensors: tinyMambaTensors(tc, 1), tokenizer }));
  assert.ok(!tied.tensors.some((t) => t.name === 'output.weight'));
  // an lm_head beside a tied config is dropped, as the converter drops an output equal to token_embd
  const withHead = await readGguf(serializeMambaGguf({ config: tc, tensors: [...tinyMambaTensors(tc, 1), randTensor('lm_head.weight', [300, 64], rng(2))], tokenizer }));
  assert.ok(!withHead.tensors.some((t) => t.name === 'output.weight'));
});

test('MambaConfig defaults: time_step_rank "auto" = ⌈hidden/16⌉, expand 2, state 16, conv 4, tied, conv bias', async () => {
  const minimal = { model_type: 'mamba', hidden_size: 40, num_hidden_layers: 1, vocab_size: 300 };
  const d = mambaDims({ ...minimal, time_step_rank: 'auto' });
  assert.deepEqual(d, { hidden: 40, inner: 80, expand: 2, state: 16, convKernel: 4, dtRank: 3, layers: 1, vocab: 300, eps: 1e-5, useBias: false, useConvBias: true, tied: true });
  const full = { ...tinyMambaConfig({ hidden_size: 40, intermediate_size: 80, time_step_rank: 3, state_size: 16, num_hidden_layers: 1, tie_word_embeddings: true }) };
  const ts = tinyMambaTensors(full, 5);
  const back = await readMambaGguf(serializeMambaGguf({ config: minimal, tensors: ts, tokenizer }));
  assert.deepEqual(back.config, full);
});

test('bad Mamba input: missing/extra/misshapen tensors, d_inner ≠ expand × hidden, wrong keys and architectures', async (t) => {
  const rejW = (over: Record<string, unknown>, ts: RawTensor[], re: RegExp, tok = tokenizer) =>
    assert.throws(() => serializeMambaGguf({ config: { ...cfg, ...over }, tensors: ts, tokenizer: tok }), (e: unknown) => { assert.match((e as Error).message, re); return true; });
  rejW({}, tensors.filter((x) => x.name !== 'backbone.layers.1.mixer.D'), /<memory>: tensor 'backbone\.layers\.1\.mixer\.D': missing/);
  rejW({}, [...tensors, randTensor('backbone.layers.0.mixer.in_proj.bias', [256], rng(1))], /tensor 'backbone\.layers\.0\.mixer\.in_proj\.bias': unexpected/);
  rejW({}, tensors.map((x) => (x.name.endsWith('0.mixer.conv1d.weight') ? { ...x, shape: [128, 4] } : x)), /tensor 'backbone\.layers\.0\.mixer\.conv1d\.weight': shape \[128, 4\] does not match the config's \[128, 1, 4\]/);
  rejW({}, tensors.map((x) => (x.name.endsWith('0.mixer.A_log') ? randTensor(x.name, [16, 128], rng(1)) : x)), /tensor 'backbone\.layers\.0\.mixer\.A_log': shape \[16, 128\] does not match the config's \[128, 16\]/);
  rejW({ intermediate_size: 100 }, tensors, /intermediate_size: 100 ≠ expand × hidden_size = 2 × 64 = 128/);
  rejW({ model_type: 'falcon_mamba' }, tensors, /model_type: expected "mamba", got "falcon_mamba" \(Falcon-Mamba/);
  rejW({ use_bias: 'no' }, tensors, /use_bias: must be a boolean, got "no"/);
  rejW({}, tensors, /tokenizer\.ggml\.tokens: has 299 tokens but vocab_size is 300/, tinySpmTokenizer(299));
  const dir = tempDir(t);
  await assert.rejects(writeMambaGguf(path.join(dir, 'x.gguf'), { config: { ...cfg, state_size: 0 }, tensors, tokenizer }), /x\.gguf: state_size: must be a positive integer, got 0/);

  // reading: edit a good file's metadata or tensors
  const g = await readGguf(serializeMambaGguf({ config: cfg, tensors, tokenizer }));
  const rewrite = (edit: (md: Map<string, GgufValue>, ts: RawTensor[]) => void) => {
    const md = new Map(g.metadata);
    const ts = [...g.tensors];
    edit(md, ts);
    return serializeGguf({ metadata: md, tensors: ts });
  };
  const replace = (ts: RawTensor[], x: RawTensor) => { ts[ts.findIndex((y) => y.name === x.name)] = x; };
  const rej = async (bytes: Uint8Array, cls: Function, re: RegExp) => {
    for (const read of [() => readMambaGguf(bytes, { label: 'm.gguf' }), () => readModelGguf(bytes, { label: 'm.gguf' })]) {
      await assert.rejects(read(), (e: unknown) => {
        assert.ok(e instanceof cls, `${(e as Error).name}: ${(e as Error).message}`);
        assert.match((e as Error).message, re);
        return true;
      });
    }
  };
  await rej(rewrite((md) => md.delete('mamba.ssm.state_size')), ConfigFieldError, /^m\.gguf: mamba\.ssm\.state_size: is missing/);
  await rej(rewrite((md) => md.set('mamba.ssm.conv_kernel', gv.f32(4))), ConfigFieldError, /^m\.gguf: mamba\.ssm\.conv_kernel: must be an integer, got type f32/);
  await rej(rewrite((md) => md.set('mamba.ssm.inner_size', gv.u32(100))), ConfigFieldError, /^m\.gguf: mamba\.ssm\.inner_size: 100 is not a multiple of mamba\.embedding_length 64/);
  await rej(rewrite((md) => md.set('mamba.ssm.dt_b_c_rms', gv.bool(true))), ConfigFieldError, /^m\.gguf: mamba\.ssm\.dt_b_c_rms: is true: Falcon-Mamba/);
  // tensors that disagree with the metadata: named in the file's (GGUF) terms, row-major shapes
  await rej(rewrite((md) => md.set('mamba.ssm.state_size', gv.u32(8))), TensorError, /^m\.gguf: tensor 'blk\.0\.ssm_x\.weight': shape \[36, 128\] does not match the config's \[20, 128\]/);
  await rej(rewrite((md) => md.set('mamba.ssm.inner_size', gv.u32(192))), TensorError, /^m\.gguf: tensor 'blk\.0\.ssm_in\.weight': shape \[256, 64\] does not match the config's \[384, 64\]/);
  await rej(rewrite((_, ts) => replace(ts, randTensor('blk.1.ssm_conv1d.weight', [4, 128], rng(1)))), TensorError, /tensor 'blk\.1\.ssm_conv1d\.weight': shape \[4, 128\] does not match the config's \[128, 4\]/);
  await rej(rewrite((_, ts) => ts.splice(ts.findIndex((x) => x.name === 'blk.1.ssm_dt.bias'), 1)), MissingTensorError, /^m\.gguf: tensor 'blk\.1\.ssm_dt\.bias': missing/);
  await rej(rewrite((_, ts) => ts.push(randTensor('blk.0.attn_q.weight', [64, 64], rng(1)))), UnexpectedTensorError, /^m\.gguf: tensor 'blk\.0\.attn_q\.weight': unexpected/);
  await rej(rewrite((_, ts) => ts.push(randTensor('blk.2.ssm_d', [128], rng(1)))), UnexpectedTensorError, /tensor 'blk\.2\.ssm_d': unexpected/);
  await rej(rewrite((_, ts) => replace(ts, fromFloat32('blk.0.ssm_a', [128, 16], new Float32Array(2048).fill(0.5)))), TensorError, /^m\.gguf: tensor 'blk\.0\.ssm_a': A = −exp\(A_log\) must be negative, got 0\.5 at index 0/);
  await rej(rewrite((md) => md.set('tokenizer.ggml.tokens', gv.strings(tokenizer.tokens.slice(0, 299)))), ConfigFieldError, /tokenizer\.ggml\.tokens: has 299 tokens but vocab_size is 300/);
  // architectures
  await assert.rejects(readMambaGguf(rewrite((md) => md.set('general.architecture', gv.str('llama'))), { label: 'm.gguf' }),
    (e: unknown) => e instanceof ConfigFieldError && /^m\.gguf: general\.architecture: expected "mamba", got "llama"/.test((e as Error).message));
  await assert.rejects(readModelGguf(rewrite((md) => md.set('general.architecture', gv.str('rwkv6'))), { label: 'm.gguf' }),
    (e: unknown) => e instanceof ConfigFieldError && /^m\.gguf: general\.architecture: "rwkv6" is not supported \(tslm reads llama, mamba, qwen2moe\)/.test((e as Error).message));
  await assert.rejects(readModelGguf(rewrite((md) => md.delete('general.architecture')), { label: 'm.gguf' }), /m\.gguf: general\.architecture: is missing/);
  await assert.rejects(writeModelGguf(path.join(dir, 'y.gguf'), { config: { ...cfg, model_type: 'gpt2' }, tensors, tokenizer }), /y\.gguf: model_type: "gpt2" has no GGUF writer/);
});

test('readModelGguf / writeModelGguf dispatch on general.architecture / model_type', async (t) => {
  const dir = tempDir(t);
  const lc = tinyLlamaConfig();
  const lts = tinyLlamaTensors(lc, 2);
  const lp = path.join(dir, 'l.gguf'), mp = path.join(dir, 'm.gguf');
  await writeModelGguf(lp, { config: lc, tensors: lts, tokenizer, dtype: 'F16' });
  await writeModelGguf(mp, { config: cfg, tensors, tokenizer, dtype: 'F16' });
  const l = await readModelGguf(lp), m = await readModelGguf(mp);
  assert.equal(l.architecture, 'llama');
  assert.equal(m.architecture, 'mamba');
  const lw = await readLlamaGguf(serializeLlamaGguf({ config: lc, tensors: lts, tokenizer, dtype: 'F16' }));
  assert.deepEqual(l.config, lw.config);
  assert.deepEqual(l.tensors, lw.tensors);
  const mw = await readMambaGguf(serializeMambaGguf({ config: cfg, tensors, tokenizer, dtype: 'F16' }));
  assert.deepEqual(m.config, mw.config);
  assert.deepEqual(m.tensors, mw.tensors);
});

// ---- node-llama-cpp -------------------------------------------------------------------------

test('node-llama-cpp readGgufFileInfo parses our Mamba GGUF: same metadata, same tensor infos', async (t) => {
  if (skip) return t.skip(skip);
  const dir = tempDir(t);
  for (const [over, dtype] of [[{}, 'F32'], [{}, 'F16'], [{ tie_word_embeddings: true }, 'Q8_0'], [{ use_bias: true, use_conv_bias: false }, 'BF16']] as const) {
    const c = tinyMambaConfig(over);
    const p = path.join(dir, `tiny-${dtype}.gguf`);
    await writeMambaGguf(p, { config: c, tensors: tinyMambaTensors(c, 1), tokenizer, dtype, name: 'tiny' });
    await assertSameAsGgufFileInfo(nlc, p);
  }
});

/** RefMamba's logits after each prompt token and its greedy continuation (ending before </s>, as node-llama-cpp's evaluate does). */
function reference(ts: RawTensor[], prompt: number[], nGen: number, c = cfg): { logits: Float64Array[]; greedy: number[] } {
  const ref = new RefMamba(c as any, ts);
  const logits = prompt.map((tok) => ref.step(tok));
  const greedy: number[] = [];
  let last = logits[logits.length - 1];
  for (let i = 0; i < nGen; i++) {
    const tok = argmax(last);
    if (tok === tokenizer.eosId) break;
    greedy.push(tok);
    if (i + 1 < nGen) last = ref.step(tok);
  }
  return { logits, greedy };
}

test('llama.cpp loads our Mamba GGUF (F32, F16, Q8_0): same logits and greedy tokens as the reference forward', async (t) => {
  if (skip) return t.skip(skip);
  const dir = tempDir(t);
  const prompt = [1, 270, 5, 290, 100, 33, 261, 297]; // along the reference's greedy path its top two logits differ by ≥ 0.13, and no </s>
  const nGen = 12;
  for (const dtype of ['F32', 'F16', 'Q8_0'] as const) {
    const p = path.join(dir, `tiny-${dtype}.gguf`);
    await writeMambaGguf(p, { config: cfg, tensors, tokenizer, dtype });
    // the reference runs on the HF weights rounded as the file stores them (not read back by our reader)
    const ref = reference(tensors.map((x) => convertDType(x, expectedDType(x, dtype))), prompt, nGen);
    const got = await evalWithLlamaCpp(llama, p, prompt, nGen, 300);
    // F32: only summation order differs (seen: ~5e-7). F16 / Q8_0 matrices: llama.cpp also rounds
    // the activations to f16 / Q8_0 blocks inside those matmuls (seen: ~1e-3 / ~3e-2).
    const tol = { F32: 1e-4, F16: 1e-2, Q8_0: 6e-2 }[dtype];
    for (let i = 0; i < prompt.length; i++) {
      const { worst, scale } = logitGap(got.logits[i], ref.logits[i]);
      assert.ok(worst <= tol * Math.max(1, scale), `${dtype} position ${i}: max |Δlogit| ${worst} (logit scale ${scale})`);
    }
    if (dtype === 'F32') {
      assert.equal(ref.greedy.length, nGen);
      assert.deepEqual(got.greedy, ref.greedy, 'greedy tokens');
    }
    else {
      // greedy paths may only part where the reference's top two logits are closer than the tolerance
      const agree = got.greedy.findIndex((x, i) => x !== ref.greedy[i]);
      assert.ok(agree === -1 || agree >= 4, `${dtype}: greedy tokens ${got.greedy} vs ${ref.greedy}`);
    }
    t.diagnostic(`${dtype}: llama.cpp greedy ${got.greedy.join(' ')}; max |Δlogit| ${Math.max(...got.logits.map((l, i) => logitGap(l, ref.logits[i]).worst)).toExponential(2)}`);
  }
  // the check is sensitive: a file with A = A_log (no −exp) or with conv1d's (I, K) stored transposed is another model to llama.cpp
  const g = await readGguf(path.join(dir, 'tiny-F32.gguf'));
  const ref = reference(tensors, prompt, nGen);
  const last = prompt.length - 1;
  const corrupt: Record<string, (x: RawTensor) => RawTensor> = {
    'A without −exp': (x) => (x.name.endsWith('.ssm_a') ? fromFloat32(x.name, x.shape, toFloat32(x).map((v) => Math.log(-v))) : x),
    'conv1d transposed': (x) => {
      if (!x.name.endsWith('.ssm_conv1d.weight')) return x;
      const [I, K] = x.shape, v = toFloat32(x), w = new Float32Array(v.length);
      for (let c = 0; c < I; c++) for (let k = 0; k < K; k++) w[k * I + c] = v[c * K + k];
      return fromFloat32(x.name, x.shape, w);
    },
  };
  for (const [what, edit] of Object.entries(corrupt)) {
    const wrong = path.join(dir, 'wrong.gguf');
    writeFileSync(wrong, serializeGguf({ metadata: g.metadata, tensors: g.tensors.map(edit) }));
    const bad = await evalWithLlamaCpp(llama, wrong, prompt, nGen, 300);
    const { worst } = logitGap(bad.logits[last], ref.logits[last]);
    assert.ok(worst > 0.05, `${what} should change llama.cpp's logits (max |Δ| ${worst})`);
    assert.notDeepEqual(bad.greedy, ref.greedy, `${what} should change llama.cpp's greedy tokens`);
  }
});

test('llama.cpp: tied embeddings (no output.weight) use token_embd; use_bias / no conv bias files are refused', async (t) => {
  if (skip) return t.skip(skip);
  const dir = tempDir(t);
  const tc = tinyMambaConfig({ tie_word_embeddings: true });
  const ts = tinyMambaTensors(tc, 9);
  const p = path.join(dir, 'tied.gguf');
  await writeMambaGguf(p, { config: tc, tensors: ts, tokenizer });
  const prompt = [1, 280, 281, 40];
  const ref = reference(ts, prompt, 6, tc);
  const got = await evalWithLlamaCpp(llama, p, prompt, 6, 300);
  for (let i = 0; i < prompt.length; i++) {
    const { worst, scale } = logitGap(got.logits[i], ref.logits[i]);
    assert.ok(worst <= 1e-4 * Math.max(1, scale), `position ${i}: max |Δlogit| ${worst} (logit scale ${scale})`);
  }
  assert.deepEqual(got.greedy, ref.greedy);
  for (const over of [{ use_bias: true }, { use_conv_bias: false }]) {
    const c = tinyMambaConfig(over);
    const q = path.join(dir, 'refused.gguf');
    await writeMambaGguf(q, { config: c, tensors: tinyMambaTensors(c, 1), tokenizer });
    await assert.rejects(llama!.loadModel({ modelPath: q, gpuLayers: 0 }), JSON.stringify(over));
    assert.deepEqual((await readMambaGguf(q)).config, c); // tslm still reads them
  }
});
