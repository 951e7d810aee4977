// The q-gram inverted index: rankings against scikit-learn + numpy brute force
// (scripts/gen_qgram_fixtures.py), identical results to our own brute-force scan for every metric,
// threshold and top-K (with the prefix and length filters really pruning), the self-join against
// all pairs, bad input, and the `tslm ngram match|dedup` commands.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { QgramIndex, readMatchCandidates, qgramScore, ClassicInputError, ClassicFormatError, type QgramMetric, type QgramOptions } from '../../src/classic/index.js';
import { Rng } from '../../src/classic/text.js';
import * as ngram from '../../src/cli/commands/ngram.js';
import { brownSentences } from './common.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const fixture = (name: string): any => JSON.parse(readFileSync(path.join(root, 'test', 'fixtures', 'qgram', name), 'utf8'));
const METRICS: QgramMetric[] = ['qgram', 'jaccard', 'cosine', 'dice', 'overlap'];

test('rankings equal scikit-learn + numpy brute force on the fixture candidates', () => {
  const { candidates, cases } = fixture('match.json') as { candidates: string[]; cases: { q: number; pad: boolean; query: string; metric: QgramMetric; top: [number, number][]; count: number; scores: number[] }[] };
  const indexes = new Map<string, QgramIndex>();
  for (const c of cases) {
    const key = `${c.q}/${c.pad}`;
    if (!indexes.has(key)) indexes.set(key, QgramIndex.build(candidates, { q: c.q, pad: c.pad }));
    const idx = indexes.get(key)!;
    const what = `${c.metric} '${c.query}' q=${c.q} pad=${c.pad}`;
    const got = idx.search(c.query, { metric: c.metric, top: 6 });
    assert.equal(got.length, c.top.length, what);
    for (let i = 0; i < got.length; i++) {
      assert.ok(Math.abs(got[i].score - c.top[i][1]) <= 1e-12, `${what}: rank ${i} score ${got[i].score} vs ${c.top[i][1]}`);
      assert.ok(Math.abs(got[i].score - c.scores[got[i].index]) <= 1e-12, `${what}: candidate ${got[i].index}`);
    }
    assert.equal(idx.search(c.query, { metric: c.metric }).length, c.count, `${what}: number of matches`);
  }
});

/** Brown sentences and mutated copies (deletions, swaps, case), so there are near-duplicates. */
function corpus(n: number, seed: number): string[] {
  const rng = new Rng(seed);
  const sents = brownSentences(['ca01', 'ca02', 'cb01', 'cj01']).map((s) => s.join(' '));
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    let s = sents[Math.floor(rng.next() * sents.length)];
    if (rng.next() < 0.5) {
      const w = s.split(' '), a = Math.floor(rng.next() * w.length), len = 2 + Math.floor(rng.next() * 8);
      s = w.slice(a, a + len).join(' ');
    }
    for (let e = Math.floor(rng.next() * 3); e > 0 && s.length > 2; e--) {
      const j = Math.floor(rng.next() * (s.length - 1));
      s = rng.next() < 0.5 ? s.slice(0, j) + s.slice(j + 1) : s.slice(0, j) + s[j + 1] + s[j] + s.slice(j + 2);
    }
    out.push(s);
  }
  out.push('自然语言处理', '自然语言理解是人工智能的一部分', '北京大学生前来应聘');
  return out;
}

test('the index returns exactly what the brute-force scan returns (every metric, thresholds, top-K, padding, words)', () => {
  const cands = corpus(1500, 11);
  const rng = new Rng(5);
  const configs: QgramOptions[] = [{ q: 3 }, { q: 2, pad: true }, { q: 4 }, { q: 2, unit: 'word' }, { q: 1, unit: 'word', pad: true }];
  let pruned = 0;
  for (const opts of configs) {
    const idx = QgramIndex.build(cands, opts);
    for (let it = 0; it < 6; it++) {
      // Queries: candidates, mutated candidates, and one Chinese line.
      let query = it === 0 ? '自然语言' : cands[Math.floor(rng.next() * cands.length)];
      if (it % 3 === 1) query = query.slice(1) + ' extra words';
      if (opts.unit !== 'word' && query.length < (opts.q ?? 3)) continue;
      for (const metric of METRICS) {
        const thresholds = metric === 'qgram' ? [undefined, 0, 5, 20, 60] : [undefined, 0, 0.2, 0.5, 0.8, 1];
        for (const threshold of thresholds) {
          for (const top of [undefined, 1, 7]) {
            const o = { metric, threshold, top };
            let want;
            try { want = idx.scan(query, o); } catch (e) { assert.ok(e instanceof ClassicInputError); continue; }
            for (const strategy of ['auto', 'prefix', 'full'] as const) {
              const got = idx.search(query, { ...o, strategy });
              assert.deepEqual(got, want, `${JSON.stringify(opts)} ${JSON.stringify(o)} ${strategy} '${query}'`);
              if (idx.stats.probed < idx.stats.grams) pruned++;
            }
          }
        }
      }
    }
  }
  assert.ok(pruned > 50, `prefix filtering pruned the probes of only ${pruned} searches`);
});

test('scores through the index equal the pairwise functions', () => {
  const cands = corpus(400, 2);
  for (const opts of [{ q: 3 }, { q: 2, pad: true }] as QgramOptions[]) {
    const idx = QgramIndex.build(cands, opts);
    for (const metric of METRICS) {
      const query = cands[17];
      for (const m of idx.search(query, { metric, top: 20 })) assert.equal(m.score, qgramScore(metric, query, cands[m.index], opts), `${metric} ${m.index}`);
    }
  }
});

test('a high threshold probes few grams and verifies few candidates', () => {
  const cands = corpus(3000, 4);
  const idx = QgramIndex.build(cands, { q: 3 });
  const query = cands[10];
  idx.search(query, { metric: 'jaccard' });
  const all = idx.stats.touched;
  const hits = idx.search(query, { metric: 'jaccard', threshold: 0.8 });
  assert.ok(hits.some((h) => h.index === 10));
  assert.ok(idx.stats.probed < idx.stats.grams / 2, `probed ${idx.stats.probed} of ${idx.stats.grams}`);
  assert.ok(idx.stats.touched < all / 5, `touched ${idx.stats.touched} of ${all}`);
  idx.search(query, { metric: 'cosine', threshold: 0.9 });
  assert.ok(idx.stats.probed < idx.stats.grams);
  idx.search(query, { metric: 'qgram', threshold: 4 });
  assert.ok(idx.stats.probed < idx.stats.grams);
});

test('near-duplicate pairs equal the all-pairs brute force', () => {
  const cands = corpus(250, 9);
  cands.push(cands[3], cands[40]);
  for (const [metric, threshold] of [['jaccard', 0.6], ['cosine', 0.7], ['dice', 0.75], ['qgram', 8], ['overlap', 0.9]] as [QgramMetric, number][]) {
    const idx = QgramIndex.build(cands, { q: 3 });
    const want: { a: number; b: number; score: number }[] = [];
    for (let a = 0; a < cands.length; a++) {
      const p = idx.profileOf(a);
      if (p.size === 0) continue;
      for (const m of idx.scan(p, { metric, threshold })) if (m.index > a) want.push({ a, b: m.index, score: m.score });
    }
    const key = (x: { a: number; b: number }): number => x.a * 1e6 + x.b;
    const got = idx.pairs({ metric, threshold }).sort((x, y) => key(x) - key(y));
    want.sort((x, y) => key(x) - key(y));
    assert.deepEqual(got, want, metric);
    assert.ok(got.some((p) => p.a === 3 && p.b === cands.length - 2), `${metric}: the exact duplicate is found`);
  }
});

test('bad input: empty or too short queries, bad options, missing, binary and empty files', () => {
  const idx = QgramIndex.build(['hello world', 'help'], { q: 3 });
  assert.throws(() => idx.search('  '), /the query is empty/);
  assert.throws(() => idx.search('he'), /no 3-grams .*shorter than q = 3/);
  assert.throws(() => idx.search('hello', { metric: 'edit' as QgramMetric }), /metric must be one of/);
  assert.throws(() => idx.search('hello', { threshold: 2 }), /threshold for jaccard must be a similarity in \[0, 1\], got 2/);
  assert.throws(() => idx.search('hello', { top: 0 }), /top must be an integer >= 1/);
  assert.throws(() => QgramIndex.build(['x'], { q: 0 }), /q must be an integer >= 1, got 0/);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tslm-match-'));
  assert.throws(() => readMatchCandidates(path.join(dir, 'nope.txt')), (e: Error) => e instanceof ClassicInputError && e.message.includes(`--file: no such file '${path.join(dir, 'nope.txt')}'`));
  const bin = path.join(dir, 'b.bin');
  writeFileSync(bin, Buffer.concat([Buffer.from('text line\nmore\n'), Buffer.from([0, 1, 2, 255, 0])]));
  assert.throws(() => readMatchCandidates(bin), (e: Error) => e instanceof ClassicFormatError && e.message.startsWith(`${bin}:3: binary file`));
  const blank = path.join(dir, 'blank.txt');
  writeFileSync(blank, '\n  \n');
  assert.throws(() => readMatchCandidates(blank), /has no non-blank lines/);
  mkdirSync(path.join(dir, 'sub'));
  assert.throws(() => readMatchCandidates(path.join(dir, 'sub')), /is a directory/);
  const ok = path.join(dir, 'ok.txt');
  writeFileSync(ok, '\ufefffirst\n\nthird\r\n');
  assert.deepEqual(readMatchCandidates(ok), { texts: ['first', 'third'], lines: Int32Array.of(1, 3) });
});

async function capture(fn: () => Promise<number>): Promise<{ rc: number; out: string; err: string }> {
  const lines: string[] = [], errs: string[] = [];
  const log = console.log, write = process.stderr.write;
  console.log = (...a: unknown[]) => { lines.push(a.join(' ')); };
  process.stderr.write = ((s: string) => { errs.push(String(s)); return true; }) as typeof process.stderr.write;
  try {
    return { rc: await fn(), out: lines.join('\n'), err: errs.join('') };
  } finally {
    console.log = log;
    process.stderr.write = write;
  }
}

test('tslm ngram match and dedup on a file, with Chinese', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tslm-match-cli-'));
  const file = path.join(dir, 'c.txt');
  writeFileSync(file, ['The jury said Friday', 'the jury sad friday', '', '自然语言处理', '自然语言理解', 'unrelated line'].join('\n'));
  const r = await capture(() => ngram.run(['match', '--query', 'the jury said friday', '--file', file, '--top', '2', '--metric', 'cosine']));
  assert.equal(r.rc, 0);
  const rows = r.out.split('\n');
  assert.equal(rows[0], 'cosine\tcandidate\ttext');
  assert.equal(rows.length, 3);
  assert.match(rows[1], new RegExp(`\t${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2\tthe jury sad friday$`));
  const zh = await capture(() => ngram.run(['match', '--query', '自然语言', '--file', file, '--q', '2', '--metric', 'qgram', '--top', '2']));
  assert.deepEqual(zh.out.split('\n').slice(1).map((l) => l.split('\t')[2]), ['自然语言处理', '自然语言理解']);
  assert.equal(zh.out.split('\n')[1].split('\t')[0], '2');
  const brute = await capture(() => ngram.run(['match', '--query', '自然语言', '--file', file, '--q', '2', '--metric', 'qgram', '--top', '2', '--brute']));
  assert.equal(brute.out, zh.out);
  const d = await capture(() => ngram.run(['dedup', '--file', file, '--threshold', '0.3', '--q', '2']));
  assert.equal(d.rc, 0);
  assert.ok(d.out.includes(`${file}:1\t${file}:2`), d.out);
  assert.ok(d.out.includes(`${file}:4\t${file}:5`), d.out);
});

test('tslm ngram match: errors name the option or file', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tslm-match-cli-'));
  const file = path.join(dir, 'c.txt');
  writeFileSync(file, 'a line\n');
  const bin = path.join(dir, 'x.bin');
  writeFileSync(bin, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0, 1]));
  await assert.rejects(ngram.run(['match', '--query', 'x', '--file', file, '--q', '0']), /--q must be an integer >= 1, got '0'/);
  await assert.rejects(ngram.run(['match', '--query', '', '--file', file]), /--query is required and must not be empty/);
  await assert.rejects(ngram.run(['match', '--file', file]), /--query is required/);
  await assert.rejects(ngram.run(['match', '--query', 'line', '--file', path.join(dir, 'none.txt')]), /--file: no such file/);
  await assert.rejects(ngram.run(['match', '--query', 'line', '--file', bin]), (e: Error) => e.message.startsWith(`${bin}:1: binary file`));
  await assert.rejects(ngram.run(['match', '--query', 'line', '--file', file, '--metric', 'edit']), /--metric must be one of/);
  await assert.rejects(ngram.run(['match', '--query', 'line', '--file', file, '--threshold', '1.5']), /--threshold must be a similarity in \[0, 1\] for --metric jaccard/);
  await assert.rejects(ngram.run(['match', '--query', 'li', '--file', file]), /no 3-grams/);
});

test('tslm ngram match without --file ranks the embedded Brown sentences', async () => {
  const r = await capture(() => ngram.run(['match', '--query', 'The Fulton County Grand Jury said Friday', '--top', '3', '--metric', 'overlap', '--threshold', '0.9']));
  assert.equal(r.rc, 0);
  const first = r.out.split('\n')[1].split('\t');
  assert.equal(first[1], 'brown:1');
  assert.ok(first[2].startsWith('The Fulton County Grand Jury said Friday an investigation'), first[2]);
  assert.match(r.err, /indexed 5\d,\d{3} candidates/);
});
