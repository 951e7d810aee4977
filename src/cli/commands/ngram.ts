// `tslm ngram train|score|generate`: n-gram language models (thin wrapper over src/classic).
import { parseArgs } from 'node:util';
// The n-gram modules themselves, not classic/index.js (which loads word2vec, features, …): start-up counts in a build's wall time.
import { trainNgramFile, countNgramsFileParallel, estimate, type Estimator, type NgramModel } from '../../classic/ngram.js';
import { readArpa, writeArpaAsync, ArpaWriterThread } from '../../classic/arpa.js';
import { readLines, type TokenMode } from '../../classic/text.js';
import { ClassicInputError } from '../../classic/errors.js';
import { matchUsage, featuresUsage } from './ngram-usage.js';

export const usage = `tslm ngram train --order N --data <text> --out model.arpa [--estimator mkn|kn|addk|mle] [--k K]
        [--char] [--discount-fallback] [--threads 1|2]
        one sentence per line; --char: character tokens (Chinese); --threads 2: count and write on
        two threads (default 1: on two cores the second thread costs more than it saves)
  tslm ngram score --model model.arpa (--text "…" | --file <path>) [--char] [--verbose]
        total log10 probability, OOVs and perplexity as KenLM's query computes them
  tslm ngram generate --model model.arpa [--prompt "…"] [--n 5] [--max-tokens 50] [--temperature 1] [--top-k K] [--seed S] [--char]
  tslm ngram next --model model.arpa --text "…" [--k 10] [--char]
  ${featuresUsage}
  ${matchUsage}`;

const err = (s: string): void => { process.stderr.write(s + '\n'); };

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'features' || sub === 'classify') return (await import('./ngram-features.js')).run(sub, rest);
  if (sub === 'match' || sub === 'dedup') return (await import('./ngram-match.js')).run(sub, rest);
  const { values } = parseArgs({
    args: rest,
    allowPositionals: false,
    options: {
      order: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' }, estimator: { type: 'string', default: 'mkn' },
      k: { type: 'string' }, char: { type: 'boolean', default: false }, 'discount-fallback': { type: 'boolean', default: false },
      model: { type: 'string' }, text: { type: 'string' }, file: { type: 'string' }, verbose: { type: 'boolean', default: false },
      prompt: { type: 'string' }, n: { type: 'string', default: '1' }, 'max-tokens': { type: 'string', default: '50' },
      threads: { type: 'string' }, temperature: { type: 'string', default: '1' }, 'top-k': { type: 'string' }, seed: { type: 'string', default: '1' },
    },
  });
  const mode: TokenMode = values.char ? 'char' : 'word';
  const num = (name: string, v: string | undefined, def?: number): number => {
    if (v === undefined) { if (def === undefined) throw new ClassicInputError(`--${name} is required`); return def; }
    const x = Number(v);
    if (!Number.isFinite(x)) throw new ClassicInputError(`--${name} must be a number, got '${v}'`);
    return x;
  };
  const need = (name: string, v: string | undefined): string => {
    if (!v) throw new ClassicInputError(`--${name} is required\n\n${usage}`);
    return v;
  };
  switch (sub) {
    case 'train': {
      const order = num('order', values.order, 3);
      const data = need('data', values.data), out = need('out', values.out);
      const t0 = performance.now();
      // Default: one thread, which writes the file through libuv while it makes the text. Two
      // threads were slower than one at orders 3 and 5 on Brown, idle as well as loaded (the
      // second thread's counting and sorting cost more than they save: BENCHMARKS.md, n-gram build).
      const threads = values.threads === undefined ? 1 : num('threads', values.threads);
      if (threads !== 1 && threads !== 2) throw new ClassicInputError(`--threads must be 1 or 2, got '${values.threads}'`);
      const opts = {
        order, estimator: values.estimator as Estimator, k: values.k === undefined ? undefined : num('k', values.k), mode,
        discountFallback: values['discount-fallback'], onProgress: err, onWarning: (w: string) => err(`warning: ${w}`),
      };
      let model: NgramModel;
      if (threads === 2) {
        // The writer thread sorts the counts into ARPA order while this thread estimates.
        const counts = await countNgramsFileParallel(data, opts);
        if (counts.words === 0) throw new ClassicInputError(`${data}: empty corpus (no tokens)`);
        const writer = ArpaWriterThread.start(counts, out);
        try {
          model = estimate(counts, opts);
          await writer.write(model);
        } finally {
          await writer.close();
        }
      } else {
        model = trainNgramFile(data, opts);
        await writeArpaAsync(model, out);
      }
      const counts = 'counts' in model && Array.isArray(model.counts) ? ` (${(model.counts as number[]).map((c, i) => `${i + 1}-grams: ${c}`).join(', ')})` : '';
      err(`wrote ${out}${counts} in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
      return 0;
    }
    case 'score': {
      const model = readArpa(need('model', values.model), { mode, onWarning: (w) => err(`warning: ${w}`) });
      let lines: Iterable<string>;
      if (values.text !== undefined) lines = values.text.split('\n');
      else if (values.file !== undefined) lines = (function* () { for (const [l] of readLines(values.file!)) yield l; })();
      else throw new ClassicInputError(`score needs --text or --file\n\n${usage}`);
      let sentences = 0, tokens = 0, oov = 0, total = 0, oovLp = 0;
      for (const line of lines) {
        const s = model.scoreText(line);
        sentences++; tokens += s.tokens; oov += s.oov; total += s.logProb;
        for (const w of s.words) if (w.oov) oovLp += w.logProb;
        const detail = values.verbose ? s.words.map((w) => `${w.token}=${w.oov ? 0 : model.vocab.id(w.token)} ${w.ngramLength} ${w.logProb.toFixed(6)}`).join('\t') + '\t' : '';
        console.log(`${detail}Total: ${s.logProb.toFixed(6)} OOV: ${s.oov}`);
      }
      console.log(`Perplexity including OOVs:\t${Math.pow(10, -total / tokens)}`);
      console.log(`Perplexity excluding OOVs:\t${Math.pow(10, -(total - oovLp) / (tokens - oov))}`);
      console.log(`OOVs:\t${oov}`);
      console.log(`Tokens:\t${tokens}`);
      console.log(`Sentences:\t${sentences}`);
      console.log(`Total log10 probability:\t${total}`);
      return 0;
    }
    case 'generate': {
      const model = readArpa(need('model', values.model), { mode });
      const prompt = values.prompt ? model.scoreText(values.prompt, { eos: false }).words.map((w) => w.token) : [];
      const seed = num('seed', values.seed);
      for (let i = 0; i < num('n', values.n); i++) {
        const toks = model.generate({
          prompt, seed: seed + i, maxTokens: num('max-tokens', values['max-tokens']), temperature: num('temperature', values.temperature),
          topK: values['top-k'] === undefined ? undefined : num('top-k', values['top-k']),
        });
        console.log(model.detokenize([...prompt, ...toks]));
      }
      return 0;
    }
    case 'next': {
      const model = readArpa(need('model', values.model), { mode });
      const ctx = model.scoreText(need('text', values.text), { eos: false }).words.map((w) => w.token);
      for (const { token, logProb } of model.predictNext(ctx, num('k', values.k, 10))) console.log(`${token}\t${logProb.toFixed(6)}\t${Math.pow(10, logProb).toFixed(6)}`);
      return 0;
    }
    default:
      err(`tslm ngram: unknown subcommand '${sub ?? ''}'\n\n${usage}`);
      return 2;
  }
}
