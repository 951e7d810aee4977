// Medusa heads scored on held-out self-distilled rows (the data/val.bin a `tslm medusa train`
// run writes: rows of 128 tokens, BOS + an 8-token prompt + the base's greedy continuation), as
// greedy chain decoding would use them: at every generated position t, how many of the heads'
// top-1 guesses in a row are right (head k against the token t+k+2), hence the expected tokens
// per model call of a chain of 1…4 heads (1 + the accepted guesses) if a step started there —
// a deterministic, load-independent measure over thousands of positions (the bench's two prompts
// give ~30 steps each). Several heads directories side by side, on the same rows.
//
//   node bench/speculative_chain.mjs --val <medusa dir>/data/val.bin [--rows 64] [--model DIR] <medusa dir> [medusa dir …]
// (after `npm run build`; the base defaults to bench/.cache/speculative/base/checkpoint; score
// only rows that none of the heads trained on: the first 64 of a 4,096-prompt run's val.bin are
// held out of the bench's 1,024-prompt heads too, the prompts being drawn in the same seeded order)
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { init, shutdown } from '../dist/src/backend/index.js';
import { loadModel } from '../dist/src/io/model.js';
import { loadMedusaHeads } from '../dist/src/io/medusa.js';
import * as T from '../dist/src/tensor/ops.js';
import { noGrad } from '../dist/src/tensor/autograd.js';
import { scope } from '../dist/src/tensor/storage.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { val: { type: 'string' }, rows: { type: 'string' }, model: { type: 'string' } } });
if (!values.val || !positionals.length) throw new Error('usage: node bench/speculative_chain.mjs --val FILE [--rows 64] [--model DIR] <medusa dir> …');
const cache = path.join(path.dirname(fileURLToPath(import.meta.url)), '.cache', 'speculative');
const L = 128, P = 9, K = 4;
await init({ threads: 1, backend: 'wasm' });
try {
  const { model } = await loadModel(values.model ?? path.join(cache, 'base', 'checkpoint'));
  model.eval();
  const b = readFileSync(values.val);
  const all = new Int32Array(b.buffer, b.byteOffset, b.length / 4);
  const rows = [];
  for (let i = 0; i + L <= all.length && rows.length < Number(values.rows ?? 64); i += L) rows.push(all.subarray(i, i + L));
  console.log(`${rows.length} held-out rows; per heads directory: top-1 of heads 0…3 at generated positions, expected tokens per call of a chain of 1…4 heads`);
  for (const dir of positionals) {
    const { heads } = await loadMedusaHeads(dir, { base: model });
    heads.eval();
    const right = new Array(K).fill(0), sums = new Array(K).fill(0);
    let n = 0;
    for (let r0 = 0; r0 < rows.length; r0 += 8) {
      const g = rows.slice(r0, r0 + 8);
      noGrad(() => scope(() => {
        const ids = T.tensor(Int32Array.from(g.flatMap((x) => Array.from(x))), [g.length, L], 'i32');
        const lg = heads.forward(model.hidden(ids)).slice(0, K).map((t) => t.data());
        const V = lg[0].length / (g.length * L);
        const top1 = (k, bi, t) => {
          const d = lg[k], off = (bi * L + t) * V;
          let best = 0;
          for (let v = 1; v < V; v++) if (d[off + v] > d[off + best]) best = v;
          return best;
        };
        // Position t's hidden state is the last prompt token's or a generated one's: the base's
        // next token there is row[t+1] (greedy), head k's guess is checked against row[t+k+2].
        for (let bi = 0; bi < g.length; bi++) {
          for (let t = P - 1; t + K + 1 < L; t++) {
            const ok = Array.from({ length: K }, (_, k) => top1(k, bi, t) === g[bi][t + k + 2]);
            ok.forEach((x, k) => { if (x) right[k]++; });
            let m = 0;
            while (m < K && ok[m]) m++;
            for (let c = 0; c < K; c++) sums[c] += 1 + Math.min(m, c + 1);
            n++;
          }
        }
      }));
    }
    console.log(`${dir}: top-1 ${right.map((x) => (x / n).toFixed(3)).join(' / ')}; tokens per call, chain of 1…4: ${sums.map((s) => (s / n).toFixed(3)).join(' / ')}`);
    heads.dispose();
  }
  model.dispose();
} finally {
  await shutdown();
}
