// PEFT's LoRA files as bytes (Node-free, for tslm/browser): adapter_config.json and
// adapter_model.safetensors; peft.ts writes them to a directory and reads them back.
import type { Module } from '../nn/module.js';
import { LoraError } from '../nn/lora.js';
import { serializeSafetensors } from '../io/safetensors_bytes.js';
import { fromFloat32 } from '../io/dtypes.js';
import { loraLayers } from './model.js';
import type { LoraSpec } from './model.js';

export const PEFT_PREFIX = 'base_model.model.';
export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

/** adapter_config.json as PEFT writes it for LoRA (the fields we read and write). */
export interface PeftLoraConfig {
  peft_type: 'LORA';
  task_type: string | null;
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  target_modules: string[] | string;
  use_rslora: boolean;
  base_model_name_or_path: string | null;
  bias: 'none' | 'all' | 'lora_only';
  fan_in_fan_out: boolean;
  inference_mode: boolean;
  init_lora_weights: boolean;
  modules_to_save: string[] | null;
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
  use_dora: boolean;
  layers_to_transform: number[] | number | null;
  layers_pattern: string | null;
  revision: string | null;
  [k: string]: unknown;
}

export function peftConfig(spec: LoraSpec, baseModel: string | null): PeftLoraConfig {
  return {
    alpha_pattern: {}, auto_mapping: null, base_model_name_or_path: baseModel, bias: 'none', fan_in_fan_out: false,
    inference_mode: true, init_lora_weights: true, layers_pattern: null, layers_to_transform: null,
    lora_alpha: spec.lora_alpha, lora_dropout: spec.lora_dropout ?? 0, modules_to_save: null, peft_type: 'LORA',
    r: spec.r, rank_pattern: {}, revision: null,
    target_modules: Array.isArray(spec.target_modules) ? [...spec.target_modules].sort() : spec.target_modules,
    task_type: 'CAUSAL_LM', use_dora: false, use_rslora: spec.use_rslora ?? false,
  };
}

/**
 * The PEFT files of adapter `name` (default: the active one) of a model, as bytes: only the
 * adapter's tensors (F32), named as PEFT names them, and adapter_config.json.
 */
export function adapterFiles(model: Module, opts: { name?: string; baseModel?: string | null } = {}): Record<'adapter_config.json' | 'adapter_model.safetensors', Uint8Array> {
  const layers = loraLayers(model);
  const name = opts.name ?? layers.find((l) => l.layer.activeAdapter !== null)?.layer.activeAdapter;
  if (!name) throw new LoraError('the model has no active LoRA adapter to save');
  const withIt = layers.filter((l) => l.layer.adapterNames.includes(name));
  if (!withIt.length) throw new LoraError(`no adapter "${name}" on the model`);
  const first = withIt[0].layer.adapter(name)!.options;
  const keys = [...new Set(withIt.map((l) => l.name.split('.').pop()!))];
  const raws = [];
  for (const { name: mod, layer } of withIt) {
    const ad = layer.adapter(name)!;
    if (ad.options.r !== first.r || ad.options.lora_alpha !== first.lora_alpha) throw new LoraError(`${mod}: adapter "${name}" has r/alpha different from the other layers (rank_pattern is not written)`);
    raws.push(fromFloat32(`${PEFT_PREFIX}${mod}.lora_A.weight`, [...ad.lora_A.weight.shape], ad.lora_A.weight.data() as Float32Array));
    raws.push(fromFloat32(`${PEFT_PREFIX}${mod}.lora_B.weight`, [...ad.lora_B.weight.shape], ad.lora_B.weight.data() as Float32Array));
  }
  const cfg = peftConfig({ ...first, target_modules: keys }, opts.baseModel ?? null);
  return {
    [ADAPTER_CONFIG]: new TextEncoder().encode(JSON.stringify(cfg, null, 2) + '\n'),
    [ADAPTER_WEIGHTS]: serializeSafetensors(raws, { format: 'pt' }),
  } as Record<'adapter_config.json' | 'adapter_model.safetensors', Uint8Array>;
}
