// `tslm tokenize` as a child process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = new URL('../../../', import.meta.url).pathname;
const FIX = join(ROOT, 'test/fixtures/tokenizers');
const tslm = (...args: string[]) => spawnSync(process.execPath, [join(ROOT, 'bin/tslm.js'), 'tokenize', ...args], { encoding: 'utf8' });
const expected = JSON.parse(readFileSync(join(FIX, 'sp_expected.json'), 'utf8'));
const cases = expected.models.sp_bpe.cases as Array<{ text: string; ids: number[] }>;

test('tslm tokenize --text: ids of each line, one output line per input line', () => {
  const hello = cases.find((c) => c.text === 'Hello world')!;
  const zh = cases.find((c) => c.text === '我们今天学习语言模型。')!;
  for (const file of ['sp_bpe.model', 'tokenizer.bin']) {
    const r = tslm('--tokenizer', join(FIX, file), '--text', `Hello world\n我们今天学习语言模型。`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${hello.ids.join(' ')}\n${zh.ids.join(' ')}\n`);
  }
  const bos = tslm('--tokenizer', join(FIX, 'sp_bpe.model'), '--text', 'Hello world', '--bos');
  assert.equal(bos.stdout, `1 ${hello.ids.join(' ')}\n`);
});

test('tslm tokenize --file and --decode round trip (tokenizer.json too)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tslm-cli-'));
  const lines = cases.filter((c) => !c.text.includes('\n') && c.text.trim() !== '').map((c) => c.text);
  writeFileSync(join(dir, 'in.txt'), lines.join('\n') + '\n');
  const enc = tslm('--tokenizer', join(FIX, 'sp_bpe.model'), '--file', join(dir, 'in.txt'));
  assert.equal(enc.status, 0, enc.stderr);
  const outLines = enc.stdout.trimEnd().split('\n');
  assert.equal(outLines.length, lines.length);
  writeFileSync(join(dir, 'ids.txt'), enc.stdout);
  const dec = tslm('--tokenizer', join(FIX, 'sp_bpe.model'), '--file', join(dir, 'ids.txt'), '--decode');
  assert.equal(dec.status, 0, dec.stderr);
  assert.equal(dec.stdout, lines.join('\n') + '\n');
});

test('tslm tokenize: bad input gives a clear error and a non-zero status', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tslm-cli-'));
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ model: { type: 'WordPiece', vocab: {} } }));
  const r = tslm('--tokenizer', join(dir, 'tokenizer.json'), '--text', 'hi');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /tokenizer\.json: model\.type "WordPiece" is not supported/);
  const d = tslm('--tokenizer', join(FIX, 'sp_bpe.model'), '--text', '5 x 7', '--decode');
  assert.equal(d.status, 1);
  assert.match(d.stderr, /line 1: 'x' is not a token id/);
  assert.equal(tslm('--text', 'hi').status, 2);
  assert.equal(tslm('--tokenizer', join(FIX, 'sp_bpe.model')).status, 2);
});
