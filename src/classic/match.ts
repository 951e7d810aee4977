// Fuzzy matching over many candidate strings: an inverted index of q-grams.
//
// Every candidate's profile is kept twice, in compressed-row typed arrays: forward (candidate ->
// its gram ids and counts, for verifying and for the brute-force scan) and inverted (gram ->
// posting list of candidate ids ascending with counts). A query accumulates per-candidate overlap
// over the posting lists of its grams (ScanCount), so only candidates that share a gram are touched.
// With a threshold, prefix filtering (Chaudhuri et al. 2006; Bayardo et al. 2007's AllPairs) probes
// only the query's rarest grams, as few as guarantee that every candidate reaching the threshold
// shares one of them, and verifies those candidates exactly against their forward profiles; length
// filtering skips candidates whose size alone rules them out. Results are identical to the brute
// force scan `scan()` (same scores from the same function, same order, ties by candidate index).
//
// A candidate with no gram in common with the query is not a match under the similarity metrics
// (its similarity is 0); under 'qgram' it is at distance |Q| + |C|, and such candidates are ranked
// too (shortest first), as a scan over every candidate would.
import { existsSync, statSync, openSync, readSync, closeSync } from 'node:fs';
import { ClassicInputError, ClassicFormatError } from './errors.js';
import { readLines } from './text.js';
import { QgramEncoder, qgramMeasureRaw, isQgramDistance, QGRAM_METRICS, type GramProfile, type QgramMetric, type QgramOptions } from './qgram.js';

export interface QgramMatchOptions {
  /** Measure to rank by (default 'jaccard'). */
  metric?: QgramMetric;
  /** Keep the best K (default: all that pass the threshold). */
  top?: number;
  /** Similarity metrics: keep score >= threshold; 'qgram': keep distance <= threshold. */
  threshold?: number;
  /**
   * Candidate generation with a threshold: 'prefix' probes only the rarest grams and verifies,
   * 'full' accumulates over every posting list of the query, 'auto' (default) picks the one with
   * fewer estimated memory touches. Results are the same.
   */
  strategy?: 'auto' | 'prefix' | 'full';
}

export interface QgramMatch {
  /** Candidate number (0-based, in the order given). */
  index: number;
  score: number;
}

/** Counters of the last search (for benchmarks and tests of the filters). */
export interface QgramSearchStats { probed: number; grams: number; postings: number; touched: number; verified: number }

/** Growable typed array helpers. */
function growI32(a: Int32Array, need: number): Int32Array {
  if (need <= a.length) return a;
  const b = new Int32Array(Math.max(need, a.length * 2));
  b.set(a);
  return b;
}

/** Best-K selection: a binary heap whose root is the worst kept (score, index). */
class TopK {
  private s: Float64Array;
  private i: Int32Array;
  n = 0;
  constructor(readonly k: number, private readonly dist: boolean) {
    this.s = new Float64Array(k); this.i = new Int32Array(k);
  }
  /** a is worse than b. */
  private worse(sa: number, ia: number, sb: number, ib: number): boolean {
    return sa === sb ? ia > ib : this.dist ? sa > sb : sa < sb;
  }
  /** Whether (score, index) would enter. */
  admits(score: number, index: number): boolean {
    return this.n < this.k || this.worse(this.s[0], this.i[0], score, index);
  }
  /** The worst score kept once full (else undefined). */
  worst(): number | undefined { return this.n < this.k ? undefined : this.s[0]; }
  push(score: number, index: number): void {
    const s = this.s, ix = this.i;
    if (this.n < this.k) {
      let c = this.n++;
      while (c > 0) {
        const p = (c - 1) >> 1;
        if (!this.worse(score, index, s[p], ix[p])) break;
        s[c] = s[p]; ix[c] = ix[p]; c = p;
      }
      s[c] = score; ix[c] = index;
      return;
    }
    if (!this.worse(s[0], ix[0], score, index)) return;
    let c = 0;
    for (;;) {
      const l = 2 * c + 1, r = l + 1;
      let w = c, ws = score, wi = index;
      if (l < this.n && this.worse(s[l], ix[l], ws, wi)) { w = l; ws = s[l]; wi = ix[l]; }
      if (r < this.n && this.worse(s[r], ix[r], ws, wi)) { w = r; ws = s[r]; wi = ix[r]; }
      if (w === c) break;
      s[c] = s[w]; ix[c] = ix[w]; c = w;
    }
    s[c] = score; ix[c] = index;
  }
  result(): QgramMatch[] {
    const out: QgramMatch[] = [];
    for (let j = 0; j < this.n; j++) out.push({ index: this.i[j], score: this.s[j] });
    return sortMatches(out, this.dist);
  }
}

/** Collects every passing candidate (no --top). */
class All {
  readonly out: QgramMatch[] = [];
  constructor(private readonly dist: boolean) {}
  admits(): boolean { return true; }
  worst(): number | undefined { return undefined; }
  push(score: number, index: number): void { this.out.push({ index, score }); }
  result(): QgramMatch[] { return sortMatches(this.out, this.dist); }
}

function sortMatches(m: QgramMatch[], dist: boolean): QgramMatch[] {
  return m.sort((a, b) => (a.score === b.score ? a.index - b.index : dist ? a.score - b.score : b.score - a.score));
}

function checkOptions(opts: QgramMatchOptions): { metric: QgramMetric; top: number | undefined; threshold: number | undefined } {
  const metric = opts.metric ?? 'jaccard';
  if (!QGRAM_METRICS.includes(metric)) throw new ClassicInputError(`metric must be one of ${QGRAM_METRICS.join(', ')}, got '${metric}'`);
  const top = opts.top;
  if (top !== undefined && !(Number.isInteger(top) && top >= 1)) throw new ClassicInputError(`top must be an integer >= 1, got ${top}`);
  const t = opts.threshold;
  if (t !== undefined) {
    if (!Number.isFinite(t)) throw new ClassicInputError(`threshold must be a number, got ${t}`);
    if (metric === 'qgram' ? t < 0 : t < 0 || t > 1) throw new ClassicInputError(`threshold for ${metric} must be ${metric === 'qgram' ? 'a distance >= 0' : 'a similarity in [0, 1]'}, got ${t}`);
  }
  return { metric, top, threshold: t };
}

const SLACK = 1e-9;
/** Cost of verifying one candidate, in posting-list entries (measured: ~15–30). */
const VERIFY_COST = 24;

export class QgramIndex {
  readonly encoder: QgramEncoder;
  /** Number of candidates. */
  n = 0;
  /** Forward profiles: candidate c's grams are fwdIds[fwdOff[c] .. fwdOff[c+1]). */
  fwdOff: Int32Array = new Int32Array(1);
  fwdIds: Int32Array = new Int32Array(0);
  fwdCnt: Uint16Array | Int32Array = new Int32Array(0);
  /** Per candidate: distinct grams, grams with multiplicity, sum of squared counts. */
  total: Int32Array = new Int32Array(0);
  sumSq: Float64Array = new Float64Array(0);
  /** Posting lists: gram g's candidates are postDoc[postOff[g] .. postOff[g+1]), ascending. */
  postOff: Int32Array = new Int32Array(1);
  postDoc: Int32Array = new Int32Array(0);
  postCnt: Uint16Array | Int32Array = new Int32Array(0);
  /** Candidates in order of total gram count, ascending (ties by index). */
  private byTotal: Int32Array = new Int32Array(0);
  private acc: Float64Array = new Float64Array(0);
  private touched: Int32Array = new Int32Array(0);
  /** Query gram counts by gram id during a search (0 elsewhere), for verifying candidates. */
  private qcount: Int32Array = new Int32Array(0);
  /** Counters of the last search. */
  stats: QgramSearchStats = { probed: 0, grams: 0, postings: 0, touched: 0, verified: 0 };

  private constructor(opts: QgramOptions) {
    this.encoder = new QgramEncoder(opts);
  }

  /** Number of distinct grams indexed. */
  get grams(): number { return this.postOff.length - 1; }
  size(c: number): number { return this.fwdOff[c + 1] - this.fwdOff[c]; }

  /** Index candidate strings (their order gives the indexes of the matches). */
  static build(texts: Iterable<string>, opts: QgramOptions = {}): QgramIndex {
    const idx = new QgramIndex(opts);
    const enc = idx.encoder;
    let ids: Int32Array = new Int32Array(1 << 16), cnt: Int32Array = new Int32Array(1 << 16), df: Int32Array = new Int32Array(1 << 12);
    const off: number[] = [0];
    const totals: number[] = [], sumSqs: number[] = [];
    let m = 0, maxCount = 0;
    for (const t of texts) {
      const g = enc.gramIds(t, true);
      g.sort();
      ids = growI32(ids, m + g.length); cnt = growI32(cnt, m + g.length);
      if (enc.grams.size > df.length) df = growI32(df, enc.grams.size);
      let sq = 0;
      for (let i = 0; i < g.length; ) {
        const id = g[i];
        let j = i + 1;
        while (j < g.length && g[j] === id) j++;
        const c = j - i;
        ids[m] = id; cnt[m++] = c; df[id]++;
        sq += c * c;
        if (c > maxCount) maxCount = c;
        i = j;
      }
      if (m > 0x7fffffff - 0x100000) throw new ClassicInputError(`too many grams to index (over 2^31 postings) after ${totals.length} candidates`);
      off.push(m); totals.push(g.length); sumSqs.push(sq);
    }
    const n = totals.length, G = enc.grams.size;
    idx.n = n;
    idx.fwdOff = Int32Array.from(off);
    const fwdOff = idx.fwdOff;
    idx.fwdIds = ids.slice(0, m);
    const narrow = maxCount <= 0xffff;
    idx.fwdCnt = narrow ? Uint16Array.from(cnt.subarray(0, m)) : cnt.slice(0, m);
    idx.total = Int32Array.from(totals);
    idx.sumSq = Float64Array.from(sumSqs);
    // Posting lists, filled in candidate order (so each is ascending).
    const postOff = new Int32Array(G + 1);
    for (let gi = 0; gi < G; gi++) postOff[gi + 1] = postOff[gi] + df[gi];
    const cursor = postOff.slice(0, G);
    const postDoc = new Int32Array(m), postCnt = narrow ? new Uint16Array(m) : new Int32Array(m);
    const fIds = idx.fwdIds, fCnt = idx.fwdCnt;
    for (let c = 0; c < n; c++) {
      for (let p = fwdOff[c], e = fwdOff[c + 1]; p < e; p++) {
        const gi = fIds[p], at = cursor[gi]++;
        postDoc[at] = c; postCnt[at] = fCnt[p];
      }
    }
    idx.postOff = postOff; idx.postDoc = postDoc; idx.postCnt = postCnt;
    // Counting sort by total (stable: ties stay in index order).
    const tot = idx.total;
    let maxTotal = 0;
    for (let c = 0; c < n; c++) if (tot[c] > maxTotal) maxTotal = tot[c];
    const start = new Int32Array(maxTotal + 2);
    for (let c = 0; c < n; c++) start[tot[c] + 1]++;
    for (let v = 0; v <= maxTotal; v++) start[v + 1] += start[v];
    const byTotal = new Int32Array(n);
    for (let c = 0; c < n; c++) byTotal[start[tot[c]]++] = c;
    idx.byTotal = byTotal;
    idx.acc = new Float64Array(n);
    idx.touched = new Int32Array(n);
    idx.qcount = new Int32Array(G);
    return idx;
  }

  /** The profile of candidate c (views into the index's arrays). */
  profileOf(c: number): GramProfile {
    const a = this.fwdOff[c], b = this.fwdOff[c + 1];
    const counts = this.fwdCnt instanceof Int32Array ? this.fwdCnt.subarray(a, b) : Int32Array.from(this.fwdCnt.subarray(a, b));
    return { ids: this.fwdIds.subarray(a, b), counts, size: b - a, total: this.total[c], sumSq: this.sumSq[c] };
  }

  /** The profile of a query string (grams the index has never seen get ids >= this.grams). */
  queryProfile(query: string): GramProfile {
    const p = this.encoder.profile(query, false);
    if (p.size === 0) {
      throw new ClassicInputError(query.trim() === ''
        ? 'the query is empty'
        : `the query has no ${this.encoder.q}-grams (it is shorter than q = ${this.encoder.q} ${this.encoder.unit === 'char' ? 'characters' : 'words'}): use padding or a smaller q`);
    }
    return p;
  }

  /** GramOverlap of profile p with candidate c, by merging (the verification step and the scan). */
  private scoreAgainst(metric: QgramMetric, p: GramProfile, c: number): number {
    const ids = this.fwdIds, cnt = this.fwdCnt, pi = p.ids, pc = p.counts;
    let i = 0, j = this.fwdOff[c];
    const ie = pi.length, je = this.fwdOff[c + 1];
    let common = 0, sumMin = 0, dot = 0;
    while (i < ie && j < je) {
      const x = pi[i], y = ids[j];
      if (x < y) i++;
      else if (x > y) j++;
      else { const a = pc[i++], b = cnt[j++]; common++; sumMin += a < b ? a : b; dot += a * b; }
    }
    if (common === 0 && !isQgramDistance(metric)) return 0;
    return qgramMeasureRaw(metric, common, sumMin, dot, p.size, p.total, p.sumSq, je - this.fwdOff[c], this.total[c], this.sumSq[c]);
  }

  /** Brute force: score every candidate by merging profiles (the reference the index must equal). */
  scan(query: string | GramProfile, opts: QgramMatchOptions = {}): QgramMatch[] {
    const { metric, top, threshold } = checkOptions(opts);
    const p = typeof query === 'string' ? this.queryProfile(query) : query;
    const dist = isQgramDistance(metric);
    const sel = top === undefined ? new All(dist) : new TopK(top, dist);
    for (let c = 0; c < this.n; c++) {
      const s = this.scoreAgainst(metric, p, c);
      if (!dist && s === 0) continue;
      if (threshold !== undefined && (dist ? s > threshold : s < threshold)) continue;
      sel.push(s, c);
    }
    return sel.result();
  }

  /** Ranked matches of `query` through the inverted index; identical to `scan`. */
  search(query: string | GramProfile, opts: QgramMatchOptions = {}): QgramMatch[] {
    const o = checkOptions(opts);
    const p = typeof query === 'string' ? this.queryProfile(query) : query;
    if (opts.strategy !== undefined && !['auto', 'prefix', 'full'].includes(opts.strategy)) throw new ClassicInputError(`strategy must be auto, prefix or full, got '${opts.strategy}'`);
    const strategy = opts.strategy ?? 'auto';
    if (o.top !== undefined && strategy === 'auto' && o.metric !== 'overlap') {
      return this.searchTopK(p, o.metric, o.top, o.threshold);
    }
    return this.searchProfile(p, o.metric, o.top, o.threshold, -1, strategy);
  }

  /**
   * The number of the query's known grams (rarest first) to probe so that every candidate meeting
   * the threshold shares at least one of them; `known` grams is all of them (no filtering).
   */
  private probeCount(metric: QgramMetric, p: GramProfile, order: Int32Array, known: number, t: number | undefined): number {
    if (t === undefined) return known;
    switch (metric) {
      case 'jaccard': case 'dice': case 'overlap': {
        // Minimum overlap o of a candidate meeting t: Jaccard o >= t|Q|, Dice o >= t|Q|/(2-t).
        const need = metric === 'jaccard' ? t * p.size : metric === 'dice' ? (t * p.size) / (2 - t) : 0;
        const alpha = Math.max(1, Math.ceil(need - SLACK));
        return Math.max(0, known - alpha + 1);
      }
      case 'cosine': {
        // A candidate sharing none of the probed grams has cosine <= ‖Q_rest‖/‖Q‖ (Cauchy–Schwarz
        // over the unprobed known grams); probe until that is below t.
        if (t <= 0) return known;
        let rest = 0;
        for (let k = 0; k < known; k++) { const c = p.counts[order[k]]; rest += c * c; }
        const bound = t * t * p.sumSq * (1 - SLACK);
        let k = 0;
        while (k < known && rest >= bound) { const c = p.counts[order[k++]]; rest -= c * c; }
        return k;
      }
      case 'qgram': {
        // Distance <= t needs Σmin >= |Q| - t; grams left unprobed can give at most their counts.
        const need = p.total - t;
        if (need <= 0) return -1; // candidates sharing nothing qualify too: full scan + fill
        let rest = 0;
        for (let k = 0; k < known; k++) rest += p.counts[order[k]];
        let k = 0;
        while (k < known && rest >= need) rest -= p.counts[order[k++]];
        return k;
      }
    }
  }

  /** The search proper. Candidates with index <= `after` are skipped (self-join). */
  private searchProfile(p: GramProfile, metric: QgramMetric, top: number | undefined, t: number | undefined, after: number, strategy: 'auto' | 'prefix' | 'full'): QgramMatch[] {
    const dist = isQgramDistance(metric);
    const sel = top === undefined ? new All(dist) : new TopK(top, dist);
    const G = this.grams;
    let known = 0;
    while (known < p.size && p.ids[known] < G) known++;
    // Query grams by document frequency, rarest first (ties by id): positions into p.
    const order = Int32Array.from({ length: known }, (_, k) => k);
    const df = (k: number): number => this.postOff[p.ids[k] + 1] - this.postOff[p.ids[k]];
    order.sort((a, b) => df(a) - df(b) || a - b);
    let probe = this.probeCount(metric, p, order, known, t);
    const fill = probe < 0;
    if (fill || strategy === 'full') probe = known;
    else if (strategy === 'auto' && probe < known) {
      // Verifying a candidate reads its forward profile at a random place: count it as
      // VERIFY_COST postings, and at most one candidate per probed posting.
      let all = 0, some = 0;
      for (let k = 0; k < known; k++) { const len = df(order[k]); all += len; if (k < probe) some += len; }
      if (some * VERIFY_COST >= all) probe = known;
    }
    const full = probe === known;
    const acc = this.acc, touched = this.touched, postDoc = this.postDoc, postCnt = this.postCnt, postOff = this.postOff;
    let nt = 0, postings = 0;
    for (let k = 0; k < probe; k++) {
      const pos = order[k], g = p.ids[pos], qc = p.counts[pos];
      const b = postOff[g + 1];
      let a = postOff[g];
      if (after >= 0) {
        // Self-join: only candidates after `after` (posting lists are ascending).
        let hi = b;
        while (a < hi) { const mid = (a + hi) >>> 1; if (postDoc[mid] <= after) a = mid + 1; else hi = mid; }
      }
      postings += b - a;
      // Accumulate what the metric needs: distinct grams shared, Σmin, or the dot product.
      if (metric === 'qgram') {
        for (let x = a; x < b; x++) { const d = postDoc[x], c = postCnt[x]; if (acc[d] === 0) touched[nt++] = d; acc[d] += c < qc ? c : qc; }
      } else if (metric === 'cosine') {
        for (let x = a; x < b; x++) { const d = postDoc[x]; if (acc[d] === 0) touched[nt++] = d; acc[d] += postCnt[x] * qc; }
      } else {
        for (let x = a; x < b; x++) { const d = postDoc[x]; if (acc[d] === 0) touched[nt++] = d; acc[d] += 1; }
      }
    }
    // Length filter bounds on the candidate's size (distinct grams) or total ('qgram').
    let lo = 0, hi = Infinity;
    if (t !== undefined && !full) {
      if (metric === 'jaccard' && t > 0) { lo = t * p.size; hi = p.size / t; }
      else if (metric === 'dice' && t > 0) { lo = (t * p.size) / (2 - t); hi = ((2 - t) * p.size) / t; }
      else if (metric === 'qgram') { lo = p.total - t; hi = p.total + t; }
      lo = lo * (1 - SLACK) - SLACK; hi = hi * (1 + SLACK) + SLACK;
    }
    let verified = 0;
    const qcount = this.qcount, fwdIds = this.fwdIds, fwdCnt = this.fwdCnt, sums = new Float64Array(3);
    if (!full) {
      for (let k = 0; k < known; k++) qcount[p.ids[k]] = p.counts[k];
      // Verify in candidate order: the forward profiles are then read front to back.
      touched.subarray(0, nt).sort();
    }
    for (let k = 0; k < nt; k++) {
      const c = touched[k];
      const v = acc[c];
      acc[c] = 0;
      if (c <= after) continue;
      let s: number;
      if (full) {
        const cs = this.fwdOff[c + 1] - this.fwdOff[c];
        s = qgramMeasureRaw(metric, v, v, v, p.size, p.total, p.sumSq, cs, this.total[c], this.sumSq[c]);
      } else {
        const a = this.fwdOff[c], b = this.fwdOff[c + 1];
        const len = metric === 'qgram' ? this.total[c] : b - a;
        if (len < lo || len > hi) continue;
        verified++;
        // Verify: the candidate's grams looked up in the query's counts (no merge branches).
        verifyInto(sums, qcount, fwdIds, fwdCnt, a, b);
        const common = sums[0], sumMin = sums[1], dot = sums[2];
        s = qgramMeasureRaw(metric, common, sumMin, dot, p.size, p.total, p.sumSq, b - a, this.total[c], this.sumSq[c]);
      }
      if (t !== undefined && (dist ? s > t : s < t)) continue;
      sel.push(s, c);
    }
    if (!full) for (let k = 0; k < known; k++) qcount[p.ids[k]] = 0;
    if (fill || (dist && t === undefined)) {
      // 'qgram': candidates sharing no gram are at |Q| + |C|; take them shortest first. (The
      // touched ones were scored above; acc was cleared, so mark them again to skip them.)
      for (let k = 0; k < nt; k++) acc[touched[k]] = 1;
      this.fillUnshared(sel, p, metric, t, after);
      for (let k = 0; k < nt; k++) acc[touched[k]] = 0;
    }
    this.stats = { probed: probe, grams: p.size, postings, touched: nt, verified };
    return sel.result();
  }

  /**
   * Top-K, rarest grams first with a rising bar. Phase 1 verifies every candidate of a probed
   * posting list at once (exact score), and the K-th best so far (or the threshold, whichever is
   * stricter) bounds how many of the query's grams need probing at all (`probeCount`) and which
   * candidate sizes can still enter (length filter: the bar only rises). When the next list is
   * too long to verify its candidates one by one, phase 2 accumulates the remaining lists
   * (ScanCount) for the candidates phase 1 never saw: their overlap lies entirely in those grams,
   * so their scores are exact too. Every candidate left out scores strictly worse than the K-th.
   */
  private searchTopK(p: GramProfile, metric: QgramMetric, top: number, t: number | undefined): QgramMatch[] {
    const dist = isQgramDistance(metric);
    const sel = new TopK(top, dist);
    const G = this.grams;
    let known = 0;
    while (known < p.size && p.ids[known] < G) known++;
    const postOff = this.postOff, postDoc = this.postDoc, postCnt = this.postCnt, fwdOff = this.fwdOff, fwdIds = this.fwdIds, fwdCnt = this.fwdCnt;
    const order = Int32Array.from({ length: known }, (_, k) => k);
    const df = (k: number): number => postOff[p.ids[k] + 1] - postOff[p.ids[k]];
    order.sort((a, b) => df(a) - df(b) || a - b);
    let total = 0;
    for (let k = 0; k < known; k++) total += df(k);
    const acc = this.acc, touched = this.touched, qcount = this.qcount, sums = new Float64Array(3);
    for (let k = 0; k < known; k++) qcount[p.ids[k]] = p.counts[k];
    let nt = 0, postings = 0, verified = 0, k = 0, stopped = false;
    /** Every candidate of gram g's posting list not yet resolved: marked resolved, and verified (exact score) when its size is in [lo, hi]. */
    const verifyList = (g: number, lo: number, hi: number): void => {
      const a = postOff[g], b = postOff[g + 1];
      postings += b - a;
      for (let x = a; x < b; x++) {
        const c = postDoc[x];
        if (acc[c] !== 0) continue;
        acc[c] = -1; touched[nt++] = c;
        const ca = fwdOff[c], cb = fwdOff[c + 1];
        const len = metric === 'qgram' ? this.total[c] : cb - ca;
        if (len < lo || len > hi) continue;
        verified++;
        verifyInto(sums, qcount, fwdIds, fwdCnt, ca, cb);
        const s = qgramMeasureRaw(metric, sums[0], sums[1], sums[2], p.size, p.total, p.sumSq, cb - ca, this.total[c], this.sumSq[c]);
        if (t !== undefined && (dist ? s > t : s < t)) continue;
        sel.push(s, c);
      }
    };
    // Phase 1: acc = -1 marks a candidate resolved (verified, or out by its size).
    for (; k < known; k++) {
      const w = sel.worst();
      const bar = w === undefined ? t : t === undefined ? w : dist ? Math.min(w, t) : Math.max(w, t);
      let lo = 0, hi = Infinity;
      if (bar !== undefined) {
        const need = this.probeCount(metric, p, order, known, bar);
        if (need >= 0 && k >= need) { stopped = true; break; }
        if (metric === 'jaccard' && bar > 0) { lo = bar * p.size; hi = p.size / bar; }
        else if (metric === 'dice' && bar > 0) { lo = (bar * p.size) / (2 - bar); hi = ((2 - bar) * p.size) / bar; }
        else if (metric === 'qgram') { lo = p.total - bar; hi = p.total + bar; }
        lo = lo * (1 - SLACK) - SLACK; hi = hi * (1 + SLACK) + SLACK;
      }
      // Verifying a list pays only if it lets us stop early: spend at most an eighth of what a full
      // ScanCount costs on it.
      if ((postings + df(order[k])) * VERIFY_COST > total / 8) break;
      verifyList(p.ids[order[k]], lo, hi);
    }
    let probed = k;
    if (!stopped && k < known) {
      // With a bar, only the first `need` grams can bring a candidate that reaches it: if their
      // lists are short beside the rest, walk them and verify each new candidate instead.
      const w = sel.worst();
      const bar = w === undefined ? t : t === undefined ? w : dist ? Math.min(w, t) : Math.max(w, t);
      const need = bar === undefined ? -1 : this.probeCount(metric, p, order, known, bar);
      if (need >= 0 && need < known) {
        let mid = 0, all = 0;
        for (let j = k; j < known; j++) { const l = df(order[j]); all += l; if (j < need) mid += l; }
        if (mid * (1 + VERIFY_COST) < all) {
          for (; k < need; k++) verifyList(p.ids[order[k]], -Infinity, Infinity);
          probed = k;
          stopped = true;
        }
      }
    }
    if (!stopped && k < known) {
      // Phase 2: ScanCount over the remaining grams for candidates not resolved in phase 1.
      const first = nt;
      for (; k < known; k++) {
        const pos = order[k], g = p.ids[pos], qc = p.counts[pos], a = postOff[g], b = postOff[g + 1];
        postings += b - a;
        if (metric === 'qgram') {
          for (let x = a; x < b; x++) { const d = postDoc[x], v = acc[d]; if (v < 0) continue; if (v === 0) touched[nt++] = d; const c = postCnt[x]; acc[d] = v + (c < qc ? c : qc); }
        } else if (metric === 'cosine') {
          for (let x = a; x < b; x++) { const d = postDoc[x], v = acc[d]; if (v < 0) continue; if (v === 0) touched[nt++] = d; acc[d] = v + postCnt[x] * qc; }
        } else {
          for (let x = a; x < b; x++) { const d = postDoc[x], v = acc[d]; if (v < 0) continue; if (v === 0) touched[nt++] = d; acc[d] = v + 1; }
        }
      }
      for (let i = first; i < nt; i++) {
        const c = touched[i], v = acc[c];
        const s = qgramMeasureRaw(metric, v, v, v, p.size, p.total, p.sumSq, fwdOff[c + 1] - fwdOff[c], this.total[c], this.sumSq[c]);
        if (t !== undefined && (dist ? s > t : s < t)) continue;
        sel.push(s, c);
      }
    }
    if (dist && !stopped) this.fillUnshared(sel, p, metric, t, -1);
    for (let i = 0; i < nt; i++) acc[touched[i]] = 0;
    for (let i = 0; i < known; i++) qcount[p.ids[i]] = 0;
    this.stats = { probed, grams: p.size, postings, touched: nt, verified };
    return sel.result();
  }

  /** 'qgram': candidates sharing no gram with the query (acc 0) are at |Q| + |C|; shortest first. */
  private fillUnshared(sel: TopK | All, p: GramProfile, metric: QgramMetric, t: number | undefined, after: number): void {
    const acc = this.acc;
    for (let k = 0; k < this.n; k++) {
      const c = this.byTotal[k];
      const s = p.total + this.total[c];
      if (t !== undefined && s > t) break;
      const w = sel.worst();
      if (w !== undefined && s > w) break;
      if (acc[c] !== 0 || c <= after) continue;
      sel.push(qgramMeasureRaw(metric, 0, 0, 0, p.size, p.total, p.sumSq, this.size(c), this.total[c], this.sumSq[c]), c);
    }
  }

  /**
   * Near-duplicate pairs (i < j) among the candidates themselves with score meeting `threshold`
   * (a self-join through the index, with the same filters as search).
   */
  pairs(opts: { metric?: QgramMetric; threshold: number }): { a: number; b: number; score: number }[] {
    const { metric, threshold } = checkOptions(opts);
    if (threshold === undefined) throw new ClassicInputError('pairs needs a threshold');
    if (!isQgramDistance(metric) && threshold <= 0) throw new ClassicInputError(`threshold for ${metric} pairs must be above 0, got ${threshold}`);
    const out: { a: number; b: number; score: number }[] = [];
    for (let c = 0; c < this.n; c++) {
      const p = this.profileOf(c);
      if (p.size === 0) continue;
      for (const m of this.searchProfile(p, metric, undefined, threshold, c, 'auto')) out.push({ a: c, b: m.index, score: m.score });
    }
    return out;
  }
}

/** GramOverlap of one candidate's grams fwdIds[a..b) with the query's counts by gram id, into out[0..3). */
function verifyInto(out: Float64Array, qcount: Int32Array, fwdIds: Int32Array, fwdCnt: Uint16Array | Int32Array, a: number, b: number): void {
  let common = 0, sumMin = 0, dot = 0;
  for (let x = a; x < b; x++) {
    const qc = qcount[fwdIds[x]];
    if (qc !== 0) { const cc = fwdCnt[x]; common++; sumMin += qc < cc ? qc : cc; dot += qc * cc; }
  }
  out[0] = common; out[1] = sumMin; out[2] = dot;
}

/** Candidate lines of a text file: non-blank lines with their 1-based line numbers. */
export interface MatchCandidates { texts: string[]; lines: Int32Array }

/**
 * Read candidate lines from `file` (UTF-8, one per line; blank lines skipped). Missing files,
 * directories and binary files (a NUL byte in the first 64 KiB) are errors naming the file.
 */
export function readMatchCandidates(file: string, what = '--file'): MatchCandidates {
  if (!existsSync(file)) throw new ClassicInputError(`${what}: no such file '${file}'`);
  if (statSync(file).isDirectory()) throw new ClassicInputError(`${what}: '${file}' is a directory, not a text file`);
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(65536);
    const n = readSync(fd, head, 0, head.length, 0);
    const nul = head.subarray(0, n).indexOf(0);
    if (nul >= 0) {
      const line = 1 + head.subarray(0, nul).reduce((k, b) => k + (b === 10 ? 1 : 0), 0);
      throw new ClassicFormatError(file, line, `binary file (NUL byte at offset ${nul}): ${what} takes UTF-8 text, one candidate per line`);
    }
  } finally {
    closeSync(fd);
  }
  const texts: string[] = [], lines: number[] = [];
  for (const [l, no] of readLines(file)) {
    if (l.includes('\u0000')) throw new ClassicFormatError(file, no, `binary data (NUL byte): ${what} takes UTF-8 text, one candidate per line`);
    if (l.trim() === '') continue;
    texts.push(l); lines.push(no);
  }
  if (texts.length === 0) throw new ClassicInputError(`${what}: '${file}' has no non-blank lines`);
  return { texts, lines: Int32Array.from(lines) };
}
