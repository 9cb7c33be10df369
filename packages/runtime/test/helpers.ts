import { expect } from "vitest";
import fc from "fast-check";
import { allClose, fromArray, numel, toNumbers, type DType, type Tensor } from "@qforge/ir";

export const f32 = (shape: number[], v: ArrayLike<number>): Tensor => fromArray("float32", shape, v);
export const f64 = (shape: number[], v: ArrayLike<number>): Tensor => fromArray("float64", shape, v);
export const i64 = (v: number[], shape: number[] = [v.length]): Tensor => fromArray("int64", shape, v);
export const i32 = (v: number[], shape: number[] = [v.length]): Tensor => fromArray("int32", shape, v);
export const t = (dtype: DType, shape: number[], v: ArrayLike<number | bigint>): Tensor => fromArray(dtype, shape, v);

/** Elements as numbers. */
export const vals = (x: Tensor | undefined): number[] => toNumbers(x!);

/** Asserts shape and values within tolerance (numpy isclose). */
export function expectClose(got: Tensor | undefined, shape: number[], want: number[], rtol = 1e-6, atol = 1e-6): void {
  expect(got).toBeDefined();
  expect(got!.shape).toEqual(shape);
  const r = allClose(got!, fromArray("float64", shape, want), rtol, atol);
  expect(r.ok, `${r.message}; got [${vals(got).join(", ")}]`).toBe(true);
}

/** A float32 tensor of the given shape with small random integers-and-halves (exact in float32). */
export function arbTensor(shape: number[]): fc.Arbitrary<Tensor> {
  return fc.array(fc.integer({ min: -40, max: 40 }), { minLength: numel(shape), maxLength: numel(shape) })
    .map((v) => f32(shape, v.map((x) => x / 2)));
}

/** A random shape of rank lo..hi with dims 1..maxDim. */
export function arbShape(lo = 1, hi = 4, maxDim = 4): fc.Arbitrary<number[]> {
  return fc.array(fc.integer({ min: 1, max: maxDim }), { minLength: lo, maxLength: hi });
}

/** A shape and a float32 tensor of that shape. */
export function arbShapedTensor(lo = 1, hi = 4, maxDim = 4): fc.Arbitrary<Tensor> {
  return arbShape(lo, hi, maxDim).chain(arbTensor);
}
