// The corpus runner of `tslm bench structured --corpus`: a tiny folder of MaskBench-style files
// (a schema with valid and invalid tests, a bare schema, a refused schema, a file that is not JSON)
// and what it reports of each — verdicts from the files' own "valid" flags and from ajv.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCorpusFile, corpusStructured, timeCorpusFile, GcLog } from '../../bench/structured_corpus.js';
import { llama2Setup } from './llama2_setup.js';

const L = llama2Setup();

let dir: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tslm-corpus-'));
  const person = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer', minimum: 0 } }, required: ['name'], additionalProperties: false };
  writeFileSync(join(dir, 'a_person.json'), JSON.stringify({ schema: person, tests: [
    { data: { name: 'Ada', age: 36 }, valid: true },
    { data: { name: '李雷' }, valid: true },
    { data: { age: 3 }, valid: false },
    { data: { name: 'x', age: -1 }, valid: false },
    // A wrong flag in the corpus: an acceptance the flag calls unsound, which ajv disputes.
    { data: { name: 'Bo' }, valid: false },
  ] }));
  writeFileSync(join(dir, 'b_bare.json'), JSON.stringify({ type: 'array', items: { enum: [1, 2] } }));
  writeFileSync(join(dir, 'c_remote.json'), JSON.stringify({ schema: { $ref: 'https://example.com/s.json' }, tests: [{ data: 1, valid: true }] }));
  writeFileSync(join(dir, 'd_broken.json'), '{"schema": {"type": ');
});
after(() => { rmSync(dir, { recursive: true, force: true }); });

test('corpus: per-file verdicts from the files\' valid flags, refusals and unreadable files', () => {
  const lines: string[] = [];
  const a = runCorpusFile(join(dir, 'a_person.json'), L.tok, L.vocab, (l) => lines.push(l));
  assert.equal(a.status, 'compiled');
  assert.deepEqual([a.valid, a.validAccepted, a.invalid, a.invalidAccepted, a.crashes], [2, 2, 3, 1, 0]);
  assert.ok(a.masks.length > 10 && a.compileMs! > 0);
  assert.ok(lines.some((l) => l.startsWith('UNSOUND a_person.json') && l.includes('"Bo"')));
  assert.deepEqual(a.ajv, { valid: 3, validAccepted: 3, invalid: 2, invalidAccepted: 0, disputed: 1 });
  assert.ok(lines.some((l) => l.startsWith('ajv disputes the flag (invalid) of a_person.json') && l.includes('"Bo"')));
  // Each mask's start and allocation: the first (the initial state, its mask cached by the compile)
  // allocates nothing of note; a new state's mask at least its 32K-bit array (4,000 bytes).
  // The heap's count also takes in what V8 installs meanwhile (optimised code finished on another
  // thread, feedback vectors) or NaN where a collection ran: the least of three runs is the mask's own.
  assert.equal(a.at!.length, a.masks.length);
  assert.equal(a.alloc!.length, a.masks.length);
  const firsts = [a.alloc![0]];
  for (let i = 0; i < 2; i++) firsts.push(runCorpusFile(join(dir, 'a_person.json'), L.tok, L.vocab, () => {}).alloc![0]);
  const first = Math.min(...firsts.filter((x) => Number.isFinite(x)));
  assert.ok(first < 1024, `a cached mask allocated ${firsts.join(', ')} B`);
  assert.ok(a.alloc!.some((x) => x >= 4000));
  // Timed again from a fresh compile: the same masks, in the same order.
  const t = timeCorpusFile(join(dir, 'a_person.json'), L.tok, L.vocab)!;
  assert.equal(t.masks.length, a.masks.length);
  assert.ok(t.at.every((x, i) => i === 0 || x >= t.at[i - 1]) && t.at[0] >= t.start + t.compileMs);
  const b = runCorpusFile(join(dir, 'b_bare.json'), L.tok, L.vocab, () => {});
  assert.equal(b.status, 'compiled');
  assert.equal(b.valid + b.invalid, 0);
  const c = runCorpusFile(join(dir, 'c_remote.json'), L.tok, L.vocab, () => {});
  assert.equal(c.status, 'refused');
  assert.match(c.error!, /UnsupportedKeywordError.*\$ref/);
  assert.equal(runCorpusFile(join(dir, 'd_broken.json'), L.tok, L.vocab, () => {}).status, 'unreadable');
});

test('corpus: a collection overlaps the masks whose span it meets', () => {
  const g = new GcLog();
  try {
    g.spans.length = 0;
    g.spans.push({ start: 10, end: 10.5, major: false }, { start: 20, end: 21, major: true });
    // Masks at 9.0–9.9, 9.9–10.2, 10.6–11.0, 19.0–20.0, 21.5–22.0 (start ms, duration µs).
    assert.deepEqual(g.overlaps([9, 9.9, 10.6, 19, 21.5], [900, 300, 400, 1000, 500]), [false, true, false, true, false]);
    g.forget(15);
    assert.equal(g.spans.length, 1);
  } finally { g.close(); }
});

test('corpus: the summary counts; an acceptance ajv judges invalid fails the run (the files\' flags where no ajv compiles the schema)', async () => {
  const lines: string[] = [];
  const ok = await corpusStructured({ dir, log: (l) => lines.push(l) });
  assert.equal(ok, true, 'the wrong flag is ajv\'s to judge');
  const text = lines.join('\n');
  assert.match(text, /schemas 3: compiled 2 \(66\.7%\), refused 1 \(33\.3%\), crashed 0, unreadable 1/);
  assert.match(text, /valid 2, accepted 2 \(100\.0%\); invalid 3, accepted \(unsound\) 1/);
  assert.match(text, /judged by ajv \(\+ ajv-formats; 1 of 1 schemas with tests\): valid 3, accepted 3 \(100\.0%\); invalid 2, accepted \(unsound\) 0; corpus flags ajv disputes: 1/);
  // Pauses apart from work: collections seen, what the masks allocate, the p99s without pauses.
  assert.match(text, /pauses: \d+ garbage collections while the schemas ran \(\d+ mark-compact, \d+ ms\), \d+ masks overlapped one \([\d.]+%\); allocation per mask: mean [\d.]+ KB/);
  assert.match(text, /per-schema p99, masks a collection overlapped left out: median [\d.]+ µs/);
  assert.match(text, /per-schema p99 without pauses \(the \d+ schemas over 500 µs re-timed/);
  assert.match(text, /compile re-timed \(the \d+ over 50 ms: least of 3 fresh compiles\): max [\d.]+ ms/);
  // A validator that calls every instance invalid: the acceptances are unsound.
  assert.equal(await corpusStructured({ dir, judge: () => () => false, log: () => {} }), false);
  // No validator for the schema: the files' flags judge it.
  assert.equal(await corpusStructured({ dir, judge: () => null, log: () => {} }), false);
  const only = await corpusStructured({ dir, filter: 'bare', log: () => {} });
  assert.equal(only, true);
});
