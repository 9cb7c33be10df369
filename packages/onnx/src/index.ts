export { importOnnx, importModelProto, MAX_OPSET, type ImportOptions } from "./import/import.js";
export { FOLDABLE_OPS, FOLD_MAX_ELEMENTS, type FoldFn } from "./import/context.js";
export { OP_TABLE, type OpMapping } from "./import/ops.js";
export {
  readTensorProto, tensorFromProto, tensorToProto, DEFAULT_MAX_TENSOR_BYTES, type TensorReadOptions,
} from "./tensor.js";
export { parseExternalData, readExternalData, resolveExternalPath, type ExternalDataRef } from "./external.js";
export {
  decodeModelProto, decodeTensorProto, decodeSequenceProto, decodeOptionalProto, decodeMessage, encodeMessage,
  int64ToBigInt, int64ToNumber,
} from "./proto/codec.js";
export {
  encodeModel, encodeTensor, encodeSequence, encodeOptional, makeAttribute, makeNode, makeTensorValueInfo,
  makeTensorProto, makeGraph, makeModel, type AttributeValue, type GraphSpec,
} from "./proto/encode.js";
export { DataType, AttributeType, DataLocation, ContainerElemType, dtypeFromOnnx, onnxFromDType, onnxTypeName } from "./proto/enums.js";
export { ONNX_PROTO } from "./proto/schema.js";
export type * from "./proto/types.js";
export { isUnexpectedImportError } from "./import/import.js";
export {
  exportOnnx, exportModelProto, saveOnnx, irVersionForOpset, EXPORT_ROWS, type ExportOptions, type ExportForm,
} from "./export/export.js";
export { MIN_EXPORT_OPSET } from "./export/context.js";
export type { ExportRow } from "./export/rows.js";
export { unlowerQuantizedOps, UNLOWERED_OPS } from "./export/unlower.js";
