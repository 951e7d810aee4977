// Hostile and corrupt tokenizer files (issue #21): declared ids and lengths checked against what
// the file holds, no recursion the file controls, bounded chat-template rendering, and errors
// that name the file and field without quoting the file. Each mutant is made here from a small
// trained tokenizer; every case asserts the error class and what the message names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  HFTokenizer, loadTokenizer, Llama2cTokenizer, TokenizerFormatError, trainByteLevelBPE, tokenizerFromBytes,
} from '../../src/tokenizers/index.js';
import { applyChatTemplate, chatTemplateFromConfig, ChatTemplateError } from '../../src/tokenizers/chat.js';
import { readTokenizerConfig } from '../../src/tokenizers/load.js';
import { jsonSyntaxError, parseJson } from '../../src/tokenizers/guard.js';

const dir = mkdtempSync(join(tmpdir(), 'tslm-hostile-tok-'));
const base = trainByteLevelBPE(['the cat sat on the mat. 猫坐在垫子上。 '.repeat(20)], { vocabSize: 300, specialTokens: ['<|endoftext|>'] });
const good = (): any => structuredClone(base.toJSON());

/** Writes the mutant as tokenizer.json in a fresh folder and loads it. */
function load(json: unknown, text?: string): unknown {
  const d = mkdtempSync(join(dir, 't-'));
  writeFileSync(join(d, 'tokenizer.json'), text ?? JSON.stringify(json));
  return loadTokenizer(join(d, 'tokenizer.json'));
}

function rejects(f: () => unknown, field: RegExp, cls: new (...a: any[]) => Error = TokenizerFormatError): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    assert.match((e as Error).message, /tokenizer(_config)?\.json/, 'names the file');
    assert.match((e as Error).message, field);
    return true;
  });
}

test('tokenizer.json ids: one far beyond the token count, duplicates and non-integers are errors naming the token', () => {
  const j = good();
  j.model.vocab['the'] = 1e9;
  const t0 = performance.now();
  rejects(() => load(j), /model\.vocab\["the"\] id 1000000000 is far beyond the \d+ tokens/);
  assert.ok(performance.now() - t0 < 2000, 'rejected before allocating by the id');
  const k = good();
  k.added_tokens[0].id = 2 ** 31;
  rejects(() => load(k), /added_tokens\[0\]\.id id 2147483648 is far beyond/);
  const dup = good();
  dup.model.vocab['zz'] = dup.model.vocab['the'];
  rejects(() => load(dup), /model\.vocab\["zz"\] has id \d+, which "the" already has/);
  const neg = good();
  neg.model.vocab['the'] = -1;
  rejects(() => load(neg), /model\.vocab\["the"\] must be a non-negative integer id, got -1/);
  const str = good();
  str.model.vocab['the'] = '5';
  rejects(() => load(str), /model\.vocab\["the"\] must be a non-negative integer id, got "5"/);
  // The first token id that is too far (and a long token is named briefly).
  const long = good();
  long.model.vocab['x'.repeat(100_000)] = 5e6;
  assert.throws(() => load(long), (e: Error) => e instanceof TokenizerFormatError && /"x{40}…"/.test(e.message) && e.message.length < 300);
});

test('tokenizer.json merges and model fields: unknown tokens, wrong types, deep Sequences', () => {
  const m = good();
  m.model.merges.push('不在 词表');
  rejects(() => load(m), new RegExp(`model\\.merges\\[${m.model.merges.length - 1}\\] "不在" is not in the vocabulary`));
  const t = good();
  t.model.unk_token = { a: 1 };
  rejects(() => load(t), /model\.unk_token must be a string or null, got a object/);
  // 100k nested Sequences: an error at depth 65, not a stack overflow.
  const deep = good();
  deep.normalizer = '__N__';
  const nested = '{"type": "Sequence", "normalizers": ['.repeat(100_000) + '{"type": "NFC"}' + ']}'.repeat(100_000);
  rejects(() => load(null, JSON.stringify(deep).replace('"__N__"', nested)), /normalizer(\.normalizers\[0\]){65} nests Sequences deeper than 64/);
  const pp = good();
  pp.post_processor = { type: 'TemplateProcessing', single: [null, 5, { SpecialToken: { id: 7 } }, { Sequence: { id: 'A' } }] };
  assert.ok(load(pp) instanceof HFTokenizer, 'odd post-processor pieces are ignored, not a TypeError');
});

test('tokenizer.json that is not JSON: line and column, never the text; huge nesting; a root that is not an object', () => {
  const text = JSON.stringify(good(), null, 1).replace('"merges"', '"merges" SECRET');
  assert.throws(() => load(null, text), (e: Error) => e instanceof TokenizerFormatError && /tokenizer\.json: \(file\) is not valid JSON \(line \d+, column \d+: expected ':'\)/.test(e.message) && !e.message.includes('SECRET'));
  assert.throws(() => load(null, '['.repeat(1e6) + ']'.repeat(1e6)), (e: Error) => e instanceof TokenizerFormatError && /\(root\) must be a JSON object/.test(e.message));
  assert.throws(() => load(null, '{"model": ' + '['.repeat(1e5)), (e: Error) => e instanceof TokenizerFormatError && /not valid JSON \(line 1, column \d+: unexpected end of input\)/.test(e.message));
  // NUL bytes, invalid UTF-8 and a BOM
  assert.throws(() => tokenizerFromBytes(new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x00, 0xff, 0x7d]), 'bad/tokenizer.json'), (e: Error) => e instanceof TokenizerFormatError && /^bad\/tokenizer\.json: \(file\) is not valid JSON \(line 1, column \d+/.test(e.message));
});

test('the JSON syntax scanner agrees with JSON.parse (valid and broken texts)', () => {
  const valid = ['{}', '[]', '{"a": [1, -2.5e3, true, false, null, "x\\u00e9\\n"]}', ' [ {"a": {"b": []}} , 3 ] ', '"中文"', '0'];
  for (const v of valid) assert.equal(jsonSyntaxError(v), null, v);
  const broken = ['{', '[1,]', '{"a" 1}', '{"a": 1,}', '[1 2]', '01', '"\\x"', '"a\u0001"', 'tru', '[] []', '{a: 1}', '-', '1.', ''];
  for (const b of broken) {
    assert.throws(() => JSON.parse(b));
    assert.notEqual(jsonSyntaxError(b), null, b);
  }
  assert.throws(() => parseJson('{\n  "a": 1,\n  "b" 2\n}', (d) => new Error(d)), /^Error: line 3, column 7: expected ':'$/);
});

test('tokenizer_config.json: wrong types are errors naming the field; chat templates are bounded and name the file', () => {
  const d = mkdtempSync(join(dir, 'c-'));
  const cfg = join(d, 'tokenizer_config.json');
  writeFileSync(cfg, JSON.stringify({ bos_token: 5 }));
  rejects(() => readTokenizerConfig(cfg), /bos_token must be a string or \{"content": string\}, got 5/);
  writeFileSync(cfg, JSON.stringify({ chat_template: [{ name: 'default' }] }));
  rejects(() => readTokenizerConfig(cfg), /chat_template\[0\] must be/);
  writeFileSync(cfg, '{"chat_template": "{{ x }}",,}');
  rejects(() => readTokenizerConfig(cfg), /not valid JSON \(line 1, column 29: expected a string key\)/);

  const hostile: Array<[string, RegExp]> = [
    ['{% for i in range(10**9) %}x{% endfor %}', /range\(\) for 1000000000 elements/],
    ['{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}', /more than \d+ steps|longer than \d+ ms/],
    ['{% macro g(n) %}{% if n > 0 %}{{ g(n - 1) }}{% endif %}{% endmacro %}{{ g(100000) }}', /nests evaluation deeper than/],
    ["{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}", /string longer than/],
    ['{{ ' + '('.repeat(100_000) + '1' + ')'.repeat(100_000) + ' }}', /cannot parse: too large or too deeply nested/],
  ];
  for (const [t, re] of hostile) {
    writeFileSync(cfg, JSON.stringify({ chat_template: t }));
    const c = chatTemplateFromConfig(readTokenizerConfig(cfg), 'default', cfg);
    const t0 = performance.now();
    assert.throws(() => applyChatTemplate([{ role: 'user', content: '你好' }], { template: c.template, limits: { ms: 1000, steps: 300_000 } }), (e: Error) => {
      assert.ok(e instanceof ChatTemplateError, e.message);
      assert.ok(e.message.startsWith(`${cfg}: chat_template: `), e.message);
      assert.match(e.message, re);
      return true;
    });
    assert.ok(performance.now() - t0 < 5000, `bounded: ${t.slice(0, 30)}`);
  }
  // An ordinary template still renders, Chinese included, and later renders are not limited by an earlier one.
  const ok = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% for i in range(3) %}.{% endfor %}";
  assert.equal(applyChatTemplate([{ role: 'user', content: '猫坐在垫子上' }], { template: ok }), '<user>猫坐在垫子上...');
});

test('llama2.c tokenizer.bin: lengths past the file, non-finite scores; SentencePiece: bad lengths', () => {
  // A tiny valid llama2.c file: max_token_length then (score, len, bytes) × 259+.
  const toks = ['<unk>', '\n<s>\n', '\n</s>\n', ...Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`), ' 猫', 'the'];
  const enc = new TextEncoder();
  const parts: number[] = [];
  const i32 = (v: number) => { const b = new Uint8Array(4); new DataView(b.buffer).setInt32(0, v, true); parts.push(...b); };
  const f32 = (v: number) => { const b = new Uint8Array(4); new DataView(b.buffer).setFloat32(0, v, true); parts.push(...b); };
  i32(16);
  const scoreAt: number[] = [];
  toks.forEach((t, i) => { scoreAt.push(parts.length); f32(-i); const b = enc.encode(t); i32(b.length); parts.push(...b); });
  const good = Uint8Array.from(parts);
  const tok = Llama2cTokenizer.parse(good, 'm/tokenizer.bin');
  assert.equal(tok.decode(tok.encode('猫')), '猫');
  const nan = good.slice();
  new DataView(nan.buffer).setFloat32(scoreAt[260], NaN, true);
  assert.throws(() => Llama2cTokenizer.parse(nan, 'm/tokenizer.bin'), (e: Error) => e instanceof TokenizerFormatError && /^m\/tokenizer\.bin: token 260 score is NaN/.test(e.message));
  const long = good.slice();
  new DataView(long.buffer).setInt32(scoreAt[5] + 4, 2 ** 30, true);
  assert.throws(() => Llama2cTokenizer.parse(long, 'm/tokenizer.bin'), (e: Error) => e instanceof TokenizerFormatError && /token 5 length 1073741824 is outside \[0, max_token_length 16\]/.test(e.message));
  assert.throws(() => Llama2cTokenizer.parse(good.subarray(0, good.length - 2), 'm/tokenizer.bin'), (e: Error) => e instanceof TokenizerFormatError && /token 260 bytes 3 bytes at byte \d+ run past the end/.test(e.message));
  // SentencePiece: a piece whose declared length runs past the file; an empty piece.
  const sp = Uint8Array.from([0x0a, 0x7f, 0x0a, 0x02, 0x61]);
  assert.throws(() => tokenizerFromBytes(sp, 'm/tokenizer.model'), (e: Error) => e instanceof TokenizerFormatError && /^m\/tokenizer\.model: ModelProto length 127 runs past the end/.test(e.message));
  const empty = Uint8Array.from([0x0a, 0x07, 0x0a, 0x00, 0x15, 0, 0, 0, 0, 0x0a, 0x03, 0x0a, 0x01, 0x61]);
  assert.throws(() => tokenizerFromBytes(empty, 'm/tokenizer.model'), (e: Error) => e instanceof TokenizerFormatError && /pieces\[0\]\.piece is empty/.test(e.message));
});
