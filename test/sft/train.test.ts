// LoRA SFT on a tiny model: only adapter tensors train (the base is bit-identical afterwards), the
// held-out response loss falls, memory of a training step stays flat.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { init, shutdown, Generator, heapStats } from '../../src/index.js';
import { LlamaForCausalLM, parseLlamaConfig } from '../../src/models/llama.js';
import { trainByteLevelBPE } from '../../src/tokenizers/trainer.js';
import { applyLora, trainableSummary } from '../../src/lora/index.js';
import { paramGroups } from '../../src/train/trainer.js';
import { tokenizeRow } from '../../src/sft/data.js';
import { sftTrain, responseLoss } from '../../src/sft/train.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

const WORDS = ['red', 'blue', 'green', 'cat', 'dog', 'sun', 'moon', 'tree', 'fish', 'bird', 'rock', 'star', 'rain', 'snow', 'wind', 'fire'];

test('LoRA SFT trains only the adapters and lowers the held-out response loss', () => {
  const g = new Generator(0);
  const rows = Array.from({ length: 120 }, () => {
    const w = WORDS[g.int(WORDS.length)];
    return { instruction: 'Repeat the word.', input: w, output: w };
  });
  const tok = trainByteLevelBPE([rows.map((r) => `${r.input} `).join(''), 'Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request. ### Instruction: ### Input: ### Response: Repeat the word.'], { vocabSize: 300, specialTokens: ['<|endoftext|>'] });
  const config = parseLlamaConfig({ vocab_size: tok.vocabSize, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 256, tie_word_embeddings: true });
  const model = new LlamaForCausalLM(config, { generator: new Generator(1) });
  // A base whose frozen (tied) embeddings can express confident logits, as a pretrained one can.
  T.copyInto(model.model.embed_tokens.weight, T.randn([tok.vocabSize, 32], { std: 1, generator: new Generator(2) }));
  const examples = rows.map((r) => tokenizeRow(r, tok));
  const train = examples.slice(0, 100), val = examples.slice(100);
  const baseBefore = Object.fromEntries(model.namedTensors().map(([n, t]) => [n, t.data()]));
  applyLora(model, { r: 4, lora_alpha: 8, lora_dropout: 0.05, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] });
  const groups = paramGroups(model, 0);
  const names = groups.flatMap((gr) => gr.params.map((p) => p.name!));
  assert.ok(names.length === 28 && names.every((n) => /\.lora_[AB]\.weight$/.test(n)), 'only adapter tensors go to the optimizer');
  const { trainable, total } = trainableSummary(model);
  assert.ok(trainable < total * 0.2);
  const before0 = responseLoss(model, val);
  let mid = 0;
  const log = sftTrain(model, train, { steps: 40, batchSize: 8, lr: 1e-2, warmupSteps: 4, val, evalEvery: 20, onStep: (s) => { if (s.step === 10) mid = heapStats().inUse; } });
  const after0 = responseLoss(model, val);
  assert.ok(after0 < before0 - 1, `held-out response loss ${before0.toFixed(3)} → ${after0.toFixed(3)}`);
  assert.equal(log.filter((s) => s.valLoss !== undefined).length, 2);
  assert.ok(heapStats().inUse <= mid + 64 * 1024, 'no growth of live memory over training steps');
  for (const [n, t] of model.namedTensors()) if (baseBefore[n]) assert.deepEqual(t.data(), baseBefore[n], `base tensor ${n} unchanged`);
  model.dispose();
});
