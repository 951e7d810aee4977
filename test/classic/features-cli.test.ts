// `tslm ngram features` and `tslm ngram classify` end to end on small files: output formats,
// saved vocabularies, and errors that name the option or the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ngram from '../../src/cli/commands/ngram.js';
import { CountVectorizer, TfidfVectorizer } from '../../src/classic/index.js';

async function capture(fn: () => Promise<number>): Promise<{ rc: number; out: string; err: string }> {
  const out: string[] = [], err: string[] = [];
  const log = console.log, write = process.stderr.write;
  console.log = (...a: unknown[]) => { out.push(a.join(' ')); };
  process.stderr.write = ((s: string) => { err.push(String(s)); return true; }) as typeof process.stderr.write;
  try {
    return { rc: await fn(), out: out.join('\n'), err: err.join('') };
  } finally {
    console.log = log;
    process.stderr.write = write;
  }
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'tslm-features-'));
const docs = ['The quick brown fox.', '我爱北京天安门，北京欢迎你', '', 'the lazy dog and the quick fox'];
const data = path.join(dir, 'docs.txt');
writeFileSync(data, docs.join('\n') + '\n');

test('ngram features → .json CSR and vocabulary; --vocab transforms new text identically', async () => {
  const out = path.join(dir, 'x.json'), vocab = path.join(dir, 'v.json');
  const r = await capture(() => ngram.run(['features', '--data', data, '--n', '1-2', '--char', '--tfidf', '--min-df', '1', '--out', out, '--vocab-out', vocab]));
  assert.equal(r.rc, 0);
  assert.match(r.err, /4 documents \(1 empty: zero rows\), \d+ features, \d+ non-zeros \(tf-idf, char 1-2-grams\)/);
  assert.match(r.err, /docs\/s/);
  const x = JSON.parse(readFileSync(out, 'utf8'));
  const v = new TfidfVectorizer({ analyzer: 'char', ngramRange: [1, 2] });
  const want = v.fitTransform(docs);
  assert.deepEqual(x.shape, [want.rows, want.cols]);
  assert.deepEqual(x.indices, Array.from(want.indices));
  assert.deepEqual(x.vocabulary, v.vocabulary);
  const other = path.join(dir, 'other.txt'), out2 = path.join(dir, 'y.json');
  writeFileSync(other, '北京的狐狸\n');
  assert.equal((await capture(() => ngram.run(['features', '--data', other, '--vocab', vocab, '--out', out2]))).rc, 0);
  assert.deepEqual(JSON.parse(readFileSync(out2, 'utf8')).data, Array.from(v.transform(['北京的狐狸']).data));
});

test('ngram features → Matrix Market; --han makes Chinese characters words; a note without it', async () => {
  const out = path.join(dir, 'x.mtx');
  const plain = await capture(() => ngram.run(['features', '--data', data, '--out', out]));
  assert.match(plain.err, /note: the documents have Chinese/);
  assert.equal((await capture(() => ngram.run(['features', '--data', data, '--han', '--out', out]))).rc, 0);
  const mtx = readFileSync(out, 'utf8').split('\n');
  assert.equal(mtx[0], '%%MatrixMarket matrix coordinate integer general');
  const v = new CountVectorizer({ tokenPattern: '\\p{Script=Han}|(?:(?!\\p{Script=Han})[\\p{L}\\p{N}_]){2,}' });
  const x = v.fitTransform(docs);
  assert.ok(v.vocabulary.includes('北'));
  assert.equal(mtx[2], `4 ${x.cols} ${x.indices.length}`);
});

test('ngram features: bad input names the option or file', async () => {
  const bin = path.join(dir, 'bin.dat'), emptyF = path.join(dir, 'empty.txt'), blank = path.join(dir, 'blank.txt'), latin1 = path.join(dir, 'l1.txt');
  writeFileSync(bin, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x0a, 0x00, 0x01]));
  writeFileSync(emptyF, '');
  writeFileSync(blank, '\n  \n\n');
  writeFileSync(latin1, Buffer.from('ok\ncaf\xe9\n', 'latin1'));
  const o = path.join(dir, 'o.mtx');
  const cases: [string[], RegExp][] = [
    [['--data', data, '--n', '3-1', '--out', o], /--n 3-1: the lower bound 3 is larger than the upper bound 1/],
    [['--data', data, '--min-df', '3', '--max-df', '2', '--out', o], /--max-df .* is below --min-df/],
    [['--data', data, '--min-df', '0.6', '--max-df', '0.5', '--out', o], /--max-df .* is below --min-df/],
    [['--data', data, '--min-df', '4', '--out', o], /no terms remain/],
    [['--data', data, '--min-df', '1.5', '--out', o], /--min-df 1\.5: a proportion must be in \[0, 1\]/],
    [['--data', bin, '--out', o], /bin\.dat: looks like a binary file \(NUL byte on line 2\)/],
    [['--data', latin1, '--out', o], /l1\.txt:2: not valid UTF-8/],
    [['--data', emptyF, '--out', o], /empty\.txt: the file has no documents/],
    [['--data', blank, '--out', o], /blank\.txt: all 3 documents are empty/],
    [['--data', path.join(dir, 'nope.txt'), '--out', o], /nope\.txt: no such file/],
    [['--data', data, '--out', path.join(dir, 'x.csv')], /--out .*x\.csv: use a \.mtx/],
    [['--data', data, '--hashing', '0', '--out', o], /--hashing must be a positive integer/],
    [['--data', data, '--hashing', '64', '--min-df', '2', '--out', o], /--hashing has no vocabulary/],
    [['--data', data, '--norm', 'l3', '--tfidf', '--out', o], /--norm must be l2, l1 or none/],
    [['--data', data, '--vocab', data, '--out', o], /--vocab .*docs\.txt/],
    [['--data', data, '--vocab', data, '--n', '2', '--out', o], /come from the saved vocabulary; drop --n/],
  ];
  for (const [args, re] of cases) await assert.rejects(ngram.run(['features', ...args]), re, args.join(' '));
});

test('ngram classify on labelled files', async () => {
  const train = path.join(dir, 'train.jsonl'), tst = path.join(dir, 'test.tsv');
  const rows: string[] = [];
  for (let i = 0; i < 12; i++) rows.push(JSON.stringify({ text: i % 2 ? `北京天气很好 第${i}天` : `the weather is fine on day ${i}`, label: i % 2 ? 'zh' : 'en' }));
  writeFileSync(train, rows.join('\n'));
  writeFileSync(tst, 'zh\t今天北京天气\nen\tthe day is fine\n');
  const r = await capture(() => ngram.run(['classify', '--train', train, '--test', tst, '--char', '--n', '1-2']));
  assert.equal(r.rc, 0);
  assert.match(r.out, /naive Bayes α=1 \(counts, char 1-2\)\s+\d+\s+12\s+2\s+1\.000/);
  assert.match(r.out, /logistic regression C=1 \(counts, char 1-2\)\s+\d+\s+12\s+2\s+1\.000/);
  await assert.rejects(ngram.run(['classify', '--train', train]), /--train and --test go together/);
});
