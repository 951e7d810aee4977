// What the tests that use node-llama-cpp as the outside reference share: the comparison of our
// GGUF reader with its readGgufFileInfo, and an evaluation of a model file (next-token logits at
// every prompt position, then a greedy continuation). See llamacpp.test.ts for the API.
import assert from 'node:assert/strict';
import { readGguf, GGML_TYPES, ggufPlain } from '../../src/io/index.js';
import type { NodeLlamaCpp } from '../../bench/peers/nlc.js';

/** node-llama-cpp's readGgufFileInfo and our readGguf agree on a file: version, every metadata key and value, tensor infos. */
export async function assertSameAsGgufFileInfo(nlc: NodeLlamaCpp, p: string): Promise<void> {
  const info = await nlc.readGgufFileInfo(p, { readTensorInfo: true, logWarnings: false });
  const ours = await readGguf(p);
  assert.equal(info.version, 3);
  assert.equal(Number(info.tensorCount), ours.tensors.length);
  // metadata: flatten theirs (nested objects keyed by the dotted path) and compare every key
  const flat = new Map<string, unknown>();
  const walk = (o: Record<string, unknown>, pre: string) => {
    for (const [k, v] of Object.entries(o)) {
      if (v && typeof v === 'object' && !Array.isArray(v)) walk(v as Record<string, unknown>, `${pre}${k}.`);
      else flat.set(`${pre}${k}`, v);
    }
  };
  walk(info.metadata as unknown as Record<string, unknown>, '');
  assert.deepEqual([...flat.keys()].sort(), [...ours.metadata.keys()].sort());
  for (const [k, v] of ours.metadata) {
    const mine = ggufPlain(v);
    const theirs = flat.get(k);
    const norm = (x: unknown): unknown => (Array.isArray(x) ? x.map(norm) : typeof x === 'bigint' ? Number(x) : x);
    if (v.type === 'f32') assert.equal(Math.fround(Number(theirs)), mine, k);
    else assert.deepEqual(norm(theirs), norm(mine), k);
  }
  assert.equal(info.metadata.general.architecture, ours.metadata.get('general.architecture')!.value);
  // tensor infos
  const byName = new Map(ours.tensors.map((x) => [x.name, x]));
  assert.equal(info.tensorInfo!.length, ours.tensors.length);
  for (const ti of info.tensorInfo!) {
    const mine = byName.get(ti.name)!;
    assert.ok(mine, ti.name);
    assert.deepEqual(ti.dimensions.map(Number), [...mine.shape].reverse(), ti.name);
    assert.equal(GGML_TYPES.find((g) => g.id === ti.ggmlType)!.name, mine.dtype, ti.name);
  }
}

export interface LlamaCppRun { logits: Float64Array[]; greedy: number[] }

/**
 * llama.cpp on a model file: the next-token logits after each prompt token (one batch), then
 * from an empty sequence the greedy (temperature 0) continuation of the prompt, nGen tokens.
 */
export async function evalWithLlamaCpp(
  llama: NodeLlamaCpp, modelPath: string, prompt: number[], nGen: number, vocab: number, contextOptions: Record<string, unknown> = {},
): Promise<LlamaCppRun> {
  const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  try {
    const ctx = await model.createContext({ contextSize: 64, batchSize: 64, threads: 2, ...contextOptions });
    try {
      const seq = ctx.getSequence();
      const out = await seq.controlledEvaluate(prompt.map((tok) => [tok, { generateNext: { token: true, logits: true } }]));
      const logits = out.map((o: any) => {
        const l = new Float64Array(vocab);
        for (const [tok, v] of o!.next.logits!) l[tok as number] = v;
        return l;
      });
      await seq.clearHistory();
      const greedy: number[] = [];
      for await (const tok of seq.evaluate(prompt, { temperature: 0 })) {
        greedy.push(tok as number);
        if (greedy.length >= nGen) break;
      }
      return { logits, greedy };
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/** Largest |a − b| over all positions and tokens, and the largest |b| (the logit scale). NaN counts as infinitely far. */
export function logitGap(a: Float64Array, b: Float64Array): { worst: number; scale: number } {
  let worst = 0, scale = 0;
  for (let j = 0; j < b.length; j++) {
    const d = Math.abs(a[j] - b[j]);
    worst = Math.max(worst, Number.isNaN(d) ? Infinity : d);
    scale = Math.max(scale, Math.abs(b[j]));
  }
  return { worst, scale };
}
