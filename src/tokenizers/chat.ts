// Chat templates from tokenizer_config.json, rendered with @huggingface/jinja (the engine
// transformers.js uses), with the variables transformers passes: messages, add_generation_prompt,
// bos_token, eos_token, tools, and any extra ones.
import { Template } from '@huggingface/jinja';
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
  let tpl = compiled.get(opts.template);
  if (!tpl) {
    try {
      tpl = new Template(opts.template);
    } catch (e) {
      throw new ChatTemplateError(`chat_template: cannot parse: ${(e as Error).message}`);
    }
    compiled.set(opts.template, tpl);
  }
  try {
    return tpl.render({
      messages,
      add_generation_prompt: opts.addGenerationPrompt ?? false,
      bos_token: opts.bosToken ?? '',
      eos_token: opts.eosToken ?? '',
      ...(opts.tools ? { tools: opts.tools } : {}),
      ...(opts.extra ?? {}),
    });
  } catch (e) {
    throw new ChatTemplateError(`chat_template: ${(e as Error).message}`);
  }
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
  return { template, bosToken: tokenContent(config.bos_token) ?? '', eosToken: tokenContent(config.eos_token) ?? '' };
}
