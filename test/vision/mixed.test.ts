// Early fusion's shared vocabulary (src/vision/mixed.ts): text ids, then <image> and </image>,
// then the image codes; images to tokens and back; and the logit processor that keeps sampling
// well-formed — exactly grid² codes inside an image span, no codes outside — checked on random
// logits and on a model's sampled output.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { init, shutdown, createModel, generate, Generator } from '../../src/index.js';
import { MixedVocab, ImageSpanProcessor } from '../../src/vision/index.js';

before(async () => { await init({ threads: 1 }); });
after(async () => { await shutdown(); });

/** Every image span complete (grid² codes then </image>; the last may be cut by the length) and no code outside one. */
function wellFormed(v: MixedVocab, ids: number[], allowOpenEnd = true): void {
  let i = 0;
  while (i < ids.length) {
    const t = ids[i];
    assert.ok(!v.isCode(t) && t !== v.imageEnd, `token ${t} at ${i} outside an image span`);
    if (t === v.imageStart) {
      let n = 0;
      while (i + 1 + n < ids.length && v.isCode(ids[i + 1 + n])) n++;
      const end = i + 1 + n;
      if (end === ids.length) { assert.ok(allowOpenEnd && n <= v.codesPerImage, `open span of ${n} codes`); return; }
      assert.equal(n, v.codesPerImage, `span at ${i} has ${n} codes`);
      assert.equal(ids[end], v.imageEnd, `span at ${i} ends with ${ids[end]}`);
      i = end + 1;
    } else i++;
  }
}

test('the layout, images to tokens and back, and bad codes', () => {
  const v = new MixedVocab(100, 16, 3);
  assert.deepEqual([v.imageStart, v.imageEnd, v.codeOffset, v.size, v.codesPerImage], [100, 101, 102, 118, 9]);
  const codes = [0, 1, 2, 15, 14, 13, 7, 7, 7];
  const toks = v.imageTokens(codes);
  assert.deepEqual(toks, [100, 102, 103, 104, 117, 116, 115, 109, 109, 109, 101]);
  assert.deepEqual(v.images([5, 6, ...toks, 7, ...toks]), [{ at: 2, codes }, { at: 14, codes }]);
  assert.deepEqual(v.images([100, 102, 101]), [], 'a short span is not an image');
  assert.throws(() => v.imageTokens([1, 2]), /an image is 3×3 = 9 codes, got 2/);
  assert.throws(() => v.imageTokens([0, 1, 2, 3, 4, 5, 6, 7, 16]), /code 16 at position 8 is outside the codebook \(0…15\)/);
  assert.deepEqual(v.state([5, 100, 102, 103]), { inImage: true, emitted: 2 });
  assert.deepEqual(v.state([5, 100, 102, 101]), { inImage: false });
  assert.throws(() => new MixedVocab(0, 16, 3), /textSize must be a positive integer/);
});

test('the processor keeps sampling on random logits well-formed; images: false and "only" as asked', () => {
  const v = new MixedVocab(20, 8, 2), g = new Generator(5);
  const sample = (proc: ImageSpanProcessor, prompt: number[], n: number): number[] => {
    const ids = [...prompt];
    for (let s = 0; s < n; s++) {
      // Logits that favour <image> and codes, to provoke mistakes the processor must prevent.
      const l = Float32Array.from({ length: v.size + 3 }, (_, i) => g.normal() + (i >= v.imageStart ? 2 : 0));
      proc.process(ids, l);
      let best = 0;
      for (let i = 1; i < l.length; i++) if (l[i] > l[best]) best = i;
      ids.push(best);
    }
    return ids;
  };
  const free = sample(new ImageSpanProcessor(v), [1, 2], 400);
  wellFormed(v, free);
  assert.ok(v.images(free).length >= 5, `${v.images(free).length} images`);
  const text = sample(new ImageSpanProcessor(v, { images: false }), [1], 100);
  assert.ok(text.every((t) => t < v.textSize), 'text only');
  const img = sample(new ImageSpanProcessor(v, { images: 'only' }), [3, 4], 6);
  assert.deepEqual(img.slice(0, 3), [3, 4, v.imageStart]);
  wellFormed(v, img);
  // Inside a span the model must not stop early: text is masked too.
  const l = new Float32Array(v.size).fill(0);
  new ImageSpanProcessor(v).process([1, v.imageStart, v.codeOffset], l);
  assert.ok(l.every((x, i) => (v.isCode(i) ? x === 0 : x === -Infinity)));
});

test('a mixed-vocabulary LLaMA sampled through generate() writes only well-formed images', () => {
  const v = new MixedVocab(40, 16, 2);
  const model = createModel({ model_type: 'chameleon', vocab_size: v.size, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 128 });
  const r = generate(model, [[1, 2, v.imageStart]], { maxNewTokens: 40, temperature: 1, seed: 3, processors: [new ImageSpanProcessor(v)] });
  const ids = [1, 2, v.imageStart, ...r.ids[0]];
  wellFormed(v, ids);
  assert.equal(v.images(ids)[0]?.codes.length, 4, 'the prompt\'s open image was completed');
  model.dispose();
});
