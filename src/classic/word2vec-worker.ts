// A word2vec worker thread: trains its share of sentences on the shared weights, one epoch
// per message.
import { parentPort, workerData } from 'node:worker_threads';
import { trainRange, W2VRng, type W2VShared, type W2VParams } from './word2vec-kernel.js';

const { shared, params, tid, seed } = workerData as { shared: W2VShared; params: W2VParams; tid: number; seed: number };
const rng = new W2VRng(seed);
parentPort!.on('message', (msg: { from: number; to: number }) => {
  const r = trainRange(shared, params, tid, msg.from, msg.to, rng);
  parentPort!.postMessage(r);
});
