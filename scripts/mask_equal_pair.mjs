// Whether two built checkouts compute the same token masks on corpus schemas: for each schema, a
// fresh grammar and matcher per checkout, the first mask and every mask along each test instance
// (compact JSON, the file's key order, LLaMA-2 32K vocabulary), word by word, and the same
// compile verdict (compiled or refused) and the same states refused along the way. Prints the
// schemas that differ and a summary; exit status 1 when any does.
//
//   node scripts/mask_equal_pair.mjs <checkout A> <checkout B> <corpus dir> <record.jsonl | all | a,b,c> [every]
//
// `all`: every file of the corpus directory; `every` n: only every n-th schema of the list (a sample).
import { readdirSync } from 'node:fs';
import { loadCheckout, schemaFiles, readCorpusFile } from './pair_checkout.mjs';

const [a, b, dir, list, every = '1'] = process.argv.slice(2);
if (!a || !b || !dir || !list) {
  console.error('usage: node scripts/mask_equal_pair.mjs <checkout A> <checkout B> <corpus dir> <record.jsonl | all | a,b,c> [every]');
  process.exit(2);
}
const all = list === 'all' ? readdirSync(dir).filter((f) => f.endsWith('.json')).sort() : schemaFiles(list, (r) => r.status === 'compiled');
const files = all.filter((_, i) => i % +every === 0);
const A = await loadCheckout(a), B = await loadCheckout(b);
/** The masks of one checkout along the instances, as one list of words (null: refused to compile). */
const masks = ({ S, tok, vocab }, schema, tests) => {
  let m;
  try { m = new S.TokenMatcher(new S.SchemaCompiler(schema, {}).compile(), vocab); } catch (e) { return { refused: String(e?.constructor?.name) }; }
  const out = [];
  try {
    out.push(m.mask(m.initial));
    for (const t of tests) {
      const text = JSON.stringify(t.data);
      if (text === undefined) continue;
      let s = m.initial;
      for (const id of tok.encode(text)) {
        const k = m.mask(s);
        out.push(k);
        if (!(k[id >>> 5] & (1 << (id & 31)))) { out.push('refused'); break; }
        s = m.advance(s, id);
        if (s < 0) { out.push('dead'); break; }
      }
      out.push(m.automaton.accepting(s) ? 'accepts' : 'open');
    }
  } catch (e) { out.push(`error ${e?.constructor?.name}`); }
  return { out };
};
const same = (x, y) => {
  if (x.refused !== undefined || y.refused !== undefined) return x.refused === y.refused;
  if (x.out.length !== y.out.length) return false;
  for (let i = 0; i < x.out.length; i++) {
    const p = x.out[i], q = y.out[i];
    if (typeof p === 'string' || typeof q === 'string') { if (p !== q) return false; continue; }
    if (p.length !== q.length) return false;
    for (let w = 0; w < p.length; w++) if (p[w] !== q[w]) return false;
  }
  return true;
};
let differ = 0, n = 0, nMasks = 0;
const t0 = performance.now();
let unreadable = 0;
for (const f of files) {
  let doc;
  // (A file that is not JSON — the corpus has one empty file — is what the bench calls unreadable.)
  try { doc = readCorpusFile(dir, f); } catch { unreadable++; continue; }
  const { schema, tests } = doc;
  const x = masks(A, schema, tests), y = masks(B, schema, tests);
  n++;
  nMasks += x.out ? x.out.filter((k) => typeof k !== 'string').length : 0;
  if (!same(x, y)) { differ++; console.log('DIFFER', f); }
}
console.log(`${n} schemas, ${nMasks} masks compared, ${differ} differ, ${unreadable} unreadable (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
process.exit(differ ? 1 : 0);
