// `tslm serve`: the OpenAI-compatible server and the playground (src/serve/).
import { parseArgs } from 'node:util';
import { UsageError } from '../args.js';
import { init, shutdown } from '../../backend/index.js';
import { startServer } from '../../serve/server.js';
import { num } from '../args.js';
import { dtypeOption, kvDtypeOption } from './generate.js';
import { normalizeSpeculativeArgs, speculativeFrom, speculativeHelp, speculativeOptions, speculativeUsage } from '../speculative.js';

export const usage = `tslm serve --model <hf-dir|file.bin|file.gguf> [--port 8080] [--host 127.0.0.1]
      [--models-dir DIR] [--model-id ID] [--tokenizer FILE] [--threads N] [--dtype f32|q8_0|q4_0|q4_k|q6_k|f16|bf16] [--kv-dtype f32|bf16]
      [--max-active 4] [--max-queue 64] [--max-tokens-limit 4096] [--max-prompt-tokens N]
      [--max-body-bytes 1048576] [--max-schema-bytes 262144] [--max-schema-ms 3000] [--max-mask-ms 100]
      [--batch-rows 8] [--batch-positions 4096] [--quiet]
${speculativeUsage}
    OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models,
    /health) and the playground page at http://HOST:PORT/. --models-dir offers every model
    directory or checkpoint directly inside DIR by its name. Binds to 127.0.0.1 unless --host
    says otherwise. Concurrent requests share model calls (continuous batching) up to
    --batch-rows sequences (0: each request decodes on its own). With a speculative method
    (for --model), requests of n = 1 decode speculatively on their own; n > 1 falls back to
    plain decoding, and the response's usage.speculative says so. A JSON Schema (response_format
    or tools) larger than --max-schema-bytes, or taking longer than --max-schema-ms to compile,
    gets a 400 naming the limit; compilation does not hold up other requests. A token mask of a
    constraint taking longer than --max-mask-ms ends its request with such an error too.
${speculativeHelp}`;

export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args: normalizeSpeculativeArgs(args),
    options: {
      model: { type: 'string' }, 'models-dir': { type: 'string' }, 'model-id': { type: 'string' }, tokenizer: { type: 'string' }, dtype: { type: 'string' }, 'kv-dtype': { type: 'string' },
      port: { type: 'string' }, host: { type: 'string' }, threads: { type: 'string' },
      'max-active': { type: 'string' }, 'max-queue': { type: 'string' }, 'max-tokens-limit': { type: 'string' }, 'max-prompt-tokens': { type: 'string' }, 'max-body-bytes': { type: 'string' }, 'max-schema-bytes': { type: 'string' }, 'max-schema-ms': { type: 'string' }, 'max-mask-ms': { type: 'string' }, 'batch-rows': { type: 'string' }, 'batch-positions': { type: 'string' },
      quiet: { type: 'boolean' }, ...speculativeOptions,
    },
  });
  if (!values.model && !values['models-dir']) throw new UsageError('--model (or --models-dir) is required');
  const int = (v: string | undefined, name: string, min: number) => num(v, name, (x) => Number.isInteger(x) && x >= min);
  const port = int(values.port, 'port', 0) ?? 8080;
  if (port > 65535) throw new UsageError(`--port: invalid value '${values.port}'`);
  const maxTokens = int(values['max-tokens-limit'], 'max-tokens-limit', 1);
  const maxBody = int(values['max-body-bytes'], 'max-body-bytes', 1024);
  const maxPrompt = int(values['max-prompt-tokens'], 'max-prompt-tokens', 1);
  const maxSchemaBytes = int(values['max-schema-bytes'], 'max-schema-bytes', 2);
  const maxSchemaMs = int(values['max-schema-ms'], 'max-schema-ms', 1);
  const maxMaskMs = int(values['max-mask-ms'], 'max-mask-ms', 1);
  const batchRows = int(values['batch-rows'], 'batch-rows', 0);
  const batchPositions = int(values['batch-positions'], 'batch-positions', 1);
  const dtype = dtypeOption(values.dtype), kvDtype = kvDtypeOption(values['kv-dtype']);
  await init({ threads: int(values.threads, 'threads', 1) });
  const server = await startServer({
    model: values.model, modelsDir: values['models-dir'], modelId: values['model-id'], tokenizer: values.tokenizer, dtype, kvDtype,
    port, host: values.host ?? '127.0.0.1',
    maxActive: int(values['max-active'], 'max-active', 1), maxQueue: int(values['max-queue'], 'max-queue', 0),
    limits: { ...(maxTokens ? { maxTokens } : {}), ...(maxBody ? { maxBodyBytes: maxBody } : {}), ...(maxPrompt ? { maxPromptTokens: maxPrompt } : {}),
      ...(maxSchemaBytes ? { maxSchemaBytes } : {}), ...(maxSchemaMs ? { maxSchemaMs } : {}), ...(maxMaskMs ? { maxMaskMs } : {}),
      ...(batchRows !== undefined ? { batchRows } : {}), ...(batchPositions ? { batchPositions } : {}) },
    log: values.quiet ? undefined : (line) => console.error(line),
    speculative: (model) => speculativeFrom(values, model),
  });
  // The first stdout line is the address (scripts and tests read it).
  console.log(`tslm serve: listening on ${server.url} (models: ${server.registry.ids().join(', ')})`);
  if (!values.quiet) console.error(`playground: ${server.url}/`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await server.close();
  await shutdown();
  return 0;
}
