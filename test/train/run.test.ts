// Training runs end to end: a resumed run is bit-for-bit the uninterrupted one; metrics, plot,
// report and checkpoints are written; bad data and bad configs fail with clear errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { init, shutdown, runTraining, loadModel, Generator, TrainingDivergedError } from '../../src/index.js';
import { lossCurveSvg } from '../../src/train/report.js';
import type { RunOptions } from '../../src/index.js';

let dir = '';
before(async () => { await init({ threads: 2 }); dir = mkdtempSync(path.join(tmpdir(), 'tslm-train-')); });
after(async () => { await shutdown(); rmSync(dir, { recursive: true, force: true }); });

function corpus(): string {
  const g = new Generator(1);
  const words = ['the', 'cat', 'sat', 'on', 'a', 'mat', 'dog', 'ran', 'to', 'park', '小', '猫', '坐', '在'];
  const lines: string[] = [];
  for (let i = 0; i < 400; i++) lines.push(Array.from({ length: 6 + g.int(6) }, () => words[g.int(words.length)]).join(' ') + '.');
  const f = path.join(dir, 'corpus.txt');
  writeFileSync(f, lines.join('\n'));
  return f;
}
const CONFIG = { model_type: 'llama', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 300, max_position_embeddings: 64 };
const quiet = { log: () => {}, progress: () => {}, seqLen: 16, batchSize: 2 };

test('k steps, interrupt, resume for N−k steps gives the same weights as N steps straight', async () => {
  const data = corpus();
  const base: RunOptions = { data, config: CONFIG, steps: 8, lr: 3e-3, warmupSteps: 2, evalEvery: 4, evalBatches: 2, seed: 3, out: '', ...quiet, batchSize: 4 };
  const a = await runTraining({ ...base, out: path.join(dir, 'straight') });
  const b1 = await runTraining({ ...base, out: path.join(dir, 'resumed'), stopAtStep: 3 });
  assert.equal(b1.state.step, 3);
  b1.model.dispose();
  const b = await runTraining({ ...base, out: path.join(dir, 'resumed'), resume: true });
  assert.equal(b.state.step, 8);
  for (const [name, t] of a.model.namedTensors()) {
    const u = b.model.namedTensors().find(([n]) => n === name)![1];
    assert.deepEqual(u.toArray(), t.toArray(), `parameter ${name} differs after resume`);
  }
  assert.deepEqual(b.metrics.map((m) => m.loss), a.metrics.map((m) => m.loss), 'same loss curve');
  // What a person looks at:
  for (const f of ['metrics.jsonl', 'loss.svg', 'report.html', 'tokenizer.json', 'checkpoint/model.safetensors', 'checkpoint/config.json', 'checkpoint/optimizer.safetensors', 'checkpoint/trainer_state.json']) {
    assert.ok(existsSync(path.join(dir, 'straight', f)), `${f} written`);
  }
  const lines = readFileSync(path.join(dir, 'straight', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 8);
  assert.ok(lines[3].valLoss > 0 && lines[3].valPerplexity > 1);
  assert.match(readFileSync(path.join(dir, 'straight', 'loss.svg'), 'utf8'), /^<svg[\s\S]*<path d="M[\d.,]+ L/);
  // the checkpoint is a loadable HF model directory
  const l = await loadModel(path.join(dir, 'straight', 'checkpoint'));
  assert.deepEqual(l.model.stateDict()['model.norm.weight'].toArray(), a.model.stateDict()['model.norm.weight'].toArray());
  for (const m of [a.model, b.model, l.model]) m.dispose();
});

test('every family trains through runTraining and resumes bit-for-bit (Mamba, S4D, Mixtral-layout MoE); a resume with another family is refused', async () => {
  const data = corpus();
  for (const config of [
    { model_type: 'mamba', hidden_size: 32, num_hidden_layers: 2, state_size: 8, vocab_size: 300 },
    { model_type: 's4d', hidden_size: 32, num_hidden_layers: 2, state_size: 8, vocab_size: 300 },
    { ...CONFIG, model_type: 'mixtral', intermediate_size: 24, num_local_experts: 4, num_experts_per_tok: 2, output_router_logits: true, router_aux_loss_coef: 0.02, router_z_loss_coef: 0.001 },
  ]) {
    const t = config.model_type, base: RunOptions = { data, config, steps: 6, lr: 3e-3, warmupSteps: 2, evalEvery: 3, evalBatches: 2, seed: 5, out: '', ...quiet };
    const a = await runTraining({ ...base, out: path.join(dir, `${t}-straight`) });
    assert.equal(a.model.config.model_type, t);
    assert.ok(a.metrics[5].loss < a.metrics[0].loss, `${t}: loss ${a.metrics[0].loss} → ${a.metrics[5].loss}`);
    (await runTraining({ ...base, out: path.join(dir, `${t}-resumed`), stopAtStep: 2 })).model.dispose();
    const b = await runTraining({ ...base, out: path.join(dir, `${t}-resumed`), resume: true });
    for (const [name, w] of a.model.namedTensors()) assert.deepEqual(b.model.stateDict()[name].toArray(), w.toArray(), `${t}: ${name} differs after resume`);
    const l = await loadModel(path.join(dir, `${t}-straight`, 'checkpoint'));
    assert.equal(l.config.model_type, t);
    if (t === 'mixtral') {
      // the MoE's metrics and report: auxiliary losses per step and the expert-utilisation chart
      const line = JSON.parse(readFileSync(path.join(dir, `${t}-straight`, 'metrics.jsonl'), 'utf8').split('\n')[0]);
      assert.ok(line.parts.aux_loss > 0 && line.expertLoad.length === 2, JSON.stringify(line));
      const html = readFileSync(path.join(dir, `${t}-straight`, 'report.html'), 'utf8');
      assert.match(html, /Auxiliary losses[\s\S]*Expert utilisation/);
      assert.match(html, /M parameters \([\d.]+M active per token\)/);
    }
    for (const m of [a.model, b.model, l.model]) m.dispose();
  }
  await assert.rejects(runTraining({ data, config: CONFIG, steps: 6, out: path.join(dir, 'mamba-resumed'), resume: true, ...quiet }), /checkpoint has model_type = "mamba", this run's model has "llama"/);
});

test('bad data, configs and resumes fail with clear errors', async () => {
  const empty = path.join(dir, 'empty.txt');
  writeFileSync(empty, '  \n');
  await assert.rejects(runTraining({ data: empty, config: CONFIG, out: path.join(dir, 'e'), steps: 1, ...quiet }), /corpus is empty|empty/);
  const bin = path.join(dir, 'bin.txt');
  writeFileSync(bin, Buffer.from([0, 1, 2, 3, 0, 0, 255, 0]));
  await assert.rejects(runTraining({ data: bin, config: CONFIG, out: path.join(dir, 'b'), steps: 1, ...quiet }), /bin\.txt: looks like a binary file/);
  const jl = path.join(dir, 'd.jsonl');
  writeFileSync(jl, '{"text": "hello there"}\n{"text": 5}\n');
  await assert.rejects(runTraining({ data: jl, config: CONFIG, out: path.join(dir, 'j'), steps: 1, ...quiet }), /d\.jsonl:2: expected an object with a string "text" field/);
  writeFileSync(jl, '{"text": "hello there"}\n{oops\n');
  await assert.rejects(runTraining({ data: jl, config: CONFIG, out: path.join(dir, 'j2'), steps: 1, ...quiet }), /d\.jsonl:2: invalid JSON/);
  const data = corpus();
  await assert.rejects(runTraining({ data, config: CONFIG, out: path.join(dir, 's'), steps: 1, ...quiet, seqLen: 128 }), /sequence length 128 exceeds max_position_embeddings 64/);
  await assert.rejects(runTraining({ data, config: 'no-such-preset', out: path.join(dir, 'p'), steps: 1, ...quiet }), /not a preset/);
  await assert.rejects(runTraining({ data, config: CONFIG, out: path.join(dir, 'none'), resume: true, steps: 1, ...quiet }), /no checkpoint found/);
  // resuming with another model config
  const out = path.join(dir, 'cfg');
  const r = await runTraining({ data, config: CONFIG, out, steps: 2, evalEvery: 2, ...quiet });
  r.model.dispose();
  await assert.rejects(runTraining({ data, config: { ...CONFIG, hidden_size: 48 }, out, resume: true, steps: 3, ...quiet }), /hidden_size = 32, this run's model has 48/);
  // a damaged checkpoint: options from trainer_state.json are checked (naming the file), a token
  // file kept from the run must fit the vocabulary, a metrics line that is not flat is skipped
  const stFile = path.join(out, 'checkpoint', 'trainer_state.json');
  const st = readFileSync(stFile, 'utf8');
  const withOptions = (o: Record<string, unknown>): string => { const j = JSON.parse(st); Object.assign(j.options, o); return JSON.stringify(j); };
  writeFileSync(stFile, withOptions({ gradAccum: 1e9 }));
  await assert.rejects(runTraining({ data, config: CONFIG, out, resume: true, steps: 3, ...quiet }), /trainer_state\.json: options: gradAccum must be an integer from 1 to 100000, got 1000000000/);
  writeFileSync(stFile, withOptions({ betas: -1.5 }));
  await assert.rejects(runTraining({ data, config: CONFIG, out, resume: true, steps: 3, ...quiet }), /trainer_state\.json: options: betas must be two numbers in \[0, 1\), got -1\.5/);
  writeFileSync(stFile, withOptions({ lr: 'x' }));
  await assert.rejects(runTraining({ data, config: CONFIG, out, resume: true, steps: 3, ...quiet }), /trainer_state\.json: options: lr must be a number from just above 0 to [\d.e+]+, got "x"/);
  writeFileSync(stFile, st);
  const tokFile = path.join(out, 'tokens.bin');
  const tokBytes = readFileSync(tokFile);
  const bad = Buffer.from(tokBytes);
  bad.writeInt32LE(99_999, 4 * 7);
  writeFileSync(tokFile, bad);
  await assert.rejects(runTraining({ data, config: CONFIG, out, resume: true, steps: 3, ...quiet }), /tokens\.bin: token 7 is 99999, outside the vocabulary \(0…\d+\)/);
  writeFileSync(tokFile, tokBytes);
  const metricsFile = path.join(out, 'metrics.jsonl');
  writeFileSync(metricsFile, readFileSync(metricsFile, 'utf8') + JSON.stringify({ step: 2, loss: 1, deep: [[[1]]] }) + '\n' + '{"step": 1, "loss":' + '['.repeat(100_000) + ']'.repeat(100_000) + '}\n');
  const resumed = await runTraining({ data, config: CONFIG, out, resume: true, steps: 3, ...quiet });
  assert.deepEqual(resumed.metrics.map((m) => m.step), [1, 2, 3]);
  assert.ok(resumed.metrics.every((m) => Number.isFinite(m.loss) && !('deep' in m)));
  resumed.model.dispose();
  // a long run's loss plot (hundreds of thousands of steps) is drawn without spreading them into Math.min
  const many = Array.from({ length: 300_000 }, (_, i) => ({ step: i + 1, loss: 5 - i / 1e5, lr: 1e-3, tokens: 0, tokensPerSecond: 1, elapsedSeconds: 0 }));
  assert.match(lossCurveSvg(many as never), /<svg/);
  // a learning rate that diverges stops with the step named
  await assert.rejects(runTraining({ data, config: CONFIG, out: path.join(dir, 'nan'), steps: 20, lr: 1e30, warmupSteps: 0, gradClip: 0, ...quiet }),
    (e: Error) => e instanceof TrainingDivergedError && /step \d+: /.test(e.message));
  mkdirSync(path.join(dir, 'emptydir'));
  await assert.rejects(runTraining({ data: path.join(dir, 'emptydir'), config: CONFIG, out: path.join(dir, 'ed'), steps: 1, ...quiet }), /no \.txt, \.md, \.jsonl or \.parquet files/);
});
