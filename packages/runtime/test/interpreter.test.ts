import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  GraphBuilder, QforgeError, fromArray, isQforgeError, programFromGraph, registerOp, req, type ExportedProgram, type Graph, type Node, type Tensor,
} from "@qforge/ir";
import { referenceBackend, registerKernel, runGraph, runOp, runProgram } from "../src/index.js";
import { arbShapedTensor, f32, i64, vals } from "./helpers.js";

/** y = relu(x) + c, z = x * 2 (two outputs; x read by two nodes). */
function smallGraph(shape: (number | string)[] = ["N", 3]): Graph {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", shape);
  const c = b.constant("c", f32([3], [1, 2, 3]));
  const two = b.constant("two", f32([], [2]));
  const r = b.node1("relu", [x], {}, { name: "relu" });
  const y = b.node1("add", [r, c], {}, { name: "add" });
  const z = b.node1("mul", [x, two], {}, { name: "mul" });
  b.output(y, z);
  return b.build();
}

function catchErr(fn: () => unknown): QforgeError {
  try {
    fn();
  } catch (e) {
    if (e instanceof QforgeError) return e;
    throw e;
  }
  throw new Error("expected a QforgeError");
}

describe("runGraph", () => {
  it("interprets nodes in order (hand-computed)", () => {
    const { outputs } = runGraph(smallGraph(), { x: f32([2, 3], [-1, 0, 1, 2, -3, 4]) });
    expect(vals(outputs[0])).toEqual([1, 2, 4, 3, 2, 7]);
    expect(vals(outputs[1])).toEqual([-2, 0, 2, 4, -6, 8]);
  });

  it("takes feeds by name or by position, with the same result", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 4 }), fc.array(fc.integer({ min: -9, max: 9 }), { minLength: 12, maxLength: 12 }), (n, v) => {
      const x = f32([n, 3], v.slice(0, n * 3));
      const a = runGraph(smallGraph(), { x }).outputs;
      const b = runGraph(smallGraph(), [x]).outputs;
      expect(vals(a[0])).toEqual(vals(b[0]));
      expect(vals(a[1])).toEqual(vals(b[1]));
    }));
  });

  it("binds a symbolic dim to a different size on each run", () => {
    const g = smallGraph();
    expect(runGraph(g, { x: f32([1, 3], [1, 1, 1]) }).outputs[0]!.shape).toEqual([1, 3]);
    expect(runGraph(g, { x: f32([4, 3], new Array(12).fill(0)) }).outputs[0]!.shape).toEqual([4, 3]);
  });

  it("rejects feeds of the wrong dtype, rank or static dim with BAD_INPUT naming the input", () => {
    const g = smallGraph();
    const cases: [Tensor, RegExp][] = [
      [fromArray("float64", [1, 3], [1, 2, 3]), /dtype float32/],
      [f32([3], [1, 2, 3]), /rank 2/],
      [f32([1, 4], [1, 2, 3, 4]), /dim 1 must be 3/],
    ];
    for (const [x, msg] of cases) {
      const e = catchErr(() => runGraph(g, { x }));
      expect(e.code).toBe("BAD_INPUT");
      expect(e.node).toBe("x");
      expect(e.message).toMatch(msg);
    }
  });

  it("rejects inputs that disagree on a shared symbolic dim", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", ["N", 2]);
    const y = b.input("y", "float32", ["N", 2]);
    b.output(b.node1("add", [x, y]));
    const g = b.build();
    expect(vals(runGraph(g, { x: f32([1, 2], [1, 2]), y: f32([1, 2], [3, 4]) }).outputs[0])).toEqual([4, 6]);
    const e = catchErr(() => runGraph(g, { x: f32([1, 2], [1, 2]), y: f32([2, 2], [1, 2, 3, 4]) }));
    expect(e.code).toBe("BAD_INPUT");
    expect(e.node).toBe("y");
    expect(e.message).toMatch(/'N' = 1/);
  });

  it("rejects missing, unknown and miscounted feeds and broken tensors", () => {
    const g = smallGraph();
    expect(catchErr(() => runGraph(g, {})).message).toMatch(/'x' is not fed/);
    expect(catchErr(() => runGraph(g, { x: f32([1, 3], [1, 2, 3]), w: f32([1], [1]) })).message).toMatch(/'w' is not an input/);
    expect(catchErr(() => runGraph(g, [])).message).toMatch(/takes 1 inputs \(x\), got 0/);
    const broken = { dtype: "float32", shape: [2, 3], data: new Float32Array(2) } as Tensor;
    expect(catchErr(() => runGraph(g, [broken])).code).toBe("BAD_INPUT");
  });

  it("returns every value with keepAll, none without", () => {
    const g = smallGraph();
    const x = f32([1, 3], [-1, 2, -3]);
    expect(runGraph(g, { x }).values).toBeUndefined();
    const { values } = runGraph(g, { x }, { keepAll: true });
    expect([...values!.keys()].sort()).toEqual(["add", "c", "mul", "relu", "two", "x"]);
    expect(vals(values!.get("relu"))).toEqual([0, 2, 0]);
  });

  it("calls onNode after each node, in order, with its outputs", () => {
    const seen: [string, number[]][] = [];
    runGraph(smallGraph(), { x: f32([1, 3], [-1, 2, -3]) }, { onNode: (n: Node, outs) => seen.push([n.name, vals(outs[0])]) });
    expect(seen).toEqual([["relu", [0, 2, 0]], ["add", [1, 4, 3]], ["mul", [-2, 4, -6]]]);
  });

  it("keeps a value alive until its last reader ran", () => {
    // x feeds relu (node 0) and mul (node 2); freeing it after relu would break mul.
    const { outputs } = runGraph(smallGraph(), { x: f32([1, 3], [1, 2, 3]) });
    expect(vals(outputs[1])).toEqual([2, 4, 6]);
  });

  it("computes NaN and Inf like IEEE, without errors", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [4]);
    const z = b.constant("z", f32([4], [0, 0, 1, 0]));
    b.output(b.node1("div", [x, z]));
    expect(vals(runGraph(b.build(), [f32([4], [1, -1, NaN, 0])]).outputs[0])).toEqual([Infinity, -Infinity, NaN, NaN]);
  });

  it("wraps a plain Error thrown by a kernel into a QforgeError naming the node", () => {
    registerOp({ name: "test_interp_throws", family: "other", doc: "test", attrs: {}, inputs: [{ name: "x" }], outputs: [{ name: "y" }], infer: (ctx) => [req(ctx, 0)] });
    registerKernel("test_interp_throws", () => { throw new RangeError("boom"); });
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [1]);
    b.output(b.node1("test_interp_throws", [x], {}, { name: "bad_node" }));
    const e = catchErr(() => runGraph(b.build(), [f32([1], [1])]));
    expect(e.node).toBe("bad_node");
    expect(e.code).toBe("BAD_DATA");
    expect(e.message).toMatch(/boom/);
    expect(e.cause).toBeInstanceOf(RangeError);
  });

  it("gives a kernel's own QforgeError the node's name and keeps its code", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [3]);
    const idx = b.input("i", "int64", [1]);
    b.output(b.node1("gather", [x, idx], {}, { name: "lookup" }));
    const e = catchErr(() => runGraph(b.build(), [f32([3], [1, 2, 3]), i64([7])]));
    expect(e.code).toBe("BAD_DATA");
    expect(e.node).toBe("lookup");
    expect(e.message).toMatch(/index 7 is out of range/);
    expect(e.message.match(/BAD_DATA/g)!.length).toBe(1);
  });

  it("reports a kernel whose output disagrees with the schema", () => {
    registerOp({ name: "test_interp_wrong_shape", family: "other", doc: "test", attrs: {}, inputs: [{ name: "x" }], outputs: [{ name: "y" }], infer: (ctx) => [req(ctx, 0)] });
    registerKernel("test_interp_wrong_shape", () => [f32([2], [1, 2])]);
    const e = catchErr(() => runOp("test_interp_wrong_shape", [f32([3], [1, 2, 3])]));
    expect(e.code).toBe("SHAPE_MISMATCH");
  });

  it("computes shapes that depend on runtime values (shape -> reshape)", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", ["N", 2, 3]);
    const s = b.node1("shape", [x], { end: 1 });
    const minus1 = b.constant("minus1", i64([-1]));
    const target = b.node1("concat", [s, minus1], { axis: 0 });
    b.output(b.node1("reshape", [x, target]));
    const g = b.build();
    expect(g.values[g.outputs[0]!]!.shape.length).toBe(2);
    const out = runGraph(g, [f32([2, 2, 3], Array.from({ length: 12 }, (_, i) => i))]).outputs[0]!;
    expect(out.shape).toEqual([2, 6]);
    expect(vals(out)).toEqual(Array.from({ length: 12 }, (_, i) => i));
  });
});

describe("runProgram", () => {
  it("feeds and returns by the program's signature order", () => {
    const b = new GraphBuilder();
    const a = b.input("a", "float32", [2]);
    const c = b.input("c", "float32", [2]);
    const d = b.node1("sub", [a, c], {}, { name: "d" });
    const e = b.node1("add", [a, c], {}, { name: "e" });
    b.output(d, e);
    const g = b.build();
    const ep: ExportedProgram = {
      graph: g,
      inputs: [{ name: "second", value: "c" }, { name: "first", value: "a" }],
      outputs: [{ name: "sum", value: "e" }, { name: "diff", value: "d" }],
      meta: {},
    };
    const [sum, diff] = runProgram(ep, [f32([2], [1, 2]), f32([2], [10, 20])]);
    expect(vals(sum)).toEqual([11, 22]);
    expect(vals(diff)).toEqual([9, 18]);
    expect(() => runProgram(ep, [f32([2], [1, 2])])).toThrow(/BAD_INPUT/);
  });

  it("matches runGraph on a program built from the graph", () => {
    fc.assert(fc.property(arbShapedTensor(2, 2, 3).filter((x) => x.shape[1] === 3), (x) => {
      const g = smallGraph();
      const a = runProgram(programFromGraph(g), [x]);
      const b = runGraph(g, [x]).outputs;
      expect(vals(a[0])).toEqual(vals(b[0]));
      expect(vals(a[1])).toEqual(vals(b[1]));
    }), { numRuns: 20 });
  });
});

describe("referenceBackend", () => {
  it("compiles to a session whose plan is the node order and whose run matches runGraph", async () => {
    const g = smallGraph();
    const s = await referenceBackend.compile(g);
    expect(referenceBackend.name).toBe("reference");
    expect(s.plan).toEqual(["relu", "add", "mul"]);
    const x = f32([2, 3], [1, -2, 3, -4, 5, -6]);
    const out = await s.run({ x });
    expect(vals(out[0])).toEqual(vals(runGraph(g, { x }).outputs[0]));
  });

  it("fails at compile time with NO_KERNEL for an op without a kernel", async () => {
    registerOp({ name: "test_backend_no_kernel", family: "other", doc: "test", attrs: {}, inputs: [{ name: "x" }], outputs: [{ name: "y" }], infer: (ctx) => [req(ctx, 0)] });
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [1]);
    b.output(b.node1("test_backend_no_kernel", [x], {}, { name: "nk" }));
    await expect(referenceBackend.compile(b.build())).rejects.toSatisfy((e) => isQforgeError(e, "NO_KERNEL") && (e as QforgeError).node === "nk");
  });
});

describe("runOp", () => {
  it("fills schema defaults (leaky_relu alpha = 0.01)", () => {
    const [y] = runOp("leaky_relu", [f32([2], [-100, 5])]);
    expect(vals(y)).toEqual([Math.fround(Math.fround(0.01) * -100), 5]);
  });

  it("takes num_outputs for variadic outputs and honours opts.numOutputs", () => {
    expect(runOp("split", [f32([4], [1, 2, 3, 4])], { num_outputs: 2 }).map(vals)).toEqual([[1, 2], [3, 4]]);
    expect(runOp("split", [f32([3], [1, 2, 3])], {}, { numOutputs: 3 }).map(vals)).toEqual([[1], [2], [3]]);
    expect(() => runOp("split", [f32([3], [1, 2, 3])])).toThrow(/BAD_ARITY/);
  });

  it("rejects unknown ops and attributes", () => {
    expect(() => runOp("no_such_op", [])).toThrow(/UNKNOWN_OP/);
    expect(() => runOp("relu", [f32([1], [1])], { alpha: 1 })).toThrow(/BAD_ATTRIBUTE/);
  });
});
