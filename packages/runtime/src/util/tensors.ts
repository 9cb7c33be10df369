/**
 * Element access shared by the reference kernels. Kernels read float data as float64 numbers
 * (exact for every float dtype), compute in float64 and round once when storing (`setElement`
 * rounds to the output dtype with round-to-nearest-even). Integers of 32 bits and more go through
 * bigint where a product or a sum could leave the range doubles hold exactly.
 */
import {
  QforgeError, dtypeInfo, getElement, numel, setElement, stridesOf, toFloat64, zeros,
  type DType, type Tensor, type ValueType,
} from "@qforge/ir";
import type { KernelContext } from "../kernel.js";

export function isFloatDType(d: DType): boolean {
  return dtypeInfo(d).kind === "float";
}

/** Integer dtypes whose arithmetic runs on bigint (products/sums can exceed 2^53). */
export function isWideInt(d: DType): boolean {
  const info = dtypeInfo(d);
  return (info.kind === "int" || info.kind === "uint") && info.bits >= 32;
}

/** The numeric output shape the schema inferred for output i (all dims are numbers at run time). */
export function outShape(ctx: KernelContext, i = 0): number[] {
  const t: ValueType | undefined = ctx.outputTypes[i];
  if (t === undefined) throw new QforgeError("UNDEFINED_OUTPUT", `${ctx.op}: no inferred type for output #${i}`, { node: ctx.node });
  return t.shape.map((d) => {
    if (typeof d !== "number") {
      throw new QforgeError("BAD_SHAPE", `${ctx.op}: output #${i} has the symbolic dim '${d}' at run time`, { node: ctx.node });
    }
    return d;
  });
}

/** Input i, failing when omitted. */
export function input(inputs: readonly (Tensor | undefined)[], i: number, ctx: KernelContext): Tensor {
  const t = inputs[i];
  if (t === undefined) throw new QforgeError("BAD_ARITY", `${ctx.op}: input #${i} is required`, { node: ctx.node });
  return t;
}

/** All elements of an integer tensor (int64 shapes, axes, indices) as JS numbers. */
export function readInts(t: Tensor): number[] {
  const n = numel(t.shape);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = getElement(t, i);
  return out;
}

/** All elements as bigints (integer dtypes; int64 exactly). */
export function readBigInts(t: Tensor): bigint[] {
  const n = numel(t.shape);
  const out = new Array<bigint>(n);
  if (t.data instanceof BigInt64Array) {
    for (let i = 0; i < n; i++) out[i] = t.data[i]!;
    return out;
  }
  for (let i = 0; i < n; i++) out[i] = BigInt(Math.trunc(getElement(t, i)));
  return out;
}

/** All elements as float64 numbers (exact for floats and integers up to 2^53). */
export function readNumbers(t: Tensor): Float64Array {
  return toFloat64(t);
}

/** A 1-D or 0-D int64 tensor. */
export function int64Tensor(values: readonly number[], shape: readonly number[] = [values.length]): Tensor {
  const t = zeros("int64", shape);
  const data = t.data as BigInt64Array;
  values.forEach((v, i) => { data[i] = BigInt(v); });
  return t;
}

/** A new tensor of `dtype`/`shape` holding `values` (numbers, or bigints for wide integers), rounded or wrapped by setElement. */
export function fromValues(dtype: DType, shape: readonly number[], values: ArrayLike<number | bigint>): Tensor {
  const t = zeros(dtype, shape);
  const n = numel(shape);
  if (t.data instanceof Float64Array || t.data instanceof Float32Array) {
    for (let i = 0; i < n; i++) t.data[i] = Number(values[i]!);
    return t;
  }
  for (let i = 0; i < n; i++) setElement(t, i, values[i]!);
  return t;
}

/** A single element as a number (scalars and 1-element tensors such as clip bounds). */
export function scalarValue(t: Tensor, what: string, ctx: KernelContext): number {
  if (numel(t.shape) !== 1) throw new QforgeError("BAD_SHAPE", `${ctx.op}: ${what} must hold one element, got [${t.shape.join(",")}]`, { node: ctx.node });
  return getElement(t, 0);
}

/**
 * A function copying element `si` of `src` into element `di` of `dst` (same dtype) without
 * converting: raw storage for byte-or-wider dtypes, bit fields for packed sub-byte integers.
 */
export function elementCopier(src: Tensor, dst: Tensor): (si: number, di: number) => void {
  if (dtypeInfo(src.dtype).packed) return (si, di) => setElement(dst, di, getElement(src, si));
  const from = src.data as unknown as { readonly [i: number]: number | bigint };
  const to = dst.data as unknown as { [i: number]: number | bigint };
  return (si, di) => { to[di] = from[si]!; };
}

/** Copies one element (see elementCopier). */
export function copyElement(src: Tensor, si: number, dst: Tensor, di: number): void {
  elementCopier(src, dst)(si, di);
}

/**
 * A data-movement result: out[i] = src[source(i)] where `source` maps an output multi-index to a
 * source flat index, or -1 to take `fill` (an element of a 1-element tensor of the same dtype).
 */
export function moveElements(
  src: Tensor, shape: readonly number[], source: (coords: readonly number[]) => number, fill?: Tensor,
): Tensor {
  const out = zeros(src.dtype, shape);
  const copy = elementCopier(src, out);
  const copyFill = fill === undefined ? undefined : elementCopier(fill, out);
  forEachIndex(shape, (coords, i) => {
    const s = source(coords);
    if (s >= 0) copy(s, i);
    else copyFill?.(0, i);
  });
  return out;
}

/** Calls fn for every multi-index of `shape` in row-major order, with its flat index. */
export function forEachIndex(shape: readonly number[], fn: (coords: readonly number[], flat: number) => void): void {
  const n = numel(shape);
  if (n === 0) return;
  const r = shape.length;
  const coords = new Array<number>(r).fill(0);
  for (let i = 0; i < n; i++) {
    fn(coords, i);
    for (let d = r - 1; d >= 0; d--) {
      if (++coords[d]! < shape[d]!) break;
      coords[d] = 0;
    }
  }
}

/**
 * For numpy broadcasting of `inShape` to `outShape` (trailing dims aligned): the flat index in the
 * input of every output element.
 */
export function broadcastIndex(inShape: readonly number[], outShape: readonly number[]): Int32Array {
  const n = numel(outShape);
  const idx = new Int32Array(n);
  const r = outShape.length;
  const off = r - inShape.length;
  const inStrides = stridesOf(inShape);
  const strides = outShape.map((_, d) => (d < off || inShape[d - off] === 1 ? 0 : inStrides[d - off]!));
  forEachIndex(outShape, (coords, i) => {
    let s = 0;
    for (let d = 0; d < r; d++) s += coords[d]! * strides[d]!;
    idx[i] = s;
  });
  return idx;
}

/** Rounding of scalar attributes to the precision a dtype computes in (float32 for float32/16/bf16/fp8; as-is for float64). */
export function opmathRound(dtype: DType): (x: number) => number {
  return dtype === "float64" ? (x) => x : Math.fround;
}
