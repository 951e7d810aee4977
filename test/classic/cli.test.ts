// The `tslm ngram` and `tslm word2vec` commands end to end on small files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ngram from '../../src/cli/commands/ngram.js';
import * as w2v from '../../src/cli/commands/word2vec.js';
import { readArpa } from '../../src/classic/index.js';
import { brownSentences } from './common.js';

async function capture(fn: () => Promise<number>): Promise<{ rc: number; out: string }> {
  const lines: string[] = [];
  const log = console.log, write = process.stderr.write;
  console.log = (...a: unknown[]) => { lines.push(a.join(' ')); };
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    return { rc: await fn(), out: lines.join('\n') };
  } finally {
    console.log = log;
    process.stderr.write = write;
  }
}

test('ngram train → score → generate, KenLM query-style output', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tslm-cli-'));
  const data = path.join(dir, 'train.txt'), arpa = path.join(dir, 'm.arpa');
  writeFileSync(data, brownSentences(['ca01', 'ca02', 'ca03']).map((s) => s.join(' ')).join('\n'));
  assert.equal((await capture(() => ngram.run(['train', '--order', '3', '--data', data, '--out', arpa]))).rc, 0);
  const m = readArpa(arpa);
  const r = await capture(() => ngram.run(['score', '--model', arpa, '--text', 'The jury said it did .\nThe xyzzy said']));
  assert.equal(r.rc, 0);
  const p = m.perplexity(['The jury said it did .', 'The xyzzy said']);
  assert.match(r.out, new RegExp(`Total: ${m.scoreText('The jury said it did .').logProb.toFixed(6)} OOV: 0`));
  assert.match(r.out, /Total: \S+ OOV: 1/);
  assert.match(r.out, new RegExp(`Perplexity including OOVs:\\t${p.perplexity}`));
  assert.match(r.out, /OOVs:\t1\nTokens:\t11/);
  const g = await capture(() => ngram.run(['generate', '--model', arpa, '--n', '2', '--seed', '5']));
  assert.equal(g.rc, 0);
  assert.equal(g.out.split('\n').length, 2);
  await assert.rejects(ngram.run(['train', '--order', '0', '--data', data, '--out', arpa]), /order must be an integer >= 1/);
  // One thread or two: the same file.
  const one = path.join(dir, 'one.arpa'), two = path.join(dir, 'two.arpa');
  assert.equal((await capture(() => ngram.run(['train', '--order', '4', '--threads', '1', '--data', data, '--out', one]))).rc, 0);
  assert.equal((await capture(() => ngram.run(['train', '--order', '4', '--threads', '2', '--data', data, '--out', two]))).rc, 0);
  assert.ok(readFileSync(one).equals(readFileSync(two)), '--threads 1 and 2 write the same bytes');
  await assert.rejects(ngram.run(['train', '--threads', '3', '--data', data, '--out', arpa]), /--threads must be 1 or 2, got '3'/);
});

test('word2vec train → similar / analogy / eval', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tslm-cli-'));
  const data = path.join(dir, 'train.txt'), vec = path.join(dir, 'v.bin');
  writeFileSync(data, brownSentences(['ca01', 'ca02', 'ca03', 'ca04', 'ca05'], true).map((s) => s.join(' ')).join('\n'));
  const t = await capture(() => w2v.run(['train', '--data', data, '--out', vec, '--size', '20', '--iter', '1', '--threads', '1', '--binary', '1']));
  assert.equal(t.rc, 0);
  assert.ok(existsSync(vec));
  const s = await capture(() => w2v.run(['similar', 'the', '--vectors', vec, '--topn', '3']));
  assert.equal(s.out.split('\n').length, 3);
  const a = await capture(() => w2v.run(['analogy', 'he', 'his', 'the', '--vectors', vec, '--topn', '2', '--method', '3cosmul']));
  assert.equal(a.out.split('\n').length, 2);
  const qf = path.join(dir, 'q.txt'), sf = path.join(dir, 's.txt');
  writeFileSync(qf, ': x\nhe his the of\n');
  writeFileSync(sf, 'he his 8\nthe a 5\nhe jury 1\n');
  const e = await capture(() => w2v.run(['eval', '--vectors', vec, '--analogies', qf, '--similarity', sf]));
  assert.match(e.out, /analogies \(3cosadd\): [\d.]+% \(\d\/1\), 0 questions skipped/);
  assert.match(e.out, /similarity: Spearman ρ -?[\d.]+/);
  await assert.rejects(w2v.run(['similar', 'zzzz-not-a-word', '--vectors', vec]), /'zzzz-not-a-word' is not in the vocabulary/);
  // Two threads with hot rows.
  const hot = path.join(dir, 'hot.txt');
  assert.equal((await capture(() => w2v.run(['train', '--data', data, '--out', hot, '--size', '20', '--iter', '1', '--threads', '2', '--hot-words', '50', '--hot-sync', '500']))).rc, 0);
  assert.equal((await capture(() => w2v.run(['similar', 'the', '--vectors', hot, '--topn', '3']))).out.split('\n').length, 3);
  await assert.rejects(w2v.run(['train', '--data', data, '--out', hot, '--hot-words', 'many']), /--hot-words must be a number, got 'many'/);
  await assert.rejects(w2v.run(['train', '--data', data, '--out', hot, '--hot-sync', '0']), /hotSync must be an integer >= 1, got 0/);
});
