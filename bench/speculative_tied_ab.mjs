// Wall-clock A/B of one Medusa heads directory decoded through the tied path (heads whose LM
// weight is the base head: one few-row product with a Q8_0 copy of it) and through the heads' own
// Q8_0 LM heads (loadMedusaHeads tie: false; the same values, so the same candidates and tokens
// per call), beside plain greedy decoding; rounds interleaved, the least CPU time of each call kept
// (1 thread: the process's CPU time is the decoding's; prefill included).
//
//   node bench/speculative_tied_ab.mjs --model DIR <medusa dir> [--threads 1] [--reps 8] [--tokens 96]
import { parseArgs } from 'node:util';
import { init, shutdown } from '../dist/src/backend/index.js';
import { loadModel } from '../dist/src/io/model.js';
import { generate } from '../dist/src/generate/generate.js';
import { loadMedusaHeads } from '../dist/src/io/medusa.js';
import { GROUNDED_TEXT } from '../dist/bench/speculative.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { model: { type: 'string' }, threads: { type: 'string' }, reps: { type: 'string' }, tokens: { type: 'string' } } });
const tokens = Number(values.tokens ?? 96), reps = Number(values.reps ?? 8);
await init({ threads: Number(values.threads ?? 1), backend: 'wasm' });
try {
  const { model, tokenizer } = await loadModel(values.model);
  model.eval();
  const tied = await loadMedusaHeads(positionals[0], { base: model, dtype: 'q8_0' });
  const own = await loadMedusaHeads(positionals[0], { base: model, dtype: 'q8_0', tie: false });
  console.log(`tied heads: [${tied.tied}]; own: [${own.tied}]`);
  for (const [name, text] of [['grounded', `${GROUNDED_TEXT}\n${GROUNDED_TEXT}\n${GROUNDED_TEXT.slice(0, 30)}`], ['open', 'Once upon a time']]) {
    const prompt = tokenizer.encode(text);
    const runs = { plain: {}, own: { speculative: { medusa: { heads: own.heads } } }, tied: { speculative: { medusa: { heads: tied.heads } } } };
    const best = {}, ids = {};
    for (let r = 0; r <= reps; r++) {
      for (const [k, o] of Object.entries(runs)) {
        const c0 = process.cpuUsage();
        const res = generate(model, prompt, { maxNewTokens: tokens, stopIds: [], ...o });
        const c = process.cpuUsage(c0);
        ids[k] = JSON.stringify(res.ids[0]);
        // CPU time of the whole call (prefill included), steadier than wall-clock on a loaded machine.
        if (r > 0) best[k] = Math.min(best[k] ?? Infinity, (c.user + c.system) / 1000);
      }
    }
    console.log(`${name.padEnd(9)} CPU ms: plain ${best.plain.toFixed(1)}; own LM heads ${best.own.toFixed(1)} ms (${(best.plain / best.own).toFixed(2)}×); tied ${best.tied.toFixed(1)} ms (${(best.plain / best.tied).toFixed(2)}×); tied/own ${(best.own / best.tied).toFixed(3)}` +
      `${ids.own === ids.plain && ids.tied === ids.plain ? '  identical' : '  OUTPUT DIFFERS'}`);
  }
  tied.heads.dispose();
  own.heads.dispose();
  model.dispose();
} finally {
  await shutdown();
}
