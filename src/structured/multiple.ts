// `multipleOf` as regular languages over decimal digits: a remainder automaton (the value of the
// digits read so far modulo the divisor's numerator), minimised, intersected with the integer
// range of the schema's bounds by a digit-by-digit walk (the usual "digit DP": a lower and an
// upper bound are followed while the digits written equal theirs).
//
// What ajv checks is not the mathematical rule: it computes `res = x / m` in floating point and
// rejects unless `res === parseInt(res)` (node_modules/ajv/dist/vocabularies/validation/multipleOf.js;
// multipleOfPrecision unset). So 0.3 is not a multiple of 0.1 for ajv (0.3 / 0.1 is
// 2.9999999999999996). The languages here are chosen so that every value they contain passes that
// check (soundness), which `multipleOfPlan` decides per divisor:
//  - an integer divisor: the integers it divides (x and m exact, x / m an exact integer);
//  - a dyadic divisor (a / 2^j: 0.5, 0.25, 2.5, 6.75 …): its decimal multiples I or I.F (F of at
//    most as many digits as m has), with |x| · 2^j < 2^53 so that x is exact in a double and the
//    division returns the integer exactly;
//  - another decimal divisor (a / d with d = 2^p · r, r odd > 1: 0.01, 0.1, 0.0001 …): only its
//    multiples that are exact doubles, which are the multiples of a / 2^p (0.25 for 0.01, 0.5 for
//    0.1, integers for 0.2), and only when the double nearest m is within a relative 2^-54 of m,
//    which makes x / fl(m) round to the exact quotient for every such x (proved in `closeEnough`);
//    the other multiples such as 10.99 for 0.01 are left out (ajv rejects about one in nine of
//    them, 0.07 for 0.01, and which ones follows no digit pattern).
import type { GrammarBuilder, Sym } from './grammar.js';

/** A deterministic automaton over the bytes '0'..'9' and '.' (symbol 10). */
export interface DigitDfa { n: number; start: number; next: Int32Array; accept: Uint8Array }
const SYMS = 11;
const DOT = 10;

/** ajv's multipleOf check (without multipleOfPrecision). */
export function ajvMultipleOf(x: number, m: number): boolean {
  if (m === 0) return false;
  const res = x / m;
  return res === parseInt(String(res));
}

/** The decimal digits of a positive finite double as an exact fraction num / 10^k (null when written with an exponent and not an integer). */
function decimalOf(m: number): { num: bigint; k: number } | null {
  if (Number.isInteger(m) && m <= Number.MAX_SAFE_INTEGER) return { num: BigInt(m), k: 0 };
  const t = String(m);
  if (/e/i.test(t)) return null;
  const dot = t.indexOf('.');
  if (dot < 0) return { num: BigInt(t), k: 0 };
  return { num: BigInt(t.slice(0, dot) + t.slice(dot + 1)), k: t.length - dot - 1 };
}

const gcd = (a: bigint, b: bigint): bigint => { while (b) [a, b] = [b, a % b]; return a; };

/** The exact value of a finite positive double as mant * 2^exp. */
function exactDouble(x: number): { mant: bigint; exp: number } {
  const buf = new DataView(new ArrayBuffer(8));
  buf.setFloat64(0, x);
  const hi = buf.getUint32(0), lo = buf.getUint32(4);
  const e = (hi >>> 20) & 0x7ff;
  let mant = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  if (e !== 0) mant |= 1n << 52n;
  return { mant, exp: (e === 0 ? 1 : e) - 1075 };
}

/**
 * Whether the double f nearest the rational a/d is within a relative 2^-54 of it (|f - a/d| < 2^-54 f):
 * then for every integer multiple x = n·(a/d) (n an integer below 2^52) x / f is n·(a/d)/f, at less than
 * 2^-54·n from n, which is less than half the spacing of doubles around n: it rounds to n exactly
 * (above 2^52 every double is an integer).
 */
function closeEnough(f: number, a: bigint, d: bigint): boolean {
  const { mant, exp } = exactDouble(f);
  // f = mant·2^exp; compare |mant·d·2^exp - a| · 2^54 < mant·d·2^exp, scaled by 2^-exp (exp < 0 here, or f an integer).
  const s = exp < 0 ? 1n << BigInt(-exp) : 1n;
  const fd = exp < 0 ? mant * d : (mant << BigInt(exp)) * d;
  const diff = fd - a * s;
  return (diff < 0n ? -diff : diff) * (1n << 54n) < fd;
}

export type MultiplePlan =
  /** Integers divisible by `divisor` (which may be 1). */
  | { kind: 'integers'; divisor: number }
  /** Decimal multiples of num / 10^k (k ≥ 1, dyadic), |x| < maxAbs. */
  | { kind: 'decimals'; num: number; k: number; maxAbs: number }
  | { kind: 'refuse'; why: string };

/** What this compiler generates for multipleOf m (see the file's head). */
export function multipleOfPlan(m: number): MultiplePlan {
  // Quotients of 15-digit integers must stay below 1e21 (parseInt of an exponent form fails).
  if (m < 1e-5) return { kind: 'refuse', why: `divisor ${m} below 1e-5` };
  const dec = decimalOf(m);
  if (dec === null) return { kind: 'refuse', why: `divisor ${m} written with an exponent` };
  const g = gcd(dec.num, 10n ** BigInt(dec.k));
  const a = dec.num / g, d = 10n ** BigInt(dec.k) / g;
  if (a > 20_000n) return { kind: 'refuse', why: `divisor ${m}: numerator ${a} is too large for the digit automaton (at most 20000)` };
  if (d === 1n) return { kind: 'integers', divisor: Number(a) };
  if ((d & (d - 1n)) === 0n) {
    const j = d.toString(2).length - 1;
    if (dec.num > 2_000n) return { kind: 'refuse', why: `divisor ${m}: ${dec.num} / 10^${dec.k} is too large for the digit automaton` };
    return { kind: 'decimals', num: Number(dec.num), k: dec.k, maxAbs: 2 ** (53 - j) };
  }
  if (!closeEnough(m, a, d)) return { kind: 'refuse', why: `divisor ${m}: ajv's floating-point check (x / ${m} is an integer) is not exact for its multiples` };
  // d = 2^p · r (r odd, > 1): the multiples of m that are exact doubles are the multiples of a / 2^p.
  let p = 0;
  while (((d >> BigInt(p)) & 1n) === 0n) p++;
  if (p === 0) return { kind: 'integers', divisor: Number(a) };
  const num = a * 5n ** BigInt(p);
  if (num > 2_000n) return { kind: 'integers', divisor: Number(a) };
  return { kind: 'decimals', num: Number(num), k: p, maxAbs: 2 ** (53 - p) };
}

/**
 * The automaton of the decimal multiples of num / 10^k: digits of I (state = I mod num), then
 * optionally '.' and 1..k digits of F, accepting when I.F · 10^k ≡ 0 (mod num). k = 0: integers.
 * Minimised (Moore), with the dead state left out of `accept` (and reachable as state `dead`).
 */
const dfaCache = new Map<string, DigitDfa & { dead: number }>();

export function multipleDfa(num: number, k: number): DigitDfa & { dead: number } {
  const key = `${num}:${k}`;
  let d = dfaCache.get(key);
  if (d === undefined) { d = buildMultipleDfa(num, k); dfaCache.set(key, d); }
  return d;
}

function buildMultipleDfa(num: number, k: number): DigitDfa & { dead: number } {
  // States: int r (r in [0, num)), frac (r, j) for j in 0..k (j = digits after '.'), dead.
  const nInt = num, nFrac = k > 0 ? num * (k + 1) : 0, dead = nInt + nFrac, n = dead + 1;
  const next = new Int32Array(n * SYMS).fill(dead);
  const accept = new Uint8Array(n);
  const frac = (r: number, j: number) => nInt + r * (k + 1) + j;
  const pow10 = (e: number) => { let p = 1 % num; for (let i = 0; i < e; i++) p = (p * 10) % num; return p; };
  for (let r = 0; r < num; r++) {
    for (let dgt = 0; dgt < 10; dgt++) next[r * SYMS + dgt] = (r * 10 + dgt) % num;
    if (k > 0) next[r * SYMS + DOT] = frac(r, 0);
    accept[r] = (r * pow10(k)) % num === 0 ? 1 : 0;
    for (let j = 0; j <= k && k > 0; j++) {
      const q = frac(r, j);
      if (j < k) for (let dgt = 0; dgt < 10; dgt++) next[q * SYMS + dgt] = frac((r * 10 + dgt) % num, j + 1);
      accept[q] = j >= 1 && (r * pow10(k - j)) % num === 0 ? 1 : 0;
    }
  }
  return minimize({ n, start: 0, next, accept }, dead);
}

/** Moore's partition refinement; the result's states are the classes (start and dead renumbered). */
function minimize(dfa: DigitDfa, dead: number): DigitDfa & { dead: number } {
  const { n, next, accept } = dfa;
  let cls = Int32Array.from(accept);
  let count = 0;
  for (;;) {
    const sig = new Map<string, number>();
    const nc = new Int32Array(n);
    const codes = new Array<number>(2 * SYMS + 2);
    for (let q = 0; q < n; q++) {
      // The class and its successors' classes as 16-bit code units (the key of the signature).
      codes[0] = cls[q] & 0xffff; codes[1] = cls[q] >>> 16;
      for (let c = 0; c < SYMS; c++) { const t = cls[next[q * SYMS + c]]; codes[2 + 2 * c] = t & 0xffff; codes[3 + 2 * c] = t >>> 16; }
      const key = String.fromCharCode(...codes);
      let id = sig.get(key);
      if (id === undefined) { id = sig.size; sig.set(key, id); }
      nc[q] = id;
    }
    cls = nc;
    if (sig.size === count) break;
    count = sig.size;
  }
  const out = new Int32Array(count * SYMS), acc = new Uint8Array(count);
  for (let q = 0; q < n; q++) {
    acc[cls[q]] = accept[q];
    for (let c = 0; c < SYMS; c++) out[cls[q] * SYMS + c] = cls[next[q * SYMS + c]];
  }
  return { n: count, start: cls[dfa.start], next: out, accept: acc, dead: cls[dead] };
}

/**
 * Non-negative integers I in [lo, hi] (no leading zeros) whose digits lead the automaton from its
 * start to a state q with tail(q) non-null, followed by tail(q). Alternatives; empty when none.
 */
export function digitsInRange(b: GrammarBuilder, dfa: DigitDfa & { dead: number }, lo: number, hi: number, tail: (q: number) => Sym[] | null, tag: string,
  free = new Map<string, Sym[] | null>()): Sym[][] {
  const out: Sym[][] = [];
  if (lo > hi) return out;
  // Digit classes by bit mask (one class per set of digits).
  const classes = new Map<number, Sym>();
  const digits = (ds: number[]): Sym => {
    let mask = 0;
    for (const d of ds) mask |= 1 << d;
    let c = classes.get(mask);
    if (c === undefined) { c = b.cls(ds.map((d) => 0x30 + d)); classes.set(mask, c); }
    return c;
  };
  // Any `rem` digits from state q, then the tail.
  const F = (rem: number, q: number): Sym[] | null => {
    if (q === dfa.dead) return null;
    if (rem === 0) return tail(q);
    const key = `${rem}:${q}`;
    if (free.has(key)) return free.get(key)!;
    const groups = new Map<number, number[]>();
    for (let d = 0; d < 10; d++) { const t = dfa.next[q * SYMS + d]; if (!groups.has(t)) groups.set(t, []); groups.get(t)!.push(d); }
    const alts: Sym[][] = [];
    for (const [t, ds] of groups) { const r = F(rem - 1, t); if (r !== null) alts.push([digits(ds), ...r]); }
    const res = alts.length === 0 ? null : [b.alt(`mul-${tag}`, alts)];
    free.set(key, res);
    return res;
  };
  // Digits from position i of strings between x and y (same length), tight on the low / high side.
  const T = (x: string, y: string, i: number, tl: boolean, th: boolean, q: number): Sym[] | null => {
    if (q === dfa.dead) return null;
    // A bound whose remaining digits are all 0 (low) or all 9 (high) no longer constrains.
    if (tl && /^0*$/.test(x.slice(i))) tl = false;
    if (th && /^9*$/.test(y.slice(i))) th = false;
    if (!tl && !th) return F(x.length - i, q);
    if (i === x.length) return tail(q);
    const dlo = tl ? +x[i] : 0, dhi = th ? +y[i] : 9;
    const alts: Sym[][] = [];
    const groups = new Map<string, number[]>();
    for (let d = dlo; d <= dhi; d++) {
      const ntl = tl && d === dlo, nth = th && d === dhi, t = dfa.next[q * SYMS + d];
      const key = `${ntl}:${nth}:${t}`;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key)!.push(d);
    }
    for (const [key, ds] of groups) {
      const [ntl, nth] = key.split(':').map((v) => v === 'true');
      const r = T(x, y, i + 1, ntl, nth, dfa.next[q * SYMS + ds[0]]);
      if (r !== null) alts.push([digits(ds), ...r]);
    }
    return alts.length === 0 ? null : [b.alt(`mul-${tag}`, alts)];
  };
  for (let len = String(lo).length; len <= String(hi).length; len++) {
    const a = Math.max(lo, len === 1 ? 0 : 10 ** (len - 1)), z = Math.min(hi, 10 ** len - 1);
    if (a > z) continue;
    const r = T(String(a), String(z), 0, true, true, dfa.start);
    if (r !== null) out.push(r);
  }
  return out;
}
