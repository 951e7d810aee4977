// LLaMA inference throughput: prefill and decode tokens/s of tslm on a 15M-parameter
// llama2.c-style model (dim 288, 6 layers, 6 heads, vocab 32000, 256 positions; the TinyStories
// "stories15M" shape, tied embeddings) beside llama.cpp (node-llama-cpp, CPU build) running the
// GGUF (F32) export of the same seeded random weights, in the same run, on the same thread
// counts. Also checks that both engines pick the same greedy tokens.
//
//   prefill: a 128-token prompt, time to the first generated token (one forward of 128
//            positions + the last position's logits + one greedy pick);
//   decode:  200 greedy tokens with a KV cache after an 8-token prompt, timed from the first
//            generated token to the last: (tokens − 1) forward steps of one position each.
// Best of `reps` runs of each, after a warm-up run.
//
// Run: node dist/bench/llama.js [--threads 1,2] [--tokens 200] [--reps 3] [--json]
import { loadNodeLlamaCpp } from './peers/nlc.js';
import { cpuLine } from './timing.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { init, shutdown, generate, exportGguf, randn, scope, Generator, LlamaForCausalLM, parseLlamaConfig } from '../src/index.js';
import type { Tensor } from '../src/index.js';
import type { GgufTokenizer } from '../src/index.js';

export interface Row {
  engine: 'tslm' | 'llama.cpp';
  threads: number;
  /** Prompt tokens per second (128-token prompt, to the first generated token). */
  prefill_tok_s: number;
  /** Generated tokens per second with a KV cache. */
  decode_tok_s: number;
  /** Leading greedy tokens equal to the other engine's (out of `tokens`). */
  agree: number;
  tokens: number;
}

/** llama2.c's stories15M shape as an HF config. */
export const LLAMA_15M = {
  model_type: 'llama', vocab_size: 32000, hidden_size: 288, intermediate_size: 768, num_hidden_layers: 6,
  num_attention_heads: 6, num_key_value_heads: 6, max_position_embeddings: 256, rms_norm_eps: 1e-5,
  rope_theta: 10000, tie_word_embeddings: true, initializer_range: 0.02, bos_token_id: 1, eos_token_id: 2,
};

/**
 * The model with seeded random weights that do not degenerate: embeddings N(0, 0.02²) as HF
 * initialises them, projections N(0, 1/fan_in) (HF's std 0.02 everywhere makes a random model
 * repeat one token forever: its greedy path would check little), norms 1.
 */
export function randomLlama15M(seed: number): LlamaForCausalLM {
  const model = new LlamaForCausalLM(parseLlamaConfig(LLAMA_15M), { generator: new Generator(seed) });
  const g = new Generator(seed + 1);
  scope(() => {
    const sd: Record<string, Tensor> = {};
    for (const [name, t] of model.namedTensors()) {
      if (t.ndim !== 2 || name.includes('embed_tokens')) continue;
      sd[name] = randn(t.shape, { generator: g, std: 1 / Math.sqrt(t.shape[1]) });
    }
    model.loadStateDict(sd, { strict: false });
  });
  return model;
}

const PREFILL_TOKENS = 128;
const DECODE_PROMPT = 8;

/**
 * A SentencePiece-style ("llama") vocabulary of `size` tokens llama.cpp accepts: <unk>, <s>,
 * </s>, the 256 byte tokens <0x00>…<0xFF>, then ordinary pieces.
 */
export function spmVocab(size: number): GgufTokenizer {
  const tokens = ['<unk>', '<s>', '</s>'], types = [2, 3, 3], scores = [0, 0, 0];
  for (let b = 0; b < 256; b++) { tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`); types.push(6); scores.push(0); }
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  for (let i = 0; tokens.length < size; i++) {
    tokens.push(i < letters.length ? letters[i] : `\u2581w${i}`);
    types.push(1);
    scores.push(-i);
  }
  return { model: 'llama', pre: 'default', tokens, scores, tokenTypes: types, bosId: 1, eosId: 2, unkId: 0, addBos: true, addEos: false };
}

export function prompts(seed: number, vocab: number): { prefill: number[]; decode: number[] } {
  const g = new Generator(seed);
  const pick = (n: number) => [1, ...Array.from({ length: n - 1 }, () => 259 + Math.floor(g.uniform() * (vocab - 259)))];
  return { prefill: pick(PREFILL_TOKENS), decode: pick(DECODE_PROMPT) };
}

/** Rate of a stream of token timestamps: (n − 1) steps between the first and the last. */
const rate = (stamps: number[]): number => (stamps.length - 1) / ((stamps[stamps.length - 1] - stamps[0]) / 1000);

export function tslmRun(model: LlamaForCausalLM, p: { prefill: number[]; decode: number[] }, tokens: number): { prefill: number; decode: number; ids: number[] } {
  const pre = generate(model, p.prefill, { maxNewTokens: 1, stopIds: [] });
  const stamps: number[] = [];
  const dec = generate(model, p.decode, { maxNewTokens: tokens, stopIds: [], onToken: () => stamps.push(performance.now()) });
  return { prefill: pre.stats.prefillTokensPerSecond, decode: rate(stamps), ids: dec.ids[0] };
}

// node-llama-cpp is not a package.json dependency (see bench/peers/nlc.ts): loaded untyped.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type NLC = any;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type LlamaCtx = any;
type Token = number;

export async function llamaCppRun(ctx: LlamaCtx, p: { prefill: number[]; decode: number[] }, tokens: number): Promise<{ prefill: number; decode: number; ids: number[] }> {
  const seq = ctx.getSequence();
  try {
    let t0 = performance.now(), prefill = 0;
    for await (const _ of seq.evaluate(p.prefill as Token[], { temperature: 0 })) { prefill = p.prefill.length / ((performance.now() - t0) / 1000); break; }
    await seq.clearHistory();
    const stamps: number[] = [], ids: number[] = [];
    t0 = performance.now();
    for await (const tok of seq.evaluate(p.decode as Token[], { temperature: 0 })) {
      stamps.push(performance.now());
      ids.push(tok as number);
      if (ids.length >= tokens) break;
    }
    await seq.clearHistory();
    return { prefill, decode: rate(stamps), ids };
  } finally {
    seq.dispose();
  }
}

function best<R extends { prefill: number; decode: number }>(runs: R[]): R {
  return { ...runs[0], prefill: Math.max(...runs.map((r) => r.prefill)), decode: Math.max(...runs.map((r) => r.decode)) };
}

const agreeing = (a: number[], b: number[]): number => {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
};

export const LLAMA_HEADER = [
  'threads  prefill tok/s: tslm  llama.cpp  ratio   decode tok/s: tslm  llama.cpp  ratio   greedy agree',
  '-------  -------------------------------------  ------------------------------------  ------------',
].join('\n');

export function formatLlamaRows(t: Row, l: Row | undefined): string {
  const f = (x: number) => x.toFixed(1).padStart(9);
  const r = (a: number, b: number | undefined) => (b ? `${(a / b).toFixed(2)}×` : '—').padStart(7);
  return `${String(t.threads).padStart(7)}  ${' '.repeat(13)}${f(t.prefill_tok_s)}  ${l ? f(l.prefill_tok_s) : '        —'}  ${r(t.prefill_tok_s, l?.prefill_tok_s)}`
    + `  ${' '.repeat(12)}${f(t.decode_tok_s)}  ${l ? f(l.decode_tok_s) : '        —'}  ${r(t.decode_tok_s, l?.decode_tok_s)}`
    + `  ${l ? `${t.agree}/${t.tokens}` : '—'}`.padStart(14);
}

/**
 * Prefill and decode tokens/s of tslm and llama.cpp on the 15M model, per thread count
 * (default 1 and 2). Rows: one per engine and thread count; llama.cpp rows are absent when
 * node-llama-cpp cannot load (the reason is logged).
 */
export async function benchLlama(opts: { threads?: number[]; tokens?: number; reps?: number; seed?: number; log?: (line: string) => void } = {}): Promise<Row[]> {
  const threads = opts.threads ?? [1, 2];
  const tokens = opts.tokens ?? 200, reps = opts.reps ?? 3, seed = opts.seed ?? 1234;
  const log = opts.log ?? (() => {});
  const cfg = parseLlamaConfig(LLAMA_15M);
  if (DECODE_PROMPT + tokens > cfg.max_position_embeddings) throw new RangeError(`benchLlama: ${tokens} tokens exceed the model's ${cfg.max_position_embeddings} positions`);
  await init({ threads: threads[0], backend: 'wasm' });
  const model = randomLlama15M(seed);
  const p = prompts(seed + 2, cfg.vocab_size);
  const dir = mkdtempSync(path.join(tmpdir(), 'tslm-bench-llama-'));
  const rows: Row[] = [];
  try {
    const gguf = path.join(dir, 'llama15m-f32.gguf');
    await exportGguf(model, gguf, spmVocab(cfg.vocab_size), 'F32');
    let llama: NLC | null = null;
    const loaded = await loadNodeLlamaCpp({ maxThreads: Math.max(...threads) });
    if ('error' in loaded) log(`llama.cpp: ${loaded.error}; tslm only`);
    else llama = loaded.llama;
    log(cpuLine());
    const lm = llama ? await llama.loadModel({ modelPath: gguf, gpuLayers: 0 }) : null;
    try {
      for (const th of threads) {
        await init({ threads: th, backend: 'wasm' });
        tslmRun(model, p, Math.min(tokens, 16)); // warm-up (JIT, heap)
        const ours = best(Array.from({ length: reps }, () => tslmRun(model, p, tokens)));
        let theirs: { prefill: number; decode: number; ids: number[] } | null = null;
        if (lm) {
          const ctx = await lm.createContext({
            contextSize: cfg.max_position_embeddings, batchSize: cfg.max_position_embeddings, sequences: 1,
            threads: { ideal: th, min: th }, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
          });
          try {
            await llamaCppRun(ctx, p, Math.min(tokens, 16));
            const runs = [];
            for (let i = 0; i < reps; i++) runs.push(await llamaCppRun(ctx, p, tokens));
            theirs = best(runs);
          } finally {
            await ctx.dispose();
          }
        }
        const agree = theirs ? agreeing(ours.ids, theirs.ids) : 0;
        const t: Row = { engine: 'tslm', threads: th, prefill_tok_s: ours.prefill, decode_tok_s: ours.decode, agree, tokens };
        rows.push(t);
        let l: Row | undefined;
        if (theirs) rows.push(l = { engine: 'llama.cpp', threads: th, prefill_tok_s: theirs.prefill, decode_tok_s: theirs.decode, agree, tokens });
        log(formatLlamaRows(t, l));
      }
    } finally {
      await lm?.dispose();
      await llama?.dispose();
    }
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { threads: { type: 'string' }, tokens: { type: 'string' }, reps: { type: 'string' }, json: { type: 'boolean', default: false } } });
  const threads = values.threads ? values.threads.split(',').map(Number) : undefined;
  const tokens = values.tokens ? Number(values.tokens) : undefined;
  const reps = values.reps ? Number(values.reps) : undefined;
  if (!values.json) {
    console.log('\nLLaMA 15M (dim 288, 6 layers, 6 heads, vocab 32000), f32 weights and KV cache; best of runs');
    console.log('prefill: 128-token prompt; decode: greedy with a KV cache; ratio = tslm / llama.cpp (node-llama-cpp, CPU)');
    console.log(LLAMA_HEADER);
  }
  try {
    const rows = await benchLlama({ threads, tokens, reps, log: values.json ? undefined : (s) => console.log(s) });
    if (values.json) console.log(JSON.stringify(rows.map((r) => ({ ...r, prefill_tok_s: Math.round(r.prefill_tok_s * 10) / 10, decode_tok_s: Math.round(r.decode_tok_s * 10) / 10 }))));
  } finally {
    await shutdown();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
