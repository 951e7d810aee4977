// The image tokenizer (src/vision/): MNIST from the mnist package, PNG in and out, a VQ-VAE that
// learns to reconstruct held-out digits (its reconstruction error falls well below the untrained
// model's), files that load back to the same codes, and the CLI with its errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '../../src/index.js';
import { init, shutdown, scope } from '../../src/index.js';
import {
  loadMnist, readPng, writePng, tile, ImageTokenizer, trainImageTokenizer, loadImageTokenizer, evaluateImageTokenizer, DEFAULT_IMAGE_TOKENIZER, loadPngFolder,
} from '../../src/vision/index.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'tslm.js');
let dir = '';
before(async () => { await init({ threads: 2 }); dir = mkdtempSync(path.join(tmpdir(), 'tslm-vision-')); });
after(async () => { await shutdown(); rmSync(dir, { recursive: true, force: true }); });

const SMALL = { hidden: [8, 16] as [number, number], code_dim: 8, num_codes: 32 };

test('MNIST: 10,000 digits of 28×28 in [0, 1], every class in both parts, classes interleaved', () => {
  const { train, test: held } = loadMnist();
  assert.equal(train.size, 28);
  assert.ok(train.n + held.n >= 9000 && train.n + held.n <= 11000, `${train.n} + ${held.n}`);
  assert.ok(held.n > 800 && held.n < 1200);
  for (const set of [train, held]) {
    assert.equal(set.pixels.length, set.n * 784);
    let lo = Infinity, hi = -Infinity;
    for (const v of set.pixels) { if (v < lo) lo = v; if (v > hi) hi = v; }
    assert.ok(lo >= 0 && hi <= 1 && hi > 0.9, `levels ${lo}…${hi}`);
    assert.deepEqual([...new Set(set.labels.slice(0, 10))].sort(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  }
});

test('PNG: grey levels round-trip to 1/255; tiles; bad files are named', () => {
  const px = Float32Array.from({ length: 12 * 8 }, (_, i) => (i % 17) / 16);
  const f = path.join(dir, 'a.png');
  writePng(f, { width: 12, height: 8, pixels: px });
  const back = readPng(f);
  assert.deepEqual([back.width, back.height], [12, 8]);
  back.pixels.forEach((v, i) => assert.ok(Math.abs(v - px[i]) <= 0.5 / 255 + 1e-6, `pixel ${i}`));
  const t = tile(px, 2, 4, 2);
  assert.deepEqual([t.width, t.height], [11, 6]);
  const notPng = path.join(dir, 'b.png');
  writeFileSync(notPng, 'hello');
  assert.throws(() => readPng(notPng), /b\.png: is not a PNG file/);
  const cut = path.join(dir, 'c.png');
  writeFileSync(cut, readFileSync(f).subarray(0, 40));
  assert.throws(() => readPng(cut), /c\.png: is not a readable PNG/);
  assert.throws(() => readPng(path.join(dir, 'none.png')), /none\.png: cannot be read \(ENOENT\)/);
});

test('a small tokenizer learns: held-out error falls, codes are used, files load back to the same codes', async () => {
  const { test: held } = loadMnist();
  const untrained = evaluateImageTokenizer(new ImageTokenizer({ ...DEFAULT_IMAGE_TOKENIZER, ...SMALL }), held, 200);
  const out = path.join(dir, 'tok');
  const { model, report } = await trainImageTokenizer({ out, steps: 60, batchSize: 32, config: SMALL, log: () => {} });
  assert.ok(report.mse < untrained.mse * 0.6, `held-out MSE ${report.mse} vs untrained ${untrained.mse}`);
  assert.ok(report.used >= 4, `${report.used} codes used`);
  for (const f of ['config.json', 'model.safetensors', 'metrics.jsonl', 'report.json', 'reconstructions.png']) assert.ok(existsSync(path.join(out, f)), f);
  assert.equal(readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').length, 60);
  const loaded = await loadImageTokenizer(out);
  scope(() => {
    const x = T.tensor(held.pixels.subarray(0, 4 * 784), [4, 1, 28, 28]);
    const a = model.encode(x).toArray(), b = loaded.encode(x).toArray();
    assert.deepEqual(b, a);
    const img = loaded.decode(loaded.encode(x));
    assert.deepEqual(img.shape, [4, 1, 28, 28]);
    assert.throws(() => loaded.decode(T.tensor(Array(49).fill(32), [1, 7, 7], 'i32')), /code 32 at position 0 is outside the codebook \(0…31\)/);
    assert.throws(() => loaded.encode(T.zeros([1, 1, 14, 14])), /images must be \(B, 1, 28, 28\), got \[1, 1, 14, 14\]/);
  });
  writeFileSync(path.join(out, 'config.json'), JSON.stringify({ model_type: 'llama' }));
  await assert.rejects(loadImageTokenizer(out), /config\.json: model_type "llama" is not an image tokenizer/);
});

test('CLI: train on a folder of PNGs, encode and decode; errors name the file or option', () => {
  const imgs = path.join(dir, 'imgs');
  const { train } = loadMnist();
  execFileSync('mkdir', ['-p', imgs]);
  for (let i = 0; i < 12; i++) writePng(path.join(imgs, `d${String(i).padStart(2, '0')}.png`), { width: 28, height: 28, pixels: train.pixels.subarray(i * 784, (i + 1) * 784) });
  const out = path.join(dir, 'cli');
  const tr = spawnSync(process.execPath, [BIN, 'image-tokenizer', 'train', '--images', imgs, '--steps', '3', '--batch-size', '4', '--codes', '16', '--out', out, '--threads', '1'], { encoding: 'utf8' });
  assert.equal(tr.status, 0, tr.stderr);
  assert.match(tr.stdout, /held-out reconstruction: MSE [\d.]+, PSNR [\d.]+ dB; codebook: \d+ of 16 codes used/);
  const codes = path.join(dir, 'codes.json');
  const enc = spawnSync(process.execPath, [BIN, 'image-tokenizer', 'encode', '--model', out, '--image', path.join(imgs, 'd00.png'), '--out', codes], { encoding: 'utf8' });
  assert.equal(enc.status, 0, enc.stderr);
  const grid = JSON.parse(readFileSync(codes, 'utf8')).codes as number[][];
  assert.equal(grid.length, 7);
  const png = path.join(dir, 'back.png');
  const dec = spawnSync(process.execPath, [BIN, 'image-tokenizer', 'decode', '--model', out, '--codes', codes, '--out', png], { encoding: 'utf8' });
  assert.equal(dec.status, 0, dec.stderr);
  assert.deepEqual([readPng(png).width, readPng(png).height], [28, 28]);
  writeFileSync(codes, JSON.stringify({ codes: grid.map((r, i) => (i === 2 ? [...r.slice(0, 6), 99] : r)) }));
  const bad = spawnSync(process.execPath, [BIN, 'image-tokenizer', 'decode', '--model', out, '--codes', codes, '--out', png], { encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /codes\.json: code 99 at row 2, column 6 is not a code id of this tokenizer \(0…15\)/);
  writePng(path.join(imgs, 'z-wide.png'), { width: 30, height: 28, pixels: new Float32Array(30 * 28) });
  assert.throws(() => loadPngFolder(imgs), /z-wide\.png: is 30×28; the first image \(d00\.png\) is 28×28/);
  const small = spawnSync(process.execPath, [BIN, 'image-tokenizer', 'encode', '--model', out, '--image', path.join(imgs, 'z-wide.png')], { encoding: 'utf8' });
  assert.match(small.stderr, /z-wide\.png: the image is 30×28; the image tokenizer takes 28×28 grey images/);
  const usage = spawnSync(process.execPath, [BIN, 'image-tokenizer', 'paint'], { encoding: 'utf8' });
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /expected train, encode or decode, got 'paint'/);
});
