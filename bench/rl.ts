// Rollout throughput for policy optimisation: G = 8 sampled completions of each of 8 prompts
// through rollout() (continuous batching, per-token log-probabilities, stop-tag checks) beside
// plain batched generation of the same 64 sequences (generate() with the 64 prompts as one
// batch, sampling at the same temperature, no log-probabilities). Both decode exactly 64 new
// tokens per sequence (no stop ids), so the token counts are equal. Also generate() with
// log-probabilities, the cost rollouts carry. Models: the rl demo's shape
// (0.76M parameters) and stories15M's (random weights: the speed does not depend on them).
//
//   npx tslm bench rl [--threads N]
import { init } from '../src/backend/index.js';
import { Generator } from '../src/tensor/random.js';
import { createModel } from '../src/models/index.js';
import { generate } from '../src/generate/generate.js';
import { rollout } from '../src/align/rollout.js';
import { arithmeticProblems, arithmeticTokenizer } from '../src/align/task.js';
import { demoConfig } from '../src/align/demo.js';
import { promptTokens } from '../src/align/data.js';
import { PRESETS } from '../src/train/presets.js';
import { timeBest } from './timing.js';

export interface RlBenchRow { model: string; threads: number; sequences: number; new_tokens: number; rollout_tok_s: number; generate_tok_s: number; generate_logprobs_tok_s: number; ratio: number }

export async function benchRl(o: { log?: (l: string) => void; threads?: number } = {}): Promise<RlBenchRow[]> {
  const log = o.log ?? (() => {});
  const threads = o.threads ?? 2;
  await init({ threads });
  const rows = arithmeticProblems({ count: 2000, seed: 1, steps: [3], maxOperand: 9, teacherError: 0.7 });
  const tok = arithmeticTokenizer(rows);
  const P = 8, G = 8, N = 64;
  const prompts = rows.slice(0, P).map((r) => promptTokens(tok, r.prompt));
  const out: RlBenchRow[] = [];
  log(`${'model'.padEnd(18)} ${'threads'.padStart(7)} ${'sequences'.padStart(9)} ${'rollout tok/s'.padStart(14)} ${'generate tok/s'.padStart(15)} ${'ratio'.padStart(6)} ${'generate+logprobs tok/s'.padStart(24)}`);
  const shapes: [string, Record<string, unknown>][] = [['rl demo (0.76M)', demoConfig(tok.vocabSize)], ['stories15M shape', { ...PRESETS['15m'], vocab_size: 32000 }]];
  for (const [name, cfg] of shapes) {
    const model = createModel({ ...cfg, max_position_embeddings: Math.max(Number(cfg.max_position_embeddings), 128) }, name, { generator: new Generator(0) });
    model.eval();
    // Prompts in the model's vocabulary (the 15M shape's ids are the demo tokenizer's, all < 32000);
    // ids the tokenizer does not have (a random 32000-token model samples them) decode to nothing.
    const V = tok.vocabSize;
    const tk = Object.assign(Object.create(Object.getPrototypeOf(tok)), tok, { decode: (ids: readonly number[]) => tok.decode(ids.filter((x) => x < V)) }) as typeof tok;
    const many = prompts.flatMap((p) => Array.from({ length: G }, () => p));
    let seed = 0;
    // Alternate the two (best of each over the rounds), so neither gets the warmer machine.
    const runRollout = () => { rollout(model, tk, prompts, { groupSize: G, maxNewTokens: N, temperature: 1, seed: seed++, stopIds: [], stopTags: ['</answer>'] }); };
    const runGenerate = () => { generate(model, many, { maxNewTokens: N, temperature: 1, seed: seed++, stopIds: [] }); };
    const runLogprobs = () => { generate(model, many, { maxNewTokens: N, temperature: 1, seed: seed++, stopIds: [], logprobs: true }); };
    let tRollout = Infinity, tGenerate = Infinity, tLogprobs = Infinity;
    for (let round = 0; round < 5; round++) {
      tRollout = Math.min(tRollout, timeBest(runRollout, 0.5));
      tGenerate = Math.min(tGenerate, timeBest(runGenerate, 0.5));
      tLogprobs = Math.min(tLogprobs, timeBest(runLogprobs, 0.5));
    }
    // rollout stops at '</answer>'; a random model rarely writes it, so count what it produced.
    const produced = rollout(model, tk, prompts, { groupSize: G, maxNewTokens: N, temperature: 1, seed: 0, stopIds: [], stopTags: ['</answer>'] }).reduce((s, r) => s + r.ids.length, 0);
    const row: RlBenchRow = {
      model: name, threads, sequences: P * G, new_tokens: N, rollout_tok_s: produced / tRollout, generate_tok_s: (P * G * N) / tGenerate, generate_logprobs_tok_s: (P * G * N) / tLogprobs, ratio: 0,
    };
    row.ratio = row.rollout_tok_s / row.generate_tok_s;
    out.push(row);
    log(`${name.padEnd(18)} ${String(threads).padStart(7)} ${String(P * G).padStart(9)} ${row.rollout_tok_s.toFixed(0).padStart(14)} ${row.generate_tok_s.toFixed(0).padStart(15)} ${row.ratio.toFixed(2).padStart(6)} ${row.generate_logprobs_tok_s.toFixed(0).padStart(24)}`);
    model.dispose();
  }
  return out;
}
