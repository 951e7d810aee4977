// Instruction data: Alpaca/JSONL/chat rows, the Alpaca templates, response-only labels, packing,
// and errors that name the row.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { trainByteLevelBPE } from '../../src/tokenizers/trainer.js';
import {
  parseInstructionData, alpacaPrompt, tokenizeRow, rowSegments, collate, pack, promptIds, IGNORE_INDEX, SftDataError, SftBatcher,
} from '../../src/sft/data.js';

const tok = trainByteLevelBPE(['Below is an instruction that describes a task. Write a response that appropriately completes the request. ### Instruction: ### Response: ### Input: hello world the cat sat'], { vocabSize: 300, specialTokens: ['<|endoftext|>'] });

test('Alpaca prompt template with and without input (Stanford Alpaca PROMPT_DICT)', () => {
  assert.equal(alpacaPrompt({ instruction: 'Add the numbers.', input: '2 3' }),
    'Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\nAdd the numbers.\n\n### Input:\n2 3\n\n### Response:\n');
  assert.equal(alpacaPrompt({ instruction: 'Say $1 and $& literally.', input: '' }),
    'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nSay $1 and $& literally.\n\n### Response:\n');
});

test('JSON array, JSONL and chat rows; missing instruction/output reported by row', () => {
  const a = parseInstructionData(JSON.stringify([{ instruction: 'i', input: '', output: 'o' }, { instruction: 'j', output: 'p' }]), 'a.json');
  assert.deepEqual(a, [{ instruction: 'i', input: '', output: 'o' }, { instruction: 'j', input: '', output: 'p' }]);
  const j = parseInstructionData('{"instruction":"i","output":"o"}\n\n{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}\n', 'b.jsonl');
  assert.equal(j.length, 2);
  assert.throws(() => parseInstructionData(JSON.stringify([{ instruction: 'i', output: 'o' }, { instruction: 'j', output: 'p' }, { instruction: 'k', response: 'q' }]), 'a.json'),
    (e: Error) => e instanceof SftDataError && e.message === 'a.json: row 3: missing "output" (has "instruction", "response")');
  assert.throws(() => parseInstructionData('{"instruction":"i","output":"o"}\n\n{"input":"x","output":"o"}\n', 'b.jsonl'), /b\.jsonl:3: row 2: missing "instruction"/);
  assert.throws(() => parseInstructionData('{"instruction":"i","output":"o"}\n{bad\n', 'b.jsonl'), /b\.jsonl:2: row 2: invalid JSON/);
  assert.throws(() => parseInstructionData('[{"messages":[{"role":"user","content":"hi"}]}]', 'c.json'), /c\.json: row 1: "messages" has no assistant turn/);
});

test('labels: −100 on prompt tokens, response and EOS trained', () => {
  const row = { instruction: 'Say hello.', input: '', output: 'hello world' };
  const ex = tokenizeRow(row, tok);
  const prompt = tok.encode(alpacaPrompt(row)), resp = tok.encode('hello world');
  assert.deepEqual(ex.ids, [tok.bosId!, ...prompt, ...resp, tok.eosId!]);
  assert.deepEqual(ex.labels, [IGNORE_INDEX, ...prompt.map(() => IGNORE_INDEX), ...resp, tok.eosId!]);
  assert.deepEqual(tokenizeRow(row, tok, { trainOnPrompt: true }).labels.slice(1), ex.ids.slice(1));
  const p = promptIds(row, tok);
  assert.deepEqual(p.ids, [tok.bosId!, ...prompt]);
  assert.equal(p.response, 'hello world');
  // truncation
  assert.equal(tokenizeRow(row, tok, { maxLength: 5 }).ids.length, 5);
});

test('chat rows: only assistant turns are trained (ChatML by default)', () => {
  const row = { messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' }, { role: 'user', content: 'bye' }, { role: 'assistant', content: 'ciao' }] };
  const segs = rowSegments(row);
  assert.deepEqual(segs.filter((s) => s.train).map((s) => s.text), ['yo<|im_end|>\n', 'ciao<|im_end|>\n']);
  assert.equal(segs.map((s) => s.text).join(''), '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n<|im_start|>user\nbye<|im_end|>\n<|im_start|>assistant\nciao<|im_end|>\n');
  const ex = tokenizeRow(row, tok);
  const trained = ex.labels.filter((l) => l !== IGNORE_INDEX);
  assert.equal(tok.decode(trained), 'yo<|im_end|>\nciao<|im_end|>\n');
  // Alpaca rows through the chat template
  const alpacaAsChat = rowSegments({ instruction: 'Add.', input: '1 2', output: '3' }, { template: 'chat' });
  assert.deepEqual(alpacaAsChat.map((s) => [s.text, s.train]), [['<|im_start|>user\nAdd.\n\n1 2<|im_end|>\n<|im_start|>assistant\n', false], ['3<|im_end|>\n', true]]);
});

test('collate shifts and pads with −100; packing keeps labels and fills rows', () => {
  const a = { ids: [1, 2, 3, 4], labels: [-100, -100, 3, 4] }, b = { ids: [5, 6], labels: [-100, 6] };
  const batch = collate([a, b], 0);
  assert.equal(batch.length, 3);
  assert.deepEqual(batch.ids, [1, 2, 3, 5, 0, 0]);
  assert.deepEqual(batch.targets, [-100, 3, 4, 6, -100, -100]);
  assert.equal(batch.responseTokens, 3);
  const packed = pack([a, b, a], 4);
  assert.equal(packed.length, 2);
  assert.deepEqual(packed[0].ids, [1, 2, 3, 4, 5]);
  assert.deepEqual(collate([packed[0]], 0).targets, [-100, 3, 4, -100]);
  assert.deepEqual(packed[1].ids, [5, 6, 1, 2, 3]);
  assert.deepEqual(collate([packed[1]], 0).targets, [6, -100, -100, 3]);
  const bt = new SftBatcher([a, b, a], 2, 0, 1);
  for (let i = 0; i < 5; i++) assert.equal(bt.next().batch, 2);
  assert.ok(bt.epoch >= 2);
});
