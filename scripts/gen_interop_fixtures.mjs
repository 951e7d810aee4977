// Interop fixtures: a checkpoint tslm trains and writes loads into an independent PyTorch LLaMA
// (scripts/ref_llama.py) and gives the same next-token loss on a batch.
//
//   npm run build && node scripts/gen_interop_fixtures.mjs
//
// needs the compiled library (dist/) and Debian's PyTorch for /usr/bin/python3
// (apt-get install python3-torch). For each variant it
//   1. trains a tiny LLaMA with runTraining (a byte-level BPE of ~300 tokens trained on a seeded
//      synthetic corpus, 30 AdamW steps) and copies the checkpoint's config.json and
//      model.safetensors to test/fixtures/interop/<variant>/,
//   2. loads that directory back with loadModel and writes batch.json: a batch of token ids
//      (B, T+1) from the corpus and tslm's mean next-token loss on it,
//   3. runs /usr/bin/python3 scripts/check_interop.py on the directory, which writes
//      torch_loss.json (the reference's loss on the same batch).
// test/train/interop.test.ts (run in CI, no Python) recomputes tslm's loss on the committed
// checkpoint and compares it with torch_loss.json.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const T = await import(path.join(root, 'dist', 'src', 'index.js')).catch((e) => {
  console.error(`cannot load dist/src/index.js (run npm run build first): ${e.message}`);
  process.exit(1);
});
const OUT = path.join(root, 'test', 'fixtures', 'interop');
const PYTHON = '/usr/bin/python3';

const BASE = {
  model_type: 'llama', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4,
  num_key_value_heads: 2, vocab_size: 300, max_position_embeddings: 64, rms_norm_eps: 1e-5, rope_theta: 10000,
};
const VARIANTS = {
  llama_gqa_tied: { ...BASE, tie_word_embeddings: true },
  llama_gqa_untied: { ...BASE, tie_word_embeddings: false },
};
const TRAIN = { steps: 30, batchSize: 4, seqLen: 32, lr: 3e-3, warmupSteps: 5, evalEvery: 0, seed: 7 };
const BATCH = { rows: 4, len: 33 }; // (B, T+1): inputs 0…31 predict 1…32

/** A seeded synthetic corpus: short sentences over a small vocabulary, with some Chinese. */
function corpus(file) {
  const g = new T.Generator(11);
  const words = ['the', 'cat', 'sat', 'on', 'a', 'mat', 'dog', 'ran', 'to', 'park', 'and', 'saw', 'big', 'red', 'ball', 'little', 'girl', 'played', 'with', 'her', '小', '猫', '坐', '在', '上'];
  const lines = [];
  for (let i = 0; i < 1500; i++) lines.push(Array.from({ length: 5 + g.int(8) }, () => words[g.int(words.length)]).join(' ') + '.');
  writeFileSync(file, lines.join('\n') + '\n');
}

/** tslm's mean next-token loss of ids (B, T+1) on a backend. */
function tslmLoss(model, ids, backend) {
  return T.withBackend(backend, () => T.noGrad(() => T.scope(() => model.loss(T.tensor(ids, [ids.length, ids[0].length], 'i32')).item())));
}

async function main() {
  await T.init({ threads: 2 });
  const tmp = mkdtempSync(path.join(tmpdir(), 'tslm-interop-'));
  const dirs = [];
  try {
    const data = path.join(tmp, 'corpus.txt');
    corpus(data);
    for (const [name, config] of Object.entries(VARIANTS)) {
      const run = path.join(tmp, name);
      const r = await runTraining({ data, config, out: run, ...TRAIN });
      const losses = r.metrics.map((m) => m.loss);
      console.log(`${name}: trained ${r.state.step} steps, loss ${losses[0].toFixed(3)} → ${losses[losses.length - 1].toFixed(3)}, vocab ${r.model.config.vocab_size}`);
      const dir = path.join(OUT, name);
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      for (const f of ['config.json', 'model.safetensors']) copyFileSync(path.join(r.checkpoint, f), path.join(dir, f));
      // The batch: the last B·(T+1) tokens of the corpus (the validation split's end).
      const n = r.tokens.length, flat = r.tokens.read(n - BATCH.rows * BATCH.len, BATCH.rows * BATCH.len);
      r.tokens.close();
      const ids = Array.from({ length: BATCH.rows }, (_, b) => Array.from(flat.subarray(b * BATCH.len, (b + 1) * BATCH.len)));
      const inMemory = tslmLoss(r.model, ids, 'wasm');
      r.model.dispose();
      const loaded = await T.loadModel(dir);
      const loss = tslmLoss(loaded.model, ids, 'wasm');
      const lossRef = tslmLoss(loaded.model, ids, 'ref');
      loaded.model.dispose();
      if (loss !== inMemory) throw new Error(`${name}: the reloaded checkpoint gives loss ${loss}, the trained model ${inMemory}`);
      writeFileSync(path.join(dir, 'batch.json'), JSON.stringify({
        note: 'input_ids (B, T+1): positions 0..T-1 are fed and predict 1..T; tslm_loss is tslm\'s mean next-token cross-entropy (wasm backend; tslm_loss_ref: ref backend) when the fixture was made',
        input_ids: ids, tslm_loss: loss, tslm_loss_ref: lossRef,
      }) + '\n');
      const size = statSync(path.join(dir, 'model.safetensors')).size;
      console.log(`${name}: tslm loss ${loss} (ref backend ${lossRef}); model.safetensors ${(size / 1024).toFixed(0)} KiB → ${path.relative(root, dir)}`);
      dirs.push(dir);
    }
  } finally {
    await T.shutdown();
    rmSync(tmp, { recursive: true, force: true });
  }
  const py = spawnSync(PYTHON, [path.join(root, 'scripts', 'check_interop.py'), ...dirs], { stdio: 'inherit' });
  if (py.status !== 0) {
    console.error(`${PYTHON} scripts/check_interop.py failed (exit ${py.status}); torch_loss.json not written`);
    process.exit(1);
  }
}

function runTraining(o) {
  return T.runTraining({ ...o, log: () => {}, progress: () => {} });
}

await main();
