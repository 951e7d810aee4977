// Chain speculative decoding (draft model, prompt lookup) against plain decoding on a trained
// model: wall-clock decode tokens/s on an input-grounded prompt (a passage twice, then its
// beginning again: the continuation can copy it) and on an open prompt (little to copy), greedy (outputs
// checked identical to plain) and sampled, at each thread count. For `tslm bench speculative`.
//
//   benchSpeculativeChain({ model: dir, draft?: dir, threads: [1, 2] })
import { init, shutdown } from '../src/backend/index.js';
import { loadModel } from '../src/io/model.js';
import { generate } from '../src/generate/generate.js';
import { speculativeGenerate } from '../src/generate/speculative.js';
import type { ChainSpeculativeOptions } from '../src/generate/speculative.js';
import type { SpeculativeStats } from '../src/generate/stepped.js';
import type { GenerateOptions, GenerationResult } from '../src/generate/generate.js';

export interface ChainRow {
  threads: number;
  prompt: 'grounded' | 'open';
  mode: 'greedy' | 'sampled';
  method: 'plain' | 'lookup' | 'draft';
  prompt_tokens: number;
  tokens: number;
  decode_tokens_per_s: number;
  /** decode tokens/s over plain decoding's (same prompt, mode and threads). */
  speedup: number;
  mean_accepted_length: number | null;
  acceptance_rate: number | null;
  /** Greedy: the output equals plain greedy decoding's. */
  identical: boolean | null;
}

/** The grounded prompt is this passage twice, then its start again: the rest is there to copy. */
export const GROUNDED_TEXT = 'Mr. Johnson, the new director of the museum, told the board that the building needs a new roof.';

export async function benchSpeculativeChain(opts: {
  model: string; draft?: string; threads?: number[]; tokens?: number; reps?: number; log?: (line: string) => void;
  grounded?: string; open?: string; lookup?: { ngram?: number; numDraft?: number }; numDraft?: number;
}): Promise<ChainRow[]> {
  const log = opts.log ?? (() => {});
  const rows: ChainRow[] = [];
  for (const threads of opts.threads ?? [1, 2]) {
    await init({ threads, backend: 'wasm' });
    try {
      const { model, tokenizer } = await loadModel(opts.model);
      const draft = opts.draft ? (await loadModel(opts.draft)).model : null;
      if (!tokenizer) throw new Error(`bench speculative: no tokenizer in ${opts.model}`);
      const text = opts.grounded ?? GROUNDED_TEXT;
      const grounded = tokenizer.encode(`${text}\n${text}\n${text.slice(0, 30)}`);
      const open = tokenizer.encode(opts.open ?? 'Once upon a time');
      const ctx = model.contextLength;
      for (const [name, prompt] of [['grounded', grounded], ['open', open]] as const) {
        const tokens = Math.min(opts.tokens ?? 64, ctx - prompt.length);
        for (const mode of ['greedy', 'sampled'] as const) {
          const base: GenerateOptions = { maxNewTokens: tokens, stopIds: [], ...(mode === 'sampled' ? { temperature: 0.7, topP: 0.9, seed: 1 } : {}) };
          const methods: [ChainRow['method'], ChainSpeculativeOptions | null][] = [['plain', null], ['lookup', { lookup: opts.lookup ?? {} }]];
          if (draft) methods.push(['draft', { draft, numDraft: opts.numDraft ?? 4 }]);
          let plainRate = 0, plainIds: number[] = [];
          for (const [method, spec] of methods) {
            const run = (): GenerationResult => (spec ? speculativeGenerate(model, prompt, { ...base, ...spec }) : generate(model, prompt, base));
            const r = best(run, opts.reps ?? 5);
            const rate = r.stats.decodeTokens / (r.stats.decodeMs / 1000);
            if (method === 'plain') { plainRate = rate; plainIds = r.ids[0]; }
            const s = (r.stats as { speculative?: SpeculativeStats }).speculative;
            const row: ChainRow = {
              threads, prompt: name, mode, method, prompt_tokens: prompt.length, tokens: r.ids[0].length,
              decode_tokens_per_s: round(rate), speedup: round(rate / plainRate),
              mean_accepted_length: s ? round(s.meanAcceptedLength) : null, acceptance_rate: s ? round(s.acceptanceRate) : null,
              identical: mode === 'greedy' ? JSON.stringify(r.ids[0]) === JSON.stringify(plainIds) : null,
            };
            rows.push(row);
            log(`${threads} thr  ${name.padEnd(8)} ${mode.padEnd(7)} ${method.padEnd(6)} ${String(row.tokens).padStart(4)} tok  ${row.decode_tokens_per_s.toFixed(1).padStart(7)} tok/s  ×${row.speedup.toFixed(2)}` +
              (s ? `  accepted/step ${row.mean_accepted_length!.toFixed(2)}  rate ${row.acceptance_rate!.toFixed(2)}` : '') + (row.identical === false ? '  OUTPUT DIFFERS' : ''));
          }
        }
      }
      model.dispose();
      draft?.dispose();
    } finally {
      await shutdown();
    }
  }
  return rows;
}

/** The run with the shortest decode time of reps runs (after a warm-up run). */
function best(run: () => GenerationResult, reps: number): GenerationResult {
  run();
  let b: GenerationResult | null = null;
  for (let i = 0; i < reps; i++) {
    const r = run();
    if (!b || r.stats.decodeMs < b.stats.decodeMs) b = r;
  }
  return b!;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

/** `node dist/bench/speculative_chain.js <model dir> [draft dir]` */
if (process.argv[1]?.endsWith('speculative_chain.js') && process.argv[2]) {
  const rows = await benchSpeculativeChain({ model: process.argv[2], draft: process.argv[3], log: (l) => console.log(l), threads: process.env.THREADS?.split(',').map(Number) });
  if (process.env.JSON) console.log(JSON.stringify(rows));
}

