// A model in GGUF whatever its architecture: readModelGguf reads general.architecture and hands
// the file to that architecture's reader (a `llama` file with llama.expert_count > 0 is a Mixtral,
// read by gguf_moe.ts); writeModelGguf picks the writer from the HF config's model_type. Both give
// and take HF configs and HF-named tensors.
import { ConfigFieldError } from './errors.js';
import type { BlockQuantizer, RawTensor } from './dtypes.js';
import { openGguf } from './gguf_arch.js';
import type { GgufMatrixDType, GgufTokenizer } from './gguf_arch.js';
import { llamaFromGguf, writeLlamaGguf } from './gguf_llama.js';
import type { LlamaGgufCheckpoint } from './gguf_llama.js';
import { mambaFromGguf, writeMambaGguf } from './gguf_mamba.js';
import type { MambaGgufCheckpoint } from './gguf_mamba.js';
import { isMoeGguf, moeFromGguf, writeMoeGguf } from './gguf_moe.js';
import type { MoeGgufCheckpoint } from './gguf_moe.js';
import type { HfConfig } from './hf.js';

/** general.architecture values tslm reads and writes. */
export const GGUF_ARCHITECTURES = ['llama', 'mamba', 'qwen2moe'] as const;
export type GgufArchitecture = (typeof GGUF_ARCHITECTURES)[number];

/** HF model_types writeModelGguf writes (mistral and qwen2 are written as llama by the caller). */
export const GGUF_MODEL_TYPES = ['llama', 'mamba', 'mixtral', 'qwen2_moe'] as const;

export type ModelGgufCheckpoint =
  | ({ architecture: 'llama'; modelType: 'llama' } & LlamaGgufCheckpoint)
  | ({ architecture: 'mamba'; modelType: 'mamba' } & MambaGgufCheckpoint)
  | ({ architecture: 'llama' | 'qwen2moe' } & MoeGgufCheckpoint);

/**
 * Read a GGUF model of any supported architecture as an HF config (model_type "llama", "mamba",
 * "mixtral" or "qwen2_moe", also given as `modelType`) + HF-named tensors (q/k in HF rotate-half
 * layout) + tokenizer. `deferred` (a path only): the tensors' bytes stay in the file until read
 * (RawTensor.source), so that loadModel reads them straight into the model's heap.
 */
export async function readModelGguf(src: string | Uint8Array, opts: { label?: string; deferred?: boolean } = {}): Promise<ModelGgufCheckpoint> {
  const f = await openGguf(src, opts.label, { deferred: opts.deferred });
  try {
    const arch = f.get('general.architecture');
    switch (arch) {
      case 'llama':
        if (isMoeGguf(f)) return { architecture: 'llama', ...(await moeFromGguf(f)) };
        return { architecture: 'llama', modelType: 'llama', ...(await llamaFromGguf(f)) };
      case 'mamba': return { architecture: 'mamba', modelType: 'mamba', ...(await mambaFromGguf(f)) };
      case 'qwen2moe': return { architecture: 'qwen2moe', ...(await moeFromGguf(f)) };
      case undefined: throw new ConfigFieldError(f.file, 'general.architecture', 'is missing');
      default: throw new ConfigFieldError(f.file, 'general.architecture', `${JSON.stringify(arch)} is not supported (tslm reads ${GGUF_ARCHITECTURES.join(', ')})`);
    }
  } finally {
    await f.close();
  }
}

export interface WriteModelGgufInput {
  /** An HF config; its model_type ("llama", "mamba", "mixtral", "qwen2_moe") picks the GGUF architecture. */
  config: HfConfig;
  tensors: readonly RawTensor[];
  tokenizer: GgufTokenizer;
  dtype?: GgufMatrixDType;
  name?: string;
  /** How matrices are quantised to block types (GgufModelInput.quantize). */
  quantize?: BlockQuantizer;
}

/**
 * Write a model as GGUF, the architecture chosen by config.model_type: llama → llama, mamba →
 * mamba, mixtral → llama with experts, qwen2_moe → qwen2moe.
 */
export async function writeModelGguf(path: string, input: WriteModelGgufInput): Promise<void> {
  const mt = input.config.model_type;
  if (mt === 'llama') return writeLlamaGguf(path, input);
  if (mt === 'mamba') return writeMambaGguf(path, input);
  if (mt === 'mixtral' || mt === 'qwen2_moe') return writeMoeGguf(path, input);
  throw new ConfigFieldError(path, 'model_type', `${JSON.stringify(mt ?? null)} has no GGUF writer (tslm writes ${GGUF_MODEL_TYPES.join(', ')})`);
}
