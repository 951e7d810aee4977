// The word2vec training loop over the WebAssembly SIMD kernel (wasm/word2vec.ts, built into
// dist/wasm/word2vec-{relaxed,simd}.wasm). Same loop as trainRange in word2vec-kernel.ts (the
// reference): subsampling and the learning-rate schedule stay here in JavaScript, and each
// subsampled sentence goes to the kernel in one call, which draws the window shrinks and the
// negatives from the same xorshift32 stream. All arrays the kernel touches are views of one
// shared WebAssembly.Memory that every worker thread instantiates the module over (Hogwild).
import { readFile } from 'node:fs/promises';
import { ClassicInputError } from './errors.js';
import { LearningRate, MAX_CODE_LENGTH, expTable, lossTable, subsample, type RangeResult, type W2VParams, type W2VRng, type W2VShared, type W2VWasmState } from './word2vec-kernel.js';

/** Positions whose random draws the kernel makes ahead at once (DRAW_BLOCK in wasm/word2vec.ts). */
export const DRAW_BLOCK = 8;
/** i32 slots of a thread's draw-ahead buffer: DRAW_BLOCK window shrinks, the block's negatives,
 *  the (row, kind) list of one prediction (Huffman path, target, negatives), and the scratch of
 *  predictions by position (hsPosition in wasm/word2vec.ts): for 2·window contexts, their rows, dot products with a row, gradients for
 *  two rows, Gram matrix, the gradients of one prediction's rows (runChainFused) and (16-byte aligned) input gradients of dim floats. */
export const drawSlots = (window: number, negative: number, dim: number): number =>
  DRAW_BLOCK * (1 + 2 * window * negative) + 2 * (MAX_CODE_LENGTH + negative + 1) +
  4 * (2 * window) + (2 * window) ** 2 + (MAX_CODE_LENGTH + negative + 1) + 4 + 2 * window * dim;

/** Bytes at the bottom of the memory left to the module's own static data. */
export const RESERVED_BYTES = 65536;
const PAGE = 65536;
const MAX_PAGES = 65536;

let loaded: Promise<{ module: WebAssembly.Module; variant: 'relaxed' | 'simd' } | null> | null = null;

/** Compile the kernel once per process: relaxed SIMD where the engine validates it, else SIMD128, else null. */
export function loadWord2VecModule(): Promise<{ module: WebAssembly.Module; variant: 'relaxed' | 'simd' } | null> {
  loaded ??= (async () => {
    const v8 = await import('node:v8');
    v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
    for (const variant of ['relaxed', 'simd'] as const) {
      const url = new URL(`../../wasm/word2vec-${variant}.wasm`, import.meta.url);
      let bytes: Uint8Array<ArrayBuffer>;
      try {
        bytes = new Uint8Array(await readFile(url));
      } catch {
        throw new Error(`tslm: word2vec kernel ${url.pathname} is missing; run \`npm run build\``);
      }
      if (WebAssembly.validate(bytes)) return { module: await WebAssembly.compile(bytes), variant };
    }
    return null;
  })();
  return loaded;
}

/** Bump allocation of 64-byte-aligned regions above RESERVED_BYTES. */
export class W2VLayout {
  end = RESERVED_BYTES;
  take(bytes: number): number {
    const at = this.end;
    this.end = Math.ceil((at + Math.max(bytes, 1)) / 64) * 64;
    return at;
  }
}

/** A shared memory big enough for `layout`, with the sigmoid and loss tables written in. */
export function w2vMemory(layout: W2VLayout): WebAssembly.Memory {
  const pages = Math.ceil(layout.end / PAGE);
  if (pages > MAX_PAGES) throw new ClassicInputError(`word2vec: the weights need ${(layout.end / 2 ** 30).toFixed(1)} GiB, over WebAssembly's 4 GiB (lower size, the vocabulary or hotWords)`);
  return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
}

export function writeTables(memory: WebAssembly.Memory, expAt: number, lossAt: number): void {
  new Float32Array(memory.buffer, expAt, expTable.length).set(expTable);
  new Float64Array(memory.buffer, lossAt, lossTable.length).set(lossTable);
}

interface Exports {
  setup(dim: number, syn0: number, syn1: number, syn1neg: number, table: number, tableSize: number, codes: number, points: number,
    codeLen: number, expTab: number, lossTab: number, neu1: number, neu1e: number, sen: number, negs: number): void;
  setRng(s: number): void;
  getRng(): number;
  takePairs(): number;
  heapBase(): number;
  drawBlock(): number;
  setHot(n: number, at: number): void;
  syncHot(): void;
  trainSentence(n: number, alpha: number, window: number, negative: number, hs: number, cbow: number, sharedNegatives: number): number;
}

/** One thread's instance of the kernel over the shared memory. */
export class W2VWasmThread {
  private ex: Exports;
  private sen: Int32Array;
  private hot: boolean;
  private sinceSync = 0;

  constructor(private sh: W2VShared, tid: number) {
    const w: W2VWasmState = sh.wasm!;
    const inst = new WebAssembly.Instance(w.module, { env: { memory: w.memory } });
    this.ex = inst.exports as unknown as Exports;
    if (this.ex.drawBlock() !== DRAW_BLOCK) throw new Error('tslm: word2vec kernel module and loader disagree on DRAW_BLOCK; rebuild');
    if (this.ex.heapBase() > RESERVED_BYTES) throw new Error(`tslm: word2vec kernel's static data (${this.ex.heapBase()} bytes) exceeds the reserved ${RESERVED_BYTES}`);
    const s = w.scratch[tid];
    const off = (a: { byteOffset: number } | null): number => (a ? a.byteOffset : 0);
    this.ex.setup(sh.dim, off(sh.syn0), off(sh.syn1), off(sh.syn1neg), off(sh.table), sh.table ? sh.table.length >> 1 : 0,
      off(sh.codes), off(sh.points), off(sh.codeLen), w.expTable, w.lossTable, s.neu1, s.neu1e, s.sen, s.negs);
    this.sen = new Int32Array(w.memory.buffer, s.sen, s.senCap);
    this.hot = s.hot !== 0 && w.hotWords > 0;
    if (this.hot) {
      this.ex.setHot(w.hotWords, s.hot);
      this.syncHot();   // copies := shared rows
    }
  }

  /** Merge this thread's hot rows into the shared ones (one thread at a time: no merged update is lost). */
  syncHot(): void {
    const lock = this.sh.wasm!.hotLock;
    while (Atomics.compareExchange(lock, 0, 0, 1) !== 0);
    try {
      this.ex.syncHot();
    } finally {
      Atomics.store(lock, 0, 0);
    }
    this.sinceSync = 0;
  }

  /** As trainRange (word2vec-kernel.ts): train on sentences [from, to) once. With hot rows the
   *  copies are refreshed from the shared rows first (the other threads have merged since this
   *  thread's last range: without it a thread idle for an epoch would start from old copies);
   *  `refresh` false skips that (tests only). */
  trainRange(p: W2VParams, tid: number, from: number, to: number, rng: W2VRng, refresh = true): RangeResult {
    const { corpus, sentStarts, keep, progress } = this.sh;
    const ex = this.ex, sen = this.sen;
    const hs = p.hs ? 1 : 0, cbow = p.cbow ? 1 : 0, sharedNeg = p.sharedNegatives ? 1 : 0;
    const lr = new LearningRate(p, progress, tid);
    let loss = 0;
    ex.takePairs();
    if (this.hot && refresh) this.syncHot();
    for (let s = from; s < to; s++) {
      const a = sentStarts[s], b = sentStarts[s + 1];
      if (b - a > sen.length) throw new Error(`word2vec: sentence ${s} has ${b - a} words, over the kernel's buffer of ${sen.length}`);
      const n = subsample(corpus, a, b, keep, rng, sen);
      lr.advance(b - a);
      if (this.hot && (this.sinceSync += b - a) >= this.sh.wasm!.syncWords) this.syncHot();
      if (n === 0) continue;
      ex.setRng(rng.s);
      loss += ex.trainSentence(n, lr.alpha, p.window, p.negative, hs, cbow, sharedNeg);
      rng.s = ex.getRng() >>> 0;
    }
    lr.flush();
    if (this.hot) this.syncHot();
    return { loss, pairs: ex.takePairs(), words: lr.words };
  }
}
