// Verifiable rewards: number parsing and equality against Python's fractions.Fraction
// (scripts/gen_align_fixtures.py), answer extraction, the format rule, code through the sandbox,
// user modules (ESM, CommonJS, batch; throwing, hanging, NaN: contained and reported), weighted
// sums with per-component scores, and the clear errors for bad specs, modules and rows.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  createReward, extractAnswer, extractCode, mathEqual, parseNumber, thinkAnswerFormat,
  RewardInputError, RewardModuleError, RewardSpecError, type RewardContext,
} from '../../src/align/rewards.js';
import { fixture } from '../helpers.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'tslm-rewards-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const mod = (name: string, source: string) => {
  writeFileSync(path.join(tmp, name), source);
  return `./${name}`;
};

const ctx = (completion: string, row: Record<string, unknown> = {}, extra: Partial<RewardContext> = {}): RewardContext =>
  ({ prompt: 'Q: ', completion, row, truncated: false, completionTokens: 10, ...extra });

const ref = fixture<{ values: [string, string | null, string | null][]; pairs: [string, string, boolean][] }>('align/math_values.json');

test('math: parseNumber gives the exact value Python Fraction gives, and rejects what it rejects', () => {
  for (const [text, num, den] of ref.values) {
    const r = parseNumber(text);
    if (num === null) assert.equal(r, null, `'${text}' is not a number for Fraction`);
    else assert.deepEqual(r && [String(r.num), String(r.den)], [num, den], `'${text}'`);
  }
  assert.ok(ref.values.length > 200);
});

test('math: mathEqual agrees with Fraction equality (spellings of one value, near misses, float reprs)', () => {
  for (const [a, b, equal] of ref.pairs) assert.equal(mathEqual(a, b), equal, `'${a}' vs '${b}'`);
  assert.ok(ref.pairs.filter((p) => p[2]).length > 30 && ref.pairs.filter((p) => !p[2]).length > 30);
  // Text answers: trimmed, spaces collapsed, \text{} and $ dropped, case-insensitive.
  assert.ok(mathEqual('\\text{Paris}', ' paris. '));
  assert.ok(mathEqual('$x^2  + 1$', 'X^2 + 1'));
  assert.ok(!mathEqual('Paris', 'Lyon'));
  assert.ok(mathEqual('1\\,000', '1{,}000') && mathEqual('-\\dfrac{6}{8}', '-0.75') && mathEqual('\\(2.50\\)', '5/2'));
  assert.ok(!mathEqual('0.3333333333333333', '1/3') && !mathEqual('1,00', '100'));
});

test('math: extractAnswer: in the answer part, the last \\boxed{} (balanced), else the <answer> content, else the last number', () => {
  const cases: [string, string | null][] = [
    ['so \\boxed{3} or rather \\boxed{\\frac{3}{4}}', '\\frac{3}{4}'],
    ['\\fbox{ 12 } done', '12'],
    ['first \\boxed{7} then \\boxed{\\frac{1}{2} (cut off', '7'],     // the last one is not closed
    ['<answer>41</answer> no, <answer> 42 </answer>', '42'],
    ['<answer>\\boxed{5} km</answer>', '5'],                            // \boxed wins inside the tag
    ['<think>maybe \\boxed{3}</think><answer>4</answer>', '4'],          // drafts in the thinking do not count
    ['<think>x = 3</think> so the total is 12 apples', '12'],
    ['<think>so \\boxed{3}</think>', null],                               // no answer after the thinking
    ['we get 1,000 apples, then -12.5 and 3/4.', '3/4'],
    ['x = -3 at 2024-01-05', '05'],
    ['no digits here', null],
  ];
  for (const [text, want] of cases) assert.equal(extractAnswer(text), want, text);
});

test('math reward: by value against row.answer (string, number, GSM8K ####); a row without answer is an error', async () => {
  const r = await createReward('math');
  assert.equal(r.name, 'math');
  const batch = [
    ctx('... so the answer is \\boxed{\\dfrac{3}{4}}', { answer: 0.75 }),
    ctx('<think>hm</think><answer>$1,000$.</answer>', { answer: 'Natalia sold ... #### 1000' }),
    ctx('it is 2.50', { answer: '5/2' }),
    ctx('\\boxed{\\text{Paris}}', { answer: 'paris' }),
    ctx('\\boxed{4}', { answer: '5' }),
    ctx('nothing', { answer: 1 }),
  ];
  assert.deepEqual(await r.score(batch), [1, 1, 1, 1, 0, 0]);
  assert.deepEqual(await r.scoreDetailed(batch.slice(0, 2)), { total: [1, 1], components: { math: [1, 1] } });
  await assert.rejects(r.score([ctx('1', { answer: 1 }), ctx('1', { solution: 1 })]), (e: Error) =>
    e instanceof RewardInputError && /row 1 has no 'answer'/.test(e.message));
});

test('format: one non-empty think block, then exactly one non-empty answer and nothing after it', async () => {
  const yes = ['<think>a</think><answer>b</answer>', '  <think>\nlet me see\n</think>\n\n<answer> 4 </answer>\n'];
  const no = [
    '<think>a</think>', '<answer>b</answer>', '<think> </think><answer>b</answer>', '<think>a</think><answer> </answer>',
    '<think>a</think><answer>b</answer> and more', 'intro <think>a</think><answer>b</answer>',
    '<think>a</think><think>b</think><answer>c</answer>', '<think>a</think><answer>b</answer><answer>c</answer>',
    '<think>a <answer>x</answer></think><answer>b</answer>', '<think>a</think> text <answer>b</answer>', '<think>a<answer>b</answer>',
  ];
  for (const t of yes) assert.ok(thinkAnswerFormat(t), t);
  for (const t of no) assert.ok(!thinkAnswerFormat(t), t);
  assert.ok(thinkAnswerFormat('<think>a</think> The answer is 4.', false));
  assert.ok(!thinkAnswerFormat('<think>a</think>  ', false));

  const r = await createReward('format');
  assert.deepEqual(await r.score([
    ctx(yes[0]),
    ctx(yes[0], {}, { truncated: true }),                                  // truncated: 0
    ctx('reasoning</think><answer>4</answer>', {}, { prompt: 'Q: 2+2?\n<think>\n' }), // the prompt opened the block
    ctx('reasoning</think><answer>4</answer>'),
    ctx('<think>a</think> 4', { answer_tags: false }),                    // the row says: no answer tags
  ]), [1, 0, 1, 0, 1]);
  const loose = await createReward('format', { answerTags: false });
  assert.deepEqual(await loose.score([ctx('<think>a</think> 4'), ctx('<think>a</think>')]), [1, 0]);
});

test('code: extractCode takes the last js/javascript/plain fence of the answer part, else the answer text', () => {
  assert.equal(extractCode('<think>```js\nbad()\n```</think><answer>```javascript\nf()\n```\n```python\nno\n```</answer>'), 'f()\n');
  assert.equal(extractCode('<think>x</think>\n```\ng()\n```'), 'g()\n');
  assert.equal(extractCode('<answer>function f() {}</answer>'), 'function f() {}');
  assert.equal(extractCode('plain code();'), 'plain code();');
});

test('code reward: fraction of tests passed in the sandbox, or all-or-nothing; rows need tests', async () => {
  const row = { tests: ['add(1, 2) === 3', 'add(2, 2) === 4', 'add(-1, 0) === -1', 'add(0, 0) === 0'], entry_point: 'add' };
  const batch = [
    ctx('<think>easy</think><answer>```js\nfunction add(a, b) { return a + b }\n```</answer>', row),
    ctx('```js\nfunction add(a, b) { return a * b }\n```', row),           // passes 2 of 4
    ctx('```js\nwhile (true) {}\n```', row),
    ctx('```js\nfunction plus(a, b) { return a + b }\n```', row),          // wrong entry point
    ctx('```js\nconst add = (a, b) => a + b\n```', { tests: 'assert(add(2, 2) === 4); assert(add(1, 1) === 2, "1+1")' }),
  ];
  const r = await createReward('code', { codeTimeoutMs: 500 });
  const all = await createReward('code', { codeTimeoutMs: 500, codeAll: true, codeProcesses: 1 });
  try {
    assert.deepEqual(await r.score(batch), [1, 0.5, 0, 0, 1]);
    assert.deepEqual(await all.score(batch.slice(0, 2)), [1, 0]);
    await assert.rejects(r.score([ctx('x', { tests: [] })]), /row 0 needs 'tests'/);
    await assert.rejects(r.score([ctx('x', { tests: ['true'], entry_point: 'a b' })]), /'entry_point' that is not a function name/);
  } finally {
    await r.close?.();
    await all.close?.();
  }
});

test('module reward: ES default, named reward, CommonJS, async and batch functions', async () => {
  const specs = [
    mod('esm.mjs', 'export default (ctx) => ctx.completion.length;'),
    mod('named.mjs', 'export const reward = async (ctx) => (ctx.row.answer === ctx.completion ? 1 : 0);'),
    mod('cjs.cjs', 'module.exports = function (ctx) { return ctx.completionTokens / 10 };'),
    mod('cjsobj.cjs', 'module.exports = { reward: (ctx) => (ctx.truncated ? -1 : 2) };'),
    mod('batch.mjs', 'export function rewardBatch(ctxs) { return ctxs.map((c, i) => i * 10) }'),
  ];
  const batch = [ctx('ab', { answer: 'ab' }), ctx('abc', { answer: 'x' }, { truncated: true, completionTokens: 5 })];
  const want = [[2, 3], [1, 0], [1, 0.5], [2, -1], [0, 10]];
  for (const [k, spec] of specs.entries()) {
    const r = await createReward(spec, { cwd: tmp });
    try {
      assert.equal(r.name, path.basename(spec));
      assert.deepEqual(await r.score(batch), want[k], spec);
    } finally {
      await r.close?.();
    }
  }
});

test('module reward: a call that throws, hangs (sync or async) or returns NaN/non-numbers scores 0, is reported once per kind, and scoring goes on', async () => {
  const spec = mod('wild.mjs', `export default function (ctx) {
    switch (ctx.completion) {
      case 'throw': throw new Error('boom');
      case 'spin': for (;;) {}
      case 'never': return new Promise(() => {});
      case 'nan': return NaN;
      case 'inf': return Infinity;
      case 'text': return 'one';
      case 'exit': process.exit(3);
      case 'later': setTimeout(() => { throw new Error('late') }); return new Promise(() => {});
      default: return 1;
    }
  }`);
  const errors: string[] = [];
  const r = await createReward(spec, { cwd: tmp, timeoutMs: 400, onError: (name, message) => errors.push(`${name}: ${message}`) });
  try {
    const texts = ['ok', 'throw', 'throw', 'ok', 'spin', 'ok', 'never', 'nan', 'inf', 'text', 'later', 'ok', 'exit', 'ok'];
    const scores = await r.score(texts.map((t) => ctx(t)));
    assert.deepEqual(scores, texts.map((t) => (t === 'ok' ? 1 : 0)));
    assert.equal(errors.length, 4, errors.join('\n')); // threw, timed out (spin; never is the same kind), not a number, crashed (later; exit is the same kind)
    assert.match(errors[0], /^wild\.mjs: reward\(row 1\) threw Error: boom; scored 0/);
    assert.match(errors.find((e) => /timed out/.test(e))!, /reward\(row 4\) timed out after 400 ms/);
    assert.match(errors.find((e) => /not a/.test(e))!, /reward\(row 7\) returned NaN, not a finite number/);
    assert.match(errors.find((e) => /worker/.test(e))!, /reward\(row 10\) crashed its worker: Error: late/); // (row 12's exit: same kind)
    assert.deepEqual(await r.score([ctx('ok'), ctx('ok')]), [1, 1], 'the restarted worker still scores');
  } finally {
    await r.close?.();
  }
});

test('module reward: missing, failing and function-less modules are clear errors before training', async () => {
  await assert.rejects(createReward('./nope.js', { cwd: tmp }), (e: Error) =>
    e instanceof RewardModuleError && e.message.includes(path.join(tmp, 'nope.js')) && /not found/.test(e.message));
  await assert.rejects(createReward(mod('nofn.mjs', 'export const reward = 3; export const name = "x";'), { cwd: tmp }), (e: Error) =>
    e instanceof RewardModuleError && /nofn\.mjs: exports no reward function/.test(e.message) && /it exports name \(string\), reward \(number\)$/.test(e.message));
  await assert.rejects(createReward(mod('empty.cjs', 'module.exports = {};'), { cwd: tmp }), /exports no reward function.*exports default \(object\)/);
  await assert.rejects(createReward(mod('broken.mjs', 'export default (ctx) => {'), { cwd: tmp }), /broken\.mjs: failed to load: SyntaxError/);
  await assert.rejects(createReward(mod('throws.mjs', 'throw new Error("no config")'), { cwd: tmp }), /throws\.mjs: failed to load: Error: no config/);
});

test('weighted sums: total = Σ w·score, unweighted components per name; specs with unknown names or bad weights fail clearly', async () => {
  const r = await createReward(' math:1, format:0.2 ');
  assert.equal(r.name, 'math+format');
  const batch = [
    ctx('<think>x</think><answer>\\boxed{4}</answer>', { answer: 4 }),
    ctx('<think>x</think><answer>5</answer>', { answer: 4 }),
    ctx('4', { answer: 4 }),
  ];
  const d = await r.scoreDetailed(batch);
  assert.deepEqual(d.components, { math: [1, 0, 1], format: [1, 1, 0] });
  assert.deepEqual(d.total, [1.2, 0.2, 1]);
  assert.deepEqual(await r.score(batch), d.total);
  assert.deepEqual((await (await createReward('math:-2')).scoreDetailed(batch)).total, [-2, 0, -2]);

  await assert.rejects(createReward('math,maths'), (e: Error) =>
    e instanceof RewardSpecError && /unknown reward 'maths'.*valid are math, code, format, or a path to a JS module/.test(e.message));
  await assert.rejects(createReward('math:abc'), /the weight of 'math' is 'abc', not a finite number/);
  await assert.rejects(createReward('math:,format'), /not a finite number/);
  await assert.rejects(createReward('math:1,math:2'), /names 'math' twice/);
  await assert.rejects(createReward(' , '), /reward spec is empty/);
});

test('every number is finite: a module value of 1e308 times weight 10 is reported and scored 0', async () => {
  const errors: string[] = [];
  const big = mod('big.mjs', 'export default () => 1e308;');
  const r = await createReward(`${big}:10,math`, { cwd: tmp, onError: (n, m) => errors.push(`${n}: ${m}`) });
  try {
    const d = await r.scoreDetailed([ctx('1', { answer: 1 })]);
    assert.deepEqual(d.total, [0]);
    assert.deepEqual(d.components, { 'big.mjs': [1e308], math: [1] });
    assert.match(errors.join('\n'), /big\.mjs\+math: row 0: the weighted sum is Infinity/);
  } finally {
    await r.close?.();
  }
});
