// The packed n-gram build (issue #23 item 4): ARPA text byte-identical to the build before it
// (fixtures written by that build), equal to KenLM's lmplz up to its float32 digits, scores equal
// to KenLM's query; the packed ARPA writer against the plain one on awkward inputs (order 1,
// order 7, Chinese, more than 65,536 words, odd whitespace and invalid UTF-8); bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  BackoffNgramModel, ClassicFormatError, ClassicInputError, countNgrams, countNgramsFile, estimate, formatArpaNumber, readArpa,
  readSentences, toArpa, tokenize, trainNgram, trainNgramFile, writeArpaNumber,
  countNgramsFileParallel, trainNgramFileParallel, writeArpaParallel, vocabBytes, ArpaWriterThread, writeArpaAsync, arpaBytes,
} from '../../src/classic/index.js';
import { ByteWordIndex, readWordIds, utf8SpaceAt } from '../../src/classic/packed.js';
import { brownSentences, fixtureFile, fixtureJson } from './common.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'tslm-ngram-packed-'));
const write = (name: string, content: string | Buffer): string => {
  const f = path.join(tmp, name);
  writeFileSync(f, content);
  return f;
};

/** The ARPA text of the same model written by the plain writer, from full-key tables. */
function plainArpa(m: BackoffNgramModel): string {
  assert.ok(m.packed, 'a model estimated here is packed');
  return toArpa(new BackoffNgramModel(m.order, m.vocab, m.tables, m.mode));
}

test('ARPA numbers: the digit writer gives toPrecision(8)\'s text, ties and exponents included', () => {
  const b = new Uint8Array(64);
  const check = (x: number): void => {
    const end = writeArpaNumber(b, 0, x);
    assert.equal(Buffer.from(b.subarray(0, end)).toString('latin1'), formatArpaNumber(x), `x = ${x}`);
  };
  let seed = 7;
  const rnd = (): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed / 4294967296; };
  for (let i = 0; i < 200_000; i++) { check(-Math.pow(10, rnd() * 18 - 9)); check(Math.pow(10, rnd() * 18 - 9) * rnd()); }
  // Exact halves at the 9th significant digit (rounding ties) and numbers near powers of ten.
  for (let i = 0; i < 20_000; i++) check(-(Math.floor(rnd() * 1e9) + 0.5) / 2 ** Math.floor(rnd() * 30));
  for (let k = -8; k <= 9; k++) for (const f of [1, 1 + 2.2e-16, 1 - 1.1e-16, 0.999999995, 1.000000005]) { check(10 ** k * f); check(-(10 ** k) * f); }
  for (const x of [0, -0, 12345678.5, 0.5, -1.5, 99999999.5, 9.99999995, 1e-6, 9.999999e-7, 1e-7, 1e8, -98.9999999, -99, -99.5, -1000, NaN, Infinity, -Infinity, 5e-324]) check(x);
});

test('word splitting on bytes matches JavaScript\'s \\s for every code point', () => {
  const enc = new TextEncoder();
  for (let cp = 0; cp <= 0x10ffff; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    const s = String.fromCodePoint(cp), b = enc.encode(s);
    const want = /^\s$/u.test(s) ? b.length : 0;
    if (utf8SpaceAt(b, 0, b.length) !== want) assert.fail(`U+${cp.toString(16)}: got ${utf8SpaceAt(b, 0, b.length)}, want ${want}`);
  }
});

test('a file counted on bytes equals its lines tokenised as strings (odd whitespace, BOM, CRLF, invalid UTF-8, Chinese)', () => {
  const text = Buffer.concat([
    Buffer.from('\ufeffthe cat\u00a0sat\r\n\n  \t \nthe\u3000dog sat\u2028down\n'),
    Buffer.from('a\u0085b c\u001cd e\u200bf\n猫 坐 在 垫子 上\u2003。\n'),
    Buffer.from([0x62, 0xff, 0x63, 0x20, 0xe2, 0x80, 0x20, 0x62, 0xfe, 0x63, 0x0a]), // invalid bytes inside and at the end of words
    Buffer.from('the cat sat'), // no final newline
  ]);
  const f = write('odd.txt', text);
  const fromBytes = countNgramsFile(f, { order: 3 });
  const fromStrings = countNgrams(readSentences(f), { order: 3 });
  assert.deepEqual(fromBytes.vocab.words, fromStrings.vocab.words);
  assert.ok(fromBytes.vocab.has('a\u0085b') && fromBytes.vocab.has('c\u001cd') && fromBytes.vocab.has('e\u200bf'), 'U+0085, U+001C and U+200B are not whitespace in JavaScript');
  assert.ok(fromBytes.vocab.has('b\ufffdc') && fromBytes.vocab.has('\ufffd'), 'invalid bytes decode as TextDecoder decodes them');
  assert.equal(fromBytes.sentences, 6);
  const opts = { discountFallback: true } as const;
  assert.equal(toArpa(estimate(fromBytes, opts)), toArpa(estimate(fromStrings, opts)));
});

const golden = fixtureJson('ngram_golden.json');

test('ARPA text is byte-identical to the previous build\'s (fixtures it wrote; Brown by sha256)', () => {
  const zh = fixtureFile('zh.txt');
  assert.equal(toArpa(trainNgramFile(zh, { order: 6, discountFallback: true })), readFileSync(fixtureFile('ngram_zh_o6.arpa'), 'utf8'));
  assert.equal(toArpa(trainNgramFile(zh, { order: 4, mode: 'char', discountFallback: true })), readFileSync(fixtureFile('ngram_zh_char_o4.arpa'), 'utf8'));
  const sents = brownSentences(golden.brown.files);
  const f = write('brown.txt', sents.map((s) => s.join(' ')).join('\n') + '\n');
  for (const [order, estimator, want] of golden.brown.sha256 as [number, 'kn' | 'mkn', string][]) {
    const m = trainNgramFile(f, { order, estimator }) as BackoffNgramModel;
    const text = toArpa(m);
    assert.equal(createHash('sha256').update(text).digest('hex'), want, `Brown ${golden.brown.files[0]}… order ${order} ${estimator}`);
    if (order === 4) {
      assert.equal(toArpa(trainNgram(sents, { order, estimator })), text, 'sentences given as arrays');
      assert.equal(plainArpa(m), text, 'the plain writer over full-key tables');
    }
  }
});

test('two threads (counting split between threads, ARPA text written by a worker) give the same bytes', async () => {
  const sents = brownSentences(golden.brown.files);
  const f = write('brown2.txt', sents.map((s) => s.join(' ')).join('\n') + '\n');
  const out = path.join(tmp, 'two.arpa');
  for (const [order, estimator, want] of golden.brown.sha256 as [number, 'kn' | 'mkn', string][]) {
    const counts = await countNgramsFileParallel(f, { order });
    await writeArpaParallel(estimate(counts, { estimator }), out);
    assert.equal(createHash('sha256').update(readFileSync(out)).digest('hex'), want, `Brown order ${order} ${estimator}`);
  }
  const zh = fixtureFile('zh.txt');
  await writeArpaParallel(await trainNgramFileParallel(zh, { order: 6, discountFallback: true }), out);
  assert.equal(readFileSync(out, 'utf8'), readFileSync(fixtureFile('ngram_zh_o6.arpa'), 'utf8'));
  await writeArpaParallel(await trainNgramFileParallel(zh, { order: 4, mode: 'char', discountFallback: true }), out);
  assert.equal(readFileSync(out, 'utf8'), readFileSync(fixtureFile('ngram_zh_char_o4.arpa'), 'utf8'));
  // Lines longer than a counting batch (16,384 tokens), short ones between them, orders 3 and 7.
  let seed = 3;
  const rnd = (k: number): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return (seed >>> 8) % k; };
  const lines = Array.from({ length: 40 }, (_, i) => Array.from({ length: i % 13 === 0 ? 20_000 + rnd(5000) : 1 + rnd(30) }, () => `w${rnd(300)}`).join(' '));
  const g = write('long.txt', lines.join('\n') + '\n');
  for (const order of [3, 7]) {
    const opts = { order, discountFallback: true } as const;
    await writeArpaParallel(await trainNgramFileParallel(g, opts), out);
    assert.equal(readFileSync(out, 'utf8'), toArpa(trainNgram(lines.map((l) => l.split(' ')), opts)), `order ${order}`);
  }
  // Bad input is reported as by the one-thread build, and the threads are stopped.
  const bad = write('bad.txt', 'a b c\nx </s> y\n');
  await assert.rejects(countNgramsFileParallel(bad, { order: 3 }), (e: Error) => e instanceof ClassicInputError && /bad\.txt:2: the token '<\/s>' is reserved/.test(e.message));
  await assert.rejects(countNgramsFileParallel(path.join(tmp, 'missing.txt'), { order: 5 }), /missing\.txt: cannot read/);
  // A writer thread started before estimating: closed unused it leaves no file; a model of other counts, or not a back-off model, is refused.
  const small = countNgrams(brownSentences(['ca01']), { order: 3 });
  const unused = path.join(tmp, 'unused.arpa');
  await ArpaWriterThread.start(small, unused).close();
  assert.ok(!existsSync(unused), 'no file from a writer that was not used');
  await assert.rejects(ArpaWriterThread.start(small, unused).write(estimate(countNgrams(brownSentences(['ca01']), { order: 3 }))), /not estimated from the counts this writer started with/);
  await assert.rejects(ArpaWriterThread.start(small, unused).write(estimate(small, { estimator: 'mle' })), ClassicInputError);
  const early = ArpaWriterThread.start(small, out);
  await early.write(estimate(small));
  assert.equal(readFileSync(out, 'utf8'), toArpa(estimate(small)));
});

test('writeArpaAsync (writes on libuv\'s pool while the next chunks are made) and chunks in several buffers give the same bytes', async () => {
  const zh = fixtureFile('zh.txt');
  const out = path.join(tmp, 'async.arpa');
  const m = trainNgramFile(zh, { order: 6, discountFallback: true });
  await writeArpaAsync(m, out);
  assert.equal(readFileSync(out, 'utf8'), readFileSync(fixtureFile('ngram_zh_o6.arpa'), 'utf8'));
  const sents = brownSentences(golden.brown.files.slice(0, 4));
  const b = trainNgram(sents, { order: 4 });
  const want = toArpa(b);
  await writeArpaAsync(b, out);
  assert.equal(readFileSync(out, 'utf8'), want);
  // Small chunks (hundreds of them, each line in one): every chunk stays whole until the
  // (buffers)-th chunk after it is asked for.
  for (const buffers of [2, 3, 4]) {
    const chunks: Uint8Array[] = [], copies: Buffer[] = [];
    for (const c of arpaBytes(b, 4096, buffers)) {
      chunks.push(c); copies.push(Buffer.from(c));
      const i = chunks.length - buffers; // the oldest chunk that must still be whole
      if (i >= 0) assert.ok(Buffer.from(chunks[i]).equals(copies[i]), `buffers ${buffers}: chunk ${i} was overwritten`);
    }
    assert.ok(copies.length > 100);
    assert.equal(Buffer.concat(copies).toString('utf8'), want, `buffers ${buffers}`);
  }
  // A file that cannot be written is an error (and nothing is left running).
  await assert.rejects(writeArpaAsync(b, path.join(tmp, 'no-such-dir', 'x.arpa')), /ENOENT/);
  await assert.rejects(writeArpaAsync(estimate(countNgrams(sents, { order: 2 }), { estimator: 'mle' }), out), ClassicInputError);
});

/** n-gram → [log10 p, backoff] of an ARPA text. */
function arpaEntries(text: string): Map<string, [number, number]> {
  const m = new Map<string, [number, number]>();
  let inSection = false;
  for (const line of text.split('\n')) {
    if (/^\\\d+-grams:$/.test(line)) { inSection = true; continue; }
    if (!inSection || line === '' || line.startsWith('\\')) continue;
    const f = line.split('\t');
    m.set(f[1], [Number(f[0]), f.length > 2 ? Number(f[2]) : 0]);
  }
  return m;
}

test('equal to KenLM lmplz (orders 3 and 5, fallback discounts) up to its float32 digits; <s> is -99 here, 0 there', () => {
  for (const order of [3, 5]) {
    const ours = arpaEntries(toArpa(trainNgramFile(fixtureFile('zh.txt'), { order, discountFallback: true })));
    const kenlm = arpaEntries(readFileSync(fixtureFile(`kenlm_zh_o${order}.arpa`), 'utf8'));
    assert.deepEqual([...ours.keys()].sort(), [...kenlm.keys()].sort(), `order ${order}: the same n-grams`);
    for (const [g, [p, b]] of ours) {
      const [kp, kb] = kenlm.get(g)!;
      if (g === '<s>') { assert.deepEqual([p, kp], [-99, 0]); continue; }
      assert.ok(Math.abs(p - kp) <= 1e-6 && Math.abs(b - kb) <= 1e-6, `order ${order} '${g}': ${p} ${b} vs KenLM ${kp} ${kb}`);
    }
  }
});

test('scores equal KenLM query\'s on its ARPA (sentence totals, OOVs, perplexity)', () => {
  const m = readArpa(fixtureFile('kenlm_zh_o3.arpa'));
  const q = readFileSync(fixtureFile('kenlm_zh_o3.query.txt'), 'utf8').split('\n');
  const lines = readFileSync(fixtureFile('kenlm_query.txt'), 'utf8').split('\n').slice(0, -1);
  const totals = q.filter((l) => l.startsWith('Total:')).map((l) => l.split(/\s+/));
  assert.equal(totals.length, lines.length);
  lines.forEach((line, i) => {
    const s = m.scoreText(line);
    assert.ok(Math.abs(s.logProb - Number(totals[i][1])) <= 2e-6, `line ${i + 1}: ${s.logProb} vs query ${totals[i][1]}`);
    assert.equal(s.oov, Number(totals[i][3]));
  });
  const value = (key: string): number => Number(q.find((l) => l.startsWith(key))!.split('\t')[1]);
  const p = m.perplexity(lines);
  assert.ok(Math.abs(p.perplexity / value('Perplexity including OOVs:') - 1) < 1e-6, `${p.perplexity}`);
  assert.ok(Math.abs(p.perplexityExclOov / value('Perplexity excluding OOVs:') - 1) < 1e-6);
  assert.equal(p.oov, value('OOVs:'));
  assert.equal(p.tokens, value('Tokens:'));
});

test('awkward models: order 1, order 7, more than 65,536 words, Chinese characters; the packed writer equals the plain one', () => {
  const sents = brownSentences(['ca01', 'ca02']);
  const m1 = trainNgram(sents, { order: 1 }) as BackoffNgramModel;
  const t1 = toArpa(m1);
  assert.equal(plainArpa(m1), t1);
  assert.ok(!/\t\S+\t/.test(t1.split('\\1-grams:\n')[1]), 'order 1: no backoff column');
  const m7 = trainNgram(sents, { order: 7, discountFallback: true }) as BackoffNgramModel;
  assert.equal(plainArpa(m7), toArpa(m7));
  assert.equal(m7.counts.length, 7);
  // About 72,000 distinct words (ids past 16 bits), in sentences that share some.
  const big: string[][] = [];
  for (let i = 0; i < 12_000; i++) big.push(Array.from({ length: 8 }, (_, j) => (j % 4 === 0 ? `w${j}` : `v${(i * 8 + j) % 90_000}`)));
  const mb = trainNgram(big, { order: 3, discountFallback: true }) as BackoffNgramModel;
  assert.ok(mb.vocab.size > 65_536, `${mb.vocab.size} words`);
  const tb = toArpa(mb);
  assert.equal(plainArpa(mb), tb);
  const last = big[11_249]; // v89993 v89994 v89995: first seen here, so among the last ids
  assert.ok(mb.vocab.id(last[3]) > 65_535 && tb.includes(`\t${last[1]} ${last[2]} ${last[3]}\n`), 'a trigram with a word id above 65,535');
  const zh = readFileSync(path.join(fixtureFile('..'), '..', '..', 'data', 'quickstart', 'zh-classics.txt'), 'utf8').split('\n').slice(0, 400);
  const mz = trainNgram(zh.map((l) => tokenize(l, 'char')), { order: 3, mode: 'char', discountFallback: true }) as BackoffNgramModel;
  assert.equal(plainArpa(mz), toArpa(mz));
  // Scoring through the full-key tables made from the packed model agrees with the ARPA round trip.
  const back = readArpa(write('zh.arpa', toArpa(mz)), { mode: 'char' });
  const a = mz.scoreText(zh[1]).logProb, b = back.scoreText(zh[1]).logProb;
  assert.ok(Math.abs(a - b) < 1e-6 * Math.abs(a), `${a} vs ${b}`);
});

test('vocabulary bytes in one encoding equal each word\'s own (Chinese, a lone surrogate, a word holding a newline)', () => {
  const enc = new TextEncoder();
  for (const words of [['<unk>', '<s>', '</s>', '中文', 'a\ud800', '', 'é'], ['<unk>', 'a\nb', '\n', 'x'], ['<unk>']]) {
    const { pool, wOff } = vocabBytes(words);
    assert.equal(wOff.length, words.length + 1);
    words.forEach((w, i) => assert.deepEqual(Array.from(pool.subarray(wOff[i], wOff[i + 1])), Array.from(enc.encode(w)), JSON.stringify(w)));
    assert.equal(wOff[words.length], words.reduce((n, w) => n + enc.encode(w).length, 0));
  }
});

test('bad input: missing file, reserved tokens and over-long lines name the file and line', () => {
  assert.throws(() => trainNgramFile(path.join(tmp, 'nope.txt'), { order: 3 }), (e: unknown) => e instanceof ClassicInputError && /nope\.txt: cannot read \(ENOENT\)/.test((e as Error).message));
  const f = write('reserved.txt', 'a b\n\nc d <s>\n');
  assert.throws(() => trainNgramFile(f, { order: 2 }), (e: unknown) => e instanceof ClassicInputError && /reserved\.txt:3: the token '<s>' is reserved/.test((e as Error).message));
  const long = write('long.txt', 'a b\n' + 'x '.repeat(5000) + '\nc\n');
  const words = new ByteWordIndex((w) => w.length);
  assert.throws(() => readWordIds(long, words, () => {}, 4096), (e: unknown) => e instanceof ClassicFormatError && e.line === 2 && /longer than 4096 bytes/.test(e.message));
  let lines = 0;
  readWordIds(long, words, () => { lines++; }, 1 << 20);
  assert.equal(lines, 3);
  assert.throws(() => trainNgramFile(write('empty.txt', ' \n\t\n'), { order: 3 }), /empty\.txt: empty corpus/);
});
