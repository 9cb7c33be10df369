/**
 * ONNX export of quantized programs: convertPt2e's QDQ graphs (XnnpackQuantizer, per tensor and per
 * channel, static and dynamic) and lowerQdq's integer graphs, in the QDQ and QOperator forms.
 * onnxruntime runs every exported model; its outputs agree with the reference run of the qforge
 * program within one quantization step of the output.
 */
import { describe, expect, it } from "vitest";
import * as ort from "onnxruntime-node";
import { exportModel, Linear, Module, ReLU, type Var } from "@qforge/export";
import {
  GraphBuilder, fromArray, getElement, listOps, programFromGraph, scalar, tensor, toFloat64, verifyGraph,
  type AttrValue, type ExportedProgram, type Graph, type Tensor,
} from "@qforge/ir";
import { runProgram } from "@qforge/runtime";
import { getSymmetricQuantizationConfig, XnnpackQuantizer } from "@qforge/quantizer";
import { calibrate, convertPt2e, lowerQdq, preparePt2e } from "@qforge/pt2e";
import {
  decodeModelProto, exportOnnx, importOnnx, int64ToNumber, unlowerQuantizedOps, UNLOWERED_OPS, type ExportForm,
} from "@qforge/onnx";
import * as cnn from "../../../examples/cnn/model.js";
import * as mlp from "../../../examples/mlp/model.js";

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

const opsOf = (bytes: Uint8Array): string[] => decodeModelProto(bytes).graph!.node!.map((n) => n.op_type!);
const count = (ops: string[]): Record<string, number> => ops.reduce<Record<string, number>>((m, o) => ({ ...m, [o]: (m[o] ?? 0) + 1 }), {});

/** The scale of the dequantize producing graph output i: one quantization step of that output. */
function outputStep(g: Graph, i = 0): number {
  const n = g.nodes.find((x) => x.outputs.includes(g.outputs[i]!));
  expect(n?.op).toBe("dequantize_per_tensor");
  return getElement(g.constants[n!.inputs[1]!]!.tensor, 0);
}

/** Deterministic floats in [lo, hi). */
function rand(shape: number[], seed: number, lo = -1, hi = 1): Tensor {
  let s = (seed * 2654435761) >>> 0 || 1;
  const n = shape.reduce((a, b) => a * b, 1);
  return fromArray("float32", shape, Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + ((hi - lo) * s) / 2 ** 32;
  }));
}

function quantized(ep: ExportedProgram, shape: number[], perChannel: boolean, isDynamic = false): ExportedProgram {
  const q = new XnnpackQuantizer().setGlobal(getSymmetricQuantizationConfig({ isPerChannel: perChannel, isDynamic }));
  const prepared = preparePt2e(ep, q);
  calibrate(prepared, [0, 1, 2].map((i) => [rand(shape, 40 + i)]), { progress: false });
  return convertPt2e(prepared);
}

/** Exports in `form`, runs onnxruntime, and checks it against the reference run within `steps` output steps. */
async function checkQuantized(ep: ExportedProgram, inputs: readonly Tensor[], form: ExportForm, step: number, steps = 1): Promise<Uint8Array> {
  const bytes = exportOnnx(ep, { form });
  const [want] = runProgram(ep, inputs);
  const [got] = await runOrt(bytes, inputs);
  const d = maxAbsDiff(want!, got!);
  expect(d, `max |diff| ${d} vs step ${step}`).toBeLessThanOrEqual(steps * step * (1 + 1e-6));
  return bytes;
}

/** A graph's ops after export, with the DequantizeLinear inputs that are initializers of a given dtype. */
function dqOfInitializers(bytes: Uint8Array): { dtype: number; axis: number | undefined }[] {
  const g = decodeModelProto(bytes).graph!;
  const inits = new Map(g.initializer!.map((t) => [t.name!, t.data_type!]));
  return g.node!.filter((n) => n.op_type === "DequantizeLinear" && inits.has(n.input![0]!)).map((n) => {
    const a = n.attribute!.find((x) => x.name === "axis");
    return { dtype: inits.get(n.input![0]!)!, axis: a === undefined ? undefined : int64ToNumber(a.i, "axis") };
  });
}

const INT8 = 3;
const cnnShape = [2, 3, 16, 16];
const mlpShape = [4, 16];

/** Converted programs are made once per configuration (calibration dominates the test time). */
const cache = new Map<string, ExportedProgram>();
function converted(model: "cnn" | "mlp" | "mlp-dynamic", perChannel: boolean): ExportedProgram {
  const key = `${model}:${perChannel}`;
  let ep = cache.get(key);
  if (ep === undefined) {
    ep = model === "cnn"
      ? quantized(exportModel(cnn.createModel(), [cnn.exampleInput(1, 2)]), cnnShape, perChannel)
      : quantized(exportModel(mlp.createModel(), [mlp.exampleInput(1, 4)]), mlpShape, perChannel, model === "mlp-dynamic");
    cache.set(key, ep);
  }
  return ep;
}
const cnnInput = rand(cnnShape, 7);
const mlpInput = rand(mlpShape, 7, -2, 2);

describe("QDQ export of convertPt2e programs (XnnpackQuantizer)", () => {
  for (const perChannel of [false, true]) {
    const kind = perChannel ? "per-channel" : "per-tensor";
    it(`CNN, ${kind} weights: int8 weight initializers + DequantizeLinear, float ops between Q/DQ; onnxruntime within one output step`, async () => {
      const ep = converted("cnn", perChannel);
      const bytes = await checkQuantized(ep, [cnnInput], "qdq", outputStep(ep.graph));
      const ops = count(opsOf(bytes));
      expect(ops.Conv).toBe(5);
      expect(ops.QLinearConv).toBeUndefined();
      expect(ops.QuantizeLinear).toBe(ep.graph.nodes.filter((n) => n.op === "quantize_per_tensor").length);
      // Folded weights: an int8 initializer read by DequantizeLinear, per output channel (axis 0) or per tensor.
      const weights = dqOfInitializers(bytes);
      expect(weights).toHaveLength(6);
      for (const w of weights) {
        expect(w.dtype).toBe(INT8);
        expect(w.axis).toBe(perChannel ? 0 : undefined);
      }
    });

    it(`MLP, ${kind} weights: Gemm between Q/DQ, Gelu / LayerNormalization in float; onnxruntime within one output step`, async () => {
      const ep = converted("mlp", perChannel);
      const bytes = await checkQuantized(ep, [mlpInput], "qdq", outputStep(ep.graph));
      expect(count(opsOf(bytes))).toMatchObject({ Gemm: 3, Gelu: 2, LayerNormalization: 2, Softmax: 1 });
    });
  }

  it("dynamic quantization: choose_qparams becomes ReduceMin/ReduceMax arithmetic with the same qparams", async () => {
    const ep = converted("mlp-dynamic", true);
    expect(ep.graph.nodes.filter((n) => n.op === "choose_qparams_per_tensor")).toHaveLength(3);
    const bytes = exportOnnx(ep);
    expect(count(opsOf(bytes))).toMatchObject({ ReduceMin: 3, ReduceMax: 3, QuantizeLinear: 3, Gemm: 3 });
    const [want] = runProgram(ep, [mlpInput]);
    const [got] = await runOrt(bytes, [mlpInput]);
    expect(maxAbsDiff(want!, got!)).toBeLessThanOrEqual(1e-5);
  });
});

describe("QOperator export", () => {
  for (const perChannel of [false, true]) {
    it(`CNN, ${perChannel ? "per-channel" : "per-tensor"}: convs are QLinearConv, the biased linear MatMulInteger; onnxruntime within one step`, async () => {
      const ep = converted("cnn", perChannel);
      const step = outputStep(ep.graph);
      const bytes = await checkQuantized(ep, [cnnInput], "qoperator", step);
      const ops = count(opsOf(bytes));
      expect(ops).toMatchObject({ QLinearConv: 5, MatMulInteger: 1 });
      expect(ops.Conv).toBeUndefined();
      expect(ops.Gemm).toBeUndefined();
      // The QOperator model imports back and runs in the reference runtime alike.
      const back = await importOnnx(bytes);
      const [ref] = runProgram(back, [cnnInput]);
      const [got] = await runOrt(bytes, [cnnInput]);
      expect(maxAbsDiff(ref!, got!)).toBeLessThanOrEqual(step * (1 + 1e-6));
    });
  }

  it("a linear without bias is QLinearMatMul (weight transposed, per-column scales)", async () => {
    class NoBias extends Module {
      fc1 = new Linear(16, 12, { bias: false });
      relu = new ReLU();
      fc2 = new Linear(12, 5, { bias: false });
      forward(x: Var): Var {
        return this.fc2.call(this.relu.call(this.fc1.call(x)));
      }
    }
    const ep = quantized(exportModel(new NoBias().eval(), [mlpInput]), mlpShape, true);
    const bytes = await checkQuantized(ep, [mlpInput], "qoperator", outputStep(ep.graph));
    expect(count(opsOf(bytes))).toMatchObject({ QLinearMatMul: 2 });
    const g = decodeModelProto(bytes).graph!;
    const mm = g.node!.find((n) => n.op_type === "QLinearMatMul")!;
    const w = g.initializer!.find((t) => t.name === mm.input![3])!;
    expect(w.dims!.map((d) => int64ToNumber(d, "dim"))).toEqual([16, 12]);
    expect(g.initializer!.find((t) => t.name === mm.input![4])!.dims!.map((d) => int64ToNumber(d, "dim"))).toEqual([12]);
  });

  it("the MLP: biased linears are MatMulInteger + Add + Cast + Mul + QuantizeLinear", async () => {
    const ep = converted("mlp", true);
    const bytes = await checkQuantized(ep, [mlpInput], "qoperator", outputStep(ep.graph));
    expect(count(opsOf(bytes))).toMatchObject({ MatMulInteger: 3, Gelu: 2, LayerNormalization: 2 });
  });
});

/**
 * A hand-built QDQ pattern: uint8 activations, an int8 weight per output channel (float64 scales as
 * convertPt2e stores them), a float bias, a relu and an output zero point above the dtype's minimum.
 */
function handBuilt(anchor: "conv" | "matmul"): ExportedProgram {
  const b = new GraphBuilder();
  const act = { quant_min: 0, quant_max: 255, dtype: "uint8" };
  const w8 = { quant_min: -127, quant_max: 127, dtype: "int8" };
  const shape = anchor === "conv" ? [1, 2, 5, 5] : [3, 6];
  const x = b.input("x", "float32", shape);
  const xs = b.constant("x_scale", scalar("float32", 0.02));
  const xz = b.constant("x_zp", scalar("int32", 128));
  const xq = b.node1("quantize_per_tensor", [x, xs, xz], act, { name: "x_q" });
  const xf = b.node1("dequantize_per_tensor", [xq, xs, xz], act, { name: "x_dq" });
  const wShape = anchor === "conv" ? [3, 2, 3, 3] : [6, 3];
  const n = wShape.reduce((p, q) => p * q, 1);
  const wq = b.constant("w_q", fromArray("int8", wShape, Array.from({ length: n }, (_, i) => ((i * 37) % 255) - 127)), "parameter");
  const ws = b.constant("w_scale", fromArray("float64", [3], [0.004, 0.0031, 0.0057]));
  const wz = b.constant("w_zp", fromArray("int32", [3], [0, 0, 0]));
  const wf = b.node1("dequantize_per_channel", [wq, ws, wz], { axis: anchor === "conv" ? 0 : 1, ...w8 }, { name: "w_dq" });
  const y = anchor === "conv"
    ? b.node1("conv", [xf, wf, b.constant("bias", fromArray("float32", [3], [0.1, -0.05, 0.02]), "parameter")], { pads: [1, 1, 1, 1] }, { name: "conv" })
    : b.node1("matmul", [xf, wf], {}, { name: "matmul" });
  const r = b.node1("relu", [y], {}, { name: "relu" });
  const ys = b.constant("y_scale", scalar("float32", 0.005));
  const yz = b.constant("y_zp", scalar("int32", 10));
  const yq = b.node1("quantize_per_tensor", [r, ys, yz], act, { name: "y_q" });
  b.output(b.node1("dequantize_per_tensor", [yq, ys, yz], act, { name: "y_dq" }));
  return programFromGraph(b.build());
}

describe("QOperator patterns", () => {
  it("uint8 conv + relu with an output zero point above 0: QLinearConv (int32 bias) + integer Clip at the zero point", async () => {
    const ep = handBuilt("conv");
    const x = rand([1, 2, 5, 5], 3, -2, 2);
    const bytes = await checkQuantized(ep, [x], "qoperator", 0.005);
    expect(opsOf(bytes)).toEqual(["QuantizeLinear", "QLinearConv", "Clip", "DequantizeLinear"]);
    const g = decodeModelProto(bytes).graph!;
    const conv = g.node!.find((n) => n.op_type === "QLinearConv")!;
    expect(g.initializer!.find((t) => t.name === conv.input![8])!.data_type).toBe(6); // INT32 bias
    // The relu clamps something on this input, so the Clip is exercised.
    const [ref] = runProgram(ep, [x]);
    expect(Math.min(...toFloat64(ref!))).toBe(0);
  });

  it("matmul with a per-column weight: QLinearMatMul + Clip", async () => {
    const ep = handBuilt("matmul");
    const x = rand([3, 6], 5, -2, 2);
    const bytes = await checkQuantized(ep, [x], "qoperator", 0.005);
    expect(opsOf(bytes)).toEqual(["QuantizeLinear", "QLinearMatMul", "Clip", "DequantizeLinear"]);
  });

  it("a pattern whose float value is read elsewhere stays QDQ", async () => {
    const base = handBuilt("conv");
    // Make the conv's float output a second graph output: it cannot be fused away.
    const ep = programFromGraph({ ...base.graph, outputs: [...base.graph.outputs, "conv"] });
    const bytes = exportOnnx(ep, { form: "qoperator" });
    expect(opsOf(bytes)).toContain("Conv");
    expect(opsOf(bytes)).not.toContain("QLinearConv");
    await runOrt(bytes, [rand([1, 2, 5, 5], 3)]);
  });
});

describe("ONNX's own QDQ ops (an imported QDQ model)", () => {
  /** x -> QuantizeLinear(uint8) -> DequantizeLinear -> Conv(DequantizeLinear(int8 w, axis 0)) -> QuantizeLinear -> DequantizeLinear. */
  function onnxQdq(): ExportedProgram {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [1, 2, 5, 5]);
    const xs = b.constant("x_scale", scalar("float32", 0.02));
    const xz = b.constant("x_zp", scalar("uint8", 128));
    const xf = b.node1("dequantize_linear", [b.node1("quantize_linear", [x, xs, xz], {}, { name: "x_q" }), xs, xz], {}, { name: "x_dq" });
    const wq = b.constant("w_q", fromArray("int8", [3, 2, 3, 3], Array.from({ length: 54 }, (_, i) => ((i * 29) % 255) - 127)), "parameter");
    const wf = b.node1("dequantize_linear", [wq, b.constant("w_scale", fromArray("float32", [3], [0.004, 0.003, 0.005])), b.constant("w_zp", fromArray("int8", [3], [0, 0, 0]))], { axis: 0 }, { name: "w_dq" });
    const y = b.node1("conv", [xf, wf], { pads: [1, 1, 1, 1] }, { name: "conv" });
    const ys = b.constant("y_scale", scalar("float32", 0.01));
    const yz = b.constant("y_zp", scalar("uint8", 100));
    b.output(b.node1("dequantize_linear", [b.node1("quantize_linear", [y, ys, yz], {}, { name: "y_q" }), ys, yz], {}, { name: "y_dq" }));
    return programFromGraph(b.build());
  }

  it("export as they are (QDQ) and fuse to QLinearConv (QOperator); onnxruntime within one step", async () => {
    const ep = onnxQdq();
    const x = rand([1, 2, 5, 5], 9, -2, 2);
    const qdqBytes = await checkQuantized(ep, [x], "qdq", 0.01);
    expect(opsOf(qdqBytes)).toEqual(["QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "Conv", "QuantizeLinear", "DequantizeLinear"]);
    const qopBytes = await checkQuantized(ep, [x], "qoperator", 0.01);
    expect(opsOf(qopBytes)).toEqual(["QuantizeLinear", "QLinearConv", "DequantizeLinear"]);
    // And back: the exported QDQ model imports to the same ops.
    const back = await importOnnx(qdqBytes);
    expect(back.graph.nodes.map((n) => n.op)).toEqual(ep.graph.nodes.map((n) => n.op));
  });
});

describe("lowered programs (lowerQdq)", () => {
  it("every integer op of the registry is unlowered", () => {
    const integerOps = listOps().filter((o) => o.startsWith("quantized_") || o === "dynamic_quantized_linear");
    expect(integerOps.length).toBeGreaterThan(10);
    for (const op of integerOps) expect(UNLOWERED_OPS.has(op), op).toBe(true);
  });

  it("the unlowered graph verifies and computes what the integer ops compute (within one step)", () => {
    const low = lowerQdq(converted("cnn", true));
    const back = programFromGraph(unlowerQuantizedOps(low.graph));
    verifyGraph(back.graph);
    expect(back.graph.nodes.some((n) => UNLOWERED_OPS.has(n.op))).toBe(false);
    const [a] = runProgram(low, [cnnInput]);
    const [b] = runProgram(back, [cnnInput]);
    expect(maxAbsDiff(a!, b!)).toBeLessThanOrEqual(outputStep(low.graph) * (1 + 1e-6));
  });

  for (const form of ["qdq", "qoperator"] as const) {
    it(`the lowered CNN exports as ${form} and onnxruntime agrees within one step`, async () => {
      const low = lowerQdq(converted("cnn", true));
      expect(low.graph.nodes.map((n) => n.op)).toContain("quantized_conv2d");
      const bytes = await checkQuantized(low, [cnnInput], form, outputStep(low.graph));
      if (form === "qoperator") expect(count(opsOf(bytes)).QLinearConv).toBe(5);
    });
  }

  /** x -> quantize -> <integer op> -> dequantize with (output scale, zero point); uint8 activations. */
  interface IntOp { op: string; attrs?: Record<string, AttrValue>; out?: [number, number]; binary?: boolean }
  const INTEGER_OPS: Record<string, IntOp> = {
    mul_relu: { op: "quantized_mul", attrs: { fuse_relu: true }, out: [0.01, 20], binary: true },
    relu: { op: "quantized_relu" },
    hardswish: { op: "quantized_hardswish", out: [0.015, 30] },
    sigmoid: { op: "quantized_sigmoid" },
    hardsigmoid: { op: "quantized_hardsigmoid" },
    tanh: { op: "quantized_tanh" },
    leaky_relu: { op: "quantized_leaky_relu", attrs: { negative_slope: 0.1 } },
    hardtanh: { op: "quantized_hardtanh", attrs: { min_val: -0.5, max_val: 0.75 } },
    max_pool2d: { op: "quantized_max_pool2d", attrs: { kernel_size: [3, 3], stride: [2, 2], padding: [1, 1], ceil_mode: true } },
    avg_pool2d: { op: "quantized_avg_pool2d", attrs: { kernel_size: [2, 3], padding: [1, 1], count_include_pad: false } },
    mean: { op: "quantized_mean", attrs: { dim: [2, 3], keepdim: true } },
    upsample_scale: { op: "quantized_upsample_nearest2d", attrs: { scale_factor: [2, 1.5] } },
    upsample_size: { op: "quantized_upsample_nearest2d", attrs: { output_size: [9, 7] } },
  };
  /** torch's fixed output qparams for uint8 (see unlowerQuantizedOps). */
  const FIXED: Record<string, [number, number]> = {
    quantized_sigmoid: [1 / 256, 0], quantized_hardsigmoid: [1 / 256, 0], quantized_tanh: [2 / 256, 128],
  };
  for (const [name, spec] of Object.entries(INTEGER_OPS)) {
    it(`${spec.op} (${name}) unlowers and runs in onnxruntime within one step`, async () => {
      const b = new GraphBuilder();
      const u8 = { quant_min: 0, quant_max: 255, dtype: "uint8" };
      const x = b.input("x", "float32", [1, 2, 6, 6]);
      const xs = b.constant("xs", scalar("float32", 0.02));
      const xz = b.constant("xz", scalar("int32", 128));
      const q = b.node1("quantize_per_tensor", [x, xs, xz], u8, { name: "q" });
      const [ys, yz] = spec.out ?? FIXED[spec.op] ?? [0.02, 128];
      const ysV = b.constant("ys", scalar("float32", ys));
      const yzV = b.constant("yz", scalar("int32", yz));
      const inputs = spec.binary ? [q, xs, xz, q, xs, xz, ysV, yzV] : spec.out !== undefined ? [q, xs, xz, ysV, yzV] : [q, xs, xz];
      const y = b.node1(spec.op, inputs, spec.attrs ?? {}, { name: "op" });
      b.output(b.node1("dequantize_per_tensor", [y, ysV, yzV], u8, { name: "dq" }));
      const low = programFromGraph(b.build());
      const input = rand([1, 2, 6, 6], 11, -2.5, 2.5);
      const back = programFromGraph(unlowerQuantizedOps(low.graph));
      expect(back.graph.nodes.map((n) => n.op)).not.toContain(spec.op);
      const [a] = runProgram(low, [input]);
      const [c] = runProgram(back, [input]);
      expect(maxAbsDiff(a!, c!)).toBeLessThanOrEqual(ys * (1 + 1e-6));
      await checkQuantized(low, [input], "qdq", ys);
    });
  }

  it("dynamic_quantized_linear exports through its QDQ meaning", async () => {
    const low = lowerQdq(converted("mlp-dynamic", true));
    expect(low.graph.nodes.filter((n) => n.op === "dynamic_quantized_linear")).toHaveLength(3);
    const bytes = exportOnnx(low);
    const [want] = runProgram(low, [mlpInput]);
    const [got] = await runOrt(bytes, [mlpInput]);
    expect(maxAbsDiff(want!, got!)).toBeLessThanOrEqual(1e-4);
  });
});

describe("exportOnnx: ONNX's own quantize_linear / dequantize_linear", () => {
  it("leaves an explicit block_size of 0 out, so opset 13 models load in onnxruntime", async () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [2, 3]);
    const s = b.constant("s", scalar("float32", 0.05));
    const z = b.constant("z", scalar("uint8", 128));
    const q = b.node1("quantize_linear", [x, s, z], { block_size: 0, axis: 1 }, { name: "q" });
    const y = b.node1("dequantize_linear", [q, s, z], { block_size: 0, axis: 1 }, { name: "dq" });
    b.output(y);
    const ep = programFromGraph(b.build());
    const bytes = exportOnnx(ep);
    const attrs = decodeModelProto(bytes).graph!.node!.flatMap((n) => (n.attribute ?? []).map((a) => a.name));
    expect(attrs).not.toContain("block_size");
    const input = rand([2, 3], 3);
    const [ort0] = await runOrt(bytes, [input]);
    expect(maxAbsDiff(runProgram(ep, [input])[0]!, ort0!)).toBeLessThanOrEqual(1e-7);
  });
});
