#!/usr/bin/env python3
"""Peer for `tslm bench match`: top-K Jaccard over character q-gram sets with scikit-learn + scipy.

Candidates are vectorised by CountVectorizer(analyzer='char', binary=True); the matrix is
transposed to gram -> candidates (CSR rows are posting lists), so q @ X^T walks only the query's
posting lists in C (scipy's sparse product), the usual way to do this in Python.
Usage: sklearn_qgram.py CANDIDATES QUERIES Q K  -> JSON {build_s, qps, top: [[[index, score], ...], ...]}
"""
import json
import sys
import time

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer


def main():
    cand_file, query_file, q, k = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    with open(cand_file, encoding='utf-8') as f:
        cands = f.read().split('\n')[:-1]
    with open(query_file, encoding='utf-8') as f:
        queries = f.read().split('\n')[:-1]
    t0 = time.perf_counter()
    v = CountVectorizer(analyzer='char', ngram_range=(q, q), lowercase=False, binary=True, dtype=np.int32)
    x = v.fit_transform(cands)
    sizes = np.asarray(x.sum(axis=1)).ravel()
    xt = x.T.tocsr()
    build = time.perf_counter() - t0
    analyze = v.build_analyzer()
    top = []
    t1 = time.perf_counter()
    for s in queries:
        qs = len(set(analyze(s)))
        r = v.transform([s]) @ xt
        idx, inter = r.indices, r.data.astype(np.float64)
        scores = inter / (sizes[idx] + qs - inter)
        order = np.lexsort((idx, -scores))[:k]
        top.append([[int(idx[i]), float(scores[i])] for i in order])
    qps = len(queries) / (time.perf_counter() - t1)
    print(json.dumps({'build_s': build, 'qps': qps, 'top': top}))


if __name__ == '__main__':
    main()
