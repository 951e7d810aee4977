// A short fuzz run (src/fuzz, what `tslm bench fuzz` does at length): a few mutants of every
// format with a fixed seed, and a few hostile requests to `tslm serve`. No crash, hang, garbage
// accepted or memory over budget is allowed, except in the formats listed in PENDING_FIXES.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFuzz, formatReport, FORMATS } from '../../src/fuzz/index.js';

/**
 * Formats whose known failures are being fixed by other branches of issue #21 (see the failures
 * printed below): they still run and print what fails, but do not fail the test. The lead
 * empties this list when the fixes merge.
 *  - 'HF dir / safetensors': config.json with a 100k-deep array → stack overflow in numField (src/io/llama.ts)
 *  - 'Alpaca (finetune)': a 10 MB response → stack overflow in tokenizeRow (src/sft/data.ts)
 *  - 'server': GET /v1/models/% → 500 "URI malformed"; deep response_format → 500; big prompts stall others
 */
export const PENDING_FIXES: string[] = [];

const SERVER_SUBSET = ['bad JSON', 'max_tokens string', 'n 1e9', 'GET /v1/models/%', 'GET /%2e%2e/%2e%2e/%2e%2e/etc/passwd', 'unknown model', 'huge header 60 KB'];

test('short fuzz run: a few mutants per format and hostile requests, no crash / hang / garbage / memory over budget', { timeout: 240_000 }, async () => {
  const rep = await runFuzz({
    perFormat: 3, seed: 1, timeoutMs: 30_000, jobs: 2,
    serverFilter: (r) => SERVER_SUBSET.includes(r.name),
  });
  console.log(formatReport(rep));
  assert.equal(rep.rows.length, FORMATS.length);
  for (const p of PENDING_FIXES) assert.ok(p === 'server' || FORMATS.some((f) => f.name === p), `PENDING_FIXES names no format '${p}'`);
  const bad = rep.rows.filter((r) => !PENDING_FIXES.includes(r.format)).flatMap((r) => r.results.filter((x) => ['crash', 'hang', 'garbage', 'rss'].includes(x.verdict)));
  assert.deepEqual(bad.map((x) => `${x.format} #${x.index} ${x.verdict}: ${x.kind} → ${x.detail}`), []);
  assert.ok(rep.server && rep.server.results.length === SERVER_SUBSET.length, 'every server request of the subset ran');
  if (!PENDING_FIXES.includes('server')) assert.deepEqual(rep.server.results.filter((x) => x.verdict !== 'ok').map((x) => `${x.name}: ${x.detail}`), []);
  for (const r of rep.rows) assert.equal(r.tried, 3);
});
