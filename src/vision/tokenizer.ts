// The image tokenizer of an early-fusion model (Chameleon's recipe at MNIST scale): a VQ-VAE —
// a convolutional encoder to a grid of vectors, a vector quantiser with a codebook, and a
// decoder back to pixels — so that an image becomes a grid of code ids (28×28 → 7×7 of 256 codes
// by default) and code ids become an image. Trained on reconstruction (mean squared error) plus
// the quantiser's commitment loss, with the codebook as an EMA of its vectors.
import { mkdirSync, existsSync, appendFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Tensor } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { scope } from '../tensor/storage.js';
import { noGrad } from '../tensor/autograd.js';
import { Generator } from '../tensor/random.js';
import { Module } from '../nn/module.js';
import { Conv2d, ConvTranspose2d } from '../nn/conv.js';
import { VectorQuantizer } from '../nn/vq.js';
import { AdamW } from '../train/optim.js';
import { writeFileAtomic } from '../train/report.js';
import { writeSafetensors, readSafetensors } from '../io/safetensors.js';
import { fromFloat32, f32StateDict } from '../io/dtypes.js';
import { readJsonObjectFileSync } from '../io/json_file.js';
import { loadMnist, type ImageSet } from './mnist.js';
import { tile, writePng } from './png.js';

export interface ImageTokenizerConfig {
  model_type: 'tslm_vqvae';
  image_size: number;
  channels: number;
  /** Widths of the two stride-2 stages. */
  hidden: [number, number];
  /** Dimension of a code vector. */
  code_dim: number;
  num_codes: number;
  commitment: number;
  ema_decay: number;
}

export const DEFAULT_IMAGE_TOKENIZER: ImageTokenizerConfig = {
  model_type: 'tslm_vqvae', image_size: 28, channels: 1, hidden: [32, 64], code_dim: 32, num_codes: 256, commitment: 0.25, ema_decay: 0.99,
};

export class ImageTokenizerError extends Error {
  constructor(message: string) { super(message); this.name = 'ImageTokenizerError'; }
}

export function checkConfig(c: Record<string, unknown>, where: string): ImageTokenizerConfig {
  const cfg = { ...DEFAULT_IMAGE_TOKENIZER, ...c } as ImageTokenizerConfig;
  const int = (k: keyof ImageTokenizerConfig, v: unknown, max: number): void => {
    if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > max) throw new ImageTokenizerError(`${where}: ${k} must be an integer from 1 to ${max}, got ${JSON.stringify(v)}`);
  };
  if (cfg.model_type !== 'tslm_vqvae') throw new ImageTokenizerError(`${where}: model_type "${cfg.model_type}" is not an image tokenizer (tslm_vqvae)`);
  int('image_size', cfg.image_size, 4096); int('channels', cfg.channels, 4); int('code_dim', cfg.code_dim, 4096); int('num_codes', cfg.num_codes, 1 << 16);
  if (!Array.isArray(cfg.hidden) || cfg.hidden.length !== 2) throw new ImageTokenizerError(`${where}: hidden must be two widths`);
  cfg.hidden.forEach((h) => int('hidden', h, 4096));
  if (cfg.image_size % 4) throw new ImageTokenizerError(`${where}: image_size ${cfg.image_size} must be a multiple of 4 (two stride-2 stages)`);
  return cfg;
}

class Encoder extends Module {
  conv1: Conv2d; conv2: Conv2d; conv3: Conv2d;
  constructor(c: ImageTokenizerConfig, g: Generator) {
    super();
    this.conv1 = new Conv2d(c.channels, c.hidden[0], 4, { stride: 2, padding: 1, generator: g });
    this.conv2 = new Conv2d(c.hidden[0], c.hidden[1], 4, { stride: 2, padding: 1, generator: g });
    this.conv3 = new Conv2d(c.hidden[1], c.code_dim, 3, { padding: 1, generator: g });
  }
  forward(x: Tensor): Tensor {
    return this.conv3.forward(T.relu(this.conv2.forward(T.relu(this.conv1.forward(x)))));
  }
}

class Decoder extends Module {
  conv1: Conv2d; deconv1: ConvTranspose2d; deconv2: ConvTranspose2d;
  constructor(c: ImageTokenizerConfig, g: Generator) {
    super();
    this.conv1 = new Conv2d(c.code_dim, c.hidden[1], 3, { padding: 1, generator: g });
    this.deconv1 = new ConvTranspose2d(c.hidden[1], c.hidden[0], 4, { stride: 2, padding: 1, generator: g });
    this.deconv2 = new ConvTranspose2d(c.hidden[0], c.channels, 4, { stride: 2, padding: 1, generator: g });
  }
  forward(z: Tensor): Tensor {
    // Linear output (a sigmoid on a mean-squared error saturates: PyTorch's run collapses to 0 too).
    return this.deconv2.forward(T.relu(this.deconv1.forward(T.relu(this.conv1.forward(z)))));
  }
}

export class ImageTokenizer extends Module {
  encoder: Encoder;
  quantizer: VectorQuantizer;
  decoder: Decoder;
  constructor(readonly config: ImageTokenizerConfig, opts: { seed?: number } = {}) {
    super();
    const g = new Generator(opts.seed ?? 0);
    this.encoder = new Encoder(config, g);
    // A code assigned to less than half a vector per batch on average (EMA) is restarted on a vector of the batch.
    this.quantizer = new VectorQuantizer(config.num_codes, config.code_dim, { beta: config.commitment, decay: config.ema_decay, deadThreshold: 0.5, generator: g });
    this.decoder = new Decoder(config, g);
  }

  /** Side of the code grid (image_size / 4). */
  get grid(): number { return this.config.image_size / 4; }

  private checkImages(x: Tensor): void {
    const c = this.config;
    if (x.ndim !== 4 || x.shape[1] !== c.channels || x.shape[2] !== c.image_size || x.shape[3] !== c.image_size) {
      throw new ImageTokenizerError(`images must be (B, ${c.channels}, ${c.image_size}, ${c.image_size}), got [${x.shape.join(', ')}]`);
    }
  }

  /** Reconstruction, codes and the loss (MSE + the quantiser's) of images (B, C, S, S) in [0, 1]. */
  forward(x: Tensor): { recon: Tensor; codes: Tensor; loss: Tensor; mse: Tensor; used: number; perplexity: number } {
    this.checkImages(x);
    const q = this.quantizer.forward(this.encoder.forward(x));
    const recon = this.decoder.forward(q.zq);
    const d = T.sub(recon, x);
    const mse = T.mean(T.mul(d, d));
    return { recon, codes: q.codes, loss: T.add(mse, q.loss), mse, used: q.used, perplexity: q.perplexity };
  }

  /** Code ids (B, g, g), i32. */
  encode(x: Tensor): Tensor {
    this.checkImages(x);
    return noGrad(() => {
      const z = this.encoder.forward(x);
      const [B, D, h, w] = z.shape;
      const flat = T.reshape(T.permute(z, [0, 2, 3, 1]), [B * h * w, D]);
      return T.reshape(this.quantizer.nearest(flat), [B, h, w]);
    });
  }

  /** The code ids (n × g², row-major) of n images given as grey levels (n × S², row-major). */
  encodePixels(pixels: Float32Array, n: number): number[] {
    const S = this.config.image_size;
    return scope(() => this.encode(T.tensor(pixels, [n, this.config.channels, S, S])).toArray() as number[]);
  }

  /** The code ids (g², row-major) of one picture read from `file`, refused naming the file when it is not S×S. */
  encodeImage(img: { width: number; height: number; pixels: Float32Array }, file: string): number[] {
    const S = this.config.image_size;
    if (img.width !== S || img.height !== S) throw new ImageTokenizerError(`${file}: the image is ${img.width}×${img.height}; the image tokenizer takes ${S}×${S} grey images`);
    return this.encodePixels(img.pixels, 1);
  }

  /** The grey levels (n × S², row-major) of n images given as code ids (n × g², row-major). */
  decodePixels(codes: ArrayLike<number>, n: number): Float32Array {
    const g = this.grid;
    return scope(() => Float32Array.from(this.decode(T.tensor(Array.from(codes), [n, g, g], 'i32')).toArray() as number[]));
  }

  /** Images (B, C, S, S) from code ids (B, g, g) (levels may stray a little outside [0, 1]; PNGs clamp them). */
  decode(codes: Tensor): Tensor {
    const K = this.config.num_codes, g = this.grid;
    if (codes.ndim !== 3 || codes.shape[1] !== g || codes.shape[2] !== g) throw new ImageTokenizerError(`codes must be a (B, ${g}, ${g}) grid, got [${codes.shape.join(', ')}]`);
    const ids = codes.toArray() as number[];
    const bad = ids.findIndex((v) => !Number.isInteger(v) || v < 0 || v >= K);
    if (bad >= 0) throw new ImageTokenizerError(`code ${ids[bad]} at position ${bad} is outside the codebook (0…${K - 1})`);
    return noGrad(() => this.decoder.forward(this.quantizer.lookup(codes.dtype === 'i32' ? codes : T.tensor(ids, codes.shape, 'i32'))));
  }
}

// ---- files -------------------------------------------------------------------------------------

/** Write config.json and model.safetensors into `dir` (each atomically). */
export async function saveImageTokenizer(m: ImageTokenizer, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const tensors = m.namedTensors().map(([name, t]) => fromFloat32(name, [...t.shape], t.data() as Float32Array));
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' }); // (atomic itself)
  writeFileAtomic(path.join(dir, 'config.json'), JSON.stringify(m.config, null, 2) + '\n');
}

export async function loadImageTokenizer(dir: string): Promise<ImageTokenizer> {
  const cfgFile = path.join(dir, 'config.json'), weights = path.join(dir, 'model.safetensors');
  if (!existsSync(cfgFile)) throw new ImageTokenizerError(`${dir}: no config.json (not an image tokenizer directory: make one with tslm image-tokenizer train)`);
  const m = new ImageTokenizer(checkConfig(readJsonObjectFileSync(cfgFile, 'image tokenizer config'), cfgFile));
  const { tensors } = await readSafetensors(weights);
  m.loadStateDict(f32StateDict(tensors, weights), { source: weights });
  m.eval();
  return m;
}

// ---- training -----------------------------------------------------------------------------------

export interface TrainImageTokenizerOptions {
  out: string;
  steps?: number;
  batchSize?: number;
  lr?: number;
  seed?: number;
  config?: Partial<ImageTokenizerConfig>;
  /** Images to train on (default: MNIST's training part) and to evaluate on (default: its held-out part). */
  train?: ImageSet;
  test?: ImageSet;
  log?: (line: string) => void;
}

export interface ImageTokenizerReport { steps: number; mse: number; psnr: number; used: number; perplexity: number; restarts: number; seconds: number }

/** Mean squared error, PSNR (dB, peak 1) and codebook use on up to `limit` images of a set. */
export function evaluate(m: ImageTokenizer, set: ImageSet, limit = 500): { mse: number; psnr: number; used: number; perplexity: number } {
  const n = Math.min(limit, set.n), S = set.size, px = S * S;
  let se = 0;
  const counts = new Float64Array(m.config.num_codes);
  const wasTraining = m.training;
  m.eval();
  for (let s = 0; s < n; s += 100) {
    const b = Math.min(100, n - s);
    scope(() => noGrad(() => {
      const x = T.tensor(set.pixels.subarray(s * px, (s + b) * px), [b, 1, S, S]);
      const out = m.forward(x);
      se += out.mse.item() * b * px;
      for (const c of out.codes.toArray() as number[]) counts[c]++;
    }));
  }
  if (wasTraining) m.train();
  const mse = se / (n * px);
  const total = counts.reduce((a, c) => a + c, 0);
  let used = 0, h = 0;
  for (const c of counts) if (c > 0) { used++; h -= (c / total) * Math.log(c / total); }
  return { mse, psnr: 10 * Math.log10(1 / mse), used, perplexity: Math.exp(h) };
}

export async function trainImageTokenizer(o: TrainImageTokenizerOptions): Promise<{ model: ImageTokenizer; report: ImageTokenizerReport }> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const steps = o.steps ?? 500, B = o.batchSize ?? 64, lr = o.lr ?? 2e-3, seed = o.seed ?? 0;
  for (const [k, v] of [['steps', steps], ['batchSize', B]] as const) if (!Number.isInteger(v) || v < 1) throw new ImageTokenizerError(`${k} must be a positive integer, got ${v}`);
  if (!(lr > 0 && Number.isFinite(lr))) throw new ImageTokenizerError(`lr must be a positive number, got ${lr}`);
  const data = o.train && o.test ? { train: o.train, test: o.test } : loadMnist();
  const cfg = checkConfig({ ...DEFAULT_IMAGE_TOKENIZER, ...(o.config ?? {}), image_size: data.train.size }, 'config');
  const m = new ImageTokenizer(cfg, { seed });
  const opt = new AdamW(m.parameters(), { lr, weightDecay: 0 });
  const S = data.train.size, px = S * S, N = data.train.n;
  const g = new Generator(seed + 1);
  mkdirSync(o.out, { recursive: true });
  const metrics = path.join(o.out, 'metrics.jsonl');
  rmSync(metrics, { force: true });
  const t0 = performance.now();
  let last = 0;
  log(`image tokenizer: ${cfg.image_size}×${cfg.image_size} → ${cfg.image_size / 4}×${cfg.image_size / 4} codes of ${cfg.num_codes}; ${m.numParameters().toLocaleString('en-US')} parameters; ${steps} steps of ${B} images (${N} training images)`);
  for (let step = 1; step <= steps; step++) {
    const batch = new Float32Array(B * px);
    for (let i = 0; i < B; i++) { const k = Math.min(N - 1, Math.floor(g.uniform() * N)); batch.set(data.train.pixels.subarray(k * px, (k + 1) * px), i * px); }
    const rec = scope(() => {
      const out = m.forward(T.tensor(batch, [B, cfg.channels, S, S]));
      opt.zeroGrad();
      out.loss.backward();
      opt.step();
      return { loss: out.loss.item(), mse: out.mse.item(), used: out.used, perplexity: out.perplexity };
    });
    if (!Number.isFinite(rec.loss)) throw new ImageTokenizerError(`step ${step}: the loss is ${rec.loss}; lower the learning rate (${lr})`);
    appendFileSync(metrics, JSON.stringify({ step, ...rec }) + '\n');
    const now = performance.now();
    if (now - last > 2000 || step === steps) {
      last = now;
      const el = (now - t0) / 1000, eta = (el / step) * (steps - step);
      log(`step ${step}/${steps} | loss ${rec.loss.toFixed(4)} | mse ${rec.mse.toFixed(4)} | codes used ${rec.used} (perplexity ${rec.perplexity.toFixed(1)}) | ${(step * B / el).toFixed(0)} images/s | ETA ${eta.toFixed(0)} s`);
    }
  }
  const ev = evaluate(m, data.test);
  const report: ImageTokenizerReport = { steps, ...ev, restarts: m.quantizer.restarts, seconds: (performance.now() - t0) / 1000 };
  await saveImageTokenizer(m, o.out);
  // Held-out originals (top rows) above their reconstructions (bottom rows).
  const n = Math.min(16, data.test.n);
  const orig = data.test.pixels.subarray(0, n * px);
  const both = new Float32Array(2 * n * px);
  both.set(orig, 0); both.set(m.decodePixels(m.encodePixels(orig, n), n), n * px);
  writePng(path.join(o.out, 'reconstructions.png'), tile(both, 2 * n, S, n));
  writeFileAtomic(path.join(o.out, 'report.json'), JSON.stringify(report, null, 2) + '\n');
  log(`held-out reconstruction: MSE ${ev.mse.toFixed(5)}, PSNR ${ev.psnr.toFixed(2)} dB; codebook: ${ev.used} of ${cfg.num_codes} codes used (perplexity ${ev.perplexity.toFixed(1)}), ${m.quantizer.restarts} restarts; ${report.seconds.toFixed(1)} s`);
  log(`wrote ${path.join(o.out, 'config.json')}, model.safetensors, reconstructions.png, metrics.jsonl, report.json`);
  return { model: m, report };
}
