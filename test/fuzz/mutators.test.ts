// The fuzzer's mutators: seeded determinism, and each one changes what it says it changes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { shutdown } from '../../src/index.js';
import { Rng, mixSeed } from '../../src/fuzz/rng.js';
import { makeBaseInputs, type BaseInputs } from '../../src/fuzz/inputs.js';
import { FORMATS } from '../../src/fuzz/formats.js';
import {
  mutate, safetensorsLayout, ggufLayout, tokenizerBinLengths, SAFETENSORS_MUTATORS, GGUF_MUTATORS, LLAMA2C_MUTATORS, LLAMA2C_FIELDS, TEXT_MUTATORS,
  JSON_MUTATORS, ARPA_MUTATORS, W2V_TEXT_MUTATORS, W2V_BIN_MUTATORS, TOKENIZER_BIN_MUTATORS, jsonSlots, replaceSlot, onJsonlLine, text, utf8,
} from '../../src/fuzz/mutators.js';

let dir = '', base: BaseInputs;
before(async () => { dir = mkdtempSync(path.join(tmpdir(), 'tslm-fuzz-mut-')); base = await makeBaseInputs(path.join(dir, 'base')); });
after(async () => { rmSync(dir, { recursive: true, force: true }); await shutdown(); });
const read = (f: string): Uint8Array => new Uint8Array(readFileSync(f));
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0;

test('Rng: the same seed gives the same stream, other seeds another; mixSeed separates formats and indices', () => {
  const a = new Rng(7), b = new Rng(7), c = new Rng(8);
  const xs = Array.from({ length: 50 }, () => a.next());
  assert.deepEqual(xs, Array.from({ length: 50 }, () => b.next()));
  assert.notDeepEqual(xs, Array.from({ length: 50 }, () => c.next()));
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  assert.notEqual(mixSeed(1, 'GGUF', 0), mixSeed(1, 'GGUF', 1));
  assert.notEqual(mixSeed(1, 'GGUF', 0), mixSeed(1, 'ARPA', 0));
  assert.equal(mixSeed(1, 'GGUF', 3), mixSeed(1, 'GGUF', 3));
});

test('every mutator of every format: deterministic for a seed, and its mutant differs from the base', () => {
  for (const spec of FORMATS) {
    for (const t of spec.targets) {
      const src = spec.files(base).map(([s, n]) => [s, n] as const);
      // the target's base bytes: the source file under the workspace name
      const [s, n] = src.find(([, n]) => t.file === n || t.file.startsWith(n + '/'))!;
      const file = t.file === n ? s : path.join(s, t.file.slice(n.length + 1));
      const b = read(file);
      for (const [name, m] of Object.entries(t.mutators)) {
        for (let seed = 0; seed < 2; seed++) {
          const x = m(b, new Rng(seed)), y = m(b, new Rng(seed));
          if (!x) { assert.equal(y, null); continue; }
          assert.ok(y && same(x.data, y.data) && x.kind === y.kind, `${spec.name} ${t.file} ${name}: not deterministic`);
          assert.ok(!same(x.data, b), `${spec.name} ${t.file} ${name} (seed ${seed}, ${x.kind}): the mutant equals the base`);
          assert.ok(x.expect === 'reject' || x.expect === 'any');
        }
      }
      const a = mutate(b, t.mutators, new Rng(5)), c = mutate(b, t.mutators, new Rng(5));
      assert.equal(a.kind, c.kind);
    }
  }
});

test('safetensors mutators change the header length, a shape, the data; NaN lands in a tensor', () => {
  const b = read(path.join(base.hf, 'model.safetensors'));
  const lay = safetensorsLayout(b)!;
  assert.ok(lay && Object.keys(lay.header).length > 3);
  for (let s = 0; s < 10; s++) {
    const m = SAFETENSORS_MUTATORS['header-length'](b, new Rng(s))!;
    assert.notEqual(new DataView(m.data.buffer).getBigUint64(0, true), BigInt(lay.headerLen), m.kind);
    assert.equal(m.expect, 'reject');
    const sh = SAFETENSORS_MUTATORS['shape-dim'](b, new Rng(s));
    if (sh) {
      const l2 = safetensorsLayout(sh.data)!, name = /shape (\S+)\[(\d+)\]=(\S+)/.exec(sh.kind)!;
      assert.equal(String(l2.header[name[1]].shape[Number(name[2])]), name[3]);
      assert.notDeepEqual(l2.header[name[1]].shape, lay.header[name[1]].shape);
    }
    const nan = SAFETENSORS_MUTATORS['nan-weights'](b, new Rng(s))!;
    const t = lay.header[nan.kind.split(' ').pop()!];
    const f = new Float32Array(nan.data.slice(lay.dataStart + t.data_offsets[0], lay.dataStart + t.data_offsets[1]).buffer);
    assert.ok(f.some((x) => !Number.isFinite(x)), nan.kind);
    assert.equal(nan.expect, 'reject');
    const mf = SAFETENSORS_MUTATORS['mantissa-flip'](b, new Rng(s))!;
    assert.ok(new Float32Array(mf.data.slice(lay.dataStart).buffer.slice(0, (b.length - lay.dataStart) & ~3)).every(Number.isFinite));
    const tr = SAFETENSORS_MUTATORS['truncate-data'](b, new Rng(s))!;
    assert.ok(tr.data.length >= lay.dataStart && tr.data.length < b.length && tr.expect === 'reject');
  }
});

test('GGUF layout finds counts, dims and offsets; header-field rewrites exactly one of them', () => {
  const b = read(base.gguf);
  const lay = ggufLayout(b)!;
  assert.ok(lay.fields.some((f) => f.what === 'tensor_count') && lay.fields.some((f) => f.what.endsWith('.dims[0]')) && lay.fields.some((f) => /block_count$/.test(f.what) && f.critical));
  assert.ok(lay.tensors.length >= 9 && lay.dataStart >= lay.headerEnd && lay.dataStart % 32 === 0);
  for (let s = 0; s < 20; s++) {
    const m = GGUF_MUTATORS['header-field'](b, new Rng(s));
    if (!m) continue;
    const f = lay.fields.find((x) => m.kind.startsWith(`gguf-${x.what}=`))!;
    assert.ok(f, m.kind);
    const diff = [...m.data].map((x, i) => (x !== b[i] ? i : -1)).filter((i) => i >= 0);
    assert.ok(diff.length > 0 && diff.every((i) => i >= f.pos && i < f.pos + f.width), `${m.kind}: changed bytes ${diff} outside ${f.pos}+${f.width}`);
  }
});

test('llama2.c header fields, tokenizer.bin lengths, word2vec and ARPA counts change as named', () => {
  const b = read(base.llama2c);
  for (let s = 0; s < 10; s++) {
    const m = LLAMA2C_MUTATORS['header-field'](b, new Rng(s));
    if (!m) continue;
    const [, field, v] = /^llama2c-(\w+)=(-?\d+)$/.exec(m.kind)!;
    assert.equal(new DataView(m.data.buffer).getInt32(8 + 4 * LLAMA2C_FIELDS.indexOf(field as typeof LLAMA2C_FIELDS[number]), true), Number(v));
  }
  const tb = read(base.llama2cTokenizer);
  assert.equal(tokenizerBinLengths(tb).length, 300);
  const tl = TOKENIZER_BIN_MUTATORS['token-length'](tb, new Rng(1))!;
  assert.match(tl.kind, /token-length=/);
  const w = read(base.w2vText), header = text(w).split('\n')[0];
  for (let s = 0; s < 5; s++) {
    const m = W2V_TEXT_MUTATORS['header-count'](w, new Rng(s));
    if (m) assert.notEqual(text(m.data).split('\n')[0], header);
    const nf = W2V_TEXT_MUTATORS['nonfinite-component'](w, new Rng(s))!;
    assert.match(text(nf.data), / (nan|NaN|inf|-inf|Infinity|1e999)( |\n)/);
  }
  const wb = read(base.w2vBin);
  const nb = W2V_BIN_MUTATORS['nonfinite-component'](wb, new Rng(2))!;
  assert.ok(!same(nb.data, wb) && nb.data.length === wb.length);
  const a = read(base.arpa);
  const ac = ARPA_MUTATORS['ngram-count'](a, new Rng(3))!;
  assert.notDeepEqual(text(ac.data).match(/^ngram \d+=\S+$/gm), text(a).match(/^ngram \d+=\S+$/gm));
});

test('text and JSON mutators: CRLF, BOM, invalid UTF-8, deep nesting, 50k properties, one JSONL line', () => {
  const t = utf8('a b\nc d\n');
  assert.equal(text(TEXT_MUTATORS.crlf(t, new Rng(1))!.data), 'a b\r\nc d\r\n');
  assert.deepEqual([...TEXT_MUTATORS.bom(t, new Rng(1))!.data.slice(0, 3)], [0xef, 0xbb, 0xbf]);
  assert.throws(() => new TextDecoder('utf-8', { fatal: true }).decode(TEXT_MUTATORS['invalid-utf8'](t, new Rng(1))!.data));
  assert.ok(TEXT_MUTATORS.nul(t, new Rng(1))!.data.includes(0));
  assert.equal(TEXT_MUTATORS['no-trailing-newline'](t, new Rng(1))!.data.length, t.length - 1);
  const doc = utf8(JSON.stringify({ a: [1, 2, { b: 'x' }], c: 'y' }));
  const deep = text(JSON_MUTATORS['deep-array-100k'](doc, new Rng(1))!.data);
  assert.ok(deep.includes('['.repeat(100_000)) && deep.includes(']'.repeat(100_000)));
  const props = JSON.parse(text(JSON_MUTATORS['props-50k'](doc, new Rng(1))!.data));
  assert.equal(jsonSlots(props, 1e6).filter((s) => /^p\d+$/.test(String(s.key))).length, 50_000);
  const huge = JSON_MUTATORS['huge-number'](doc, new Rng(2))!;
  assert.match(huge.kind, /json-huge-number at \/(a\/\d|.*)/);
  const o = JSON.parse('{"x":[1,{"y":2}]}');
  const slot = jsonSlots(o).find((s) => s.path === '/x/1/y')!;
  assert.equal(replaceSlot(o, slot, '"Z"'), '{"x":[1,{"y":"Z"}]}');
  assert.deepEqual(o, { x: [1, { y: 2 }] }, 'replaceSlot leaves the document as it was');
  const lines = utf8('{"text":"a"}\n{"text":"b"}\n');
  const m = onJsonlLine(JSON_MUTATORS['wrong-type'])(lines, new Rng(3))!;
  const out = text(m.data).split('\n');
  assert.equal(out.length, 3);
  assert.equal(out.filter((l, i) => l !== ['{"text":"a"}', '{"text":"b"}', ''][i]).length, 1, m.kind);
});
