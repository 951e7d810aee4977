// io: checkpoint formats, each read and written. Bytes and formats only; models live above.
//
//   safetensors.ts  single files (lazy per-tensor reads via file handles) and sharded
//                   model.safetensors.index.json; writer byte-identical to huggingface/safetensors
//   safetensors_bytes.ts  the same from/to bytes in memory (Node-free: the browser entry point)
//   hf.ts           HF directories: config.json + weights, atomic writes
//   hf_bytes.ts     a model from a config object + safetensors bytes (Node-free)
//   llama2c.ts      llama2.c legacy .bin and "ak42" v1, shared or unshared classifier
//   gguf.ts         GGUF v2/v3 reader, v3 writer: typed metadata, F32/F16/BF16, Q8_0/Q4_0/Q4_1/Q5_0/Q4_K/Q5_K/Q6_K (+ ints, F64)
//   gguf_arch.ts    what the GGUF architecture mappings share: tokenizer.ggml.*, typed metadata reads, stored dtypes
//   gguf_llama.ts   LLaMA in GGUF as llama.cpp expects it (keys, tensor names, q/k permutation)
//   gguf_mamba.ts   Mamba in GGUF as llama.cpp's `mamba` architecture expects it (ssm_* tensors, A = −exp(A_log))
//   gguf_moe.ts     mixtral (llama + experts) and qwen2_moe (qwen2moe) in GGUF: experts stacked into ffn_*_exps
//   gguf_model.ts   readModelGguf / writeModelGguf: dispatch on general.architecture / model_type
//   llama.ts        LLaMA config dims + tensor checks, permuteQK/unpermuteQK (RoPE layouts)
//   mamba.ts        Mamba config dims (MambaConfig defaults) + HF tensor names/shapes + checks
//   moe.ts          mixtral / qwen2_moe config dims (HF defaults) + HF tensor names/shapes (expert by expert) + checks
//   dtypes.ts       RawTensor, f16/bf16 (round to nearest even), Q8_0 (as ggml), the other block types' dequantisation
//   quantize.ts     ggml's reference quantisers for Q4_0, Q4_1, Q5_0, Q4_K, Q5_K, Q6_K
//   finite.ts       non-finite weights (NaN, ±Inf) refused at load unless allowNonFinite
//   json.ts         JSON parsed with bounded nesting, errors by line/column without the text (json_file.ts: files)
//   errors.ts       error classes; messages start with the file and name the field or tensor
//
// q/k RoPE layout per format: HF safetensors = rotate-half; llama2.c and GGUF = interleaved
// (Meta). Readers return HF layout unless asked for { qkLayout: 'interleaved' }.
export * from './errors.js';
export * from './dtypes.js';
export * from './safetensors.js';
export * from './hf.js';
export * from './hf_bytes.js';
export * from './llama.js';
export * from './llama2c.js';
export * from './gguf.js';
export * from './gguf_arch.js';
export * from './gguf_llama.js';
export * from './gguf_mamba.js';
export * from './gguf_moe.js';
export * from './gguf_model.js';
export * from './mamba.js';
export * from './moe.js';
export * from './model.js';
export * from './medusa.js';
export * from './finite.js';
export * from './json.js';
export * from './json_file.js';
export * from './tokenizer_convert.js';
export * from './convert.js';
export * from './quantize.js';
