import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  fromArray, getElement, GraphBuilder, numel, programFromGraph, scalar, toFloat64, type AttrValue, type Graph, type NodeMeta,
  type Tensor,
} from "@qforge/ir";
import { runGraph } from "@qforge/runtime";
import { f32, quantizeValue, rint } from "@qforge/quant";
import { lowerQdq, lowerQdqWithReport, type LoweringEngine } from "../src/lowering/index.js";

// ---- building QDQ graphs ------------------------------------------------------------------------

type QDType = "uint8" | "int8";
interface QP { readonly scale: number; readonly zp: number; readonly dtype: QDType }
const RANGE: Record<QDType, [number, number]> = { uint8: [0, 255], int8: [-128, 127] };
const INT32: [number, number] = [-2147483648, 2147483647];

/** Deterministic floats in [lo, hi). */
function rand(n: number, seed: number, lo = -1, hi = 1): number[] {
  let s = (seed * 2654435761) >>> 0 || 1;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + ((hi - lo) * s) / 2 ** 32;
  });
}

class QdqBuilder {
  readonly b = new GraphBuilder();
  private k = 0;

  qparams(p: QP): [string, string] {
    const i = this.k++;
    return [this.b.constant(`scale_${i}`, scalar("float32", f32(p.scale))), this.b.constant(`zp_${i}`, scalar("int32", p.zp))];
  }

  quantize(x: string, p: QP, meta: NodeMeta = {}): string {
    const [s, z] = this.qparams(p);
    const [lo, hi] = RANGE[p.dtype];
    return this.b.node1("quantize_per_tensor", [x, s, z], { quant_min: lo, quant_max: hi, dtype: p.dtype }, { meta });
  }

  dequantize(q: string, p: QP): string {
    const [s, z] = this.qparams(p);
    const [lo, hi] = RANGE[p.dtype];
    return this.b.node1("dequantize_per_tensor", [q, s, z], { quant_min: lo, quant_max: hi, dtype: p.dtype });
  }

  /** A float graph input, quantized and dequantized: returns the dequantized value. */
  activation(name: string, shape: number[], p: QP): string {
    return this.dequantize(this.quantize(this.b.input(name, "float32", shape), p), p);
  }

  /** An int8 weight constant dequantized per tensor (one scale) or per channel (axis 0). */
  weight(name: string, values: readonly number[], shape: number[], scales: readonly number[], zps: readonly number[]): string {
    const w = this.b.constant(name, fromArray("int8", shape, values), "parameter");
    if (scales.length === 1) {
      const s = this.b.constant(`${name}_scale`, scalar("float32", f32(scales[0]!)));
      const z = this.b.constant(`${name}_zp`, scalar("int32", zps[0]!));
      return this.b.node1("dequantize_per_tensor", [w, s, z], { quant_min: -127, quant_max: 127, dtype: "int8" });
    }
    const s = this.b.constant(`${name}_scale`, fromArray("float64", [scales.length], scales));
    const z = this.b.constant(`${name}_zp`, fromArray("int32", [zps.length], zps));
    return this.b.node1("dequantize_per_channel", [w, s, z], { axis: 0, quant_min: -127, quant_max: 127, dtype: "int8" });
  }

  node(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, meta: NodeMeta = {}): string {
    return this.b.node1(op, inputs, attrs, { meta });
  }

  build(...outputs: string[]): Graph {
    this.b.output(...outputs);
    return this.b.build();
  }
}

const ops = (g: Graph): string[] => g.nodes.map((n) => n.op);
const run = (g: Graph, feeds: Record<string, Tensor>): Tensor[] => runGraph(g, feeds).outputs;
const lower = (g: Graph, engine: LoweringEngine = "qnnpack"): Graph => lowerQdq(programFromGraph(g), { engine }).graph;

/** Largest |a - b| over two integer tensors of the same dtype and shape. */
function maxIntDiff(a: Tensor, b: Tensor): number {
  expect(a.dtype).toBe(b.dtype);
  expect(a.shape).toEqual(b.shape);
  let m = 0;
  for (let i = 0; i < numel(a.shape); i++) m = Math.max(m, Math.abs(getElement(a, i) - getElement(b, i)));
  return m;
}

const ints = (t: Tensor): number[] => Array.from(toFloat64(t));

// ---- PyTorch's quantized linear / conv formulas (qlinear.cpp, qconv.cpp; golden README item 7) ----

interface WeightQ { readonly q: readonly number[]; readonly scales: readonly number[]; readonly zps: readonly number[] }

/**
 * qnnpack: bias quantized to int32 with the double scale w_scale * x_scale, float32 multiplier
 * (QNNPACK for quint8: (w*x) * (1/y); XNNPACK for qint8: x*w / y), y = clamp(rint(f32(acc + bias_q) * M) + y_zp).
 * onednn: y = clamp(rint(acc * x_scale * w_scale / y_scale + bias / y_scale) + y_zp) in double.
 */
function requantize(engine: LoweringEngine, acc: number, c: number, x: QP, w: WeightQ, biasF: readonly number[] | undefined, y: QP, relu: boolean): number {
  const [qmin, qmax] = RANGE[y.dtype];
  const lo = relu ? Math.max(qmin, y.zp) : qmin;
  const ws = w.scales.length === 1 ? w.scales[0]! : w.scales[c]!;
  let v: number;
  if (engine === "qnnpack") {
    const bq = biasF === undefined ? 0 : quantizeValue(f32(biasF[c]!), ws * f32(x.scale), 0, INT32[0], INT32[1]);
    const sx = f32(x.scale);
    const sw = f32(ws);
    const sy = f32(y.scale);
    const m = x.dtype === "uint8" ? f32(f32(sw * sx) * f32(1 / sy)) : f32(f32(sx * sw) / sy);
    v = rint(f32(f32(acc + bq) * m)) + y.zp;
  } else {
    const b = biasF === undefined ? 0 : f32(biasF[c]!) / f32(y.scale);
    v = rint((acc * f32(x.scale) * ws) / f32(y.scale) + b) + y.zp;
  }
  return Math.min(qmax, Math.max(lo, v));
}

function linearFormula(engine: LoweringEngine, xq: readonly number[], x: QP, w: WeightQ, n: number, k: number,
  biasF: readonly number[] | undefined, y: QP, relu = false): number[] {
  const rows = xq.length / k;
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < n; c++) {
      const wz = w.zps.length === 1 ? w.zps[0]! : w.zps[c]!;
      let acc = 0;
      for (let i = 0; i < k; i++) acc += (xq[r * k + i]! - x.zp) * (w.q[c * k + i]! - wz);
      out.push(requantize(engine, acc, c, x, w, biasF, y, relu));
    }
  }
  return out;
}

interface ConvGeo { readonly stride: number; readonly pad: number; readonly groups: number }

/** NCHW conv of integer tensors; padding is the real 0 (contributes nothing to (x - x_zp)). */
function convFormula(xq: readonly number[], xShape: readonly number[], x: QP, w: WeightQ, wShape: readonly number[], geo: ConvGeo,
  biasF: readonly number[] | undefined, y: QP, relu = false): { values: number[]; shape: number[] } {
  const [nb, cin, h, wd] = xShape as [number, number, number, number];
  const [cout, cpg, kh, kw] = wShape as [number, number, number, number];
  const oh = Math.floor((h + 2 * geo.pad - kh) / geo.stride) + 1;
  const ow = Math.floor((wd + 2 * geo.pad - kw) / geo.stride) + 1;
  const opg = cout / geo.groups;
  const values: number[] = [];
  for (let b = 0; b < nb; b++) {
    for (let o = 0; o < cout; o++) {
      const g = Math.floor(o / opg);
      const wz = w.zps.length === 1 ? w.zps[0]! : w.zps[o]!;
      for (let i = 0; i < oh; i++) {
        for (let j = 0; j < ow; j++) {
          let acc = 0;
          for (let c = 0; c < cpg; c++) {
            for (let a = 0; a < kh; a++) {
              for (let d = 0; d < kw; d++) {
                const ih = i * geo.stride - geo.pad + a;
                const iw = j * geo.stride - geo.pad + d;
                if (ih < 0 || ih >= h || iw < 0 || iw >= wd) continue;
                const xv = xq[((b * cin + g * cpg + c) * h + ih) * wd + iw]!;
                acc += (xv - x.zp) * (w.q[((o * cpg + c) * kh + a) * kw + d]! - wz);
              }
            }
          }
          values.push(requantize("qnnpack", acc, o, x, w, biasF, y, relu));
        }
      }
    }
  }
  return { values, shape: [nb, cout, oh, ow] };
}

// ---- linear / conv ------------------------------------------------------------------------------

describe("lowerQdq: linear", () => {
  const k = 8;
  const n = 4;
  const wPerTensor: WeightQ = { q: rand(n * k, 3, -127, 127).map(Math.round), scales: [0.004], zps: [0] };
  const wPerChannel: WeightQ = { q: rand(n * k, 4, -127, 127).map(Math.round), scales: [0.003, 0.005, 0.002, 0.004], zps: [0, 0, 0, 0] };
  const biasF = rand(n, 5, -0.5, 0.5).map(f32);

  function linearGraph(x: QP, w: WeightQ, y: QP, opts: { bias?: "float" | "int32" | "none"; act?: "relu" | "clip6" | "clip-small" } = {}): Graph {
    const q = new QdqBuilder();
    const xd = q.activation("x", [3, k], x);
    const wd = q.weight("fc.weight", w.q, [n, k], w.scales, w.zps);
    const inputs = [xd, wd];
    if ((opts.bias ?? "float") === "float") inputs.push(q.b.constant("fc.bias", fromArray("float32", [n], biasF), "parameter"));
    if (opts.bias === "int32") {
      // convert_pt2e's derived bias qparams: scale = x_scale * w_scale (per channel), zero point 0.
      const scales = w.scales.map((s) => f32(x.scale) * s);
      const bq = biasF.map((b, c) => quantizeValue(b, scales[w.scales.length === 1 ? 0 : c]!, 0, INT32[0], INT32[1]));
      const bc = q.b.constant("fc.bias_q", fromArray("int32", [n], bq), "parameter");
      const s = q.b.constant("fc.bias_scale", fromArray("float64", [n], w.scales.length === 1 ? new Array<number>(n).fill(scales[0]!) : scales));
      const z = q.b.constant("fc.bias_zp", fromArray("int32", [n], new Array<number>(n).fill(0)));
      inputs.push(q.node("dequantize_per_channel", [bc, s, z], { axis: 0, quant_min: INT32[0], quant_max: INT32[1], dtype: "int32" }));
    }
    let v = q.node("linear", inputs, {}, { debugHandle: 11, moduleStack: [{ path: "fc", type: "Linear" }] });
    if (opts.act === "relu") v = q.node("relu", [v], {}, { debugHandle: 12, moduleStack: [{ path: "act", type: "ReLU" }] });
    if (opts.act === "clip6" || opts.act === "clip-small") {
      const lo = q.b.constant("clip_min", scalar("float32", 0));
      const hi = q.b.constant("clip_max", scalar("float32", opts.act === "clip6" ? 6 : 0.05));
      v = q.node("clip", [v, lo, hi], {}, { debugHandle: 12 });
    }
    return q.build(q.quantize(v, y));
  }

  const xqOf = (g: Graph, xs: Tensor): number[] => ints(runGraph(g, { x: xs }, { keepAll: true }).values!.get(g.nodes[0]!.outputs[0]!)!);

  const cases: [string, QP, WeightQ, QP, LoweringEngine][] = [
    ["quint8 activations, per-tensor weight (QNNPACK)", { scale: 0.01, zp: 128, dtype: "uint8" }, wPerTensor, { scale: 0.03, zp: 120, dtype: "uint8" }, "qnnpack"],
    ["qint8 activations, per-channel weight (XNNPACK)", { scale: 0.01, zp: -3, dtype: "int8" }, wPerChannel, { scale: 0.02, zp: 5, dtype: "int8" }, "qnnpack"],
    ["quint8 activations on onednn", { scale: 0.01, zp: 128, dtype: "uint8" }, wPerChannel, { scale: 0.03, zp: 120, dtype: "uint8" }, "onednn"],
  ];
  for (const [label, x, w, y, engine] of cases) {
    it(`lowers to quantized_linear with ${label}: exactly PyTorch's formula, within 1 of the QDQ program`, () => {
      const g = linearGraph(x, w, y);
      const low = lower(g, engine);
      expect(ops(low)).toEqual(["quantize_per_tensor", "quantized_linear"]);
      expect(low.nodes[1]!.attrs).toMatchObject({ engine, fuse_relu: false });
      fc.assert(fc.property(fc.integer({ min: 1, max: 1_000_000 }), (seed) => {
        const xs = fromArray("float32", [3, k], rand(3 * k, seed, -1.3, 1.3));
        const got = run(low, { x: xs })[0]!;
        expect(ints(got)).toEqual(linearFormula(engine, xqOf(g, xs), x, w, n, k, biasF, y));
        expect(maxIntDiff(got, run(g, { x: xs })[0]!)).toBeLessThanOrEqual(1);
      }), { numRuns: 12 });
    });
  }

  it("recovers the float bias exactly from an int32 bias dequantized with derived qparams", () => {
    const x: QP = { scale: 0.01, zp: -3, dtype: "int8" };
    const y: QP = { scale: 0.02, zp: 5, dtype: "int8" };
    const g = linearGraph(x, wPerChannel, y, { bias: "int32" });
    const low = lower(g);
    expect(ops(low)).toEqual(["quantize_per_tensor", "quantized_linear"]);
    const biasName = low.nodes[1]!.inputs[6]!;
    const bias = low.constants[biasName]!.tensor;
    expect(bias.dtype).toBe("float32");
    // Exactly dequantize_per_channel(q, x_scale * w_scale, 0): (q - 0) * scale in double, rounded once.
    const q = ints(g.constants["fc.bias_q"]!.tensor);
    const s = Array.from(toFloat64(g.constants["fc.bias_scale"]!.tensor));
    expect(ints(bias)).toEqual(q.map((v, c) => f32(v * s[c]!)));
    const xs = fromArray("float32", [3, k], rand(3 * k, 77, -1.3, 1.3));
    expect(ints(run(low, { x: xs })[0]!)).toEqual(linearFormula("qnnpack", xqOf(g, xs), x, wPerChannel, n, k, ints(bias), y));
    expect(maxIntDiff(run(low, { x: xs })[0]!, run(g, { x: xs })[0]!)).toBeLessThanOrEqual(1);
  });

  it("lowers without a bias", () => {
    const x: QP = { scale: 0.01, zp: 128, dtype: "uint8" };
    const y: QP = { scale: 0.01, zp: 100, dtype: "uint8" };
    const g = linearGraph(x, wPerTensor, y, { bias: "none" });
    const low = lower(g);
    expect(low.nodes[1]!.inputs[6]).toBe("");
    const xs = fromArray("float32", [3, k], rand(3 * k, 8, -1, 1));
    expect(ints(run(low, { x: xs })[0]!)).toEqual(linearFormula("qnnpack", xqOf(g, xs), x, wPerTensor, n, k, undefined, y));
  });

  for (const act of ["relu", "clip6"] as const) {
    it(`fuses linear -> ${act === "relu" ? "relu" : "clip(0, 6)"} -> quantize into quantized_linear(fuse_relu)`, () => {
      const x: QP = { scale: 0.01, zp: 128, dtype: "uint8" };
      const y: QP = { scale: 0.01, zp: 30, dtype: "uint8" };
      const g = linearGraph(x, wPerTensor, y, { act });
      const low = lower(g);
      expect(ops(low)).toEqual(["quantize_per_tensor", "quantized_linear"]);
      expect(low.nodes[1]!.attrs["fuse_relu"]).toBe(true);
      fc.assert(fc.property(fc.integer({ min: 1, max: 1_000_000 }), (seed) => {
        const xs = fromArray("float32", [3, k], rand(3 * k, seed, -1.3, 1.3));
        const got = run(low, { x: xs })[0]!;
        expect(ints(got)).toEqual(linearFormula("qnnpack", xqOf(g, xs), x, wPerTensor, n, k, biasF, y, true));
        expect(maxIntDiff(got, run(g, { x: xs })[0]!)).toBeLessThanOrEqual(1);
      }), { numRuns: 15 });
      // The fused node computes the relu's value: it carries the relu's handle, the linear's is listed as fused.
      expect(low.nodes[1]!.meta).toMatchObject({ debugHandle: 12, fusedDebugHandles: [11], moduleStack: [{ path: "fc", type: "Linear" }] });
    });
  }

  it("keeps a clip whose max binds inside the output range in float, and says why", () => {
    const x: QP = { scale: 0.01, zp: 128, dtype: "uint8" };
    const y: QP = { scale: 0.01, zp: 0, dtype: "uint8" };
    const g = linearGraph(x, wPerTensor, y, { act: "clip-small" });
    const { program, report } = lowerQdqWithReport(programFromGraph(g));
    expect(ops(program.graph)).toContain("linear");
    expect(ops(program.graph)).toContain("clip");
    expect(report.notLowered.map((r) => r.op).sort()).toEqual(["clip", "linear"]);
    expect(report.notLowered.find((r) => r.op === "clip")!.reason).toMatch(/clip max 0\.05\d* lies inside the output range/);
    const xs = fromArray("float32", [3, k], rand(3 * k, 9, -1, 1));
    expect(maxIntDiff(run(program.graph, { x: xs })[0]!, run(g, { x: xs })[0]!)).toBe(0);
  });

  it("refuses weights with a non-zero zero point on onednn (the float path stays)", () => {
    const x: QP = { scale: 0.01, zp: 128, dtype: "uint8" };
    const w: WeightQ = { ...wPerTensor, zps: [3] };
    const { program, report } = lowerQdqWithReport(programFromGraph(linearGraph(x, w, x)), { engine: "onednn" });
    expect(ops(program.graph)).toContain("linear");
    expect(report.notLowered[0]!.reason).toMatch(/onednn engine refuses weights with a non-zero zero point/);
    expect(program.graph.nodes.find((nd) => nd.op === "linear")!.meta["notLowered"]).toMatch(/non-zero zero point/);
    // qnnpack takes them.
    expect(ops(lower(linearGraph(x, w, x), "qnnpack"))).toEqual(["quantize_per_tensor", "quantized_linear"]);
  });

  it("folds a weight still behind its quantize_per_channel (fold_quantize=False)", () => {
    const x: QP = { scale: 0.01, zp: -3, dtype: "int8" };
    const y: QP = { scale: 0.02, zp: 5, dtype: "int8" };
    const q = new QdqBuilder();
    const xd = q.activation("x", [3, k], x);
    const wf = q.b.constant("fc.weight", fromArray("float32", [n, k], rand(n * k, 12, -0.4, 0.4)), "parameter");
    const s = q.b.constant("w_scale", fromArray("float64", [n], wPerChannel.scales));
    const z = q.b.constant("w_zp", fromArray("int32", [n], [0, 0, 0, 0]));
    const wq = q.node("quantize_per_channel", [wf, s, z], { axis: 0, quant_min: -127, quant_max: 127, dtype: "int8" });
    const wd = q.node("dequantize_per_channel", [wq, s, z], { axis: 0, quant_min: -127, quant_max: 127, dtype: "int8" });
    const g = q.build(q.quantize(q.node("linear", [xd, wd]), y));
    const low = lower(g);
    expect(ops(low)).toEqual(["quantize_per_tensor", "quantized_linear"]);
    const wc = low.constants[low.nodes[1]!.inputs[3]!]!;
    expect(wc.kind).toBe("parameter");
    expect(wc.tensor.dtype).toBe("int8");
    const wqVals = ints(wc.tensor);
    expect(wqVals).toEqual(Array.from(toFloat64(g.constants["fc.weight"]!.tensor), (v, i) => quantizeValue(v, wPerChannel.scales[Math.floor(i / k)]!, 0, -127, 127)));
    const xs = fromArray("float32", [3, k], rand(3 * k, 13, -1, 1));
    expect(ints(run(low, { x: xs })[0]!)).toEqual(linearFormula("qnnpack", xqOf(g, xs), x, { ...wPerChannel, q: wqVals }, n, k, undefined, y));
  });
});

describe("lowerQdq: conv", () => {
  const x: QP = { scale: 0.02, zp: 110, dtype: "uint8" };
  const y: QP = { scale: 0.05, zp: 90, dtype: "uint8" };
  const geos: [string, ConvGeo, number[]][] = [
    ["3x3, padding 1, stride 1, per-tensor weight", { stride: 1, pad: 1, groups: 1 }, [0.01]],
    ["3x3, padding 1, stride 2, 2 groups, per-channel weight", { stride: 2, pad: 1, groups: 2 }, [0.01, 0.02, 0.015, 0.005]],
  ];
  for (const [label, geo, scales] of geos) {
    for (const relu of [false, true]) {
      it(`lowers conv${relu ? " -> relu" : ""} (${label}) to quantized_conv2d: exactly PyTorch's formula, within 1 of QDQ`, () => {
        const wShape = [4, 4 / geo.groups, 3, 3];
        const w: WeightQ = { q: rand(numel(wShape), 21, -127, 127).map(Math.round), scales, zps: scales.map(() => 0) };
        const biasF = rand(4, 22, -0.3, 0.3).map(f32);
        const q = new QdqBuilder();
        const xd = q.activation("x", [1, 4, 6, 6], x);
        const wd = q.weight("conv.weight", w.q, wShape, w.scales, w.zps);
        const b = q.b.constant("conv.bias", fromArray("float32", [4], biasF), "parameter");
        let v = q.node("conv", [xd, wd, b], { pads: [geo.pad, geo.pad, geo.pad, geo.pad], strides: [geo.stride, geo.stride], group: geo.groups }, { debugHandle: 3 });
        if (relu) v = q.node("relu", [v], {}, { debugHandle: 4 });
        const g = q.build(q.quantize(v, y));
        const low = lower(g);
        expect(ops(low)).toEqual(["quantize_per_tensor", "quantized_conv2d"]);
        expect(low.nodes[1]!.attrs).toMatchObject({ stride: [geo.stride, geo.stride], padding: [geo.pad, geo.pad], groups: geo.groups, fuse_relu: relu });
        fc.assert(fc.property(fc.integer({ min: 1, max: 1_000_000 }), (seed) => {
          const xs = fromArray("float32", [1, 4, 6, 6], rand(144, seed, -1.5, 1.5));
          const xq = ints(runGraph(g, { x: xs }, { keepAll: true }).values!.get(g.nodes[0]!.outputs[0]!)!);
          const got = run(low, { x: xs })[0]!;
          const want = convFormula(xq, [1, 4, 6, 6], x, w, wShape, geo, biasF, y, relu);
          expect(got.shape).toEqual(want.shape);
          expect(ints(got)).toEqual(want.values);
          expect(maxIntDiff(got, run(g, { x: xs })[0]!)).toBeLessThanOrEqual(1);
        }), { numRuns: 8 });
      });
    }
  }

  it("keeps asymmetric padding in float (quantized_conv2d pads both sides alike)", () => {
    const q = new QdqBuilder();
    const xd = q.activation("x", [1, 1, 5, 5], x);
    const wd = q.weight("w", new Array<number>(9).fill(1), [1, 1, 3, 3], [0.01], [0]);
    const g = q.build(q.quantize(q.node("conv", [xd, wd], { pads: [0, 0, 1, 1] }), y));
    const { report } = lowerQdqWithReport(programFromGraph(g));
    expect(report.notLowered).toEqual([{ node: "conv", op: "conv", reason: expect.stringMatching(/asymmetric pads \[0, 0, 1, 1\]/) as unknown as string }]);
  });
});

// ---- elementwise, cat, activations, pooling ------------------------------------------------------

interface OpCase {
  readonly name: string;
  readonly expectOp: string;
  /** Largest allowed difference from the QDQ program (0 = exact). */
  readonly tol: 0 | 1;
  readonly shape: number[];
  readonly inputs: number;
  readonly build: (q: QdqBuilder, xs: string[]) => string;
  readonly outQ?: (x: QP) => QP;
}

const unaryCase = (name: string, op: string, expectOp: string, tol: 0 | 1, attrs: Record<string, AttrValue> = {}, shape = [2, 3, 4, 4], outQ?: (x: QP) => QP): OpCase => ({
  name, expectOp, tol, shape, inputs: 1, outQ, build: (q, [x]) => q.node(op, [x!], attrs),
});

const fixed01 = (x: QP): QP => ({ scale: 1 / 256, zp: x.dtype === "uint8" ? 0 : -128, dtype: x.dtype });
const fixed11 = (x: QP): QP => ({ scale: 2 / 256, zp: x.dtype === "uint8" ? 128 : 0, dtype: x.dtype });

const OP_CASES: OpCase[] = [
  { name: "add", expectOp: "quantized_add", tol: 0, shape: [2, 5], inputs: 2, build: (q, [a, b]) => q.node("add", [a!, b!]) },
  { name: "add -> relu", expectOp: "quantized_add", tol: 0, shape: [2, 5], inputs: 2, build: (q, [a, b]) => q.node("relu", [q.node("add", [a!, b!])]) },
  { name: "mul", expectOp: "quantized_mul", tol: 0, shape: [2, 5], inputs: 2, build: (q, [a, b]) => q.node("mul", [a!, b!]) },
  { name: "concat", expectOp: "quantized_cat", tol: 0, shape: [2, 3], inputs: 3, build: (q, xs) => q.node("concat", xs, { axis: 1 }) },
  unaryCase("relu", "relu", "quantized_relu", 0),
  unaryCase("hardswish", "hardswish", "quantized_hardswish", 1),
  unaryCase("sigmoid", "sigmoid", "quantized_sigmoid", 0, {}, [2, 3, 4, 4], fixed01),
  unaryCase("hard_sigmoid", "hard_sigmoid", "quantized_hardsigmoid", 1, { alpha: 1 / 6, beta: 0.5 }, [2, 3, 4, 4], fixed01),
  unaryCase("tanh", "tanh", "quantized_tanh", 0, {}, [2, 3, 4, 4], fixed11),
  unaryCase("max_pool 2x2 stride 2", "max_pool", "quantized_max_pool2d", 0, { kernel_shape: [2, 2], strides: [2, 2] }),
  unaryCase("max_pool 3x3 pad 1 stride 1", "max_pool", "quantized_max_pool2d", 0, { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }),
  unaryCase("average_pool 3x3 pad 1 count_include_pad", "average_pool", "quantized_avg_pool2d", 1, { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [2, 2], count_include_pad: 1 }),
  unaryCase("average_pool 2x2", "average_pool", "quantized_avg_pool2d", 1, { kernel_shape: [2, 2], strides: [2, 2] }),
  unaryCase("adaptive_avg_pool2d", "adaptive_avg_pool2d", "quantized_adaptive_avg_pool2d", 1, { output_size: [3, 2] }, [2, 3, 5, 4]),
  unaryCase("global_average_pool", "global_average_pool", "quantized_adaptive_avg_pool2d", 1),
];

describe("lowerQdq: one integer op per pattern, checked against the QDQ program", () => {
  for (const c of OP_CASES) {
    for (const dtype of ["uint8", "int8"] as const) {
      it(`${c.name} (${dtype}) -> ${c.expectOp}, ${c.tol === 0 ? "exactly" : "within 1 of"} quantize(f(dequantize(x)))`, () => {
        fc.assert(fc.property(
          fc.array(fc.record({ scale: fc.double({ min: 0.004, max: 0.05, noNaN: true }), zp: fc.integer({ min: -20, max: 20 }) }), { minLength: c.inputs + 1, maxLength: c.inputs + 1 }),
          fc.integer({ min: 1, max: 1_000_000 }),
          (qps, seed) => {
            const mid = dtype === "uint8" ? 128 : 0;
            const ps: QP[] = qps.map((p) => ({ scale: f32(p.scale), zp: mid + p.zp, dtype }));
            const q = new QdqBuilder();
            const xs = Array.from({ length: c.inputs }, (_, i) => q.activation(`x${i}`, c.shape, ps[i]!));
            const out = c.outQ?.(ps[0]!) ?? ps[c.inputs]!;
            const g = q.build(q.quantize(c.build(q, xs), out));
            const low = lower(g);
            expect(ops(low)).toEqual([...new Array<string>(c.inputs).fill("quantize_per_tensor"), c.expectOp]);
            const feeds: Record<string, Tensor> = {};
            for (let i = 0; i < c.inputs; i++) feeds[`x${i}`] = fromArray("float32", c.shape, rand(numel(c.shape), seed + i, -2, 2));
            expect(maxIntDiff(run(low, feeds)[0]!, run(g, feeds)[0]!)).toBeLessThanOrEqual(c.tol);
          },
        ), { numRuns: 12 });
      });
    }
  }

  it("runs flatten on the integers when its input and output qparams agree", () => {
    const p: QP = { scale: 0.02, zp: 7, dtype: "int8" };
    const q = new QdqBuilder();
    const g = q.build(q.quantize(q.node("flatten", [q.activation("x", [2, 3, 2, 2], p)], { axis: 1 }), p));
    const low = lower(g);
    expect(ops(low)).toEqual(["quantize_per_tensor", "flatten"]);
    expect(low.values[low.outputs[0]!]).toEqual({ dtype: "int8", shape: [2, 12] });
    const feeds = { x: fromArray("float32", [2, 3, 2, 2], rand(24, 3, -3, 3)) };
    expect(maxIntDiff(run(low, feeds)[0]!, run(g, feeds)[0]!)).toBe(0);
  });

  it("keeps a hard_sigmoid with a slope other than torch's 1/6 in float", () => {
    const p: QP = { scale: 0.02, zp: 0, dtype: "int8" };
    const q = new QdqBuilder();
    const g = q.build(q.quantize(q.node("hard_sigmoid", [q.activation("x", [4], p)], { alpha: 0.2, beta: 0.5 }), p));
    expect(ops(lower(g))).toContain("hard_sigmoid");
  });

  it("refuses a quantize with a range narrower than its dtype (reduce_range)", () => {
    const p: QP = { scale: 0.02, zp: 0, dtype: "uint8" };
    const q = new QdqBuilder();
    const [s, z] = q.qparams(p);
    const r = q.node("relu", [q.activation("x", [4], p)]);
    const g = q.build(q.b.node1("quantize_per_tensor", [r, s, z], { quant_min: 0, quant_max: 127, dtype: "uint8" }));
    const { program, report } = lowerQdqWithReport(programFromGraph(g));
    expect(ops(program.graph)).toContain("relu");
    expect(report.notLowered[0]!.reason).toMatch(/clamps to \[0, 127\], narrower than uint8's range/);
  });
});

// ---- dynamic linear -----------------------------------------------------------------------------

describe("lowerQdq: dynamic linear", () => {
  function dynamicGraph(range: [number, number], dtype: QDType, qscheme = "per_tensor_affine"): Graph {
    const q = new QdqBuilder();
    const x = q.b.input("x", "float32", [3, 6]);
    const [s, z] = q.b.node("choose_qparams_per_tensor", [x], { quant_min: range[0], quant_max: range[1], eps: 2 ** -52, dtype, qscheme }, { numOutputs: 2 });
    const attrs = { quant_min: range[0], quant_max: range[1], dtype };
    const xq = q.node("quantize_per_tensor", [x, s!, z!], attrs);
    const xd = q.node("dequantize_per_tensor", [xq, s!, z!], attrs);
    const wd = q.weight("fc.weight", rand(4 * 6, 31, -127, 127).map(Math.round), [4, 6], [0.004, 0.003, 0.005, 0.002], [0, 0, 0, 0]);
    const b = q.b.constant("fc.bias", fromArray("float32", [4], rand(4, 32, -0.2, 0.2)), "parameter");
    return q.build(q.node("linear", [xd, wd, b], {}, { debugHandle: 9, moduleStack: [{ path: "fc", type: "Linear" }] }));
  }

  for (const [range, dtype] of [[[-128, 127], "int8"], [[0, 255], "uint8"]] as const) {
    it(`turns choose_qparams -> quantize -> dequantize -> linear (${dtype}) into dynamic_quantized_linear`, () => {
      const g = dynamicGraph([...range], dtype);
      const low = lower(g);
      expect(ops(low)).toEqual(["dynamic_quantized_linear"]);
      expect(low.nodes[0]!.attrs).toMatchObject({ engine: "qnnpack", reduce_range: false });
      expect(low.nodes[0]!.meta).toMatchObject({ debugHandle: 9, moduleStack: [{ path: "fc", type: "Linear" }] });
      // Float outputs: the kernel picks ATen's quint8 qparams itself, so the values agree with the
      // QDQ program to within a small fraction of one activation step times |w|.
      fc.assert(fc.property(fc.integer({ min: 1, max: 1_000_000 }), (seed) => {
        const xs = fromArray("float32", [3, 6], rand(18, seed, -2, 2));
        const got = toFloat64(run(low, { x: xs })[0]!);
        const want = toFloat64(run(g, { x: xs })[0]!);
        const scale = 4 / 255;
        for (let i = 0; i < got.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(scale * 0.7);
      }), { numRuns: 20 });
    });
  }

  it("keeps symmetric dynamic quantization in float (linear_dynamic chooses affine qparams)", () => {
    const { program, report } = lowerQdqWithReport(programFromGraph(dynamicGraph([-128, 127], "int8", "per_tensor_symmetric")));
    expect(ops(program.graph)).toContain("linear");
    expect(report.notLowered.map((r) => r.reason)).toEqual([expect.stringMatching(/per_tensor_symmetric: linear_dynamic picks affine qparams/)]);
  });

  it("keeps a reduce_range dynamic quantization in float on qnnpack, lowers it on onednn", () => {
    const g = dynamicGraph([0, 127], "uint8");
    const { program, report } = lowerQdqWithReport(programFromGraph(g));
    expect(ops(program.graph)).toContain("linear");
    expect(report.notLowered[0]!.reason).toMatch(/choose_qparams over \[0, 127\] has no qnnpack linear_dynamic equivalent/);
    const low = lower(g, "onednn");
    expect(ops(low)).toEqual(["dynamic_quantized_linear"]);
    expect(low.nodes[0]!.attrs["reduce_range"]).toBe(true);
  });
});

// ---- what must not be lowered, reports, idempotence -----------------------------------------------

describe("lowerQdq: the float path that must stay", () => {
  const p: QP = { scale: 0.02, zp: 3, dtype: "int8" };

  it("keeps a float op whose output has another float reader", () => {
    const q = new QdqBuilder();
    const x = q.activation("x", [2, 4], p);
    const wd = q.weight("w", rand(16, 1, -100, 100).map(Math.round), [4, 4], [0.01], [0]);
    const lin = q.node("linear", [x, wd]);
    const g = q.build(q.quantize(lin, p), q.node("softmax", [lin], { axis: -1 }));
    const { program, report } = lowerQdqWithReport(programFromGraph(g));
    expect(ops(program.graph)).toEqual(ops(g));
    const entry = report.notLowered.find((r) => r.op === "linear")!;
    expect(entry.reason).toMatch(/output has 2 readers/);
  });

  it("lowers one reader of a shared dequantize and keeps the other reader's float path", () => {
    const q = new QdqBuilder();
    const x = q.activation("x", [2, 4], p);
    const relu = q.node("relu", [x], {}, { debugHandle: 1 });
    const soft = q.node("softmax", [x], { axis: -1 }, { debugHandle: 2 });
    const g = q.build(q.quantize(relu, p), soft);
    const { program, report } = lowerQdqWithReport(programFromGraph(g));
    expect(ops(program.graph)).toEqual(["quantize_per_tensor", "dequantize_per_tensor", "softmax", "quantized_relu"]);
    expect(report.notLowered).toEqual([{ node: "softmax", op: "softmax", reason: "no integer op for 'softmax': it runs in float between dequantize and quantize" }]);
    expect(report.lowered).toEqual({ relu: 1 });
    const feeds = { x: fromArray("float32", [2, 4], rand(8, 4, -2, 2)) };
    const [r1, s1] = run(program.graph, feeds);
    const [r0, s0] = run(g, feeds);
    expect(maxIntDiff(r1!, r0!)).toBe(0);
    expect(Array.from(toFloat64(s1!))).toEqual(Array.from(toFloat64(s0!)));
  });

  it("lowers add with its two inputs of different kinds only when both are dequantized", () => {
    const q = new QdqBuilder();
    const x = q.activation("x", [4], p);
    const c = q.b.constant("c", fromArray("float32", [4], [1, 2, 3, 4]));
    const g = q.build(q.quantize(q.node("add", [x, c]), p));
    const { report } = lowerQdqWithReport(programFromGraph(g));
    expect(report.notLowered).toEqual([{ node: "add", op: "add", reason: "input 'c' is not dequantized" }]);
  });
});

describe("lowerQdq: program, meta, idempotence", () => {
  it("keeps the float op's debug handle and module stack and follows renamed program outputs", () => {
    const p: QP = { scale: 0.05, zp: 0, dtype: "int8" };
    const q = new QdqBuilder();
    const x = q.activation("x", [1, 2, 4, 4], p);
    const pool = q.node("max_pool", [x], { kernel_shape: [2, 2], strides: [2, 2] }, { debugHandle: 5, moduleStack: [{ path: "pool", type: "MaxPool2d" }], source: "m.ts:3:1" });
    const g = q.build(q.quantize(pool, p));
    const ep = { ...programFromGraph(g), outputs: [{ name: "y", value: g.outputs[0]! }] };
    const low = lowerQdq(ep);
    const n = low.graph.nodes[1]!;
    expect(n.op).toBe("quantized_max_pool2d");
    expect(n.meta).toMatchObject({ debugHandle: 5, moduleStack: [{ path: "pool", type: "MaxPool2d" }], source: "m.ts:3:1" });
    expect(low.outputs).toEqual([{ name: "y", value: n.outputs[0] }]);
    expect(low.graph.outputs).toEqual(n.outputs);
  });

  it("rejects an unknown engine", () => {
    const q = new QdqBuilder();
    const g = q.build(q.activation("x", [2], { scale: 1, zp: 0, dtype: "int8" }));
    expect(() => lowerQdq(programFromGraph(g), { engine: "fbgemm" as LoweringEngine })).toThrow(/engine must be "qnnpack" or "onednn"/);
  });

  type Step = "relu" | "sigmoid" | "tanh" | "hardswish" | "add" | "softmax" | "max_pool";
  /** A random chain x -> q -> (dq -> op -> q)* where some steps have no integer op. */
  function chain(steps: readonly Step[], dtype: QDType): Graph {
    const q = new QdqBuilder();
    const p: QP = { scale: 0.03, zp: dtype === "uint8" ? 128 : 0, dtype };
    let v = q.quantize(q.b.input("x", "float32", [1, 2, 4, 4]), p);
    steps.forEach((s, i) => {
      const d = q.dequantize(v, p);
      const meta = { debugHandle: i + 1 };
      const f = s === "add" ? q.node("add", [d, q.dequantize(v, p)], {}, meta)
        : s === "softmax" ? q.node("softmax", [d], { axis: -1 }, meta)
          : s === "max_pool" ? q.node("max_pool", [d], { kernel_shape: [1, 1] }, meta)
            : q.node(s, [d], {}, meta);
      v = q.quantize(f, p);
    });
    return q.build(v);
  }
  const arbChain = fc.tuple(
    fc.array(fc.constantFrom<Step>("relu", "sigmoid", "tanh", "hardswish", "add", "softmax", "max_pool"), { minLength: 1, maxLength: 6 }),
    fc.constantFrom<QDType>("uint8", "int8"),
  );

  it("is idempotent: lowering twice is lowering once (property)", () => {
    fc.assert(fc.property(arbChain, ([steps, dtype]) => {
      const once = lowerQdq(programFromGraph(chain(steps, dtype)));
      const twice = lowerQdq(once);
      expect(twice.graph).toEqual(once.graph);
      expect(twice.outputs).toEqual(once.outputs);
    }), { numRuns: 40 });
  });

  it("lowers every lowerable step of a random chain and reports exactly the others (property)", () => {
    fc.assert(fc.property(arbChain, ([steps, dtype]) => {
      const g = chain(steps, dtype);
      const { program, report } = lowerQdqWithReport(programFromGraph(g));
      const floats = program.graph.nodes.filter((nd) => !nd.op.startsWith("quantize") && !nd.op.startsWith("dequantize") && !nd.op.startsWith("quantized_"));
      expect(floats.map((nd) => nd.op)).toEqual(steps.filter((s) => s === "softmax"));
      expect(report.notLowered.map((r) => r.op)).toEqual(floats.map((nd) => nd.op));
      expect(Object.values(report.lowered).reduce((a, b) => a + b, 0)).toBe(steps.length - floats.length);
      // Every node that replaced a float op kept its debug handle.
      const handles = program.graph.nodes.filter((nd) => nd.op.startsWith("quantized_")).map((nd) => nd.meta.debugHandle);
      expect(handles).toEqual(steps.map((s, i) => (s === "softmax" ? undefined : i + 1)).filter((h) => h !== undefined));
      // The lowered chain runs and gives integers of the chain's dtype.
      const y = run(program.graph, { x: fromArray("float32", [1, 2, 4, 4], rand(32, steps.length, -2, 2)) })[0]!;
      expect(y.dtype).toBe(dtype);
    }), { numRuns: 40 });
  });
});

