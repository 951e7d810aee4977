// `tslm quickstart` and `tslm train` as a newcomer runs them (shortened), as child processes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const bin = path.join(root, 'bin', 'tslm.js');
const run = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: dir, env: { ...process.env, TSLM_THREADS: '2' } });
let dir = '';
before(() => { dir = mkdtempSync(path.join(tmpdir(), 'tslm-cli-train-')); });
after(() => { rmSync(dir, { recursive: true, force: true }); });

test('quickstart (shortened) trains, beats the unigram baseline, writes checkpoint and report, prints samples', () => {
  const r = run(['quickstart', '--steps', '40', '--brown-files', '12']);
  assert.equal(r.status, 0, r.stderr);
  const val = Number(/validation loss ([\d.]+)/.exec(r.stdout)![1]);
  const uni = Number(/unigram model\s+([\d.]+)/.exec(r.stdout)![1]);
  assert.ok(val < uni, `validation loss ${val} should be below the unigram model's ${uni}`);
  assert.match(r.stdout, /samples \(temperature 0\.8, top-k 40\):\n  "The jury said/);
  assert.match(r.stderr, /step 40\/40 \[=+>\] loss [\d.]+ \| lr [\d.e+-]+ \| [\d.]+k? tok\/s \| [\d:]+ elapsed, ETA [\d:]+/);
  const out = path.join(dir, 'tslm-quickstart');
  for (const f of ['checkpoint/model.safetensors', 'checkpoint/tokenizer.json', 'report.html', 'loss.svg', 'metrics.jsonl']) assert.ok(existsSync(path.join(out, f)), f);
  assert.match(readFileSync(path.join(out, 'report.html'), 'utf8'), /unigram baseline/);
  // the checkpoint is what `tslm generate` takes
  const g = run(['generate', '--model', path.join(out, 'checkpoint'), '--prompt', 'The', '--max-tokens', '5']);
  assert.equal(g.status, 0, g.stderr);
  // and the Medusa commands it prints (shortened) work as printed
  const ck = path.join(out, 'checkpoint');
  assert.ok(r.stdout.includes(`medusa:     npx tslm medusa train --model ${ck} `), r.stdout);
  const heads = /--medusa (\S+)/.exec(r.stdout)![1];
  const mt = run(['medusa', 'train', '--model', ck, '--steps', '3', '--prompts', '32']);
  assert.equal(mt.status, 0, mt.stderr);
  const gm = run(['generate', '--model', ck, '--medusa', heads, '--prompt', 'The jury', '--max-tokens', '8']);
  assert.equal(gm.status, 0, gm.stderr);
  assert.match(gm.stderr, /speculative \(medusa\)/);
});

test('train with a preset, then --resume for more steps; bad arguments exit 2', () => {
  const data = path.join(dir, 'd.jsonl');
  writeFileSync(data, Array.from({ length: 200 }, (_, i) => JSON.stringify({ text: `line ${i}: the quick brown fox jumps over the lazy dog ${i % 7}.` })).join('\n'));
  const out = path.join(dir, 'run');
  const common = ['--data', data, '--config', '260k', '--out', out, '--batch-size', '4', '--seq-len', '32', '--eval-every', '3'];
  const a = run(['train', ...common, '--steps', '3']);
  assert.equal(a.status, 0, a.stderr);
  assert.match(a.stderr, /done: step 3, validation loss [\d.]+/);
  const b = run(['train', ...common, '--steps', '6', '--resume']);
  assert.equal(b.status, 0, b.stderr);
  assert.match(b.stderr, /resumed from .* at step 3/);
  assert.equal(readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').length, 6);
  assert.equal(run(['train', '--data', data]).status, 2);
  assert.equal(run(['train', ...common, '--steps', 'x']).status, 2);
});
