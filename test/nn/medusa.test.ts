// Medusa heads against PyTorch (scripts/ref_medusa.py → test/fixtures/medusa/cases.json): the K
// heads' logits, each head's loss, the weighted Medusa loss (with the base's next-token loss for
// the joint case) and the gradient of that loss with respect to every head parameter and to the
// hidden states, on both backends. The cases cover shared residual layers (L = 2, 3), no layers,
// an ignored label, and the repo's 0.2·0.8^(k+1) weights as well as the plain sum.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { init, shutdown, scope, MedusaHeads, medusaObjective, medusaLossWeights, Generator, createModel, baseHeadWeight, MedusaConfigError } from '../../src/index.js';
import type { MedusaHeadsConfig } from '../../src/index.js';
import { assertClose, fixture, onBackends, randArray } from '../helpers.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

interface Enc { shape: number[]; data: number[] }
interface Case {
  name: string; config: MedusaHeadsConfig; h: Enc; ids: Enc; weights: Record<string, Enc>; loss_weights: number[]; lm_weight: number | null;
  base_head: Enc | null; teacher?: Enc | null; logits: Enc[]; head_losses: number[]; lm_loss: number | null; loss: number; grads: Record<string, Enc>; grad_h: Enc;
}

/** Our parameter for a Medusa-repo state-dict name ("{i}.{j}.linear.weight", "{i}.{L}.weight"). */
function param(heads: MedusaHeads, name: string): T.Tensor {
  const [i, j, ...rest] = name.split('.');
  const head = heads.heads[Number(i)];
  if (Number(j) === heads.numLayers) return head.lm_head.weight;
  return rest[1] === 'weight' ? head.block!.linear.weight : head.block!.linear.bias!;
}

const cases = fixture<{ cases: Case[] }>('medusa/cases.json').cases;

test('the weights the fixtures use are the repo recipe: 0.2·0.8^(k+1), or the plain sum', () => {
  for (const c of cases) {
    const unweighted = c.name.includes('unweighted');
    const w = medusaLossWeights(c.config.medusa_num_heads, unweighted ? { headsCoefficient: 1, decay: 1 } : {});
    assertClose(w, c.loss_weights, 1e-12, 1e-12, c.name);
  }
});

for (const c of cases) {
  test(`Medusa heads ${c.name}: logits, losses and every gradient match PyTorch on both backends`, () => {
    onBackends((b) => scope(() => {
      const heads = new MedusaHeads(c.config);
      try {
        for (const [name, v] of Object.entries(c.weights)) T.copyInto(param(heads, name), T.tensor(v.data, v.shape));
        const h = T.tensor(c.h.data, c.h.shape).requiresGrad_();
        const ids = T.tensor(c.ids.data, c.ids.shape, 'i32');
        // With teacher logits the base's term is the self-distillation loss (KL from the teacher).
        const teacher = c.teacher ? T.tensor(c.teacher.data, c.teacher.shape) : undefined;
        const lm = c.base_head ? { project: (x: T.Tensor) => T.linear(x, T.tensor(c.base_head!.data, c.base_head!.shape)), weight: c.lm_weight!, teacher } : undefined;
        const logits = heads.forward(h);
        assert.equal(logits.length, c.config.medusa_num_heads);
        logits.forEach((l, k) => {
          assert.deepEqual(l.shape, c.logits[k].shape);
          assertClose(l.toArray(), c.logits[k].data, 1e-4, 1e-4, `[${b}] ${c.name} logits of head ${k}`);
        });
        const r = medusaObjective(h, ids, heads, c.loss_weights, lm);
        assertClose(r.headLosses.map((l) => l.item()), c.head_losses, 1e-4, 1e-4, `[${b}] ${c.name} head losses`);
        if (c.lm_loss !== null) assertClose([r.lmLoss!.item()], [c.lm_loss], 1e-4, 1e-4, `[${b}] ${c.name} lm loss`);
        assertClose([r.loss.item()], [c.loss], 1e-4, 1e-4, `[${b}] ${c.name} loss`);
        r.loss.backward();
        for (const [name, g] of Object.entries(c.grads)) {
          const p = param(heads, name);
          assert.ok(p.grad, `${name} got no gradient`);
          assertClose(p.grad!.toArray(), g.data, 1e-4, 1e-4, `[${b}] ${c.name} grad ${name}`);
        }
        assertClose(h.grad!.toArray(), c.grad_h.data, 1e-4, 1e-4, `[${b}] ${c.name} grad h`);
      } finally {
        heads.dispose();
      }
    }));
  });
}

test('fresh heads: identity residual blocks (W = 0, b = 0) and LM heads copied from the base output head (tied and untied)', () => {
  for (const tied of [true, false]) {
    onBackends((b) => scope(() => {
      const model = createModel({ model_type: 'llama', hidden_size: 12, intermediate_size: 20, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: 37, max_position_embeddings: 16, tie_word_embeddings: tied }, 'test', { generator: new Generator(5) });
      const heads = MedusaHeads.fromBase(model, { heads: 3, layers: 2 });
      try {
        const w = baseHeadWeight(model);
        const expected = (tied ? model.namedTensors().find(([n]) => n === 'model.embed_tokens.weight') : model.namedTensors().find(([n]) => n === 'lm_head.weight'))![1];
        assertClose(w.toArray(), expected.toArray(), 0, 0, `[${b}] base head (tied ${tied})`);
        w.dispose();
        const h = T.tensor(randArray(2 * 3 * 12, new Generator(1)), [2, 3, 12]);
        const base = model.project(h).toArray();
        for (const [k, l] of heads.forward(h).entries()) assertClose(l.toArray(), base, 1e-6, 1e-6, `[${b}] head ${k} = base head before training`);
        for (const hd of heads.heads) {
          assert.ok(hd.block!.linear.weight.toArray().every((x) => x === 0));
          assert.ok(hd.block!.linear.bias!.toArray().every((x) => x === 0));
        }
        // Heads are independent parameters (not views of the base's).
        assert.notEqual(heads.heads[0].lm_head.weight, heads.heads[1].lm_head.weight);
        // One ResBlock per head, applied `layers` times: 3 × (D² + D + V·D) parameters.
        assert.equal(heads.numParameters(), 3 * (12 * 12 + 12 + 37 * 12));
      } finally {
        heads.dispose();
        model.dispose();
      }
    }));
  }
});

test('bad input: hidden states of the wrong size, heads that do not fit a base, bad configs', () => {
  scope(() => {
    const heads = new MedusaHeads({ medusa_num_heads: 2, medusa_num_layers: 1, hidden_size: 4, vocab_size: 9 });
    try {
      assert.throws(() => heads.forward(T.zeros([2, 5])), /hidden states of shape \[2, 5\], expected \(…, 4\) \(hidden_size\)/);
      assert.throws(() => heads.checkBase({ config: { hidden_size: 6, vocab_size: 9 } }), (e: Error) => e instanceof MedusaConfigError && /hidden_size 4 does not match the base model's hidden_size 6/.test(e.message));
      assert.throws(() => heads.checkBase({ config: { hidden_size: 4, vocab_size: 10 } }), /vocab_size 9 does not match the base model's vocab_size 10/);
      assert.throws(() => medusaObjective(T.zeros([1, 3, 4]), T.tensor([1, 2, 3], [1, 3], 'i32'), heads, [1, 1]), /head 1 predicts 3 tokens ahead, so sequences need at least 4 tokens \(got 3\)/);
    } finally {
      heads.dispose();
    }
  });
  assert.throws(() => new MedusaHeads({ medusa_num_heads: 0, medusa_num_layers: 1, hidden_size: 4, vocab_size: 9 }), /medusa_num_heads must be an integer ≥ 1, got 0/);
  assert.throws(() => new MedusaHeads({ medusa_num_heads: 2, medusa_num_layers: -1, hidden_size: 4, vocab_size: 9 }), /medusa_num_layers must be an integer ≥ 0, got -1/);
  assert.throws(() => new MedusaHeads({ medusa_num_heads: 2, medusa_num_layers: 1, hidden_size: 4, vocab_size: 9 }, { lmHead: T.zeros([9, 5]) }), /lmHead has shape \[9, 5\], expected \[9, 4\]/);
});
