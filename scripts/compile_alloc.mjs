// JS heap bytes a schema's compile allocates (grammar only, as SchemaCompiler.compile builds it),
// in two built checkouts side by side: V8's sampling heap profiler (objects later collected
// included) over `reps` compiles of each schema after one warm-up compile, per compile. Load does
// not change these counts (sampled: about ±3% between runs), so they compare checkouts on a busy
// machine where times do not. ArrayBuffer backing stores are not counted.
//
//   node scripts/compile_alloc.mjs <checkout A> <checkout B> <corpus dir> <a,b,c> [reps] [top]
//
// top: also print each checkout's top allocating functions over all the schemas.
import { Session } from 'node:inspector/promises';
import { resolve, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { readCorpusFile } from './pair_checkout.mjs';

const [a, b, dir, list, reps = '3', top = '0'] = process.argv.slice(2);
if (!a || !b || !dir || !list) {
  console.error('usage: node scripts/compile_alloc.mjs <checkout A> <checkout B> <corpus dir> <a,b,c> [reps] [top]');
  process.exit(2);
}
const load = (root) => import(pathToFileURL(join(resolve(root), 'dist', 'src', 'structured', 'index.js')).href);
const SA = await load(a), SB = await load(b);
const session = new Session();
session.connect();

/** Bytes allocated per compile of `schema` by S, and the bytes by function (self). */
async function sample(S, schema) {
  const compile = () => { try { new S.SchemaCompiler(schema, {}).compile(); } catch { /* a refusal allocates too */ } };
  compile();
  await session.post('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  for (let r = 0; r < +reps; r++) compile();
  const { profile } = await session.post('HeapProfiler.stopSampling');
  const by = new Map();
  let total = 0;
  const walk = (n, parent) => {
    const own = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.split('/').pop()}:${n.callFrame.lineNumber + 1}`;
    // Builtins (no file) are named with the function that called them.
    const k = n.callFrame.url ? own : `${own} < ${parent}`;
    by.set(k, (by.get(k) ?? 0) + n.selfSize);
    total += n.selfSize;
    for (const c of n.children) walk(c, n.callFrame.url ? own : parent);
  };
  walk(profile.head, '');
  return { perCompile: total / +reps, by };
}

const sum = { a: 0, b: 0 }, byA = new Map(), byB = new Map();
const add = (m, by) => { for (const [k, v] of by) m.set(k, (m.get(k) ?? 0) + v); };
console.log(`JS heap allocated per compile (MB), sampled over ${reps} compiles; A = ${a}, B = ${b}`);
for (const f of list.split(',')) {
  const { schema } = readCorpusFile(dir, f);
  const x = await sample(SA, schema), y = await sample(SB, schema);
  sum.a += x.perCompile; sum.b += y.perCompile;
  add(byA, x.by); add(byB, y.by);
  console.log(`  ${f.padEnd(48)} ${(x.perCompile / 1e6).toFixed(1).padStart(7)} ${(y.perCompile / 1e6).toFixed(1).padStart(7)}   ${(y.perCompile / x.perCompile).toFixed(2)}`);
}
console.log(`  ${'all'.padEnd(48)} ${(sum.a / 1e6).toFixed(1).padStart(7)} ${(sum.b / 1e6).toFixed(1).padStart(7)}   ${(sum.b / sum.a).toFixed(2)}`);
for (const [name, m] of +top > 0 ? [['A', byA], ['B', byB]] : []) {
  const all = [...m.values()].reduce((s, v) => s + v, 0);
  console.log(`top of ${name}:`);
  for (const [k, v] of [...m].sort((x, y) => y[1] - x[1]).slice(0, +top)) console.log(`  ${(100 * v / all).toFixed(1).padStart(5)}%  ${k}`);
}
