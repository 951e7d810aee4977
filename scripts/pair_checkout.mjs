// What scripts/compile_pair.mjs and scripts/mask_pair.mjs share: one built checkout's structured
// generation loaded for timing (its modules, the LLaMA-2 32K vocabulary read by its test helpers,
// one thread, the bench's warm-up), and the corpus files a run looks at.
import { readFileSync, existsSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** The checkout at root (built: dist/): its structured module S, tokenizer and token vocabulary. */
export async function loadCheckout(root) {
  const at = (p) => pathToFileURL(join(resolve(root), 'dist', p)).href;
  const { HFTokenizer } = await import(at('src/tokenizers/hf.js'));
  const S = await import(at('src/structured/index.js'));
  const { llama2Json } = await import(at('test/tokenizers/real_vocabs.js'));
  const { warmUp } = await import(at('bench/structured.js'));
  await (await import(at('src/index.js'))).init({ threads: 1 });
  const tok = new HFTokenizer(await llama2Json());
  const vocab = S.TokenVocab.fromTokenizer(tok);
  warmUp();
  return { S, tok, vocab };
}

/** The files named in `list` (comma-separated), or those of a `--record` JSONL file that `keep` accepts. */
export function schemaFiles(list, keep) {
  return existsSync(list)
    ? readFileSync(list, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter(keep).map((r) => r.file)
    : list.split(',');
}

/** A corpus file's document: { schema, tests } or a bare schema. */
export function readCorpusFile(dir, f) {
  const doc = JSON.parse(readFileSync(join(dir, f), 'utf8'));
  const schema = doc && typeof doc === 'object' && 'schema' in doc ? doc.schema : doc;
  return { schema, tests: Array.isArray(doc?.tests) ? doc.tests : [] };
}
