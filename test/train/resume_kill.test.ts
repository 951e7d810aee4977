// A training run killed with SIGKILL between checkpoints, then resumed: metrics.jsonl ends with
// exactly one line per step (the steps after the checkpoint are not written twice), and the
// temporary folders and files of killed runs (`*.tmp-<pid>`) are removed; those of a live process stay.
// Ctrl-C (SIGINT) stops a run within a step, with a checkpoint of the step it stopped at, far from
// any evaluation step, and --resume goes on from there.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readMetrics } from '../../src/train/run.js';
import { pidAlive, removeStaleTemps } from '../../src/train/stale.js';

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'tslm.js');
let dir = '';
before(() => { dir = mkdtempSync(path.join(tmpdir(), 'tslm-resume-kill-')); });
after(() => { rmSync(dir, { recursive: true, force: true }); });

/** The id of a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const pid = Number(r.stdout);
  assert.ok(!pidAlive(pid));
  return pid;
}

function lines(file: string): string[] { return readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()); }

const env = { ...process.env, TSLM_THREADS: '1' };

/** `tslm <args>` in a child process (one thread): its stderr so far, and its exit code once it ends. */
function startCli(args: string[]): { p: ChildProcess; err: () => string; exited: Promise<number | null> } {
  const p = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr!.on('data', (d) => { err += d; });
  return { p, err: () => err, exited: new Promise((r) => p.on('exit', (code) => r(code))) };
}

/** Polls metricsFile while p runs; once when(lines written) holds, sends p `signal` and returns that count (0: it never held). */
async function signalWhen(p: ChildProcess, metricsFile: string, when: (n: number) => boolean, signal: NodeJS.Signals): Promise<number> {
  for (let i = 0; i < 1200 && p.exitCode === null; i++) {
    await new Promise((r) => setTimeout(r, 25));
    const n = existsSync(metricsFile) ? lines(metricsFile).length : 0;
    if (when(n)) { p.kill(signal); return n; }
  }
  return 0;
}

test('kill -9 between checkpoints, then --resume: one metrics line per step; stale temporaries removed', { timeout: 120000 }, async () => {
  const data = path.join(dir, 'd.jsonl');
  writeFileSync(data, Array.from({ length: 200 }, (_, i) => JSON.stringify({ text: `line ${i}: the quick brown fox jumps over the lazy dog ${i % 7}.` })).join('\n'));
  const out = path.join(dir, 'run');
  const common = ['train', '--data', data, '--config', '260k', '--out', out, '--batch-size', '2', '--seq-len', '16', '--eval-every', '4', '--eval-batches', '1', '--steps', '24'];
  const metricsFile = path.join(out, 'metrics.jsonl');
  // Kill the first run once it has written steps past a checkpoint (steps 4, 8, … checkpoint).
  const run = startCli(common);
  const killedAt = await signalWhen(run.p, metricsFile, (n) => n >= 6 && n % 4 !== 0 && existsSync(path.join(out, 'checkpoint', 'trainer_state.json')), 'SIGKILL');
  await run.exited;
  assert.ok(killedAt > 0, `the run was not killed between checkpoints: ${run.err()}`);
  const ckStep = JSON.parse(readFileSync(path.join(out, 'checkpoint', 'trainer_state.json'), 'utf8')).state.step as number;
  const before = lines(metricsFile).length;
  assert.ok(before > ckStep, `metrics has ${before} lines, the checkpoint is at step ${ckStep}: nothing to cut`);
  // What other kills leave: a temporary checkpoint folder and a temporary file of dead processes,
  // a cut last metrics line; and a temporary folder of a live process (this one) that must stay.
  const dead = deadPid();
  mkdirSync(path.join(out, `checkpoint.tmp-${dead}`));
  writeFileSync(path.join(out, `checkpoint.tmp-${dead}`, 'model.safetensors'), 'partial');
  writeFileSync(path.join(out, `metrics.jsonl.tmp-${dead}`), 'partial');
  mkdirSync(path.join(out, `checkpoint.tmp-${process.pid}`));
  writeFileSync(metricsFile, readFileSync(metricsFile, 'utf8') + '{"step": 99, "lo');

  const r = spawnSync(process.execPath, [bin, ...common, '--resume'], { env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`resumed from .* at step ${ckStep}`));
  assert.match(r.stderr, /removed 2 temporary file\(s\) of killed runs/);
  const steps = lines(metricsFile).map((l) => JSON.parse(l).step as number);
  assert.deepEqual(steps, Array.from({ length: 24 }, (_, i) => i + 1), `metrics.jsonl steps after kill at ${killedAt} lines and resume from ${ckStep}`);
  const left = readdirSync(out).filter((n) => n.includes('.tmp-'));
  assert.deepEqual(left, [`checkpoint.tmp-${process.pid}`]);
});

test('Ctrl-C stops a run within a step, not at its next evaluation: a checkpoint of that step, and --resume goes on from it', { timeout: 120000 }, async () => {
  const data = path.join(dir, 'c.jsonl');
  writeFileSync(data, Array.from({ length: 200 }, (_, i) => JSON.stringify({ text: `line ${i}: a stitch in time saves nine ${i % 5}.` })).join('\n'));
  const out = path.join(dir, 'ctrlc');
  // Evaluation (and so a checkpoint) only at step 100,000: before the fix, SIGINT waited for it.
  const common = ['train', '--data', data, '--config', '260k', '--out', out, '--batch-size', '2', '--seq-len', '16', '--eval-every', '100000', '--eval-batches', '1', '--steps', '100000'];
  const metricsFile = path.join(out, 'metrics.jsonl');
  const run = startCli(common);
  const sentAt = await signalWhen(run.p, metricsFile, (n) => n >= 5, 'SIGINT');
  assert.ok(sentAt > 0, `the run wrote no steps: ${run.err()}`);
  const t0 = Date.now();
  const code = await Promise.race([run.exited, new Promise<string>((r) => setTimeout(() => r('running'), 30000))]);
  if (code === 'running') run.p.kill('SIGKILL');
  assert.equal(code, 0, `still running 30 s after Ctrl-C at step ${sentAt}: ${run.err().slice(-300)}`);
  assert.match(run.err(), /interrupted: saving a checkpoint after this step/);
  const ckStep = JSON.parse(readFileSync(path.join(out, 'checkpoint', 'trainer_state.json'), 'utf8')).state.step as number;
  assert.ok(ckStep >= sentAt && ckStep < 100000, `checkpoint at step ${ckStep}, Ctrl-C after step ${sentAt} (${Date.now() - t0} ms to stop)`);
  assert.equal(lines(metricsFile).length, ckStep);
  // Resumed from there, stopped again at once by --steps: the steps follow on.
  const r = spawnSync(process.execPath, [bin, ...common.slice(0, -1), String(ckStep + 3), '--resume'], { env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`resumed from .* at step ${ckStep}`));
  assert.deepEqual(lines(metricsFile).map((l) => JSON.parse(l).step as number), Array.from({ length: ckStep + 3 }, (_, i) => i + 1));
});

test('readMetrics keeps one line per step up to the checkpoint and skips cut lines; removeStaleTemps leaves live pids', () => {
  const f = path.join(dir, 'm.jsonl');
  writeFileSync(f, ['{"step":1,"loss":3}', '{"step":2,"loss":2.5}', '{"step":3,"loss":2}', '{"step":2,"loss":2.4}', 'not json', '[1]', '{"step":"x"}', '{"step":4,"lo'].join('\n'));
  assert.deepEqual(readMetrics(f, 3).map((m) => [m.step, m.loss]), [[1, 3], [2, 2.4], [3, 2]]);
  assert.deepEqual(readMetrics(f, 1).map((m) => m.step), [1]);
  assert.deepEqual(readMetrics(path.join(dir, 'absent.jsonl'), 5), []);
  const d = path.join(dir, 'temps');
  mkdirSync(d);
  const dead = deadPid();
  for (const n of [`checkpoint.tmp-${dead}`, `checkpoint.tmp-${process.pid}`, `checkpoint.tmp-1`, 'checkpoint.tmp-x', 'checkpoint']) mkdirSync(path.join(d, n));
  assert.deepEqual(removeStaleTemps(d), [`checkpoint.tmp-${dead}`]);
  assert.deepEqual(readdirSync(d).sort(), ['checkpoint', 'checkpoint.tmp-1', `checkpoint.tmp-${process.pid}`, 'checkpoint.tmp-x'].sort());
  assert.deepEqual(removeStaleTemps(path.join(dir, 'no-such-dir')), []);
});
