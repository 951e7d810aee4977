// The BPE model of HF tokenizers: a vocabulary, ranked merges, byte fallback and unk fusing.
// Merging follows HF's `Word::merge_all`: repeatedly apply the lowest-rank merge, leftmost first.
import { byteFallbackToken, utf8Encoder } from './tokenizer.js';
import { quoteShort } from './guard.js';

export interface BPEOptions {
  unkToken?: string | null;
  byteFallback?: boolean;
  fuseUnk?: boolean;
  ignoreMerges?: boolean;
  continuingSubwordPrefix?: string | null;
  endOfWordSuffix?: string | null;
}

export class BPEModel {
  readonly vocab: Map<string, number>;
  readonly idToTok: string[];
  /** ranks[a].get(b) → merge rank (small-integer keys keep the maps fast); merged id: mergedId[rank]. */
  private readonly ranks: Array<Map<number, number> | undefined> = [];
  private readonly mergedId: number[] = [];
  readonly merges: Array<[string, string]>;
  private readonly cache = new Map<string, number[]>();
  private readonly byteIds: Int32Array | null;

  constructor(vocab: Map<string, number>, merges: Array<[string, string]>, readonly opts: BPEOptions = {}, onBadMerge?: (i: number, why: string) => never) {
    this.vocab = vocab;
    this.merges = merges;
    let maxId = -1;
    for (const id of vocab.values()) if (id > maxId) maxId = id;
    this.idToTok = new Array<string>(maxId + 1);
    for (const [t, id] of vocab) this.idToTok[id] = t;
    const prefixLen = opts.continuingSubwordPrefix?.length ?? 0;
    merges.forEach(([a, b], rank) => {
      const ia = vocab.get(a);
      const ib = vocab.get(b);
      const merged = a + b.slice(prefixLen);
      const im = vocab.get(merged);
      if (ia === undefined || ib === undefined || im === undefined) {
        const why = `${quoteShort(ia === undefined ? a : ib === undefined ? b : merged)} is not in the vocabulary`;
        if (onBadMerge) onBadMerge(rank, why);
        throw new Error(`merge ${rank}: ${why}`);
      }
      let row = this.ranks[ia];
      if (!row) row = this.ranks[ia] = new Map();
      if (!row.has(ib)) row.set(ib, rank);
      this.mergedId[rank] = im;
    });
    if (opts.byteFallback) {
      this.byteIds = new Int32Array(256).fill(-1);
      for (let b = 0; b < 256; b++) this.byteIds[b] = vocab.get(byteFallbackToken(b)) ?? -1;
    } else this.byteIds = null;
  }

  get size(): number {
    return this.idToTok.length;
  }

  /** Token ids of one pre-tokenized word. */
  tokenize(word: string): number[] {
    if (word === '') return [];
    const hit = this.cache.get(word);
    if (hit) return hit;
    let ids: number[];
    const whole = this.opts.ignoreMerges ? this.vocab.get(word) : undefined;
    if (whole !== undefined) ids = [whole];
    else ids = this.merge(this.initialSymbols(word));
    if (this.cache.size > 100_000) this.cache.clear();
    this.cache.set(word, ids);
    return ids;
  }

  private initialSymbols(word: string): number[] {
    const { unkToken, fuseUnk, continuingSubwordPrefix: pre, endOfWordSuffix: suf } = this.opts;
    const unkId = unkToken != null ? this.vocab.get(unkToken) : undefined;
    const chars = Array.from(word);
    const out: number[] = [];
    let lastWasUnk = false;
    for (let i = 0; i < chars.length; i++) {
      let s = chars[i];
      if (pre && i > 0) s = pre + s;
      if (suf && i === chars.length - 1) s = s + suf;
      const id = this.vocab.get(s);
      if (id !== undefined) {
        out.push(id);
        lastWasUnk = false;
        continue;
      }
      if (this.byteIds) {
        const bytes = utf8Encoder.encode(chars[i]);
        let ok = true;
        for (const b of bytes) if (this.byteIds[b] < 0) ok = false;
        if (ok) {
          for (const b of bytes) out.push(this.byteIds[b]);
          lastWasUnk = false;
          continue;
        }
      }
      if (unkId !== undefined) {
        if (!(fuseUnk && lastWasUnk)) out.push(unkId);
        lastWasUnk = true;
      }
      // No unk token: HF drops the character.
    }
    return out;
  }

  /** Applies merges by rank (lowest first, leftmost among equals) with a heap over a linked list. */
  private merge(sym: number[]): number[] {
    const n = sym.length;
    if (n < 2) return sym;
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    const id = Int32Array.from(sym);
    const alive = new Uint8Array(n).fill(1);
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    // Heap of (rank, pos, leftId, rightId) packed in parallel arrays.
    const hr: number[] = [];
    const hp: number[] = [];
    const less = (a: number, b: number) => hr[a] < hr[b] || (hr[a] === hr[b] && hp[a] < hp[b]);
    const swap = (a: number, b: number) => {
      [hr[a], hr[b]] = [hr[b], hr[a]];
      [hp[a], hp[b]] = [hp[b], hp[a]];
    };
    const push = (r: number, p: number) => {
      hr.push(r);
      hp.push(p);
      let i = hr.length - 1;
      while (i > 0) {
        const par = (i - 1) >> 1;
        if (!less(i, par)) break;
        swap(i, par);
        i = par;
      }
    };
    const pop = () => {
      const last = hr.length - 1;
      swap(0, last);
      const r = hr.pop()!;
      const p = hp.pop()!;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const rr = l + 1;
        let m = i;
        if (l < hr.length && less(l, m)) m = l;
        if (rr < hr.length && less(rr, m)) m = rr;
        if (m === i) break;
        swap(i, m);
        i = m;
      }
      return [r, p] as const;
    };
    const tryPush = (i: number) => {
      const j = next[i];
      if (j < 0) return;
      const r = this.ranks[id[i]]?.get(id[j]);
      if (r !== undefined) push(r, i);
    };
    for (let i = 0; i + 1 < n; i++) tryPush(i);
    while (hr.length > 0) {
      const [r, i] = pop();
      const j = next[i];
      if (!alive[i] || j < 0) continue;
      // Stale entry: the pair at i changed since it was pushed.
      if (this.ranks[id[i]]?.get(id[j]) !== r) continue;
      id[i] = this.mergedId[r];
      alive[j] = 0;
      next[i] = next[j];
      if (next[j] >= 0) prev[next[j]] = i;
      if (prev[i] >= 0) tryPush(prev[i]);
      tryPush(i);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) out.push(id[i]);
    return out;
  }
}
