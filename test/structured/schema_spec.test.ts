// JSON Schema as the specification and ajv read it (issue #20): unknown keywords and formats are
// annotations (ignored; `strict` refuses them), the formats follow their RFCs and are compared
// with ajv-formats in both directions, oneOf exclusivity is proven or the schema refused (checked
// with ajv), and generation emits declared properties only, never a key twice.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { init, shutdown, LlamaForCausalLM, parseLlamaConfig } from '../../src/index.js';
import { HFTokenizer } from '../../src/tokenizers/hf.js';
import { formatAccepts } from '../../src/structured/schema.js';
import { compileJsonSchema, compileConstraint, UnsupportedKeywordError, generateStructured } from '../../src/structured/index.js';
import type { Grammar, JsonSchema, SchemaOptions } from '../../src/structured/index.js';
import { llama2Json } from '../tokenizers/real_vocabs.js';
import { ajv, ajvValid, accepts } from './suite_util.js';



test('unknown keywords and formats are ignored as the spec says; strict refuses them naming keyword and pointer', () => {
  const words: Array<[string, unknown]> = [['readonly', true], ['enumNames', ['A', 'B']], ['enumDescription', ['a', 'b']], ['alias', 'x'], ['_format', 'date'],
    ['_uniqueItems', true], ['anyof', [{ type: 'integer' }]], ['form', 'email'], ['maxLenght', 1], ['allof', [false]]];
  for (const [w, v] of words) {
    const schema = { type: 'object', properties: { a: { type: 'string', [w]: v } }, required: ['a'] };
    const g = compileJsonSchema(schema);
    for (const inst of [{ a: 'xyz' }, { a: 1 }, {}]) assert.equal(accepts(g, JSON.stringify(inst)), ajvValid(schema, inst), `${w}: ${JSON.stringify(inst)}`);
    assert.throws(() => compileJsonSchema(schema, { strict: true }), (e: unknown) => e instanceof UnsupportedKeywordError && e.keyword === w && e.pointer === `#/properties/a/${w}`, w);
  }
  assert.throws(() => compileJsonSchema({ anyof: [] }, { strict: true }), /did you mean 'anyOf'/);
  assert.ok(compileJsonSchema({ type: 'string', 'x-order': 1 }, { strict: true }), "'x-' extensions pass in strict mode");
  // Unknown formats: any string (with the other keywords kept); strict refuses them.
  for (const f of ['path', 'topic', 'color', 'phone-number']) {
    const schema = { type: 'object', properties: { a: { type: 'string', format: f, maxLength: 3 } } };
    const g = compileJsonSchema(schema);
    for (const inst of [{ a: 'a/b' }, { a: 'abcd' }, { a: 1 }]) assert.equal(accepts(g, JSON.stringify(inst)), ajvValid(schema, inst), `${f}: ${JSON.stringify(inst)}`);
    assert.throws(() => compileJsonSchema(schema, { strict: true }), (e: unknown) => e instanceof UnsupportedKeywordError && e.keyword === 'format' && e.pointer === '#/properties/a/format' && e.message.includes(f));
  }
  // Keywords that validate but that this compiler cannot enforce are still refused (ignoring them
  // would accept invalid instances), and so are ajv-formats' formats it cannot express.
  for (const [schema, kw, ptr] of [[{ not: { format: 'email' } }, 'not', '#/not/format'], [{ if: { format: 'email' }, then: { minLength: 2 } }, 'not', '#/if/format'],
    [{ properties: { a: { type: 'object', unevaluatedProperties: false } } }, 'unevaluatedProperties', '#/properties/a/unevaluatedProperties'], [{ type: 'string', format: 'regex' }, 'format', '#/format'],
    [{ type: 'string', format: 'uri-template' }, 'format', '#/format'], [{ type: 'string', formatMaximum: '2020-01-01', format: 'date' }, 'formatMaximum', '#/formatMaximum']] as const) {
    assert.throws(() => compileJsonSchema(schema as JsonSchema), (e: unknown) => e instanceof UnsupportedKeywordError && e.keyword === kw && e.pointer === ptr, JSON.stringify(schema));
  }
  // Formats of numbers (ajv-formats, OpenAPI): int32 / int64 are integers, float / double any number.
  const nums = [0, 1.5, -2147483648, 2147483647, 2147483648, -2147483649, 1e14];
  for (const schema of [{ type: 'integer', format: 'int32' }, { type: 'number', format: 'int32' }, { type: 'number', format: 'int64' }, { type: 'number', format: 'float' }, { format: 'int32' }]) {
    const g = compileJsonSchema(schema);
    for (const n of nums) assert.equal(accepts(g, JSON.stringify(n)), ajvValid(schema, n), `${JSON.stringify(schema)}: ${n}`);
  }
});

// Documented gaps (values ajv-formats accepts that the RFC grammars leave out); every other
// disagreement fails the test, and accepting a value ajv-formats rejects always does.
const GAPS: Record<string, (v: string) => boolean> = {
  // RFC 3339 wants "T" and ±hh:mm; ajv also takes a space and ±hhmm / ±hh; leap seconds only at 23:59Z.
  time: (v) => /[+-]\d\d\d?\d?$/.test(v) || /:60/.test(v),
  'date-time': (v) => / /.test(v) || /[+-]\d\d\d?\d?$/.test(v) || /:60/.test(v),
  // After "scheme:/" or "scheme://" ajv reads an authority (or an empty one and a path) where RFC 3986 does not.
  uri: (v) => /^[^:]*:\//.test(v),
  // ajv takes a colon in the first segment of a relative reference (RFC 3986's path-noscheme does
  // not), and '"' in paths (not a URI character).
  'uri-reference': (v) => /^[^/?#]*:/.test(v) || v.includes('//') || v.includes('"'),
  // url: ASCII host names with a letter TLD only (no IP address, no user:password@, no IDN).
  url: (v) => /[^\x21-\x7e]|@/.test(v.split('/').slice(0, 3).join('/')) || /^[a-zA-Z]+:\/\/[\d.]+(?::\d+)?(?:\/|$)/.test(v),
  hostname: (v) => v.split('.').some((l, i) => l.length > (i < 3 ? 63 : 14)),
  // email: a subset (schema.ts FORMATS.email): upper case, the local part's other punctuation,
  // and top-level domains of one character or with digits or hyphens are left out.
  email: (v) => !/^[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@(?:[a-z0-9]+(?:-[a-z0-9]+)*\.)+[a-z]{2,}$/.test(v),
};
const FORMAT_CASES: Record<string, { valid: string[]; invalid: string[] }> = {
  uri: {
    valid: ['https://dcos-master-1.example.com', 'https://dcos-master-1.example.com:8443/v1/jobs?x=1&y=%20#top', 'urn:isbn:0451450523', 'mailto:john.doe@example.com', 'file:///etc/hosts',
      'http://[::1]:80/', 'http://[2001:db8::7]/c=GB?objectClass?one', 'ldap://[2001:db8::7]/c=GB', 'http://[v7.fe80::a+en1]/', 'http://192.168.0.1/', 'tel:+1-816-555-1212',
      'news:comp.infosystems.www.servers.unix', 'HTTP://EXAMPLE.COM/%7Euser', 'http://user:pass@host:8080/p/a/t/h;x=1?q#f', 'foo+bar.baz-1:x'],
    invalid: ['//example.com', 'example.com', 'http://a b', 'http://%zz', 'http://[::1/', ':no-scheme', '1http://x', 'http://exa mple.com', 'http://x/\u00e9', ''],
  },
  'uri-reference': { valid: ['', '/a/b', 'a/b?c#d', '#frag', '?q', '//host/p', '../up', 'http://x', 'x:', './a:b'], invalid: ['a b', '%zz', '#a#b', 'http://[::1/', '\\a'] },
  hostname: {
    valid: ['dcos-master-1.example.com', 'a', 'a.', 'xn--bcher-kva.example', 'ec2-54-123-45-67.compute-1.amazonaws.com', 'a'.repeat(63) + '.com', '1.2.3.4', 'A-1.B-2.C-3'],
    invalid: ['-a', 'a-', 'a..b', 'a'.repeat(64), 'a_b.com', '', '.', 'a.-b', 'ex ample.com'],
  },
  ipv4: { valid: ['0.0.0.0', '255.255.255.255', '192.168.0.1', '10.0.0.254'], invalid: ['256.1.1.1', '01.1.1.1', '1.1.1', '1.1.1.1.1', '1.1.1.', ' 1.1.1.1', '1.1.1.1 '] },
  ipv6: {
    valid: ['::', '::1', '1::', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8', '::ffff:192.0.2.128', '2001:DB8::8:800:200C:417A', 'FF01::101', '1:2:3:4:5:6:1.2.3.4',
      '1::2:3', '::1.2.3.4', 'fe80::', '1:0:0:0:0:0:0:8'],
    invalid: [':::', '1:2:3:4:5:6:7:8:9', '1::2::3', 'fe80::1%eth0', '1:2:3:4:5:6:7:1.2.3.4', '12345::', ':1:2:3:4:5:6:7', '1:2:3:4:5:6:7:', '::256.1.1.1', 'g::', '1:2:3:4:5:6:7'],
  },
  date: { valid: ['2024-02-29', '2000-02-29', '1900-02-28', '0000-02-29', '2023-12-31', '1996-02-29'], invalid: ['2023-02-29', '1900-02-29', '2024-04-31', '2024-13-01', '2024-00-10', '24-01-01', '2024-1-01'] },
  time: { valid: ['12:00:00Z', '23:59:59.999999999+14:00', '00:00:00z', '23:59:60Z', '08:30:00-05:00'], invalid: ['24:00:00Z', '12:60:00Z', '12:00:00', '12:00:60Z', '12:00:00+24:00', '1:00:00Z'] },
  'date-time': {
    valid: ['2024-02-29T12:00:00Z', '1985-04-12T23:20:50.52Z', '1996-12-19T16:39:57-08:00', '2024-01-01t00:00:00z', '1990-12-31T23:59:60Z'],
    invalid: ['2023-02-29T12:00:00Z', '2024-01-01T12:00:00', '2024-01-01', '2024-01-01T25:00:00Z', '2024-01-01TT12:00:00Z'],
  },
  email: { valid: ['a@b.co', 'john.doe+tag@example.co.uk', 'a_b.c+d-1@ex4.mple.co'], invalid: ['a..b@c', '@x', 'a@', 'a@-b.c', 'a@b-.c', '.a@b', 'a b@c', 'a@b..c'] },
  uuid: { valid: ['1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed', '1B9D6BCD-BBFD-4B2D-9B5D-AB8DFBBD4BED', 'urn:uuid:1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed'], invalid: ['1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4be', '1b9d6bcdbbfd4b2d9b5dab8dfbbd4bed', 'g b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed'] },
  byte: { valid: ['', 'QUJD', 'QUJDRA==', 'QUJDREU=', 'a+/9'], invalid: ['Q', 'QQ=', 'QQ===', 'QU JD', 'QUJD!'] },
  url: { valid: ['http://example.com', 'https://a-b.example.com:8080/path?x=1#y', 'ftp://files.example.org/ab', 'http://x.io/é'], invalid: ['http://localhost', 'http://-a.com', 'http://a.com:1', 'mailto:a@b.c', 'http://a.com/ x'] },
  duration: { valid: ['P1Y', 'PT1H', 'P1W', 'P1Y2M3DT4H5M6S', 'P3D', 'PT0S', 'P1MT1M'], invalid: ['P', 'PT', 'P1YT', 'P1D1W', '1Y', 'P1H', 'PT1D'] },
  'json-pointer': { valid: ['', '/', '/a/b', '/a~0b~1c', '/ü/"/\\'], invalid: ['a', '/~2', '/~', '#/a'] },
  'relative-json-pointer': { valid: ['0', '1/a', '2#', '10/b~1c'], invalid: ['', '01', '-1', '1#/a', 'a'] },
};

test('formats follow their RFCs: lists and mutated values agree with ajv-formats in both directions (gaps documented)', () => {
  let seed = 7;
  const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x80000000; };
  const alphabet = [...'0123456789abcdefABCDEFxyzTZtz:./-_~@%?#[]!$&\'()*+,;= PWYMDHS"\\é'];
  const mutate = (v: string): string => {
    const a = [...v];
    const p = Math.floor(rnd() * (a.length + 1)), c = alphabet[Math.floor(rnd() * alphabet.length)], op = rnd();
    if (op < 0.4 || a.length === 0) a.splice(p, 0, c); else if (op < 0.7) a.splice(Math.min(p, a.length - 1), 1); else a[Math.min(p, a.length - 1)] = c;
    return a.join('');
  };
  const stats: string[] = [];
  for (const [format, { valid, invalid }] of Object.entries(FORMAT_CASES)) {
    const schema = { type: 'string', format };
    const g = compileJsonSchema(schema);
    const us = (v: string) => accepts(g, JSON.stringify(v));
    for (const v of valid) assert.ok(ajvValid(schema, v), `${format}: the list's ${JSON.stringify(v)} is valid for ajv-formats`);
    for (const v of invalid) assert.ok(!ajvValid(schema, v), `${format}: the list's ${JSON.stringify(v)} is invalid for ajv-formats`);
    for (const v of valid) assert.ok(us(v), `${format}: valid ${JSON.stringify(v)} rejected`);
    for (const v of invalid) assert.ok(!us(v), `${format}: invalid ${JSON.stringify(v)} accepted`);
    const cands = new Set<string>();
    for (let i = 0; i < 400; i++) { let v = valid[Math.floor(rnd() * valid.length)]; for (let k = Math.floor(rnd() * 3); k >= 0; k--) v = mutate(v); cands.add(v); }
    let both = 0, gaps = 0, undecided = 0;
    for (const v of [...cands, ...valid, ...invalid]) {
      const u = us(v), t = ajvValid(schema, v);
      // The compiler's own format check (enum values, oneOf exclusivity): ajv's verdict, or undecided.
      let own: boolean | null = null;
      try { own = formatAccepts(format, v); } catch (e) { assert.ok(e instanceof UnsupportedKeywordError, String(e)); undecided++; }
      if (own !== null) assert.equal(own, t, `${format}: formatAccepts(${JSON.stringify(v)}) = ${own}, ajv-formats ${t}`);
      assert.ok(!u || t, `${format}: ${JSON.stringify(v)} accepted but ajv-formats rejects it`);
      if (!u && t) { assert.ok(GAPS[format]?.(v), `${format}: ${JSON.stringify(v)} is valid for ajv-formats but rejected (not a documented gap)`); gaps++; }
      if (u && t) both++;
    }
    stats.push(`${format} ${both}/${cands.size}${gaps ? ` (${gaps} gaps)` : ''}${undecided ? ` (${undecided} undecided)` : ''}`);
  }
  console.log(`# valid mutated values accepted: ${stats.join(', ')}`);
});

test('oneOf: exclusivity is proven (type, const/enum, required const property) or enforced (each branch without the others), or the schema is refused; compiled ones agree with ajv', () => {
  const obj = (kind: string, extra: Record<string, unknown>) => ({ type: 'object', properties: { kind: { const: kind }, ...extra }, required: ['kind'] });
  const pool: unknown[] = [null, true, 0, 1, -1, 1.5, 2, 3000000000, '', 'a', 'b', 'c', 'cx', 'x', 'http://a-b.com', 'https://dcos-master-1.example.com', 'not a uri',
    { kind: 'a', x: 1 }, { kind: 'b', y: 'z' }, { kind: 'a' }, { kind: 'c' }, { x: 1 }, { a: 1 }, { b: 1 }, { a: 1, b: 1 }, {}, [], [1], ['a']];
  const cases: Array<{ schema: JsonSchema; compiles: boolean }> = [
    // Overlapping: refused.
    { schema: { oneOf: [{ type: 'string', format: 'uri' }, { const: 'https://dcos-master-1.example.com' }] }, compiles: false },
    { schema: { oneOf: [{ type: 'string', format: 'uri' }, { enum: ['http://a-b.com', 'x'] }] }, compiles: false },
    { schema: { oneOf: [{ type: 'integer', format: 'int32' }, { type: 'integer', minimum: 3000000000 }] }, compiles: false },
    // Overlapping, and each branch's complement is compiled: branch i as allOf(branch i, ¬branch j); exact.
    { schema: { oneOf: [{ type: 'string', enum: ['a', 'cx'] }, { type: 'string', pattern: '^c' }] }, compiles: true },
    { schema: { oneOf: [{ required: ['a'] }, { required: ['b'] }] }, compiles: true },
    { schema: { oneOf: [{ type: 'integer' }, { type: 'number', minimum: 0 }] }, compiles: true },
    { schema: { oneOf: [{ const: 1 }, { type: 'number', maximum: 5 }] }, compiles: true },
    { schema: { oneOf: [obj('a', {}), { type: 'object', properties: { kind: { const: 'b' } } }] }, compiles: true },
    { schema: { oneOf: [{ type: 'string', 'x-unknown': 1, format: 'topic' }, { const: 'a' }] }, compiles: true },
    // Provably exclusive: compiled, and exact.
    { schema: { oneOf: [{ type: 'string', enum: ['a', 'b'] }, { type: 'string', pattern: '^c' }] }, compiles: true },
    { schema: { oneOf: [obj('a', { x: { type: 'integer' } }), obj('b', { y: { type: 'string' } })] }, compiles: true },
    { schema: { oneOf: [{ type: 'integer' }, { type: 'string' }, { type: 'null' }] }, compiles: true },
    { schema: { oneOf: [{ enum: [1, 'x'] }, { type: 'string', minLength: 2 }] }, compiles: true },
    { schema: { oneOf: [{ type: 'string', format: 'uri' }, { const: 'not a uri' }] }, compiles: true },
    { schema: { $defs: { i: { type: 'integer', enumNames: ['x'] }, s: { type: 'string' } }, oneOf: [{ $ref: '#/$defs/i' }, { $ref: '#/$defs/s' }] }, compiles: true },
  ];
  for (const { schema, compiles } of cases) {
    let g: Grammar | null = null;
    try { g = compileJsonSchema(schema); } catch (e) {
      assert.ok(e instanceof UnsupportedKeywordError && e.keyword === 'oneOf' && /may both match/.test(e.message), `${JSON.stringify(schema)}: ${(e as Error).message}`);
    }
    assert.equal(g !== null, compiles, JSON.stringify(schema));
    if (!g) continue;
    let n = 0;
    for (const v of pool) {
      const acc = accepts(g, JSON.stringify(v)), ok = ajvValid(schema, v);
      assert.equal(acc, ok, `${JSON.stringify(schema)} on ${JSON.stringify(v)}: engine ${acc}, ajv ${ok}`);
      if (ok) n++;
    }
    assert.ok(n >= 2, JSON.stringify(schema));
  }
});

/** Each object's keys in a JSON text, to find repeated keys (JSON.parse keeps only the last). */
function objectKeys(text: string): string[][] {
  const out: string[][] = [];
  let i = 0;
  const ws = () => { while (/\s/.test(text[i] ?? '')) i++; };
  const str = (): string => { const s = i; i++; while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1; i++; return JSON.parse(text.slice(s, i)); };
  const value = (): void => {
    ws();
    if (text[i] === '{') {
      const keys: string[] = [];
      out.push(keys);
      i++; ws();
      if (text[i] === '}') { i++; return; }
      for (;;) { ws(); keys.push(str()); ws(); i++; value(); ws(); if (text[i++] === '}') return; }
    }
    if (text[i] === '[') {
      i++; ws();
      if (text[i] === ']') { i++; return; }
      for (;;) { value(); ws(); if (text[i++] === ']') return; }
    }
    if (text[i] === '"') { str(); return; }
    while (i < text.length && !/[,}\]\s]/.test(text[i])) i++;
  };
  value();
  return out;
}

test('generation: declared properties only by default, never a declared key twice nor an empty extra key; schema check keeps the spec', async () => {
  await init({ threads: 1 });
  try {
    const decl = { type: 'object', properties: { a: { type: 'number' }, b: { type: 'string' } } };
    const gen = (s: JsonSchema, o?: SchemaOptions) => compileConstraint({ schema: s, schemaOptions: o });
    // Byte level: what each mode admits.
    assert.ok(accepts(compileJsonSchema(decl), '{"a":1,"c":2}'), 'checking: extra keys allowed (the spec)');
    assert.ok(!accepts(gen(decl), '{"a":1,"c":2}'), 'generating: declared properties only');
    assert.ok(accepts(gen(decl), '{"a":1,"b":"x"}'));
    assert.ok(accepts(gen(decl, { additionalProperties: 'allow' }), '{"a":1,"c":2}'), "'allow': extra keys");
    for (const o of [undefined, { additionalProperties: 'allow' as const }]) {
      assert.ok(!accepts(gen(decl, o), '{"a":1,"":2}'), 'no empty extra key');
      assert.ok(!accepts(gen(decl, o), '{"a":1,"a":2}'), 'no declared key twice');
      assert.ok(!accepts(gen({ type: 'object', additionalProperties: { type: 'number' } }, o), '{"":1}'));
      assert.ok(!accepts(gen({}, o), '{"":1}'), 'free-form objects: non-empty keys');
    }
    assert.ok(accepts(compileJsonSchema({}), '{"":1,"":2}'), 'checking: the spec allows any key');
    assert.ok(accepts(gen({ type: 'object', properties: { a: { type: 'number' } }, required: ['a', 'z'] }), '{"a":1,"z":[true]}'), 'a required undeclared name keeps any value');
    assert.ok(accepts(gen({ type: 'object', properties: { a: { type: 'number' } }, additionalProperties: { type: 'integer' } }), '{"a":1.5,"q":2}'), 'explicit additionalProperties is honoured');
    // Sampling from a random LLaMA: the issue's {"":3.5,"":3.5,…} cannot recur.
    const tok = new HFTokenizer(await llama2Json());
    const model = new LlamaForCausalLM(parseLlamaConfig({ hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: tok.vocabSize, max_position_embeddings: 128, initializer_range: 0.5 }));
    model.eval();
    try {
      const schemas: Array<[JsonSchema, SchemaOptions | undefined]> = [
        [{ type: 'object', properties: { x: { type: 'number' }, y: { type: 'number' }, z: { type: 'boolean' } } }, undefined],
        [{ type: 'object', properties: { x: { type: 'number' }, y: { type: 'object', properties: { k: { type: 'integer' } } } } }, { additionalProperties: 'allow' }],
        [{ type: 'object', properties: { x: { type: 'number' } }, additionalProperties: { type: 'number' } }, undefined],
      ];
      let samples = 0;
      for (const [schema, o] of schemas) {
        const declared = new Set(Object.keys((schema as { properties: object }).properties));
        for (const seed of [1, 2, 3, 4, 5, 6]) {
          const r = generateStructured(model, tok, [1], { schema, schemaOptions: o, temperature: 1, seed, maxNewTokens: 48 });
          assert.ok(r.complete, r.text);
          assert.ok(ajvValid(schema, JSON.parse(r.text)), `${r.text} fails ajv`);
          const [top] = objectKeys(r.text.trim());
          for (const k of top) assert.ok(k !== '', `empty key in ${r.text}`);
          for (const k of declared) assert.ok(top.filter((x) => x === k).length <= 1, `'${k}' twice in ${r.text}`);
          if (o === undefined && (schema as { additionalProperties?: unknown }).additionalProperties === undefined) for (const k of top) assert.ok(declared.has(k), `undeclared '${k}' in ${r.text}`);
          samples++;
        }
      }
      assert.equal(samples, 18);
    } finally { model.dispose(); }
  } finally { await shutdown(); }
});
