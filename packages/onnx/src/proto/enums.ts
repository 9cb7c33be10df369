import type { DType } from "@qforge/ir";

/** TensorProto.DataType (onnx.proto3). */
export const DataType = {
  UNDEFINED: 0, FLOAT: 1, UINT8: 2, INT8: 3, UINT16: 4, INT16: 5, INT32: 6, INT64: 7, STRING: 8, BOOL: 9,
  FLOAT16: 10, DOUBLE: 11, UINT32: 12, UINT64: 13, COMPLEX64: 14, COMPLEX128: 15, BFLOAT16: 16,
  FLOAT8E4M3FN: 17, FLOAT8E4M3FNUZ: 18, FLOAT8E5M2: 19, FLOAT8E5M2FNUZ: 20, UINT4: 21, INT4: 22,
  FLOAT4E2M1: 23, FLOAT8E8M0: 24, UINT2: 25, INT2: 26,
} as const;

/** AttributeProto.AttributeType. */
export const AttributeType = {
  UNDEFINED: 0, FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8,
  TENSORS: 9, GRAPHS: 10, SPARSE_TENSOR: 11, SPARSE_TENSORS: 12, TYPE_PROTO: 13, TYPE_PROTOS: 14,
} as const;

/** TensorProto.DataLocation. */
export const DataLocation = { DEFAULT: 0, EXTERNAL: 1 } as const;

/** SequenceProto.DataType / OptionalProto.DataType. */
export const ContainerElemType = { UNDEFINED: 0, TENSOR: 1, SPARSE_TENSOR: 2, SEQUENCE: 3, MAP: 4, OPTIONAL: 5 } as const;

const TO_QFORGE: ReadonlyMap<number, DType> = new Map<number, DType>([
  [DataType.FLOAT, "float32"], [DataType.UINT8, "uint8"], [DataType.INT8, "int8"], [DataType.UINT16, "uint16"],
  [DataType.INT16, "int16"], [DataType.INT32, "int32"], [DataType.INT64, "int64"], [DataType.BOOL, "bool"],
  [DataType.FLOAT16, "float16"], [DataType.DOUBLE, "float64"], [DataType.UINT32, "uint32"],
  [DataType.BFLOAT16, "bfloat16"], [DataType.FLOAT8E4M3FN, "float8_e4m3fn"], [DataType.FLOAT8E5M2, "float8_e5m2"],
  [DataType.UINT4, "uint4"], [DataType.INT4, "int4"], [DataType.UINT2, "uint2"], [DataType.INT2, "int2"],
]);

const FROM_QFORGE: ReadonlyMap<DType, number> = new Map([...TO_QFORGE].map(([k, v]) => [v, k]));

const NAMES: ReadonlyMap<number, string> = new Map(Object.entries(DataType).map(([k, v]) => [v, k]));

/** ONNX's name for a data type number ("FLOAT", "UINT64", ...), or `type <n>` for numbers it does not define. */
export function onnxTypeName(dataType: number): string {
  return NAMES.get(dataType) ?? `type ${dataType}`;
}

/** The qforge dtype for an ONNX data type, or undefined when qforge has none (string, uint64, complex, fnuz fp8, fp4, e8m0). */
export function dtypeFromOnnx(dataType: number): DType | undefined {
  return TO_QFORGE.get(dataType);
}

/** The ONNX data type number for a qforge dtype, or undefined when ONNX has none (int3, uint5, ...). */
export function onnxFromDType(dtype: DType): number | undefined {
  return FROM_QFORGE.get(dtype);
}
