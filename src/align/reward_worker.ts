// The worker thread that runs a user's reward module (rewards.ts ModuleReward): imports the
// module, says which functions it found, then scores batches. Per item it posts a number, a
// description of a value that is not a number, or the error thrown, so the main thread can
// time each call and stop this worker (terminate) when one hangs.
import { parentPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';

export type WorkerMessage =
  | { type: 'ready'; reward: boolean; batch: boolean; exports: string }
  | { type: 'load-error'; message: string }
  | { type: 'item'; i: number; value?: number; bad?: string; error?: string }
  | { type: 'batch'; values?: Array<{ value?: number; bad?: string }>; bad?: string; error?: string };

type Fn = (x: unknown) => unknown;
const post = (m: WorkerMessage) => parentPort!.postMessage(m);
const fn = (o: unknown, key: string): Fn | undefined => {
  const f = o != null && (typeof o === 'object' || typeof o === 'function') ? (o as Record<string, unknown>)[key] : undefined;
  return typeof f === 'function' ? (f as Fn) : undefined;
};
const errorText = (e: unknown): string => (e instanceof Error ? `${e.name}: ${e.message}` : `threw ${String(e)}`);
const valueOf = (v: unknown): { value?: number; bad?: string } =>
  typeof v === 'number' ? { value: v } : { bad: `returned ${v === null ? 'null' : typeof v}${typeof v === 'string' ? ` '${v.slice(0, 40)}'` : ''}` };

let reward: Fn | undefined;
let batch: Fn | undefined;
try {
  const mod = (await import(pathToFileURL((workerData as { file: string }).file).href)) as Record<string, unknown>;
  // ES module: `export default function` or `export function reward`; CommonJS:
  // `module.exports = function` or `module.exports = { reward, rewardBatch }` (then `default` is that object).
  reward = (typeof mod.default === 'function' ? (mod.default as Fn) : undefined) ?? fn(mod, 'reward') ?? fn(mod.default, 'reward');
  batch = fn(mod, 'rewardBatch') ?? fn(mod.default, 'rewardBatch');
  const names = Object.keys(mod).map((k) => `${k} (${typeof mod[k]})`);
  post({ type: 'ready', reward: !!reward, batch: !!batch, exports: names.length ? names.join(', ') : 'nothing' });
} catch (e) {
  post({ type: 'load-error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
}

parentPort!.on('message', async (ctxs: unknown[]) => {
  if (batch) {
    try {
      const v = await batch(ctxs);
      post(Array.isArray(v) ? { type: 'batch', values: v.map(valueOf) } : { type: 'batch', bad: valueOf(v).bad ?? 'returned a number' });
    } catch (e) {
      post({ type: 'batch', error: errorText(e) });
    }
    return;
  }
  for (let i = 0; i < ctxs.length; i++) {
    try {
      post({ type: 'item', i, ...valueOf(await reward!(ctxs[i])) });
    } catch (e) {
      post({ type: 'item', i, error: errorText(e) });
    }
  }
});
