#!/usr/bin/python3
"""Generate the SentencePiece / llama2.c tokenizer fixtures in test/fixtures/tokenizers/.

Needs Debian's sentencepiece (`apt-get install python3-sentencepiece`) and the system Python:

    /usr/bin/python3 scripts/gen_tokenizer_fixtures.py

Deterministic: the training text is built here from fixed word lists with a seeded PRNG, and
sentencepiece trains single-threaded with a fixed seed. It writes

- `sp_bpe.model`     a LLaMA-style SentencePiece BPE model (LLaMA-1/2's trainer settings:
                     byte_fallback, split_digits, identity normalization, add_dummy_prefix,
                     no removal of extra whitespace, whitespace-only pieces, unk/bos/eos = 0/1/2),
                     vocab 2000, trained on mixed English / Chinese / emoji text;
- `sp_nfkc.model`    a small BPE model with sentencepiece's defaults (nmt_nfkc normalization with
                     its precompiled charsmap, extra whitespace removed, no byte fallback), vocab 600;
- `tokenizer.bin`    sp_bpe.model exported in llama2.c's format (its tokenizer.py: int32
                     max_token_length, then per token f32 score, int32 byte length, bytes, with
                     '▁' written as ' ' and bos/eos as '\\n<s>\\n' / '\\n</s>\\n');
- `sp_expected.json` for each model and each test string: the ids and pieces sentencepiece
                     produces (no BOS/EOS) and its decode of those ids.
"""
import json
import os
import random
import struct
import sys
import shutil

import sentencepiece as spm

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'tokenizers')

EN_WORDS = """the of and to in is was that for on with as by at from his her they this which
have had are were been be has an not but or it its their there one all would what so up out
if about who get go me when make can like time no just him know take people into year your good
some could them see other than then now look only come over think also back after use two how
our work first well way even new want because any these give day most us model language token
tokenizer train training learning neural network transformer attention layer weights gradient
loss batch sequence vocabulary merge byte pair encoding sentence piece llama browser script
running quickly beautiful world hello computer science mathematics history river mountain
ocean forest village city country government music painting garden kitchen morning evening
""".split()

ZH_PHRASES = """我们 今天 天气 很好 你好 世界 中国 北京 上海 语言 模型 学习 机器 人工 智能 计算机
科学 数学 历史 文化 音乐 朋友 家庭 学校 老师 学生 工作 时间 问题 方法 系统 数据 训练
分词 词汇 句子 文本 网络 神经 注意力 层 权重 梯度 损失 批次 序列 山 水 河 海 森林 城市
国家 政府 早上 晚上 吃饭 喝茶 看书 写字 跑步 唱歌 的 了 是 在 和 有 我 他 她 它 这 那 一个
不 也 都 很 就 会 说 要 去 来 到 大 小 多 少 好 新 旧 高 低""".split()

EMOJI = ['😀', '😂', '👍', '🎉', '❤️', '🚀', '🌍', '🐍', '🤖', '✨', '🔥', '👋🏽']
PUNCT = [',', '.', '!', '?', ';', ':', '，', '。', '！', '？', '、']


def make_corpus(rng, n_lines):
    lines = []
    for _ in range(n_lines):
        parts = []
        for _ in range(rng.randint(3, 12)):
            r = rng.random()
            if r < 0.55:
                w = rng.choice(EN_WORDS)
                if rng.random() < 0.1:
                    w = w.capitalize()
                parts.append(w)
            elif r < 0.85:
                parts.append(''.join(rng.choice(ZH_PHRASES) for _ in range(rng.randint(1, 4))))
            elif r < 0.92:
                parts.append(str(rng.randint(0, 99999)))
            elif r < 0.97:
                parts.append(rng.choice(EMOJI))
            else:
                parts.append(rng.choice(PUNCT))
        sep = '  ' if rng.random() < 0.05 else ' '
        lines.append(sep.join(parts))
    return lines


TEST_STRINGS = [
    'Hello world',
    'hello world',
    ' leading space',
    'trailing space ',
    'multiple   spaces    between words',
    '\tTabs\tand\nnewlines\n\nhere',
    'The year 2024 had 366 days; 1234567890.',
    '我们今天学习语言模型。',
    '你好，世界！这是一个测试。',
    'Mixed 中文 and English 混合 text 123 😀',
    'emoji 🎉🚀✨ and ❤️ and 👋🏽',
    'unseen characters: 龘 한국어 ñandú Ωμέγα 🦙',
    'byte fallback for 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and \u0007 control',
    '',
    ' ',
    '    ',
    'a',
    'ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ and ① ﬁ ligature',
    'café naïve résumé',
    'the tokenizer trains a llama model in the browser',
    'user-defined <|user|> symbol<|user|>kept whole',
    'A longer paragraph: the model reads 3 books 📚 every morning, 我们每天早上看书，然后喝茶。\n'
    'Then, at 10:45pm, it writes code!!! ... (really)   ok?',
]


def train(prefix, corpus_path, **kw):
    spm.SentencePieceTrainer.train(
        input=corpus_path, model_prefix=prefix, model_type='bpe', character_coverage=0.9995,
        num_threads=1, seed_sentencepiece_size=100000, shuffle_input_sentence=False,
        input_sentence_size=0, minloglevel=2, **kw)


def export_llama2c(sp, path):
    # llama2.c's tokenizer.py, with the fixture's model.
    tokens, scores = [], []
    for i in range(sp.get_piece_size()):
        t = sp.id_to_piece(i)
        s = sp.get_score(i)
        if i == sp.bos_id():
            t = '\n<s>\n'
        elif i == sp.eos_id():
            t = '\n</s>\n'
        t = t.replace('▁', ' ')
        tokens.append(t.encode('utf-8'))
        scores.append(s)
    max_token_length = max(len(t) for t in tokens)
    with open(path, 'wb') as f:
        f.write(struct.pack('I', max_token_length))
        for b, s in zip(tokens, scores):
            f.write(struct.pack('fI', s, len(b)))
            f.write(b)


def record(sp):
    out = []
    for s in TEST_STRINGS:
        ids = sp.encode(s, out_type=int)
        out.append({'text': s, 'ids': ids, 'pieces': [sp.id_to_piece(i) for i in ids], 'decoded': sp.decode(ids)})
    return out


def main():
    rng = random.Random(1234)
    lines = make_corpus(rng, 30000)
    os.makedirs(OUT, exist_ok=True)
    # A fixed scratch path: the trainer records input and model_prefix in the .model file.
    tmp = '/tmp/tslm_tokenizer_fixtures'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    if True:
        corpus = os.path.join(tmp, 'corpus.txt')
        with open(corpus, 'w', encoding='utf-8') as f:
            f.write('\n'.join(lines) + '\n')
        # LLaMA-1/2's trainer settings (from its tokenizer.model's trainer_spec), smaller vocab.
        train(os.path.join(tmp, 'sp_bpe'), corpus, vocab_size=2000, byte_fallback=True, split_digits=True,
              normalization_rule_name='identity', add_dummy_prefix=True, remove_extra_whitespaces=False,
              allow_whitespace_only_pieces=True, split_by_unicode_script=True, split_by_whitespace=True,
              max_sentencepiece_length=16, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
              user_defined_symbols=['<|user|>'])
        train(os.path.join(tmp, 'sp_nfkc'), corpus, vocab_size=600, hard_vocab_limit=False)
        results = {}
        for name in ['sp_bpe', 'sp_nfkc']:
            data = open(os.path.join(tmp, name + '.model'), 'rb').read()
            open(os.path.join(OUT, name + '.model'), 'wb').write(data)
            sp = spm.SentencePieceProcessor(model_file=os.path.join(OUT, name + '.model'))
            results[name] = {'vocab_size': sp.get_piece_size(), 'bos_id': sp.bos_id(), 'eos_id': sp.eos_id(),
                             'unk_id': sp.unk_id(), 'cases': record(sp)}
        sp = spm.SentencePieceProcessor(model_file=os.path.join(OUT, 'sp_bpe.model'))
        export_llama2c(sp, os.path.join(OUT, 'tokenizer.bin'))
    shutil.rmtree(tmp, ignore_errors=True)
    with open(os.path.join(OUT, 'sp_expected.json'), 'w', encoding='utf-8') as f:
        json.dump({'sentencepiece_version': spm.__version__, 'models': results}, f, ensure_ascii=False, indent=1)
        f.write('\n')
    print('wrote', OUT, file=sys.stderr)


if __name__ == '__main__':
    main()
