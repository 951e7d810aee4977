// LoRA adapters in Hugging Face PEFT's directory format: adapter_config.json (LoraConfig fields:
// peft_type "LORA", r, lora_alpha, lora_dropout, target_modules, use_rslora,
// base_model_name_or_path, …) and adapter_model.safetensors with PEFT's tensor names,
//   base_model.model.<module path>.lora_A.weight   (r, in)
//   base_model.model.<module path>.lora_B.weight   (out, r)
// so `PeftModel.from_pretrained(base, dir)` loads what we save, and we load what it saves.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Module } from '../nn/module.js';
import { LoRALinear, LoraError } from '../nn/lora.js';
import { copyInto, tensor } from '../tensor/ops.js';
import { scope } from '../tensor/storage.js';
import { readSafetensors } from '../io/safetensors.js';
import { float32Values } from '../io/dtypes.js';
import { checkFiniteTensors } from '../io/finite.js';
import type { FiniteOptions } from '../io/finite.js';
import { readJsonObjectFileSync } from '../io/json_file.js';
import { IoError } from '../io/errors.js';
import { applyLora, loraLayers, selectTargets, setAdapter } from './model.js';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, PEFT_PREFIX, adapterFiles } from './peft_bytes.js';
import type { PeftLoraConfig } from './peft_bytes.js';
import type { LoraSpec } from './model.js';

export { PEFT_PREFIX, ADAPTER_CONFIG, ADAPTER_WEIGHTS, peftConfig, adapterFiles } from './peft_bytes.js';
export type { PeftLoraConfig } from './peft_bytes.js';

/**
 * Save adapter `name` (default: the active one) of a model as a PEFT directory. Only the
 * adapter's tensors are written (F32), named as PEFT names them.
 */
export async function saveAdapter(model: Module, dir: string, opts: { name?: string; baseModel?: string | null } = {}): Promise<void> {
  const files = adapterFiles(model, opts);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, ADAPTER_WEIGHTS), files[ADAPTER_WEIGHTS]);
  writeFileSync(path.join(dir, ADAPTER_CONFIG), files[ADAPTER_CONFIG]);
}

/** Read and check adapter_config.json. */
export function readAdapterConfig(dir: string): PeftLoraConfig {
  const f = path.join(dir, ADAPTER_CONFIG);
  if (!existsSync(f)) throw new LoraError(`${dir}: no ${ADAPTER_CONFIG} (expected a PEFT adapter directory)`);
  let c: Record<string, unknown>;
  // A regular file, valid JSON (errors by line/column, never quoting the text), an object.
  try { c = readJsonObjectFileSync(f, 'adapter config'); } catch (e) { if (e instanceof IoError) throw new LoraError(e.message); throw e; }
  const bad = (field: string, why: string): never => { throw new LoraError(`${f}: ${field} ${why.length > 300 ? why.slice(0, 300) + '…' : why}`); };
  if (c.peft_type !== 'LORA') bad('peft_type', `is ${JSON.stringify(c.peft_type)}; only "LORA" adapters are supported`);
  if (!Number.isInteger(c.r) || (c.r as number) < 1) bad('r', `must be a positive integer, got ${JSON.stringify(c.r)}`);
  if ((c.r as number) > 1 << 16) bad('r', `is ${c.r}, more than the limit of ${1 << 16}`);
  if (typeof c.lora_alpha !== 'number' || !(c.lora_alpha > 0)) bad('lora_alpha', `must be a positive number, got ${JSON.stringify(c.lora_alpha)}`);
  const tm = c.target_modules;
  if (!(typeof tm === 'string' || (Array.isArray(tm) && tm.length && tm.every((t) => typeof t === 'string')))) bad('target_modules', `must be a list of module names or a regular expression, got ${JSON.stringify(tm)}`);
  if (c.fan_in_fan_out) bad('fan_in_fan_out', 'is true (GPT-2 Conv1D layout); not supported');
  if (c.use_dora) bad('use_dora', 'is true; DoRA adapters are not supported');
  if ((c.bias ?? 'none') !== 'none') bad('bias', `is ${JSON.stringify(c.bias)}; only "none" is supported`);
  if (c.modules_to_save && (c.modules_to_save as unknown[]).length) bad('modules_to_save', 'is set; not supported');
  for (const k of ['rank_pattern', 'alpha_pattern']) {
    const v = c[k];
    if (v === undefined || v === null) continue;
    // (Object.keys of a 10 MB string is ten million keys: half a minute and a gigabyte.)
    if (typeof v !== 'object' || Array.isArray(v)) bad(k, `must be an object of module patterns, got ${typeof v === 'string' ? `a string of ${v.length} characters` : Array.isArray(v) ? 'an array' : typeof v}`);
    for (const _ in v as object) bad(k, 'is set; per-module ranks are not supported');
  }
  if (c.layers_to_transform !== undefined && c.layers_to_transform !== null) bad('layers_to_transform', 'is set; not supported');
  return {
    ...(c as object), peft_type: 'LORA', r: c.r as number, lora_alpha: c.lora_alpha as number, lora_dropout: Number(c.lora_dropout ?? 0),
    target_modules: tm as string[] | string, use_rslora: !!c.use_rslora, base_model_name_or_path: (c.base_model_name_or_path as string | null) ?? null,
  } as PeftLoraConfig;
}

/**
 * Load a PEFT LoRA directory into the model as adapter `name` (default "default") and make it
 * active. Every target layer must have its lora_A/lora_B with shapes (r, in) and (out, r);
 * missing, unexpected and misshapen tensors are errors naming the tensor.
 */
export async function loadAdapter(model: Module, dir: string, opts: { name?: string } & FiniteOptions = {}): Promise<PeftLoraConfig> {
  const name = opts.name ?? 'default';
  const cfg = readAdapterConfig(dir);
  const file = path.join(dir, ADAPTER_WEIGHTS);
  if (!existsSync(file)) throw new LoraError(`${dir}: no ${ADAPTER_WEIGHTS}`);
  const { tensors } = await readSafetensors(file);
  checkFiniteTensors(tensors, file, opts); // NaN or ±Inf in a factor: refused, naming the tensor and element
  const byName = new Map(tensors.map((t) => [normalizeName(t.name), t]));
  let targets;
  try { targets = selectTargets(model, cfg.target_modules); } catch (e) { throw new LoraError(`${path.join(dir, ADAPTER_CONFIG)}: ${(e as Error).message}`); }
  const expected = new Set<string>();
  for (const t of targets) {
    const l = t.layer;
    for (const [kind, shape] of [['lora_A', [cfg.r, l.inFeatures]], ['lora_B', [l.outFeatures, cfg.r]]] as const) {
      const n = `${PEFT_PREFIX}${t.name}.${kind}.weight`;
      expected.add(n);
      const raw = byName.get(n);
      if (!raw) throw new LoraError(`${file}: missing tensor ${n} (target module ${t.name})`);
      if (raw.shape.join() !== shape.join()) {
        throw new LoraError(`${file}: tensor ${n} has shape [${raw.shape.join(', ')}], the base model's ${t.name} (${l.outFeatures}×${l.inFeatures}) with r = ${cfg.r} needs [${shape.join(', ')}]`);
      }
    }
  }
  const extra = [...byName.keys()].filter((n) => !expected.has(n));
  if (extra.length) throw new LoraError(`${file}: unexpected tensor(s) ${extra.slice(0, 4).join(', ')}${extra.length > 4 ? ` (+${extra.length - 4} more)` : ''}: no such target module in the base model`);
  // Build the adapter with the loaded factors.
  const spec: LoraSpec = { r: cfg.r, lora_alpha: cfg.lora_alpha, lora_dropout: cfg.lora_dropout, use_rslora: cfg.use_rslora, target_modules: cfg.target_modules };
  const adapted = applyLora(model, spec, name);
  scope(() => {
    for (const t of adapted) {
      const l = t.layer as LoRALinear;
      const ad = l.adapter(name)!;
      for (const [kind, dst] of [['lora_A', ad.lora_A.weight], ['lora_B', ad.lora_B.weight]] as const) {
        const raw = byName.get(`${PEFT_PREFIX}${t.name}.${kind}.weight`)!;
        const src = tensor(float32Values(raw, file), raw.shape);
        copyInto(dst, src);
      }
    }
  });
  setAdapter(model, name);
  return cfg;
}


/** PEFT names saved with the adapter name inside (…lora_A.default.weight) are read as the plain form. */
function normalizeName(n: string): string {
  return n.replace(/\.(lora_[AB])\.[^.]+\.weight$/, '.$1.weight');
}
