// Seeded mutators for every file format tslm reads. A mutator takes the bytes of a valid file and
// returns a mutant with a `kind` (what was done, for the report) and an `expect`ation:
//   'reject': the mutant is invalid and must be refused with a clear error (exit 0 is "garbage
//             accepted"): truncated weight data, declared sizes that disagree with the bytes,
//             NaN/Inf weights or vectors (no allow flag is passed), impossible header fields;
//   'any':    the mutant may be valid or not (a flipped byte, a CRLF, a BOM, a huge string in a
//             data file): a clear error or a successful run with finite output both pass.
// Either way a crash, a hang, non-finite output or memory past the budget is a failure.
import type { Rng } from './rng.js';

export type Expect = 'reject' | 'any';
export interface Mutation { kind: string; expect: Expect; data: Uint8Array }
export type Mutator = (base: Uint8Array, rng: Rng) => Mutation | null;

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: false });
export const utf8 = (s: string): Uint8Array => enc.encode(s);
export const text = (b: Uint8Array): string => dec.decode(b);

/** Hostile integers for declared counts, sizes and offsets. */
export const HUGE_INTS = [0, -1, 1e9, 2 ** 31 - 1, 2 ** 32, 2 ** 31, 2 ** 53] as const;
const HUGE_U32 = [0, 1e9, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1] as const;
const HUGE_U64 = [0n, 1000000000n, 2n ** 31n - 1n, 2n ** 32n, 2n ** 53n, 2n ** 63n - 1n, 2n ** 64n - 1n] as const;
const NONFINITE = [NaN, Infinity, -Infinity] as const;

// ---------------------------------------------------------------------------------------------
// Generic byte mutators

export function truncateAt(base: Uint8Array, at: number, kind: string, expect: Expect): Mutation {
  return { kind, expect, data: base.slice(0, Math.max(0, Math.min(base.length, at))) };
}
export const truncateRandom = (expect: Expect): Mutator => (b, r) => b.length < 2 ? null : truncateAt(b, 1 + r.int(b.length - 1), 'truncate-random', expect);
export const emptyFile = (expect: Expect): Mutator => () => ({ kind: 'empty-file', expect, data: new Uint8Array(0) });

/** Flip 1–8 random bytes (xor with a non-zero byte). */
export const byteFlip: Mutator = (b, r) => {
  if (b.length === 0) return null;
  const d = b.slice();
  const n = 1 + r.int(8);
  for (let i = 0; i < n; i++) d[r.int(d.length)] ^= 1 + r.int(255);
  return { kind: 'byte-flip', expect: 'any', data: d };
};
/** Random bytes appended after a valid file. */
export const appendGarbage: Mutator = (b, r) => {
  const n = 1 + r.int(64), d = new Uint8Array(b.length + n);
  d.set(b);
  for (let i = b.length; i < d.length; i++) d[i] = r.int(256);
  return { kind: 'append-garbage', expect: 'any', data: d };
};

// ---------------------------------------------------------------------------------------------
// Text mutators (line-oriented formats: ARPA, word2vec text, JSONL, JSON)

function insertAt(b: Uint8Array, at: number, ins: Uint8Array): Uint8Array {
  const d = new Uint8Array(b.length + ins.length);
  d.set(b.subarray(0, at)); d.set(ins, at); d.set(b.subarray(at), at + ins.length);
  return d;
}
/** Offsets just after each '\n' (line starts), plus 0. */
function lineStarts(b: Uint8Array): number[] {
  const s = [0];
  for (let i = 0; i < b.length && s.length < 1e6; i++) if (b[i] === 10 && i + 1 < b.length) s.push(i + 1);
  return s;
}
const INVALID_UTF8 = [[0xff], [0xfe, 0xff], [0x80], [0xc0, 0x80], [0xe4, 0xb8], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80]];

export const TEXT_MUTATORS: Record<string, Mutator> = {
  crlf: (b) => { const t = text(b); return { kind: 'text-crlf', expect: 'any', data: utf8(t.includes('\n') ? t.replace(/\r?\n/g, '\r\n') : t + '\r\n') }; },
  bom: (b) => ({ kind: 'text-bom', expect: 'any', data: insertAt(b, 0, Uint8Array.of(0xef, 0xbb, 0xbf)) }),
  nul: (b, r) => ({ kind: 'text-nul-byte', expect: 'any', data: insertAt(b, r.int(b.length + 1), Uint8Array.of(0)) }),
  'invalid-utf8': (b, r) => ({ kind: 'text-invalid-utf8', expect: 'any', data: insertAt(b, r.int(b.length + 1), Uint8Array.from(r.pick(INVALID_UTF8))) }),
  chinese: (b, r) => { const s = lineStarts(b); return { kind: 'text-chinese', expect: 'any', data: insertAt(b, r.pick(s), utf8('中文文本，测试。你好世界 ')) }; },
  'long-line': (b, r) => {
    const words = r.bool() ? 'the quick brown fox '.repeat(100_000) : 'x'.repeat(1 << 20);
    return { kind: 'text-long-line-2MB', expect: 'any', data: insertAt(b, r.pick(lineStarts(b)), utf8(words + '\n')) };
  },
  'no-trailing-newline': (b) => {
    let n = b.length; while (n > 0 && (b[n - 1] === 10 || b[n - 1] === 13)) n--;
    return n === b.length ? null : { kind: 'text-no-trailing-newline', expect: 'any', data: b.slice(0, n) };
  },
  'drop-line': (b, r) => {
    const s = lineStarts(b); if (s.length < 2) return null;
    const i = r.int(s.length), end = i + 1 < s.length ? s[i + 1] : b.length;
    const d = new Uint8Array(b.length - (end - s[i])); d.set(b.subarray(0, s[i])); d.set(b.subarray(end), s[i]);
    return { kind: 'text-drop-line', expect: 'any', data: d };
  },
  'truncate-line-boundary': (b, r) => { const s = lineStarts(b); return s.length < 2 ? null : truncateAt(b, r.pick(s.slice(1)), 'truncate-at-line', 'any'); },
};

// ---------------------------------------------------------------------------------------------
// JSON mutators: replace one value somewhere in the document (chosen uniformly among up to 20k
// values) with a hostile one. Built as text around a placeholder, so 100k-deep nesting needs
// no recursion here.

type Slot = { parent: Record<string, unknown> | unknown[]; key: string | number; value: unknown; path: string };

/** Up to `max` (parent, key) slots of a parsed JSON document, breadth-first, no recursion. */
export function jsonSlots(doc: unknown, max = 20000): Slot[] {
  const out: Slot[] = [];
  const queue: [unknown, string][] = [[doc, '']];
  for (let q = 0; q < queue.length && out.length < max; q++) {
    const [v, p] = queue[q];
    if (Array.isArray(v)) v.forEach((x, i) => { if (out.length < max) { out.push({ parent: v, key: i, value: x, path: `${p}/${i}` }); queue.push([x, `${p}/${i}`]); } });
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) { if (out.length >= max) break; out.push({ parent: v as Record<string, unknown>, key: k, value: x, path: `${p}/${k}` }); queue.push([x, `${p}/${k}`]); }
  }
  return out;
}

const MARK = '\u0000FUZZ-SLOT\u0000';
/** Serialise `doc` with the slot's value replaced by raw JSON text `raw`. */
export function replaceSlot(doc: unknown, slot: Slot | null, raw: string): string {
  if (!slot) return raw;
  const old = (slot.parent as Record<string | number, unknown>)[slot.key];
  (slot.parent as Record<string | number, unknown>)[slot.key] = MARK;
  try {
    const s = JSON.stringify(doc);
    const i = s.indexOf(JSON.stringify(MARK));
    return s.slice(0, i) + raw + s.slice(i + JSON.stringify(MARK).length);
  } finally { (slot.parent as Record<string | number, unknown>)[slot.key] = old; }
}

export function deepNesting(depth: number, kind: 'array' | 'object'): string {
  return kind === 'array' ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
}
export function manyProperties(n: number): string {
  const parts: string[] = [];
  for (let i = 0; i < n; i++) parts.push(`"p${i}":${i}`);
  return '{' + parts.join(',') + '}';
}

/** Hostile JSON values by name: raw JSON text (may be huge). */
export const HOSTILE_JSON: Record<string, (r: Rng) => string> = {
  'deep-array-100k': () => deepNesting(100_000, 'array'),
  'deep-object-100k': () => deepNesting(100_000, 'object'),
  'huge-string-10MB': (r) => JSON.stringify(r.bool() ? 'lorem ipsum dolor sit amet '.repeat(388_400) : 'a'.repeat(1 << 20)),
  'props-50k': () => manyProperties(50_000),
  'array-1M': () => '[' + new Array(1_000_000).fill('0').join(',') + ']',
  'wrong-type': (r) => r.pick(['null', 'true', '0', '"x"', '[]', '{}', '[1,2]', '{"a":1}', '-1.5']),
  'huge-number': (r) => r.pick(['1e9', '2147483647', '4294967296', '-1', '0', '1e308', '9007199254740993', '-2147483649', '0.5']),
};

/** One JSON value replaced (anywhere, or at a path the format names) by a hostile one. */
export function jsonMutator(name: keyof typeof HOSTILE_JSON | string, expect: Expect = 'any', pathFilter?: RegExp): Mutator {
  return (b, r) => {
    let doc: unknown;
    try { doc = JSON.parse(text(b)); } catch { return null; }
    let slots = jsonSlots(doc);
    if (pathFilter) slots = slots.filter((s) => pathFilter.test(s.path));
    if (name === 'huge-number' && !pathFilter) { const nums = slots.filter((s) => typeof s.value === 'number'); if (nums.length) slots = nums; }
    const slot = slots.length ? r.pick(slots) : null;
    if (pathFilter && !slot) return null;
    const raw = HOSTILE_JSON[name](r);
    return { kind: `json-${name}${slot ? ` at ${slot.path.length > 60 ? slot.path.slice(0, 60) + '…' : slot.path}` : ''}`, expect, data: utf8(replaceSlot(doc, slot, raw)) };
  };
}
export const JSON_MUTATORS: Record<string, Mutator> = Object.fromEntries(Object.keys(HOSTILE_JSON).map((k) => [k, jsonMutator(k)]));

/** Apply a JSON mutator to one line of a JSONL file. */
export function onJsonlLine(m: Mutator): Mutator {
  return (b, r) => {
    const lines = text(b).split('\n');
    const idx = lines.map((l, i) => [l, i] as const).filter(([l]) => l.trim() !== '');
    if (!idx.length) return null;
    const [line, i] = r.pick(idx);
    const got = m(utf8(line), r);
    if (!got) return null;
    lines[i] = text(got.data);
    return { kind: `${got.kind} (line ${i + 1})`, expect: got.expect, data: utf8(lines.join('\n')) };
  };
}

// ---------------------------------------------------------------------------------------------
// Float payloads: NaN/Inf written into f32 data

/** Write a non-finite f32 at `count` random 4-aligned offsets in [from, to). */
export function injectNonFinite(b: Uint8Array, from: number, to: number, r: Rng, count = 1): Uint8Array {
  const d = b.slice();
  const dv = new DataView(d.buffer);
  const n = Math.floor((to - from) / 4);
  if (n <= 0) return d;
  for (let i = 0; i < count; i++) dv.setFloat32(from + 4 * r.int(n), r.pick(NONFINITE), true);
  return d;
}
/** Flip the lowest mantissa byte of a few f32 values: the values stay finite. */
export function mantissaFlip(b: Uint8Array, from: number, to: number, r: Rng): Uint8Array {
  const d = b.slice(), n = Math.floor((to - from) / 4);
  for (let i = 0; i < 4 && n > 0; i++) d[from + 4 * r.int(n)] ^= 1 + r.int(255);
  return d;
}

// ---------------------------------------------------------------------------------------------
// safetensors: u64 header length, JSON header {name: {dtype, shape, data_offsets}}, data

export interface SafetensorsLayout { headerLen: number; header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>; dataStart: number }
export function safetensorsLayout(b: Uint8Array): SafetensorsLayout | null {
  if (b.length < 8) return null;
  const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
  if (8 + n > b.length) return null;
  try { return { headerLen: n, header: JSON.parse(text(b.subarray(8, 8 + n))), dataStart: 8 + n }; } catch { return null; }
}
function withHeader(b: Uint8Array, lay: SafetensorsLayout, header: unknown): Uint8Array {
  const h = utf8(JSON.stringify(header));
  const d = new Uint8Array(8 + h.length + (b.length - lay.dataStart));
  new DataView(d.buffer).setBigUint64(0, BigInt(h.length), true);
  d.set(h, 8); d.set(b.subarray(lay.dataStart), 8 + h.length);
  return d;
}
const tensorsOf = (lay: SafetensorsLayout): string[] => Object.keys(lay.header).filter((k) => k !== '__metadata__');

export const SAFETENSORS_MUTATORS: Record<string, Mutator> = {
  'header-length': (b, r) => {
    const lay = safetensorsLayout(b); if (!lay) return null;
    const v = r.pick([0n, 1n, BigInt(lay.headerLen - 1), BigInt(lay.headerLen + 1), BigInt(b.length), ...HUGE_U64]);
    const d = b.slice(); new DataView(d.buffer).setBigUint64(0, v, true);
    return { kind: `safetensors-header-length=${v}`, expect: 'reject', data: d };
  },
  'shape-dim': (b, r) => {
    const lay = safetensorsLayout(b); if (!lay) return null;
    const name = r.pick(tensorsOf(lay)), t = lay.header[name];
    const v = r.pick([...HUGE_INTS, 3]);
    const shape = t.shape.length ? t.shape.slice() : [1];
    const i = r.int(shape.length);
    if (shape[i] === v) return null;
    shape[i] = v;
    return { kind: `safetensors-shape ${name}[${i}]=${v}`, expect: 'reject', data: withHeader(b, lay, { ...lay.header, [name]: { ...t, shape } }) };
  },
  'data-offsets': (b, r) => {
    const lay = safetensorsLayout(b); if (!lay) return null;
    const name = r.pick(tensorsOf(lay)), t = lay.header[name];
    const [s, e] = t.data_offsets, len = b.length - lay.dataStart;
    const v = r.pick<[number, number]>([[e, s], [s, len + 4], [s + 4, e + 4], [2 ** 53, 2 ** 53 + (e - s)], [s, 2 ** 32], [-4, e - s - 4], [0, e - s]]);
    if (v[0] === s && v[1] === e) return null;
    return { kind: `safetensors-data_offsets ${name}=[${v}]`, expect: v[0] === 0 && v[1] === e - s ? 'any' : 'reject', data: withHeader(b, lay, { ...lay.header, [name]: { ...t, data_offsets: v } }) };
  },
  dtype: (b, r) => {
    const lay = safetensorsLayout(b); if (!lay) return null;
    const name = r.pick(tensorsOf(lay)), t = lay.header[name];
    const v = r.pick(['F16', 'F64', 'I8', 'BOOL', 'Q4_0', 'xx', '']);
    return { kind: `safetensors-dtype ${name}=${v}`, expect: 'reject', data: withHeader(b, lay, { ...lay.header, [name]: { ...t, dtype: v } }) };
  },
  'header-json': (b, r) => {
    const lay = safetensorsLayout(b); if (!lay) return null;
    const m = r.pick(['wrong-type', 'huge-number', 'deep-array-100k', 'props-50k']);
    const got = jsonMutator(m)(b.subarray(8, lay.dataStart), r); if (!got) return null;
    const d = new Uint8Array(8 + got.data.length + (b.length - lay.dataStart));
    new DataView(d.buffer).setBigUint64(0, BigInt(got.data.length), true);
    d.set(got.data, 8); d.set(b.subarray(lay.dataStart), 8 + got.data.length);
    return { kind: `safetensors-header ${got.kind}`, expect: 'any', data: d };
  },
  'nan-weights': (b, r) => {
    const lay = safetensorsLayout(b); if (!lay) return null;
    const name = r.pick(tensorsOf(lay).filter((n) => lay.header[n].dtype === 'F32')); if (!name) return null;
    const [s, e] = lay.header[name].data_offsets;
    return { kind: `safetensors-nonfinite-weight ${name}`, expect: 'reject', data: injectNonFinite(b, lay.dataStart + s, lay.dataStart + e, r) };
  },
  'mantissa-flip': (b, r) => {
    const lay = safetensorsLayout(b); if (!lay) return null;
    return { kind: 'safetensors-weight-mantissa-flip', expect: 'any', data: mantissaFlip(b, lay.dataStart, b.length, r) };
  },
  'truncate-data': (b, r) => {
    const lay = safetensorsLayout(b); if (!lay || b.length <= lay.dataStart) return null;
    return truncateAt(b, lay.dataStart + r.int(b.length - lay.dataStart), 'safetensors-truncate-data', 'reject');
  },
  'truncate-header': (b, r) => {
    const lay = safetensorsLayout(b); if (!lay) return null;
    return truncateAt(b, r.int(lay.dataStart), 'safetensors-truncate-header', 'reject');
  },
};

// ---------------------------------------------------------------------------------------------
// GGUF: walk the header and remember where every count, length, dimension and offset lies.

export interface GgufField { pos: number; width: 4 | 8; what: string; critical: boolean }
export interface GgufLayout { fields: GgufField[]; tensors: { name: string; dims: number[]; type: number; offset: number }[]; dataStart: number; headerEnd: number }

const GGUF_SCALAR: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
/** Metadata keys whose values shape the model (a wrong value must be refused). */
const GGUF_CRITICAL_KEY = /\.(block_count|embedding_length|feed_forward_length|attention\.head_count|attention\.head_count_kv|vocab_size)$/;

export function ggufLayout(b: Uint8Array): GgufLayout | null {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const fields: GgufField[] = [];
  let p = 0;
  const need = (n: number): void => { if (p + n > b.length) throw new Error('short'); };
  const u32 = (): number => { need(4); const v = dv.getUint32(p, true); p += 4; return v; };
  const u64 = (): number => { need(8); const v = Number(dv.getBigUint64(p, true)); p += 8; return v; };
  const str = (what: string): string => { fields.push({ pos: p, width: 8, what: `${what}.length`, critical: true }); const n = u64(); need(n); const s = text(b.subarray(p, p + n)); p += n; return s; };
  try {
    if (u32() !== 0x46554747) return null;
    u32();
    fields.push({ pos: p, width: 8, what: 'tensor_count', critical: true }); const nt = u64();
    fields.push({ pos: p, width: 8, what: 'kv_count', critical: true }); const nkv = u64();
    let alignment = 32;
    for (let i = 0; i < nkv; i++) {
      const key = str(`kv[${i}].key`);
      const type = u32();
      if (type === 8) str(key);
      else if (type === 9) {
        const et = u32();
        fields.push({ pos: p, width: 8, what: `${key}.count`, critical: true }); const n = u64();
        for (let j = 0; j < n; j++) { if (et === 8) { need(8); p += 8 + Number(dv.getBigUint64(p, true)); } else p += GGUF_SCALAR[et] ?? 0; }
      } else {
        const w = GGUF_SCALAR[type]; need(w);
        if (w === 4 || w === 8) fields.push({ pos: p, width: w, what: key, critical: GGUF_CRITICAL_KEY.test(key) && type !== 6 && type !== 12 });
        if (key === 'general.alignment' && type === 4) alignment = dv.getUint32(p, true);
        p += w;
      }
    }
    const tensors: GgufLayout['tensors'] = [];
    for (let i = 0; i < nt; i++) {
      const name = str(`tensor[${i}].name`);
      fields.push({ pos: p, width: 4, what: `${name}.n_dims`, critical: true }); const nd = u32();
      const dims: number[] = [];
      for (let j = 0; j < nd; j++) { fields.push({ pos: p, width: 8, what: `${name}.dims[${j}]`, critical: true }); dims.push(u64()); }
      fields.push({ pos: p, width: 4, what: `${name}.type`, critical: true }); const type = u32();
      fields.push({ pos: p, width: 8, what: `${name}.offset`, critical: true }); const offset = u64();
      tensors.push({ name, dims, type, offset });
    }
    const headerEnd = p;
    return { fields, tensors, headerEnd, dataStart: Math.ceil(p / alignment) * alignment };
  } catch { return null; }
}

export const GGUF_MUTATORS: Record<string, Mutator> = {
  'header-field': (b, r) => {
    const lay = ggufLayout(b); if (!lay) return null;
    const f = r.pick(lay.fields);
    const d = b.slice(), dv = new DataView(d.buffer);
    let v: bigint | number;
    if (f.width === 4) { v = r.pick(HUGE_U32); if (dv.getUint32(f.pos, true) === v) return null; dv.setUint32(f.pos, v, true); }
    else { v = r.pick(HUGE_U64); if (dv.getBigUint64(f.pos, true) === v) return null; dv.setBigUint64(f.pos, v, true); }
    return { kind: `gguf-${f.what}=${v}`, expect: f.critical ? 'reject' : 'any', data: d };
  },
  'nan-weights': (b, r) => {
    const lay = ggufLayout(b); if (!lay) return null;
    const f32 = lay.tensors.filter((t) => t.type === 0); if (!f32.length) return null;
    const t = r.pick(f32), n = t.dims.reduce((a, x) => a * x, 1);
    const from = lay.dataStart + t.offset;
    return { kind: `gguf-nonfinite-weight ${t.name}`, expect: 'reject', data: injectNonFinite(b, from, from + 4 * n, r) };
  },
  'mantissa-flip': (b, r) => { const lay = ggufLayout(b); return lay && { kind: 'gguf-weight-mantissa-flip', expect: 'any', data: mantissaFlip(b, lay.dataStart, b.length, r) }; },
  'truncate-data': (b, r) => { const lay = ggufLayout(b); return lay && truncateAt(b, lay.dataStart + r.int(b.length - lay.dataStart), 'gguf-truncate-data', 'reject'); },
  'truncate-header': (b, r) => { const lay = ggufLayout(b); return lay && truncateAt(b, r.int(lay.headerEnd), 'gguf-truncate-header', 'reject'); },
};

// ---------------------------------------------------------------------------------------------
// llama2.c: v1 header "ak42" u32, version i32, 7 i32 (dim, hidden_dim, n_layers, n_heads,
// n_kv_heads, vocab_size, seq_len), shared_classifier u8, padded to 256 bytes; f32 weights.

export const LLAMA2C_FIELDS = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'] as const;
export const LLAMA2C_MUTATORS: Record<string, Mutator> = {
  'header-field': (b, r) => {
    if (b.length < 256) return null;
    const i = r.int(LLAMA2C_FIELDS.length), v = r.pick([...HUGE_INTS.filter((x) => x <= 2 ** 31 - 1 && x >= -(2 ** 31)), -(2 ** 31), 5e7]);
    const d = b.slice(), dv = new DataView(d.buffer);
    if (dv.getInt32(8 + 4 * i, true) === v) return null;
    dv.setInt32(8 + 4 * i, v, true);
    // seq_len only bounds the context (v1 stores no freq_cis): a sane value may pass, a huge one must not allocate.
    return { kind: `llama2c-${LLAMA2C_FIELDS[i]}=${v}`, expect: LLAMA2C_FIELDS[i] === 'seq_len' && v > 0 ? 'any' : 'reject', data: d };
  },
  version: (b, r) => { const d = b.slice(); const v = r.pick([0, 2, -1, 2 ** 31 - 1]); new DataView(d.buffer).setInt32(4, v, true); return { kind: `llama2c-version=${v}`, expect: 'reject', data: d }; },
  'shared-flag': (b) => { const d = b.slice(); d[36] = d[36] ? 0 : 1; return { kind: 'llama2c-shared_classifier-flipped', expect: 'reject', data: d }; },
  'nan-weights': (b, r) => ({ kind: 'llama2c-nonfinite-weight', expect: 'reject', data: injectNonFinite(b, 256, b.length, r) }),
  'mantissa-flip': (b, r) => ({ kind: 'llama2c-weight-mantissa-flip', expect: 'any', data: mantissaFlip(b, 256, b.length, r) }),
  'truncate-data': (b, r) => truncateAt(b, 256 + r.int(b.length - 256), 'llama2c-truncate-data', 'reject'),
  'truncate-header': (b, r) => truncateAt(b, r.int(256), 'llama2c-truncate-header', 'reject'),
};

/** llama2.c tokenizer.bin: i32 max_token_length, then per token f32 score, i32 length, bytes. */
export function tokenizerBinLengths(b: Uint8Array): number[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength), out: number[] = [];
  let p = 4;
  while (p + 8 <= b.length) { out.push(p + 4); const n = dv.getInt32(p + 4, true); if (n < 0) break; p += 8 + n; }
  return out;
}
export const TOKENIZER_BIN_MUTATORS: Record<string, Mutator> = {
  'token-length': (b, r) => {
    const ls = tokenizerBinLengths(b); if (!ls.length) return null;
    const at = r.pick(ls), v = r.pick([-1, 1e9, 2 ** 31 - 1, -(2 ** 31), 0]);
    const d = b.slice(); new DataView(d.buffer).setInt32(at, v, true);
    return { kind: `tokenizer.bin-token-length=${v}`, expect: v === 0 ? 'any' : 'reject', data: d };
  },
  'max-token-length': (b, r) => { const d = b.slice(); const v = r.pick([-1, 0, 1e9, 2 ** 31 - 1]); new DataView(d.buffer).setInt32(0, v, true); return { kind: `tokenizer.bin-max_token_length=${v}`, expect: 'any', data: d }; },
  'nan-score': (b, r) => {
    const ls = tokenizerBinLengths(b); if (!ls.length) return null;
    const d = b.slice(); new DataView(d.buffer).setFloat32(r.pick(ls) - 4, r.pick(NONFINITE), true);
    return { kind: 'tokenizer.bin-nonfinite-score', expect: 'any', data: d };
  },
  truncate: (b, r) => truncateAt(b, r.int(b.length), 'tokenizer.bin-truncate', 'reject'),
};

// ---------------------------------------------------------------------------------------------
// ARPA and word2vec text

export const ARPA_MUTATORS: Record<string, Mutator> = {
  'ngram-count': (b, r) => {
    const t = text(b), m = [...t.matchAll(/^ngram (\d+)=(\d+)$/gm)]; if (!m.length) return null;
    const pick = r.pick(m), v = r.pick(['1000000000', '2147483647', '4294967296', '-1', '0', String(Number(pick[2]) + 1), String(Number(pick[2]) - 1), '1e9', 'x']);
    if (v === pick[2]) return null;
    return { kind: `arpa-ngram ${pick[1]}=${v}`, expect: 'reject', data: utf8(t.slice(0, pick.index!) + `ngram ${pick[1]}=${v}` + t.slice(pick.index! + pick[0].length)) };
  },
  'order-count': (b) => { const t = text(b); return { kind: 'arpa-ngram 9=1000000000 declared', expect: 'reject', data: utf8(t.replace(/^(ngram \d+=\d+\n)(?!ngram)/m, '$1ngram 9=1000000000\n')) }; },
  'nonfinite-prob': (b, r) => {
    const lines = text(b).split('\n'), idx = lines.map((l, i) => [l, i] as const).filter(([l]) => /^-?[\d.]+\t/.test(l));
    if (!idx.length) return null;
    const [l, i] = r.pick(idx), v = r.pick(['nan', 'NaN', 'inf', '1e999', 'x']);
    lines[i] = l.replace(/^-?[\d.]+/, v);
    return { kind: `arpa-log-prob=${v}`, expect: 'reject', data: utf8(lines.join('\n')) };
  },
  'nonfinite-backoff': (b, r) => {
    const lines = text(b).split('\n'), idx = lines.map((l, i) => [l, i] as const).filter(([l]) => /^\S+\t\S+\t-?[\d.]+$/.test(l));
    if (!idx.length) return null;
    const [l, i] = r.pick(idx), v = r.pick(['nan', 'inf', 'x']);
    lines[i] = l.replace(/-?[\d.]+$/, v);
    return { kind: `arpa-backoff=${v}`, expect: 'reject', data: utf8(lines.join('\n')) };
  },
  'no-end': (b) => ({ kind: 'arpa-no-\\end\\', expect: 'any', data: utf8(text(b).replace(/\\end\\\s*$/, '')) }),
};

export const W2V_TEXT_MUTATORS: Record<string, Mutator> = {
  'header-count': (b, r) => {
    const t = text(b), m = /^(\d+) (\d+)\n/.exec(t); if (!m) return null;
    const which = r.int(2), v = r.pick(['1000000000', '2147483647', '4294967296', '0', String(Number(m[which + 1]) + 1), String(Number(m[which + 1]) - 1), '-1']);
    if (v === m[which + 1]) return null;
    const head = which === 0 ? `${v} ${m[2]}` : `${m[1]} ${v}`;
    return { kind: `word2vec-header ${which === 0 ? 'words' : 'dim'}=${v}`, expect: which === 0 && v !== '0' && Number(v) < Number(m[1]) && Number(v) > 0 ? 'any' : 'reject', data: utf8(head + '\n' + t.slice(m[0].length)) };
  },
  'nonfinite-component': (b, r) => {
    const lines = text(b).split('\n'); if (lines.length < 3) return null;
    const i = 1 + r.int(lines.length - 2), parts = lines[i].split(' '); if (parts.length < 2) return null;
    parts[1 + r.int(parts.length - 1)] = r.pick(['nan', 'NaN', 'inf', '-inf', 'Infinity', '1e999']);
    lines[i] = parts.join(' ');
    return { kind: 'word2vec-nonfinite-component', expect: 'reject', data: utf8(lines.join('\n')) };
  },
  'bad-component': (b, r) => {
    const lines = text(b).split('\n'); if (lines.length < 3) return null;
    const i = 1 + r.int(lines.length - 2), parts = lines[i].split(' ');
    parts[1 + r.int(parts.length - 1)] = r.pick(['x', '', '1..2', '1e', '--1']);
    lines[i] = parts.join(' ');
    return { kind: 'word2vec-bad-component', expect: 'reject', data: utf8(lines.join('\n')) };
  },
};

/** word2vec binary: "V d\n" then per word "<word> " + d f32 (+ "\n"). */
export const W2V_BIN_MUTATORS: Record<string, Mutator> = {
  'header-count': (b, r) => {
    const nl = b.indexOf(10); if (nl < 0) return null;
    const m = /^(\d+) (\d+)$/.exec(text(b.subarray(0, nl))); if (!m) return null;
    const which = r.int(2), v = r.pick(['1000000000', '2147483647', '4294967296', '0', String(Number(m[which + 1]) + 1), String(Number(m[which + 1]) - 1)]);
    if (v === m[which + 1]) return null;
    const head = utf8((which === 0 ? `${v} ${m[2]}` : `${m[1]} ${v}`) + '\n');
    const d = new Uint8Array(head.length + b.length - nl - 1); d.set(head); d.set(b.subarray(nl + 1), head.length);
    return { kind: `word2vec-bin-header ${which === 0 ? 'words' : 'dim'}=${v}`, expect: which === 0 && v !== '0' && Number(v) < Number(m[1]) ? 'any' : 'reject', data: d };
  },
  'nonfinite-component': (b, r) => {
    // the float payload of a random word: after its first space following a newline
    const nl = b.indexOf(10); if (nl < 0) return null;
    const m = /^(\d+) (\d+)$/.exec(text(b.subarray(0, nl))); if (!m) return null;
    const dim = Number(m[2]), starts: number[] = [];
    let p = nl + 1;
    for (let i = 0; i < Number(m[1]) && p < b.length; i++) { const sp = b.indexOf(32, p); if (sp < 0) break; starts.push(sp + 1); p = sp + 1 + 4 * dim; if (b[p] === 10) p++; }
    if (!starts.length) return null;
    const at = r.pick(starts);
    return { kind: 'word2vec-bin-nonfinite-component', expect: 'reject', data: injectNonFinite(b, at, at + 4 * dim, r) };
  },
  'truncate-data': (b, r) => { const nl = b.indexOf(10); return nl < 0 ? null : truncateAt(b, nl + 1 + r.int(b.length - nl - 2), 'word2vec-bin-truncate', 'reject'); },
};

// ---------------------------------------------------------------------------------------------
// JSON Schemas that stress a compiler: replace the whole schema or one subschema.

export const HOSTILE_SCHEMAS: Record<string, () => unknown | string> = {
  'oneOf-30k-consts': () => ({ oneOf: Array.from({ length: 30_000 }, (_, i) => ({ const: `value-${i}` })) }),
  'enum-100k': () => ({ enum: Array.from({ length: 100_000 }, (_, i) => i) }),
  'properties-50k': () => ({ type: 'object', properties: Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`p${i}`, { type: 'integer' }])) }),
  'required-50k': () => ({ type: 'object', required: Array.from({ length: 50_000 }, (_, i) => `p${i}`) }),
  'nested-items-100k': () => '{"type":"array","items":'.repeat(100_000) + '{}' + '}'.repeat(100_000),
  'nested-allOf-10k': () => '{"allOf":['.repeat(10_000) + '{"type":"string"}' + ']}'.repeat(10_000),
  'minLength-1e9': () => ({ type: 'string', minLength: 1e9 }),
  'maxLength-2^32': () => ({ type: 'string', maxLength: 2 ** 32 }),
  'minItems-1e9': () => ({ type: 'array', minItems: 1e9 }),
  'minProperties-1e9': () => ({ type: 'object', minProperties: 1e9 }),
  'int-range-huge': () => ({ type: 'integer', minimum: -1e308, maximum: 1e308, multipleOf: 7 }),
  'multipleOf-1e-300': () => ({ type: 'number', multipleOf: 1e-300 }),
  'pattern-catastrophic': () => ({ type: 'string', pattern: '^(a+)+$' }),
  'pattern-huge-repeat': () => ({ type: 'string', pattern: '^a{1000000}$' }),
  'pattern-invalid': () => ({ type: 'string', pattern: '(' }),
  'ref-self': () => ({ $ref: '#' }),
  'ref-loop': () => ({ $defs: { a: { $ref: '#/$defs/b' }, b: { $ref: '#/$defs/a' } }, $ref: '#/$defs/a' }),
  'ref-missing': () => ({ $ref: '#/$defs/nope' }),
  'ref-remote': () => ({ $ref: 'http://127.0.0.1:1/x.json' }),
  'type-wrong': () => ({ type: 5 }),
  'schema-not-object': () => '[1,2,3]',
};
export const SCHEMA_MUTATORS: Record<string, Mutator> = Object.fromEntries(Object.entries(HOSTILE_SCHEMAS).map(([k, f]) => [k, (): Mutation => {
  const v = f();
  return { kind: `schema-${k}`, expect: 'any', data: utf8(typeof v === 'string' ? v : JSON.stringify(v)) };
}]));

/** Apply one mutator chosen uniformly from a table; retries a few times when one does not apply. */
export function mutate(base: Uint8Array, table: Record<string, Mutator>, r: Rng): Mutation {
  const names = Object.keys(table);
  for (let tries = 0; tries < 20; tries++) {
    const m = table[r.pick(names)](base, r);
    if (m) return m;
  }
  return byteFlip(base, r)!;
}
