// HF tokenizer.json: ids and decoded text against @huggingface/tokenizers (tokenizers.js, the
// tokenizer of transformers.js) on real vocabularies (LLaMA-2, LLaMA-3, GPT-2, and the Qwen2 and
// Metaspace configurations on top of them) and varied text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer as RefTokenizer } from '@huggingface/tokenizers';
import { HFTokenizer, loadTokenizer, TokenizerFormatError } from '../../src/tokenizers/index.js';
import { gpt2Json, llama2Json, llama2MetaspaceJson, llama3Json, PARITY_TEXTS, qwenStyleJson } from './real_vocabs.js';

const families: Array<[string, () => Promise<Record<string, unknown>> | Record<string, unknown>]> = [
  ['LLaMA-2 (Prepend/Replace normalizer, byte fallback)', llama2Json],
  ['LLaMA-2 vocab, Metaspace pre-tokenizer (prepend_scheme first)', llama2MetaspaceJson],
  ['LLaMA-3 (Split regex + ByteLevel, ignore_merges)', llama3Json],
  ['GPT-2 (ByteLevel)', gpt2Json],
  ['GPT-2 vocab, Qwen2 pre-tokenizer and NFC', qwenStyleJson],
];

for (const [name, make] of families) {
  test(`tokenizer.json parity with @huggingface/tokenizers: ${name}`, async () => {
    const json = await make();
    const ours = new HFTokenizer(json, name);
    const ref = new RefTokenizer(json, {});
    for (const text of PARITY_TEXTS) {
      const want = ref.encode(text, { add_special_tokens: false }).ids;
      const got = ours.encode(text);
      assert.deepEqual(got, want, `encode ${JSON.stringify(text)}`);
      if (want.length > 0) {
        assert.equal(ours.decode(want), ref.decode(want, { clean_up_tokenization_spaces: false }), `decode ${JSON.stringify(text)}`);
        assert.equal(ours.decode(want, { skipSpecial: true }), ref.decode(want, { skip_special_tokens: true, clean_up_tokenization_spaces: false }));
      }
      // Streaming gives the same text as decoding at once.
      const s = ours.decodeStream();
      assert.equal(got.map((id) => s.push(id)).join('') + s.flush(), ours.decode(got));
    }
  });
}

test('LLaMA-2 tokenizer.json: known ids, byte fallback, BOS/EOS and special tokens', async () => {
  const tok = new HFTokenizer(await llama2Json());
  // The ids Meta's tokenizer gives for "Hello world" (with BOS): 1 15043 3186.
  assert.deepEqual(tok.encode('Hello world', { bos: true }), [1, 15043, 3186]);
  assert.equal(tok.bosId, 1);
  assert.equal(tok.eosId, 2);
  assert.equal(tok.decode(tok.encode('🦙 龘', { bos: true, eos: true }), { skipSpecial: true }), '🦙 龘');
  assert.deepEqual(tok.encode('<s>hi').slice(0, 1), [1]);
  assert.notEqual(tok.encode('<s>hi', { specials: false })[0], 1);
  assert.equal(tok.idToToken(15043), '▁Hello');
  assert.equal(tok.tokenToId('▁world'), 3186);
});

test('LLaMA-3 tokenizer.json: BOS from tokenizer_config.json, special tokens in text', async () => {
  const tok = new HFTokenizer(await llama3Json(), 'tokenizer.json', { bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>' });
  assert.equal(tok.bosId, 128000);
  assert.equal(tok.eosId, 128009);
  const ids = tok.encode('<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>', { bos: true });
  assert.deepEqual(ids.slice(0, 2), [128000, 128006]);
  assert.equal(ids.at(-1), 128009);
  assert.equal(tok.decode(ids, { skipSpecial: true }), 'user\n\nHi');
});

test('tokenizer.json save → load round trip, and loadTokenizer finds tokenizer_config.json beside it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tslm-hf-'));
  const tok = new HFTokenizer(gpt2Json());
  tok.save(join(dir, 'tokenizer.json'));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<|endoftext|>', eos_token: { content: '<|endoftext|>' } }));
  const back = loadTokenizer(join(dir, 'tokenizer.json'));
  assert.equal(back.kind, 'hf');
  for (const t of PARITY_TEXTS) assert.deepEqual(back.encode(t), tok.encode(t));
  assert.equal(back.bosId, 50256);
  assert.equal(back.eosId, 50256);
});

test('bad tokenizer.json: errors name the file and the field', () => {
  const base = gpt2Json() as Record<string, any>;
  const bad = (patch: (j: Record<string, any>) => void, re: RegExp) => {
    const j = structuredClone(base);
    patch(j);
    assert.throws(() => new HFTokenizer(j, 'tokenizer.json'), (e: Error) => e instanceof TokenizerFormatError && re.test(e.message), re.source);
  };
  bad((j) => (j.model.type = 'WordPiece'), /^tokenizer\.json: model\.type "WordPiece" is not supported/);
  bad((j) => (j.model.type = 'Unigram'), /model\.type "Unigram" is not supported/);
  bad((j) => (j.normalizer = { type: 'BertNormalizer' }), /normalizer\.type "BertNormalizer" is not supported/);
  bad((j) => (j.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Nope' }] }), /pre_tokenizer\.pretokenizers\[0\]\.type "Nope" is not supported/);
  bad((j) => (j.decoder = { type: 'CTC' }), /decoder\.type "CTC" is not supported/);
  bad((j) => (j.model.merges = [...j.model.merges.slice(0, 3), 'zz?? qq??']), /model\.merges\[3\] "zz\?\?" is not in the vocabulary/);
  bad((j) => (j.model.merges = [42]), /model\.merges\[0\] must be/);
  bad((j) => (j.model.vocab = { a: -1 }), /model\.vocab\["a"\] must be a non-negative integer/);
  bad((j) => delete j.model, /tokenizer\.json: model is missing/);
  const dir = mkdtempSync(join(tmpdir(), 'tslm-hf-'));
  writeFileSync(join(dir, 'tokenizer.json'), '{"model": ');
  assert.throws(() => loadTokenizer(join(dir, 'tokenizer.json')), /tokenizer\.json: \(file\) is not valid JSON/);
  const tok = new HFTokenizer(gpt2Json());
  assert.throws(() => tok.decode([1e9]), /token id 1000000000 is out of range/);
  assert.throws(() => tok.decode([-1]), /out of range/);
});
