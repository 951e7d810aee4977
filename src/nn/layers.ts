// Basic layers with PyTorch's parameter layouts and default initialisations.
import { Tensor } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { embedding, rmsNorm, layerNorm, dropout } from '../tensor/nn.js';
import { Generator, defaultGenerator } from '../tensor/random.js';
import { Module, parameter, initialNormal, initialUniform } from './module.js';

export interface InitOptions { generator?: Generator; std?: number }

/**
 * y = x Wᵀ + b, W of shape (out, in). Default init: normal(0, std) (std 0.02 as HF LLaMA); with
 * `bound`, uniform in [−bound, bound] (PyTorch's own nn.Linear default is bound = 1/√in).
 */
export class Linear extends Module {
  weight: Tensor;
  bias: Tensor | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: InitOptions & { bias?: boolean; bound?: number } = {}) {
    super();
    const g = opts.generator ?? defaultGenerator, std = opts.std ?? 0.02;
    this.weight = parameter(() => opts.bound !== undefined
      ? initialUniform([outFeatures, inFeatures], { generator: g, bound: opts.bound, deferrable: true })
      : initialNormal([outFeatures, inFeatures], { generator: g, std, deferrable: true }));
    this.bias = opts.bias ? parameter(() => T.zeros([outFeatures])) : null;
  }
  forward(x: Tensor): Tensor {
    return T.linear(x, this.weight, this.bias);
  }
}

export class Embedding extends Module {
  weight: Tensor;
  constructor(readonly numEmbeddings: number, readonly dim: number, opts: InitOptions = {}) {
    super();
    const g = opts.generator ?? defaultGenerator;
    this.weight = parameter(() => initialNormal([numEmbeddings, dim], { generator: g, std: opts.std ?? 0.02, deferrable: true }));
  }
  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}

export class RMSNorm extends Module {
  weight: Tensor;
  constructor(readonly dim: number, readonly eps = 1e-6) {
    super();
    this.weight = parameter(() => T.ones([dim]));
  }
  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}

export class LayerNorm extends Module {
  weight: Tensor;
  bias: Tensor;
  constructor(readonly dim: number, readonly eps = 1e-5) {
    super();
    this.weight = parameter(() => T.ones([dim]));
    this.bias = parameter(() => T.zeros([dim]));
  }
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

export class Dropout extends Module {
  constructor(readonly p: number, readonly generator?: Generator) {
    super();
  }
  forward(x: Tensor): Tensor {
    return dropout(x, this.p, { training: this.training, generator: this.generator });
  }
}
