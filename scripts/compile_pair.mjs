// Schema compile time of two built checkouts, side by side in one process (for a machine shared
// with other jobs: both meet the same load, schema by schema). For each schema: the compile as
// `tslm bench structured --corpus` times it (grammar, matcher and first mask, LLaMA-2 32K
// vocabulary, nothing cached but the vocabulary), A then B, `reps` times; the least CPU time
// (process.cpuUsage) and the least wall time of each are kept.
//
//   node scripts/compile_pair.mjs <checkout A> <checkout B> <corpus dir> <record.jsonl | a,b,c> [minMs] [reps] [out.jsonl]
//
// The schemas: the files named (comma-separated), or those of a `--record` file whose compile
// took at least minMs (default 15). Both checkouts must be built (dist/); the vocabulary is read
// by the test helpers of each.
import { writeFileSync } from 'node:fs';
import { loadCheckout, schemaFiles, readCorpusFile } from './pair_checkout.mjs';

const [a, b, dir, list, minMs = '15', reps = '3', out] = process.argv.slice(2);
if (!a || !b || !dir || !list) {
  console.error('usage: node scripts/compile_pair.mjs <checkout A> <checkout B> <corpus dir> <record.jsonl | a,b,c> [minMs] [reps] [out.jsonl]');
  process.exit(2);
}
const files = schemaFiles(list, (r) => r.compileMs >= +minMs);
const load = async (root) => {
  const { S, vocab } = await loadCheckout(root);
  return (schema) => {
    const c0 = process.cpuUsage(), t0 = performance.now();
    let status = 'compiled';
    try { const m = new S.TokenMatcher(new S.SchemaCompiler(schema, {}).compile(), vocab); m.mask(m.initial); } catch (e) { status = e.constructor.name; }
    const c = process.cpuUsage(c0);
    return { cpu: (c.user + c.system) / 1000, wall: performance.now() - t0, status };
  };
};
const A = await load(a), B = await load(b);
const rows = [];
for (const f of files) {
  const { schema } = readCorpusFile(dir, f);
  const best = { a: { cpu: Infinity, wall: Infinity }, b: { cpu: Infinity, wall: Infinity } };
  for (let r = 0; r < +reps; r++) {
    for (const [k, run] of [['a', A], ['b', B]]) {
      const x = run(schema);
      best[k].cpu = Math.min(best[k].cpu, x.cpu); best[k].wall = Math.min(best[k].wall, x.wall); best[k].status = x.status;
    }
  }
  rows.push({ file: f, aCpu: +best.a.cpu.toFixed(2), bCpu: +best.b.cpu.toFixed(2), aWall: +best.a.wall.toFixed(2), bWall: +best.b.wall.toFixed(2), aStatus: best.a.status, bStatus: best.b.status });
}
const mean = (k) => rows.reduce((s, r) => s + r[k], 0) / rows.length;
const max = (k) => Math.max(...rows.map((r) => r[k]));
const over = (k) => rows.filter((r) => r[k] > 50).length;
console.log(`${rows.length} schemas, least of ${reps} each, A = ${a}, B = ${b}`);
console.log(`CPU time:  mean ${mean('aCpu').toFixed(2)} / ${mean('bCpu').toFixed(2)} ms, max ${max('aCpu').toFixed(1)} / ${max('bCpu').toFixed(1)} ms, over 50 ms ${over('aCpu')} / ${over('bCpu')}`);
console.log(`wall time: mean ${mean('aWall').toFixed(2)} / ${mean('bWall').toFixed(2)} ms, max ${max('aWall').toFixed(1)} / ${max('bWall').toFixed(1)} ms, over 50 ms ${over('aWall')} / ${over('bWall')}`);
console.log(`status differs in ${rows.filter((r) => r.aStatus !== r.bStatus).length}`);
for (const r of [...rows].sort((x, y) => y.bCpu - x.bCpu).slice(0, 10)) console.log(`  ${r.file.padEnd(48)} CPU ${r.aCpu.toFixed(1).padStart(8)} / ${r.bCpu.toFixed(1).padStart(7)} ms`);
if (out) writeFileSync(out, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
