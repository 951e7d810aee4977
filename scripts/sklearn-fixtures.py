#!/usr/bin/python3
"""Golden fixtures for tslm's n-gram features and classifiers (src/classic/features.ts, classify.ts),
written by scikit-learn (Debian python3-sklearn 1.2.1):

  test/fixtures/sklearn/vectorizers.json   CountVectorizer / TfidfVectorizer / HashingVectorizer
                                           outputs (CSR, canonical: indices sorted per row) for a
                                           set of option combinations, fit on an English + Chinese
                                           corpus and applied to held-out lines
  test/fixtures/sklearn/murmurhash.json    murmurhash3_32 of assorted strings
  test/fixtures/sklearn/classifiers.json   MultinomialNB log-probabilities and LogisticRegression
                                           probabilities on a small labelled English/Chinese set

Run: /usr/bin/python3 scripts/sklearn-fixtures.py
"""
import json
import os

import numpy as np
import sklearn
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import MultinomialNB
from sklearn.utils import murmurhash3_32

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "sklearn")

# English and Chinese lines, with the awkward cases: case, digits, '_', apostrophes, runs of
# spaces and tabs, accents, an emoji outside the BMP, a whitespace-only line and an empty line.
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "The dog barks; the fox runs away, quick as a flash!",
    "A lazy afternoon: the dog sleeps   in the sun.",
    "Foxes and dogs are not always enemies, said the old farmer.",
    "I don't think the fox'll come back\tto the farm_house today.",
    "Café au lait, naïve résumé — accents stay as they are.",
    "Numbers like 42 and 3.14 and 2024 appear in text too.",
    "THE QUICK BROWN FOX, AGAIN, IN CAPITALS.",
    "Emoji 🦊 and 🐶 are single code points outside the BMP.",
    "",
    "   ",
    "我爱北京天安门。",
    "北京是中国的首都，天安门在北京。",
    "狐狸跳过了懒狗。 The fox jumped.",
    "今天天气很好，我们去公园散步吧！",
    "机器学习和自然语言处理都很有趣。",
    "自然语言处理 natural language processing 自然语言",
    "the the the the fox fox dog",
    "Σίσυφος ΟΔΥΣΣΕΥΣ and İstanbul lower-case oddly.",
    "tabs\tand\nnewlines\x0bvertical\x1cfile-separators\u3000ideographic space",
]
HELD_OUT = [
    "The fox and the dog, unseen words: zebra xylophone.",
    "北京的天气很好。",
    "",
    "quick quick QUICK fox",
]

# A Python-and-JavaScript token pattern that makes each Han character a token (as tslm's
# HAN_TOKEN_PATTERN, restricted to the CJK blocks so that Python's re can express it).
HAN_PY = r"[\u3400-\u4dbf\u4e00-\u9fff]|(?:(?![\u3400-\u4dbf\u4e00-\u9fff])\w){2,}"
HAN_JS = r"[\u3400-\u4dbf\u4e00-\u9fff]|(?:(?![\u3400-\u4dbf\u4e00-\u9fff])[\p{L}\p{N}_]){2,}"


def df_json(x):
    """A document-frequency threshold for the TypeScript side: int → count, float → proportion."""
    if isinstance(x, float):
        return {"proportion": x}
    return x


def csr(m):
    m = m.tocsr().copy()
    m.sort_indices()
    return {
        "shape": list(m.shape),
        "indptr": m.indptr.tolist(),
        "indices": m.indices.tolist(),
        "data": m.data.tolist(),
    }


def ts_options(kw):
    """sklearn keyword arguments → tslm option names."""
    names = {
        "analyzer": "analyzer", "ngram_range": "ngramRange", "lowercase": "lowercase", "binary": "binary",
        "max_features": "maxFeatures", "norm": "norm", "use_idf": "useIdf", "smooth_idf": "smoothIdf",
        "sublinear_tf": "sublinearTf", "n_features": "nFeatures", "alternate_sign": "alternateSign",
    }
    out = {}
    for k, v in kw.items():
        if k in ("min_df", "max_df"):
            out["minDf" if k == "min_df" else "maxDf"] = df_json(v)
        elif k == "token_pattern":
            out["tokenPattern"] = HAN_JS if v == HAN_PY else v
        else:
            out[names[k]] = list(v) if isinstance(v, tuple) else v
    return out


CASES = [
    ("count", "word 1-1 defaults", {}),
    ("count", "word 1-3", {"ngram_range": (1, 3)}),
    ("count", "word 2-3 no lowercase", {"ngram_range": (2, 3), "lowercase": False}),
    ("count", "char 1-3", {"analyzer": "char", "ngram_range": (1, 3)}),
    ("count", "char 2-5 no lowercase", {"analyzer": "char", "ngram_range": (2, 5), "lowercase": False}),
    ("count", "char_wb 1-4", {"analyzer": "char_wb", "ngram_range": (1, 4)}),
    ("count", "char_wb 3-6 (short words)", {"analyzer": "char_wb", "ngram_range": (3, 6)}),
    ("count", "word min_df 2", {"ngram_range": (1, 2), "min_df": 2}),
    ("count", "word min_df 0.1 max_df 0.5", {"ngram_range": (1, 2), "min_df": 0.1, "max_df": 0.5}),
    ("count", "word max_df 3 (count)", {"max_df": 3}),
    ("count", "char max_features 50 (ties)", {"analyzer": "char", "ngram_range": (1, 3), "max_features": 50}),
    ("count", "char_wb max_features 200 min_df 2", {"analyzer": "char_wb", "ngram_range": (2, 4), "max_features": 200, "min_df": 2}),
    ("count", "word max_features 7 (ties)", {"ngram_range": (1, 2), "max_features": 7}),
    ("count", "word binary 1-2", {"ngram_range": (1, 2), "binary": True}),
    ("count", "char binary max_features 30", {"analyzer": "char", "ngram_range": (1, 2), "binary": True, "max_features": 30}),
    ("count", "word Han-character tokens 1-2", {"ngram_range": (1, 2), "token_pattern": HAN_PY}),
    ("tfidf", "tfidf word defaults", {}),
    ("tfidf", "tfidf word 1-2 l1 sublinear", {"ngram_range": (1, 2), "norm": "l1", "sublinear_tf": True}),
    ("tfidf", "tfidf char 1-3 no smooth", {"analyzer": "char", "ngram_range": (1, 3), "smooth_idf": False}),
    ("tfidf", "tfidf char_wb 2-4 no idf", {"analyzer": "char_wb", "ngram_range": (2, 4), "use_idf": False}),
    ("tfidf", "tfidf word norm none binary", {"ngram_range": (1, 2), "norm": None, "binary": True}),
    ("tfidf", "tfidf char max_features 40 min_df 2", {"analyzer": "char", "ngram_range": (1, 2), "max_features": 40, "min_df": 2}),
    ("hashing", "hashing word 1-2 16", {"ngram_range": (1, 2), "n_features": 16}),
    ("hashing", "hashing char 1-3 2^10 no norm", {"analyzer": "char", "ngram_range": (1, 3), "n_features": 1024, "norm": None}),
    ("hashing", "hashing char_wb 2-3 no sign l1", {"analyzer": "char_wb", "ngram_range": (2, 3), "n_features": 64, "alternate_sign": False, "norm": "l1"}),
    ("hashing", "hashing word binary 2^20", {"binary": True, "norm": None}),
]


def vectorizers():
    out = []
    for kind, name, kw in CASES:
        cls = {"count": CountVectorizer, "tfidf": TfidfVectorizer, "hashing": HashingVectorizer}[kind]
        v = cls(**kw)
        case = {"kind": kind, "name": name, "sklearn": {k: (list(x) if isinstance(x, tuple) else x) for k, x in kw.items()}, "options": ts_options(kw)}
        if kind == "hashing":
            case["fit"] = csr(v.transform(CORPUS))
            case["heldOut"] = csr(v.transform(HELD_OUT))
        else:
            case["fit"] = csr(v.fit_transform(CORPUS))
            case["vocabulary"] = v.get_feature_names_out().tolist()
            case["heldOut"] = csr(v.transform(HELD_OUT))
            if kind == "tfidf" and v.use_idf:
                case["idf"] = v.idf_.tolist()
        out.append(case)
    errors = []
    for kw in [{"min_df": 5, "max_df": 4}, {"min_df": 0.6, "max_df": 0.5}, {"min_df": 100}]:
        try:
            CountVectorizer(**kw).fit(CORPUS)
            errors.append({"options": ts_options(kw), "error": None})
        except ValueError as e:
            errors.append({"options": ts_options(kw), "error": str(e)})
    return {"sklearn": sklearn.__version__, "corpus": CORPUS, "heldOut": HELD_OUT, "cases": out, "errors": errors}


def murmur():
    words = ["", "a", "ab", "abc", "abcd", "abcde", "the", "the quick", " fo", "北京", "天安门", "🦊", "é", "naïve résumé",
             "x" * 37, "hello world", "機器學習", "Σίσυφος"]
    return {"strings": words, "hashes": [int(murmurhash3_32(w, seed=0)) for w in words],
            "seeded": [int(murmurhash3_32(w, seed=42)) for w in words]}


def classifiers():
    rng = np.random.RandomState(7)
    topics = {
        "animals": "fox dog cat horse barks runs jumps farm tail fur bird sings".split(),
        "weather": "rain sun cloud wind storm cold warm snow forecast sky today".split(),
        "cooking": "bread salt oven bake soup pepper recipe boil sugar flour taste".split(),
        "中文": list("我们今天天气很好北京公园散步喜欢学习语言"),
    }
    shared = "the a and of to is in it very really".split()
    shared_zh = list("的了是在和也")
    docs, labels = [], []
    for i in range(160):
        label = list(topics)[i % 4]
        words = topics[label]
        n = rng.randint(4, 12)
        common = shared_zh if label == "中文" else shared
        toks = [words[rng.randint(len(words))] if rng.rand() < 0.7 else common[rng.randint(len(common))] for _ in range(n)]
        if rng.rand() < 0.15:  # some confusable words from another topic
            other = list(topics)[rng.randint(4)]
            toks.append(topics[other][rng.randint(len(topics[other]))])
        docs.append(("" if label == "中文" else " ").join(toks))
        labels.append(label)
    train, test = slice(0, 120), slice(120, 160)
    cases = []
    for name, kw, vec in [
        ("word counts", {}, CountVectorizer()),
        ("char_wb 1-3 counts", {"analyzer": "char_wb", "ngramRange": [1, 3]}, CountVectorizer(analyzer="char_wb", ngram_range=(1, 3))),
        ("char 1-2 tfidf", {"analyzer": "char", "ngramRange": [1, 2], "tfidf": True}, TfidfVectorizer(analyzer="char", ngram_range=(1, 2))),
    ]:
        Xtr = vec.fit_transform(docs[train])
        Xte = vec.transform(docs[test])
        ytr = labels[train]
        case = {"name": name, "features": kw}  # tslm option names
        for alpha in (1.0, 0.1):
            nb = MultinomialNB(alpha=alpha).fit(Xtr, ytr)
            case[f"nb_alpha_{alpha}"] = {
                "classes": nb.classes_.tolist(),
                "classLogPrior": nb.class_log_prior_.tolist(),
                "featureLogProb": nb.feature_log_prob_.tolist(),
                "logProba": nb.predict_log_proba(Xte).tolist(),
                "predict": nb.predict(Xte).tolist(),
            }
        for C in (1.0, 10.0):
            lr = LogisticRegression(C=C, max_iter=10000, tol=1e-10).fit(Xtr, ytr)
            case[f"lr_C_{C}"] = {
                "classes": lr.classes_.tolist(),
                "proba": lr.predict_proba(Xte).tolist(),
                "predict": lr.predict(Xte).tolist(),
                "accuracy": float(lr.score(Xte, labels[test])),
            }
        cases.append(case)
    return {"sklearn": sklearn.__version__, "train": {"texts": docs[train], "labels": labels[train]},
            "test": {"texts": docs[test], "labels": labels[test]}, "cases": cases}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, fn in [("vectorizers", vectorizers), ("murmurhash", murmur), ("classifiers", classifiers)]:
        path = os.path.join(OUT, name + ".json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(fn(), f, ensure_ascii=False, separators=(",", ":"))
        print("wrote", os.path.relpath(path), os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
