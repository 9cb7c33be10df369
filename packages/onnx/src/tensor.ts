import {
  QforgeError, dtypeInfo, numel, storageLength, tensor, type DType, type Tensor, type TypedArray,
} from "@qforge/ir";
import { bytesOf, decodeTensorProto, int64ToBigInt, int64ToNumber } from "./proto/codec.js";
import { DataLocation, DataType, dtypeFromOnnx, onnxFromDType, onnxTypeName } from "./proto/enums.js";
import type { TensorProto } from "./proto/types.js";
import { parseExternalData, readExternalData } from "./external.js";

/** 2 GiB: the default cap on one tensor's storage (ONNX's protobuf limit is the same order). */
export const DEFAULT_MAX_TENSOR_BYTES = 2 ** 31;

export interface TensorReadOptions {
  /** The folder external data locations are relative to (the model's folder). */
  baseDir?: string;
  /** Largest storage one tensor may declare, in bytes (default 2 GiB); larger is BAD_MODEL. */
  maxTensorBytes?: number;
  /** Name used in error messages when the proto has none. */
  name?: string;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

type StorageName = ReturnType<typeof dtypeInfo>["storage"];

const BYTES_PER: Record<StorageName, number> = {
  Float32Array: 4, Float64Array: 8, Int8Array: 1, Int16Array: 2, Int32Array: 4, BigInt64Array: 8,
  Uint8Array: 1, Uint16Array: 2, Uint32Array: 4,
};

function view(storage: StorageName, buf: ArrayBufferLike, byteOffset: number, length: number): TypedArray {
  switch (storage) {
    case "Float32Array": return new Float32Array(buf, byteOffset, length);
    case "Float64Array": return new Float64Array(buf, byteOffset, length);
    case "Int8Array": return new Int8Array(buf, byteOffset, length);
    case "Int16Array": return new Int16Array(buf, byteOffset, length);
    case "Int32Array": return new Int32Array(buf, byteOffset, length);
    case "BigInt64Array": return new BigInt64Array(buf, byteOffset, length);
    case "Uint8Array": return new Uint8Array(buf, byteOffset, length);
    case "Uint16Array": return new Uint16Array(buf, byteOffset, length);
    case "Uint32Array": return new Uint32Array(buf, byteOffset, length);
  }
}

/** Storage from little-endian bytes: a view when aligned (no copy), else an aligned copy. */
function storageFromRaw(dtype: DType, length: number, raw: Uint8Array): TypedArray {
  const storage = dtypeInfo(dtype).storage;
  const per = BYTES_PER[storage];
  if (LITTLE_ENDIAN) {
    // new Uint8Array(view) copies (Buffer#slice would not: it is a view in Node).
    const bytes = raw.byteOffset % per === 0 ? raw : new Uint8Array(raw);
    const out = view(storage, bytes.buffer, bytes.byteOffset, length);
    return dtype === "bool" ? normalizeBool(out as Uint8Array) : out;
  }
  // Big-endian hosts: decode element by element (raw_data is little-endian by spec).
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out = view(storage, new ArrayBuffer(length * per), 0, length);
  for (let i = 0; i < length; i++) {
    const o = i * per;
    switch (storage) {
      case "Float32Array": out[i] = dv.getFloat32(o, true); break;
      case "Float64Array": out[i] = dv.getFloat64(o, true); break;
      case "Int8Array": out[i] = dv.getInt8(o); break;
      case "Int16Array": out[i] = dv.getInt16(o, true); break;
      case "Int32Array": out[i] = dv.getInt32(o, true); break;
      case "BigInt64Array": out[i] = dv.getBigInt64(o, true); break;
      case "Uint8Array": out[i] = dv.getUint8(o); break;
      case "Uint16Array": out[i] = dv.getUint16(o, true); break;
      case "Uint32Array": out[i] = dv.getUint32(o, true); break;
    }
  }
  return dtype === "bool" ? normalizeBool(out as Uint8Array) : out;
}

/** ONNX bools are one byte each, 1 for true; any other nonzero byte is read as true (copying only then). */
function normalizeBool(a: Uint8Array): Uint8Array {
  if (a.every((x) => x <= 1)) return a;
  return a.map((x) => (x === 0 ? 0 : 1));
}

/** Which typed field holds a dtype's values when raw_data is not used (onnx.proto3 field comments). */
function typedField(dtype: DType): "float_data" | "double_data" | "int64_data" | "uint64_data" | "int32_data" {
  switch (dtype) {
    case "float32": return "float_data";
    case "float64": return "double_data";
    case "int64": return "int64_data";
    case "uint32": return "uint64_data";
    default: return "int32_data";
  }
}

const TYPED_FIELDS = ["float_data", "double_data", "int64_data", "uint64_data", "int32_data", "string_data"] as const;

/**
 * Bytes of storage a tensor of `dims` needs (packed sub-byte dtypes rounded up to whole bytes);
 * Infinity when the element count is beyond 2^53, so that a comparison with a cap still refuses it.
 */
export function declaredBytes(dtype: DType, dims: readonly number[]): number {
  // An empty dim first: [2^60, 2^60, 2^60, 2^60, 2^60, 2^60, 0] must not multiply through Infinity to NaN.
  if (dims.includes(0)) return 0;
  let count = 1;
  for (const d of dims) count *= d;
  if (count > Number.MAX_SAFE_INTEGER) return Infinity;
  return storageLength(dtype, count) * BYTES_PER[dtypeInfo(dtype).storage];
}

/** Dims as numbers with the element count; a declared size over the byte limit is BAD_MODEL before anything is allocated. */
export function checkedDims(dimsIn: readonly unknown[], dtype: DType, maxBytes: number, name: string): { dims: number[]; count: number; bytes: number } {
  const dims = dimsIn.map((d, i) => {
    const n = int64ToNumber(d as never, `dim ${i} of tensor '${name}'`, name);
    if (n < 0) throw new QforgeError("BAD_MODEL", `tensor '${name}' has negative dim ${n}`, { node: name });
    return n;
  });
  const bytes = declaredBytes(dtype, dims);
  const count = bytes === 0 ? 0 : dims.reduce((a, b) => a * b, 1);
  if (bytes > maxBytes) {
    throw new QforgeError("BAD_MODEL", `tensor '${name}' declares dims [${dims.join(", ")}] of ${dtype}: ${bytes} bytes, over the ${maxBytes}-byte limit`, {
      node: name, hint: "raise opts.maxTensorBytes if the model really is this large",
    });
  }
  return { dims, count, bytes };
}

/** The qforge dtype for a TensorProto/TypeProto elem type, or a typed error naming the value. */
export function dtypeForValue(dataType: number, what: string): DType {
  const d = dtypeFromOnnx(dataType);
  if (d !== undefined) return d;
  if (dataType === DataType.UNDEFINED) throw new QforgeError("BAD_MODEL", `${what} has no data type`, { node: what });
  if (dataType > DataType.INT2 || dataType < 0) {
    throw new QforgeError("BAD_MODEL", `${what} has unknown data type ${dataType}`, { node: what });
  }
  throw new QforgeError("UNSUPPORTED", `${what} has data type ${onnxTypeName(dataType)}, which qforge does not support`, {
    node: what, hint: "qforge tensors are numeric: string, uint64, complex, fp8 fnuz, fp4 and e8m0 have no qforge dtype",
  });
}

/**
 * Converts a decoded TensorProto into a qforge Tensor. raw_data is viewed in place when aligned;
 * float16/bfloat16/fp8 keep their raw bits (Uint16Array/Uint8Array), int64 becomes a BigInt64Array,
 * bool a Uint8Array of 0/1, int4/uint4/int2/uint2 stay packed (same LSB-first order as qforge).
 */
export function tensorFromProto(p: TensorProto, opts: TensorReadOptions = {}): Tensor {
  const name = p.name !== undefined && p.name !== "" ? p.name : (opts.name ?? "tensor");
  const dtype = dtypeForValue(p.data_type ?? 0, `tensor '${name}'`);
  if (p.segment !== null && p.segment !== undefined) {
    throw new QforgeError("UNSUPPORTED", `tensor '${name}' is a segment of a larger tensor`, { node: name });
  }
  const maxBytes = opts.maxTensorBytes ?? DEFAULT_MAX_TENSOR_BYTES;
  const { dims, count, bytes } = checkedDims(p.dims ?? [], dtype, maxBytes, name);
  const length = storageLength(dtype, count);
  const storage = dtypeInfo(dtype).storage;

  if (p.data_location === DataLocation.EXTERNAL) {
    const ref = parseExternalData(p.external_data ?? [], name);
    const raw = readExternalData(ref, opts.baseDir, bytes, name);
    return tensor(dtype, dims, storageFromRaw(dtype, length, raw));
  }
  if (p.data_location !== undefined && p.data_location !== DataLocation.DEFAULT) {
    throw new QforgeError("BAD_MODEL", `tensor '${name}' has unknown data_location ${p.data_location}`, { node: name });
  }

  const raw = bytesOf(p.raw_data);
  if (raw.length > 0) {
    if (raw.length !== bytes) {
      throw new QforgeError("BAD_MODEL", `tensor '${name}': raw_data has ${raw.length} bytes, ${dtype}[${dims.join(",")}] needs ${bytes}`, { node: name });
    }
    return tensor(dtype, dims, storageFromRaw(dtype, length, raw));
  }

  const field = typedField(dtype);
  const values = (p[field] ?? []) as readonly unknown[];
  if (values.length !== length) {
    const other = TYPED_FIELDS.find((f) => f !== field && (p[f]?.length ?? 0) > 0);
    const where = other !== undefined && values.length === 0 ? ` (its values are in ${other}, which does not hold ${dtype})` : "";
    throw new QforgeError("BAD_MODEL", `tensor '${name}': ${dtype}[${dims.join(",")}] needs ${length} values, ${field} has ${values.length}${where}`, { node: name });
  }
  const out = view(storage, new ArrayBuffer(length * BYTES_PER[storage]), 0, length);
  if (out instanceof BigInt64Array) {
    for (let i = 0; i < length; i++) out[i] = int64ToBigInt(values[i] as never);
  } else if (field === "uint64_data") {
    for (let i = 0; i < length; i++) out[i] = Number(BigInt.asUintN(32, int64ToBigInt(values[i] as never)));
  } else if (dtype === "bool") {
    for (let i = 0; i < length; i++) out[i] = values[i] === 0 ? 0 : 1;
  } else {
    // Typed-array assignment wraps int32_data to the storage width, which is exactly how ONNX stores
    // 8/16-bit integers, float16/bfloat16/fp8 bit patterns and packed 4-/2-bit bytes in int32_data.
    for (let i = 0; i < length; i++) out[i] = values[i] as number;
  }
  return tensor(dtype, dims, out);
}

/** Decodes a serialized TensorProto (e.g. a node test's input_0.pb). */
export function readTensorProto(bytes: Uint8Array, opts: TensorReadOptions = {}): Tensor {
  return tensorFromProto(decodeTensorProto(bytes), opts);
}

/** A TensorProto holding `t` in raw_data (little-endian, as the spec requires). */
export function tensorToProto(t: Tensor, name = ""): TensorProto {
  const dataType = onnxFromDType(t.dtype);
  if (dataType === undefined) {
    throw new QforgeError("UNSUPPORTED", `dtype ${t.dtype} has no ONNX data type`, { node: name === "" ? undefined : name });
  }
  let raw = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  if (!LITTLE_ENDIAN && BYTES_PER[dtypeInfo(t.dtype).storage] > 1) raw = toLittleEndian(t);
  const proto: TensorProto = { dims: [...t.shape], data_type: dataType, raw_data: raw };
  if (name !== "") proto.name = name;
  if (numel(t.shape) === 0) delete proto.raw_data;
  return proto;
}

function toLittleEndian(t: Tensor): Uint8Array {
  const per = BYTES_PER[dtypeInfo(t.dtype).storage];
  const out = new Uint8Array(t.data.length * per);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < t.data.length; i++) {
    const v = t.data[i]!;
    if (typeof v === "bigint") dv.setBigInt64(i * per, v, true);
    else if (t.data instanceof Float32Array) dv.setFloat32(i * per, v, true);
    else if (t.data instanceof Float64Array) dv.setFloat64(i * per, v, true);
    else if (per === 2) dv.setUint16(i * per, v, true);
    else dv.setUint32(i * per, v, true);
  }
  return out;
}
