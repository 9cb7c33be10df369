/**
 * Lowering rows for ONNX's spellings of linear layers and for activation matmuls:
 *   quantize([relu](add(matmul(dq(x), dq(W[K, N])), bias)))  -> quantized_linear, W transposed to [N, K]
 *   quantize(gemm(dq(x), dq(W), C) {transB})                  -> quantized_linear
 *   quantize(matmul(dq(a), dq(b)))                            -> qlinear_matmul
 * Each lowered program agrees with its QDQ program within one integer step.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { fromArray, getElement, GraphBuilder, numel, programFromGraph, scalar, type AttrValue, type Graph, type Tensor } from "@qforge/ir";
import { runGraph } from "@qforge/runtime";
import { f32 } from "@qforge/quant";
import { lowerQdqWithReport } from "../src/lowering/index.js";

type QDType = "uint8" | "int8";
interface QP { readonly scale: number; readonly zp: number; readonly dtype: QDType }
const RANGE: Record<QDType, [number, number]> = { uint8: [0, 255], int8: [-128, 127] };

function rand(n: number, seed: number, lo = -1, hi = 1): number[] {
  let s = (seed * 2654435761) >>> 0 || 1;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + ((hi - lo) * s) / 2 ** 32;
  });
}

/** Builds converted-PT2E-style QDQ graphs. */
class Qdq {
  readonly b = new GraphBuilder();
  private k = 0;

  private qparams(p: QP): [string, string] {
    const i = this.k++;
    return [this.b.constant(`s${i}`, scalar("float32", f32(p.scale))), this.b.constant(`z${i}`, scalar("int32", p.zp))];
  }

  qdq(x: string, p: QP): string {
    const [s, z] = this.qparams(p);
    const attrs = { quant_min: RANGE[p.dtype][0], quant_max: RANGE[p.dtype][1], dtype: p.dtype };
    const q = this.b.node1("quantize_per_tensor", [x, s, z], attrs);
    return this.b.node1("dequantize_per_tensor", [q, s, z], attrs);
  }

  quantize(x: string, p: QP): string {
    const [s, z] = this.qparams(p);
    return this.b.node1("quantize_per_tensor", [x, s, z], { quant_min: RANGE[p.dtype][0], quant_max: RANGE[p.dtype][1], dtype: p.dtype });
  }

  /** An int8 weight dequantized per channel along `axis` (or per tensor with one scale). */
  weight(name: string, shape: number[], seed: number, scales: readonly number[], axis: number): string {
    const w = this.b.constant(name, fromArray("int8", shape, rand(numel(shape), seed, -127, 127).map(Math.round)), "parameter");
    const attrs = { quant_min: -127, quant_max: 127, dtype: "int8" };
    if (scales.length === 1) {
      return this.b.node1("dequantize_per_tensor", [w, this.b.constant(`${name}_s`, scalar("float32", f32(scales[0]!))), this.b.constant(`${name}_z`, scalar("int32", 0))], attrs);
    }
    const s = this.b.constant(`${name}_s`, fromArray("float64", [scales.length], scales));
    const z = this.b.constant(`${name}_z`, fromArray("int32", [scales.length], new Array<number>(scales.length).fill(0)));
    return this.b.node1("dequantize_per_channel", [w, s, z], { ...attrs, axis });
  }

  node(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string {
    return this.b.node1(op, inputs, attrs, { meta: { debugHandle: 7 } });
  }

  build(out: string): Graph {
    this.b.output(out);
    return this.b.build();
  }
}

const ints = (t: Tensor): number[] => Array.from({ length: numel(t.shape) }, (_, i) => getElement(t, i));
function maxIntDiff(a: Tensor, b: Tensor): number {
  const x = ints(a);
  const y = ints(b);
  expect(x.length).toBe(y.length);
  return x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0);
}
const lower = (g: Graph) => lowerQdqWithReport(programFromGraph(g));

const X: QP = { scale: 0.02, zp: -3, dtype: "int8" };
const Y: QP = { scale: 0.05, zp: 4, dtype: "int8" };
const [K, N] = [6, 5];
const channelScales = [0.004, 0.006, 0.003, 0.005, 0.007];

function matmulLinear(opts: { bias?: number[]; biasShape?: number[]; relu?: boolean; scales?: readonly number[]; axis?: number } = {}): Graph {
  const q = new Qdq();
  const x = q.qdq(q.b.input("x", "float32", [2, 3, K]), X);
  const w = q.weight("W", [K, N], 3, opts.scales ?? channelScales, opts.axis ?? 1);
  let v = q.node("matmul", [x, w]);
  if (opts.bias !== undefined) v = q.node("add", [v, q.b.constant("bias", fromArray("float32", opts.biasShape ?? [N], opts.bias), "parameter")]);
  if (opts.relu === true) v = q.node("relu", [v]);
  return q.build(q.quantize(v, Y));
}

function checkAgainstQdq(g: Graph, low: Graph, shape: number[], input = "x"): void {
  fc.assert(fc.property(fc.integer({ min: 1, max: 1_000_000 }), (seed) => {
    const xs = fromArray("float32", shape, rand(numel(shape), seed, -1.5, 1.5));
    expect(maxIntDiff(runGraph(low, { [input]: xs }).outputs[0]!, runGraph(g, { [input]: xs }).outputs[0]!)).toBeLessThanOrEqual(1);
  }), { numRuns: 10 });
}

describe("lowering ONNX linears: matmul (+ add bias) (+ relu) with a constant [K, N] weight", () => {
  it("becomes quantized_linear with the weight transposed to [N, K] and per-channel qparams of W's axis 1", () => {
    const bias = rand(N, 5, -0.3, 0.3);
    const g = matmulLinear({ bias });
    const { program, report } = lower(g);
    const low = program.graph;
    expect(report.lowered).toEqual({ "matmul-add-linear": 1 });
    expect(low.nodes.map((n) => n.op)).toEqual(["quantize_per_tensor", "quantized_linear"]);
    const lin = low.nodes[1]!;
    const wt = low.constants[lin.inputs[3]!]!.tensor;
    expect(wt.shape).toEqual([N, K]);
    const w = g.constants["W"]!.tensor;
    for (let i = 0; i < K; i++) for (let j = 0; j < N; j++) expect(getElement(wt, j * K + i)).toBe(getElement(w, i * N + j));
    expect(lin.meta.debugHandle).toBe(7);
    checkAgainstQdq(g, low, [2, 3, K]);
  });

  it("lowers without a bias, with a per-tensor weight, and fuses a relu", () => {
    for (const opts of [{}, { scales: [0.005] }, { bias: rand(N, 9), relu: true }]) {
      const g = matmulLinear(opts);
      const low = lower(g).program.graph;
      expect(low.nodes.map((n) => n.op)).toEqual(["quantize_per_tensor", "quantized_linear"]);
      expect(low.nodes[1]!.attrs["fuse_relu"]).toBe("relu" in opts);
      checkAgainstQdq(g, low, [2, 3, K]);
    }
  });

  it("takes a [1, N] bias as the [N] bias quantized_linear needs", () => {
    const g = matmulLinear({ bias: rand(N, 2), biasShape: [1, N] });
    const low = lower(g).program.graph;
    expect(low.constants[low.nodes[1]!.inputs[6]!]!.tensor.shape).toEqual([N]);
    checkAgainstQdq(g, low, [2, 3, K]);
  });

  it("keeps a weight quantized along its input axis in float, and says why", () => {
    const g = matmulLinear({ scales: [0.004, 0.006, 0.003, 0.005, 0.007, 0.002], axis: 0 });
    const { program, report } = lower(g);
    expect(program.graph.nodes.some((n) => n.op === "matmul")).toBe(true);
    expect(report.notLowered.find((r) => r.op === "matmul")?.reason).toMatch(/axis 0.*output axis 1/);
  });
});

describe("lowering ONNX Gemm", () => {
  function gemmGraph(attrs: Record<string, AttrValue>, transB: boolean): Graph {
    const q = new Qdq();
    const x = q.qdq(q.b.input("x", "float32", [4, K]), X);
    const w = q.weight("W", transB ? [N, K] : [K, N], 11, channelScales, transB ? 0 : 1);
    const c = q.b.constant("C", fromArray("float32", [N], rand(N, 4, -0.2, 0.2)), "parameter");
    return q.build(q.quantize(q.node("gemm", [x, w, c], { transB: transB ? 1 : 0, ...attrs }), Y));
  }

  for (const transB of [true, false]) {
    it(`with transB=${transB ? 1 : 0} becomes quantized_linear`, () => {
      const g = gemmGraph({}, transB);
      const { program, report } = lower(g);
      expect(report.lowered).toEqual({ "gemm-linear": 1 });
      expect(program.graph.constants[program.graph.nodes[1]!.inputs[3]!]!.tensor.shape).toEqual([N, K]);
      checkAgainstQdq(g, program.graph, [4, K]);
    });
  }

  it("with alpha != 1 stays in float, reported", () => {
    const { program, report } = lower(gemmGraph({ alpha: 0.5 }, true));
    expect(program.graph.nodes.some((n) => n.op === "gemm")).toBe(true);
    expect(report.notLowered[0]!.reason).toMatch(/alpha or beta/);
  });
});

describe("lowering matmuls of two activations", () => {
  for (const [label, a, b, y] of [
    ["int8", X, { scale: 0.03, zp: 2, dtype: "int8" }, Y],
    ["uint8", { scale: 0.02, zp: 128, dtype: "uint8" }, { scale: 0.03, zp: 120, dtype: "uint8" }, { scale: 0.06, zp: 100, dtype: "uint8" }],
  ] as [string, QP, QP, QP][]) {
    it(`becomes qlinear_matmul (${label}), its zero points in the activations' dtype, within 1 of QDQ`, () => {
      const q = new Qdq();
      const av = q.qdq(q.b.input("a", "float32", [2, 3, 4]), a);
      const bv = q.qdq(q.b.input("b", "float32", [2, 4, 5]), b);
      const g = q.build(q.quantize(q.node("matmul", [av, bv]), y));
      const low = lower(g).program.graph;
      const mm = low.nodes.find((n) => n.op === "qlinear_matmul")!;
      expect(mm).toBeDefined();
      for (const i of [2, 5, 7]) expect(low.constants[mm.inputs[i]!]!.tensor.dtype).toBe(a.dtype);
      fc.assert(fc.property(fc.integer({ min: 1, max: 1_000_000 }), (seed) => {
        const feeds = { a: fromArray("float32", [2, 3, 4], rand(24, seed, -2, 2)), b: fromArray("float32", [2, 4, 5], rand(40, seed + 1, -2, 2)) };
        const got = runGraph(low, feeds).outputs[0]!;
        expect(got.dtype).toBe(y.dtype);
        expect(maxIntDiff(got, runGraph(g, feeds).outputs[0]!)).toBeLessThanOrEqual(1);
      }), { numRuns: 10 });
    });
  }
});
