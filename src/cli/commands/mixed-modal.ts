// `tslm mixed-modal train`: one early-fusion model (Chameleon's recipe) over text and MNIST image
// tokens that captions digits and draws them; evaluated by a digit classifier, with report.html.
import { parseArgs } from 'node:util';
import { init, shutdown } from '../../backend/index.js';
import { trainMixedModal } from '../../vision/mixed_train.js';
import { UsageError, num, interruptible } from '../args.js';

export const usage = `tslm mixed-modal train [--out DIR] [--image-tokenizer DIR] [--steps N] [--batch-size B] [--seq-len L]
      [--lr LR] [--seed S] [--threads N] [--no-qk-norm] [--z-loss C] [--eval-per-class N] [--resume]
      [--image-tokenizer-steps N] [--classifier-steps N] [--limit-images N] [--stability-steps N] [--stability-lr LR]
      [--draw-temperature T] [--guidance S] [--augment N]
    Train one transformer over text tokens and image tokens (Chameleon's early fusion) on the
    embedded MNIST digits: documents "a handwritten 7" + the digit's image tokens (drawing) and
    image + caption (captioning), packed side by side. The image tokenizer is trained first unless
    --image-tokenizer gives one (tslm image-tokenizer train). QK-norm and the z-loss (--z-loss,
    default 1e-5) are on by default. At the end a digit classifier (trained here, its held-out
    accuracy printed) judges 100 drawings per digit (sampled at --draw-temperature, default 1, with
    classifier-free guidance --guidance, default 3, and again without guidance for comparison),
    the held-out digits are captioned (greedy; --eval-per-class N: N of each, default 100), and report.html shows both, with the loss curves of the same model trained at a high learning rate
    (--stability-lr, 1e-2) with QK-norm + z-loss and without them (--stability-steps, 150; 0: skip).
    --augment N adds N copies of each training digit shifted by up to 2 pixels (default 1; 0: none).
    Defaults: 3,000 steps of 16 × 128 tokens (about 20 minutes on 2 cores).
    The model (DIR/checkpoint) works with tslm generate --image-out / --image.`;

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'train') throw new UsageError(`unknown subcommand '${sub ?? ''}' (expected train)`);
  const { values } = parseArgs({
    args: rest,
    options: {
      out: { type: 'string' }, 'image-tokenizer': { type: 'string' }, steps: { type: 'string' }, 'batch-size': { type: 'string' }, 'seq-len': { type: 'string' },
      lr: { type: 'string' }, seed: { type: 'string' }, threads: { type: 'string' }, 'no-qk-norm': { type: 'boolean', default: false }, 'z-loss': { type: 'string' },
      'eval-per-class': { type: 'string' }, resume: { type: 'boolean', default: false }, 'image-tokenizer-steps': { type: 'string' }, 'limit-images': { type: 'string' }, 'classifier-steps': { type: 'string' }, 'stability-steps': { type: 'string' }, 'stability-lr': { type: 'string' }, 'draw-temperature': { type: 'string' }, guidance: { type: 'string' }, augment: { type: 'string' },
    },
  });
  const pos = (k: string) => num(values[k as keyof typeof values] as string | undefined, k, (x) => Number.isInteger(x) && x > 0);
  const stop = interruptible('step');
  await init({ threads: pos('threads') });
  try {
    await trainMixedModal({
      out: values.out ?? 'tslm-mixed-modal', imageTokenizer: values['image-tokenizer'], steps: pos('steps'), batchSize: pos('batch-size'), seqLen: pos('seq-len'),
      lr: num(values.lr, 'lr', (x) => x > 0), seed: num(values.seed, 'seed', Number.isInteger), qkNorm: !values['no-qk-norm'], zLoss: num(values['z-loss'], 'z-loss', (x) => x >= 0),
      evalPerClass: pos('eval-per-class'), resume: values.resume, imageTokenizerSteps: pos('image-tokenizer-steps'), limitImages: pos('limit-images'), classifierSteps: pos('classifier-steps'), stabilitySteps: num(values['stability-steps'], 'stability-steps', (x) => Number.isInteger(x) && x >= 0), stabilityLr: num(values['stability-lr'], 'stability-lr', (x) => x > 0), drawTemperature: num(values['draw-temperature'], 'draw-temperature', (x) => x > 0), guidance: num(values.guidance, 'guidance', (x) => x >= 0), augment: num(values.augment, 'augment', (x) => Number.isInteger(x) && x >= 0), signal: stop.signal,
    });
  } finally {
    stop.release();
    await shutdown();
  }
  return 0;
}
