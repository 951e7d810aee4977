// Building the model a checkpoint's weights go into, within the heap those weights justify: a
// config that describes a far larger model than its file holds (hidden_size or layers damaged, a
// family whose tensors are not checked against the config) is refused with an error naming the
// config, before gigabytes of heap are reserved; what was built so far is released. Node-free.
import { createModel } from '../models/index.js';
import type { CausalLM } from '../models/index.js';
import { withoutInit } from '../nn/module.js';
import { HeapBudgetError, withHeapBudget } from '../backend/heap.js';
import { releaseOnThrow } from '../tensor/storage.js';
import { ConfigFieldError } from './errors.js';
import { elementCount } from './dtypes.js';
import type { RawTensor } from './dtypes.js';

/** Heap bytes a model built for `tensors` may take: their f32 size plus a margin for buffers. */
export function modelBudget(tensors: readonly Pick<RawTensor, 'shape'>[]): { weightBytes: number; budget: number } {
  let weightBytes = 0;
  for (const t of tensors) weightBytes += elementCount(t.shape) * 4 + 64;
  return { weightBytes, budget: weightBytes + Math.max(64 << 20, Math.ceil(weightBytes / 4)) };
}

/** createModel (without initialisation) for weights `tensors` of `weightsFile`, within modelBudget. */
export function buildModelForWeights(config: Record<string, unknown>, configSource: string, weightsFile: string, tensors: readonly Pick<RawTensor, 'shape'>[]): CausalLM {
  const { weightBytes, budget } = modelBudget(tensors);
  try {
    return releaseOnThrow(() => withHeapBudget(budget, () => withoutInit(() => createModel(config, configSource))));
  } catch (e) {
    if (e instanceof HeapBudgetError) {
      throw new ConfigFieldError(configSource, 'config', `describes a model larger than the weights in ${weightsFile}: building it needs more than ${budget} bytes of heap, the weights hold ${weightBytes} bytes as f32 (a damaged config, or the wrong weights)`);
    }
    throw e;
  }
}
