// The preference task of `tslm rlhf demo`: short writing requests with three checkable
// instructions, and a programmatic judge that stands in for the human labellers.
//   prompt:   Write about the sea using the word "gentle" in at most 8 words.
//   answer:   Sure! The sea is gentle. Waves roll in.
// The judge gives one point for each instruction followed: the requested word appears, the answer
// has at most the requested number of words, it opens politely ("Sure!", "Of course!", "Happy to
// help!"), and it stays on topic — after the opener, whole sentences about the requested subject
// only (the task's sentence patterns: "The sea is <word>.", the topic's own sentences, "It is
// <adjective> and <adjective>."), so a cut, garbled or empty answer loses that point. The
// supervised warm-up data come from an imperfect teacher that breaks the first three
// instructions independently about half the time (another word, a few words too many, a curt or
// no opener) and writes about another subject a quarter of the time, so the fine-tuned model's
// own samples differ in quality: that is what preference pairs, a reward model, PPO and DPO work on.
import { Generator } from '../tensor/random.js';
import { trainByteLevelBPE } from '../tokenizers/trainer.js';
import type { HFTokenizer } from '../tokenizers/hf.js';

/** Each topic: its subject, adjectives that fit it, and short sentences about it. */
const TOPICS: { name: string; adjectives: string[]; sentences: string[] }[] = [
  { name: 'sea', adjectives: ['deep', 'salty', 'wide'], sentences: ['Waves roll in.', 'Ships sail far.', 'Gulls cry above.', 'The tide turns.'] },
  { name: 'forest', adjectives: ['green', 'dense', 'shady'], sentences: ['Birds sing there.', 'Old trees stand tall.', 'Paths wind through.', 'Leaves fall softly.'] },
  { name: 'city', adjectives: ['busy', 'loud', 'crowded'], sentences: ['Cars rush by.', 'Lights shine all night.', 'People walk fast.', 'Towers rise high.'] },
  { name: 'garden', adjectives: ['fresh', 'tidy', 'blooming'], sentences: ['Roses grow here.', 'Bees visit flowers.', 'We water it daily.', 'Tomatoes ripen slowly.'] },
  { name: 'mountain', adjectives: ['high', 'rocky', 'steep'], sentences: ['Snow covers the peak.', 'Climbers rest there.', 'Eagles circle overhead.', 'The air is thin.'] },
  { name: 'river', adjectives: ['long', 'clear', 'winding'], sentences: ['Fish swim upstream.', 'Boats drift along.', 'It reaches the sea.', 'Willows line its banks.'] },
  { name: 'kitchen', adjectives: ['warm', 'small', 'bright'], sentences: ['Bread bakes inside.', 'Pots hang on hooks.', 'Soup simmers slowly.', 'We cook together.'] },
  { name: 'library', adjectives: ['quiet', 'old', 'large'], sentences: ['Books fill the shelves.', 'Readers sit still.', 'Pages turn softly.', 'Stories wait there.'] },
  { name: 'desert', adjectives: ['dry', 'hot', 'empty'], sentences: ['Sand dunes shift.', 'Camels walk slowly.', 'Rain rarely falls.', 'Nights are cold.'] },
  { name: 'winter', adjectives: ['cold', 'white', 'long'], sentences: ['Snow falls softly.', 'Lakes freeze over.', 'We wear warm coats.', 'Days are short.'] },
  { name: 'school', adjectives: ['new', 'friendly', 'noisy'], sentences: ['Children learn there.', 'Bells ring often.', 'Teachers help us.', 'We read books.'] },
  { name: 'night', adjectives: ['dark', 'still', 'calm'], sentences: ['Stars shine above.', 'Owls hoot softly.', 'The moon glows.', 'Everyone sleeps.'] },
];

/** The words a prompt asks for: never one of a topic's own adjectives, so using it is a choice. */
const KEYWORDS = ['gentle', 'golden', 'lovely', 'strange', 'peaceful', 'lively', 'magic', 'silver', 'happy', 'bold', 'sunny', 'misty', 'gray', 'tiny', 'ancient', 'proud'];
const POLITE = ['Sure!', 'Of course!', 'Happy to help!'];
const CURT = ['Fine.', 'Whatever.', 'Okay.'];
const LIMITS = [6, 8, 10];

export interface PreferenceTaskRow {
  prompt: string;
  topic: string;
  keyword: string;
  maxWords: number;
  /** The teacher's answer (each instruction broken with probability `teacherError`). */
  response: string;
}

export interface JudgeVerdict {
  /** Instructions followed (0–4). */
  score: number;
  keyword: boolean;
  length: boolean;
  polite: boolean;
  onTopic: boolean;
  words: number;
}

/** The judge's maximum score. */
export const JUDGE_MAX = 4;

/** Words as the judge counts them: whitespace-separated pieces. */
export function countWords(text: string): number {
  const t = text.trim();
  return t ? t.split(/\s+/).length : 0;
}

/** The prompt's instructions, read back from its text (null when it is not one of the task's prompts). */
export function parseTaskPrompt(prompt: string): { topic: string; keyword: string; maxWords: number } | null {
  const m = /^Write about the (\S+) using the word "([^"]+)" in at most (\d+) words\.\n?$/.exec(prompt);
  return m ? { topic: m[1], keyword: m[2], maxWords: Number(m[3]) } : null;
}

/** Whether an answer's body (after the opener) is whole sentences about the topic, in the task's patterns. */
function onTopicBody(topic: string, body: string): boolean {
  const t = TOPICS.find((x) => x.name === topic);
  const sentences = body.match(/[^.!?]+[.!?]/g);
  if (!t || !sentences || sentences.join('').replace(/\s+/g, '') !== body.replace(/\s+/g, '')) return false;
  return sentences.every((raw) => {
    const s = raw.trim();
    if (t.sentences.includes(s)) return true;
    if (new RegExp(`^The ${t.name} is [a-z]+\\.$`).test(s)) return true;
    const m = /^It is ([a-z]+(?: and [a-z]+)*)\.$/.exec(s);
    return m !== null && m[1].split(' and ').every((a) => t.adjectives.includes(a));
  });
}

/** The programmatic judge: one point per instruction followed. */
export function judge(prompt: string, response: string): JudgeVerdict {
  const p = parseTaskPrompt(prompt);
  if (!p) throw new RangeError(`judge: not a prompt of the demo task: ${JSON.stringify(prompt.slice(0, 80))}`);
  const text = response.trim();
  const words = countWords(text);
  const keyword = text.split(/[^A-Za-z]+/).includes(p.keyword);
  const length = words > 0 && words <= p.maxWords;
  const opener = [...POLITE, ...CURT].find((o) => text === o || text.startsWith(o + ' '));
  const polite = opener !== undefined && POLITE.includes(opener);
  const onTopic = onTopicBody(p.topic, (opener ? text.slice(opener.length) : text).trim());
  return { score: Number(keyword) + Number(length) + Number(polite) + Number(onTopic), keyword, length, polite, onTopic, words };
}

/**
 * The held-out split: one (topic, word) combination in five is never drawn for training, so a
 * held-out prompt asks for a word about a subject no training prompt paired it with.
 */
export function isHeldOutCombination(topic: number, keyword: number): boolean {
  return (topic * 7 + keyword * 3) % 5 === 0;
}

export interface PreferenceTaskOptions {
  count: number;
  seed: number;
  /** Which (topic, word) combinations to draw from (default 'train'). */
  split?: 'train' | 'heldout';
  /** Probability that the teacher breaks each of the word, length and politeness instructions (independently; default 0.5). */
  teacherError?: number;
  /** Probability that the teacher writes about another subject (default 0.25). */
  offTopic?: number;
}

/** Prompts with the teacher's answers; the same seed gives the same rows. */
export function preferenceTaskRows(o: PreferenceTaskOptions): PreferenceTaskRow[] {
  const g = new Generator(o.seed), err = o.teacherError ?? 0.5, off = o.offTopic ?? 0.25;
  const pick = <X>(xs: X[]): X => xs[g.int(xs.length)];
  const rows: PreferenceTaskRow[] = [];
  for (let i = 0; i < o.count; i++) {
    let ti: number, ki: number;
    do { ti = g.int(TOPICS.length); ki = g.int(KEYWORDS.length); } while (isHeldOutCombination(ti, ki) !== (o.split === 'heldout'));
    const t = TOPICS[ti], keyword = KEYWORDS[ki], maxWords = pick(LIMITS);
    const useKeyword = g.uniform() >= err, polite = g.uniform() >= err, tooLong = g.uniform() < err;
    // Within the limit, an opener that leaves room for the first sentence (4 words).
    const opener = polite ? pick(tooLong ? POLITE : POLITE.filter((x) => countWords(x) + 4 <= maxWords)) : g.uniform() < 0.5 ? pick(CURT) : '';
    // The body opens with the adjective sentence (the requested word or one of the topic's own),
    // then adds the topic's sentences up to the word budget: within the limit, or 1–4 words past it.
    // Off topic: the answer describes another subject.
    const subject = g.uniform() < off ? pick(TOPICS.filter((x) => x !== t)).name : t.name;
    const first = `The ${subject} is ${useKeyword ? keyword : pick(t.adjectives)}.`;
    const budget = tooLong ? maxWords + 1 + g.int(4) : maxWords - g.int(3);
    const parts = opener ? [opener, first] : [first];
    const rest = [...t.sentences];
    for (let j = rest.length - 1; j > 0; j--) { const k = g.int(j + 1); [rest[j], rest[k]] = [rest[k], rest[j]]; }
    let words = countWords(parts.join(' '));
    for (const s of rest) {
      const n = countWords(s);
      if (words + n > budget) continue;
      parts.push(s);
      words += n;
    }
    // Too long but no sentence fitted the overshoot: pad with the topic's adjectives until past the limit.
    if (tooLong && words <= maxWords) {
      const tail = [pick(t.adjectives)];
      while (countWords([...parts, `It is ${tail.join(' and ')}.`].join(' ')) <= maxWords) tail.push(pick(t.adjectives));
      parts.push(`It is ${tail.join(' and ')}.`);
    }
    rows.push({ prompt: `Write about the ${t.name} using the word "${keyword}" in at most ${maxWords} words.\n`, topic: t.name, keyword, maxWords, response: parts.join(' ') });
  }
  return rows;
}

/** A byte-level BPE for the task, trained on its prompts and answers (whole words become tokens). */
export function preferenceTaskTokenizer(rows: PreferenceTaskRow[], vocabSize = 768): HFTokenizer {
  return trainByteLevelBPE(rows.map((r) => r.prompt + r.response), { vocabSize, specialTokens: ['<|endoftext|>'] });
}
