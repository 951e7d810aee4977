// The model families the formats know (LLaMA-like, its MoE variants and Mamba): a checkpoint's tensors checked
// against its HF config before any weight is loaded. Node-free (the browser entry point uses it).
import type { RawTensor } from './dtypes.js';
import { MissingTensorError, TensorError } from './errors.js';
import { checkLlamaTensors, llamaDims } from './llama.js';
import { checkMambaTensors, mambaDims, mambaTensorName } from './mamba.js';
import { checkMoeTensors, moeDims } from './moe.js';

/** Model types whose tensors this layer can check against the config. */
const LLAMA_LIKE = new Set(['llama', 'mistral']);

/** True when an HF config describes a sequence-classification model (a reward model: the backbone and score.weight). */
export function isSequenceClassificationConfig(config: Record<string, unknown>): boolean {
  const a = config.architectures;
  return Array.isArray(a) && typeof a[0] === 'string' && a[0].endsWith('ForSequenceClassification');
}

/**
 * Check a checkpoint's tensor names and shapes against its config (the families this layer knows:
 * LLaMA-like and Mamba); an error names the file and the tensor. Returns the tensor names to use
 * (older Mamba checkpoints' names mapped to today's), or null to keep them. mixtral and qwen2_moe
 * are checked expert by expert (moe.ts).
 */
export function checkModelTensors(config: Record<string, unknown>, configFile: string, file: string, tensors: readonly Pick<RawTensor, 'name' | 'shape'>[]): Map<string, string> | null {
  if (isSequenceClassificationConfig(config)) {
    // The backbone without an lm_head (checked as tied: one, if present, must match) and
    // score.weight [num_labels, hidden_size] (num_labels: id2label's size, as transformers derives it).
    const labels = config.id2label && typeof config.id2label === 'object' ? Object.keys(config.id2label).length : Number(config.num_labels ?? 2);
    const hidden = Number(config.hidden_size ?? config.d_model);
    const score = tensors.find((t) => t.name === 'score.weight');
    if (!score) throw new MissingTensorError(file, 'score.weight', 'missing (the classification head of a sequence-classification model)');
    if (score.shape.length !== 2 || score.shape[0] !== labels || score.shape[1] !== hidden) {
      throw new TensorError(file, 'score.weight', `shape [${score.shape.join(', ')}] does not match the config's [${labels}, ${hidden}] (num_labels, hidden_size)`);
    }
    return checkModelTensors({ ...config, architectures: undefined, tie_word_embeddings: true }, configFile, file, tensors.filter((t) => t !== score));
  }
  const type = String(config.model_type);
  if (LLAMA_LIKE.has(type)) checkLlamaTensors(file, tensors, llamaDims(config, configFile));
  if (type === 'mixtral' || type === 'qwen2_moe') checkMoeTensors(file, tensors, moeDims(config, configFile));
  if (type !== 'mamba') return null;
  const renamed = new Map(tensors.filter((t) => mambaTensorName(t.name) !== t.name).map((t) => [t.name, mambaTensorName(t.name)]));
  checkMambaTensors(file, tensors.map((t) => ({ name: renamed.get(t.name) ?? t.name, shape: t.shape })), mambaDims(config, configFile));
  return renamed.size ? renamed : null;
}

