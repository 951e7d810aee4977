// `tslm image-tokenizer train|encode|decode`: the VQ-VAE that turns images into code grids and back.
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { init, shutdown } from '../../backend/index.js';
import { trainImageTokenizer, loadImageTokenizer, readPng, writePng, loadPngFolder, ImageTokenizerError } from '../../vision/index.js';
import { UsageError, num } from '../args.js';

export const usage = `tslm image-tokenizer train [--out DIR (tslm-image-tokenizer)] [--images FOLDER] [--steps N (500)] [--batch-size B (64)] [--lr X (0.002)] [--codes K (256)] [--seed S] [--threads N]
    Trains a VQ-VAE image tokenizer (conv encoder → codebook with EMA updates and dead-code
    restarts → conv decoder): MNIST's 28×28 digits by default (the mnist package), or a folder of
    square grey PNGs. Writes config.json, model.safetensors, metrics.jsonl, report.json and
    reconstructions.png (held-out originals above their reconstructions); prints held-out PSNR
    and how many codes are used.
tslm image-tokenizer encode --model DIR --image FILE.png [--out codes.json]
    The image's code grid (rows of code ids), printed or written as JSON.
tslm image-tokenizer decode --model DIR --codes codes.json --out FILE.png
    The image a code grid stands for.`;

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'train' && sub !== 'encode' && sub !== 'decode') throw new UsageError(`expected train, encode or decode, got ${sub === undefined ? 'nothing' : `'${sub}'`}`);
  const { values } = parseArgs({
    args: rest,
    options: {
      out: { type: 'string' }, images: { type: 'string' }, steps: { type: 'string' }, 'batch-size': { type: 'string' }, lr: { type: 'string' },
      codes: { type: 'string' }, seed: { type: 'string' }, threads: { type: 'string' }, model: { type: 'string' }, image: { type: 'string' },
    },
  });
  const int = (v: string | undefined, name: string): number | undefined => num(v, name, (x) => Number.isInteger(x) && x >= 1);
  const threads = int(values.threads, '--threads');
  await init(threads ? { threads } : {});
  try {
    if (sub === 'train') {
      const codes = int(values.codes, '--codes');
      const data = values.images ? loadPngFolder(values.images) : undefined;
      await trainImageTokenizer({
        out: values.out ?? 'tslm-image-tokenizer', steps: int(values.steps, '--steps'), batchSize: int(values['batch-size'], '--batch-size'),
        lr: num(values.lr, '--lr', (x) => x > 0), seed: num(values.seed, '--seed', (x) => Number.isInteger(x) && x >= 0),
        config: codes ? { num_codes: codes } : undefined, train: data?.train, test: data?.test,
        log: (l) => console.log(l),
      });
      return 0;
    }
    if (!values.model) throw new UsageError('--model is required');
    const m = await loadImageTokenizer(values.model);
    const S = m.config.image_size, g = m.grid;
    if (sub === 'encode') {
      if (!values.image) throw new UsageError('--image is required');
      const grid = m.encodeImage(readPng(values.image), values.image);
      const rows = Array.from({ length: g }, (_, r) => grid.slice(r * g, (r + 1) * g));
      if (values.out) writeFileSync(values.out, JSON.stringify({ codes: rows }) + '\n');
      else console.log(rows.map((r) => r.join(' ')).join('\n'));
      return 0;
    }
    if (!values.codes || !values.out) throw new UsageError('--codes and --out are required');
    let doc: unknown;
    try { doc = JSON.parse(readFileSync(values.codes, 'utf8')); } catch (e) { throw new ImageTokenizerError(`${values.codes}: cannot be read as JSON (${(e as Error).message.slice(0, 80)})`); }
    const rows = (doc as { codes?: unknown })?.codes;
    if (!Array.isArray(rows) || rows.length !== g || !rows.every((r) => Array.isArray(r) && r.length === g)) throw new ImageTokenizerError(`${values.codes}: "codes" must be ${g} rows of ${g} code ids`);
    const flat = (rows as unknown[][]).flat();
    const K = m.config.num_codes;
    const bad = flat.findIndex((v) => typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= K);
    if (bad >= 0) throw new ImageTokenizerError(`${values.codes}: code ${JSON.stringify(flat[bad])} at row ${Math.floor(bad / g)}, column ${bad % g} is not a code id of this tokenizer (0…${K - 1})`);
    const pixels = m.decodePixels(flat as number[], 1);
    writePng(values.out, { width: S, height: S, pixels });
    console.log(`wrote ${values.out}`);
    return 0;
  } finally {
    await shutdown();
  }
}
