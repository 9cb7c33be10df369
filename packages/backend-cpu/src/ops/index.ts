/** The fast kernels by op name (see src/lower.ts); ops without an entry run the reference kernel. */
import type { Lowering } from "../lower.js";
import { conv, gemm, linear, matmul } from "./float.js";
import {
  convInteger, dynamicQuantizedLinear, matmulInteger, qlinearConv, qlinearMatmul, quantizedConv2d, quantizedLinear,
} from "./quantized.js";
import { affineQuantizedLinear } from "./woq.js";
import { JS_LOWERINGS } from "./js.js";
import { LUT_LOWERINGS } from "./qlut.js";

export const LOWERINGS: ReadonlyMap<string, Lowering> = new Map<string, Lowering>([
  ...JS_LOWERINGS,
  ...LUT_LOWERINGS,
  ["linear", linear],
  ["gemm", gemm],
  ["matmul", matmul],
  ["conv", conv],
  ["quantized_linear", quantizedLinear],
  ["quantized_conv2d", quantizedConv2d],
  ["dynamic_quantized_linear", dynamicQuantizedLinear],
  ["qlinear_matmul", qlinearMatmul],
  ["qlinear_conv", qlinearConv],
  ["matmul_integer", matmulInteger],
  ["conv_integer", convInteger],
  ["affine_quantized_linear", affineQuantizedLinear],
]);
