// Hostile instruction, prompt, preference and seed files (issue #21): a 10 MB response, deep
// nesting, JSON errors that give the line and column without quoting the row, CRLF/BOM/NUL,
// wrong types described briefly, and Chinese text. Inputs are made here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { collate, parseInstructionData, readInstructionData, SftDataError, tokenizeRow } from '../../src/sft/data.js';
import { parseSeedTasks } from '../../src/sft/selfinstruct.js';
import { parsePrompts, PromptDataError } from '../../src/align/data.js';
import { parsePreferences, PreferenceDataError } from '../../src/align/preference.js';
import { trainByteLevelBPE } from '../../src/tokenizers/index.js';

const tok = trainByteLevelBPE(['the cat sat on the mat. 猫坐在垫子上。 '.repeat(20)], { vocabSize: 300, specialTokens: ['<|endoftext|>'] });

function fails(f: () => unknown, cls: new (...a: any[]) => Error, re: RegExp, secret?: string): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    assert.match((e as Error).message, re);
    assert.ok((e as Error).message.length < 300, `short: ${(e as Error).message.slice(0, 100)}`);
    if (secret) assert.ok(!(e as Error).message.includes(secret), 'the message does not quote the file');
    return true;
  });
}

test('a long Alpaca response tokenises (no argument spreading over its ids); long batches collate', () => {
  // 1.2 MB, ~300k ids: past the ~120k arguments at which push(...ids) overflowed the stack.
  const output = 'the cat sat on the mat. '.repeat(50_000);
  const [row] = parseInstructionData(JSON.stringify({ instruction: '写一首诗', output }) + '\n', 'big.jsonl');
  const ex = tokenizeRow(row, tok);
  assert.ok(ex.ids.length > 200_000, `${ex.ids.length} ids`);
  assert.equal(ex.ids.length, ex.labels.length);
  assert.equal(tokenizeRow(row, tok, { maxLength: 100 }).ids.length, 100);
  const b = collate(Array.from({ length: 3 }, () => ex), 0);
  assert.equal(b.length, ex.ids.length - 1);
});

test('instruction data: JSON errors give the line and column, never the row; types described briefly', () => {
  const ok = JSON.stringify({ instruction: '翻译', output: '猫' });
  fails(() => parseInstructionData(`${ok}\n{"instruction": "SECRET", "output" 5}\n`, 'd.jsonl'), SftDataError, /^d\.jsonl:2: row 2: invalid JSON \(column 36: expected ':'\)$/, 'SECRET');
  fails(() => parseInstructionData(`[${ok}, {"instruction": "SECRET",\n "output": ]`, 'd.json'), SftDataError, /^d\.json: invalid JSON \(line 2, column 12: unexpected character\)$/, 'SECRET');
  fails(() => parseInstructionData(`${ok}\n${'['.repeat(1e6)}${']'.repeat(1e6)}\n`, 'deep.jsonl'), SftDataError, /^deep\.jsonl:2: row 2: expected an object .* got an array of 1$/);
  fails(() => parseInstructionData(`${ok}\n${JSON.stringify({ instruction: 'x', output: ['SECRET'.repeat(1000)] })}\n`, 'd.jsonl'), SftDataError, /d\.jsonl:2: row 2: "output" must be a string, got object/, 'SECRET');
  const many: Record<string, number> = {};
  for (let i = 0; i < 100_000; i++) many[`k${i}`] = i;
  fails(() => parseInstructionData(JSON.stringify(many), 'm.jsonl'), SftDataError, /missing "instruction" \(has "k0", "k1", "k2", "k3", "k4", "k5", … \(100000 fields\)\)/);
  fails(() => parseInstructionData('{"instruction": "a\u0000b", "output": "c"}\n', 'nul.jsonl'), SftDataError, /^nul\.jsonl:1: row 1: invalid JSON \(column 19: control character in a string\)/);
  // CRLF, a BOM, blank lines and Chinese are fine.
  const dir = mkdtempSync(path.join(tmpdir(), 'tslm-hostile-sft-'));
  const f = path.join(dir, 'crlf.jsonl');
  writeFileSync(f, `\ufeff${ok}\r\n\r\n${ok}\r\n`);
  const rows = readInstructionData(f);
  assert.equal(rows.length, 2);
  assert.deepEqual(rows[1], { instruction: '翻译', input: '', output: '猫' });
  writeFileSync(f, Buffer.from([0x7b, 0x22, 0x69, 0x6e, 0x73, 0x74, 0x72, 0x75, 0x63, 0x74, 0x69, 0x6f, 0x6e, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x2c, 0x22, 0x6f, 0x75, 0x74, 0x70, 0x75, 0x74, 0x22, 0x3a, 0x22, 0x78, 0x22, 0x7d]));
  assert.equal((readInstructionData(f)[0] as { instruction: string }).instruction, '\ufffd\ufffd', 'invalid UTF-8 reads as U+FFFD');
});

test('prompt, preference and seed files: the same rules', () => {
  fails(() => parsePrompts('{"prompt": 5}\n', 'p.jsonl'), PromptDataError, /^p\.jsonl:1: "prompt" must be a string, got 5$/);
  fails(() => parsePrompts('{"prompt": "a"}\n{"prompt": SECRET}\n', 'p.jsonl'), PromptDataError, /^p\.jsonl:2: invalid JSON \(column 12: unexpected character\)$/, 'SECRET');
  fails(() => parsePreferences(`{"prompt": "a", "chosen": "b", "rejected": "c", "margin": ${'['.repeat(5000)}${']'.repeat(5000)}}\n`, 'pr.jsonl'), PreferenceDataError, /^pr\.jsonl:1: "margin" must be a finite number, got an array of 1$/);
  fails(() => parsePreferences(`["${'x'.repeat(100)}"]`, 'pr.json'), PreferenceDataError, /^pr\.json: row 1: expected a JSON object with "chosen" and "rejected", got a string of 100 chars$/);
  fails(() => parseSeedTasks('{"instruction": "a", "instances": [{"input": 5, "output": "b"}]}\n', 's.jsonl'), SftDataError, /^s\.jsonl:1: "instances" must hold \{input, output\} objects/);
  fails(() => parseSeedTasks('[{"instruction": SECRET}]', 's.json'), SftDataError, /^s\.json: invalid JSON \(line 1, column 18: unexpected character\)$/, 'SECRET');
  assert.equal(parseSeedTasks('{"instruction": "写诗", "output": "春眠不觉晓"}\n', 's.jsonl')[0].instances[0].output, '春眠不觉晓');
});
