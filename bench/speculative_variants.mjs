// Speculative-decoding variants side by side on the speculative bench's cached models (run
// `npx tslm bench speculative` once first): Medusa trees and options, prompt-lookup options,
// against plain greedy decoding, each run taking its turn in every round (best of --reps after a
// warm-up round). Reports decode tok/s, the speedup over plain decoding by wall clock and by the
// process's CPU time (steadier on a shared machine: another process's load stretches wall time),
// tokens per model call, and whether the output is plain greedy decoding's.
//
//   node bench/speculative_variants.mjs [--threads 1] [--reps 8] [--tokens 96] [--medusa-dtype q8_0|f32] [--medusa DIR] [--model DIR]
//        [--variants '[["name", {"medusa": {...}} | {"lookup": {...}}], …]'] [--prompts '{"name": "text", …}']
// (a variant's "medusa": {"dir": DIR, …} decodes with the heads in DIR instead of --medusa's)
// (after `npm run build`)
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { init, shutdown } from '../dist/src/backend/index.js';
import { loadModel } from '../dist/src/io/model.js';
import { generate } from '../dist/src/generate/generate.js';
import { loadMedusaHeads } from '../dist/src/io/medusa.js';
import { GROUNDED_TEXT } from '../dist/bench/speculative.js';

const { values } = parseArgs({ options: { threads: { type: 'string' }, reps: { type: 'string' }, tokens: { type: 'string' }, variants: { type: 'string' }, prompts: { type: 'string' }, 'medusa-dtype': { type: 'string' }, medusa: { type: 'string' }, model: { type: 'string' } } });
const cache = path.join(path.dirname(fileURLToPath(import.meta.url)), '.cache', 'speculative');
const threads = Number(values.threads ?? 1), reps = Number(values.reps ?? 8), tokens = Number(values.tokens ?? 96);
const variants = JSON.parse(values.variants ?? '[["medusa", {"medusa": {}}], ["lookup", {"lookup": {}}]]');
const texts = values.prompts ? JSON.parse(values.prompts) : { grounded: `${GROUNDED_TEXT}\n${GROUNDED_TEXT}\n${GROUNDED_TEXT.slice(0, 30)}`, open: 'Once upon a time' };
await init({ threads, backend: 'wasm' });
try {
  const { model, tokenizer } = await loadModel(values.model ?? path.join(cache, 'base', 'checkpoint'));
  const dtype = values['medusa-dtype'] === 'f32' ? 'f32' : 'q8_0';
  // A variant's heads: its medusa.dir, else --medusa, else the bench's cached heads.
  const headsOf = new Map();
  for (const [, v] of variants) {
    const dir = v.medusa ? v.medusa.dir ?? values.medusa ?? path.join(cache, 'medusa') : null;
    if (dir && !headsOf.has(dir)) headsOf.set(dir, (await loadMedusaHeads(dir, { base: model, dtype })).heads);
  }
  model.eval();
  console.log(`${threads} thread(s), best of ${reps} interleaved rounds after a warm-up; speedup over plain greedy decoding by wall clock and by CPU time; tokens per model call`);
  for (const [name, text] of Object.entries(texts)) {
    const prompt = tokenizer.encode(text);
    const runs = [['plain', null], ...variants.map(([n, v]) => [n, v.medusa ? { medusa: { ...v.medusa, heads: headsOf.get(v.medusa.dir ?? values.medusa ?? path.join(cache, 'medusa')) } } : v])];
    const best = runs.map(() => null), cpu = runs.map(() => Infinity);
    for (let r = 0; r <= reps; r++) {
      runs.forEach(([, spec], i) => {
        const c0 = process.cpuUsage();
        const res = generate(model, prompt, { maxNewTokens: tokens, stopIds: [], ...(spec ? { speculative: spec } : {}) });
        const c = process.cpuUsage(c0);
        if (r === 0) return;
        if (!best[i] || res.stats.decodeMs < best[i].stats.decodeMs) best[i] = res;
        cpu[i] = Math.min(cpu[i], (c.user + c.system) / 1000);
      });
    }
    const plain = best[0];
    runs.forEach(([n], i) => {
      const r = best[i], s = r.stats.speculative;
      const same = JSON.stringify(r.ids[0]) === JSON.stringify(plain.ids[0]);
      console.log(`${name.padEnd(10)} ${n.padEnd(22)} ${(r.stats.decodeTokens / r.stats.decodeMs * 1000).toFixed(0).padStart(6)} tok/s  wall ${(plain.stats.decodeMs / r.stats.decodeMs).toFixed(2)}×  cpu ${(cpu[0] / cpu[i]).toFixed(2)}×  ${s ? s.meanAcceptedLength.toFixed(2).padStart(5) + ' per call' : ''}${same ? '' : '  OUTPUT DIFFERS'}`);
    });
  }
  model.dispose();
  for (const h of headsOf.values()) h.dispose();
} finally {
  await shutdown();
}
