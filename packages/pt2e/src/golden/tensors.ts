import { fromArray, isDType, numel, QforgeError, toFloat64, type DType, type Tensor } from "@qforge/ir";

/**
 * Reading the tensors of a golden fx_models case (schema: shared/golden/README.md, "Tensor") and
 * comparing results against them. Nothing here depends on case ids, counts or shapes.
 */

/** A golden Tensor: `{dtype, shape, data}`, data flattened row-major; float32 values are exact float64s of float32s. */
export interface GoldenTensorJson {
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly data: readonly number[];
}

export function isGoldenTensor(v: unknown): v is GoldenTensorJson {
  const t = v as Partial<GoldenTensorJson> | null;
  return typeof t === "object" && t !== null && typeof t.dtype === "string" && Array.isArray(t.shape) && Array.isArray(t.data);
}

/** A golden Tensor as a qforge Tensor (int64 values become bigints; float32 rounds back bit for bit). */
export function goldenTensor(v: unknown, what: string): Tensor {
  if (!isGoldenTensor(v)) throw new QforgeError("BAD_DATA", `${what} is not a golden tensor {dtype, shape, data}`);
  if (!isDType(v.dtype)) throw new QforgeError("BAD_DATA", `${what} has unknown dtype '${v.dtype}'`);
  const dtype: DType = v.dtype;
  const values = dtype === "int64" ? v.data.map((x) => BigInt(x)) : v.data;
  if (values.length !== numel(v.shape)) {
    throw new QforgeError("BAD_DATA", `${what}: shape [${v.shape.join(",")}] needs ${numel(v.shape)} values, got ${values.length}`);
  }
  return fromArray(dtype, v.shape, values);
}

/**
 * A list of model calls (calibration_inputs, test_inputs) or of their results (float_outputs, ...):
 * each entry is one Tensor (a single-input / single-output model) or a list of Tensors.
 */
export function goldenBatches(v: unknown, what: string): Tensor[][] {
  if (!Array.isArray(v)) throw new QforgeError("BAD_DATA", `${what} is not a list`);
  return v.map((entry, i) => {
    if (isGoldenTensor(entry)) return [goldenTensor(entry, `${what}[${i}]`)];
    if (Array.isArray(entry)) return entry.map((t, j) => goldenTensor(t, `${what}[${i}][${j}]`));
    throw new QforgeError("BAD_DATA", `${what}[${i}] is neither a tensor nor a list of tensors`);
  });
}

/** One number of a golden scalar field that may be a plain number or a one-element Tensor. */
export function goldenScalar(v: unknown, what: string): number {
  if (typeof v === "number") return v;
  if (isGoldenTensor(v) && v.data.length === 1) return v.data[0]!;
  throw new QforgeError("BAD_DATA", `${what} is neither a number nor a one-element tensor`);
}

/** The numbers of a golden field that is a number (per tensor) or a Tensor (per channel). */
export function goldenNumbers(v: unknown, what: string): number[] {
  if (typeof v === "number") return [v];
  if (isGoldenTensor(v)) return [...v.data];
  throw new QforgeError("BAD_DATA", `${what} is neither a number nor a tensor`);
}

export interface FloatComparison {
  /** Elements outside the tolerance. */
  readonly bad: number;
  readonly total: number;
  /** Largest |actual - expected| / max(|expected|, 1). */
  readonly maxRelErr: number;
  /** A description of the first mismatch, if any. */
  readonly first?: string;
}

/**
 * Float outputs against float expectations with a relative tolerance: |a - e| <= rtol * max(|e|, 1)
 * (the floor of 1 keeps values near zero from demanding absolute precision below float32 rounding).
 */
export function compareFloat(actual: Tensor, expected: Tensor, rtol: number): FloatComparison {
  if (actual.shape.join(",") !== expected.shape.join(",")) {
    return { bad: numel(expected.shape), total: numel(expected.shape), maxRelErr: Infinity, first: `shape [${actual.shape.join(",")}] vs expected [${expected.shape.join(",")}]` };
  }
  const a = toFloat64(actual);
  const e = toFloat64(expected);
  let bad = 0;
  let maxRelErr = 0;
  let first: string | undefined;
  for (let i = 0; i < e.length; i++) {
    const err = Math.abs(a[i]! - e[i]!) / Math.max(Math.abs(e[i]!), 1);
    if (!(err <= rtol)) {
      bad++;
      first ??= `[${i}] ${a[i]} vs expected ${e[i]}`;
    }
    if (!(err <= maxRelErr)) maxRelErr = err;
  }
  return { bad, total: e.length, maxRelErr, ...(first !== undefined ? { first } : {}) };
}

/** Element differences measured in output quantization steps (LSB) of scale `step`. */
export interface LsbComparison {
  readonly total: number;
  /** Elements within 1 step. */
  readonly within1: number;
  /** Elements within 3 steps. */
  readonly within3: number;
  /** Largest |actual - expected| / step, rounded to the nearest step. */
  readonly maxLsb: number;
  readonly first?: string;
}

/**
 * Dequantized outputs on the same grid differ by whole steps; the quotient is rounded so that float32
 * rounding of the two products does not count as a fraction of a step. A shape mismatch or a
 * non-finite value counts as an infinite difference.
 */
export function compareLsb(actual: Tensor, expected: Tensor, step: number): LsbComparison {
  const total = numel(expected.shape);
  if (actual.shape.join(",") !== expected.shape.join(",")) {
    return { total, within1: 0, within3: 0, maxLsb: Infinity, first: `shape [${actual.shape.join(",")}] vs expected [${expected.shape.join(",")}]` };
  }
  const a = toFloat64(actual);
  const e = toFloat64(expected);
  let within1 = 0;
  let within3 = 0;
  let maxLsb = 0;
  let first: string | undefined;
  for (let i = 0; i < total; i++) {
    const d = Math.abs(a[i]! - e[i]!) / step;
    const lsb = Number.isFinite(d) ? Math.round(d) : Infinity;
    if (lsb <= 1) within1++;
    else first ??= `[${i}] ${a[i]} vs expected ${e[i]} (${lsb} steps of ${step})`;
    if (lsb <= 3) within3++;
    if (!(lsb <= maxLsb)) maxLsb = lsb;
  }
  return { total, within1, within3, maxLsb, ...(first !== undefined ? { first } : {}) };
}
