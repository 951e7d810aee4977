// GBNF, llama.cpp's grammar syntax, parsed into our grammar:
//
//   root   ::= object
//   object ::= "{" ws ( pair ( "," ws pair )* )? "}"     # comments run to the end of the line
//   pair   ::= [a-z]+ ":" ws [0-9]{1,3}
//   ws     ::= [ \t\n]*
//
// Literals "…" and classes […] / [^…] with \n \t \r \\ \" \] \xHH \uHHHH \UHHHHHHHH escapes, `.`
// for any character, groups, alternatives, and the repetitions * + ? {m} {m,} {m,n}. A rule ends
// where the next `name ::=` begins. Left recursion is rejected (as llama.cpp does).
import { GrammarBuilder, complementRanges } from './grammar.js';
import type { Grammar, Sym } from './grammar.js';
import { GrammarError } from './errors.js';

type Tok =
  | { k: 'ident'; v: string; line: number }
  | { k: 'def'; line: number }
  | { k: 'str'; v: number[]; line: number }
  | { k: 'cls'; neg: boolean; ranges: Array<[number, number]>; line: number }
  | { k: 'dot' | '(' | ')' | '|' | '*' | '+' | '?'; line: number }
  | { k: 'rep'; min: number; max: number; line: number };

function lex(src: string): Tok[] {
  const cps = Array.from(src, (c) => c.codePointAt(0)!);
  const toks: Tok[] = [];
  let i = 0, line = 1;
  const fail = (msg: string): never => { throw new GrammarError(`line ${line}`, msg); };
  const isIdent = (c: number) => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2d || c === 0x5f;
  const escape = (): number => {
    const c = String.fromCodePoint(cps[i++] ?? fail('escape at end of input'));
    const hex = (n: number) => {
      const h = String.fromCodePoint(...cps.slice(i, i + n));
      if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(h)) fail(`bad \\${c} escape`);
      i += n;
      return parseInt(h, 16);
    };
    switch (c) {
      case 'n': return 10;
      case 't': return 9;
      case 'r': return 13;
      case 'x': return hex(2);
      case 'u': return hex(4);
      case 'U': return hex(8);
      case '\\': case '"': case '[': case ']': case '-': case '^': return c.codePointAt(0)!;
      default: return fail(`unknown escape '\\${c}'`);
    }
  };
  while (i < cps.length) {
    const c = cps[i];
    const ch = String.fromCodePoint(c);
    if (ch === '\n') { line++; i++; continue; }
    if (/\s/.test(ch)) { i++; continue; }
    if (ch === '#') { while (i < cps.length && cps[i] !== 10) i++; continue; }
    if (ch === ':' && String.fromCodePoint(...cps.slice(i, i + 3)) === '::=') { toks.push({ k: 'def', line }); i += 3; continue; }
    if (isIdent(c)) {
      let j = i;
      while (j < cps.length && isIdent(cps[j])) j++;
      toks.push({ k: 'ident', v: String.fromCodePoint(...cps.slice(i, j)), line });
      i = j;
      continue;
    }
    if (ch === '"') {
      i++;
      const v: number[] = [];
      while (i < cps.length && cps[i] !== 0x22) {
        if (cps[i] === 10) fail('newline in string literal');
        if (cps[i] === 0x5c) { i++; v.push(escape()); } else v.push(cps[i++]);
      }
      if (i >= cps.length) fail('unterminated string literal');
      i++;
      toks.push({ k: 'str', v, line });
      continue;
    }
    if (ch === '[') {
      i++;
      let neg = false;
      if (cps[i] === 0x5e) { neg = true; i++; }
      const ranges: Array<[number, number]> = [];
      while (i < cps.length && cps[i] !== 0x5d) {
        let a = cps[i++];
        if (a === 0x5c) a = escape();
        let b = a;
        if (cps[i] === 0x2d && cps[i + 1] !== 0x5d && i + 1 < cps.length) {
          i++;
          b = cps[i++];
          if (b === 0x5c) b = escape();
          if (b < a) fail('character range out of order');
        }
        ranges.push([a, b]);
      }
      if (i >= cps.length) fail("unterminated character class (missing ']')");
      i++;
      toks.push({ k: 'cls', neg, ranges, line });
      continue;
    }
    if (ch === '{') {
      const m = /^\{\s*(\d+)\s*(,\s*(\d*)\s*)?\}/.exec(String.fromCodePoint(...cps.slice(i, i + 32)));
      if (!m) fail("bad repetition '{…}'");
      const min = Number(m![1]), max = m![2] === undefined ? min : m![3] === '' ? Infinity : Number(m![3]);
      if (max < min) fail('repetition {m,n} with n < m');
      toks.push({ k: 'rep', min, max, line });
      i += m![0].length;
      continue;
    }
    if ('().|*+?'.includes(ch)) { toks.push({ k: ch === '.' ? 'dot' : (ch as '(' | ')' | '|' | '*' | '+' | '?'), line }); i++; continue; }
    fail(`unexpected character '${ch}'`);
  }
  return toks;
}

/** Parses GBNF text into a grammar starting at `start` (default "root"). */
export function parseGbnf(src: string, start = 'root'): Grammar {
  const toks = lex(src);
  const b = new GrammarBuilder();
  const ids = new Map<string, number>();
  const firstUse = new Map<string, number>();
  const ruleId = (name: string, line: number): number => {
    let id = ids.get(name);
    if (id === undefined) { id = b.rule(name); ids.set(name, id); firstUse.set(name, line); }
    return id;
  };
  const defined = new Set<string>();
  let p = 0;
  const atRuleStart = (q: number) => toks[q]?.k === 'ident' && toks[q + 1]?.k === 'def';

  function alternation(nested: boolean): Sym[][] {
    const alts: Sym[][] = [sequence(nested)];
    while (toks[p]?.k === '|') { p++; alts.push(sequence(nested)); }
    return alts;
  }
  function sequence(nested: boolean): Sym[] {
    const out: Sym[] = [];
    for (;;) {
      const t = toks[p];
      if (!t || t.k === '|' || t.k === ')' || (!nested && atRuleStart(p))) return out;
      let item: Sym[];
      p++;
      switch (t.k) {
        case 'ident': item = [ruleId(t.v, t.line)]; break;
        case 'str': item = t.v.length === 0 ? [] : b.lit(String.fromCodePoint(...t.v)); break;
        case 'cls': item = [b.codepoints(t.neg ? complementRanges(t.ranges) : t.ranges)]; break;
        case 'dot': item = [b.codepoints([[0, 0x10ffff]])]; break;
        case '(': {
          const alts = alternation(true);
          if (toks[p]?.k !== ')') throw new GrammarError(`line ${t.line}`, "missing ')'");
          p++;
          item = [b.alt('group', alts)];
          break;
        }
        case 'def': throw new GrammarError(`line ${t.line}`, "'::=' without a rule name before it");
        default: throw new GrammarError(`line ${t.line}`, `unexpected '${t.k}'`);
      }
      for (;;) {
        const q = toks[p];
        if (!q) break;
        if (q.k === '*') item = b.repeat('star', item, 0, Infinity);
        else if (q.k === '+') item = b.repeat('plus', item, 1, Infinity);
        else if (q.k === '?') item = b.repeat('opt', item, 0, 1);
        else if (q.k === 'rep') item = b.repeat('rep', item, q.min, q.max);
        else break;
        p++;
      }
      out.push(...item);
    }
  }

  while (p < toks.length) {
    const t = toks[p];
    if (!atRuleStart(p)) throw new GrammarError(`line ${t.line}`, `expected 'name ::=' to start a rule, got '${t.k === 'ident' ? t.v : t.k}'`);
    const name = (t as { v: string }).v;
    if (defined.has(name)) throw new GrammarError(`line ${t.line}`, `rule '${name}' is defined twice`);
    defined.add(name);
    p += 2;
    const id = ruleId(name, t.line);
    const alts = alternation(false);
    if (toks[p]?.k === ')') throw new GrammarError(`line ${toks[p].line}`, "unmatched ')'");
    b.define(id, alts);
  }
  for (const [name, line] of firstUse) if (!defined.has(name)) throw new GrammarError(`line ${line}`, `rule '${name}' is used but not defined`);
  const root = ids.get(start);
  if (root === undefined || !defined.has(start)) throw new GrammarError('(start)', `no '${start}' rule`);
  return b.build(root);
}
