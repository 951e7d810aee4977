// The synthetic reasoning task of `tslm rl demo`: multi-step integer arithmetic ("Q: 47+38-19")
// answered think-then-answer ("<think>47+38=85 85-19=66</think><answer>66</answer>"). Every
// problem has an exact answer that the math verifier checks. The supervised warm-up data come
// from a deliberately imperfect teacher, as distilled traces from a weaker model do: at a step
// that needs a carry or a borrow, it forgets it with probability `teacherError` (8+5=3, 12-5=17),
// and the error carries into the answer. Above 0.5 the mistake is the teacher's usual way, so
// supervised training learns it as the most likely step (greedy decoding makes it too);
// reinforcement learning against the verifier is what can unlearn it.
import { Generator } from '../tensor/random.js';
import { trainByteLevelBPE } from '../tokenizers/trainer.js';
import type { HFTokenizer } from '../tokenizers/hf.js';

export interface ArithmeticRow {
  prompt: string;
  /** The exact answer (what the verifier compares with). */
  answer: string;
  /** The teacher's worked completion (think, then answer); wrong when the teacher erred. */
  completion: string;
  /** Number of operations (the curriculum's difficulty). */
  difficulty: number;
  /** Whether the teacher's completion is right. */
  teacherCorrect: boolean;
}

export interface ArithmeticOptions {
  count: number;
  seed: number;
  /** Operations per problem: a list to draw from (default [2]). */
  steps?: number[];
  /** Largest operand (default 99). */
  maxOperand?: number;
  /** Probability that the teacher forgets a carry or borrow at a step that needs one (default 0). */
  teacherError?: number;
}

export const THINK_OPEN = '<think>', THINK_CLOSE = '</think>', ANSWER_OPEN = '<answer>', ANSWER_CLOSE = '</answer>';

/** Problems with the teacher's worked solutions; the same seed gives the same rows. */
export function arithmeticProblems(o: ArithmeticOptions): ArithmeticRow[] {
  const g = new Generator(o.seed);
  const stepsList = o.steps ?? [2], maxOp = o.maxOperand ?? 99, err = o.teacherError ?? 0;
  const rows: ArithmeticRow[] = [];
  for (let i = 0; i < o.count; i++) {
    const steps = stepsList[g.int(stepsList.length)];
    let value = 1 + g.int(maxOp), shown = value;
    let expr = String(value);
    const work: string[] = [];
    for (let s = 0; s < steps; s++) {
      // Subtract only what keeps the exact value non-negative.
      const sub = value > 1 && g.uniform() < 0.5;
      const b = 1 + g.int(sub ? Math.min(maxOp, value) : maxOp);
      const op = sub ? '-' : '+';
      expr += op + b;
      const exact = sub ? value - b : value + b;
      let next = sub ? shown - b : shown + b;
      const carry = sub ? Math.abs(shown) % 10 < b % 10 : (Math.abs(shown) % 10) + (b % 10) >= 10;
      if (carry && err > 0 && g.uniform() < err) next += sub ? 10 : -10;
      work.push(`${shown}${op}${b}=${next}`);
      value = exact;
      shown = next;
    }
    rows.push({
      prompt: `Q: ${expr}\n`, answer: String(value), difficulty: steps, teacherCorrect: shown === value,
      completion: `${THINK_OPEN}${work.join(' ')}${THINK_CLOSE}${ANSWER_OPEN}${shown}${ANSWER_CLOSE}`,
    });
  }
  return rows;
}

/** A byte-level BPE for the task: digits stay single tokens; the tags and operators merge. */
export function arithmeticTokenizer(rows: ArithmeticRow[], vocabSize = 320): HFTokenizer {
  return trainByteLevelBPE(rows.map((r) => r.prompt + r.completion), {
    vocabSize, specialTokens: ['<|endoftext|>'], pattern: '\\p{N}| ?[^\\s\\p{N}]+|\\s+',
  });
}
