import { foldConvBatchNormPass, runPass, type Graph } from "@qforge/ir";

/**
 * Folds every foldable conv + batch_norm of `g` the way FX's eval-mode fusion does (a new graph; `g` is
 * untouched). The IR's fold rule already uses torch's fuse_conv_bn_weights float32 arithmetic, so the
 * folded weights equal the golden `fused_float_params` bit for bit.
 */
export function foldConvBatchNormTorch(g: Graph): Graph {
  return runPass(foldConvBatchNormPass, g).graph;
}
