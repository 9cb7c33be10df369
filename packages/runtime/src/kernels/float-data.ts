/**
 * Float storage for the hot kernels without copies: float32 and float64 tensors are read straight
 * from their storage (every float32 is exactly a double), and results are written straight into
 * the output's storage when that is float32 or float64 — storing a double into a Float32Array
 * rounds it to nearest-even, the same single rounding `fromValues` does. Other float dtypes
 * (float16, bfloat16, fp8) go through float64 and `fromValues`.
 */
import { numel, tensor, toFloat64, type DType, type Tensor } from "@qforge/ir";
import { fromValues } from "../util/tensors.js";

export type FloatArray = Float32Array | Float64Array;

/** The elements of a tensor as doubles: its own storage for float32/float64 (read only!), else a float64 copy. */
export function floatData(t: Tensor): FloatArray {
  return t.data instanceof Float32Array || t.data instanceof Float64Array ? t.data : toFloat64(t);
}

/** Where a kernel writes its results: the output's own storage when it can hold doubles as they round. */
export function floatOut(dtype: DType, shape: readonly number[]): FloatArray {
  const n = numel(shape);
  return dtype === "float32" ? new Float32Array(n) : new Float64Array(n);
}

/** The output tensor over `out` (from floatOut): wrapped as is for float32/float64, converted otherwise. */
export function floatTensor(dtype: DType, shape: readonly number[], out: FloatArray): Tensor {
  if (dtype === "float32" && out instanceof Float32Array) return tensor(dtype, [...shape], out);
  if (dtype === "float64" && out instanceof Float64Array) return tensor(dtype, [...shape], out);
  return fromValues(dtype, shape, out);
}
