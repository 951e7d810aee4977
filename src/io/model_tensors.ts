// A model's weights as raw HF-named tensors, for the writers (safetensors, GGUF, llama2.c); Node-free.
import { Tensor, isQuantized } from '../tensor/tensor.js';
import { scope } from '../tensor/storage.js';
import { dequantize } from '../tensor/ops.js';
import type { CausalLM } from '../models/index.js';
import { fromFloat32 } from './dtypes.js';
import type { RawTensor } from './dtypes.js';

/**
 * The model's weights as HF-named raw tensors (tied weights once). With `lazy`, each tensor's
 * bytes are made from the model's heap whenever `data` is read (and not kept): a writer that turns
 * one tensor at a time into its output holds no f32 copy of the whole model (a 1.1B-parameter
 * model kept Q4_0 in the heap would need 4.4 GB of f32 host memory at once); the last tensor read
 * is kept, so reading one tensor's bytes twice in a row makes them once. The model must stay alive
 * and unchanged while a lazy list is read.
 */
export function modelTensors(model: CausalLM, dtype: 'F32' | 'F16' | 'BF16' = 'F32', opts: { lazy?: boolean } = {}): RawTensor[] {
  const seen = new Set<Tensor>();
  const out: RawTensor[] = [];
  // The lazy list's one cached tensor: a writer that reads a tensor's bytes several times in a row
  // (its length, then its bytes) makes them once, and never holds more than one tensor's.
  let last: { name: string; data: Uint8Array } | null = null;
  for (const [name, t] of model.namedTensors()) {
    if (seen.has(t)) continue;
    seen.add(t);
    const dt = t.ndim >= 2 ? dtype : 'F32', shape = [...t.shape];
    // A quantised weight (ggml blocks) is dequantised explicitly: the formats written here hold floats.
    const make = (): RawTensor => fromFloat32(name, shape, isQuantized(t.dtype) ? scope(() => dequantize(t).data() as Float32Array) : t.data() as Float32Array, dt);
    if (!opts.lazy) { out.push(make()); continue; }
    out.push({
      name, dtype: dt, shape,
      get data(): Uint8Array {
        if (last?.name !== name) last = { name, data: make().data };
        return last.data;
      },
    });
  }
  return out;
}
