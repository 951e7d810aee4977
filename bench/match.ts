// Fuzzy matching at scale: a q-gram inverted index over 1M candidate strings (snippets of Brown
// sentences with random character edits, generated deterministically: no downloads), its build
// time and memory, and queries/s for top-10 search under each metric and with a threshold (prefix
// filtering), beside our brute-force scan of every candidate and, when Debian's python3 has
// scikit-learn, the same top-10 Jaccard by a sparse product with the transposed count matrix
// (CountVectorizer char 3-grams; scipy walks the query's posting lists in C), in the same run.
// The index's answers are checked identical to the brute force on the scanned queries, and its
// top-10 scores against the peer's.
import { spawnSync } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';
import { QgramIndex, type QgramMetric, type QgramMatch } from '../src/classic/index.js';
import { Rng } from '../src/classic/text.js';
import { brownText } from '../src/train/quickstart.js';

export interface Row { task: string; metric: string; tslm: number; peer: number | null; unit: string; note: string }

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const peerScript = path.join(root, 'bench', 'peers', 'sklearn_qgram.py');

/** One snippet of a Brown sentence (3–12 words) with 0–3 random character edits. */
function mutate(rng: Rng, s: string, edits: number): string {
  const letters = 'abcdefghijklmnopqrstuvwxyz ';
  for (let e = 0; e < edits && s.length > 2; e++) {
    const j = Math.floor(rng.next() * (s.length - 1)), r = rng.next();
    if (r < 0.3) s = s.slice(0, j) + s.slice(j + 1);
    else if (r < 0.55) s = s.slice(0, j) + s[j + 1] + s[j] + s.slice(j + 2);
    else if (r < 0.8) s = s.slice(0, j) + letters[Math.floor(rng.next() * letters.length)] + s.slice(j + 1);
    else s = s.slice(0, j) + letters[Math.floor(rng.next() * letters.length)] + s.slice(j);
  }
  // One space between words (scikit-learn's char analyzer folds runs of whitespace; keep both sides equal).
  return s.replace(/\s+/g, ' ').trim();
}

/** `n` deterministic candidates from the Brown corpus's sentences. */
export function matchCandidates(n: number, seed = 1): string[] {
  const sents = brownText().flatMap((d) => d.text.split('\n')).map((s) => s.split(' '));
  const rng = new Rng(seed), out: string[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const w = sents[Math.floor(rng.next() * sents.length)];
    const len = 3 + Math.floor(rng.next() * 10), a = Math.floor(rng.next() * Math.max(1, w.length - len + 1));
    out[i] = mutate(rng, w.slice(a, a + len).join(' '), Math.floor(rng.next() * 4));
  }
  return out;
}

function findPython(): string | null {
  for (const py of ['/usr/bin/python3', 'python3']) {
    if (spawnSync(py, ['-c', 'import sklearn, scipy'], { stdio: 'ignore' }).status === 0) return py;
  }
  return null;
}

export async function benchMatch(opts: { log?: (line: string) => void; candidates?: number; queries?: number } = {}): Promise<Row[]> {
  const log = opts.log ?? (() => {});
  const N = opts.candidates ?? (Number(process.env.TSLM_BENCH_MATCH_N) || 1_000_000);
  const Q = opts.queries ?? (Number(process.env.TSLM_BENCH_MATCH_QUERIES) || 100);
  const rows: Row[] = [];
  const emit = (r: Row): void => {
    rows.push(r);
    log(`${r.task.padEnd(46)} ${r.metric.padEnd(12)} ${fmt(r.tslm).padStart(10)} ${(r.peer === null ? '—' : fmt(r.peer)).padStart(10)}  ${r.unit.padEnd(9)} ${r.note}`);
  };
  log(`${'task'.padEnd(46)} ${'metric'.padEnd(12)} ${'tslm'.padStart(10)} ${'peer'.padStart(10)}  ${'unit'.padEnd(9)} note`);

  const cands = matchCandidates(N, 1);
  const rng = new Rng(99);
  // Queries: edited copies of random candidates (each has a near-duplicate in the index).
  const queries: string[] = [];
  while (queries.length < Q) {
    const s = mutate(rng, cands[Math.floor(rng.next() * N)], 1 + Math.floor(rng.next() * 2));
    if ([...s].length >= 3) queries.push(s);
  }
  const chars = cands.reduce((a, s) => a + s.length, 0);

  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  const idx = QgramIndex.build(cands, { q: 3 });
  const buildS = (performance.now() - t0) / 1000;
  const bytes = [idx.fwdOff, idx.fwdIds, idx.fwdCnt, idx.total, idx.sumSq, idx.postOff, idx.postDoc, idx.postCnt].reduce((a, x) => a + x.byteLength, 0) + 20 * N;
  const rss = process.memoryUsage().rss;

  // The peer first, so its numbers come from the same machine state as ours.
  const py = findPython();
  let peer: { build_s: number; qps: number; top: [number, number][][] } | null = null;
  let peerNote = 'scikit-learn not installed (python3 -c "import sklearn, scipy" failed)';
  if (py) {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'tslm-bench-match-'));
    try {
      writeFileSync(path.join(tmp, 'cands.txt'), cands.join('\n') + '\n');
      writeFileSync(path.join(tmp, 'queries.txt'), queries.join('\n') + '\n');
      const out = spawnSync(py, [peerScript, path.join(tmp, 'cands.txt'), path.join(tmp, 'queries.txt'), '3', '10'], { encoding: 'utf8', maxBuffer: 1 << 28 });
      if (out.status !== 0) peerNote = `peer failed: ${out.stderr.trim().split('\n').pop()}`;
      else { peer = JSON.parse(out.stdout); peerNote = 'peer: scikit-learn CountVectorizer(char 3-grams) + scipy q·Xᵀ'; }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }

  emit({ task: `index build, ${(N / 1e6).toFixed(N >= 1e6 ? 0 : 2)}M candidates (${(chars / N).toFixed(0)} chars avg)`, metric: 'build time', tslm: buildS, peer: peer?.build_s ?? null, unit: 's',
    note: `${idx.grams.toLocaleString('en-US')} distinct 3-grams, ${idx.postDoc.length.toLocaleString('en-US')} postings; ${peer ? 'peer: fit_transform + transpose' : peerNote}` });
  emit({ task: 'index memory', metric: 'typed arrays', tslm: bytes / 2 ** 20, peer: null, unit: 'MiB', note: `forward + inverted profiles, 20 B/candidate of sizes and order; process RSS +${((rss - rss0) / 2 ** 20).toFixed(0)} MiB during build (with the strings)` });

  const timeQueries = (qs: string[], f: (s: string) => QgramMatch[]): { qps: number; res: QgramMatch[][] } => {
    const res: QgramMatch[][] = [];
    const t = performance.now();
    for (const s of qs) res.push(f(s));
    return { qps: qs.length / ((performance.now() - t) / 1000), res };
  };
  // Brute force on a few queries (it scores every candidate).
  const nb = Math.min(Q, 10), nCheck = Math.min(Q, 3);
  const brute = timeQueries(queries.slice(0, nb), (s) => idx.scan(s, { metric: 'jaccard', top: 10 }));
  const configs: { metric: QgramMetric; top?: number; threshold?: number; label: string }[] = [
    { metric: 'jaccard', top: 10, label: 'top-10 Jaccard' },
    { metric: 'jaccard', top: 1, label: 'top-1 Jaccard' },
    { metric: 'cosine', top: 10, label: 'top-10 cosine' },
    { metric: 'cosine', top: 1, label: 'top-1 cosine' },
    { metric: 'qgram', top: 10, label: 'top-10 q-gram distance' },
    { metric: 'qgram', top: 1, label: 'top-1 q-gram distance' },
    { metric: 'jaccard', top: 10, threshold: 0.5, label: 'top-10 Jaccard >= 0.5' },
    { metric: 'jaccard', threshold: 0.8, label: 'all with Jaccard >= 0.8' },
  ];
  for (const c of configs) {
    let touched = 0, found = 0;
    const o = { metric: c.metric, top: c.top, threshold: c.threshold };
    const r = timeQueries(queries, (s) => { const m = idx.search(s, o); touched += idx.stats.touched; found += m.length; return m; });
    let note = `${Q} queries, ${(touched / Q / 1000).toFixed(1)}K candidates touched/query`;
    if (c.top === undefined) note += `, ${(found / Q).toFixed(1)} matches/query`;
    let peerQps: number | null = null;
    if (c.metric === 'jaccard' && c.top === 10 && c.threshold === undefined) {
      const same = brute.res.every((b, i) => JSON.stringify(b) === JSON.stringify(r.res[i]));
      note += `; identical to brute force on ${nb}: ${same ? 'yes' : 'NO'}; brute force ${brute.qps.toFixed(2)} queries/s (index ${(r.qps / brute.qps).toFixed(0)}× faster)`;
      if (peer) {
        peerQps = peer.qps;
        const agree = peer.top.every((t, i) => t.length === r.res[i].length && t.every(([, s], k) => Math.abs(s - r.res[i][k].score) < 1e-9));
        note += `; ${peerNote} (its cost does not depend on K), same top-10 scores: ${agree ? 'yes' : 'NO'}`;
      } else note += `; ${peerNote}`;
    } else {
      const same = r.res.slice(0, nCheck).every((m, i) => JSON.stringify(m) === JSON.stringify(idx.scan(queries[i], o)));
      note += `; identical to brute force on ${nCheck}: ${same ? 'yes' : 'NO'}`;
    }
    emit({ task: `search: ${c.label}`, metric: 'throughput', tslm: r.qps, peer: peerQps, unit: 'queries/s', note });
  }
  return rows;
}

function fmt(x: number): string {
  return x >= 1000 ? Math.round(x).toLocaleString('en-US') : x.toFixed(x >= 10 ? 1 : 3);
}
