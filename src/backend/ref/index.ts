// The reference backend: every kernel in plain TypeScript, written to be obviously correct
// rather than fast. Tests compare the wasm backend against it.
import type { Backend, KernelName, KernelTable } from '../kernels.js';
import { SequentialBatch, checkKernelArgs } from '../kernels.js';
import { sgemm } from './matmul.js';
import { binary, copy, cumsum, fill, reduce, unary, unary_bwd, where } from './elementwise.js';
import * as nn from './nn.js';
import { adamw, sgd } from './optim.js';
import { attention_fwd, attention_bwd } from './attention.js';
import { causal_conv1d_fwd, causal_conv1d_bwd, selective_scan_fwd, selective_scan_bwd } from './ssm.js';
import { moe_swiglu, moe_down } from './moe.js';
import { im2col, col2im } from './conv.js';
import { q8_0_matmul, q8_0_rows, quant_matmul, quant_rows, quantize_q8_0, quantize_blocks } from './quant.js';

export const refKernels: KernelTable = {
  sgemm, copy, binary, where, unary, unary_bwd, reduce, cumsum, fill, adamw, sgd,
  softmax: nn.softmax, softmax_bwd: nn.softmax_bwd, cross_entropy: nn.cross_entropy, cross_entropy_bwd: nn.cross_entropy_bwd,
  embedding: nn.embedding, embedding_bwd: nn.embedding_bwd, rmsnorm: nn.rmsnorm, rmsnorm_bwd: nn.rmsnorm_bwd,
  rmsnorm_bwd_w: nn.rmsnorm_bwd_w, layernorm: nn.layernorm, layernorm_bwd: nn.layernorm_bwd,
  layernorm_bwd_wb: nn.layernorm_bwd_wb, rope: nn.rope, attention_fwd, attention_bwd,
  swiglu: nn.swiglu, rope_qkv: nn.rope_qkv, bf16_pack: nn.bf16_pack, bf16_widen: nn.bf16_widen,
  causal_conv1d_fwd, causal_conv1d_bwd, selective_scan_fwd, selective_scan_bwd,
  moe_swiglu, moe_down, im2col, col2im, q8_0_matmul, q8_0_rows, quant_matmul, quant_rows, quantize_q8_0, quantize_blocks,
};

export const refBackend: Backend = {
  name: 'ref',
  threads: 1,
  call(kernel: KernelName, args: number[]): void {
    checkKernelArgs(kernel, args);
    refKernels[kernel](...args, 0, 1);
  },
  batch() {
    return new SequentialBatch(refBackend);
  },
};
