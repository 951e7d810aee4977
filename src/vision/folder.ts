// A folder of PNGs as an image set: every *.png (sorted by name), grey, all the same square size.
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { readPng, ImageError } from './png.js';
import type { ImageSet } from './mnist.js';

/** The folder's PNGs, split 90/10 into training and held-out images (every tenth held out). */
export function loadPngFolder(dir: string): { train: ImageSet; test: ImageSet } {
  let names: string[];
  try {
    if (!statSync(dir).isDirectory()) throw new ImageError(dir, 'is not a folder');
    names = readdirSync(dir).filter((n) => n.toLowerCase().endsWith('.png')).sort();
  } catch (e) {
    if (e instanceof ImageError) throw e;
    throw new ImageError(dir, `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (names.length < 2) throw new ImageError(dir, `holds ${names.length} PNG file(s); training needs at least 2`);
  const first = readPng(path.join(dir, names[0]));
  const size = first.width;
  if (first.height !== size) throw new ImageError(path.join(dir, names[0]), `is ${first.width}×${first.height}; the images must be square`);
  if (size % 4 || size < 4) throw new ImageError(path.join(dir, names[0]), `is ${size}×${size}; the side must be a multiple of 4`);
  const px = size * size;
  const imgs = names.map((n, i) => {
    const img = i === 0 ? first : readPng(path.join(dir, n));
    if (img.width !== size || img.height !== size) throw new ImageError(path.join(dir, n), `is ${img.width}×${img.height}; the first image (${names[0]}) is ${size}×${size}, and all must be the same size`);
    return img.pixels;
  });
  const build = (sel: Float32Array[]): ImageSet => {
    const pixels = new Float32Array(sel.length * px);
    sel.forEach((p, i) => pixels.set(p, i * px));
    return { pixels, labels: new Int32Array(sel.length).fill(-1), n: sel.length, size };
  };
  const test = imgs.filter((_, i) => i % 10 === 9), train = imgs.filter((_, i) => i % 10 !== 9);
  return { train: build(train), test: build(test.length ? test : imgs.slice(0, 1)) };
}
