// The engine beyond the suite: regex and GBNF compilers, masks equal to a brute-force check over
// real vocabularies (LLaMA-3 128K byte-level BPE, LLaMA-2 32K SentencePiece-style), the token
// budget, YAML output, tool calls, prompt-based extraction, bad input and the CLI.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { init, shutdown, LlamaForCausalLM, parseLlamaConfig, generate } from '../../src/index.js';
import { HFTokenizer } from '../../src/tokenizers/hf.js';
import { PlainIndex, MODE_F } from '../../src/structured/plain.js';
import {
  compileRegex, parseGbnf, compileJsonSchema, ByteAutomaton, TokenVocab, TokenMatcher, DEAD, RegexError, GrammarError,
  InvalidSchemaError, UnsatisfiableError, UnsupportedKeywordError, ComplexityError, TokenBudgetError, generateStructured,
  generateToolCall, toolCallSchema, extractWithPrompt, ExtractionError, constraintProcessor,
} from '../../src/structured/index.js';
import type { Grammar } from '../../src/structured/index.js';
import { FORMAT_SAMPLES } from '../../src/structured/schema.js';
import { llama2Json, llama3Json } from '../tokenizers/real_vocabs.js';
import { main } from '../../src/cli/main.js';
import { accepts, assertMaskBrute } from './suite_util.js';

const require = createRequire(import.meta.url);
const enc = new TextEncoder();
let llama2: HFTokenizer, llama3: HFTokenizer;
let model: LlamaForCausalLM;

before(async () => {
  await init({ threads: 1 });
  llama2 = new HFTokenizer(await llama2Json());
  llama3 = new HFTokenizer(await llama3Json());
  model = new LlamaForCausalLM(parseLlamaConfig({ hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: llama2.vocabSize, max_position_embeddings: 256, initializer_range: 0.5 }));
  model.eval();
});
after(async () => { model.dispose(); await shutdown(); });


test('regex → automaton agrees with JavaScript RegExp (full match)', () => {
  const cases: Array<[string, string[]]> = [
    ['[a-z]+@[a-z]+\\.(com|org)', ['ab@cd.com', 'a@b.org', '@b.com', 'ab@cd.net', 'AB@cd.com']],
    ['\\d{3}-\\d{4}', ['555-1234', '55-1234', '5555-123', '555-12345']],
    ['(ab|a)*b?', ['', 'ab', 'aab', 'abab', 'abb', 'ba']],
    ['[^\\s"]{2,4}x?', ['ab', 'abcd', 'abcdx', 'a', 'ab c', 'é😀']],
    ['(?:colou?r|gr[ae]y)\\.', ['color.', 'colour.', 'grey.', 'gray.', 'groy.']],
    ['.\\u00e9\\x41[\\u{1F600}-\\u{1F64F}]', ['xéA😀', 'xéA😻', 'xeA😀']],
  ];
  for (const [re, inputs] of cases) {
    const g = compileRegex(re);
    const js = new RegExp(`^(?:${re})$`, 'u');
    for (const s of inputs) assert.equal(accepts(g, s), js.test(s), `/${re}/ on ${JSON.stringify(s)}`);
  }
  // A catastrophic regex for backtracking engines is linear here.
  const t0 = performance.now();
  const g = compileRegex('(a+)+$');
  assert.equal(accepts(g, 'a'.repeat(5000) + '!'), false);
  assert.equal(accepts(g, 'a'.repeat(5000)), true);
  assert.ok(performance.now() - t0 < 2000);
  assert.throws(() => compileRegex('(a)\\1'), (e: unknown) => e instanceof RegexError && /backreferences/.test(e.message) && e.offset === 3);
  assert.throws(() => compileRegex('a(?=b)'), RegexError);
  assert.throws(() => compileRegex('a{20000}'), (e: unknown) => e instanceof RegexError && /above 10000/.test(e.message));
  // Nested counted repetition shares its rules: small grammar, linear matching.
  assert.ok(accepts(compileRegex('(a{1000}){100}'), 'a'.repeat(100000)));
});

test('GBNF (llama.cpp syntax): parse, match, errors with line numbers', () => {
  const g = parseGbnf(`
    # a tiny JSON-ish object
    root ::= "{" ws pair ("," ws pair)* "}"
    pair ::= key ":" ws value
    key  ::= [a-z] [a-z0-9_]{0,7}
    value ::= [0-9]+ | "\\"" [^"\\n]* "\\"" | "[" ws "]"
    ws ::= [ \\t\\n]*
  `);
  for (const [s, ok] of [['{a:1}', true], ['{ a: 12, b_2: "x y"}', true], ['{a:[ ]}', true], ['{A:1}', false], ['{a:1,}', false], ['{abcdefghi:1}', false]] as const) {
    assert.equal(accepts(g, s), ok, s);
  }
  assert.throws(() => parseGbnf('root ::= expr\nexpr ::= expr "+" term | term\nterm ::= [0-9]'), (e: unknown) => e instanceof GrammarError && /left-recursive/.test(e.message));
  assert.throws(() => parseGbnf('root ::= "a"\n\nfoo ::= bar'), (e: unknown) => e instanceof GrammarError && /line 3/.test(e.message) && /bar/.test(e.message));
  assert.throws(() => parseGbnf('root ::= "a'), /unterminated/);
});

test('masks equal a brute-force check of every token (LLaMA-3 128K byte-level, LLaMA-2 32K)', () => {
  const schema = { type: 'object', properties: { id: { type: 'integer', minimum: -5, maximum: 300 }, name: { type: 'string', maxLength: 6 }, tags: { type: 'array', items: { enum: ['a b', 'c"d', 'é'] }, maxItems: 2 }, ok: { type: ['boolean', 'null'] } }, required: ['id'], additionalProperties: false };
  for (const tok of [llama3, llama2]) {
    const vocab = TokenVocab.fromTokenizer(tok);
    const m = new TokenMatcher(compileJsonSchema(schema), vocab);
    for (const prefix of ['', '{', '{"id":2', '{"id":-', '{"id":1,"name":"a', '{"id":1,"name":"ab\\', '{"id":1,"tags":["', '{"id":1,"tags":["a b",', '{"id":1,"name":"\xe9"}'.slice(0, 18)]) {
      const s = m.automaton.advanceBytes(m.initial, enc.encode(prefix));
      assert.ok(s >= 0, prefix);
      // (The byte prefix is fed raw: it may end inside a character.)
      assertMaskBrute(m, vocab, s, `prefix ${JSON.stringify(prefix)}`);
    }
  }
});

test('withEos: the same vocabulary with other end ids shares its tables; masks allow exactly those ends', () => {
  const base = TokenVocab.fromTokenizer(llama2);
  const extra = [0, 1]; // <unk>, <s>: special tokens (no bytes), as a chat template's end-of-turn token is
  const v = base.withEos([...base.eosIds, ...extra, -1, base.size]);
  assert.deepEqual(v.eosIds, [...base.eosIds, ...extra]);
  assert.equal(v.nodeByte, base.nodeByte);
  assert.equal(v.plain, base.plain);
  assert.deepEqual(base.eosIds, llama2.eosId === null ? [] : [llama2.eosId]);
  const m = new TokenMatcher(compileJsonSchema({ type: 'object', properties: { s: { type: 'string', maxLength: 5 } }, required: ['s'] }), v);
  for (const prefix of ['{"s":"ab', '{"s":"ab"}']) assertMaskBrute(m, v, m.automaton.advanceBytes(m.initial, enc.encode(prefix)), `withEos ${prefix}`);
});

test('plain-text fast path: masks in strings, keys and formats equal a brute-force check', () => {
  const cat = (...parts: (string | number[])[]) => Uint8Array.from(parts.flatMap((p) => (typeof p === 'string' ? [...enc.encode(p)] : p)));
  const zhong = [...enc.encode('中')];
  const cases: Array<{ schema: Record<string, unknown>; prefixes: Uint8Array[]; opts?: Record<string, unknown> }> = [
    // Bounded strings: every position is a new state (min/maxLength), escapes, multi-byte characters
    // (and a prefix that ends inside one), the closing quote followed by punctuation.
    {
      schema: { type: 'object', properties: { s: { type: 'string', minLength: 2, maxLength: 5 }, t: { type: 'string', maxLength: 40 }, u: { type: 'string' } }, required: ['s', 't', 'u'], additionalProperties: false },
      prefixes: [cat('{"s":"'), cat('{"s":"a'), cat('{"s":"ab'), cat('{"s":"abcd'), cat('{"s":"abcde'), cat('{"s":"', zhong), cat('{"s":"', zhong.slice(0, 2)), cat('{"s":"a', zhong.slice(0, 1)),
        cat('{"s":"a\\'), cat('{"s":"a\\u00'), cat('{"s":"a\\n'), cat('{"s":"ab","t":"'), cat('{"s":"ab","t":"', '中文'.repeat(19)), cat('{"s":"ab","t":"', 'x'.repeat(39)),
        cat('{"s":"ab","t":"","u":"'), cat('{"s":"ab","t":"","u":"é'), cat('{"s":"ab","t":"","u":"\\')],
    },
    // Undeclared keys (additionalProperties allowed): the declared names are exceptions of a free key.
    {
      schema: { type: 'object', properties: { name: { type: 'string' }, count: { type: 'integer' } } },
      prefixes: [cat('{"'), cat('{"n'), cat('{"na'), cat('{"name'), cat('{"name":"x","'), cat('{"name":"x","c'), cat('{"x'), cat('{"xy'), cat('{"name":"x","zz":1,"')],
    },
    // Many declared names sharing first letters beside undeclared keys: small subtrees past a
    // declared prefix are settled as free keys once the free state is known.
    {
      schema: { type: 'object', properties: { summary: { type: 'string' }, start: { type: 'string' }, end: { type: 'string' }, location: { type: ['string', 'null'] }, attendees: { type: 'array' }, tags: { type: 'array' }, title: { type: 'string', maxLength: 120 } } },
      prefixes: [cat('{"'), cat('{"summary":"x","'), cat('{"summary":"x","start":"y","end":"z","'), cat('{"st'), cat('{"ta'), cat('{"tx'), cat('{"title":"'), cat('{"title":"', 'a'.repeat(100)), cat('{"loc')],
    },
    // Formats and patterns (regular expressions over ASCII alphabets), flexible whitespace.
    {
      schema: { type: 'object', properties: { email: { type: 'string', format: 'email' }, sku: { type: 'string', pattern: '^[A-Z]{3}-[a-zA-Z0-9]{2,30}$' }, uri: { type: 'string', format: 'uri' }, tag: { type: 'string', pattern: '^[a-z]{2,30}[.][A-Z]{3}(-[0-9]+)?$' } }, required: ['email', 'sku', 'uri'] },
      // Exceptions of an alphabet that lead to settled levels of their own (the email's '.', '@'
      // and digits past a top-level domain, the tag's '.' before three capitals) are settled
      // from per-vocabulary token lists.
      prefixes: [cat('{"email":"'), cat('{"email":"ada'), cat('{"email":"ada.b'), cat('{"email":"ada@'), cat('{"email":"ada@example'), cat('{"email":"ada@example.c'), cat('{"email":"ada@example.com'),
        cat('{"email":"ada@ex4mple.co'), cat('{"email":"a_b+c-d@e9'),
        cat('{"email":"a@b.co","sku":"'), cat('{"email":"a@b.co","sku":"AB'), cat('{"email":"a@b.co","sku":"ABC-'), cat('{"email":"a@b.co","sku":"ABC-x1Y'), cat('{"email":"a@b.co","sku":"ABC-x1","uri":"https://a'),
        cat('{"email":"a@b.co","sku":"ABC-x1","uri":"https://a.b/c?d'), cat('{"email":"a@b.co","sku":"ABC-x1","uri":"https://a.b","tag":"ab'), cat('{"email":"a@b.co","sku":"ABC-x1","uri":"https://a.b","tag":"ab.CD')],
      opts: { whitespace: 'flexible' },
    },
    // A free-form value (any JSON) and YAML output.
    { schema: { type: 'object', properties: { v: {}, w: { type: 'string', maxLength: 3 } } }, prefixes: [cat('{"v":'), cat('{"v":"'), cat('{"v":{"'), cat('{"v":["a'), cat('{"w":"')] },
    { schema: { type: 'object', properties: { name: { type: 'string', maxLength: 8 }, tags: { type: 'array', items: { type: 'string' } } }, required: ['name'] }, prefixes: [cat('\n"name": "'), cat('\n"name": "Ann'), cat('\n"name": "A"\n"tags":\n  - "')], opts: { output: 'yaml' } },
  ];
  for (const tok of [llama3, llama2]) {
    const vocab = TokenVocab.fromTokenizer(tok);
    for (const { schema, prefixes, opts } of cases) {
      const m = new TokenMatcher(compileJsonSchema(schema, opts as never), vocab);
      for (const p of prefixes) {
        const s = m.automaton.advanceBytes(m.initial, p);
        assert.ok(s >= 0, new TextDecoder().decode(p));
        assertMaskBrute(m, vocab, s, JSON.stringify(new TextDecoder().decode(p)));
      }
      assert.ok((m.stats.plainMasks ?? 0) > 0, 'the fast path was taken');
    }
  }
});

test('settled levels of formats and patterns, on a vocabulary made for their edge cases, equal a brute-force check', () => {
  // Every byte, and pieces that cross from one alphabet to the next (a '.' or '@' into a domain,
  // digits past a top-level domain, a '.' into three capitals), end a string or go past a
  // bound. No piece but '"' itself starts with a quote.
  const pieces = ['.mp3', '.com"', '.com",', '.co', '.c', '.com', '.io"}', '.uk', '@b.c', '@ex4', '@example', '@e', '..', '.a.b', '.a@b', '.ab+c',
    '.ABC', '.ABCD', '.AB"', '.ABC"', '.ABC-1"', '-12"', 'ab', 'abc', 'ab1', 'a.b', 'a@b', 'ab.', 'ab.C', '1a', '1ab.', '9"', 'com"', 'x"', 'uk"}', 'CD', 'CDE-', 'mple', 'ex4', '_b', '+c'];
  const vocab = new TokenVocab([...Array.from({ length: 256 }, (_, b) => Uint8Array.of(b)), ...pieces.map((p) => enc.encode(p))], []);
  // (Chains of levels longer than the longest token are not settled: the tag's are short.)
  const schema = { type: 'object', properties: { email: { type: 'string', format: 'email' }, tag: { type: 'string', pattern: '^[a-z]{2,4}[.][A-Z]{3}(-[0-9]+)?$' } }, required: ['email', 'tag'], additionalProperties: false };
  const m = new TokenMatcher(compileJsonSchema(schema), vocab);
  for (const text of ['{"email":"a_b.c+d@ex4mple.co.uk","tag":"ab.CDE-12"}', '{"email":"x@y.io","tag":"xyz.ABC"}']) {
    let s = m.initial;
    for (let k = 0; k <= text.length && s >= 0; k++) {
      for (const budget of [Infinity, 4, 9]) assertMaskBrute(m, vocab, s, `${JSON.stringify(text.slice(0, k))}, budget ${budget}`, budget);
      if (k < text.length) s = m.automaton.step(s, text.charCodeAt(k));
    }
  }
  assert.ok((m.stats.plainMasks ?? 0) > 0);
});

test('object keys beside undeclared names: the plain closure holds where it should, and masks equal a brute-force check', () => {
  const cat = (...parts: string[]) => enc.encode(parts.join(''));
  const cases: Array<{ schema: Record<string, unknown>; holds: Uint8Array[]; fails: Uint8Array[]; opts?: Record<string, unknown> }> = [
    // ASCII names sharing prefixes with each other and with undeclared keys: every key position holds.
    {
      schema: { type: 'object', properties: { summary: { type: 'string' }, start: { type: 'string' }, st: { type: 'integer' }, end: { type: 'string' }, location: { type: ['string', 'null'] } } },
      holds: [cat('{"'), cat('{"s'), cat('{"st'), cat('{"summary":"x","'), cat('{"summary":"x","start":"y","end":"z","lo'), cat('{"q":1,"')],
      fails: [],
    },
    // A name with a character ≥ U+0080 (its bytes are live after "r": the closure does not hold
    // where that name may still come, nor past its prefix) and one with an escaped quote (a walk
    // byte inside a name); flexible whitespace.
    {
      schema: { type: 'object', properties: { 'résumé': { type: 'integer' }, 'a"b': { type: 'integer' }, s: { type: 'string' } } },
      // (Members come in any order when checking: after "s" the other names may still come.)
      holds: [cat('{"a'), cat('{"x'), cat('{"rx'), cat('{ "s": "v", "résumé": 1,\n  "a\\"b": 2, "')],
      fails: [cat('{"'), cat('{"r'), cat('{\n  "'), cat('{ "s": "v",\n  "')],
      opts: { whitespace: 'flexible' },
    },
  ];
  for (const tok of [llama3, llama2]) {
    const vocab = TokenVocab.fromTokenizer(tok);
    for (const { schema, holds, fails, opts } of cases) {
      const m = new TokenMatcher(compileJsonSchema(schema, opts as never), vocab);
      for (const [prefixes, want] of [[holds, true], [fails, false]] as const) {
        for (const p of prefixes) {
          const what = JSON.stringify(new TextDecoder().decode(p));
          const s = m.automaton.advanceBytes(m.initial, p);
          assert.ok(s >= 0, what);
          assert.equal(m.automaton.plainClosure(s, 256) >= 0, want, `closure ${what}`);
          // Budgets near the shortest completions: the settled mask's bound must cover its tokens.
          assertMaskBrute(m, vocab, s, what);
          for (const budget of [3, 5]) assertMaskBrute(m, vocab, s, `${what}, budget ${budget}`, budget);
        }
      }
    }
  }
});

test('fast paths of real-world shapes (many stacks, many names, search patterns, loops with exceptions) take the tables and equal a brute-force check', () => {
  const cat = (...parts: string[]) => enc.encode(parts.join(''));
  // 60 declared names (their trie: more than 256 states) beside undeclared keys.
  const names = Array.from({ length: 60 }, (_, i) => `property${String.fromCharCode(97 + (i % 26))}${i}name`);
  // anyOf over 40 object branches: a key position of 40 × (names + the free key) stacks.
  const branches = Array.from({ length: 40 }, (_, i) => ({ type: 'object', properties: { [`k${i}`]: { type: 'string' }, shared: { type: 'integer' } } }));
  const cases: Array<{ schema: Record<string, unknown>; prefixes: Uint8Array[]; check: (m: TokenMatcher, s: number, what: string) => void }> = [
    {
      schema: { type: 'object', properties: Object.fromEntries(names.map((n) => [n, { type: 'integer' }])) },
      prefixes: [cat('{"'), cat('{"', names[3], '":1,"'), cat('{"x":1,"')],
      check: (m, s, what) => assert.ok(m.automaton.plainClosure(s, 256) >= 0, `closure ${what}`),
    },
    {
      schema: { anyOf: branches },
      prefixes: [cat('{"'), cat('{"k7":"'), cat('{"k7":"x","')],
      check: (m, s, what) => assert.ok(m.automaton.stateNodes[s].length > 31 && m.automaton.plainShape(s) !== null, `shape ${what}`),
    },
    {
      // A regex '.' leaves out U+2028 and U+2029 (LLaMA-2's vocabulary has a token holding one).
      schema: { type: 'object', properties: { f: { type: 'string', pattern: '^(.*?)\\.alfred3?workflow$' }, u: { type: 'string', pattern: '^https://.+$' } } },
      prefixes: [cat('{"f":"My Work'), cat('{"f":"My Workflow.alfred'), cat('{"u":"https://'), cat('{"u":"https://a.b/c')],
      check: (m, s, what) => assert.ok(m.automaton.plainShape(s)?.ls === true, `U+2028 refused at ${what}`),
    },
    {
      // Multi-byte white space (what '\s' holds beyond ASCII) refused, or leading elsewhere than
      // the other characters (a search: after a digit, '.' may not be U+2028).
      schema: { type: 'object', properties: { t: { type: 'string', pattern: '^[^,:&\\s]+$' }, v: { type: 'string', pattern: '[0-9]+.[0-9]+.[0-9]+$' } } },
      prefixes: [cat('{"t":"'), cat('{"t":"ab'), cat('{"v":"1'), cat('{"v":"release 1.2')],
      check: (m, s, what) => assert.ok(m.automaton.plainShape(s)?.ls === true, `special characters singled out at ${what}`),
    },
    {
      // An ASCII alphabet that refuses the space (which begins most tokens): mode A with
      // exceptions, settled as the alphabet.
      schema: { type: 'object', properties: { p: { type: 'string', pattern: '^[a-zA-Z0-9_\\-\\./]+$' } } },
      prefixes: [cat('{"p":"'), cat('{"p":"src/ma')],
      check: (m, s, what) => assert.equal(m.automaton.plainShape(s)?.mode, 2, `mode A with exceptions at ${what}`),
    },
    {
      // Key positions where multi-byte characters follow another selection than most ASCII bytes
      // (a patternProperties search for [a-zA-Z]+: letters, more than 32 bytes, lead into the match).
      schema: { type: 'object', properties: { a: { type: 'object', patternProperties: { '[a-zA-Z]+': { type: 'integer' } }, additionalProperties: false } } },
      prefixes: [cat('{"a":{"'), cat('{"a":{"1-'), cat('{"a":{"x-1')],
      check: (m, s, what) => assert.equal(m.automaton.plainShape(s)?.mode, 1, `mode F at ${what}`),
    },
    {
      // A key position where keys matching a pattern and the others part at more than 32 bytes,
      // every key allowed: settled as a free key (PlainShape.wide).
      schema: { type: 'object', properties: { u: { type: 'object', patternProperties: { '^[0-9a-z]+$': { type: 'integer' } } } } },
      prefixes: [cat('{"u":{"'), cat('{"u":{"ab'), cat('{"u":{"x":1,"A-')],
      check: (m, s, what) => { if (what === JSON.stringify('{"u":{"')) assert.ok(m.automaton.plainShape(s)?.wide !== undefined, `wide shape at ${what}`); },
    },
    {
      // Base64: levels cycling over four states of one alphabet ('=' live at two of them).
      schema: { type: 'object', properties: { d: { type: 'string', pattern: '^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$' } } },
      prefixes: [cat('{"d":"'), cat('{"d":"QUJD'), cat('{"d":"QUJDR')],
      check: () => {},
    },
    {
      // ASCII alphabets holding a few multi-byte characters (the white space of '\s', '£', 'é'):
      // mode 4, the tokens holding a live lead byte decided one by one.
      schema: { type: 'object', properties: { w: { type: 'string', pattern: '^[\\w\\s-]+$' }, c: { type: 'string', pattern: "^[A-Za-z0-9 &'()*,\\-./@£]{1,32}$" }, e: { type: 'string', pattern: '^[a-zA-Zéèàç ]+$' } } },
      prefixes: [cat('{"w":"'), cat('{"w":"a b'), cat('{"w":"x\u3000y'), cat('{"c":"'), cat('{"c":"£ 12'), cat('{"e":"'), cat('{"e":"caf')],
      check: (m, s, what) => {
        const sh = m.automaton.plainShape(s);
        assert.ok(sh?.mode === 4 && sh.sub.subarray(0xc2, 0xf5).some((x) => x !== 0), `an alphabet with live lead bytes at ${what}`);
      },
    },
    {
      // A URL pattern: after a letter of the host the path's characters (space, A-Z, '_': 28
      // bytes) lead elsewhere than the 26 lowercase letters, and after "https://" the host's '.'
      // parts from its letters one level on: the alphabet the fewest tokens leave is taken.
      schema: { type: 'object', properties: { u: { type: 'string', pattern: '^(https?:\\/\\/)?([\\da-z\\.-]+)\\.([a-z\\.]{2,6})([\\/\\w \\.-]*)*\\/?$' } } },
      prefixes: [cat('{"u":"https://'), cat('{"u":"https://www.example.'), cat('{"u":"https://www.example.co'), cat('{"u":"a.b.c')],
      check: (m, s, what) => assert.equal(m.automaton.plainShape(s)?.mode, 4, `an alphabet at ${what}`),
    },
    {
      // Loops of a class that leaves out a few ASCII bytes, reached after a level or two.
      schema: { type: 'object', properties: { n: { type: 'string', pattern: '^[^/]+$' }, kv: { type: 'string', pattern: '^[^,:&]*:[^,&]*$' } } },
      prefixes: [cat('{"n":"'), cat('{"n":"ab'), cat('{"kv":"'), cat('{"kv":"color'), cat('{"kv":"color:bl')],
      check: () => {},
    },
  ];
  for (const tok of [llama2, llama3]) {
    const vocab = TokenVocab.fromTokenizer(tok);
    for (const { schema, prefixes, check } of cases) {
      const m = new TokenMatcher(compileJsonSchema(schema), vocab);
      for (const p of prefixes) {
        const what = JSON.stringify(new TextDecoder().decode(p));
        const s = m.automaton.advanceBytes(m.initial, p);
        assert.ok(s >= 0, what);
        check(m, s, what);
        const before = m.stats.nodesVisited;
        assertMaskBrute(m, vocab, s, what);
        // Settled from the tables: a small part of the trie walked (a full walk is the whole trie).
        assert.ok(m.stats.nodesVisited - before < vocab.nodes / 4, `${what}: ${m.stats.nodesVisited - before} of ${vocab.nodes} trie nodes walked`);
        assertMaskBrute(m, vocab, s, `${what}, budget 3`, 3);
      }
    }
  }
});

test('bounded repetitions of a class leaving out ASCII bytes: settled once the levels outnumber the longest token\'s characters, masks equal a brute-force check', () => {
  // `^[^,"]+$` under maxLength 255 (a name in a corpus schema) has no loop: each mask was a walk of the whole trie.
  const schema = { type: 'object', properties: { f: { type: 'string', pattern: '^[^,"]+$', maxLength: 255 }, k: { type: 'string', pattern: '^[^/ ]{2,200}$' } } };
  for (const tok of [llama2, llama3]) {
    const vocab = TokenVocab.fromTokenizer(tok);
    const m = new TokenMatcher(compileJsonSchema(schema), vocab);
    // Prefixes with at least as many levels left as the longest plain token has characters (cap),
    // and nearer the end (walked as before).
    const cap = PlainIndex.of(vocab).cap[MODE_F];
    for (const [p, settled] of [['{"f":"', true], ['{"f":"Do', true], [`{"f":"${'x'.repeat(255 - cap)}`, true], [`{"f":"${'x'.repeat(256 - cap)}`, false],
      ['{"k":"', true], ['{"k":"a', true], [`{"k":"${'b'.repeat(200 - cap)}`, true], [`{"k":"${'b'.repeat(201 - cap)}`, false]] as const) {
      const s = m.automaton.advanceBytes(m.initial, enc.encode(p));
      assert.ok(s >= 0, p);
      const before = m.stats.nodesVisited;
      assertMaskBrute(m, vocab, s, `${vocab.size} vocab, ${p.slice(0, 12)}… (${p.length} bytes)`);
      if (settled) assert.ok(m.stats.nodesVisited - before < vocab.nodes / 4, `${p.slice(0, 12)}… (${p.length}): ${m.stats.nodesVisited - before} of ${vocab.nodes} trie nodes walked`);
      assertMaskBrute(m, vocab, s, `${p.slice(0, 12)}…, budget 3`, 3);
    }
  }
});

test('bounded strings: levels skipped along the repetition chain are the states the bytes reach', () => {
  for (const tok of [llama3, llama2]) {
    const vocab = TokenVocab.fromTokenizer(tok);
    for (const [min, max] of [[0, 120], [1, 120], [3, 40], [0, 7], [2, 300]]) {
      const schema = { type: 'object', properties: { s: { type: 'string', minLength: min, maxLength: max }, n: { type: 'integer' } }, required: ['s', 'n'], additionalProperties: false };
      const g = compileJsonSchema(schema);
      const fast = new TokenMatcher(g, vocab), ref = new TokenMatcher(fast.automaton, vocab, { plain: false });
      const A = fast.automaton;
      A.jumped = DEAD;
      let s = A.advanceBytes(fast.initial, enc.encode('{"s":"'));
      // The first mask follows the levels (and skips most); the states reached byte by byte
      // must include the one built for the skip, and every mask must equal the plain walk.
      const first = fast.mask(s);
      const built = A.jumped;
      if (max >= 40) assert.ok(built >= 0, `a skip was taken for maxLength ${max}`);
      let met = built < 0;
      for (let k = 0; k <= max + 1 && s >= 0; k++) {
        if (s === built) met = true;
        if (k % 17 === 0 || k >= max - 2 || k <= min + 1) assert.deepEqual(TokenMatcher.ids(fast.mask(s)), TokenMatcher.ids(ref.mask(s)), `${vocab.size} {${min},${max}} after ${k} chars`);
        s = A.step(s, k % 3 === 0 ? 0x61 : 0x20);
      }
      assert.ok(met, `the built state is a real level ({${min},${max}})`);
      assert.deepEqual(TokenMatcher.ids(first), TokenMatcher.ids(ref.mask(A.advanceBytes(fast.initial, enc.encode('{"s":"')))));
    }
  }
});

test('per-alphabet token masks and first-byte-then-alphabet token lists equal a scan of every token', () => {
  const alphabets: Array<[string, (b: number) => boolean]> = [
    ['email', (b) => /[A-Za-z0-9.!#$%&'*+/=?^_`{|}~@-]/.test(String.fromCharCode(b))],
    ['upper', (b) => b >= 0x41 && b <= 0x5a],
    ['digits', (b) => b >= 0x30 && b <= 0x39],
    ['printable', (b) => b >= 0x20 && b < 0x7f],
    ['space+lower', (b) => b === 0x20 || (b >= 0x61 && b <= 0x7a)],
  ];
  for (const tok of [llama3, llama2]) {
    const vocab = TokenVocab.fromTokenizer(tok);
    for (const [name, inC] of alphabets) {
      const c = new Uint32Array(4);
      for (let b = 0; b < 0x80; b++) if (inC(b)) c[b >>> 5] |= 1 << (b & 31);
      for (const max of [1, 2, 3, 7, vocab.maxDepth - 1, vocab.maxDepth, 1000]) {
        const got = vocab.plain.alphabetMask(c, max);
        for (let id = 0; id < vocab.size; id++) {
          const b = vocab.bytes[id];
          const want = b !== null && b.length > 0 && b.length <= max && b.every((x) => x < 0x80 && inC(x));
          const has = (got[id >>> 5] & (1 << (id & 31))) !== 0;
          if (has !== want) assert.fail(`${vocab.size} vocab, alphabet ${name}, max ${max}: token ${id} ${JSON.stringify(vocab.text([id]))} mask ${has} want ${want}`);
        }
      }
      // A first byte (in the alphabet or not) followed by the alphabet.
      for (const [x, max] of [[0x2e, vocab.maxDepth], [0x40, 3], [0x61, 1], [0x20, 0], [0x22, 7]]) {
        const got = new Set(vocab.plain.prefixTokens(x, c, max));
        for (let id = 0; id < vocab.size; id++) {
          const b = vocab.bytes[id];
          const want = b !== null && b[0] === x && b.length - 1 <= max && b.subarray(1).every((y) => y < 0x80 && inC(y));
          if (got.has(id) !== want) assert.fail(`${vocab.size} vocab, ${JSON.stringify(String.fromCharCode(x))} then alphabet ${name}, max ${max}: token ${id} ${JSON.stringify(vocab.text([id]))} listed ${got.has(id)} want ${want}`);
        }
      }
    }
  }
});

test('vocabulary preparation: the format samples are valid; masks in those formats then build no table, and equal those of an unprepared vocabulary', () => {
  for (const [format, sample] of Object.entries(FORMAT_SAMPLES)) assert.ok(accepts(compileJsonSchema({ type: 'string', format }), JSON.stringify(sample)), `${format}: ${sample}`);
  const schema = { type: 'object', properties: { a: { type: 'string', format: 'email' }, b: { type: 'string', format: 'uri' }, c: { type: 'array', items: { type: 'string', format: 'email' } } } };
  const texts = ['{"a":"kim.lee+x@mail.example.org","b":"http://www.example.com/a/b-c.html?q=1&r=t#top","c":["x@y.io","ab_c@d9.co"]}'];
  for (const tok of [llama3, llama2]) {
    const vocab = TokenVocab.fromTokenizer(tok);
    const built = vocab.plain.tablesBuilt;
    const m = new TokenMatcher(compileJsonSchema(schema), vocab);
    // An unprepared vocabulary builds its tables on first use (the 32K one: half a second for both).
    const fresh = tok === llama2 ? new TokenVocab(vocab.bytes, vocab.eosIds) : null;
    const r = fresh ? new TokenMatcher(m.automaton, fresh) : null;
    for (const text of texts) {
      let s = m.initial;
      for (let k = 0; k < text.length && s >= 0; k++) {
        const mask = m.mask(s);
        if (r) assert.deepEqual(TokenMatcher.ids(mask), TokenMatcher.ids(r.mask(s)), `${JSON.stringify(text.slice(0, k))}`);
        s = m.automaton.step(s, text.charCodeAt(k));
      }
    }
    assert.equal(vocab.plain.tablesBuilt, built, `${vocab.size} vocabulary: the masks used tables prepared up front`);
    if (fresh) assert.ok(fresh.plain.tablesBuilt > 0);
  }
});

test('plain-text fast path: masks along sampled outputs equal the plain walk, with and without a budget', () => {
  const schemas = [
    { type: 'object', properties: { title: { type: 'string', minLength: 1, maxLength: 30 }, body: { type: 'string' }, email: { type: 'string', format: 'email' }, n: { type: 'number' } }, required: ['title', 'body'] },
    { type: 'array', items: { type: 'object', properties: { k: { type: 'string', maxLength: 4 }, z: { enum: ['中文', 'a"b', 'x\\y'] } } }, maxItems: 3 },
  ];
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (const tok of [llama3, llama2]) {
    const vocab = TokenVocab.fromTokenizer(tok);
    for (const schema of schemas) {
      const g = compileJsonSchema(schema);
      const fast = new TokenMatcher(g, vocab), ref = new TokenMatcher(fast.automaton, vocab, { plain: false });
      for (let run = 0; run < 3; run++) {
        let s = fast.initial;
        for (let step = 0; step < 30 && !fast.automaton.finished(s); step++) {
          for (const budget of step % 3 === 0 ? [Infinity, 12] : [Infinity]) {
            const a = fast.mask(s, budget), b = ref.mask(s, budget);
            assert.deepEqual(TokenMatcher.ids(a), TokenMatcher.ids(b), `${vocab.size} ${JSON.stringify(schema).slice(0, 40)} step ${step} budget ${budget}`);
          }
          // Prefer long tokens now and then, so that strings fill up to their bounds.
          const ids = TokenMatcher.ids(ref.mask(s)).filter((id) => vocab.bytes[id]);
          if (!ids.length) break;
          const pick = rnd() < 0.3 ? ids.reduce((x, y) => (vocab.bytes[y]!.length > vocab.bytes[x]!.length ? y : x)) : ids[Math.floor(rnd() * ids.length)];
          s = fast.advance(s, pick);
        }
      }
      assert.ok((fast.stats.plainMasks ?? 0) > 0);
    }
  }
});

test('the token budget closes the output validly, or fails up front with a clear error', () => {
  const schema = { type: 'object', properties: { a: { type: 'string' }, b: { type: 'array', items: { type: 'string' } } }, required: ['a', 'b'] };
  for (const maxNewTokens of [15, 18, 25]) {
    for (const seed of [1, 2]) {
      const r = generateStructured(model, llama2, [1], { schema, temperature: 1, seed, maxNewTokens });
      assert.ok(r.complete && r.ids.length <= maxNewTokens, `${maxNewTokens}: ${r.text}`);
      const v = r.value as { a: string; b: string[] };
      assert.equal(typeof v.a, 'string');
      assert.ok(Array.isArray(v.b));
    }
  }
  assert.throws(() => generateStructured(model, llama2, [1], { schema, maxNewTokens: 5 }), (e: unknown) => e instanceof TokenBudgetError && /needs 15 tokens/.test((e as Error).message));
});

test('regex, grammar and choices constraints through generate()', () => {
  const r1 = generateStructured(model, llama2, [1], { regex: '\\d{3}-[A-Z]{2}', temperature: 1, seed: 3, maxNewTokens: 20 });
  assert.match(r1.text, /^\d{3}-[A-Z]{2}$/);
  assert.equal(r1.finishReason, 'stop');
  const r2 = generateStructured(model, llama2, [1], { choices: ['positive', 'negative', 'neutral'], temperature: 1, seed: 4 });
  assert.ok(['positive', 'negative', 'neutral'].includes(r2.text));
  const r3 = generateStructured(model, llama2, [1], { grammar: 'root ::= "(" [a-c]{1,3} ")" (" " root)?', temperature: 1, seed: 5, maxNewTokens: 30 });
  assert.match(r3.text, /^\([a-c]{1,3}\)( \([a-c]{1,3}\))*$/);
  // The processor in a plain generate() batch: each row follows its own state.
  const proc = constraintProcessor({ regex: '[xyz]{4}' }, llama2);
  const b = generate(model, [[1], [1, 2]], { processors: [proc], temperature: 1, seed: 9, maxNewTokens: 10, stopIds: [2] });
  for (const ids of b.ids) assert.match(TokenVocab.fromTokenizer(llama2).text(ids), /^[xyz]{4}$/);
});

test('YAML output of a schema: sampled documents parse and validate', () => {
  const Ajv = require('ajv').default ?? require('ajv');
  const schema = { type: 'object', properties: { name: { type: 'string', maxLength: 8 }, age: { type: 'integer', minimum: 0, maximum: 120 }, address: { type: 'object', properties: { city: { type: 'string' }, zip: { type: 'string', pattern: '^\\d{5}$' } }, required: ['city'] }, tags: { type: 'array', items: { type: 'string' }, maxItems: 3 }, nick: { type: ['string', 'null'] } }, required: ['name', 'age', 'address'] };
  const check = new Ajv().compile(schema);
  const g = compileJsonSchema(schema, { output: 'yaml' });
  assert.ok(accepts(g, '\n"name": "Ann"\n"age": 30\n"address":\n  "city": "Oslo"\n  "zip": "01234"\n"tags":\n  - "a"\n  - "b"\n"nick": null'));
  for (const seed of [1, 2, 3]) {
    const r = generateStructured(model, llama2, [1], { schema, schemaOptions: { output: 'yaml' }, temperature: 1, seed, maxNewTokens: 80 });
    assert.ok(r.complete, r.text);
    assert.deepEqual(r.value, parseYaml(r.text));
    assert.ok(check(r.value), `${r.text}\n${JSON.stringify(check.errors)}`);
  }
});

test('flexible whitespace accepts pretty-printed JSON; compact does not', () => {
  const schema = { type: 'object', properties: { a: { type: 'array', items: { type: 'integer' } }, b: { type: 'object', properties: { c: { type: 'null' } } } } };
  const text = JSON.stringify({ a: [1, 2], b: { c: null } }, null, 2);
  assert.ok(accepts(compileJsonSchema(schema, { whitespace: 'flexible' }), text));
  assert.ok(!accepts(compileJsonSchema(schema), text));
});

test('tool calling: the model picks a tool and emits arguments that validate', () => {
  const Ajv = require('ajv').default ?? require('ajv');
  const tools = [
    { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 }, unit: { enum: ['C', 'F'] } }, required: ['city', 'unit'] } },
    { name: 'add', parameters: { type: 'object', properties: { x: { type: 'integer' }, y: { type: 'integer' } }, required: ['x', 'y'] } },
  ];
  const check = new Ajv().compile(toolCallSchema(tools));
  const seen = new Set<string>();
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    const call = generateToolCall(model, llama2, [1], tools, { temperature: 1, seed, maxNewTokens: 40 });
    assert.ok(check({ name: call.name, arguments: call.arguments }), call.text);
    seen.add(call.name);
  }
  assert.ok(seen.size >= 1);
});

test('prompt-based extraction validates and retries with the error', async () => {
  const schema = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer', minimum: 0 } }, required: ['name', 'age'] };
  const prompts: string[] = [];
  const replies = ['Sure! ```json\n{"name": "Ann", "age": "30"}\n```', '{"name": "Ann", "age": 30}'];
  const r = await extractWithPrompt((p) => { prompts.push(p); return replies[prompts.length - 1]; }, 'Ann is thirty.', { schema, examples: [{ text: 'Bob, 4', output: { name: 'Bob', age: 4 } }] });
  assert.deepEqual(r.value, { name: 'Ann', age: 30 });
  assert.equal(r.attempts, 2);
  assert.match(prompts[0], /JSON Schema:[\s\S]*Input: Bob, 4\nOutput: \{"name":"Bob","age":4\}[\s\S]*Input: Ann is thirty\.\nOutput:$/);
  assert.match(prompts[1], /age must be integer/);
  await assert.rejects(extractWithPrompt(() => 'no json here', 'x', { schema, maxRetries: 1 }), (e: unknown) => e instanceof ExtractionError && e.attempts.length === 2);
});

test('bad input: clear errors in bounded time', () => {
  const t0 = performance.now();
  assert.throws(() => compileJsonSchema({ type: 5 } as never), (e: unknown) => e instanceof InvalidSchemaError && e.pointer === '#/type');
  assert.throws(() => compileJsonSchema({ type: 'object', properties: { a: { type: 'integer', minimum: 5, maximum: 3 } }, required: ['a'] }), (e: unknown) => e instanceof UnsatisfiableError && /#\/properties\/a/.test(e.message));
  assert.throws(() => compileJsonSchema({ type: 'object', properties: { a: false }, required: ['a'] }), UnsatisfiableError);
  // A misspelt keyword is an annotation (ignored) unless strict, which names it and its pointer.
  assert.ok(compileJsonSchema({ type: 'string', maxLenght: 3 }));
  assert.throws(() => compileJsonSchema({ type: 'string', maxLenght: 3 }, { strict: true }), (e: unknown) => e instanceof UnsupportedKeywordError && e.pointer === '#/maxLenght' && /did you mean 'maxLength'/.test(e.message));
  assert.throws(() => compileJsonSchema({ properties: { a: { not: { format: 'email' } } } }), (e: unknown) => e instanceof UnsupportedKeywordError && e.keyword === 'not' && e.pointer === '#/properties/a/not/format');
  assert.throws(() => compileJsonSchema({ $ref: '#/$defs/missing' }), (e: unknown) => e instanceof InvalidSchemaError && /does not resolve/.test(e.message));
  let deep: Record<string, unknown> = { type: 'string' };
  for (let i = 0; i < 5000; i++) deep = { type: 'object', properties: { x: deep } };
  assert.throws(() => compileJsonSchema(deep), ComplexityError);
  assert.throws(() => compileJsonSchema({ type: 'string', maxLength: 50_000_000 }), ComplexityError);
  // Huge but fine: 2,000 properties and a 5,000-value enum.
  const props: Record<string, unknown> = {};
  for (let i = 0; i < 2000; i++) props[`p${i}`] = { type: 'integer' };
  assert.ok(compileJsonSchema({ type: 'object', properties: props }));
  assert.ok(compileJsonSchema({ enum: Array.from({ length: 5000 }, (_, i) => `v${i}`) }));
  // Recursion through $ref.
  const tree = { $defs: { node: { type: 'object', properties: { v: { type: 'integer' }, kids: { type: 'array', items: { $ref: '#/$defs/node' } } }, required: ['v'] } }, $ref: '#/$defs/node' };
  assert.ok(accepts(compileJsonSchema(tree), '{"v":1,"kids":[{"v":2},{"v":3,"kids":[{"v":4,"kids":[]}]}]}'));
  assert.ok(performance.now() - t0 < 20000);
});

test('tslm schema check prints accept/reject per instance and --bench timings', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tslm-schema-'));
  try {
    writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(await llama2Json()));
    writeFileSync(path.join(dir, 'schema.json'), JSON.stringify({ type: 'object', properties: { name: { type: 'string' }, n: { type: 'integer', maximum: 10 } }, required: ['name'] }));
    writeFileSync(path.join(dir, 'good.json'), '{ "name": "Ann", "n": 3 }');
    writeFileSync(path.join(dir, 'bad.json'), '{"name": "Ann", "n": 11}');
    const lines: string[] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => { lines.push(a.join(' ')); };
    let code: number;
    try { code = await main(['schema', 'check', '--schema', path.join(dir, 'schema.json'), '--tokenizer', path.join(dir, 'tokenizer.json'), '--bench', path.join(dir, 'good.json'), path.join(dir, 'bad.json')]); } finally { console.log = log; }
    assert.equal(code, 1);
    assert.match(lines[0], /good\.json: accept$/);
    assert.match(lines[1], /bad\.json: reject \(token \d+/);
    assert.match(lines.join('\n'), /compile: [\d.]+ ms[\s\S]*mask: \d+ tokens, mean [\d.]+ µs, p50 [\d.]+ µs, p99 [\d.]+ µs/);
    // The schema: an unknown keyword and format are ignored (and an undeclared key, the
    // spec's semantics, accepted); --strict refuses the keyword, naming it and its pointer.
    writeFileSync(path.join(dir, 'loose.json'), JSON.stringify({ type: 'object', properties: { url: { type: 'string', format: 'uri', readonly: true }, kind: { type: 'string', format: 'topic' } } }));
    writeFileSync(path.join(dir, 'inst.json'), '{"url": "https://dcos-master-1.example.com", "kind": "x", "extra": 1}');
    lines.length = 0;
    console.log = (...a: unknown[]) => { lines.push(a.join(' ')); };
    try { code = await main(['schema', 'check', '--schema', path.join(dir, 'loose.json'), '--tokenizer', path.join(dir, 'tokenizer.json'), path.join(dir, 'inst.json')]); } finally { console.log = log; }
    assert.equal(code, 0, lines.join('\n'));
    assert.match(lines[0], /inst\.json: accept$/);
    const errs: string[] = [];
    const error = console.error;
    console.error = (...a: unknown[]) => { errs.push(a.join(' ')); };
    try { code = await main(['schema', 'check', '--strict', '--schema', path.join(dir, 'loose.json'), '--tokenizer', path.join(dir, 'tokenizer.json'), path.join(dir, 'inst.json')]); } finally { console.error = error; }
    assert.notEqual(code, 0);
    assert.match(errs.join('\n'), /schema \S*loose\.json: unsupported JSON Schema keyword 'readonly' at #\/properties\/url\/readonly/);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});
