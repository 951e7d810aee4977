// The mask side's shortcuts against the work they skip, on the real LLaMA-2 32K vocabulary:
//  - ByteAutomaton's memo of each stack's closure after its top byte (afterAt): the steps it
//    makes, and so the masks, equal those of an automaton that expands every stack anew (and the
//    set of pairs a closure has seen holds one closure's, not every closure's so far);
//  - plainClosure decided from each frame alone (closureByStacks) where a frame returns to a
//    caller that resumes with the closing quote (an undeclared key's automaton), and where a frame
//    alone reaches a refused byte (−2): the same verdict as the walk over the state's own states,
//    a bound at least the walk's, and masks equal to a brute-force check there;
//  - the mode-F closure (TokenMatcher.closureF) cut at the longest plain token's characters: it
//    settles key positions the whole closure cannot (a bounded repetition of hundreds of levels),
//    and the masks equal those of a matcher that walks the whole closure, and a brute-force check;
//  - the table of undeclared keys' trie rules (freeKeyAltsOf) equals the map of their names' rules.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { HFTokenizer } from '../../src/tokenizers/hf.js';
import { TokenVocab, TokenMatcher, ByteAutomaton, DEAD, compileJsonSchema } from '../../src/structured/index.js';
import { llama2Json } from '../tokenizers/real_vocabs.js';
import { assertMaskBrute } from './suite_util.js';
import { ruleStarts } from '../../src/structured/matcher.js';
import { FREE_KEY_NODE, PENDING } from '../../src/structured/grammar.js';

const enc = new TextEncoder();
let vocab: TokenVocab;

before(async () => {
  vocab = TokenVocab.fromTokenizer(new HFTokenizer(await llama2Json()));
});

// A step list's items, one of several shapes: a name, a command, or an object of one member
// (declared names beside pattern keys).
const step = {
  anyOf: [
    { enum: ['checkout'] },
    { type: 'string', pattern: '^[a-z][a-z0-9_-]+$' },
    {
      type: 'object', minProperties: 1, maxProperties: 1,
      properties: { run: { type: 'string' }, save_cache: { type: 'object', properties: { key: { type: 'string' }, paths: { type: 'array', items: { type: 'string' } } } }, when: {} },
      patternProperties: { '^[a-z][a-z0-9_-]+$': {}, '^[a-z]+/[a-z]+$': {} },
    },
  ],
};
// Jobs of several shapes that all hold steps: a key position inside a step is the same stacks
// once per job shape still possible (states of hundreds of stacks).
const job = {
  anyOf: Array.from({ length: 6 }, (_, i) => ({
    type: 'object',
    properties: { [`executor${i}`]: { type: 'string' }, docker: { type: 'array', items: { type: 'object', properties: { image: { type: 'string' } } } }, steps: { type: 'array', items: step }, parallelism: { type: 'integer' } },
  })),
};
const jobs = { type: 'object', properties: { version: { type: 'number' }, jobs: { type: 'object', additionalProperties: job } } };
// Many declared names beside undeclared keys and a pattern key that takes any character after "x-".
const names = Array.from({ length: 40 }, (_, i) => `Align${String.fromCharCode(65 + (i % 26))}${i}Option`);
const style = { type: 'object', properties: Object.fromEntries(names.map((n, i) => [n, i % 2 ? { type: 'integer' } : { type: 'boolean' }])), patternProperties: { '^x-': {} }, additionalProperties: {} };

const texts: Array<[Record<string, unknown>, string[]]> = [
  [jobs, [
    '{"version":2.1,"jobs":{"build":{"docker":[{"image":"cimg/node:20"}],"steps":["checkout",{"run":"npm ci"},{"save_cache":{"key":"v1-deps","paths":["node_modules"]}},{"my-orb/cmd":{"a":1}}]}}}',
    '{"jobs":{"test":{"parallelism":4,"steps":[{"when":true},"custom_cmd",{"run":"make test"}]},"deploy":{"executor3":"x","steps":[]}}}',
  ]],
  [style, [
    '{"AlignB1Option":1,"x-foo":2,"zzz":3,"AlignA0Option":true,"q":[1,{"a":2}],"AlignC2Option":false}',
    '{"x-\u00e9t\u00e9":"v","Al":null,"AlignD3Option":7}',
  ]],
];

test('steps from memoised closures equal steps that expand every stack anew: the same masks at every byte of real-world shapes', () => {
  let compared = 0, hits = 0;
  for (const [schema, list] of texts) {
    const g = compileJsonSchema(schema as never);
    const memo = new ByteAutomaton(g), fresh = new ByteAutomaton(g);
    fresh.memoClosures = false;
    const mm = new TokenMatcher(memo, vocab), mf = new TokenMatcher(fresh, vocab);
    // What each closure saw is forgotten when the next begins: the set holds one closure's pairs.
    const seenOf = (a: ByteAutomaton) => (a as unknown as { seen: { size: number; capacity: number } }).seen;
    let most = 0, sum = 0;
    for (const text of list) {
      const bytes = enc.encode(text);
      let a = memo.initial, b = fresh.initial;
      for (let i = 0; i <= bytes.length; i++) {
        if (i > 0) { a = memo.step(a, bytes[i - 1]); b = fresh.step(b, bytes[i - 1]); }
        const what = JSON.stringify(text.slice(0, i));
        assert.ok(a !== DEAD && b !== DEAD, `dead at ${what}`);
        assert.deepEqual(Array.from(memo.stateNodes[a]), Array.from(fresh.stateNodes[b]), `stacks at ${what}`);
        assert.deepEqual(mm.mask(a), mf.mask(b), `mask at ${what}`);
        for (const x of [memo, fresh]) { const n = seenOf(x).size; most = Math.max(most, n); sum += n; }
        compared++;
      }
      assert.ok(memo.accepting(a) && fresh.accepting(b), text);
    }
    // The memo was used (states of many stacks) and served steps (else the test would not exercise it).
    const computed = (memo as unknown as { afterAt: { a: Int32Array } }).afterAt.a.reduce((c, x) => c + (x > 0 ? 1 : 0), 0);
    console.log(`# ${memo.expansions} stacks moved on, ${computed} closures computed; pairs seen: at most ${most} at once, ${sum} summed, table ${seenOf(memo).capacity} and ${seenOf(fresh).capacity}`);
    for (const x of [memo, fresh]) assert.ok(seenOf(x).capacity <= 4 * Math.max(512, most), `table of ${seenOf(x).capacity} for at most ${most} pairs`);
    hits += computed > 100 && memo.expansions > computed ? 1 : 0;
  }
  assert.ok(compared > 300, `${compared} states compared`);
  assert.equal(hits, texts.length, 'the memo served steps in every schema');
});

test('plain closures decided frame by frame (a frame that returns before the quote, one that reaches a refused byte) agree with the walk over the state\'s own states, and masks equal a brute-force check', () => {
  const m = new TokenMatcher(compileJsonSchema(style as never), vocab);
  const A = m.automaton as unknown as { closureByStacks(s: number, most: number): number; closureOf(s: number, most: number, alone: boolean): number; plainClosure(s: number, most: number): number; initial: number; step(s: number, b: number): number };
  const seen = new Map<string, number>();
  const brute: Array<[number, string]> = [];
  const prefixes = ['{"', '{"x-', '{"Al', '{"AlignB1Option":1,"', '{"AlignB1Option":1,"x-foo":2,"zzz":3,"AlignA0Option":true,"', '{"q":[1,{"a":2}],"AlignC2Option":false,"Ali'];
  for (const p of prefixes) {
    const bytes = enc.encode(p);
    let s = A.initial;
    for (let i = 0; i <= bytes.length; i++) {
      if (i > 0) s = A.step(s, bytes[i - 1]);
      assert.ok(s !== DEAD, p);
      const what = JSON.stringify(p.slice(0, i));
      const fast = A.closureByStacks(s, 256);
      // The walk over s's own states, with room enough to finish where it holds.
      const walk = A.closureOf(s, 8192, false);
      if (fast === -2) assert.equal(walk, -1, `refused byte ahead at ${what}`);
      else if (fast >= 0) assert.ok(walk >= 0 && walk <= fast, `bound ${fast} vs walk ${walk} at ${what}`);
      assert.equal(A.plainClosure(s, 256) >= 0, fast >= 0 || (fast === -1 && A.closureOf(s, 256, false) >= 0), what);
      const k = fast >= 0 ? 'holds' : String(fast);
      seen.set(k, (seen.get(k) ?? 0) + 1);
      if (i === bytes.length) brute.push([s, what]);
    }
  }
  // Both shortcuts were taken: key positions whose undeclared-key frame returns before the quote
  // hold frame by frame, and those where "x-" (any character after it) may still come fail so.
  assert.ok((seen.get('holds') ?? 0) >= 10 && (seen.get('-2') ?? 0) >= 5, JSON.stringify([...seen]));
  for (const [s, what] of brute) {
    assertMaskBrute(m, vocab, s, what);
    assertMaskBrute(m, vocab, s, `${what}, budget 4`, 4);
  }
});

/** Declared names that branch into 13 first letters (n0 … z0). */
const BRANCHY = Object.fromEntries(Array.from({ length: 13 }, (_, i) => [`${String.fromCharCode(110 + i)}0`, {}]));

test('the mode-F closure cut at the longest plain token settles a bounded key pattern (^.{1,255}$) that the whole closure cannot, with masks equal to the uncut matcher\'s and a brute-force check', () => {
  // Keys matching the pattern beside those it leaves out (additionalProperties: printable ASCII,
  // as beside names declared with 13 first letters or more: see schema.ts unmatchedKeyChars): an
  // ASCII character leads elsewhere than the others for 256 levels. The short bound (20) has
  // characters refused within a token's reach near its end: there the closure must fail.
  for (const [pattern, texts2] of [
    ['^.{1,255}$', ['{"key1":{},"key2":[1],"k\u00e9y3":"x","":2}', '{"a b c d e f g h i j k l m n o p q r s t u v w x y z 0123456789":true}']],
    ['^.{1,20}$', ['{"0123456789abcdefghi":1,"\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9x":2,"abcdefghijklmnopqrstuvwxyz":3}']],
  ] as const) {
    const g = compileJsonSchema({ type: 'object', properties: BRANCHY, patternProperties: { [pattern]: {} } } as never);
    const cut = new TokenMatcher(g, vocab), whole = new TokenMatcher(g, vocab);
    (whole as unknown as { depthCut: boolean }).depthCut = false;
    const closureF = (m: TokenMatcher, s: number) => (m as unknown as { closureF(s: number): number }).closureF(s);
    let settled = 0;
    for (const text of texts2) {
      const bytes = enc.encode(text);
      let a = cut.initial, b = whole.initial;
      for (let i = 0; i <= bytes.length; i++) {
        if (i > 0) { a = cut.automaton.step(a, bytes[i - 1]); b = whole.automaton.step(b, bytes[i - 1]); }
        const what = `${pattern}: ${JSON.stringify(text.slice(0, i))}`;
        assert.ok(a !== DEAD && b !== DEAD, what);
        assert.deepEqual(cut.mask(a), whole.mask(b), `mask at ${what}`);
        assert.deepEqual(cut.mask(a, 3), whole.mask(b, 3), `mask at ${what}, budget 3`);
        // Inside a key: where the cut closure holds and the whole one does not, brute force too.
        if (closureF(cut, a) >= 0 && closureF(whole, b) < 0) {
          settled++;
          if (settled % 7 === 1) assertMaskBrute(cut, vocab, a, what);
        }
      }
    }
    if (pattern === '^.{1,255}$') assert.ok(settled >= 20, `${settled} key positions settled by the cut`);
  }
  // The work the cut saves at the first key character: the tokens of plain characters from the
  // tables, not a walk of the trie.
  const g = compileJsonSchema({ type: 'object', properties: BRANCHY, patternProperties: { '^.{1,255}$': {} } } as never);
  const cut = new TokenMatcher(g, vocab), whole = new TokenMatcher(g, vocab);
  (whole as unknown as { depthCut: boolean }).depthCut = false;
  const at = (m: TokenMatcher) => { const s = m.automaton.advanceBytes(m.initial, enc.encode('{"k')); m.mask(m.initial); const w = m.stats.nodesVisited; m.mask(s); return m.stats.nodesVisited - w; };
  const wc = at(cut), ww = at(whole);
  assert.ok(wc < 2000 && ww > 20000, `trie nodes walked: ${wc} cut, ${ww} whole`);
});

test('keys matching no pattern take the characters a pattern takes (non-ASCII too, beside a few declared names): a key position is a plain loop, not a walk of the vocabulary', () => {
  // A pattern whose keys hold any character but '_' (or a path of any characters), every other
  // key allowed: were the other keys printable ASCII only, an ASCII letter would lead into both
  // and any other letter into one, and each key position would walk the whole trie.
  for (const [schema, texts2] of [
    [{ patternProperties: { '^[a-zA-Z0-9\\W]*$': { type: 'object' } }, required: ['Vanilla'] }, ['{"Vanilla":{},"dark_mode":1,"\u00e9t\u00e9_2":[true],"caf\u00e9":{}}']],
    [{ type: 'object', patternProperties: { '^(/[^/]+)+$': { type: 'integer' } } }, ['{"/a/b":1,"/\u00fcber":2,"x_\u00e9":"any","/a//b":[1]}']],
  ] as const) {
    const g = compileJsonSchema(schema as never);
    const m = new TokenMatcher(g, vocab);
    for (const text of texts2) {
      // (Every key of the text is valid: matching keys get the pattern's schema, the others any value.)
      const bytes = enc.encode(text);
      let s = m.initial;
      for (let i = 0; i < bytes.length; i++) { s = m.automaton.step(s, bytes[i]); assert.ok(s !== DEAD, `${text.slice(0, i + 1)}`); }
      assert.ok(m.automaton.accepting(s), text);
      // Masks inside and at the start of keys: few trie nodes walked, and equal to a brute-force check.
      for (const cut of ['{"', '{"Van', '{"/a', '{"x_\u00e9']) {
        if (!text.startsWith(cut.slice(0, 3)) && cut !== '{"') continue;
        const k = m.automaton.advanceBytes(m.initial, enc.encode(cut));
        if (k === DEAD) continue;
        const w = m.stats.nodesVisited;
        m.mask(k);
        assert.ok(m.stats.nodesVisited - w < 2000, `${m.stats.nodesVisited - w} trie nodes walked at ${cut}`);
        assertMaskBrute(m, vocab, k, `${JSON.stringify(schema)} at ${cut}`);
      }
    }
  }
});

test('the rules by their alternatives\' starts name the undeclared keys\' trie rules as the map of their names\' rules does, once per grammar', () => {
  // Objects of several shapes (tries of their own, shared tails).
  const objs = Array.from({ length: 12 }, (_, i) => ({ type: 'object', properties: Object.fromEntries(Array.from({ length: 3 + i }, (_, j) => [`name${i}_${j}`, { type: 'integer' }])) }));
  let total = 0;
  for (const schema of [style, jobs, { type: 'object', properties: { a: { anyOf: objs }, b: { type: 'array', items: objs[3] } } }]) {
    const g = compileJsonSchema(schema as never);
    const m = new TokenMatcher(g, vocab);
    const A = m.automaton as unknown as { freeKeyFrame(positions: number[]): boolean };
    // The reference: every alternative of a rule so named, by the names.
    const want = new Map<number, number>();
    g.names.forEach((n, r) => {
      if (n !== FREE_KEY_NODE && !(n.startsWith(FREE_KEY_NODE + '-') && /^\d+$/.test(n.slice(FREE_KEY_NODE.length + 1)))) return;
      for (const a of g.alts(r)) want.set(a, r);
    });
    assert.ok(want.size > 0, 'alternatives of undeclared keys\' tries');
    total += want.size;
    // (Lazy rules not built yet have no positions: ruleStarts leaves them out, and none is a trie rule.)
    const lazy = new Set<number>();
    for (let r = 0; r < g.names.length; r++) if (g.ruleAlts[r] === PENDING) lazy.add(r);
    const { at } = ruleStarts(g);
    const got = new Map<number, number>();
    // Every alternative start of a named rule, asked one by one (as freeKeyFrame does).
    for (let r = 0; r < g.names.length; r++) for (const a of g.alts(r)) {
      if (lazy.has(r)) { assert.ok(!want.has(a) && (a >= at.length || at[a] === 0), `lazy rule ${g.names[r]}`); continue; }
      assert.equal(at[a], r + 1, `rule of position ${a}`);
      // A frame of one alternative of a trie rule is a free-key frame only when its class covers every plain character; its rule is found either way.
      if (want.has(a)) got.set(a, r);
    }
    assert.deepEqual(got, want);
    // freeKeyFrame agrees with the names: a trie rule's alternatives together, and none of another rule.
    const byRule = new Map<number, number[]>();
    for (const [a, r] of want) { const l = byRule.get(r); if (l) l.push(a); else byRule.set(r, [a]); }
    let frames = 0;
    for (const [, list] of byRule) if (A.freeKeyFrame([...list].filter((a) => g.prog[a] < -1))) frames++;
    assert.ok(frames > 0, 'trie rules recognised as free-key frames');
    for (let r = 0; r < g.names.length; r++) if (!byRule.has(r) && g.alts(r).length > 0) assert.equal(A.freeKeyFrame([...g.alts(r)]), false, g.names[r]);
    assert.equal(ruleStarts(g), ruleStarts(g));
  }
  assert.ok(total > 50, `${total} alternatives of undeclared keys' tries`);
});

test('a search in grammar form (an alternation too large for its automaton) is settled by the `.*` frame every plain character leads back to: masks equal the matcher\'s without that shortcut and a brute-force check', () => {
  // 400 names: the search automaton would exceed its state bound, so the pattern stays a grammar
  // (`.*` then the names' alternatives): a state per position holds hundreds of stacks. Beside it,
  // keys of a pattern whose frames cover every plain character but do not lead back to themselves
  // (after a non-ASCII character a second '/' is refused), and strings of at most 3 characters
  // beside those beginning with x (the first frame covers every plain character, and each leads
  // on to a frame of one character less): there the shortcut must not hold.
  const names = Array.from({ length: 400 }, (_, i) => `${['us', 'eu', 'ap', 'sa'][i % 4]}${['e', 'w', 'n', 's'][(i >> 2) % 4]}${1 + (i >> 4) % 5}-${['az', 'lz', 'wl'][i % 3]}${i % 7}`);
  const schema = {
    type: 'object',
    properties: {
      zones: { type: 'array', items: { type: 'string', pattern: `(${names.join('|')})` } },
      vars: { type: 'object', patternProperties: { '^(/[^/]+)+$': { type: 'string' } } },
      short: { type: 'array', items: { anyOf: [{ type: 'string', maxLength: 3 }, { type: 'string', pattern: '^x' }] } },
    },
  };
  const g = compileJsonSchema(schema as never);
  const on = new TokenMatcher(g, vocab), off = new TokenMatcher(g, vocab);
  (off as unknown as { framesLoop: boolean }).framesLoop = false;
  const closureF = (m: TokenMatcher, s: number) => (m as unknown as { closureF(s: number): number }).closureF(s);
  let held = 0, most = 0;
  for (const text of [`{"zones":["${names[17]}","x-\u00e9y ${names[200]}","${names[399]} and more","a ${names[64].slice(0, 6)}é${names[1]}"],"vars":{"/a/b\u00e9":"v","/\u00e9x/y":"w"},"short":["ab","xyzzy",""]}`]) {
    const bytes = enc.encode(text);
    let a = on.initial, b = off.initial;
    for (let i = 0; i <= bytes.length; i++) {
      if (i > 0) { a = on.automaton.step(a, bytes[i - 1]); b = off.automaton.step(b, bytes[i - 1]); }
      const what = JSON.stringify(new TextDecoder().decode(bytes.subarray(0, i)));
      assert.ok(a !== DEAD && b !== DEAD, what);
      most = Math.max(most, on.automaton.stateNodes[a].length);
      assert.deepEqual(on.mask(a), off.mask(b), `mask at ${what}`);
      assert.deepEqual(on.mask(a, 3), off.mask(b, 3), `mask at ${what}, budget 3`);
      const ca = closureF(on, a), cb = closureF(off, b);
      // (Under a budget of the bound itself the cached mask is taken: every token it allows must complete within it.)
      if (ca >= 0 && cb < 0) { held++; if (held % 5 === 1) { assertMaskBrute(on, vocab, a, what); assertMaskBrute(on, vocab, a, `${what}, budget ${ca}`, ca); assertPlainBound(on, a, ca, what); } }
      else if (i % 3 === 0 || ca >= 0 !== cb >= 0) assertMaskBrute(on, vocab, a, what);
      // The bound is at least the whole closure's (cut at the longest token: see closureF).
      if (ca >= 0 && cb >= 0) assert.ok(ca >= cb, `bound ${ca} < ${cb} at ${what}`);
    }
  }
  assert.ok(most > 100, `${most} stacks at most: the search is in grammar form`);
  assert.ok(held >= 10, `${held} positions settled by the frame`);
  // The work it saves inside the searched string: the plain tables, not a walk of the trie.
  const at = (m: TokenMatcher) => { const s = m.automaton.advanceBytes(m.initial, enc.encode('{"zones":["eu')); const w = m.stats.nodesVisited; m.mask(s); return m.stats.nodesVisited - w; };
  const g2 = compileJsonSchema(schema as never);
  const on2 = new TokenMatcher(g2, vocab), off2 = new TokenMatcher(g2, vocab);
  (off2 as unknown as { framesLoop: boolean }).framesLoop = false;
  const wOn = at(on2), wOff = at(off2);
  assert.ok(wOn < 5000 && wOff > 20000, `trie nodes walked: ${wOn} with the frame, ${wOff} without`);
});

/** Whether closureF's bound at s holds: every token of plain characters (no quote, backslash or control byte) allowed from s completes within it. */
function assertPlainBound(m: TokenMatcher, s: number, bound: number, what: string): void {
  for (let id = 0; id < vocab.size; id++) {
    const b = vocab.bytes[id];
    if (b === null || b.length === 0 || b.some((x) => x < 0x20 || x === 0x22 || x === 0x5c)) continue;
    const t = m.automaton.advanceBytes(s, b);
    if (t >= 0) assert.ok(m.automaton.minComplete(t) <= bound, `${what}: token ${id} ${JSON.stringify(vocab.text([id]))} completes in ${m.automaton.minComplete(t)} > bound ${bound}`);
  }
}

test('key positions of required names in any order beside an unanchored pattern key: the pattern\'s frames, rooted at a halt of their own, settle the closure once for every position — masks equal the matcher\'s without that shortcut and a brute-force check, with far fewer states', () => {
  const names = ['Normal', 'Fighting', 'Flying', 'Poison', 'Ground', 'Rock', 'Bug', 'Ghost', 'Steel', 'Fire', 'Water', 'Grass'];
  // Beside it, a key pattern whose frames cover every plain character and refuse "//": there the halted frames' closure fails.
  const other = { type: 'object', patternProperties: { '^(/?[^/])*$': { type: 'number' } }, required: ['alpha', 'beta'], additionalProperties: false };
  for (const [schema, text0] of [[other, '{"beta":1,"/x/y\u00e9":2,"alpha":3,"":4}'], [{ type: 'object', patternProperties: { [names.join('|')]: { type: 'number' } }, required: names, additionalProperties: false }, null]] as const) {
  const g = compileJsonSchema(schema as never);
  const on = new TokenMatcher(g, vocab), off = new TokenMatcher(g, vocab);
  (off as unknown as { framesLoop: boolean }).framesLoop = false;
  // The names in another order, with keys that hold a name among them (the pattern's).
  const text = text0 ?? `{${[...names].reverse().map((n, i) => `"${n}":${i}${i % 3 === 0 ? `,"x\u00e9 ${n}${i % 2 ? 's' : ''}":${i}` : ''}`).join(',')}}`;
  const bytes = enc.encode(text);
  let a = on.initial, b = off.initial, keys = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i > 0) { a = on.automaton.step(a, bytes[i - 1]); b = off.automaton.step(b, bytes[i - 1]); }
    const what = JSON.stringify(text.slice(0, i));
    assert.ok(a !== DEAD && b !== DEAD, what);
    assert.deepEqual(on.mask(a), off.mask(b), `mask at ${what}`);
    assert.deepEqual(on.mask(a, 5), off.mask(b, 5), `mask at ${what}, budget 5`);
    // At each key's first character, and inside some keys: brute force too, under a budget of the mask's bound as well.
    if (i > 0 && (bytes[i - 1] === 0x22 && bytes[i - 2] !== 0x3a) || i % 11 === 0) {
      keys++;
      assertMaskBrute(on, vocab, a, what);
      const c = (on as unknown as { closureF(s: number): number }).closureF(a);
      if (c >= 0) { assertMaskBrute(on, vocab, a, `${what}, budget ${c}`, c); assertPlainBound(on, a, c, what); }
    }
  }
  if (text0 !== null) continue;
  assert.ok(keys >= names.length, `${keys} positions checked by brute force`);
  // The states the masks at the keys' starts build (fresh matchers: the bytes between are stepped, not masked).
  const built = (frames: boolean) => {
    const m = new TokenMatcher(compileJsonSchema(schema as never), vocab);
    (m as unknown as { framesLoop: boolean }).framesLoop = frames;
    let s = m.initial, n = 0;
    for (let i = 0; i < bytes.length; i++) {
      s = m.automaton.step(s, bytes[i]);
      if (bytes[i] === 0x22 && (bytes[i - 1] === 0x7b || bytes[i - 1] === 0x2c)) { const k = m.automaton.states; m.mask(s); n += m.automaton.states - k; }
    }
    return n;
  };
  const withFrames = built(true), without = built(false);
  assert.ok(withFrames * 3 < without, `states built by the key masks: ${withFrames} with the halted frames, ${without} without`);
  }
});

test('free regions below a loop with a few exception bytes (`[^,:&\\s]+` beside `\\s*`, a search), and below levels that single out special characters: masks equal the matcher\'s without them and a brute-force check, with far fewer nodes walked', () => {
  // o68280's pattern of the corpus (a string of "key: value" pairs): inside a key the level loops
  // on every character but the space (→ \s*), ',' '&' (refused) and ':' (→ the value), and \s
  // singles out the special white space (U+00A0, U+3000, …) of LLaMA-2's tokens. Beside it, a
  // plain exception loop, a search, and the same pattern as a key (the walk from the object's
  // state reaches the loop below a quote: special characters are then left to the region's own
  // tokens, not to a pass from the mask's state).
  const kv = '^(\\s*|((\\s*[^,:&\\s]+\\s*:[^,:&]*)(,\\s*[^,:&\\s]+\\s*:[^,:&]*)*))$';
  const schema = {
    type: 'object',
    properties: {
      mkv: { type: 'string', pattern: kv },
      plain: { type: 'array', items: { type: 'string', pattern: '^[^,:&]*$' } },
      search: { type: 'string', pattern: 'needle[0-9]' },
      keys: { type: 'object', patternProperties: { [kv]: { type: 'integer' } }, additionalProperties: false },
      // The string's first state allows ':' alone (not a level of mode F), and after it the loop
      // singles out special white space: LLaMA-2's token of ':' and U+00A0 is refused there.
      colon: { type: 'string', pattern: '^:[^,\\s]*$' },
    },
  };
  const g = compileJsonSchema(schema as never);
  const on = new TokenMatcher(g, vocab), off = new TokenMatcher(g, vocab);
  off.loopsWithExceptions = false;
  const text = '{"mkv":"color:blue, length\u3000: 350,size:a\u00a0b","plain":["a b c","x\u3000y z"],"search":"hay needle needle7 hay","keys":{"a:b":1,"k\u00a0: v, w:x":2},"colon":":ab:c"}';
  const bytes = enc.encode(text);
  let wOn = 0, wOff = 0;
  // Twice: the second time with the masks forgotten and every level known (smaller subtrees then
  // qualify as regions: ':' and its few tokens below the string's first state).
  for (const pass of [1, 2]) {
    let a = on.initial, b = off.initial;
    if (pass === 2) for (const m of [on, off]) (m as unknown as { cache: Map<number, unknown> }).cache.clear();
    for (let i = 0; i <= bytes.length; i++) {
      if (i > 0) { a = on.automaton.step(a, bytes[i - 1]); b = off.automaton.step(b, bytes[i - 1]); }
      const what = `${JSON.stringify(new TextDecoder().decode(bytes.subarray(0, i)))} (pass ${pass})`;
      assert.ok(a !== DEAD && b !== DEAD, what);
      const n0 = on.stats.nodesVisited, n1 = off.stats.nodesVisited;
      assert.deepEqual(on.mask(a), off.mask(b), `mask at ${what}`);
      if (pass === 1) { wOn += on.stats.nodesVisited - n0; wOff += off.stats.nodesVisited - n1; }
      if (i % 2 === pass - 1) assertMaskBrute(on, vocab, a, what);
    }
  }
  assert.ok(wOn * 3 < wOff, `trie nodes walked: ${wOn} with the regions, ${wOff} without`);
});
