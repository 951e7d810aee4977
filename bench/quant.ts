// `tslm bench quant`: decode and prefill tokens/s of a GGUF's quantised weights (Q8_0, Q4_0,
// Q4_K, Q6_K) kept quantised, and of its F16/BF16 weights kept 16-bit, in tslm (fused dequantise-and-dot kernels) against the same weights
// dequantised to f32 (`--dtype f32`), beside llama.cpp (node-llama-cpp) on the same file, for
// llama2.c's 15M and 110M shapes (seeded random weights, exported by tslm), on 1 and 2 threads.
// Every run is a fresh process, as a user runs it: tslm through its CLI (`tslm generate`, whose
// printed prefill/decode rates are read), llama.cpp through a small node-llama-cpp script;
// /usr/bin/time reports each process's peak RSS. Then the perplexity of each file's model
// (loaded as stored) beside the f32 model on a held-out English paragraph (byte tokens).
// Last, per model and thread count, the first run: the CLI's rate (its one generation in a fresh
// process) against a warmed process's (the third of three generations in one process).
// The 15M shape has rows of 288 values, not whole 256-blocks: its K-quant files would be Q8_0
// almost throughout, so it runs Q8_0 and Q4_0 only unless asked.
//
// Run: node bin/tslm.js bench quant [--threads 1,2]
//   TSLM_BENCH_QUANT_MODELS=15M,110M[,1.1B]  TSLM_BENCH_QUANT_DTYPES=q8_0,q4_0,q4_k,q6_k,f16,bf16
//   (1.1B: TinyLlama-1.1B's shape, from random Q8_0/Q4_0 blocks; asked for only)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, shutdown, exportGguf, randn, scope, noGrad, tensor, loadModel, Generator, LlamaForCausalLM, parseLlamaConfig, crossEntropy, writeLlamaGguf } from '../src/index.js';
import type { RawTensor } from '../src/io/index.js';
import * as T from '../src/index.js';
import type { Tensor, CausalLM } from '../src/index.js';
import { loadNodeLlamaCpp } from './peers/nlc.js';
import { LLAMA_15M, spmVocab } from './llama.js';
import { cpuLine } from './timing.js';

export interface Row { model: string; threads: number; engine: string; prefill: number | null; decode: number | null; rss_mb: number | null; note: string }

const LLAMA_110M = {
  ...LLAMA_15M, hidden_size: 768, intermediate_size: 2048, num_hidden_layers: 12, num_attention_heads: 12, num_key_value_heads: 12, max_position_embeddings: 1024,
};
/**
 * TinyLlama-1.1B's shape (grouped-query attention, 4 KV heads): the size of the small GGUFs users
 * download. Its f32 model (4.4 GB) does not fit the wasm32 heap, so its files are written straight
 * from seeded random blocks (Q8_0, Q4_0 only), with no f32 row and no perplexity.
 */
const LLAMA_1B = {
  ...LLAMA_15M, hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 22, num_attention_heads: 32, num_key_value_heads: 4, max_position_embeddings: 2048,
};
const PROMPT_LETTERS = 96;
const DECODE = 128;

/** Seeded random weights that do not degenerate (as bench/llama.ts's randomLlama15M). */
function randomLlama(cfg: Record<string, unknown>, seed: number): LlamaForCausalLM {
  const model = new LlamaForCausalLM(parseLlamaConfig(cfg), { generator: new Generator(seed) });
  const g = new Generator(seed + 1);
  for (const [name, t] of model.namedTensors()) {
    if (t.ndim !== 2 || name.includes('embed_tokens')) continue;
    scope(() => model.loadStateDict({ [name]: randn(t.shape, { generator: g, std: 1 / Math.sqrt(t.shape[1]) }) as Tensor }, { strict: false }));
  }
  return model;
}

/**
 * HF-named tensors of a LLaMA of shape cfg with seeded random Q8_0 or Q4_0 blocks (each block's
 * scale 2^-7, its quants uniform), norms 1: decoding speed and memory do not depend on the values.
 */
function randomBlockTensors(cfg: typeof LLAMA_1B, dtype: 'Q8_0' | 'Q4_0', seed: number): RawTensor[] {
  const [D, F, V, L] = [cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size, cfg.num_hidden_layers];
  const kv = (D / cfg.num_attention_heads) * cfg.num_key_value_heads;
  const bytes = dtype === 'Q8_0' ? 34 : 18;
  let x = seed >>> 0;
  const mat = (name: string, shape: [number, number]): RawTensor => {
    const blocks = (shape[0] * shape[1]) / 32, data = new Uint8Array(blocks * bytes);
    const w = new Uint32Array(data.buffer, 0, data.length >>> 2);
    for (let i = 0; i < w.length; i++) { x = (Math.imul(x, 1103515245) + 12345) >>> 0; w[i] = x ^ (x >>> 15) ^ (i << 7); }
    for (let b = 0; b < blocks; b++) { data[b * bytes] = 0x00; data[b * bytes + 1] = 0x20; } // f16 2^-7
    return { name, dtype, shape, data };
  };
  const ones = (name: string): RawTensor => ({ name, dtype: 'F32', shape: [D], data: new Uint8Array(new Float32Array(D).fill(1).buffer) });
  const out = [mat('model.embed_tokens.weight', [V, D]), mat('lm_head.weight', [V, D]), ones('model.norm.weight')];
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}.`;
    out.push(ones(`${p}input_layernorm.weight`), ones(`${p}post_attention_layernorm.weight`));
    out.push(mat(`${p}self_attn.q_proj.weight`, [D, D]), mat(`${p}self_attn.k_proj.weight`, [kv, D]), mat(`${p}self_attn.v_proj.weight`, [kv, D]), mat(`${p}self_attn.o_proj.weight`, [D, D]));
    out.push(mat(`${p}mlp.gate_proj.weight`, [F, D]), mat(`${p}mlp.up_proj.weight`, [F, D]), mat(`${p}mlp.down_proj.weight`, [D, F]));
  }
  return out;
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = path.join(root, 'bin', 'tslm.js');
const hasTime = existsSync('/usr/bin/time');

/** Run a command in a fresh process; its stdout+stderr and peak RSS (MB, from /usr/bin/time). */
function fresh(args: string[], env: NodeJS.ProcessEnv = {}): { out: string; rss: number | null; status: number | null } {
  const cmd = hasTime ? '/usr/bin/time' : process.execPath;
  const full = hasTime ? ['-f', 'maxrss_kb=%M', process.execPath, ...args] : args;
  const r = spawnSync(cmd, full, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20, timeout: 600_000 });
  const out = `${r.stdout ?? ''}\n${r.stderr ?? ''}`;
  const m = /maxrss_kb=(\d+)/.exec(out);
  return { out, rss: m ? Number(m[1]) / 1024 : null, status: r.status };
}

function tslmGenerate(file: string, threads: number, dtype: 'native' | 'f32', extra: string[] = []): Omit<Row, 'model' | 'engine'> {
  const prompt = 'abcdefghij'.repeat(PROMPT_LETTERS / 10 + 1).slice(0, PROMPT_LETTERS);
  const args = [cli, 'generate', '--model', file, '--prompt', prompt, '--max-tokens', String(DECODE), '--threads', String(threads)];
  if (dtype === 'f32') args.push('--dtype', 'f32');
  args.push(...extra);
  const r = fresh(args);
  const m = /prefill: (\d+) tokens, ([\d.]+) tok\/s; decode: (\d+) tokens, ([\d.]+) tok\/s/.exec(r.out);
  if (!m) return { threads, prefill: null, decode: null, rss_mb: r.rss, note: `failed: ${r.out.trim().split('\n').slice(-3).join(' | ')}` };
  return { threads, prefill: Number(m[2]), decode: Number(m[4]), rss_mb: r.rss, note: `tslm generate: ${m[1]}-token prompt, ${m[3]} tokens` };
}

/**
 * Peak RSS (MB) of the CLI up to the model: `tslm generate` on a file that does not exist loads
 * the same modules and starts the same threads, then stops where the model would be read. A
 * model's own memory is a generate run's peak above this.
 */
function cliWithoutModelRss(dir: string, threads: number): number | null {
  return fresh([cli, 'generate', '--model', path.join(dir, 'no-such-model.gguf'), '--threads', String(threads)]).rss;
}

/**
 * The same generation as tslmGenerate, three times in one fresh process (the library, as the CLI
 * calls it): the first generation's decode rate and the third's, a warmed process. Beside the
 * CLI's rate this gives the first-run ratio (the CLI's first generation ÷ a warmed one).
 */
function tslmWarmed(file: string, threads: number): Omit<Row, 'model' | 'engine'> & { first: number | null } {
  const prompt = 'abcdefghij'.repeat(PROMPT_LETTERS / 10 + 1).slice(0, PROMPT_LETTERS);
  const script = `
    const { init, shutdown, loadModel, generate } = await import(${JSON.stringify(path.join(root, 'dist', 'src', 'index.js'))});
    await init({ threads: ${threads} });
    const { model, tokenizer } = await loadModel(${JSON.stringify(file)});
    model.eval();
    const prompt = [tokenizer.bosId ?? 1, ...tokenizer.encode(${JSON.stringify(prompt)})];
    const rates = [];
    for (let i = 0; i < 3; i++) {
      const r = generate(model, prompt, { maxNewTokens: ${DECODE}, stopIds: tokenizer.eosId !== null ? [tokenizer.eosId] : [], tokenizer, onToken: () => {} });
      rates.push(r.stats.decodeTokensPerSecond);
    }
    console.log('result ' + JSON.stringify(rates));
    await shutdown();`;
  const file2 = path.join(path.dirname(file), 'tslm-warmed.mjs');
  writeFileSync(file2, script);
  const r = fresh([file2]);
  const m = /result (\[.*\])/.exec(r.out);
  if (!m) return { threads, prefill: null, decode: null, rss_mb: r.rss, first: null, note: `failed: ${r.out.trim().split('\n').slice(-3).join(' | ')}` };
  const v = JSON.parse(m[1]) as number[];
  return { threads, prefill: null, decode: v[2], rss_mb: r.rss, first: v[0], note: `one process, generations 1/2/3: ${v.map((x) => x.toFixed(1)).join(' / ')} tok/s` };
}

function llamaCppGenerate(file: string, threads: number): Omit<Row, 'model' | 'engine'> {
  // The same token ids tslm's tokenizer gives the letters (BOS, then byte-fallback-free single letters).
  const script = `
    const { loadNodeLlamaCpp } = await import(${JSON.stringify(path.join(root, 'dist', 'bench', 'peers', 'nlc.js'))});
    const { llamaCppRun } = await import(${JSON.stringify(path.join(root, 'dist', 'bench', 'llama.js'))});
    const r = await loadNodeLlamaCpp({ maxThreads: ${threads} });
    if ('error' in r) { console.log('error: ' + r.error); process.exit(0); }
    const model = await r.llama.loadModel({ modelPath: ${JSON.stringify(file)}, gpuLayers: 0 });
    const ctx = await model.createContext({ contextSize: 512, batchSize: 512, threads: ${threads} });
    const ids = [1, ...Array.from({ length: ${PROMPT_LETTERS} }, (_, i) => 259 + (i % 10))];
    const out = await llamaCppRun(ctx, { prefill: ids, decode: ids }, ${DECODE});
    console.log('result ' + JSON.stringify({ prefill: out.prefill, decode: out.decode }));
    await ctx.dispose(); await model.dispose(); await r.llama.dispose();`;
  // A script file, not `node -e`: node-llama-cpp tests its binary in a child that inherits execArgv.
  const file2 = path.join(path.dirname(file), 'llamacpp-run.mjs');
  writeFileSync(file2, script);
  const r = fresh([file2]);
  const m = /result (\{.*\})/.exec(r.out);
  if (!m) return { threads, prefill: null, decode: null, rss_mb: r.rss, note: /error: (.*)/.exec(r.out)?.[1] ?? `failed: ${r.out.trim().split('\n').slice(-2).join(' | ')}` };
  const v = JSON.parse(m[1]) as { prefill: number; decode: number };
  return { threads, prefill: v.prefill, decode: v.decode, rss_mb: r.rss, note: `node-llama-cpp: ${PROMPT_LETTERS + 1}-token prompt, ${DECODE} tokens` };
}

type QuantFile = 'q8_0' | 'q4_0' | 'q4_k' | 'q6_k' | 'f16' | 'bf16';
const HELD_OUT = 'The old lighthouse keeper climbed the stairs every evening, counting the steps as his father had taught him. '
  + 'Far below, the sea folded itself against the rocks, patient and grey, and the gulls argued over the last light of the day.';

export async function benchQuant(opts: { threads?: number[]; log?: (line: string) => void; models?: string[]; dtypes?: QuantFile[] } = {}): Promise<Row[]> {
  const log = opts.log ?? (() => {});
  const threads = opts.threads ?? [1, 2];
  const rows: Row[] = [];
  const dir = mkdtempSync(path.join(tmpdir(), 'tslm-bench-quant-'));
  const peer = await loadNodeLlamaCpp();
  if ('error' in peer) log(`llama.cpp: ${peer.error}; tslm only`);
  else await peer.llama.dispose();
  log(cpuLine());
  const f = (x: number | null, w = 9) => (x === null ? '—' : x.toFixed(1)).padStart(w);
  log(`${'model'.padEnd(6)} ${'thr'.padStart(3)}  ${'engine'.padEnd(30)} ${'prefill'.padStart(9)} ${'decode'.padStart(9)} ${'peak RSS'.padStart(9)}  note`);
  log(`${''.padEnd(6)} ${''.padStart(3)}  ${''.padEnd(30)} ${'tok/s'.padStart(9)} ${'tok/s'.padStart(9)} ${'MB'.padStart(9)}`);
  /**
   * Per thread count, each file in a fresh process: tslm (and, with withF32, the first file widened
   * to f32), its first file again with the other KV cache, llama.cpp; then the first run against a
   * warmed process on the first file.
   */
  const runEngines = async (name: string, files: [QuantFile, string][], withF32: boolean): Promise<void> => {
    const [dt0, first] = files[0];
    for (const t of threads) {
      const base = cliWithoutModelRss(dir, t);
      if (base !== null) log(`${name.padEnd(6)} ${String(t).padStart(3)}  ${'tslm CLI without a model'.padEnd(30)} ${f(null)} ${f(null)} ${f(base)}  peak RSS up to reading the model (tslm generate on a missing file)`);
      /** A tslm run's RSS above the CLI's own, against the file's size (MB = 2^20 bytes, as /usr/bin/time's). */
      const above = (rss: number | null, file: string) => (rss === null || base === null ? '' : `; RSS above the CLI without a model ${(rss - base).toFixed(1)} MB = ${((rss - base) / (statSync(file).size / 2 ** 20)).toFixed(2)}× the file`);
      const runs: [string, () => Omit<Row, 'model' | 'engine'>][] = withF32 ? [[`tslm f32 (${dt0} file, --dtype f32)`, () => tslmGenerate(first, t, 'f32')]] : [];
      for (const [dt, file] of files) {
        runs.push([`tslm ${dt}`, () => { const r = tslmGenerate(file, t, 'native'); return { ...r, note: r.note + above(r.rss_mb, file) }; }]);
        // The first file again with the other KV cache: f32 for quantised weights (whose default
        // is a bf16 cache), bf16 for 16-bit ones (whose default is f32).
        if (file === first) {
          const kv = dt === 'f16' || dt === 'bf16' ? 'bf16' : 'f32';
          runs.push([`tslm ${dt} --kv-dtype ${kv}`, () => { const r = tslmGenerate(file, t, 'native', ['--kv-dtype', kv]); return { ...r, note: r.note + above(r.rss_mb, file) }; }]);
        }
        if (!('error' in peer)) runs.push([`llama.cpp ${dt}`, () => llamaCppGenerate(file, t)]);
      }
      for (const [engine, go] of runs) {
        const r = { model: name, engine, ...go() };
        rows.push(r);
        log(`${name.padEnd(6)} ${String(t).padStart(3)}  ${engine.padEnd(30)} ${f(r.prefill)} ${f(r.decode)} ${f(r.rss_mb)}  ${r.note}`);
      }
      // The first run (item 4 of the issue): the CLI's first generation in a fresh process
      // against a warmed process's third, each measured twice, alternating, on the first file.
      for (let rep = 0; rep < 2; rep++) {
        const cliRow = tslmGenerate(first, t, 'native'), w = tslmWarmed(first, t);
        const { first: _, ...warm } = w;
        const ratio = cliRow.decode !== null && w.decode ? cliRow.decode / w.decode : null;
        const r = { model: name, engine: `tslm ${dt0} warmed (3rd gen.)`, ...warm, note: `${warm.note}; CLI first run ${cliRow.decode?.toFixed(1) ?? '—'} tok/s = ${ratio?.toFixed(2) ?? '—'}× warmed` };
        rows.push(r);
        log(`${name.padEnd(6)} ${String(t).padStart(3)}  ${r.engine.padEnd(30)} ${f(r.prefill)} ${f(r.decode)} ${f(r.rss_mb)}  ${r.note}`);
      }
    }
  };
  try {
    const sizes: [string, Record<string, unknown>][] = [['15M', LLAMA_15M], ['110M', LLAMA_110M], ['1.1B', LLAMA_1B]];
    const models = opts.models ?? process.env.TSLM_BENCH_QUANT_MODELS?.split(',') ?? ['15M', '110M'];
    const asked = (opts.dtypes ?? process.env.TSLM_BENCH_QUANT_DTYPES?.split(',')) as QuantFile[] | undefined;
    for (const [name, cfg] of sizes) {
      if (!models.includes(name)) continue;
      if (name === '1.1B') {
        // Written from random blocks (no f32 model: it would not fit the heap): Q8_0 and Q4_0 only.
        const dtypes = (asked ?? ['q4_0', 'q8_0']).filter((d): d is 'q8_0' | 'q4_0' => d === 'q8_0' || d === 'q4_0');
        const files = new Map<QuantFile, string>();
        for (const dt of dtypes) {
          const file = path.join(dir, `${name}-${dt}.gguf`);
          const t0 = performance.now();
          const D = dt.toUpperCase() as 'Q8_0' | 'Q4_0';
          await writeLlamaGguf(file, { config: cfg, tensors: randomBlockTensors(LLAMA_1B, D, 1234), tokenizer: spmVocab(LLAMA_15M.vocab_size), dtype: D });
          files.set(dt, file);
          log(`${name}: ${path.basename(file)} (${(statSync(file).size / 1e6).toFixed(1)} MB of random blocks, written in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
        }
        await runEngines(name, [...files], false);
        for (const file of files.values()) rmSync(file, { force: true });
        continue;
      }
      const dtypes = asked ?? (name === '15M' ? ['q8_0', 'q4_0', 'f16', 'bf16'] : ['q8_0', 'q4_0', 'q4_k', 'q6_k', 'f16', 'bf16']) as QuantFile[];
      await init({ threads: 2, backend: 'wasm' });
      const model = randomLlama(cfg, 1234);
      const files = new Map<QuantFile, string>();
      for (const dt of dtypes) {
        const file = path.join(dir, `${name}-${dt}.gguf`);
        const t0 = performance.now();
        await exportGguf(model, file, spmVocab(LLAMA_15M.vocab_size), dt.toUpperCase() as 'Q8_0');
        files.set(dt, file);
        log(`${name}: ${path.basename(file)} (${(statSync(file).size / 1e6).toFixed(1)} MB, written by tslm in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
      }
      // perplexity on a held-out paragraph: the f32 model, then each file loaded as stored
      const ids = [1, ...Array.from(new TextEncoder().encode(HELD_OUT), (b) => 3 + b)];
      const ppl = (m: CausalLM) => noGrad(() => scope(() => Math.exp(m.loss(tensor([ids], undefined, 'i32')).item())));
      // The same through a KV cache (one prefill: every position attends to the cache's keys and
      // values), f32 and bf16 caches: what --kv-dtype bf16 costs in perplexity.
      const pplCached = (m: LlamaForCausalLM, kv: 'f32' | 'bf16') => noGrad(() => scope(() => {
        m.kvDtype = kv;
        const st = m.newState(1, ids.length);
        try {
          const logits = m.forward(tensor([ids.slice(0, -1)], undefined, 'i32'), st);
          return Math.exp(crossEntropy(T.reshape(logits, [ids.length - 1, logits.shape[2]]), tensor(ids.slice(1), undefined, 'i32')).item());
        } finally {
          st.dispose();
          m.kvDtype = 'f32';
        }
      }));
      const base = ppl(model);
      model.dispose();
      log(`${name}: perplexity on a held-out paragraph (${ids.length} byte tokens): f32 ${base.toFixed(3)}`);
      for (const [dt, file] of files) {
        const q = await loadModel(file);
        const v = ppl(q.model);
        if (dt === dtypes[0] && q.model instanceof LlamaForCausalLM) {
          const [c32, c16] = [pplCached(q.model, 'f32'), pplCached(q.model, 'bf16')];
          rows.push({ model: name, threads: 0, engine: `perplexity ${dt} kv bf16`, prefill: null, decode: null, rss_mb: null, note: `${c16.toFixed(3)} through a bf16 KV cache (f32 cache ${c32.toFixed(3)}, ×${(c16 / c32).toFixed(4)})` });
          log(`${name}: perplexity ${dt} through a KV cache: f32 cache ${c32.toFixed(3)}, bf16 cache ${c16.toFixed(3)} (×${(c16 / c32).toFixed(4)})`);
        }
        q.model.dispose();
        rows.push({ model: name, threads: 0, engine: `perplexity ${dt}`, prefill: null, decode: null, rss_mb: null, note: `${v.toFixed(3)} (f32 ${base.toFixed(3)}, ×${(v / base).toFixed(4)})` });
        log(`${name}: perplexity ${dt} ${v.toFixed(3)} (×${(v / base).toFixed(4)} of f32)`);
      }
      await shutdown();
      await runEngines(name, [...files], true);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
