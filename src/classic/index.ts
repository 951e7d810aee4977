// Classic language models: n-gram LMs (MLE, add-k, Kneser–Ney, modified Kneser–Ney, ARPA I/O)
// and word2vec (skip-gram/CBOW, negative sampling/hierarchical softmax, C text/binary formats).
export * from './errors.js';
export { tokenize, readLines, readSentences, SPACE_TOKEN, type TokenMode } from './text.js';
export { NgramTable } from './table.js';
export * from './ngram.js';
export * from './arpa.js';
export * from './vectors.js';
export * from './word2vec.js';
// n-gram features (sklearn's Count/Tfidf/HashingVectorizer) and classifiers on them (#23 items 1 and 3)
export * from './features.js';
export * from './classify.js';
// Q-gram distances and similarities, fuzzy matching through an inverted index of grams.
export * from './qgram.js';
export * from './match.js';
