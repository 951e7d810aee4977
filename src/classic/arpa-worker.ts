// The ARPA writer's thread (ArpaWriterThread in arpa.ts). It starts from the counts' keys (each
// order's context entries and last words) and sorts them into ARPA order while the main thread
// estimates the model; then it receives the model's numbers and the open file, writes the text,
// and says 'done' after \end\.
import { parentPort, workerData } from 'node:worker_threads';
import { writeSync } from 'node:fs';
import { ArpaTextWriter } from './arpa-text.js';
import { arpaSorts, gather, type ArpaSort } from './packed.js';

const { pool, wOff, grams } = workerData as { pool: Uint8Array; wOff: Int32Array; grams: { ctx: Int32Array; word: Int32Array; size: number }[] };
const order = grams.length + 1;
const sorts: ArpaSort[] = Array.from(arpaSorts(grams, wOff.length - 1));
grams.length = 0; // the keys are not needed any more

parentPort!.once('message', (m: { fd: number; counts: number[]; prob: Float64Array[]; bo: (Float64Array | null)[] }) => {
  const put = (c: Uint8Array | null): void => {
    if (!c) return;
    let off = 0;
    while (off < c.length) off += writeSync(m.fd, c, off, c.length - off);
  };
  const w = new ArpaTextWriter(pool, wOff, order);
  put(w.header(m.counts));
  for (const s of sorts) {
    const p = m.prob[s.n - 1], b = m.bo[s.n - 1];
    put(w.begin(s.sorted ? { n: s.n, prob: gather(p, s.sorted), bo: b ? gather(b, s.sorted) : null, sw: s.sw, sc: s.sc, total: s.total } : { n: 1, prob: p, bo: b, sw: null, sc: null, total: s.total }));
    for (let c = w.fill(); c; c = w.fill()) put(c);
  }
  put(w.end());
  parentPort!.postMessage('done');
  parentPort!.close();
});
