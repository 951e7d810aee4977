// ByteAutomaton's transitions from states of more than 31 stacks (anyOf / oneOf over object
// branches): byte classes that select the same stacks share one successor, keyed by the byte
// classes of the stacks' tops. Checked against the same automaton without that key (every
// transition expanded anew: the construction before it) stack by stack, and end to end against ajv.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileJsonSchema, ByteAutomaton, DEAD } from '../../src/structured/index.js';
import type { JsonSchema } from '../../src/structured/index.js';
import { ajvValidator } from '../../src/structured/fuzz.js';

const enc = new TextEncoder();

/** A state's stacks as text (grammar positions from the top down), sorted: comparable across automata. */
function stacks(A: ByteAutomaton, s: number): string[] {
  const a = A as unknown as { nodePos: { a: Int32Array }; nodePar: { a: Int32Array } };
  return [...A.stateNodes[s]].map((n) => {
    const out: number[] = [];
    for (let x = n; x > 0; x = a.nodePar.a[x]) out.push(a.nodePos.a[x]);
    return out.join('/');
  }).sort();
}

// 40 object branches, each with its own names and a shared one: a key position holds stacks of
// every branch (more than 31), over a few byte classes.
const branches = Array.from({ length: 40 }, (_, i) => ({
  type: 'object', properties: { [`k${i}`]: { type: 'string' }, shared: { type: 'integer' }, [`n${i % 7}x`]: { enum: ['a', 'b'] } },
  // Half of them take other keys too (integers): their free keys accept most bytes alike.
  required: [`k${i}`], additionalProperties: i % 2 ? { type: 'integer' } : false,
}));
const SCHEMA = { anyOf: branches } as JsonSchema;

test('states of more than 31 stacks: successors shared by top classes are the ones expanded anew', () => {
  const g = compileJsonSchema(SCHEMA);
  const A = new ByteAutomaton(g), B = new ByteAutomaton(g);
  // B: no key past 31 stacks, every transition expanded (the reference).
  (B as unknown as { topClasses: () => null }).topClasses = () => null;
  // States reached by these prefixes, and every byte from each (and one byte further).
  const prefixes = ['{"', '{"k', '{"n', '{"s', '{"shared":1,"', '{"shared":1,"k', '{"shared":1,"n', '{"k1', '{"k17":"x","', '{"k3":"y","n3x":"a","'];
  let large = 0, compared = 0;
  for (const p of prefixes) {
    const sa = A.advanceBytes(A.initial, enc.encode(p)), sb = B.advanceBytes(B.initial, enc.encode(p));
    assert.ok(sa !== DEAD && sb !== DEAD, p);
    assert.deepEqual(stacks(A, sa), stacks(B, sb), p);
    if (A.stateNodes[sa].length > 31) large++;
    for (let b = 0; b < 256; b++) {
      const ta = A.step(sa, b), tb = B.step(sb, b);
      assert.equal(ta === DEAD, tb === DEAD, `${p} + byte ${b}`);
      if (ta === DEAD) continue;
      assert.deepEqual(stacks(A, ta), stacks(B, tb), `${p} + byte ${b}`);
      assert.equal(A.accepting(ta), B.accepting(tb));
      compared++;
    }
  }
  assert.ok(large >= 4, `${large} states of more than 31 stacks`);
  assert.ok(compared >= 40, `${compared} live transitions compared`);
  // The shared successors expand far fewer stacks.
  assert.ok(A.expansions * 2 < B.expansions, `stacks expanded: ${A.expansions} with the key, ${B.expansions} without`);
});

test('anyOf over 40 object branches: acceptance equals ajv on valid and invalid instances', () => {
  const A = new ByteAutomaton(compileJsonSchema(SCHEMA));
  const valid = ajvValidator()(SCHEMA);
  const instances: unknown[] = [
    { k0: 'x' }, { k17: 'x', shared: 1 }, { shared: 2, k39: '' }, { k3: 'y', n3x: 'a' }, { n3x: 'b', k10: 'z', shared: 0 },
    { k17: 'x', other: 3 }, { k17: 'x', other: 'y' }, { k18: 'x', other: 3 },
    { k17: 1 }, { k17: 'x', k18: 'y' }, { shared: 1 }, { k3: 'y', n4x: 'a' }, { k3: 'y', n3x: 'c' }, { k40: 'x' }, {}, { k5: 'x', shared: 1.5 },
  ];
  let accepted = 0, rejected = 0;
  for (const v of instances) {
    const s = A.advanceBytes(A.initial, enc.encode(JSON.stringify(v)));
    const got = s !== DEAD && A.accepting(s);
    assert.equal(got, valid(v), JSON.stringify(v));
    if (got) accepted++; else rejected++;
  }
  assert.ok(accepted >= 5 && rejected >= 7);
});

test('key positions beside a free JSON value\'s keys (anyOf of object branches): settled without a state per name prefix, masks equal a brute-force check', async () => {
  const { HFTokenizer } = await import('../../src/tokenizers/hf.js');
  const { llama2Json } = await import('../tokenizers/real_vocabs.js');
  const { TokenVocab, TokenMatcher } = await import('../../src/structured/index.js');
  const { assertMaskBrute } = await import('./suite_util.js');
  const vocab = TokenVocab.fromTokenizer(new HFTokenizer(await llama2Json()));
  const meta = { type: 'object', additionalProperties: {} };
  const names = ['name', 'version', 'capabilities', 'instructions', 'protocolVersion', 'serverInfo', 'nextCursor', 'resources', 'prompts', 'tools'];
  // Like MCP's ServerResult: a result of any members beside results of declared ones.
  const schema = {
    anyOf: [
      { type: 'object', properties: { _meta: meta }, additionalProperties: {} },
      ...names.map((n, i) => ({ type: 'object', properties: { _meta: meta, [n]: { type: 'string' }, [names[(i + 3) % names.length]]: { type: 'object', properties: { listChanged: { type: 'boolean' } } } }, required: [n] })),
    ],
  } as JsonSchema;
  const m = new TokenMatcher(compileJsonSchema(schema), vocab);
  const A = m.automaton;
  let settled = 0;
  for (const p of ['{"', '{"_meta":{},"', '{"name":"x","', '{"tools":{"', '{"name":"x","capabilities":{"', '{"x":1,"']) {
    const s = A.advanceBytes(A.initial, enc.encode(p));
    assert.ok(s !== DEAD, p);
    const before = A.states;
    m.mask(s);
    // The walk of the closure would build a state per prefix of every name (over 60 here).
    if (A.states - before < 20) settled++;
    assertMaskBrute(m, vocab, s, p);
    assertMaskBrute(m, vocab, s, `${p}, budget 4`, 4);
  }
  assert.ok(settled >= 4, `${settled} key positions settled with few states`);
});
