// N-gram features against scikit-learn 1.2.1 (fixtures by scripts/sklearn-fixtures.py): the same
// vocabulary, the same CSR matrices (counts exactly, tf-idf to 1e-6), the same hashes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import {
  CountVectorizer, TfidfVectorizer, HashingVectorizer, murmurhash3, argsortNumpy, compareCodePoints, ngramAnalyzer,
  toMatrixMarket, HAN_TOKEN_PATTERN, ClassicInputError, type CsrMatrix,
} from '../../src/classic/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const fixture = <T = any>(name: string): T => JSON.parse(readFileSync(path.join(root, 'test', 'fixtures', 'sklearn', name), 'utf8')) as T;

interface Csr { shape: [number, number]; indptr: number[]; indices: number[]; data: number[] }
interface Case { kind: 'count' | 'tfidf' | 'hashing'; name: string; options: any; fit: Csr; heldOut: Csr; vocabulary?: string[]; idf?: number[] }
const V = fixture<{ corpus: string[]; heldOut: string[]; cases: Case[]; errors: { options: any; error: string | null }[] }>('vectorizers.json');

function assertCsr(got: CsrMatrix, want: Csr, tol: number, what: string): void {
  assert.deepEqual([got.rows, got.cols], want.shape, `${what}: shape`);
  assert.deepEqual(Array.from(got.indptr), want.indptr, `${what}: indptr`);
  assert.deepEqual(Array.from(got.indices), want.indices, `${what}: indices`);
  if (tol === 0) assert.deepEqual(Array.from(got.data), want.data, `${what}: data`);
  else {
    let worst = 0;
    for (let k = 0; k < want.data.length; k++) worst = Math.max(worst, Math.abs(got.data[k] - want.data[k]));
    assert.ok(worst <= tol, `${what}: data differs by ${worst}`);
  }
}

for (const c of V.cases) {
  test(`sklearn ${c.kind}: ${c.name}`, () => {
    const tol = c.kind === 'count' ? 0 : 1e-6;
    if (c.kind === 'hashing') {
      const h = new HashingVectorizer(c.options);
      assertCsr(h.transform(V.corpus), c.fit, tol, 'corpus');
      assertCsr(h.transform(V.heldOut), c.heldOut, tol, 'held-out');
      return;
    }
    const v = c.kind === 'tfidf' ? new TfidfVectorizer(c.options) : new CountVectorizer(c.options);
    const x = v.fitTransform(V.corpus);
    assert.deepEqual(v.vocabulary, c.vocabulary);
    assertCsr(x, c.fit, tol, 'fit');
    assertCsr(v.transform(V.heldOut), c.heldOut, tol, 'held-out');
    if (c.idf) {
      const idf = (v as TfidfVectorizer).idf!;
      c.idf.forEach((w, j) => assert.ok(Math.abs(idf[j] - w) < 1e-9, `idf[${j}]`));
    }
    // Saved and loaded, the vectorizer transforms identically.
    const back = CountVectorizer.fromJSON(JSON.parse(JSON.stringify(v.toJSON())));
    assertCsr(back.transform(V.heldOut), c.heldOut, tol, 'held-out after save/load');
  });
}

test('min_df / max_df that cross, or prune everything, are refused as sklearn refuses them', () => {
  for (const e of V.errors) {
    const fit = () => new CountVectorizer(e.options).fit(V.corpus);
    if (e.error === null) fit();
    else assert.throws(fit, (err: Error) => err instanceof ClassicInputError && /maxDf|minDf|no terms remain/.test(err.message), `sklearn: ${e.error}`);
  }
});

test('murmurhash3_32 equals sklearn.utils.murmurhash3_32', () => {
  const m = fixture<{ strings: string[]; hashes: number[]; seeded: number[] }>('murmurhash.json');
  assert.deepEqual(m.strings.map((s) => murmurhash3(s)), m.hashes);
  assert.deepEqual(m.strings.map((s) => murmurhash3(s, 42)), m.seeded);
});

test('argsortNumpy sorts, and is numpy-like on ties (stable below 17 elements)', () => {
  const v = [3, 1, 2, 1, 3, 0, 2, 2];
  assert.deepEqual(Array.from(argsortNumpy(v)), [5, 1, 3, 2, 6, 7, 0, 4]);
  const big = Array.from({ length: 1000 }, (_, i) => (i * 7919) % 13);
  const order = argsortNumpy(big);
  for (let i = 1; i < order.length; i++) assert.ok(big[order[i - 1]] <= big[order[i]]);
  assert.equal(new Set(order).size, 1000);
});

test('code point order puts astral characters after U+FFFF, as Python does', () => {
  assert.ok(compareCodePoints('\u{1F98A}', '\uFF01') > 0);
  assert.ok('\u{1F98A}' < '\uFF01'); // UTF-16 order disagrees
  assert.ok(compareCodePoints('ab', 'abc') < 0 && compareCodePoints('b', 'abc') > 0 && compareCodePoints('x', 'x') === 0);
});

test('Chinese: char n-grams over code points, HAN_TOKEN_PATTERN word n-grams', () => {
  const grams: string[] = [];
  ngramAnalyzer({ analyzer: 'char', ngramRange: [2, 2] })('北京🦊好', (g) => grams.push(g));
  assert.deepEqual(grams.sort(), ['北京', '京🦊', '🦊好'].sort());
  const words: string[] = [];
  ngramAnalyzer({ tokenPattern: HAN_TOKEN_PATTERN, ngramRange: [1, 2] })('我爱 NLP 和abc', (g) => words.push(g));
  assert.deepEqual(words.sort(), ['我', '爱', 'nlp', '和', 'abc', '我 爱', '爱 nlp', 'nlp 和', '和 abc'].sort());
});

test('bad options: n range 3-1, empty corpus, empty vocabulary, bad vocabulary file', () => {
  assert.throws(() => new CountVectorizer({ ngramRange: [3, 1] }), /3-1.*lower bound is larger/);
  assert.throws(() => new CountVectorizer({ ngramRange: [0, 2] }), /positive/);
  assert.throws(() => new CountVectorizer().fit([]), /no documents/);
  assert.throws(() => new CountVectorizer().fit(['', 'a b c']), /empty vocabulary/);
  assert.throws(() => new CountVectorizer().transform(['x']), /not fitted/);
  assert.throws(() => CountVectorizer.fromJSON({ format: 'x' }, 'v.json'), /v\.json: not a tslm n-gram vocabulary/);
  assert.throws(() => new CountVectorizer({ maxFeatures: 0 }), /maxFeatures/);
  assert.throws(() => new CountVectorizer({ minDf: 1.5 }).fit(['aa bb']), /minDf/);
  assert.throws(() => new HashingVectorizer({ nFeatures: 0 }), /hashing/);
  assert.throws(() => new CountVectorizer({ tokenPattern: '(a)(b)' }).fit(['ab']), /capturing groups/);
});

test('Matrix Market output: integer counts, 1-based coordinates', () => {
  const v = new CountVectorizer();
  const x = v.fitTransform(['aa bb aa', 'cc']);
  assert.equal(toMatrixMarket(x), '%%MatrixMarket matrix coordinate integer general\n2 3 3\n1 1 2\n1 2 1\n2 3 1\n');
});
