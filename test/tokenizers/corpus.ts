// A deterministic mixed English / Chinese / emoji / digits corpus for trainer tests.
const EN = `the of and to in is was that for on with as by at from his her they this which have had are
were been be has an not but or it its their there one all would what so up out if about who get go me
when make can like time no just him know take people into year your good some could them see other than
then now look only come over think also back after use two how our work first well way even new want
because any these give day most us model language token tokenizer train training learning neural network
transformer attention layer weights gradient loss batch sequence vocabulary merge byte pair encoding
sentence piece llama browser script running quickly beautiful world hello computer science mathematics
history river mountain ocean forest village city country government music painting garden kitchen`.split(/\s+/);
const ZH = `我们 今天 天气 很好 你好 世界 中国 北京 上海 语言 模型 学习 机器 人工 智能 计算机 科学 数学 历史 文化 音乐
朋友 家庭 学校 老师 学生 工作 时间 问题 方法 系统 数据 训练 分词 词汇 句子 文本 网络 神经 注意力 的 了 是 在 和 有`.split(/\s+/);
const EMOJI = ['😀', '😂', '👍', '🎉', '❤️', '🚀', '🌍', '🤖', '✨', '👋🏽'];

/** About `bytes` bytes of text, the same for the same seed. */
export function makeCorpus(bytes: number, seed = 1): string {
  let s = seed >>> 0 || 1;
  const rnd = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
  const pick = <T>(a: T[]) => a[Math.floor(rnd() * a.length)];
  const lines: string[] = [];
  let n = 0;
  while (n < bytes) {
    const parts: string[] = [];
    const k = 4 + Math.floor(rnd() * 12);
    for (let i = 0; i < k; i++) {
      const r = rnd();
      if (r < 0.6) parts.push(rnd() < 0.1 ? pick(EN).replace(/^./, (c) => c.toUpperCase()) : pick(EN));
      else if (r < 0.85) parts.push(Array.from({ length: 1 + Math.floor(rnd() * 4) }, () => pick(ZH)).join(''));
      else if (r < 0.93) parts.push(String(Math.floor(rnd() * 100000)));
      else if (r < 0.97) parts.push(pick(EMOJI));
      else parts.push(pick([',', '.', '!', '?', '，', '。', "'s", "n't"]));
    }
    const line = parts.join(' ') + (rnd() < 0.5 ? '.' : '');
    lines.push(line);
    n += Buffer.byteLength(line) + 1;
  }
  return lines.join('\n') + '\n';
}
