// Structured generation, written as MaskBench does: for a set of realistic JSON Schemas and one
// valid instance each, compile time per schema and the time of every token mask along the
// instance's tokens (cold caches: a fresh matcher per schema), with the LLaMA-2 32K
// (SentencePiece-style byte fallback) and LLaMA-3 128K (byte-level BPE) vocabularies, after an
// untimed JIT warm-up on a small vocabulary of its own (see warmUp). XGrammar
// (npm @mlc-ai/web-xgrammar, its WebAssembly build) is measured beside ours in the same run when
// it loads in Node.
//
// What is shared, as in a server that keeps its tokenizer: the TokenVocab of each vocabulary is
// shared by all schemas — its trie, plain-text tables and the per-alphabet tables of the built-in
// string formats, built once by TokenVocab.fromTokenizer and timed apart as "vocabulary
// preparation", and the per-alphabet tables of other patterns, which it caches on first use.
// Nothing else is: every schema gets a fresh grammar, automaton and matcher, so its parser states,
// transitions, level analyses and masks are built inside the timed masks. Outside the timed
// regions the bench settles the heap (full GCs) and warms the JIT up after loading each tokenizer,
// and idles briefly before each schema's timed pass, so that background JIT and GC work started
// by the untimed compile runs does not land inside mask timings.
import { createRequire } from 'node:module';
import v8 from 'node:v8';
import vm from 'node:vm';
import { HFTokenizer } from '../src/tokenizers/hf.js';
import { compileJsonSchema, TokenVocab, TokenMatcher, DEAD } from '../src/structured/index.js';
import { KeyScan, repeatedKeyTokens, keyTokens } from '../src/structured/keys.js';
import type { JsonSchema } from '../src/structured/index.js';
import { llama2Json, llama3Json } from '../test/tokenizers/real_vocabs.js';

export interface Row { task: string; metric: string; tslm: number; peer: number | null; unit: string; note: string }

const require = createRequire(import.meta.url);

export const BENCH_SCHEMAS: Array<{ name: string; schema: JsonSchema; instance: unknown }> = [
  {
    name: 'person',
    schema: { type: 'object', properties: { name: { type: 'string', maxLength: 40 }, age: { type: 'integer', minimum: 0, maximum: 130 }, email: { type: 'string', format: 'email' }, phones: { type: 'array', items: { type: 'string', pattern: '^\\+?[0-9 -]{6,15}$' }, maxItems: 3 } }, required: ['name', 'age'], additionalProperties: false },
    instance: { name: 'Ada Lovelace', age: 36, email: 'ada@analytical.org', phones: ['+44 20 7946 0958'] },
  },
  {
    name: 'product',
    schema: { type: 'object', properties: { id: { type: 'string', format: 'uuid' }, title: { type: 'string' }, price: { type: 'number', minimum: 0 }, currency: { enum: ['USD', 'EUR', 'GBP'] }, tags: { type: 'array', items: { type: 'string' } }, inStock: { type: 'boolean' } }, required: ['id', 'title', 'price', 'currency'] },
    instance: { id: '1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed', title: 'Noise-cancelling headphones, wireless', price: 199.99, currency: 'EUR', tags: ['audio', 'bluetooth', 'travel'], inStock: true },
  },
  {
    name: 'event',
    schema: { type: 'object', properties: { summary: { type: 'string' }, start: { type: 'string', format: 'date-time' }, end: { type: 'string', format: 'date-time' }, location: { type: ['string', 'null'] }, attendees: { type: 'array', items: { type: 'object', properties: { email: { type: 'string', format: 'email' }, optional: { type: 'boolean' } }, required: ['email'] } } }, required: ['summary', 'start', 'end'] },
    instance: { summary: 'Quarterly planning', start: '2024-03-14T09:30:00Z', end: '2024-03-14T11:00:00+01:00', location: null, attendees: [{ email: 'kim@example.com' }, { email: 'lee@example.com', optional: true }] },
  },
  {
    name: 'order',
    schema: { $defs: { item: { type: 'object', properties: { sku: { type: 'string', pattern: '^[A-Z]{3}-\\d{4}$' }, qty: { type: 'integer', minimum: 1, maximum: 99 }, unitPrice: { type: 'number' } }, required: ['sku', 'qty'], additionalProperties: false } }, type: 'object', properties: { orderId: { type: 'integer' }, customer: { type: 'object', properties: { name: { type: 'string' }, address: { type: 'object', properties: { street: { type: 'string' }, city: { type: 'string' }, zip: { type: 'string', pattern: '^\\d{5}$' } }, required: ['city'] } }, required: ['name'] }, items: { type: 'array', items: { $ref: '#/$defs/item' }, minItems: 1 }, date: { type: 'string', format: 'date' } }, required: ['orderId', 'items'] },
    instance: { orderId: 90210, customer: { name: 'Grace Hopper', address: { street: '1 Navy Way', city: 'Arlington', zip: '22202' } }, items: [{ sku: 'ABC-1234', qty: 2, unitPrice: 9.5 }, { sku: 'XYZ-0001', qty: 1 }], date: '2024-02-28' },
  },
  {
    name: 'classification',
    schema: { type: 'object', properties: { label: { enum: ['positive', 'negative', 'neutral', 'mixed'] }, confidence: { type: 'number', minimum: 0, maximum: 1 }, reasons: { type: 'array', items: { type: 'string', maxLength: 80 }, maxItems: 3 } }, required: ['label', 'confidence'], additionalProperties: false },
    instance: { label: 'mixed', confidence: 0.73, reasons: ['praises the battery life', 'complains about the price'] },
  },
  {
    name: 'tool-call',
    schema: { anyOf: [
      { type: 'object', properties: { name: { const: 'search_web' }, arguments: { type: 'object', properties: { query: { type: 'string' }, max_results: { type: 'integer', minimum: 1, maximum: 20 } }, required: ['query'], additionalProperties: false } }, required: ['name', 'arguments'], additionalProperties: false },
      { type: 'object', properties: { name: { const: 'get_weather' }, arguments: { type: 'object', properties: { city: { type: 'string' }, unit: { enum: ['celsius', 'fahrenheit'] } }, required: ['city', 'unit'], additionalProperties: false } }, required: ['name', 'arguments'], additionalProperties: false },
    ] },
    instance: { name: 'get_weather', arguments: { city: 'São Paulo', unit: 'celsius' } },
  },
  {
    name: 'tree (recursive $ref)',
    schema: { $defs: { node: { type: 'object', properties: { name: { type: 'string' }, children: { type: 'array', items: { $ref: '#/$defs/node' } } }, required: ['name'] } }, $ref: '#/$defs/node' },
    instance: { name: 'root', children: [{ name: 'src', children: [{ name: 'index.ts' }, { name: 'cli', children: [{ name: 'main.ts' }] }] }, { name: 'README.md' }] },
  },
  {
    name: 'issue',
    schema: { type: 'object', properties: { title: { type: 'string', minLength: 1, maxLength: 120 }, body: { type: 'string' }, labels: { type: 'array', items: { enum: ['bug', 'feature', 'docs', 'question'] }, maxItems: 4 }, assignee: { anyOf: [{ type: 'string' }, { type: 'null' }] }, priority: { type: 'integer', minimum: 1, maximum: 5 }, created: { type: 'string', format: 'date-time' } }, required: ['title', 'labels'] },
    instance: { title: 'Crash when the tokenizer file is missing', body: 'Steps:\n1. run `tslm generate`\n2. see "ENOENT"\n\nExpected a clear error.', labels: ['bug'], assignee: null, priority: 2, created: '2024-05-01T12:00:00Z' },
  },
];

let gcFn: (() => void) | null = null;

/** A full garbage collection (global.gc under --expose-gc, else the same function through V8's flag), outside the timed regions. */
function settleHeap(): void {
  if (!gcFn) {
    gcFn = (globalThis as { gc?: () => void }).gc ?? null;
    if (!gcFn) { v8.setFlagsFromString('--expose-gc'); gcFn = vm.runInNewContext('gc') as () => void; }
  }
  gcFn();
}

const idle = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function stats(xs: number[]): { mean: number; p50: number; p99: number } {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { mean: xs.reduce((a, b) => a + b, 0) / xs.length, p50: q(0.5), p99: q(0.99) };
}

interface XgrPeer { compile(schema: JsonSchema): Promise<{ ms: number; run(ids: number[]): Promise<number[]> }> }

async function xgrammarPeer(tok: HFTokenizer, byteLevel: boolean): Promise<XgrPeer | null> {
  try {
    const xgr = require('@mlc-ai/web-xgrammar');
    const X = xgr.default ?? xgr;
    const vocabStrs = Array.from({ length: tok.vocabSize }, (_, i) => tok.idToToken(i) ?? '');
    const info = await X.TokenizerInfo.createTokenizerInfo(vocabStrs, byteLevel ? 'byte_level' : 'byte_fallback', false, tok.vocabSize, tok.eosId ?? undefined);
    const compiler = await X.GrammarCompiler.createGrammarCompiler(info, false);
    return {
      async compile(schema: JsonSchema) {
        const t0 = performance.now();
        const cg = await compiler.compileJSONSchema(JSON.stringify(schema), false, undefined, [',', ':'], true);
        const ms = performance.now() - t0;
        return {
          ms,
          async run(ids: number[]) {
            const m = await X.GrammarMatcher.createGrammarMatcher(cg);
            const times: number[] = [];
            for (const id of ids) {
              const a = performance.now();
              await m.getNextTokenBitmask();
              times.push((performance.now() - a) * 1000);
              if (!m.acceptToken(id)) break;
            }
            m.dispose();
            return times;
          },
        };
      },
    };
  } catch (e) {
    return null;
  }
}

/**
 * JIT warm-up, untimed: every schema's masks along its instance over a small vocabulary of its
 * own (single bytes and pieces of the instances), so that the engine's code is compiled before the
 * first timed mask while the real vocabularies' tables (built once per vocabulary) stay cold.
 */
export function warmUp(): void {
  const enc = new TextEncoder();
  const pieces = new Set<string>();
  for (const { instance } of BENCH_SCHEMAS) for (const p of JSON.stringify(instance).match(/[A-Za-z]+|\d+|[^A-Za-z\d]{1,3}/g) ?? []) pieces.add(p);
  // Enough tokens under one prefix (and multi-byte, long and quoted ones) that every path of the
  // mask code runs here: large free subtrees, per-alphabet masks, tokens past 32 bytes. Otherwise
  // the first real vocabulary's masks run in code the engine has never seen (deopts, recompiles).
  const az = 'abcdefghijklmnopqrstuvwxyz';
  for (const x of az) for (const y of az) { pieces.add(x + y); pieces.add(' ' + x + y); pieces.add(x + y + '.'); pieces.add('"' + x + y); pieces.add(' "' + x + y); }
  // Undeclared keys that share a first letter with declared ones ("tz…" beside "title"): a
  // subtree past the declared names large enough for the free-key path of the walk.
  for (const x of 'abcdeilnopst') for (const y of az) for (const z of 'abcdef') pieces.add(x + 'z' + y + z);
  for (let k = 0; k < 100; k++) { pieces.add(String(k)); pieces.add(`${k}-`); pieces.add(`"${k}`); }
  for (const p of ['é', 'ã', 'São', ' Paulo', 'ção', '—', '日本', '😀', '":"', '","', '"}', '"]', '"},', '\\n', ' '.repeat(40), '-'.repeat(36), 'x'.repeat(33) + 'é']) pieces.add(p);
  const bytes: Uint8Array[] = Array.from({ length: 256 }, (_, b) => Uint8Array.of(b));
  for (const p of pieces) bytes.push(enc.encode(p));
  const vocab = new TokenVocab(bytes, []);
  for (let round = 0; round < 4; round++) {
    for (const { schema, instance } of BENCH_SCHEMAS) {
      // Compiles as many as the timed run does per schema (and more), so that the compiler's code
      // is optimised before it runs: an optimising compile on a background thread competes for
      // the cores with the timed masks.
      for (let k = 0; k < 8; k++) { const c = new TokenMatcher(compileJsonSchema(schema), vocab); c.mask(c.initial); }
      const m = new TokenMatcher(compileJsonSchema(schema), vocab);
      let s = m.initial;
      for (const b of enc.encode(JSON.stringify(instance))) { m.mask(s); s = m.advance(s, b); }
      warmKept = m;
    }
  }
}

/**
 * The last warm-up matcher, kept alive: a garbage collection that finds no live matcher drops the
 * hidden classes the optimised code was built for, and V8 deoptimises that code ('weak objects'),
 * to be recompiled inside the timed masks. (A server always has live matchers.)
 */
let warmKept: TokenMatcher | null = null;

export async function benchStructured(opts: { log?: (line: string) => void; warmUp?: boolean } = {}): Promise<Row[]> {
  const log = opts.log ?? (() => {});
  const rows: Row[] = [];
  const vocabs: Array<[string, () => Promise<HFTokenizer>, boolean]> = [
    ['LLaMA-2 32K', async () => new HFTokenizer(await llama2Json()), false],
    ['LLaMA-3 128K', async () => new HFTokenizer(await llama3Json()), true],
  ];
  for (const [vname, load, byteLevel] of vocabs) {
    const tok = await load();
    const t0 = performance.now();
    const vocab = TokenVocab.fromTokenizer(tok);
    const vocabMs = performance.now() - t0;
    rows.push({ task: `structured ${vname}`, metric: 'vocabulary preparation (once per tokenizer)', tslm: vocabMs, peer: null, unit: 'ms', note: `${vocab.nodes} trie nodes` });
    log(`${vname}: vocabulary preparation ${vocabMs.toFixed(0)} ms (trie of ${vocab.nodes} nodes, plain-text and built-in formats' tables; once per tokenizer, shared by all schemas, not in the times below)`);
    log('vocabulary     schema                   compile ms   tokens   mask mean µs   p50 µs   p99 µs   | xgrammar compile ms / mean µs / p99 µs');
    const peer = await xgrammarPeer(tok, byteLevel);
    // After loading a tokenizer (a second of other work, with garbage collections): a settled heap,
    // the JIT warm-up (see warmKept), and a settled heap again.
    settleHeap();
    if (opts.warmUp !== false) warmUp();
    settleHeap();
    await idle(20);
    const all: number[] = [], allPeer: number[] = [];
    const compiles: number[] = [], peerCompiles: number[] = [];
    // The generation processor's check that no key repeats (keys.ts), beside each mask: its tables,
    // once per tokenizer, timed apart.
    const keyTimes: number[] = [];
    const k0 = performance.now();
    keyTokens(vocab);
    const keyTablesMs = performance.now() - k0;
    for (const { name, schema, instance } of BENCH_SCHEMAS) {
      const ids = tok.encode(JSON.stringify(instance));
      // Compile: grammar + automaton + the first mask (what a request waits for), median of 5.
      const cms: number[] = [];
      for (let k = 0; k < 5; k++) {
        const a = performance.now();
        const m = new TokenMatcher(compileJsonSchema(schema), vocab);
        m.mask(m.initial);
        cms.push(performance.now() - a);
      }
      const compileMs = stats(cms).p50;
      compiles.push(compileMs);
      await idle(20);
      const m = new TokenMatcher(compileJsonSchema(schema), vocab);
      const times: number[] = [];
      let s = m.initial;
      for (const id of ids) {
        const a = performance.now();
        const mask = m.mask(s);
        times.push((performance.now() - a) * 1000);
        if (!(mask[id >>> 5] & (1 << (id & 31)))) throw new Error(`bench: ${name}: token ${id} rejected`);
        s = m.advance(s, id);
        if (s === DEAD) throw new Error(`bench: ${name}: token ${id} rejected`);
      }
      if (!m.automaton.accepting(s)) throw new Error(`bench: ${name}: instance not accepted`);
      all.push(...times);
      // The key check along the same instance (the masks are cached by now).
      const scan = new KeyScan();
      s = m.initial;
      for (const id of ids) {
        const mask = m.mask(s);
        const a = performance.now();
        repeatedKeyTokens(m.automaton, vocab, s, scan, mask, (x, t) => m.advance(x, t));
        keyTimes.push((performance.now() - a) * 1000);
        for (const b of vocab.bytes[id]!) scan.push(b, false);
        s = m.advance(s, id);
      }
      const st = stats(times);
      let peerNote = 'xgrammar: not available in Node';
      let peerMean: number | null = null;
      if (peer) {
        try {
          const c = await peer.compile(schema);
          const pt = await c.run(ids);
          allPeer.push(...pt);
          peerCompiles.push(c.ms);
          const ps = stats(pt);
          peerMean = ps.mean;
          peerNote = `xgrammar ${c.ms.toFixed(1)} ms / ${ps.mean.toFixed(0)} µs / ${ps.p99.toFixed(0)} µs`;
        } catch (e) { peerNote = `xgrammar failed: ${(e as Error).message.slice(0, 60)}`; }
      }
      log(`${vname.padEnd(14)} ${name.padEnd(24)} ${compileMs.toFixed(2).padStart(10)} ${String(ids.length).padStart(8)} ${st.mean.toFixed(1).padStart(14)} ${st.p50.toFixed(1).padStart(8)} ${st.p99.toFixed(1).padStart(8)}   | ${peerNote}`);
      rows.push({ task: `structured ${vname} ${name}`, metric: 'compile', tslm: compileMs, peer: peerCompiles.length ? peerCompiles[peerCompiles.length - 1] : null, unit: 'ms', note: '' });
      rows.push({ task: `structured ${vname} ${name}`, metric: 'mask mean', tslm: st.mean, peer: peerMean, unit: 'µs', note: `${ids.length} tokens; p50 ${st.p50.toFixed(1)} µs, p99 ${st.p99.toFixed(1)} µs` });
    }
    const st = stats(all), cs = stats(compiles);
    const ps = allPeer.length ? stats(allPeer) : null;
    log(`${vname.padEnd(14)} ${'ALL'.padEnd(24)} ${cs.mean.toFixed(2).padStart(10)} ${String(all.length).padStart(8)} ${st.mean.toFixed(1).padStart(14)} ${st.p50.toFixed(1).padStart(8)} ${st.p99.toFixed(1).padStart(8)}   | ${ps ? `xgrammar ${stats(peerCompiles).mean.toFixed(1)} ms / ${ps.mean.toFixed(0)} µs / ${ps.p99.toFixed(0)} µs` : ''}`);
    rows.push({ task: `structured ${vname}`, metric: 'compile mean', tslm: cs.mean, peer: peerCompiles.length ? stats(peerCompiles).mean : null, unit: 'ms', note: 'goal ≤ 5 ms' });
    rows.push({ task: `structured ${vname}`, metric: 'mask mean', tslm: st.mean, peer: ps?.mean ?? null, unit: 'µs', note: 'goal ≤ 50 µs' });
    rows.push({ task: `structured ${vname}`, metric: 'mask p50', tslm: st.p50, peer: ps?.p50 ?? null, unit: 'µs', note: '' });
    rows.push({ task: `structured ${vname}`, metric: 'mask p99', tslm: st.p99, peer: ps?.p99 ?? null, unit: 'µs', note: 'goal ≤ 500 µs' });
    const ks = stats(keyTimes);
    log(`${vname}: no key twice when generating (the processor's check beside each mask, the same ${keyTimes.length} tokens): mean ${ks.mean.toFixed(1)} µs, p50 ${ks.p50.toFixed(1)} µs, p99 ${ks.p99.toFixed(1)} µs; its tables ${keyTablesMs.toFixed(0)} ms once per tokenizer`);
    rows.push({ task: `structured ${vname}`, metric: 'key check mean', tslm: ks.mean, peer: null, unit: 'µs', note: `p99 ${ks.p99.toFixed(1)} µs; tables ${keyTablesMs.toFixed(0)} ms once` });
  }
  return rows;
}

/**
 * `tslm bench structured --fuzz N`: the token engine against ajv on N random schemas (valid and
 * mutated instances, LLaMA-2 32K vocabulary), then constrained sampling from a random LLaMA on
 * N/10 schemas. Returns false on any unsound acceptance, invalid sample, mask/step disagreement
 * or crash.
 */
export async function fuzzStructured(opts: { schemas: number; seed?: number; log?: (line: string) => void }): Promise<boolean> {
  const log = opts.log ?? (() => {});
  const { init, LlamaForCausalLM, parseLlamaConfig } = await import('../src/index.js');
  const { fuzzEngine, fuzzSummary, fuzzSampling, ajvValidator } = await import('../src/structured/fuzz.js');
  await init({ threads: 1 });
  const tok = new HFTokenizer(await llama2Json());
  const vocab = TokenVocab.fromTokenizer(tok);
  const validator = ajvValidator();
  log(`fuzz: ${opts.schemas} random schemas, seed ${opts.seed ?? 1}, LLaMA-2 32K vocabulary, ajv (draft-07, ajv-formats) as the reference`);
  let shown = 0;
  const st = fuzzEngine(tok, vocab, { schemas: opts.schemas, seed: opts.seed ?? 1, validator, report: (l) => { if (!l.startsWith('valid rejected') || shown++ < 10) log(l.slice(0, 3000)); } });
  for (const l of fuzzSummary(st)) log(l);
  const model = new LlamaForCausalLM(parseLlamaConfig({ hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: tok.vocabSize, max_position_embeddings: 256, initializer_range: 0.5 }));
  model.eval();
  const ss = fuzzSampling(model, tok, { schemas: Math.max(1, Math.round(opts.schemas / 10)), seed: (opts.seed ?? 1) + 1000, validator, report: (l) => log(l.slice(0, 3000)) });
  model.dispose();
  log(`sampling: ${ss.samples} samples on ${ss.schemas} schemas: ${ss.complete} complete, ${ss.invalid} invalid, ${ss.budget} cut by the token budget, ${ss.crashes} crashes, in ${(ss.ms / 1000).toFixed(1)} s`);
  log(`sampling: ${ss.duplicateKeys} valid outputs with a duplicate key`);
  const ok = st.unsound === 0 && st.crashes === 0 && st.maskMismatch === 0 && ss.invalid === 0 && ss.crashes === 0 && ss.duplicateKeys === 0;
  log(ok ? 'fuzz: OK' : 'fuzz: FAILED');
  return ok;
}

// `node dist/bench/structured.js [--json] [--no-warmup]`
if (import.meta.url === `file://${process.argv[1]}`) {
  const json = process.argv.includes('--json');
  const rows = await benchStructured({ log: json ? undefined : (l) => console.log(l), warmUp: !process.argv.includes('--no-warmup') });
  if (json) console.log(JSON.stringify(rows, null, 1));
}
