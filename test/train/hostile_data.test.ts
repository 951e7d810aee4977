// Hostile training data (issue #21): JSONL lines that are huge, deeply nested, without newlines,
// with CRLF, NUL bytes, invalid UTF-8, millions of blank lines or a "text" that is not a string;
// folders with symlink loops; and the tokenizer trainer on a long unbroken "word" (it took minutes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DataError, listDataFiles, readDocuments } from '../../src/train/data.js';
import { trainByteLevelBPE } from '../../src/tokenizers/index.js';

const dir = mkdtempSync(path.join(tmpdir(), 'tslm-hostile-train-'));
let n = 0;
const write = (content: string | Buffer, ext = '.jsonl'): string => {
  const f = path.join(dir, `d${n++}${ext}`);
  writeFileSync(f, content);
  return f;
};
async function docs(f: string): Promise<string[]> {
  const out: string[] = [];
  for await (const d of readDocuments(f)) out.push(d);
  return out;
}
async function fails(f: string, re: RegExp, secret?: string): Promise<void> {
  await assert.rejects(docs(f), (e: unknown) => {
    assert.ok(e instanceof DataError, `expected DataError, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    assert.ok((e as Error).message.startsWith(`${f}:`), (e as Error).message);
    assert.match((e as Error).message, re);
    assert.ok((e as Error).message.length < 300);
    if (secret) assert.ok(!(e as Error).message.includes(secret));
    return true;
  });
}

const row = (t: string) => JSON.stringify({ text: t });

test('JSONL documents: long lines, no final newline, CRLF, BOM, blank lines, invalid UTF-8 and Chinese read', async () => {
  const long = 'word '.repeat(2_000_000);
  assert.deepEqual((await docs(write(`${row('a')}\n${row(long)}\n${row('b')}`))).map((d) => d.length), [1, long.length, 1]);
  assert.deepEqual(await docs(write(`\ufeff${row('猫坐在垫子上')}\r\n\r\n${row('二')}\r\n`)), ['猫坐在垫子上', '二']);
  const t0 = performance.now();
  assert.deepEqual(await docs(write(`${row('x')}${'\n'.repeat(2_000_000)}${row('y')}`)), ['x', 'y']);
  assert.ok(performance.now() - t0 < 10_000, 'blank lines are cheap');
  const bad = Buffer.concat([Buffer.from('{"text": "a'), Buffer.from([0xff, 0xc3]), Buffer.from('"}\n')]);
  assert.deepEqual(await docs(write(bad)), ['a\ufffd\ufffd']);
});

test('JSONL documents: invalid rows are errors naming the line, never quoting it', async () => {
  await fails(write(`${row('a')}\n{"text": SECRET}\n`), /:2: invalid JSON \(column 10: unexpected character\)$/, 'SECRET');
  await fails(write(`${row('a')}\n${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}\n`), /:2: expected an object with a string "text" field, got an array of 1$/);
  await fails(write(`${row('a')}\n{"text": 5}\n`), /:2: expected an object with a string "text" field, got 5$/);
  await fails(write(`${row('a')}\n{"text": ["SECRET"]}\n`), /:2: .* got an array of 1$/, 'SECRET');
  await fails(write(`${row('a')}\n{"txt": "a"}\n`), /:2: expected an object with a string "text" field$/);
  await fails(write(`${row('a')}\n\u0000\u0000\n`), /:2: invalid JSON \(column 1: unexpected character\)$/);
  await fails(write(`${row('a')}\n{"text": "a\u0000"}\n`), /:2: invalid JSON \(column 12: control character in a string\)$/);
});

test('data folders: a symlink loop is walked once, files in sorted order', () => {
  const root = path.join(dir, 'tree');
  mkdirSync(path.join(root, 'b', 'c'), { recursive: true });
  writeFileSync(path.join(root, 'a.txt'), 'a');
  writeFileSync(path.join(root, 'b', 'c', 'd.jsonl'), row('d'));
  writeFileSync(path.join(root, 'b', 'z.md'), 'z');
  symlinkSync(root, path.join(root, 'b', 'c', 'loop'));
  assert.deepEqual(listDataFiles(root).map((f) => path.relative(root, f)), ['a.txt', path.join('b', 'c', 'd.jsonl'), path.join('b', 'z.md')]);
  assert.throws(() => listDataFiles(path.join(dir, 'nope')), DataError);
});

test('the tokenizer trainer on a 1 MB unbroken word takes seconds, not minutes', () => {
  let s = '';
  let x = 12345;
  for (let i = 0; i < 1_000_000; i++) { x = (x * 1103515245 + 12345) >>> 0; s += String.fromCharCode(97 + (x >>> 16) % 26); }
  const t0 = performance.now();
  const tok = trainByteLevelBPE([s, '猫坐在垫子上 the cat'], { vocabSize: 400, specialTokens: ['<|endoftext|>'] });
  const ms = performance.now() - t0;
  assert.ok(ms < 20_000, `${ms.toFixed(0)} ms`);
  assert.equal(tok.decode(tok.encode('猫坐在垫子上 the cat')), '猫坐在垫子上 the cat');
});
