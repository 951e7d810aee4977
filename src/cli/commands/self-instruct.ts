// `tslm self-instruct`: generate instruction data from seed tasks with a teacher model (a local
// tslm model or an OpenAI-compatible endpoint), filtered as Alpaca's recipe does.
import { parseArgs } from 'node:util';
import { UsageError } from '../args.js';
import { init, shutdown } from '../../backend/index.js';
import { loadModel } from '../../io/model.js';
import { LocalTeacher, OpenAITeacher, readSeedTasks, selfInstruct, writeSelfInstruct } from '../../sft/selfinstruct.js';
import type { Teacher } from '../../sft/selfinstruct.js';
import { num } from '../args.js';

export const usage = `tslm self-instruct --seeds <seed_tasks.jsonl> --out <data.json> [--num N]
      (--teacher-model <dir> | --base-url URL [--api-key KEY] --model-name NAME [--api completions|chat])
      [--num-prompt-instructions 3] [--batch-size 5] [--max-requests N] [--temperature 1] [--top-p 1]
      [--max-tokens 3072] [--similarity 0.7] [--seed S] [--threads N]
    Self-instruct as Stanford Alpaca: prompts of sampled seed tasks, parse new tasks, drop those
    with ROUGE-L ≥ 0.7 to any kept instruction, too short/long, blocklisted (image, graph, file…)
    or duplicated; writes Alpaca JSON and <out>.stats.json. The API key may come from OPENAI_API_KEY.`;

export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      seeds: { type: 'string' }, out: { type: 'string' }, num: { type: 'string' }, 'teacher-model': { type: 'string' }, tokenizer: { type: 'string' },
      'base-url': { type: 'string' }, 'api-key': { type: 'string' }, 'model-name': { type: 'string' }, api: { type: 'string' },
      'num-prompt-instructions': { type: 'string' }, 'batch-size': { type: 'string' }, 'max-requests': { type: 'string' },
      temperature: { type: 'string' }, 'top-p': { type: 'string' }, 'max-tokens': { type: 'string' }, similarity: { type: 'string' },
      seed: { type: 'string' }, threads: { type: 'string' },
    },
  });
  for (const k of ['seeds', 'out'] as const) if (!values[k]) { console.error(`tslm self-instruct: --${k} is required\n\n${usage}`); return 2; }
  if (!values['teacher-model'] === !values['base-url']) throw new UsageError('give exactly one teacher: --teacher-model <dir> or --base-url <url>');
  const api = values.api ?? 'completions';
  if (api !== 'completions' && api !== 'chat') throw new UsageError(`--api: expected completions or chat, got '${api}'`);
  const pos = (x: number) => Number.isInteger(x) && x > 0;
  const seeds = readSeedTasks(values.seeds!);
  await init({ threads: num(values.threads, 'threads', pos) });
  let local: Awaited<ReturnType<typeof loadModel>> | null = null;
  try {
    let teacher: Teacher;
    if (values['teacher-model']) {
      local = await loadModel(values['teacher-model'], { tokenizer: values.tokenizer });
      if (!local.tokenizer) throw new Error(`${values['teacher-model']}: no tokenizer found; pass --tokenizer`);
      local.model.eval();
      teacher = new LocalTeacher(local.model, local.tokenizer);
    } else {
      teacher = new OpenAITeacher({ baseUrl: values['base-url']!, apiKey: values['api-key'] ?? process.env.OPENAI_API_KEY, model: values['model-name'] ?? 'gpt-3.5-turbo-instruct', api });
    }
    const r = await selfInstruct(seeds, teacher, {
      numInstructions: num(values.num, 'num', pos) ?? 100, numPromptInstructions: num(values['num-prompt-instructions'], 'num-prompt-instructions', pos),
      requestBatchSize: num(values['batch-size'], 'batch-size', pos), maxRequests: num(values['max-requests'], 'max-requests', pos),
      temperature: num(values.temperature, 'temperature', (x) => x >= 0), topP: num(values['top-p'], 'top-p', (x) => x > 0 && x <= 1),
      maxTokens: num(values['max-tokens'], 'max-tokens', pos), similarityThreshold: num(values.similarity, 'similarity', (x) => x > 0 && x <= 1),
      seed: num(values.seed, 'seed', Number.isInteger), log: (l) => console.error(l),
    });
    const statsFile = writeSelfInstruct(values.out!, r);
    const d = Object.entries(r.stats.dropped).filter(([, n]) => n).map(([k, n]) => `${k} ${n}`).join(', ');
    console.error(`kept ${r.stats.kept} of ${r.stats.parsed} parsed tasks from ${r.stats.prompts} prompts in ${r.stats.requests} requests (dropped: ${d || 'none'}); ${values.out}, ${statsFile}`);
  } finally {
    local?.model.dispose();
    await shutdown();
  }
  return 0;
}
