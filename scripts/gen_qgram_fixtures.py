#!/usr/bin/env python3
"""Golden fixtures for src/classic/qgram.ts and match.ts (test/fixtures/qgram/).

Profiles come from scikit-learn's CountVectorizer (analyzer='char' over code points, or word
n-grams over whitespace tokens), an implementation independent of ours; the measures are then
computed from their definitions with numpy:
  Ukkonen's q-gram distance  sum_g |a_g - b_g|            (Ukkonen 1992, "Approximate
                                                           string-matching with q-grams and
                                                           maximal matches", TCS 92)
  Jaccard                    |A & B| / |A | B|             over the gram sets
  Dice                       2|A & B| / (|A| + |B|)        over the gram sets
  overlap                    |A & B| / min(|A|, |B|)       over the gram sets
  cosine                     a.b / (|a| |b|)               over the count vectors
Padding is q-1 start markers (U+0002) and q-1 end markers (U+0003) around the string (or word
list). When Debian's python3-textdistance is installed, Jaccard, Dice (Sorensen) and overlap of
character q-grams (q >= 2) are cross-checked against it and the script stops on any mismatch.
Two empty profiles are identical by our definition (distance 0, similarity 1): sklearn refuses an
empty vocabulary, so those cases are filled in from the definition.

Run: /usr/bin/python3 scripts/gen_qgram_fixtures.py  (writes test/fixtures/qgram/*.json)
"""
import json
import math
import os

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer

try:
    import textdistance
except ImportError:  # optional cross-check
    textdistance = None

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'qgram')
START, END = '\u0002', '\u0003'


def vectorizer(q, pad, unit):
    if unit == 'char':
        pre = (lambda s: START * (q - 1) + s + END * (q - 1)) if pad else (lambda s: s)
        return CountVectorizer(analyzer='char', ngram_range=(q, q), lowercase=False, preprocessor=pre)
    tok = (lambda s: [START] * (q - 1) + s.split() + [END] * (q - 1)) if pad else (lambda s: s.split())
    return CountVectorizer(analyzer='word', ngram_range=(q, q), lowercase=False, tokenizer=tok, token_pattern=None)


def profiles(docs, q, pad, unit):
    """Count vectors of docs over their joint vocabulary (rows), and the vocabulary (columns)."""
    v = vectorizer(q, pad, unit)
    try:
        x = v.fit_transform(docs).toarray().astype(np.int64)
    except ValueError:  # every document has an empty profile
        return np.zeros((len(docs), 0), dtype=np.int64), []
    return x, list(v.get_feature_names_out())


def measures(a, b):
    sa, sb = a > 0, b > 0
    na, nb, common = int(sa.sum()), int(sb.sum()), int((sa & sb).sum())
    qa, qb = float(a @ a), float(b @ b)
    return {
        'qgram': int(np.abs(a - b).sum()),
        'jaccard': 1.0 if na + nb == 0 else common / (na + nb - common),
        'dice': 1.0 if na + nb == 0 else 2 * common / (na + nb),
        'overlap': 1.0 if na == 0 and nb == 0 else 0.0 if na == 0 or nb == 0 else common / min(na, nb),
        'cosine': 1.0 if qa == 0 and qb == 0 else 0.0 if qa == 0 or qb == 0 else float(a @ b) / math.sqrt(qa * qb),
    }


PAIRS = [
    ('night', 'nacht'), ('abcde', 'abdcde'), ('aaaa', 'aaa'), ('abab', 'baba'), ('hello world', 'world hello'),
    ('Ukkonen', 'Ukonen'), ('q-gram distance', 'qgram distance'), ('a', 'b'), ('ab', 'ab'), ('', 'abc'),
    ('北京大学生前来应聘', '北京大学的学生'), ('自然语言处理', '自然语言理解'), ('😀abc😀', 'abc😀'), ('café', 'cafe'),
    ('The Fulton County Grand Jury said Friday', 'the fulton county grand jury said friday'),
    ('mississippi', 'missisippi'), ('xyz', 'xyzxyzxyz'),
]
WORD_PAIRS = [
    ('the cat sat on the mat', 'the cat sat on a mat'), ('a b a b a b', 'b a b a'), ('one', 'one two'),
    ('我 爱 北京 天安门', '我 爱 上海'), ('to be or not to be', 'to be or not to be'),
]


def pair_cases():
    cases = []
    for unit, pairs, qs in (('char', PAIRS, (1, 2, 3, 4)), ('word', WORD_PAIRS, (1, 2, 3))):
        for a, b in pairs:
            for q in qs:
                for pad in (False, True):
                    x, vocab = profiles([a, b], q, pad, unit)
                    m = measures(x[0], x[1]) if x.shape[1] else measures(np.zeros(0), np.zeros(0))
                    prof = {g: int(c) for g, c in zip(vocab, x[0]) if c} if x.shape[1] else {}
                    cases.append({'a': a, 'b': b, 'q': q, 'pad': pad, 'unit': unit, 'profile_a': prof, **m})
                    cross_check(a, b, q, pad, unit, x, m)
    return cases


checked = 0


def cross_check(a, b, q, pad, unit, x, m):
    """Set measures of character q-grams against textdistance (qval >= 2; both profiles non-empty)."""
    global checked
    if textdistance is None or unit != 'char' or q < 2 or not x.shape[1] or not (x[0].any() and x[1].any()):
        return
    pa = START * (q - 1) + a + END * (q - 1) if pad else a
    pb = START * (q - 1) + b + END * (q - 1) if pad else b
    if pa == pb:  # textdistance answers equal strings without building grams
        return
    theirs = {
        'jaccard': textdistance.Jaccard(qval=q, as_set=True)(pa, pb),
        'dice': textdistance.Sorensen(qval=q, as_set=True)(pa, pb),
        'overlap': textdistance.Overlap(qval=q, as_set=True)(pa, pb),
    }
    for k, v in theirs.items():
        if abs(v - m[k]) > 1e-12:
            raise SystemExit(f'textdistance disagrees on {k}({pa!r}, {pb!r}, q={q}): {v} vs {m[k]}')
    checked += 1


def brown_like():
    """A small fixed candidate list: English sentences with edits, and Chinese lines."""
    base = [
        'The Fulton County Grand Jury said Friday an investigation of recent primary election produced no evidence.',
        'The jury further said in term-end presentments that the City Executive Committee deserves praise.',
        'The September-October term jury had been charged by Fulton Superior Court Judge Durwood Pye.',
        'Only a relative handful of such reports was received, the jury said.',
        'The jury said it did find that many of Georgia\'s registration and election laws are outmoded.',
        'It recommended that Fulton legislators act to have these laws studied and revised.',
        'The grand jury commented on a number of other topics, among them the Atlanta and Fulton County purchasing departments.',
        'Merger proposed', 'jury', 'The jury said.', 'said the jury', 'Grand jury said Friday',
        '自然语言处理是人工智能的一个分支', '北京大学生前来应聘', '我爱北京天安门', '自然语言理解',
    ]
    out = []
    for i, s in enumerate(base):
        out.append(s)
        if len(s) > 12:  # a near-duplicate: drop one character, swap two
            j = (7 * i + 3) % (len(s) - 2)
            t = s[:j] + s[j + 1:]
            k = (5 * i + 1) % (len(t) - 1)
            out.append(t[:k] + t[k + 1] + t[k] + t[k + 2:])
    return out


def match_cases():
    cands = brown_like()
    queries = ['the jury said friday', 'Fulton County Grand Jury', '自然语言', 'registration and election laws', 'xyz']
    res = []
    for q in (2, 3):
        for pad in (False, True):
            v = vectorizer(q, pad, 'char')
            x = v.fit_transform(cands).toarray().astype(np.int64)
            for query in queries:
                y = v.transform([query]).toarray().astype(np.int64)[0]
                # Query grams the candidates lack: not in the vocabulary, but in the query's sizes.
                full, _ = profiles([query], q, pad, 'char')
                extra = full[0] if full.shape[1] else np.zeros(0, dtype=np.int64)
                miss_total = int(extra.sum() - y.sum())
                miss_size = int((extra > 0).sum() - (y > 0).sum())
                miss_sq = int(extra @ extra - y @ y)
                for metric in ('qgram', 'jaccard', 'cosine', 'dice', 'overlap'):
                    scores = []
                    for c in range(len(cands)):
                        a = np.concatenate([y, [0]])  # one column stands for the missing grams
                        b = np.concatenate([x[c], [0]])
                        m = exact_with_missing(metric, a[:-1], b[:-1], miss_total, miss_size, miss_sq)
                        scores.append(m)
                    dist = metric == 'qgram'
                    keep = [(s, c) for c, s in enumerate(scores) if dist or s > 0]
                    keep.sort(key=lambda t: (t[0] if dist else -t[0], t[1]))
                    res.append({'q': q, 'pad': pad, 'query': query, 'metric': metric, 'top': [[c, s] for s, c in keep[:6]], 'count': len(keep),
                                'scores': scores})
    return {'candidates': cands, 'cases': res}


def exact_with_missing(metric, y, x, miss_total, miss_size, miss_sq):
    """Measures of query y (plus grams no candidate has) and candidate x, from the definitions."""
    sy, sx = y > 0, x > 0
    ny, nx, common = int(sy.sum()) + miss_size, int(sx.sum()), int((sy & sx).sum())
    qy, qx = float(y @ y) + miss_sq, float(x @ x)
    if metric == 'qgram':
        return int(np.abs(y - x).sum()) + miss_total
    if metric == 'jaccard':
        return common / (ny + nx - common)
    if metric == 'dice':
        return 2 * common / (ny + nx)
    if metric == 'overlap':
        return 0.0 if nx == 0 else common / min(ny, nx)
    return 0.0 if qx == 0 else float(y @ x) / math.sqrt(qy * qx)


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, 'pairs.json'), 'w', encoding='utf-8') as f:
        json.dump({'generator': 'scripts/gen_qgram_fixtures.py (scikit-learn CountVectorizer + numpy)', 'cases': pair_cases()}, f, ensure_ascii=False, indent=0)
    with open(os.path.join(OUT, 'match.json'), 'w', encoding='utf-8') as f:
        json.dump(match_cases(), f, ensure_ascii=False)
    print(f'wrote {OUT}/pairs.json and match.json; textdistance cross-checks: {checked if textdistance else "skipped (not installed)"}')


if __name__ == '__main__':
    main()
