import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { fromArray } from "@qforge/ir";
import { runOp } from "../src/index.js";
import { arbShapedTensor, expectClose, f32, i32, i64, vals } from "./helpers.js";

const x = f32([2, 3], [1, 2, 3, 4, 5, 6]);

describe("reductions (axes as an int64 input)", () => {
  it("sum over one axis, keepdims on and off, negative axes", () => {
    expectClose(runOp("reduce_sum", [x, i64([1])])[0], [2, 1], [6, 15]);
    expectClose(runOp("reduce_sum", [x, i64([1])], { keepdims: 0 })[0], [2], [6, 15]);
    expectClose(runOp("reduce_sum", [x, i64([-2])], { keepdims: 0 })[0], [3], [5, 7, 9]);
  });

  it("no axes reduces everything, unless noop_with_empty_axes", () => {
    expectClose(runOp("reduce_sum", [x])[0], [1, 1], [21]);
    expectClose(runOp("reduce_mean", [x, i64([])], { keepdims: 0 })[0], [], [3.5]);
    expectClose(runOp("reduce_max", [x], { noop_with_empty_axes: 1 })[0], [2, 3], [1, 2, 3, 4, 5, 6]);
  });

  it("mean, max, min", () => {
    expectClose(runOp("reduce_mean", [x, i64([1])])[0], [2, 1], [2, 5]);
    expectClose(runOp("reduce_max", [x, i64([0])])[0], [1, 3], [4, 5, 6]);
    expectClose(runOp("reduce_min", [x, i64([0, 1])], { keepdims: 0 })[0], [], [1]);
  });

  it("max/min propagate NaN; empty reductions give the identity element", () => {
    expect(vals(runOp("reduce_max", [f32([3], [1, NaN, 3])])[0])).toEqual([NaN]);
    expect(vals(runOp("reduce_min", [f32([3], [1, NaN, 3])])[0])).toEqual([NaN]);
    const empty = f32([2, 0], []);
    expect(vals(runOp("reduce_max", [empty, i64([1])])[0])).toEqual([-Infinity, -Infinity]);
    expect(vals(runOp("reduce_min", [empty, i64([1])])[0])).toEqual([Infinity, Infinity]);
    expect(vals(runOp("reduce_sum", [empty, i64([1])])[0])).toEqual([0, 0]);
    expect(vals(runOp("reduce_mean", [empty, i64([1])])[0])).toEqual([NaN, NaN]);
  });

  it("integers: exact sums, truncating means", () => {
    expect(vals(runOp("reduce_mean", [i32([1, 2, -1, -2], [2, 2]), i64([1])], { keepdims: 0 })[0])).toEqual([1, -1]);
    const big = fromArray("int64", [2], [9007199254740993n, 2n]);
    expect([...(runOp("reduce_sum", [big])[0]!.data as BigInt64Array)]).toEqual([9007199254740995n]);
    expect(vals(runOp("reduce_max", [fromArray("int8", [2, 0], []), i64([1])])[0])).toEqual([-128, -128]);
  });

  it("laws: summing all elements; reducing axis a then b = reducing [a, b]", () => {
    fc.assert(fc.property(arbShapedTensor(2, 4), fc.nat(), fc.nat(), (t, p, q) => {
      const r = t.shape.length;
      const total = vals(t).reduce((a, b) => a + b, 0);
      expect(vals(runOp("reduce_sum", [t])[0])[0]).toBeCloseTo(total, 4);
      const a = p % r;
      const b = (a + 1 + (q % (r - 1))) % r;
      const stepwise = runOp("reduce_max", [runOp("reduce_max", [t, i64([a])])[0]!, i64([b])])[0]!;
      const once = runOp("reduce_max", [t, i64([a, b])])[0]!;
      expect(stepwise.shape).toEqual(once.shape);
      expect(vals(stepwise)).toEqual(vals(once));
    }));
  });
});
