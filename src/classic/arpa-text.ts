// The text side of ARPA writing, on numbers and bytes only (no model): the digit writer and the
// line writer of one order, given the order's n-grams already in ARPA order. Used by arpa.ts and,
// for the CLI's build, by a worker thread that writes the file while the main thread sorts the
// next order (arpa-worker.ts), so this module imports nothing.

// 10^k, exact as doubles for k <= 22; 10^-k (k <= 6) as the nearest doubles.
const POW10 = Float64Array.from({ length: 23 }, (_, k) => Number(`1e${k}`));
const NEG10 = Float64Array.from({ length: 7 }, (_, k) => Number(`1e-${k}`));
// The ASCII digits of 0..99, two bytes each.
const PAIRS = Uint8Array.from({ length: 200 }, (_, i) => 48 + (i % 2 ? (i >> 1) % 10 : ((i >> 1) / 10) | 0));

/**
 * Write formatArpaNumber(x) as ASCII into b at pos; returns the end. The digits come from one
 * exact power-of-ten multiplication and a rounding; when the scaled value is within 1e-6 of a
 * rounding tie (its error is below 1.2e-8), or the number needs exponent notation, it falls back
 * to toPrecision itself, so the text is always the same as formatArpaNumber's.
 */
export function writeArpaNumber(b: Uint8Array, pos: number, x: number): number {
  ONE[0] = x;
  return writeArpaNumberAt(b, pos, ONE, 0);
}

const ONE = new Float64Array(1);

/**
 * writeArpaNumber of xs[i]. The line writer calls this one: a double passed to a function that
 * is not inlined is boxed (a heap number per call: ~6M per order-5 build, a scavenge every few
 * milliseconds), an array and an index are not.
 */
export function writeArpaNumberAt(b: Uint8Array, pos: number, xs: Float64Array, i: number): number {
  const x = xs[i];
  if (x === 0) { b[pos] = 48; return pos + 1; }
  if (!(x > -99) || x === Infinity) { b[pos] = 45; b[pos + 1] = 57; b[pos + 2] = 57; return pos + 3; } // -99 (also NaN, ±Inf)
  const v = x < 0 ? -x : x;
  if (v >= 1e-6 && v < 1e8) {
    // The decimal exponent, give or take one near a power of ten (the next step settles it).
    let e = 0;
    if (v >= 1) { while (e < 7 && v >= POW10[e + 1]) e++; } else { e = -1; while (e > -6 && v < NEG10[-e]) e--; }
    let scaled = v * POW10[7 - e];
    if (scaled < 1e7 && e > -6) { e--; scaled = v * POW10[7 - e]; } else if (scaled >= 1e8 && e < 7) { e++; scaled = v * POW10[7 - e]; }
    const n0 = Math.floor(scaled), frac = scaled - n0;
    if (n0 >= 1e7 && n0 < 1e8 && Math.abs(frac - 0.5) > 1e-6) {
      // Rounded to nearest without a branch (half the numbers round up): scaled + 0.5 is exact
      // here, or off by less than 2e-9 where it crosses a power of two, and frac is not near 0.5.
      let n = Math.floor(scaled + 0.5);
      if (n === 1e8) { n = 1e7; e++; }
      if (e <= 7) {
        if (x < 0) b[pos++] = 45;
        if (e < 0) {
          b[pos++] = 48; b[pos++] = 46;
          for (let z = -e - 1; z > 0; z--) b[pos++] = 48;
        }
        // 8 digits as four pairs (two short divisions, not eight), the point after digit e (none when e = 7).
        const q = n | 0, hi = (q / 10000) | 0, lo = q - hi * 10000;
        const p0 = (hi / 100) | 0, p1 = hi - p0 * 100, p2 = (lo / 100) | 0, p3 = lo - p2 * 100;
        // With a point, the digits go one place further and the e + 1 before the point move back
        // (one for most numbers, which are below 10; a closure placing each digit made every call allocate).
        const at = e < 0 || e === 7 ? pos : pos + 1;
        b[at] = PAIRS[p0 * 2]; b[at + 1] = PAIRS[p0 * 2 + 1]; b[at + 2] = PAIRS[p1 * 2]; b[at + 3] = PAIRS[p1 * 2 + 1];
        b[at + 4] = PAIRS[p2 * 2]; b[at + 5] = PAIRS[p2 * 2 + 1]; b[at + 6] = PAIRS[p3 * 2]; b[at + 7] = PAIRS[p3 * 2 + 1];
        if (at === pos) return pos + 8;
        for (let k = pos; k <= pos + e; k++) b[k] = b[k + 1];
        b[pos + e + 1] = 46;
        return pos + 9;
      }
    }
  }
  const s = x.toPrecision(8);
  for (let i = 0; i < s.length; i++) b[pos++] = s.charCodeAt(i);
  return pos;
}

export function writeAscii(b: Uint8Array, pos: number, s: string): number {
  for (let i = 0; i < s.length; i++) b[pos++] = s.charCodeAt(i);
  return pos;
}

/** One order's n-grams in ARPA order (as arpa.ts's writer prepares them). */
export interface ArpaOrder {
  n: number;
  /** log10 p and log10 backoff (null for the highest order) of line j. */
  prob: Float64Array; bo: Float64Array | null;
  /** Line j's last word id and the line of its context in the order below (both null for unigrams: line j is word j). */
  sw: Int32Array | null; sc: Int32Array | null;
  total: number;
}

/**
 * ARPA text into a reused buffer, pulled chunk by chunk: `header`, then per order `begin` and
 * `fill` until it returns null, then `end`. A chunk returned is a view of the buffer, whole lines;
 * consume it before the next call (with `buffers` k > 1, before the k-th call after it: chunks take
 * k buffers in turn, so some can be written out while the next is filled).
 */
export class ArpaTextWriter {
  private buf: Uint8Array;
  /** The other buffers (with `buffers` > 1), in the order the next chunks take them. */
  private spare: Uint8Array[];
  private pos = 0;
  private st: LineState | null = null;
  /** The previous order's word text by line (for unigrams' successors: the vocabulary pool). */
  private text: Uint8Array;
  private textOff: Int32Array;
  /** The vocabulary's bytes, with COPY_SLACK bytes after them (see copyBytes). */
  private readonly pool: Uint8Array;

  /** pool/wOff: the vocabulary's UTF-8 bytes, word i at wOff[i] .. wOff[i + 1]; `order`: the model's. */
  constructor(pool: Uint8Array, private readonly wOff: Int32Array, private readonly order: number, chunkBytes = 1 << 20, buffers = 1) {
    this.buf = new Uint8Array(Math.max(chunkBytes, 256) + 256);
    this.spare = Array.from({ length: Math.max(0, buffers - 1) }, () => new Uint8Array(this.buf.length));
    this.pool = new Uint8Array(wOff[wOff.length - 1] + COPY_SLACK);
    this.pool.set(pool.subarray(0, wOff[wOff.length - 1]));
    this.text = this.pool; this.textOff = wOff;
  }

  /** The \\data\\ section; returns a chunk when it did not fit. */
  header(counts: readonly number[]): Uint8Array | null {
    return this.ascii('\n\\data\\\n' + counts.map((c, i) => `ngram ${i + 1}=${c}\n`).join('') + '\n');
  }

  /** Start an order's section (orders in turn from 1). */
  begin(o: ArpaOrder): Uint8Array | null {
    const chunk = this.ascii(`\\${o.n}-grams:\n`);
    // This order's word text is kept for the next order (not for the highest, nor for unigrams: that is the pool).
    const keep = o.sc !== null && o.n < this.order;
    const perLine = this.text.length / Math.max(1, this.textOff.length - 1) + 8;
    const out = keep ? new Uint8Array(Math.max(1024, Math.ceil(perLine * o.total)) + COPY_SLACK) : null;
    this.st = {
      prob: o.prob, bo: o.bo, sw: o.sw, sc: o.sc, total: o.total, j: 0,
      pool: this.pool, poolView: view(this.pool), wOff: this.wOff, text: this.text, textView: view(this.text), textOff: this.textOff,
      out, outView: out && view(out), outLen: 0, outOff: keep ? new Int32Array(o.total + 1) : null,
    };
    return chunk;
  }

  /** Lines of the current order: a full chunk, or null once the order is written (its text then waits in the buffer). */
  fill(): Uint8Array | null {
    const st = this.st!;
    for (;;) {
      // 64 bytes stay free for the blank line after the section and the next header.
      this.pos = writeLines(st, this.buf, this.pos, this.buf.length - 64);
      if (st.j === st.total) break;
      if (this.pos > 0) return this.take();
      this.buf = new Uint8Array(this.buf.length * 2); // one line longer than the buffer
    }
    this.buf[this.pos++] = 10;
    if (st.out) { this.text = st.out; this.textOff = st.outOff!; }
    this.st = null;
    return null;
  }

  /** \\end\\ and the last chunk. */
  end(): Uint8Array {
    this.ascii('\\end\\\n');
    return this.take();
  }

  private take(): Uint8Array {
    // The caller consumes the view before the next call (the k-th with k buffers), which writes from the start again.
    const c = this.buf.subarray(0, this.pos);
    this.pos = 0;
    if (this.spare.length > 0) { this.spare.push(this.buf); this.buf = this.spare.shift()!; }
    return c;
  }

  /** Write s; when it does not fit, hand out what is there first (returned) and write it after. */
  private ascii(s: string): Uint8Array | null {
    if (this.pos + s.length <= this.buf.length) { this.pos = writeAscii(this.buf, this.pos, s); return null; }
    const old = this.buf.slice(0, this.pos);
    if (s.length > this.buf.length) this.buf = new Uint8Array(s.length * 2);
    this.pos = writeAscii(this.buf, 0, s);
    return old;
  }
}

/** Where the ARPA lines of one order stand. */
export interface LineState {
  prob: Float64Array; bo: Float64Array | null;
  /** Line j's last word id and the line of its context in the order below (both null for unigrams: line j is word j). */
  sw: Int32Array | null; sc: Int32Array | null;
  total: number; j: number;
  /** The vocabulary's bytes (word i at wOff[i] .. wOff[i + 1]). Each byte array here has COPY_SLACK bytes after its text, and a DataView (see copyBytes). */
  pool: Uint8Array; poolView: DataView; wOff: Int32Array;
  /** The previous order's word text by line. */
  text: Uint8Array; textView: DataView; textOff: Int32Array;
  /** This order's word text by line, when the next order needs it. */
  out: Uint8Array | null; outView: DataView | null; outLen: number; outOff: Int32Array | null;
}

/** Bytes that copyBytes may read and write past the end of what it copies. */
export const COPY_SLACK = 8;

function view(a: Uint8Array): DataView { return new DataView(a.buffer, a.byteOffset, a.byteLength); }

/**
 * Copy src[s0, s1) to dst at d, four bytes at a time (2.2x faster than a byte loop for words'
 * lengths); returns d + s1 - s0. It reads up to 3 bytes past s1 and writes up to 3 bytes past the
 * copy's end, so both arrays need COPY_SLACK bytes there (the bytes written past the end are
 * overwritten by what follows, or are not part of the output).
 */
function copyBytes(dst: DataView, d: number, src: DataView, s0: number, s1: number): number {
  const n = s1 - s0;
  for (let i = 0; i < n; i += 4) dst.setUint32(d + i, src.getUint32(s0 + i, true), true);
  return d + n;
}

/** Write lines st.j, st.j+1, … into b from pos while they fit; returns the end. (A plain function: a generator's loop ran twice as slow.) */
export function writeLines(st: LineState, b: Uint8Array, pos: number, cap: number): number {
  const { prob, bo, sw, sc, total, poolView, wOff, textView, textOff, outOff } = st;
  let { j, out, outView, outLen } = st;
  // cap leaves more than COPY_SLACK bytes after every line (see the check below).
  const bv = view(b);
  for (; j < total; j++) {
    const w = sw ? sw[j] : j, w0 = wOff[w], w1 = wOff[w + 1];
    let c0 = 0, c1 = -1;
    if (sc) { const c = sc[j]; c0 = textOff[c]; c1 = textOff[c + 1]; }
    // The word text, two numbers of at most 16 characters, two tabs, a newline.
    const len = c1 - c0 + 1 + w1 - w0;
    if (pos + len + 40 > cap) break;
    pos = writeArpaNumberAt(b, pos, prob, j);
    b[pos++] = 9;
    // Four bytes at a time through DataViews: these copies are short, and a subarray per line costs more than the copy.
    const start = pos;
    if (sc) { pos = copyBytes(bv, pos, textView, c0, c1); b[pos++] = 32; }
    pos = copyBytes(bv, pos, poolView, w0, w1);
    if (out) {
      if (outLen + len + COPY_SLACK > out.length) {
        const x = new Uint8Array(Math.max(out.length * 2, outLen + len + COPY_SLACK));
        x.set(out.subarray(0, outLen));
        out = x; outView = view(x);
      }
      outLen = copyBytes(outView!, outLen, bv, start, pos);
      outOff![j + 1] = outLen;
    }
    if (bo) { b[pos++] = 9; pos = writeArpaNumberAt(b, pos, bo, j); }
    b[pos++] = 10;
  }
  st.j = j; st.out = out; st.outView = outView; st.outLen = outLen;
  return pos;
}

