// The JSON reader of user files (src/io/json.ts): the line and column of a syntax error are the
// ones Python's json module reports (fixture from scripts/gen_json_error_fixtures.py), the
// message never quotes the text, nesting is bounded without recursion, and what is valid parses
// exactly as JSON.parse does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { FormatError, parseJsonText, parseJsonObject } from '../../src/io/index.js';
import { ioFixture } from './util.js';

test('syntax errors at the line and column Python reports, without the text', () => {
  const cases = JSON.parse(readFileSync(ioFixture('json_errors.json'), 'utf8')) as [string, number, number][];
  assert.ok(cases.length >= 40);
  for (const [text, line, column] of cases) {
    assert.throws(() => parseJsonText(text, 'f.json', 'config'), (e: Error) => {
      assert.ok(e instanceof FormatError, `${JSON.stringify(text)}: ${e.name}`);
      assert.match(e.message, /^f\.json: config: is not valid JSON: /);
      assert.ok(e.message.endsWith(`at line ${line}, column ${column}`), `${JSON.stringify(text)}: expected line ${line}, column ${column}: ${e.message}`);
      const what = e.message.slice('f.json: config: is not valid JSON: '.length).replace(/ at line \d+, column \d+$/, '');
      for (const word of text.match(/[A-Za-z]{3,}/g) ?? []) assert.ok(!what.includes(word), `${JSON.stringify(text)}: the message quotes ${word}: ${e.message}`);
      return true;
    });
  }
});

test('valid JSON parses as JSON.parse does; nesting is limited; duplicate top-level keys on request', () => {
  for (const text of ['{}', '[]', '0', '-0.5e-3', '"a\\u00e9\\n"', '{"a": [1, {"b": null}], "c": true, "d": false}', ' \n{"x": 1E+2}\n ', '\ufeff{"bom": 1}']) {
    assert.deepEqual(parseJsonText(text, 'f', 'v'), JSON.parse(text.replace(/^\ufeff/, '')), text);
  }
  const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
  assert.deepEqual(parseJsonText(deep(64), 'f', 'v', { maxDepth: 64 }), JSON.parse(deep(64)));
  assert.throws(() => parseJsonText(deep(65), 'f', 'v', { maxDepth: 64 }), /f: v: is not valid JSON: nesting deeper than 64 levels at line 1, column 65/);
  // a million levels: no recursion, no stack overflow
  assert.throws(() => parseJsonText(deep(1_000_000), 'f', 'v'), /nesting deeper than 64 levels/);
  assert.throws(() => parseJsonObject('{"a": 1, "b": {"a": 2}, "a": 3}', 'f', 'h', { uniqueTopLevelKeys: true }), /f: h: key "a" appears twice \(line 1, column 25\)/);
  assert.deepEqual(parseJsonObject('{"a": 1, "b": {"a": 2}}', 'f', 'h', { uniqueTopLevelKeys: true }), { a: 1, b: { a: 2 } });
  assert.throws(() => parseJsonObject('[1]', 'f', 'h'), /f: h: must be a JSON object, got an array/);
});
