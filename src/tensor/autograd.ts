// Reverse-mode automatic differentiation over a dynamic graph. Each op run with grad enabled
// on inputs that require grad records a GradFn on its output; backward() walks the graph in
// reverse topological order, sums the gradients flowing into each tensor and accumulates the
// result into `.grad` of leaf tensors that require grad (across backward calls, as PyTorch).
import type { Tensor } from './tensor.js';
import { scope, storageSerial, unscoped } from './storage.js';
import type { Storage } from './storage.js';
import { ShapeError, fmtShape } from './errors.js';

export interface GradFn {
  /** Op name, for error messages. */
  readonly name: string;
  readonly inputs: readonly Tensor[];
  /** Gradients with respect to each input (null where the input needs none). */
  backward(gradOutput: Tensor): (Tensor | null)[];
}

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Run fn with gradient recording off (inference). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Whether an op on these inputs should record a GradFn. */
export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  if (!gradEnabled) return false;
  for (const t of inputs) if (t && t.requiresGrad) return true;
  return false;
}

/** needsGrad over an array of any length (no argument spreading: concat may take very many tensors). */
export function needsGradOf(inputs: readonly (Tensor | null | undefined)[]): boolean {
  if (!gradEnabled) return false;
  for (const t of inputs) if (t && t.requiresGrad) return true;
  return false;
}

/** Attach a GradFn to an op's output. */
export function record(out: Tensor, name: string, inputs: Tensor[], backward: (g: Tensor) => (Tensor | null)[]): Tensor {
  out.requiresGrad = true;
  out.gradFn = { name, inputs, backward };
  return out;
}

export interface BackwardOps {
  add(a: Tensor, b: Tensor): Tensor;
  onesLike(t: Tensor): Tensor;
  clone(t: Tensor): Tensor;
  addInPlace(dst: Tensor, src: Tensor): void;
}

export function runBackward(root: Tensor, grad: Tensor | undefined, o: BackwardOps): void {
  if (!root.requiresGrad) throw new Error('backward: tensor does not require grad (no parameter contributed to it, or it was computed under noGrad)');
  if (!grad) {
    if (root.size !== 1) throw new ShapeError('backward', `a gradient must be given for a non-scalar output of shape ${fmtShape(root.shape)}`);
    grad = o.onesLike(root);
  } else if (grad.shape.join() !== root.shape.join()) {
    throw new ShapeError('backward', `gradient shape ${fmtShape(grad.shape)} does not match output shape ${fmtShape(root.shape)}`);
  }
  // Topological order (iterative DFS).
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.gradFn ? t.gradFn.inputs : [];
    if (i < inputs.length) {
      top[1]++;
      const c = inputs[i];
      if (c.requiresGrad && !visited.has(c)) {
        visited.add(c);
        stack.push([c, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  // Gradients are released as soon as they are consumed: each node's backward runs in its own
  // memory scope (its temporaries go when it returns), and a gradient storage created during
  // this pass is freed once no pending gradient refers to it. Storage that existed before the
  // pass (forward activations, the seed gradient) is never freed here.
  const born = storageSerial();
  const refs = new Map<Storage, number>();
  const hold = (t: Tensor): void => { refs.set(t.storage, (refs.get(t.storage) ?? 0) + 1); };
  const drop = (t: Tensor): void => {
    const n = (refs.get(t.storage) ?? 0) - 1;
    if (n > 0) { refs.set(t.storage, n); return; }
    refs.delete(t.storage);
    if (t.storage.serial >= born) t.storage.free();
  };
  const grads = new Map<Tensor, Tensor>();
  grads.set(root, grad);
  hold(grad);
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k];
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      if (!t.gradFn) {
        if (t.requiresGrad) accumulate(t, g, o);
        drop(g);
        continue;
      }
      const fn = t.gradFn;
      const gs = scope(() => fn.backward(g));
      const inputs = fn.inputs;
      for (const gx of gs) if (gx) hold(gx);
      for (let j = 0; j < inputs.length; j++) {
        const x = inputs[j], gx = gs[j];
        if (!gx) continue;
        if (!x.requiresGrad) { drop(gx); continue; }
        if (gx.shape.join() !== x.shape.join()) {
          throw new ShapeError(`backward of ${fn.name}`, `gradient for input ${j} has shape ${fmtShape(gx.shape)}, input has ${fmtShape(x.shape)}`);
        }
        const prevG = grads.get(x);
        if (prevG) {
          const sum = o.add(prevG, gx);
          hold(sum);
          drop(prevG);
          drop(gx);
          grads.set(x, sum);
        } else grads.set(x, gx);
      }
      drop(g);
    }
  } finally {
    gradEnabled = prev;
  }
}

function accumulate(leaf: Tensor, g: Tensor, o: BackwardOps): void {
  if (leaf.grad && !leaf.grad.storage.freed) {
    o.addInPlace(leaf.grad, g);
  } else {
    // The gradient outlives the step's scope: it belongs to the parameter.
    leaf.grad = unscoped(() => o.clone(g));
  }
}
