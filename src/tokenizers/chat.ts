// Chat templates from tokenizer_config.json, rendered with @huggingface/jinja (the engine
// transformers.js uses), with the variables transformers passes: messages, add_generation_prompt,
// bos_token, eos_token, tools, and any extra ones.
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { tokenContent, type TokenizerConfig } from './hf.js';
import { TokenizerFormatError } from './tokenizer.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | string;
  content: string;
  [k: string]: unknown;
}

export interface ChatTemplateOptions {
  /** The Jinja template (tokenizer_config.json's chat_template). */
  template: string;
  /** Append the prompt that starts the assistant's turn (default false). */
  addGenerationPrompt?: boolean;
  bosToken?: string;
  eosToken?: string;
  tools?: unknown[];
  /** More variables for the template. */
  extra?: Record<string, unknown>;
  /** Names the template's source in errors (default: the file chatTemplateFromConfig read it from, else "chat_template"). */
  file?: string;
  /** Bounds on rendering (defaults: CHAT_TEMPLATE_LIMITS). */
  limits?: Partial<ChatTemplateLimits>;
}

/** What one rendering may spend: a hostile template (range(10**9), runaway macros) stops with a ChatTemplateError. */
export interface ChatTemplateLimits {
  /** Evaluation steps (expressions and statements evaluated). */
  steps: number;
  /** Wall-clock milliseconds. */
  ms: number;
  /** Characters of any one string value, the output included. */
  chars: number;
  /** Nesting of evaluation (expressions within statements, macro calls). */
  depth: number;
  /** Elements that range() may produce. */
  range: number;
}

export const CHAT_TEMPLATE_LIMITS: ChatTemplateLimits = { steps: 1_000_000, ms: 2_000, chars: 1 << 26, depth: 1000, range: 100_000 };

class TemplateBudgetError extends Error {}

/** The rendering under way (rendering is synchronous: one at a time). */
let active: { limits: ChatTemplateLimits; steps: number; depth: number; deadline: number } | null = null;

// Count every evaluation of @huggingface/jinja's interpreter against the active budget.
const proto = Interpreter.prototype as unknown as { evaluate(this: unknown, statement: unknown, env: unknown): { type: string; value: unknown }; __tslmBudget?: boolean };
if (!proto.__tslmBudget) {
  const evaluate = proto.evaluate;
  proto.evaluate = function (statement, env) {
    const b = active;
    if (!b) return evaluate.call(this, statement, env);
    if (++b.steps > b.limits.steps) throw new TemplateBudgetError(`evaluates more than ${b.limits.steps} steps`);
    if ((b.steps & 1023) === 0 && Date.now() > b.deadline) throw new TemplateBudgetError(`takes longer than ${b.limits.ms} ms`);
    if (++b.depth > b.limits.depth) { b.depth--; throw new TemplateBudgetError(`nests evaluation deeper than ${b.limits.depth} (runaway recursion?)`); }
    let r;
    try {
      r = evaluate.call(this, statement, env);
    } finally {
      b.depth--;
    }
    if (r && r.type === 'StringValue' && typeof r.value === 'string' && r.value.length > b.limits.chars) throw new TemplateBudgetError(`builds a string longer than ${b.limits.chars} characters`);
    return r;
  };
  proto.__tslmBudget = true;
  // The global range() is set on each rendering's environment: swap in the bounded one.
  const envProto = Environment.prototype as unknown as { set(this: unknown, name: string, value: unknown): unknown };
  const set = envProto.set;
  envProto.set = function (name, value) {
    return set.call(this, name, active && name === 'range' && typeof value === 'function' ? boundedRange(active.limits.range) : value);
  };
}

/** jinja's range(), bounded. */
function boundedRange(limit: number) {
  return (start: number, stop?: number, step = 1): number[] => {
    if (stop === undefined) { stop = start; start = 0; }
    if (![start, stop, step].every(Number.isFinite)) throw new TemplateBudgetError('calls range() with a non-finite bound');
    if (step === 0) throw new Error('range() step must not be zero');
    const n = Math.max(0, Math.ceil((stop - start) / step));
    if (n > limit) throw new TemplateBudgetError(`calls range() for ${n} elements (at most ${limit})`);
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(start + i * step);
    return out;
  };
}

/** The file each template text came from (chatTemplateFromConfig records it), for messages. */
const sources = new Map<string, string>();

/** The file a template was read from (chatTemplateFromConfig), for error messages; undefined when not known. */
export function chatTemplateFile(template: string): string | undefined {
  return sources.get(template);
}

/** ChatML, for models without a template of their own (content may be null for tool calls). */
export const CHATML_TEMPLATE = "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + (m['content'] or '') + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export class ChatTemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChatTemplateError';
  }
}

const compiled = new Map<string, Template>();

export function applyChatTemplate(messages: ChatMessage[], opts: ChatTemplateOptions): string {
  const where = `${opts.file ?? sources.get(opts.template) ?? '(given)'}: chat_template`;
  const limits = { ...CHAT_TEMPLATE_LIMITS, ...(opts.limits ?? {}) };
  let tpl = compiled.get(opts.template);
  if (!tpl) {
    try {
      tpl = new Template(opts.template);
    } catch (e) {
      throw new ChatTemplateError(`${where}: cannot parse: ${shortMessage(e)}`);
    }
    if (compiled.size > 64) compiled.clear();
    compiled.set(opts.template, tpl);
  }
  const outer = active;
  active = { limits, steps: 0, depth: 0, deadline: Date.now() + limits.ms };
  try {
    const out = tpl.render({
      messages,
      add_generation_prompt: opts.addGenerationPrompt ?? false,
      bos_token: opts.bosToken ?? '',
      eos_token: opts.eosToken ?? '',
      ...(opts.tools ? { tools: opts.tools } : {}),
      ...(opts.extra ?? {}),
    });
    if (out.length > limits.chars) throw new TemplateBudgetError(`builds a string longer than ${limits.chars} characters`);
    return out;
  } catch (e) {
    if (e instanceof TemplateBudgetError) throw new ChatTemplateError(`${where}: stopped: the template ${e.message}`);
    throw new ChatTemplateError(`${where}: ${shortMessage(e)}`);
  } finally {
    active = outer;
  }
}

/** An engine error's message, cut short (some quote the template or values). */
function shortMessage(e: unknown): string {
  if (e instanceof RangeError) return `too large or too deeply nested (${e.message.slice(0, 60)})`;
  const m = e instanceof Error ? e.message : String(e);
  return m.length > 200 ? `${m.slice(0, 200)}…` : m;
}

/**
 * The chat template and tokens of a tokenizer_config.json object; `name` picks one of several
 * named templates (default "default"). `file` names the file in errors.
 */
export function chatTemplateFromConfig(config: TokenizerConfig, name = 'default', file = 'tokenizer_config.json'): { template: string; bosToken: string; eosToken: string } {
  const ct = config.chat_template;
  let template: string | undefined;
  if (typeof ct === 'string') template = ct;
  else if (Array.isArray(ct)) {
    template = ct.find((t) => t && t.name === name)?.template;
    if (template === undefined) throw new TokenizerFormatError(file, 'chat_template', `has no template named "${name}" (has ${ct.map((t) => `"${t.name}"`).join(', ')})`);
  } else throw new TokenizerFormatError(file, 'chat_template', 'is missing');
  if (typeof template !== 'string') throw new TokenizerFormatError(file, 'chat_template', `"${name}" is not a string`);
  if (sources.size > 64) sources.clear();
  sources.set(template, file);
  return { template, bosToken: tokenContent(config.bos_token) ?? '', eosToken: tokenContent(config.eos_token) ?? '' };
}
