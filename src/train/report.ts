// What a person looks at after training: metrics appended to a JSONL file, a loss-curve SVG,
// an HTML report, and a progress line (loss, tokens/s, ETA) while it runs.
import { appendFileSync, writeFileSync, renameSync } from 'node:fs';

export interface StepMetrics {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  tokensPerSecond: number;
  elapsedSeconds: number;
  valLoss?: number;
  valPerplexity?: number;
  /** The model's loss parts beyond the cross-entropy (a mixture of experts: aux_loss, router_z_loss, …). */
  parts?: Record<string, number>;
  /** Per MoE layer, the fraction of token assignments each expert received this step. */
  expertLoad?: number[][];
}

export function appendMetrics(file: string, m: StepMetrics): void {
  appendFileSync(file, JSON.stringify(m) + '\n');
}

/** Write a file atomically (temp file + rename). */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}

export function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '--:--';
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return h ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}

/** One progress line: step, bar, loss, tokens/s, elapsed and ETA. */
export function progressLine(m: StepMetrics, total: number): string {
  const width = 24, done = Math.round((m.step / total) * width);
  const bar = '='.repeat(Math.max(0, done - 1)) + (done > 0 ? '>' : '') + ' '.repeat(width - done);
  const eta = m.step > 0 ? (m.elapsedSeconds / m.step) * (total - m.step) : Infinity;
  const tps = m.tokensPerSecond >= 1000 ? `${(m.tokensPerSecond / 1000).toFixed(1)}k` : m.tokensPerSecond.toFixed(0);
  return `step ${String(m.step).padStart(String(total).length)}/${total} [${bar}] loss ${m.loss.toFixed(4)} | lr ${m.lr.toExponential(2)} | ${tps} tok/s | ${fmtTime(m.elapsedSeconds)} elapsed, ETA ${fmtTime(eta)}`;
}

/** Text for HTML (elements and attribute values). */
export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/**
 * The smallest and largest of `values` and `init` (a loop: spreading a long run's hundreds of
 * thousands of steps into Math.min overflows the stack).
 */
export function extent(values: readonly number[], init: [number, number] = [Infinity, -Infinity]): [number, number] {
  let lo = init[0], hi = init[1];
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return [lo, hi];
}

/** A line chart's size and margins (pixels). */
export interface ChartBox { W: number; H: number; L: number; R: number; T: number; B: number }

/**
 * What line charts share: x and y ranges from the data (y widened when flat, padded by 5% unless
 * `pad` is false), the maps from data to pixels, and the SVG around the plot — title, grid lines
 * with y (and x) tick labels, axes, axis labels. `body` is the chart's own paths and legend.
 */
export function chartFrame(xs: readonly number[], ys: readonly number[], box: ChartBox, o: { ticks?: number; pad?: boolean; xTicks?: boolean; yFmt?: (y: number) => string } = {}): {
  sx: (x: number) => number; sy: (y: number) => number;
  svg: (body: string, labels: { title: string; x: string; y?: string }) => string;
} {
  const { W, H, L, R, T, B } = box, ticks = o.ticks ?? 4, yFmt = o.yFmt ?? ((y: number) => y.toFixed(3));
  const [x0, x1] = extent(xs, [0, 1]);
  let [y0, y1] = ys.length ? extent(ys) : [0, 1];
  if (y1 - y0 < 1e-9) { y0 -= 0.5; y1 += 0.5; }
  if (o.pad !== false) { const pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad; }
  const sx = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y: number) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const grid: string[] = [];
  for (let k = 0; k <= ticks; k++) {
    const y = y0 + ((y1 - y0) * k) / ticks, x = x0 + ((x1 - x0) * k) / ticks;
    grid.push(`<line x1="${L}" x2="${W - R}" y1="${sy(y).toFixed(1)}" y2="${sy(y).toFixed(1)}" stroke="#e5e5e5"/><text x="${L - 6}" y="${(sy(y) + 4).toFixed(1)}" text-anchor="end" font-size="11">${yFmt(y)}</text>`);
    if (o.xTicks !== false) grid.push(`<text x="${sx(x).toFixed(1)}" y="${H - B + 16}" text-anchor="middle" font-size="11">${Math.round(x)}</text>`);
  }
  const svg = (body: string, labels: { title: string; x: string; y?: string }) => `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">${esc(labels.title)}</text>
${grid.join('\n')}
<line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="#333"/><line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#333"/>
${body}
<text x="${W / 2}" y="${H - 8}" text-anchor="middle" font-size="12">${esc(labels.x)}</text>${labels.y === undefined ? '' : `
<text x="16" y="${H / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 16 ${H / 2})">${esc(labels.y)}</text>`}
</svg>`;
  return { sx, sy, svg };
}

/** A loss-curve SVG: training loss per step and validation loss points, with labelled axes. */
export function lossCurveSvg(metrics: StepMetrics[], opts: { width?: number; height?: number; title?: string } = {}): string {
  const box = { W: opts.width ?? 720, H: opts.height ?? 360, L: 64, R: 20, T: 36, B: 44 }, { W, R, T: Tp } = box;
  const train = metrics.filter((m) => Number.isFinite(m.loss));
  const val = metrics.filter((m) => m.valLoss !== undefined && Number.isFinite(m.valLoss));
  const { sx, sy, svg } = chartFrame(train.map((m) => m.step), [...train.map((m) => m.loss), ...val.map((m) => m.valLoss!)], box, { ticks: 5, yFmt: (y) => y.toFixed(2) });
  const path = train.map((m, i) => `${i ? 'L' : 'M'}${sx(m.step).toFixed(1)},${sy(m.loss).toFixed(1)}`).join(' ');
  const dots = val.map((m) => `<circle cx="${sx(m.step).toFixed(1)}" cy="${sy(m.valLoss!).toFixed(1)}" r="3.5" fill="#d62728"/>`).join('');
  return svg(`<path d="${path}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>
${dots}
<rect x="${W - R - 170}" y="${Tp + 4}" width="164" height="40" fill="white" stroke="#ccc"/>
<line x1="${W - R - 160}" x2="${W - R - 136}" y1="${Tp + 18}" y2="${Tp + 18}" stroke="#1f77b4" stroke-width="2"/><text x="${W - R - 130}" y="${Tp + 22}" font-size="11">training loss</text>
<circle cx="${W - R - 148}" cy="${Tp + 34}" r="3.5" fill="#d62728"/><text x="${W - R - 130}" y="${Tp + 38}" font-size="11">validation loss</text>`, { title: opts.title ?? 'Loss', x: 'step', y: 'cross-entropy (nats/token)' });
}

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2'];

/** Curves of the loss parts beyond the cross-entropy (aux_loss, router_z_loss, …) per step; '' when there are none. */
export function partsCurveSvg(metrics: StepMetrics[], opts: { width?: number; height?: number; title?: string } = {}): string {
  const rows = metrics.filter((m) => m.parts);
  const names = [...new Set(rows.flatMap((m) => Object.keys(m.parts!)))].filter((n) => rows.some((m) => (m.parts![n] ?? 0) !== 0));
  if (!names.length) return '';
  const box = { W: opts.width ?? 720, H: opts.height ?? 300, L: 64, R: 20, T: 36, B: 44 }, { W, R, T: Tp } = box;
  const ys = rows.flatMap((m) => names.map((n) => m.parts![n]).filter((v) => Number.isFinite(v)));
  const { sx, sy, svg } = chartFrame(rows.map((m) => m.step), ys, box, { pad: false, xTicks: false });
  const lines = names.map((n, j) => {
    const pts = rows.filter((m) => Number.isFinite(m.parts![n]));
    const d = pts.map((m, i) => `${i ? 'L' : 'M'}${sx(m.step).toFixed(1)},${sy(m.parts![n]).toFixed(1)}`).join(' ');
    return `<path d="${d}" fill="none" stroke="${PALETTE[j % PALETTE.length]}" stroke-width="1.5"/>` +
      `<line x1="${W - R - 160}" x2="${W - R - 136}" y1="${Tp + 14 + 16 * j}" y2="${Tp + 14 + 16 * j}" stroke="${PALETTE[j % PALETTE.length]}" stroke-width="2"/><text x="${W - R - 130}" y="${Tp + 18 + 16 * j}" font-size="11">${esc(n)}</text>`;
  }).join('\n');
  return svg(lines, { title: opts.title ?? 'Auxiliary losses', x: 'step' });
}

/**
 * Expert utilisation: one row per MoE layer, one cell per expert, the share of token assignments
 * it received averaged over the last `window` steps (the number printed; the colour is the share
 * relative to a uniform 1/E: white = balanced, red = overloaded, blue = starved). '' without MoE.
 */
export function expertLoadSvg(metrics: StepMetrics[], opts: { window?: number; title?: string } = {}): string {
  const rows = metrics.filter((m) => m.expertLoad && m.expertLoad.length).slice(-(opts.window ?? 50));
  if (!rows.length) return '';
  const layers = rows[rows.length - 1].expertLoad!.length, E = rows[rows.length - 1].expertLoad![0].length;
  const mean = Array.from({ length: layers }, (_, l) => Array.from({ length: E }, (_, e) => rows.reduce((s, m) => s + (m.expertLoad![l]?.[e] ?? 0), 0) / rows.length));
  const cw = Math.max(28, Math.min(56, Math.floor(640 / E))), ch = 22, L = 96, Tp = 40, W = L + E * cw + 20, Hh = Tp + layers * ch + 40;
  const level = (share: number): number => Math.max(-1, Math.min(1, Math.log2(Math.max(share, 1e-6) * E) / 2)); // ±1 at 4× / ¼ of uniform
  const colour = (r: number): string => {
    const a = Math.round(255 * (1 - Math.abs(r)));
    return r >= 0 ? `rgb(255,${a},${a})` : `rgb(${a},${a},255)`;
  };
  const cells = mean.flatMap((row, l) => row.map((v, e) => {
    const r = level(v);
    return `<rect x="${L + e * cw}" y="${Tp + l * ch}" width="${cw - 2}" height="${ch - 2}" fill="${colour(r)}"/>` +
      `<text x="${L + e * cw + cw / 2 - 1}" y="${Tp + l * ch + 15}" text-anchor="middle" font-size="10" fill="${Math.abs(r) > 0.6 ? 'white' : 'black'}">${(v * 100).toFixed(0)}%</text>`;
  }));
  const labels = mean.map((_, l) => `<text x="${L - 6}" y="${Tp + l * ch + 15}" text-anchor="end" font-size="11">MoE layer ${l}</text>`);
  const heads = Array.from({ length: E }, (_, e) => `<text x="${L + e * cw + cw / 2 - 1}" y="${Tp - 6}" text-anchor="middle" font-size="11">e${e}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${Hh}" viewBox="0 0 ${W} ${Hh}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">${esc(opts.title ?? `Expert utilisation (share of assignments, last ${rows.length} steps; uniform = ${(100 / E).toFixed(1)}%)`)}</text>
${heads.join('')}${labels.join('')}${cells.join('')}
</svg>`;
}

export interface ReportData {
  title: string;
  summary: [string, string][];
  metrics: StepMetrics[];
  samples?: { prompt: string; text: string }[];
}

/** A self-contained HTML report: summary table, loss curve, samples. */
export function reportHtml(r: ReportData): string {
  const rows = r.summary.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('');
  const samples = (r.samples ?? []).map((s) => `<div class="sample"><b>${esc(s.prompt)}</b>${esc(s.text)}</div>`).join('');
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(r.title)}</title>
<style>body{font-family:sans-serif;max-width:800px;margin:2em auto;color:#222}table{border-collapse:collapse}th,td{padding:4px 10px;border-bottom:1px solid #eee;text-align:left}.sample{white-space:pre-wrap;background:#f6f6f6;padding:8px;margin:8px 0;border-radius:4px}</style>
</head><body><h1>${esc(r.title)}</h1><table>${rows}</table><h2>Loss</h2>${lossCurveSvg(r.metrics, { title: r.title })}${moeSections(r.metrics)}${samples ? `<h2>Samples</h2>${samples}` : ''}</body></html>`;
}

function moeSections(metrics: StepMetrics[]): string {
  const parts = partsCurveSvg(metrics), load = expertLoadSvg(metrics);
  return (parts ? `<h2>Auxiliary losses</h2>${parts}` : '') + (load ? `<h2>Experts</h2>${load}` : '');
}
