// Self-instruct against a stub OpenAI-compatible server on 127.0.0.1: prompts as Alpaca builds
// them, parsing of numbered tasks, and the recipe's filters (ROUGE-L ≥ 0.7, length, blocklist,
// duplicates), statistics and the Alpaca JSON written.
import { test, before, after } from 'node:test';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { init, shutdown, createModel, trainByteLevelBPE } from '../../src/index.js';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  rougeL, rougeTokens, parseCompletion, filterReason, encodePrompt, parseSeedTasks, selfInstruct, OpenAITeacher, LocalTeacher, writeSelfInstruct,
} from '../../src/sft/selfinstruct.js';

before(async () => { await init({ threads: 1 }); });
after(async () => { await shutdown(); });
const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'tslm.js');
import { parseInstructionData } from '../../src/sft/data.js';

const SEEDS = [
  { id: 'seed_task_0', name: 'breakfast_suggestion', instruction: 'Is there anything I can eat for a breakfast that doesn\'t include eggs, yet includes protein, and has roughly 700-1000 calories?', instances: [{ input: '', output: 'Yes, you can have 1 oatmeal banana protein shake and 4 strips of bacon.' }], is_classification: false },
  { id: 'seed_task_1', name: 'antonym_relation', instruction: 'What is the relation between the given pairs?', instances: [{ input: 'Night : Day :: Right : Left', output: 'The relation between the given pairs is that they are opposites.' }], is_classification: false },
  { id: 'seed_task_2', name: 'health_tips', instruction: 'Give three tips for staying healthy.', instances: [{ input: '', output: 'Eat well, exercise and sleep.' }], is_classification: false },
  { id: 'seed_task_3', name: 'one_sentence_description', instruction: 'Generate a one-sentence description for each of the following people.', instances: [{ input: '- Brack Obama\n- Elon Musk', output: '- Barack Obama is a former President.\n- Elon Musk is a businessman.' }], is_classification: false },
];

const FRESH = [
  'Suggest three names for a new coffee shop near the beach.',
  'Classify the sentiment of the following movie review as positive or negative.',
  'Translate the sentence below into formal French for a business letter.',
  'Explain how compound interest differs from simple interest with an example.',
  'Summarize the main argument of the paragraph in one sentence.',
  'List four common symptoms of dehydration in adults.',
];

function block(k: number, inst: string, input: string, output: string): string {
  return `${k}. Instruction: ${inst}\n${k}. Input:\n${input}\n${k}. Output:\n${output}\n`;
}

test('ROUGE-L as rouge_score computes it (lowercase alphanumeric tokens, LCS F-measure)', () => {
  assert.deepEqual(rougeTokens("Don't stop-believing, 2 U!"), ['don', 't', 'stop', 'believing', '2', 'u']);
  assert.equal(rougeL('the cat sat on the mat', 'the cat sat on the mat'), 1);
  // LCS("the cat sat on the mat", "the cat lay on a mat") = the cat on mat = 4; P = 4/6, R = 4/6
  assert.ok(Math.abs(rougeL('the cat sat on the mat', 'the cat lay on a mat') - 4 / 6) < 1e-12);
  assert.equal(rougeL('', 'abc'), 0);
});

test('filters: length bounds, blocklist, write-a-program, punctuation, non-ASCII', () => {
  assert.equal(filterReason('Say hi now.'), 'too_short');
  assert.equal(filterReason(Array(151).fill('word').join(' ')), 'too_long');
  assert.equal(filterReason('Draw a cat sitting on a mat.'), 'blocklist');
  assert.equal(filterReason('Describe the images in this slide deck.'), 'blocklist');
  assert.equal(filterReason('Create a plan to go to the moon.'), 'blocklist');
  assert.equal(filterReason('Explain what a filesystem does for users.'), null, 'word boundaries: "filesystem" is not "file"');
  assert.equal(filterReason('Write a program that sorts numbers quickly.'), 'write_a_program');
  assert.equal(filterReason('"Quote" the following famous line please.'), 'punctuation');
  assert.equal(filterReason('Écris une phrase sur le temps.'), 'non_ascii');
});

test('prompt encoding and completion parsing follow Alpaca', () => {
  const p = encodePrompt([{ instruction: 'Do this:', input: '', output: 'done' }, { instruction: 'Add  two\nnumbers', input: '1 2', output: '3' }]);
  assert.ok(p.startsWith('You are asked to come up with a set of 20 diverse task instructions.'));
  assert.ok(p.endsWith('###\n1. Instruction: Do this\n1. Input:\n<noinput>\n1. Output:\ndone\n###\n2. Instruction: Add two numbers\n2. Input:\n1 2\n2. Output:\n3\n###\n3. Instruction:'));
  const text = ` Name a fruit that is yellow and curved.\n3. Input:\n<noinput>\n3. Output:\nA banana.\n###\n${block(4, 'Broken task', '', 'x').replace('4. Input', '5. Input')}###\n4. Instruction: Cut off here`;
  const r = parseCompletion(text, 2, 'length');
  assert.deepEqual(r.tasks, [{ instruction: 'Name a fruit that is yellow and curved.', input: '', output: 'A banana.' }]);
  assert.deepEqual(r.dropped, ['unparsable', 'truncated']);
});

test('self-instruct against a stub OpenAI-compatible server: batches, parsing, filtering, statistics', async () => {
  const requests: { auth: string | undefined; body: { prompt: string[]; model: string; stop: string[]; max_tokens: number } }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/completions') { res.writeHead(404).end('{}'); return; }
      const j = JSON.parse(body);
      requests.push({ auth: req.headers.authorization, body: j });
      const n = requests.length;
      const choices = (j.prompt as string[]).map((_p, index) => {
        const fresh = FRESH[(2 * (n - 1) + index) % FRESH.length];
        const text = ' ' + [
          block(4, fresh, '<noinput>', 'An answer.').replace(/^4\. Instruction: /, ''),
          block(5, 'Draw a picture of a cat sitting in a sunny garden.', '<noinput>', 'Sorry.'),
          block(6, 'Say hi.', '<noinput>', 'Hi.'),
          block(7, 'Give three tips for staying very healthy.', '<noinput>', 'Sleep.'),
          block(8, fresh, '<noinput>', 'Again.'),
          block(9, 'Write a program that sorts a list of numbers.', '<noinput>', 'sorted()'),
          '10. Instruction: a block without the other fields\n',
          block(11, 'Compose a haiku about autumn leaves falling slowly.', 'The season is autumn.', 'Leaves drift down.'),
        ].join('###\n');
        return { text, index, finish_reason: 'stop' };
      });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'cmpl-1', object: 'text_completion', choices }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { address, port } = server.address() as AddressInfo;
  assert.equal(address, '127.0.0.1');
  const dir = mkdtempSync(path.join(tmpdir(), 'tslm-selfinstruct-'));
  try {
    const seedFile = path.join(dir, 'seed_tasks.jsonl');
    writeFileSync(seedFile, SEEDS.map((s) => JSON.stringify(s)).join('\n') + '\n');
    const seeds = parseSeedTasks(readFileSync(seedFile, 'utf8'), seedFile);
    const teacher = new OpenAITeacher({ baseUrl: `http://127.0.0.1:${port}/v1`, apiKey: 'sk-test', model: 'stub-model' });
    const r = await selfInstruct(seeds, teacher, { numInstructions: 5, numPromptInstructions: 3, requestBatchSize: 2, seed: 1 });
    // requests: batches of 2 prompts, 3 seed tasks each, ending where the teacher continues
    assert.equal(requests[0].auth, 'Bearer sk-test');
    assert.equal(requests[0].body.model, 'stub-model');
    assert.equal(requests[0].body.prompt.length, 2);
    for (const p of requests[0].body.prompt) {
      assert.ok(p.endsWith('###\n4. Instruction:'));
      assert.equal(p.split('###\n').length - 1, 4);
      assert.equal(SEEDS.filter((s) => p.includes(s.instruction.replace(/\s+/g, ' ').trim())).length, 3);
    }
    assert.deepEqual(requests[0].body.stop, ['\n20', '20.', '20 .']);
    // kept: the fresh tasks and the haiku, once each; everything else dropped for its reason
    const inst = r.tasks.map((t) => t.instruction);
    assert.equal(inst.length, 5);
    assert.equal(new Set(inst).size, 5);
    assert.ok(inst.includes('Compose a haiku about autumn leaves falling slowly.'));
    assert.ok(!inst.some((i) => /Draw|Say hi|very healthy|Write a program/.test(i)));
    for (let i = 0; i < inst.length; i++) for (let j = 0; j < i; j++) assert.ok(rougeL(inst[i], inst[j]) < 0.7);
    const s = r.stats;
    assert.equal(s.requests, requests.length);
    assert.equal(s.kept, 5);
    assert.ok(s.dropped.blocklist >= 1 && s.dropped.too_short >= 1 && s.dropped.similar >= 1 && s.dropped.write_a_program >= 1 && s.dropped.unparsable >= 1);
    assert.ok(s.dropped.duplicate + s.dropped.similar >= 2, 'the repeated fresh task and the near-copy of a seed');
    const haiku = r.tasks.find((t) => t.instruction.startsWith('Compose'))!;
    assert.equal(haiku.input, 'The season is autumn.');
    const fresh = r.tasks.find((t) => t.instruction === FRESH[0])!;
    assert.equal(fresh.input, '', '<noinput> becomes empty');
    // written as Alpaca JSON that the SFT reader accepts, with statistics beside it
    const out = path.join(dir, 'generated.json');
    const statsFile = writeSelfInstruct(out, r);
    const rows = parseInstructionData(readFileSync(out, 'utf8'), out);
    assert.equal(rows.length, 5);
    assert.deepEqual(Object.keys(rows[0]).sort(), ['input', 'instruction', 'output']);
    assert.equal(JSON.parse(readFileSync(statsFile, 'utf8')).kept, 5);
    // the CLI against the same server (asynchronous child: the server answers from this process)
    const cliOut = path.join(dir, 'cli.json');
    const { stderr } = await promisify(execFile)(process.execPath, [bin, 'self-instruct', '--seeds', seedFile, '--out', cliOut, '--num', '3',
      '--base-url', `http://127.0.0.1:${port}/v1`, '--model-name', 'stub-model', '--batch-size', '1', '--seed', '2'], { env: { ...process.env, OPENAI_API_KEY: 'sk-env', TSLM_THREADS: '1' } });
    assert.match(stderr, /kept 3 of \d+ parsed tasks from \d+ prompts in \d+ requests \(dropped: .*blocklist \d+/);
    assert.equal(parseInstructionData(readFileSync(cliOut, 'utf8'), cliOut).length, 3);
    assert.equal(requests[requests.length - 1].auth, 'Bearer sk-env');
  } finally {
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  }
});

test('seed file errors name the line', () => {
  assert.throws(() => parseSeedTasks('{"instruction": "x", "instances": []}\n{"name": "y"}\n', 'seeds.jsonl'), /seeds\.jsonl:1: "instances" must hold/);
  assert.throws(() => parseSeedTasks('{"instruction": "x", "instances": [{"input": "", "output": "y"}]}\n{"name": "y"}\n', 'seeds.jsonl'), /seeds\.jsonl:2: seed task missing "instruction"/);
});

test('a local tslm model as the teacher', async () => {
  const tok = trainByteLevelBPE(['Instruction: Input: Output: ### give list name the of a'], { vocabSize: 270, specialTokens: ['<|endoftext|>'] });
  const model = createModel({ model_type: 'llama', hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, vocab_size: tok.vocabSize, max_position_embeddings: 64 });
  const teacher = new LocalTeacher(model.eval(), tok);
  const c = await teacher.complete(['1. Instruction: x', '2. Instruction: y'], { maxTokens: 5, temperature: 1, topP: 1, stop: ['\n20'], seed: 1 });
  assert.equal(c.length, 2);
  assert.ok(c.every((x) => typeof x.text === 'string' && ['length', 'stop'].includes(x.finishReason)));
  const r = await selfInstruct(parseSeedTasks(JSON.stringify(SEEDS)), teacher, { numInstructions: 2, requestBatchSize: 1, maxRequests: 1, maxTokens: 8 });
  assert.equal(r.stats.requests, 1);
  assert.equal(r.stats.prompts, 1);
  model.dispose();
});
