// Regressions found by running the engine on real-world schemas (JSONSchemaBench's corpus, issue
// #20): each schema here is written for the test (not copied from the corpus) and reproduces one
// cause; verdicts are compared with ajv (+ ajv-formats).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileJsonSchema, parseGbnf, ByteAutomaton, DEAD, GrammarError, UnsatisfiableError, UnsupportedKeywordError, StructuredError } from '../../src/structured/index.js';
import type { Grammar, JsonSchema } from '../../src/structured/index.js';
import { ajv, accepts, assertMaskBrute } from './suite_util.js';

const enc = new TextEncoder();

/** The engine agrees with ajv on every instance (compact JSON, keys as written). */
function agree(schema: JsonSchema, instances: unknown[], g: Grammar = compileJsonSchema(schema)): void {
  for (const x of instances) {
    const text = JSON.stringify(x);
    assert.equal(accepts(g, text), ajv.validate(schema as object, x) as boolean, `${JSON.stringify(schema).slice(0, 200)}: ${text}`);
  }
}

test('a oneOf/anyOf whose branch compiles to the grammar\'s first rule is kept (was dropped: rule 0 read as "no combinator")', () => {
  // The enum is the first rule the compiler builds, so the single branch's symbol is 0.
  const single = { type: 'object', properties: { os: { oneOf: [{ enum: ['linux', 'darwin'] }] } }, required: ['os'] };
  agree(single, [{ os: 'linux' }, { os: 'darwin' }, { os: 'windows' }, { os: 1 }, {}]);
  agree({ properties: { os: { anyOf: [{ enum: ['linux', 'darwin'] }] } } }, [{ os: 'linux' }, { os: 'beos' }]);
  // A $ref through a one-branch oneOf (the ref rule comes first).
  const ref = {
    definitions: { pt: { type: 'object', properties: { x: { type: 'integer' } }, required: ['x'], additionalProperties: false } },
    type: 'object', properties: { pts: { type: 'array', items: { oneOf: [{ $ref: '#/definitions/pt' }] } } }, additionalProperties: false,
  };
  agree(ref, [{ pts: [{ x: 1 }] }, { pts: [{ x: 1, y: 2 }] }, { pts: [{}] }, { pts: [{ x: 'a' }] }]);
  // The same in YAML output: the branch, not any value.
  const y = compileJsonSchema(single, { output: 'yaml' });
  assert.equal(accepts(y, '\n"os": "linux"'), true);
  assert.equal(accepts(y, '\n"os": "windows"'), false);
});

test('an unanchored pattern of many alternatives is one search, not one `.*` per branch (was: ComplexityError while computing a mask)', async () => {
  // 150 zone names such as "xe3-zb2": the pattern searches for any of them anywhere in the string.
  const zones: string[] = [];
  for (let i = 0; i < 150; i++) zones.push(`${'abcdefghijklmnopqrstuvwxyz'[i % 26]}e${i % 7}-z${'bcd'[i % 3]}${i % 5}`);
  const schema = { type: 'object', properties: { skip: { type: 'array', items: { type: 'string', pattern: `(${zones.join('|')})` } } } };
  const g = compileJsonSchema(schema);
  agree(schema, [{ skip: [zones[3], `x-${zones[77]}-y`, zones[149]] }, { skip: ['ae0'] }, { skip: [`${zones[5].slice(0, 4)}`] }, { skip: [] }], g);
  // The parser states along an instance stay small (each branch used to run its own `.*`).
  const a = new ByteAutomaton(g);
  let s = a.initial, most = 0;
  for (const x of enc.encode(JSON.stringify({ skip: [zones[0], zones[1] + zones[2], 'pre-' + zones[42] + '-post'] }))) { s = a.step(s, x); assert.notEqual(s, DEAD); most = Math.max(most, a.stateNodes[s].length); }
  assert.ok(most < 600, `at most ${most} parallel parses`);
});

// Searches (patterns not anchored at the start) are compiled as a deterministic automaton.
const SEARCHES = ['[A-Fa-f0-9]{8}', '\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}', 'https://w3id.org/v2', 'ab+c|^x', 'a.b$', '(cat|category|dog)s?', 'é\\u2028?z', '\\s\\S', '(a|ab)(c|bcd)', ''];
const ALPHABET = ['a', 'b', 'c', 'd', 'x', 'z', 'A', 'F', '0', '1', '9', '-', ':', 'T', '.', '/', 's', 'o', 'g', 't', 'y', 'é', '\u2028', '\n', '"', '\\', ' ', '中'];

test('search patterns as automata: the language is ajv\'s (u flag) on random strings', () => {
  let seed = 7;
  const rnd = (n: number) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed % n; };
  for (const p of SEARCHES) {
    const schema = { type: 'string', pattern: p };
    const g = compileJsonSchema(schema);
    const samples = ['', 'abc', 'xab', 'deadBEEF', '2024-01-31T10:20', 'see https://w3id.org/v2 here', 'a\nb', 'aéb', 'é\u2028z', 'éz', 'categorys', ' \n'];
    for (let i = 0; i < 300; i++) {
      const n = rnd(12);
      let s = '';
      for (let k = 0; k < n; k++) s += ALPHABET[rnd(ALPHABET.length)];
      samples.push(s);
    }
    agree(schema, samples, g);
  }
});

test('search patterns: masks equal a brute-force check, with the plain fast path taken', async () => {
  const { HFTokenizer } = await import('../../src/tokenizers/hf.js');
  const { llama2Json } = await import('../tokenizers/real_vocabs.js');
  const { TokenVocab, TokenMatcher } = await import('../../src/structured/index.js');
  const vocab = TokenVocab.fromTokenizer(new HFTokenizer(await llama2Json()));
  const schema = { type: 'object', properties: { hash: { type: 'string', pattern: '[A-Fa-f0-9]{8}' }, when: { type: 'string', pattern: '\\d{4}-\\d{2}' }, url: { type: 'string', pattern: 'w3id.org' }, nodig: { type: 'string', pattern: '^[^0-9]*$' } } };
  const m = new TokenMatcher(compileJsonSchema(schema), vocab);
  for (const prefix of ['{"hash":"', '{"hash":"zz', '{"hash":"00ff', '{"hash":"00ff00ff', '{"hash":"00ff00ffq', '{"when":"x 2024', '{"when":"2024-0', '{"when":"2024-01', '{"url":"https://w3id', '{"url":"w3id.or', '{"nodig":"', '{"nodig":"ab é']) {
    const s = m.automaton.advanceBytes(m.initial, enc.encode(prefix));
    assert.ok(s >= 0, prefix);
    assertMaskBrute(m, vocab, s, `prefix ${JSON.stringify(prefix)}`);
  }
  // Inside a searched string the states are levels of plain characters: no state walks the whole vocabulary.
  const before = m.stats.nodesVisited, walks = m.stats.walks;
  for (const prefix of ['{"hash":"abc', '{"hash":"0123', '{"when":"on 1999-1', '{"when":"a']) m.mask(m.automaton.advanceBytes(m.initial, enc.encode(prefix)));
  assert.ok((m.stats.nodesVisited - before) / (m.stats.walks - walks) < 5000, `${m.stats.nodesVisited - before} trie nodes in ${m.stats.walks - walks} walks`);
});

test('a large enum is a trie of its values (50,000 values were 50,000 parallel parses: ComplexityError at the first mask)', () => {
  const values = Array.from({ length: 50_000 }, (_, i) => `item-${i}`);
  const schema = { type: 'object', properties: { v: { enum: [...values, 7, null, 'item-'] } }, required: ['v'] };
  const g = compileJsonSchema(schema);
  agree(schema, [{ v: 'item-0' }, { v: 'item-49999' }, { v: 'item-50000' }, { v: 'item-' }, { v: 'item' }, { v: 7 }, { v: null }, { v: 'x' }], g);
  const a = new ByteAutomaton(g);
  let s = a.initial, most = 0;
  for (const x of enc.encode('{"v":"item-4242"}')) { s = a.step(s, x); most = Math.max(most, a.stateNodes[s].length); }
  assert.ok(a.accepting(s));
  assert.ok(most <= 16, `at most ${most} parallel parses`);
});

test('bad input: $ref cycles without a base case, remote $ref, catastrophic regexes — clear errors or bounded work', () => {
  for (const schema of [{ $ref: '#' }, { $defs: { a: { $ref: '#/$defs/b' }, b: { $ref: '#/$defs/a' } }, $ref: '#/$defs/a' },
    { $defs: { n: { type: 'object', properties: { x: { $ref: '#/$defs/n' } }, required: ['x'] } }, $ref: '#/$defs/n' }]) {
    assert.throws(() => compileJsonSchema(schema), UnsatisfiableError, JSON.stringify(schema));
  }
  assert.throws(() => compileJsonSchema({ $defs: { a: { $ref: '#/$defs/a', type: 'string' } }, $ref: '#/$defs/a' }), (e: unknown) => e instanceof UnsupportedKeywordError && /recursive/.test(e.message));
  assert.throws(() => compileJsonSchema({ $ref: 'https://example.com/s.json' }), (e: unknown) => e instanceof UnsupportedKeywordError && e.keyword === '$ref' && /remote/.test(e.message));
  // Patterns that backtrack exponentially in a backtracking engine (ajv itself hangs on the long
  // inputs: it checks the short ones): linear here, whatever the input.
  const t0 = performance.now();
  for (const [pattern, unit, longOk] of [['^(a+)+$', 'a', false], ['(a|a)*b', 'a', false], ['(x+x+)+y', 'x', false], ['(a|b)*a(a|b){25}', 'ab', true]] as const) {
    const schema = { type: 'string', pattern };
    const g = compileJsonSchema(schema);
    agree(schema, [unit.repeat(3) + '!', unit.repeat(4), unit.repeat(5) + 'by'], g);
    assert.equal(accepts(g, JSON.stringify(unit.repeat(500) + '!')), longOk, pattern);
  }
  assert.ok(performance.now() - t0 < 10_000);
});

test('large maxProperties / maxItems with contains compile without overflowing the call stack (was: RangeError in a corpus schema)', () => {
  const many = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));
  agree({ type: 'object', maxProperties: 10000, additionalProperties: { type: 'integer' } }, [{}, { a: 1 }, many(30), { a: 'x' }]);
  agree({ type: 'array', items: { type: 'integer' }, maxItems: 10000, contains: { const: 1 } }, [[], [1], [2, 1, 3], Array(40).fill(2), [...Array(40).fill(2), 1], ['1']]);
  // Whatever recursion the limits do not foresee ends in a ComplexityError, not a RangeError.
  let deep: JsonSchema = { type: 'integer' };
  for (let i = 0; i < 150; i++) deep = { type: 'array', items: deep, contains: deep };
  try { compileJsonSchema(deep); } catch (e) { assert.ok(e instanceof StructuredError, String(e)); }
});

test('numbers as JavaScript prints them: up to 21 integer digits and 17 significant ones (were: at most 15 digits)', () => {
  agree({ type: 'object', properties: { v: { type: 'integer' }, x: { type: 'number' } } }, [
    { v: 234567890123456800 }, { v: 9007199254740991 }, { v: -123456789012345680000 }, { x: 1.5707963267948966 }, { x: -3.141592653589793 }, { x: 2.220446049250313e-16 }, { x: 5e-324 }, { x: 1.5e+287 }, { v: 1.5 }, { x: 'no' },
  ]);
  // Beyond 21 digits JavaScript writes an exponent: such a text is refused, never accepted wrongly.
  assert.equal(accepts(compileJsonSchema({ type: 'integer' }), '1234567890123456789012'), false);
  for (const t of ['1e999', '2e308', '1e400']) assert.equal(accepts(compileJsonSchema({ type: 'number' }), t), false, t);
  for (const t of ['1e287', '123456789012345678901e287', '1E+099', '1e-999', '-0.5e-12']) assert.equal(accepts(compileJsonSchema({ type: 'number' }), t), true, t);
});

test('email: host labels with inner hyphens and long top-level domains (were refused: contact@gadgets-widgets.com)', () => {
  const s = { type: 'string', format: 'email' };
  agree(s, ['contact@gadgets-widgets.com', 'a@b.community', 'x@sub.my-host.org', 'a@-b.com', 'a@b-.com', 'a@b..com']);
});

test('one declared property and extra keys: the extra keys may come first (were accepted only after it)', () => {
  agree({ type: 'array', items: { type: 'object', properties: { token: { type: 'string', minLength: 3 } }, required: ['token'] } }, [
    [{ name: 'x', token: 'abc' }], [{ token: 'abc', name: 'x' }], [{ name: 'x' }], [{ name: 'x', token: 'ab' }],
  ]);
});

test('maxLength / maxItems in the hundreds of thousands are lazy chains: few rules, and every bound of a shared chain exact (was: 262,144 rules, seconds to compile)', () => {
  const schema = {
    type: 'object', additionalProperties: false,
    properties: {
      big: { type: 'string', maxLength: 262144 }, small: { type: 'string', maxLength: 5 }, mid: { type: 'string', minLength: 2, maxLength: 7 },
      list: { type: 'array', items: { type: 'integer' }, maxItems: 131072 }, few: { type: 'array', items: { type: 'integer' }, minItems: 1, maxItems: 3 },
    },
  };
  const g = compileJsonSchema(schema);
  // The levels below the named ones are not rules of their own (rules counts them), and are written on demand.
  assert.ok(g.ruleAlts.length < 1000, `${g.ruleAlts.length} rules built`);
  assert.ok(g.rules > 262144 + 131072 - 10, `${g.rules} rules in all`);
  const strs = Array.from({ length: 10 }, (_, n) => 'ab'.repeat(5).slice(0, n));
  const arrs = Array.from({ length: 6 }, (_, n) => Array.from({ length: n }, (_, i) => i));
  agree(schema, [
    ...strs.flatMap((s) => [{ small: s }, { mid: s }, { big: s }, { big: s, small: s, mid: s }]),
    ...arrs.flatMap((a) => [{ few: a }, { list: a }, { list: a, few: a }]),
    { big: 'x'.repeat(3000) }, { list: Array.from({ length: 400 }, (_, i) => i % 10) },
  ], g);
  // The same chain's levels reached from two bounds: a state of one walk is a level of the other's.
  const A = new ByteAutomaton(g);
  for (const [key, max] of [['small', 5], ['mid', 7], ['big', 40]] as const) {
    let s = A.advanceBytes(A.initial, enc.encode(`{"${key}":"`));
    for (let k = 0; k <= max; k++) { assert.notEqual(s, DEAD, `${key} after ${k}`); s = A.step(s, 0x61); }
    if (key !== 'big') assert.equal(s, DEAD, `${key} beyond ${max}`);
  }
  // toString names every level once.
  const text = compileJsonSchema({ type: 'string', maxLength: 6 }).toString();
  const names = text.split('\n').map((l) => l.split(' ::= ')[0]);
  assert.equal(new Set(names).size, names.length);
});

test('a pattern under a large maxLength: the product with the length counter is built while matching (was: thousands of rules, 100+ ms to compile)', async () => {
  const schema = {
    type: 'object', additionalProperties: false,
    properties: {
      to: { type: 'string', pattern: '^[a-zA-Z0-9_.+-]+@[a-zA-Z0-9-]+\\.[a-zA-Z0-9-.]+$', minLength: 5, maxLength: 254 },
      from: { type: 'string', pattern: '^[^@^\\s]+@[^@^\\.^\\s]+(\\.[^@^\\.^\\s]*)*.gov.uk', minLength: 12, maxLength: 120 },
      // No maxLength: the counter stops at minLength.
      long: { type: 'string', pattern: '^(ab|c)+$', minLength: 300 },
    },
  };
  const g = compileJsonSchema(schema);
  assert.ok(g.ruleAlts.length < 400, `${g.ruleAlts.length} rules built`);
  const to = (n: number, tail = '@b.co') => 'x'.repeat(Math.max(0, n - tail.length)) + tail;
  const from = (n: number, tail = '@x.gov.uk') => 'é'.repeat(Math.max(0, n - tail.length)) + tail;
  agree(schema, [
    ...[4, 5, 6, 253, 254, 255].flatMap((n) => [{ to: to(n) }, { to: to(n, '@b.') }, { to: to(n, '@b_c.d') }]),
    ...[8, 11, 12, 13, 119, 120, 121].flatMap((n) => [{ from: from(n) }, { from: from(n, '"@x.gov.ukz') }, { from: from(n, '@x.y.gov.uk') }, { from: from(n, '@x.gov.u') }, { from: from(n, 'a b@x.gov.uk') }]),
    ...[298, 299, 300, 301, 302, 400].flatMap((n) => [{ long: 'ab'.repeat(n >> 1) + 'c'.repeat(n & 1) }, { long: 'c'.repeat(n) }, { long: 'ab'.repeat(n >> 1).slice(1) + 'c' }]),
    { to: to(20), from: from(30), long: 'c'.repeat(310) },
  ], g);
  // The shortest completion (the lazily built rules' declared lengths) is the least number of bytes
  // that completes, found breadth first over every byte.
  const A = new ByteAutomaton(g);
  const least = (s0: number): number => {
    let level = [s0];
    const seen = new Set(level);
    for (let d = 0; level.length; d++) {
      if (level.some((s) => A.accepting(s))) return d;
      const next: number[] = [];
      for (const s of level) for (let x = 0; x < 256; x++) { const t = A.step(s, x); if (t !== DEAD && !seen.has(t)) { seen.add(t); next.push(t); } }
      level = next;
    }
    return Infinity;
  };
  for (const prefix of ['{"to":"', '{"to":"a@', `{"to":"${'x'.repeat(240)}`, '{"from":"', '{"from":"é@x.', '{"from":"\\"@x.gov', '{"long":"', `{"long":"${'ab'.repeat(147)}a`]) {
    const s = A.advanceBytes(A.initial, enc.encode(prefix));
    assert.notEqual(s, DEAD, prefix);
    assert.equal(A.minComplete(s), least(s), `shortest completion after ${prefix}`);
  }
  // Masks equal a brute-force check of every token (LLaMA-2's vocabulary).
  const { HFTokenizer } = await import('../../src/tokenizers/hf.js');
  const { llama2Json } = await import('../tokenizers/real_vocabs.js');
  const { TokenVocab, TokenMatcher } = await import('../../src/structured/index.js');
  const vocab = TokenVocab.fromTokenizer(new HFTokenizer(await llama2Json()));
  const m = new TokenMatcher(g, vocab);
  for (const prefix of ['{"to":"', '{"to":"ab.c', `{"to":"${'x'.repeat(246)}@b.`, '{"from":"é', '{"from":"j@x.gov.uk', `{"long":"${'ab'.repeat(149)}`]) {
    assertMaskBrute(m, vocab, m.automaton.advanceBytes(m.initial, enc.encode(prefix)), `prefix ${prefix.slice(0, 40)}`);
  }
});

test('left recursion through the levels of a bounded repetition is refused; a repetition after a byte is not left recursion', () => {
  assert.throws(() => parseGbnf('root ::= a{0,4} "b"\na ::= root "c" | "d"'), (e: unknown) => e instanceof GrammarError && /left-recursive/.test(e.message));
  assert.throws(() => parseGbnf('root ::= "x" | a{2,9} "b"\na ::= "y"? root'), (e: unknown) => e instanceof GrammarError && /left-recursive/.test(e.message));
  assert.throws(() => parseGbnf('root ::= "z" | a{0,4}\na ::= root "c"'), (e: unknown) => e instanceof GrammarError && /left-recursive/.test(e.message));
  // Only the call of the unit by a level (before the level below) is not a tail call here.
  assert.throws(() => parseGbnf('root ::= "z" | a{0,4}\na ::= "q"? root'), (e: unknown) => e instanceof GrammarError && /left-recursive/.test(e.message));
  const g = parseGbnf('root ::= "x" a{0,4}\na ::= "d" | root "c"');
  for (const [s, ok] of [['x', true], ['xd', true], ['xxc', true], ['xdddd', true], ['xddddd', false], ['xxdcd', true], ['d', false]] as const) assert.equal(accepts(g, s), ok, s);
});

test('allOf: a required name no part declares is under every part\'s additionalProperties (was: only the first such part\'s, then replaced by a later one\'s — {"r":"s"} accepted)', () => {
  const two = { allOf: [
    { properties: { x: {} }, additionalProperties: { type: 'number' }, required: ['r'] },
    { properties: { y: {} }, additionalProperties: { minimum: 3 } },
  ] };
  agree(two, [{ r: 5 }, { r: 's' }, { r: 1 }, { r: 5, x: 4 }, { r: 5, x: 2 }, { r: 5, y: 7 }, { r: 5, y: 'a' }, {}, { x: 4 }]);
  const three = { allOf: [
    { properties: { a: { type: 'integer' } }, additionalProperties: { type: 'integer' }, required: ['r'] },
    { properties: { b: {} } },
    { properties: { c: {} }, additionalProperties: { maximum: 10 }, required: ['s'] },
  ] };
  agree(three, [{ r: 1, s: 2 }, { r: 11, s: 2 }, { r: 1, s: 'x' }, { r: 1.5, s: 2 }, { r: 1, s: 2, b: 20 }, { r: 1, s: 2, b: 5 }, { r: 1, s: 2, c: 'z' }, { r: 1 }]);
  // Parts whose additionalProperties cannot both hold: nothing with r is valid.
  const none = { allOf: [
    { properties: { x: {} }, additionalProperties: { type: 'number' }, required: ['r'] },
    { properties: { y: {} }, additionalProperties: { type: 'string' } },
  ] };
  let g: Grammar | null = null;
  try { g = compileJsonSchema(none); } catch (e) { assert.ok(e instanceof UnsatisfiableError, String(e)); }
  if (g) for (const x of [{ r: 's' }, { r: 5 }, { r: 5, y: 'a' }]) assert.equal(accepts(g, JSON.stringify(x)), false, JSON.stringify(x));
});
