// No key twice in one object, when generating JSON. A context-free grammar cannot remember an
// unbounded set of keys: the undeclared keys an object allows (additionalProperties, the keys of
// patternProperties, the extra keys that meet minProperties) could repeat, and JSON.parse would
// keep the last, so an output could even fall short of minProperties. So generation reads its own
// output as JSON (KeyScan: the open containers and, per object, the keys written so far) and takes
// out of each mask the tokens that would write a key again — or that would begin a key or a member
// whose every way on is a key already written (a finite key language used up), so that the mask
// after them is never empty for want of a new key.
import type { ByteAutomaton } from './matcher.js';
import { DEAD } from './matcher.js';
import type { TokenVocab } from './vocab.js';

/** An open container: an object's keys so far (each as its decoded UTF-8 bytes, one char per byte), or null for an array. */
type Frame = Set<string> | null;

const OUT = 0, STR = 1;

/**
 * The JSON text read so far: open containers, and where the next byte falls. Keys are compared
 * decoded (`"\u0061"` is `"a"`): escapes are written as the UTF-8 bytes they stand for.
 */
export class KeyScan {
  stack: Frame[] = [];
  /** Outside strings: whether a string now would be a key (after `{` or `,` in an object). */
  keyNext = false;
  mode = OUT;
  isKey = false;
  /** In a string: 0, or after a backslash 1, or 2–5 in a \u escape's hex digits. */
  esc = 0;
  hex = 0;
  /** A \u escape of a high surrogate waiting for its low half (0: none). */
  high = 0;
  /** The key being read, decoded to UTF-8 bytes (one char per byte). */
  partial = '';
  /** Counts the changes to the containers and their keys (a container opened or closed, a key added). */
  version = 0;
  /** This scan's last check (repeatedKeyTokens), made on first use; not copied. */
  last: KeyCheckMemo | null = null;

  clone(): KeyScan { return new KeyScan().copy(this); }

  /** Becomes a copy of o (its frames shared: read on with `shared`); returns this. */
  copy(o: KeyScan): KeyScan {
    const st = this.stack, os = o.stack;
    st.length = os.length;
    for (let i = 0; i < os.length; i++) st[i] = os[i];
    this.keyNext = o.keyNext; this.mode = o.mode; this.isKey = o.isKey;
    this.esc = o.esc; this.hex = o.hex; this.high = o.high; this.partial = o.partial; this.version = o.version;
    return this;
  }

  /**
   * Automaton state s and the scan's place in a string, as text: the key of a look-ahead from a
   * scan in the innermost object of the check (same containers, a key due or begun).
   */
  lookKey(s: number): string { return `${s}:${this.mode}:${this.esc}:${this.hex}:${this.high}:${this.partial}`; }

  /** Where the scan stands, as text: equal for two positions of one scan with the same containers, keys, string and key read. */
  get where(): string {
    return `${this.version}:${this.mode}:${this.keyNext ? 1 : 0}:${this.isKey ? 1 : 0}:${this.esc}:${this.hex}:${this.high}:${this.partial}`;
  }

  /**
   * Reads one byte; false where it ends a key its object has already. A copy (`shared` true: the
   * frames belong to another scan) adds keys to a copy of its object's set.
   */
  push(b: number, shared: boolean): boolean {
    if (this.mode === OUT) {
      if (b === 0x22) { this.mode = STR; this.isKey = this.keyNext; this.keyNext = false; this.esc = 0; this.high = 0; this.partial = ''; }
      else if (b === 0x7b) { this.stack.push(new Set()); this.keyNext = true; this.version++; }
      else if (b === 0x5b) { this.stack.push(null); this.keyNext = false; this.version++; }
      else if (b === 0x7d || b === 0x5d) { this.stack.pop(); this.keyNext = false; this.version++; }
      else if (b === 0x2c) this.keyNext = this.stack.length > 0 && this.stack[this.stack.length - 1] !== null;
      else if (b === 0x3a) this.keyNext = false;
      return true;
    }
    if (this.esc === 0) {
      if (b === 0x22) {
        this.mode = OUT;
        if (!this.isKey) return true;
        this.flushHigh();
        const key = this.partial;
        const top = this.stack.length - 1, keys = this.stack[top];
        if (!keys) return true;
        if (keys.has(key)) return false;
        const own = shared ? new Set(keys) : keys;
        own.add(key);
        this.version++;
        this.stack[top] = own;
        return true;
      }
      if (b === 0x5c) { this.esc = 1; return true; }
      if (this.isKey) { this.flushHigh(); this.partial += String.fromCharCode(b); }
      return true;
    }
    if (this.esc === 1) {
      if (b === 0x75) { this.esc = 2; this.hex = 0; return true; }
      this.esc = 0;
      if (this.isKey) {
        this.flushHigh();
        const i = 'nrtbf/\\"'.indexOf(String.fromCharCode(b));
        this.partial += String.fromCharCode(i < 0 ? b : [0x0a, 0x0d, 0x09, 0x08, 0x0c, 0x2f, 0x5c, 0x22][i]);
      }
      return true;
    }
    const d = b >= 0x30 && b <= 0x39 ? b - 0x30 : (b | 0x20) >= 0x61 && (b | 0x20) <= 0x66 ? (b | 0x20) - 0x57 : 0;
    this.hex = this.hex * 16 + d;
    if (++this.esc < 6) return true;
    this.esc = 0;
    if (!this.isKey) return true;
    const u = this.hex;
    if (u >= 0xd800 && u <= 0xdbff) { this.flushHigh(); this.high = u; }
    else if (u >= 0xdc00 && u <= 0xdfff && this.high) { const h = this.high; this.high = 0; this.utf8(0x10000 + ((h - 0xd800) << 10) + (u - 0xdc00)); }
    else { this.flushHigh(); this.utf8(u); }
    return true;
  }

  private flushHigh(): void { if (this.high) { const h = this.high; this.high = 0; this.utf8(h); } }

  /** A code point's UTF-8 bytes (a lone surrogate as its three bytes: no valid text has them, so it equals only itself). */
  private utf8(c: number): void {
    const f = String.fromCharCode;
    if (c < 0x80) this.partial += f(c);
    else if (c < 0x800) this.partial += f(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) this.partial += f(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else this.partial += f(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }

  /** The innermost object's keys, where it has some. */
  private used(): Set<string> | null {
    const keys = this.stack.length ? this.stack[this.stack.length - 1] : null;
    return keys && keys.size ? keys : null;
  }

  /**
   * Whether the next bytes could still make a key the object has: a key is due (after `{` or `,`),
   * or the key being read begins one of them.
   */
  risky(): boolean {
    const keys = this.used();
    if (!keys) return false;
    if (this.mode === OUT) return this.keyNext;
    if (!this.isKey) return false;
    // (Bytes only ever add to the key read: one that begins no written key never becomes one.)
    const p = this.partial;
    for (const k of keys) if (k.startsWith(p)) return true;
    return false;
  }

  /** The rest of each key of the innermost object that the key being read begins (no escape pending). */
  rests(): string[] {
    const keys = this.used(), out: string[] = [];
    if (!keys || this.mode !== STR || !this.isKey) return out;
    const p = this.partial;
    for (const k of keys) if (k.length > p.length && k.startsWith(p)) out.push(k.slice(p.length));
    return out;
  }

  /** Whether a string being read is a key in the middle of an escape. */
  get escaping(): boolean { return this.mode === STR && this.isKey && (this.esc !== 0 || this.high !== 0); }
}

/** A set of token ids as the words of a mask it touches (indices) and its bits in each. */
class IdSet {
  readonly words: Int32Array;
  readonly bits: Uint32Array;
  constructor(ids: number[]) {
    const by = new Map<number, number>();
    for (const id of ids) by.set(id >>> 5, ((by.get(id >>> 5) ?? 0) | (1 << (id & 31))) >>> 0);
    this.words = Int32Array.from([...by.keys()].sort((x, y) => x - y));
    this.bits = Uint32Array.from(this.words, (w) => by.get(w)!);
  }
  /** Calls f with each id of the set that `mask` allows. */
  each(mask: Uint32Array, f: (id: number) => void): void {
    const words = this.words, bits = this.bits;
    for (let i = 0; i < words.length; i++) {
      const w = words[i];
      for (let m = mask[w] & bits[i]; m; m &= m - 1) f(w * 32 + 31 - Math.clz32(m & -m));
    }
  }
}

/** Per vocabulary: the tokens that matter to KeyScan. */
export interface KeyTokens {
  /**
   * after[n]: the tokens with a `"` or `,` after their n-th `"` (after[0]: with a `"` or `,` at
   * all). A scan passes n quotes before any of its keys can end or become due: 0 outside strings
   * in an object with keys, 1 in a string there (its first quote ends it, and what it ends is no
   * written key), 2 outside strings where no object has keys yet (a key opens and ends first), 3
   * in a value's string there.
   */
  after: IdSet[];
  /** Tokens of whitespace only (a key stays due). */
  spaces: IdSet;
  /** Tokens with a backslash before their first `"` (or none): an escape inside a key, which may escape that quote. */
  escapes: IdSet;
}

/**
 * A walk down the vocabulary's trie along `rest` (one char per byte): f gets each token whose
 * bytes are a prefix of rest, and q(k, node) each trie node of the bytes rest[0..k) then a quote,
 * for 1 ≤ k ≤ rest's length (the root's quote child is not reported).
 */
function walkRest(vocab: TokenVocab, rest: string, f: (id: number) => void, q: (k: number, node: number) => void): void {
  const end = vocab.nodes, nd = vocab.nodeDepth, nb = vocab.nodeByte, ns = vocab.nodeSkip;
  let first = 0;
  for (let d = 0; d <= rest.length; d++) {
    const b = d < rest.length ? rest.charCodeAt(d) : -1;
    let next = -1;
    // The root's children by byte (a table: no walk of its hundreds of children for each rest);
    // below, the children at depth d + 1 from the first, the next one past each subtree.
    if (d === 0) next = b >= 0 ? vocab.plain.rootChild[b] : -1;
    else for (let i = first; i < end && nd[i] === d + 1; i = ns[i]) {
      if (nb[i] === 0x22) q(d, i);
      if (nb[i] === b) next = i;
    }
    if (next < 0) return;
    for (let k = vocab.nodeTokStart[next]; k < vocab.nodeTokEnd[next]; k++) f(vocab.toks[k]);
    first = next + 1;
  }
}

const tokensOf = new WeakMap<TokenVocab, KeyTokens>();

/** Builds the vocabulary's tables for the key check (else built at its first check); returns them. */
export function keyTokens(vocab: TokenVocab): KeyTokens {
  let t = tokensOf.get(vocab);
  if (t) return t;
  const after: number[][] = [[], [], [], []], spaces: number[] = [], escapes: number[] = [];
  for (let id = 0; id < vocab.size; id++) {
    const b = vocab.bytes[id];
    if (!b || b.length === 0) continue;
    // The most n such that a quote or comma follows the n-th quote (−1: none at all).
    let quotes = 0, most = -1, bs = false, ws = true;
    for (let i = 0; i < b.length; i++) {
      const x = b[i];
      if (x === 0x22 || x === 0x2c) most = Math.min(quotes, 3);
      if (x === 0x22) quotes++; else if (x === 0x5c && quotes === 0) bs = true;
      if (x !== 0x20 && x !== 0x09 && x !== 0x0a && x !== 0x0d) ws = false;
    }
    for (let n = 0; n <= most; n++) after[n].push(id);
    if (bs) escapes.push(id);
    if (ws) spaces.push(id);
  }
  t = { after: after.map((ids) => new IdSet(ids)), spaces: new IdSet(spaces), escapes: new IdSet(escapes) };
  tokensOf.set(vocab, t);
  return t;
}

/** The bytes a look-ahead tries, the likeliest way on first: the quote, printable ASCII, the rest. */
const BYTE_ORDER = Uint8Array.from([0x22, ...Array.from({ length: 95 }, (_, i) => 0x20 + i).filter((b) => b !== 0x22), ...Array.from({ length: 129 }, (_, i) => 0x7f + i), ...Array.from({ length: 32 }, (_, i) => i)]);

/** Per automaton: its byte classes' bytes (one step decides a class), in BYTE_ORDER, classes by their first byte there. */
const groupsOf = new WeakMap<ByteAutomaton, Uint8Array[]>();
function byteGroups(a: ByteAutomaton): Uint8Array[] {
  let g = groupsOf.get(a);
  if (!g) {
    const by = new Map<number, number[]>();
    for (const b of BYTE_ORDER) { const e = a.eq[b]; let l = by.get(e); if (!l) { l = []; by.set(e, l); } l.push(b); }
    g = [...by.values()].map((l) => Uint8Array.from(l));
    groupsOf.set(a, g);
  }
  return g;
}

/** Most (automaton state, key read) pairs a look-ahead visits before it takes the way on as open. */
const LOOKAHEAD_NODES = 4096;

/**
 * Whether, from automaton state s and scan j (risky, not changed), some bytes the automaton allows lead out of
 * the risk: a key the object lacks ends, or the object goes on without a key (it closes). States
 * of the automaton are live (each can complete the output), so that is a way on.
 */
function wayOn(a: ByteAutomaton, s: number, j: KeyScan): boolean {
  const seen = new Set<string>();
  const todo: Array<[number, KeyScan]> = [[s, j]];
  const c = new KeyScan();
  while (todo.length) {
    const [st, sc] = todo.pop()!;
    const id = sc.lookKey(st);
    if (seen.has(id)) continue;
    if (seen.size >= LOOKAHEAD_NODES) return true;
    seen.add(id);
    for (const g of byteGroups(a)) {
      const s2 = a.step(st, g[0]);
      if (s2 === DEAD) continue;
      for (let i = 0; i < g.length; i++) {
        c.copy(sc);
        if (!c.push(g[i], true)) continue;
        if (!c.risky()) return true;
        todo.push([s2, c.clone()]);
      }
    }
  }
  return false;
}

/**
 * The tokens of `mask` (allowed at automaton state s, after the output `scan` read) that would write
 * a key twice in one object or leave no new key to write. Only tokens that can matter are read:
 * those with a quote or comma, and where a key is due or begun as one written, whitespace, escapes
 * and the tokens that spell the rest of a written key.
 */
export function repeatedKeyTokens(a: ByteAutomaton, vocab: TokenVocab, s: number, scan: KeyScan, mask: Uint32Array, advance: (s: number, id: number) => number): number[] {
  if (scan.stack.length === 0 && scan.mode === OUT) return [];
  // The same state, mask and scan position as the last check of this scan (a string value read on
  // in a loop of the automaton): the same tokens.
  const where = `${s}:${scan.where}`;
  const last = scan.last ??= { mask: null, where: '', out: [] };
  if (last.mask === mask && last.where === where) return last.out;
  const out = repeatedKeyTokensOf(a, vocab, s, scan, mask, advance);
  last.mask = mask; last.where = where; last.out = out;
  return out;
}

/** A scan's last check (repeatedKeyTokens): the mask (by identity), the state and scan position, the tokens. */
interface KeyCheckMemo { mask: Uint32Array | null; where: string; out: number[] }

function repeatedKeyTokensOf(a: ByteAutomaton, vocab: TokenVocab, s: number, scan: KeyScan, mask: Uint32Array, advance: (s: number, id: number) => number): number[] {
  const t = keyTokens(vocab);
  const out: number[] = [];
  const seen = new Set<number>();
  // Look-aheads by where the token leaves the scan, where that is in the object the scan is in
  // (whose keys are those of the look-ahead: one above would have closed, one below is new).
  const depth = scan.stack.length, top = scan.stack[depth - 1];
  const ways = new Map<string, boolean>();
  const risky = scan.risky();
  // Each token is read by one scratch copy of the scan (a copy of its own only for a look-ahead).
  const c = new KeyScan();
  const check = (id: number): void => {
    // (Several lists are read only where a key is at risk; a token in two is checked once.)
    if (risky) { if (seen.has(id)) return; seen.add(id); }
    c.copy(scan);
    const bytes = vocab.bytes[id]!;
    for (let i = 0; i < bytes.length; i++) if (!c.push(bytes[i], true)) { out.push(id); return; }
    if (!c.risky()) return;
    const s2 = advance(s, id);
    if (s2 === DEAD) return;
    const same = c.stack.length === depth && c.stack[depth - 1] === top;
    const key = same ? c.lookKey(s2) : '';
    let ok = same ? ways.get(key) : undefined;
    if (ok === undefined) { ok = wayOn(a, s2, c); if (same) ways.set(key, ok); }
    if (!ok) out.push(id);
  };
  const allowed = (id: number): boolean => (mask[id >>> 5] & (1 << (id & 31))) !== 0;
  let n = 0;
  if (!risky && !(scan.mode === STR && scan.esc !== 0)) {
    const keys = scan.stack.some((f) => f !== null && f.size > 0);
    n = scan.mode === OUT ? (keys ? 0 : 2) : scan.isKey || keys ? 1 : 3;
  } else if (risky && scan.mode === STR && !scan.escaping) n = 1;
  t.after[n].each(mask, check);
  if (risky) {
    if (scan.mode === OUT) t.spaces.each(mask, check);
    else if (scan.escaping) {
      // In the middle of an escape: every allowed token is read (rare: a key with escapes, begun as one written).
      for (let w = 0; w < mask.length; w++) for (let m = mask[w]; m; m &= m - 1) check(w * 32 + 31 - Math.clz32(m & -m));
    } else {
      // In a key begun as a written one. A token's first quote ends the key (unless a backslash
      // before it escapes it: those tokens are read, with the escapes), and what follows it is read
      // where it holds a quote or comma (after[1], above). So what remains is the key a token ends
      // or leaves begun, spelled along each written key's rest in the trie (up to a character
      // that must be escaped): each token that ends a written key is out unread, and each that
      // spells a start of a rest is read (for its look-ahead).
      t.escapes.each(mask, check);
      const keys = scan.stack[scan.stack.length - 1]!, p = scan.partial;
      const ended = (node: number): void => {
        for (let j = vocab.nodeTokStart[node], z = vocab.plain.subtreeTokEnd(node); j < z; j++) {
          const id = vocab.toks[j];
          if (allowed(id) && !seen.has(id)) { seen.add(id); out.push(id); }
        }
      };
      // A quote first ends the key read so far.
      if (keys.has(p) && vocab.plain.rootChild[0x22] >= 0) ended(vocab.plain.rootChild[0x22]);
      for (const r of scan.rests()) {
        let cut = 0;
        while (cut < r.length && r.charCodeAt(cut) >= 0x20 && r.charCodeAt(cut) !== 0x22 && r.charCodeAt(cut) !== 0x5c) cut++;
        walkRest(vocab, r.slice(0, cut), (id) => { if (allowed(id)) check(id); }, (k, node) => { if (keys.has(p + r.slice(0, k))) ended(node); });
      }
    }
  }
  return out.sort((x, y) => x - y);
}
