// Errors of the classic models: each names the thing at fault (file and line, word, option).

/** Bad input data or options (empty corpus, order < 1, a word absent from the vocabulary, …). */
export class ClassicInputError extends Error {
  override name = 'ClassicInputError';
}

/** A malformed model or vector file; `file` and `line` (1-based) say where. */
export class ClassicFormatError extends Error {
  override name = 'ClassicFormatError';
  constructor(readonly file: string, readonly line: number, detail: string) {
    super(`${file}:${line}: ${detail}`);
  }
}

/** Modified Kneser–Ney discounts cannot be estimated from the count-of-counts (tiny or artificial data). */
export class DiscountError extends Error {
  override name = 'DiscountError';
}

/** A query word that is not in the vocabulary (word2vec lookups). */
export class UnknownWordError extends ClassicInputError {
  override name = 'UnknownWordError';
  constructor(readonly word: string, where = 'the vocabulary') {
    super(`word '${word}' is not in ${where}`);
  }
}
