#!/usr/bin/python3
"""scikit-learn peer for `tslm bench features` (bench/features.ts).

  sklearn_features.py vectorize '{"corpus": FILE, "kind": "count"|"tfidf"|"hashing", "params": {...}, "reps": R, "out": DIR}'
      fit_transform (HashingVectorizer: transform) the corpus (one document per line) R times;
      prints {"best_s": …, "rows", "cols", "nnz"} and writes the canonical CSR (indices sorted per
      row) to DIR/indptr.i64, indices.i32, data.f64 and the vocabulary to DIR/vocabulary.json
  sklearn_features.py classify '{"data": FILE.json, "features": {...}, "tfidf": bool, "model": "nb"|"lr", "C": C, "alpha": A, "max_iter": N}'
      FILE.json = {"train": [[text, label], …], "test": […]}; prints {"accuracy", "fit_s"}
"""
import json
import os
import sys
import time

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import MultinomialNB


def make(kind, params):
    p = dict(params)
    if "ngram_range" in p:
        p["ngram_range"] = tuple(p["ngram_range"])
    return {"count": CountVectorizer, "tfidf": TfidfVectorizer, "hashing": HashingVectorizer}[kind](**p)


def vectorize(a):
    with open(a["corpus"], encoding="utf-8") as f:
        docs = f.read().split("\n")
    if docs and docs[-1] == "":
        docs.pop()
    best, x, v = float("inf"), None, None
    for _ in range(a["reps"]):
        v = make(a["kind"], a["params"])
        t = time.perf_counter()
        x = v.transform(docs) if a["kind"] == "hashing" else v.fit_transform(docs)
        best = min(best, time.perf_counter() - t)
    x = x.tocsr()
    x.sort_indices()
    out = a["out"]
    x.indptr.astype(np.int64).tofile(os.path.join(out, "indptr.i64"))
    x.indices.astype(np.int32).tofile(os.path.join(out, "indices.i32"))
    x.data.astype(np.float64).tofile(os.path.join(out, "data.f64"))
    if a["kind"] != "hashing":
        with open(os.path.join(out, "vocabulary.json"), "w", encoding="utf-8") as f:
            json.dump(v.get_feature_names_out().tolist(), f, ensure_ascii=False)
    print(json.dumps({"best_s": best, "rows": x.shape[0], "cols": x.shape[1], "nnz": int(x.nnz)}))


def classify(a):
    with open(a["data"], encoding="utf-8") as f:
        d = json.load(f)
    v = make("tfidf" if a["tfidf"] else "count", a["features"])
    xtr = v.fit_transform([t for t, _ in d["train"]])
    xte = v.transform([t for t, _ in d["test"]])
    ytr = [l for _, l in d["train"]]
    t = time.perf_counter()
    if a["model"] == "nb":
        m = MultinomialNB(alpha=a["alpha"]).fit(xtr, ytr)
    else:
        m = LogisticRegression(C=a["C"], max_iter=a["max_iter"]).fit(xtr, ytr)
    fit_s = time.perf_counter() - t
    print(json.dumps({"accuracy": float(m.score(xte, [l for _, l in d["test"]])), "fit_s": fit_s,
                      "n_iter": int(np.max(m.n_iter_)) if hasattr(m, "n_iter_") else None}))


if __name__ == "__main__":
    import warnings
    warnings.filterwarnings("ignore")
    {"vectorize": vectorize, "classify": classify}[sys.argv[1]](json.loads(sys.argv[2]))
