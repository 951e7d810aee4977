// A model's weights as raw HF-named tensors, for the writers (safetensors, GGUF, llama2.c); Node-free.
import { Tensor, isQuantized } from '../tensor/tensor.js';
import { scope } from '../tensor/storage.js';
import { dequantize } from '../tensor/ops.js';
import type { CausalLM } from '../models/index.js';
import { fromFloat32 } from './dtypes.js';
import type { RawTensor } from './dtypes.js';

/** The model's weights as HF-named raw tensors (tied weights once). */
export function modelTensors(model: CausalLM, dtype: 'F32' | 'F16' | 'BF16' = 'F32'): RawTensor[] {
  const seen = new Set<Tensor>();
  const out: RawTensor[] = [];
  for (const [name, t] of model.namedTensors()) {
    if (seen.has(t)) continue;
    seen.add(t);
    // A quantised weight (ggml blocks) is dequantised explicitly: the formats written here hold floats.
    const values = isQuantized(t.dtype) ? scope(() => dequantize(t).data() as Float32Array) : t.data() as Float32Array;
    out.push(fromFloat32(name, [...t.shape], values, t.ndim >= 2 ? dtype : 'F32'));
  }
  return out;
}
