// The OpenAI API over tslm models: request validation (every field checked, errors name it),
// prompts (chat templates, tool descriptions), constraints (response_format, tools) and the
// response shapes of /v1/completions, /v1/chat/completions (plain and server-sent events) and
// /v1/embeddings. Generation runs as jobs on the shared Scheduler.
import type { ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { Generation } from '../generate/generate.js';
import type { DecodeBatch, BatchedRequest } from '../generate/batch.js';
import type { GenerateOptions, GenerationResult } from '../generate/generate.js';
import { newGeneration, speculativeMethods } from '../generate/stepped.js';
import type { SteppedGeneration } from '../generate/stepped.js';
import type { LogitsProcessor } from '../generate/processors.js';
import { ConstraintProcessor } from '../structured/processor.js';
import type { JsonSchema, SchemaOptions } from '../structured/schema.js';
import { ComplexityError, StructuredError } from '../structured/errors.js';
import { compileSchemaAsync } from './compile.js';
import { applyChatTemplate, chatTemplateFile } from '../tokenizers/chat.js';
import type { ChatMessage, ChatTemplateOptions } from '../tokenizers/chat.js';
import type { EncodeOptions } from '../tokenizers/tokenizer.js';
import { TokenizeError, OFF_THREAD_CHARS, OFF_THREAD_MESSAGES } from './tokenize.js';
import { noGrad } from '../tensor/autograd.js';
import { scope } from '../tensor/storage.js';
import * as T from '../tensor/ops.js';
import { H } from '../backend/heap.js';
import { decodePng } from '../vision/png.js';
import type { GreyImage } from '../vision/png.js';
import { ImageSpanProcessor } from '../vision/mixed.js';
import { imageTokenText, contentParts, IMAGE_GUIDANCE } from '../vision/mixed_train.js';
import { ApiError, badParam, internalError } from './errors.js';
import type { ModelRegistry, ServedModel } from './models.js';
import type { Job, Scheduler } from './scheduler.js';
import { QueueFullError } from './scheduler.js';

export interface Limits {
  /** Largest request body in bytes (default 1 MiB: reading and parsing a body holds the event loop ~40 ms per MiB on a loaded core). */
  maxBodyBytes: number;
  /** Largest max_tokens a request may ask for (default 4096; never past the context). */
  maxTokens: number;
  /** Longest prompt in tokens (default: the model's context). */
  maxPromptTokens: number | null;
  /** Largest n (default 8). */
  maxN: number;
  /** Most inputs in one embeddings request (default 256). */
  maxEmbeddingInputs: number;
  /**
   * Continuous batching: sequences decoded together per model (0 = every request decodes on its
   * own) and the batch cache's positions (requests longer than that decode on their own).
   */
  batchRows: number;
  batchPositions: number;
  /** Largest JSON Schema (response_format or the tools' parameters together), as JSON bytes (default 256 KiB). */
  maxSchemaBytes: number;
  /** Longest a schema may take to compile, in ms (default 3000); compilation does not block other requests. */
  maxSchemaMs: number;
  /** Longest one token mask of a constraint may take, in ms (default 100; masks are computed on the event loop, between model calls). */
  maxMaskMs: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxBodyBytes: 1 << 20, maxTokens: 4096, maxPromptTokens: null, maxN: 8, maxEmbeddingInputs: 256, batchRows: 8, batchPositions: 4096,
  maxSchemaBytes: 256 << 10, maxSchemaMs: 3000, maxMaskMs: 100,
};

export interface Ctx {
  registry: ModelRegistry;
  scheduler: Scheduler;
  limits: Limits;
  /** Where internal errors' details go (clients get an id). */
  errorLog?: (line: string) => void;
}

const FINGERPRINT = 'tslm-0.1.0';

// ---- field checks ----------------------------------------------------------------------------

type Obj = Record<string, unknown>;

function isObj(x: unknown): x is Obj {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function bodyObject(body: unknown): Obj {
  if (!isObj(body)) throw new ApiError(400, 'the request body must be a JSON object');
  return body;
}

function optNumber(b: Obj, key: string, o: { min: number; max: number; int?: boolean; exclusiveMin?: boolean }): number | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw badParam(key, `'${key}' must be a number, got ${JSON.stringify(v)}`, 'invalid_type');
  if (o.int && !Number.isInteger(v)) throw badParam(key, `'${key}' must be an integer, got ${v}`, 'invalid_type');
  if (v < o.min || v > o.max || (o.exclusiveMin && v === o.min)) {
    throw badParam(key, `'${key}' must be ${o.exclusiveMin ? 'greater than' : 'at least'} ${o.min} and at most ${o.max}, got ${v}`);
  }
  return v;
}

function optBool(b: Obj, key: string): boolean | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw badParam(key, `'${key}' must be a boolean, got ${JSON.stringify(v)}`, 'invalid_type');
  return v;
}

function stopStrings(b: Obj): string[] {
  const v = b.stop;
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string')) throw badParam('stop', "'stop' must be a string or an array of strings", 'invalid_type');
  if (list.length > 4) throw badParam('stop', `'stop' takes at most 4 sequences, got ${list.length}`);
  if (list.some((s) => s.length === 0)) throw badParam('stop', "'stop' sequences must not be empty");
  return list as string[];
}

function logitBias(b: Obj, vocabSize: number): LogitsProcessor | null {
  const v = b.logit_bias;
  if (v === undefined || v === null) return null;
  if (!isObj(v)) throw badParam('logit_bias', "'logit_bias' must be an object of token id → bias", 'invalid_type');
  const bias = new Map<number, number>();
  for (const [k, x] of Object.entries(v)) {
    const id = Number(k);
    if (!/^\d+$/.test(k) || id >= vocabSize) throw badParam('logit_bias', `'logit_bias' key ${JSON.stringify(k)} is not a token id of this model (0…${vocabSize - 1})`);
    if (typeof x !== 'number' || !(x >= -100 && x <= 100)) throw badParam('logit_bias', `'logit_bias' value for ${k} must be a number in [-100, 100]`);
    bias.set(id, x);
  }
  return { process: (_ids, logits) => { for (const [id, x] of bias) logits[id] += x; } };
}

/** Sampling fields shared by completions and chat completions. */
function sampling(b: Obj, m: ServedModel, ctx: Ctx, promptLen: number, maxTokensKey: string): GenerateOptions & { n: number } {
  const ctxLen = m.contextLength;
  const maxPrompt = Math.min(ctx.limits.maxPromptTokens ?? ctxLen, ctxLen);
  if (promptLen > maxPrompt) {
    throw new ApiError(400, `This model's maximum context length is ${ctxLen} tokens${maxPrompt < ctxLen ? ` (prompts are limited to ${maxPrompt})` : ''}; the prompt has ${promptLen} tokens.`, 'invalid_request_error', 'messages', 'context_length_exceeded');
  }
  const room = ctxLen - promptLen;
  let asked = optNumber(b, maxTokensKey, { min: 1, max: ctx.limits.maxTokens, int: true }) ?? (maxTokensKey !== 'max_tokens' ? optNumber(b, 'max_tokens', { min: 1, max: ctx.limits.maxTokens, int: true }) : undefined);
  // tslm's extension max_tokens_auto: true cuts max_tokens (given or default) to what the context
  // leaves after the prompt, instead of refusing (the playground sends it).
  const fit = optBool(b, 'max_tokens_auto') ?? false;
  if (room <= 0) {
    throw new ApiError(400, `This model's maximum context length is ${ctxLen} tokens: the prompt has ${promptLen} tokens, which leaves no room for a completion.`, 'invalid_request_error', 'messages', 'context_length_exceeded');
  }
  if (fit && asked !== undefined) asked = Math.min(asked, room);
  if (asked !== undefined && asked > room) {
    throw new ApiError(400, `This model's maximum context length is ${ctxLen} tokens: the prompt has ${promptLen} tokens and ${maxTokensKey} asks for ${asked} more.`, 'invalid_request_error', maxTokensKey, 'context_length_exceeded');
  }
  const seed = optNumber(b, 'seed', { min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER, int: true });
  const processors: LogitsProcessor[] = [];
  const lb = logitBias(b, m.model.config.vocab_size);
  if (lb) processors.push(lb);
  return {
    maxNewTokens: asked ?? Math.min(room, ctx.limits.maxTokens),
    temperature: optNumber(b, 'temperature', { min: 0, max: 2 }) ?? 1,
    topP: optNumber(b, 'top_p', { min: 0, max: 1, exclusiveMin: true }) ?? 1,
    presencePenalty: optNumber(b, 'presence_penalty', { min: -2, max: 2 }),
    frequencyPenalty: optNumber(b, 'frequency_penalty', { min: -2, max: 2 }),
    seed: seed === undefined ? randomBytes(4).readUInt32LE(0) : seed >>> 0,
    stopStrings: stopStrings(b),
    processors,
    n: optNumber(b, 'n', { min: 1, max: ctx.limits.maxN, int: true }) ?? 1,
  };
}

// ---- constraints -----------------------------------------------------------------------------

interface Constraint {
  key: string;
  /** The schema's JSON text (sent to the compile thread as it is). */
  json: string;
  schema: JsonSchema;
  options: SchemaOptions;
  param: string;
}

async function constraintProcessor(ctx: Ctx, m: ServedModel, c: Constraint, maxNewTokens: number): Promise<ConstraintProcessor> {
  const bytes = Buffer.byteLength(c.json);
  if (bytes > ctx.limits.maxSchemaBytes) {
    throw badParam(c.param, `the schema is ${bytes} bytes as JSON; the server's limit is ${ctx.limits.maxSchemaBytes} (--max-schema-bytes)`, 'schema_too_large');
  }
  try {
    const matcher = await m.matcher(c.key, () => compileSchemaAsync(c.json, c.options, { timeoutMs: ctx.limits.maxSchemaMs }), ctx.limits.maxMaskMs);
    // Schemas (and tools) write JSON: no key twice in one object.
    return new ConstraintProcessor(matcher, { maxNewTokens, uniqueKeys: c.options.output !== 'yaml' });
  } catch (e) {
    if (e instanceof ComplexityError) {
      const flag = e.what === 'compile time' ? ` (the server's --max-schema-ms is ${ctx.limits.maxSchemaMs})` : /token mask/.test(e.what) ? ` (the server's --max-mask-ms is ${ctx.limits.maxMaskMs})` : '';
      throw badParam(c.param, `schema too complex: ${e.message}${flag}`, 'schema_too_complex');
    }
    if (e instanceof StructuredError) throw badParam(c.param, `invalid schema: ${e.message}`, 'invalid_schema');
    throw e;
  }
}

function responseFormat(b: Obj): Constraint | null {
  const rf = b.response_format;
  if (rf === undefined || rf === null) return null;
  if (!isObj(rf) || typeof rf.type !== 'string') throw badParam('response_format', "'response_format' must be an object with a 'type'", 'invalid_type');
  if (rf.type === 'text') return null;
  if (rf.type === 'json_object') return { key: 'json_object', json: '{"type":"object","additionalProperties":true}', schema: { type: 'object', additionalProperties: true }, options: { additionalProperties: 'declared' }, param: 'response_format' };
  if (rf.type === 'json_schema') {
    const js = rf.json_schema;
    if (!isObj(js)) throw badParam('response_format.json_schema', "'response_format.json_schema' must be an object with 'name' and 'schema'", 'invalid_type');
    if (typeof js.name !== 'string' || !/^[a-zA-Z0-9_-]{1,64}$/.test(js.name)) throw badParam('response_format.json_schema.name', "'response_format.json_schema.name' must be 1–64 letters, digits, '_' or '-'");
    const schema = js.schema ?? { type: 'object' };
    if (!isObj(schema) && typeof schema !== 'boolean') throw badParam('response_format.json_schema.schema', "'response_format.json_schema.schema' must be a JSON Schema object", 'invalid_schema');
    const strict = js.strict === true;
    const json = JSON.stringify(schema);
    return { key: `schema:${strict}:${json}`, json, schema: schema as JsonSchema, options: { additionalProperties: strict ? 'forbid' : 'declared' }, param: 'response_format.json_schema.schema' };
  }
  throw badParam('response_format.type', `'response_format.type' must be 'text', 'json_object' or 'json_schema', got ${JSON.stringify(rf.type)}`);
}

interface FunctionTool { name: string; description?: string; parameters: JsonSchema }

function tools(b: Obj): { tools: FunctionTool[]; raw: unknown[]; choice: 'none' | 'auto' | 'required' | string } | null {
  const t = b.tools;
  if (t === undefined || t === null) {
    if (b.tool_choice !== undefined && b.tool_choice !== null && b.tool_choice !== 'none') throw badParam('tool_choice', "'tool_choice' is only allowed when 'tools' are given");
    return null;
  }
  if (!Array.isArray(t) || t.length === 0) throw badParam('tools', "'tools' must be a non-empty array", 'invalid_type');
  const out: FunctionTool[] = [];
  t.forEach((x, i) => {
    if (!isObj(x) || x.type !== 'function' || !isObj(x.function)) throw badParam(`tools[${i}]`, `'tools[${i}]' must be {"type": "function", "function": {...}}`, 'invalid_type');
    const f = x.function;
    if (typeof f.name !== 'string' || !/^[a-zA-Z0-9_-]{1,64}$/.test(f.name)) throw badParam(`tools[${i}].function.name`, `'tools[${i}].function.name' must be 1–64 letters, digits, '_' or '-'`);
    if (out.some((o) => o.name === f.name)) throw badParam(`tools[${i}].function.name`, `tool '${f.name}' is listed twice`);
    const params = f.parameters ?? { type: 'object', properties: {} };
    if (!isObj(params)) throw badParam(`tools[${i}].function.parameters`, `'tools[${i}].function.parameters' must be a JSON Schema object`, 'invalid_schema');
    out.push({ name: f.name, description: typeof f.description === 'string' ? f.description : undefined, parameters: params as JsonSchema });
  });
  const c = b.tool_choice ?? 'auto';
  let choice: string;
  if (c === 'none' || c === 'auto' || c === 'required') choice = c;
  else if (isObj(c) && c.type === 'function' && isObj(c.function) && typeof c.function.name === 'string') {
    choice = c.function.name;
    if (!out.some((o) => o.name === choice)) throw badParam('tool_choice', `'tool_choice' names '${choice}', which is not in 'tools'`);
  } else throw badParam('tool_choice', "'tool_choice' must be 'none', 'auto', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}");
  return { tools: out, raw: t, choice };
}

function callSchema(t: FunctionTool): JsonSchema {
  return { type: 'object', properties: { name: { const: t.name }, arguments: t.parameters }, required: ['name', 'arguments'], additionalProperties: false };
}

function toolsConstraint(ts: FunctionTool[], choice: string, answer: Constraint | null): Constraint {
  const pick = choice === 'auto' || choice === 'required' ? ts : ts.filter((t) => t.name === choice);
  const branches = pick.map(callSchema);
  // 'auto': the model may also answer; a plain answer is a JSON string (or the response_format).
  if (choice === 'auto') branches.push(answer ? answer.schema as JsonSchema : { type: 'string' });
  const schema: JsonSchema = branches.length === 1 ? branches[0] : { anyOf: branches };
  const json = JSON.stringify(schema);
  return { key: `tools:${choice}:${json}`, json, schema, options: { additionalProperties: 'forbid' }, param: 'tools' };
}

function toolsPrompt(ts: FunctionTool[], choice: string): string {
  const list = ts.map((t) => `- ${t.name}${t.description ? `: ${t.description}` : ''}\n  parameters (JSON Schema): ${JSON.stringify(t.parameters)}`).join('\n');
  const how = 'To call a tool, answer with only a JSON object {"name": <tool name>, "arguments": <arguments object>}.';
  const auto = choice === 'auto' ? ' To answer without a tool, reply with your answer as a JSON string.' : '';
  return `You can call these tools:\n${list}\n${how}${auto}`;
}

// ---- chat messages ---------------------------------------------------------------------------

/** An image content part, and where it stood (message, offset in the message's text) until the model is known. */
interface ImagePart { image: GreyImage; where: string; message: number; at: number }

/** An image content part: a PNG as a data: URL (nothing is fetched). */
function readImagePart(p: Obj, where: string): GreyImage {
  const url = isObj(p.image_url) ? p.image_url.url : undefined;
  if (typeof url !== 'string') throw badParam(`${where}.image_url.url`, `'${where}.image_url.url' must be a string`, 'invalid_type');
  const m = /^data:image\/png;base64,([A-Za-z0-9+/=\s]*)$/.exec(url);
  if (!m) throw badParam(`${where}.image_url.url`, `'${where}.image_url.url' must be a PNG as a data: URL (data:image/png;base64,…); nothing is fetched`);
  try { return decodePng(Buffer.from(m[1], 'base64'), `${where}.image_url`); } catch (e) { throw badParam(`${where}.image_url.url`, (e as Error).message); }
}

/** A message's text; its image parts go to `images` with their offsets in that text. */
function textContent(c: unknown, where: string, images: ImagePart[], message: number): string | null {
  if (c === null || c === undefined) return null;
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) {
    let text = '';
    c.forEach((p, i) => {
      if (isObj(p) && p.type === 'text' && typeof p.text === 'string') text += p.text;
      else if (isObj(p) && p.type === 'image_url') images.push({ image: readImagePart(p, `${where}[${i}]`), where: `${where}[${i}]`, message, at: text.length });
      else throw badParam(`${where}[${i}]`, `'${where}[${i}]': only text and image_url content parts are supported (got ${isObj(p) ? JSON.stringify(p.type) : typeof p})`);
    });
    return text;
  }
  throw badParam(where, `'${where}' must be a string or an array of content parts`, 'invalid_type');
}

/** Image parts into the model's image tokens (as special-token text, where they stood), or a 400 for a text-only model. */
function placeImages(m: ServedModel, msgs: ChatMessage[], images: ImagePart[]): ChatMessage[] {
  if (images.length === 0) return msgs;
  if (!m.mixed) throw badParam(images[0].where, `model '${m.id}' is text-only: image content parts need a mixed-modal model (tslm mixed-modal train)`);
  const mixed = m.mixed;
  const text = images.map((x) => {
    try { return imageTokenText(mixed.imageTokenizer, mixed.vocab, x.image, x.where); } catch (e) { throw badParam(x.where, (e as Error).message); }
  });
  return spliceAt(msgs, images, text);
}

/** `texts[k]` inserted into message images[k].message at offset images[k].at (offsets in the message as parsed). */
export function spliceAt(msgs: ChatMessage[], images: ReadonlyArray<{ message: number; at: number }>, texts: readonly string[]): ChatMessage[] {
  const out = msgs.map((x) => ({ ...x }));
  // Last first, so that earlier offsets in the same message stay where they were.
  for (let k = images.length - 1; k >= 0; k--) {
    const { message, at } = images[k], msg = out[message];
    msg.content = msg.content.slice(0, at) + texts[k] + msg.content.slice(at);
  }
  return out;
}

function chatMessages(b: Obj, images: ImagePart[]): ChatMessage[] {
  const ms = b.messages;
  if (!Array.isArray(ms) || ms.length === 0) throw badParam('messages', "'messages' must be a non-empty array", ms === undefined ? 'missing_required_parameter' : 'invalid_type');
  return ms.map((m, i) => {
    if (!isObj(m) || typeof m.role !== 'string') throw badParam(`messages[${i}]`, `'messages[${i}]' must be an object with a 'role'`, 'invalid_type');
    const role = m.role === 'developer' ? 'system' : m.role;
    if (!['system', 'user', 'assistant', 'tool'].includes(role)) throw badParam(`messages[${i}].role`, `'messages[${i}].role' must be system, developer, user, assistant or tool, got ${JSON.stringify(m.role)}`);
    let content = textContent(m.content, `messages[${i}].content`, images, i);
    const out: ChatMessage = { role, content: content ?? '' };
    if (role === 'assistant' && Array.isArray(m.tool_calls)) {
      // Earlier calls are shown to the model in the format it is asked to produce.
      const calls = m.tool_calls.map((c: unknown) => {
        const f = isObj(c) && isObj(c.function) ? c.function : {};
        let args: unknown = f.arguments;
        if (typeof args === 'string') { try { args = JSON.parse(args); } catch { /* keep the text */ } }
        return JSON.stringify({ name: f.name, arguments: args });
      });
      if (!content) content = calls.join('\n');
      out.content = content;
      out.tool_calls = m.tool_calls;
    } else if (content === null && role !== 'assistant') {
      throw badParam(`messages[${i}].content`, `'messages[${i}].content' is required for role ${role}`, 'missing_required_parameter');
    }
    if (role === 'tool' && typeof m.tool_call_id === 'string') out.tool_call_id = m.tool_call_id;
    return out;
  });
}

// ---- jobs ------------------------------------------------------------------------------------

class GenerationJob implements Job {
  constructor(readonly gen: SteppedGeneration) {}
  step(): boolean { return this.gen.step(); }
  dispose(): void { this.gen.cancel(); }
}

/** A request in the model's running batch: the batch steps once per scheduler turn. */
class BatchJob implements Job {
  private queued = false;
  constructor(private readonly batch: DecodeBatch, private readonly m: ServedModel, readonly req: BatchedRequest, private readonly scheduler: Scheduler) {}
  step(): boolean {
    if (!this.queued) { this.batch.enqueue(this.req); this.queued = true; }
    if (this.m.lastTurn !== this.scheduler.turns) {
      this.m.lastTurn = this.scheduler.turns;
      this.batch.step();
    }
    if (this.req.error !== undefined) throw this.req.error;
    return !this.req.done;
  }
  dispose(): void { this.batch.cancel(this.req); }
}

interface Started {
  job: Job;
  result(): GenerationResult;
  /** The model's speculative decoding, or why this request decodes without it (null: the model has none). */
  speculative: { method: string } | { method: null; reason: string } | null;
}

/**
 * A generation as a job: speculative on its own when the model is served with a speculative
 * method (one sequence per request; n > 1 falls back to plain decoding and says so), else in the
 * model's running batch when it fits, else on its own.
 */
function startGeneration(ctx: Ctx, m: ServedModel, prompts: number[][], opts: GenerateOptions): Started {
  let speculative: Started['speculative'] = null;
  if (m.speculative) {
    const method = speculativeMethods(m.speculative).join(' and ');
    if (opts.guidance) speculative = { method: null, reason: `classifier-free guidance: ${method} decoding does not guide; this request decodes without it` };
    else if (prompts.length === 1) {
      const gen = newGeneration(m.model, prompts, { ...opts, speculative: m.speculative });
      return { job: new GenerationJob(gen), result: () => gen.result(), speculative: { method } };
    } else speculative = { method: null, reason: `n = ${prompts.length}: ${method} decoding runs one sequence at a time; this request decodes without it` };
  }
  const rows = Math.max(ctx.limits.batchRows, ctx.limits.maxN);
  if (ctx.limits.batchRows > 0) {
    const batch = m.batch(rows, ctx.limits.batchPositions);
    const req = batch.tryCreate(prompts, opts);
    if (req) return { job: new BatchJob(batch, m, req, ctx.scheduler), result: () => req.result(), speculative };
  }
  const gen = new Generation(m.model, prompts, opts);
  return { job: new GenerationJob(gen), result: () => gen.result(), speculative };
}

/** The usage object's speculative part: what the method achieved, or why it was off (absent when the model has none). */
function speculativeUsage(started: Started, results: GenerationResult[]): Obj {
  const sp = started.speculative;
  if (!sp) return {};
  if (sp.method === null) return { speculative: sp };
  const all = results.map((r) => r.stats.speculative).filter((s) => s !== undefined);
  if (!all.length) return { speculative: sp };
  const steps = all.reduce((a, s) => a + s.steps, 0), drafted = all.reduce((a, s) => a + s.drafted, 0), accepted = all.reduce((a, s) => a + s.accepted, 0);
  const emitted = results.reduce((a, r) => a + r.ids[0].length, 0);
  return { speculative: { method: all[0].method, steps, drafted, accepted, mean_accepted_length: emitted / (steps + all.length), acceptance_rate: drafted ? accepted / drafted : 0 } };
}

function newId(prefix: string): string { return `${prefix}-${randomBytes(12).toString('hex')}`; }

function now(): number { return Math.floor(Date.now() / 1000); }

/** Run a job, mapping scheduler errors to API errors. */
async function runJob(ctx: Ctx, job: Job, signal: AbortSignal): Promise<void> {
  try {
    await ctx.scheduler.run(job, signal);
  } catch (e) {
    if (e instanceof QueueFullError) throw new ApiError(429, e.message, 'server_busy', null, 'queue_full');
    if (e instanceof ApiError) throw e;
    // A token mask of the request's constraint past --max-mask-ms.
    if (e instanceof ComplexityError) throw new ApiError(400, `schema too complex: ${e.message} (the server's --max-mask-ms is ${ctx.limits.maxMaskMs})`, 'invalid_request_error', null, 'schema_too_complex');
    throw internalError(e, ctx.errorLog);
  }
}

/**
 * Run a generation to its end. Null when the client left, or when the stream has already been
 * ended with an error event (errors before any byte was sent are thrown for a JSON answer).
 */
async function runGeneration(ctx: Ctx, gen: Started, signal: AbortSignal, events: EventStream | null): Promise<GenerationResult | null> {
  try {
    await runJob(ctx, gen.job, signal);
  } catch (e) {
    if (!events) throw e;
    events.error(e instanceof ApiError ? e : internalError(e, ctx.errorLog));
    return null;
  }
  return signal.aborted ? null : gen.result();
}

/** Server-sent events on a response. */
class EventStream {
  constructor(private readonly res: ServerResponse) {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.flushHeaders();
  }
  send(data: unknown): void { if (!this.res.writableEnded && !this.res.destroyed) this.res.write(`data: ${JSON.stringify(data)}\n\n`); }
  end(): void { if (!this.res.writableEnded && !this.res.destroyed) { this.res.write('data: [DONE]\n\n'); this.res.end(); } }
  error(e: ApiError): void { if (!this.res.writableEnded && !this.res.destroyed) { this.res.write(`data: ${JSON.stringify(e.toJSON())}\n\n`); this.res.end(); } }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

interface TokenInfo { token: string; logprob: number; bytes: number[] }

function tokenInfo(m: ServedModel, id: number, logprob: number): TokenInfo {
  const bytes = m.vocab().bytes[id];
  const b = bytes ? [...bytes] : [...new TextEncoder().encode(m.tokenizer!.decode([id]))];
  return { token: new TextDecoder().decode(new Uint8Array(b)), logprob, bytes: b };
}

function chatLogprobs(m: ServedModel, r: GenerationResult, b: number, from = 0, to?: number): { content: unknown[]; refusal: null } {
  const ids = r.ids[b].slice(from, to), lps = r.logprobs![b].slice(from, to);
  const tops = r.topLogprobs?.[b].slice(from, to);
  return {
    content: ids.map((id, i) => ({ ...tokenInfo(m, id, lps[i]), top_logprobs: (tops?.[i] ?? []).map((t) => tokenInfo(m, t.id, t.logprob)) })),
    refusal: null,
  };
}

function needTokenizer(m: ServedModel): void {
  if (!m.tokenizer) throw new ApiError(400, `model '${m.id}' has no tokenizer; start the server with --tokenizer`, 'invalid_request_error', 'model');
}

/**
 * Refuse a text that cannot fit in the prompt without tokenising it: more UTF-8 bytes than the
 * longest prompt times the most bytes one token covers (tokenising megabytes takes seconds of the
 * event loop that every request shares).
 */
function checkPromptBytes(ctx: Ctx, m: ServedModel, text: string, param: string): void {
  // Cheap bound first: a UTF-16 unit is at most 3 UTF-8 bytes.
  if (text.length * 3 <= promptByteBound(ctx, m)) return;
  const bytes = Buffer.byteLength(text);
  if (bytes > promptByteBound(ctx, m)) throw promptTooLong(ctx, m, bytes, param);
}

/** The most UTF-8 bytes a prompt can have and still fit: prompt tokens × the longest token's bytes. */
function promptByteBound(ctx: Ctx, m: ServedModel): number {
  return Math.min(ctx.limits.maxPromptTokens ?? m.contextLength, m.contextLength) * m.maxTokenBytes;
}

function promptTooLong(ctx: Ctx, m: ServedModel, bytes: number, param: string): ApiError {
  const ctxLen = m.contextLength;
  const maxPrompt = Math.min(ctx.limits.maxPromptTokens ?? ctxLen, ctxLen);
  return new ApiError(400, `This model's maximum context length is ${ctxLen} tokens${maxPrompt < ctxLen ? ` (prompts are limited to ${maxPrompt})` : ''}; the prompt is ${bytes} bytes, more than ${maxPrompt} tokens of at most ${m.maxTokenBytes} bytes each can hold.`, 'invalid_request_error', param, 'context_length_exceeded');
}

/** The ApiError for a failure of the tokenizer thread (a 500 when it is not the request's fault). */
function threadError(ctx: Ctx, m: ServedModel, e: unknown, param: string): unknown {
  if (!(e instanceof TokenizeError)) return e;
  if (e.kind === 'timeout') return new ApiError(400, `the ${param} could not be tokenised within the time limit (${e.message})`, 'invalid_request_error', param);
  if (e.kind === 'bytes') return promptTooLong(ctx, m, e.bytes, param);
  if (e.kind === 'render') return new ApiError(400, `cannot render the messages with the model's chat template: ${e.message}`, 'invalid_request_error', param);
  return e;
}

/**
 * Token ids of texts, each after its size check: long texts are tokenised on the model's tokenizer
 * thread, so that the event loop stays free for other requests. A text the thread cannot finish
 * within its time budget is refused (400).
 */
async function encodeChecked(ctx: Ctx, m: ServedModel, texts: string[], param: string, opts: EncodeOptions = {}): Promise<number[][]> {
  for (const t of texts) checkPromptBytes(ctx, m, t, param);
  try {
    return await m.encode(texts, opts);
  } catch (e) {
    throw threadError(ctx, m, e, param);
  }
}

/** Prompt ids (BOS first) of prompt texts. */
async function promptIds(ctx: Ctx, m: ServedModel, texts: string[], param: string): Promise<number[][]> {
  const bos = m.tokenizer!.bosId ?? m.model.config.bos_token_id ?? 1;
  return (await encodeChecked(ctx, m, texts, param)).map((ids) => [bos, ...ids]);
}

// ---- /v1/chat/completions --------------------------------------------------------------------

export async function chatCompletions(ctx: Ctx, body: unknown, res: ServerResponse, signal: AbortSignal): Promise<void> {
  const b = bodyObject(body);
  if (b.model !== undefined && typeof b.model !== 'string') throw badParam('model', "'model' must be a string", 'invalid_type');
  const images: ImagePart[] = [];
  const parsed = chatMessages(b, images);
  const m = await ctx.registry.acquire(b.model as string | undefined);
  try {
    needTokenizer(m);
    const messages = placeImages(m, parsed, images);
    const stream = optBool(b, 'stream') ?? false;
    const includeUsage = stream && isObj(b.stream_options) && b.stream_options.include_usage === true;
    const wantLogprobs = optBool(b, 'logprobs') ?? false;
    const topLogprobs = optNumber(b, 'top_logprobs', { min: 0, max: 20, int: true });
    if (topLogprobs && !wantLogprobs) throw badParam('top_logprobs', "'top_logprobs' needs 'logprobs': true");
    const answerFormat = responseFormat(b);
    const t = tools(b);
    const useTools = t !== null && t.choice !== 'none';
    let msgs = messages;
    if (useTools) {
      const sys = toolsPrompt(t!.tools, t!.choice);
      msgs = msgs[0].role === 'system' ? [{ ...msgs[0], content: `${msgs[0].content}\n\n${sys}` }, ...msgs.slice(1)] : [{ role: 'system', content: sys }, ...msgs];
    }
    // Messages that cannot fit are refused before the template renders them and before tokenising.
    let contentChars = 0;
    for (const x of msgs) contentChars += x.content.length;
    if (contentChars * 3 > m.contextLength * m.maxTokenBytes) checkPromptBytes(ctx, m, msgs.map((x) => x.content).join(''), 'messages');
    const template: ChatTemplateOptions = { template: m.chat.template, addGenerationPrompt: true, bosToken: m.chat.bosToken, eosToken: m.chat.eosToken, tools: t ? t.raw : undefined, file: chatTemplateFile(m.chat.template) };
    let ids: number[];
    const thread = m.tokenizerThread;
    if (thread && (msgs.length > OFF_THREAD_MESSAGES || contentChars > OFF_THREAD_CHARS)) {
      // Many or long messages: rendered and tokenised on the model's tokenizer thread.
      try {
        ids = await thread.chat(msgs, template, promptByteBound(ctx, m), { specials: true });
      } catch (e) {
        throw threadError(ctx, m, e, 'messages');
      }
    } else {
      let text: string;
      try {
        text = applyChatTemplate(msgs, template);
      } catch (e) {
        throw new ApiError(400, `cannot render the messages with the model's chat template: ${(e as Error).message}`, 'invalid_request_error', 'messages');
      }
      [ids] = await encodeChecked(ctx, m, [text], 'messages', { specials: true });
    }
    const opts = sampling(b, m, ctx, ids.length, 'max_completion_tokens');
    const constraint = useTools ? toolsConstraint(t!.tools, t!.choice, answerFormat) : answerFormat;
    // A mixed-modal model takes no constraint: refused before the schema is compiled.
    if (m.mixed && constraint) throw badParam(constraint.param ?? 'response_format', `model '${m.id}' is mixed-modal: response_format and tools are not available with it`);
    const procs = [...(opts.processors ?? [])];
    if (constraint) procs.push(await constraintProcessor(ctx, m, constraint, opts.maxNewTokens!));
    if (m.mixed) procs.push(new ImageSpanProcessor(m.mixed.vocab));
    // A mixed-modal model's image codes are drawn with classifier-free guidance, as tslm chat draws
    // them (`guidance_scale`, Hugging Face's name; default IMAGE_GUIDANCE, 1: off; negative: the
    // document start; the text is not guided).
    const scale = optNumber(b, 'guidance_scale', { min: 0, max: 100 });
    if (scale !== undefined && !m.mixed) throw badParam('guidance_scale', `'guidance_scale' guides the image codes of a mixed-modal model; model '${m.id}' is text-only`);
    const mixedVocab = m.mixed?.vocab;
    const guidance = mixedVocab && (scale ?? IMAGE_GUIDANCE) !== 1 ? { scale: scale ?? IMAGE_GUIDANCE, negative: [ids[0]], when: (q: readonly number[]) => mixedVocab.state(q).inImage } : undefined;
    const id = newId('chatcmpl'), created = now(), model = m.id;
    const n = opts.n;
    let events: EventStream | null = null;
    const started = new Set<number>();
    const streamText = stream && !useTools;
    let gen: Started;
    const genOpts: GenerateOptions = {
      ...opts, processors: procs, tokenizer: m.tokenizer!, stopIds: m.stopIds,
      stopStrings: [...(opts.stopStrings ?? []), ...(m.chat.eosToken && !m.stopIds.includes(m.tokenizer!.specialTokens.get(m.chat.eosToken) ?? -1) ? [m.chat.eosToken] : [])],
      logprobs: wantLogprobs, topLogprobs: topLogprobs || undefined, guidance,
      onToken: streamText ? (ev) => {
        if (!events) return;
        const delta: Obj = {};
        if (!started.has(ev.sequence)) { started.add(ev.sequence); delta.role = 'assistant'; }
        // A mixed-modal model's image tokens are not text: the image comes whole in the last chunk.
        if (ev.text && !(m.mixed && ev.id >= m.mixed.vocab.imageStart)) delta.content = ev.text;
        let lp: unknown = null;
        if (wantLogprobs && ev.id >= 0) {
          const r = gen.result();
          const k = r.ids[ev.sequence].length;
          lp = chatLogprobs(m, r, ev.sequence, k - 1, k);
        }
        if (!ev.text && lp === null && !delta.role) return;
        events.send({ id, object: 'chat.completion.chunk', created, model, system_fingerprint: FINGERPRINT, choices: [{ index: ev.sequence, delta, logprobs: lp, finish_reason: null }] });
      } : undefined,
    };
    try {
      gen = startGeneration(ctx, m, Array.from({ length: n }, () => ids), genOpts);
    } catch (e) {
      if (e instanceof StructuredError) throw badParam(constraint?.param ?? 'max_tokens', e.message);
      throw e;
    }
    if (stream) events = new EventStream(res);
    const r = await runGeneration(ctx, gen, signal, events);
    if (!r) return;
    const choices = r.ids.map((_, i) => {
      const content = r.text![i];
      let message: Obj = { role: 'assistant', content, refusal: null };
      // A mixed-modal answer with images: content parts (text, and each image as a PNG data URL).
      const mixed = m.mixed;
      if (mixed && mixed.vocab.images(r.ids[i]).length) message.content = contentParts(mixed.imageTokenizer, mixed.vocab, r.ids[i], (x) => m.tokenizer!.decode(x));
      let finish: string = r.finishReason[i];
      if (useTools) {
        const call = parseToolCall(content, t!.tools);
        if (call) {
          message = { role: 'assistant', content: null, refusal: null, tool_calls: [{ id: newId('call').slice(0, 29), type: 'function', function: { name: call.name, arguments: JSON.stringify(call.arguments) } }] };
          finish = 'tool_calls';
        } else if (t!.choice === 'auto' && !answerFormat) {
          try { message.content = JSON.parse(content) as string; } catch { /* cut by the budget: keep the text */ }
        }
      }
      return { index: i, message, logprobs: wantLogprobs ? chatLogprobs(m, r, i) : null, finish_reason: finish };
    });
    const completionTokens = r.ids.reduce((s, x) => s + x.length, 0);
    const usage = { prompt_tokens: ids.length, completion_tokens: completionTokens, total_tokens: ids.length + completionTokens, ...speculativeUsage(gen, [r]) };
    if (events) {
      for (const c of choices) {
        const delta: Obj = {};
        if (!started.has(c.index)) delta.role = 'assistant';
        const parts = (c.message as { content: unknown }).content;
        if (Array.isArray(parts)) delta.images = parts.filter((x: Obj) => x.type === 'image_url');
        if (useTools) {
          const msg = c.message as { content: string | null; tool_calls?: unknown[] };
          if (msg.tool_calls) delta.tool_calls = (msg.tool_calls as Obj[]).map((tc, k) => ({ index: k, ...tc }));
          else delta.content = msg.content;
          if (wantLogprobs) events.send({ id, object: 'chat.completion.chunk', created, model, system_fingerprint: FINGERPRINT, choices: [{ index: c.index, delta: {}, logprobs: c.logprobs, finish_reason: null }] });
        }
        events.send({ id, object: 'chat.completion.chunk', created, model, system_fingerprint: FINGERPRINT, choices: [{ index: c.index, delta, logprobs: null, finish_reason: c.finish_reason }], ...(includeUsage ? { usage: null } : {}) });
      }
      if (includeUsage) events.send({ id, object: 'chat.completion.chunk', created, model, system_fingerprint: FINGERPRINT, choices: [], usage });
      events.end();
      return;
    }
    sendJson(res, 200, { id, object: 'chat.completion', created, model, system_fingerprint: FINGERPRINT, choices, usage });
  } finally {
    ctx.registry.release(m);
  }
}

function parseToolCall(text: string, ts: FunctionTool[]): { name: string; arguments: unknown } | null {
  let v: unknown;
  try { v = JSON.parse(text); } catch { return null; }
  if (!isObj(v) || typeof v.name !== 'string' || !('arguments' in v) || !ts.some((t) => t.name === v.name)) return null;
  return { name: v.name as string, arguments: v.arguments };
}

// ---- /v1/completions -------------------------------------------------------------------------

async function completionPrompts(ctx: Ctx, m: ServedModel, p: unknown): Promise<{ ids: number[]; text: string }[]> {
  const V = m.model.config.vocab_size;
  const isIds = (x: unknown): x is number[] => Array.isArray(x) && x.length > 0 && x.every((y) => typeof y === 'number');
  let list: unknown[];
  if (typeof p === 'string' || isIds(p)) list = [p];
  else if (Array.isArray(p) && p.length > 0) list = p;
  else throw badParam('prompt', "'prompt' must be a string, an array of strings, an array of token ids or an array of such arrays", p === undefined ? 'missing_required_parameter' : 'invalid_type');
  if (list.length > 16) throw badParam('prompt', `at most 16 prompts per request, got ${list.length}`);
  const out = list.map((x, i) => {
    if (typeof x === 'string') return { ids: [] as number[], text: x };
    if (isIds(x)) {
      for (const id of x) if (!Number.isInteger(id) || id < 0 || id >= V) throw badParam('prompt', `prompt ${i}: token id ${id} is outside the vocabulary (0…${V - 1})`);
      return { ids: x, text: m.tokenizer ? m.tokenizer.decode(x) : '' };
    }
    throw badParam('prompt', `prompt ${i} must be a string or an array of token ids`, 'invalid_type');
  });
  const texts = list.flatMap((x, i) => (typeof x === 'string' ? [i] : []));
  const ids = await promptIds(ctx, m, texts.map((i) => list[i] as string), 'prompt');
  texts.forEach((i, k) => { out[i].ids = ids[k]; });
  return out;
}

export async function completions(ctx: Ctx, body: unknown, res: ServerResponse, signal: AbortSignal): Promise<void> {
  const b = bodyObject(body);
  if (b.model !== undefined && typeof b.model !== 'string') throw badParam('model', "'model' must be a string", 'invalid_type');
  const m = await ctx.registry.acquire(b.model as string | undefined);
  try {
    needTokenizer(m);
    if (b.suffix !== undefined && b.suffix !== null) throw badParam('suffix', "'suffix' (insertion) is not supported");
    const prompts = await completionPrompts(ctx, m, b.prompt);
    const stream = optBool(b, 'stream') ?? false;
    const includeUsage = stream && isObj(b.stream_options) && b.stream_options.include_usage === true;
    const echo = optBool(b, 'echo') ?? false;
    const lpK = optNumber(b, 'logprobs', { min: 0, max: 5, int: true });
    if (echo && lpK !== undefined) throw badParam('echo', "'echo' together with 'logprobs' (prompt log-probabilities) is not supported");
    const bestOf = optNumber(b, 'best_of', { min: 1, max: 20, int: true });
    const maxPrompt = Math.max(...prompts.map((p) => p.ids.length));
    const opts = sampling(b, m, ctx, maxPrompt, 'max_tokens');
    if (bestOf !== undefined && bestOf !== opts.n) throw badParam('best_of', "'best_of' other than n is not supported");
    if (b.max_tokens === undefined && b.max_tokens_auto !== true) opts.maxNewTokens = Math.min(16, opts.maxNewTokens!); // OpenAI's default for completions
    const n = opts.n;
    const id = newId('cmpl'), created = now(), model = m.id;
    const events = stream ? new EventStream(res) : null;
    const results: GenerationResult[] = [];
    let started: Started | null = null;
    for (const [pi, p] of prompts.entries()) {
      const gen: Started = started = startGeneration(ctx, m, Array.from({ length: n }, () => p.ids), {
        ...opts, tokenizer: m.tokenizer!, stopIds: m.stopIds, logprobs: lpK !== undefined, topLogprobs: lpK || undefined,
        onToken: events ? (ev) => {
          let lp: unknown = null;
          if (lpK !== undefined && ev.id >= 0) {
            const r = gen.result();
            const k = r.ids[ev.sequence].length;
            lp = completionLogprobs(m, r, ev.sequence, 0, k - 1, k);
          }
          if (!ev.text && lp === null) return;
          events.send({ id, object: 'text_completion', created, model, system_fingerprint: FINGERPRINT, choices: [{ index: pi * n + ev.sequence, text: ev.text, logprobs: lp, finish_reason: null }] });
        } : undefined,
      });
      if (events && echo) for (let j = 0; j < n; j++) events.send({ id, object: 'text_completion', created, model, choices: [{ index: pi * n + j, text: p.text, logprobs: null, finish_reason: null }] });
      const r = await runGeneration(ctx, gen, signal, events);
      if (!r) return;
      results.push(r);
      if (events) for (let j = 0; j < n; j++) events.send({ id, object: 'text_completion', created, model, system_fingerprint: FINGERPRINT, choices: [{ index: pi * n + j, text: '', logprobs: null, finish_reason: r.finishReason[j] }] });
    }
    const promptTokens = prompts.reduce((s, p) => s + p.ids.length, 0);
    const completionTokens = results.reduce((s, r) => s + r.ids.reduce((t, x) => t + x.length, 0), 0);
    const usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens, ...(started ? speculativeUsage(started, results) : {}) };
    if (events) {
      if (includeUsage) events.send({ id, object: 'text_completion', created, model, choices: [], usage });
      events.end();
      return;
    }
    const choices = results.flatMap((r, pi) => r.ids.map((_, j) => ({
      index: pi * n + j,
      text: (echo ? prompts[pi].text : '') + r.text![j],
      logprobs: lpK !== undefined ? completionLogprobs(m, r, j, 0) : null,
      finish_reason: r.finishReason[j],
    })));
    sendJson(res, 200, { id, object: 'text_completion', created, model, system_fingerprint: FINGERPRINT, choices, usage });
  } finally {
    ctx.registry.release(m);
  }
}

function completionLogprobs(m: ServedModel, r: GenerationResult, b: number, offset0: number, from = 0, to?: number): unknown {
  const ids = r.ids[b].slice(from, to), lps = r.logprobs![b].slice(from, to), tops = r.topLogprobs?.[b].slice(from, to);
  const tokens = ids.map((id) => tokenInfo(m, id, 0).token);
  const offsets: number[] = [];
  let o = offset0;
  for (const t of tokens) { offsets.push(o); o += t.length; }
  return {
    tokens,
    token_logprobs: lps,
    top_logprobs: tops ? tops.map((row) => Object.fromEntries(row.map((x) => [tokenInfo(m, x.id, 0).token, x.logprob]))) : null,
    text_offset: offsets,
  };
}

// ---- /v1/embeddings --------------------------------------------------------------------------

/** Mean of the final hidden states (after the last norm) over the tokens, L2-normalised. */
class EmbeddingJob implements Job {
  readonly out: Float32Array[] = [];
  constructor(private readonly m: ServedModel, private readonly inputs: number[][]) {}
  step(): boolean {
    const ids = this.inputs[this.out.length];
    const model = this.m.model, D = model.config.hidden_size;
    const v = noGrad(() => scope(() => {
      const h = T.contiguous(T.mean(model.hidden(T.tensor([ids], [1, ids.length], 'i32')), 1));
      return Float32Array.from(H.f32.subarray(h.ptr >>> 2, (h.ptr >>> 2) + D));
    }));
    let s = 0;
    for (const x of v) s += x * x;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let i = 0; i < D; i++) v[i] *= inv;
    this.out.push(v);
    return this.out.length < this.inputs.length;
  }
  dispose(): void {}
}

export async function embeddings(ctx: Ctx, body: unknown, res: ServerResponse, signal: AbortSignal): Promise<void> {
  const b = bodyObject(body);
  if (b.model !== undefined && typeof b.model !== 'string') throw badParam('model', "'model' must be a string", 'invalid_type');
  const m = await ctx.registry.acquire(b.model as string | undefined);
  try {
    const raw = b.input;
    const isIds = (x: unknown): x is number[] => Array.isArray(x) && x.length > 0 && x.every((y) => typeof y === 'number');
    let list: unknown[];
    if (typeof raw === 'string' || isIds(raw)) list = [raw];
    else if (Array.isArray(raw) && raw.length > 0) list = raw;
    else throw badParam('input', "'input' must be a non-empty string, array of strings, array of token ids or array of such arrays", raw === undefined ? 'missing_required_parameter' : 'invalid_type');
    if (list.length > ctx.limits.maxEmbeddingInputs) throw badParam('input', `at most ${ctx.limits.maxEmbeddingInputs} inputs per request, got ${list.length}`);
    const V = m.model.config.vocab_size, ctxLen = m.contextLength;
    const inputs = list.map((x, i) => {
      if (typeof x === 'string') {
        if (x.length === 0) throw badParam('input', `input ${i} is empty`);
        needTokenizer(m);
        return [] as number[];
      } else if (isIds(x)) {
        for (const id of x) if (!Number.isInteger(id) || id < 0 || id >= V) throw badParam('input', `input ${i}: token id ${id} is outside the vocabulary (0…${V - 1})`);
        return x;
      } else throw badParam('input', `input ${i} must be a string or an array of token ids`, 'invalid_type');
    });
    const texts = list.flatMap((x, i) => (typeof x === 'string' ? [i] : []));
    if (texts.length) {
      const ids = await promptIds(ctx, m, texts.map((i) => list[i] as string), 'input');
      texts.forEach((i, k) => { inputs[i] = ids[k]; });
    }
    inputs.forEach((ids, i) => {
      if (ids.length > ctxLen) throw new ApiError(400, `input ${i} has ${ids.length} tokens; the model's maximum context length is ${ctxLen}`, 'invalid_request_error', 'input', 'context_length_exceeded');
    });
    const D = m.model.config.hidden_size;
    const dims = optNumber(b, 'dimensions', { min: 1, max: D, int: true });
    const fmt = b.encoding_format ?? 'float';
    if (fmt !== 'float' && fmt !== 'base64') throw badParam('encoding_format', "'encoding_format' must be 'float' or 'base64'");
    const job = new EmbeddingJob(m, inputs);
    await runJob(ctx, job, signal);
    if (signal.aborted) return;
    const data = job.out.map((v, index) => {
      let e = v;
      if (dims !== undefined && dims < D) {
        e = v.slice(0, dims);
        let s = 0;
        for (const x of e) s += x * x;
        const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
        for (let i = 0; i < dims; i++) e[i] *= inv;
      }
      return { object: 'embedding', index, embedding: fmt === 'base64' ? Buffer.from(e.buffer, e.byteOffset, e.byteLength).toString('base64') : Array.from(e) };
    });
    const tokens = inputs.reduce((s, x) => s + x.length, 0);
    sendJson(res, 200, { object: 'list', data, model: m.id, usage: { prompt_tokens: tokens, total_tokens: tokens } });
  } finally {
    ctx.registry.release(m);
  }
}

// ---- /v1/models ------------------------------------------------------------------------------

export function listModels(ctx: Ctx): unknown {
  return { object: 'list', data: ctx.registry.ids().map((id) => modelObject(ctx, id)) };
}

/**
 * OpenAI's model object; for a model in memory also tslm's `context_length` (tokens) and
 * `chat_template` (whether the model has its own; without one chat uses ChatML, which such a
 * model never saw, so plain completions suit it better) and `modalities` (['text', 'image'] for a
 * mixed-modal model, which takes image content parts and answers with them).
 */
export function modelObject(ctx: Ctx, id: string): unknown {
  const m = ctx.registry.loadedModels.find((x) => x.id === id);
  return { id, object: 'model', created: 0, owned_by: 'tslm', ...(m ? { context_length: m.contextLength, chat_template: m.chat.own, modalities: m.mixed ? ['text', 'image'] : ['text'] } : {}) };
}

export { sendJson };
