// Convolution layers with PyTorch's parameter layouts and default initialisation
// (kaiming_uniform with a = √5: weights and biases uniform in ±1/√fan_in).
import { Tensor } from '../tensor/tensor.js';
import { conv2d, convTranspose2d } from '../tensor/conv.js';
import type { Conv2dOptions } from '../tensor/conv.js';
import { defaultGenerator } from '../tensor/random.js';
import { Module, parameter, initialUniform } from './module.js';
import type { InitOptions } from './layers.js';

type ConvOpts = InitOptions & { stride?: number; padding?: number; bias?: boolean };

/** Weight of `shape`, bias of `outChannels`, both uniform in ±1/√fanIn; stride and padding. */
abstract class ConvLayer extends Module {
  weight: Tensor;
  bias: Tensor | null;
  protected readonly opts: Conv2dOptions;
  constructor(shape: number[], outChannels: number, fanIn: number, o: ConvOpts) {
    super();
    const g = o.generator ?? defaultGenerator, bound = 1 / Math.sqrt(fanIn);
    this.weight = parameter(() => initialUniform(shape, { generator: g, bound }));
    this.bias = (o.bias ?? true) ? parameter(() => initialUniform([outChannels], { generator: g, bound })) : null;
    this.opts = { stride: o.stride ?? 1, padding: o.padding ?? 0 };
  }
}

/** nn.Conv2d: weight (out, in, k, k), bias (out). */
export class Conv2d extends ConvLayer {
  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernel: number, o: ConvOpts = {}) {
    super([outChannels, inChannels, kernel, kernel], outChannels, inChannels * kernel * kernel, o);
  }
  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, this.opts);
  }
}

/** nn.ConvTranspose2d: weight (in, out, k, k), bias (out); fan-in as PyTorch computes it (out·k·k). */
export class ConvTranspose2d extends ConvLayer {
  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernel: number, o: ConvOpts = {}) {
    super([inChannels, outChannels, kernel, kernel], outChannels, outChannels * kernel * kernel, o);
  }
  forward(x: Tensor): Tensor {
    return convTranspose2d(x, this.weight, this.bias, this.opts);
  }
}
