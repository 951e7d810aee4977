#!/usr/bin/env python3
"""gensim Word2Vec peer for bench/classic.ts: trains on a text file (one sentence per line,
whitespace tokens) with word2vec.c-style hyperparameters and prints JSON with the training
words/s (raw words x epochs / training seconds, vocabulary building excluded), the CPU seconds
of the process (all threads) over the same span, and the cosine
similarities of the requested word pairs.

    python3 gensim_word2vec.py '{"corpus": "...", "cbow": 0, "size": 100, "window": 5, "negative": 5,
        "hs": 0, "sample": 1e-3, "min_count": 5, "iter": 5, "alpha": 0.025, "threads": 2, "pairs": [["a","b"]]}'

"seed" (default 1) is gensim's seed: the bench gives each repetition its own, so the spread of
gensim's cosines between seeds is a yardstick for ours.
"""
import json
import sys
import time

from gensim.models import Word2Vec
from gensim.models.word2vec import LineSentence

cfg = json.loads(sys.argv[1])
sents = list(LineSentence(cfg['corpus'], max_sentence_length=10000))
model = Word2Vec(sg=0 if cfg['cbow'] else 1, hs=cfg['hs'], negative=cfg['negative'], vector_size=cfg['size'],
                 window=cfg['window'], min_count=cfg['min_count'], sample=cfg['sample'], epochs=cfg['iter'],
                 alpha=cfg['alpha'], workers=cfg['threads'], seed=cfg.get('seed', 1), compute_loss=False)
model.build_vocab(sents)
raw = sum(len(s) for s in sents)
t0, c0 = time.perf_counter(), time.process_time()
model.train(sents, total_examples=len(sents), epochs=cfg['iter'])
sec, cpu = time.perf_counter() - t0, time.process_time() - c0
sims = []
for a, b in cfg.get('pairs', []):
    sims.append(float(model.wv.similarity(a, b)) if a in model.wv and b in model.wv else None)
print(json.dumps({'seconds': sec, 'words_per_sec': raw * cfg['iter'] / sec, 'cpu_seconds': cpu, 'vocab': len(model.wv), 'similarities': sims}))
