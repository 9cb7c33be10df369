import { describe, expect, it, onTestFinished } from "vitest";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromArray, stateDict, toNumbers, type Graph, type Tensor } from "@qforge/ir";
import {
  DataType, encodeModel, importOnnx, makeGraph, makeModel, makeTensorValueInfo, type FoldFn, type ModelProto,
} from "@qforge/onnx";
import { errorCode, node, qforgeError, tinyModel } from "./helpers.js";

const F = DataType.FLOAT;

function ops(g: Graph): string[] {
  return g.nodes.map((n) => n.op);
}

function constValues(g: Graph, v: string): number[] {
  const c = g.constants[v];
  if (c === undefined) throw new Error(`'${v}' is not a constant`);
  return toNumbers(c.tensor);
}

/** A test-local fold for int64/float32 `add` and `concat` on 1-D tensors (stands in for runtime's runOp). */
function makeFold(log: string[]): FoldFn {
  return (op, inputs) => {
    log.push(op);
    if (op === "add") {
      const [a, b] = inputs as [Tensor, Tensor];
      const av = toNumbers(a);
      const bv = toNumbers(b);
      return [fromArray(a.dtype, a.shape, av.map((x, i) => x + bv[bv.length === 1 ? 0 : i]!))];
    }
    if (op === "concat") {
      const vals = inputs.flatMap((t) => toNumbers(t));
      return [fromArray(inputs[0]!.dtype, [vals.length], vals)];
    }
    return undefined;
  };
}

describe("importOnnx: graph structure", () => {
  it("imports a node with its signature, symbolic dims and provenance", async () => {
    const bytes = tinyModel({
      nodes: [node("Relu", ["x"], ["y"], {}, "relu0")],
      inputs: [["x", F, ["N", 3, ""]]],
      outputs: ["y"],
      opset: 14,
    });
    const ep = await importOnnx(bytes);
    expect(ep.inputs).toEqual([{ name: "x", value: "x" }]);
    expect(ep.outputs).toEqual([{ name: "y", value: "y" }]);
    expect(ep.graph.values.x).toEqual({ dtype: "float32", shape: ["N", 3, "unk__0"] });
    expect(ep.graph.values.y).toEqual({ dtype: "float32", shape: ["N", 3, "unk__0"] });
    expect(ep.graph.nodes).toHaveLength(1);
    expect(ep.graph.nodes[0]).toMatchObject({ name: "relu0", op: "relu", inputs: ["x"], outputs: ["y"], meta: { onnxOp: "Relu", onnxName: "relu0" } });
    expect(ep.meta).toMatchObject({ source: "onnx", opset: 14, irVersion: 8 });
  });

  it("gives unnamed and negative dims fresh symbols that avoid the model's own names", async () => {
    const m = makeModel(makeGraph({
      nodes: [node("Add", ["a", "b"], ["c"])],
      inputs: [makeTensorValueInfo("a", F, ["unk__0", 2]), makeTensorValueInfo("b", F, [-1, 2])],
      outputs: [{ name: "c" }],
    }));
    m.graph!.input![0]!.type!.tensor_type!.shape!.dim!.push({});
    m.graph!.input![0]!.type!.tensor_type!.shape!.dim!.splice(2, 1);
    const ep = await importOnnx(encodeModel(m));
    expect(ep.graph.values.a!.shape).toEqual(["unk__0", 2]);
    expect(ep.graph.values.b!.shape).toEqual(["unk__1", 2]);
  });

  it("turns initializers into parameters, keeps initializer-inputs parameters and drops unused ones", async () => {
    const w = fromArray("float32", [2, 3], [1, 2, 3, 4, 5, 6]);
    const bytes = tinyModel({
      nodes: [node("MatMul", ["x", "w"], ["y"])],
      inputs: [["x", F, [1, 2]], ["w", F, [2, 3]]],
      outputs: ["y"],
      initializers: { w, unused: fromArray("float32", [1], [9]) },
    });
    const ep = await importOnnx(bytes);
    expect(ep.inputs.map((s) => s.name)).toEqual(["x"]);
    expect(ep.graph.constants.w?.kind).toBe("parameter");
    expect(Object.keys(stateDict(ep))).toEqual(["w"]);
    expect(toNumbers(stateDict(ep).w!)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(ops(ep.graph)).toEqual(["matmul"]);
    expect(ep.graph.values.y).toEqual({ dtype: "float32", shape: [1, 3] });
  });

  it("makes Constant nodes constants without a node (value and value_* forms)", async () => {
    const bytes = tinyModel({
      nodes: [
        node("Constant", [], ["s"], { value_ints: [2, 3] }),
        node("Constant", [], ["k"], { value: fromArray("float32", [], [2]) }),
        node("Constant", [], ["f"], { value_float: 0.5 }),
        node("Reshape", ["x", "s"], ["r"]),
        node("Mul", ["r", "k"], ["y"]),
      ],
      inputs: [["x", F, [6]]],
      outputs: ["y", "f"],
    });
    const ep = await importOnnx(bytes);
    expect(ops(ep.graph)).toEqual(["reshape", "mul"]);
    expect(ep.graph.constants.s).toMatchObject({ kind: "constant" });
    expect(constValues(ep.graph, "s")).toEqual([2, 3]);
    expect(constValues(ep.graph, "f")).toEqual([0.5]);
    expect(ep.graph.values.y).toEqual({ dtype: "float32", shape: [2, 3] });
    expect(ep.outputs.map((o) => o.name)).toEqual(["y", "f"]);
  });

  it("sorts nodes stored out of topological order", async () => {
    const bytes = tinyModel({
      nodes: [node("Relu", ["t"], ["y"]), node("Neg", ["x"], ["t"])],
      inputs: [["x", F, [2]]],
      outputs: ["y"],
    });
    expect(ops((await importOnnx(bytes)).graph)).toEqual(["neg", "relu"]);
  });

  it("names nodes uniquely even when ONNX names repeat or collide with value names", async () => {
    const bytes = tinyModel({
      nodes: [node("Neg", ["x"], ["a"], {}, "y"), node("Neg", ["a"], ["y"], {}, "y"), node("Relu", ["y"], ["z"])],
      inputs: [["x", F, [2]]],
      outputs: ["z"],
    });
    const g = (await importOnnx(bytes)).graph;
    const names = g.nodes.map((n) => n.name);
    expect(new Set([...names, ...Object.keys(g.values)]).size).toBe(names.length + Object.keys(g.values).length);
    expect(g.nodes.map((n) => n.meta.onnxName)).toEqual(["y", "y", undefined]);
  });

  it("imports from a path, reading relative to the file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qforge-onnx-"));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, "m.onnx");
    writeFileSync(file, tinyModel({ nodes: [node("Sigmoid", ["x"], ["y"])], inputs: [["x", F, [1]]], outputs: ["y"] }));
    expect(ops((await importOnnx(file)).graph)).toEqual(["sigmoid"]);
    expect(await errorCode(importOnnx(join(dir, "missing.onnx")))).toBe("IO_ERROR");
    expect(await errorCode(importOnnx(42 as unknown as Uint8Array))).toBe("BAD_INPUT");
  });
});

describe("importOnnx: folding", () => {
  it("folds Shape and Size of static shapes without a fold function", async () => {
    const bytes = tinyModel({
      nodes: [node("Shape", ["x"], ["s"], { start: 1 }), node("Size", ["x"], ["n"]), node("Shape", ["d"], ["sd"])],
      inputs: [["x", F, [2, 3, 4]], ["d", F, ["N", 3]]],
      outputs: ["s", "n", "sd"],
      opset: 15,
    });
    const ep = await importOnnx(bytes);
    expect(constValues(ep.graph, "s")).toEqual([3, 4]);
    expect(constValues(ep.graph, "n")).toEqual([24]);
    expect(ops(ep.graph)).toEqual(["shape"]);
    expect(ep.graph.values.sd).toEqual({ dtype: "int64", shape: [2] });
    expect(ep.meta.folded).toBe(2);
  });

  it("folds shape arithmetic through opts.fold and leaves no dead constants", async () => {
    const log: string[] = [];
    const bytes = tinyModel({
      nodes: [
        node("Shape", ["x"], ["s"]),
        node("Add", ["s", "one"], ["s1"]),
        node("Concat", ["s1", "tail"], ["target"], { axis: 0 }),
        node("Reshape", ["x", "target"], ["y"]),
      ],
      inputs: [["x", F, [1, 5]]],
      outputs: ["y"],
      initializers: { one: fromArray("int64", [1], [0]), tail: fromArray("int64", [1], [1]) },
    });
    const ep = await importOnnx(bytes, { fold: makeFold(log) });
    expect(log).toEqual(["add", "concat"]);
    expect(ops(ep.graph)).toEqual(["reshape"]);
    expect(constValues(ep.graph, "target")).toEqual([1, 5, 1]);
    expect(Object.keys(ep.graph.constants)).toEqual(["target"]);
    expect(ep.graph.values.y).toEqual({ dtype: "float32", shape: [1, 5, 1] });
  });

  it("does not fold non-constant inputs, non-foldable ops or outputs over 4096 elements", async () => {
    const log: string[] = [];
    const big = fromArray("float32", [5000], new Array<number>(5000).fill(1));
    const bytes = tinyModel({
      nodes: [node("Add", ["x", "one"], ["a"]), node("Add", ["big", "big"], ["b"]), node("Relu", ["one"], ["c"])],
      inputs: [["x", F, [1]]],
      outputs: ["a", "b", "c"],
      initializers: { one: fromArray("float32", [1], [1]), big },
    });
    const ep = await importOnnx(bytes, { fold: makeFold(log) });
    expect(log).toEqual([]);
    expect(ops(ep.graph)).toEqual(["add", "add", "relu"]);
  });

  it("keeps the node when the fold declines, throws or returns the wrong type", async () => {
    const model = tinyModel({
      nodes: [node("Add", ["a", "b"], ["c"])],
      inputs: [],
      outputs: ["c"],
      initializers: { a: fromArray("int64", [2], [1, 2]), b: fromArray("int64", [2], [3, 4]) },
    });
    for (const fold of [
      (() => undefined) as FoldFn,
      (() => { throw new Error("kernel missing"); }) as FoldFn,
      (() => [fromArray("float32", [2], [4, 6])]) as FoldFn,
      (() => [fromArray("int64", [3], [4, 6, 8])]) as FoldFn,
    ]) {
      const ep = await importOnnx(model, { fold });
      expect(ops(ep.graph)).toEqual(["add"]);
    }
    const folded = await importOnnx(model, { fold: makeFold([]) });
    expect(ops(folded.graph)).toEqual([]);
    expect(constValues(folded.graph, "c")).toEqual([4, 6]);
  });
});

describe("importOnnx: upgrading older operator forms", () => {
  it("Softmax < 13 coerces to 2-D: flatten/softmax/reshape, or axis=-1 when the axis is last", async () => {
    const mid = await importOnnx(tinyModel({ nodes: [node("Softmax", ["x"], ["y"], { axis: 1 })], inputs: [["x", F, [2, 3, 4]]], outputs: ["y"], opset: 11 }));
    expect(ops(mid.graph)).toEqual(["flatten", "softmax", "reshape"]);
    expect(mid.graph.nodes[0]!.attrs).toEqual({ axis: 1 });
    expect(mid.graph.nodes[1]!.attrs).toEqual({ axis: -1 });
    expect(constValues(mid.graph, mid.graph.nodes[2]!.inputs[1]!)).toEqual([2, 3, 4]);
    expect(mid.graph.values.y).toEqual({ dtype: "float32", shape: [2, 3, 4] });
    const last = await importOnnx(tinyModel({ nodes: [node("Softmax", ["x"], ["y"])], inputs: [["x", F, [2, 3]]], outputs: ["y"], opset: 11 }));
    expect(last.graph.nodes.map((n) => [n.op, n.attrs])).toEqual([["softmax", { axis: -1 }]]);
    const v13 = await importOnnx(tinyModel({ nodes: [node("Softmax", ["x"], ["y"], { axis: 0 })], inputs: [["x", F, [2, 3]]], outputs: ["y"], opset: 13 }));
    expect(v13.graph.nodes.map((n) => [n.op, n.attrs])).toEqual([["softmax", { axis: 0 }]]);
  });

  it("Clip < 11: min/max attributes become scalar inputs of the input's dtype", async () => {
    const ep = await importOnnx(tinyModel({ nodes: [node("Clip", ["x"], ["y"], { min: -1, max: 6 })], inputs: [["x", F, [3]]], outputs: ["y"], opset: 6 }));
    const clip = ep.graph.nodes[0]!;
    expect(clip.op).toBe("clip");
    expect(constValues(ep.graph, clip.inputs[1]!)).toEqual([-1]);
    expect(constValues(ep.graph, clip.inputs[2]!)).toEqual([6]);
    expect(ep.graph.constants[clip.inputs[1]!]!.tensor.dtype).toBe("float32");
  });

  it("axes/split attributes become int64 inputs before their opset (Squeeze, Unsqueeze, Reduce*, Split)", async () => {
    const ep = await importOnnx(tinyModel({
      nodes: [
        node("Unsqueeze", ["x"], ["u"], { axes: [0] }),
        node("Squeeze", ["u"], ["s"], { axes: [0] }),
        node("ReduceMean", ["s"], ["m"], { axes: [1], keepdims: 0 }),
        node("ReduceSum", ["s"], ["t"], { axes: [-1] }),
        node("Split", ["s"], ["p", "q"], { axis: 1, split: [1, 3] }),
      ],
      inputs: [["x", F, [2, 4]]],
      outputs: ["m", "t", "p", "q"],
      opset: 11,
    }));
    const byOp = Object.fromEntries(ep.graph.nodes.map((n) => [n.op, n]));
    expect(constValues(ep.graph, byOp.unsqueeze!.inputs[1]!)).toEqual([0]);
    expect(constValues(ep.graph, byOp.squeeze!.inputs[1]!)).toEqual([0]);
    expect(constValues(ep.graph, byOp.reduce_mean!.inputs[1]!)).toEqual([1]);
    expect(byOp.reduce_mean!.attrs).toEqual({ keepdims: 0 });
    expect(constValues(ep.graph, byOp.reduce_sum!.inputs[1]!)).toEqual([-1]);
    expect(constValues(ep.graph, byOp.split!.inputs[1]!)).toEqual([1, 3]);
    expect(byOp.split!.attrs).toEqual({ axis: 1 });
    expect(ep.graph.values.m).toEqual({ dtype: "float32", shape: [2] });
    expect(ep.graph.values.q).toEqual({ dtype: "float32", shape: [2, 3] });
  });

  it("ReduceMean at 18 and ReduceSum at 13 keep axes as an input", async () => {
    const ep = await importOnnx(tinyModel({
      nodes: [node("ReduceMean", ["x", "ax"], ["m"]), node("ReduceSum", ["x", "ax"], ["s"], { keepdims: 0 })],
      inputs: [["x", F, [2, 4]]],
      outputs: ["m", "s"],
      initializers: { ax: fromArray("int64", [1], [0]) },
      opset: 18,
    }));
    expect(ep.graph.nodes.map((n) => n.inputs)).toEqual([["x", "ax"], ["x", "ax"]]);
    expect(ep.graph.values.m!.shape).toEqual([1, 4]);
    expect(ep.graph.values.s!.shape).toEqual([4]);
  });

  it("Split without sizes gets num_outputs", async () => {
    const ep = await importOnnx(tinyModel({ nodes: [node("Split", ["x"], ["a", "b", "c"])], inputs: [["x", F, [6]]], outputs: ["a", "b", "c"], opset: 13 }));
    expect(ep.graph.nodes[0]!.attrs).toEqual({ num_outputs: 3 });
    expect(ep.graph.values.c!.shape).toEqual([2]);
  });

  it("Slice < 10 and Pad < 11: attributes become inputs", async () => {
    const ep = await importOnnx(tinyModel({
      nodes: [
        node("Slice", ["x"], ["s"], { starts: [1], ends: [9223372036854775807], axes: [1] }),
        node("Pad", ["s"], ["p"], { pads: [0, 1, 0, 2], value: 1.5 }),
      ],
      inputs: [["x", F, [2, 5]]],
      outputs: ["p"],
      opset: 9,
    }));
    const [slice, pad] = ep.graph.nodes;
    expect(slice!.op).toBe("slice");
    expect(slice!.inputs.slice(1).map((v) => constValues(ep.graph, v))).toEqual([[1], [Number.MAX_SAFE_INTEGER], [1]]);
    expect(pad!.op).toBe("pad");
    expect(constValues(ep.graph, pad!.inputs[1]!)).toEqual([0, 1, 0, 2]);
    expect(constValues(ep.graph, pad!.inputs[2]!)).toEqual([1.5]);
    expect(pad!.attrs).toEqual({ mode: "constant" });
    expect(ep.graph.values.p).toEqual({ dtype: "float32", shape: [2, 7] });
  });

  it("Upsample and Resize-10 become resize with the asymmetric/floor behaviour", async () => {
    const scales = fromArray("float32", [4], [1, 1, 2, 2]);
    for (const [op, opset] of [["Upsample", 9], ["Resize", 10]] as const) {
      const ep = await importOnnx(tinyModel({
        nodes: [node(op, ["x", "scales"], ["y"], { mode: "nearest" })],
        inputs: [["x", F, [1, 1, 2, 2]]],
        outputs: ["y"],
        initializers: { scales },
        opset,
      }));
      expect(ep.graph.nodes.map((n) => [n.op, n.inputs, n.attrs])).toEqual([
        ["resize", ["x", "", "scales"], { mode: "nearest", coordinate_transformation_mode: "asymmetric", nearest_mode: "floor" }],
      ]);
      expect(ep.graph.values.y!.shape).toEqual([1, 1, 4, 4]);
    }
    const v7 = await importOnnx(tinyModel({ nodes: [node("Upsample", ["x"], ["y"], { scales: [1, 1, 2, 3], mode: "linear" })], inputs: [["x", F, [1, 1, 2, 2]]], outputs: ["y"], opset: 7 }));
    expect(v7.graph.nodes[0]!.attrs).toEqual({ mode: "linear", coordinate_transformation_mode: "asymmetric" });
    expect(constValues(v7.graph, v7.graph.nodes[0]!.inputs[2]!)).toEqual([1, 1, 2, 3]);
  });

  it("Resize-11: empty roi/scales inputs become omitted inputs", async () => {
    const ep = await importOnnx(tinyModel({
      nodes: [node("Resize", ["x", "roi", "scales", "sizes"], ["y"], { mode: "nearest" })],
      inputs: [["x", F, [1, 1, 2, 2]]],
      outputs: ["y"],
      initializers: { roi: fromArray("float32", [0], []), scales: fromArray("float32", [0], []), sizes: fromArray("int64", [4], [1, 1, 3, 3]) },
      opset: 11,
    }));
    expect(ep.graph.nodes[0]!.inputs).toEqual(["x", "", "", "sizes"]);
    expect(ep.graph.values.y!.shape).toEqual([1, 1, 3, 3]);
    const bad = await qforgeError(importOnnx(tinyModel({
      nodes: [node("Resize", ["x", "roi", "scales"], ["y"], { coordinate_transformation_mode: "tf_half_pixel_for_nn" }, "rs")],
      inputs: [["x", F, [1, 1, 2, 2]], ["roi", F, [0]], ["scales", F, [4]]],
      outputs: ["y"],
      opset: 11,
    })));
    expect(bad).toMatchObject({ code: "UNSUPPORTED", node: "rs" });
  });

  it("Cast: `to` becomes a qforge dtype name; string targets are UNSUPPORTED naming the node", async () => {
    const ep = await importOnnx(tinyModel({ nodes: [node("Cast", ["x"], ["y"], { to: DataType.FLOAT16 })], inputs: [["x", F, [2]]], outputs: ["y"], opset: 13 }));
    expect(ep.graph.nodes[0]!.attrs).toEqual({ to: "float16" });
    expect(ep.graph.values.y!.dtype).toBe("float16");
    const v1 = await importOnnx(tinyModel({ nodes: [node("Cast", ["x"], ["y"], { to: "INT32" })], inputs: [["x", F, [2]]], outputs: ["y"], opset: 5 }));
    expect(v1.graph.nodes[0]!.attrs).toEqual({ to: "int32" });
    const err = await qforgeError(importOnnx(tinyModel({ nodes: [node("Cast", ["x"], ["y"], { to: DataType.STRING }, "c0")], inputs: [["x", F, [2]]], outputs: ["y"] })));
    expect(err).toMatchObject({ code: "UNSUPPORTED", node: "c0" });
    expect(err.message).toMatch(/STRING/);
  });

  it("variadic Max/Min/Sum/Mean become chains of binary ops", async () => {
    const ep = await importOnnx(tinyModel({
      nodes: [
        node("Max", ["a", "b", "c"], ["mx"]),
        node("Sum", ["a"], ["s1"]),
        node("Min", ["a", "b"], ["mn"]),
        node("Mean", ["a", "b", "c"], ["me"]),
      ],
      inputs: [["a", F, [2]], ["b", F, [2]], ["c", F, [1]]],
      outputs: ["mx", "s1", "mn", "me"],
      opset: 13,
    }));
    expect(ops(ep.graph)).toEqual(["max", "max", "identity", "min", "add", "add", "div"]);
    expect(ep.graph.nodes[1]!.outputs).toEqual(["mx"]);
    const div = ep.graph.nodes[6]!;
    expect(div.outputs).toEqual(["me"]);
    expect(constValues(ep.graph, div.inputs[1]!)).toEqual([3]);
  });

  it("BatchNormalization < 14 with extra outputs runs in training mode; spatial=0 is UNSUPPORTED", async () => {
    const p = (n: string): [string, number, number[]] => [n, F, [3]];
    const ep = await importOnnx(tinyModel({
      nodes: [node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "rm", "rv", "sm", "sv"], { epsilon: 1e-3 })],
      inputs: [["x", F, [2, 3, 4]], p("s"), p("b"), p("m"), p("v")],
      outputs: ["y", "rm", "rv"],
      opset: 9,
    }));
    const bn = ep.graph.nodes[0]!;
    expect(bn.op).toBe("batch_norm");
    expect(bn.outputs).toEqual(["y", "rm", "rv"]);
    expect(bn.attrs.training_mode).toBe(1);
    expect(bn.attrs.epsilon).toBeCloseTo(1e-3, 9);
    const err = await qforgeError(importOnnx(tinyModel({
      nodes: [node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], { spatial: 0 }, "bn")],
      inputs: [["x", F, [2, 3, 4]], p("s"), p("b"), p("m"), p("v")],
      outputs: ["y"],
      opset: 7,
    })));
    expect(err).toMatchObject({ code: "UNSUPPORTED", node: "bn" });
  });

  it("Dropout: ratio attribute -> input before 12; the opset < 10 mask is cast back to the input dtype", async () => {
    const ep = await importOnnx(tinyModel({ nodes: [node("Dropout", ["x"], ["y", "mask"], { ratio: 0.25 })], inputs: [["x", F, [4]]], outputs: ["y", "mask"], opset: 9 }));
    expect(ops(ep.graph)).toEqual(["dropout", "cast"]);
    expect(constValues(ep.graph, ep.graph.nodes[0]!.inputs[1]!)).toEqual([0.25]);
    expect(ep.graph.values.mask).toEqual({ dtype: "float32", shape: [4] });
    const v13 = await importOnnx(tinyModel({ nodes: [node("Dropout", ["x"], ["y", "mask"], { seed: 0 })], inputs: [["x", F, [4]]], outputs: ["y", "mask"], opset: 13 }));
    expect(ops(v13.graph)).toEqual(["dropout"]);
    expect(v13.graph.values.mask!.dtype).toBe("bool");
  });

  it("ConstantOfShape's tensor attribute becomes value/dtype attributes", async () => {
    const ep = await importOnnx(tinyModel({
      nodes: [node("ConstantOfShape", ["s"], ["y"], { value: fromArray("int64", [1], [7]) })],
      inputs: [["s", DataType.INT64, [2]]],
      outputs: ["y"],
      opset: 9,
    }));
    expect(ep.graph.nodes[0]!.attrs).toEqual({ value: 7, dtype: "int64" });
    expect(ep.graph.values.y!.dtype).toBe("int64");
  });

  it("drops opset-1 consumed_inputs and Gemm-6's broadcast flag", async () => {
    const ep = await importOnnx(tinyModel({
      nodes: [node("Relu", ["x"], ["r"], { consumed_inputs: [0] }), node("Gemm", ["r", "w", "c"], ["y"], { broadcast: 1, transB: 1 })],
      inputs: [["x", F, [2, 3]], ["w", F, [4, 3]], ["c", F, [4]]],
      outputs: ["y"],
      opset: 6,
    }));
    expect(ep.graph.nodes.map((n) => [n.op, n.attrs])).toEqual([["relu", {}], ["gemm", { transB: 1 }]]);
  });
});

describe("importOnnx: errors name the node", () => {
  const relu = (extra: Partial<ModelProto> = {}): Uint8Array => {
    const m = makeModel(makeGraph({ nodes: [node("Relu", ["x"], ["y"])], inputs: [makeTensorValueInfo("x", F, [1])], outputs: [{ name: "y" }] }));
    return encodeModel({ ...m, ...extra });
  };

  it("unknown ops and other domains are UNSUPPORTED; quantized ops import", async () => {
    const unknown = await qforgeError(importOnnx(tinyModel({ nodes: [node("FancyOp", ["x"], ["y"], {}, "f1")], inputs: [["x", F, [1]]], outputs: ["y"] })));
    expect(unknown).toMatchObject({ code: "UNSUPPORTED", node: "f1" });
    expect(unknown.message).toMatch(/FancyOp/);
    const m = makeModel(makeGraph({ nodes: [{ ...node("Gelu", ["x"], ["y"], {}, "g"), domain: "com.microsoft" }], inputs: [makeTensorValueInfo("x", F, [1])], outputs: [{ name: "y" }] }));
    expect(await qforgeError(importOnnx(encodeModel(m)))).toMatchObject({ code: "UNSUPPORTED", node: "g" });
    const q = await importOnnx(tinyModel({ nodes: [node("QuantizeLinear", ["x", "s"], ["y"], {}, "q")], inputs: [["x", F, [1]], ["s", F, []]], outputs: ["y"], opset: 13 }));
    expect(q.graph.nodes.map((n) => n.op)).toEqual(["quantize_linear"]);
    expect(q.graph.values["y"]).toEqual({ dtype: "uint8", shape: [1] });
    const loop = await qforgeError(importOnnx(tinyModel({ nodes: [node("If", ["c"], ["y"], {}, "branch")], inputs: [["c", DataType.BOOL, []]], outputs: ["y"] })));
    expect(loop).toMatchObject({ code: "UNSUPPORTED", node: "branch" });
  });

  it("opsets: newer than 21 or older than an op's oldest handled form are UNSUPPORTED; none is BAD_MODEL", async () => {
    expect(await errorCode(importOnnx(relu({ opset_import: [{ domain: "", version: 22 }] })))).toBe("UNSUPPORTED");
    expect(await errorCode(importOnnx(relu({ opset_import: [{ domain: "ai.onnx.ml", version: 3 }] })))).toBe("BAD_MODEL");
    expect(await errorCode(importOnnx(relu({ opset_import: [{ domain: "", version: 0 }] })))).toBe("BAD_MODEL");
    const add6 = await qforgeError(importOnnx(tinyModel({ nodes: [node("Add", ["x", "x"], ["y"], {}, "a")], inputs: [["x", F, [1]]], outputs: ["y"], opset: 6 })));
    expect(add6).toMatchObject({ code: "UNSUPPORTED", node: "a" });
  });

  it("a missing initializer, a cycle, SSA violations and undefined outputs are BAD_MODEL", async () => {
    const missing = await qforgeError(importOnnx(tinyModel({ nodes: [node("MatMul", ["x", "w"], ["y"], {}, "mm")], inputs: [["x", F, [1, 2]]], outputs: ["y"] })));
    expect(missing).toMatchObject({ code: "BAD_MODEL", node: "mm" });
    expect(missing.message).toMatch(/'w'/);
    const cycle = tinyModel({ nodes: [node("Add", ["x", "b"], ["a"]), node("Relu", ["a"], ["b"])], inputs: [["x", F, [1]]], outputs: ["b"] });
    expect(await errorCode(importOnnx(cycle))).toBe("BAD_MODEL");
    const twice = tinyModel({ nodes: [node("Relu", ["x"], ["y"]), node("Neg", ["x"], ["y"], {}, "dup")], inputs: [["x", F, [1]]], outputs: ["y"] });
    expect(await qforgeError(importOnnx(twice))).toMatchObject({ code: "BAD_MODEL", node: "dup" });
    const shadow = tinyModel({ nodes: [node("Relu", ["x"], ["x"], {}, "sh")], inputs: [["x", F, [1]]], outputs: ["x"] });
    expect(await qforgeError(importOnnx(shadow))).toMatchObject({ code: "BAD_MODEL", node: "sh" });
    const noOut = tinyModel({ nodes: [node("Relu", ["x"], ["y"])], inputs: [["x", F, [1]]], outputs: ["z"] });
    expect(await qforgeError(importOnnx(noOut))).toMatchObject({ code: "BAD_MODEL", node: "z" });
    expect(await errorCode(importOnnx(encodeModel({ ir_version: 8, opset_import: [{ domain: "", version: 13 }] })))).toBe("BAD_MODEL");
  });

  it("non-tensor or shapeless graph inputs and mistyped attributes are reported", async () => {
    const seq = makeModel(makeGraph({ nodes: [node("Identity", ["s"], ["y"])], inputs: [{ name: "s", type: { sequence_type: { elem_type: { tensor_type: { elem_type: F } } } } }], outputs: [{ name: "y" }] }));
    expect(await qforgeError(importOnnx(encodeModel(seq)))).toMatchObject({ code: "UNSUPPORTED", node: "s" });
    expect(await errorCode(importOnnx(tinyModel({ nodes: [node("Relu", ["x"], ["y"])], inputs: [["x", F, undefined]], outputs: ["y"] })))).toBe("UNSUPPORTED");
    expect(await errorCode(importOnnx(tinyModel({ nodes: [node("Relu", ["x"], ["y"])], inputs: [["x", DataType.UINT64, [1]]], outputs: ["y"] })))).toBe("UNSUPPORTED");
    const badAttr = await qforgeError(importOnnx(tinyModel({ nodes: [node("Softmax", ["x"], ["y"], { axis: 0.5 }, "sm")], inputs: [["x", F, [2, 2]]], outputs: ["y"], opset: 11 })));
    expect(badAttr).toMatchObject({ code: "BAD_MODEL", node: "sm" });
  });
});
