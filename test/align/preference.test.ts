// Preference pairs (src/align/preference.ts): text rows with margins, TRL's conversational rows
// with an explicit or implicit prompt rendered by the chat template, JSON arrays, tokenisation
// (EOS, truncation), and errors that name the file, line and field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { trainByteLevelBPE } from '../../src/index.js';
import { parsePreferences, readPreferences, tokenizePairs, PreferenceDataError } from '../../src/align/preference.js';

test('text rows: prompt, chosen, rejected and an optional margin, with where each came from', () => {
  const text = [
    JSON.stringify({ prompt: 'Q: 2+2?', chosen: ' 4', rejected: ' 5', margin: 3 }),
    '',
    JSON.stringify({ prompt: 'Hi', chosen: ' Hello!', rejected: ' Go away.', id: 7 }),
  ].join('\n');
  const p = parsePreferences(text, 'pairs.jsonl');
  assert.deepEqual(p, [
    { prompt: 'Q: 2+2?', chosen: ' 4', rejected: ' 5', margin: 3, where: 'pairs.jsonl:1' },
    { prompt: 'Hi', chosen: ' Hello!', rejected: ' Go away.', margin: 0, where: 'pairs.jsonl:3' },
  ]);
  const arr = parsePreferences(JSON.stringify([{ prompt: 'a', chosen: 'b', rejected: 'c', margin: null }]), 'pairs.json');
  assert.deepEqual(arr, [{ prompt: 'a', chosen: 'b', rejected: 'c', margin: 0, where: 'pairs.json: row 1' }]);
});

test('chat rows: an explicit prompt, and the implicit prompt of TRL (the shared conversation) render the same', () => {
  const user = { role: 'user', content: 'Name a colour.' };
  const explicit = parsePreferences(JSON.stringify({ prompt: [user], chosen: [{ role: 'assistant', content: 'Blue.' }], rejected: [{ role: 'assistant', content: 'No.' }] }), 'chat.jsonl');
  const implicit = parsePreferences(JSON.stringify({ chosen: [user, { role: 'assistant', content: 'Blue.' }], rejected: [user, { role: 'assistant', content: 'No.' }] }), 'chat.jsonl');
  assert.deepEqual(implicit, explicit);
  assert.equal(explicit[0].prompt, '<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n');
  assert.equal(explicit[0].chosen, 'Blue.<|im_end|>\n');
  assert.equal(explicit[0].rejected, 'No.<|im_end|>\n');
  // A multi-turn conversation: the shared turns, including an earlier assistant turn, are the prompt.
  const hist = [user, { role: 'assistant', content: 'Blue.' }, { role: 'user', content: 'Another?' }];
  const multi = parsePreferences(JSON.stringify({ chosen: [...hist, { role: 'assistant', content: 'Red.' }], rejected: [...hist, { role: 'assistant', content: 'Blue.' }] }), 'chat.jsonl');
  assert.ok(multi[0].prompt.endsWith('<|im_start|>user\nAnother?<|im_end|>\n<|im_start|>assistant\n'));
  assert.equal(multi[0].chosen, 'Red.<|im_end|>\n');
  // Another template.
  const tpl = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}";
  const own = parsePreferences(JSON.stringify({ prompt: [user], chosen: [{ role: 'assistant', content: 'Blue.' }], rejected: [{ role: 'assistant', content: 'No.' }] }), 'c.jsonl', { chatTemplate: tpl });
  assert.equal(own[0].prompt, '[user] Name a colour.\n[assistant] ');
});

test('bad rows: missing fields, identical completions, bad margins and types name the file and line', () => {
  const bad = (rows: unknown[], re: RegExp) => assert.throws(() => parsePreferences(rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n'), 'p.jsonl'), (e: Error) => e instanceof PreferenceDataError && re.test(e.message), String(re));
  const ok = { prompt: 'a', chosen: 'b', rejected: 'c' };
  bad([ok, { prompt: 'a', chosen: 'b' }], /^p\.jsonl:2: missing "rejected" \(has "prompt", "chosen"\)$/);
  bad([ok, ok, { chosen: 'b', rejected: 'c' }], /^p\.jsonl:3: missing "prompt"/);
  bad([{ prompt: 'a', chosen: 'same', rejected: 'same' }], /^p\.jsonl:1: "chosen" and "rejected" are identical/);
  bad([{ prompt: 'a', chosen: 'b', rejected: 'c', margin: 'big' }], /^p\.jsonl:1: "margin" must be a finite number, got "big"/);
  bad([{ prompt: 'a', chosen: 5, rejected: 'c' }], /^p\.jsonl:1: "chosen" must be a string/);
  bad([{ prompt: '', chosen: 'b', rejected: 'c' }], /^p\.jsonl:1: "prompt" is empty/);
  bad([{ prompt: 'a', chosen: '', rejected: 'c' }], /^p\.jsonl:1: "chosen" is empty/);
  bad([ok, '{"prompt": "a",'], /^p\.jsonl:2: invalid JSON/);
  bad(['[1, 2]'], /^p\.jsonl: row 1: expected a JSON object/);
  bad([{ prompt: 'a', chosen: [{ role: 'assistant', content: 'x' }], rejected: 'c' }], /^p\.jsonl:1: "rejected" must be a non-empty list of messages when the row is a chat/);
  bad([{ chosen: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'x' }], rejected: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'x' }] }], /^p\.jsonl:1: "chosen" adds no turn after the prompt|identical/);
  bad([{ chosen: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'x' }], rejected: [{ role: 'user', content: 'r' }, { role: 'assistant', content: 'y' }] }], /^p\.jsonl:1: no "prompt", and "chosen" and "rejected" share no conversation/);
  bad([{ prompt: [{ role: 'user', content: 'q' }], chosen: [{ role: 'user', content: 'x' }], rejected: [{ role: 'assistant', content: 'y' }] }], /^p\.jsonl:1: "chosen" must start with an assistant turn, got role "user"/);
  bad([{ prompt: [{ role: 'user' }], chosen: [{ role: 'assistant', content: 'x' }], rejected: [{ role: 'assistant', content: 'y' }] }], /^p\.jsonl:1: prompt\[0\] must have string "role" and "content"/);
  assert.throws(() => parsePreferences('\n\n', 'empty.jsonl'), /empty\.jsonl: no preference pairs/);
  assert.throws(() => readPreferences('/nonexistent/pairs.jsonl'), /\/nonexistent\/pairs\.jsonl: cannot read/);
});

test('tokenizePairs: prompt ids (BOS first, as the policy sees them), EOS after each completion (or not), truncation, and a prompt too long to fit', () => {
  const tok = trainByteLevelBPE(['the cat sat on the mat '.repeat(10)], { vocabSize: 270, specialTokens: ['<|endoftext|>'] });
  const dir = mkdtempSync(path.join(tmpdir(), 'tslm-pref-'));
  try {
    const f = path.join(dir, 'p.jsonl');
    writeFileSync(f, JSON.stringify({ prompt: 'the cat', chosen: ' sat on the mat', rejected: ' sat', margin: 1 }) + '\n');
    const [p] = tokenizePairs(readPreferences(f), tok);
    assert.deepEqual(p.prompt, [...(tok.bosId !== null ? [tok.bosId] : []), ...tok.encode('the cat')]);
    assert.deepEqual(p.chosen, [...tok.encode(' sat on the mat'), tok.eosId]);
    assert.deepEqual(p.rejected, [...tok.encode(' sat'), tok.eosId]);
    assert.equal(p.margin, 1);
    assert.equal(p.where, `${f}:1`);
    const [q] = tokenizePairs(readPreferences(f), tok, { eos: false, maxLength: p.prompt.length + 2 });
    assert.deepEqual(q.chosen, tok.encode(' sat on the mat').slice(0, 2));
    assert.throws(() => tokenizePairs(readPreferences(f), tok, { maxLength: p.prompt.length }), new RegExp(`${f.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:1: the prompt has ${p.prompt.length} tokens, which leaves no room for a completion within ${p.prompt.length} tokens`));
    // A prompt of more bytes than the tokens can hold is refused before it is tokenised (it
    // would take seconds and hundreds of MB for megabytes); one that might fit is tokenised.
    writeFileSync(f, JSON.stringify({ prompt: '猫'.repeat(2_000_000), chosen: 'a', rejected: 'b' }) + '\n');
    const t0 = performance.now();
    assert.throws(() => tokenizePairs(readPreferences(f), tok, { maxLength: 64 }), /:1: the prompt is 6000000 bytes, more than 64 tokens of at most \d+ bytes each can hold/);
    assert.ok(performance.now() - t0 < 3000);
    writeFileSync(f, JSON.stringify({ prompt: 'the cat '.repeat(8), chosen: 'a', rejected: 'b' }) + '\n');
    assert.equal(tokenizePairs(readPreferences(f), tok, { maxLength: 64 }).length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
