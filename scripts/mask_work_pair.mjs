// The work of building parser states that the trie-node count leaves out, in two built checkouts
// side by side, with each mask's CPU time: for each schema a fresh grammar and matcher, the first
// mask and every mask along each test instance (compact JSON, LLaMA-2 32K vocabulary), A and B
// taking turns (A first in odd rounds, B first in even ones), reps rounds. Per checkout: closure
// pairs walked (ByteAutomaton.expand's (position, parent) pairs: its PairSet's insertions),
// stacks interned (the stacks of every state interned, found or new), parser nodes created, states;
// per schema the p99 and the sum of each mask's least CPU time over the rounds; whether any mask
// differs between A and B (a hash per mask).
//
//   node scripts/mask_work_pair.mjs <checkout A> <checkout B> <corpus dir> <record.jsonl | a,b,c> [reps] [minP99Us]
//
// With a record, the schemas whose re-timed p99 (p99Least, else p99) is at least minP99Us (default 500).
import { loadCheckout, readCorpusFile, schemaFiles } from './pair_checkout.mjs';

const [a, b, dir, list, reps = '3', minUs = '500'] = process.argv.slice(2);
if (!a || !b || !dir || !list) {
  console.error('usage: node scripts/mask_work_pair.mjs <checkout A> <checkout B> <corpus dir> <record.jsonl | a,b,c> [reps] [minP99Us]');
  process.exit(2);
}
const files = schemaFiles(list, (r) => r.status === 'compiled' && (r.p99Least ?? r.p99) >= +minUs);
const A = await loadCheckout(a), B = await loadCheckout(b);
const cpu = () => { const u = process.cpuUsage(); return u.user + u.system; };
const run = ({ S, tok, vocab }, schema, enc) => {
  const m = new S.TokenMatcher(new S.SchemaCompiler(schema, {}).compile(), vocab);
  const au = m.automaton;
  let pairs = 0, interned = 0;
  const seen = au.seen, add = seen.add.bind(seen);
  seen.add = (x, y) => { pairs++; return add(x, y); };
  const intern = Object.getPrototypeOf(au).intern;
  au.intern = function () { interned += this.outN; return intern.call(this); };
  const times = [], hashes = [];
  const one = (s) => { const t0 = cpu(); const k = m.mask(s); times.push(cpu() - t0); let h = 0; for (let i = 0; i < k.length; i++) h = (Math.imul(h, 31) + k[i]) | 0; hashes.push(h); return k; };
  one(m.initial);
  for (const ids of enc) { let s = m.initial; for (const id of ids) { const k = one(s); if (!(k[id >>> 5] & (1 << (id & 31)))) break; s = m.advance(s, id); if (s < 0) break; } }
  return { pairs, interned, nodes: au.nodeIds.size, states: au.states, times, h: hashes.join(',') };
};
const pct = (xs, p) => { const s = [...xs].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const tot = { a: { pairs: 0, interned: 0, cpu: 0 }, b: { pairs: 0, interned: 0, cpu: 0 } };
let differ = 0, n = 0;
for (const f of files) {
  const { schema, tests } = readCorpusFile(dir, f);
  const enc = tests.map((t) => JSON.stringify(t.data)).filter((x) => x !== undefined).map((x) => A.tok.encode(x));
  const last = {}, least = {};
  try {
    for (let r = 0; r < +reps; r++) {
      for (const [k, C] of r % 2 ? [['b', B], ['a', A]] : [['a', A], ['b', B]]) {
        const x = run(C, schema, enc);
        last[k] = x;
        least[k] = least[k] ? least[k].map((t, j) => Math.min(t, x.times[j])) : x.times;
      }
    }
  } catch (e) { console.log(`${f}: ${e.message}`); continue; }
  n++;
  if (last.a.h !== last.b.h) differ++;
  const row = {};
  for (const k of ['a', 'b']) {
    const sum = least[k].reduce((x, y) => x + y, 0);
    tot[k].pairs += last[k].pairs; tot[k].interned += last[k].interned; tot[k].cpu += sum;
    row[k] = { ...last[k], p99: pct(least[k], 99), sum };
  }
  console.log(`${f.padEnd(50)} pairs ${row.a.pairs} → ${row.b.pairs}, stacks interned ${row.a.interned} → ${row.b.interned}, nodes ${row.a.nodes} → ${row.b.nodes}, states ${row.a.states} → ${row.b.states}; CPU p99 ${row.a.p99} → ${row.b.p99} µs, all masks ${(row.a.sum / 1000).toFixed(1)} → ${(row.b.sum / 1000).toFixed(1)} ms`);
}
console.log(`${n} schemas, A = ${a}, B = ${b}; masks differ in ${differ}; closure pairs ${tot.a.pairs} → ${tot.b.pairs}, stacks interned ${tot.a.interned} → ${tot.b.interned}; mask CPU (each mask's least of ${reps}, summed) ${(tot.a.cpu / 1000).toFixed(0)} → ${(tot.b.cpu / 1000).toFixed(0)} ms (${(tot.b.cpu / tot.a.cpu).toFixed(3)})`);
