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

function fmtTime(s: number): string {
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

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A loss-curve SVG: training loss per step and validation loss points, with labelled axes. */
export function lossCurveSvg(metrics: StepMetrics[], opts: { width?: number; height?: number; title?: string } = {}): string {
  const W = opts.width ?? 720, Hh = opts.height ?? 360, L = 64, R = 20, Tp = 36, B = 44;
  const train = metrics.filter((m) => Number.isFinite(m.loss));
  const val = metrics.filter((m) => m.valLoss !== undefined && Number.isFinite(m.valLoss));
  const xs = train.map((m) => m.step), ys = [...train.map((m) => m.loss), ...val.map((m) => m.valLoss!)];
  const x0 = Math.min(0, ...xs), x1 = Math.max(1, ...xs);
  let y0 = ys.length ? Math.min(...ys) : 0, y1 = ys.length ? Math.max(...ys) : 1;
  if (y1 - y0 < 1e-9) { y0 -= 0.5; y1 += 0.5; }
  const pad = (y1 - y0) * 0.05;
  y0 -= pad; y1 += pad;
  const sx = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y: number) => Tp + (1 - (y - y0) / (y1 - y0)) * (Hh - Tp - B);
  const path = train.map((m, i) => `${i ? 'L' : 'M'}${sx(m.step).toFixed(1)},${sy(m.loss).toFixed(1)}`).join(' ');
  const ticks = 5;
  const grid: string[] = [];
  for (let i = 0; i <= ticks; i++) {
    const y = y0 + ((y1 - y0) * i) / ticks, x = x0 + ((x1 - x0) * i) / ticks;
    grid.push(`<line x1="${L}" x2="${W - R}" y1="${sy(y).toFixed(1)}" y2="${sy(y).toFixed(1)}" stroke="#e5e5e5"/>`);
    grid.push(`<text x="${L - 6}" y="${(sy(y) + 4).toFixed(1)}" text-anchor="end" font-size="11">${y.toFixed(2)}</text>`);
    grid.push(`<text x="${sx(x).toFixed(1)}" y="${Hh - B + 16}" text-anchor="middle" font-size="11">${Math.round(x)}</text>`);
  }
  const dots = val.map((m) => `<circle cx="${sx(m.step).toFixed(1)}" cy="${sy(m.valLoss!).toFixed(1)}" r="3.5" fill="#d62728"/>`).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${Hh}" viewBox="0 0 ${W} ${Hh}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">${esc(opts.title ?? 'Loss')}</text>
${grid.join('\n')}
<line x1="${L}" x2="${L}" y1="${Tp}" y2="${Hh - B}" stroke="#333"/><line x1="${L}" x2="${W - R}" y1="${Hh - B}" y2="${Hh - B}" stroke="#333"/>
<path d="${path}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>
${dots}
<text x="${W / 2}" y="${Hh - 8}" text-anchor="middle" font-size="12">step</text>
<text x="16" y="${Hh / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 16 ${Hh / 2})">cross-entropy (nats/token)</text>
<rect x="${W - R - 170}" y="${Tp + 4}" width="164" height="40" fill="white" stroke="#ccc"/>
<line x1="${W - R - 160}" x2="${W - R - 136}" y1="${Tp + 18}" y2="${Tp + 18}" stroke="#1f77b4" stroke-width="2"/><text x="${W - R - 130}" y="${Tp + 22}" font-size="11">training loss</text>
<circle cx="${W - R - 148}" cy="${Tp + 34}" r="3.5" fill="#d62728"/><text x="${W - R - 130}" y="${Tp + 38}" font-size="11">validation loss</text>
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
</head><body><h1>${esc(r.title)}</h1><table>${rows}</table><h2>Loss</h2>${lossCurveSvg(r.metrics, { title: r.title })}${samples ? `<h2>Samples</h2>${samples}` : ''}</body></html>`;
}
