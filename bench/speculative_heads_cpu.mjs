// CPU time (not wall-clock: steadier on a loaded machine) of the Medusa heads' work per decoding
// step on a stories15M-shape model (random weights, the quickstart vocabulary of 2048, f32 base),
// 1 thread: K one-layer heads with their own Q8_0 LM heads (as `--medusa` loads them) against
// heads tied to the base's output head (their LM products: one K-row product with a Q8_0 copy of
// the base head), each as decoding runs them (forwardMany on one hidden state); beside a one-token
// decoding step (T=1) and a T=4 verification for scale. Blocks of calls alternate between the
// variants; the best block per variant is kept.
//
//   node bench/speculative_heads_cpu.mjs [--heads 3] [--rounds 15] [--calls 200]   (after `npm run build`)
import { parseArgs } from 'node:util';
import { init, shutdown } from '../dist/src/backend/index.js';
import * as T from '../dist/src/tensor/ops.js';
import { noGrad } from '../dist/src/tensor/autograd.js';
import { scope } from '../dist/src/tensor/storage.js';
import { Generator } from '../dist/src/tensor/random.js';
import { createModel } from '../dist/src/models/index.js';
import { PRESETS } from '../dist/src/train/presets.js';
import { MedusaHeads } from '../dist/src/nn/medusa.js';
import { quantizeMedusaHeads } from '../dist/src/io/medusa.js';

const { values } = parseArgs({ options: { heads: { type: 'string' }, rounds: { type: 'string' }, calls: { type: 'string' } } });
const K = Number(values.heads ?? 3), rounds = Number(values.rounds ?? 15), calls = Number(values.calls ?? 200);
await init({ threads: 1, backend: 'wasm' });
try {
  const m = createModel({ ...PRESETS['15m'], vocab_size: 2048 }, '15m', { generator: new Generator(1) });
  m.eval();
  const own = MedusaHeads.fromBase(m, { heads: 4, layers: 1 });
  quantizeMedusaHeads(own);
  const tied = MedusaHeads.fromBase(m, { heads: 4, layers: 1 }).tie(m);
  quantizeMedusaHeads(tied);
  const ks = Array.from({ length: K }, (_, k) => k);
  const st = m.newState(1, 128);
  noGrad(() => scope(() => { m.forward(T.tensor([Array.from({ length: 60 }, (_, i) => 3 + i)], [1, 60], 'i32'), st); }));
  const h = noGrad(() => T.contiguous(T.slice(m.hidden(T.tensor([[5]], [1, 1], 'i32'), st), 1, -1)));
  st.truncate(60);
  const jobs = {
    'T=1 step': () => { m.forward(T.tensor([[5]], [1, 1], 'i32'), st).data(); st.truncate(60); },
    'T=4 verify': () => { m.forward(T.tensor([[5, 6, 7, 8]], [1, 4], 'i32'), st).data(); st.truncate(60); },
    [`${K} heads, own Q8_0 LM heads`]: () => { own.forwardMany(h, ks).data(); },
    [`${K} heads, tied (one ${K}-row product)`]: () => { tied.forwardMany(h, ks).data(); },
  };
  const best = Object.fromEntries(Object.keys(jobs).map((k) => [k, Infinity]));
  for (let r = 0; r < rounds; r++) {
    for (const [name, f] of Object.entries(jobs)) {
      const c0 = process.cpuUsage();
      for (let i = 0; i < calls; i++) noGrad(() => scope(f));
      const c = process.cpuUsage(c0);
      best[name] = Math.min(best[name], (c.user + c.system) / 1000 / calls);
    }
  }
  const unit = best['T=1 step'];
  for (const [name, ms] of Object.entries(best)) console.log(`${name.padEnd(34)} ${ms.toFixed(3)} ms CPU (${(ms / unit).toFixed(2)}× a step)`);
  h.dispose();
  st.dispose();
  own.dispose();
  tied.dispose();
  m.dispose();
} finally {
  await shutdown();
}
