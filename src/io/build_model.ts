// Building the model a checkpoint's weights go into, within the heap those weights justify: a
// config that describes a far larger model than its file holds (hidden_size or layers damaged, a
// family whose tensors are not checked against the config) is refused with an error naming the
// config, before gigabytes of heap are reserved; what was built so far is released. Node-free.
import { createModel } from '../models/index.js';
import type { CausalLM } from '../models/index.js';
import { withoutInit } from '../nn/module.js';
import { HeapBudgetError, heapStats, withHeapBudget } from '../backend/heap.js';
import { deferAllocation, releaseOnThrow } from '../tensor/storage.js';
import type { Storage } from '../tensor/storage.js';
import { ConfigFieldError } from './errors.js';
import { elementCount } from './dtypes.js';
import type { RawTensor } from './dtypes.js';

/** Heap bytes a model built for `tensors` may take: their f32 size plus a margin for buffers. */
export function modelBudget(tensors: readonly Pick<RawTensor, 'shape'>[]): { weightBytes: number; budget: number } {
  let weightBytes = 0;
  for (const t of tensors) weightBytes += elementCount(t.shape) * 4 + 64;
  return { weightBytes, budget: weightBytes + Math.max(64 << 20, Math.ceil(weightBytes / 4)) };
}

/**
 * createModel (without initialisation) for weights `tensors` of `weightsFile`, within modelBudget.
 * The parameters' storage is deferred (deferAllocation): each takes its heap when loadStateDict
 * writes it, so weights replaced by quantised ones (useQuantizedWeights) never take f32 heap. The
 * caller loads every parameter (a strict loadStateDict) or disposes of the model.
 */
export function buildModelForWeights(config: Record<string, unknown>, configSource: string, weightsFile: string, tensors: readonly Pick<RawTensor, 'shape'>[]): CausalLM {
  const { weightBytes, budget } = modelBudget(tensors);
  const tooLarge = () => new ConfigFieldError(configSource, 'config', `describes a model larger than the weights in ${weightsFile}: building it needs more than ${budget} bytes of heap, the weights hold ${weightBytes} bytes as f32 (a damaged config, or the wrong weights)`);
  const before = heapStats().inUse;
  let model: CausalLM;
  try {
    model = releaseOnThrow(() => withHeapBudget(budget, () => deferAllocation(() => withoutInit(() => createModel(config, configSource)))));
  } catch (e) {
    if (e instanceof HeapBudgetError) throw tooLarge();
    throw e;
  }
  // What the model would take once loaded as f32: the heap it took plus its deferred storage.
  const deferred = new Set<Storage>();
  for (const [, t] of model.namedTensors()) if (!t.storage.allocated) deferred.add(t.storage);
  let bytes = heapStats().inUse - before;
  for (const st of deferred) bytes += st.bytes;
  if (bytes > budget) {
    model.dispose();
    throw tooLarge();
  }
  return model;
}
