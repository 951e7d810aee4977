// `tslm tokenize`: text → token ids (one output line per input line), or ids → text with --decode.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadTokenizer } from '../../tokenizers/index.js';

export const usage = `tslm tokenize --tokenizer <tokenizer.json|tokenizer.model|tokenizer.bin> (--text "…" | --file <path>) [--decode] [--bos] [--eos]
    Prints the token ids of each input line, space-separated, one output line per input line
    (no BOS unless --bos). With --decode, each input line of ids is turned back into text.`;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: false,
    options: {
      tokenizer: { type: 'string', short: 't' },
      text: { type: 'string' },
      file: { type: 'string', short: 'f' },
      decode: { type: 'boolean', default: false },
      bos: { type: 'boolean', default: false },
      eos: { type: 'boolean', default: false },
      'no-specials': { type: 'boolean', default: false },
    },
  });
  void positionals;
  if (!values.tokenizer) {
    console.error(`tslm tokenize: --tokenizer is required\n\n${usage}`);
    return 2;
  }
  if ((values.text === undefined) === (values.file === undefined)) {
    console.error(`tslm tokenize: give exactly one of --text or --file\n\n${usage}`);
    return 2;
  }
  const tok = loadTokenizer(values.tokenizer);
  let input: string;
  if (values.text !== undefined) input = values.text;
  else {
    try {
      input = readFileSync(values.file!, 'utf8');
    } catch (e) {
      console.error(`tslm tokenize: cannot read ${values.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      return 1;
    }
    // A file's final newline ends its last line; it does not start another.
    if (input.endsWith('\n')) input = input.slice(0, -1);
    if (input.endsWith('\r')) input = input.slice(0, -1);
  }
  const lines = input.split(/\r?\n/);
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (values.decode) {
      const fields = line.trim() === '' ? [] : line.trim().split(/\s+/);
      const ids = fields.map(Number);
      const bad = fields.findIndex((f, j) => !/^\d+$/.test(f) || ids[j] >= tok.vocabSize);
      if (bad >= 0) {
        const where = values.file ? `${values.file}:${i + 1}` : `line ${i + 1}`;
        console.error(`tslm tokenize: ${where}: '${fields[bad]}' is not a token id in [0, ${tok.vocabSize})`);
        return 1;
      }
      out.push(tok.decode(ids));
    } else {
      out.push(tok.encode(line, { bos: values.bos, eos: values.eos, specials: !values['no-specials'] }).join(' '));
    }
  }
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}
