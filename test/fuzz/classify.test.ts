// The fuzzer's classifier on synthetic outcomes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classify, memoryBudget, topFrame, type Outcome } from '../../src/fuzz/classify.js';

const o = (x: Partial<Outcome>): Outcome => ({ code: 1, signal: null, timedOut: false, stdout: '', stderr: '', peakRss: 80 * 2 ** 20, inputBytes: 50_000, ...x });
const STACK = (head: string): string => `tslm generate: ${head.replace(/^\w+: /, '')}\n${head}\n    at readHeader (file:///x/dist/src/io/gguf.js:120:11)\n    at async main (file:///x/dist/src/cli/main.js:60:12)\n`;

test('a tslm error class with its message is a clear error', () => {
  const c = classify(o({ stderr: STACK('GgufFormatError: model.gguf: tensor_count 1000000000 exceeds the file') }), 'reject', false);
  assert.equal(c.verdict, 'clear');
  assert.match(c.detail, /^tslm generate: model\.gguf: tensor_count/);
});

test('internal errors are crashes, wrapped or not, with the stack frame that threw', () => {
  for (const head of ['TypeError: Cannot read properties of undefined (reading \'size\')', 'RangeError: Invalid typed array length: 34359738368', 'RangeError: Maximum call stack size exceeded',
    'ReferenceError: x is not defined', 'RuntimeError: unreachable', 'SyntaxError: Unexpected token } in JSON at position 3']) {
    const c = classify(o({ stderr: STACK(head) }), 'any', false);
    assert.equal(c.verdict, 'crash', head);
    assert.match(c.detail, /src\/io\/gguf\.ts\(js\):120:11/);
  }
  // an internal message inside a tslm error's message is still a crash
  assert.equal(classify(o({ stderr: 'tslm train: data.jsonl: Maximum call stack size exceeded\nTrainDataError: data.jsonl: Maximum call stack size exceeded\n' }), 'any', false).verdict, 'crash');
  assert.equal(classify(o({ code: 134, stderr: 'FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory\n' }), 'any', false).verdict, 'crash');
  assert.equal(classify(o({ code: null, signal: 'SIGABRT' }), 'any', false).verdict, 'crash');
  // an uncaught exception: exit 1 with a stack and no tslm message
  const u = classify(o({ stderr: 'file:///x/dist/src/a.js:3\n  throw e;\n\nError: boom\n    at f (file:///x/dist/src/a.js:3:9)\n' }), 'any', false);
  assert.equal(u.verdict, 'crash');
  assert.match(u.detail, /without a tslm message \(stack trace\)/);
  assert.equal(classify(o({ code: 13, stderr: 'Warning: Detected unsettled top-level await\n' }), 'any', false).verdict, 'crash');
});

test('timeouts are hangs; the memory budget is 4 × the input + 256 MB', () => {
  assert.equal(classify(o({ timedOut: true, code: null, signal: null }), 'any', false).verdict, 'hang');
  assert.equal(memoryBudget(1e6), 4e6 + 256 * 2 ** 20);
  assert.equal(classify(o({ stderr: 'tslm x: bad\n', peakRss: memoryBudget(50_000) + 1 }), 'reject', false).verdict, 'rss');
  assert.equal(classify(o({ stderr: 'tslm x: bad\n', peakRss: memoryBudget(50_000) - 1 }), 'reject', false).verdict, 'clear');
  assert.equal(classify(o({ rssKilled: true, code: null }), 'any', false).verdict, 'rss');
  // The budget is the refusing one: an accepted input over it is reported as heavy, not failed.
  const heavy = classify(o({ code: 0, stderr: '', peakRss: memoryBudget(50_000) + 1 }), 'any', false);
  assert.equal(heavy.verdict, 'accepted');
  assert.equal(heavy.heavy, true);
});

test('exit 0: garbage when the mutant must be refused or the output is non-finite, accepted otherwise', () => {
  assert.equal(classify(o({ code: 0, stdout: 'hi there' }), 'reject', false).verdict, 'garbage');
  assert.equal(classify(o({ code: 0, stdout: 'hi there' }), 'any', false).verdict, 'accepted');
  assert.equal(classify(o({ code: 0, stdout: 'fox\tNaN\n' }), 'any', true).verdict, 'garbage');
  assert.equal(classify(o({ code: 0, stderr: 'validation loss NaN → NaN' }), 'any', true).verdict, 'garbage');
  assert.equal(classify(o({ code: 0, stdout: 'Total: -Infinity OOV: 0' }), 'any', true).verdict, 'garbage');
  // words that merely contain the letters are not non-finite numbers
  assert.equal(classify(o({ code: 0, stdout: 'NaNny Infinityville' }), 'any', true).verdict, 'accepted');
  // a command that prints no numbers is not checked
  assert.equal(classify(o({ code: 0, stdout: 'NaN' }), 'any', false).verdict, 'accepted');
});

test('a clear error that quotes the file (unwrapped JSON.parse text) is flagged; topFrame shortens our paths', () => {
  const c = classify(o({ stderr: 'tslm finetune: alpaca.json: invalid JSON (Unexpected token \'x\', "xxxxxxxxxx"... is not valid JSON)\n' }), 'any', false);
  assert.equal(c.verdict, 'clear');
  assert.equal(c.quotesContent, true);
  assert.equal(classify(o({ stderr: 'tslm finetune: alpaca.json: invalid JSON (Unterminated string in JSON at position 235)\n' }), 'any', false).quotesContent, undefined);
  assert.equal(topFrame('    at q (node:internal/x:1:2)\n    at KeyedVectors.load (file:///w/dist/src/classic/vectors.js:175:21)\n'), ' (at KeyedVectors.load (src/classic/vectors.ts(js):175:21))');
});
