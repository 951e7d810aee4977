// N-gram LMs against outside references: KenLM's own test model and expected query scores
// (kpu/kenlm lm/test.arpa + lm/model_test.cc), an independent Python modified-KN implementation
// and NLTK's MLE/Lidstone (scripts/gen_classic_fixtures.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  readArpa, parseArpa, toArpa, writeArpa, trainNgram, trainNgramFile, countNgrams, estimate, tokenize,
  BackoffNgramModel, ClassicFormatError, ClassicInputError, DiscountError, BOS_ID,
} from '../../src/classic/index.js';
import { brownSentences, fixtureFile, fixtureJson } from './common.js';

const close = (got: number, want: number, rel: number, what: string): void => {
  assert.ok(Math.abs(got - want) <= rel * Math.max(1, Math.abs(want)), `${what}: got ${got}, expected ${want}`);
};

/** Score words one after another as KenLM's FullScore does from a start state. */
function chain(m: BackoffNgramModel, start: string[], steps: [string, number][]): void {
  const hist = start.map((w) => m.vocab.id(w));
  for (const [w, want] of steps) {
    const id = m.vocab.id(w);
    // KenLM's model_test tolerance: BOOST_CHECK_CLOSE(.., 0.001) = 0.001 percent.
    const got = m.logProbIds(hist, hist.length, id);
    assert.ok(Math.abs(got - want) <= 1e-5 * Math.abs(want) + 1e-7, `p(${w} | ${start.join(' ')} ..) = ${got}, KenLM ${want}`);
    hist.push(id);
  }
}

test('KenLM test.arpa: loads (format checks pass) and scores as KenLM model_test.cc expects', () => {
  const m = readArpa(fixtureFile('kenlm_test.arpa'));
  assert.deepEqual(m.counts, [37, 47, 11, 6, 4]);
  chain(m, ['<s>'], [['looking', -0.4846522]]);
  chain(m, ['<s>'], [[',', -1.383514 + -0.4149733]]);
  chain(m, ['<s>'], [['this_is_not_found', -1.995635 + -0.4149733]]);
  chain(m, ['<s>'], [['looking', -0.484652], ['on', -0.348837], ['a', -0.0155266], ['little', -0.00306122],
    ['the', -4.04005], ['biarritz', -1.9889], ['not_found', -2.29666], ['more', -1.20632 - 20.0], ['.', -0.51363], ['</s>', -0.0191651]]);
  chain(m, ['<s>', 'looking', 'on', 'a', 'little'], [['more', -0.00181395], ['loin', -0.0432557]]);
  // Blanks: n-grams whose lower-order parts are missing.
  chain(m, [], [['also', -1.687872], ['would', -2], ['consider', -3], ['higher', -4], ['looking', -5]]);
  chain(m, ['also', 'would', 'consider'], [['not_found', -1.995635 - 7.0 - 0.30103]]);
  chain(m, [], [['higher', -1.509559], ['looking', -1.285941 - 0.30103], ['not_found', -1.995635 - 0.4771212]]);
  chain(m, ['higher', 'looking'], [['consider', -1.687872 - 0.4771212]]);
  chain(m, [], [['would', -1.687872], ['consider', -1.687872 - 0.30103], ['higher', -1.509559 - 0.30103], ['looking', -1.285941 - 0.30103]]);
  // Unknowns.
  chain(m, [], [['not_found', -1.995635], ['not_found2', -15.0], ['not_found3', -15.0 - 2.0]]);
  chain(m, ['not_found'], [['however', -4], ['not_found3', -6]]);
  chain(m, [], [['baz', -6.535897]]);
  chain(m, [], [['foo', -3.141592], ['bar', -6.0]]);
  // Stateless checks: context given without <s>.
  chain(m, ['looking'], [['on', -0.4638903]]);
  chain(m, [], [['the', -1.687872]]);
  chain(m, ['biarritz'], [['not_found', -2.29666]]);
});

test('ARPA without <unk>: KenLM substitutes log10 p = -100', () => {
  const text = readFileSync(fixtureFile('kenlm_test.arpa'), 'utf8').split('\n')
    .filter((l) => !l.includes('<unk>')).join('\n').replace('ngram 1=37', 'ngram 1=36').replace('ngram 2=47', 'ngram 2=45').replace('ngram 3=11', 'ngram 3=10');
  const warnings: string[] = [];
  const m = parseArpa(text, 'nounk.arpa', { onWarning: (w) => warnings.push(w) });
  assert.equal(m.logProb('not_found'), -100);
  assert.match(warnings[0], /no <unk>/);
});

const ref = fixtureJson('ngram_ref.json');
const train = brownSentences(ref.brown.train_files), heldout = brownSentences(ref.brown.test_files);

for (const r of ref.brown.models) {
  test(`Brown ${r.order}-gram ${r.estimator}: counts, discounts, sentence scores and perplexity match the Python reference`, () => {
    const m = trainNgram(train, { order: r.order, estimator: r.estimator }) as BackoffNgramModel;
    assert.deepEqual(m.counts, r.counts);
    m.discounts.forEach((d, i) => d.forEach((x, k) => close(x, r.discounts[i][k], 1e-12, `D${k + 1} of order ${i + 1}`)));
    heldout.forEach((s, i) => close(m.score(s).logProb, r.sentence_log10[i], 1e-6, `sentence ${i}`));
    const p = m.perplexity(heldout);
    assert.equal(p.oov, r.oov);
    assert.equal(p.tokens, r.tokens);
    close(p.logProb, r.total_log10, 1e-9, 'total log10');
    close(p.perplexity, r.perplexity, 1e-9, 'perplexity');
    close(p.perplexityExclOov, r.perplexity_excl_oov, 1e-9, 'perplexity without OOVs');
    // Normalisation: Σ_w p(w | ctx) = 1 for a seen, an unseen and the <s> context.
    for (const ctx of [['of', 'the'], ['zzz', 'qqq'], ['<s>']]) {
      const hist = ctx.map((w) => m.vocab.id(w));
      let sum = 0;
      for (let id = 0; id < m.vocab.size; id++) if (id !== BOS_ID) sum += 10 ** m.logProbIds(hist, hist.length, id);
      close(sum, 1, 1e-9, `Σ p(· | ${ctx.join(' ')})`);
    }
    if (r.order === 3 && r.estimator === 'mkn') {
      // ARPA round trip: 8 significant digits written, so scores agree to ~1e-7 relative.
      const back = parseArpa(toArpa(m), 'roundtrip.arpa');
      assert.deepEqual(back.counts, m.counts);
      close(back.perplexity(heldout).perplexity, r.perplexity, 1e-6, 'perplexity after ARPA round trip');
    }
  });
}

test('MLE and add-k match NLTK (MLE, Lidstone 0.5) on trigrams', () => {
  const q = ref.nltk;
  const mle = trainNgram(train, { order: 3, estimator: 'mle' });
  const addk = trainNgram(train, { order: 3, estimator: 'addk', k: 0.5 });
  q.queries.forEach(([a, b, w]: string[], i: number) => {
    close(10 ** mle.logProb(w, [a, b]), q.mle[i], 1e-12, `MLE p(${w} | ${a} ${b})`);
    close(10 ** addk.logProb(w, [a, b]), q['lidstone_0.5'][i], 1e-12, `add-0.5 p(${w} | ${a} ${b})`);
  });
  assert.throws(() => toArpa(mle), /back-off model/);
});

test('Chinese character trigrams match the Python reference', () => {
  const z = ref.zh_char;
  const lines = (f: string): string[][] => readFileSync(fixtureFile(f), 'utf8').split('\n').filter((l) => l.trim()).map((l) => tokenize(l.replace(/\s+/g, ''), 'char'));
  const m = trainNgram(lines('zh.txt'), { order: 3, mode: 'char' }) as BackoffNgramModel;
  assert.deepEqual(m.counts, z.counts);
  m.discounts.forEach((d, i) => d.forEach((x, k) => close(x, z.discounts[i][k], 1e-12, `D${k + 1} of order ${i + 1}`)));
  const p = m.perplexity(lines('zh_test.txt'));
  close(p.perplexity, z.perplexity, 1e-9, 'zh perplexity');
  assert.equal(p.oov, z.oov);
  // UTF-8 through an ARPA file, character-mode tokenisation of raw text.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tslm-ngram-'));
  writeArpa(m, path.join(dir, 'zh.arpa'));
  const back = readArpa(path.join(dir, 'zh.arpa'), { mode: 'char' });
  close(back.scoreText('我喜欢在北京学习').logProb, m.score(lines('zh_test.txt')[0]).logProb, 1e-6, 'zh sentence after round trip');
  const next = back.predictNext(['北'], 1);
  assert.equal(next[0].token, '京');
});

test('plausibility ranking, top-k prediction and seeded sampling', () => {
  const m = trainNgram(train, { order: 3 });
  const ranked = m.rank(['The jury said it did .', 'jury The it said . did']);
  assert.equal(ranked[0].text, 'The jury said it did .');
  const top = m.predictNext(['of'], 5);
  assert.equal(top.length, 5);
  assert.equal(top[0].token, 'the');
  for (let i = 1; i < top.length; i++) assert.ok(top[i - 1].logProb >= top[i].logProb);
  const a = m.generate({ seed: 3, maxTokens: 20 }), b = m.generate({ seed: 3, maxTokens: 20 });
  assert.deepEqual(a, b);
  assert.ok(a.length > 0 && a.every((w) => m.vocab.has(w) && w !== '<unk>' && w !== '<s>'));
  assert.notDeepEqual(m.generate({ seed: 4, maxTokens: 20 }), a);
});

test('bad input: order, empty corpora, reserved tokens, tiny corpora', () => {
  assert.throws(() => trainNgram([['a']], { order: 0 }), /order must be an integer >= 1, got 0/);
  assert.throws(() => trainNgram([], { order: 3 }), /empty corpus/);
  assert.throws(() => trainNgram([[]], { order: 3, estimator: 'mle' }), /empty corpus/);
  assert.throws(() => trainNgram([['a', '<s>', 'b']], { order: 2 }), /reserved/);
  assert.throws(() => trainNgram([['a', 'b'], ['a', 'c']], { order: 3 }), (e: unknown) => e instanceof DiscountError && /discountFallback/.test((e as Error).message));
  const warnings: string[] = [];
  const fb = trainNgram([['a', 'b'], ['a', 'c']], { order: 3, discountFallback: true, onWarning: (w) => warnings.push(w) }) as BackoffNgramModel;
  assert.deepEqual(fb.discounts[2], [0.5, 1, 1.5]);
  assert.match(warnings[0], /substituting fallback discounts for order/);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tslm-ngram-'));
  writeFileSync(path.join(dir, 'empty.txt'), '\n  \n');
  assert.throws(() => trainNgramFile(path.join(dir, 'empty.txt'), { order: 3 }), (e: unknown) => e instanceof ClassicInputError && /empty\.txt: empty corpus/.test((e as Error).message));
  writeFileSync(path.join(dir, 'bad.txt'), 'a b\nc </s> d\n');
  assert.throws(() => trainNgramFile(path.join(dir, 'bad.txt'), { order: 2 }), /bad\.txt:2: the token '<\/s>' is reserved/);
  const c = countNgrams([['a', 'b', 'a']], { order: 1 });
  const uni = estimate(c, { estimator: 'kn', discountFallback: true });
  assert.ok(Number.isFinite(uni.logProb('a')));
});

test('bad ARPA files: errors name the file and line', () => {
  const good = toArpa(trainNgram([['a', 'b', 'c'], ['a', 'c'], ['b', 'c', 'a', 'b']], { order: 2, discountFallback: true }));
  const lines = good.split('\n');
  const bad = (mutate: (l: string[]) => string[], re: RegExp): void => {
    assert.throws(() => parseArpa(mutate([...lines]).join('\n'), 'm.arpa'), (e: unknown) => e instanceof ClassicFormatError && re.test((e as Error).message), re.source);
  };
  const at = (s: string): number => lines.findIndex((l) => l.startsWith(s));
  // A count that disagrees with its section (too few entries, then too many).
  const n2 = Number(lines[at('ngram 2=')].split('=')[1]);
  bad((l) => { l[at('ngram 2=')] = `ngram 2=${n2 + 2}`; return l; }, new RegExp(`^m\\.arpa:\\d+: \\\\data\\\\ says ngram 2=${n2 + 2} but the \\\\2-grams: section has ${n2} entries`));
  bad((l) => { l[at('ngram 1=')] = 'ngram 1=3'; return l; }, new RegExp(`^m\\.arpa:${at('\\1-grams:') + 5}: \\\\1-grams: has more entries than the 3`));
  const firstBigram = at('\\2-grams:') + 1;
  bad((l) => { l[firstBigram] = l[firstBigram].replace(/^\S+/, 'x1'); return l; }, new RegExp(`^m\\.arpa:${firstBigram + 1}: bad log10 probability "x1"`));
  bad((l) => { l[firstBigram] = '-0.5\tonly'; return l; }, new RegExp(`^m\\.arpa:${firstBigram + 1}: a 2-gram line needs`));
  bad((l) => { l[firstBigram] = '-0.5\ta zzz'; return l; }, /word "zzz" of this 2-gram is not in the \\1-grams: section/);
  bad((l) => { l[firstBigram] = l[firstBigram + 1]; return l; }, /duplicate 2-gram/);
  bad((l) => l.filter((x) => x !== '\\end\\'), /missing \\end\\/);
  bad((l) => l.slice(at('\\1-grams:')), /no \\data\\ header/);
  bad((l) => { l[at('\\1-grams:') + 1] = '0.5\t<unk>\t0'; return l; }, /positive/);
});

test('counting keeps every count while the tables grow (each n-gram of a 40k-word corpus counted)', () => {
  // Distinct words force every table to grow many times; a count lost at a growth shows as a 0.
  const sents: string[][] = [];
  for (let i = 0; i < 4000; i++) sents.push(Array.from({ length: 10 }, (_, j) => `w${i * 10 + j}`));
  const c = countNgrams(sents, { order: 3 });
  for (let n = 1; n <= 3; n++) {
    const t = c.tables[n - 1];
    let total = 0, zeros = 0;
    for (const s of t.slots()) { total += t.val[s]; if (t.val[s] === 0) zeros++; }
    assert.equal(zeros, 0, `order ${n}: n-grams with count 0`);
    assert.equal(total, 4000 * (12 - n + 1), `order ${n}: total count`);
  }
});
