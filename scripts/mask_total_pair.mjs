// Total mask time per corpus schema in two built checkouts, side by side in one process: a fresh grammar and
// matcher per run (compile untimed), every mask along every test instance (compact JSON, the file's key order),
// A then B, reps times; per schema the least total, wall clock and the process's CPU time (process.cpuUsage).
// Beside scripts/mask_pair.mjs (p99s): where a change makes every mask a little cheaper, as building states.
//
//   node scripts/mask_total_pair.mjs <checkout A> <checkout B> <corpus dir> <a,b,c> [reps]
import { loadCheckout, readCorpusFile } from './pair_checkout.mjs';
const [a, b, dir, list, reps = '5'] = process.argv.slice(2);
if (!a || !b || !dir || !list) { console.error('usage: node scripts/mask_total_pair.mjs <checkout A> <checkout B> <corpus dir> <a,b,c> [reps]'); process.exit(2); }
const A = await loadCheckout(a), B = await loadCheckout(b);
const run = ({ S, tok, vocab }, schema, enc) => {
  const c0 = process.cpuUsage(), t0 = performance.now();
  const m = new S.TokenMatcher(new S.SchemaCompiler(schema, {}).compile(), vocab);
  const c1 = process.cpuUsage(), t1 = performance.now();
  m.mask(m.initial);
  for (const ids of enc) { let s = m.initial; for (const id of ids) { const k = m.mask(s); if (!(k[id >>> 5] & (1 << (id & 31)))) break; s = m.advance(s, id); if (s < 0) break; } }
  const c2 = process.cpuUsage(), t2 = performance.now();
  return { wall: t2 - t1, cpu: (c2.user + c2.system - c1.user - c1.system) / 1000 };
};
let ta = 0, tb = 0, ca = 0, cb = 0;
for (const f of list.split(',')) {
  const { schema, tests } = readCorpusFile(dir, f);
  const enc = tests.map((t) => JSON.stringify(t.data)).filter((x) => x !== undefined).map((x) => A.tok.encode(x));
  let ba = { wall: Infinity, cpu: Infinity }, bb = { wall: Infinity, cpu: Infinity };
  for (let r = 0; r < +reps; r++) {
    const x = run(A, schema, enc), y = run(B, schema, enc);
    ba = { wall: Math.min(ba.wall, x.wall), cpu: Math.min(ba.cpu, x.cpu) }; bb = { wall: Math.min(bb.wall, y.wall), cpu: Math.min(bb.cpu, y.cpu) };
  }
  ta += ba.wall; tb += bb.wall; ca += ba.cpu; cb += bb.cpu;
  console.log(f.padEnd(52), `wall ${ba.wall.toFixed(1)} / ${bb.wall.toFixed(1)} ms (${(bb.wall / ba.wall).toFixed(2)}), cpu ${ba.cpu.toFixed(1)} / ${bb.cpu.toFixed(1)} ms (${(bb.cpu / ba.cpu).toFixed(2)})`);
}
console.log(`all: wall ${ta.toFixed(0)} / ${tb.toFixed(0)} ms (${(tb / ta).toFixed(2)}), cpu ${ca.toFixed(0)} / ${cb.toFixed(0)} ms (${(cb / ca).toFixed(2)})`);
