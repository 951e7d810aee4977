// A Hugging Face model from bytes in memory, Node-free (the browser entry point uses it): the
// config.json object and the bytes of model.safetensors (fetched by a page, say) → a model with
// its weights in f32, checked against the config as readHfDir checks a directory.
import type { CausalLM } from '../models/index.js';
import { parseSafetensorsBytes } from './safetensors_bytes.js';
import { checkModelTensors } from './families.js';
import { f32StateDict } from './dtypes.js';
import type { RawTensor } from './dtypes.js';
import { checkFiniteTensors } from './finite.js';
import { buildModelForWeights } from './build_model.js';
import type { FiniteOptions } from './finite.js';

export interface ModelFromBytesOptions extends FiniteOptions {
  /** Names the weights in errors (default "model.safetensors"). */
  source?: string;
  /** Names the config in errors (default "config.json"). */
  configSource?: string;
}

/**
 * Build a model from an HF config.json object and its weights: the bytes of a safetensors file,
 * or raw tensors already parsed (any dtype safetensors holds; converted to f32).
 */
export function modelFromBytes(config: Record<string, unknown>, weights: Uint8Array | readonly RawTensor[], opts: ModelFromBytesOptions = {}): CausalLM {
  const source = opts.source ?? 'model.safetensors';
  const configSource = opts.configSource ?? 'config.json';
  const tensors = weights instanceof Uint8Array ? parseSafetensorsBytes(weights, source).tensors : weights;
  const renamed = checkModelTensors(config, configSource, source, tensors);
  const named = renamed ? tensors.map((t) => ({ ...t, name: renamed.get(t.name) ?? t.name })) : tensors;
  checkFiniteTensors(named, source, opts); // before the model is allocated
  const model = buildModelForWeights(config, configSource, source, named); // every parameter is loaded (strict)
  try {
    model.loadStateDict(f32StateDict(named, source, { allowNonFinite: true }), { source });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}
