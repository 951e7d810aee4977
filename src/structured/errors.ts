// Errors of structured generation. Each names what is at fault: the schema keyword and its JSON
// pointer, the regex and its offset, the grammar rule and its line.

/** A JSON pointer or detail cut in the middle past `most` characters (a schema nested 20,000 deep has a pointer as long). */
export function shorten(text: string, most = 240): string {
  if (text.length <= most) return text;
  const head = Math.ceil(most * 0.6), tail = most - head;
  return `${text.slice(0, head)}…(${text.length - most} characters)…${text.slice(text.length - tail)}`;
}

export class StructuredError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StructuredError';
  }
}

/** A JSON Schema keyword (or keyword value) this compiler does not support. Never ignored silently. */
export class UnsupportedKeywordError extends StructuredError {
  constructor(readonly keyword: string, readonly pointer: string, detail = '') {
    super(`unsupported JSON Schema keyword '${shorten(keyword, 80)}' at ${shorten(pointer || '#')}${detail ? `: ${shorten(detail, 300)}` : ''}`);
    this.name = 'UnsupportedKeywordError';
  }
}

/** A schema that is not valid JSON Schema (wrong value type for a keyword, dangling $ref, …). */
export class InvalidSchemaError extends StructuredError {
  constructor(readonly keyword: string, readonly pointer: string, detail: string) {
    super(`invalid JSON Schema: '${shorten(keyword, 80)}' at ${shorten(pointer || '#')}: ${shorten(detail, 300)}`);
    this.name = 'InvalidSchemaError';
  }
}

/** No instance satisfies the schema (or grammar): e.g. minimum > maximum, a required property with schema false. */
export class UnsatisfiableError extends StructuredError {
  constructor(readonly pointer: string, detail: string) {
    super(`unsatisfiable constraint at ${shorten(pointer || '#')}: ${shorten(detail, 300)}`);
    this.name = 'UnsatisfiableError';
  }
}

/** A regular expression we cannot parse or do not support (backreferences, lookaround, …). */
export class RegexError extends StructuredError {
  constructor(readonly pattern: string, readonly offset: number, detail: string) {
    super(`regex /${pattern}/ at offset ${offset}: ${detail}`);
    this.name = 'RegexError';
  }
}

/** A grammar (GBNF) we cannot parse, or one with left recursion / undefined rules. */
export class GrammarError extends StructuredError {
  constructor(readonly where: string, detail: string) {
    super(`grammar ${where}: ${detail}`);
    this.name = 'GrammarError';
  }
}

/** A constraint that grew past its bounds (grammar size, parser states, ambiguity). */
export class ComplexityError extends StructuredError {
  constructor(readonly what: string, readonly limit: number | string, detail = '') {
    super(`constraint too complex: ${what} exceeds ${limit}${detail ? ` (${shorten(detail, 300)})` : ''}`);
    this.name = 'ComplexityError';
  }
}
