// The ARPA writer's thread (writeArpaParallel in arpa.ts): it receives each order's n-grams
// already in ARPA order, writes their text to the open file, and says 'done' after \end\.
// Meanwhile the main thread sorts the next order.
import { parentPort, workerData } from 'node:worker_threads';
import { writeSync } from 'node:fs';
import { ArpaTextWriter, type ArpaOrder } from './arpa-text.js';

const { fd, pool, wOff, order, counts } = workerData as { fd: number; pool: Uint8Array; wOff: Int32Array; order: number; counts: number[] };
const w = new ArpaTextWriter(pool, wOff, order);
const put = (c: Uint8Array | null): void => {
  if (!c) return;
  let off = 0;
  while (off < c.length) off += writeSync(fd, c, off, c.length - off);
};
put(w.header(counts));
parentPort!.on('message', (o: ArpaOrder | null) => {
  if (o === null) {
    put(w.end());
    parentPort!.postMessage('done');
    parentPort!.close();
    return;
  }
  put(w.begin(o));
  for (let c = w.fill(); c; c = w.fill()) put(c);
});
