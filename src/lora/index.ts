export { LoRALinear, LoraFactor, LoraError, loraScale } from '../nn/lora.js';
export type { LoraOptions, Adapter } from '../nn/lora.js';
export { LLAMA_LORA_TARGETS, linearLayers, selectTargets, applyLora, loraLayers, adapterNames, setAdapter, mergeLora, unmergeLora, fuseLora, trainableSummary } from './model.js';
export type { LoraSpec, NamedLinear } from './model.js';
export { saveAdapter, loadAdapter, readAdapterConfig, peftConfig, adapterFiles, PEFT_PREFIX, ADAPTER_CONFIG, ADAPTER_WEIGHTS } from './peft.js';
export type { PeftLoraConfig } from './peft.js';
export { svd, extractLora, addExtractedAdapter } from './extract.js';
export type { ExtractResult, ExtractedLayer } from './extract.js';
