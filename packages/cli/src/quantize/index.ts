export { quantizeModel, type QuantizeResult, type ProgressCallback } from "./pipeline.js";
export {
  resolveQuantizeOptions, quantizationConfig, makeQuantizer, activationObserver, describeWeights, QUANTIZERS, MODES, METHODS,
  type QuantizeOptions, type ResolvedQuantizeOptions, type QuantizerName, type QuantizeMode, type CalibrationMethod,
} from "./options.js";
export { resolveExclusions, excludingQuantizer, type Exclusions } from "./exclude.js";
export {
  weightOnlyQuantize, quantizeWeight, WEIGHT_ONLY_OPS, type WeightOnlyOptions, type WeightOnlyReport, type WeightLayerReport,
  type WeightAxes, type QuantizedWeight,
} from "./weight-only.js";
export {
  formatSummary, formatBytes, classifyAnnotatedNodes, classifyWeightOnlyNodes, displayOp,
  type QuantizeSummary, type FloatNode, type SummaryFiles,
} from "./summary.js";
export { writeFileAtomic, tempPathFor } from "./write.js";
export { exportQuantized, type OnnxForm } from "./export.js";
