/**
 * Shared plumbing of the quantized reference kernels: reading integer tensors and qparams, writing
 * saturated integer outputs, and the kernel signature.
 */
import {
  allocStorage, dtypeInfo, getElement, numel, packSubByte, QforgeError, tensor, type DType, type Tensor,
} from "@qforge/ir";

export type { Kernel, KernelContext } from "../kernel.js";

/** The error helpers every kernel uses, bound to its node. */
export interface Where {
  readonly node: string;
  readonly op: string;
}

export function fail(where: Where, code: "BAD_INPUT" | "BAD_DTYPE" | "BAD_SHAPE" | "UNSUPPORTED" | "BAD_ATTRIBUTE" | "BAD_DATA",
  message: string, hint?: string): never {
  throw new QforgeError(code, `${where.op}: ${message}`, { node: where.node, hint });
}

export function need(where: Where, t: Tensor | undefined, what: string): Tensor {
  if (t === undefined) fail(where, "BAD_INPUT", `input '${what}' is required`);
  return t;
}

/** Integer element values of an integer tensor: the storage itself for unpacked 8/16/32-bit ints. */
export type IntArray = Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float64Array;

export function intValues(where: Where, t: Tensor, what: string): IntArray {
  const info = dtypeInfo(t.dtype);
  if (info.kind !== "int" && info.kind !== "uint") {
    fail(where, "BAD_DTYPE", `${what} must be an integer tensor, got ${t.dtype}`);
  }
  const d = t.data;
  if (!info.packed && !(d instanceof BigInt64Array) && !(d instanceof Float32Array) && !(d instanceof Float64Array)) return d;
  const n = numel(t.shape);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = getElement(t, i);
  return out;
}

/** All elements as numbers (qparams, float inputs of any float dtype). */
export function numbers(t: Tensor): number[] {
  const n = numel(t.shape);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = getElement(t, i);
  return out;
}

/** A per-tensor qparam: a tensor with exactly one element. */
export function scalarParam(where: Where, t: Tensor | undefined, what: string): number {
  const v = need(where, t, what);
  if (numel(v.shape) !== 1) fail(where, "BAD_SHAPE", `${what} must have one element (per tensor), got [${v.shape.join(", ")}]`);
  return getElement(v, 0);
}

/** A scale: positive and finite. */
export function checkScales(where: Where, scales: readonly number[], what: string): void {
  for (const s of scales) {
    if (!(s > 0) || !Number.isFinite(s)) fail(where, "BAD_DATA", `${what} must be positive and finite, got ${s}`);
  }
}

/**
 * A qparam that is one element (broadcast to `count`) or one value per channel. Returns `count`
 * values. A missing tensor gives `fallback` everywhere.
 */
export function paramVector(where: Where, t: Tensor | undefined, count: number, what: string, fallback = 0): number[] {
  if (t === undefined) return new Array<number>(count).fill(fallback);
  const v = numbers(t);
  if (v.length === 1) return new Array<number>(count).fill(v[0]!);
  if (t.shape.length !== 1 || v.length !== count) {
    fail(where, "BAD_SHAPE", `${what} must have one element or ${count}, got [${t.shape.join(", ")}]`);
  }
  return v;
}

/** Representable range of an integer dtype. */
export function intRange(d: DType): [number, number] {
  const info = dtypeInfo(d);
  return [info.min, info.max];
}

/** Saturates v to [lo, hi]. */
export function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

/** Wraps already-saturated integer values as a tensor of an integer dtype (packing sub-byte dtypes). */
export function intTensor(dtype: DType, shape: readonly number[], values: ArrayLike<number>): Tensor {
  const info = dtypeInfo(dtype);
  if (info.packed) return tensor(dtype, shape, packSubByte(dtype, values));
  if (dtype === "int64") {
    const data = new BigInt64Array(values.length);
    for (let i = 0; i < values.length; i++) data[i] = BigInt(values[i]!);
    return tensor(dtype, shape, data);
  }
  const data = allocStorage(dtype, values.length);
  if (data instanceof BigInt64Array) throw new QforgeError("BAD_DTYPE", `cannot store integers as ${dtype}`);
  data.set(values as ArrayLike<number>);
  return tensor(dtype, shape, data);
}

/** int32 two's-complement wrap of an exactly computed integer (what an int32 accumulator holds). */
export function wrapInt32(v: number): number {
  return v | 0;
}
