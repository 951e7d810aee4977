// The code sandbox against real attempts to get out: candidates that try to write files (every
// route we know), reach the network, spin forever (sync and through promises), eat memory and
// exit the process each score 0 with no side effect, and the next candidate still runs. The
// process layer (permission model + the child's hardening) is also tested directly, as if code
// had got out of the vm context.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Sandbox, SandboxError, sandboxNodeArgs, SANDBOX_CHILD } from '../../src/align/sandbox.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'tslm-sandbox-'));
const target = (name: string) => path.join(tmp, name);

// A local HTTP server that counts connections: any connection from a candidate is a failure.
let connections = 0;
const server: Server = createServer((_, res) => res.end('ok'));
server.on('connection', () => connections++);
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const port = (server.address() as { port: number }).port;
const url = `http://127.0.0.1:${port}/`;

const sandbox = new Sandbox({ processes: 2, timeoutMs: 700, memoryMb: 64 });
after(async () => {
  await sandbox.close();
  server.close();
  rmSync(tmp, { recursive: true, force: true });
});

const good = { code: 'function add(a, b) { return a + b }', tests: ['add(1, 2) === 3', 'add(-1, 1) === 0'] };

test('sandbox: correct, partly correct and wrong candidates; expression and statement tests', async () => {
  const r = await sandbox.runAll([
    good,
    { code: 'function add(a, b) { return a * b }', tests: ['add(1, 2) === 3', 'add(2, 2) === 4', 'add(0, 5) === 5'] },
    { code: 'export function add(a, b) { return a + b }\nexport default add;\nmodule.exports = { add };', tests: 'assert(add(2, 3) === 5, "2+3"); assert(add(0, 0) === 0);' },
    { code: 'const add = (a, b) => a - b;', tests: 'assert(add(2, 3) === 5, "2+3 should be 5")' },
    { code: 'function add(a, b) { return a + b }', tests: ['add(1, 2)', 'assert(add(1, 2) === 3)'] }, // a non-boolean value is not a pass
    { code: 'function ad(a, b) { return a + b }', tests: ['ad(1, 2) === 3'], entryPoint: 'add' },
    { code: 'function add(a, b) { return a + ', tests: ['add(1, 2) === 3'] },
  ]);
  assert.deepEqual(r.map((x) => [x.passed, x.total]), [[2, 2], [1, 3], [1, 1], [0, 1], [1, 2], [0, 1], [0, 1]]);
  assert.equal(r[0].error, undefined);
  assert.match(r[1].error!, /test 0 is not true/);
  assert.match(r[3].error!, /2\+3 should be 5/);
  assert.match(r[5].error!, /does not define function add/);
  assert.match(r[6].error!, /candidate failed: Unexpected end of input/);
});

test('sandbox: the candidate cannot cheat the harness (assert is read-only, results are primitives)', async () => {
  const r = await sandbox.runAll([
    { code: 'assert = () => true; globalThis.assert = () => true; function add() { return 0 }', tests: 'assert(add(1, 2) === 3)' },
    { code: 'function add() { return { valueOf() { return 3 }, toString() { return "3" } } }', tests: ['add(1, 2) === 3'] },
    { code: 'function add() { return new Proxy({}, { get: () => true }) }', tests: ['add(1, 2)'] },
  ]);
  assert.deepEqual(r.map((x) => x.passed), [0, 0, 0]);
});

// Attempts to write a file from inside the vm context, each by another route; `ok` is true only
// if the attempt got through. Async ones end in .catch so a refusal is not an unhandled rejection.
const writes = (tag: string): Record<string, string> => {
  const file = (name: string) => JSON.stringify(target(`${tag}-${name}`));
  return {
    require: `require('fs').writeFileSync(${file('require')}, 'x'); var ok = true`,
    processBinding: `process.binding('fs'); var ok = true`,
    constructorEscape: `this.constructor.constructor('return process')().getBuiltinModule('fs').writeFileSync(${file('ctor')}, 'x'); var ok = true`,
    functionEscape: `Function('return this')().process.getBuiltinModule('fs').writeFileSync(${file('fn')}, 'x'); var ok = true`,
    dynamicImport: `var ok = false; import('node:fs').then((fs) => { fs.writeFileSync(${file('import')}, 'x'); ok = true }).catch(() => {})`,
    evalImport: `var ok = false; eval('import("node:fs")').then((fs) => { fs.writeFileSync(${file('eval')}, 'x'); ok = true }).catch(() => {})`,
    importError: `var ok = false; import('node:fs').catch((e) => { e.constructor.constructor('return process')().getBuiltinModule('fs').writeFileSync(${file('importerr')}, 'x'); ok = true }).catch(() => {})`,
    stackTrace: `Error.prepareStackTrace = (e, frames) => frames.map((f) => f.getThis()).filter(Boolean).map((t) => t.constructor.constructor('return process')()).find((p) => p && p.getBuiltinModule('fs').writeFileSync(${file('stack')}, 'x')); var ok = !!new Error().stack`,
  };
};

/** Run `code` (an ES module body) in a fresh node with these flags; its last stdout line, parsed. */
async function nodeReport(flags: string[], code: string, env: Record<string, string> = {}): Promise<Record<string, any>> {
  const child = spawn(process.execPath, [...flags, '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env });
  let stdout = '', stderr = '';
  child.stdout!.on('data', (b) => (stdout += b));
  child.stderr!.on('data', (b) => (stderr += b));
  await new Promise((r) => child.on('exit', r));
  const report = JSON.parse(stdout.trim().split('\n').pop() || 'null');
  assert.ok(report, `no report from the child: ${stderr}`);
  return report;
}
const childUrl = JSON.stringify(pathToFileURL(SANDBOX_CHILD).href);

test('sandbox: the vm context alone (no permission model, no hardening) keeps file writes in', async () => {
  const report = await nodeReport(['--experimental-vm-modules', '--disable-warning=ExperimentalWarning'], `
    const { runCandidate } = await import(${childUrl});
    const attempts = ${JSON.stringify(writes('vm'))};
    const out = {};
    for (const [k, code] of Object.entries(attempts)) out[k] = runCandidate({ id: 0, code, tests: ['ok === true'], timeoutMs: 500 });
    await new Promise((r) => setTimeout(r, 100)); // let the async attempts settle
    console.log(JSON.stringify(out));
    process.exit(0);`);
  for (const [k, r] of Object.entries(report)) assert.equal(r.passed, 0, `${k}: ${JSON.stringify(r)}`);
  assert.equal(Object.keys(report).length, Object.keys(writes('vm')).length);
  assert.deepEqual(readdirSync(tmp).filter((f) => f.startsWith('vm-')), [], 'no file written');
  // Without --experimental-vm-modules import() would leak a host error: the child refuses to run.
  const { runCandidate } = await import('../../src/align/sandbox_child.js');
  assert.throws(() => runCandidate({ id: 0, code: '1', tests: ['true'], timeoutMs: 100 }), /--experimental-vm-modules/);
});

test('sandbox: attempts to write files, reach the network or exit are scored 0 and leave no trace', async () => {
  const attempts: Record<string, string> = {
    ...writes('child'),
    fetch: `fetch(${JSON.stringify(url)}); var ok = true`,
    fetchEscape: `this.constructor.constructor('return fetch')()(${JSON.stringify(url)}); var ok = true`,
    httpImport: `var ok = false; import('node:http').then((h) => { h.get(${JSON.stringify(url)}); ok = true })`,
    processExit: `process.exit(0); var ok = true`,
    syncLoop: `for (;;) {} var ok = true`,
    promiseLoop: `var ok = false; (async () => { for (;;) await null })()`,
    thenLoop: `var ok = false; Promise.resolve().then(function again() { return Promise.resolve().then(again) })`,
    atomicsWait: `Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); var ok = true`,
    finalizer: `new FinalizationRegistry(() => { for (;;) {} }).register({}, 1); var ok = true`,
    wasm: `new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])); var ok = true`,
  };
  const names = Object.keys(attempts);
  const results = await sandbox.runAll(names.map((k) => ({ code: attempts[k], tests: ['ok === true'] })));
  // Async attempts (import(...).then) would act later: give them time, then look for traces.
  await new Promise((r) => setTimeout(r, 200));
  const next = await sandbox.run(good);
  names.forEach((k, i) => assert.equal(results[i].passed, 0, `${k}: ${JSON.stringify(results[i])}`));
  assert.deepEqual(readdirSync(tmp), [], 'no file written');
  assert.equal(connections, 0, 'no connection reached the server');
  assert.deepEqual(next, { passed: 2, total: 2 }, 'a correct candidate after the attempts');
  const reason = (k: string) => results[names.indexOf(k)].error!;
  assert.match(reason('require'), /require is not defined/);
  assert.match(reason('syncLoop'), /timed out/);
  assert.match(reason('promiseLoop'), /timed out/);
  assert.match(reason('atomicsWait'), /timed out/);
});

test('sandbox: unbounded memory (JS heap or array buffers) kills the child; a fresh one takes over', async () => {
  const s = new Sandbox({ processes: 1, timeoutMs: 8000, memoryMb: 64 });
  try {
    const heap = await s.run({ code: 'const a = []; for (;;) a.push(new Array(1e6).fill(1))', tests: ['true'] });
    const buffers = await s.run({ code: 'const a = []; for (;;) a.push(new Uint8Array(5e7).fill(1))', tests: ['true'] });
    const next = await s.run(good);
    assert.equal(heap.passed, 0);
    assert.match(heap.error!, /heap out of memory|died/);
    assert.equal(buffers.passed, 0);
    // The resident-memory limit reads /proc; elsewhere the time limit stops the candidate.
    assert.match(buffers.error!, existsSync('/proc/self/status') ? /MB of memory \(limit 192 MB\)|died/ : /timed out/);
    assert.deepEqual(next, { passed: 2, total: 2 });
  } finally {
    await s.close();
  }
});

test('sandbox: the wall-clock limit kills a child that does not answer', async () => {
  const s = new Sandbox({ processes: 1, timeoutMs: 5000, wallMs: 300 });
  try {
    const r = await s.run({ code: 'for (;;) {}', tests: ['true'] });
    assert.equal(r.passed, 0);
    assert.match(r.error!, /wall-clock limit/);
    assert.deepEqual(await s.run(good), { passed: 2, total: 2 });
  } finally {
    await s.close();
  }
});

test('sandbox: the process layer refuses files, processes, workers, network and DNS even outside the vm', async () => {
  // Code running in the child process itself (as if it had got out of the vm context).
  const attacks = `
    import fs from 'node:fs'; import cp from 'node:child_process'; import net from 'node:net'; import http from 'node:http';
    import dns from 'node:dns'; import dgram from 'node:dgram'; import { Worker } from 'node:worker_threads';
    await import(${childUrl});
    const out = {};
    const attempt = async (name, f) => { try { await f(); out[name] = 'done'; } catch (e) { out[name] = 'refused: ' + e.message; } };
    await attempt('write', () => fs.writeFileSync(${JSON.stringify(target('host-write'))}, 'x'));
    await attempt('read', () => fs.readFileSync('/etc/hostname'));
    await attempt('exec', () => cp.execSync('touch ' + ${JSON.stringify(target('host-exec'))}));
    await attempt('worker', () => new Worker('1', { eval: true }));
    await attempt('net', () => net.connect(${port}, '127.0.0.1'));
    await attempt('http', () => http.get(${JSON.stringify(url)}));
    await attempt('fetch', () => fetch(${JSON.stringify(url)}));
    await attempt('dns', () => dns.lookup('localhost', () => {}));
    await attempt('dnsPromises', () => dns.promises.resolve4('localhost'));
    await attempt('udp', () => dgram.createSocket('udp4').send('x', ${port}, '127.0.0.1'));
    await attempt('listen', () => net.createServer().listen(0));
    await attempt('kill', () => process.kill(process.ppid, 0));
    await attempt('loader', () => process.getBuiltinModule('node:fs'));
    await attempt('binding', () => process.binding('fs'));
    console.log(JSON.stringify(out));
    process.exit(0);`;
  const out = await nodeReport(sandboxNodeArgs(64), attacks, { TSLM_SANDBOX_CHILD: '1' });
  await new Promise((r) => setTimeout(r, 200));
  for (const [k, v] of Object.entries(out)) assert.match(v, /^refused/, `${k}: ${v}`);
  assert.equal(Object.keys(out).length, 14);
  assert.ok(!existsSync(target('host-write')) && !existsSync(target('host-exec')));
  assert.equal(connections, 0);
});

test('sandbox: bad jobs and options are clear errors', async () => {
  assert.throws(() => sandbox.run({ code: 'x', tests: [] }), SandboxError);
  assert.throws(() => sandbox.run({ code: 'x', tests: ['a', 1 as never] }), /tests must be/);
  assert.throws(() => sandbox.run({ code: 'x', tests: ['true'], entryPoint: 'a; process' }), /not an identifier/);
  assert.throws(() => new Sandbox({ timeoutMs: 0 }), /timeoutMs must be a positive integer/);
});
