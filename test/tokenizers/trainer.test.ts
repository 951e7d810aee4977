// The byte-level BPE trainer: round trips (Chinese, emoji), special tokens, speed, and its
// tokenizer.json loaded by @huggingface/tokenizers (transformers.js's tokenizer) with identical ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer as RefTokenizer } from '@huggingface/tokenizers';
import { loadTokenizer, trainByteLevelBPE } from '../../src/tokenizers/index.js';
import { makeCorpus } from './corpus.js';
import { PARITY_TEXTS } from './real_vocabs.js';

const corpus = makeCorpus(400_000, 3);
const held = makeCorpus(20_000, 99);

for (const pattern of ['gpt2', 'llama3'] as const) {
  test(`train ${pattern}-style byte-level BPE; HF tokenizers loads the saved tokenizer.json and encodes identically`, () => {
    const tok = trainByteLevelBPE(corpus, { vocabSize: 2000, pattern, specialTokens: ['<|endoftext|>', '<|pad|>'] });
    assert.equal(tok.vocabSize, 2000);
    assert.equal(tok.tokenToId('<|endoftext|>'), 0);
    const dir = mkdtempSync(join(tmpdir(), 'tslm-train-'));
    const path = join(dir, 'tokenizer.json');
    tok.save(path);
    const ref = new RefTokenizer(JSON.parse(readFileSync(path, 'utf8')), {});
    const back = loadTokenizer(path);
    for (const text of [...PARITY_TEXTS, ...held.split('\n').slice(0, 200), '<|endoftext|>after'] ) {
      const ids = back.encode(text);
      assert.deepEqual(ids, ref.encode(text, { add_special_tokens: false }).ids, `encode ${JSON.stringify(text)}`);
      assert.equal(back.decode(ids), text, 'exact round trip');
    }
    // Chinese words become multi-byte tokens, not 3 tokens per character.
    const zh = '我们今天学习语言模型';
    assert.ok(back.encode(zh).length <= 6, `Chinese compresses: ${back.encode(zh).length} tokens`);
    assert.ok(back.encode(held).length < Buffer.byteLength(held) / 2.5, 'compresses held-out text');
  });
}

test('trainer: deterministic, stops at minFrequency, rejects a too small vocab', () => {
  const a = trainByteLevelBPE(corpus.slice(0, 50_000), { vocabSize: 600 });
  const b = trainByteLevelBPE(corpus.slice(0, 50_000), { vocabSize: 600 });
  assert.deepEqual(a.toJSON(), b.toJSON());
  const small = trainByteLevelBPE('ab ab ab cd', { vocabSize: 1000, minFrequency: 2 });
  assert.ok(small.vocabSize < 300);
  assert.throws(() => trainByteLevelBPE('x', { vocabSize: 100 }), /vocabSize 100 is smaller than 256 bytes/);
});

test('trainer speed: 8K vocab on 3 MB of text well under a minute', () => {
  const big = makeCorpus(3_000_000, 11);
  const t0 = performance.now();
  const tok = trainByteLevelBPE(big, { vocabSize: 8192, pattern: 'llama3' });
  const s = (performance.now() - t0) / 1000;
  assert.equal(tok.vocabSize, 8192);
  assert.ok(s < 50, `took ${s.toFixed(1)} s`);
});
