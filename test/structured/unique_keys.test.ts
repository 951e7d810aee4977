// No key twice in one object when generating JSON (keys.ts): the output read as JSON, and the
// tokens that would repeat a key (or leave only written keys to write) taken out of each mask.
// Checked against a second reading of the text (fuzz.ts hasDuplicateKeys: JSON.parse decodes each
// key) over every token the grammar allows, and by a driver that tries hard to write a key again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileJsonSchema, TokenMatcher, ConstraintProcessor, DEAD, StructuredError } from '../../src/structured/index.js';
import type { JsonSchema, SchemaOptions } from '../../src/structured/index.js';
import { KeyScan } from '../../src/structured/keys.js';
import { hasDuplicateKeys } from '../../src/structured/fuzz.js';
import { ajvValid } from './suite_util.js';
import { llama2Setup } from './llama2_setup.js';

const L = llama2Setup();

const enc = new TextEncoder();

function processor(schema: JsonSchema, uniqueKeys: boolean, opts: SchemaOptions = { additionalProperties: 'declared' }): ConstraintProcessor {
  return new ConstraintProcessor(new TokenMatcher(compileJsonSchema(schema, opts), L.vocab), { uniqueKeys });
}

/** The ids the processor allows after `text` (which the grammar must allow), and the grammar's own. */
function allowedAfter(p: ConstraintProcessor, text: string): { allowed: Set<number>; grammar: number[]; text: string } {
  const ids = [1];
  p.begin(ids, 1000);
  ids.push(...L.tok.encode(text));
  const logits = new Float32Array(L.vocab.size);
  p.process(ids, logits);
  const allowed = new Set<number>();
  for (let i = 0; i < logits.length; i++) if (logits[i] !== -Infinity) allowed.add(i);
  // (The tokenizer puts a space first.)
  const out = L.vocab.text(ids.slice(1));
  const m = p.matcher, state = m.automaton.advanceBytes(m.initial, enc.encode(out));
  assert.notEqual(state, DEAD, out);
  return { allowed, grammar: TokenMatcher.ids(m.mask(state)), text: out };
}

test('KeyScan: keys compared decoded (escapes, surrogate pairs, raw UTF-8), per object, arrays and strings apart', () => {
  const repeats = (t: string) => { const s = new KeyScan(); for (const b of enc.encode(t)) if (!s.push(b, false)) return true; return false; };
  for (const t of ['{"a":1,"a"', '{"a":1,"\\u0061"', '{"名":1,"\\u540d"', '{"😀":0,"\\ud83d\\ude00"', '{"\\ud83d\\ude00":0,"😀"', '{"a\\nb":1,"a\\u000ab"', '{"\\"":1,"\\u0022"', '{"\\/":1,"/"',
    '{"x":{"a":1},"y":[{"b":2,"c":3}],"x"', '{"a":"\\"a\\"","a"']) {
    assert.equal(repeats(t), true, t);
    assert.equal(hasDuplicateKeys(t), true, t);
  }
  for (const t of ['{"a":{"a":{"a":1}}}', '{"a":["a","a"],"b":"a"}', '{"a":1,"A":2,"a ":3,"\\u0061b":4}', '[{"a":1},{"a":1}]', '{"\\ud83d":1,"\\ud83d\\ude00":2,"\\ude00":3}', '{"a":"\\\\","b":"\\u0022"}']) {
    assert.equal(repeats(t), false, t);
    assert.equal(hasDuplicateKeys(t), false, t);
  }
});

test('the tokens taken out are exactly those that write a key again, where keys cannot run out (LLaMA-2 32K, every token)', () => {
  // Extra keys of any value (additionalProperties), of a type (a schema), keys of a pattern (any code point).
  const cases: Array<[JsonSchema, string[]]> = [
    [{ type: 'object', additionalProperties: true, minProperties: 3 }, ['{"a":1,', '{"a":1,"', '{"ab":1,"a', '{"ab":1,"a":2,"a', '{"x":{"a":1,"b":2},"b":[],"', '{"x":{"a":1,"b":2,"', '{"a":"x",', '{"a":"x"']],
    [{ type: 'object', properties: { a: { type: 'integer' } }, additionalProperties: { type: 'integer' } }, ['{"a":1,"', '{"a":1,"b":2,"', '{"a":1,"b":2', '{"a":1,"bb":2,"b', '{"a":1,"b":2,"b']],
    [{ type: 'object', patternProperties: { '^k': { type: 'integer' } }, additionalProperties: false }, ['{"k":1,"', '{"k":1,"k', '{"k1":1,"k":2,"k', '{"k名":1,"k']],
  ];
  for (const [schema, prefixes] of cases) {
    const p = processor(schema, true);
    let removed = 0;
    for (const text of prefixes) {
      const { allowed, grammar, text: out } = allowedAfter(p, text);
      for (const id of grammar) {
        const bad = hasDuplicateKeys(out + new TextDecoder().decode(L.vocab.bytes[id]!));
        assert.equal(allowed.has(id), !bad, `${JSON.stringify(text)} + ${JSON.stringify(L.tok.decode([id]))}`);
        if (bad) removed++;
      }
    }
    assert.ok(removed > 0, `nothing taken out for ${JSON.stringify(schema)}`);
  }
});

test('a finite key language: the tokens that lead only to written keys are taken out too; used up, generation stops with an error', () => {
  const schema = { type: 'object', propertyNames: { enum: ['ab', 'ac', 'b'] }, additionalProperties: { type: 'integer' }, minProperties: 3 };
  const p = processor(schema, true, { additionalProperties: 'allow' });
  const id = (s: string) => L.vocab.bytes.findIndex((b) => b !== null && new TextDecoder().decode(b) === s);
  // After ab and ac, a key beginning with a can only repeat one: "a" is out, "b" is in.
  const r = allowedAfter(p, '{"ab":1,"ac":1,"');
  assert.ok(r.grammar.includes(id('a')) && !r.allowed.has(id('a')) && r.allowed.has(id('b')));
  // After ab only: a stays (ac is left).
  assert.ok(allowedAfter(p, '{"ab":1,"').allowed.has(id('a')));
  // Every key written and one more member needed: nothing continues.
  const q = processor({ type: 'object', propertyNames: { enum: ['a', 'b'] }, additionalProperties: true, minProperties: 3 }, true, { additionalProperties: 'allow' });
  const ids = [1];
  q.begin(ids, 100);
  ids.push(...L.tok.encode('{"a":1,"b":null'));
  assert.throws(() => q.process(ids, new Float32Array(L.vocab.size)), (e: unknown) => e instanceof StructuredError && /writes a key its object has already/.test((e as Error).message));
});

/**
 * Greedy generation that wants `plan`'s tokens (one after another, skipping any the processor takes
 * out), else the allowed token of least id. The plan writes the same key again and again.
 */
function drive(p: ConstraintProcessor, plan: number[], budget: number): string {
  const ids = [1];
  p.begin(ids, budget);
  for (let k = 0; ids.length - 1 < budget; k++) {
    const logits = new Float32Array(L.vocab.size);
    p.process(ids, logits);
    const want = plan[k];
    const next = want !== undefined && logits[want] !== -Infinity ? want : logits.findIndex((x) => x !== -Infinity);
    if (L.vocab.eosIds.includes(next)) break;
    ids.push(next);
    if (p.isComplete(ids)) break;
  }
  return L.vocab.text(ids.slice(1));
}

test('a driver that writes one key again and again: without the check it does; with it, every output validates and repeats none', () => {
  const schemas: JsonSchema[] = [
    { type: 'object', additionalProperties: { type: 'integer' }, minProperties: 3 },
    { type: 'object', properties: { a: { type: 'integer' } }, additionalProperties: true, minProperties: 4 },
    { type: 'object', properties: { x: { type: 'object', additionalProperties: { type: 'integer' }, minProperties: 2 } }, required: ['x'] },
    { type: 'array', items: { type: 'object', additionalProperties: { type: 'integer' }, minProperties: 2 }, minItems: 2, maxItems: 2 },
  ];
  const plans = ['{"a":1,"a":1,"a":1,"a":1}', '{"a":1,"b":1,"b":1,"b":1}', '{"x":{"a":1,"a":1,"a":1}}', '[{"a":1,"a":1},{"a":1,"a":1}]'];
  schemas.forEach((schema, i) => {
    const plan = L.tok.encode(plans[i]);
    const loose = drive(processor(schema, false), plan, 60);
    assert.ok(hasDuplicateKeys(loose), `the driver did not repeat a key without the check: ${loose}`);
    const text = drive(processor(schema, true), plan, 60);
    const v = JSON.parse(text);
    assert.ok(!hasDuplicateKeys(text) && ajvValid(schema, v), `${text} for ${JSON.stringify(schema)}`);
  });
});

test('generation from a schema checks keys; regex, grammar and choices constraints do not', async () => {
  const { constraintProcessor } = await import('../../src/structured/index.js');
  assert.equal(constraintProcessor({ schema: { type: 'object' } }, L.vocab).opts.uniqueKeys, true);
  assert.equal(constraintProcessor({ schema: { type: 'object' }, schemaOptions: { output: 'yaml' } }, L.vocab).opts.uniqueKeys, false);
  assert.equal(constraintProcessor({ regex: '\\{"a":1,"a":1\\}' }, L.vocab).opts.uniqueKeys, false);
});
