export { f32, rint, fmaF32, truncToInt64 } from "./float32.js";
export {
  type TorchQDType, type QuantDType, isTorchQDType, storageDTypeOf, isIntegerQuantDType, isFloat8,
  quantRange, resolveQuantRange,
} from "./qdtype.js";
export { type ParamVector } from "./tensor-io.js";
export {
  quantizePerTensor, quantizePerChannel, dequantizePerTensor, dequantizePerChannel, quantizeValue,
} from "./classic.js";
export { chooseQuantizationParamsAten, type AtenQParams, type AtenQParamsOptions } from "./aten-qparams.js";
export {
  type Granularity, PerTensor, PerAxis, PerGroup, PerToken, blockSizeFor, blockLayout, type BlockLayout,
} from "./blocks.js";
export {
  MappingType, ZeroPointDomain, chooseQParamsAffine, chooseQParamsAffineWithMinMax, quantizeAffine,
  dequantizeAffine, type ChooseQParamsAffineOptions, type AffineQParams,
} from "./affine.js";
