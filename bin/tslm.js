#!/usr/bin/env node
// Entry point of the `tslm` command; the implementation is compiled to dist/ by `npm run build`.
let mod;
try {
  mod = await import('../dist/src/cli/main.js');
} catch (e) {
  if (e && e.code === 'ERR_MODULE_NOT_FOUND') {
    console.error('tslm: the package is not built; run `npm run build` (or `npm install`) in its directory first');
    process.exit(1);
  }
  throw e;
}
process.exitCode = await mod.main(process.argv.slice(2));
