// ServedModel.matcher: an asynchronous compile per constraint key; concurrent requests with the
// same schema share one compilation, a failed compilation is not cached (the next request tries
// again), and a compiled one is reused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { init, shutdown } from '../../src/backend/index.js';
import { ModelRegistry } from '../../src/serve/models.js';
import { compileJsonSchema } from '../../src/structured/schema.js';
import { InvalidSchemaError } from '../../src/structured/errors.js';
import type { Grammar } from '../../src/structured/grammar.js';
import { makeTinyModelDir } from './fixture.js';

let work = '';
before(async () => { await init({ threads: 1 }); work = mkdtempSync(path.join(tmpdir(), 'tslm-serve-matcher-')); });
after(async () => { await shutdown(); rmSync(work, { recursive: true, force: true }); });

test('concurrent identical schemas share one compilation; failures are not cached; results are reused', async () => {
  const dir = await makeTinyModelDir(path.join(work, 'tiny'));
  const reg = new ModelRegistry({ model: dir });
  await reg.init();
  const m = await reg.acquire(undefined);
  try {
    let calls = 0;
    const slow = (): Promise<Grammar> => { calls++; return new Promise((r) => setTimeout(() => r(compileJsonSchema({ type: 'boolean' })), 30)); };
    const [a, b, c] = await Promise.all([m.matcher('k1', slow), m.matcher('k1', slow), m.matcher('k1', slow)]);
    assert.equal(calls, 1);
    assert.ok(a === b && b === c);
    assert.equal(m.compilingCount, 0);
    assert.equal(await m.matcher('k1', slow), a);
    assert.equal(calls, 1);
    let fails = 0;
    const bad = (): Promise<Grammar> => { fails++; return new Promise((_, rej) => setTimeout(() => rej(new InvalidSchemaError('type', '#', 'bogus')), 10)); };
    const r = await Promise.allSettled([m.matcher('k2', bad), m.matcher('k2', bad)]);
    assert.deepEqual(r.map((x) => x.status), ['rejected', 'rejected']);
    assert.equal(fails, 1);
    await assert.rejects(m.matcher('k2', bad), InvalidSchemaError);
    assert.equal(fails, 2, 'a failed compilation is tried again');
    const other = await m.matcher('k3', () => Promise.resolve(compileJsonSchema({ type: 'null' })));
    assert.notEqual(other, a);
  } finally {
    reg.release(m);
    reg.dispose();
  }
});
