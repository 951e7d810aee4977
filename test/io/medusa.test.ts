// Medusa heads in the Medusa repo's files: directories written by PyTorch (scripts/ref_medusa.py:
// config.json + medusa_lm_head.safetensors, F32 with shared layers repeated, and F16 as the hub's
// checkpoints) load and give PyTorch's logits; ours round-trip; and every bad input is an error
// naming the tensor or field at fault, before any weight is used.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync, writeFileSync, cpSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as T from '../../src/index.js';
import { init, shutdown, scope, noGrad, MedusaHeads, loadMedusaHeads, saveMedusaHeads, quantizeMedusaHeads, SafetensorsFile, readSafetensors, writeSafetensors, Generator, createModel, generate } from '../../src/index.js';
import { assertClose, fixture, fixturePath, randArray } from '../helpers.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

interface Enc { shape: number[]; data: number[] }
const cases = fixture<{ cases: { name: string; h: Enc; logits: Enc[] }[] }>('medusa/cases.json').cases;

function tmp(): string {
  return mkdtempSync(path.join(tmpdir(), 'tslm-medusa-'));
}

test('heads written by PyTorch in the Medusa layout (shared layers, F32 and F16) load and give its logits', async () => {
  const { heads, config } = await loadMedusaHeads(fixturePath('medusa/heads_k3_l2'), { base: { config: { hidden_size: 5, vocab_size: 11 } } });
  try {
    assert.equal(config.base_model_name_or_path, 'tiny-base');
    assert.deepEqual([heads.numHeads, heads.numLayers, heads.config.hidden_size, heads.config.vocab_size], [3, 2, 5, 11]);
    const c = cases.find((x) => x.name === 'k3_l2_shared')!;
    scope(() => heads.forward(T.tensor(c.h.data, c.h.shape)).forEach((l, k) => assertClose(l.toArray(), c.logits[k].data, 1e-4, 1e-4, `head ${k}`)));
  } finally {
    heads.dispose();
  }
  const f16 = await loadMedusaHeads(fixturePath('medusa/heads_k2_l1_f16'));
  try {
    const e = fixture<{ h: Enc; logits: Enc[] }>('medusa/heads_k2_l1_f16/expected.json');
    scope(() => f16.heads.forward(T.tensor(e.h.data, e.h.shape)).forEach((l, k) => assertClose(l.toArray(), e.logits[k].data, 1e-4, 1e-4, `f16 head ${k}`)));
  } finally {
    f16.heads.dispose();
  }
});

test('round trip: saved heads load back identical, in the repo layout (every layer index, config fields)', async () => {
  const dir = tmp();
  try {
    const heads = new MedusaHeads({ medusa_num_heads: 3, medusa_num_layers: 2, hidden_size: 7, vocab_size: 13 }, { lmHead: T.tensor(randArray(13 * 7, new Generator(1)), [13, 7]) });
    const g = new Generator(2);
    for (const [, p] of heads.namedTensors()) T.copyInto(p, T.tensor(randArray(p.size, g), [...p.shape]));
    await saveMedusaHeads(heads, dir, { baseModel: '/models/base' });
    const cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    assert.deepEqual(cfg, { medusa_num_heads: 3, medusa_num_layers: 2, base_model_name_or_path: '/models/base', hidden_size: 7, vocab_size: 13 });
    const f = await SafetensorsFile.open(path.join(dir, 'medusa_lm_head.safetensors'));
    const names = f.names.sort();
    await f.close();
    const want = [0, 1, 2].flatMap((i) => [`${i}.0.linear.bias`, `${i}.0.linear.weight`, `${i}.1.linear.bias`, `${i}.1.linear.weight`, `${i}.2.weight`]).sort();
    assert.deepEqual(names, want);
    const back = await loadMedusaHeads(dir);
    try {
      const a = heads.namedTensors(), b = back.heads.namedTensors();
      assert.deepEqual(a.map(([n]) => n), b.map(([n]) => n));
      a.forEach(([n, t], i) => assert.deepEqual(b[i][1].toArray(), t.toArray(), n));
    } finally {
      back.heads.dispose();
      heads.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A copy of the PyTorch-written directory with its tensors or config changed. */
async function variant(edit: { tensors?: (m: Map<string, T.RawTensor>) => void; config?: (c: Record<string, unknown>) => void }): Promise<string> {
  const dir = tmp();
  cpSync(fixturePath('medusa/heads_k3_l2'), dir, { recursive: true });
  if (edit.tensors) {
    const file = path.join(dir, 'medusa_lm_head.safetensors');
    const m = new Map((await readSafetensors(file)).tensors.map((t) => [t.name, { ...t, data: t.data.slice() }]));
    edit.tensors(m);
    await writeSafetensors(file, [...m.values()]);
  }
  if (edit.config) {
    const c = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    edit.config(c);
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify(c));
  }
  return dir;
}

test('bad input: mismatched hidden size or vocabulary, missing/extra/misshapen tensors, bad config fields — errors name what is wrong', async () => {
  const src = fixturePath('medusa/heads_k3_l2');
  await assert.rejects(loadMedusaHeads(src, { base: { config: { hidden_size: 6, vocab_size: 11 } } }), /medusa_lm_head\.safetensors: tensor '0\.2\.weight': shape \[11, 5\]: hidden_size 5 does not match the base model's hidden_size 6/);
  await assert.rejects(loadMedusaHeads(src, { base: { config: { hidden_size: 5, vocab_size: 12 } } }), /tensor '0\.2\.weight': shape \[11, 5\]: vocab_size 11 does not match the base model's vocab_size 12/);
  const cases: [string, Parameters<typeof variant>[0], RegExp][] = [
    ['missing LM head', { tensors: (m) => m.delete('1.2.weight') }, /tensor '1\.2\.weight': missing \(medusa_num_heads 3, medusa_num_layers 2/],
    ['missing layer', { tensors: (m) => m.delete('2.1.linear.bias') }, /tensor '2\.1\.linear\.bias': missing/],
    ['extra head', { tensors: (m) => m.set('3.2.weight', { ...m.get('0.2.weight')!, name: '3.2.weight' }) }, /tensor '3\.2\.weight': not a tensor of 3 Medusa head\(s\) with 2 layer\(s\) each/],
    ['misshapen', { tensors: (m) => { const t = m.get('1.0.linear.bias')!; m.set('1.0.linear.bias', { ...t, shape: [4], data: t.data.slice(0, 16) }); } }, /tensor '1\.0\.linear\.bias': shape \[4\], expected \[5\] \(hidden_size 5, vocab_size 11\)/],
    ['layers differ', { tensors: (m) => { const t = m.get('0.1.linear.weight')!; const d = new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength)); d[3] += 1; m.set('0.1.linear.weight', { ...t, data: new Uint8Array(d.buffer) }); } }, /tensor '0\.1\.linear\.weight': differs from '0\.0\.linear\.weight' at element 3 .*ONE ResBlock/],
    ['more heads in config', { config: (c) => { c.medusa_num_heads = 4; } }, /tensor '3\.0\.linear\.weight': missing \(medusa_num_heads 4/],
    ['fewer layers in config', { config: (c) => { c.medusa_num_layers = 1; } }, /tensor '0\.1\.weight': missing|not a tensor of 3 Medusa head/],
    ['no medusa_num_heads', { config: (c) => { delete c.medusa_num_heads; } }, /config\.json: medusa_num_heads: missing/],
    ['bad medusa_num_layers', { config: (c) => { c.medusa_num_layers = 'one'; } }, /config\.json: medusa_num_layers: expected an integer ≥ 0, got "one"/],
    ['config hidden_size contradicts', { config: (c) => { c.hidden_size = 8; } }, /config\.json: hidden_size: 8, but tensor '0\.2\.weight' has shape \[11, 5\]/],
    ['version 2', { config: (c) => { c.version = '2'; } }, /version: "2": these Medusa heads have no LM head of their own/],
  ];
  for (const [what, edit, re] of cases) {
    const dir = await variant(edit);
    try {
      await assert.rejects(loadMedusaHeads(dir), re, what);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const dir = tmp();
  try {
    await assert.rejects(loadMedusaHeads(path.join(dir, 'nope')), /no such directory/);
    cpSync(src, dir, { recursive: true });
    renameSync(path.join(dir, 'medusa_lm_head.safetensors'), path.join(dir, 'medusa_lm_head.pt'));
    await assert.rejects(loadMedusaHeads(dir), /medusa_lm_head\.pt: a PyTorch pickle, which tslm does not read; convert it once with Python/);
    rmSync(path.join(dir, 'medusa_lm_head.pt'));
    await assert.rejects(loadMedusaHeads(dir), /no medusa_lm_head\.safetensors/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dtype q8_0: the heads\' matrices become Q8_0 blocks (rows of whole blocks only), their logits stay near f32, greedy Medusa output stays plain greedy', async () => {
  const dir = tmp();
  try {
    const V = 67, D = 64;
    const base = createModel({ model_type: 'llama', vocab_size: V, hidden_size: D, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 96, initializer_range: 0.5, tie_word_embeddings: false }, 'tiny', { generator: new Generator(3) });
    base.eval();
    const heads = MedusaHeads.fromBase(base, { heads: 4, layers: 1 });
    const g = new Generator(4);
    for (const [n, p] of heads.namedTensors()) if (n.includes('block')) T.copyInto(p, T.tensor(randArray(p.size, g).map((x) => x * 0.2), [...p.shape]));
    await saveMedusaHeads(heads, dir);
    // Their LM heads are still copies of the base head: tie: false keeps them the heads' own (tied heads: test/nn/medusa_tied.test.ts).
    const q = (await loadMedusaHeads(dir, { base, dtype: 'q8_0', tie: false })).heads;
    try {
      for (const [n, t] of q.namedTensors()) assert.equal(t.dtype, n.endsWith('.weight') ? 'q8_0' : 'f32', n);
      const h = T.tensor(randArray(3 * D, g), [1, 3, D]);
      noGrad(() => scope(() => {
        const want = heads.forward(h), got = q.forward(h);
        want.forEach((w, k) => assertClose(got[k].toArray(), w.toArray(), 0.05, 0.05, `head ${k}`));
      }));
      for (const prompt of [[1, 2, 3], [40, 7]]) {
        const plain = generate(base, prompt, { maxNewTokens: 30, stopIds: [] }).ids[0];
        const med = generate(base, prompt, { maxNewTokens: 30, stopIds: [], speculative: { medusa: { heads: q } } });
        assert.deepEqual(med.ids[0], plain);
      }
    } finally {
      q.dispose();
    }
    // Loaded tied (the default): a Q8_0 copy of the base head serves them; logits near f32, output plain greedy.
    const qt = await loadMedusaHeads(dir, { base, dtype: 'q8_0' });
    try {
      assert.deepEqual(qt.tied, [0, 1, 2, 3]);
      const h = T.tensor(randArray(D, g), [1, 1, D]);
      noGrad(() => scope(() => {
        const want = heads.forward(h), got = qt.heads.forwardMany(h, [0, 1, 2, 3]).toArray();
        want.forEach((w, k) => assertClose(got.slice(k * V, (k + 1) * V), w.toArray(), 0.05, 0.05, `tied head ${k}`));
      }));
      for (const prompt of [[1, 2, 3], [40, 7]]) {
        const plain = generate(base, prompt, { maxNewTokens: 30, stopIds: [] }).ids[0];
        assert.deepEqual(generate(base, prompt, { maxNewTokens: 30, stopIds: [], speculative: { medusa: { heads: qt.heads } } }).ids[0], plain);
      }
    } finally {
      qt.heads.dispose();
    }
    // Rows that are not whole 32-value blocks stay f32.
    const odd = new MedusaHeads({ medusa_num_heads: 2, medusa_num_layers: 1, hidden_size: 7, vocab_size: 13 });
    try {
      assert.equal(quantizeMedusaHeads(odd).size, 0);
      for (const [, t] of odd.namedTensors()) assert.equal(t.dtype, 'f32');
    } finally {
      odd.dispose();
    }
    await assert.rejects(loadMedusaHeads(dir, { dtype: 'q4' as 'q8_0' }), /dtype "q4" is not one of f32, q8_0/);
    heads.dispose();
    base.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the Medusa-1.0 layout: heads inside the model safetensors as medusa_head.* load too', async () => {
  const dir = tmp();
  try {
    const m = (await readSafetensors(path.join(fixturePath('medusa/heads_k3_l2'), 'medusa_lm_head.safetensors'))).tensors;
    await writeSafetensors(path.join(dir, 'model.safetensors'), m.map((t) => ({ ...t, name: `medusa_head.${t.name}` })));
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', hidden_size: 5, vocab_size: 11, medusa_num_heads: 3, medusa_num_layers: 2 }));
    const { heads } = await loadMedusaHeads(dir, { base: { config: { hidden_size: 5, vocab_size: 11 } } });
    try {
      const c = cases.find((x) => x.name === 'k3_l2_shared')!;
      scope(() => heads.forward(T.tensor(c.h.data, c.h.shape)).forEach((l, k) => assertClose(l.toArray(), c.logits[k].data, 1e-4, 1e-4, `head ${k}`)));
    } finally {
      heads.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
