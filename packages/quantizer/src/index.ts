/**
 * @qforge/quantizer: the Quantizer plugin API of the PT2E flow (torch.ao.quantization.quantizer) —
 * quantization specs as JSON data in `node.meta.quantization_annotation`, annotation helpers, pattern
 * and scope filters — and the built-in quantizers (XNNPACK, X86 Inductor, Embedding, Composable).
 */
export * from "./spec.js";
export {
  getAnnotation, isAnnotated, anyAnnotated, annotateNode, claimFloat, edge, nodeOutput, sharedWith, annotatedNodes,
  type AnnotationInput,
} from "./annotation.js";
export {
  registerDeriveQParamsFn, getDeriveQParamsFn, hasDeriveQParamsFn, biasScaleFromInputAndWeight, derivedBiasSpec,
  BIAS_SCALE_FROM_INPUT_AND_WEIGHT, type DeriveQParamsFn, type QParamsSource,
} from "./derive.js";
export { validateSpec, isPerChannelQScheme } from "./validate-spec.js";
export { validateAnnotations, describeTarget } from "./validate.js";
export { graphViews, matchNodes, chainPattern, findChains, type GraphViews, type OpChoice, type ChainOptions } from "./views.js";
export { moduleNameFilter, moduleTypeFilter, operatorTypeFilter, allNodes, anyNode, type NodeFilter, type PartitionFilter } from "./filters.js";
export {
  annotateGraph, annotationStages, ConfiguredQuantizer,
  type Quantizer, type AnnotateContext, type ConfigTable, type AnnotationStage,
} from "./quantizer.js";
export {
  getInputActQSpec, getOutputActQSpec, getWeightQSpec, getBiasQSpec, fixedQParamsSpec, type QuantizationConfig,
} from "./config.js";
export { OP_TO_ANNOTATOR, SHARE_QPARAMS_OPS, type Annotator, type AnnotatorName } from "./annotators.js";
export { XnnpackQuantizer, getSymmetricQuantizationConfig, type SymmetricQuantizationOptions } from "./xnnpack.js";
export { X86InductorQuantizer, getDefaultX86InductorQuantizationConfig, type X86QuantizationOptions } from "./x86.js";
export { EmbeddingQuantizer, getEmbeddingQuantizationConfig } from "./embedding.js";
export { ComposableQuantizer } from "./composable.js";
export {
  fuseOnnxHardswish, foldConvAffine, foldAffineIntoConv, normalizeOnnxForAnnotation, findOnnxLinears, annotateOnnxLinears, annotateActivationMatmuls, onnxLinearInputSpecs, withChannelAxis,
  type OnnxLinear,
} from "./onnx-patterns.js";
