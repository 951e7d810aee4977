export { ImageTokenizer, ImageTokenizerError, DEFAULT_IMAGE_TOKENIZER, trainImageTokenizer, saveImageTokenizer, loadImageTokenizer, evaluate as evaluateImageTokenizer } from './tokenizer.js';
export type { ImageTokenizerConfig, TrainImageTokenizerOptions, ImageTokenizerReport } from './tokenizer.js';
export { loadMnist, MNIST_SIZE } from './mnist.js';
export type { ImageSet } from './mnist.js';
export { readPng, writePng, tile, ImageError } from './png.js';
export type { GreyImage } from './png.js';
export { loadPngFolder } from './folder.js';
export { MixedVocab, ImageSpanProcessor, MixedVocabError } from './mixed.js';
