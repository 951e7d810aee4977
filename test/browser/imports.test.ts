// The browser entry point must not reach a Node.js module: one stray `import … from 'node:fs'`
// anywhere in its graph and the page (and the playground's in-browser mode) fails to load.
// Walks the static imports of the compiled dist/src/browser.js (dynamic import()s are how the
// backend reaches Node modules when it runs in Node, and are allowed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { builtinModules } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { VENDOR_MODULES, rewriteBareImports } from '../../src/serve/static.js';

const distSrc = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');

/** Static import/export-from specifiers of a compiled module (comments stripped first). */
function staticImports(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out: string[] = [];
  const re = /(?:^|[;}\n])\s*(?:import|export)\s*(?:type\s+)?(?:[\w*${}\s,]+?\s*from\s*)?(['"])([^'"]+)\1/g;
  for (const m of code.matchAll(re)) out.push(m[2]);
  return out;
}

function graph(entry: string): { files: Set<string>; bare: Map<string, string[]> } {
  const files = new Set<string>();
  const bare = new Map<string, string[]>();
  const todo = [entry];
  while (todo.length) {
    const f = todo.pop()!;
    if (files.has(f)) continue;
    files.add(f);
    for (const spec of staticImports(readFileSync(f, 'utf8'))) {
      if (spec.startsWith('.') || spec.startsWith('/')) todo.push(path.resolve(path.dirname(f), spec));
      else bare.set(spec, [...(bare.get(spec) ?? []), path.relative(distSrc, f)]);
    }
  }
  return { files, bare };
}

test('the import graph of browser.js has no Node.js module and only vendor modules the server maps', () => {
  const { files, bare } = graph(path.join(distSrc, 'browser.js'));
  assert.ok(files.size > 30, `walked only ${files.size} modules: is the import scanner broken?`);
  const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
  for (const [spec, from] of bare) {
    assert.ok(!spec.startsWith('node:') && !builtins.has(spec), `${spec} (a Node.js module) is imported by ${from.join(', ')}`);
    assert.ok(spec in VENDOR_MODULES, `${spec} (imported by ${from.join(', ')}) is not in VENDOR_MODULES of src/serve/static.ts, so the playground cannot serve it`);
  }
  // The loaders that read files stay out of the graph (io/bytes.js is reachable, through the GGUF
  // writer, but imports node:fs/promises only when one of its file helpers runs).
  for (const nodeOnly of ['tokenizers/load.js', 'io/safetensors.js', 'io/model.js', 'io/hf.js']) {
    assert.ok(!files.has(path.join(distSrc, nodeOnly)), `${nodeOnly} (Node only) is reachable from browser.js`);
  }
});

test('the scanner sees multi-line, side-effect and export-from imports, and not dynamic ones', () => {
  const src = "import {\n  a,\n  b,\n} from './x.js';\nimport './side.js';\nexport * from \"./y.js\";\nexport { c } from './z.js';\nconst v = await import('node:v8');\n// import { q } from 'node:fs';\n";
  assert.deepEqual(staticImports(src), ['./x.js', './side.js', './y.js', './z.js']);
});

test('bare vendor specifiers are rewritten to the URLs the server serves them at', () => {
  const src = "import { Template } from '@huggingface/jinja';\nconst m = await import(\"@huggingface/jinja\");\nimport x from '@huggingface/jinja-other';\n";
  assert.equal(
    rewriteBareImports(src),
    "import { Template } from '/vendor/@huggingface/jinja/index.js';\nconst m = await import(\"/vendor/@huggingface/jinja/index.js\");\nimport x from '@huggingface/jinja-other';\n",
  );
});
