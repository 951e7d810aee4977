// `tslm word2vec train|similar|analogy|eval`: word2vec (thin wrapper over src/classic).
import { parseArgs } from 'node:util';
import { trainWord2VecFile, KeyedVectors, evaluateAnalogies, evaluateSimilarity, ClassicInputError } from '../../classic/index.js';

export const usage = `tslm word2vec train --data <text> --out vectors.bin [--cbow 0|1 (1)] [--size 100] [--window 5] [--negative 5]
        [--hs 0|1 (0)] [--sample 1e-3] [--min-count 5] [--iter 5] [--alpha A] [--threads 2] [--binary 0|1 (0)] [--seed S]
        [--shared-negatives 0|1 (0)] [--hot-words N (128 skip-gram NS, else 0)] [--hot-sync 1000]
        word2vec.c's options and defaults; one sentence per line, whitespace-separated tokens (any script).
        --shared-negatives 1: skip-gram draws one set of negatives per position for all its context
        words instead of one per context word (about twice as fast, same quality on Brown)
        --hot-words N (with --threads > 1): each thread trains its own copies of the N most frequent
        words' rows and merges its changes into the shared rows every --hot-sync words it reads
  tslm word2vec similar <word> --vectors <file> [--topn 10]
  tslm word2vec analogy <a> <b> <c> --vectors <file> [--topn 10] [--method 3cosadd|3cosmul]    a : b :: c : ?
  tslm word2vec eval --vectors <file> [--analogies questions-words.txt] [--similarity pairs.txt] [--method 3cosadd|3cosmul]`;

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      data: { type: 'string' }, out: { type: 'string' }, cbow: { type: 'string', default: '1' }, size: { type: 'string', default: '100' },
      window: { type: 'string', default: '5' }, negative: { type: 'string', default: '5' }, hs: { type: 'string', default: '0' },
      sample: { type: 'string', default: '1e-3' }, 'min-count': { type: 'string', default: '5' }, iter: { type: 'string', default: '5' },
      alpha: { type: 'string' }, threads: { type: 'string', default: '2' }, binary: { type: 'string', default: '0' }, seed: { type: 'string', default: '1' },
      vectors: { type: 'string' }, topn: { type: 'string', default: '10' }, method: { type: 'string', default: '3cosadd' },
      analogies: { type: 'string' }, similarity: { type: 'string' }, 'shared-negatives': { type: 'string', default: '0' },
      'hot-words': { type: 'string' }, 'hot-sync': { type: 'string' },
    },
  });
  const num = (name: string, v: string | undefined): number => {
    const x = Number(v);
    if (v === undefined || v === '' || !Number.isFinite(x)) throw new ClassicInputError(`--${name} must be a number, got '${v}'`);
    return x;
  };
  const flag = (name: string, v: string | undefined): boolean => {
    if (v !== '0' && v !== '1') throw new ClassicInputError(`--${name} must be 0 or 1, got '${v}'`);
    return v === '1';
  };
  const need = (name: string, v: string | undefined): string => {
    if (!v) throw new ClassicInputError(`--${name} is required\n\n${usage}`);
    return v;
  };
  const method = values.method as '3cosadd' | '3cosmul';
  if (method !== '3cosadd' && method !== '3cosmul') throw new ClassicInputError(`--method must be 3cosadd or 3cosmul, got '${values.method}'`);
  const print = (rows: { word: string; score: number }[]): void => { for (const r of rows) console.log(`${r.word}\t${r.score.toFixed(6)}`); };
  switch (sub) {
    case 'train': {
      const data = need('data', values.data), out = need('out', values.out);
      const r = await trainWord2VecFile(data, {
        cbow: flag('cbow', values.cbow), size: num('size', values.size), window: num('window', values.window), negative: num('negative', values.negative),
        hs: flag('hs', values.hs), sharedNegatives: flag('shared-negatives', values['shared-negatives']), sample: num('sample', values.sample), minCount: num('min-count', values['min-count']), iter: num('iter', values.iter),
        alpha: values.alpha === undefined ? undefined : num('alpha', values.alpha), threads: num('threads', values.threads), seed: num('seed', values.seed),
        hotWords: values['hot-words'] === undefined ? undefined : num('hot-words', values['hot-words']),
        hotSync: values['hot-sync'] === undefined ? undefined : num('hot-sync', values['hot-sync']),
        onProgress: (s) => process.stderr.write(s + '\n'),
      });
      r.vectors.save(out, { binary: flag('binary', values.binary) });
      process.stderr.write(`wrote ${out}: ${r.vectors.size} words × ${r.vectors.dim}, ${r.trainWords} training words, ${Math.round(r.wordsPerSec)} words/s, ${r.seconds.toFixed(2)} s\n`);
      return 0;
    }
    case 'similar': {
      if (positionals.length !== 1) throw new ClassicInputError(`similar takes one word\n\n${usage}`);
      print(KeyedVectors.load(need('vectors', values.vectors)).mostSimilar(positionals[0], { topn: num('topn', values.topn) }));
      return 0;
    }
    case 'analogy': {
      if (positionals.length !== 3) throw new ClassicInputError(`analogy takes three words a b c (a : b :: c : ?)\n\n${usage}`);
      const [a, b, c] = positionals;
      print(KeyedVectors.load(need('vectors', values.vectors)).analogy(a, b, c, { topn: num('topn', values.topn), method }));
      return 0;
    }
    case 'eval': {
      const kv = KeyedVectors.load(need('vectors', values.vectors));
      if (!values.analogies && !values.similarity) throw new ClassicInputError(`eval needs --analogies and/or --similarity\n\n${usage}`);
      if (values.analogies) {
        const r = evaluateAnalogies(kv, values.analogies, { method });
        for (const s of r.sections) console.log(`${s.section}: ${(100 * s.accuracy).toFixed(2)}% (${s.correct}/${s.total})`);
        console.log(`analogies (${method}): ${(100 * r.accuracy).toFixed(2)}% (${r.correct}/${r.total}), ${r.skipped} questions skipped (unknown words)`);
      }
      if (values.similarity) {
        const r = evaluateSimilarity(kv, values.similarity);
        console.log(`similarity: Spearman ρ ${r.spearman.toFixed(4)}, Pearson r ${r.pearson.toFixed(4)}, ${r.pairs} pairs, ${r.oov} with unknown words (${(100 * r.oovRatio).toFixed(1)}%)`);
      }
      return 0;
    }
    default:
      process.stderr.write(`tslm word2vec: unknown subcommand '${sub ?? ''}'\n\n${usage}\n`);
      return 2;
  }
}
