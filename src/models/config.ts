// Model configs are plain objects with Hugging Face config.json field names. Parsing keeps
// known keys, fills defaults and validates, naming the file and field at fault.

export class ConfigError extends Error {
  constructor(source: string, message: string) {
    super(`${source}: ${message}`);
    this.name = 'ConfigError';
  }
}

type Raw = Record<string, unknown>;

/**
 * Upper limits of the integer fields that size a model, checked before anything is allocated or
 * looped over (a config declaring num_hidden_layers 1e8 or hidden_size 1e12 is refused here, not
 * after minutes of allocation). Generous: the largest public models are far below them.
 */
export const CONFIG_LIMITS: Readonly<Record<string, number>> = {
  hidden_size: 1 << 20, d_model: 1 << 20, intermediate_size: 1 << 20, moe_intermediate_size: 1 << 20,
  shared_expert_intermediate_size: 1 << 20, head_dim: 1 << 16, num_attention_heads: 1 << 16, num_key_value_heads: 1 << 16,
  num_hidden_layers: 4096, vocab_size: 1 << 24, max_position_embeddings: 1 << 24, sliding_window: 1 << 24,
  num_local_experts: 4096, num_experts: 4096, num_experts_per_tok: 4096, decoder_sparse_step: 4096,
  state_size: 1 << 16, expand: 64, conv_kernel: 1 << 10, time_step_rank: 1 << 20,
  medusa_num_heads: 256, medusa_num_layers: 256,
};

/** A value for an error message, cut short (a field may hold megabytes). */
function brief(v: unknown, max = 60): string {
  let s: string;
  try { s = JSON.stringify(v) ?? String(v); } catch { s = String(v); }
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

/** The limit of a field (CONFIG_LIMITS), or null when the value is within it. */
export function overLimit(key: string, v: number): number | null {
  const max = CONFIG_LIMITS[key];
  return max !== undefined && v > max ? max : null;
}

export function intField(raw: Raw, key: string, source: string, def?: number): number {
  const v = raw[key] ?? def;
  if (v === undefined) throw new ConfigError(source, `missing required field "${key}"`);
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new ConfigError(source, `field "${key}" must be a positive integer, got ${brief(v)}`);
  const max = overLimit(key, v);
  if (max !== null) throw new ConfigError(source, `field "${key}" is ${v}, more than the limit of ${max}`);
  return v;
}

export function numField(raw: Raw, key: string, source: string, def: number): number {
  const v = raw[key] ?? def;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new ConfigError(source, `field "${key}" must be a positive number, got ${brief(v)}`);
  return v;
}

export function boolField(raw: Raw, key: string, source: string, def: boolean): boolean {
  const v = raw[key] ?? def;
  if (typeof v !== 'boolean') throw new ConfigError(source, `field "${key}" must be true or false, got ${brief(v)}`);
  return v;
}

/** A token id or list of ids (eos_token_id may be either); null when absent. */
export function idsField(raw: Raw, key: string, source: string): number[] | null {
  const v = raw[key];
  if (v === undefined || v === null) return null;
  const arr = Array.isArray(v) ? v : [v];
  for (const x of arr) if (typeof x !== 'number' || !Number.isInteger(x) || x < 0) throw new ConfigError(source, `field "${key}" must be a token id or a list of ids, got ${brief(v)}`);
  return arr as number[];
}
