/**
 * The WGSL kernels by op name. A node whose op is not here, or whose kernel declines it (dtype,
 * attribute, an input that must be known before the run), falls back to the reference kernel on
 * the CPU, and its placement says why.
 */
import { convKernel } from "./conv.js";
import { elementwiseKernel, whereKernel } from "./elementwise.js";
import { gemmKernel, linearKernel, matmulKernel } from "./matmul.js";
import {
  aliasKernel, concatKernel, expandKernel, gatherKernel, padKernel, sliceKernel, splitKernel, tileKernel, transposeKernel,
} from "./movement.js";
import { adaptiveAvgPoolKernel, batchNormKernel, windowPoolKernel } from "./pool.js";
import {
  lutBinaryKernel, lutUnaryKernel, qlinearConvKernel, qlinearMatmulKernel, quantizedCatKernel, quantizedConv2dKernel, quantizedLinearKernel,
  quantizedMaxPoolKernel, quantizeKernel,
} from "./quantized.js";
import { quantizedAvgPoolKernel } from "./qpool.js";
import { resizeKernel } from "./resize.js";
import { layerNormKernel, reduceKernel, softmaxKernel } from "./rows.js";
import type { GpuKernel } from "./types.js";

const ALL: readonly GpuKernel[] = [
  elementwiseKernel, whereKernel, matmulKernel, linearKernel, gemmKernel, convKernel,
  aliasKernel, transposeKernel, sliceKernel, expandKernel, splitKernel, concatKernel, gatherKernel, padKernel, tileKernel,
  windowPoolKernel, adaptiveAvgPoolKernel, batchNormKernel, softmaxKernel, layerNormKernel, reduceKernel,
  lutUnaryKernel, quantizeKernel, lutBinaryKernel, quantizedCatKernel, quantizedMaxPoolKernel,
  quantizedConv2dKernel, qlinearConvKernel, quantizedLinearKernel, qlinearMatmulKernel, quantizedAvgPoolKernel, resizeKernel,
];

const BY_OP = new Map<string, GpuKernel>();
for (const k of ALL) {
  for (const op of k.ops) {
    if (BY_OP.has(op)) throw new Error(`two WGSL kernels claim '${op}'`);
    BY_OP.set(op, k);
  }
}

/** The WGSL kernel registered for an op, if any. */
export function kernelFor(op: string): GpuKernel | undefined {
  return BY_OP.get(op);
}

/** Ops with a WGSL kernel, sorted. */
export function listGpuOps(): string[] {
  return [...BY_OP.keys()].sort();
}
