// `tslm ngram features` and `tslm ngram classify`: n-gram feature matrices (sklearn's
// Count/Tfidf/HashingVectorizer) and text classifiers on them (thin wrappers over src/classic).
import { parseArgs } from 'node:util';
import { readFileSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import {
  CountVectorizer, TfidfVectorizer, HashingVectorizer, TfidfTransformer, MultinomialNB, LogisticRegression, HAN_TOKEN_PATTERN,
  toMatrixMarket, csrToJSON, readLabelledFile, brownGenres, chineseClassics, accuracy, ClassicInputError,
  type CsrMatrix, type Analyzer, type DocFrequency, type Norm, type VectorizerOptions, type LabelledText,
} from '../../classic/index.js';

export { featuresUsage as usage } from './ngram-usage.js';
import { featuresUsage as usage } from './ngram-usage.js';

const err = (s: string): void => { process.stderr.write(s + '\n'); };

/** `--n 1-3` or `--n 2`. */
function parseRange(v: string | undefined, def: [number, number]): [number, number] {
  if (v === undefined) return def;
  const m = /^\s*(\d+)\s*(?:[-–:,]\s*(\d+))?\s*$/.exec(v);
  if (!m) throw new ClassicInputError(`--n must be N or MIN-MAX (e.g. 1-3), got '${v}'`);
  const lo = Number(m[1]), hi = m[2] === undefined ? lo : Number(m[2]);
  if (lo < 1) throw new ClassicInputError(`--n ${v}: n starts at 1`);
  if (lo > hi) throw new ClassicInputError(`--n ${v}: the lower bound ${lo} is larger than the upper bound ${hi} (did you mean ${hi}-${lo}?)`);
  return [lo, hi];
}

/** `--min-df 2` (documents) or `--min-df 0.05` / `1.0` (proportion). */
function parseDf(name: string, v: string | undefined): DocFrequency | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x) || x < 0) throw new ClassicInputError(`--${name} must be a document count or a proportion in [0, 1], got '${v}'`);
  if (/[.eE]/.test(v)) {
    if (x > 1) throw new ClassicInputError(`--${name} ${v}: a proportion must be in [0, 1] (write an integer for a document count)`);
    return { proportion: x };
  }
  return x;
}

function positiveInt(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!Number.isInteger(x) || x < 1) throw new ClassicInputError(`--${name} must be a positive integer, got '${v}'`);
  return x;
}

function positive(name: string, v: string | undefined, def: number): number {
  if (v === undefined) return def;
  const x = Number(v);
  if (!(x > 0) || !Number.isFinite(x)) throw new ClassicInputError(`--${name} must be a positive number, got '${v}'`);
  return x;
}

/** Documents of a text file (one per line) or a .jsonl file ("text" fields); refuses binary and non-UTF-8 files, naming the line. */
export function readDocuments(file: string): string[] {
  if (!existsSync(file)) throw new ClassicInputError(`--data ${file}: no such file`);
  if (statSync(file).isDirectory()) throw new ClassicInputError(`--data ${file}: is a directory`);
  const buf = readFileSync(file);
  const lineAt = (off: number): number => { let n = 1; for (let i = 0; i < off; i++) if (buf[i] === 10) n++; return n; };
  const nul = buf.indexOf(0);
  if (nul >= 0) throw new ClassicInputError(`--data ${file}: looks like a binary file (NUL byte on line ${lineAt(nul)}); expected UTF-8 text, one document per line`);
  if (!isUtf8(buf)) {
    let start = 0;
    for (let line = 1; ; line++) {
      const nl = buf.indexOf(10, start), end = nl < 0 ? buf.length : nl;
      if (!isUtf8(buf.subarray(start, end))) throw new ClassicInputError(`--data ${file}:${line}: not valid UTF-8`);
      if (nl < 0) break;
      start = nl + 1;
    }
  }
  let text = buf.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text === '') return [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (let i = 0; i < lines.length; i++) if (lines[i].endsWith('\r')) lines[i] = lines[i].slice(0, -1);
  if (/\.jsonl$/i.test(file)) {
    return lines.map((l, i) => {
      if (l.trim() === '') return '';
      let o: unknown;
      try { o = JSON.parse(l); } catch (e) { throw new ClassicInputError(`--data ${file}:${i + 1}: not valid JSON (${(e as Error).message})`); }
      const t = (o as { text?: unknown } | null)?.text;
      if (typeof t !== 'string') throw new ClassicInputError(`--data ${file}:${i + 1}: expected an object with a "text" string`);
      return t;
    });
  }
  return lines;
}

/** Rename the library's option names to the CLI's flags in an error message. */
function cliNames(e: unknown): never {
  if (e instanceof ClassicInputError) {
    e.message = e.message.replace(/\bmaxDf\b/g, '--max-df').replace(/\bminDf\b/g, '--min-df').replace(/\bmaxFeatures\b/g, '--max-features')
      .replace(/^ngram range/, '--n');
  }
  throw e;
}

const FEATURE_OPTIONS = {
  data: { type: 'string' }, n: { type: 'string' }, char: { type: 'boolean', default: false }, 'char-wb': { type: 'boolean', default: false },
  'min-df': { type: 'string' }, 'max-df': { type: 'string' }, 'max-features': { type: 'string' }, tfidf: { type: 'boolean', default: false },
  norm: { type: 'string' }, 'no-idf': { type: 'boolean', default: false }, 'no-smooth-idf': { type: 'boolean', default: false },
  'sublinear-tf': { type: 'boolean', default: false }, binary: { type: 'boolean', default: false }, hashing: { type: 'string' },
  'no-alternate-sign': { type: 'boolean', default: false }, 'no-lowercase': { type: 'boolean', default: false }, han: { type: 'boolean', default: false },
  'token-pattern': { type: 'string' }, vocab: { type: 'string' }, 'vocab-out': { type: 'string' }, out: { type: 'string' },
  train: { type: 'string' }, test: { type: 'string' }, model: { type: 'string', default: 'both' }, alpha: { type: 'string' }, C: { type: 'string' },
  'max-iter': { type: 'string' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof FEATURE_OPTIONS }>>['values'];

function vectorizerOptions(v: Values, defRange: [number, number]): VectorizerOptions {
  if (v.char && v['char-wb']) throw new ClassicInputError('--char and --char-wb exclude each other');
  if (v.han && v['token-pattern'] !== undefined) throw new ClassicInputError('--han and --token-pattern exclude each other');
  const analyzer: Analyzer = v.char ? 'char' : v['char-wb'] ? 'char_wb' : 'word';
  return {
    analyzer, ngramRange: parseRange(v.n, defRange), lowercase: !v['no-lowercase'],
    tokenPattern: v.han ? HAN_TOKEN_PATTERN : v['token-pattern'],
    minDf: parseDf('min-df', v['min-df']), maxDf: parseDf('max-df', v['max-df']), maxFeatures: positiveInt('max-features', v['max-features']), binary: v.binary,
  };
}

function parseNorm(v: string | undefined): Norm {
  if (v === undefined) return 'l2';
  if (v === 'l1' || v === 'l2') return v;
  if (v === 'none') return null;
  throw new ClassicInputError(`--norm must be l2, l1 or none, got '${v}'`);
}

function writeMatrix(out: string, x: CsrMatrix, vocabulary: string[] | null, comment: string): void {
  if (/\.mtx$/i.test(out)) writeFileSync(out, toMatrixMarket(x, comment));
  else if (/\.json$/i.test(out)) writeFileSync(out, JSON.stringify({ ...csrToJSON(x), ...(vocabulary ? { vocabulary } : {}) }));
  else throw new ClassicInputError(`--out ${out}: use a .mtx (Matrix Market) or .json (CSR arrays) file name`);
}

async function features(v: Values): Promise<number> {
  const data = v.data, out = v.out;
  if (!data) throw new ClassicInputError(`--data is required\n\n${usage}`);
  if (!out) throw new ClassicInputError(`--out is required\n\n${usage}`);
  if (!/\.(mtx|json)$/i.test(out)) throw new ClassicInputError(`--out ${out}: use a .mtx (Matrix Market) or .json (CSR arrays) file name`);
  const t0 = performance.now();
  const docs = readDocuments(data);
  if (docs.length === 0) throw new ClassicInputError(`--data ${data}: the file has no documents (one per line)`);
  const empty = docs.reduce((a, d) => a + (d.trim() === '' ? 1 : 0), 0);
  if (empty === docs.length) throw new ClassicInputError(`--data ${data}: all ${docs.length} documents are empty`);
  const bytes = Buffer.byteLength(docs.join('\n'));
  const t1 = performance.now();
  let x: CsrMatrix, vocabulary: string[] | null = null, what: string;
  const tfidf = { norm: parseNorm(v.norm), useIdf: !v['no-idf'], smoothIdf: !v['no-smooth-idf'], sublinearTf: v['sublinear-tf'] };
  if (!v.tfidf && (v.norm !== undefined || v['no-idf'] || v['no-smooth-idf'] || v['sublinear-tf']) && v.hashing === undefined) throw new ClassicInputError('--norm, --no-idf, --no-smooth-idf and --sublinear-tf go with --tfidf');
  try {
    if (v.vocab !== undefined) {
      const fixed = (['n', 'char', 'char-wb', 'min-df', 'max-df', 'max-features', 'tfidf', 'binary', 'hashing', 'han', 'token-pattern', 'no-lowercase', 'vocab-out'] as const)
        .filter((k) => v[k] !== undefined && v[k] !== false);
      if (fixed.length) throw new ClassicInputError(`--vocab ${v.vocab}: the analyzer, n range and weighting come from the saved vocabulary; drop ${fixed.map((k) => `--${k}`).join(', ')}`);
      let json: unknown;
      try { json = JSON.parse(readFileSync(v.vocab, 'utf8')); } catch (e) { throw new ClassicInputError(`--vocab ${v.vocab}: ${(e as Error).message}`); }
      const vec = CountVectorizer.fromJSON(json, `--vocab ${v.vocab}`);
      x = vec.transform(docs);
      vocabulary = vec.vocabulary;
      what = `${vec instanceof TfidfVectorizer ? 'tf-idf' : 'counts'} over the saved vocabulary of ${v.vocab}`;
    } else if (v.hashing !== undefined) {
      const nFeatures = positiveInt('hashing', v.hashing)!;
      if (v['min-df'] !== undefined || v['max-df'] !== undefined || v['max-features'] !== undefined || v['vocab-out'] !== undefined) throw new ClassicInputError('--hashing has no vocabulary: --min-df, --max-df, --max-features and --vocab-out do not apply');
      const o = vectorizerOptions(v, [1, 1]);
      // HashingVectorizer: l2 rows by default; with --tfidf, raw hashed counts then tf-idf (sklearn's pipeline).
      const h = new HashingVectorizer({ ...o, nFeatures, alternateSign: !v['no-alternate-sign'], norm: v.tfidf ? null : tfidf.norm });
      x = h.transform(docs);
      if (v.tfidf) x = new TfidfTransformer(tfidf).fitTransform(x);
      what = `hashed into ${nFeatures} columns${v.tfidf ? ', tf-idf' : ''}`;
    } else {
      const o = vectorizerOptions(v, [1, 1]);
      const vec = v.tfidf ? new TfidfVectorizer({ ...o, ...tfidf }) : new CountVectorizer(o);
      x = vec.fitTransform(docs);
      vocabulary = vec.vocabulary;
      if (v['vocab-out']) writeFileSync(v['vocab-out'], JSON.stringify(vec.toJSON()));
      what = `${v.tfidf ? 'tf-idf' : v.binary ? 'binary' : 'counts'}, ${o.analyzer} ${o.ngramRange![0]}-${o.ngramRange![1]}-grams${vec.prunedTerms ? `, ${vec.prunedTerms} terms pruned` : ''}`;
    }
  } catch (e) { cliNames(e); }
  const t2 = performance.now();
  if (v.vocab === undefined && !v.char && !v['char-wb'] && !v.han && v['token-pattern'] === undefined && docs.some((d) => /\p{Script=Han}{2}/u.test(d))) {
    err('note: the documents have Chinese; under the default (scikit-learn) token pattern a run of Han characters is ONE word — use --han (each character a token) or --char');
  }
  writeMatrix(out, x, vocabulary, `tslm ngram features: ${what} of ${data}`);
  const sec = (t2 - t1) / 1000;
  err(`${docs.length} documents${empty ? ` (${empty} empty: zero rows)` : ''}, ${x.cols} features, ${x.indices.length} non-zeros (${what})`);
  err(`vectorised in ${sec.toFixed(3)} s (${Math.round(docs.length / sec)} docs/s, ${(bytes / 1e6 / sec).toFixed(1)} MB/s); read ${((t1 - t0) / 1000).toFixed(3)} s; wrote ${out}${v['vocab-out'] ? ` and ${v['vocab-out']}` : ''}`);
  return 0;
}

interface Task { name: string; train: LabelledText[]; test: LabelledText[]; features: VectorizerOptions; tfidfForLr: boolean; C: number }

async function classify(v: Values): Promise<number> {
  const model = v.model ?? 'both';
  if (!['nb', 'lr', 'both'].includes(model)) throw new ClassicInputError(`--model must be nb, lr or both, got '${model}'`);
  const alpha = v.alpha === undefined ? 1 : Number(v.alpha);
  if (!(alpha >= 0)) throw new ClassicInputError(`--alpha must be ≥ 0, got '${v.alpha}'`);
  const maxIter = positiveInt('max-iter', v['max-iter']) ?? 100;
  const tasks: Task[] = [];
  if (v.train !== undefined || v.test !== undefined) {
    if (!v.train || !v.test) throw new ClassicInputError('--train and --test go together');
    const o = vectorizerOptions(v, [1, 1]);
    tasks.push({ name: `${v.train} → ${v.test}`, train: readLabelledFile(v.train), test: readLabelledFile(v.test), features: o, tfidfForLr: v.tfidf, C: positive('C', v.C, 1) });
  } else {
    err('demo on shipped data: Brown corpus genres (15 classes, every 4th document held out) and Chinese classics by source (唐詩 / 詩經 / 論語)');
    tasks.push({ name: 'Brown genres', ...brownGenres(), features: { minDf: 2 }, tfidfForLr: true, C: positive('C', v.C, 10) });
    tasks.push({ name: 'Chinese classics', ...chineseClassics(), features: { analyzer: 'char', ngramRange: [1, 2] }, tfidfForLr: true, C: positive('C', v.C, 10) });
  }
  console.log(`${'task'.padEnd(28)} ${'model'.padEnd(46)} ${'features'.padStart(8)} ${'train'.padStart(5)} ${'test'.padStart(5)} ${'accuracy'.padStart(8)} ${'fit s'.padStart(7)}`);
  for (const t of tasks) {
    const ytr = t.train.map((d) => d.label), yte = t.test.map((d) => d.label);
    const run = (label: string, tfidf: boolean, fit: (x: CsrMatrix) => { predict(x: CsrMatrix): string[] }): void => {
      let xtr: CsrMatrix, xte: CsrMatrix;
      try {
        const vec = tfidf ? new TfidfVectorizer({ ...t.features, sublinearTf: false }) : new CountVectorizer(t.features);
        xtr = vec.fitTransform(t.train.map((d) => d.text));
        xte = vec.transform(t.test.map((d) => d.text));
      } catch (e) { cliNames(e); }
      const t0 = performance.now();
      const m = fit(xtr);
      const acc = accuracy(m.predict(xte), yte);
      const desc = `${label} (${tfidf ? 'tf-idf' : 'counts'}, ${t.features.analyzer ?? 'word'} ${(t.features.ngramRange ?? [1, 1]).join('-')})`;
      console.log(`${t.name.slice(0, 28).padEnd(28)} ${desc.padEnd(46)} ${String(xtr.cols).padStart(8)} ${String(xtr.rows).padStart(5)} ${String(xte.rows).padStart(5)} ${acc.toFixed(3).padStart(8)} ${((performance.now() - t0) / 1000).toFixed(2).padStart(7)}`);
    };
    if (model !== 'lr') run(`naive Bayes α=${alpha}`, v.tfidf && tasks.length === 1, (x) => new MultinomialNB({ alpha }).fit(x, ytr));
    if (model !== 'nb') run(`logistic regression C=${t.C}`, t.tfidfForLr, (x) => new LogisticRegression({ C: t.C, maxIter }).fit(x, ytr));
  }
  return 0;
}

export async function run(sub: 'features' | 'classify', args: string[]): Promise<number> {
  const { values } = parseArgs({ args, allowPositionals: false, options: FEATURE_OPTIONS });
  return sub === 'features' ? features(values) : classify(values);
}
