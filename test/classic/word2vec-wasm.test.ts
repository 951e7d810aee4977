// The word2vec wasm SIMD kernel against the scalar JavaScript reference (trainRange): from the
// same weights and random stream, one sentence (and one lone window) of skip-gram/CBOW with
// negative sampling, hierarchical softmax and both must give the same weights to ~1e-6, the
// same loss and prediction count and leave the random stream in the same state. Dimensions
// that are not multiples of the SIMD width (4) or of the unrolled block (16) included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { buildCorpus, prepareWord2Vec, type Word2VecOptions } from '../../src/classic/index.js';
import { trainRange } from '../../src/classic/word2vec-kernel.js';
import { W2VWasmThread, loadWord2VecModule } from '../../src/classic/word2vec-wasm.js';

// Both builds of the kernel: relaxed SIMD (fused multiply-add, when the engine has it) and SIMD128.
await loadWord2VecModule(); // enables relaxed SIMD in V8 first
const VARIANTS: ['relaxed' | 'simd', WebAssembly.Module][] = [];
for (const v of ['relaxed', 'simd'] as const) {
  const bytes = readFileSync(new URL(`../../wasm/word2vec-${v}.wasm`, import.meta.url));
  if (WebAssembly.validate(bytes)) VARIANTS.push([v, new WebAssembly.Module(bytes)]);
}

// A small corpus with a skewed vocabulary: word i appears about 60/(i+1) times.
function corpusOf(sentences: number, len: number, seed: number): string[][] {
  let s = seed >>> 0 || 1;
  const rand = (): number => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 4294967296; };
  const out: string[][] = [];
  for (let i = 0; i < sentences; i++) out.push(Array.from({ length: len }, () => `w${Math.floor(Math.exp(rand() * Math.log(40))) - 1}`));
  return out;
}

/** Largest |a - b| / max(1, |a|). */
function maxDiff(a: Float32Array | null, b: Float32Array | null): number {
  if (a === null || b === null) { assert.equal(a, b); return 0; }
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(a[i])));
  return m;
}

type Prepared = Awaited<ReturnType<typeof prepareWord2Vec>>;

/**
 * Three training passes of the scalar reference (js) and the wasm kernel (wa) give the same counts,
 * random stream, loss and weights (to `tol`, relative to max(1, |x|)).
 */
function passesAgree(js: Prepared, wa: Prepared, tol = 1e-6): void {
  const thread = new W2VWasmThread(wa.sh, 0);
  for (let rep = 0; rep < 3; rep++) {
    const rj = trainRange(js.sh, js.params, 0, 0, js.sentences, js.rng);
    const rw = thread.trainRange(wa.params, 0, 0, wa.sentences, wa.rng);
    assert.equal(rw.pairs, rj.pairs, 'predictions');
    assert.equal(rw.words, rj.words, 'words');
    assert.equal(wa.rng.s, js.rng.s, 'random stream state');
    assert.ok(Math.abs(rw.loss - rj.loss) <= 1e-4 * Math.max(1, rj.loss), `loss ${rw.loss} vs ${rj.loss}`);
    const d0 = maxDiff(js.sh.syn0, wa.sh.syn0), d1 = maxDiff(js.sh.syn1, wa.sh.syn1), dn = maxDiff(js.sh.syn1neg, wa.sh.syn1neg);
    assert.ok(d0 <= tol && d1 <= tol && dn <= tol, `pass ${rep}: max |Δ|/max(1,|x|) syn0 ${d0}, syn1 ${d1}, syn1neg ${dn}`);
  }
}

const CONFIGS: [string, Word2VecOptions][] = [
  ['skip-gram, negative 5', { cbow: false, negative: 5, hs: false }],
  ['CBOW, negative 5', { cbow: true, negative: 5, hs: false }],
  ['skip-gram, hierarchical softmax', { cbow: false, negative: 0, hs: true }],
  ['CBOW, hierarchical softmax', { cbow: true, negative: 0, hs: true }],
  ['skip-gram, HS + negative 3', { cbow: false, negative: 3, hs: true }],
];

for (const [variant, module] of VARIANTS) {
for (const dim of [100, 31, 3]) {
  for (const [name, cfg] of CONFIGS) {
    for (const [what, sents, len] of [['one sentence', 1, 24], ['one window', 1, 6]] as const) {
      test(`word2vec wasm kernel (${variant}) = scalar reference: ${name}, dim ${dim}, ${what}`, async () => {
        const corpus = buildCorpus(corpusOf(sents, len, 7 + dim), 1);
        // alpha 0.1 (2-4x the defaults) so that the weights move well away from the initialisation;
        // at 0.5 a rare sigmoid-table index flips on a last-bit difference of f and the runs part by ~1e-6.
        const opts: Word2VecOptions = { ...cfg, size: dim, window: 5, sample: 0, iter: 1, threads: 1, seed: 3, alpha: 0.1 };
        const js = await prepareWord2Vec(corpus, { ...opts, kernel: 'js' });
        const wa = await prepareWord2Vec(corpus, { ...opts, kernel: 'wasm' });
        assert.equal(js.kernel, 'js');
        assert.match(wa.kernel, /^wasm-(relaxed|simd)$/);
        assert.ok(wa.sh.wasm && wa.sh.syn0.buffer === (wa.sh.wasm.memory.buffer as unknown), 'weights are views of the wasm memory');
        assert.equal(maxDiff(js.sh.syn0, wa.sh.syn0), 0, 'same initial weights');
        wa.sh.wasm!.module = module;
        passesAgree(js, wa);
        // The weights moved: the comparison is not of untouched arrays.
        const out = (wa.sh.syn1neg ?? wa.sh.syn1)!;
        assert.ok(out.some((x) => x !== 0), 'output weights (zero at the start) were updated');
      });
    }
  }
}
}

// Skip-gram with hierarchical softmax alone trains a position's predictions together, row by row
// (hsPosition in the kernel), when the context words are distinct: a larger vocabulary makes that
// the common case, and windows up to 8 give every count of contexts from 1 to 16 (groups of four,
// a pair, one left over), beside the one-by-one path for windows with a repeated word.
for (const [variant, module] of VARIANTS) {
  for (const [dim, window] of [[100, 5], [17, 8], [3, 2], [64, 1]] as const) {
    test(`word2vec wasm kernel (${variant}) = scalar reference: skip-gram HS by position, dim ${dim}, window ${window}`, async () => {
      let s = 12345 + dim;
      const rand = (): number => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 4294967296; };
      const sents = Array.from({ length: 6 }, (_, i) => Array.from({ length: 10 + 7 * i }, () => `v${Math.floor(Math.exp(rand() * Math.log(300)))}`));
      const corpus = buildCorpus(sents, 1);
      const opts: Word2VecOptions = { cbow: false, negative: 0, hs: true, size: dim, window, sample: 0, iter: 1, threads: 1, seed: 5, alpha: 0.1 };
      const js = await prepareWord2Vec(corpus, { ...opts, kernel: 'js' });
      const wa = await prepareWord2Vec(corpus, { ...opts, kernel: 'wasm' });
      wa.sh.wasm!.module = module;
      passesAgree(js, wa);
      assert.ok(wa.sh.syn1!.some((x) => x !== 0), 'output weights were updated');
    });
  }
}

// Skip-gram with negatives shared by a position's contexts (sharedNegatives) also trains by
// position; a small vocabulary makes repeated draws (left out) and repeated context words (one by
// one) common, and HS + shared negatives lists the path's rows before the negatives'.
for (const [variant, module] of VARIANTS) {
  for (const [dim, window, vocab, negative, hs] of [[100, 5, 300, 5, false], [17, 8, 300, 7, false], [3, 2, 12, 5, false], [31, 5, 40, 3, true]] as const) {
    test(`word2vec wasm kernel (${variant}) = scalar reference: skip-gram shared negatives${hs ? ' + HS' : ''}, dim ${dim}, window ${window}, vocabulary ~${vocab}`, async () => {
      let s = 777 + dim;
      const rand = (): number => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 4294967296; };
      const sents = Array.from({ length: 6 }, (_, i) => Array.from({ length: 10 + 7 * i }, () => `v${Math.floor(Math.exp(rand() * Math.log(vocab)))}`));
      const corpus = buildCorpus(sents, 1);
      const opts: Word2VecOptions = { cbow: false, negative, hs, sharedNegatives: true, size: dim, window, sample: 0, iter: 1, threads: 1, seed: 5, alpha: 0.1 };
      const js = await prepareWord2Vec(corpus, { ...opts, kernel: 'js' });
      const wa = await prepareWord2Vec(corpus, { ...opts, kernel: 'wasm' });
      assert.ok(js.params.sharedNegatives);
      wa.sh.wasm!.module = module;
      passesAgree(js, wa);
      assert.ok(wa.sh.syn1neg!.some((x) => x !== 0), 'output weights were updated');
    });
  }
}

// Large weights: the SIMD gradients of a dot-product pass (chainGrad4 / chainGrad2 in the kernel)
// are taken only when every row's |dot| is below the sigmoid table's edge (6); a pass with one row
// beyond it goes row by row, where the gradient is (label − 1)·alpha or label·alpha and the loss
// comes from exp. Both start from the same weights drawn so that about a third of the dot products
// are beyond ±6 (so passes with and without such a row are both common), and must still agree.
for (const [variant, module] of VARIANTS) {
  for (const dim of [100, 31]) {
    for (const [name, cfg] of [
      ['skip-gram, negative 5', { cbow: false, negative: 5, hs: false }],
      ['CBOW, negative 5', { cbow: true, negative: 5, hs: false }],
      ['skip-gram, HS + negative 3', { cbow: false, negative: 3, hs: true }],
    ] as [string, Word2VecOptions][]) {
      test(`word2vec wasm kernel (${variant}) = scalar reference with |dot| beyond 6: ${name}, dim ${dim}`, async () => {
        const corpus = buildCorpus(corpusOf(2, 24, 11 + dim), 1);
        // alpha small: with rows this large a larger step would throw the weights far in one pass.
        const opts: Word2VecOptions = { ...cfg, size: dim, window: 5, sample: 0, iter: 1, threads: 1, seed: 9, alpha: 0.01 };
        const js = await prepareWord2Vec(corpus, { ...opts, kernel: 'js' });
        const wa = await prepareWord2Vec(corpus, { ...opts, kernel: 'wasm' });
        wa.sh.wasm!.module = module;
        // Uniform in ±a: the dot of two rows has standard deviation √dim·a²/3, here about 6 (about
        // a third of them beyond ±6); CBOW's input, the mean of up to 10 context rows, gets rows
        // √8 times larger in a² for the same spread.
        const a = Math.sqrt((cfg.cbow ? Math.sqrt(8) : 1) * 18 / Math.sqrt(dim));
        let s = 4242 + dim;
        const rand = (): number => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return (s / 4294967296) * 2 - 1; };
        for (const key of ['syn0', 'syn1neg', 'syn1'] as const) {
          const x = js.sh[key];
          if (!x) continue;
          for (let i = 0; i < x.length; i++) x[i] = Math.fround(a * rand());
          wa.sh[key]!.set(x);
        }
        // The inputs of the first pass's predictions (skip-gram: each word's row; CBOW: the mean of
        // its full window) against every output row: both sides of ±6 common at the start.
        const V = corpus.words.length, ids = corpus.ids, syn0 = js.sh.syn0, out = js.sh.syn1neg ?? js.sh.syn1!;
        let beyond = 0, all = 0;
        const inp = new Float64Array(dim);
        for (let p = 0; p < ids.length; p++) {
          inp.fill(0);
          const ctx = cfg.cbow ? ids.filter((_, q) => q !== p && Math.abs(q - p) <= 5) : [ids[p]];
          for (const w of ctx) for (let k = 0; k < dim; k++) inp[k] += syn0[w * dim + k] / ctx.length;
          for (let j = 0; j < V; j++) {
            let d = 0;
            for (let k = 0; k < dim; k++) d += inp[k] * out[j * dim + k];
            if (Math.abs(d) > 6) beyond++;
            all++;
          }
        }
        assert.ok(beyond / all > 0.15 && beyond / all < 0.6, `share of |dot| > 6 at the start: ${beyond / all}`);
        // Rows ~20x the usual size: the dot products' rounding (summed in another order) is as
        // much larger, so 3e-6 here; a saturated gradient taken from the table's edge instead
        // (σ(6) = 0.9975) would move a weight by ~5e-5.
        passesAgree(js, wa, 3e-6);
      });
    }
  }
}

// Hot rows (threads > 1): each thread trains its own copies of the frequent words' input and
// output rows and merges shared += copy − copy at the last merge. With every word hot and no merge
// until the end of its range, each of two threads trains in isolation from the initial weights,
// so after both have merged the weights must be the initial ones plus each thread's changes,
// which single-thread runs from the same weights, random streams and learning rates give.
for (const [name, cbow] of [['skip-gram', false], ['CBOW', true]] as const) {
  test(`word2vec hot rows: two threads' merged updates = initial weights + each thread's own (${name}, negative 5)`, async () => {
    const { W2VRng } = await import('../../src/classic/word2vec-kernel.js');
    const corpus = buildCorpus(corpusOf(40, 20, 21), 1);
    const V = corpus.words.length, half = 20;
    const opts: Word2VecOptions = { cbow, negative: 5, size: 37, window: 4, sample: 0, iter: 1, threads: 2, seed: 9, alpha: 0.05 };
    const hot = await prepareWord2Vec(corpus, { ...opts, hotWords: V, hotSync: 1e9 });
    assert.equal(hot.sh.wasm!.hotWords, V);
    const init0 = new Float32Array(hot.sh.syn0), init1 = new Float32Array(hot.sh.syn1neg!);
    const a = new W2VWasmThread(hot.sh, 0), b = new W2VWasmThread(hot.sh, 1);   // both copy the initial rows
    a.trainRange(hot.params, 0, 0, half, new W2VRng(101));
    const wordsA = hot.sh.progress[0];
    b.trainRange(hot.params, 1, half, hot.sentences, new W2VRng(202), false);   // not refreshed: as if it had started with the first
    // Each range alone from the initial weights, shared rows (hotWords 0); the second thread's
    // learning rate counts the first one's words, as in the two-thread run.
    const alone = async (tid: number, from: number, to: number, seed: number): Promise<[Float32Array, Float32Array]> => {
      const r = await prepareWord2Vec(corpus, { ...opts, hotWords: 0 });
      assert.equal(r.sh.wasm!.hotWords, 0);
      if (tid === 1) r.sh.progress[0] = wordsA;
      new W2VWasmThread(r.sh, tid).trainRange(r.params, tid, from, to, new W2VRng(seed));
      return [r.sh.syn0.map((x, i) => x - init0[i]), r.sh.syn1neg!.map((x, i) => x - init1[i])];
    };
    const [a0, a1] = await alone(0, 0, half, 101), [b0, b1] = await alone(1, half, hot.sentences, 202);
    const expect0 = init0.map((x, i) => x + a0[i] + b0[i]), expect1 = init1.map((x, i) => x + a1[i] + b1[i]);
    const d0 = maxDiff(expect0, hot.sh.syn0), d1 = maxDiff(expect1, hot.sh.syn1neg);
    assert.ok(d0 <= 1e-5 && d1 <= 1e-5, `max |Δ|/max(1,|x|) syn0 ${d0}, syn1neg ${d1}`);
    // Both threads' changes are in (not only the last merge's): each moved the weights.
    assert.ok(maxDiff(init0.map((x, i) => x + b0[i]), hot.sh.syn0) > 1e-3, 'the first thread\'s changes are kept');
    assert.ok(maxDiff(init0.map((x, i) => x + a0[i]), hot.sh.syn0) > 1e-3, 'the second thread\'s changes are kept');
  });
}

test('word2vec hot rows: off with one thread, and bad values are rejected', async () => {
  const corpus = buildCorpus(corpusOf(10, 20, 5), 1);
  const one = await prepareWord2Vec(corpus, { threads: 1, hotWords: 64 });
  assert.equal(one.sh.wasm!.hotWords, 0);
  const two = await prepareWord2Vec(corpus, { threads: 2, hotWords: 1e6 });
  assert.equal(two.sh.wasm!.hotWords, corpus.words.length);
  await assert.rejects(prepareWord2Vec(corpus, { threads: 2, hotWords: -1 }), /hotWords must be an integer >= 0/);
  await assert.rejects(prepareWord2Vec(corpus, { threads: 2, hotSync: 0 }), /hotSync must be an integer >= 1/);
});

test('word2vec trains with both kernels to similar loss (threads 1 and 2)', async () => {
  const { trainWord2Vec } = await import('../../src/classic/index.js');
  const sents = corpusOf(400, 20, 11);
  for (const threads of [1, 2]) {
    const a = await trainWord2Vec(sents, { cbow: false, size: 24, minCount: 1, iter: 3, threads, kernel: 'js' });
    const b = await trainWord2Vec(sents, { cbow: false, size: 24, minCount: 1, iter: 3, threads, kernel: 'wasm' });
    assert.equal(a.kernel, 'js');
    assert.match(b.kernel, /^wasm-/);
    const la = a.epochs[2].meanLoss, lb = b.epochs[2].meanLoss;
    assert.ok(Math.abs(la - lb) < 0.02 * la, `final loss js ${la} vs wasm ${lb}`);
    assert.ok(b.epochs[2].meanLoss < b.epochs[0].meanLoss);
  }
});

test('word2vec skip-gram with hierarchical softmax: both kernels to similar loss (threads 1 and 2)', async () => {
  const { trainWord2Vec } = await import('../../src/classic/index.js');
  const sents = corpusOf(400, 20, 13);
  for (const threads of [1, 2]) {
    const opts = { cbow: false, hs: true, negative: 0, size: 24, minCount: 1, iter: 3, threads };
    const a = await trainWord2Vec(sents, { ...opts, kernel: 'js' });
    const b = await trainWord2Vec(sents, { ...opts, kernel: 'wasm' });
    assert.match(b.kernel, /^wasm-/);
    const la = a.epochs[2].meanLoss, lb = b.epochs[2].meanLoss;
    assert.ok(Math.abs(la - lb) < 0.02 * la, `final loss js ${la} vs wasm ${lb}`);
    assert.ok(b.epochs[2].meanLoss < b.epochs[0].meanLoss);
  }
});
