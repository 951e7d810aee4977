// `tslm schema check`: does the constrained decoder accept these JSON instances, token by token,
// with this tokenizer? With --bench, compile and per-token mask times.
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { UsageError } from '../args.js';
import { loadTokenizer } from '../../tokenizers/load.js';
import { parseJson } from '../../tokenizers/guard.js';
import { SchemaCompiler, TokenVocab, TokenMatcher, DEAD, StructuredError } from '../../structured/index.js';
import type { JsonSchema } from '../../structured/index.js';

export const usage = `tslm schema check --schema <file.json> --tokenizer <tokenizer.json|.model|.bin> <instance.json>…
      [--whitespace compact|flexible] [--forbid-additional] [--strict] [--bench] [--print-grammar]
    Tokenises each JSON instance (serialised compactly) and feeds the tokens through the
    constrained decoder: prints 'accept' (every token allowed and the end reachable) or
    'reject' with the first token at fault. Exit code 1 when any instance is rejected.
    Instances are checked with JSON Schema's semantics (additional properties allowed unless
    the schema says otherwise; --forbid-additional forbids them). Unknown keywords and formats
    are annotations and ignored; --strict refuses them, naming the keyword and its JSON pointer.
    --bench also prints compile time and mask time per token (mean, p50, p99).`;

// Errors give the line and column, never the file's text.
function readJson(path: string, what: string): unknown {
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) { throw new UsageError(`${what} ${path}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`); }
  return parseJson(text, (detail) => new Error(`${what} ${path}: not valid JSON: ${detail}`));
}

export function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'check') throw new UsageError(`unknown subcommand '${sub ?? ''}' (expected 'check')\n${usage}`);
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      schema: { type: 'string' }, tokenizer: { type: 'string' }, bench: { type: 'boolean', default: false },
      whitespace: { type: 'string' }, 'forbid-additional': { type: 'boolean', default: false }, strict: { type: 'boolean', default: false }, 'print-grammar': { type: 'boolean', default: false },
    },
  });
  if (!values.schema) throw new UsageError('--schema is required');
  if (!values.tokenizer) throw new UsageError('--tokenizer is required');
  if (values.whitespace !== undefined && values.whitespace !== 'compact' && values.whitespace !== 'flexible') throw new UsageError(`--whitespace: '${values.whitespace}' is not compact or flexible`);
  const schema = readJson(values.schema, 'schema') as JsonSchema;
  const tok = loadTokenizer(values.tokenizer);
  const vocab = TokenVocab.fromTokenizer(tok);
  const t0 = performance.now();
  let grammar, matcher;
  try {
    grammar = new SchemaCompiler(schema, { whitespace: values.whitespace as 'compact' | 'flexible' | undefined, additionalProperties: values['forbid-additional'] ? 'forbid' : 'schema', strict: values.strict }).compile();
    matcher = new TokenMatcher(grammar, vocab);
    matcher.mask(matcher.initial);
  } catch (e) {
    // The schema's faults name its file (the message names the keyword and its JSON pointer).
    if (e instanceof StructuredError) e.message = `schema ${values.schema}: ${e.message}`;
    throw e;
  }
  const compileMs = performance.now() - t0;
  if (values['print-grammar']) console.log(grammar.toString());
  const times: number[] = [];
  let rejected = 0;
  for (const path of positionals) {
    const text = JSON.stringify(readJson(path, 'instance'));
    const ids = tok.encode(text);
    let s = matcher.initial;
    let fault: string | null = null;
    for (const [i, id] of ids.entries()) {
      const a = performance.now();
      const mask = matcher.mask(s);
      times.push((performance.now() - a) * 1000);
      if (!(mask[id >>> 5] & (1 << (id & 31))) || (s = matcher.advance(s, id)) === DEAD) {
        fault = `token ${i} (id ${id}, ${JSON.stringify(vocab.text([id]))}) not allowed after ${JSON.stringify(vocab.text(ids.slice(0, i)))}`;
        break;
      }
    }
    if (!fault && !matcher.automaton.accepting(s)) fault = 'the instance ends before the schema allows it to';
    if (fault) rejected++;
    console.log(`${path}: ${fault ? `reject (${fault})` : 'accept'}`);
  }
  if (values.bench) {
    const mean = times.reduce((x, y) => x + y, 0) / Math.max(1, times.length);
    console.log(`compile: ${compileMs.toFixed(2)} ms (grammar, automaton, first mask; vocabulary of ${vocab.size} tokens)`);
    console.log(`mask: ${times.length} tokens, mean ${mean.toFixed(1)} µs, p50 ${pct(times, 50).toFixed(1)} µs, p99 ${pct(times, 99).toFixed(1)} µs`);
  }
  return rejected > 0 ? 1 : 0;
}
