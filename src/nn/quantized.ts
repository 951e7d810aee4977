// Quantised inference weights in place of a built model's f32 ones: the weights of linear layers
// (and embeddings) named by a loader become q8_0 tensors (ggml's Q8_0 blocks, see tensor.ts),
// uninitialised, for loadStateDict to fill with a file's blocks as they are. Weights that share
// one storage as fused rows (shareStorage: q/k/v, gate/up) get one q8_0 storage again, in the
// same row order, so the fused inference paths keep running one matmul for them.
import { Tensor, QUANT_BLOCKS, storageBytes } from '../tensor/tensor.js';
import type { QuantDType } from '../tensor/tensor.js';
import { Storage, unscoped } from '../tensor/storage.js';
import { ShapeError, fmtShape } from '../tensor/errors.js';
import { Module } from './module.js';
import { Embedding, Linear } from './layers.js';

type Owner = Linear | Embedding;

/** Modules with their dotted paths (the prefixes of their tensors' names). */
function namedModules(m: Module, prefix = '', out: [string, Module][] = []): [string, Module][] {
  out.push([prefix, m]);
  for (const [key, value] of Object.entries(m)) {
    if (key === 'training' || key.startsWith('_')) continue;
    const name = prefix ? `${prefix}.${key}` : key;
    if (value instanceof Module) namedModules(value, name, out);
    else if (Array.isArray(value)) value.forEach((v, i) => { if (v instanceof Module) namedModules(v, `${name}.${i}`, out); });
  }
  return out;
}

/**
 * Replace the f32 weight `<path>.weight` of every plain Linear or Embedding of `root` whose name is
 * in `names` by an uninitialised quantised tensor of the same shape: q8_0 for a set of names, the
 * dtype mapped to for a map (the f32 storage is released first, so the quantised one can take its
 * place in the heap). Returns the names replaced; names that are not such a weight are left
 * alone. The last dimension must be a multiple of the dtype's block (32, or 256 for the K types):
 * otherwise a ShapeError names the weight.
 */
export function useQuantizedWeights(root: Module, names: ReadonlySet<string> | ReadonlyMap<string, QuantDType>): Set<string> {
  const targets: { name: string; owner: Owner; dtype: QuantDType }[] = [];
  for (const [path, m] of namedModules(root)) {
    const name = path ? `${path}.weight` : 'weight';
    if (!names.has(name)) continue;
    const dtype: QuantDType = names instanceof Map ? names.get(name)! : 'q8_0';
    const block = QUANT_BLOCKS[dtype].block;
    if (!((m instanceof Linear || m instanceof Embedding) && (m.constructor === Linear || m.constructor === Embedding))) continue;
    const w = m.weight;
    if (w.dtype !== 'f32' || w.ndim !== 2 || !w.isContiguous()) continue;
    if (w.shape[1] % block !== 0) throw new ShapeError('useQuantizedWeights', `${name} ${fmtShape(w.shape)}: a ${dtype} weight needs rows of whole ${block}-value blocks`);
    targets.push({ name, owner: m, dtype });
  }
  // Every tensor per storage, to tell which f32 storages the replacements free entirely.
  const users = new Map<Storage, Tensor[]>();
  for (const [, t] of root.namedTensors()) {
    const list = users.get(t.storage) ?? [];
    if (!list.includes(t)) list.push(t);
    users.set(t.storage, list);
  }
  const byStorage = new Map<Storage, { name: string; owner: Owner; dtype: QuantDType }[]>();
  for (const t of targets) {
    const st = t.owner.weight.storage;
    byStorage.set(st, [...(byStorage.get(st) ?? []), t]);
  }
  const done = new Set<string>();
  unscoped(() => {
    for (const [st, group] of byStorage) {
      group.sort((a, b) => a.owner.weight.offset - b.owner.weight.offset);
      const whole = users.get(st)!.length === group.length;
      const K = group[0].owner.weight.shape[1];
      // Fused rows (one storage, adjacent, same width) stay fused; anything else gets a storage each.
      let adjacent = whole && group.every((g, i) => g.owner.weight.shape[1] === K && g.dtype === group[0].dtype &&
        g.owner.weight.offset === group[0].owner.weight.offset + group.slice(0, i).reduce((s, h) => s + h.owner.weight.size, 0));
      if (group.length === 1) adjacent = false;
      if (whole) st.free();
      if (adjacent) {
        const rows = group.reduce((s, g) => s + g.owner.weight.shape[0], 0);
        const q = new Storage(storageBytes(rows * K, group[0].dtype));
        let row = 0;
        for (const g of group) {
          const n = g.owner.weight.shape[0];
          g.owner.weight = new Tensor(q, [n, K], [K, 1], row * K, g.dtype);
          g.owner.weight.name = g.name;
          row += n;
          done.add(g.name);
        }
      } else {
        for (const g of group) {
          const shape = [...g.owner.weight.shape];
          g.owner.weight = Tensor.empty(shape, g.dtype);
          g.owner.weight.name = g.name;
          done.add(g.name);
        }
      }
    }
  });
  return done;
}
