// A state of many parses walks its top (ByteAutomaton.top, TokenMatcher.walk): each stack cut
// short over a halt of its own where the bytes needed to leave its frames pass a few, and s's own
// states below a trie node where a return reaches that halt. On the real LLaMA-2 32K vocabulary,
// states of hundreds of stacks (an anyOf of object shapes keeps one parse open per shape and per
// set of members seen) have masks equal to a matcher that walks the states themselves and to a
// brute-force check, with and without a token budget, while far fewer stacks are built.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { HFTokenizer } from '../../src/tokenizers/hf.js';
import { TokenVocab, TokenMatcher, ByteAutomaton, DEAD, compileJsonSchema } from '../../src/structured/index.js';
import { llama2Json } from '../tokenizers/real_vocabs.js';
import { assertMaskBrute } from './suite_util.js';

const enc = new TextEncoder();
let vocab: TokenVocab;

before(async () => {
  vocab = TokenVocab.fromTokenizer(new HFTokenizer(await llama2Json()));
});

// Jobs of several shapes with members in any order: inside a docker image, a step or a value,
// the same frames sit on top of one parse per shape and per set of members seen.
const job = {
  anyOf: Array.from({ length: 8 }, (_, i) => ({
    type: 'object',
    properties: {
      [`executor${i}`]: { type: 'string' },
      docker: { type: 'array', items: { type: 'object', properties: { image: { type: 'string' }, name: { type: 'string' }, user: {} } } },
      steps: { type: 'array', items: { anyOf: [{ enum: ['checkout'] }, { type: 'object', properties: { run: { type: 'string' }, when: {} } }] } },
      parallelism: { type: 'integer' },
      environment: { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean'] } },
    },
  })),
};
// Configs of several shapes around the jobs: one parse per config shape times one per job shape.
const config = {
  anyOf: Array.from({ length: 6 }, (_, i) => ({
    type: 'object',
    properties: { version: { type: 'number' }, [`orb${i}`]: { type: 'string' }, jobs: { type: 'object', additionalProperties: job } },
  })),
};
const texts = [
  '{"version":2.1,"jobs":{"build":{"docker":[{"image":"cimg/node:20","name":"db"}],"steps":["checkout",{"run":"npm ci"}]}}}',
  '{"jobs":{"test":{"parallelism":4,"environment":{"A":1,"B":"x"},"docker":[{"user":[1,{"a":null}],"image":"x"}],"steps":[{"when":true}]}}}',
];

for (const cut of [undefined, 0]) test(`states of many parses walk their tops${cut === undefined ? '' : ' cut after the top frame'}: masks equal the walk of the states themselves and a brute-force check, with budgets${cut === undefined ? ', on far fewer stacks' : ''}`, () => {
  const g = compileJsonSchema(config as never);
  const ta = new ByteAutomaton(g), fa = new ByteAutomaton(g);
  // (Cut after the top frame, a return through the halt is as near as the end of a string: `",`.)
  if (cut !== undefined) ta.topBytes = cut;
  const mt = new TokenMatcher(ta, vocab), mf = new TokenMatcher(fa, vocab);
  mf.topStates = false;
  let topped = 0, compared = 0, brute = 0, most = 0, returns = 0, returning = 0;
  // Stacks of the states the masks built (with tops, without).
  const inMasks = [0, 0];
  for (const text of texts) {
    const bytes = enc.encode(text);
    let a = ta.initial, b = fa.initial;
    for (let i = 0; i <= bytes.length; i++) {
      if (i > 0) { a = ta.step(a, bytes[i - 1]); b = fa.step(b, bytes[i - 1]); }
      const what = JSON.stringify(text.slice(0, i));
      assert.ok(a !== DEAD && b !== DEAD, `dead at ${what}`);
      // (Node numbers differ: the tops' chains are nodes too.)
      assert.equal(ta.stateNodes[a].length, fa.stateNodes[b].length, `stacks at ${what}`);
      const na = ta.stateNodes.length, nb = fa.stateNodes.length;
      assert.deepEqual(mt.mask(a), mf.mask(b), `mask at ${what}`);
      for (let k = na; k < ta.stateNodes.length; k++) inMasks[0] += ta.stateNodes[k].length;
      for (let k = nb; k < fa.stateNodes.length; k++) inMasks[1] += fa.stateNodes[k].length;
      compared++;
      most = Math.max(most, ta.stateNodes[a].length);
      const top = ta.top(a);
      if (top === null) continue;
      topped++;
      if (mt.stats.topReturns! > returns) { returns = mt.stats.topReturns!; returning++; assertMaskBrute(mt, vocab, a, `${what} (returns)`); }
      assert.ok(ta.stateNodes[top.state].length * 4 <= ta.stateNodes[a].length, `a top of ${ta.stateNodes[top.state].length} stacks for ${ta.stateNodes[a].length} at ${what}`);
      // Every few topped states, every token by the automaton, and under budgets around the
      // shortest completion (a bound below the true one would serve the unbudgeted mask).
      if (topped % 4 === 1) {
        const mc = ta.minComplete(a);
        for (const budget of [Infinity, mc, mc + 1, mc + 3, mc + 8]) assertMaskBrute(mt, vocab, a, `${what} budget ${budget}`, budget);
        brute++;
      }
    }
  }
  const stacks = (x: ByteAutomaton) => x.stateNodes.reduce((n, s) => n + s.length, 0);
  console.log(`# ${compared} states compared (at most ${most} stacks), ${topped} topped (${mt.stats.topWalks} walks of a top), ${returning} with returns through a top's halt (${returns} subtrees), every one and ${brute} others checked by brute force; stacks in states built ${stacks(ta)} (tops; brute-force checks among them) and ${stacks(fa)} (the states themselves), expanded ${ta.expansions} and ${fa.expansions}; by the masks ${inMasks[0]} and ${inMasks[1]}`);
  assert.ok(most >= 200, `states of ${most} stacks at most`);
  assert.ok(topped >= 20 && brute >= 5, `${topped} states topped`);
  assert.ok(returning >= (cut === undefined ? 5 : 50), `${returning} masks walked on from the state itself`);
  if (cut === undefined) assert.ok(inMasks[0] * 2 < inMasks[1], `stacks the masks built: ${inMasks[0]} with tops, ${inMasks[1]} without`);
});

test('a return through a top\'s halt walks on from the state itself: tokens that close the member and go on are decided by the whole stack', () => {
  const g = compileJsonSchema(config as never);
  const a = new ByteAutomaton(g);
  const m = new TokenMatcher(a, vocab);
  // After `"image":"x"`, in the docker item: a top whose frames end within a few bytes, so that
  // tokens such as `"},` and `"}]` return through its halt into frames that differ by parse.
  const text = '{"jobs":{"b":{"docker":[{"image":"x';
  const s = a.advanceBytes(a.initial, enc.encode(text));
  assert.ok(s >= 0 && a.top(s) !== null, `a top at ${text}`);
  assertMaskBrute(m, vocab, s, text);
  const mask = m.mask(s);
  const allowed = (t: string) => { const id = vocab.bytes.findIndex((x) => x !== null && x.length === t.length && enc.encode(t).every((c, k) => x[k] === c)); assert.ok(id >= 0, t); return (mask[id >>> 5] & (1 << (id & 31))) !== 0; };
  // (Tokens the vocabulary holds: the quote closing the image, the item, then the docker list.)
  for (const t of ['"', '",', '"}', '"},']) assert.ok(allowed(t), t);
});
