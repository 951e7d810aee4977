// Model families, keyed by Hugging Face `model_type`.
import { LlamaForCausalLM, parseLlamaConfig, LLAMA_MODEL_TYPES } from './llama.js';
import { ConfigError } from './config.js';

export { LlamaForCausalLM, KVCache, parseLlamaConfig, llamaConfigToJson } from './llama.js';
export type { LlamaConfig } from './llama.js';
export { ConfigError } from './config.js';

/** Create a model from an HF config.json object (random weights; load a state dict after). */
export function createModel(raw: Record<string, unknown>, source = 'config.json'): LlamaForCausalLM {
  const type = (raw.model_type ?? 'llama') as string;
  if ((LLAMA_MODEL_TYPES as readonly string[]).includes(type)) return new LlamaForCausalLM(parseLlamaConfig(raw, source));
  throw new ConfigError(source, `model_type "${type}" is not supported (supported: ${LLAMA_MODEL_TYPES.join(', ')})`);
}
