// PNG in and out (pngjs): grey images as Float32Array levels in [0, 1]. Colour PNGs are read as
// their luminance (Rec. 601 weights); alpha is composited on black (MNIST digits are white on black).
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../train/report.js';
import pngjs from 'pngjs';

export class ImageError extends Error {
  constructor(readonly file: string, detail: string) {
    super(`${file}: ${detail}`);
    this.name = 'ImageError';
  }
}

export interface GreyImage { width: number; height: number; pixels: Float32Array }

export function readPng(file: string): GreyImage {
  let buf: Buffer;
  try { buf = readFileSync(file); } catch (e) { throw new ImageError(file, `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`); }
  return decodePng(buf, file);
}

/** A PNG's bytes as a grey image; `file` names it in errors. */
export function decodePng(buf: Buffer, file: string): GreyImage {
  if (buf.length < 8 || buf.readUInt32BE(0) !== 0x89504e47) throw new ImageError(file, 'is not a PNG file (no PNG signature)');
  let png: pngjs.PNG;
  try { png = pngjs.PNG.sync.read(buf); } catch (e) { throw new ImageError(file, `is not a readable PNG (${(e as Error).message})`); }
  const { width, height, data } = png;
  const pixels = new Float32Array(width * height);
  for (let i = 0; i < width * height; i++) {
    const r = data[4 * i], g = data[4 * i + 1], b = data[4 * i + 2], a = data[4 * i + 3] / 255;
    const y = (0.299 * r + 0.587 * g + 0.114 * b) / 255;
    pixels[i] = y * a;
  }
  return { width, height, pixels };
}

/** A grey image (levels clamped to [0, 1]) as the bytes of an 8-bit PNG. */
export function pngBytes(img: GreyImage): Buffer {
  const png = new pngjs.PNG({ width: img.width, height: img.height, colorType: 0, inputColorType: 0, bitDepth: 8, inputHasAlpha: false });
  const data = Buffer.alloc(img.width * img.height);
  for (let i = 0; i < data.length; i++) data[i] = Math.round(255 * Math.min(1, Math.max(0, img.pixels[i])));
  png.data = data;
  return pngjs.PNG.sync.write(png, { colorType: 0, inputColorType: 0, inputHasAlpha: false });
}

/** A grey image as a PNG data: URL (what the chat API and report.html carry). */
export function pngDataUrl(img: GreyImage): string {
  return `data:image/png;base64,${pngBytes(img).toString('base64')}`;
}

/** Write a grey image (levels clamped to [0, 1]) as an 8-bit PNG, atomically. */
export function writePng(file: string, img: GreyImage): void {
  writeFileAtomic(file, pngBytes(img));
}

/** Square images (n × size × size) tiled in rows of `cols`, with a 1-pixel grey gutter. */
export function tile(pixels: Float32Array, n: number, size: number, cols: number): GreyImage {
  const rows = Math.ceil(n / cols), W = cols * (size + 1) + 1, Hh = rows * (size + 1) + 1;
  const out = new Float32Array(W * Hh).fill(0.5);
  for (let k = 0; k < n; k++) {
    const oy = 1 + Math.floor(k / cols) * (size + 1), ox = 1 + (k % cols) * (size + 1);
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) out[(oy + y) * W + ox + x] = pixels[k * size * size + y * size + x];
  }
  return { width: W, height: Hh, pixels: out };
}
