// Learning-rate schedules as multipliers of the base rate, as the Hugging Face transformers
// schedules define them (get_constant_schedule, get_cosine_schedule_with_warmup,
// get_linear_schedule_with_warmup). `step` counts from 0.

export type Schedule = (step: number) => number;

export function constantSchedule(): Schedule {
  return () => 1;
}

/** Linear warmup for `warmup` steps, then cosine decay to minRatio at `total` steps. */
export function cosineWithWarmup(warmup: number, total: number, minRatio = 0): Schedule {
  return (step) => {
    if (step < warmup) return step / Math.max(1, warmup);
    const progress = (step - warmup) / Math.max(1, total - warmup);
    const f = Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
    return f * (1 - minRatio) + minRatio;
  };
}

/** Linear warmup for `warmup` steps, then linear decay to 0 at `total` steps. */
export function linearWithWarmup(warmup: number, total: number): Schedule {
  return (step) => {
    if (step < warmup) return step / Math.max(1, warmup);
    return Math.max(0, (total - step) / Math.max(1, total - warmup));
  };
}
