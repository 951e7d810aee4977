// The grammars two built checkouts compile from the same schemas, compared schema by schema (a
// compile-time change that should not change what is compiled: rules, their alternatives, byte
// classes and names, or the same error). Prints how many are the same and the first that differ.
//
//   node scripts/grammar_pair.mjs <checkout A> <checkout B> <corpus dir> [every]
//
// every: take every n-th file of the folder (sorted by name; default 1, all).
import { readdirSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { readCorpusFile } from './pair_checkout.mjs';

const [a, b, dir, every = '1'] = process.argv.slice(2);
if (!a || !b || !dir) {
  console.error('usage: node scripts/grammar_pair.mjs <checkout A> <checkout B> <corpus dir> [every]');
  process.exit(2);
}
const load = (root) => import(pathToFileURL(join(resolve(root), 'dist', 'src', 'structured', 'index.js')).href);
const SA = await load(a), SB = await load(b);
const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort().filter((_, i) => i % +every === 0);
const sig = (g) => JSON.stringify([g.start, g.names, g.classes.map((c) => Array.from(c).join('')), Array.from(g.prog), g.ruleAlts.map((x) => Array.from(x))]);
const of = (S, schema) => { try { return sig(new S.SchemaCompiler(schema, {}).compile()); } catch (e) { return `${e.constructor.name}: ${e.message}`; } };
let same = 0, unreadable = 0;
const differ = [];
for (const f of files) {
  // (A file that is not JSON — the corpus has one empty file — is what the bench calls unreadable.)
  let schema;
  try { ({ schema } = readCorpusFile(dir, f)); } catch { unreadable++; continue; }
  if (of(SA, schema) === of(SB, schema)) same++; else differ.push(f);
}
console.log(`${files.length} schemas, A = ${a}, B = ${b}: the same grammar (or error) in ${same}, different in ${differ.length}, ${unreadable} unreadable`);
for (const f of differ.slice(0, +(process.env.SHOW ?? 20))) console.log(`  differs: ${f}`);
process.exitCode = differ.length ? 1 : 0;
