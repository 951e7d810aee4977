// Ghost Attention data (LLaMA 2 §3.3): sampling prompts carry the instruction on every user turn,
// training rows only on the first, labels only on the last assistant turn (checked token by token
// against ChatML written out by hand: "<|im_start|>{role}\n{content}<|im_end|>\n"), seeded
// sampling, and `tslm gatt` → `tslm finetune --gatt` with their errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, shutdown, createModel, saveModel, trainByteLevelBPE, generate, applyChatTemplate } from '../../src/index.js';
import { CHATML_TEMPLATE, IGNORE_INDEX, SftDataError, gattSample, gattTrainingRows, parseGattDialogs, tokenizeRow, withInstruction } from '../../src/sft/index.js';
import type { ChatMessage, ChatRow, GattDialog } from '../../src/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const bin = path.join(root, 'bin', 'tslm.js');
const run = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, TSLM_THREADS: '1' } });
let dir = '';

const chatml = (ms: ChatMessage[], gen = false) => ms.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join('') + (gen ? '<|im_start|>assistant\n' : '');
const CORPUS = 'Always answer as a pirate. Answer in under ten words. What is the sea? Where is the ship? Tell me about gold. arr matey yes no the ship sails at dawn gold is buried';
const tok = trainByteLevelBPE([CORPUS, chatml([{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'arr' }], true)], { vocabSize: 300, specialTokens: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] });
function tinyModel() {
  const m = createModel({ model_type: 'llama', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: tok.vocabSize, max_position_embeddings: 256, tie_word_embeddings: false, bos_token_id: 0, eos_token_id: 0 });
  m.eval();
  return m;
}
const DIALOGS: GattDialog[] = [
  { instruction: 'Always answer as a pirate.', turns: ['What is the sea?', 'Where is the ship?', 'Tell me about gold.'] },
  { instruction: 'Answer in under ten words.', turns: ['Where is the ship?', 'What is the sea?'], system: 'You are helpful.' },
];

before(async () => { await init({ threads: 1 }); dir = mkdtempSync(path.join(tmpdir(), 'tslm-gatt-')); });
after(async () => { await shutdown(); rmSync(dir, { recursive: true, force: true }); });

test('sampling: the instruction on every user turn of every prompt (ChatML by hand), replies from the model, seeded', () => {
  const m = tinyModel();
  try {
    const prompts: { d: number; k: number; text: string }[] = [];
    const opts = { maxNewTokens: 5, temperature: 1, seed: 3, placement: 'prefix' as const };
    const rows = gattSample(m, tok, DIALOGS, { ...opts, onPrompt: (d, k, text) => prompts.push({ d, k, text }) });
    assert.equal(prompts.length, 5);
    for (const { d, k, text } of prompts) {
      const dl = DIALOGS[d];
      const ms: ChatMessage[] = dl.system ? [{ role: 'system', content: dl.system }] : [];
      for (let t = 0; t <= k; t++) {
        ms.push({ role: 'user', content: `${dl.instruction}\n${dl.turns[t]}` });
        if (t < k) ms.push({ role: 'assistant', content: rows[d].messages.filter((x) => x.role === 'assistant')[t].content });
      }
      assert.equal(text, chatml(ms, true), `dialog ${d} turn ${k}`);
      assert.equal(text.split(dl.instruction).length - 1, k + 1, 'the instruction once per user turn so far');
    }
    // the rows as sampled: instruction on every user turn, one reply per user turn
    assert.ok(rows.every((r) => r.messages.filter((x) => x.role === 'assistant').every((x) => x.content.length > 0)), 'the model replied');
    rows.forEach((r, d) => {
      const users = r.messages.filter((x) => x.role === 'user');
      assert.deepEqual(users.map((u) => u.content), DIALOGS[d].turns.map((t) => `${DIALOGS[d].instruction}\n${t}`));
      assert.equal(r.messages.filter((x) => x.role === 'assistant').length, DIALOGS[d].turns.length);
      assert.equal(r.instruction, DIALOGS[d].instruction);
    });
    // greedy replies are the model's own continuation of the prompt (cut at the end-of-turn marker, trimmed)
    const greedy: string[] = [];
    const gRows = gattSample(m, tok, [DIALOGS[0]], { maxNewTokens: 6, temperature: 0, seed: 0, onPrompt: (_d, _k, text) => greedy.push(text) });
    greedy.forEach((text, k) => {
      const r = generate(m, [0, ...tok.encode(text)], { maxNewTokens: 6, stopIds: [0], stopStrings: ['<|im_end|>'], tokenizer: tok });
      assert.equal(gRows[0].messages.filter((x) => x.role === 'assistant')[k].content, r.text![0].trim());
    });
    // seeded: same seed, same rows; another seed, other rows
    assert.deepEqual(gattSample(m, tok, DIALOGS, opts), rows);
    assert.notDeepEqual(gattSample(m, tok, DIALOGS, { ...opts, seed: 4 }), rows);
    // suffix placement
    const suf = gattSample(m, tok, [DIALOGS[0]], { ...opts, placement: 'suffix' });
    assert.deepEqual(suf[0].messages.filter((x) => x.role === 'user').map((u) => u.content), DIALOGS[0].turns.map((t) => `${t}\n${DIALOGS[0].instruction}`));
    assert.throws(() => gattSample(m, tok, [{ instruction: 'x', turns: [] }], opts), /dialog 1: "turns" must be a non-empty list/);
    assert.throws(() => gattSample(m, tok, DIALOGS, { ...opts, maxNewTokens: 0 }), /maxNewTokens/);
    const long = { instruction: 'Always answer as a pirate.', turns: ['sea '.repeat(300)] };
    assert.throws(() => gattSample(m, tok, [long], opts), /dialog 1, turn 1: the prompt has \d+ tokens, the model's context is 256/);
  } finally {
    m.dispose();
  }
});

test('training rows: the instruction only in the first user turn; everything else untouched', () => {
  const inst = 'Answer in under ten words.';
  const sampled: ChatRow[] = [{ messages: [
    { role: 'system', content: 'sys' },
    { role: 'user', content: withInstruction('What is the sea?', inst) }, { role: 'assistant', content: 'water' },
    { role: 'user', content: withInstruction('Where is the ship?', inst) }, { role: 'assistant', content: 'at sea' },
    { role: 'user', content: withInstruction('Gold?', inst) }, { role: 'assistant', content: 'buried' },
  ] }];
  const [r] = gattTrainingRows(sampled, inst);
  assert.deepEqual(r.messages.map((m) => m.content), ['sys', `${inst}\nWhat is the sea?`, 'water', 'Where is the ship?', 'at sea', 'Gold?', 'buried']);
  assert.equal(sampled[0].messages[3].content, `${inst}\nWhere is the ship?`, 'input rows are not modified');
  const suffixed = [{ messages: [{ role: 'user', content: `a\n${inst}` }, { role: 'assistant', content: 'b' }, { role: 'user', content: `c\n${inst}` }, { role: 'assistant', content: 'd' }] }];
  assert.deepEqual(gattTrainingRows(suffixed, inst, { placement: 'suffix' })[0].messages.map((m) => m.content), [`a\n${inst}`, 'b', 'c', 'd']);
  assert.throws(() => gattTrainingRows(suffixed, inst), /row 1, messages\[0\]: the user turn does not carry the instruction as a prefix/);
  assert.throws(() => gattTrainingRows([{ messages: [{ role: 'assistant', content: 'x' }] }], inst), /row 1 has no user turn/);
});

test("labels with trainTurns 'last': −100 on every token but the last assistant reply (token by token against hand-written ChatML)", () => {
  const messages: ChatMessage[] = [
    { role: 'system', content: 'You are helpful.' },
    { role: 'user', content: 'Always answer as a pirate.\nWhat is the sea?' }, { role: 'assistant', content: 'arr the sea matey' },
    { role: 'user', content: 'Where is the ship?' }, { role: 'assistant', content: 'the ship sails at dawn' },
    { role: 'user', content: 'Tell me about gold.' }, { role: 'assistant', content: 'gold is buried arr' },
  ];
  const text = chatml(messages);
  assert.equal(applyChatTemplate(messages, { template: CHATML_TEMPLATE }), text, 'the ChatML template renders what ChatML is');
  const lastStart = chatml(messages.slice(0, -1), true).length, lastEnd = text.length;
  assert.equal(text.slice(lastStart), 'gold is buried arr<|im_end|>\n');
  const ex = tokenizeRow({ messages }, tok, { template: 'chat', trainTurns: 'last' });
  assert.equal(ex.ids[0], 0, 'BOS');
  assert.equal(tok.decode(ex.ids.slice(1)), text, 'the tokens spell the rendered chat');
  // token by token: trained iff the token's characters lie inside the last reply (+ its end-of-turn marker)
  let at = 0, trained = 0;
  for (let i = 1; i < ex.ids.length; i++) {
    const end = tok.decode(ex.ids.slice(1, i + 1)).length;
    const inLast = at >= lastStart && end <= lastEnd;
    if (!inLast) assert.ok(end <= lastStart || at >= lastEnd, `token ${i} straddles the turn boundary`);
    assert.equal(ex.labels[i], inLast ? ex.ids[i] : IGNORE_INDEX, `token ${i} ${JSON.stringify(text.slice(at, end))}`);
    if (inLast) trained++;
    at = end;
  }
  assert.ok(trained > 3);
  // the default trains every reply: the difference is exactly the earlier replies
  const all = tokenizeRow({ messages }, tok, { template: 'chat' });
  assert.deepEqual(all.ids, ex.ids);
  const diff = all.labels.map((l, i) => (l !== IGNORE_INDEX && ex.labels[i] === IGNORE_INDEX ? l : null)).filter((x) => x !== null);
  assert.equal(tok.decode(diff as number[]), 'arr the sea matey<|im_end|>\nthe ship sails at dawn<|im_end|>\n');
  // one-turn rows: unchanged
  const one = { messages: messages.slice(0, 3) };
  assert.deepEqual(tokenizeRow(one, tok, { trainTurns: 'last' }), tokenizeRow(one, tok, {}));
  assert.throws(() => tokenizeRow({ messages }, tok, { trainTurns: 'last', trainOnPrompt: true }), SftDataError);
  assert.throws(() => tokenizeRow({ messages }, tok, { trainTurns: 'first' as 'last' }), /trainTurns: expected 'all' or 'last'/);
});

test('dialogue files: errors name file:line', () => {
  assert.deepEqual(parseGattDialogs('{"instruction":"x","turns":["a","b"]}\n\n{"instruction":"y","turns":["c"],"system":"s"}\n', 'd.jsonl'),
    [{ instruction: 'x', turns: ['a', 'b'] }, { instruction: 'y', turns: ['c'], system: 's' }]);
  assert.throws(() => parseGattDialogs('{"instruction":"x","turns":["a"]}\n{"turns":["a"]}\n', 'd.jsonl'), /d\.jsonl:2: "instruction" must be a non-empty string \(missing\)/);
  assert.throws(() => parseGattDialogs('{"instruction":"x","turns":["a", 3]}', 'd.jsonl'), /d\.jsonl:1: turns\[1\] must be a string/);
  assert.throws(() => parseGattDialogs('{"instruction":"x","turns":[]}', 'd.jsonl'), /d\.jsonl:1: "turns" must be a non-empty list/);
  assert.throws(() => parseGattDialogs('{"instruction":"x","turns":["a"],"system":1}', 'd.jsonl'), /d\.jsonl:1: "system" must be a string/);
  assert.throws(() => parseGattDialogs('{"instruction":"x",\n', 'd.jsonl'), /d\.jsonl:1: invalid JSON/);
  assert.throws(() => parseGattDialogs('\n\n', 'd.jsonl'), /d\.jsonl: no dialogues/);
});

test('tslm gatt writes rows that tslm finetune --gatt trains on (last reply only); CLI errors', async () => {
  const m = tinyModel();
  const mdir = path.join(dir, 'base');
  await saveModel(m, mdir, { tokenizer: tok });
  m.dispose();
  const data = path.join(dir, 'dialogs.jsonl'), out = path.join(dir, 'rows.jsonl');
  writeFileSync(data, DIALOGS.map((d) => JSON.stringify(d)).join('\n') + '\n');
  const g = run(['gatt', '--model', mdir, '--data', data, '--out', out, '--max-new-tokens', '4', '--temperature', '0.8', '--seed', '2']);
  assert.equal(g.status, 0, g.stderr);
  assert.match(g.stderr, /wrote 2 GAtt rows \(5 assistant turns/);
  const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as ChatRow & { instruction: string });
  rows.forEach((r, d) => {
    const users = r.messages.filter((x) => x.role === 'user').map((x) => x.content);
    assert.deepEqual(users, DIALOGS[d].turns.map((t, k) => (k === 0 ? `${DIALOGS[d].instruction}\n${t}` : t)));
    assert.equal(r.instruction, DIALOGS[d].instruction);
  });
  assert.equal(rows[1].messages[0].content, 'You are helpful.');
  const again = path.join(dir, 'rows2.jsonl');
  assert.equal(run(['gatt', '--model', mdir, '--data', data, '--out', again, '--max-new-tokens', '4', '--temperature', '0.8', '--seed', '2']).status, 0);
  assert.equal(readFileSync(again, 'utf8'), readFileSync(out, 'utf8'), 'seeded');

  const lastTokens = rows.reduce((s, r) => s + tokenizeRow(r, tok, { trainTurns: 'last' }).labels.filter((l) => l !== IGNORE_INDEX).length, 0);
  const allTokens = rows.reduce((s, r) => s + tokenizeRow(r, tok, {}).labels.filter((l) => l !== IGNORE_INDEX).length, 0);
  assert.ok(lastTokens < allTokens);
  const ft = run(['finetune', '--model', mdir, '--data', out, '--out', path.join(dir, 'adapter'), '--gatt', '--steps', '2', '--batch-size', '2', '--lora-r', '2']);
  assert.equal(ft.status, 0, ft.stderr);
  assert.match(ft.stderr, new RegExp(`data: 2 rows \\(2 train, 0 validation\\), ${lastTokens} response tokens`));

  // errors
  const bad = path.join(dir, 'bad.jsonl');
  writeFileSync(bad, '{"instruction":"x","turns":["a"]}\n{"instruction":"y","turns":"a"}\n');
  const e1 = run(['gatt', '--model', mdir, '--data', bad, '--out', path.join(dir, 'x.jsonl')]);
  assert.equal(e1.status, 1);
  assert.match(e1.stderr, /bad\.jsonl:2: "turns" must be a non-empty list/);
  const e2 = run(['gatt', '--model', mdir, '--data', data, '--out', path.join(dir, 'x.jsonl'), '--placement', 'middle']);
  assert.equal(e2.status, 2);
  assert.match(e2.stderr, /--placement: expected prefix or suffix/);
  const e3 = run(['finetune', '--model', mdir, '--data', out, '--out', path.join(dir, 'a2'), '--gatt', '--train-on-prompt']);
  assert.equal(e3.status, 2);
  assert.match(e3.stderr, /--gatt and --train-on-prompt exclude each other/);
  const alpaca = path.join(dir, 'alpaca.jsonl');
  writeFileSync(alpaca, '{"instruction":"a","output":"b"}\n');
  const e4 = run(['finetune', '--model', mdir, '--data', alpaca, '--out', path.join(dir, 'a3'), '--gatt']);
  assert.equal(e4.status, 1);
  assert.match(e4.stderr, /alpaca\.jsonl: row 1 is not a chat row/);
});
