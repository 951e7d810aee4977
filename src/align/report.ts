// What a person watches during and after policy optimisation: a progress line per batch, and
// report.html with the curves of reward, held-out accuracy, KL, completion length, entropy and
// clip fraction (TRL's metric names), the options and a few held-out completions.
import { chartFrame, esc, fmtTime } from '../train/report.js';

/** One batch's metrics (TRL's names where it has them). */
export interface RlMetrics {
  step: number;
  reward: number;
  reward_std: number;
  /** Per reward component: mean. */
  rewards: Record<string, number>;
  frac_reward_zero_std: number;
  'completions/mean_length': number;
  'completions/clipped_ratio': number;
  entropy: number;
  kl?: number;
  'clip_ratio/low_mean': number;
  'clip_ratio/high_mean': number;
  'clip_ratio/region_mean': number;
  loss: number;
  grad_norm: number;
  learning_rate: number;
  /** Completions in the batch trained on, and groups dropped by dynamic sampling. */
  completions: number;
  dropped_groups: number;
  /** Sampled tokens per second of the rollouts; seconds of the whole batch; elapsed seconds. */
  rollout_tokens_per_second: number;
  step_seconds: number;
  elapsed_seconds: number;
  'eval/accuracy'?: number;
  'eval/accuracy_greedy'?: number;
  'eval/mean_length'?: number;
}

/** One progress line: batch, reward, held-out accuracy when measured, KL, length, tokens/s, ETA. */
export function rlProgressLine(m: RlMetrics, total: number): string {
  const eta = (m.elapsed_seconds / m.step) * (total - m.step);
  const tps = m.rollout_tokens_per_second >= 1000 ? `${(m.rollout_tokens_per_second / 1000).toFixed(1)}k` : m.rollout_tokens_per_second.toFixed(0);
  return `batch ${String(m.step).padStart(String(total).length)}/${total} reward ${m.reward.toFixed(3)}` +
    (m['eval/accuracy'] !== undefined ? ` | held-out ${(100 * m['eval/accuracy']).toFixed(1)}%` : '') +
    (m.kl !== undefined ? ` | kl ${m.kl.toExponential(2)}` : '') +
    ` | len ${m['completions/mean_length'].toFixed(1)} | entropy ${m.entropy.toFixed(3)} | ${tps} tok/s | ${fmtTime(m.elapsed_seconds)} elapsed, ETA ${fmtTime(eta)}`;
}


const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];

/** A line chart of named series over the batch number (points drawn where a series is sparse). */
export function seriesSvg(series: { name: string; points: [number, number][] }[], o: { title: string; yLabel: string; width?: number; height?: number }): string {
  const box = { W: o.width ?? 560, H: o.height ?? 280, L: 64, R: 16, T: 34, B: 42 }, { L, T: Tp } = box;
  const live = series.map((s) => ({ ...s, points: s.points.filter(([, y]) => Number.isFinite(y)) })).filter((s) => s.points.length);
  const { sx, sy, svg } = chartFrame(live.flatMap((s) => s.points.map(([x]) => x)), live.flatMap((s) => s.points.map(([, y]) => y)), box,
    { yFmt: (y) => (Math.abs(y) >= 1e-3 || y === 0 ? y.toFixed(3) : y.toExponential(1)) });
  const lines = live.map((s, j) => {
    const c = PALETTE[j % PALETTE.length];
    const path = s.points.map(([x, y], k) => `${k ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    const dots = s.points.length <= 40 ? s.points.map(([x, y]) => `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${c}"/>`).join('') : '';
    return `<path d="${path}" fill="none" stroke="${c}" stroke-width="1.5"/>${dots}` +
      `<line x1="${L + 10}" x2="${L + 30}" y1="${Tp + 10 + 15 * j}" y2="${Tp + 10 + 15 * j}" stroke="${c}" stroke-width="2"/><text x="${L + 34}" y="${Tp + 14 + 15 * j}" font-size="11">${esc(s.name)}</text>`;
  }).join('\n');
  return svg(lines, { title: o.title, x: 'batch', y: o.yLabel });
}

export interface RlReport {
  title: string;
  metrics: RlMetrics[];
  /** The run's options (listed in the report). */
  options: object;
  summary: [string, string][];
  samples: { prompt: string; completion: string; score: number }[];
  /** Extra charts (SVG) placed first, e.g. the demo's before/after accuracy. */
  charts?: string[];
  /** Held-out accuracy before the first batch (drawn at batch 0). */
  before?: { accuracy: number; greedyAccuracy?: number } | null;
}

/** The curves a person checks: did reward and held-out accuracy rise, did KL, length, entropy and clipping stay sane. */
export function rlCharts(metrics: RlMetrics[], before?: { accuracy: number; greedyAccuracy?: number } | null): string[] {
  const pts = (f: (m: RlMetrics) => number | undefined): [number, number][] => metrics.filter((m) => f(m) !== undefined).map((m) => [m.step, f(m)!]);
  const at0 = (v: number | undefined): [number, number][] => (v !== undefined && Number.isFinite(v) ? [[0, v]] : []);
  const comps = [...new Set(metrics.flatMap((m) => Object.keys(m.rewards)))];
  return [
    seriesSvg([{ name: 'reward (batch mean)', points: pts((m) => m.reward) }, ...(comps.length > 1 ? comps.map((n) => ({ name: `rewards/${n}`, points: pts((m) => m.rewards[n]) })) : [])], { title: 'Reward', yLabel: 'reward' }),
    seriesSvg([
      { name: 'held-out accuracy (sampled)', points: [...at0(before?.accuracy), ...pts((m) => m['eval/accuracy'])] },
      { name: 'held-out accuracy (greedy)', points: [...at0(before?.greedyAccuracy), ...pts((m) => m['eval/accuracy_greedy'])] },
    ], { title: 'Held-out accuracy (verifier)', yLabel: 'accuracy' }),
    seriesSvg([{ name: 'kl', points: pts((m) => m.kl) }], { title: 'KL to the reference', yLabel: 'KL (nats/token)' }),
    seriesSvg([{ name: 'completions/mean_length', points: pts((m) => m['completions/mean_length']) }], { title: 'Completion length', yLabel: 'tokens' }),
    seriesSvg([{ name: 'entropy', points: pts((m) => m.entropy) }], { title: 'Policy entropy', yLabel: 'nats/token' }),
    seriesSvg([
      { name: 'clip_ratio/region_mean', points: pts((m) => m['clip_ratio/region_mean']) },
      { name: 'clip_ratio/low_mean', points: pts((m) => m['clip_ratio/low_mean']) },
      { name: 'clip_ratio/high_mean', points: pts((m) => m['clip_ratio/high_mean']) },
    ], { title: 'Clip fraction', yLabel: 'fraction of tokens' }),
  ];
}

export function rlReportHtml(r: RlReport): string {
  const last = r.metrics.at(-1);
  const summary: [string, string][] = [
    ...r.summary,
    ['batches', String(last?.step ?? 0)],
    ...(last ? [['final batch reward', last.reward.toFixed(3)] as [string, string], ['elapsed', fmtTime(last.elapsed_seconds)] as [string, string]] : []),
  ];
  const charts = [...(r.charts ?? []), ...rlCharts(r.metrics, r.before)];
  const opts = Object.entries(r.options).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(JSON.stringify(v))}</td></tr>`).join('');
  const samples = r.samples.map((s) => `<tr><td><pre>${esc(s.prompt)}</pre></td><td><pre>${esc(s.completion)}</pre></td><td>${s.score.toFixed(2)}</td></tr>`).join('');
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(r.title)}</title>
<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}th{text-align:left;padding-right:1em}td,th{vertical-align:top}.charts{display:flex;flex-wrap:wrap;gap:12px}pre{margin:0;white-space:pre-wrap}</style></head><body>
<h1>${esc(r.title)}</h1>
<table>${summary.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>
<div class="charts">${charts.join('\n')}</div>
${samples ? `<h2>Held-out completions (after training)</h2><table><tr><th>prompt</th><th>completion</th><th>verifier</th></tr>${samples}</table>` : ''}
<h2>Options</h2><table>${opts}</table>
</body></html>
`;
}
