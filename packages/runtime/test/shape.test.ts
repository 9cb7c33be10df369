import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { fromArray, isQforgeError, numel, type Tensor } from "@qforge/ir";
import { runOp } from "../src/index.js";
import { arbShapedTensor, f32, i32, i64, t, vals } from "./helpers.js";

const iota = (shape: number[]): Tensor => f32(shape, Array.from({ length: numel(shape) }, (_, i) => i));
const one = (op: string, inputs: (Tensor | undefined)[], attrs: Record<string, number | string | number[]> = {}): Tensor => runOp(op, inputs, attrs)[0]!;
const INT64_MAX = 9223372036854775807n;
const big = (v: bigint[]): Tensor => fromArray("int64", [v.length], v);

describe("reshape family", () => {
  it("reshape: -1 is inferred, 0 copies the input dim, allowzero=1 makes 0 a zero-size dim", () => {
    const x = iota([2, 3, 4]);
    expect(one("reshape", [x, i64([4, -1])]).shape).toEqual([4, 6]);
    expect(one("reshape", [x, i64([0, -1])]).shape).toEqual([2, 12]);
    expect(vals(one("reshape", [x, i64([24])]))).toEqual(vals(x));
    expect(one("reshape", [f32([0, 3], []), i64([3, 0])], { allowzero: 1 }).shape).toEqual([3, 0]);
    expect(() => one("reshape", [x, i64([5, -1])])).toThrow(/SHAPE_MISMATCH/);
  });

  it("flatten, squeeze, unsqueeze", () => {
    const x = iota([2, 3, 4]);
    expect(one("flatten", [x], { axis: 2 }).shape).toEqual([6, 4]);
    expect(one("flatten", [x], { axis: 0 }).shape).toEqual([1, 24]);
    expect(one("flatten", [x], { axis: -1 }).shape).toEqual([6, 4]);
    expect(one("flatten", [x]).shape).toEqual([2, 12]);
    const y = iota([1, 3, 1]);
    expect(one("squeeze", [y, i64([0])]).shape).toEqual([3, 1]);
    expect(one("squeeze", [y]).shape).toEqual([3]);
    expect(() => one("squeeze", [y, i64([1])])).toThrow(/SHAPE_MISMATCH/);
    expect(one("unsqueeze", [iota([3]), i64([0, -1])]).shape).toEqual([1, 3, 1]);
    expect(one("unsqueeze", [iota([3, 4]), i64([2, 0])]).shape).toEqual([1, 3, 1, 4]);
  });

  it("law: reshape round trip and flatten keep the elements in order", () => {
    fc.assert(fc.property(arbShapedTensor(1, 4), (x) => {
      const flat = one("reshape", [x, i64([-1])]);
      expect(vals(flat)).toEqual(vals(x));
      const back = one("reshape", [flat, i64([...x.shape])]);
      expect(back.shape).toEqual(x.shape);
      expect(vals(back)).toEqual(vals(x));
      expect(back.data).not.toBe(x.data);
    }));
  });
});

describe("transpose", () => {
  it("hand cases: default reverses dims, perm picks input dims", () => {
    expect(vals(one("transpose", [iota([2, 3])]))).toEqual([0, 3, 1, 4, 2, 5]);
    const y = one("transpose", [iota([2, 3, 2])], { perm: [1, 0, 2] });
    expect(y.shape).toEqual([3, 2, 2]);
    expect(vals(y)).toEqual([0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11]);
  });

  it("law: transposing with perm then with its inverse is the identity", () => {
    fc.assert(fc.property(arbShapedTensor(1, 4).chain((x) => fc.tuple(fc.constant(x), fc.shuffledSubarray([...x.shape.keys()], { minLength: x.shape.length, maxLength: x.shape.length }))), ([x, perm]) => {
      const inv = new Array<number>(perm.length);
      perm.forEach((p, i) => { inv[p] = i; });
      const y = one("transpose", [x], { perm });
      expect(y.shape).toEqual(perm.map((p) => x.shape[p]));
      const z = one("transpose", [y], { perm: inv });
      expect(z.shape).toEqual(x.shape);
      expect(vals(z)).toEqual(vals(x));
    }));
  });

  it("moves packed sub-byte and int64 elements exactly", () => {
    expect(vals(one("transpose", [t("uint4", [2, 2], [1, 2, 15, 4])]))).toEqual([1, 15, 2, 4]);
    expect([...(one("transpose", [fromArray("int64", [2, 1], [INT64_MAX, -1n])]).data as BigInt64Array)]).toEqual([INT64_MAX, -1n]);
  });
});

describe("concat and split", () => {
  it("concat along an axis (negative allowed), including empty inputs", () => {
    const y = one("concat", [iota([2, 1]), f32([2, 2], [10, 11, 12, 13]), f32([2, 0], [])], { axis: -1 });
    expect(y.shape).toEqual([2, 3]);
    expect(vals(y)).toEqual([0, 10, 11, 1, 12, 13]);
    expect(vals(one("concat", [t("int4", [2], [-8, 7]), t("int4", [1], [3])], { axis: 0 }))).toEqual([-8, 7, 3]);
  });

  it("split by sizes, by num_outputs (last chunk smaller) and with zero-size parts", () => {
    const x = iota([5]);
    expect(runOp("split", [x, i64([2, 3])], {}, { numOutputs: 2 }).map(vals)).toEqual([[0, 1], [2, 3, 4]]);
    expect(runOp("split", [x], { num_outputs: 3 }).map(vals)).toEqual([[0, 1], [2, 3], [4]]);
    expect(runOp("split", [x, i64([0, 5, 0])], {}, { numOutputs: 3 }).map((o) => o.shape)).toEqual([[0], [5], [0]]);
    expect(runOp("split", [iota([2, 4])], { axis: 1, num_outputs: 2 }).map(vals)).toEqual([[0, 1, 4, 5], [2, 3, 6, 7]]);
  });

  it("law: concat then split at the same sizes gives the parts back", () => {
    fc.assert(fc.property(arbShapedTensor(1, 3), fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 3 }), fc.nat(), (x, sizes, k) => {
      const axis = k % x.shape.length;
      const parts = sizes.map((s, j) => f32(x.shape.map((d, i) => (i === axis ? s : d)), Array.from({ length: numel(x.shape.map((d, i) => (i === axis ? s : d))) }, (_, e) => e + 100 * j)));
      const joined = one("concat", [...parts, x], { axis });
      const back = runOp("split", [joined, i64([...sizes, x.shape[axis]!])], { axis }, { numOutputs: sizes.length + 1 });
      back.forEach((b, i) => {
        const want = i < parts.length ? parts[i]! : x;
        expect(b.shape).toEqual(want.shape);
        expect(vals(b)).toEqual(vals(want));
      });
    }));
  });
});

describe("slice (ONNX Slice-13)", () => {
  const x = iota([10]);
  it("steps, negative steps and indices, clamped bounds", () => {
    expect(vals(one("slice", [x, i64([2]), i64([7]), i64([0]), i64([2])]))).toEqual([2, 4, 6]);
    expect(vals(one("slice", [x, i64([8]), i64([2]), i64([0]), i64([-3])]))).toEqual([8, 5]);
    expect(vals(one("slice", [x, i64([-3]), big([INT64_MAX])]))).toEqual([7, 8, 9]);
    expect(vals(one("slice", [x, i64([-1]), big([-INT64_MAX]), undefined, i64([-1])]))).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    expect(vals(one("slice", [x, i64([20]), i64([30])]))).toEqual([]);
    expect(vals(one("slice", [x, i64([-20]), i64([2])]))).toEqual([0, 1]);
  });

  it("slices chosen axes of a 2-D tensor", () => {
    const y = one("slice", [iota([3, 4]), i64([1, 0]), i64([3, -1]), i64([1, 0])]);
    expect(y.shape).toEqual([2, 2]);
    expect(vals(y)).toEqual([1, 2, 5, 6]);
  });
});

describe("gather, expand, tile", () => {
  it("gather along axis 0 and 1, negative and 2-D indices, int32 indices", () => {
    const x = iota([3, 2]);
    expect(vals(one("gather", [x, i64([2, 0])]))).toEqual([4, 5, 0, 1]);
    expect(vals(one("gather", [x, i64([-1])], { axis: 1 }))).toEqual([1, 3, 5]);
    const g = one("gather", [x, i32([0, 1, 1, 2], [2, 2])]);
    expect(g.shape).toEqual([2, 2, 2]);
    expect(vals(g)).toEqual([0, 1, 2, 3, 2, 3, 4, 5]);
    expect(one("gather", [x, i64([1], [])]).shape).toEqual([2]);
    expect(() => one("gather", [x, i64([3])])).toThrow(/BAD_DATA.*out of range/);
  });

  it("expand broadcasts both ways; tile repeats", () => {
    const e = one("expand", [f32([3, 1], [1, 2, 3]), i64([2, 1, 4])]);
    expect(e.shape).toEqual([2, 3, 4]);
    expect(vals(e).slice(0, 8)).toEqual([1, 1, 1, 1, 2, 2, 2, 2]);
    expect(one("expand", [f32([3, 1], [1, 2, 3]), i64([1])]).shape).toEqual([3, 1]);
    expect(vals(one("tile", [f32([2], [1, 2]), i64([3])]))).toEqual([1, 2, 1, 2, 1, 2]);
    const tt = one("tile", [iota([2, 2]), i64([1, 2])]);
    expect(tt.shape).toEqual([2, 4]);
    expect(vals(tt)).toEqual([0, 1, 0, 1, 2, 3, 2, 3]);
  });
});

describe("pad (ONNX Pad-19)", () => {
  const x = f32([4], [1, 2, 3, 4]);
  it("constant, edge, reflect and wrap", () => {
    expect(vals(one("pad", [x, i64([2, 1])]))).toEqual([0, 0, 1, 2, 3, 4, 0]);
    expect(vals(one("pad", [x, i64([2, 1]), f32([], [9])]))).toEqual([9, 9, 1, 2, 3, 4, 9]);
    expect(vals(one("pad", [x, i64([2, 1])], { mode: "edge" }))).toEqual([1, 1, 1, 2, 3, 4, 4]);
    expect(vals(one("pad", [x, i64([2, 1])], { mode: "reflect" }))).toEqual([3, 2, 1, 2, 3, 4, 3]);
    expect(vals(one("pad", [x, i64([2, 1])], { mode: "wrap" }))).toEqual([3, 4, 1, 2, 3, 4, 1]);
    // reflect further than the dim repeats the mirror (numpy.pad)
    expect(vals(one("pad", [f32([2], [1, 2]), i64([3, 0])], { mode: "reflect" }))).toEqual([2, 1, 2, 1, 2]);
  });

  it("negative pads crop, and the padding reads the cropped tensor", () => {
    expect(vals(one("pad", [x, i64([-1, 2])], { mode: "edge" }))).toEqual([2, 3, 4, 4, 4]);
    expect(vals(one("pad", [x, i64([1, -2])], { mode: "wrap" }))).toEqual([2, 1, 2]);
  });

  it("pads only the given axes; int64 constant values are exact", () => {
    const y = one("pad", [iota([2, 2]), i64([1, 0]), f32([], [-1]), i64([-1])]);
    expect(y.shape).toEqual([2, 3]);
    expect(vals(y)).toEqual([-1, 0, 1, -1, 2, 3]);
    const z = one("pad", [fromArray("int64", [1], [1n]), i64([1, 0]), fromArray("int64", [], [INT64_MAX])]);
    expect([...(z.data as BigInt64Array)]).toEqual([INT64_MAX, 1n]);
  });
});

describe("shape, size, constant_of_shape, range", () => {
  it("shape with start/end (ONNX Shape-15), size", () => {
    const x = iota([3, 4, 5]);
    expect(vals(one("shape", [x]))).toEqual([3, 4, 5]);
    expect(one("shape", [x]).dtype).toBe("int64");
    expect(vals(one("shape", [x], { start: -1 }))).toEqual([5]);
    expect(vals(one("shape", [x], { start: 1, end: -1 }))).toEqual([4]);
    expect(vals(one("shape", [x], { end: 10 }))).toEqual([3, 4, 5]);
    expect(vals(one("shape", [x], { start: 2, end: 1 }))).toEqual([]);
    const s = one("size", [x]);
    expect(s.shape).toEqual([]);
    expect(vals(s)).toEqual([60]);
  });

  it("constant_of_shape fills with value in dtype", () => {
    const a = one("constant_of_shape", [i64([2, 3])], { value: 7, dtype: "int64" });
    expect(a.dtype).toBe("int64");
    expect(vals(a)).toEqual([7, 7, 7, 7, 7, 7]);
    const b = one("constant_of_shape", [i64([2])]);
    expect(b.dtype).toBe("float32");
    expect(vals(b)).toEqual([0, 0]);
    expect(one("constant_of_shape", [i64([])], { value: 1.5, dtype: "float64" }).shape).toEqual([]);
  });

  it("range: length max(ceil((limit - start) / delta), 0)", () => {
    expect(vals(one("range", [i32([1], []), i32([10], []), i32([3], [])]))).toEqual([1, 4, 7]);
    expect(vals(one("range", [f32([], [0]), f32([], [1]), f32([], [0.25])]))).toEqual([0, 0.25, 0.5, 0.75]);
    expect(vals(one("range", [i64([5], []), i64([0], []), i64([-2], [])]))).toEqual([5, 3, 1]);
    expect(one("range", [i64([5], []), i64([0], []), i64([1], [])]).shape).toEqual([0]);
    const r = one("range", [fromArray("int64", [], [INT64_MAX - 2n]), fromArray("int64", [], [INT64_MAX]), fromArray("int64", [], [1n])]);
    expect([...(r.data as BigInt64Array)]).toEqual([INT64_MAX - 2n, INT64_MAX - 1n]);
  });
});

describe("cast (ONNX Cast-19, `to` a dtype name)", () => {
  it("float -> integer truncates toward zero and wraps; NaN -> 0; nonzero -> true", () => {
    expect(vals(one("cast", [f32([4], [1.9, -1.9, 300, NaN])], { to: "int8" }))).toEqual([1, -1, 44, 0]);
    expect(vals(one("cast", [f32([3], [0, -0.5, NaN])], { to: "bool" }))).toEqual([0, 1, 1]);
  });

  it("rounds to nearest even for narrow floats", () => {
    const h = one("cast", [f32([2], [1 + 2 ** -11, 1 + 3 * 2 ** -11])], { to: "float16" });
    expect(h.dtype).toBe("float16");
    expect(vals(h)).toEqual([1, 1 + 2 ** -9]);
    expect(vals(one("cast", [h], { to: "float32" }))).toEqual([1, 1 + 2 ** -9]);
  });

  it("int64 -> narrower integers keeps the exact low bits", () => {
    const x = fromArray("int64", [2], [(1n << 60n) + 5n, -1n]);
    expect(vals(one("cast", [x], { to: "int32" }))).toEqual([5, -1]);
    expect(vals(one("cast", [x], { to: "uint8" }))).toEqual([5, 255]);
  });

  it("float8 targets saturate by default (saturate=1) and overflow without it", () => {
    const x = f32([3], [1e6, -Infinity, NaN]);
    expect(vals(one("cast", [x], { to: "float8_e4m3fn" }))).toEqual([448, -448, NaN]);
    expect(vals(one("cast", [x], { to: "float8_e4m3fn", saturate: 0 }))).toEqual([NaN, NaN, NaN]);
    expect(vals(one("cast", [x], { to: "float8_e5m2" }))).toEqual([57344, -57344, NaN]);
    expect(vals(one("cast", [x], { to: "float8_e5m2", saturate: 0 }))).toEqual([Infinity, -Infinity, NaN]);
  });

  it("cast_like takes the target's dtype; an unknown dtype name is BAD_ATTRIBUTE", () => {
    const y = one("cast_like", [f32([2], [1.5, 2.5]), i32([0])]);
    expect(y.dtype).toBe("int32");
    expect(vals(y)).toEqual([1, 2]);
    try {
      one("cast", [f32([1], [1])], { to: "FLOAT" });
      expect.unreachable();
    } catch (e) {
      expect(isQforgeError(e, "BAD_ATTRIBUTE")).toBe(true);
    }
  });
});
