// Model families, keyed by Hugging Face `model_type`. A family is one file with a class extending
// CausalLM (causal.ts) and one entry in FAMILIES below; everything else finds it through
// createModel.
import { LlamaForCausalLM, parseLlamaConfig, LLAMA_MODEL_TYPES } from './llama.js';
import { MambaForCausalLM, parseMambaConfig, MAMBA_MODEL_TYPES } from './mamba.js';
import { S4DForCausalLM, parseS4DConfig, S4D_MODEL_TYPES } from './s4d.js';
import { ConfigError } from './config.js';
import type { CausalLM } from './causal.js';
import type { Generator } from '../tensor/random.js';

export { CausalLM, DecodeStateError } from './causal.js';
export type { DecodeState, ForwardOptions, LossParts, ModelConfig } from './causal.js';
export { LlamaForCausalLM, KVCache, parseLlamaConfig, llamaConfigToJson } from './llama.js';
export type { LlamaConfig } from './llama.js';
export { MambaForCausalLM, parseMambaConfig, mambaConfigToJson } from './mamba.js';
export type { MambaConfig } from './mamba.js';
export { S4DForCausalLM, parseS4DConfig, s4dConfigToJson } from './s4d.js';
export type { S4DConfig } from './s4d.js';
export { RecurrentState } from './recurrent.js';
export { ConfigError } from './config.js';

export interface ModelFamily {
  /** The HF model_type values this family reads. */
  readonly modelTypes: readonly string[];
  /** Build a model (random weights from `generator`) from a config.json object; errors name `source`. */
  create(raw: Record<string, unknown>, source: string, generator?: Generator): CausalLM;
  /** The layers LoRA adapts when none are named (PEFT's default target_modules for the family). */
  readonly loraTargets: readonly string[];
}

const FAMILIES: ModelFamily[] = [
  {
    modelTypes: LLAMA_MODEL_TYPES, loraTargets: ['q_proj', 'v_proj'],
    create: (raw, source, generator) => new LlamaForCausalLM(parseLlamaConfig(raw, source), { generator }),
  },
  {
    modelTypes: MAMBA_MODEL_TYPES, loraTargets: ['in_proj', 'out_proj'],
    create: (raw, source, generator) => new MambaForCausalLM(parseMambaConfig(raw, source), { generator }),
  },
  {
    modelTypes: S4D_MODEL_TYPES, loraTargets: ['in_proj', 'out_proj'],
    create: (raw, source, generator) => new S4DForCausalLM(parseS4DConfig(raw, source), { generator }),
  },
];

/** Every model_type createModel accepts. */
export function supportedModelTypes(): string[] {
  return FAMILIES.flatMap((f) => [...f.modelTypes]);
}

function familyOf(type: unknown, source: string): ModelFamily {
  const family = FAMILIES.find((f) => f.modelTypes.includes(type as string));
  if (!family) throw new ConfigError(source, `model_type ${JSON.stringify(type)} is not supported (supported: ${supportedModelTypes().join(', ')})`);
  return family;
}

/** The layers LoRA adapts by default on a model_type (as PEFT's target_modules mapping). */
export function defaultLoraTargets(modelType: string): string[] {
  return [...familyOf(modelType, 'model_type').loraTargets];
}

/**
 * Create a model from an HF config.json object (random weights; load a state dict after). A
 * config without model_type is read as LLaMA (llama2.c-era configs carry none).
 */
export function createModel(raw: Record<string, unknown>, source = 'config.json', opts: { generator?: Generator } = {}): CausalLM {
  return familyOf(raw.model_type ?? 'llama', source).create(raw, source, opts.generator);
}
