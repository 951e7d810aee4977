// Usage texts of `tslm ngram match|dedup` and `tslm ngram features|classify`, apart from their
// commands: `tslm ngram train` shows them without loading the library those commands use.
export const matchUsage = `tslm ngram match --query "…" [--file <candidates>] [--q 3] [--metric jaccard|cosine|qgram|dice|overlap]
        [--top 10] [--pad] [--threshold X] [--word] [--brute]
        rank the lines of --file (default: the Brown corpus's sentences) by q-gram similarity to the
        query (qgram: Ukkonen's distance, smaller is closer; --threshold is then a maximum distance)
  tslm ngram dedup [--file <candidates>] [--threshold 0.8] [--metric jaccard] [--q 3] [--pad] [--word] [--limit N]
        near-duplicate pairs among the lines: score, line numbers, texts`;

export const featuresUsage = `tslm ngram features --data <file> --n 1-3 [--char | --char-wb] [--min-df D] [--max-df D] [--max-features N]
        [--tfidf [--norm l2|l1|none] [--no-idf] [--no-smooth-idf] [--sublinear-tf]] [--binary] [--hashing N [--no-alternate-sign]]
        [--no-lowercase] [--han | --token-pattern RE] [--vocab-out vocab.json | --vocab vocab.json] --out <file.mtx|file.json>
        n-gram feature matrix of a file (one document per line; .jsonl: the "text" field), as scikit-learn's
        CountVectorizer / TfidfVectorizer / HashingVectorizer compute it. D: an integer is a document count,
        a number with a '.' a proportion of the documents. --han: each Han character is a word token.
        --out x.mtx: Matrix Market (scipy.io.mmread); x.json: {"format":"csr", shape, indptr, indices, data, vocabulary}.
        --vocab-out saves the fitted vocabulary (and idf); --vocab transforms with a saved one.
  tslm ngram classify [--train <file> --test <file>] [--model nb|lr|both] [--n 1-2] [--char | --char-wb] [--tfidf]
        [--min-df D] [--max-features N] [--alpha A] [--C C] [--max-iter N]
        naive Bayes and logistic regression on n-gram features; files: JSONL {"text","label"} or TSV label<TAB>text.
        Without files: a demo on shipped data (Brown genres, Chinese classics by source).`;
