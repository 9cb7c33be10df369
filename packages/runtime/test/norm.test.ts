import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { runOp } from "../src/index.js";
import { arbShapedTensor, arbTensor, expectClose, f32, f64, i64, vals } from "./helpers.js";

describe("softmax and log_softmax", () => {
  it("hand case along the last and the first axis", () => {
    const x = f32([2, 3], [1, 2, 3, 1, 1, 1]);
    const e = [Math.exp(1), Math.exp(2), Math.exp(3)];
    const s = e[0]! + e[1]! + e[2]!;
    expectClose(runOp("softmax", [x])[0], [2, 3], [e[0]! / s, e[1]! / s, e[2]! / s, 1 / 3, 1 / 3, 1 / 3]);
    const c = (a: number, b: number): number => Math.exp(a) / (Math.exp(a) + Math.exp(b));
    expectClose(runOp("softmax", [x], { axis: 0 })[0], [2, 3], [0.5, c(2, 1), c(3, 1), 0.5, c(1, 2), c(1, 3)]);
  });

  it("is stable for large inputs (max subtracted)", () => {
    expectClose(runOp("softmax", [f32([3], [10000, 10001, 10002])])[0], [3], [0.09003057, 0.24472847, 0.66524096], 1e-6);
    expectClose(runOp("log_softmax", [f32([2], [1000, 0])])[0], [2], [0, -1000], 1e-6);
  });

  it("law: softmax sums to 1 along the axis, log_softmax = log(softmax)", () => {
    fc.assert(fc.property(arbShapedTensor(1, 4), fc.nat(), (x, k) => {
      const r = x.shape.length;
      const axis = (k % (2 * r)) - r;
      const s = runOp("softmax", [x], { axis })[0]!;
      const sums = vals(runOp("reduce_sum", [s, i64([axis])])[0]);
      sums.forEach((v) => expect(v).toBeCloseTo(1, 5));
      const ls = vals(runOp("log_softmax", [x], { axis })[0]);
      vals(s).forEach((v, i) => expect(Math.log(v)).toBeCloseTo(ls[i]!, 4));
    }));
  });
});

describe("layer_normalization", () => {
  it("normalizes over the trailing dims, with scale and bias", () => {
    const x = f32([2, 2], [1, 3, 2, 2]);
    const [y, mean, inv] = runOp("layer_normalization", [x, f32([2], [2, 1]), f32([2], [0, 10])], { epsilon: 0 }, { numOutputs: 3 });
    // Row 0: mean 2, variance 1. Row 1 is constant: variance 0 and epsilon 0 give 0 * Inf = NaN.
    expectClose(y, [2, 2], [-2, 11, NaN, NaN], 1e-6);
    expect(vals(mean)).toEqual([2, 2]);
    expect(mean!.shape).toEqual([2, 1]);
    expect(vals(inv)[0]).toBe(1);
    expect(vals(inv)[1]).toBe(Infinity);
  });

  it("epsilon keeps a constant row finite; Mean/InvStdDev use the stash type", () => {
    const [y, mean, inv] = runOp("layer_normalization", [f64([1, 4], [5, 5, 5, 5]), f64([4], [1, 1, 1, 1])], { epsilon: 0.25 }, { numOutputs: 3 });
    expect(vals(y)).toEqual([0, 0, 0, 0]);
    expect(mean!.dtype).toBe("float32");
    expect(vals(inv)).toEqual([2]);
    expect(y!.dtype).toBe("float64");
  });

  it("axis 0 normalizes everything; scale broadcasts over the normalized dims", () => {
    const x = f32([2, 2], [0, 2, 4, 6]);
    const sd = Math.sqrt(5);
    expectClose(runOp("layer_normalization", [x, f32([1], [1])], { axis: 0, epsilon: 0 })[0], [2, 2], [-3 / sd, -1 / sd, 1 / sd, 3 / sd]);
  });

  it("law: with unit scale and no bias each row has mean 0 and variance ~1", () => {
    fc.assert(fc.property(arbTensor([3, 5]).filter((x) => new Set(vals(x).slice(0, 5)).size > 1 && new Set(vals(x).slice(5, 10)).size > 1 && new Set(vals(x).slice(10)).size > 1), (x) => {
      const y = vals(runOp("layer_normalization", [x, f32([5], [1, 1, 1, 1, 1])], { epsilon: 0 })[0]);
      for (let r = 0; r < 3; r++) {
        const row = y.slice(r * 5, r * 5 + 5);
        const m = row.reduce((a, b) => a + b, 0) / 5;
        expect(m).toBeCloseTo(0, 5);
        expect(row.reduce((a, b) => a + (b - m) ** 2, 0) / 5).toBeCloseTo(1, 4);
      }
    }), { numRuns: 40 });
  });
});

describe("batch_norm", () => {
  const x = f32([2, 2, 2], [1, 3, 10, 20, 5, 7, 30, 40]);
  const ones = f32([2], [1, 1]);
  const zeros = f32([2], [0, 0]);

  it("inference uses the given statistics per channel (dim 1)", () => {
    const [y] = runOp("batch_norm", [x, f32([2], [2, 1]), f32([2], [1, 0]), f32([2], [4, 25]), f32([2], [4, 100])], { epsilon: 0 });
    expectClose(y, [2, 2, 2], [-2, 0, -1.5, -0.5, 2, 4, 0.5, 1.5]);
  });

  it("training_mode uses batch statistics and blends the running ones with momentum", () => {
    const [y, rm, rv] = runOp("batch_norm", [x, ones, zeros, zeros, f32([2], [1, 1])], { epsilon: 0, momentum: 0.5, training_mode: 1 }, { numOutputs: 3 });
    // channel 0: {1, 3, 5, 7} mean 4, var 5; channel 1: {10, 20, 30, 40} mean 25, var 125.
    const s0 = Math.sqrt(5);
    const s1 = Math.sqrt(125);
    expectClose(y, [2, 2, 2], [-3 / s0, -1 / s0, -15 / s1, -5 / s1, 1 / s0, 3 / s0, 5 / s1, 15 / s1]);
    expectClose(rm, [2], [2, 12.5]);
    expectClose(rv, [2], [3, 63]);
  });
});
