// The ARPA writer's thread (ArpaWriterThread in arpa.ts). It starts from the counts' keys (each
// order's context entries and last words) and sorts them into ARPA order while the main thread
// estimates the model, sending each order's sorted entries back (the main thread gathers the
// model's numbers into that order). Then it receives the open file and each order's numbers in
// line order, writes the text, and says 'done' after \end\.
import { parentPort, workerData } from 'node:worker_threads';
import { writeSync } from 'node:fs';
import { ArpaTextWriter } from './arpa-text.js';
import { arpaSorts, type ArpaSort } from './packed.js';

const { pool, wOff, grams } = workerData as { pool: Uint8Array; wOff: Int32Array; grams: { ctx: Int32Array; word: Int32Array; size: number }[] };
const order = grams.length + 1;
const sorts: ArpaSort[] = [];
for (const s of arpaSorts(grams, wOff.length - 1)) {
  // The order before is sorted and no longer needed here (the next sort is made): its entries move to the main thread.
  const prev = sorts[sorts.length - 1];
  if (prev?.sorted) parentPort!.postMessage({ n: prev.n, sorted: prev.sorted }, [prev.sorted.buffer] as ArrayBuffer[]);
  sorts.push(s);
}
const last = sorts[sorts.length - 1];
if (last.sorted) parentPort!.postMessage({ n: last.n, sorted: last.sorted }, [last.sorted.buffer] as ArrayBuffer[]);
grams.length = 0; // the keys are not needed any more

let fd = -1;
let w: ArpaTextWriter | null = null;
const put = (c: Uint8Array | null): void => {
  if (!c) return;
  let off = 0;
  while (off < c.length) off += writeSync(fd, c, off, c.length - off);
};
parentPort!.on('message', (m: { fd: number; counts: number[] } | { n: number; prob: Float64Array; bo: Float64Array | null }) => {
  if ('fd' in m) {
    fd = m.fd;
    w = new ArpaTextWriter(pool, wOff, order);
    put(w.header(m.counts));
    return;
  }
  const s = sorts[m.n - 1];
  put(w!.begin({ n: m.n, prob: m.prob, bo: m.bo, sw: s.sw, sc: s.sc, total: s.total }));
  for (let c = w!.fill(); c; c = w!.fill()) put(c);
  if (m.n === order) {
    put(w!.end());
    parentPort!.postMessage('done');
    parentPort!.close();
  }
});
