// Runtime costs around the model step, beside llama.cpp (node-llama-cpp) where it does the same:
//   load:      the 15M LLaMA (f32) from disk into a ready model — tslm from an HF directory
//              (config.json + model.safetensors, no tokenizer), llama.cpp from the GGUF of the same
//              weights; best of 3 in this process (the files are in the page cache);
//   sampling:  one temperature draw from a vocabulary-sized row of logits (32K and 128K), with
//              the wasm backend's vectorised exp and with Math.exp (the ref backend's path);
//   contended: greedy decode of 200 tokens on 2 threads while another process keeps one of the
//              machine's cores busy (a spinning child), tslm and llama.cpp in the same run.
//
// Run: node bin/tslm.js bench runtime
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { init, shutdown, loadModel, saveModel, exportGguf, Generator, withBackend } from '../src/index.js';
import { sampleFrom } from '../src/generate/index.js';
import { loadNodeLlamaCpp } from './peers/nlc.js';
import { randomLlama15M, spmVocab, prompts, tslmRun, llamaCppRun, LLAMA_15M } from './llama.js';

export interface Row { task: string; tslm: number; peer: number | null; unit: string; note: string }

const bestOf = async (n: number, f: () => Promise<number>): Promise<number> => {
  let b = Infinity;
  for (let i = 0; i < n; i++) b = Math.min(b, await f());
  return b;
};

export async function benchRuntime(opts: { log?: (line: string) => void } = {}): Promise<Row[]> {
  const log = opts.log ?? (() => {});
  const rows: Row[] = [];
  const emit = (r: Row) => {
    rows.push(r);
    const f = (x: number | null) => (x === null ? '—' : x < 10 ? x.toFixed(2) : x.toFixed(0)).padStart(9);
    log(`${r.task.padEnd(40)} ${f(r.tslm)} ${f(r.peer)}  ${r.unit.padEnd(8)} ${r.note}`);
  };
  log(`${'task'.padEnd(40)} ${'tslm'.padStart(9)} ${'peer'.padStart(9)}  unit     note`);
  const dir = mkdtempSync(path.join(tmpdir(), 'tslm-bench-runtime-'));
  await init({ threads: 2, backend: 'wasm' });
  const loaded = await loadNodeLlamaCpp({ maxThreads: 2 });
  const llama = 'error' in loaded ? null : loaded.llama;
  if ('error' in loaded) log(`llama.cpp: ${loaded.error}; tslm only`);
  try {
    const model = randomLlama15M(1234);
    const hf = path.join(dir, 'hf'), gguf = path.join(dir, 'm.gguf');
    await saveModel(model, hf);
    await exportGguf(model, gguf, spmVocab(LLAMA_15M.vocab_size), 'F32');

    const ours = await bestOf(3, async () => { const t0 = performance.now(); const r = await loadModel(hf); const dt = performance.now() - t0; r.model.dispose(); return dt; });
    const theirs = llama ? await bestOf(3, async () => { const t0 = performance.now(); const m = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 }); const dt = performance.now() - t0; await m.dispose(); return dt; }) : null;
    emit({ task: 'load 15M (f32, 61 MB)', tslm: ours, peer: theirs, unit: 'ms', note: 'tslm: HF dir (safetensors); llama.cpp: GGUF' });

    for (const V of [32000, 128256]) {
      const g = new Generator(7), logits = new Float32Array(V);
      for (let i = 0; i < V; i++) logits[i] = (g.uniform() - 0.5) * 20;
      const time = (): number => {
        const draws = 300, s = new Generator(1);
        for (let i = 0; i < 30; i++) sampleFrom(logits, s);
        const t0 = performance.now();
        for (let i = 0; i < draws; i++) sampleFrom(logits, s);
        return ((performance.now() - t0) / draws) * 1000;
      };
      const vec = Math.min(time(), time());
      const scalar = withBackend('ref', () => Math.min(time(), time()));
      emit({ task: `sampling, ${V} logits: vectorised exp`, tslm: vec, peer: null, unit: 'µs/draw', note: `Math.exp path: ${scalar.toFixed(0)} µs/draw` });
    }

    const busy = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 200));
      const p = prompts(1236, LLAMA_15M.vocab_size);
      tslmRun(model, p, 16);
      const t = Math.max(...Array.from({ length: 3 }, () => tslmRun(model, p, 200).decode));
      let l: number | null = null;
      if (llama) {
        const lm = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
        const ctx = await lm.createContext({ contextSize: 256, batchSize: 256, sequences: 1, threads: { ideal: 2, min: 2 }, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
        try {
          await llamaCppRun(ctx, p, 16);
          l = 0;
          for (let i = 0; i < 3; i++) l = Math.max(l, (await llamaCppRun(ctx, p, 200)).decode);
        } finally {
          await ctx.dispose();
          await lm.dispose();
        }
      }
      emit({ task: 'decode 15M, 2 threads, one core busy', tslm: t, peer: l, unit: 'tok/s', note: 'greedy, 200 tokens, best of 3; a spinning process holds a core' });
    } finally {
      busy.kill('SIGKILL');
    }
    model.dispose();
  } finally {
    await llama?.dispose();
    await shutdown();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
