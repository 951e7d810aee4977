// A word2vec worker thread: trains on chunks of sentences taken from a shared counter, on the
// shared weights, one epoch per message, with the wasm kernel over the shared memory when the
// run uses it. Posts 'ready' once started.
import { parentPort, workerData } from 'node:worker_threads';
import v8 from 'node:v8';
import { trainRange, W2VRng, type W2VShared, type W2VParams } from './word2vec-kernel.js';
import { W2VWasmThread } from './word2vec-wasm.js';

const { shared, params, tid, seed } = workerData as { shared: W2VShared; params: W2VParams; tid: number; seed: number };
const rng = new W2VRng(seed);
if (shared.wasm?.variant === 'relaxed') v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
const local = shared.wasm ? new W2VWasmThread(shared, tid) : null;
parentPort!.on('message', (msg: { bounds: number[] }) => {
  // One epoch: take chunks of sentences from the shared counter until none is left.
  const total = { loss: 0, pairs: 0, words: 0 };
  const chunks = msg.bounds.length - 1;
  for (let c = Atomics.add(shared.nextChunk, 0, 1); c < chunks; c = Atomics.add(shared.nextChunk, 0, 1)) {
    const from = msg.bounds[c], to = msg.bounds[c + 1];
    const r = local ? local.trainRange(params, tid, from, to, rng) : trainRange(shared, params, tid, from, to, rng);
    total.loss += r.loss; total.pairs += r.pairs; total.words += r.words;
  }
  parentPort!.postMessage(total);
});
parentPort!.postMessage('ready');
