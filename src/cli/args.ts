// Argument helpers shared by the commands (kept apart from main.ts, which loads the commands).

/** A bad command-line argument: exit code 2 like other usage errors. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A numeric option's value, checked (undefined when the option is absent). */
export function num(v: string | undefined, name: string, check: (x: number) => boolean = Number.isFinite): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!check(x)) throw new UsageError(`--${name}: invalid value '${v}'`);
  return x;
}
