// `tslm quickstart`: the main job on its embedded default — train a tokenizer and a small LLaMA
// from scratch on the Brown corpus + Chinese classics, in a few minutes on 2 CPU cores.
import { parseArgs } from 'node:util';
import path from 'node:path';
import { init, shutdown } from '../../backend/index.js';
import { quickstart } from '../../train/quickstart.js';
import { num } from '../args.js';

export const usage = `tslm quickstart [--out DIR] [--steps N] [--threads N] [--config PRESET|config.json]
    Train a byte-level BPE tokenizer and a 1M-parameter LLaMA from scratch on the embedded
    corpus (Brown + Chinese classics), report validation perplexity beside a unigram model's,
    write the checkpoint and report to DIR (default ./tslm-quickstart) and print samples.
    --config trains another model instead, e.g. mamba-quickstart or s4d-quickstart (the same
    size as the LLaMA).`;

export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { out: { type: 'string' }, steps: { type: 'string' }, threads: { type: 'string' }, 'brown-files': { type: 'string' }, config: { type: 'string' } } });
  const t0 = performance.now();
  await init({ threads: num(values.threads, 'threads', (x) => Number.isInteger(x) && x > 0) });
  try {
    const r = await quickstart({
      out: values.out, steps: num(values.steps, 'steps', (x) => Number.isInteger(x) && x > 0), config: values.config,
      brownFiles: num(values['brown-files'], 'brown-files', (x) => Number.isInteger(x) && x > 0),
    });
    const out = path.resolve(values.out ?? 'tslm-quickstart');
    console.log(`\nvalidation loss ${r.valLoss!.toFixed(4)} nats/token (perplexity ${Math.exp(r.valLoss!).toFixed(2)})`);
    console.log(`unigram model   ${r.unigramLoss.toFixed(4)} nats/token (perplexity ${Math.exp(r.unigramLoss).toFixed(2)}) on the same validation split`);
    console.log(`\nsamples (temperature 0.8, top-k 40):`);
    for (const s of r.samples) console.log(`  ${JSON.stringify(s.prompt + s.text)}`);
    console.log(`\ncheckpoint: ${r.checkpoint}\nreport:     ${path.join(out, 'report.html')} (loss curve: ${path.join(out, 'loss.svg')})`);
    console.log(`try:        npx tslm generate --model ${r.checkpoint} --prompt "The jury" --temperature 0.8 --top-k 40`);
    if (r.model.treeAttention) {
      console.log(`medusa:     npx tslm medusa train --model ${r.checkpoint}   (Medusa heads, ~2 min), then\n            npx tslm generate --model ${r.checkpoint} --medusa ${r.checkpoint}-medusa --prompt "The jury"`);
    }
    console.log(`total time: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    r.model.dispose();
    r.tokens.close();
  } finally {
    await shutdown();
  }
  return 0;
}
