// The backend and LLaMA-2's tokenizer and token vocabulary, as the structured-generation tests
// that run a real vocabulary set them up (one thread; shut down after the file's tests).
import { before, after } from 'node:test';
import { init, shutdown } from '../../src/index.js';
import { HFTokenizer } from '../../src/tokenizers/hf.js';
import { TokenVocab } from '../../src/structured/index.js';
import { llama2Json } from '../tokenizers/real_vocabs.js';

/** Registers the file's before/after hooks; the fields are set once `before` has run. */
export function llama2Setup(): { tok: HFTokenizer; vocab: TokenVocab } {
  const out = {} as { tok: HFTokenizer; vocab: TokenVocab };
  before(async () => {
    await init({ threads: 1 });
    out.tok = new HFTokenizer(await llama2Json());
    out.vocab = TokenVocab.fromTokenizer(out.tok);
  });
  after(async () => { await shutdown(); });
  return out;
}
