// What `tslm generate` and `tslm chat` use of a mixed-modal model, gathered for one dynamic import
// (they load it only for a model directory holding mixed_modal.json).
export { loadMixedModal, imagePromptTokens, imageFromTokens, IMAGE_GUIDANCE } from './mixed_train.js';
export { ImageSpanProcessor } from './mixed.js';
export { readPng, writePng } from './png.js';
