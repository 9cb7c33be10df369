import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { fromArray, toNumbers, verifyGraph } from "@qforge/ir";
import { DataType, encodeModel, importOnnx, makeGraph, makeModel, makeTensorValueInfo, type FoldFn } from "@qforge/onnx";
import { runOp, runProgram } from "@qforge/runtime";
import { node, qforgeError, tinyModel } from "./helpers.js";

const F = DataType.FLOAT;
const fold: FoldFn = (op, inputs, attrs, numOutputs) => runOp(op, inputs, { ...attrs }, { numOutputs });

/**
 * The exporter idiom the option exists for: y = reshape(x, concat(shape(x)[0:1], [-1])) then a
 * flatten-dependent Gemm-free tail. Input x: [B, C, H, W] with symbolic B/H/W.
 */
const flattenChain = tinyModel({
  nodes: [
    node("Shape", ["x"], ["s"]),
    node("Slice", ["s", "zero", "one"], ["b"]),
    node("Cast", ["b"], ["b32"], { to: DataType.INT32 }),
    node("Cast", ["b32"], ["b64"], { to: DataType.INT64 }),
    node("Concat", ["b64", "minus1"], ["target"], { axis: 0 }),
    node("Reshape", ["x", "target"], ["flat"]),
    node("Relu", ["flat"], ["y"]),
  ],
  inputs: [["x", F, ["B", 3, "H", "W"]]],
  outputs: ["y"],
  initializers: { zero: fromArray("int64", [1], [0]), one: fromArray("int64", [1], [1]), minus1: fromArray("int64", [1], [-1]) },
  opset: 17,
});

describe("importOnnx: inputShapes, dimValues and maxTensorBytes", () => {
  it("without them dims stay symbolic, the chain stays, and the graph runs for any size", async () => {
    const ep = await importOnnx(flattenChain, { fold });
    expect(ep.graph.values.x!.shape).toEqual(["B", 3, "H", "W"]);
    expect(ep.graph.nodes.map((n) => n.op)).toEqual(["shape", "slice", "cast", "cast", "concat", "reshape", "relu"]);
    for (const [b, h, w] of [[1, 2, 2], [2, 4, 3]] as const) {
      const x = fromArray("float32", [b, 3, h, w], Array.from({ length: b * 3 * h * w }, (_, i) => i - 5));
      const [y] = runProgram(ep, [x]);
      expect(y!.shape).toEqual([b, 3 * h * w]);
    }
  });

  it("with inputShapes the Shape -> Slice -> Cast -> Concat chain folds to a constant Reshape target", async () => {
    const ep = await importOnnx(flattenChain, { fold, inputShapes: { x: [2, 3, 4, 5] } });
    verifyGraph(ep.graph);
    expect(ep.graph.values.x!.shape).toEqual([2, 3, 4, 5]);
    expect(ep.graph.nodes.map((n) => n.op)).toEqual(["reshape", "relu"]);
    const target = ep.graph.constants[ep.graph.nodes[0]!.inputs[1]!]!;
    expect(toNumbers(target.tensor)).toEqual([2, -1]);
    expect(ep.graph.values.y!.shape).toEqual([2, 60]);
    expect(ep.meta.folded).toBe(5);
    // Initializers that only fed the folded arithmetic are gone.
    expect(Object.keys(ep.graph.constants)).toEqual([ep.graph.nodes[0]!.inputs[1]]);
    const x = fromArray("float32", [2, 3, 4, 5], Array.from({ length: 120 }, (_, i) => i - 60));
    expect(toNumbers(runProgram(ep, [x])[0]!)).toEqual(toNumbers(x).map((v) => Math.max(0, v)));
  });

  it("dimValues fixes symbols by name everywhere; inputShapes binds the symbols it fixes for the other inputs", async () => {
    const m = tinyModel({
      nodes: [node("Add", ["a", "b"], ["y"])],
      inputs: [["a", F, ["N", 4]], ["b", F, ["N", 4]]],
      outputs: ["y"],
    });
    const byName = await importOnnx(m, { dimValues: { N: 3 } });
    expect([byName.graph.values.a!.shape, byName.graph.values.b!.shape, byName.graph.values.y!.shape]).toEqual([[3, 4], [3, 4], [3, 4]]);
    const byInput = await importOnnx(m, { inputShapes: { a: [5, 4] } });
    expect(byInput.graph.values.b!.shape).toEqual([5, 4]);
    expect(byInput.graph.values.y!.shape).toEqual([5, 4]);
  });

  it("gives a shape to an input the model declares without one", async () => {
    const bytes = encodeModel(makeModel(makeGraph({
      nodes: [node("Relu", ["x"], ["y"])],
      inputs: [makeTensorValueInfo("x", "float32", undefined)],
      outputs: [{ name: "y" }],
    }), { opset: 14 }));
    expect((await qforgeError(importOnnx(bytes))).message).toMatch(/no shape .*inputShapes/s);
    const ep = await importOnnx(bytes, { inputShapes: { x: [2, 2] } });
    expect(ep.graph.values.y!.shape).toEqual([2, 2]);
  });

  it("refuses contradictions and unknown names with BAD_INPUT naming the input or symbol", async () => {
    const m = tinyModel({
      nodes: [node("Add", ["a", "b"], ["y"])],
      inputs: [["a", F, ["N", 4]], ["b", F, ["N", 4]]],
      outputs: ["y"],
    });
    const cases: [Parameters<typeof importOnnx>[1], RegExp, string | undefined][] = [
      [{ inputShapes: { c: [1, 4] } }, /not a graph input/, "c"],
      [{ inputShapes: { a: [1, 4, 1] } }, /rank 3/, "a"],
      [{ inputShapes: { a: [1, 5] } }, /dim 1 is 5; the model declares it 4/, "a"],
      [{ inputShapes: { a: [1, -4] } }, /non-negative integer/, undefined],
      [{ inputShapes: { a: [1.5, 4] } }, /non-negative integer/, undefined],
      [{ inputShapes: { a: [1, 4], b: [2, 4] } }, /'N' is 1 .* and 2/, "N"],
      [{ dimValues: { N: 1 }, inputShapes: { b: [2, 4] } }, /'N' is 1 \(dimValues\) and 2/, "N"],
      [{ dimValues: { M: 1 } }, /no symbolic dim/, "M"],
      [{ dimValues: { N: -1 } }, /non-negative integer/, undefined],
      [{ inputShapes: { a: "1,4" as unknown as number[] } }, /array of sizes/, "a"],
      [{ maxTensorBytes: Number.NaN }, /maxTensorBytes must be a non-negative number/, undefined],
    ];
    for (const [opts, message, where] of cases) {
      const e = await qforgeError(importOnnx(m, opts));
      expect(e.code, JSON.stringify(opts)).toBe("BAD_INPUT");
      expect(e.message, JSON.stringify(opts)).toMatch(message);
      if (where !== undefined) expect(e.node, JSON.stringify(opts)).toBe(where);
    }
    // An input named like an Object.prototype member is an ordinary name.
    const proto = tinyModel({ nodes: [node("Relu", ["constructor"], ["y"])], inputs: [["constructor", F, ["N"]]], outputs: ["y"] });
    expect((await importOnnx(proto, { dimValues: { N: 2 } })).graph.values.y!.shape).toEqual([2]);
    expect((await importOnnx(proto)).graph.values.y!.shape).toEqual(["N"]);
  });

  it("property: for any sizes, the folded static import computes what the symbolic import computes", async () => {
    const dynamic = await importOnnx(flattenChain, { fold });
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), async (b, h, w) => {
        const fixed = await importOnnx(flattenChain, { fold, inputShapes: { x: [b, 3, h, w] } });
        expect(fixed.graph.nodes.map((n) => n.op)).toEqual(["reshape", "relu"]);
        const x = fromArray("float32", [b, 3, h, w], Array.from({ length: b * 3 * h * w }, (_, i) => Math.sin(i)));
        const [a] = runProgram(dynamic, [x]);
        const [c] = runProgram(fixed, [x]);
        expect(c!.shape).toEqual(a!.shape);
        expect(toNumbers(c!)).toEqual(toNumbers(a!));
      }),
      { numRuns: 25, seed: 7 },
    );
  });
});
