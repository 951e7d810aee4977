// LoRA on a whole model: wrap the chosen Linear layers (by field name, as PEFT's target_modules)
// in LoRALinear after freezing the base, switch, merge, unmerge and fuse adapters.
import { Module } from '../nn/module.js';
import { Linear } from '../nn/layers.js';
import { LoRALinear, LoraError } from '../nn/lora.js';
import type { LoraOptions } from '../nn/lora.js';
import { Generator } from '../tensor/random.js';

/** The LLaMA projections LoRA is usually put on. */
export const LLAMA_LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;

export interface LoraSpec extends LoraOptions {
  /**
   * Module names as PEFT's list form reads them: a layer is targeted when its dotted name equals
   * an entry or ends with "." + entry (q_proj, mixer.in_proj, layers.0.self_attn.v_proj, …); or
   * a regular expression that must match a module's whole dotted name (PEFT's string form).
   */
  target_modules: string[] | string;
  /** Seed of lora_A's initialisation and of dropout. */
  seed?: number;
}

/** A linear layer (plain or adapted) with its dotted module name. */
export interface NamedLinear { name: string; key: string; parent: Module; layer: Linear | LoRALinear }

/** Every Linear / LoRALinear reachable from the model, with its dotted name and owner. */
export function linearLayers(model: Module): NamedLinear[] {
  const out: NamedLinear[] = [];
  const walk = (m: Module, prefix: string): void => {
    for (const [key, value] of Object.entries(m)) {
      if (key.startsWith('_')) continue;
      const name = prefix ? `${prefix}.${key}` : key;
      if (value instanceof Linear || value instanceof LoRALinear) out.push({ name, key, parent: m, layer: value });
      else if (value instanceof Module) walk(value, name);
      else if (Array.isArray(value)) value.forEach((v, i) => { if (v instanceof Module) walk(v, `${name}.${i}`); });
    }
  };
  walk(model, '');
  return out;
}

/**
 * Whether a regex repeats without bound (*, +, {n,}) a group that contains a repetition or an
 * alternation — the shapes whose backtracking takes exponential time ("(.*.*)*x", "(a|a)+$").
 * Returns the offending group's position, or null. PEFT's patterns (".*\\.(q_proj|v_proj)") pass.
 */
function nestedRepetition(src: string): string | null {
  // Per open group: its start and whether it holds a quantifier or an alternation.
  const open: Array<{ at: number; inner: boolean }> = [];
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === '\\') { i++; continue; }
    if (c === '[') { // a class: skip to its end
      for (i++; i < src.length && src[i] !== ']'; i++) if (src[i] === '\\') i++;
      continue;
    }
    if (c === '(') { open.push({ at: i, inner: false }); continue; }
    if (c === '|' || c === '*' || c === '+' || (c === '{' && /^\{\d*,?\d*\}/.test(src.slice(i)))) {
      if (open.length) open[open.length - 1].inner = true;
      if (c === '|') continue;
    }
    if (c === ')') {
      const g = open.pop();
      const q = src.slice(i + 1);
      const unbounded = /^(\*|\+|\{\d+,\})/.test(q);
      if (g && g.inner && unbounded) return `the group at offset ${g.at}`;
      // The group counts as a repetition inside its parent when it is quantified.
      if (open.length && (g?.inner || /^(\*|\+|\?|\{)/.test(q))) open[open.length - 1].inner = true;
    }
  }
  return null;
}

/** The layers a target_modules spec selects; unknown names are an error listing the known ones. */
export function selectTargets(model: Module, targets: string[] | string): NamedLinear[] {
  const layers = linearLayers(model);
  const known = [...new Set(layers.map((l) => l.key))];
  if (typeof targets === 'string') {
    const shown = targets.length > 80 ? `${targets.slice(0, 80)}…` : targets;
    if (targets.length > 2000) throw new LoraError(`target_modules is a regular expression of ${targets.length} characters (at most 2000)`);
    const risky = nestedRepetition(targets);
    if (risky) throw new LoraError(`target_modules "${shown}" repeats a group that itself repeats or alternates (${risky}): matching it can take exponential time`);
    let re: RegExp;
    try { re = new RegExp(`^(?:${targets})$`); } catch (e) { throw new LoraError(`target_modules "${shown}" is not a valid regular expression (${(e as Error).message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, '')})`); }
    const sel = layers.filter((l) => re.test(l.name));
    if (!sel.length) throw new LoraError(`target_modules "${targets}" matches no linear layer (layers are named like ${layers[0]?.name ?? '(none)'})`);
    return sel;
  }
  if (!targets.length) throw new LoraError('target_modules is empty');
  const matches = (l: NamedLinear, t: string) => l.name === t || l.name.endsWith(`.${t}`);
  const unknown = targets.filter((t) => !layers.some((l) => matches(l, t)));
  if (unknown.length) throw new LoraError(`unknown target module(s) ${unknown.map((u) => `"${u}"`).join(', ')}; this model's linear layers are ${known.join(', ')}`);
  return layers.filter((l) => targets.some((t) => matches(l, t)));
}

/**
 * Freeze the model and put a new adapter `name` on the target layers (wrapping plain Linears in
 * LoRALinear; layers that already hold adapters get one more). Returns the adapted layers.
 */
export function applyLora(model: Module, spec: LoraSpec, name = 'default'): NamedLinear[] {
  const sel = selectTargets(model, spec.target_modules);
  // Check every rank before changing anything.
  for (const t of sel) {
    const l = t.layer;
    if (spec.r > Math.min(l.inFeatures, l.outFeatures)) {
      throw new LoraError(`LoRA rank r = ${spec.r} is larger than a dimension of ${t.name} (${l.outFeatures}×${l.inFeatures}; at most ${Math.min(l.inFeatures, l.outFeatures)})`);
    }
    if (l instanceof LoRALinear && l.adapterNames.includes(name)) throw new LoraError(`${t.name} already has an adapter "${name}"`);
  }
  model.freeze();
  const g = new Generator(spec.seed ?? 0);
  const out: NamedLinear[] = [];
  for (const t of sel) {
    let l = t.layer;
    if (l instanceof LoRALinear) {
      if (l.mergedAdapter !== null) throw new LoraError(`${t.name}: adapter "${l.mergedAdapter}" is merged; unmerge before adding another`);
      l.addAdapter(name, spec, g);
    } else {
      l = LoRALinear.fromLinear(l, { ...spec, name, generator: g });
      l.training = t.parent.training; // dropout follows the model's train()/eval() state
      (t.parent as unknown as Record<string, unknown>)[t.key] = l;
    }
    out.push({ ...t, layer: l });
  }
  // Other adapted layers that lack this adapter run as their base while it is active.
  setAdapter(model, name);
  return out;
}

/** The LoRALinear layers of a model. */
export function loraLayers(model: Module): { name: string; layer: LoRALinear }[] {
  return linearLayers(model).filter((l): l is NamedLinear & { layer: LoRALinear } => l.layer instanceof LoRALinear).map((l) => ({ name: l.name, layer: l.layer }));
}

/** Names of the adapters loaded on the model. */
export function adapterNames(model: Module): string[] {
  return [...new Set(loraLayers(model).flatMap((l) => l.layer.adapterNames))];
}

/** Activate adapter `name` on every layer that has it (others run their base), or none (null). */
export function setAdapter(model: Module, name: string | null): void {
  const layers = loraLayers(model);
  if (name !== null && !layers.some((l) => l.layer.adapterNames.includes(name))) {
    throw new LoraError(`no adapter "${name}" is loaded (have ${adapterNames(model).map((n) => `"${n}"`).join(', ') || 'none'})`);
  }
  for (const { layer } of layers) layer.setAdapter(name !== null && layer.adapterNames.includes(name) ? name : null);
}

/** Add the active adapter into the base weights of every adapted layer. */
export function mergeLora(model: Module): void {
  for (const { layer } of loraLayers(model)) if (layer.activeAdapter !== null && layer.mergedAdapter === null) layer.merge();
}

/** Subtract merged adapters from the base weights again. */
export function unmergeLora(model: Module): void {
  for (const { layer } of loraLayers(model)) if (layer.mergedAdapter !== null) layer.unmerge();
}

/** Fuse the active adapter into plain Linear layers (W + scale·B·A) and drop all adapters. */
export function fuseLora(model: Module): void {
  for (const t of linearLayers(model)) {
    if (t.layer instanceof LoRALinear) (t.parent as unknown as Record<string, unknown>)[t.key] = t.layer.toLinear();
  }
}

/** Trainable parameter count vs total (for reports). */
export function trainableSummary(model: Module): { trainable: number; total: number } {
  const seen = new Set<unknown>();
  let trainable = 0, total = 0;
  for (const [, t] of model.namedTensors()) {
    if (seen.has(t)) continue;
    seen.add(t);
    total += t.size;
    if (t.requiresGrad) trainable += t.size;
  }
  return { trainable, total };
}
