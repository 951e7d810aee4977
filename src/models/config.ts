// Model configs are plain objects with Hugging Face config.json field names. Parsing keeps
// known keys, fills defaults and validates, naming the file and field at fault.

export class ConfigError extends Error {
  constructor(source: string, message: string) {
    super(`${source}: ${message}`);
    this.name = 'ConfigError';
  }
}

type Raw = Record<string, unknown>;

export function intField(raw: Raw, key: string, source: string, def?: number): number {
  const v = raw[key] ?? def;
  if (v === undefined) throw new ConfigError(source, `missing required field "${key}"`);
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new ConfigError(source, `field "${key}" must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

export function numField(raw: Raw, key: string, source: string, def: number): number {
  const v = raw[key] ?? def;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new ConfigError(source, `field "${key}" must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}

export function boolField(raw: Raw, key: string, source: string, def: boolean): boolean {
  const v = raw[key] ?? def;
  if (typeof v !== 'boolean') throw new ConfigError(source, `field "${key}" must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

/** A token id or list of ids (eos_token_id may be either); null when absent. */
export function idsField(raw: Raw, key: string, source: string): number[] | null {
  const v = raw[key];
  if (v === undefined || v === null) return null;
  const arr = Array.isArray(v) ? v : [v];
  for (const x of arr) if (typeof x !== 'number' || !Number.isInteger(x) || x < 0) throw new ConfigError(source, `field "${key}" must be a token id or a list of ids, got ${JSON.stringify(v)}`);
  return arr as number[];
}
