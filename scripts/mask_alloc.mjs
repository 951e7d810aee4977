// Bytes the token masks allocate on the JS heap, by function: V8's sampling heap profiler (objects
// later collected included) over the masks of a built checkout along corpus files' instances, as
// `tslm bench structured --corpus` runs them (fresh grammar and matcher per schema, LLaMA-2 32K),
// attributed to the frames under TokenMatcher.mask. Load does not change these counts (sampled:
// about ±2% between runs).
//
//   node scripts/mask_alloc.mjs <checkout> <corpus dir> <every k | a,b,c> [top]
import { Session } from 'node:inspector/promises';
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [root, dir, which, top = '20'] = process.argv.slice(2);
if (!root || !dir || !which) { console.error('usage: node scripts/mask_alloc.mjs <checkout> <corpus dir> <every k | a,b,c> [top]'); process.exit(2); }
const at = (p) => pathToFileURL(join(resolve(root), 'dist', p)).href;
const B = await import(at('bench/structured_corpus.js'));
const { HFTokenizer } = await import(at('src/tokenizers/hf.js'));
const S = await import(at('src/structured/index.js'));
const { llama2Json } = await import(at('test/tokenizers/real_vocabs.js'));
await (await import(at('src/index.js'))).init({ threads: 1 });
const tok = new HFTokenizer(await llama2Json());
const vocab = S.TokenVocab.fromTokenizer(tok);
const all = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
const files = /^\d+$/.test(which) ? all.filter((_, i) => i % +which === 0) : which.split(',');
const session = new Session();
session.connect();
await session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
let masks = 0;
for (const f of files) masks += B.runCorpusFile(join(dir, f), tok, vocab, () => {}, () => null).masks.length;
const { profile } = await session.post('HeapProfiler.stopSampling');
const self = new Map();
let sum = 0;
const walk = (x, under) => {
  const name = `${x.callFrame.functionName || '(anonymous)'} ${x.callFrame.url.split('/').pop()}:${x.callFrame.lineNumber + 1}`;
  const u = under || (x.callFrame.functionName === 'mask' && x.callFrame.url.endsWith('/matcher.js'));
  if (u && x.selfSize) { sum += x.selfSize; self.set(name, (self.get(name) ?? 0) + x.selfSize); }
  for (const c of x.children ?? []) walk(c, u);
};
walk(profile.head, false);
console.log(`${files.length} schemas, ${masks} masks: ${(sum / 2 ** 20).toFixed(1)} MB of JS heap allocated under TokenMatcher.mask, ${(sum / masks).toFixed(0)} B per mask`);
for (const [k, v] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, +top)) console.log(`  ${(100 * v / sum).toFixed(1).padStart(5)}%  ${(v / 2 ** 20).toFixed(1).padStart(7)} MB  ${k}`);
