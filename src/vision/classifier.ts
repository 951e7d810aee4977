// A small convolutional digit classifier, the judge of generated images: conv 3×3 (1→16) → ReLU →
// 2×2 average pool → conv 3×3 (16→32) → ReLU → pool → linear (32·7·7 → 10). Trained on MNIST's
// training part in about a minute; its accuracy on the held-out digits is printed beside every
// verdict it gives on generated ones.
import { existsSync, readFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import * as T from '../tensor/ops.js';
import { crossEntropy } from '../tensor/nn.js';
import { avgPool2d } from '../tensor/conv.js';
import type { Tensor } from '../tensor/tensor.js';
import { scope } from '../tensor/storage.js';
import { noGrad } from '../tensor/autograd.js';
import { Generator } from '../tensor/random.js';
import { Module } from '../nn/module.js';
import { Conv2d } from '../nn/conv.js';
import { Linear } from '../nn/layers.js';
import { AdamW } from '../train/optim.js';
import { writeFileAtomic } from '../train/report.js';
import { writeSafetensors, readSafetensors } from '../io/safetensors.js';
import { fromFloat32, f32StateDict } from '../io/dtypes.js';
import type { ImageSet } from './mnist.js';

export class DigitClassifier extends Module {
  conv1: Conv2d; conv2: Conv2d; fc: Linear;
  constructor(readonly size = 28, seed = 0) {
    super();
    const g = new Generator(seed);
    this.conv1 = new Conv2d(1, 16, 3, { padding: 1, generator: g });
    this.conv2 = new Conv2d(16, 32, 3, { padding: 1, generator: g });
    const side = size / 4;
    this.fc = new Linear(32 * side * side, 10, { generator: g, bias: true, bound: 1 / Math.sqrt(32 * side * side) });
  }

  /** Logits (B, 10) of images (B, 1, S, S) in [0, 1]. */
  forward(x: Tensor): Tensor {
    const h = avgPool2d(T.relu(this.conv2.forward(avgPool2d(T.relu(this.conv1.forward(x)), 2))), 2);
    return this.fc.forward(T.reshape(h, [x.shape[0], -1]));
  }

  /** The predicted digit of each of n images (grey levels, row-major, n·S·S values; clamped to [0, 1]). */
  predict(pixels: Float32Array, n: number): number[] {
    const S = this.size, out: number[] = [];
    for (let s = 0; s < n; s += 200) {
      const b = Math.min(200, n - s);
      const x = pixels.slice(s * S * S, (s + b) * S * S).map((v) => Math.min(1, Math.max(0, v)));
      out.push(...scope(() => noGrad(() => T.argmax(this.forward(T.tensor(x, [b, 1, S, S])), -1).toArray() as number[])));
    }
    return out;
  }

  /** Share of a set's images classified as their label. */
  accuracy(set: ImageSet): number {
    const p = this.predict(set.pixels, set.n);
    let ok = 0;
    for (let i = 0; i < set.n; i++) if (p[i] === set.labels[i]) ok++;
    return ok / set.n;
  }
}

/** Train the classifier (AdamW, batches of 64) on `train`; its accuracy on `test`. */
export function trainDigitClassifier(train: ImageSet, test: ImageSet, o: { steps?: number; seed?: number; log?: (l: string) => void } = {}): { model: DigitClassifier; accuracy: number } {
  const steps = o.steps ?? 600, B = 64, S = train.size, px = S * S;
  const m = new DigitClassifier(S, o.seed ?? 0);
  const opt = new AdamW(m.parameters(), { lr: 3e-3, weightDecay: 0 });
  const g = new Generator((o.seed ?? 0) + 7);
  for (let step = 1; step <= steps; step++) {
    const x = new Float32Array(B * px), y = new Int32Array(B);
    for (let i = 0; i < B; i++) { const k = g.int(train.n); x.set(train.pixels.subarray(k * px, (k + 1) * px), i * px); y[i] = train.labels[k]; }
    scope(() => {
      const loss = crossEntropy(m.forward(T.tensor(x, [B, 1, S, S])), T.tensor(y, [B], 'i32'));
      opt.zeroGrad();
      loss.backward();
      opt.step();
    });
  }
  m.eval();
  const accuracy = m.accuracy(test);
  o.log?.(`digit classifier: ${steps} steps, held-out accuracy ${(accuracy * 100).toFixed(1)}% on ${test.n} real digits`);
  return { model: m, accuracy };
}

export async function saveDigitClassifier(m: DigitClassifier, dir: string, accuracy: number): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await writeSafetensors(path.join(dir, 'model.safetensors'), m.namedTensors().map(([n, t]) => fromFloat32(n, [...t.shape], t.data() as Float32Array)), { format: 'pt' });
  writeFileAtomic(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'tslm_digit_classifier', image_size: m.size, heldout_accuracy: accuracy }, null, 2) + '\n');
}

export async function loadDigitClassifier(dir: string): Promise<{ model: DigitClassifier; accuracy: number } | null> {
  const cfgFile = path.join(dir, 'config.json');
  if (!existsSync(cfgFile)) return null;
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as { image_size: number; heldout_accuracy: number };
  const m = new DigitClassifier(cfg.image_size);
  const w = path.join(dir, 'model.safetensors');
  m.loadStateDict(f32StateDict((await readSafetensors(w)).tensors, w), { source: w });
  m.eval();
  return { model: m, accuracy: cfg.heldout_accuracy };
}
