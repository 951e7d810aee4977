// The rlhf demo's task and judge, and `tslm rlhf demo --quick` as a user runs it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { countWords, judge, parseTaskPrompt, preferenceTaskRows, JUDGE_MAX } from '../../src/align/preference_task.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const bin = path.join(root, 'bin', 'tslm.js');
const P = 'Write about the sea using the word "gentle" in at most 8 words.\n';

test('the judge: one point per instruction, each checked on its own', () => {
  const v = (r: string) => { const j = judge(P, r); return [j.keyword, j.length, j.polite, j.onTopic].map(Number).join(''); };
  assert.equal(v('Sure! The sea is gentle. Waves roll in.'), '1111');
  assert.equal(judge(P, 'Sure! The sea is gentle. Waves roll in.').score, JUDGE_MAX);
  // The word: whole words only.
  assert.equal(v('Sure! The sea is gentler. Waves roll in.'), '0111');
  // The limit: 8 words pass, 9 do not.
  assert.equal(countWords('Of course! The sea is gentle. Waves roll in.'), 9);
  assert.equal(v('Of course! The sea is gentle. Waves roll in.'), '1011');
  assert.equal(v('Of course! The sea is gentle. Ships sail far.'), '1011');
  // Politeness: a polite opener, not a curt one or none.
  assert.equal(v('Okay. The sea is gentle. Waves roll in.'), '1101');
  assert.equal(v('The sea is gentle. Waves roll in.'), '1101');
  assert.equal(v('Happy to help! The sea is gentle.'), '1111');
  // On topic: the task's sentences about this subject only; cut, garbled or empty answers fail.
  assert.equal(v('Sure! The forest is gentle.'), '1110');
  assert.equal(v('Sure! The sea is gentle. Birds sing there.'), '1110');
  assert.equal(v('Sure! The sea is gentle. Waves roll'), '1110');
  assert.equal(v('Sure! The sea is gentle. Wavesbr.'), '1110');
  assert.equal(v('Sure! The sea is gentle.Fine.'), '1110');
  assert.equal(v('Sure! The sea.'), '0110');
  assert.equal(v('Sure!'), '0110');
  assert.equal(v(''), '0000');
  assert.equal(v('Sure! The sea is gentle. It is deep and wide.'), '1011');
  assert.equal(v('Sure! The sea is gentle. It is dry.'), '1110');
  assert.throws(() => judge('Tell me a joke.', 'No.'), /not a prompt of the demo task/);
});

test('the teacher breaks each instruction at its rate, independently; same seed, same rows', () => {
  const rows = preferenceTaskRows({ count: 6000, seed: 3 });
  assert.deepEqual(preferenceTaskRows({ count: 5, seed: 3 }), rows.slice(0, 5));
  const vs = rows.map((r) => {
    assert.deepEqual(parseTaskPrompt(r.prompt), { topic: r.topic, keyword: r.keyword, maxWords: r.maxWords });
    return judge(r.prompt, r.response);
  });
  const rate = (f: (x: (typeof vs)[number]) => boolean) => vs.filter(f).length / vs.length;
  for (const [name, r, want] of [['word', rate((x) => x.keyword), 0.5], ['length', rate((x) => x.length), 0.5], ['polite', rate((x) => x.polite), 0.5], ['on topic', rate((x) => x.onTopic), 0.75]] as const) {
    assert.ok(Math.abs(r - want) < 0.04, `${name}: ${r}`);
  }
  // Independent: all four followed about 0.5³ · 0.75 of the time.
  assert.ok(Math.abs(rate((x) => x.score === JUDGE_MAX) - 0.09375) < 0.03);
  // Held-out prompts pair words with subjects no training prompt pairs them with.
  const combo = (r: { topic: string; keyword: string }) => `${r.topic}/${r.keyword}`;
  const trainCombos = new Set(rows.map(combo));
  const held = preferenceTaskRows({ count: 400, seed: 5, split: 'heldout' });
  assert.ok(held.every((r) => !trainCombos.has(combo(r))));
  assert.ok(new Set(held.map(combo)).size > 30 && trainCombos.size > 150, `${new Set(held.map(combo)).size} held-out and ${trainCombos.size} training combinations`);
  const perfect = preferenceTaskRows({ count: 500, seed: 4, teacherError: 0, offTopic: 0 });
  assert.ok(perfect.every((r) => judge(r.prompt, r.response).score === JUDGE_MAX), 'a teacher without errors follows every instruction');
});

test('tslm rlhf demo --quick: SFT, reward model, PPO and DPO, win rates and KL printed, report and models written', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tslm-rlhf-demo-'));
  try {
    const out = path.join(dir, 'demo');
    const r = spawnSync(process.execPath, [bin, 'rlhf', 'demo', '--quick', '--out', out], { encoding: 'utf8', cwd: dir, env: { ...process.env, TSLM_THREADS: '2' } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /reward model: held-out pair accuracy [\d.]+% \(\d+ judge-labelled pairs/);
    assert.match(r.stdout, /PPO model: [\d.]+; wins [\d.]+% of comparisons with the SFT model \(\d+ won, \d+ tied, \d+ lost; a tie counts half\); KL to the SFT model -?[\d.]+ nats/);
    assert.match(r.stdout, /DPO model: [\d.]+; wins [\d.]+%/);
    assert.match(r.stderr, /PPO batch 3\/3: reward-model score/);
    for (const f of ['sft/model.safetensors', 'reward_model/config.json', 'reward_model/metrics.jsonl', 'ppo/model.safetensors', 'ppo/value_model/config.json', 'ppo/metrics.jsonl', 'dpo/model.safetensors', 'dpo/metrics.jsonl',
      'report.html', 'demo.json', 'pairs.jsonl', 'prompts.jsonl', 'heldout.jsonl', 'samples.jsonl']) assert.ok(existsSync(path.join(out, f)), f);
    const d = JSON.parse(readFileSync(path.join(out, 'demo.json'), 'utf8'));
    const n = d.heldOut * d.evalSamples;
    for (const m of [d.ppo, d.dpo]) {
      assert.equal(m.wins + m.ties + m.losses, n);
      assert.ok(Math.abs(m.winRate - (m.wins + m.ties / 2) / n) < 1e-12);
    }
    assert.ok(JSON.parse(readFileSync(path.join(out, 'reward_model', 'config.json'), 'utf8')).architectures[0].endsWith('ForSequenceClassification'));
    // The pairs file is what `tslm dpo` and `tslm reward train` read.
    const pair = JSON.parse(readFileSync(path.join(out, 'pairs.jsonl'), 'utf8').split('\n')[0]);
    assert.ok(judge(pair.prompt, pair.chosen).score > judge(pair.prompt, pair.rejected).score);
    assert.match(readFileSync(path.join(out, 'report.html'), 'utf8'), /win rate vs SFT/);
    // The printed follow-up: DPO from the SFT model on the written pairs.
    const ipo = spawnSync(process.execPath, [bin, 'dpo', '--model', path.join(out, 'sft'), '--data', path.join(out, 'pairs.jsonl'), '--steps', '1', '--out', path.join(dir, 'ipo'), '--loss', 'ipo'], { encoding: 'utf8', cwd: dir, env: { ...process.env, TSLM_THREADS: '2' } });
    assert.equal(ipo.status, 0, ipo.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
