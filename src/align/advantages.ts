// Advantages, reward shaping and problem sampling for reasoning RL (issue #17): plain numbers in,
// plain numbers out (no tensors). Completions of one prompt are consecutive rows: rows
// [g·G, (g+1)·G) are group g. scripts/ref_grpo.py computes the golden values of the formulas.
//
//   groupAdvantages(rewards, G, scale)  TRL: A = r − mean(group), divided by (std + 1e-4) with the
//                                       UNBIASED std of the group ('group'), of the whole batch
//                                       ('batch'), or not divided ('none'); std = 0 for one value;
//                                       exactly 0 for a group of equal rewards. Float64 inside.
//   zeroStdGroups(rewards, G, tol?)     per group: are all its rewards equal (max − min ≤ tol)?
//                                       (TRL's frac_reward_zero_std is their mean)
//   filterGroups(rewards, G, tol?)      DAPO dynamic sampling: the rows of the groups that carry a
//                                       signal (not all equal); the trainer samples more prompts
//                                       until it has enough groups ("drop and refill").
//   overlongPenalty(lengths, Lmax, Lcache)  DAPO soft overlong punishment, added to the reward:
//                                       0 if len ≤ Lmax − Lcache; ((Lmax − Lcache) − len) / Lcache
//                                       up to Lmax; −1 beyond.
//   maskTruncated(mask, truncated)      DAPO overlong filtering (TRL mask_truncated_completions):
//                                       the [B, L] mask with the rows of truncated completions zeroed.
//   kimiLengthPenalty(lengths, correct, G)  Kimi k1.5 per group: λ = 0.5 − (len − min)/(max − min)
//                                       (0 when all lengths are equal); λ for a correct answer,
//                                       min(0, λ) for a wrong one.
//   ProblemSampler                      Kimi k1.5 prioritised sampling (weight ∝ 1 − running
//                                       success rate) and curriculum sampling (easiest problems
//                                       first, the pool growing to the whole set), seeded; state()
//                                       / load() for resuming.
//   shortestRejection(samples)          Kimi long2short: per prompt, its shortest correct sample.
import { Generator } from '../tensor/random.js';

/** How group-centred rewards are scaled (TRL's scale_rewards). */
export type RewardScale = 'group' | 'batch' | 'none';

/** Bad input to an advantage / shaping helper: names the argument at fault. */
export class AdvantageError extends Error {
  constructor(readonly fn: string, readonly field: string, detail: string) {
    super(`${fn}: ${field}: ${detail}`);
    this.name = 'AdvantageError';
  }
}

type Numbers = Float32Array | Float64Array | readonly number[];

function checkGroups(fn: string, rewards: Numbers, groupSize: number): void {
  if (!Number.isInteger(groupSize) || groupSize < 1) throw new AdvantageError(fn, 'groupSize', `${groupSize} is not a positive integer`);
  if (rewards.length % groupSize !== 0) throw new AdvantageError(fn, 'rewards', `${rewards.length} values are not a whole number of groups of ${groupSize}`);
  for (let i = 0; i < rewards.length; i++) {
    if (!Number.isFinite(rewards[i])) throw new AdvantageError(fn, 'rewards', `value ${rewards[i]} at ${i} is not finite`);
  }
}

function meanStd(x: Numbers, start: number, n: number): [number, number] {
  let s = 0;
  for (let i = start; i < start + n; i++) s += x[i];
  const m = s / n;
  if (n < 2) return [m, 0];
  let v = 0;
  for (let i = start; i < start + n; i++) v += (x[i] - m) * (x[i] - m);
  return [m, Math.sqrt(v / (n - 1))];
}

/** Group-relative advantages (TRL semantics; see the top of this file). */
export function groupAdvantages(rewards: Numbers, groupSize: number, scale: RewardScale = 'group'): Float32Array {
  checkGroups('groupAdvantages', rewards, groupSize);
  if (scale !== 'group' && scale !== 'batch' && scale !== 'none') throw new AdvantageError('groupAdvantages', 'scale', `'${String(scale)}' is not 'group', 'batch' or 'none'`);
  const n = rewards.length;
  const out = new Float32Array(n);
  const batchStd = scale === 'batch' ? meanStd(rewards, 0, n)[1] : 0;
  for (let g = 0; g < n; g += groupSize) {
    const [m, s] = meanStd(rewards, g, groupSize);
    const std = scale === 'group' ? s : batchStd;
    let equal = true;
    for (let i = g + 1; i < g + groupSize; i++) equal &&= rewards[i] === rewards[g];
    if (equal) continue; // exactly 0 (the computed mean of equal values may differ from them by an ulp)
    for (let i = g; i < g + groupSize; i++) out[i] = scale === 'none' ? rewards[i] - m : (rewards[i] - m) / (std + 1e-4);
  }
  return out;
}

/** Per group: true when all its rewards are equal (max − min ≤ tol): no learning signal. */
export function zeroStdGroups(rewards: Numbers, groupSize: number, tol = 0): boolean[] {
  checkGroups('zeroStdGroups', rewards, groupSize);
  const out: boolean[] = [];
  for (let g = 0; g < rewards.length; g += groupSize) {
    let lo = Infinity, hi = -Infinity;
    for (let i = g; i < g + groupSize; i++) { lo = Math.min(lo, rewards[i]); hi = Math.max(hi, rewards[i]); }
    out.push(hi - lo <= tol);
  }
  return out;
}

export interface FilteredGroups {
  /** Row indices of the kept groups, in order. */
  keep: number[];
  /** Indices of the kept groups. */
  groups: number[];
  /** Indices of the dropped (all-equal) groups. */
  dropped: number[];
}

/** DAPO dynamic sampling: keep the groups whose rewards are not all equal. */
export function filterGroups(rewards: Numbers, groupSize: number, tol = 0): FilteredGroups {
  const zero = zeroStdGroups(rewards, groupSize, tol);
  const out: FilteredGroups = { keep: [], groups: [], dropped: [] };
  zero.forEach((z, g) => {
    if (z) { out.dropped.push(g); return; }
    out.groups.push(g);
    for (let i = g * groupSize; i < (g + 1) * groupSize; i++) out.keep.push(i);
  });
  return out;
}

/** DAPO's soft overlong punishment of each completion length (a reward term ≤ 0). */
export function overlongPenalty(lengths: Numbers, maxLen: number, cacheLen: number): Float32Array {
  if (!Number.isFinite(maxLen) || maxLen <= 0) throw new AdvantageError('overlongPenalty', 'maxLen', `${maxLen} is not a positive length`);
  if (!Number.isFinite(cacheLen) || cacheLen <= 0 || cacheLen > maxLen) throw new AdvantageError('overlongPenalty', 'cacheLen', `${cacheLen} is not in (0, maxLen = ${maxLen}]`);
  const free = maxLen - cacheLen;
  return Float32Array.from(lengths, (n, i) => {
    if (!Number.isFinite(n) || n < 0) throw new AdvantageError('overlongPenalty', 'lengths', `value ${n} at ${i} is not a length`);
    return n <= free ? 0 : n <= maxLen ? (free - n) / cacheLen : -1;
  });
}

/** DAPO overlong filtering: a copy of the [B, L] mask with truncated completions' rows zeroed. */
export function maskTruncated(mask: Float32Array, truncated: readonly boolean[]): Float32Array {
  const B = truncated.length;
  if (B === 0 || mask.length % B !== 0) throw new AdvantageError('maskTruncated', 'mask', `${mask.length} values are not ${B} rows`);
  const L = mask.length / B;
  const out = Float32Array.from(mask);
  truncated.forEach((t, b) => { if (t) out.fill(0, b * L, (b + 1) * L); });
  return out;
}

/** Kimi k1.5's length reward per completion (see the top of this file). */
export function kimiLengthPenalty(lengths: Numbers, correct: readonly boolean[], groupSize: number): Float32Array {
  checkGroups('kimiLengthPenalty', lengths, groupSize);
  if (correct.length !== lengths.length) throw new AdvantageError('kimiLengthPenalty', 'correct', `${correct.length} flags for ${lengths.length} lengths`);
  const out = new Float32Array(lengths.length);
  for (let g = 0; g < lengths.length; g += groupSize) {
    let lo = Infinity, hi = -Infinity;
    for (let i = g; i < g + groupSize; i++) { lo = Math.min(lo, lengths[i]); hi = Math.max(hi, lengths[i]); }
    for (let i = g; i < g + groupSize; i++) {
      const lam = hi === lo ? 0 : 0.5 - (lengths[i] - lo) / (hi - lo);
      out[i] = correct[i] ? lam : Math.min(0, lam);
    }
  }
  return out;
}

/** A sample for shortestRejection: its prompt (the grouping key), whether it is right, its length. */
export interface RejectionSample {
  prompt: string;
  correct: boolean;
  length: number;
}

/**
 * Kimi long2short "shortest rejection sampling": for each prompt (in first-seen order) its
 * shortest correct sample (the first of equal lengths); prompts with no correct sample are left out.
 */
export function shortestRejection<T extends RejectionSample>(samples: readonly T[]): T[] {
  const best = new Map<string, T | null>();
  samples.forEach((s, i) => {
    if (typeof s.prompt !== 'string') throw new AdvantageError('shortestRejection', `samples[${i}].prompt`, 'expected a string');
    if (!Number.isFinite(s.length) || s.length < 0) throw new AdvantageError('shortestRejection', `samples[${i}].length`, `${s.length} is not a length`);
    if (!best.has(s.prompt)) best.set(s.prompt, null);
    const b = best.get(s.prompt);
    if (s.correct && (!b || s.length < b.length)) best.set(s.prompt, s);
  });
  return [...best.values()].filter((s): s is T => s !== null);
}

// ------------------------------------------------------------------ problem sampling

export interface ProblemSamplerOptions {
  /** Seed of the sampler's Generator (default 0). */
  seed?: number;
  /** Kimi prioritised sampling: weight ∝ 1 − success rate (default true); false: uniform. */
  prioritized?: boolean;
  /** Lowest weight of a problem (default 0: a problem always solved is no longer drawn). */
  floor?: number;
  /** Running success rate: undefined → cumulative successes / attempts; a number α in (0, 1] →
   *  exponential moving average rate ← (1 − α)·rate + α·(batch rate) (the first batch sets it). */
  ema?: number;
  /** Curriculum: each problem's difficulty (larger = harder); the pool starts with the easiest. */
  difficulty?: readonly number[];
  /** Curriculum: sample() calls until the pool holds every problem (required with difficulty). */
  curriculumSteps?: number;
  /** Curriculum: fraction of the problems (easiest first) in the pool at the start (default 0.25). */
  curriculumStart?: number;
}

/** What state() returns: plain JSON. */
export interface ProblemSamplerState {
  version: 1;
  size: number;
  step: number;
  successes: number[];
  attempts: number[];
  rate: number[];
  rng: number[];
}

/**
 * Chooses which problems (prompts) the next batch uses. Prioritised: draws k distinct problems,
 * each draw with probability ∝ max(1 − s_i, floor) over the pool (uniform when every weight is
 * 0), s_i the problem's running success rate (0 before its first attempt). Curriculum: the pool
 * is the easiest ⌈n·(start + (1 − start)·min(1, step / curriculumSteps))⌉ problems (at least k),
 * ordered by difficulty then index; step counts sample() calls.
 */
export class ProblemSampler {
  private readonly g: Generator;
  private readonly order: number[];
  private readonly o: Required<Pick<ProblemSamplerOptions, 'prioritized' | 'floor' | 'curriculumStart'>> & ProblemSamplerOptions;
  private successes: Float64Array;
  private attempts: Float64Array;
  private rate: Float64Array;
  private step = 0;

  constructor(readonly size: number, options: ProblemSamplerOptions = {}) {
    const bad = (field: string, detail: string): AdvantageError => new AdvantageError('ProblemSampler', field, detail);
    if (!Number.isInteger(size) || size < 1) throw bad('size', `${size} is not a positive integer`);
    this.o = { prioritized: true, floor: 0, curriculumStart: 0.25, ...options };
    const { floor, ema, difficulty, curriculumSteps, curriculumStart } = this.o;
    if (!(floor >= 0 && floor <= 1)) throw bad('floor', `${floor} is not in [0, 1]`);
    if (ema !== undefined && !(ema > 0 && ema <= 1)) throw bad('ema', `${ema} is not in (0, 1]`);
    if (!(curriculumStart > 0 && curriculumStart <= 1)) throw bad('curriculumStart', `${curriculumStart} is not in (0, 1]`);
    if (difficulty) {
      if (difficulty.length !== size) throw bad('difficulty', `${difficulty.length} values for ${size} problems`);
      difficulty.forEach((d, i) => { if (!Number.isFinite(d)) throw bad('difficulty', `value ${d} at ${i} is not finite`); });
      if (curriculumSteps === undefined || !Number.isInteger(curriculumSteps) || curriculumSteps < 1) throw bad('curriculumSteps', `a curriculum (difficulty) needs a positive integer number of steps, got ${curriculumSteps}`);
    } else if (curriculumSteps !== undefined) throw bad('difficulty', 'curriculumSteps is set but no difficulty is given');
    this.g = new Generator(this.o.seed ?? 0);
    this.order = Array.from({ length: size }, (_, i) => i);
    if (difficulty) this.order.sort((a, b) => difficulty[a] - difficulty[b] || a - b);
    this.successes = new Float64Array(size);
    this.attempts = new Float64Array(size);
    this.rate = new Float64Array(size);
  }

  /** The problems that may be drawn now (all of them without a curriculum), easiest first. */
  pool(k = 1): number[] {
    const { difficulty, curriculumSteps, curriculumStart } = this.o;
    if (!difficulty) return this.order.slice();
    const frac = curriculumStart + (1 - curriculumStart) * Math.min(1, this.step / curriculumSteps!);
    return this.order.slice(0, Math.min(this.size, Math.max(k, Math.ceil(this.size * frac - 1e-9))));
  }

  /** The sampling weight of problem i (before normalisation over the pool). */
  weight(i: number): number {
    return this.o.prioritized ? Math.max(1 - this.rate[i], this.o.floor) : 1;
  }

  /** k distinct problem indices for the next batch (advances the curriculum by one step). */
  sample(k: number): number[] {
    if (!Number.isInteger(k) || k < 1 || k > this.size) throw new AdvantageError('ProblemSampler.sample', 'k', `${k} is not in [1, ${this.size}]`);
    const pool = this.pool(k);
    const w = pool.map((i) => this.weight(i));
    const taken = new Array<boolean>(pool.length).fill(false);
    const out: number[] = [];
    for (let d = 0; d < k; d++) {
      let total = 0;
      for (let j = 0; j < w.length; j++) if (!taken[j]) total += w[j];
      let pick = -1;
      if (total > 0) {
        let u = this.g.uniform() * total;
        for (let j = 0; j < w.length; j++) {
          if (taken[j] || w[j] === 0) continue;
          pick = j; // the last drawable one, should rounding carry u past the end
          if (u < w[j]) break;
          u -= w[j];
        }
      } else {
        const left = pool.map((_, j) => j).filter((j) => !taken[j]);
        pick = left[this.g.int(left.length)];
      }
      taken[pick] = true;
      out.push(pool[pick]);
    }
    this.step++;
    return out;
  }

  /** Record the outcome of `attempts` samples of problem i, `successes` of them correct. */
  update(i: number, successes: number, attempts: number): void {
    const bad = (field: string, detail: string): AdvantageError => new AdvantageError('ProblemSampler.update', field, detail);
    if (!Number.isInteger(i) || i < 0 || i >= this.size) throw bad('index', `${i} is not a problem index in [0, ${this.size})`);
    if (!(attempts > 0) || !Number.isFinite(attempts)) throw bad('attempts', `${attempts} is not a positive count`);
    if (!(successes >= 0 && successes <= attempts)) throw bad('successes', `${successes} is not in [0, attempts = ${attempts}]`);
    const batch = successes / attempts;
    const { ema } = this.o;
    if (ema === undefined) this.rate[i] = (this.successes[i] + successes) / (this.attempts[i] + attempts);
    else this.rate[i] = this.attempts[i] === 0 ? batch : (1 - ema) * this.rate[i] + ema * batch;
    this.successes[i] += successes;
    this.attempts[i] += attempts;
  }

  /** The running success rate of problem i (0 before any attempt). */
  successRate(i: number): number {
    return this.rate[i];
  }

  state(): ProblemSamplerState {
    return {
      version: 1, size: this.size, step: this.step,
      successes: Array.from(this.successes), attempts: Array.from(this.attempts), rate: Array.from(this.rate),
      rng: this.g.getState().slice(0, 4),
    };
  }

  load(s: ProblemSamplerState): void {
    const bad = (field: string, detail: string): AdvantageError => new AdvantageError('ProblemSampler.load', field, detail);
    if (!s || s.version !== 1) throw bad('version', `unsupported sampler state version ${String(s?.version)}`);
    if (s.size !== this.size) throw bad('size', `the state is for ${s.size} problems, this sampler has ${this.size}`);
    for (const f of ['successes', 'attempts', 'rate'] as const) {
      if (!Array.isArray(s[f]) || s[f].length !== this.size || !s[f].every(Number.isFinite)) throw bad(f, `expected ${this.size} finite numbers`);
    }
    if (!Array.isArray(s.rng) || s.rng.length !== 4 || !s.rng.every((x) => Number.isInteger(x) && x >= 0 && x < 2 ** 32)) throw bad('rng', 'expected 4 unsigned 32-bit integers');
    if (!Number.isInteger(s.step) || s.step < 0) throw bad('step', `${s.step} is not a step count`);
    this.successes = Float64Array.from(s.successes);
    this.attempts = Float64Array.from(s.attempts);
    this.rate = Float64Array.from(s.rate);
    this.step = s.step;
    this.g.setState([...s.rng, NaN]);
  }
}
