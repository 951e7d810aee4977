// Builds the WebAssembly kernels from AssemblyScript sources with the npm-installed compiler.
// Two builds of the same source: one using relaxed SIMD (fused multiply-add), one plain SIMD128
// for engines without relaxed SIMD. The loader picks the first one the engine validates.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { writeDispatch } from './kernel-dispatch.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const asc = path.join(root, 'node_modules', 'assemblyscript', 'bin', 'asc.js');
const entry = path.join(root, 'src', 'backend', 'wasm', 'as', 'index.ts');
const outDir = path.join(root, 'dist', 'wasm');
mkdirSync(outDir, { recursive: true });
// The kernel-list walker's dispatch (wasm/as/dispatch.ts), generated from KERNEL_ARGS.
writeDispatch(root);

const common = [
  entry, '--runtime', 'stub', '-O3', '--noAssert', '--importMemory', '--sharedMemory',
  '--initialMemory', '64', '--maximumMemory', '65536', '--memoryBase', '65536',
];
const builds = [
  { out: 'kernels-relaxed.wasm', features: 'simd,threads,relaxed-simd' },
  { out: 'kernels-simd.wasm', features: 'simd,threads' },
];
for (const b of builds) {
  execFileSync(process.execPath, [asc, ...common, '--enable', b.features, '-o', path.join(outDir, b.out)], {
    stdio: 'inherit',
  });
  console.log(`built dist/wasm/${b.out}`);
}

// The word2vec kernel (src/classic/wasm/): a separate small module over its own shared memory,
// in the same two variants.
const w2vEntry = path.join(root, 'src', 'classic', 'wasm', 'word2vec.ts');
const w2vCommon = [
  w2vEntry, '--runtime', 'stub', '-O3', '--noAssert', '--importMemory', '--sharedMemory',
  '--initialMemory', '1', '--maximumMemory', '65536',
];
for (const b of [
  { out: 'word2vec-relaxed.wasm', features: 'simd,threads,relaxed-simd' },
  { out: 'word2vec-simd.wasm', features: 'simd,threads' },
]) {
  execFileSync(process.execPath, [asc, ...w2vCommon, '--enable', b.features, '-o', path.join(outDir, b.out)], {
    stdio: 'inherit',
  });
  console.log(`built dist/wasm/${b.out}`);
}
