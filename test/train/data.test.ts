// Training data readers: Parquet as Hugging Face datasets store it (a "text" column), written
// here by hyparquet-writer; documents, errors and the token file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { readDocuments, tokenizeToFile, TokenFile, splitBatchers } from '../../src/index.js';

test('Parquet "text" columns are read as documents and tokenised; errors name the file', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tslm-data-'));
  try {
    const texts = ['The first document.', '第二篇文档，中文。', 'Third: emoji 🙂 and digits 123.'];
    const file = path.join(dir, 'train-00000-of-00001.parquet');
    writeFileSync(file, new Uint8Array(parquetWriteBuffer({ columnData: [{ name: 'text', data: texts, type: 'STRING' }, { name: 'id', data: [1, 2, 3], type: 'INT32' }] })));
    const docs: string[] = [];
    for await (const d of readDocuments(file)) docs.push(d);
    assert.deepEqual(docs, texts);
    // byte-level "tokenizer" for the test: UTF-8 bytes
    const enc = (s: string) => Array.from(new TextEncoder().encode(s));
    const out = path.join(dir, 'tokens.bin');
    const r = await tokenizeToFile(file, out, { encode: enc, separator: 256 });
    const total = texts.reduce((n, t) => n + enc(t).length + 1, 0);
    assert.deepEqual(r, { documents: 3, tokens: total });
    const tf = new TokenFile(out);
    assert.equal(tf.length, total);
    assert.deepEqual(Array.from(tf.read(0, 3)), enc('The'));
    const { train, val } = splitBatchers(tf, 8, 2, { valFraction: 0.25 });
    assert.equal(train.count + val.count, Math.floor((total - 1) / 8));
    tf.close();
    const bad = path.join(dir, 'bad.parquet');
    writeFileSync(bad, new Uint8Array(parquetWriteBuffer({ columnData: [{ name: 'content', data: ['x'], type: 'STRING' }] })));
    await assert.rejects(async () => { for await (const _ of readDocuments(bad)) void _; }, /bad\.parquet/);
    writeFileSync(bad, 'PAR1 not really');
    await assert.rejects(async () => { for await (const _ of readDocuments(bad)) void _; }, /bad\.parquet: cannot read Parquet/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
