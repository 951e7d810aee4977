// `multipleOf` as regular languages over decimal digits: a remainder automaton (the value of the
// digits read so far modulo the divisor's numerator), minimised, intersected with the integer
// range of the schema's bounds by a digit-by-digit walk (the usual "digit DP": a lower and an
// upper bound are followed while the digits written equal theirs).
//
// What ajv checks is not the mathematical rule: it computes `res = x / m` in floating point and
// rejects unless `res === parseInt(res)` (node_modules/ajv/dist/vocabularies/validation/multipleOf.js;
// multipleOfPrecision unset). So 0.3 is not a multiple of 0.1 for ajv (0.3 / 0.1 is
// 2.9999999999999996), nor 0.07 or 19.99 of 0.01. The languages here contain only values that
// pass that check (soundness), which `multipleOfPlan` decides per divisor:
//  - an integer divisor: the integers it divides (x and m exact, x / m an exact integer);
//  - a dyadic divisor (a / 2^j: 0.5, 0.25, 2.5, 6.75 …): its decimal multiples I or I.F (F of at
//    most as many digits as m has), with |x| · 2^j < 2^53 so that x is exact in a double and the
//    division returns the integer exactly;
//  - another decimal divisor (0.01, 0.1, 0.05, 0.001, 0.3 …: 'float'): exactly the decimal
//    multiples that pass ajv's check, from the analysis below (`floatMultiples`), for |x| up to
//    2^51·m (0.01: 2.25·10^13), within a grammar budget: past a cap (a power of ten; none for
//    0.01, 0.1, 0.05, 0.005, 0.02) coarse segments keep the multiples that pass throughout each;
//  - what the analysis leaves out (5^4 residues and more: 0.0001; numerators with a large odd
//    factor; grammars past the budget: 0.11): only its multiples that are exact doubles, which are
//    the multiples of a / 2^p (0.0625 for 0.0001), and only when the double nearest m is within a
//    relative 2^-54 of m, which makes x / fl(m) round to the exact quotient for every such x
//    (proved in `closeEnough`).
import { GrammarBuilder } from './grammar.js';
import type { Sym } from './grammar.js';
import { ComplexityError } from './errors.js';

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
  /** Decimal multiples of m that pass ajv's check, exactly (`floatMultiples(m)`). */
  | { kind: 'float'; m: number }
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
  if (floatMultiples(m) !== null) return { kind: 'float', m };
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

// ---- decimal divisors as ajv computes them ------------------------------------------------------
//
// For a divisor m = M / 10^k (its shortest decimal text; 10^k / gcd not a power of two: 0.01, 0.1,
// 0.05, 0.001, 0.07 …) the decimal multiples v = N / 10^k (M | N) that pass ajv's check are found
// exactly, in closed form per piece of the number line, and written as a deterministic digit
// grammar. Why the accepted N form few intervals per residue class:
//  - x = fl(v). In the binade 2^e ≤ v < 2^(e+1), with s = 52 − e − k ≥ 0, the mantissa is
//    X = round(N·2^s / 5^k) = (N·2^s + δ) / 5^k where δ = c·5^k − r, r = N·2^s mod 5^k and c ∈ {0, 1}
//    (round up when r > 5^k / 2; no ties, 5^k is odd). So x = (N + ρ) / 10^k with ρ = δ·2^−s, which
//    depends only on N mod 5^k, that is on the last k digits of N (5^k divides 10^k).
//  - ajv passes iff fl(x / fl(m)) is an integer. For n = N / M < 2^51 the exact quotient is within
//    n·(2^−53 + 2^−53) < 1/2 of n and the doubles there are spaced at most 1/4, so the only integer
//    it can round to is n: ajv passes iff n − h₋ ≤ (N + ρ) / (10^k·fl(m)) ≤ n + h₊ (ties go to n,
//    whose mantissa is even), with h± half the spacing of doubles above / below n: constant while
//    n stays in one binade (and h₋ halved at n = 2^E itself).
// Both bounds are linear in N, so within a piece (v in one binade, n in one binade or n = 2^E) the
// accepted N of one residue class mod 5^k are an interval. That interval is wider than the piece
// (its width is (h₊ + h₋)·M / |1 − M / (10^k·fl(m))| and |fl(m) / m − 1| < 2^−53), so it cannot lie
// strictly inside: checking ajv's rule at the first and the last member of the class in the piece
// decides the whole class, and when they differ a binary search (with ajv's rule itself) finds
// the one switch. The accepted set is then a sorted list of segments of N, each with the set of
// residues mod 5^k it accepts: a regular language over the digits of N (a digit walk, as for the
// integer bounds), written for N < min(M·2^51, 2^52·5^k, 10^(15+k), 2^53) — n < 2^51, s ≥ 0, 15
// digits of I, N exact in a double; above that nothing is generated (0.01: |x| < 2.25·10^13). Where
// the grammar of all of it would be too large, a cap and coarse segments above it (`capSegments`).

/** The multiples of a decimal divisor that pass ajv's check, as segments of N (v = N / 10^k); all below 2^53. */
export interface FloatMultiples {
  m: number; M: number; k: number; P: number; F5: number;
  /** N ranges over [0, nMax). */
  nMax: number;
  /** From N = cap on, coarse segments: the residues that pass everywhere in each (a subset, never more). */
  cap: number;
  /** Sorted, disjoint, covering [0, nMax): in [lo, hi] the residues c mod 5^k with sets[set][c] = 1 pass. */
  segs: Array<{ lo: number; hi: number; set: number }>;
  sets: Uint8Array[];
}

/**
 * Bounds on the analysis: residues (5^k), segments, the divisor's numerator beyond its factors 2
 * and 5, N mod M·5^k (the states of the digit walk), and the grammar of a divisor that needs a cap.
 */
export const FLOAT_LIMITS = { maxClasses: 125, maxSegments: 4000, maxOddPart: 50, maxModulus: 20_000, grammarSymbols: 20_000 };

const floatCache = new Map<number, FloatMultiples | null>();

/** The double nearest N / 10^k (N < 2^53 and 10^k are exact, and the division is correctly rounded). */
const nearest = (N: number, P: number): number => N / P;

/** The analysis of divisor m (null when outside FLOAT_LIMITS or not such a divisor); cached per divisor. */
export function floatMultiples(m: number): FloatMultiples | null {
  if (floatCache.has(m)) return floatCache.get(m)!;
  const r = analyseFloat(m);
  if (floatCache.size >= 256) floatCache.clear(); // a long-running server meeting many divisors
  floatCache.set(m, r);
  return r;
}

function analyseFloat(m: number): FloatMultiples | null {
  const dec = decimalOf(m);
  if (dec === null || dec.k === 0 || dec.k > 8) return null;
  const { num: M, k } = dec;
  const P = 10n ** BigInt(k), F5n = 5n ** BigInt(k), F5 = Number(F5n);
  const g = gcd(M, P);
  if ((P / g & (P / g - 1n)) === 0n) return null; // dyadic: multipleOfPlan's 'decimals'
  let odd = M;
  while (odd % 2n === 0n) odd /= 2n;
  while (odd % 5n === 0n) odd /= 5n;
  if (F5 > FLOAT_LIMITS.maxClasses || odd > BigInt(FLOAT_LIMITS.maxOddPart) || M * F5n > BigInt(FLOAT_LIMITS.maxModulus)) return null;
  const min = (...xs: bigint[]) => xs.reduce((a, b) => (a < b ? a : b));
  const nMax = min((1n << 52n) * F5n, M << 51n, 10n ** BigInt(15 + k), 1n << 53n);
  // Piece boundaries: v = 2^e (N = ⌈2^e·10^k⌉) and n = 2^E (N = M·2^E, a piece of its own).
  const cuts = new Set<bigint>([0n, nMax]);
  for (let e = -4 * k - 2; e < 64; e++) {
    const b = e >= 0 ? P << BigInt(e) : (P + (1n << BigInt(-e)) - 1n) >> BigInt(-e);
    if (b < nMax) cuts.add(b);
    if (e >= 0 && M << BigInt(e) < nMax) { cuts.add(M << BigInt(e)); cuts.add((M << BigInt(e)) + 1n); }
  }
  const bounds = [...cuts].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  // From here every N is below 2^53: exact in doubles.
  const Mn = Number(M), Pn = Number(P);
  const ok = (N: number) => ajvMultipleOf(nearest(N, Pn), m);
  const L = Number((M / gcd(M, F5n)) * F5n); // the step of one residue class among the multiples of M
  const sets: Uint8Array[] = [], setId = new Map<string, number>();
  const intern = (st: Uint8Array): number => {
    const key = st.join('');
    let id = setId.get(key);
    if (id === undefined) { id = sets.length; sets.push(st.slice()); setId.set(key, id); }
    return id;
  };
  const segs: FloatMultiples['segs'] = [];
  const push = (lo: number, hi: number, st: Uint8Array) => {
    if (lo > hi) return;
    const set = intern(st), last = segs[segs.length - 1];
    if (last && last.set === set && last.hi + 1 === lo) last.hi = hi;
    else segs.push({ lo, hi, set });
    if (segs.length > FLOAT_LIMITS.maxSegments) throw new RangeError('segments');
  };
  try {
    for (let i = 0; i + 1 < bounds.length; i++) {
      const A = Number(bounds[i]), B = Number(bounds[i + 1]) - 1;
      if (A > B) continue;
      const st = new Uint8Array(F5).fill(2); // 2: no multiple of M in the class here
      const flips: Array<{ at: number; c: number; to: number }> = [];
      const first = A + ((Mn - (A % Mn)) % Mn);
      for (let N0 = first; N0 < first + L && N0 <= B; N0 += Mn) {
        const c = N0 % F5, T = (B - N0 - ((B - N0) % L)) / L;
        const a = ok(N0), z = ok(N0 + T * L);
        st[c] = a ? 1 : 0;
        if (a === z) continue;
        let lo = 0, hi = T; // ok(N0 + lo·L) = a, ok(N0 + hi·L) = z
        while (hi - lo > 1) { const mid = lo + Math.floor((hi - lo) / 2); if (ok(N0 + mid * L) === a) lo = mid; else hi = mid; }
        flips.push({ at: N0 + hi * L, c, to: z ? 1 : 0 });
      }
      flips.sort((x, y) => x.at - y.at);
      let from = A;
      for (const f of flips) { push(from, f.at - 1, st); st[f.c] = f.to; from = f.at; }
      push(from, B, st);
    }
  } catch (e) {
    if (e instanceof RangeError) return null;
    throw e;
  }
  // Above a cap (a power of ten, the highest that keeps the grammar within FLOAT_LIMITS) coarse
  // segments keep the residues that pass in every fine segment they overlap.
  const at = (j: number, steps: number): FloatMultiples => {
    const cap = Math.min(10 ** j, Number(nMax));
    return { m, M: Mn, k, P: Pn, F5, nMax: Number(nMax), cap, ...capSegments(segs, sets, cap, Number(nMax), F5, steps) };
  };
  const top = String(nMax).length;
  const full = at(top, 1);
  // 0.01, 0.1, 0.05, 0.005 …: few segments and sets, and the digits of I are free (M = 2^a·5^b):
  // the grammar is small (0.01: about 1,300 rules, 12,000 symbols). Otherwise the cap is the
  // highest power of ten whose grammar, written into a scratch builder with the budget as its
  // symbol limit, fits, with coarse segments of one significant digit above it, or of a decade;
  // none fits: null (multipleOfPlan's subset of exact doubles).
  if (k <= 3 && odd === 1n && full.segs.length <= 250 && full.sets.length <= 100) return full;
  const fits = (fm: FloatMultiples) => {
    try { floatMultipleAlts(new GrammarBuilder({ maxSymbols: FLOAT_LIMITS.grammarSymbols }), fm, 0, fm.nMax - 1, false, 15); return true; } catch (e) {
      if (e instanceof ComplexityError) return false;
      throw e;
    }
  };
  for (const steps of [9, 1]) {
    if (!fits(at(0, steps))) continue;
    let lo = 0, hi = top; // the largest j whose grammar fits (binary search: the size grows with the cap)
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (fits(at(mid, steps))) lo = mid; else hi = mid - 1; }
    return at(lo, steps);
  }
  return null;
}

/**
 * The segments below `cap`, and from cap on coarse ones between numbers of one significant digit
 * (d·10^j to (d + 1)·10^j, `steps` 9) or powers of ten (`steps` 1), shallow in the digit walk, each with the residues that pass in every
 * segment it overlaps (a subset, never more). 2 (no multiple there) counts as 0 below the cap and
 * does not count above it.
 */
function capSegments(all: FloatMultiples['segs'], sets0: Uint8Array[], cap: number, nMax: number, F5: number, steps: number): Pick<FloatMultiples, 'segs' | 'sets'> {
  const sets: Uint8Array[] = [], ids = new Map<string, number>(), segs: FloatMultiples['segs'] = [];
  const push = (lo: number, hi: number, st: Uint8Array) => {
    const key = st.join('');
    let set = ids.get(key);
    if (set === undefined) { set = sets.length; sets.push(st); ids.set(key, set); }
    const last = segs[segs.length - 1];
    if (last && last.set === set) last.hi = hi;
    else segs.push({ lo, hi, set });
  };
  let i = 0;
  for (; i < all.length && all[i].lo < cap; i++) push(all[i].lo, Math.min(all[i].hi, cap - 1), sets0[all[i].set].map((v) => (v === 1 ? 1 : 0)));
  if (i > 0 && all[i - 1].hi >= cap) i--;
  for (let lo = cap; lo < nMax;) {
    const w = 10 ** (String(lo).length - 1), hi = Math.min(nMax - 1, (steps === 9 ? lo + w : 10 * w) - 1);
    const st = new Uint8Array(F5).fill(1);
    for (let j = i; j < all.length && all[j].lo <= hi; j++) for (let c = 0; c < F5; c++) if (sets0[all[j].set][c] === 0) st[c] = 0;
    push(lo, hi, st);
    while (i < all.length && all[i].hi <= hi) i++;
    lo = hi + 1;
  }
  return { segs, sets };
}

/** Whether N (≥ 0) is a multiple of M that passes ajv's check, per the analysis (N < nMax). */
export function floatAccepts(fm: FloatMultiples, N: number): boolean {
  if (N < 0 || N >= fm.nMax || N % fm.M !== 0) return false;
  return fm.sets[fm.segs[segIndex(fm, N)].set][N % fm.F5] === 1;
}

function segIndex(fm: FloatMultiples, N: number): number {
  let lo = 0, hi = fm.segs.length - 1;
  while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (fm.segs[mid].lo <= N) lo = mid; else hi = mid - 1; }
  return lo;
}

/**
 * The N in [0, nMax) whose double fl(N / 10^k) satisfies a bound: the least N with fl(N/10^k) ≥ x
 * (or > x when strict) for a lower bound, the greatest with ≤ x (< x) for an upper one (fl is
 * monotone, so the set is a prefix or a suffix). Returns nMax (lower) / -1 (upper) when there is none.
 */
export function boundN(fm: FloatMultiples, x: number, upper: boolean, strict: boolean): number {
  const pass = (N: number) => { const d = nearest(N, fm.P); return upper ? (strict ? d < x : d <= x) : (strict ? d > x : d >= x); };
  // Lower: the first N that passes; upper: the last N that passes (the first that fails, minus 1).
  const want = !upper;
  let lo = 0, hi = fm.nMax - 1;
  if (pass(lo) === want) return upper ? -1 : 0;
  if (pass(hi) !== want) return upper ? hi : fm.nMax;
  while (hi - lo > 1) { const mid = lo + Math.floor((hi - lo) / 2); if (pass(mid) === want) hi = mid; else lo = mid; }
  return upper ? lo : hi;
}

/** Per builder and (divisor, integer, maxFrac): the shared parts already written. */
interface FloatMemo { freeI: Map<number, Sym[] | null>; freeF: Map<string, Sym[] | null>; fracOf: Map<number, Sym[] | null>; digits: Sym[]; zeros?: Sym[]; walks: Map<string, Sym[][]> }
const floatMemo = new WeakMap<GrammarBuilder, Map<string, FloatMemo>>();
const POW10: number[] = Array.from({ length: 23 }, (_, i) => 10 ** i);
const sameSeq = (x: Sym[], y: Sym[]) => x.length === y.length && x.every((v, i) => v === y[i]);

/**
 * Grammar alternatives for the texts I or I.F of the N in [lo, hi] that `fm` accepts: I without
 * leading zeros, F of 1 to `maxFrac` digits (its digits past the k-th zeros). `integer`: I only.
 * A digit walk per length of I with the bounds and the segment boundaries tight (one rule per
 * prefix whose digits still straddle a boundary), and shared parts (memoised in the builder)
 * once the remaining digits fall in one segment inside the bounds: there the digits of I that no
 * longer change N mod M·5^k are a plain chain of digits, then a rule per accepted set of the last
 * digits. Deterministic: each byte of a text has one way to continue.
 */
export function floatMultipleAlts(b: GrammarBuilder, fm: FloatMultiples, lo: number, hi: number, integer: boolean, maxFrac: number): Sym[][] {
  const { k, M, F5 } = fm;
  if (hi > fm.nMax - 1) hi = fm.nMax - 1;
  if (lo < 0) lo = 0;
  if (lo > hi) return [];
  let byB = floatMemo.get(b);
  if (byB === undefined) { byB = new Map(); floatMemo.set(b, byB); }
  const ctxKey = `${fm.m}:${integer}:${maxFrac}`;
  let memo = byB.get(ctxKey);
  if (memo === undefined) { memo = { freeI: new Map(), freeF: new Map(), fracOf: new Map(), digits: [], walks: new Map() }; byB.set(ctxKey, memo); }
  const mm = memo;
  // The same range (both signs of an unbounded schema) gets the same alternatives.
  const walkKey = `${lo}:${hi}`;
  const done = mm.walks.get(walkKey);
  if (done !== undefined) return done;
  const modulus = M * F5; // N mod M·5^k decides both tests on the last digits
  const nSets = fm.sets.length;
  const digit = b.byteRange(0x30, 0x39), dot = b.cls([0x2e]);
  const digitsCls = (mask: number) => { const ds: number[] = []; for (let d = 0; d < 10; d++) if (mask & (1 << d)) ds.push(0x30 + d); return b.cls(ds); };
  const rule = (name: string, alts: Sym[][]): Sym[] | null => (alts.length === 0 ? null : alts.length === 1 && alts[0].length === 1 ? alts[0] : [b.rule(name, alts)]);
  // Alternatives [digit class, ...child] grouped by equal children.
  const branch = (from: number, child: (d: number) => Sym[] | null): Sym[][] => {
    const seqs: Sym[][] = [], masks: number[] = [];
    for (let d = from; d < 10; d++) {
      const c = child(d);
      if (c === null) continue;
      let j = 0;
      while (j < seqs.length && !sameSeq(seqs[j], c)) j++;
      if (j < seqs.length) masks[j] |= 1 << d;
      else { seqs.push(c); masks.push(1 << d); }
    }
    return seqs.map((c, j) => [digitsCls(masks[j]), ...c]);
  };
  const zeros = (): Sym[] => (mm.zeros ??= [b.rule('mul-zeros', [b.repeat('mul-zero', [b.cls([0x30])], 0, Math.max(0, maxFrac - k))])]);
  // Free fraction digits: r of the k remain; bits[s] = 1 when the suffix s (r digits, zero-padded) passes.
  const freeF = (r: number, bits: Uint8Array): Sym[] | null => {
    if (r === 0) return bits[0] ? zeros() : null;
    // The key: r and the bits packed 16 to a code unit.
    const words: number[] = [r];
    for (let i = 0; i < bits.length; i += 16) { let w = 0; for (let j = 0; j < 16 && i + j < bits.length; j++) w |= bits[i + j] << j; words.push(w); }
    const key = String.fromCharCode(...words);
    let s = mm.freeF.get(key);
    if (s !== undefined) return s;
    const alts: Sym[][] = [];
    if (r < k && bits[0]) alts.push([]);
    const w = POW10[r - 1];
    alts.push(...branch(0, (d) => { const sub = bits.subarray(d * w, (d + 1) * w); return sub.includes(1) ? freeF(r - 1, sub) : null; }));
    s = rule('mul-frac', alts);
    mm.freeF.set(key, s);
    return s;
  };
  // The last r digits (suffixes s of N = base + s, base: N mod M·5^k before them) that pass in `set`.
  const fracOf = (set: number, base: number, r: number): Sym[] | null => {
    const key = (set * modulus + base) * (k + 1) + r;
    let s = mm.fracOf.get(key);
    if (s !== undefined) return s;
    const st = fm.sets[set], bits = new Uint8Array(POW10[r]);
    for (let x = 0; x < bits.length; x++) { const v = base + x; bits[x] = st[v % F5] && v % M === 0 ? 1 : 0; }
    s = freeF(r, bits);
    mm.fracOf.set(key, s);
    return s;
  };
  // Exactly t digits (a chain of rules shared by every free part).
  const digitsN = (t: number): Sym => (mm.digits[t] ??= b.rule('mul-digits', [t === 1 ? [digit] : [digit, digitsN(t - 1)]]));
  // Digits of I whose weight 10^w is a multiple of M·5^k change nothing: w ≥ wFree.
  let wFree = 0;
  while (wFree < 22 && POW10[wFree] % modulus !== 0) wFree++;
  // Free I digits: rI remain, then the '.' stage; mod = (digits so far)·10^(rI + k) mod M·5^k.
  const freeI = (rI: number, set: number, mod: number): Sym[] | null => {
    const t = Math.max(0, Math.min(rI, rI + k - wFree)); // the leading free digits
    const r = rI - t, key = (r * nSets + set) * modulus + mod;
    let rest = mm.freeI.get(key);
    if (rest === undefined) {
      if (r === 0) {
        const alts: Sym[][] = [];
        if (fm.sets[set][mod % F5] && mod % M === 0) alts.push([]);
        if (!integer) { const f = fracOf(set, mod, k); if (f !== null) alts.push([dot, ...f]); }
        rest = rule('mul-dot', alts);
      } else {
        const p = POW10[r - 1 + k] % modulus;
        rest = rule('mul-int', branch(0, (d) => freeI(r - 1, set, (mod + d * p) % modulus)));
      }
      mm.freeI.set(key, rest);
    }
    return rest === null ? null : t === 0 ? rest : [digitsN(t), ...rest];
  };
  // The segment's set when [a, z] lies in one segment inside the bounds, else -1.
  const uniform = (a: number, z: number): number => {
    if (a < lo || z > hi) return -1;
    const g = fm.segs[segIndex(fm, a)];
    return g.hi >= z ? g.set : -1;
  };
  const acc = (N: number) => N >= lo && N <= hi && floatAccepts(fm, N);
  // F stage: Pf = N's digits so far (I and k − r fraction digits). (Products past 2^53 round, but
  // stay above hi < 2^53, so the tests hold.)
  const fnode = (Pf: number, r: number): Sym[] | null => {
    const a = Pf * POW10[r], z = a + POW10[r] - 1;
    if (a > hi || z < lo) return null;
    const u = uniform(a, z);
    if (u >= 0) return fracOf(u, a % modulus, r);
    const alts: Sym[][] = [];
    if (r < k && acc(a)) alts.push([]);
    alts.push(...branch(0, (d) => fnode(Pf * 10 + d, r - 1)));
    return rule('mul-frac', alts);
  };
  // I stage: rI digits of I remain (lead: the first digit of a multi-digit I).
  const inode = (Pf: number, rI: number, lead: boolean): Sym[] | null => {
    const a = Pf * POW10[rI + k], z = a + POW10[rI + k] - 1;
    if (a > hi || z < lo) return null;
    if (!lead) { const u = uniform(a, z); if (u >= 0) return freeI(rI, u, a % modulus); }
    if (rI === 0) {
      const alts: Sym[][] = [];
      if (acc(a)) alts.push([]);
      if (!integer) { const f = fnode(Pf, k); if (f !== null) alts.push([dot, ...f]); }
      return rule('mul-dot', alts);
    }
    return rule('mul-int', branch(lead ? 1 : 0, (d) => inode(Pf * 10 + d, rI - 1, false)));
  };
  const out: Sym[][] = [];
  for (let len = 1; len <= 15; len++) {
    const a = len === 1 ? 0 : POW10[len - 1 + k], z = POW10[len + k] - 1;
    if (a > hi) break;
    if (z < lo) continue;
    const s = len === 1 ? inode(0, 1, false) : inode(0, len, true);
    if (s !== null) out.push(s);
  }
  const all = out.length === 0 ? [] : [[b.rule('mul-number', out)]];
  mm.walks.set(walkKey, all);
  return all;
}
