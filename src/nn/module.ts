// Modules: objects that own parameters, named by the path of fields that reach them, so that a
// LLaMA built from fields named like Hugging Face's classes (model.layers[0].self_attn.q_proj)
// has HF's tensor names (model.layers.0.self_attn.q_proj.weight) with no translation table.
import { Tensor, storageBytes } from '../tensor/tensor.js';
import type { QuantDType } from '../tensor/tensor.js';
import { unscoped, scope } from '../tensor/storage.js';
import { copyInto, empty, rand, randn, tensor } from '../tensor/ops.js';
import type { Generator } from '../tensor/random.js';
import { H } from '../backend/heap.js';
import { ShapeError, fmtShape } from '../tensor/errors.js';

export class StateDictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StateDictError';
  }
}

export abstract class Module {
  /** Training mode (dropout on); eval() turns it off. */
  training = true;

  /** Parameters and buffers in declaration order, with their dotted names. */
  namedTensors(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [key, value] of Object.entries(this)) {
      if (key === 'training' || key.startsWith('_')) continue;
      const name = prefix ? `${prefix}.${key}` : key;
      if (value instanceof Tensor) out.push([name, value]);
      else if (value instanceof Module) out.push(...value.namedTensors(name));
      else if (Array.isArray(value)) {
        value.forEach((v, i) => {
          if (v instanceof Module) out.push(...v.namedTensors(`${name}.${i}`));
          else if (v instanceof Tensor) out.push([`${name}.${i}`, v]);
        });
      }
    }
    return out;
  }

  /** Trainable parameters (tensors that require grad) with names. */
  namedParameters(): [string, Tensor][] {
    return this.namedTensors().filter(([, t]) => t.requiresGrad);
  }
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }
  /** Total number of scalar parameters (trainable or not). */
  numParameters(): number {
    const seen = new Set<Tensor>();
    let n = 0;
    for (const [, t] of this.namedTensors()) if (!seen.has(t)) { seen.add(t); n += t.size; }
    return n;
  }

  /** Name → tensor; a tensor shared by two names (tied embeddings) appears under both. */
  stateDict(): Record<string, Tensor> {
    return Object.fromEntries(this.namedTensors());
  }

  /**
   * Copy values from a name → tensor map. Missing or unexpected names and shape mismatches
   * are errors naming the tensor (strict, the default); `source` names the file in messages.
   * A value may also be host memory ({ shape, data: Float32Array }, e.g. a view of a file's
   * bytes): it is copied straight into the parameter, without a temporary tensor in the heap (so
   * loading needs the heap for the model once, not twice).
   */
  loadStateDict(sd: Record<string, Tensor | HostValues | HostBlocks | HostFill>, opts: { strict?: boolean; source?: string } = {}): void {
    const strict = opts.strict ?? true, src = opts.source ? `${opts.source}: ` : '';
    const own = this.stateDict();
    const missing = Object.keys(own).filter((k) => !(k in sd));
    const extra = Object.keys(sd).filter((k) => !(k in own));
    if (strict && (missing.length || extra.length)) {
      const parts = [];
      if (missing.length) parts.push(`missing tensor(s): ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ` (+${missing.length - 8} more)` : ''}`);
      if (extra.length) parts.push(`unexpected tensor(s): ${extra.slice(0, 8).join(', ')}${extra.length > 8 ? ` (+${extra.length - 8} more)` : ''}`);
      throw new StateDictError(`${src}${parts.join('; ')}`);
    }
    for (const [k, t] of Object.entries(own)) {
      const v = sd[k];
      if (!v) continue;
      if (v.shape.join() !== t.shape.join()) throw new StateDictError(`${src}tensor ${k} has shape ${fmtShape(v.shape)}, the model expects ${fmtShape(t.shape)}`);
      // A parameter built under deferAllocation takes its heap now (before H's views are read below: allocating may grow the memory).
      t.storage.materialise();
      if (v instanceof Tensor) {
        if (v.dtype !== t.dtype) throw new StateDictError(`${src}tensor ${k} has dtype ${v.dtype}, the model expects ${t.dtype}`);
        copyInto(t, v);
        continue;
      }
      if ('fill' in v) {
        if (t.dtype !== v.dtype) throw new StateDictError(`${src}tensor ${k} has ${v.dtype === 'f32' ? 'f32 values' : `${v.dtype} blocks`}, the model expects ${t.dtype}`);
        const bytes = storageBytes(t.size, t.dtype);
        if (t.isContiguous()) v.fill(H.u8.subarray(t.ptr, t.ptr + bytes));
        else {
          const tmp = new Uint8Array(bytes);
          v.fill(tmp);
          scope(() => copyInto(t, tensor(new Float32Array(tmp.buffer), [...v.shape])));
        }
        continue;
      }
      if ('blocks' in v) {
        const bd = v.dtype ?? 'q8_0';
        if (t.dtype !== bd) throw new StateDictError(`${src}tensor ${k} has ${bd} blocks, the model expects ${t.dtype}`);
        const bytes = storageBytes(t.size, bd);
        if (v.blocks.length !== bytes) throw new StateDictError(`${src}tensor ${k}: ${v.blocks.length} bytes of ${bd} blocks for shape ${fmtShape(v.shape)} (${bytes} expected)`);
        H.u8.set(v.blocks, t.ptr);
        continue;
      }
      if (t.dtype !== 'f32') throw new StateDictError(`${src}tensor ${k} has f32 values, the model expects ${t.dtype}`);
      if (v.data.length !== t.size) throw new StateDictError(`${src}tensor ${k}: ${v.data.length} values for shape ${fmtShape(v.shape)}`);
      if (t.isContiguous()) H.f32.set(v.data, t.ptr >>> 2);
      else scope(() => copyInto(t, tensor(v.data, [...v.shape])));
    }
  }

  train(on = true): this {
    for (const m of this.modules()) m.training = on;
    return this;
  }
  eval(): this {
    return this.train(false);
  }
  /** This module and every submodule. */
  modules(): Module[] {
    const out: Module[] = [this];
    for (const [key, value] of Object.entries(this)) {
      if (key.startsWith('_')) continue;
      if (value instanceof Module) out.push(...value.modules());
      else if (Array.isArray(value)) for (const v of value) if (v instanceof Module) out.push(...v.modules());
    }
    return out;
  }
  /** Stop training every parameter (LoRA freezes the base this way). */
  freeze(): this {
    for (const [, t] of this.namedTensors()) t.requiresGrad = false;
    return this;
  }
  /** Release every parameter's storage. */
  dispose(): void {
    const seen = new Set<Tensor>();
    for (const [, t] of this.namedTensors()) {
      if (seen.has(t)) continue;
      seen.add(t);
      t.grad?.dispose();
      t.dispose();
    }
  }
}

/** Values in host memory for loadStateDict: row-major f32 of the given shape. */
export interface HostValues { readonly shape: readonly number[]; readonly data: Float32Array }
/** A quantised weight's blocks in host memory (ggml's layout of `dtype`, q8_0 when absent; row-major) for loadStateDict: copied as they are. */
export interface HostBlocks { readonly shape: readonly number[]; readonly blocks: Uint8Array; readonly dtype?: QuantDType }

/**
 * A weight that writes itself into the parameter's heap bytes (`dtype`: f32 values or quantised
 * blocks): a loader reading a file straight into place, with no copy of the bytes in host memory.
 */
export interface HostFill { readonly shape: readonly number[]; readonly dtype: 'f32' | QuantDType; fill(dst: Uint8Array): void }

/** A parameter: a tensor outside every memory scope, requiring grad. */
export function parameter(make: () => Tensor): Tensor {
  return unscoped(make).requiresGrad_();
}

let noInit = 0;

/**
 * Runs `build` with random initialisation switched off: the layers it constructs allocate their
 * parameters without filling them (and draw nothing from any generator). For a model whose every
 * parameter a strict loadStateDict overwrites next — loading a checkpoint; drawing the random
 * weights first cost more than reading the file (~45 ns per parameter).
 */
export function withoutInit<R>(build: () => R): R {
  noInit++;
  try {
    return build();
  } finally {
    noInit--;
  }
}

/** False inside withoutInit: layers then skip drawing initial values (they will be overwritten). */
export function initEnabled(): boolean {
  return noInit === 0;
}

/**
 * A parameter's initial value drawn from N(0, std²), or an unfilled tensor inside withoutInit.
 * With `deferrable` (a Linear's or an Embedding's matrix, which nothing touches before a loader
 * fills or replaces it), an unfilled tensor takes no heap until filled (Tensor.unfilled).
 */
export function initialNormal(shape: readonly number[], opts: { generator: Generator; std: number; deferrable?: boolean }): Tensor {
  return noInit > 0 ? unfilled(shape, opts.deferrable) : randn([...shape], opts);
}

/** A parameter's initial value drawn from U(−bound, bound), or an unfilled tensor inside withoutInit (`deferrable`: as initialNormal). */
export function initialUniform(shape: readonly number[], opts: { generator: Generator; bound: number; deferrable?: boolean }): Tensor {
  return noInit > 0 ? unfilled(shape, opts.deferrable) : rand([...shape], { generator: opts.generator, low: -opts.bound, high: opts.bound });
}

const unfilled = (shape: readonly number[], deferrable = false): Tensor => (deferrable ? Tensor.unfilled([...shape]) : empty([...shape]));

export function checkSameShape(op: string, a: Tensor, shape: readonly number[]): void {
  if (a.shape.join() !== shape.join()) throw new ShapeError(op, `expected ${fmtShape(shape)}, got ${fmtShape(a.shape)}`);
}
