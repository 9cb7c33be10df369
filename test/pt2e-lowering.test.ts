import { describe, expect, it, onTestFinished } from "vitest";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  fromArray, GraphBuilder, parseGraph, printGraph, programFromGraph, scalar, toFloat64, type Graph, type NodeMeta, type Tensor,
} from "@qforge/ir";
import { runGraph } from "@qforge/runtime";
import { MinMaxObserver, PerChannelMinMaxObserver, quantizePerChannel, quantizePerTensor } from "@qforge/quant";
import { compareResults, formatComparison, numericRun, sortWorstFirst, type ComparedNode } from "@qforge/debug";
import { main } from "@qforge/cli";
import { exportModel } from "@qforge/export";
import { getSymmetricQuantizationConfig, XnnpackQuantizer } from "@qforge/quantizer";
import {
  calibrate, convertPt2e, generateNumericDebugHandle, lowerQdq, lowerQdqWithReport, preparePt2e,
} from "@qforge/pt2e";
import * as cnn from "../examples/cnn/model.js";
import * as mlp from "../examples/mlp/model.js";

/** Deterministic floats in [lo, hi). */
function rand(n: number, seed: number, lo = -1, hi = 1): number[] {
  let s = (seed * 2654435761) >>> 0 || 1;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + ((hi - lo) * s) / 2 ** 32;
  });
}

const meta = (handle: number, path: string, type: string): NodeMeta => ({ debugHandle: handle, moduleStack: [{ path, type }] });
const W1 = fromArray("float32", [4, 2, 3, 3], rand(72, 1, -0.5, 0.5));
const B1 = fromArray("float32", [4], rand(4, 2, -0.1, 0.1));
const W2 = fromArray("float32", [3, 64], rand(192, 3, -0.2, 0.2));
const B2 = fromArray("float32", [3], rand(3, 4, -0.1, 0.1));

/** conv -> relu -> max_pool -> flatten -> linear, handles 1..5 (what generateNumericDebugHandle gives). */
function floatModel(): Graph {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", [1, 2, 8, 8]);
  const c = b.node1("conv", [x, b.constant("conv.weight", W1, "parameter"), b.constant("conv.bias", B1, "parameter")], { pads: [1, 1, 1, 1] }, { name: "conv", meta: meta(1, "conv", "Conv2d") });
  const r = b.node1("relu", [c], {}, { name: "relu", meta: meta(2, "relu", "ReLU") });
  const p = b.node1("max_pool", [r], { kernel_shape: [2, 2], strides: [2, 2] }, { name: "pool", meta: meta(3, "pool", "MaxPool2d") });
  const f = b.node1("flatten", [p], { axis: 1 }, { name: "flatten", meta: { debugHandle: 4 } });
  const y = b.node1("linear", [f, b.constant("fc.weight", W2, "parameter"), b.constant("fc.bias", B2, "parameter")], {}, { name: "fc", meta: meta(5, "fc", "Linear") });
  b.output(y);
  return b.build();
}

const batches = Array.from({ length: 4 }, (_, i) => fromArray("float32", [1, 2, 8, 8], rand(128, 10 + i, -2, 2)));

interface QParam { scale: number; zp: number }

/** Calibrates int8 activation qparams with MinMaxObserver on the float model's values. */
function calibrateByHand(g: Graph): Map<string, QParam> {
  const obs = new Map<string, MinMaxObserver>();
  for (const v of ["x", "relu", "pool", "flatten", "fc"]) obs.set(v, new MinMaxObserver({ dtype: "qint8", qscheme: "per_tensor_affine" }));
  for (const x of batches) {
    const values = runGraph(g, [x], { keepAll: true }).values!;
    for (const [v, o] of obs) o.observe(values.get(v)!);
  }
  const out = new Map<string, QParam>();
  for (const [v, o] of obs) {
    const qp = o.calculateQParams();
    out.set(v, { scale: toFloat64(qp.scale)[0]!, zp: toFloat64(qp.zeroPoint)[0]! });
  }
  return out;
}

/**
 * The converted (QDQ) program convert_pt2e gives for the model under an XNNPACK-style config: int8
 * activations, per-channel int8 conv weight, per-tensor int8 linear weight, float biases; the
 * quantize/dequantize after a node carry its debug handle.
 */
function qdqModel(qp: Map<string, QParam>): Graph {
  const b = new GraphBuilder();
  let k = 0;
  const q = (v: string, p: QParam, handle?: number): string => {
    const s = b.constant(`s${k}`, scalar("float32", p.scale));
    const z = b.constant(`z${k++}`, scalar("int32", p.zp));
    const attrs = { quant_min: -128, quant_max: 127, dtype: "int8" };
    const m = handle === undefined ? {} : { debugHandle: handle };
    return b.node1("dequantize_per_tensor", [b.node1("quantize_per_tensor", [v, s, z], attrs, { meta: m }), s, z], attrs, { meta: m });
  };
  const x = b.input("x", "float32", [1, 2, 8, 8]);
  const wObs = new PerChannelMinMaxObserver({ dtype: "qint8", qscheme: "per_channel_symmetric", chAxis: 0, quantMin: -127, quantMax: 127 });
  wObs.observe(W1);
  const wq = wObs.calculateQParams();
  const w1 = b.node1("dequantize_per_channel", [
    b.constant("conv.weight_q", quantizePerChannel(W1, wq.scale, wq.zeroPoint, 0, "qint8"), "parameter"),
    b.constant("conv.weight_scale", fromArray("float64", [4], Array.from(toFloat64(wq.scale)))),
    b.constant("conv.weight_zp", wq.zeroPoint),
  ], { axis: 0, quant_min: -127, quant_max: 127, dtype: "int8" });
  const c = b.node1("conv", [q(x, qp.get("x")!), w1, b.constant("conv.bias", B1, "parameter")], { pads: [1, 1, 1, 1] }, { name: "conv", meta: meta(1, "conv", "Conv2d") });
  const r = q(b.node1("relu", [c], {}, { name: "relu", meta: meta(2, "relu", "ReLU") }), qp.get("relu")!, 2);
  const p = q(b.node1("max_pool", [r], { kernel_shape: [2, 2], strides: [2, 2] }, { name: "pool", meta: meta(3, "pool", "MaxPool2d") }), qp.get("relu")!, 3);
  const f = q(b.node1("flatten", [p], { axis: 1 }, { name: "flatten", meta: { debugHandle: 4 } }), qp.get("relu")!, 4);
  const w2o = new MinMaxObserver({ dtype: "qint8", qscheme: "per_tensor_symmetric", quantMin: -127, quantMax: 127 });
  w2o.observe(W2);
  const w2q = w2o.calculateQParams();
  const w2s = toFloat64(w2q.scale)[0]!;
  const w2 = b.node1("dequantize_per_tensor", [
    b.constant("fc.weight_q", quantizePerTensor(W2, w2s, 0, "qint8"), "parameter"),
    b.constant("fc.weight_scale", scalar("float32", w2s)),
    b.constant("fc.weight_zp", scalar("int32", 0)),
  ], { quant_min: -127, quant_max: 127, dtype: "int8" });
  const y = q(b.node1("linear", [f, w2, b.constant("fc.bias", B2, "parameter")], {}, { name: "fc", meta: meta(5, "fc", "Linear") }), qp.get("fc")!, 5);
  b.output(y);
  return b.build();
}

describe("PT2E lowering end to end: QDQ program -> integer ops -> numeric debugger", () => {
  const float = floatModel();
  const qdq = qdqModel(calibrateByHand(float));
  const { program, report } = lowerQdqWithReport(programFromGraph(qdq));
  const lowered = program.graph;
  const sample = fromArray("float32", [1, 2, 8, 8], rand(128, 99, -2, 2));

  it("lowers every pattern of the model to integer ops", () => {
    expect(lowered.nodes.map((n) => n.op)).toEqual([
      "quantize_per_tensor", "quantized_conv2d", "quantized_max_pool2d", "flatten", "quantized_linear", "dequantize_per_tensor",
    ]);
    expect(report.notLowered).toEqual([]);
    expect(report.lowered).toEqual({ "conv2d-relu": 1, "max-pool2d": 1, "shape-passthrough": 1, linear: 1 });
    expect(lowered.nodes[1]!.attrs["fuse_relu"]).toBe(true);
  });

  it("keeps the quantized program's results: within one output step of the QDQ program", () => {
    const a = toFloat64(runGraph(lowered, [sample]).outputs[0]!);
    const b = toFloat64(runGraph(qdq, [sample]).outputs[0]!);
    const step = toFloat64(qdq.constants[qdq.nodes.at(-1)!.inputs[1]!]!.tensor)[0]!;
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(step * 1.0001);
  });

  it("prints and parses back with the lowering's meta (loweredFrom, fusedDebugHandles)", () => {
    const again = parseGraph(printGraph(lowered, { constants: "full" }));
    expect(again.nodes.map((n) => n.meta)).toEqual(lowered.nodes.map((n) => n.meta));
    expect(lowered.nodes[1]!.meta).toMatchObject({ debugHandle: 2, fusedDebugHandles: [1], loweredFrom: ["conv", "relu", expect.any(String)] });
  });

  it("the numeric debugger matches float and lowered nodes through their handles", () => {
    const rows = compareResults(numericRun(float, [sample]), numericRun(lowered, [sample]));
    const compared = rows.filter((r): r is ComparedNode => r.kind === "compared");
    expect(compared.map((r) => [r.debugHandle, r.quant.op])).toEqual([
      [2, "quantized_conv2d"], [3, "quantized_max_pool2d"], [4, "flatten"], [5, "dequantize_per_tensor"],
    ]);
    for (const r of compared) expect(r.sqnr).toBeGreaterThan(20);
    expect(compared.slice(0, 3).every((r) => r.dequantized)).toBe(true);
    const conv = rows.find((r) => r.debugHandle === 1)!;
    expect(conv.kind === "unmatched" && conv.reason).toMatch(/^fused into conv\S* \(quantized_conv2d\)/);
  });

  it("ranks the node whose integer weight was deliberately broken first", () => {
    // Unbroken, the linear (per-tensor weight) is the node that loses most; break the conv's weight.
    const before = sortWorstFirst(compareResults(numericRun(float, [sample]), numericRun(lowered, [sample])));
    expect(before[0]!.kind === "compared" && before[0]!.float.name).toBe("fc");
    const w = lowered.constants["conv.weight_q"]!.tensor;
    const broken: Graph = {
      ...lowered,
      constants: { ...lowered.constants, "conv.weight_q": { kind: "parameter", tensor: fromArray("int8", w.shape, Array.from(toFloat64(w), (v, i) => (i % 5 === 0 ? -v : v))) } },
    };
    const ranked = sortWorstFirst(compareResults(numericRun(float, [sample]), numericRun(broken, [sample])));
    expect(ranked[0]!.kind === "compared" && ranked[0]!.float.name).toBe("relu");
    expect(formatComparison(ranked).split("\n")[1]).toMatch(/^\s*1\s+2\s+relu \(relu\)\s+conv\S* \(quantized_conv2d\) \*/);
  });

  it("qforge compare prints the table for a float and a quantized graph", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qforge-compare-"));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, "float.qf"), printGraph(float, { constants: "full" }));
    writeFileSync(join(dir, "quant.qf"), printGraph(lowered, { constants: "full" }));
    writeFileSync(join(dir, "x.json"), JSON.stringify({ dtype: "float32", shape: [1, 2, 8, 8], data: Array.from(sample.data as Float32Array) }));
    const lines: string[] = [];
    const code = await main(["compare", join(dir, "float.qf"), join(dir, "quant.qf"), "--input", join(dir, "x.json"), "--limit", "3"], (s) => lines.push(...s.split("\n")));
    expect(code).toBe(0);
    expect(lines[0]).toMatch(/^#\s+handle\s+float node\s+quantized node/);
    expect(lines.filter((l) => /^\s*\d+\s+\d+\s+/.test(l))).toHaveLength(3);
    expect(lines).toContain("... 1 more compared nodes");
    expect(lines.join("\n")).toMatch(/not compared:\n {2}handle 1 {2}conv \(conv\): fused into/);
    // Bad arguments: usage (exit 2); a tensor file that does not fit: a typed error (exit 1).
    expect(await main(["compare", join(dir, "float.qf")], () => {})).toBe(2);
    writeFileSync(join(dir, "bad.json"), JSON.stringify({ dtype: "float32", shape: [2], data: [1] }));
    const err: string[] = [];
    expect(await main(["compare", join(dir, "float.qf"), join(dir, "quant.qf"), "--input", join(dir, "bad.json")], (s) => err.push(s))).toBe(1);
    expect(err.join("\n")).toMatch(/BAD_DATA: .*bad.json: tensor: 1 values for shape \[2\]/);
  });
});

/** SQNR of b against a, in dB. */
function sqnrDb(a: Tensor, b: Tensor): number {
  const x = toFloat64(a);
  const y = toFloat64(b);
  let s = 0;
  let n = 0;
  for (let i = 0; i < x.length; i++) {
    s += x[i]! * x[i]!;
    n += (x[i]! - y[i]!) ** 2;
  }
  return n === 0 ? Infinity : 10 * Math.log10(s / n);
}

describe("the PT2E flow: export -> XnnpackQuantizer -> prepare -> calibrate -> convert -> lowerQdq", () => {
  it("lowers the example CNN (conv-bn-relu, residual add, cat, pooling, linear) to integer ops only", () => {
    const x = cnn.exampleInput();
    const float = generateNumericDebugHandle(exportModel(cnn.createModel(), [x]));
    const prepared = preparePt2e(float, new XnnpackQuantizer().setGlobal(getSymmetricQuantizationConfig({ isPerChannel: true })));
    calibrate(prepared, [[x], [cnn.exampleInput(3)], [cnn.exampleInput(4)]], { progress: false });
    const converted = convertPt2e(prepared);
    const { program, report } = lowerQdqWithReport(converted);
    expect(report.notLowered).toEqual([]);
    expect(new Set(program.graph.nodes.map((n) => n.op))).toEqual(new Set([
      "quantize_per_tensor", "quantized_conv2d", "quantized_max_pool2d", "quantized_add", "quantized_cat",
      "quantized_adaptive_avg_pool2d", "flatten", "quantized_linear", "dequantize_per_tensor",
    ]));
    // Integer kernels round differently from the QDQ reference by at most one step per layer: the
    // outputs stay close to the converted program's and to the float model's.
    const xt = cnn.exampleInput(9);
    const [yq] = runGraph(converted.graph, [xt]).outputs;
    const [yl] = runGraph(program.graph, [xt]).outputs;
    const [yf] = runGraph(float.graph, [xt]).outputs;
    expect(sqnrDb(yq!, yl!)).toBeGreaterThan(30);
    expect(sqnrDb(yf!, yl!)).toBeGreaterThan(20);
    // Every float node's value is either compared or accounted for as fused into an integer node.
    const rows = compareResults(numericRun(float.graph, [xt]), numericRun(program.graph, [xt]));
    for (const r of rows) {
      if (r.kind === "compared") expect(r.sqnr).toBeGreaterThan(20);
      else expect(r.reason).toMatch(/^fused into /);
    }
    expect(rows.filter((r) => r.kind === "compared").length).toBeGreaterThanOrEqual(10);
    // Lowering a lowered program changes nothing.
    expect(lowerQdq(program).graph).toEqual(program.graph);
  });

  it("lowers XNNPACK's dynamic config on the example MLP to dynamic_quantized_linear, the rest stays float", () => {
    const x = mlp.exampleInput();
    const float = generateNumericDebugHandle(exportModel(mlp.createModel(), [x]));
    const prepared = preparePt2e(float, new XnnpackQuantizer().setGlobal(getSymmetricQuantizationConfig({ isPerChannel: true, isDynamic: true })));
    calibrate(prepared, [[x]], { progress: false });
    const converted = convertPt2e(prepared);
    const { program, report } = lowerQdqWithReport(converted);
    expect(report.lowered).toEqual({ "dynamic-linear": 3 });
    const ops = program.graph.nodes.map((n) => n.op);
    expect(ops.filter((o) => o === "dynamic_quantized_linear")).toHaveLength(3);
    expect(ops).not.toContain("choose_qparams_per_tensor");
    expect(ops).not.toContain("linear");
    const xt = mlp.exampleInput(7);
    expect(sqnrDb(runGraph(converted.graph, [xt]).outputs[0]!, runGraph(program.graph, [xt]).outputs[0]!)).toBeGreaterThan(100);
  });

  it("qforge compare <model> --calib <dir> quantizes the model and prints the table", async () => {
    const x = cnn.exampleInput();
    const ep = exportModel(cnn.createModel(), [x]);
    const dir = mkdtempSync(join(tmpdir(), "qforge-compare-model-"));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, "cnn.qf"), printGraph(ep.graph, { constants: "full" }));
    const calib = join(dir, "calib");
    mkdirSync(calib);
    const json = (t: Tensor): string => JSON.stringify({ dtype: t.dtype, shape: t.shape, data: Array.from(t.data as Float32Array) });
    [x, cnn.exampleInput(3)].forEach((t, i) => writeFileSync(join(calib, `batch${i}.json`), json(t)));
    const lines: string[] = [];
    const code = await main(["compare", join(dir, "cnn.qf"), "--calib", calib, "--per-channel"], (s) => lines.push(...s.split("\n")));
    expect(code).toBe(0);
    expect(lines[0]).toMatch(/^lowered \(qnnpack\): .*conv2d-relu x4/);
    expect(lines.some((l) => l.startsWith("left in float"))).toBe(false);
    const header = lines.findIndex((l) => /^\s*#\s+handle\s+float node/.test(l));
    expect(header).toBeGreaterThan(0);
    const rows = lines.slice(header + 1).filter((l) => /^\s*\d+\s+\d+\s+/.test(l));
    expect(rows.length).toBeGreaterThanOrEqual(10);
    expect(lines.join("\n")).toMatch(/quantized_conv2d\) \*/);
    // No data: usage.
    expect(await main(["compare", join(dir, "cnn.qf")], () => {})).toBe(2);
  });
});

