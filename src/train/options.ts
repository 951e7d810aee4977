// Trainer options: the defaults, then each given option that is not undefined (a CLI passes
// undefined for a flag left out).
export function withDefaults<T extends object>(defaults: T, given: object = {}): T {
  return { ...defaults, ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) } as T;
}
