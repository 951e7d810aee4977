// Fused attention (attention_fwd/_bwd kernels) against the composite (matmul + mask + softmax +
// matmul): time per call and peak heap, on 1 and 2 threads.
//   train:  B=8, H=6, T=S=256, D=48, causal: forward, and forward + backward
//   decode: B=1, H=6, T=1, S=256 (the last 256 positions of a 512-position KV cache view), forward
// Each (case, implementation, threads) runs in a child process so that heapStats().peak (a
// high-water mark) measures that configuration alone; peak is the rise above the inputs.
// Usage: node bench/attention_kernel.mjs [--threads 1,2] [--json]   (after `npm run build`)
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const argv = process.argv.slice(2);
const CASES = {
  train: { B: 8, H: 6, T: 256, S: 256, D: 48, cache: 0, grad: true },
  decode: { B: 1, H: 6, T: 1, S: 256, D: 48, cache: 512, grad: false },
};

if (argv[0] === '--child') {
  const [, caseName, impl, nt] = argv;
  const T = await import('../dist/src/index.js');
  await T.init({ threads: Number(nt) });
  const c = CASES[caseName];
  const fn = impl === 'fused' ? T.attention : T.attentionComposite;
  const g = new T.Generator(1);
  const rnd = (shape) => T.randn(shape, { generator: g }).keep();
  const q = rnd([c.B, c.H, c.T, c.D]).requiresGrad_(c.grad);
  let k, v;
  if (c.cache) {
    // A (B, H, maxLen, D) cache holding 512 positions; attend to the first S (a strided view).
    const kc = rnd([c.B, c.H, c.cache, c.D]), vc = rnd([c.B, c.H, c.cache, c.D]);
    k = T.slice(kc, 2, 0, c.S); v = T.slice(vc, 2, 0, c.S);
  } else {
    k = rnd([c.B, c.H, c.S, c.D]).requiresGrad_(c.grad); v = rnd([c.B, c.H, c.S, c.D]).requiresGrad_(c.grad);
  }
  const up = rnd([c.B, c.H, c.T, c.D]);
  const base = T.heapStats().inUse;
  const fwd = () => T.scope(() => { T.noGrad(() => fn(q, k, v, { causal: true })); });
  const both = () => T.scope(() => {
    for (const x of [q, k, v]) { x.grad?.dispose(); x.grad = null; }
    fn(q, k, v, { causal: true }).backward(up);
  });
  const time = (f) => {
    for (let i = 0; i < 3; i++) f();
    const times = [];
    const t0 = performance.now();
    while (performance.now() - t0 < 1500 || times.length < 5) {
      const s = performance.now(); f(); times.push(performance.now() - s);
    }
    times.sort((a, b) => a - b);
    return { median: times[times.length >> 1], best: times[0] };
  };
  const res = { fwd: time(fwd) };
  if (c.grad) res.fwdbwd = time(both);
  res.peakBytes = T.heapStats().peak - base;
  await T.shutdown();
  console.log(JSON.stringify(res));
} else {
  const tIdx = argv.indexOf('--threads');
  const threads = tIdx >= 0 ? argv[tIdx + 1].split(',').map(Number) : [1, 2];
  const json = argv.includes('--json');
  const me = fileURLToPath(import.meta.url);
  const rows = [];
  for (const caseName of Object.keys(CASES)) for (const nt of threads) for (const impl of ['composite', 'fused']) {
    const r = spawnSync(process.execPath, [me, '--child', caseName, impl, String(nt)], { encoding: 'utf8' });
    if (r.status !== 0) { console.error(r.stderr); process.exit(1); }
    const res = JSON.parse(r.stdout.trim().split('\n').pop());
    rows.push({ case: caseName, impl, threads: nt, ...res });
    if (!json) {
      const f = (t) => (t ? `${t.median.toFixed(2).padStart(8)} ms (best ${t.best.toFixed(2)})` : ''.padStart(8));
      console.log(`${caseName.padEnd(7)} ${impl.padEnd(9)} t=${nt}  fwd ${f(res.fwd)}${res.fwdbwd ? `  fwd+bwd ${f(res.fwdbwd)}` : ''}  peak +${(res.peakBytes / 2 ** 20).toFixed(2)} MiB`);
    }
  }
  if (json) console.log(JSON.stringify(rows, null, 2));
}
