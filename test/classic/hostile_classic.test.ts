// Hostile and corrupt ARPA and word2vec files and corpora (issue #21): declared counts checked
// against the file's size before anything is allocated (peak RSS measured in a child process),
// non-finite values refused naming the line and word, long lines and odd bytes. Mutants are made
// here from small valid files; every case asserts the error class, the file and the line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { ClassicFormatError, KeyedVectors, parseArpa, readArpa, readLines, readSentences, toArpa, trainNgram } from '../../src/classic/index.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'tslm-hostile-classic-'));
const write = (name: string, content: string | Buffer): string => {
  const f = path.join(tmp, name);
  writeFileSync(f, content);
  return f;
};
const fails = (f: () => unknown, file: string, line: number | null, re: RegExp): void => {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof ClassicFormatError, `expected ClassicFormatError, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    assert.equal(e.file, file);
    if (line !== null) assert.equal(e.line, line, e.message);
    assert.match(e.message, re);
    assert.ok(e.message.length < 400, 'short message');
    return true;
  });
};

/** Peak RSS (MB) of a child that runs `body` (with `m`: the classic module) and prints what it threw. */
function childPeak(body: string): { out: string; peakMb: number } {
  const mod = new URL('../../src/classic/index.js', import.meta.url).href;
  const script = `const m = await import(${JSON.stringify(mod)}); let out = 'no error'; try { ${body} } catch (e) { out = e.name + ': ' + e.message; } console.log(JSON.stringify({ out, peakMb: process.resourceUsage().maxRSS / 1024 }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

const corpus = [['the', 'cat', 'sat'], ['the', 'dog', 'sat'], ['a', 'cat', 'ran'], ['猫', '坐', '在', '垫子', '上']];
const arpa = toArpa(trainNgram(corpus, { order: 2, discountFallback: true }));
const lines = arpa.split('\n');
const at = (s: string): number => lines.findIndex((l) => l.startsWith(s));

test('ARPA: huge declared counts are refused against the file size, with bounded memory', () => {
  const huge = lines.map((l) => (l.startsWith('ngram 1=') ? 'ngram 1=1000000000' : l)).join('\n');
  const f = write('huge.arpa', huge);
  fails(() => readArpa(f), f, at('ngram 1=') + 1, /declares ngram 1=1000000000, but the \d+-byte file has room for at most \d+ such lines/);
  const p = childPeak(`m.readArpa(${JSON.stringify(f)});`);
  assert.match(p.out, /^ClassicFormatError: .*huge\.arpa:\d+: \\data\\ declares ngram 1=1000000000/);
  assert.ok(p.peakMb < 256, `peak RSS ${p.peakMb.toFixed(0)} MB while rejecting a ${huge.length}-byte file`);
  fails(() => parseArpa(lines.map((l) => (l.startsWith('ngram 2=') ? `ngram 2=${'9'.repeat(400)}` : l)).join('\n'), 'm.arpa'), 'm.arpa', at('ngram 2=') + 1, /declares ngram 2=9{20}…/);
  // An order nobody writes.
  const many = ['\\data\\', ...Array.from({ length: 70 }, (_, i) => `ngram ${i + 1}=0`), ''].join('\n') + 'x'.repeat(10_000);
  fails(() => parseArpa(many, 'o.arpa'), 'o.arpa', 66, /order 65 \(at most 64/);
});

test('ARPA: NaN, Inf and unparseable log-probabilities and backoffs are refused naming the line; -99 is kept', () => {
  const uni = at('\\1-grams:') + 1; // first unigram line index
  const set = (i: number, col: number, v: string) => lines.map((l, j) => (j === i ? l.split('\t').map((x, k) => (k === col ? v : x)).join('\t') : l)).join('\n');
  for (const v of ['NaN', 'nan', 'Infinity', '-inf', '1e999', '--1', '0x', '1,5']) {
    fails(() => parseArpa(set(uni + 1, 0, v), 'p.arpa'), 'p.arpa', uni + 2, /bad log10 probability/);
    fails(() => parseArpa(set(uni + 1, 2, v), 'p.arpa'), 'p.arpa', uni + 2, /bad log10 backoff/);
  }
  const m = parseArpa(set(uni + 1, 0, '-99'), 'p.arpa');
  assert.equal(m.order, 2);
  // A 10 MB token is named briefly.
  fails(() => parseArpa(set(uni + 1, 0, 'x'.repeat(10_000_000)), 'p.arpa'), 'p.arpa', uni + 2, /bad log10 probability "x{24}…"/);
  // CRLF and Chinese words read as well as LF.
  assert.equal(parseArpa(arpa.replaceAll('\n', '\r\n'), 'crlf.arpa').vocab.has('垫子'), true);
});

test('ARPA: truncations at every line are errors naming the file (never a crash or a model)', () => {
  for (let i = 1; i < lines.length - 2; i++) {
    const cut = lines.slice(0, i).join('\n');
    assert.throws(() => parseArpa(cut, 'cut.arpa'), (e: unknown) => e instanceof ClassicFormatError && e.file === 'cut.arpa', `cut after line ${i}`);
  }
});

const good = '3 2\nthe 0.5 -1.25\n猫 1e-3 2\ncat -0 0.75\n';

test('word2vec: a header that declares more than the file holds is refused before allocating', () => {
  const f = write('huge.txt', '2000000000 1000\nthe 1 2\n');
  fails(() => KeyedVectors.load(f), f, 1, /declares 2000000000 words of 1000 dimensions, but the \d+-byte file has room for at most 0 \(text\)/);
  const p = childPeak(`m.KeyedVectors.load(${JSON.stringify(f)});`);
  assert.match(p.out, /^ClassicFormatError: .*huge\.txt:1: header declares/);
  assert.ok(p.peakMb < 256, `peak RSS ${p.peakMb.toFixed(0)} MB`);
  const bin = Buffer.concat([Buffer.from('100000 300\nthe '), Buffer.alloc(1200), Buffer.from('\n')]);
  const fb = write('huge.bin', bin);
  fails(() => KeyedVectors.load(fb), fb, 1, /room for at most 1 \(binary\)/);
  fails(() => KeyedVectors.load(write('dim.txt', '1 99999999999\na 1\n')), path.join(tmp, 'dim.txt'), 1, /dimension must be in \[1, 1048576\], got 999999999999?…?/);
  fails(() => KeyedVectors.load(write('nohead.txt', 'x'.repeat(5000))), path.join(tmp, 'nohead.txt'), 1, /no header line/);
});

test('word2vec: NaN and Inf are refused naming the word and line (text and binary), unless allowed', () => {
  const f = write('nan.txt', good.replace('1e-3 2\n', '1e-3 NaN\n'));
  fails(() => KeyedVectors.load(f), f, 3, /the vector of "猫" has "NaN" at dimension 2 \(expected finite numbers/);
  fails(() => KeyedVectors.load(write('inf.txt', good.replace('-1.25', '-inf'))), path.join(tmp, 'inf.txt'), 2, /vector of "the" has "-inf" at dimension 2/);
  fails(() => KeyedVectors.load(write('big.txt', good.replace('-1.25', '1e39'))), path.join(tmp, 'big.txt'), 2, /the vector of "the" has "1e39" at dimension 2 \(expected finite numbers/);
  assert.ok(Number.isNaN(KeyedVectors.load(f, { allowNonFinite: true }).vector('猫')[1]));
  fails(() => KeyedVectors.load(write('x.txt', good.replace('0.75', '0.7x'))), path.join(tmp, 'x.txt'), 4, /bad number "0\.7x" in the vector of "cat"/);
  const kv = KeyedVectors.load(write('ok.txt', good));
  const binFile = path.join(tmp, 'ok.bin');
  kv.save(binFile, { binary: true });
  const b = Buffer.from(readFileSync(binFile));
  const nanAt = b.indexOf(Buffer.from('猫 ')) + Buffer.byteLength('猫 ') + 4;
  b.writeFloatLE(NaN, nanAt);
  const fnan = write('nan.bin', b);
  fails(() => KeyedVectors.load(fnan), fnan, 3, /the vector of "猫" has NaN at dimension 2 .*allowNonFinite/);
  assert.ok(Number.isNaN(KeyedVectors.load(fnan, { allowNonFinite: true }).vector('猫')[1]));
  // Chinese words round-trip in both formats.
  assert.ok(Math.abs(KeyedVectors.load(binFile).similarity('猫', 'the') - kv.similarity('猫', 'the')) < 1e-6);
});

test('word2vec: truncations and byte flips of a binary file are errors or loads, never crashes', () => {
  const kv = new KeyedVectors(['a', 'bb', '中文'], 5, Float32Array.from({ length: 15 }, (_, i) => (i % 7) - 3));
  const f = path.join(tmp, 'm.bin');
  kv.save(f, { binary: true });
  const bytes = readFileSync(f);
  for (let n = 0; n < bytes.length - 1; n++) { // (the final newline is optional)
    const g = write('cut.bin', Buffer.from(bytes.subarray(0, n)));
    assert.throws(() => KeyedVectors.load(g, { binary: true }), (e: unknown) => e instanceof ClassicFormatError && e.file === g, `cut at ${n}`);
  }
  for (let i = 0; i < bytes.length; i++) {
    const m = Buffer.from(bytes);
    m[i] ^= 0xff;
    const g = write('flip.bin', m);
    try {
      const r = KeyedVectors.load(g);
      for (const x of r.vectors) assert.ok(Number.isFinite(x), `flip at ${i} gave a non-finite value`);
    } catch (e) {
      assert.ok(e instanceof ClassicFormatError && e.file === g, `flip at ${i}: ${(e as Error).name}: ${(e as Error).message}`);
    }
  }
});

test('corpora: a long line is an error naming its number, found without holding it; CRLF, BOM, no final newline, Chinese', () => {
  const f = write('long.txt', 'a b\n' + 'x'.repeat(3 << 20) + '\nc\n');
  assert.throws(() => [...readLines(f, { maxLineChars: 1 << 20 })], (e: unknown) => e instanceof ClassicFormatError && e.file === f && e.line === 2 && /longer than 1048576 characters/.test(e.message));
  const g = write('odd.txt', '\ufeff你好 世界\r\nthe  cat\r\n\r\n' + '\n'.repeat(100_000) + 'last line');
  assert.deepEqual([...readSentences(g)], [['你好', '世界'], ['the', 'cat'], ['last', 'line']]);
  const lns = [...readLines(g)];
  assert.equal(lns.length, 100_004);
  assert.deepEqual(lns.at(-1), ['last line', 100_004]);
  // A 2-byte character split across the 1 MiB read boundary.
  const h = write('split.txt', 'a'.repeat((1 << 20) - 1) + '猫\n');
  assert.equal([...readLines(h)][0][0].slice(-1), '猫');
});
