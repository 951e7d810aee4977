// Reference optimizer kernels (see KERNEL_ARGS.adamw / KERNEL_ARGS.sgd).
import { H } from '../heap.js';

export function adamw(p: number, g: number, m: number, v: number, vmax: number, n: number, lr: number, beta1: number, beta2: number, eps: number, wd: number, bc1: number, bc2: number): void {
  const f = H.f32;
  for (let i = 0; i < n; i++) {
    const gi = f[(g >>> 2) + i];
    let pi = f[(p >>> 2) + i];
    pi -= lr * wd * pi;
    const mi = (f[(m >>> 2) + i] = beta1 * f[(m >>> 2) + i] + (1 - beta1) * gi);
    let vi = (f[(v >>> 2) + i] = beta2 * f[(v >>> 2) + i] + (1 - beta2) * gi * gi);
    if (vmax) vi = f[(vmax >>> 2) + i] = Math.max(f[(vmax >>> 2) + i], vi);
    f[(p >>> 2) + i] = pi - (lr * (mi / bc1)) / (Math.sqrt(vi / bc2) + eps);
  }
}

export function sgd(p: number, g: number, buf: number, n: number, lr: number, momentum: number, dampening: number, wd: number, nesterov: number, first: number): void {
  const f = H.f32;
  for (let i = 0; i < n; i++) {
    let d = f[(g >>> 2) + i] + wd * f[(p >>> 2) + i];
    if (momentum !== 0) {
      const b = first ? d : momentum * f[(buf >>> 2) + i] + (1 - dampening) * d;
      f[(buf >>> 2) + i] = b;
      d = nesterov ? d + momentum * b : b;
    }
    f[(p >>> 2) + i] -= lr * d;
  }
}
