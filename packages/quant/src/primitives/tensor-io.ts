import {
  allocStorage, dtypeInfo, getElement, numel, packSubByte, QforgeError, tensor,
  type DType, type Tensor, type TypedArray,
} from "@qforge/ir";

/**
 * The elements of a floating-point tensor as float32 values, without copying when it already is
 * float32 (the hot path). Other float dtypes are converted like `Tensor.float()`.
 */
export function float32Data(x: Tensor, what: string): Float32Array {
  if (x.data instanceof Float32Array && x.dtype === "float32") return x.data;
  if (dtypeInfo(x.dtype).kind !== "float") {
    throw new QforgeError("BAD_DTYPE", `${what}: expected a floating-point tensor, got ${x.dtype}`, {
      hint: "quantize float tensors; integer tensors are already quantized",
    });
  }
  const n = numel(x.shape);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = getElement(x, i);
  return out;
}

/** Integer storage to write quantized values into: the tensor's own array, or a staging array for packed dtypes. */
export interface IntSink {
  /** Write clamped integers here (index = logical element). */
  readonly values: Int8Array | Uint8Array | Int16Array | Int32Array;
  /** Wraps the written values as a tensor of `dtype` (packs sub-byte dtypes). */
  finish(): Tensor;
}

export function intSink(dtype: DType, shape: readonly number[]): IntSink {
  const n = numel(shape);
  const info = dtypeInfo(dtype);
  if (info.packed) {
    const staging = new Int32Array(n);
    return { values: staging, finish: () => tensor(dtype, shape, packSubByte(dtype, staging)) };
  }
  const data = allocStorage(dtype, n);
  if (!(data instanceof Int8Array || data instanceof Uint8Array || data instanceof Int16Array || data instanceof Int32Array)) {
    throw new QforgeError("BAD_DTYPE", `cannot store quantized integers as ${dtype}`);
  }
  return { values: data, finish: () => tensor(dtype, shape, data) };
}

/** Logical integer values of an integer tensor, without copying for the common unpacked storages. */
export function intData(q: Tensor, what: string): Int8Array | Uint8Array | Int16Array | Int32Array | Float64Array {
  const info = dtypeInfo(q.dtype);
  if (info.kind !== "int" && info.kind !== "uint") {
    throw new QforgeError("BAD_DTYPE", `${what}: expected an integer tensor, got ${q.dtype}`);
  }
  const d: TypedArray = q.data;
  if (!info.packed && (d instanceof Int8Array || d instanceof Uint8Array || d instanceof Int16Array || d instanceof Int32Array)) {
    return d;
  }
  const n = numel(q.shape);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = getElement(q, i);
  return out;
}

/** Small parameter vectors (scales, zero points) given as a tensor or a plain array, read as numbers. */
export type ParamVector = Tensor | ArrayLike<number>;

function isTensor(v: ParamVector): v is Tensor {
  return typeof v === "object" && v !== null && "dtype" in v && "shape" in v && "data" in v;
}

export function paramValues(v: ParamVector): number[] {
  if (isTensor(v)) {
    const n = numel(v.shape);
    const out = new Array<number>(n);
    for (let i = 0; i < n; i++) out[i] = getElement(v, i);
    return out;
  }
  return Array.from(v);
}

/** Normalizes a possibly negative axis against `rank` (Python indexing), or throws BAD_CONFIG. */
export function normalizeAxis(axis: number, rank: number, what: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new QforgeError("BAD_CONFIG", `${what}: axis ${axis} is out of range for a rank-${rank} tensor`);
  }
  return a;
}

/** Splits `shape` around `axis` into [outer, channels, inner] element counts. */
export function splitAtAxis(shape: readonly number[], axis: number): [number, number, number] {
  let outer = 1;
  let inner = 1;
  for (let i = 0; i < axis; i++) outer *= shape[i]!;
  for (let i = axis + 1; i < shape.length; i++) inner *= shape[i]!;
  return [outer, shape[axis]!, inner];
}
