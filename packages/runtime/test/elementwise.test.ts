import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { fromArray, isQforgeError } from "@qforge/ir";
import { erf, erfc, roundHalfEven, runOp } from "../src/index.js";
import { arbShapedTensor, arbTensor, expectClose, f32, i32, i64, t, vals } from "./helpers.js";

const one = (op: string, ...args: Parameters<typeof runOp>[1][]): ReturnType<typeof runOp>[number] => runOp(op, args[0]!)[0]!;

describe("binary arithmetic", () => {
  it("float32 results are IEEE float32 arithmetic", () => {
    const a = f32([3], [0.1, 3e38, 1]);
    const b = f32([3], [0.2, 3e38, 3]);
    expect(vals(runOp("add", [a, b])[0])).toEqual([Math.fround(Math.fround(0.1) + Math.fround(0.2)), Infinity, 4]);
    expect(vals(runOp("div", [a, b])[0])).toEqual([Math.fround(Math.fround(0.1) / Math.fround(0.2)), 1, Math.fround(1 / 3)]);
  });

  it("float16 results round to float16 (ties to even)", () => {
    const [y] = runOp("add", [t("float16", [2], [1, 1]), t("float16", [2], [2 ** -11, 3 * 2 ** -11])]);
    expect(y!.dtype).toBe("float16");
    expect(vals(y)).toEqual([1, 1 + 2 ** -9]);
  });

  it("broadcasts numpy-style", () => {
    expectClose(runOp("sub", [f32([2, 1], [10, 20]), f32([3], [1, 2, 3])])[0], [2, 3], [9, 8, 7, 19, 18, 17]);
    expectClose(runOp("mul", [f32([], [2]), f32([2, 2], [1, 2, 3, 4])])[0], [2, 2], [2, 4, 6, 8]);
  });

  it("integers wrap like C two's complement", () => {
    expect(vals(runOp("add", [t("int8", [2], [100, -100]), t("int8", [2], [100, -100])])[0])).toEqual([-56, 56]);
    expect(vals(runOp("add", [t("uint8", [1], [250]), t("uint8", [1], [10])])[0])).toEqual([4]);
    expect(vals(runOp("mul", [i32([65536, 46341]), i32([65536, 46341])])[0])).toEqual([0, -2147479015]);
  });

  it("int64 arithmetic is exact beyond 2^53", () => {
    const [y] = runOp("mul", [i64([3037000499]), i64([3037000499])]);
    expect((y!.data as BigInt64Array)[0]).toBe(9223372030926249001n);
    const big = fromArray("int64", [1], [9007199254740993n]);
    expect((runOp("add", [big, fromArray("int64", [1], [1n])])[0]!.data as BigInt64Array)[0]).toBe(9007199254740994n);
  });

  it("integer division truncates toward zero; division by zero is BAD_DATA", () => {
    expect(vals(runOp("div", [i32([-7, 7, 7]), i32([2, -2, 2])])[0])).toEqual([-3, -3, 3]);
    expect(vals(runOp("div", [i64([-7]), i64([2])])[0])).toEqual([-3]);
    expect(() => runOp("div", [i32([1]), i32([0])])).toThrow(/BAD_DATA.*division by zero/);
  });

  it("max/min propagate NaN; comparisons give bool", () => {
    expect(vals(runOp("max", [f32([3], [1, NaN, -1]), f32([3], [2, 0, -5])])[0])).toEqual([2, NaN, -1]);
    expect(vals(runOp("min", [i32([1, -4]), i32([2, -5])])[0])).toEqual([1, -5]);
    const [eq] = runOp("equal", [i64([1, 2, 3]), i64([1, 0, 3])]);
    expect(eq!.dtype).toBe("bool");
    expect(vals(eq)).toEqual([1, 0, 1]);
    expect(vals(runOp("less", [f32([3], [1, NaN, 2]), f32([1], [2])])[0])).toEqual([1, 0, 0]);
    expect(vals(runOp("greater", [f32([2], [1, 3]), f32([1], [2])])[0])).toEqual([0, 1]);
  });

  it("laws: a + b = b + a, a - a = 0, a * 1 = a", () => {
    fc.assert(fc.property(arbShapedTensor(0, 3), (a) => {
      const b = runOp("abs", [a])[0]!;
      expect(vals(runOp("add", [a, b])[0])).toEqual(vals(runOp("add", [b, a])[0]));
      expect(vals(runOp("sub", [a, a])[0]).every((v) => v === 0)).toBe(true);
      expect(vals(runOp("mul", [a, f32([], [1])])[0])).toEqual(vals(a));
    }));
  });
});

describe("pow (ONNX Pow-15: output has the base's dtype)", () => {
  it("float base", () => {
    expectClose(runOp("pow", [f32([3], [2, 4, -2]), f32([3], [3, 0.5, 2])])[0], [3], [8, 2, 4]);
  });
  it("integer base and exponent: exact; negative exponents truncate", () => {
    expect(vals(runOp("pow", [i32([3, 2, 1, -1, 2]), i32([4, 10, -3, -3, -1])])[0])).toEqual([81, 1024, 1, -1, 0]);
    expect((runOp("pow", [i64([3]), i64([39])])[0]!.data as BigInt64Array)[0]).toBe(4052555153018976267n);
  });
  it("integer base with a float exponent (test_pow_types_int32_float32)", () => {
    const [y] = runOp("pow", [i32([1, 2, 3]), f32([3], [4, 5, 6])]);
    expect(y!.dtype).toBe("int32");
    expect(vals(y)).toEqual([1, 32, 729]);
  });
});

describe("where, clip, dropout", () => {
  it("where broadcasts and copies int64 exactly", () => {
    const big = fromArray("int64", [2], [9007199254740993n, -5n]);
    const [y] = runOp("where", [t("bool", [2, 1], [1, 0]), big, fromArray("int64", [], [7n])]);
    expect(y!.shape).toEqual([2, 2]);
    expect([...(y!.data as BigInt64Array)]).toEqual([9007199254740993n, -5n, 7n, 7n]);
  });

  it("clip clamps, keeps NaN, and gives max when min > max (ONNX Clip-13)", () => {
    expect(vals(runOp("clip", [f32([4], [-2, 0.5, 9, NaN]), f32([], [0]), f32([], [1])])[0])).toEqual([0, 0.5, 1, NaN]);
    expect(vals(runOp("clip", [f32([3], [-2, 0.5, 9]), f32([], [2]), f32([], [1])])[0])).toEqual([1, 1, 1]);
    expect(vals(runOp("clip", [f32([2], [-2, 9]), undefined, f32([], [1])])[0])).toEqual([-2, 1]);
    expect(vals(runOp("clip", [t("int8", [3], [-128, 0, 127]), t("int8", [], [-5]), t("int8", [], [5])])[0])).toEqual([-5, 0, 5]);
    expect(vals(runOp("clip", [f32([2], [-3, 3])])[0])).toEqual([-3, 3]);
  });

  it("dropout in inference is the identity with an all-true mask", () => {
    const x = f32([2, 2], [1, 2, 3, 4]);
    const [y, mask] = runOp("dropout", [x, f32([], [0.5])], {}, { numOutputs: 2 });
    expect(vals(y)).toEqual([1, 2, 3, 4]);
    expect(y!.data).not.toBe(x.data);
    expect(mask!.dtype).toBe("bool");
    expect(vals(mask)).toEqual([1, 1, 1, 1]);
    // training with ratio 0 drops nothing (ONNX test_training_dropout_zero_ratio).
    expect(vals(runOp("dropout", [x, f32([], [0]), t("bool", [], [1])])[0])).toEqual([1, 2, 3, 4]);
  });

  it("dropout in training mode with a nonzero ratio is UNSUPPORTED", () => {
    try {
      runOp("dropout", [f32([1], [1]), f32([], [0.5]), t("bool", [], [1])]);
      expect.unreachable();
    } catch (e) {
      expect(isQforgeError(e, "UNSUPPORTED")).toBe(true);
    }
  });
});

describe("unary ops", () => {
  it("hand-computed values", () => {
    const x = f32([5], [-3, -1, 0, 1, 3]);
    expectClose(one("relu", [x]), [5], [0, 0, 0, 1, 3]);
    expectClose(one("leaky_relu", [x]), [5], [-0.03, -0.01, 0, 1, 3]);
    expectClose(one("sigmoid", [x]), [5], [-3, -1, 0, 1, 3].map((v) => 1 / (1 + Math.exp(-v))));
    expectClose(one("hard_sigmoid", [x]), [5], [0, 0.3, 0.5, 0.7, 1]);
    expectClose(one("hardswish", [x]), [5], [0, -1 / 3, 0, 2 / 3, 3]);
    expectClose(one("tanh", [x]), [5], [-3, -1, 0, 1, 3].map(Math.tanh));
    expectClose(one("neg", [x]), [5], [3, 1, 0, -1, -3]);
    expectClose(one("abs", [x]), [5], [3, 1, 0, 1, 3]);
    expectClose(one("exp", [f32([2], [0, 1])]), [2], [1, Math.E]);
    expectClose(one("log", [f32([2], [1, Math.E])]), [2], [0, 1]);
    expectClose(one("sqrt", [f32([2], [4, 2])]), [2], [2, Math.SQRT2]);
    expectClose(one("reciprocal", [f32([2], [4, -0.5])]), [2], [0.25, -2]);
    expectClose(one("softplus", [f32([4], [0, 100, -20, 1])]), [4], [Math.LN2, 100, Math.log1p(Math.exp(-20)), Math.log(1 + Math.E)], 1e-6, 0);
    expectClose(one("floor", [f32([2], [-1.5, 1.5])]), [2], [-2, 1]);
    expectClose(one("ceil", [f32([2], [-1.5, 1.5])]), [2], [-1, 2]);
    expect(vals(one("round", [f32([6], [0.5, 1.5, 2.5, -0.5, -2.5, 2.6])]))).toEqual([0, 2, 2, -0, -2, 3]);
    expect(vals(one("identity", [t("uint4", [3], [1, 15, 7])]))).toEqual([1, 15, 7]);
  });

  it("gelu: exact erf form and tanh approximation (torch.nn.GELU)", () => {
    expectClose(one("gelu", [f32([3], [1, -1, 0])]), [3], [0.8413447460685429, -0.15865525393145707, 0], 1e-6, 1e-7);
    expectClose(runOp("gelu", [f32([2], [1, -10])], { approximate: "tanh" })[0], [2], [0.8411919906082768, 0], 1e-6, 1e-7);
    // Deep in the negative tail the exact form keeps relative accuracy (x * Phi(x) ~ -7.6e-23 at -10).
    const tail = vals(one("gelu", [f32([1], [-10])]))[0]!;
    expect(tail / -7.619853024160526e-23).toBeCloseTo(1, 5);
  });

  it("erf and erfc match reference values", () => {
    const cases: [number, number][] = [[0.5, 0.5204998778130465], [1, 0.8427007929497149], [2, 0.9953222650189527], [-1.5, -0.9661051464753108]];
    for (const [x, want] of cases) expect(Math.abs(erf(x) - want)).toBeLessThan(1e-15);
    expect(erfc(3) / 2.209049699858544e-05).toBeCloseTo(1, 12);
    expect(erfc(5) / 1.5374597944280349e-12).toBeCloseTo(1, 12);
    expect(erfc(-3)).toBeCloseTo(2 - 2.209049699858544e-05, 14);
    expect(roundHalfEven(-3.5)).toBe(-4);
    expectClose(one("erf", [f32([2], [0.5, -2])]), [2], [0.5204998778130465, -0.9953222650189527]);
  });

  it("integer inputs keep integer ops exact and refuse float-only ops", () => {
    expect(vals(one("relu", [t("int8", [3], [-5, 0, 5])]))).toEqual([0, 0, 5]);
    expect(vals(one("neg", [t("int8", [2], [-128, 3])]))).toEqual([-128, -3]);
    expect([...(one("abs", [fromArray("int64", [1], [-9007199254740993n])]).data as BigInt64Array)]).toEqual([9007199254740993n]);
    expect(() => runOp("exp", [i32([1])])).toThrow(/BAD_DTYPE/);
  });

  it("laws: relu is idempotent, abs(neg x) = abs x, sigmoid(-x) = 1 - sigmoid(x)", () => {
    fc.assert(fc.property(arbShapedTensor(0, 3), (x) => {
      const r = one("relu", [x]);
      expect(vals(one("relu", [r]))).toEqual(vals(r));
      expect(vals(one("abs", [one("neg", [x])]))).toEqual(vals(one("abs", [x])));
      const s = vals(one("sigmoid", [x]));
      const sn = vals(one("sigmoid", [one("neg", [x])]));
      s.forEach((v, i) => expect(v + sn[i]!).toBeCloseTo(1, 6));
    }));
  });

  it("keeps every element finite or IEEE-special for random inputs (no throws)", () => {
    fc.assert(fc.property(arbTensor([7]), (x) => {
      for (const op of ["sigmoid", "tanh", "gelu", "erf", "softplus", "hardswish"]) expect(one(op, [x]).shape).toEqual([7]);
    }), { numRuns: 20 });
  });
});
