// `tslm bench structured`'s own schemas (bench/structured.ts BENCH_SCHEMAS) on both vocabularies
// (LLaMA-2 32K, LLaMA-3 128K), two built checkouts side by side in one process (for a machine
// shared with other jobs: both meet the same load). Per checkout: the work of the masks along
// the instances, which load does not change (trie nodes walked, parser states built, stacks
// expanded), and times — each schema's least over `reps` of the masks summed and of the compile
// (grammar, matcher, first mask), summed over the schemas.
//
//   node scripts/own_bench_pair.mjs <checkout A> <checkout B> [reps]
import { resolve, join } from 'node:path';
import { pathToFileURL } from 'node:url';
const [A, B, reps = '7'] = process.argv.slice(2);
if (!A || !B) { console.error('usage: node scripts/own_bench_pair.mjs <checkout A> <checkout B> [reps]'); process.exit(2); }
const load = async (root) => {
  const at = (p) => pathToFileURL(join(resolve(root), 'dist', p)).href;
  const S = await import(at('src/structured/index.js'));
  const { HFTokenizer } = await import(at('src/tokenizers/hf.js'));
  const V = await import(at('test/tokenizers/real_vocabs.js'));
  const Bn = await import(at('bench/structured.js'));
  await (await import(at('src/index.js'))).init({ threads: 1 });
  return { S, HFTokenizer, V, Bn };
};
const a = await load(A), b = await load(B);
for (const [vn, getJson] of [['32K', 'llama2Json'], ['128K', 'llama3Json']]) {
  const side = await Promise.all([a, b].map(async (x) => { const tok = new x.HFTokenizer(await x.V[getJson]()); return { x, tok, vocab: x.S.TokenVocab.fromTokenizer(tok) }; }));
  for (const s of side) s.x.Bn.warmUp();
  const tot = side.map(() => ({ walked: 0, states: 0, exp: 0, mask: 0, compile: 0 }));
  for (const { name, schema, instance } of a.Bn.BENCH_SCHEMAS) {
    const best = side.map(() => ({ mask: Infinity, compile: Infinity }));
    for (let r = 0; r < +reps; r++) side.forEach(({ x, tok, vocab }, k) => {
      const ids = tok.encode(JSON.stringify(instance));
      const c0 = performance.now();
      const m = new x.S.TokenMatcher(x.S.compileJsonSchema(schema), vocab); m.mask(m.initial);
      const c1 = performance.now();
      let s = m.initial, t = 0;
      for (const id of ids) { const q = performance.now(); m.mask(s); t += performance.now() - q; s = m.advance(s, id); }
      best[k].mask = Math.min(best[k].mask, t); best[k].compile = Math.min(best[k].compile, c1 - c0);
      if (r === 0) { tot[k].walked += m.stats.nodesVisited; tot[k].states += m.automaton.states; tot[k].exp += m.automaton.expansions; }
    });
    best.forEach((x, k) => { tot[k].mask += x.mask; tot[k].compile += x.compile; });
  }
  console.log(vn, 'A', JSON.stringify(tot[0], (k, v) => typeof v === 'number' ? +v.toFixed(2) : v));
  console.log(vn, 'B', JSON.stringify(tot[1], (k, v) => typeof v === 'number' ? +v.toFixed(2) : v));
}
