// Token mask times of two built checkouts, side by side in one process (for a machine shared with
// other jobs: both meet the same load, schema by schema). For each schema, as `tslm bench
// structured --corpus` does it: a fresh grammar, matcher and first mask (LLaMA-2 32K vocabulary),
// then every mask along each test instance (compact JSON, the file's key order); A then B, `reps`
// times. Per schema and checkout: the least over the reps of the p99 mask time (wall), of the
// slowest mask, and the work (trie nodes walked + 20 × parser states built, stacks expanded) of
// the masks, which load does not change.
//
//   node scripts/mask_pair.mjs <checkout A> <checkout B> <corpus dir> <record.jsonl | a,b,c> [minP99Us] [reps] [wall|cpu]
//
// `cpu`: each mask timed by the process's CPU time (process.cpuUsage, user + system) instead of
// the wall clock — on a machine whose cores other jobs share, time spent descheduled is left out
// (collections on helper threads still count).
//
// The schemas: the files named (comma-separated), or those of a `--record` file whose per-schema
// p99 was at least minP99Us (default 500).
import { loadCheckout, schemaFiles, readCorpusFile } from './pair_checkout.mjs';

const [a, b, dir, list, minUs = '500', reps = '3', clock = 'wall'] = process.argv.slice(2);
if (!a || !b || !dir || !list) {
  console.error('usage: node scripts/mask_pair.mjs <checkout A> <checkout B> <corpus dir> <record.jsonl | a,b,c> [minP99Us] [reps] [wall|cpu]');
  process.exit(2);
}
const files = schemaFiles(list, (r) => r.status === 'compiled' && r.p99 >= +minUs);
const cpuUs = () => { const u = process.cpuUsage(); return u.user + u.system; };
const now = clock === 'cpu' ? cpuUs : () => performance.now() * 1000;
const pct = (xs, p) => { const s = [...xs].sort((x, y) => x - y); return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : 0; };
const load = async (root) => {
  const { S, tok, vocab } = await loadCheckout(root);
  return (schema, tests) => {
    let m;
    try { m = new S.TokenMatcher(new S.SchemaCompiler(schema, {}).compile(), vocab); m.mask(m.initial); } catch { return null; }
    const times = [];
    const w0 = m.stats.nodesVisited + 20 * m.automaton.states, e0 = m.automaton.expansions ?? 0;
    for (const t of tests) {
      const text = JSON.stringify(t.data);
      if (text === undefined) continue;
      let s = m.initial;
      for (const id of tok.encode(text)) {
        const t0 = now();
        const mask = m.mask(s);
        times.push(now() - t0);
        if (!(mask[id >>> 5] & (1 << (id & 31)))) break;
        s = m.advance(s, id);
        if (s < 0) break;
      }
    }
    return { p99: pct(times, 99), max: Math.max(0, ...times), work: m.stats.nodesVisited + 20 * m.automaton.states - w0, expanded: (m.automaton.expansions ?? 0) - e0 };
  };
};
const A = await load(a), B = await load(b);
const rows = [];
for (const f of files) {
  const { schema, tests } = readCorpusFile(dir, f);
  const best = { a: null, b: null };
  for (let r = 0; r < +reps; r++) {
    for (const [k, run] of [['a', A], ['b', B]]) {
      const x = run(schema, tests);
      if (x === null) continue;
      const o = best[k];
      best[k] = o === null ? x : { p99: Math.min(o.p99, x.p99), max: Math.min(o.max, x.max), work: x.work, expanded: x.expanded };
    }
  }
  if (best.a && best.b) rows.push({ file: f, a: best.a, b: best.b });
}
const over = (k) => rows.filter((r) => r[k].p99 > 500).length;
const med = (k, f) => pct(rows.map((r) => f(r[k])), 50);
const sum = (k, f) => rows.reduce((s, r) => s + f(r[k]), 0);
console.log(`${rows.length} schemas, least of ${reps} each, ${clock === 'cpu' ? 'CPU time' : 'wall clock'}, A = ${a}, B = ${b}`);
console.log(`per-schema p99 (${clock}): median ${med('a', (x) => x.p99).toFixed(1)} / ${med('b', (x) => x.p99).toFixed(1)} µs, over 500 µs ${over('a')} / ${over('b')}; slowest mask: median ${med('a', (x) => x.max).toFixed(0)} / ${med('b', (x) => x.max).toFixed(0)} µs`);
console.log(`work of the instances' masks: ${sum('a', (x) => x.work)} / ${sum('b', (x) => x.work)} (trie nodes + 20 × states); stacks expanded ${sum('a', (x) => x.expanded)} / ${sum('b', (x) => x.expanded)}`);
for (const r of [...rows].sort((x, y) => y.a.p99 - x.a.p99).slice(0, 12)) console.log(`  ${r.file.padEnd(52)} p99 ${r.a.p99.toFixed(0).padStart(7)} / ${r.b.p99.toFixed(0).padStart(7)} µs, max ${r.a.max.toFixed(0).padStart(7)} / ${r.b.max.toFixed(0).padStart(7)} µs`);
