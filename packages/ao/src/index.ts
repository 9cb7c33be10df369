/**
 * @qforge/ao: torchao's `quantize_` for qforge. One call swaps the weights of a Module's Linear (and,
 * for weight-only configs, Embedding) layers, or of an ExportedProgram's linear nodes, for quantized
 * weight tensors (AffineQuantizedTensor / CodebookQuantizedTensor) with packed layouts; the quantized
 * ops dispatch to kernels by device and layout, files round-trip bit-exactly, and weightReport says
 * what it cost in accuracy and saved in bytes.
 */
import "./kernels/cpu.js";

export {
  type WeightLayout, PlainLayout, Int4PairsLayout, TilesLayout, U32WordsLayout, layoutFromAttrs,
  type AffineQuantizedTensor, type CodebookQuantizedTensor, type QuantizedWeight, type AffineWeightOptions,
  affineQuantizeWeight, affineQuantizeWeightStatic, packWeight, unpackWeight, withLayout, intRepr, dequantizeWeight, weightNbytes, describeWeight,
  affineWeightAttrs, codebookWeightAttrs, type WeightDescriptor, weightDescriptor, weightTensorNames, weightTensors, weightFromParts,
} from "./tensor.js";
export { codebookQuantizeWeight, kmeans1d, nearestEntry, type CodebookOptions } from "./codebook.js";
export {
  type ActivationQuant, type ActivationDType, type LinearCompute, NO_ACTIVATION_QUANT, activationAttrs, describeActivation, checkActivation,
} from "./activation.js";
export { QuantizedLinear, QuantizedEmbedding, ObservedLinear } from "./modules.js";
export {
  AOBaseConfig, type ConfigClass, type ProgramSite, type QuantizeTarget, type FilterFn, type WeightSite, type WeightSwap,
  type WeightHandler, type ModuleHandler, type HandlerOptions, registerQuantizeModuleHandler, registerQuantizeWeightHandler,
  isProgramSite, isLinear, isEmbedding, isLinearOrEmbedding, isObservedLinear,
} from "./registry.js";
export {
  Int8WeightOnlyConfig, Int4WeightOnlyConfig, Int8DynamicActivationInt8WeightConfig, Int8DynamicActivationIntxWeightConfig,
  Int8DynamicActivationInt4WeightConfig, Float8WeightOnlyConfig, Float8DynamicActivationFloat8WeightConfig,
  Int8StaticActivationInt8WeightConfig, CodebookWeightOnlyConfig, type StaticQParams,
} from "./configs.js";
export { quantize_, programSites, siteFqn, type QuantizeOptions } from "./quantize.js";
export { insertObservers_, calibrateLinearInputs, defaultActivationObserver } from "./static.js";
export {
  AO_OPS, type AoOp, type AoKernelSpec, registerAoKernel, unregisterAoKernel, listAoKernels, selectAoKernel, planAoKernels,
  type KernelPlanRow, aoKernels, runQuantized, type AoRunOptions,
} from "./dispatch.js";
export { activationOperand } from "./kernels/cpu.js";
export {
  encodeSafetensors, decodeSafetensors, type SafetensorsFile, saveQuantizedModule, loadQuantizedModule, saveProgram, loadProgram,
} from "./serialize.js";
export { weightReport, formatWeightReport, quantizedWeights, weightOfNode, sqnr, type WeightReport, type WeightReportRow } from "./report.js";
