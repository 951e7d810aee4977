// The `tslm` command line: thin wrappers over the library. Each command is a module in
// commands/ exporting `usage` (help text) and `run(args) → exit code`; register it below.
import { readFileSync } from 'node:fs';

interface Command { usage: string; run(args: string[]): Promise<number> }

import { UsageError } from './args.js';

export { UsageError };

const COMMANDS: Record<string, () => Promise<Command>> = {
  quickstart: () => import('./commands/quickstart.js'),
  train: () => import('./commands/train.js'),
  bench: () => import('./commands/bench.js'),
  generate: () => import('./commands/generate.js'),
  chat: () => import('./commands/chat.js'),
  serve: () => import('./commands/serve.js'),
  tokenize: () => import('./commands/tokenize.js'),
  ngram: () => import('./commands/ngram.js'),
  word2vec: () => import('./commands/word2vec.js'),
  schema: () => import('./commands/schema.js'),
  finetune: () => import('./commands/finetune.js'),
  'merge-lora': () => import('./commands/merge-lora.js'),
  'self-instruct': () => import('./commands/self-instruct.js'),
  gatt: () => import('./commands/gatt.js'),
  medusa: () => import('./commands/medusa.js'),
  rl: () => import('./commands/rl.js'),
  reward: () => import('./commands/reward.js'),
  dpo: () => import('./commands/dpo.js'),
  rlhf: () => import('./commands/rlhf.js'),
  'image-tokenizer': () => import('./commands/image-tokenizer.js'),
  convert: () => import('./commands/convert.js'),
  'mixed-modal': () => import('./commands/mixed-modal.js'),
};

async function usage(): Promise<string> {
  const parts = await Promise.all(Object.values(COMMANDS).map(async (load) => (await load()).usage));
  return `tslm — language models in TypeScript\n\nUsage:\n${parts.map((u) => '  ' + u.replace(/\n/g, '\n  ')).join('\n')}\n  tslm version\n  tslm help\n\nEvery command that loads a model also takes --allow-nonfinite (load weights holding NaN or Inf).\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    console.log(await usage());
    return 0;
  }
  if (cmd === 'version' || cmd === '--version') {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'));
    console.log(pkg.version);
    return 0;
  }
  const load = COMMANDS[cmd];
  if (!load) {
    console.error(`tslm: unknown command '${cmd}'\n\n${await usage()}`);
    return 2;
  }
  // Commands that load a model to decode with it keep V8's young generation small (see heap.ts),
  // set before their modules load: the imports' survivors grow it too.
  if (cmd === 'generate' || cmd === 'chat') (await import('./heap.js')).steadyYoungGeneration();
  const mod = await load();
  // --allow-nonfinite, for every command that loads a model: weights holding NaN/Inf load instead of being refused.
  // (io/finite.js is loaded only then: start-up time counts in short commands such as an n-gram build.)
  if (rest.includes('--allow-nonfinite')) {
    const { setAllowNonFinite } = await import('../io/finite.js');
    while (rest.includes('--allow-nonfinite')) { setAllowNonFinite(true); rest.splice(rest.indexOf('--allow-nonfinite'), 1); }
  }
  if (rest.includes('--help') || rest[0] === '-h') {
    console.log(`Usage:\n  ${mod.usage.replace(/\n/g, '\n  ')}`);
    return 0;
  }
  try {
    return await mod.run(rest);
  } catch (e) {
    // Errors from bad input carry messages that name the file, line or tensor at fault.
    const err = e as Error;
    if (err && ((err.name === 'TypeError' && (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) || err instanceof UsageError)) {
      console.error(`tslm ${cmd}: ${err.message}\n\nUsage:\n  ${mod.usage.replace(/\n/g, '\n  ')}`);
      return 2;
    }
    console.error(`tslm ${cmd}: ${err?.message ?? String(e)}`);
    if (process.env.TSLM_DEBUG) console.error(err?.stack);
    return 1;
  }
}
