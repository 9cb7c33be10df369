import { QforgeError } from "./errors.js";

/**
 * Element types. Names follow PyTorch (`float32`, `int8`, `float8_e4m3fn`, `uint4` ...). Sub-byte
 * integers (int1..int7, uint1..uint7) are stored packed, little-end first: element i of a
 * `bits`-wide type lives in bits [(i*bits) % 8 ...] of byte floor(i*bits/8) when 8 % bits == 0;
 * 3-, 5-, 6- and 7-bit types pack as a plain little-endian bit stream.
 */
export const DTYPES = [
  "float32", "float64", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2",
  "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "bool",
  "int1", "int2", "int3", "int4", "int5", "int6", "int7",
  "uint1", "uint2", "uint3", "uint4", "uint5", "uint6", "uint7",
] as const;

export type DType = (typeof DTYPES)[number];

export type TypedArray =
  | Float32Array | Float64Array | Int8Array | Int16Array | Int32Array | BigInt64Array
  | Uint8Array | Uint16Array | Uint32Array;

export type DTypeKind = "float" | "int" | "uint" | "bool";

export interface DTypeInfo {
  readonly name: DType;
  readonly kind: DTypeKind;
  /** Bits per element (logical width). */
  readonly bits: number;
  /** True when several elements share one storage byte. */
  readonly packed: boolean;
  /** Smallest and largest finite values (integers: the representable range). */
  readonly min: number;
  readonly max: number;
  /** How elements are stored: the storage array type. Floats narrower than 32 bits keep raw bits. */
  readonly storage: "Float32Array" | "Float64Array" | "Int8Array" | "Int16Array" | "Int32Array"
    | "BigInt64Array" | "Uint8Array" | "Uint16Array" | "Uint32Array";
}

function intInfo(name: DType, bits: number, signed: boolean): DTypeInfo {
  const packed = bits < 8;
  const min = signed ? -(2 ** (bits - 1)) : 0;
  const max = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
  const storage = packed ? "Uint8Array"
    : signed ? (bits === 8 ? "Int8Array" : bits === 16 ? "Int16Array" : bits === 32 ? "Int32Array" : "BigInt64Array")
    : (bits === 8 ? "Uint8Array" : bits === 16 ? "Uint16Array" : "Uint32Array");
  return { name, kind: signed ? "int" : "uint", bits, packed, min, max, storage };
}

const INFO: Record<DType, DTypeInfo> = {
  float32: { name: "float32", kind: "float", bits: 32, packed: false, min: -3.4028234663852886e38, max: 3.4028234663852886e38, storage: "Float32Array" },
  float64: { name: "float64", kind: "float", bits: 64, packed: false, min: -Number.MAX_VALUE, max: Number.MAX_VALUE, storage: "Float64Array" },
  float16: { name: "float16", kind: "float", bits: 16, packed: false, min: -65504, max: 65504, storage: "Uint16Array" },
  bfloat16: { name: "bfloat16", kind: "float", bits: 16, packed: false, min: -3.3895313892515355e38, max: 3.3895313892515355e38, storage: "Uint16Array" },
  float8_e4m3fn: { name: "float8_e4m3fn", kind: "float", bits: 8, packed: false, min: -448, max: 448, storage: "Uint8Array" },
  float8_e5m2: { name: "float8_e5m2", kind: "float", bits: 8, packed: false, min: -57344, max: 57344, storage: "Uint8Array" },
  int8: intInfo("int8", 8, true),
  int16: intInfo("int16", 16, true),
  int32: intInfo("int32", 32, true),
  int64: { ...intInfo("int64", 64, true), min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER },
  uint8: intInfo("uint8", 8, false),
  uint16: intInfo("uint16", 16, false),
  uint32: intInfo("uint32", 32, false),
  bool: { name: "bool", kind: "bool", bits: 8, packed: false, min: 0, max: 1, storage: "Uint8Array" },
  int1: intInfo("int1", 1, true), int2: intInfo("int2", 2, true), int3: intInfo("int3", 3, true),
  int4: intInfo("int4", 4, true), int5: intInfo("int5", 5, true), int6: intInfo("int6", 6, true),
  int7: intInfo("int7", 7, true),
  uint1: intInfo("uint1", 1, false), uint2: intInfo("uint2", 2, false), uint3: intInfo("uint3", 3, false),
  uint4: intInfo("uint4", 4, false), uint5: intInfo("uint5", 5, false), uint6: intInfo("uint6", 6, false),
  uint7: intInfo("uint7", 7, false),
};

const DTYPE_SET: ReadonlySet<string> = new Set(DTYPES);

export function isDType(s: string): s is DType {
  return DTYPE_SET.has(s);
}

export function dtypeInfo(dtype: DType): DTypeInfo {
  const info = INFO[dtype];
  if (info === undefined) throw new QforgeError("BAD_DTYPE", `unknown dtype '${String(dtype)}'`);
  return info;
}

export function isFloat(dtype: DType): boolean {
  return INFO[dtype].kind === "float";
}

export function isInteger(dtype: DType): boolean {
  const k = INFO[dtype].kind;
  return k === "int" || k === "uint";
}

/** Number of storage elements needed for `numel` logical elements. */
export function storageLength(dtype: DType, numel: number): number {
  const info = dtypeInfo(dtype);
  return info.packed ? Math.ceil((numel * info.bits) / 8) : numel;
}

export function allocStorage(dtype: DType, numel: number): TypedArray {
  const n = storageLength(dtype, numel);
  switch (dtypeInfo(dtype).storage) {
    case "Float32Array": return new Float32Array(n);
    case "Float64Array": return new Float64Array(n);
    case "Int8Array": return new Int8Array(n);
    case "Int16Array": return new Int16Array(n);
    case "Int32Array": return new Int32Array(n);
    case "BigInt64Array": return new BigInt64Array(n);
    case "Uint8Array": return new Uint8Array(n);
    case "Uint16Array": return new Uint16Array(n);
    case "Uint32Array": return new Uint32Array(n);
  }
}

/** The storage constructor's name for a typed array (to check that data matches a dtype). */
export function storageName(a: TypedArray): DTypeInfo["storage"] {
  return a.constructor.name as DTypeInfo["storage"];
}
