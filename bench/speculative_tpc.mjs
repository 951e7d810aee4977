// Tokens per model call (deterministic, load-independent) of Medusa heads on the speculative
// bench's base, for one or more heads directories side by side: greedy, --tokens new tokens, on
// the bench's two prompts and any --prompts; every output checked against plain greedy decoding.
//
//   node bench/speculative_tpc.mjs [--tokens 96] [--prompts '{"name": "text", …}'] [--model DIR]
//        [--choices '{"chain3": [[0],[0,0],[0,0,0]], …}'] [--lookup] <medusa dir> [medusa dir …]
// (after `npm run build`; the base defaults to bench/.cache/speculative/base/checkpoint)
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { init, shutdown } from '../dist/src/backend/index.js';
import { loadModel } from '../dist/src/io/model.js';
import { generate } from '../dist/src/generate/generate.js';
import { loadMedusaHeads } from '../dist/src/io/medusa.js';
import { GROUNDED_TEXT } from '../dist/bench/speculative.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { tokens: { type: 'string' }, prompts: { type: 'string' }, model: { type: 'string' }, choices: { type: 'string' }, lookup: { type: 'boolean', default: false } } });
const cache = path.join(path.dirname(fileURLToPath(import.meta.url)), '.cache', 'speculative');
const tokens = Number(values.tokens ?? 96);
const texts = { grounded: `${GROUNDED_TEXT}\n${GROUNDED_TEXT}\n${GROUNDED_TEXT.slice(0, 30)}`, open: 'Once upon a time', ...(values.prompts ? JSON.parse(values.prompts) : {}) };
const trees = values.choices ? JSON.parse(values.choices) : { chain3: [[0], [0, 0], [0, 0, 0]], chain4: [[0], [0, 0], [0, 0, 0], [0, 0, 0, 0]] };
const dirs = positionals.length ? positionals : [path.join(cache, 'medusa')];
await init({ threads: 1, backend: 'wasm' });
try {
  const { model, tokenizer } = await loadModel(values.model ?? path.join(cache, 'base', 'checkpoint'));
  model.eval();
  const heads = [];
  for (const d of dirs) heads.push((await loadMedusaHeads(d, { base: model, dtype: 'q8_0' })).heads);
  const cols = dirs.flatMap((d) => Object.keys(trees).flatMap((t) => [`${path.basename(d)}:${t}`, ...(values.lookup ? [`${path.basename(d)}:${t}+lookup`] : [])]));
  console.log(`tokens per model call, greedy, ${tokens} tokens\n${'prompt'.padEnd(10)} ${cols.join('  ')}`);
  for (const [name, text] of Object.entries(texts)) {
    const prompt = tokenizer.encode(text);
    const plain = generate(model, prompt, { maxNewTokens: tokens, stopIds: [] }).ids[0];
    const out = [];
    for (const h of heads) {
      for (const choices of Object.values(trees)) {
        for (const lookup of values.lookup ? [false, true] : [false]) {
          const r = generate(model, prompt, { maxNewTokens: tokens, stopIds: [], speculative: { medusa: { heads: h, choices, ...(lookup ? { lookup: {} } : {}) } } });
          const same = JSON.stringify(r.ids[0]) === JSON.stringify(plain);
          out.push(`${r.stats.speculative.meanAcceptedLength.toFixed(2)}${same ? '' : ' DIFFERS'}`);
        }
      }
    }
    console.log(`${name.padEnd(10)} ${out.join('  ')}`);
  }
  for (const h of heads) h.dispose();
  model.dispose();
} finally {
  await shutdown();
}
