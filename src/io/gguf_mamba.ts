// Mamba (HF MambaForCausalLM) in GGUF as llama.cpp's `mamba` architecture expects it, the way
// convert_hf_to_gguf.py's MambaModel writes it:
//
//   HF (row-major shape)                          GGUF (row-major shape; ne[] is reversed)   stored as
//   backbone.embeddings.weight     (V, H)         token_embd.weight         (V, H)           dtype
//   backbone.layers.N.norm.weight  (H)            blk.N.attn_norm.weight    (H)              F32
//   ….mixer.in_proj.weight         (2I, H)        blk.N.ssm_in.weight       (2I, H)          dtype
//   ….mixer.in_proj.bias           (2I)           blk.N.ssm_in.bias         (2I)             F32   (*)
//   ….mixer.conv1d.weight          (I, 1, K)      blk.N.ssm_conv1d.weight   (I, K) squeezed  F32
//   ….mixer.conv1d.bias            (I)            blk.N.ssm_conv1d.bias     (I)              F32   (**)
//   ….mixer.x_proj.weight          (R+2N, I)      blk.N.ssm_x.weight        (R+2N, I)        dtype
//   ….mixer.dt_proj.weight         (I, R)         blk.N.ssm_dt.weight       (I, R)           dtype
//   ….mixer.dt_proj.bias           (I)            blk.N.ssm_dt.bias         (I)              F32
//   ….mixer.A_log                  (I, N)         blk.N.ssm_a               (I, N) = −exp(A_log)  F32
//   ….mixer.D                      (I)            blk.N.ssm_d               (I)              F32
//   ….mixer.out_proj.weight        (H, I)         blk.N.ssm_out.weight      (H, I)           dtype
//   ….mixer.out_proj.bias          (H)            blk.N.ssm_out.bias        (H)              F32   (*)
//   backbone.norm_f.weight         (H)            output_norm.weight        (H)              F32
//   lm_head.weight                 (V, H)         output.weight             (V, H)           dtype, absent when tied
//
// (V vocab, H hidden, I d_inner = expand·H, K conv_kernel, N state_size, R time_step_rank;
// (*) only with use_bias, (**) only with use_conv_bias: see below for what llama.cpp loads.)
// Metadata: general.architecture "mamba", mamba.{context_length (2^20, as the converter: Mamba has
// no trained context), embedding_length, feed_forward_length 0, attention.head_count 0,
// block_count, ssm.conv_kernel, ssm.inner_size, ssm.state_size, ssm.time_step_rank,
// attention.layer_norm_rms_epsilon, ssm.dt_b_c_rms false (true is Falcon-Mamba), vocab_size},
// general.file_type and the tokenizer.ggml.* keys.
//
// What llama.cpp itself loads: it requires ssm_conv1d.bias and ssm_dt.bias and has no ssm_in /
// ssm_out biases, so a model with use_bias or without use_conv_bias is written (names as the
// converter's tensor map gives them) and read back by tslm, but llama.cpp refuses it. Its
// ggml_ssm_conv / ggml_ssm_scan take F32 conv weights, A and D, hence those stay F32 whatever
// the matrices' dtype (the converter and llama-quantize keep them F32 too). Q8_0 rows that are
// not whole 32-blocks (ssm_dt.weight with R < 32) fall back to F16.
//
// A round trip is exact except A_log, stored as −exp(A_log) in f32 and read back as log(−A):
// within an ulp of A_log plus the f32 rounding of A (relative 2⁻²⁴, i.e. 2⁻²⁴ absolute in A_log).
import { ConfigFieldError, TensorError } from './errors.js';
import { checkTensorShapes, convertDType, fromFloat32, toFloat32 } from './dtypes.js';
import type { RawTensor } from './dtypes.js';
import { gv, serializeGguf, writeGguf } from './gguf.js';
import type { GgufFile, GgufValue } from './gguf.js';
import {
  checkGgufTokenizer, ggufMatrixDType, ggufMetadataHead, ggufMetadataTail, mdBool, mdFloat, mdInt, openGguf, readGgufTokenizer, shortF32, storedDType,
} from './gguf_arch.js';
import type { GgufModelInput, GgufTokenizer } from './gguf_arch.js';
import { checkMambaTensors, mambaDims, mambaTensorShapes } from './mamba.js';
import type { MambaDims } from './mamba.js';
import type { HfConfig } from './hf.js';

/** [HF suffix under backbone.layers.N., GGUF suffix under blk.N.], in the order tensors are written. */
const LAYER_MAP: [string, string][] = [
  ['norm.weight', 'attn_norm.weight'],
  ['mixer.in_proj.weight', 'ssm_in.weight'],
  ['mixer.in_proj.bias', 'ssm_in.bias'],
  ['mixer.conv1d.weight', 'ssm_conv1d.weight'],
  ['mixer.conv1d.bias', 'ssm_conv1d.bias'],
  ['mixer.x_proj.weight', 'ssm_x.weight'],
  ['mixer.dt_proj.weight', 'ssm_dt.weight'],
  ['mixer.dt_proj.bias', 'ssm_dt.bias'],
  ['mixer.A_log', 'ssm_a'],
  ['mixer.D', 'ssm_d'],
  ['mixer.out_proj.weight', 'ssm_out.weight'],
  ['mixer.out_proj.bias', 'ssm_out.bias'],
];
const GLOBAL_MAP: [string, string][] = [
  ['backbone.embeddings.weight', 'token_embd.weight'],
  ['backbone.norm_f.weight', 'output_norm.weight'],
  ['lm_head.weight', 'output.weight'],
];
/** GGUF tensors llama.cpp's ssm kernels take only in F32 (besides 1-D tensors and norms). */
const KEEP_F32 = /\.(ssm_conv1d\.weight|ssm_a|ssm_d)$/;

/** Context length written to mamba.context_length (convert_hf_to_gguf.py's arbitrary 2^20). */
export const MAMBA_GGUF_CONTEXT_LENGTH = 2 ** 20;

/** HF Mamba tensor name → llama.cpp GGUF name (undefined if not a Mamba tensor). */
export function mambaHfToGgufName(name: string): string | undefined {
  for (const [h, g] of GLOBAL_MAP) if (name === h) return g;
  const m = /^backbone\.layers\.(\d+)\.(.+)$/.exec(name);
  if (m) for (const [h, g] of LAYER_MAP) if (m[2] === h) return `blk.${m[1]}.${g}`;
  return undefined;
}
/** llama.cpp GGUF name → HF Mamba tensor name (undefined if not a Mamba tensor). */
export function mambaGgufToHfName(name: string): string | undefined {
  for (const [h, g] of GLOBAL_MAP) if (name === g) return h;
  const m = /^blk\.(\d+)\.(.+)$/.exec(name);
  if (m) for (const [h, g] of LAYER_MAP) if (m[2] === g) return `backbone.layers.${m[1]}.${h}`;
  return undefined;
}

/** Sort key of an HF Mamba name: embeddings, layers by index (LAYER_MAP order), norm_f, lm_head. */
function mambaOrder(a: string, b: string): number {
  const key = (n: string): [number, number, number] => {
    const g = GLOBAL_MAP.findIndex(([h]) => h === n);
    if (g === 0) return [0, 0, 0];
    if (g > 0) return [2, g, 0];
    const m = /^backbone\.layers\.(\d+)\.(.+)$/.exec(n);
    return m ? [1, Number(m[1]), LAYER_MAP.findIndex(([h]) => h === m[2])] : [3, 0, 0];
  };
  const [x, y] = [key(a), key(b)];
  return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
}

/** The GGUF names and row-major shapes of a Mamba model (output only when not tied). */
function ggufShapes(d: MambaDims): Map<string, number[]> {
  const m = new Map<string, number[]>();
  for (const [name, shape] of mambaTensorShapes(d)) {
    m.set(mambaHfToGgufName(name)!, name.endsWith('.conv1d.weight') ? [d.inner, d.convKernel] : shape);
  }
  return m;
}

/** A Mamba model for GGUF: an HF MambaConfig; matrices are the embeddings, in/x/dt/out projections and lm_head. */
export type WriteMambaGgufInput = GgufModelInput;

function buildMambaGguf(input: WriteMambaGgufInput, file: string): { metadata: Map<string, GgufValue>; tensors: RawTensor[] } {
  const cfg = input.config;
  const d0 = mambaDims(cfg, file);
  const dtype = ggufMatrixDType(input, file);
  const d = { ...d0, tied: d0.tied || !input.tensors.some((t) => t.name === 'lm_head.weight') };
  checkMambaTensors(file, input.tensors, d);
  checkGgufTokenizer(file, input.tokenizer, d.vocab);

  const md = ggufMetadataHead('mamba', input);
  md.set('mamba.context_length', gv.u32(MAMBA_GGUF_CONTEXT_LENGTH));
  md.set('mamba.embedding_length', gv.u32(d.hidden));
  md.set('mamba.feed_forward_length', gv.u32(0)); // unused, but llama.cpp reads them
  md.set('mamba.attention.head_count', gv.u32(0));
  md.set('mamba.block_count', gv.u32(d.layers));
  md.set('mamba.ssm.conv_kernel', gv.u32(d.convKernel));
  md.set('mamba.ssm.inner_size', gv.u32(d.inner));
  md.set('mamba.ssm.state_size', gv.u32(d.state));
  md.set('mamba.ssm.time_step_rank', gv.u32(d.dtRank));
  md.set('mamba.attention.layer_norm_rms_epsilon', gv.f32(d.eps));
  md.set('mamba.ssm.dt_b_c_rms', gv.bool(false));
  ggufMetadataTail(md, 'mamba', input, dtype, d.vocab);

  const ordered = input.tensors.filter((t) => !(d.tied && t.name === 'lm_head.weight')).sort((a, b) => mambaOrder(a.name, b.name));
  const tensors = ordered.map((t): RawTensor => {
    const name = mambaHfToGgufName(t.name)!;
    if (name.endsWith('.ssm_a')) {
      const a = toFloat32(t, file).map((x) => -Math.exp(x)); // A = −exp(A_log), rounded to f32 once
      return fromFloat32(name, [...t.shape], a, 'F32');
    }
    const shape = name.endsWith('.ssm_conv1d.weight') ? [d.inner, d.convKernel] : [...t.shape];
    const c = convertDType(t, storedDType(shape, dtype, KEEP_F32.test(name) || name.endsWith('_norm.weight')), file, input.quantize);
    return { name, dtype: c.dtype, shape, data: c.data };
  });
  return { metadata: md, tensors };
}

/** Write a Mamba model (HF MambaConfig + HF-named tensors) as a GGUF of llama.cpp's `mamba` architecture. */
export async function writeMambaGguf(path: string, input: WriteMambaGgufInput): Promise<void> {
  await writeGguf(path, buildMambaGguf(input, path));
}
export function serializeMambaGguf(input: WriteMambaGgufInput): Uint8Array {
  return serializeGguf(buildMambaGguf(input, '<memory>'));
}

export interface MambaGgufCheckpoint {
  /** An HF MambaConfig object. */
  config: HfConfig;
  /**
   * HF names and shapes (conv1d.weight (I, 1, K), A_log = log(−ssm_a) in F32), the file's dtypes
   * otherwise. lm_head.weight absent when tied.
   */
  tensors: RawTensor[];
  tokenizer: GgufTokenizer | null;
  metadata: Map<string, GgufValue>;
}

/** Read a `mamba`-architecture GGUF back to an HF MambaConfig + HF-named tensors + tokenizer. */
export async function readMambaGguf(src: string | Uint8Array, opts: { label?: string } = {}): Promise<MambaGgufCheckpoint> {
  const f = await openGguf(src, opts.label);
  try {
    return await mambaFromGguf(f);
  } finally {
    await f.close();
  }
}

/** The Mamba model of an open GGUF file (which the caller closes). */
export async function mambaFromGguf(f: GgufFile): Promise<MambaGgufCheckpoint> {
  const arch = f.get('general.architecture');
  if (arch !== 'mamba') throw new ConfigFieldError(f.file, 'general.architecture', `expected "mamba", got ${JSON.stringify(arch ?? null)}`);
  if (mdBool(f, 'mamba.ssm.dt_b_c_rms', false)) {
    throw new ConfigFieldError(f.file, 'mamba.ssm.dt_b_c_rms', 'is true: Falcon-Mamba (RMS-normalised dt, B and C) is not supported');
  }
  const hidden = mdInt(f, 'mamba.embedding_length');
  const inner = mdInt(f, 'mamba.ssm.inner_size');
  if (inner % hidden !== 0) {
    throw new ConfigFieldError(f.file, 'mamba.ssm.inner_size', `${inner} is not a multiple of mamba.embedding_length ${hidden} (HF MambaConfig has d_inner = expand × hidden_size, expand an integer)`);
  }
  const embd = f.tensors.find((t) => t.name === 'token_embd.weight');
  const tokens = f.get('tokenizer.ggml.tokens') as string[] | undefined;
  const vocab = mdInt(f, 'mamba.vocab_size', tokens?.length ?? embd?.shape[0]);
  const tokenizer = readGgufTokenizer(f);
  const has = (n: string) => f.tensors.some((t) => t.name === n);
  const config: HfConfig = {
    architectures: ['MambaForCausalLM'],
    model_type: 'mamba',
    hidden_size: hidden,
    intermediate_size: inner,
    expand: inner / hidden,
    state_size: mdInt(f, 'mamba.ssm.state_size'),
    conv_kernel: mdInt(f, 'mamba.ssm.conv_kernel'),
    time_step_rank: mdInt(f, 'mamba.ssm.time_step_rank'),
    num_hidden_layers: mdInt(f, 'mamba.block_count'),
    vocab_size: vocab,
    layer_norm_epsilon: shortF32(mdFloat(f, 'mamba.attention.layer_norm_rms_epsilon', 1e-5)),
    use_bias: has('blk.0.ssm_in.bias'),
    use_conv_bias: has('blk.0.ssm_conv1d.bias'),
    hidden_act: 'silu',
    tie_word_embeddings: !has('output.weight'),
  };
  if (tokenizer?.bosId !== undefined) config.bos_token_id = tokenizer.bosId;
  if (tokenizer?.eosId !== undefined) config.eos_token_id = tokenizer.eosId;
  if (tokenizer?.padId !== undefined) config.pad_token_id = tokenizer.padId;
  const d = mambaDims(config, f.file);
  // names and shapes as stored, against the metadata, before any reshaping
  checkTensorShapes(f.file, f.tensors, ggufShapes(d));
  if (tokenizer) checkGgufTokenizer(f.file, tokenizer, d.vocab);

  const tensors: RawTensor[] = [];
  for (const info of f.tensors) {
    const hf = mambaGgufToHfName(info.name)!; // every name was checked above
    const t = await f.read(info.name);
    if (info.name.endsWith('.ssm_a')) {
      const a = toFloat32(t, f.file);
      const bad = a.findIndex((x) => !(x < 0));
      if (bad >= 0) throw new TensorError(f.file, info.name, `A = −exp(A_log) must be negative, got ${a[bad]} at index ${bad}`);
      tensors.push(fromFloat32(hf, t.shape, a.map((x) => Math.log(-x)), 'F32'));
    } else if (info.name.endsWith('.ssm_conv1d.weight')) {
      tensors.push({ ...t, name: hf, shape: [d.inner, 1, d.convKernel] });
    } else {
      tensors.push({ ...t, name: hf });
    }
  }
  tensors.sort((a, b) => mambaOrder(a.name, b.name));
  return { config, tensors, tokenizer, metadata: f.metadata };
}
