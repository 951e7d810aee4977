// The counting thread of countNgramsFileParallel (ngram.ts): the main thread reads the file and
// counts orders 1..from; each batch of sentences comes here with the entries of its order-`from`
// n-grams, and this thread counts orders from+1..order (an n-gram is (entry of its first n-1
// words, last word), so it needs only those entries and the word ids). At the end (a null
// message) its tables move back to the main thread. progress[0] counts the batches done,
// progress[1] is set when counting failed.
import { parentPort, workerData } from 'node:worker_threads';
import { GramTable, addOrders } from './packed.js';

const { from, order, capacity, progress } = workerData as { from: number; order: number; capacity: number; progress: Int32Array };
const G = Array.from({ length: order - from }, () => new GramTable(capacity));
let ent = G.map(() => new Int32Array(1 << 14));
parentPort!.on('message', (m: { T: Int32Array; E: Int32Array; L: number } | null) => {
  if (m === null) {
    const states = G.map((g) => g.state());
    parentPort!.postMessage(states, states.flatMap((s) => [s.ctx.buffer, s.word.buffer, s.suffix.buffer, s.slots.buffer]) as ArrayBuffer[]);
    parentPort!.close();
    return;
  }
  try {
    const { T, E, L } = m;
    if (ent[0].length < L) ent = G.map(() => new Int32Array(L));
    addOrders(G, ent, T, E, L, from + 1, order, -1);
  } catch (e) {
    Atomics.store(progress, 1, 1); // the reader stops waiting for this thread
    throw e;
  } finally {
    // Batches done (the reader waits when it is too far ahead).
    Atomics.add(progress, 0, 1);
    Atomics.notify(progress, 0);
  }
});
