/**
 * Registers the quantized reference kernels (schemas: @qforge/ir ops/quantized.ts). Importing this
 * module once (the runtime's index does) makes them available to the interpreter and `runOp`.
 */
import { registerKernel } from "../kernel.js";
import {
  convInteger, dequantizeLinear, dynamicQuantizeLinear, matmulInteger, qlinearConv, qlinearMatmul, quantizeLinear,
} from "./onnx.js";
import {
  quantizedAdaptiveAvgPool2d, quantizedAdd, quantizedAvgPool2d, quantizedCat, quantizedHardsigmoid, quantizedHardswish,
  quantizedHardtanh, quantizedLeakyRelu, quantizedMaxPool2d, quantizedMean, quantizedMul, quantizedRelu, quantizedSigmoid,
  quantizedTanh, quantizedUpsampleNearest2d,
} from "./torch-float.js";
import { dynamicQuantizedLinear, quantizedConv2d, quantizedLinear } from "./torch-linear.js";

registerKernel("quantize_linear", quantizeLinear);
registerKernel("dequantize_linear", dequantizeLinear);
registerKernel("dynamic_quantize_linear", dynamicQuantizeLinear);
registerKernel("matmul_integer", matmulInteger);
registerKernel("conv_integer", convInteger);
registerKernel("qlinear_matmul", qlinearMatmul);
registerKernel("qlinear_conv", qlinearConv);
registerKernel("quantized_linear", quantizedLinear);
registerKernel("quantized_conv2d", quantizedConv2d);
registerKernel("dynamic_quantized_linear", dynamicQuantizedLinear);
registerKernel("quantized_add", quantizedAdd);
registerKernel("quantized_mul", quantizedMul);
registerKernel("quantized_cat", quantizedCat);
registerKernel("quantized_relu", quantizedRelu);
registerKernel("quantized_hardswish", quantizedHardswish);
registerKernel("quantized_sigmoid", quantizedSigmoid);
registerKernel("quantized_hardsigmoid", quantizedHardsigmoid);
registerKernel("quantized_tanh", quantizedTanh);
registerKernel("quantized_leaky_relu", quantizedLeakyRelu);
registerKernel("quantized_hardtanh", quantizedHardtanh);
registerKernel("quantized_max_pool2d", quantizedMaxPool2d);
registerKernel("quantized_avg_pool2d", quantizedAvgPool2d);
registerKernel("quantized_adaptive_avg_pool2d", quantizedAdaptiveAvgPool2d);
registerKernel("quantized_mean", quantizedMean);
registerKernel("quantized_upsample_nearest2d", quantizedUpsampleNearest2d);

