// Loading a GGUF reads each tensor's bytes from the file straight into the model's heap: no
// second copy of the file's weights exists in JavaScript memory while the model is filled.
// A ~31 MB Q8_0 file and a ~29 MB F16 one (hand-made values: no quantising, so the test is
// quick; the F16 matrices stay 16-bit) are loaded while
// Module.loadStateDict is watched: when it starts and when it ends (each time after a full
// garbage collection, so only live buffers count), the ArrayBuffers held by the process have
// grown by far less than the file (a loader holding the file's bytes holds them right then:
// before this change the growth was the whole file). The model then agrees with the same file
// read eagerly (readModelGguf without deferred), block for block.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs, { statSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { init, shutdown, loadModel, writeLlamaGguf, readModelGguf, Module } from '../../src/index.js';
import type { RawTensor } from '../../src/io/index.js';
import { H, heapStats, resetHeapPeak } from '../../src/backend/heap.js';
import { storageBytes } from '../../src/tensor/tensor.js';
import { tempDir, tinyLlamaConfig } from './util.js';
import { tinySpmTokenizer } from './tiny_llama.js';

before(async () => { await init({ threads: 1 }); });
after(async () => { await shutdown(); });

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Q8_0 blocks with finite scales and varied int8 values (cheap to make, no quantiser). */
function q8Tensor(name: string, shape: number[], seed: number): RawTensor {
  const blocks = (shape[0] * shape[1]) / 32;
  const data = new Uint8Array(blocks * 34);
  let x = seed >>> 0;
  for (let b = 0; b < blocks; b++) {
    const o = b * 34;
    data[o] = 0x00; data[o + 1] = 0x20; // f16 0.0078125
    for (let j = 0; j < 32; j++) { x = (Math.imul(x, 1103515245) + 12345) >>> 0; data[o + 2 + j] = x >>> 24; }
  }
  return { name, dtype: 'Q8_0', shape, data };
}

/** F16 values with random finite bit patterns (exponent below all ones). */
function f16Tensor(name: string, shape: number[], seed: number): RawTensor {
  const data = new Uint8Array(shape[0] * shape[1] * 2);
  let x = seed >>> 0;
  for (let i = 0; i < data.length; i += 2) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    data[i] = x >>> 24;
    data[i + 1] = (x >>> 16) & 0xbb; // sign, exponent ≤ 0b11011: finite, |v| < 2^13
  }
  return { name, dtype: 'F16', shape, data };
}

function f32Tensor(name: string, n: number): RawTensor {
  const v = new Float32Array(n).fill(1);
  return { name, dtype: 'F32', shape: [n], data: new Uint8Array(v.buffer) };
}

for (const kind of ['Q8_0', 'F16'] as const) test(`loading a ${kind} GGUF holds no second copy of its weights in JS memory`, async (t) => {
  // F16 matrices are kept 16-bit, as Q8_0 blocks are kept: half the layers, for a file of the same size.
  const L = kind === 'Q8_0' ? 8 : 4, mat = kind === 'Q8_0' ? q8Tensor : f16Tensor;
  const cfg = tinyLlamaConfig({ hidden_size: 512, intermediate_size: 1536, num_hidden_layers: L, num_attention_heads: 8, num_key_value_heads: 8, vocab_size: 2048 });
  const h = 512, f = 1536, v = 2048;
  const tensors: RawTensor[] = [mat('model.embed_tokens.weight', [v, h], 1), mat('lm_head.weight', [v, h], 2), f32Tensor('model.norm.weight', h)];
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}.`;
    tensors.push(f32Tensor(`${p}input_layernorm.weight`, h), f32Tensor(`${p}post_attention_layernorm.weight`, h));
    for (const [k, shape] of [['self_attn.q_proj', [h, h]], ['self_attn.k_proj', [h, h]], ['self_attn.v_proj', [h, h]], ['self_attn.o_proj', [h, h]], ['mlp.gate_proj', [f, h]], ['mlp.up_proj', [f, h]], ['mlp.down_proj', [h, f]]] as const) {
      tensors.push(mat(`${p}${k}.weight`, [...shape], 100 * i + k.length));
    }
  }
  const file = path.join(tempDir(t), 'direct.gguf');
  await writeLlamaGguf(file, { config: cfg, tensors, tokenizer: tinySpmTokenizer(v), dtype: kind });
  tensors.length = 0;
  const size = statSync(file).size;
  assert.ok(size > 25e6, `the file is ${size} bytes`);

  // Two collections: V8 frees dead ArrayBuffers' memory on a background thread after a collection,
  // and the next collection waits for that (one alone sometimes still counted a dead 4 MB read buffer).
  const live = () => { gc(); gc(); return process.memoryUsage().arrayBuffers; };
  const growth: number[] = [];
  const base = live();
  const original = Module.prototype.loadStateDict;
  Module.prototype.loadStateDict = function (this: Module, ...args: Parameters<typeof original>) {
    growth.push(live() - base);
    original.apply(this, args);
    growth.push(live() - base);
  };
  // Every byte of the file is read once: the bytes node:fs's readSync hands over (the tensors'
  // reads; the header comes through fs/promises) add up to no more than the file.
  let readBytes = 0;
  const readSync = fs.readSync;
  fs.readSync = ((...a: Parameters<typeof fs.readSync>) => { const n = readSync(...a); readBytes += n; return n; }) as typeof fs.readSync;
  syncBuiltinESMExports();
  let loaded;
  resetHeapPeak();
  const heap0 = heapStats().inUse;
  try {
    loaded = await loadModel(file);
  } finally {
    Module.prototype.loadStateDict = original;
    fs.readSync = readSync;
    syncBuiltinESMExports();
  }
  assert.ok(readBytes > 0.9 * size && readBytes <= size, `${readBytes} bytes read for a ${size}-byte file`);
  assert.equal(growth.length, 2, 'loadStateDict ran once');
  // Nor does the heap ever hold f32 parameters for the matrices that stay 16-bit or quantised (the
  // model is built with its parameters' heap deferred until each is filled): its peak while loading
  // is about the file, where f32 parameters first would be 2× (F16) or 3.8× (Q8_0) the matrices.
  const peak = heapStats().peak - heap0;
  assert.ok(peak < 1.15 * size, `the heap peaked ${peak} bytes above its start while loading a ${size}-byte file`);
  for (const g of growth) assert.ok(g < size / 8, `JS buffers grew by ${g} bytes while loading a ${size}-byte file (limit ${size / 8})`);

  // The same weights as the file read eagerly (q/k rows permuted to HF's layout as they are read).
  const eager = await readModelGguf(file);
  const byName = new Map(eager.tensors.map((e) => [e.name, e]));
  const sd = loaded.model.stateDict();
  assert.equal(Object.keys(sd).length, byName.size);
  for (const [name, p] of Object.entries(sd)) {
    const e = byName.get(name)!;
    assert.equal(p.dtype, e.dtype === 'Q8_0' ? 'q8_0' : e.dtype === 'F16' ? 'f16' : 'f32', name);
    const got = H.u8.slice(p.ptr, p.ptr + storageBytes(p.size, p.dtype));
    assert.ok(Buffer.from(got).equals(Buffer.from(e.data)), `${name} differs from the file's bytes`);
  }
  loaded.model.dispose();
});
