// Naive Bayes and logistic regression against scikit-learn 1.2.1 (fixtures by
// scripts/sklearn-fixtures.py): NB log-probabilities equal sklearn's, LR probabilities close to
// sklearn's converged fit on the same features.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';
import {
  CountVectorizer, TfidfVectorizer, MultinomialNB, LogisticRegression, accuracy, readLabelledFile, lbfgs, chineseClassics, ClassicInputError,
} from '../../src/classic/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const F = JSON.parse(readFileSync(path.join(root, 'test', 'fixtures', 'sklearn', 'classifiers.json'), 'utf8')) as {
  train: { texts: string[]; labels: string[] }; test: { texts: string[]; labels: string[] }; cases: any[];
};

const maxDiff = (a: ArrayLike<number>, b: number[]): number => { let m = 0; for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i] - b[i])); return m; };

for (const c of F.cases) {
  const features = () => {
    const { tfidf, ...o } = c.features;
    const v = tfidf ? new TfidfVectorizer(o) : new CountVectorizer(o);
    return { xtr: v.fitTransform(F.train.texts), xte: v.transform(F.test.texts) };
  };
  test(`MultinomialNB = sklearn (${c.name})`, () => {
    const { xtr, xte } = features();
    for (const alpha of [1, 0.1]) {
      const want = c[`nb_alpha_${alpha.toFixed(1)}`];
      const nb = new MultinomialNB({ alpha }).fit(xtr, F.train.labels);
      assert.deepEqual(nb.classes, want.classes);
      assert.ok(maxDiff(nb.classLogPrior, want.classLogPrior) < 1e-12);
      assert.ok(maxDiff(nb.featureLogProb, want.featureLogProb.flat()) < 1e-10, 'feature log-probabilities');
      const lp = nb.predictLogProba(xte);
      assert.ok(maxDiff(lp, want.logProba.flat()) < 1e-9, `log-probabilities differ by ${maxDiff(lp, want.logProba.flat())}`);
      assert.deepEqual(nb.predict(xte), want.predict);
    }
  });
  test(`LogisticRegression ≈ sklearn (${c.name})`, () => {
    const { xtr, xte } = features();
    for (const C of [1, 10]) {
      const want = c[`lr_C_${C.toFixed(1)}`];
      const lr = new LogisticRegression({ C, maxIter: 5000, tol: 1e-9 }).fit(xtr, F.train.labels);
      assert.deepEqual(lr.classes, want.classes);
      const p = lr.predictProba(xte), d = maxDiff(p, want.proba.flat());
      // sklearn's lbfgs stops on its relative-reduction test (ftol = 64 eps) with a gradient of
      // ~1e-6 (mean scale) on these sets, so its probabilities are themselves ~1e-4 off the optimum
      // (a warm restart moves them); ours run to |g| ~ 1e-8.
      assert.ok(lr.gradNorm <= 1e-7, `C=${C}: not converged (|g| ${lr.gradNorm})`);
      assert.ok(d < 5e-4, `C=${C}: probabilities differ by ${d} (${lr.iterations} iterations, |g| ${lr.gradNorm})`);
      assert.deepEqual(lr.predict(xte), want.predict);
      assert.equal(accuracy(lr.predict(xte), F.test.labels), want.accuracy);
    }
  });
}

test('L-BFGS minimises a badly scaled quadratic', () => {
  const a = [1, 100, 1e4];
  const w = new Float64Array([1, 1, 1]);
  const r = lbfgs((x, g) => { let f = 0; for (let i = 0; i < 3; i++) { f += 0.5 * a[i] * (x[i] - i) ** 2; g[i] = a[i] * (x[i] - i); } return f; }, w, { maxIter: 200, tol: 1e-10, memory: 5 });
  assert.ok(r.gradNorm <= 1e-10 && Math.abs(w[0]) < 1e-9 && Math.abs(w[1] - 1) < 1e-9 && Math.abs(w[2] - 2) < 1e-9, JSON.stringify([...w]));
});

test('Chinese classics by source: char n-gram naive Bayes is accurate', () => {
  const { train, test: held } = chineseClassics();
  const v = new CountVectorizer({ analyzer: 'char', ngramRange: [1, 2] });
  const nb = new MultinomialNB().fit(v.fitTransform(train.map((d) => d.text)), train.map((d) => d.label));
  assert.ok(accuracy(nb.predict(v.transform(held.map((d) => d.text))), held.map((d) => d.label)) > 0.95);
});

test('labelled files: JSONL and TSV, errors name file and line', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tslm-cls-'));
  const j = path.join(dir, 'a.jsonl'), t = path.join(dir, 'a.tsv'), bad = path.join(dir, 'b.jsonl'), bin = path.join(dir, 'c.tsv');
  writeFileSync(j, '{"text":"我爱北京","label":"zh"}\n\n{"text":"hello","label":"en"}\n');
  writeFileSync(t, 'zh\t我爱北京\r\nen\thello world\n');
  writeFileSync(bad, '{"text":"x","label":"a"}\n{"text":1}\n');
  writeFileSync(bin, Buffer.from([0x61, 0x09, 0x00, 0x01]));
  assert.deepEqual(readLabelledFile(j), [{ text: '我爱北京', label: 'zh' }, { text: 'hello', label: 'en' }]);
  assert.deepEqual(readLabelledFile(t), [{ label: 'zh', text: '我爱北京' }, { label: 'en', text: 'hello world' }]);
  assert.throws(() => readLabelledFile(bad), /b\.jsonl:2: expected/);
  assert.throws(() => readLabelledFile(bin), /c\.tsv: looks like a binary file/);
  assert.throws(() => new LogisticRegression().fit(new CountVectorizer().fitTransform(['aa bb']), ['x']), (e: Error) => e instanceof ClassicInputError && /at least 2 classes/.test(e.message));
  assert.throws(() => new MultinomialNB().fit(new CountVectorizer().fitTransform(['aa bb']), ['x', 'y']), /1 rows but 2 labels/);
});
