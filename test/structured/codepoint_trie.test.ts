// GrammarBuilder.codepoints writes a class of code points as a trie of UTF-8 byte ranges (the
// sequences that share a first range under one alternative, a level's last bytes in one class):
//  - the language is the class's UTF-8 encodings, checked against TextEncoder/TextDecoder for
//    every code point and for random byte strings, on random classes of scattered code points;
//  - one parse per lead byte range that 7 or more sequences share, not per sequence (a pattern's
//    \p{L} written out was 497 stacks per character, each stepped and expanded at every byte), and
//    the classes of regex escapes ('.', [^\s]: up to 6 sequences under E2) as they were;
//  - masks of a pattern of such a class equal a brute-force check on the real LLaMA-2 vocabulary.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { HFTokenizer } from '../../src/tokenizers/hf.js';
import { TokenVocab, TokenMatcher, ByteAutomaton, DEAD, compileJsonSchema, utf8Sequences } from '../../src/structured/index.js';
import { GrammarBuilder, normalizeRanges } from '../../src/structured/grammar.js';
import { llama2Json } from '../tokenizers/real_vocabs.js';
import { assertMaskBrute } from './suite_util.js';
import { uniformRng as rng } from '../helpers.js';

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

/** Scattered ranges: single code points and short runs in every UTF-8 length, a few whole blocks. */
function randomRanges(r: () => number, n: number, letters = false): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  // (letters: single code points and short runs among a few lead bytes, as a script's letters.)
  if (letters) {
    for (let i = 0; i < n; i++) { const a = 0x800 + Math.floor(r() * 0x2800); out.push([a, a + (r() < 0.7 ? 0 : Math.floor(r() * 8))]); }
    return out;
  }
  const spans = [[0x20, 0x7f], [0x80, 0x7ff], [0x800, 0xffff], [0x10000, 0x10ffff]];
  for (let i = 0; i < n; i++) {
    const [lo, hi] = spans[Math.floor(r() * (r() < 0.6 ? 3 : 4))];
    const a = lo + Math.floor(r() * (hi - lo));
    const len = r() < 0.5 ? 0 : r() < 0.9 ? Math.floor(r() * 40) : Math.floor(r() * 5000);
    out.push([a, Math.min(hi, a + len)]);
  }
  return out;
}

const automatonOf = (ranges: Array<[number, number]>): ByteAutomaton => {
  const b = new GrammarBuilder();
  const start = b.rule('start', [[b.codepoints(ranges)]]);
  return new ByteAutomaton(b.build(start));
};
const accepts = (A: ByteAutomaton, bytes: ArrayLike<number>): boolean => {
  let s = A.initial;
  for (let i = 0; i < bytes.length && s !== DEAD; i++) s = A.step(s, bytes[i]);
  return s !== DEAD && A.accepting(s);
};
const inRanges = (ranges: Array<[number, number]>, c: number): boolean => ranges.some(([a, b]) => a <= c && c <= b);

test('a class of scattered code points accepts exactly its characters\' UTF-8 encodings (TextEncoder, TextDecoder), with one stack per lead byte range', () => {
  const r = rng(20);
  let allStacks = 0, allSeqs = 0;
  for (let trial = 0; trial < 8; trial++) {
    const ranges = randomRanges(r, trial < 2 ? 3 : 40 + Math.floor(r() * 400), trial >= 5);
    const A = automatonOf(ranges);
    // Every code point (surrogates have no UTF-8 and no place in a class).
    for (let c = 0; c <= 0x10ffff; c += c < 0x3000 ? 1 : 31) {
      if (c >= 0xd800 && c <= 0xdfff) continue;
      assert.equal(accepts(A, enc.encode(String.fromCodePoint(c))), inRanges(ranges, c), `trial ${trial}: U+${c.toString(16)}`);
    }
    for (const [a, b] of ranges) for (const c of [a, b, a + 1, b - 1, a - 1, b + 1]) {
      if (c < 0 || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) continue;
      assert.equal(accepts(A, enc.encode(String.fromCodePoint(c))), inRanges(ranges, c), `trial ${trial}: bound U+${c.toString(16)}`);
    }
    // Random byte strings: accepted exactly when they are the encoding of one code point of the class.
    for (let k = 0; k < 20000; k++) {
      const n = 1 + Math.floor(r() * 4);
      const bytes = new Uint8Array(n);
      for (let i = 0; i < n; i++) bytes[i] = i > 0 && r() < 0.7 ? 0x80 + Math.floor(r() * 64) : Math.floor(r() * 256);
      let want = false;
      try { const s = dec.decode(bytes); const c = s.codePointAt(0)!; want = [...s].length === 1 && inRanges(ranges, c); } catch { /* not UTF-8 */ }
      assert.equal(accepts(A, bytes), want, `trial ${trial}: bytes ${Array.from(bytes, (x) => x.toString(16)).join(' ')}`);
    }
    // One stack per lead byte range that 7 or more sequences share (fewer keep a stack each, as a
    // regex '.' does), one for the single bytes, where one alternative per sequence would hold a
    // stack per sequence.
    const seqs = normalizeRanges(ranges).flatMap(([a, b]) => utf8Sequences(a, b));
    const byLead = new Map<string, number>();
    for (const q of seqs) if (q.length > 1) byLead.set(`${q[0][0]}-${q[0][1]}`, (byLead.get(`${q[0][0]}-${q[0][1]}`) ?? 0) + 1);
    let want = seqs.some((q) => q.length === 1) ? 1 : 0;
    for (const n of byLead.values()) want += n >= 7 ? 1 : n;
    const stacks = A.stateNodes[A.initial].length;
    assert.equal(stacks, want, `trial ${trial}: ${stacks} stacks for ${byLead.size} lead ranges (${seqs.length} sequences)`);
    if (trial >= 5) { allStacks += stacks; allSeqs += seqs.length; }
  }
  assert.ok(allStacks * 3 < allSeqs, `${allStacks} stacks for ${allSeqs} sequences`);
});

test('a pattern of a large Unicode letter class (\\p{L}-like, written out) repeated {1,200}: few stacks per character, masks equal a brute-force check', async () => {
  const vocab = TokenVocab.fromTokenizer(new HFTokenizer(await llama2Json()));
  // Letters of many scripts as single code points and short runs (as \p{L} expanded by a generator).
  const r = rng(79409);
  const parts: string[] = [];
  const hex = (c: number) => `\\u${c.toString(16).padStart(4, '0')}`;
  for (let i = 0; i < 300; i++) {
    const a = 0xaa + Math.floor(r() * (0xd7a3 - 0xaa));
    if (a >= 0xd800) continue;
    const b = r() < 0.5 ? a : Math.min(0xd7a3, a + Math.floor(r() * 30));
    parts.push(a === b ? hex(a) : `${hex(a)}-${hex(b)}`);
  }
  const schema = { type: 'string', pattern: `^[A-Za-z${parts.join('')}_.:/%&#=+\\-@]{1,200}$` };
  const m = new TokenMatcher(compileJsonSchema(schema as never), vocab);
  const A = m.automaton;
  let s = A.step(A.initial, 0x22);
  assert.notEqual(s, DEAD);
  assert.ok(A.stateNodes[s].length < 60, `${A.stateNodes[s].length} stacks after the quote`);
  const text = 'My-Segment.' + String.fromCodePoint(parseInt(parts[0].slice(2, 6), 16), parseInt(parts[1].slice(2, 6), 16)) + '_a';
  for (const b of enc.encode(text)) {
    assertMaskBrute(m, vocab, s, `at ${A.stateNodes[s].length} stacks`);
    s = A.step(s, b);
    assert.notEqual(s, DEAD, text);
    assert.ok(A.stateNodes[s].length < 60, `${A.stateNodes[s].length} stacks`);
  }
  assertMaskBrute(m, vocab, s, 'at the end');
});
