// @ts-nocheck — AssemblyScript (built by scripts/build-wasm.mjs into dist/wasm/word2vec-*.wasm),
// not TypeScript; the root tsconfig still sees this file, so type checking is off for tsc.
//
// The word2vec hot loops as a WebAssembly SIMD128 kernel: one call trains one (already
// subsampled) sentence, skip-gram or CBOW, negative sampling and/or hierarchical softmax, on
// the weights in the imported shared memory, which every worker thread updates without locks
// (Hogwild, as word2vec.c). Reference: trainRange/predict in ../word2vec-kernel.ts; the two
// draw the same random numbers in the same order (xorshift32: window shrink, then negatives).
// A prediction whose output rows are distinct (unless a negative was drawn twice) takes all its
// dot products first and then updates its rows in one pass, the input gradient in registers
// (runChainFused; update6 for the six rows of negative 5); otherwise one row after the other (runChain).
// Skip-gram with hierarchical softmax alone, or with negatives shared by a position's contexts
// (the sharedNegatives option), goes row by row through a position's predictions (hsPosition):
// the same updates in the same order, with far less traffic on the tree's top rows that all
// threads share and on the random rows of the negatives.
//
// Module globals are per instance, so per thread: the layout (byte offsets set by `setup`),
// this thread's scratch (neu1, neu1e, sentence), its random state and its pair count, and
// (threads > 1, the hotWords option) where its own copies of the frequent words' rows are: input
// and output rows of those words are addressed through inRow/outRow, and syncHot merges them.

const MAX_EXP: f64 = 6;
const EXP_SCALE: f64 = 1000.0 / 12.0;   // EXP_TABLE_SIZE / MAX_EXP / 2
const LOSS_TABLE_SIZE: f64 = 4096;
const MAX_CODE_LENGTH: i32 = 40;

let dim: i32 = 0;
let rowBytes: usize = 0;
let syn0: usize = 0;
let syn1: usize = 0;
let syn1neg: usize = 0;
let table: usize = 0;
let tableSize: u32 = 0;   // words in the alias table (8 bytes each: threshold u32, alias i32)
let codes: usize = 0;
let points: usize = 0;
let codeLen: usize = 0;
let expTab: usize = 0;
let lossTab: usize = 0;
let neu1: usize = 0;
let neu1e: usize = 0;
let sen: usize = 0;
let negs: usize = 0;      // the negatives drawn ahead for one block of positions
let negAt: usize = 0;     // next one to use
let sink: i32 = 0;
let rngState: u32 = 1;
let pairs: i32 = 0;
// Hot rows (threads > 1; see setHot): this thread's own copies of the input (syn0) and output
// (syn1neg) rows of words 0..hotN-1, the most frequent, at hotIn and hotOut, and the shared rows'
// values at the last merge at hotIn0 and hotOut0. hotN = 0: every row is the shared one.
let hotN: u32 = 0;
let hotIn: usize = 0;
let hotOut: usize = 0;
let hotIn0: usize = 0;
let hotOut0: usize = 0;

/** Where everything lives (byte offsets into the shared memory; 0 = absent). */
export function setup(
  dim_: i32, syn0_: usize, syn1_: usize, syn1neg_: usize, table_: usize, tableSize_: u32,
  codes_: usize, points_: usize, codeLen_: usize, expTab_: usize, lossTab_: usize,
  neu1_: usize, neu1e_: usize, sen_: usize, negs_: usize,
): void {
  dim = dim_; rowBytes = (<usize>dim_) << 2;
  syn0 = syn0_; syn1 = syn1_; syn1neg = syn1neg_; table = table_; tableSize = tableSize_;
  codes = codes_; points = points_; codeLen = codeLen_; expTab = expTab_; lossTab = lossTab_;
  neu1 = neu1_; neu1e = neu1e_; sen = sen_; negs = negs_;
}
/**
 * Give this thread its own copies of the input and output rows of words 0..n-1 (the vocabulary is
 * sorted by frequency: the words whose rows every thread reads and writes most), in 4·n rows at
 * `at`: copy of syn0, copy of syn1neg (when present), then the two snapshots. With two threads on
 * two cores the shared rows of those words moved between the cores' caches on nearly every update;
 * the copies stay in this core's cache, and syncHot merges them into the shared rows. Call
 * syncHot once before training (it fills the copies); n = 0 turns the copies off.
 */
export function setHot(n: u32, at: usize): void {
  hotN = n;
  const block = (<usize>n) * rowBytes;
  hotIn = at; hotOut = at + block; hotIn0 = at + 2 * block; hotOut0 = at + 3 * block;
}

/** Each hot row: shared += copy − snapshot (this thread's updates since the last merge), then copy = snapshot = shared. */
function mergeRows(shared: usize, copy: usize, snap: usize, bytes: usize): void {
  let o: usize = 0;
  for (; o + 16 <= bytes; o += 16) {
    const v = f32x4.add(v128.load(shared + o), f32x4.sub(v128.load(copy + o), v128.load(snap + o)));
    v128.store(shared + o, v); v128.store(copy + o, v); v128.store(snap + o, v);
  }
  for (; o < bytes; o += 4) {
    const v = load<f32>(shared + o) + (load<f32>(copy + o) - load<f32>(snap + o));
    store<f32>(shared + o, v); store<f32>(copy + o, v); store<f32>(snap + o, v);
  }
}

/** Merge this thread's hot copies into the shared rows and refresh them (a no-op without hot rows). */
export function syncHot(): void {
  if (hotN == 0) return;
  const bytes = (<usize>hotN) * rowBytes;
  mergeRows(syn0, hotIn, hotIn0, bytes);
  if (syn1neg) mergeRows(syn1neg, hotOut, hotOut0, bytes);
}

/** Address of word w's input row: this thread's copy for a hot word, else the shared row. */
// @ts-ignore: decorator
@inline function inRow(w: i32): usize {
  return (<u32>w < hotN ? hotIn : syn0) + <usize>w * rowBytes;
}

/** Address of word w's negative-sampling output row (as inRow). */
// @ts-ignore: decorator
@inline function outRow(w: i32): usize {
  return (<u32>w < hotN ? hotOut : syn1neg) + <usize>w * rowBytes;
}

/** Positions whose random draws are made ahead at once. The buffer at `negs` holds
 *  DRAW_BLOCK window shrinks, DRAW_BLOCK × 2·window × negative draws, and the chain of one
 *  prediction: 2 × (MAX_CODE_LENGTH + negative + 1) i32. */
const DRAW_BLOCK: i32 = 8;
export function drawBlock(): i32 { return DRAW_BLOCK; }
export function setRng(s: u32): void { rngState = s; }
export function getRng(): u32 { return rngState; }
/** Predictions made since the last call (and reset). */
export function takePairs(): i32 { const p = pairs; pairs = 0; return p; }
/** End of the module's own static data: the layout must start above it. */
export function heapBase(): usize { return __heap_base; }

/** A negative from the alias table with the random number r (aliasDraw in ../word2vec-kernel.ts):
 *  the entry (threshold, alias) read in one load and the choice made without a branch (the
 *  comparison is a coin toss for most words, which a branch would mispredict). */
// @ts-ignore: decorator
@inline function aliasDraw(r: u32, tab: usize, size: u32): i32 {
  const p = (<u64>r) * (<u64>size);
  const i = p >> 32;
  const e = load<u64>(tab + ((<usize>i) << 3));
  return select<i32>(<i32>i, <i32>(e >> 32), <u32>p < <u32>e);
}

// @ts-ignore: decorator
@inline function fma4(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/** Σ a[i]·b[i] over dim floats. */
// @ts-ignore: decorator
@inline function dot(a: usize, b: usize): f32 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  const n = dim;
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const o = (<usize>i) << 2;
    s0 = fma4(v128.load(a + o), v128.load(b + o), s0);
    s1 = fma4(v128.load(a + o, 16), v128.load(b + o, 16), s1);
    s2 = fma4(v128.load(a + o, 32), v128.load(b + o, 32), s2);
    s3 = fma4(v128.load(a + o, 48), v128.load(b + o, 48), s3);
  }
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    s0 = fma4(v128.load(a + o), v128.load(b + o), s0);
  }
  const s = f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3));
  let r = f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1) + f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3);
  for (; i < n; i++) {
    const o = (<usize>i) << 2;
    r += load<f32>(a + o) * load<f32>(b + o);
  }
  return r;
}

/** neu1e += g·w; w += g·inp (w read once, before its update). */
// @ts-ignore: decorator
@inline function update(inp: usize, w: usize, g: f32): void {
  const gv = f32x4.splat(g);
  const e = neu1e, n = dim;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = (<usize>i) << 2;
    const w0 = v128.load(w + o), w1 = v128.load(w + o, 16);
    v128.store(e + o, fma4(gv, w0, v128.load(e + o)));
    v128.store(e + o, fma4(gv, w1, v128.load(e + o, 16)), 16);
    v128.store(w + o, fma4(gv, v128.load(inp + o), w0));
    v128.store(w + o, fma4(gv, v128.load(inp + o, 16), w1), 16);
  }
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    const w0 = v128.load(w + o);
    v128.store(e + o, fma4(gv, w0, v128.load(e + o)));
    v128.store(w + o, fma4(gv, v128.load(inp + o), w0));
  }
  for (; i < n; i++) {
    const o = (<usize>i) << 2;
    const wi = load<f32>(w + o);
    store<f32>(e + o, load<f32>(e + o) + g * wi);
    store<f32>(w + o, wi + g * load<f32>(inp + o));
  }
}

// @ts-ignore: decorator
@inline function zero(p: usize): void {
  const z = f32x4.splat(0), n = dim;
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(p + ((<usize>i) << 2), z);
  for (; i < n; i++) store<f32>(p + ((<usize>i) << 2), 0);
}

/** dst += src over dim floats. */
// @ts-ignore: decorator
@inline function addTo(dst: usize, src: usize): void {
  const n = dim;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = (<usize>i) << 2;
    v128.store(dst + o, f32x4.add(v128.load(dst + o), v128.load(src + o)));
    v128.store(dst + o, f32x4.add(v128.load(dst + o, 16), v128.load(src + o, 16)), 16);
  }
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    v128.store(dst + o, f32x4.add(v128.load(dst + o), v128.load(src + o)));
  }
  for (; i < n; i++) {
    const o = (<usize>i) << 2;
    store<f32>(dst + o, load<f32>(dst + o) + load<f32>(src + o));
  }
}

/**
 * neu1 = (Σ of the C rows at ctxA) / C, the sum taken in their order from zero as the reference's
 * neu1 += row, then divided (not multiplied by a reciprocal: the reference's rounding); one pass
 * with the partial sums in registers.
 */
function meanRows(C: i32): void {
  const n = dim, p = neu1, cv = f32x4.splat(<f32>C), cf = <f32>C;
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const o = (<usize>i) << 2;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    for (let j = 0; j < C; j++) {
      const x = (<usize>load<i32>(ctxA + ((<usize>j) << 2))) + o;
      a0 = f32x4.add(a0, v128.load(x)); a1 = f32x4.add(a1, v128.load(x, 16));
      a2 = f32x4.add(a2, v128.load(x, 32)); a3 = f32x4.add(a3, v128.load(x, 48));
    }
    v128.store(p + o, f32x4.div(a0, cv)); v128.store(p + o, f32x4.div(a1, cv), 16);
    v128.store(p + o, f32x4.div(a2, cv), 32); v128.store(p + o, f32x4.div(a3, cv), 48);
  }
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    let a0 = f32x4.splat(0);
    for (let j = 0; j < C; j++) a0 = f32x4.add(a0, v128.load((<usize>load<i32>(ctxA + ((<usize>j) << 2))) + o));
    v128.store(p + o, f32x4.div(a0, cv));
  }
  for (; i < n; i++) {
    const o = (<usize>i) << 2;
    let a: f32 = 0;
    for (let j = 0; j < C; j++) a += load<f32>((<usize>load<i32>(ctxA + ((<usize>j) << 2))) + o);
    store<f32>(p + o, a / cf);
  }
}

/** Each of the C rows at ctxA += neu1e, in their order (a row listed twice takes it twice); neu1e read once. */
function addToRows(C: i32): void {
  const n = dim, e = neu1e;
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const o = (<usize>i) << 2;
    const e0 = v128.load(e + o), e1 = v128.load(e + o, 16), e2 = v128.load(e + o, 32), e3 = v128.load(e + o, 48);
    for (let j = 0; j < C; j++) {
      const x = (<usize>load<i32>(ctxA + ((<usize>j) << 2))) + o;
      v128.store(x, f32x4.add(v128.load(x), e0)); v128.store(x, f32x4.add(v128.load(x, 16), e1), 16);
      v128.store(x, f32x4.add(v128.load(x, 32), e2), 32); v128.store(x, f32x4.add(v128.load(x, 48), e3), 48);
    }
  }
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    const e0 = v128.load(e + o);
    for (let j = 0; j < C; j++) {
      const x = (<usize>load<i32>(ctxA + ((<usize>j) << 2))) + o;
      v128.store(x, f32x4.add(v128.load(x), e0));
    }
  }
  for (; i < n; i++) {
    const o = (<usize>i) << 2;
    const ei = load<f32>(e + o);
    for (let j = 0; j < C; j++) {
      const x = (<usize>load<i32>(ctxA + ((<usize>j) << 2))) + o;
      store<f32>(x, load<f32>(x) + ei);
    }
  }
}

/** log(1 + e) for 0 < e ≤ e^-6 (the series to e^4/4 < 1e-11: one exp instead of exp and log1p). */
// @ts-ignore: decorator
@inline function log1pSmall(e: f64): f64 { return e * (1 - e * (0.5 - e * (1.0 / 3.0))); }

/** -log σ(x), as nls() in ../word2vec-kernel.ts. */
// @ts-ignore: decorator
@inline function nls(x: f64): f64 {
  if (x >= MAX_EXP) return log1pSmall(Math.exp(-x));
  if (x <= -MAX_EXP) return -x + log1pSmall(Math.exp(x));
  const i = <i32>((x + MAX_EXP) * (LOSS_TABLE_SIZE / (2 * MAX_EXP)) + 0.5);   // ≥ 0: truncation is the floor
  return load<f64>(lossTab + ((<usize>i) << 3));
}

// @ts-ignore: decorator
@inline function sigmoid(f: f32): f32 {
  return load<f32>(expTab + ((<usize>(<i32>((<f64>f + MAX_EXP) * EXP_SCALE))) << 2));
}

/**
 * neu1e += g·w; w += g·inp, and in the same pass Σ inp·wn (the next row's dot product). The
 * next row may be the same row as w (a repeated negative): each chunk of wn is read after that
 * chunk of w is stored, so it sees the update, as the reference does.
 */
// @ts-ignore: decorator
@inline function updateDot(inp: usize, w: usize, g: f32, wn: usize): f32 {
  const gv = f32x4.splat(g);
  const e = neu1e, n = dim;
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const o = (<usize>i) << 2;
    const x0 = v128.load(inp + o), x1 = v128.load(inp + o, 16), x2 = v128.load(inp + o, 32), x3 = v128.load(inp + o, 48);
    const w0 = v128.load(w + o), w1 = v128.load(w + o, 16), w2 = v128.load(w + o, 32), w3 = v128.load(w + o, 48);
    v128.store(e + o, fma4(gv, w0, v128.load(e + o)));
    v128.store(e + o, fma4(gv, w1, v128.load(e + o, 16)), 16);
    v128.store(e + o, fma4(gv, w2, v128.load(e + o, 32)), 32);
    v128.store(e + o, fma4(gv, w3, v128.load(e + o, 48)), 48);
    v128.store(w + o, fma4(gv, x0, w0));
    v128.store(w + o, fma4(gv, x1, w1), 16);
    v128.store(w + o, fma4(gv, x2, w2), 32);
    v128.store(w + o, fma4(gv, x3, w3), 48);
    s0 = fma4(x0, v128.load(wn + o), s0);
    s1 = fma4(x1, v128.load(wn + o, 16), s1);
    s2 = fma4(x2, v128.load(wn + o, 32), s2);
    s3 = fma4(x3, v128.load(wn + o, 48), s3);
  }
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    const x0 = v128.load(inp + o), w0 = v128.load(w + o);
    v128.store(e + o, fma4(gv, w0, v128.load(e + o)));
    v128.store(w + o, fma4(gv, x0, w0));
    s0 = fma4(x0, v128.load(wn + o), s0);
  }
  const s = f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3));
  let r = f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1) + f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3);
  for (; i < n; i++) {
    const o = (<usize>i) << 2;
    const x = load<f32>(inp + o), wi = load<f32>(w + o);
    store<f32>(e + o, load<f32>(e + o) + g * wi);
    store<f32>(w + o, wi + g * x);
    r += x * load<f32>(wn + o);
  }
  return r;
}

// Kinds of output rows in a prediction's chain.
const NS0: i32 = 0, NS1: i32 = 1, HS0: i32 = 2, HS1: i32 = 3;   // negative sampling label 0/1, HS code 0/1
let chain: usize = 0;   // (row address, kind) pairs of the current prediction
let chainRepeats = false;   // set by buildChain: a negative's row listed twice in the chain
let chainG: usize = 0;      // the gradients of the chain's rows (f32), runChainFused's

/**
 * List the output rows of one prediction of `target` in chain, as the reference visits them: the
 * Huffman path, then the target and the negatives. The negatives are read from negAt: drawn
 * ahead for this prediction (which then advances negAt past them, skipping only the target, as
 * word2vec.c), or with `shared` the position's one set for all its predictions (negAt is left
 * where it is; a draw equal to the target or to an earlier draw is skipped, so that the rows are
 * distinct). Returns the number of rows.
 */
function buildChain(target: i32, negative: i32, hs: bool, shared: bool): i32 {
  let m: usize = 0;
  chainRepeats = false;
  if (hs) {
    const base = <usize>(target * MAX_CODE_LENGTH);
    const len = <usize>load<u8>(codeLen + <usize>target);
    for (let d: usize = 0; d < len; d++) {
      store<i32>(chain + (m << 3), <i32>(syn1 + <usize>load<i32>(points + ((base + d) << 2)) * rowBytes));
      store<i32>(chain + (m << 3), load<u8>(codes + base + d) ? HS1 : HS0, 4);
      m++;
    }
  }
  if (negative > 0) {
    const first = m;
    store<i32>(chain + (m << 3), <i32>outRow(target));
    store<i32>(chain + (m << 3), NS1, 4);
    m++;
    for (let d = 0; d < negative; d++) {
      const t = load<i32>(negAt + ((<usize>d) << 2));
      if (t == target) continue;
      const row = <i32>outRow(t);
      let seen = false;
      for (let q = first + 1; q < m; q++) if (load<i32>(chain + (q << 3)) == row) seen = true;
      if (seen) {
        if (shared) continue;
        chainRepeats = true;
      }
      store<i32>(chain + (m << 3), row);
      store<i32>(chain + (m << 3), NS0, 4);
      m++;
    }
    if (!shared) negAt += (<usize>negative) << 2;
  }
  return <i32>m;
}

/**
 * One prediction from the input vector at `inp` of the m output rows listed in chain (buildChain):
 * accumulates the input gradient into neu1e, updates the output weights, returns the loss -log p.
 * Each row's update runs in one pass with the next row's dot product.
 */
function runChain(inp: usize, m_: i32, alpha: f32): f64 {
  const m = <usize>m_;
  let loss: f64 = 0;
  let w = <usize>load<i32>(chain);
  let f = dot(inp, w);
  for (let k: usize = 0; k < m; k++) {
    const kind = load<i32>(chain + (k << 3), 4);
    loss += kindLoss(kind, f);
    const g = kindGrad(kind, f, alpha);
    // A Huffman node outside the sigmoid table's range is not updated (word2vec.c).
    const upd = kind < HS0 || (f > <f32>-MAX_EXP && f < <f32>MAX_EXP);
    if (k + 1 < m) {
      const wn = <usize>load<i32>(chain + ((k + 1) << 3));
      f = upd ? updateDot(inp, w, g, wn) : dot(inp, wn);
      w = wn;
    } else if (upd) update(inp, w, g);
  }
  return loss;
}

let dotB: f32 = 0;   // second result of dot2
/** Σ a·b1 (returned) and Σ a·b2 (in dotB) in one pass over a; the same sums as dot(). */
// @ts-ignore: decorator
@inline function dot2(a: usize, b1: usize, b2: usize): f32 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let t0 = f32x4.splat(0), t1 = f32x4.splat(0), t2 = f32x4.splat(0), t3 = f32x4.splat(0);
  const n = dim;
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const o = (<usize>i) << 2;
    const x0 = v128.load(a + o), x1 = v128.load(a + o, 16), x2 = v128.load(a + o, 32), x3 = v128.load(a + o, 48);
    s0 = fma4(x0, v128.load(b1 + o), s0);
    s1 = fma4(x1, v128.load(b1 + o, 16), s1);
    s2 = fma4(x2, v128.load(b1 + o, 32), s2);
    s3 = fma4(x3, v128.load(b1 + o, 48), s3);
    t0 = fma4(x0, v128.load(b2 + o), t0);
    t1 = fma4(x1, v128.load(b2 + o, 16), t1);
    t2 = fma4(x2, v128.load(b2 + o, 32), t2);
    t3 = fma4(x3, v128.load(b2 + o, 48), t3);
  }
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    const x0 = v128.load(a + o);
    s0 = fma4(x0, v128.load(b1 + o), s0);
    t0 = fma4(x0, v128.load(b2 + o), t0);
  }
  const s = f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3));
  const t = f32x4.add(f32x4.add(t0, t1), f32x4.add(t2, t3));
  let r = f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1) + f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3);
  let q = f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1) + f32x4.extract_lane(t, 2) + f32x4.extract_lane(t, 3);
  for (; i < n; i++) {
    const o = (<usize>i) << 2;
    const x = load<f32>(a + o);
    r += x * load<f32>(b1 + o);
    q += x * load<f32>(b2 + o);
  }
  dotB = q;
  return r;
}

// Skip-gram with hierarchical softmax alone (hsPosition), in this thread's scratch: the input rows
// of one position's C contexts at ctxA (addresses, i32), their dot products with one path row at
// hsD (f32), their gradients for two rows at hsGM and hsGM2 (f32), their Gram matrix at hsGram
// ([j][j'], f32, stride ctxCap = 2·window) and their input gradients at hsE (C rows of dim f32).
let ctxA: usize = 0, hsD: usize = 0, hsGM: usize = 0, hsGM2: usize = 0, hsGram: usize = 0, hsE: usize = 0;
let ctxCap: i32 = 0;

/** Σ w·a, w·b, w·c, w·d over dim floats in one pass over w, as the lanes of the result. */
// @ts-ignore: decorator
@inline function dot4(w: usize, a: usize, b: usize, c: usize, d: usize): v128 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), b0 = f32x4.splat(0), b1 = f32x4.splat(0);
  let c0 = f32x4.splat(0), c1 = f32x4.splat(0), d0 = f32x4.splat(0), d1 = f32x4.splat(0);
  const n = dim;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = (<usize>i) << 2;
    const w0 = v128.load(w + o), w1 = v128.load(w + o, 16);
    a0 = fma4(w0, v128.load(a + o), a0); a1 = fma4(w1, v128.load(a + o, 16), a1);
    b0 = fma4(w0, v128.load(b + o), b0); b1 = fma4(w1, v128.load(b + o, 16), b1);
    c0 = fma4(w0, v128.load(c + o), c0); c1 = fma4(w1, v128.load(c + o, 16), c1);
    d0 = fma4(w0, v128.load(d + o), d0); d1 = fma4(w1, v128.load(d + o, 16), d1);
  }
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    const w0 = v128.load(w + o);
    a0 = fma4(w0, v128.load(a + o), a0); b0 = fma4(w0, v128.load(b + o), b0);
    c0 = fma4(w0, v128.load(c + o), c0); d0 = fma4(w0, v128.load(d + o), d0);
  }
  // Transpose-and-add: lane j of the result is the sum of context j's lanes.
  const sa = f32x4.add(a0, a1), sb = f32x4.add(b0, b1), sc = f32x4.add(c0, c1), sd = f32x4.add(d0, d1);
  const ab = f32x4.add(v128.shuffle<f32>(sa, sb, 0, 2, 4, 6), v128.shuffle<f32>(sa, sb, 1, 3, 5, 7));   // a01 a23 b01 b23
  const cd = f32x4.add(v128.shuffle<f32>(sc, sd, 0, 2, 4, 6), v128.shuffle<f32>(sc, sd, 1, 3, 5, 7));
  let r = f32x4.add(v128.shuffle<f32>(ab, cd, 0, 2, 4, 6), v128.shuffle<f32>(ab, cd, 1, 3, 5, 7));   // a b c d
  for (; i < n; i++) {
    const o = (<usize>i) << 2;
    const wi = f32x4.splat(load<f32>(w + o));
    const x = f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(load<f32>(a + o)), 1, load<f32>(b + o)), 2, load<f32>(c + o)), 3, load<f32>(d + o));
    r = fma4(wi, x, r);
  }
  return r;
}

/** A chain row's loss −log p from its dot product f (kind: HS0 + the Huffman code bit, or the NS label). */
// @ts-ignore: decorator
@inline function kindLoss(kind: i32, f: f32): f64 {
  if (kind >= HS0) return nls(kind - HS0 ? -<f64>f : <f64>f);
  return nls(kind ? <f64>f : -<f64>f);
}

/** A chain row's gradient (times alpha) from its dot product f: 0 for a Huffman node outside the sigmoid table's range, clipped labels for negative sampling (word2vec.c). */
// @ts-ignore: decorator
@inline function kindGrad(kind: i32, f: f32, alpha: f32): f32 {
  if (kind >= HS0) {
    if (f <= <f32>-MAX_EXP || f >= <f32>MAX_EXP) return 0;
    return ((kind - HS0 ? <f32>0 : <f32>1) - sigmoid(f)) * alpha;
  }
  const label = <f32>kind;
  if (f > <f32>MAX_EXP) return (label - 1) * alpha;
  if (f < <f32>-MAX_EXP) return label * alpha;
  return (label - sigmoid(f)) * alpha;
}

/** Row k of the chain: its loss and gradient from its dot product f, the gradient stored at chainG. */
// @ts-ignore: decorator
@inline function chainGrad(k: usize, f: f32, alpha: f32): f64 {
  const kind = load<i32>(chain + (k << 3), 4);
  store<f32>(chainG + (k << 2), kindGrad(kind, f, alpha));
  return kindLoss(kind, f);
}

/**
 * chainGrad for rows k..k+3 of the chain, their dot products the lanes of d, added to `loss` in
 * row order: in SIMD when the four are negative-sampling rows with |f| < MAX_EXP (nearly every
 * time), else row by row. The same values as chainGrad: the table indices from the same f64
 * arithmetic as sigmoid() and nls(), the gradients (label − σ)·alpha in f32, the four losses
 * added one after the other.
 */
// @ts-ignore: decorator
@inline function chainGrad4(k: usize, d: v128, alpha: f32, loss: f64): f64 {
  const q = chain + (k << 3);
  const k0 = load<i32>(q, 4), k1 = load<i32>(q, 12), k2 = load<i32>(q, 20), k3 = load<i32>(q, 28);
  if (((k0 | k1 | k2 | k3) & HS0) != 0 || !i32x4.all_true(f32x4.lt(f32x4.abs(d), f32x4.splat(<f32>MAX_EXP)))) {
    loss += chainGrad(k, f32x4.extract_lane(d, 0), alpha);
    loss += chainGrad(k + 1, f32x4.extract_lane(d, 1), alpha);
    loss += chainGrad(k + 2, f32x4.extract_lane(d, 2), alpha);
    loss += chainGrad(k + 3, f32x4.extract_lane(d, 3), alpha);
    return loss;
  }
  const lo = f64x2.promote_low_f32x4(d), hi = f64x2.promote_low_f32x4(v128.shuffle<f32>(d, d, 2, 3, 0, 1));
  // Sigmoid table indices, as sigmoid(): ⌊(f + MAX_EXP)·EXP_SCALE⌋ (≥ 0).
  const six = f64x2.splat(MAX_EXP), es = f64x2.splat(EXP_SCALE);
  const sl = i32x4.trunc_sat_f64x2_s_zero(f64x2.mul(f64x2.add(lo, six), es));
  const sh = i32x4.trunc_sat_f64x2_s_zero(f64x2.mul(f64x2.add(hi, six), es));
  const et = expTab;
  let sig = f32x4.splat(load<f32>(et + ((<usize>i32x4.extract_lane(sl, 0)) << 2)));
  sig = f32x4.replace_lane(sig, 1, load<f32>(et + ((<usize>i32x4.extract_lane(sl, 1)) << 2)));
  sig = f32x4.replace_lane(sig, 2, load<f32>(et + ((<usize>i32x4.extract_lane(sh, 0)) << 2)));
  sig = f32x4.replace_lane(sig, 3, load<f32>(et + ((<usize>i32x4.extract_lane(sh, 1)) << 2)));
  const kinds = i32x4.replace_lane(i32x4.replace_lane(i32x4.replace_lane(i32x4.splat(k0), 1, k1), 2, k2), 3, k3);
  const label = f32x4.convert_i32x4_s(kinds);
  v128.store(chainG + (k << 2), f32x4.mul(f32x4.sub(label, sig), f32x4.splat(alpha)));
  // Losses, as nls(label ? f : −f): the table at ⌊(x + MAX_EXP)·LOSS_TABLE_SIZE/(2·MAX_EXP) + 0.5⌋.
  const one = f64x2.splat(1), neg = f64x2.splat(-1);
  const sgnLo = v128.bitselect(one, neg, i64x2.ne(i64x2.extend_low_i32x4_s(kinds), i64x2.splat(0)));
  const sgnHi = v128.bitselect(one, neg, i64x2.ne(i64x2.extend_high_i32x4_s(kinds), i64x2.splat(0)));
  const ls = f64x2.splat(LOSS_TABLE_SIZE / (2 * MAX_EXP)), half = f64x2.splat(0.5);
  const ll = i32x4.trunc_sat_f64x2_s_zero(f64x2.add(f64x2.mul(f64x2.add(f64x2.mul(lo, sgnLo), six), ls), half));
  const lh = i32x4.trunc_sat_f64x2_s_zero(f64x2.add(f64x2.mul(f64x2.add(f64x2.mul(hi, sgnHi), six), ls), half));
  const lt = lossTab;
  loss += load<f64>(lt + ((<usize>i32x4.extract_lane(ll, 0)) << 3));
  loss += load<f64>(lt + ((<usize>i32x4.extract_lane(ll, 1)) << 3));
  loss += load<f64>(lt + ((<usize>i32x4.extract_lane(lh, 0)) << 3));
  loss += load<f64>(lt + ((<usize>i32x4.extract_lane(lh, 1)) << 3));
  return loss;
}

/** chainGrad4 for the two rows k, k+1 (dot products f0, f1). */
// @ts-ignore: decorator
@inline function chainGrad2(k: usize, f0: f32, f1: f32, alpha: f32, loss: f64): f64 {
  const q = chain + (k << 3);
  const k0 = load<i32>(q, 4), k1 = load<i32>(q, 12);
  if (((k0 | k1) & HS0) != 0 || !(Mathf.abs(f0) < <f32>MAX_EXP) || !(Mathf.abs(f1) < <f32>MAX_EXP)) {
    loss += chainGrad(k, f0, alpha);
    loss += chainGrad(k + 1, f1, alpha);
    return loss;
  }
  const x = f64x2.replace_lane(f64x2.splat(<f64>f0), 1, <f64>f1);
  const six = f64x2.splat(MAX_EXP);
  const si = i32x4.trunc_sat_f64x2_s_zero(f64x2.mul(f64x2.add(x, six), f64x2.splat(EXP_SCALE)));
  const s0 = load<f32>(expTab + ((<usize>i32x4.extract_lane(si, 0)) << 2));
  const s1 = load<f32>(expTab + ((<usize>i32x4.extract_lane(si, 1)) << 2));
  store<f32>(chainG + (k << 2), (<f32>k0 - s0) * alpha);
  store<f32>(chainG + (k << 2), (<f32>k1 - s1) * alpha, 4);
  const sgn = f64x2.replace_lane(f64x2.splat(k0 ? 1.0 : -1.0), 1, k1 ? 1.0 : -1.0);
  const li = i32x4.trunc_sat_f64x2_s_zero(f64x2.add(f64x2.mul(f64x2.add(f64x2.mul(x, sgn), six), f64x2.splat(LOSS_TABLE_SIZE / (2 * MAX_EXP))), f64x2.splat(0.5)));
  loss += load<f64>(lossTab + ((<usize>i32x4.extract_lane(li, 0)) << 3));
  loss += load<f64>(lossTab + ((<usize>i32x4.extract_lane(li, 1)) << 3));
  return loss;
}

/**
 * runChainFused's update pass for a chain of six rows (negative sampling with 5 negatives: the
 * target and five distinct negatives, nearly every prediction): the same arithmetic in the same
 * order (each lane's input gradient summed over the rows in chain order), with the rows' addresses
 * and gradients held in locals instead of reloaded from the chain for every chunk of every row,
 * 8 floats a step so that everything stays in the 16 vector registers.
 */
function update6(inp: usize, addInto: bool): void {
  const q = chain, gq = chainG;
  const r0 = <usize>load<i32>(q), r1 = <usize>load<i32>(q, 8), r2 = <usize>load<i32>(q, 16);
  const r3 = <usize>load<i32>(q, 24), r4 = <usize>load<i32>(q, 32), r5 = <usize>load<i32>(q, 40);
  const g0 = v128.load32_splat(gq), g1 = v128.load32_splat(gq, 4), g2 = v128.load32_splat(gq, 8);
  const g3 = v128.load32_splat(gq, 12), g4 = v128.load32_splat(gq, 16), g5 = v128.load32_splat(gq, 20);
  const n = dim, out = neu1e, z = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = (<usize>i) << 2;
    const x0 = v128.load(inp + o), x1 = v128.load(inp + o, 16);
    let a = v128.load(r0 + o), b = v128.load(r0 + o, 16);
    let e0 = fma4(g0, a, z), e1 = fma4(g0, b, z);
    v128.store(r0 + o, fma4(g0, x0, a)); v128.store(r0 + o, fma4(g0, x1, b), 16);
    a = v128.load(r1 + o); b = v128.load(r1 + o, 16);
    e0 = fma4(g1, a, e0); e1 = fma4(g1, b, e1);
    v128.store(r1 + o, fma4(g1, x0, a)); v128.store(r1 + o, fma4(g1, x1, b), 16);
    a = v128.load(r2 + o); b = v128.load(r2 + o, 16);
    e0 = fma4(g2, a, e0); e1 = fma4(g2, b, e1);
    v128.store(r2 + o, fma4(g2, x0, a)); v128.store(r2 + o, fma4(g2, x1, b), 16);
    a = v128.load(r3 + o); b = v128.load(r3 + o, 16);
    e0 = fma4(g3, a, e0); e1 = fma4(g3, b, e1);
    v128.store(r3 + o, fma4(g3, x0, a)); v128.store(r3 + o, fma4(g3, x1, b), 16);
    a = v128.load(r4 + o); b = v128.load(r4 + o, 16);
    e0 = fma4(g4, a, e0); e1 = fma4(g4, b, e1);
    v128.store(r4 + o, fma4(g4, x0, a)); v128.store(r4 + o, fma4(g4, x1, b), 16);
    a = v128.load(r5 + o); b = v128.load(r5 + o, 16);
    e0 = fma4(g5, a, e0); e1 = fma4(g5, b, e1);
    v128.store(r5 + o, fma4(g5, x0, a)); v128.store(r5 + o, fma4(g5, x1, b), 16);
    if (addInto) {
      v128.store(inp + o, f32x4.add(x0, e0)); v128.store(inp + o, f32x4.add(x1, e1), 16);
    } else {
      v128.store(out + o, e0); v128.store(out + o, e1, 16);
    }
  }
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    const x0 = v128.load(inp + o);
    let a = v128.load(r0 + o);
    let e0 = fma4(g0, a, z);
    v128.store(r0 + o, fma4(g0, x0, a));
    a = v128.load(r1 + o); e0 = fma4(g1, a, e0); v128.store(r1 + o, fma4(g1, x0, a));
    a = v128.load(r2 + o); e0 = fma4(g2, a, e0); v128.store(r2 + o, fma4(g2, x0, a));
    a = v128.load(r3 + o); e0 = fma4(g3, a, e0); v128.store(r3 + o, fma4(g3, x0, a));
    a = v128.load(r4 + o); e0 = fma4(g4, a, e0); v128.store(r4 + o, fma4(g4, x0, a));
    a = v128.load(r5 + o); e0 = fma4(g5, a, e0); v128.store(r5 + o, fma4(g5, x0, a));
    if (addInto) v128.store(inp + o, f32x4.add(x0, e0));
    else v128.store(out + o, e0);
  }
  const h0 = f32x4.extract_lane(g0, 0), h1 = f32x4.extract_lane(g1, 0), h2 = f32x4.extract_lane(g2, 0);
  const h3 = f32x4.extract_lane(g3, 0), h4 = f32x4.extract_lane(g4, 0), h5 = f32x4.extract_lane(g5, 0);
  for (; i < n; i++) {
    const o = (<usize>i) << 2;
    const x = load<f32>(inp + o);
    let w = load<f32>(r0 + o), e: f32 = h0 * w; store<f32>(r0 + o, w + h0 * x);
    w = load<f32>(r1 + o); e += h1 * w; store<f32>(r1 + o, w + h1 * x);
    w = load<f32>(r2 + o); e += h2 * w; store<f32>(r2 + o, w + h2 * x);
    w = load<f32>(r3 + o); e += h3 * w; store<f32>(r3 + o, w + h3 * x);
    w = load<f32>(r4 + o); e += h4 * w; store<f32>(r4 + o, w + h4 * x);
    w = load<f32>(r5 + o); e += h5 * w; store<f32>(r5 + o, w + h5 * x);
    if (addInto) store<f32>(inp + o, x + e);
    else store<f32>(out + o, e);
  }
}

/**
 * runChain when the chain's rows are distinct (no negative drawn twice, which buildChain reports
 * in chainRepeats): then no row's update changes another row's dot product, so all the dot
 * products are taken first, four rows to one pass over the input, and every row is then updated
 * in a second pass that keeps the input gradient in registers, summed over the rows in chain
 * order as runChain sums neu1e — the same arithmetic as runChain with about half the loads and
 * stores, and no neu1e in memory. At the end of the pass the input row takes the gradient
 * (`addInto`, skip-gram: the reference's syn0[l1] += neu1e), or the gradient is stored in neu1e
 * (CBOW adds it to every context row). The rows' gradients go to chainG; the chain is left as
 * it is (skip-gram by position reuses it for the position's contexts).
 */
function runChainFused(inp: usize, m_: i32, alpha: f32, addInto: bool): f64 {
  const m = <usize>m_;
  let loss: f64 = 0;
  let k: usize = 0;
  for (; k + 4 <= m; k += 4) {
    const q = chain + (k << 3);
    const d = dot4(inp, <usize>load<i32>(q), <usize>load<i32>(q, 8), <usize>load<i32>(q, 16), <usize>load<i32>(q, 24));
    loss = chainGrad4(k, d, alpha, loss);
  }
  if (k + 2 <= m) {
    const q = chain + (k << 3);
    const f = dot2(inp, <usize>load<i32>(q), <usize>load<i32>(q, 8));
    loss = chainGrad2(k, f, dotB, alpha, loss);
    k += 2;
  }
  if (k < m) loss += chainGrad(k, dot(inp, <usize>load<i32>(chain + (k << 3))), alpha);

  if (m == 6) {
    update6(inp, addInto);
    return loss;
  }
  const n = dim, out = neu1e, end = chain + (m << 3);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const o = (<usize>i) << 2;
    const x0 = v128.load(inp + o), x1 = v128.load(inp + o, 16), x2 = v128.load(inp + o, 32), x3 = v128.load(inp + o, 48);
    let e0 = f32x4.splat(0), e1 = f32x4.splat(0), e2 = f32x4.splat(0), e3 = f32x4.splat(0);
    for (let q = chain; q < end; q += 8) {
      const w = (<usize>load<i32>(q)) + o;
      const gv = v128.load32_splat(chainG + ((q - chain) >> 1));
      const w0 = v128.load(w), w1 = v128.load(w, 16), w2 = v128.load(w, 32), w3 = v128.load(w, 48);
      e0 = fma4(gv, w0, e0); e1 = fma4(gv, w1, e1); e2 = fma4(gv, w2, e2); e3 = fma4(gv, w3, e3);
      v128.store(w, fma4(gv, x0, w0)); v128.store(w, fma4(gv, x1, w1), 16);
      v128.store(w, fma4(gv, x2, w2), 32); v128.store(w, fma4(gv, x3, w3), 48);
    }
    if (addInto) {
      v128.store(inp + o, f32x4.add(x0, e0)); v128.store(inp + o, f32x4.add(x1, e1), 16);
      v128.store(inp + o, f32x4.add(x2, e2), 32); v128.store(inp + o, f32x4.add(x3, e3), 48);
    } else {
      v128.store(out + o, e0); v128.store(out + o, e1, 16); v128.store(out + o, e2, 32); v128.store(out + o, e3, 48);
    }
  }
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    const x0 = v128.load(inp + o);
    let e0 = f32x4.splat(0);
    for (let q = chain; q < end; q += 8) {
      const w = (<usize>load<i32>(q)) + o;
      const gv = v128.load32_splat(chainG + ((q - chain) >> 1));
      const w0 = v128.load(w);
      e0 = fma4(gv, w0, e0);
      v128.store(w, fma4(gv, x0, w0));
    }
    if (addInto) v128.store(inp + o, f32x4.add(x0, e0));
    else v128.store(out + o, e0);
  }
  for (; i < n; i++) {
    const o = (<usize>i) << 2;
    const x = load<f32>(inp + o);
    let e: f32 = 0;
    for (let q = chain; q < end; q += 8) {
      const w = (<usize>load<i32>(q)) + o;
      const g = load<f32>(chainG + ((q - chain) >> 1)), wi = load<f32>(w);
      e += g * wi;
      store<f32>(w, wi + g * x);
    }
    if (addInto) store<f32>(inp + o, x + e);
    else store<f32>(out + o, e);
  }
  return loss;
}

/**
 * Dot products of path row k (at w, as this position found it) with the C contexts, sharing the
 * row's loads, and the contexts' gradients for it in order (into gs), each dot product corrected
 * for the updates of the contexts before it (see hsPosition). Returns their loss.
 */
// @ts-ignore: decorator
@inline function hsRowGrad(C: i32, w: usize, k: i32, gs: usize, alpha: f32): f64 {
  let j = 0;
  for (; j + 4 <= C; j += 4) {
    const q = ctxA + ((<usize>j) << 2);
    v128.store(hsD + ((<usize>j) << 2), dot4(w, <usize>load<i32>(q), <usize>load<i32>(q, 4), <usize>load<i32>(q, 8), <usize>load<i32>(q, 12)));
  }
  if (j + 2 <= C) {
    const q = ctxA + ((<usize>j) << 2);
    store<f32>(hsD + ((<usize>j) << 2), dot2(w, <usize>load<i32>(q), <usize>load<i32>(q, 4)));
    store<f32>(hsD + ((<usize>j) << 2), dotB, 4);
    j += 2;
  }
  if (j < C) store<f32>(hsD + ((<usize>j) << 2), dot(w, <usize>load<i32>(ctxA + ((<usize>j) << 2))));
  const kind = load<i32>(chain + ((<usize>k) << 3), 4);
  const ns = kind < HS0, label = ns ? kind : 1 - (kind - HS0);
  const y: f32 = <f32>label, sgn: f64 = label ? 1 : -1;
  const GS = (<usize>ctxCap) << 2;
  let loss: f64 = 0;
  for (j = 0; j < C; j++) {
    let f = load<f32>(hsD + ((<usize>j) << 2));
    const gr = hsGram + (<usize>j) * GS;
    for (let q = 0; q < j; q++) f += load<f32>(gs + ((<usize>q) << 2)) * load<f32>(gr + ((<usize>q) << 2));
    loss += nls(sgn * <f64>f);
    let g: f32;
    if (ns) g = f > <f32>MAX_EXP ? (y - 1) * alpha : f < <f32>-MAX_EXP ? y * alpha : (y - sigmoid(f)) * alpha;
    else g = f > <f32>-MAX_EXP && f < <f32>MAX_EXP ? (y - sigmoid(f)) * alpha : <f32>0;
    store<f32>(gs + ((<usize>j) << 2), g);
  }
  return loss;
}

/**
 * The C skip-gram predictions of one position, its K output rows (distinct: the target's Huffman
 * path and/or the target and the position's shared negatives) listed by buildChain and the
 * contexts' input rows (distinct) at ctxA, as the one-by-one loop in trainSentence makes them
 * (runChain, then the input row takes neu1e, context after context), but row by row instead of
 * context by context. That order gives the same arithmetic:
 * each row takes the contexts' updates in their order, each context's input gradient sums over the
 * rows in their order, and no input row changes before the end. Only the dot products are formed
 * differently: context j's with row k as the contexts before it left it is
 *   x_j·w_k + Σ_{j'<j} g[j'][k] (x_j·x_j'),
 * from the dot products with the row as it was (sharing its loads, four contexts at a time) and
 * the contexts' Gram matrix, so that each row is read and written in one burst per position. The
 * rows near the top of the tree are on every path and every thread writes them: a burst per
 * position instead of two per prediction is what keeps their cache lines from bouncing between
 * cores (with two threads that traffic, not arithmetic, was most of the time). With shared
 * negatives the position reads K + 1 random rows instead of C·(K + 1).
 */
function hsPosition(C: i32, K: i32, alpha: f32): f64 {
  const n = dim, GS = (<usize>ctxCap) << 2;
  let loss: f64 = 0;
  // Gram matrix of the contexts, and their input gradients zeroed.
  for (let j = 0; j < C; j++) {
    const x = <usize>load<i32>(ctxA + ((<usize>j) << 2));
    const gr = hsGram + (<usize>j) * GS;
    let q = 0;
    for (; q + 2 <= j; q += 2) {
      store<f32>(gr + ((<usize>q) << 2), dot2(x, <usize>load<i32>(ctxA + ((<usize>q) << 2)), <usize>load<i32>(ctxA + ((<usize>q) << 2), 4)));
      store<f32>(gr + ((<usize>q) << 2), dotB, 4);
    }
    if (q < j) store<f32>(gr + ((<usize>q) << 2), dot(x, <usize>load<i32>(ctxA + ((<usize>q) << 2))));
    zero(hsE + (<usize>j) * rowBytes);
  }
  for (let k = 0; k < K; k += 2) {
    // Two rows at a time: their dot products and gradients, then the updates with the contexts'
    // inputs and input gradients loaded once for both. An odd last row is paired with neu1
    // (zero, unused in skip-gram) with zero gradients, which leaves it and the sums unchanged.
    const w = <usize>load<i32>(chain + ((<usize>k) << 3));
    loss += hsRowGrad(C, w, k, hsGM, alpha);
    let v = neu1;
    if (k + 1 < K) {
      v = <usize>load<i32>(chain + ((<usize>(k + 1)) << 3));
      loss += hsRowGrad(C, v, k + 1, hsGM2, alpha);
    } else for (let j = 0; j < C; j++) store<f32>(hsGM2 + ((<usize>j) << 2), 0);
    let i = 0;
    for (; i + 16 <= n; i += 16) {
      const o = (<usize>i) << 2;
      let w0 = v128.load(w + o), w1 = v128.load(w + o, 16), w2 = v128.load(w + o, 32), w3 = v128.load(w + o, 48);
      let v0 = v128.load(v + o), v1 = v128.load(v + o, 16), v2 = v128.load(v + o, 32), v3 = v128.load(v + o, 48);
      let e = hsE + o;
      for (let j = 0; j < C; j++) {
        const x = (<usize>load<i32>(ctxA + ((<usize>j) << 2))) + o;
        const gv = v128.load32_splat(hsGM + ((<usize>j) << 2)), hv = v128.load32_splat(hsGM2 + ((<usize>j) << 2));
        v128.store(e, fma4(hv, v0, fma4(gv, w0, v128.load(e))));
        v128.store(e, fma4(hv, v1, fma4(gv, w1, v128.load(e, 16))), 16);
        v128.store(e, fma4(hv, v2, fma4(gv, w2, v128.load(e, 32))), 32);
        v128.store(e, fma4(hv, v3, fma4(gv, w3, v128.load(e, 48))), 48);
        const x0 = v128.load(x), x1 = v128.load(x, 16), x2 = v128.load(x, 32), x3 = v128.load(x, 48);
        w0 = fma4(gv, x0, w0); w1 = fma4(gv, x1, w1); w2 = fma4(gv, x2, w2); w3 = fma4(gv, x3, w3);
        v0 = fma4(hv, x0, v0); v1 = fma4(hv, x1, v1); v2 = fma4(hv, x2, v2); v3 = fma4(hv, x3, v3);
        e += rowBytes;
      }
      v128.store(w + o, w0); v128.store(w + o, w1, 16); v128.store(w + o, w2, 32); v128.store(w + o, w3, 48);
      v128.store(v + o, v0); v128.store(v + o, v1, 16); v128.store(v + o, v2, 32); v128.store(v + o, v3, 48);
    }
    for (; i + 4 <= n; i += 4) {
      const o = (<usize>i) << 2;
      let w0 = v128.load(w + o), v0 = v128.load(v + o);
      let e = hsE + o;
      for (let j = 0; j < C; j++) {
        const gv = v128.load32_splat(hsGM + ((<usize>j) << 2)), hv = v128.load32_splat(hsGM2 + ((<usize>j) << 2));
        v128.store(e, fma4(hv, v0, fma4(gv, w0, v128.load(e))));
        const x0 = v128.load((<usize>load<i32>(ctxA + ((<usize>j) << 2))) + o);
        w0 = fma4(gv, x0, w0); v0 = fma4(hv, x0, v0);
        e += rowBytes;
      }
      v128.store(w + o, w0); v128.store(v + o, v0);
    }
    for (; i < n; i++) {
      const o = (<usize>i) << 2;
      let wi = load<f32>(w + o), vi = load<f32>(v + o);
      let e = hsE + o;
      for (let j = 0; j < C; j++) {
        const g = load<f32>(hsGM + ((<usize>j) << 2)), h = load<f32>(hsGM2 + ((<usize>j) << 2));
        store<f32>(e, load<f32>(e) + g * wi + h * vi);
        const x = load<f32>((<usize>load<i32>(ctxA + ((<usize>j) << 2))) + o);
        wi += g * x; vi += h * x;
        e += rowBytes;
      }
      store<f32>(w + o, wi); store<f32>(v + o, vi);
    }
  }
  // The contexts take their input gradients (the reference's syn0[l1] += neu1e).
  for (let j = 0; j < C; j++) addTo(<usize>load<i32>(ctxA + ((<usize>j) << 2)), hsE + (<usize>j) * rowBytes);
  return loss;
}

/** Read one word of each 64-byte line of a row, so that its cache misses overlap. */
// @ts-ignore: decorator
@inline function touch(row: usize, acc: i32): i32 {
  // Four lines a step: fewer instructions between the loads, so more of them are in flight.
  const rb = rowBytes;
  let o: usize = 0;
  for (; o + 256 <= rb; o += 256) acc ^= load<i32>(row + o) ^ load<i32>(row + o, 64) ^ load<i32>(row + o, 128) ^ load<i32>(row + o, 192);
  for (; o < rb; o += 64) acc ^= load<i32>(row + o);
  return acc;
}

/**
 * Train on the n word ids at `sen` (this thread's sentence buffer, subsampled by the caller).
 * Returns the summed loss; the number of predictions accumulates for takePairs().
 *
 * The reference draws, for each position, the window shrink and then the negatives of its
 * predictions (`negative` per context word in skip-gram, or per position with any context in
 * CBOW and with shared negatives). That count is known once the shrink is, so the draws for a
 * block of positions are made first, in the same order, and the rows they pick are touched before
 * the updates: the cache misses of the random rows then overlap instead of queueing one by one.
 */
export function trainSentence(n: i32, alpha: f32, window: i32, negative: i32, hs: bool, cbow: bool, sharedNeg: bool): f64 {
  let loss: f64 = 0;
  const reds = negs, drawn = negs + ((<usize>DRAW_BLOCK) << 2);
  chain = drawn + ((<usize>(DRAW_BLOCK * 2 * window * negative)) << 2);
  ctxCap = 2 * window;
  ctxA = chain + ((<usize>(2 * (MAX_CODE_LENGTH + negative + 1))) << 2);
  hsD = ctxA + ((<usize>ctxCap) << 2);
  hsGM = hsD + ((<usize>ctxCap) << 2);
  hsGM2 = hsGM + ((<usize>ctxCap) << 2);
  hsGram = hsGM2 + ((<usize>ctxCap) << 2);
  chainG = hsGram + ((<usize>(ctxCap * ctxCap)) << 2);
  hsE = (chainG + ((<usize>(MAX_CODE_LENGTH + negative + 1)) << 2) + 15) & ~15;
  // Skip-gram trains a position's predictions together (hsPosition) when they share their output
  // rows: hierarchical softmax alone, or negatives shared by the position's contexts.
  const shared = sharedNeg && !cbow && negative > 0;
  const byPosition = !cbow && (negative == 0 || shared);
  if (byPosition) zero(neu1);   // hsPosition's stand-in for a missing second row
  for (let b0 = 0; b0 < n; b0 += DRAW_BLOCK) {
    const b1 = min(n, b0 + DRAW_BLOCK);
    // Draw ahead: window shrinks, then the negatives of every prediction of the block.
    // (The random state and the table in locals: as globals they would be loaded and stored
    // around every draw.)
    let at = drawn;
    let x = rngState;
    const tab = table, size = tableSize;
    for (let pos = b0; pos < b1; pos++) {
      x ^= x << 13; x ^= x >> 17; x ^= x << 5;
      const red = <i32>(x % <u32>window);
      store<i32>(reds + ((<usize>(pos - b0)) << 2), red);
      if (negative > 0) {
        const lo = max(0, pos - window + red), hi = min(n - 1, pos + window - red);
        const k = cbow || shared ? (hi > lo ? negative : 0) : (hi - lo) * negative;
        for (let q = 0; q < k; q++) {
          x ^= x << 13; x ^= x >> 17; x ^= x << 5;
          store<i32>(at, aliasDraw(x, tab, size));
          at += 4;
        }
      }
    }
    rngState = x;
    // Touch the rows the block will read: negatives' output rows, the window's input rows.
    let acc = 0;
    for (let q = drawn; q < at; q += 4) acc = touch(outRow(load<i32>(q)), acc);
    const c0 = max(0, b0 - window), c1 = min(n, b1 + window);
    for (let c = c0; c < c1; c++) acc = touch(inRow(load<i32>(sen + ((<usize>c) << 2))), acc);
    if (hs) {
      for (let pos = b0; pos < b1; pos++) {
        const base = <usize>(load<i32>(sen + ((<usize>pos) << 2)) * MAX_CODE_LENGTH);
        const len = <usize>load<u8>(codeLen + base / MAX_CODE_LENGTH);
        for (let d: usize = 0; d < len; d++) acc = touch(syn1 + <usize>load<i32>(points + ((base + d) << 2)) * rowBytes, acc);
      }
    }
    sink ^= acc;
    negAt = drawn;

    for (let pos = b0; pos < b1; pos++) {
      const word = load<i32>(sen + ((<usize>pos) << 2));
      const red = load<i32>(reds + ((<usize>(pos - b0)) << 2));
      const lo = max(0, pos - window + red), hi = min(n - 1, pos + window - red);
      if (hi == lo) continue;   // no context (and no draws)
      if (cbow) {
        // neu1 = mean of the context rows, summed in the reference's order in one pass.
        let C = 0;
        for (let c = lo; c <= hi; c++) {
          if (c == pos) continue;
          store<i32>(ctxA + ((<usize>C) << 2), <i32>inRow(load<i32>(sen + ((<usize>c) << 2))));
          C++;
        }
        meanRows(C);
        const m = buildChain(word, negative, hs, false);
        if (chainRepeats) {
          zero(neu1e);
          loss += runChain(neu1, m, alpha);
        } else loss += runChainFused(neu1, m, alpha, false);
        pairs++;
        addToRows(C);
      } else {
        let m = 0;
        if (byPosition) {
          // One list of output rows for all the position's predictions.
          m = buildChain(word, negative, hs, true);
          if (shared) negAt += (<usize>negative) << 2;
          // The position's predictions row by row (hsPosition) when its context words are distinct
          // (a word twice would see its own first update: then one by one, below).
          let C = 0, distinct = true;
          for (let c = lo; c <= hi; c++) {
            if (c == pos) continue;
            const w = load<i32>(sen + ((<usize>c) << 2));
            for (let q = lo; q < c; q++) if (load<i32>(sen + ((<usize>q) << 2)) == w && q != pos) distinct = false;
            store<i32>(ctxA + ((<usize>C) << 2), <i32>inRow(w));
            C++;
          }
          if (distinct) {
            loss += hsPosition(C, m, alpha);
            pairs += C;
            continue;
          }
        }
        for (let c = lo; c <= hi; c++) {
          if (c == pos) continue;
          const l1 = inRow(load<i32>(sen + ((<usize>c) << 2)));
          pairs++;
          if (!byPosition) m = buildChain(word, negative, hs, false);
          if (byPosition || !chainRepeats) {   // the rows are distinct
            loss += runChainFused(l1, m, alpha, true);
            continue;
          }
          zero(neu1e);
          loss += runChain(l1, m, alpha);
          addTo(l1, neu1e);
        }
      }
    }
  }
  return loss;
}
