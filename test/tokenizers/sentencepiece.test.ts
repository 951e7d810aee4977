// SentencePiece .model and llama2.c tokenizer.bin against the ids the sentencepiece library
// produced (test/fixtures/tokenizers/sp_expected.json, from scripts/gen_tokenizer_fixtures.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Llama2cTokenizer, loadTokenizer, SentencePieceTokenizer, TokenizerFormatError } from '../../src/tokenizers/index.js';

const FIX = new URL('../../../test/fixtures/tokenizers/', import.meta.url).pathname;
interface Case { text: string; ids: number[]; pieces: string[]; decoded: string }
const expected = JSON.parse(readFileSync(join(FIX, 'sp_expected.json'), 'utf8')) as {
  models: Record<string, { vocab_size: number; bos_id: number; eos_id: number; unk_id: number; cases: Case[] }>;
};

for (const name of ['sp_bpe', 'sp_nfkc']) {
  test(`${name}.model: same ids, pieces and decode as the sentencepiece library`, () => {
    const tok = loadTokenizer(join(FIX, `${name}.model`));
    assert.ok(tok instanceof SentencePieceTokenizer);
    const exp = expected.models[name];
    assert.equal(tok.vocabSize, exp.vocab_size);
    assert.equal(tok.bosId, exp.bos_id);
    assert.equal(tok.eosId, exp.eos_id);
    assert.equal(tok.unkId, exp.unk_id);
    for (const c of exp.cases) {
      const ids = tok.encode(c.text);
      assert.deepEqual(ids, c.ids, `encode ${JSON.stringify(c.text)}`);
      const pieces: Array<string | undefined> = ids.map((i: number): string | undefined => tok.idToToken(i));
      assert.deepEqual(pieces, c.pieces);
      assert.equal(tok.decode(c.ids), c.decoded, `decode ${JSON.stringify(c.text)}`);
    }
  });
}

test('sp_bpe: byte fallback covers unseen characters and round-trips exactly', () => {
  const tok = loadTokenizer(join(FIX, 'sp_bpe.model'));
  for (const text of ['龘 한국어 🦙', 'Mixed 中文 and English 😀', '  two  spaces  ', '\t\n']) {
    const ids = tok.encode(text);
    assert.ok(!ids.includes(tok.unkId!), `no unk in ${JSON.stringify(text)}`);
    assert.equal(tok.decode(ids), text);
  }
  const ids = tok.encode('🦙');
  assert.ok(ids.slice(1).every((i) => /^<0x[0-9A-F]{2}>$/.test(tok.idToToken(i)!)), 'llama emoji as byte pieces');
});

test('sp_bpe: BOS/EOS, control tokens in text, skipSpecial', () => {
  const tok = loadTokenizer(join(FIX, 'sp_bpe.model'));
  const plain = tok.encode('hello world');
  assert.deepEqual(tok.encode('hello world', { bos: true, eos: true }), [1, ...plain, 2]);
  assert.deepEqual(tok.encode('<s>hello world</s>'), [1, ...plain, 2]);
  assert.notDeepEqual(tok.encode('<s>hello', { specials: false }).slice(0, 1), [1]);
  assert.equal(tok.decode([1, ...plain, 2]), 'hello world');
  assert.equal(tok.decode([1, ...plain, 2], { skipSpecial: true }), 'hello world');
  assert.equal(tok.tokenToId('<s>'), 1);
  assert.ok(tok.specialTokens.has('</s>'));
});

test('streaming decode holds back split UTF-8 sequences of byte-fallback tokens', () => {
  const tok = loadTokenizer(join(FIX, 'sp_bpe.model'));
  const text = 'Hi 龘🦙 and 你好 world';
  const ids = tok.encode(text, { bos: true });
  const s = tok.decodeStream();
  const parts = ids.map((id) => s.push(id));
  assert.equal(parts.join('') + s.flush(), text);
  assert.ok(parts.every((p) => !p.includes('\uFFFD')));
  // The first byte of 龘 (3 bytes) alone yields nothing.
  const lone = tok.encode('龘').filter((i) => /^<0x/.test(tok.idToToken(i)!));
  const s2 = tok.decodeStream();
  assert.equal(s2.push(lone[0]), '');
  assert.equal(s2.push(lone[1]), '');
  assert.equal(s2.push(lone[2]), '龘');
});

test('llama2.c tokenizer.bin: same ids as sentencepiece (except user-defined symbols, which it lacks)', () => {
  const tok = loadTokenizer(join(FIX, 'tokenizer.bin'));
  assert.ok(tok instanceof Llama2cTokenizer);
  assert.equal(tok.vocabSize, expected.models.sp_bpe.vocab_size);
  for (const c of expected.models.sp_bpe.cases) {
    if (c.text.includes('<|user|>')) continue;
    assert.deepEqual(tok.encode(c.text), c.ids, `encode ${JSON.stringify(c.text)}`);
    assert.equal(tok.decode(c.ids), c.decoded);
  }
  assert.deepEqual(tok.encode('hi', { bos: true, eos: true }).slice(0, 1), [1]);
  assert.equal(tok.encode('hi', { eos: true }).at(-1), 2);
  const s = tok.decodeStream();
  const ids = tok.encode('你好 🦙', { bos: true });
  assert.equal(ids.map((i) => s.push(i)).join('') + s.flush(), '你好 🦙');
});

test('llama2.c export of the SentencePiece model is byte-identical to llama2.c tokenizer.py output', () => {
  const sp = SentencePieceTokenizer.fromFile(join(FIX, 'sp_bpe.model'));
  const bin = Llama2cTokenizer.fromSentencePiece(sp).serialize();
  assert.deepEqual(Buffer.from(bin), readFileSync(join(FIX, 'tokenizer.bin')));
});

test('bad SentencePiece / tokenizer.bin files: errors name the file and field, no read past the buffer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tslm-tok-'));
  const model = readFileSync(join(FIX, 'sp_bpe.model'));
  const cut = join(dir, 'cut.model');
  writeFileSync(cut, model.subarray(0, 5000));
  assert.throws(() => loadTokenizer(cut), (e: Error) => e instanceof TokenizerFormatError && e.message.startsWith(cut) && /pieces\[\d+\]|ModelProto/.test(e.message));
  const bin = readFileSync(join(FIX, 'tokenizer.bin'));
  const cutBin = join(dir, 'cut.bin');
  writeFileSync(cutBin, bin.subarray(0, bin.length - 3));
  assert.throws(() => loadTokenizer(cutBin), (e: Error) => e instanceof TokenizerFormatError && e.message.includes('cut.bin') && /token \d+/.test(e.message));
  const huge = Buffer.from(bin);
  huge.writeInt32LE(1 << 30, 4 + 4); // first token's length
  writeFileSync(cutBin, huge);
  assert.throws(() => loadTokenizer(cutBin), /token 0 length 1073741824 is outside/);
  assert.throws(() => Llama2cTokenizer.parse(bin, 'x.bin', 99999), /x\.bin: vocab_size expected 99999 tokens/);
  const junk = join(dir, 'junk.model');
  writeFileSync(junk, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x0a]));
  assert.throws(() => loadTokenizer(junk), TokenizerFormatError);
  const empty = join(dir, 'empty.txt');
  writeFileSync(empty, 'hello');
  assert.throws(() => loadTokenizer(empty), /empty\.txt: \(file\) is not a tokenizer\.json/);
  assert.throws(() => loadTokenizer(join(dir, 'missing.json')), /missing\.json: \(file\) cannot be read: ENOENT/);
  // A unigram model is refused by name.
  const proto = readFileSync(join(FIX, 'sp_nfkc.model'));
  const sp = SentencePieceTokenizer.fromFile(join(FIX, 'sp_nfkc.model'));
  assert.throws(() => new SentencePieceTokenizer({ ...sp.proto, trainer: { ...sp.proto.trainer, modelType: 1 } }, 'uni.model'), /uni\.model: trainer_spec\.model_type UNIGRAM is not supported/);
  void proto;
  assert.throws(() => sp.decode([sp.vocabSize]), /out of range/);
});

test('tokenizer.bin with Chinese and emoji pieces: serialize() gives back the bytes parse() read, and decoding uses each piece\'s bytes', () => {
  const vocab = ['<unk>', '\n<s>\n', '\n</s>\n', ...Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`), ' 中文', '分词', '😀', ' a'];
  const tok = new Llama2cTokenizer(vocab, new Float32Array(vocab.length).map((_, i) => -i), undefined, 'mem');
  // max_token_length by default: the longest token's UTF-8 bytes (' 中文': 7).
  assert.equal(tok.maxTokenLength, 7);
  const again = Llama2cTokenizer.parse(tok.serialize(), 'again');
  assert.deepEqual(again.vocab, vocab);
  assert.deepEqual(Buffer.from(again.serialize()), Buffer.from(tok.serialize()));
  const ids = [1, 259, 260, 261, 262];
  assert.equal(tok.decode(ids), '中文分词😀 a');
});
