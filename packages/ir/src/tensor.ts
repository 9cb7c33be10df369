import { allocStorage, dtypeInfo, storageLength, storageName, type DType, type TypedArray } from "./dtype.js";
import { decodeElement, encodeElement } from "./convert.js";
import { QforgeError } from "./errors.js";

/**
 * A dense, row-major tensor: plain data (no methods) so that graphs holding tensors stay plain data.
 * `data` is the storage array for `dtype` (see `dtypeInfo(dtype).storage`): float16/bfloat16/fp8 keep
 * raw bits, int64 is a BigInt64Array, sub-byte integers are packed.
 */
export interface Tensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TypedArray;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

function checkShape(shape: readonly number[]): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new QforgeError("BAD_SHAPE", `invalid dimension ${d} in shape [${shape.join(", ")}]`);
    }
  }
}

/** Wraps existing storage (no copy). Throws when the storage type or length does not fit. */
export function tensor(dtype: DType, shape: readonly number[], data: TypedArray): Tensor {
  checkShape(shape);
  const info = dtypeInfo(dtype);
  if (storageName(data) !== info.storage) {
    throw new QforgeError("BAD_TENSOR", `dtype ${dtype} needs ${info.storage} storage, got ${storageName(data)}`);
  }
  const want = storageLength(dtype, numel(shape));
  if (data.length !== want) {
    throw new QforgeError("BAD_TENSOR", `shape [${shape.join(", ")}] of ${dtype} needs ${want} storage elements, got ${data.length}`);
  }
  return { dtype, shape: [...shape], data };
}

export function zeros(dtype: DType, shape: readonly number[]): Tensor {
  checkShape(shape);
  return { dtype, shape: [...shape], data: allocStorage(dtype, numel(shape)) };
}

export function full(dtype: DType, shape: readonly number[], value: number): Tensor {
  const t = zeros(dtype, shape);
  const n = numel(shape);
  for (let i = 0; i < n; i++) setElement(t, i, value);
  return t;
}

/** Builds a tensor from logical values (numbers; bigint allowed for int64), converting to `dtype`. */
export function fromArray(dtype: DType, shape: readonly number[], values: ArrayLike<number | bigint>): Tensor {
  const n = numel(shape);
  if (values.length !== n) {
    throw new QforgeError("BAD_TENSOR", `shape [${shape.join(", ")}] needs ${n} values, got ${values.length}`);
  }
  const t = zeros(dtype, shape);
  for (let i = 0; i < n; i++) setElement(t, i, values[i]!);
  return t;
}

export function scalar(dtype: DType, value: number | bigint): Tensor {
  return fromArray(dtype, [], [value]);
}

/** Logical element i as a JS number (int64 beyond 2^53 loses precision; use `getBigInt`). */
export function getElement(t: Tensor, i: number): number {
  return decodeElement(t.dtype, t.data, i);
}

export function setElement(t: Tensor, i: number, v: number | bigint): void {
  encodeElement(t.dtype, t.data, i, v);
}

/** All logical elements as float64 numbers. */
export function toNumbers(t: Tensor): number[] {
  const n = numel(t.shape);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = getElement(t, i);
  return out;
}

/** All logical elements as a Float64Array (exact for every dtype except int64 beyond 2^53). */
export function toFloat64(t: Tensor): Float64Array {
  const n = numel(t.shape);
  const out = new Float64Array(n);
  if (t.data instanceof Float32Array || t.data instanceof Float64Array) {
    out.set(t.data);
    return out;
  }
  for (let i = 0; i < n; i++) out[i] = getElement(t, i);
  return out;
}

/** A view with a new shape over the same storage. `-1` infers one dimension. */
export function reshape(t: Tensor, shape: readonly number[]): Tensor {
  const n = numel(t.shape);
  const neg = shape.filter((d) => d === -1).length;
  if (neg > 1) throw new QforgeError("BAD_SHAPE", `reshape: more than one -1 in [${shape.join(", ")}]`);
  let resolved = [...shape];
  if (neg === 1) {
    const known = numel(shape.filter((d) => d !== -1));
    if (known === 0 || n % known !== 0) {
      throw new QforgeError("BAD_SHAPE", `reshape: cannot infer -1 for ${n} elements into [${shape.join(", ")}]`);
    }
    resolved = shape.map((d) => (d === -1 ? n / known : d));
  }
  checkShape(resolved);
  if (numel(resolved) !== n) {
    throw new QforgeError("BAD_SHAPE", `reshape: [${t.shape.join(", ")}] (${n} elements) cannot become [${resolved.join(", ")}]`);
  }
  return { dtype: t.dtype, shape: resolved, data: t.data };
}

/** Same as reshape; named like torch's `view` for readers coming from PyTorch. */
export const view = reshape;

export function clone(t: Tensor): Tensor {
  return { dtype: t.dtype, shape: [...t.shape], data: t.data.slice() as TypedArray };
}

/** Casts element by element with `setElement`'s conversion rules (see convert.ts). */
export function cast(t: Tensor, dtype: DType): Tensor {
  if (t.dtype === dtype) return clone(t);
  const out = zeros(dtype, t.shape);
  const n = numel(t.shape);
  for (let i = 0; i < n; i++) setElement(out, i, getElement(t, i));
  return out;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Bitwise equality of dtype, shape and storage (NaN payloads included). */
export function tensorsEqual(a: Tensor, b: Tensor): boolean {
  if (a.dtype !== b.dtype || !sameShape(a.shape, b.shape) || a.data.length !== b.data.length) return false;
  const ab = new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const bb = new Uint8Array(b.data.buffer, b.data.byteOffset, b.data.byteLength);
  for (let i = 0; i < ab.length; i++) if (ab[i] !== bb[i]) return false;
  return true;
}

export interface CloseResult {
  ok: boolean;
  maxAbsDiff: number;
  /** First index that failed, or -1. */
  firstBad: number;
  message: string;
}

/** numpy.isclose semantics: |a - b| <= atol + rtol * |b|; NaN equals NaN; infinities must match. */
export function allClose(a: Tensor, b: Tensor, rtol = 1e-5, atol = 1e-8): CloseResult {
  if (!sameShape(a.shape, b.shape)) {
    return { ok: false, maxAbsDiff: Infinity, firstBad: -1, message: `shape [${a.shape.join(", ")}] vs [${b.shape.join(", ")}]` };
  }
  const n = numel(a.shape);
  let maxAbs = 0;
  let firstBad = -1;
  for (let i = 0; i < n; i++) {
    const x = getElement(a, i);
    const y = getElement(b, i);
    if (Number.isNaN(x) && Number.isNaN(y)) continue;
    if (x === y) continue;
    const d = Math.abs(x - y);
    if (!Number.isNaN(d) && d > maxAbs) maxAbs = d;
    // An infinity only matches itself (x === y above): |inf - y| <= rtol * |inf| would hold for -inf too.
    const infinite = !Number.isFinite(x) || !Number.isFinite(y);
    if ((infinite || !(d <= atol + rtol * Math.abs(y))) && firstBad < 0) firstBad = i;
  }
  const ok = firstBad < 0;
  const message = ok ? "ok" : `element ${firstBad}: ${getElement(a, firstBad)} vs ${getElement(b, firstBad)} (max |diff| ${maxAbs})`;
  return { ok, maxAbsDiff: maxAbs, firstBad, message };
}
