// The string automata of two built checkouts compared on every pattern of a corpus (a change to how
// dfa.ts / regex.ts build automata that should not change what they build): each pattern's DFA
// (search and whole-string, with and without shared tails), its grammar as regexSyms writes it
// (search in JSON and raw mode, whole-string in JSON), and the products (and, or, diff; with and
// without a state bound) of pairs of the patterns' automata — the same states, edges and
// acceptance, the same grammar, or the same error. Prints the counts and the first differences.
//
//   node scripts/regex_pair.mjs <checkout A> <checkout B> <corpus dir>
import { readdirSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { readCorpusFile } from './pair_checkout.mjs';

const [a, b, dir] = process.argv.slice(2);
if (!a || !b || !dir) {
  console.error('usage: node scripts/regex_pair.mjs <checkout A> <checkout B> <corpus dir>');
  process.exit(2);
}
const load = async (root) => {
  const at = (p) => import(pathToFileURL(join(resolve(root), 'dist', 'src', 'structured', p)).href);
  return { D: await at('dfa.js'), R: await at('regex.js'), G: await at('grammar.js') };
};
const A = await load(a), B = await load(b);
// Every `pattern` and patternProperties key of the corpus's schemas.
const set = new Set();
const walk = (x) => {
  if (Array.isArray(x)) { x.forEach(walk); return; }
  if (!x || typeof x !== 'object') return;
  if (typeof x.pattern === 'string') set.add(x.pattern);
  if (x.patternProperties && typeof x.patternProperties === 'object') for (const k of Object.keys(x.patternProperties)) set.add(k);
  Object.values(x).forEach(walk);
};
for (const f of readdirSync(dir).filter((f) => f.endsWith('.json'))) { try { walk(readCorpusFile(dir, f).schema); } catch { /* not JSON */ } }
const pats = [...set].sort();
const outcome = (f) => { try { return f(); } catch (e) { return `${e.constructor.name}: ${e.message}`; } };
const dfaSig = (d) => JSON.stringify([d.trans, d.accept]);
const gramSig = (g) => JSON.stringify([g.start, g.names, g.classes.map((c) => Array.from(c).join('')), Array.from(g.prog), g.ruleAlts.map((x) => Array.from(x))]);
const tally = {};
const check = (kind, x, y, what) => {
  const t = (tally[kind] ??= { same: 0, differ: 0 });
  if (x === y) t.same++; else { t.differ++; if (t.differ <= 3) console.log(`  differs (${kind}): ${what}`); }
};
for (const p of pats) {
  for (const search of [true, false]) for (const tails of [false, true]) {
    const f = (S) => outcome(() => dfaSig(S.D.regexDfa(p, search, tails ? { tails: new Map() } : {})));
    check('dfa', f(A), f(B), `/${p}/ ${search ? 'search' : 'whole'}${tails ? ', tails' : ''}`);
  }
  for (const [search, mode] of [[true, 'json'], [true, 'raw'], [false, 'json']]) {
    const f = (S) => outcome(() => { const g = new S.G.GrammarBuilder(); return gramSig(g.build(g.rule('root', [S.R.regexSyms(g, p, mode, search)]))); });
    check('grammar', f(A), f(B), `/${p}/ ${search ? 'search' : 'whole'} ${mode}`);
  }
}
const autos = (S) => pats.map((p) => { try { return S.D.regexDfa(p, true); } catch { return null; } });
const dA = autos(A), dB = autos(B);
for (let i = 0; i + 1 < pats.length; i++) {
  for (const j of [i + 1, (i * 7919) % pats.length]) {
    if (!dA[i] || !dA[j]) continue;
    for (const op of ['intersect', 'union', 'minus']) for (const lim of [undefined, { maxStates: 20 }]) {
      check('product', outcome(() => dfaSig(A.D[op](dA[i], dA[j], lim))), outcome(() => dfaSig(B.D[op](dB[i], dB[j], lim))), `${op} /${pats[i]}/ /${pats[j]}/`);
    }
  }
}
console.log(`${pats.length} patterns, A = ${a}, B = ${b}`);
for (const [k, t] of Object.entries(tally)) console.log(`  ${k}: the same in ${t.same}, different in ${t.differ}`);
process.exitCode = Object.values(tally).some((t) => t.differ) ? 1 : 0;
