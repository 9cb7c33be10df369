/**
 * Shape inference of the schemas declared with these kernels (packages/ir/src/ops/nn.ts, shape.ts):
 * numeric dims when shape-like inputs are constants, symbolic dims otherwise.
 */
import { describe, expect, it } from "vitest";
import { GraphBuilder, inferNode, isQforgeError, verifyGraph, type Attrs, type Dim, type Tensor, type ValueType } from "@qforge/ir";
import { runGraph } from "../src/index.js";
import { f32, i64 } from "./helpers.js";

const T = (dtype: ValueType["dtype"], shape: Dim[]): ValueType => ({ dtype, shape });
const typeOf = (x: Tensor): ValueType => ({ dtype: x.dtype, shape: x.shape });

/** Infers a node whose inputs are types, or constants (tensors). */
function infer(op: string, inputs: (ValueType | Tensor | undefined)[], attrs: Attrs = {}, numOutputs = 1): ValueType[] {
  const isTensor = (v: unknown): v is Tensor => typeof v === "object" && v !== null && "data" in v;
  return inferNode(op, "n", inputs.map((v) => (v === undefined ? undefined : isTensor(v) ? typeOf(v) : v)), attrs, numOutputs,
    (i) => { const v = inputs[i]; return isTensor(v) ? v : undefined; });
}
const shapeOf = (op: string, inputs: (ValueType | Tensor | undefined)[], attrs: Attrs = {}): Dim[] => [...infer(op, inputs, attrs)[0]!.shape];
const sym = (d: Dim): boolean => typeof d === "string";

describe("shape inference with constant and unknown shape inputs", () => {
  const x = T("float32", ["N", 3, 4]);

  it("reshape: constants give numbers (0 copies a symbolic dim), unknown shapes give symbols", () => {
    expect(shapeOf("reshape", [x, i64([0, 12])])).toEqual(["N", 12]);
    expect(shapeOf("reshape", [T("float32", [2, 3, 4]), i64([-1, 4])])).toEqual([6, 4]);
    const s = shapeOf("reshape", [x, i64([-1, 4])]);
    expect(sym(s[0]!)).toBe(true);
    expect(s[1]).toBe(4);
    expect(shapeOf("reshape", [x, T("int64", [3])]).every(sym)).toBe(true);
    expect(() => shapeOf("reshape", [x, T("int64", ["K"])])).toThrow(/unknown length/);
    expect(() => shapeOf("reshape", [x, T("float32", [2])])).toThrow(/DTYPE_MISMATCH/);
  });

  it("flatten / squeeze / unsqueeze / transpose keep symbolic dims where they can", () => {
    expect(shapeOf("flatten", [x], { axis: 1 })[1]).toBe(12);
    expect(sym(shapeOf("flatten", [x], { axis: 1 })[0]!)).toBe(true);
    expect(shapeOf("squeeze", [T("float32", ["N", 1, 3]), i64([1])])).toEqual(["N", 3]);
    expect(shapeOf("unsqueeze", [x, i64([0])])).toEqual([1, "N", 3, 4]);
    expect(shapeOf("transpose", [x], { perm: [2, 0, 1] })).toEqual([4, "N", 3]);
    expect(() => shapeOf("transpose", [x], { perm: [0, 0, 1] })).toThrow(/not a permutation/);
  });

  it("concat, split, slice, gather, expand, tile, pad", () => {
    expect(shapeOf("concat", [x, T("float32", ["N", 5, 4])], { axis: 1 })).toEqual(["N", 8, 4]);
    expect(sym(shapeOf("concat", [x, x], { axis: 0 })[0]!)).toBe(true);
    expect(() => shapeOf("concat", [x, T("float32", [1, 3])], { axis: 0 })).toThrow(/ranks/);
    expect(infer("split", [T("float32", [7, 2])], { num_outputs: 3 }, 3).map((t) => t.shape)).toEqual([[3, 2], [3, 2], [1, 2]]);
    expect(infer("split", [x, i64([1, 2])], { axis: 1 }, 2).map((t) => t.shape)).toEqual([["N", 1, 4], ["N", 2, 4]]);
    expect(shapeOf("slice", [x, i64([1]), i64([3]), i64([2])])).toEqual(["N", 3, 2]);
    const unknown = shapeOf("slice", [x, T("int64", [1]), T("int64", [1]), i64([2])]);
    expect(unknown.slice(0, 2)).toEqual(["N", 3]);
    expect(sym(unknown[2]!)).toBe(true);
    expect(shapeOf("gather", [x, T("int64", [2, 5])], { axis: 1 })).toEqual(["N", 2, 5, 4]);
    expect(() => shapeOf("gather", [x, T("float32", [2])])).toThrow(/DTYPE_MISMATCH/);
    expect(shapeOf("expand", [T("float32", [3, 1]), i64([2, 3, 5])])).toEqual([2, 3, 5]);
    const ex = shapeOf("expand", [T("float32", [3, 1]), T("int64", [3])]);
    expect(ex[1]).toBe(3);
    expect(sym(ex[0]!) && sym(ex[2]!)).toBe(true);
    expect(shapeOf("tile", [x, i64([1, 2, 3])])).toEqual(["N", 6, 12]);
    expect(shapeOf("pad", [x, i64([1, 2]), undefined, i64([-1])])).toEqual(["N", 3, 7]);
    expect(() => shapeOf("pad", [x, i64([0, 0, 0, 0, 0, 0])], { mode: "mirror" })).toThrow(/unknown mode/);
  });

  it("shape, size, range, constant_of_shape, cast", () => {
    expect(infer("shape", [x], { start: 1 })[0]).toEqual({ dtype: "int64", shape: [2] });
    expect(infer("size", [x])[0]).toEqual({ dtype: "int64", shape: [] });
    expect(shapeOf("range", [f32([], [0]), f32([], [10]), f32([], [3])])).toEqual([4]);
    expect(sym(shapeOf("range", [T("float32", []), T("float32", []), T("float32", [])])[0]!)).toBe(true);
    expect(infer("constant_of_shape", [i64([2, 2])], { dtype: "int8" })[0]).toEqual({ dtype: "int8", shape: [2, 2] });
    expect(infer("cast", [x], { to: "float16" })[0]).toEqual({ dtype: "float16", shape: ["N", 3, 4] });
  });

  it("pooling keeps N and C and derives symbolic spatial dims", () => {
    const img = T("float32", ["N", 8, "H", 32]);
    const s = shapeOf("max_pool", [img], { kernel_shape: [2, 2], strides: [2, 2] });
    expect(s[0]).toBe("N");
    expect(s[1]).toBe(8);
    expect(sym(s[2]!)).toBe(true);
    expect(s[3]).toBe(16);
    expect(infer("max_pool", [img], { kernel_shape: [2, 2] }, 2)[1]!.dtype).toBe("int64");
    expect(shapeOf("average_pool", [T("float32", [1, 1, 5, 5])], { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 })).toEqual([1, 1, 2, 2]);
    expect(shapeOf("global_average_pool", [img])).toEqual(["N", 8, 1, 1]);
    expect(shapeOf("adaptive_avg_pool2d", [img], { output_size: [7, 7] })).toEqual(["N", 8, 7, 7]);
  });

  it("normalization, softmax and reductions", () => {
    const ln = infer("layer_normalization", [x, T("float32", [4])], { axis: -1 }, 3);
    expect(ln.map((t) => t.shape)).toEqual([["N", 3, 4], ["N", 3, 1], ["N", 3, 1]]);
    expect(ln[1]!.dtype).toBe("float32");
    expect(() => infer("layer_normalization", [x, T("float32", [5])])).toThrow(/SHAPE_MISMATCH/);
    expect(() => infer("softmax", [T("int32", [2])])).toThrow(/DTYPE_MISMATCH/);
    expect(shapeOf("reduce_mean", [x, i64([-1])], { keepdims: 0 })).toEqual(["N", 3]);
    expect(shapeOf("reduce_sum", [x])).toEqual([1, 1, 1]);
    expect(shapeOf("reduce_max", [x], { noop_with_empty_axes: 1 })).toEqual(["N", 3, 4]);
    expect(shapeOf("reduce_min", [x, T("int64", [1])], { keepdims: 0 }).length).toBe(2);
  });

  it("resize: sizes fix the resized dims, scales multiply static ones", () => {
    const img = T("float32", ["N", 3, 10, 10]);
    expect(shapeOf("resize", [img, undefined, undefined, i64([20, 30])], { axes: [2, 3] })).toEqual(["N", 3, 20, 30]);
    expect(shapeOf("resize", [T("float32", [1, 3, 10, 10]), undefined, f32([4], [1, 1, 1.5, 0.5])])).toEqual([1, 3, 15, 5]);
    expect(shapeOf("resize", [T("float32", [1, 3, 10, 10]), undefined, T("float32", [2])], { axes: [2, 3] }).slice(0, 2)).toEqual([1, 3]);
    expect(shapeOf("resize", [T("float32", [1, 3, 10, 10]), undefined, T("float32", [4])]).every(sym)).toBe(true);
    expect(() => shapeOf("resize", [img, undefined, f32([4], [1, 1, 2, 2]), i64([1, 3, 20, 20])])).toThrow(/exactly one of scales and sizes/);
    try {
      shapeOf("resize", [img, undefined, f32([4], [1, 1, 2, 2])], { antialias: 1 });
      expect.unreachable();
    } catch (e) {
      expect(isQforgeError(e, "UNSUPPORTED")).toBe(true);
    }
  });
});

describe("graphs with dynamic shapes verify and run", () => {
  it("a graph with symbolic batch and pooling/resize/softmax verifies and runs with any batch", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", ["N", 2, 4, 4]);
    const p = b.node1("max_pool", [x], { kernel_shape: [2, 2], strides: [2, 2] });
    const scales = b.constant("scales", f32([4], [1, 1, 2, 2]));
    const r = b.node1("resize", [p, "", scales], { mode: "nearest" });
    const f = b.node1("flatten", [r]);
    b.output(b.node1("softmax", [f]));
    const g = b.build();
    verifyGraph(g);
    for (const n of [1, 3]) {
      const out = runGraph(g, [f32([n, 2, 4, 4], Array.from({ length: n * 32 }, (_, i) => i % 7))]).outputs[0]!;
      expect(out.shape).toEqual([n, 32]);
    }
  });
});
