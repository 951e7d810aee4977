// The ceiling of one core's 128-bit WebAssembly multiply-adds on this engine: how many
// multiply-adds per second a loop of each operation reaches with 8 independent chains and its
// operands in L1 (bench/simd_ceiling/ceiling.ts), by CPU time, best of 5; and the x86 instructions
// V8 emits for the 8-bit dot with accumulation (one vpdpbusd where it uses AVX-VNNI, or a
// sequence). It bounds what an integer GEMM could gain over the f32 one: prefill (issue #15).
// Usage: node bench/simd_ceiling.mjs   (needs the devDependency assemblyscript; builds into a temp folder)
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const MACS = { fma: 32, dot16: 64, dot8: 128, dot8w: 128, q4tile: 64 * 128 };

if (process.argv[2] === '--child') {
  // Runs the loops (in a child with the relaxed-SIMD flag, as the kernels' loader sets it).
  const m = await WebAssembly.instantiate(readFileSync(process.argv[3]), { env: { abort() {} } });
  const e = m.instance.exports;
  new Uint8Array(e.memory.buffer, 0, 512).forEach((_, i, a) => { a[i] = (i * 7) % 100; });
  new Float32Array(e.memory.buffer, 1024, 128).fill(0.999); // normal floats (denormals are slow)
  new Uint8Array(e.memory.buffer, 32768, 24576).forEach((_, i, a) => { a[i] = (i * 5) % 16; });
  const n = Number(process.argv[4] ?? 2e7), best = {};
  for (let r = 0; r < 5; r++) {
    for (const k of Object.keys(MACS)) {
      // q4tile: rows of 64 blocks (a 2,048-wide row), its data at 32 KiB (bytes 0…15 in memory).
      const base = k === 'fma' ? 1024 : k === 'q4tile' ? 32768 : 0;
      const call = (m) => (k === 'q4tile' ? e[k](base, 64, Math.ceil(m / 64)) : e[k](base, m));
      call(1000);
      const c0 = process.cpuUsage();
      call(n);
      const c = process.cpuUsage(c0), s = (c.user + c.system) / 1e6;
      const calls = k === 'q4tile' ? Math.ceil(n / 64) : n;
      best[k] = Math.max(best[k] ?? 0, (MACS[k] * calls) / s / 1e9);
    }
  }
  console.log(JSON.stringify(best));
  process.exit(0);
}

const dir = mkdtempSync(path.join(tmpdir(), 'tslm-simd-'));
try {
  const wasm = path.join(dir, 'ceiling.wasm');
  const asc = path.join(here, '..', 'node_modules', 'assemblyscript', 'bin', 'asc.js');
  execFileSync(process.execPath, [asc, path.join(here, 'simd_ceiling', 'ceiling.ts'), '--enable', 'simd,relaxed-simd', '-O3', '--runtime', 'stub', '--initialMemory', '1', '-o', wasm], { stdio: 'inherit' });
  const flags = ['--experimental-wasm-relaxed-simd'];
  const run = spawnSync(process.execPath, [...flags, fileURLToPath(import.meta.url), '--child', wasm], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(run.stderr);
  const best = JSON.parse(run.stdout.trim().split('\n').pop());
  // The instructions of the dot8 loop (function index 2) as V8's optimising compiler emits them.
  const code = spawnSync(process.execPath, [...flags, '--no-liftoff', '--print-wasm-code', fileURLToPath(import.meta.url), '--child', wasm, '2000'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const fn = code.stdout.split('--- WebAssembly code ---').find((s) => /\nindex: 2\n/.test(s)) ?? '';
  const ops = [...new Set([...fn.matchAll(/\s(vpdpbusds?|v?pmaddubsw|v?pmaddwd|v?paddd)\s/g)].map((m) => m[1]))];
  console.log(`128-bit WebAssembly multiply-adds, one thread, 8 chains in L1, best of 5 by CPU time (node ${process.versions.node}, V8 ${process.versions.v8}; ${cpus()[0].model})`);
  const f = best.fma;
  const line = (k, what) => console.log(`  ${k.padEnd(6)} ${best[k].toFixed(1).padStart(6)} GMAC/s  ${(best[k] / f).toFixed(2)}× fma   ${what}`);
  line('fma', 'f32x4.relaxed_madd (vfmadd231ps)');
  line('dot16', 'i32x4.dot_i16x8_s + i32x4.add');
  line('dot8', `i32x4.relaxed_dot_i8x16_i7x16_add_s, emitted as: ${ops.join(', ') || '(not found)'}`);
  line('dot8w', 'i16x8.relaxed_dot_i8x16_i7x16_s into i16, widened every 4');
  line('q4tile', '4-bit weights (unpacked) × 4 rows of 8-bit x, per block of 32: dots, widen, transpose, offset, convert, scale');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
