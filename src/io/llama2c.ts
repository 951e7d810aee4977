// llama2.c checkpoints (karpathy/llama2.c export.py), all weights f32 little-endian:
//
// legacy (version 0): 7 int32 — dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
//   seq_len; a negative vocab_size means an unshared classifier. Then token_embedding_table,
//   rms_att_weight[L], wq[L], wk[L], wv[L], wo[L], rms_ffn_weight[L], w1[L], w2[L], w3[L],
//   rms_final_weight, freq_cis_real (seq_len × head_size/2), freq_cis_imag (same), and wcls
//   when unshared.
// version 1 ("ak42"): uint32 magic 0x616b3432, int32 version = 1, the same 7 int32 (vocab_size
//   positive), uint8 shared_classifier, zero padding to 256 bytes. Then rms_att_weight[L],
//   rms_ffn_weight[L], rms_final_weight, token_embedding_table, wq[L], wk[L], wv[L], wo[L],
//   w1[L], w2[L], w3[L], and wcls when unshared. No freq_cis.
//
// w1 = gate_proj, w2 = down_proj, w3 = up_proj. q/k rows are in Meta's interleaved RoPE layout
// (llama2.c's apply_rotary_emb pairs adjacent elements); export.py's hf_export applies
// transformers' permute. RoPE theta 10000 and RMSNorm eps 1e-5 are fixed by run.c.
import type { FileHandle } from 'node:fs/promises';
import { ByteReader, openRegularFile, readExactly, writeAll, writeAtomic } from './bytes.js';
import { ConfigFieldError, FormatError, MissingTensorError, TruncatedError, UnsupportedDTypeError } from './errors.js';
import { elementCount, toFloat32 } from './dtypes.js';
import type { RawTensor } from './dtypes.js';
import { checkLlamaTensors, convertQKLayout, llamaDims } from './llama.js';
import type { QKLayout } from './llama.js';
import type { HfConfig } from './hf.js';
import { overLimit } from '../models/config.js';

export const LLAMA2C_MAGIC = 0x616b3432;
export const LLAMA2C_V1_HEADER_BYTES = 256;
const LEGACY_HEADER_BYTES = 28;

export interface Llama2cHeader {
  version: 0 | 1;
  dim: number;
  hidden_dim: number;
  n_layers: number;
  n_heads: number;
  n_kv_heads: number;
  /** Always positive here; the legacy sign flag is in shared_classifier. */
  vocab_size: number;
  seq_len: number;
  shared_classifier: boolean;
}

/** The HF config field of each header field (their limits are CONFIG_LIMITS'). */
const HF_NAME = {
  dim: 'hidden_size', hidden_dim: 'intermediate_size', n_layers: 'num_hidden_layers', n_heads: 'num_attention_heads',
  n_kv_heads: 'num_key_value_heads', vocab_size: 'vocab_size', seq_len: 'max_position_embeddings',
} as const;

interface Slot { name: string; shape: number[]; offset: number }

/** The tensors of a checkpoint in file order, with byte offsets; freq_cis for legacy. */
function layout(h: Llama2cHeader, file: string): { slots: Slot[]; freq: Slot[]; end: number } {
  for (const k of ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'] as const) {
    if (!(h[k] > 0)) throw new ConfigFieldError(file, k, `must be positive, got ${h[k]}`);
    // Sane limits first: the per-layer lists below must not be built for n_layers 5e7.
    const max = overLimit(HF_NAME[k], h[k]);
    if (max !== null) throw new ConfigFieldError(file, k, `${h[k]} is more than the limit of ${max} (the header is damaged or not a llama2.c checkpoint)`);
  }
  if (h.dim % h.n_heads !== 0) throw new ConfigFieldError(file, 'n_heads', `${h.n_heads} does not divide dim ${h.dim}`);
  if (h.n_heads % h.n_kv_heads !== 0) throw new ConfigFieldError(file, 'n_kv_heads', `${h.n_kv_heads} does not divide n_heads ${h.n_heads}`);
  const hs = h.dim / h.n_heads;
  if (hs % 2 !== 0) throw new ConfigFieldError(file, 'n_heads', `head size ${hs} must be even for RoPE`);
  const kv = h.n_kv_heads * hs;
  const L = h.n_layers;
  const per = (f: (i: number) => [string, number[]]) => Array.from({ length: L }, (_, i) => f(i));
  const lp = (i: number) => `model.layers.${i}.`;
  const embed: [string, number[]] = ['model.embed_tokens.weight', [h.vocab_size, h.dim]];
  const attNorm = per((i) => [`${lp(i)}input_layernorm.weight`, [h.dim]]);
  const ffnNorm = per((i) => [`${lp(i)}post_attention_layernorm.weight`, [h.dim]]);
  const mats = [
    ...per((i) => [`${lp(i)}self_attn.q_proj.weight`, [h.dim, h.dim]]),
    ...per((i) => [`${lp(i)}self_attn.k_proj.weight`, [kv, h.dim]]),
    ...per((i) => [`${lp(i)}self_attn.v_proj.weight`, [kv, h.dim]]),
    ...per((i) => [`${lp(i)}self_attn.o_proj.weight`, [h.dim, h.dim]]),
  ];
  const ffn = [
    ...per((i) => [`${lp(i)}mlp.gate_proj.weight`, [h.hidden_dim, h.dim]]),
    ...per((i) => [`${lp(i)}mlp.down_proj.weight`, [h.dim, h.hidden_dim]]),
    ...per((i) => [`${lp(i)}mlp.up_proj.weight`, [h.hidden_dim, h.dim]]),
  ];
  const norm: [string, number[]] = ['model.norm.weight', [h.dim]];
  const cls: [string, number[]][] = h.shared_classifier ? [] : [['lm_head.weight', [h.vocab_size, h.dim]]];
  const freqs: [string, number[]][] = [['freq_cis_real', [h.seq_len, hs / 2]], ['freq_cis_imag', [h.seq_len, hs / 2]]];
  const order: [string, number[]][] = h.version === 0
    ? [embed, ...attNorm, ...mats, ...ffnNorm, ...ffn, norm, ...freqs, ...cls]
    : [...attNorm, ...ffnNorm, norm, embed, ...mats, ...ffn, ...cls];
  let off = h.version === 0 ? LEGACY_HEADER_BYTES : LLAMA2C_V1_HEADER_BYTES;
  const slots: Slot[] = [];
  const freq: Slot[] = [];
  for (const [name, shape] of order) {
    const s = { name, shape, offset: off };
    (name.startsWith('freq_cis') ? freq : slots).push(s);
    off += elementCount(shape) * 4;
    if (!Number.isSafeInteger(off)) throw new ConfigFieldError(file, 'header', 'dimensions describe an impossibly large model');
  }
  return { slots, freq, end: off };
}

/** Parse the header (the first 256 bytes suffice; `size` is the whole file's). */
export function parseLlama2cHeader(prefix: Uint8Array, size: number, file: string): Llama2cHeader {
  const r = new ByteReader(prefix, file, size);
  const first = r.u32('magic or dim');
  let version: 0 | 1 = 0;
  if (first === LLAMA2C_MAGIC) {
    const v = r.i32('version');
    if (v !== 1) throw new FormatError(file, 'version', v === 2 ? 'version 2 (Q8_0 groups) is not supported; export with --version 1' : `unknown llama2.c version ${v} (expected 1)`);
    version = 1;
  } else {
    r.pos = 0;
  }
  const f = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'].map((k) => r.i32(`header field ${k}`));
  let shared: boolean;
  let vocab = f[5];
  if (version === 0) {
    shared = vocab > 0;
    vocab = Math.abs(vocab);
  } else {
    const flag = r.u8('shared_classifier');
    if (flag > 1) throw new FormatError(file, 'shared_classifier', `must be 0 or 1, got ${flag}`);
    shared = flag === 1;
    r.need(LLAMA2C_V1_HEADER_BYTES - r.pos, 'header padding');
  }
  return { version, dim: f[0], hidden_dim: f[1], n_layers: f[2], n_heads: f[3], n_kv_heads: f[4], vocab_size: vocab, seq_len: f[6], shared_classifier: shared };
}

/** The HF LlamaConfig a llama2.c checkpoint corresponds to. */
export function llama2cToHfConfig(h: Llama2cHeader): HfConfig {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: h.dim,
    intermediate_size: h.hidden_dim,
    num_hidden_layers: h.n_layers,
    num_attention_heads: h.n_heads,
    num_key_value_heads: h.n_kv_heads,
    vocab_size: h.vocab_size,
    max_position_embeddings: h.seq_len,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    hidden_act: 'silu',
    tie_word_embeddings: h.shared_classifier,
    torch_dtype: 'float32',
  };
}

export interface Llama2cCheckpoint {
  header: Llama2cHeader;
  config: HfConfig;
  /** F32 tensors with HF names, in HF order; lm_head.weight only when unshared. */
  tensors: RawTensor[];
  qkLayout: QKLayout;
  /** Legacy files only: the stored RoPE tables, (seq_len, head_size/2) each. */
  freqCis?: { real: Float32Array; imag: Float32Array };
}

export interface ReadLlama2cOptions {
  /** Layout of the returned q/k weights; default 'rotate-half' (HF), 'interleaved' keeps the file's. */
  qkLayout?: QKLayout;
  /** Name used in errors for a buffer. */
  label?: string;
}

/** Read a llama2.c checkpoint (legacy or v1) from a path or a buffer. */
export async function readLlama2c(src: string | Uint8Array, opts: ReadLlama2cOptions = {}): Promise<Llama2cCheckpoint> {
  const file = typeof src === 'string' ? src : opts.label ?? '<buffer>';
  let fh: FileHandle | null = null;
  try {
    let size: number;
    let readAt: (off: number, n: number, what: string) => Promise<Uint8Array>;
    if (typeof src === 'string') {
      const o = await openRegularFile(src);
      const h = (fh = o.fh);
      size = o.size;
      readAt = async (off, n, what) => {
        const b = new Uint8Array(n);
        await readExactly(h, b, off, what, size, file);
        return b;
      };
    } else {
      size = src.length;
      readAt = async (off, n) => src.subarray(off, off + n);
    }
    const header = parseLlama2cHeader(await readAt(0, Math.min(size, LLAMA2C_V1_HEADER_BYTES), 'header'), size, file);
    const { slots, freq, end } = layout(header, file);
    if (size < end) {
      const bad = [...slots, ...freq].filter((s) => s.offset + elementCount(s.shape) * 4 > size).sort((a, b) => a.offset - b.offset)[0];
      throw new TruncatedError(file, `tensor '${bad.name}' (the header declares ${describe(header)}: ${end} bytes in all)`, bad.offset, elementCount(bad.shape) * 4, size);
    }
    if (size > end) throw new FormatError(file, 'data', `${size - end} bytes after the last tensor: the header (${describe(header)}) does not match the file`);
    const tensors = new Map<string, RawTensor>();
    for (const s of slots) {
      const data = await readAt(s.offset, elementCount(s.shape) * 4, `tensor '${s.name}'`);
      tensors.set(s.name, { name: s.name, dtype: 'F32', shape: s.shape, data });
    }
    const config = llama2cToHfConfig(header);
    const d = llamaDims(config, file);
    const order = [...tensors.keys()].sort(hfOrder);
    const layoutWanted = opts.qkLayout ?? 'rotate-half';
    const list = convertQKLayout(order.map((n) => tensors.get(n)!), d, 'interleaved', layoutWanted);
    const out: Llama2cCheckpoint = { header, config, tensors: list, qkLayout: layoutWanted };
    if (header.version === 0) {
      const [re, im] = await Promise.all(freq.map(async (s) => toFloat32({ name: s.name, dtype: 'F32', shape: s.shape, data: await readAt(s.offset, elementCount(s.shape) * 4, s.name) })));
      out.freqCis = { real: re, imag: im };
    }
    return out;
  } finally {
    if (fh) await fh.close();
  }
}

function describe(h: Llama2cHeader): string {
  return `dim ${h.dim}, hidden_dim ${h.hidden_dim}, n_layers ${h.n_layers}, n_heads ${h.n_heads}, n_kv_heads ${h.n_kv_heads}, vocab_size ${h.vocab_size}, seq_len ${h.seq_len}, ${h.shared_classifier ? 'shared' : 'unshared'} classifier`;
}

/** Sort key: HF's natural order (embed, layers by index, norm, lm_head). */
export function hfOrder(a: string, b: string): number {
  const key = (n: string): [number, number, string] => {
    if (n === 'model.embed_tokens.weight') return [0, 0, n];
    const m = /^model\.layers\.(\d+)\.(.*)$/.exec(n);
    if (m) return [1, Number(m[1]), ['input_layernorm', 'self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'post_attention_layernorm', 'mlp.gate_proj', 'mlp.down_proj', 'mlp.up_proj'].findIndex((p) => m[2].startsWith(p)).toString().padStart(2, '0') + m[2]];
    if (n === 'model.norm.weight') return [2, 0, n];
    if (n === 'lm_head.weight') return [3, 0, n];
    return [4, 0, n];
  };
  const [x, y] = [key(a), key(b)];
  return x[0] - y[0] || x[1] - y[1] || (x[2] < y[2] ? -1 : x[2] > y[2] ? 1 : 0);
}

export interface WriteLlama2cOptions {
  /** 0 = legacy headerless, 1 = "ak42" v1. */
  version: 0 | 1;
  /** Layout of the q/k weights passed in; default 'rotate-half' (HF). */
  qkLayout?: QKLayout;
  /** Write even when rope_theta / rms_norm_eps differ from run.c's fixed 10000 / 1e-5. */
  allowLossy?: boolean;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Precompute llama2.c's legacy freq_cis tables (run.c ignores them; kept for the format). */
function freqCis(seqLen: number, headSize: number): [Float32Array, Float32Array] {
  const half = headSize / 2;
  const re = new Float32Array(seqLen * half);
  const im = new Float32Array(seqLen * half);
  for (let i = 0; i < half; i++) {
    const f = Math.fround(1 / Math.fround(10000 ** Math.fround((2 * i) / headSize)));
    for (let t = 0; t < seqLen; t++) {
      const a = Math.fround(t * f);
      re[t * half + i] = Math.cos(a);
      im[t * half + i] = Math.sin(a);
    }
  }
  return [re, im];
}

/** Prepare the header and the f32 payloads of a llama2.c checkpoint from an HF config + tensors. */
function prepare(ckpt: { config: HfConfig; tensors: readonly RawTensor[] }, opts: WriteLlama2cOptions, file: string): { head: Uint8Array; parts: Uint8Array[] } {
  const d = llamaDims(ckpt.config, file);
  if (d.headDim * d.heads !== d.hidden) throw new ConfigFieldError(file, 'head_dim', `llama2.c needs head_dim × num_attention_heads = hidden_size, got ${d.headDim} × ${d.heads} ≠ ${d.hidden}`);
  if (!opts.allowLossy && d.ropeTheta !== 10000) throw new ConfigFieldError(file, 'rope_theta', `llama2.c's run.c fixes RoPE theta at 10000, got ${d.ropeTheta} (pass allowLossy to write anyway)`);
  if (!opts.allowLossy && Math.abs(d.rmsNormEps - 1e-5) > 1e-12) throw new ConfigFieldError(file, 'rms_norm_eps', `llama2.c's run.c fixes RMSNorm eps at 1e-5, got ${d.rmsNormEps} (pass allowLossy to write anyway)`);
  const byName = new Map(ckpt.tensors.map((t) => [t.name, t]));
  const lm = byName.get('lm_head.weight');
  const embed = byName.get('model.embed_tokens.weight');
  const shared = d.tied || !lm || (embed !== undefined && lm.dtype === embed.dtype && bytesEqual(lm.data, embed.data));
  const dims = { ...d, tied: shared };
  checkLlamaTensors(file, ckpt.tensors, dims);
  const inLayout = opts.qkLayout ?? 'rotate-half';
  const header: Llama2cHeader = {
    version: opts.version, dim: d.hidden, hidden_dim: d.intermediate, n_layers: d.layers, n_heads: d.heads,
    n_kv_heads: d.kvHeads, vocab_size: d.vocab, seq_len: d.maxPositions, shared_classifier: shared,
  };
  const { slots, freq } = layout(header, file);
  const parts: Uint8Array[] = [];
  const [re, im] = freqCis(header.seq_len, d.headDim);
  const all = [...slots, ...freq].sort((a, b) => a.offset - b.offset);
  for (const s of all) {
    if (s.name === 'freq_cis_real') { parts.push(new Uint8Array(re.buffer)); continue; }
    if (s.name === 'freq_cis_imag') { parts.push(new Uint8Array(im.buffer)); continue; }
    let t = byName.get(s.name);
    if (!t) throw new MissingTensorError(file, s.name);
    if (t.dtype === 'Q8_0' || !['F32', 'F16', 'BF16', 'F64'].includes(t.dtype)) throw new UnsupportedDTypeError(file, s.name, t.dtype, 'llama2.c stores float weights');
    [t] = convertQKLayout([t], d, inLayout, 'interleaved');
    const f = toFloat32(t, file);
    parts.push(new Uint8Array(f.buffer, f.byteOffset, f.byteLength));
  }
  let head: Uint8Array;
  if (opts.version === 0) {
    head = new Uint8Array(LEGACY_HEADER_BYTES);
    const dv = new DataView(head.buffer);
    [header.dim, header.hidden_dim, header.n_layers, header.n_heads, header.n_kv_heads, shared ? header.vocab_size : -header.vocab_size, header.seq_len]
      .forEach((v, i) => dv.setInt32(i * 4, v, true));
  } else {
    head = new Uint8Array(LLAMA2C_V1_HEADER_BYTES);
    const dv = new DataView(head.buffer);
    dv.setUint32(0, LLAMA2C_MAGIC, true);
    dv.setInt32(4, 1, true);
    [header.dim, header.hidden_dim, header.n_layers, header.n_heads, header.n_kv_heads, header.vocab_size, header.seq_len]
      .forEach((v, i) => dv.setInt32(8 + i * 4, v, true));
    dv.setUint8(36, shared ? 1 : 0);
  }
  return { head, parts };
}

/** Serialize a llama2.c checkpoint to one buffer. */
export function serializeLlama2c(ckpt: { config: HfConfig; tensors: readonly RawTensor[] }, opts: WriteLlama2cOptions): Uint8Array {
  const { head, parts } = prepare(ckpt, opts, '<memory>');
  const out = new Uint8Array(head.length + parts.reduce((s, p) => s + p.length, 0));
  out.set(head, 0);
  let o = head.length;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

/** Write a llama2.c checkpoint atomically. Float tensors of any float dtype are written as f32. */
export async function writeLlama2c(path: string, ckpt: { config: HfConfig; tensors: readonly RawTensor[] }, opts: WriteLlama2cOptions): Promise<void> {
  const { head, parts } = prepare(ckpt, opts, path);
  await writeAtomic(path, async (fh) => {
    await writeAll(fh, head);
    for (const p of parts) await writeAll(fh, p);
  });
}
