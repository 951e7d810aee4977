// Errors that name the op and the shapes or tensor at fault.
export class ShapeError extends Error {
  constructor(op: string, detail: string) {
    super(`${op}: ${detail}`);
    this.name = 'ShapeError';
  }
}
export class DTypeError extends Error {
  constructor(op: string, detail: string) {
    super(`${op}: ${detail}`);
    this.name = 'DTypeError';
  }
}
export class IndexError extends Error {
  constructor(op: string, detail: string) {
    super(`${op}: ${detail}`);
    this.name = 'IndexError';
  }
}
export class NonFiniteError extends Error {
  constructor(readonly tensorName: string, readonly count: number, readonly firstIndex: number, readonly firstValue: number) {
    super(`${tensorName}: ${count} non-finite value(s); first at flat index ${firstIndex} (${firstValue})`);
    this.name = 'NonFiniteError';
  }
}
export function fmtShape(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}
