/**
 * `quantizeModel` as a library: in-memory samples and progress, dynamic mode on linear layers, the
 * weight-only math per op (axes, groups, SQNR, bytes), and the summary's reasons.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { produce } from "immer";
import * as ort from "onnxruntime-node";
import { fromArray, GraphBuilder, programFromGraph, tensor, toNumbers, type ExportedProgram, type Tensor } from "@qforge/ir";
import { exportModel, Linear, manualSeed, ReLU, Sequential } from "@qforge/export";
import { runProgram } from "@qforge/runtime";
import { exportOnnx } from "@qforge/onnx";
import { exportQuantized, formatSummary, quantizeModel, quantizeWeight, weightOnlyQuantize } from "@qforge/cli";

function values(n: number, seed: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648 - 0.5;
  });
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  const x = toNumbers(a);
  const y = toNumbers(b);
  return Math.max(...x.map((v, i) => Math.abs(v - y[i]!)));
}

/** x [N, 8] -> linear(8, 16) -> relu -> linear(16, 4). */
function mlp(): ExportedProgram {
  manualSeed(0);
  const m = new Sequential(new Linear(8, 16), new ReLU(), new Linear(16, 4));
  return exportModel(m, [fromArray("float32", [2, 8], values(16, 1))]);
}

/** A graph with gemm (transB 0 and 1) and matmul weights: x [2, 6] -> gemm -> gemm(transB) -> matmul. */
function gemmGraph(): ExportedProgram {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", [2, 6]);
  const w1 = b.constant("w1", fromArray("float32", [6, 5], values(30, 2)), "parameter");
  const w2 = b.constant("w2", fromArray("float32", [4, 5], values(20, 3)), "parameter");
  const w3 = b.constant("w3", fromArray("float32", [4, 3], values(12, 4)), "parameter");
  const h1 = b.node1("gemm", [x, w1], {}, { name: "g1" });
  const h2 = b.node1("gemm", [h1, w2], { transB: 1 }, { name: "g2" });
  b.output(b.node1("matmul", [h2, w3], {}, { name: "mm" }));
  return programFromGraph(b.build());
}

describe("quantizeModel", () => {
  it("static: calibrates each in-memory sample once, reports progress, and stays close to float", () => {
    const ep = mlp();
    const samples = [0, 1, 2, 3, 4].map((k) => [fromArray("float32", [2, 8], values(16, 10 + k))]);
    const seen: [number, number][] = [];
    const { program, summary } = quantizeModel(ep, { perChannel: true }, samples, (d, t) => seen.push([d, t]));
    expect(seen).toEqual([[1, 5], [2, 5], [3, 5], [4, 5], [5, 5]]);
    expect(summary).toMatchObject({ mode: "static", quantizer: "xnnpack", method: "histogram", weights: "per-channel int8", quantizedNodes: 3 });
    expect(summary.quantized).toEqual({ linear: 2, relu: 1 });
    expect(summary.calibration?.samples).toBe(5);
    const x = samples[2]![0]!;
    const [yq] = runProgram(program, [x]);
    const [yf] = runProgram(ep, [x]);
    expect(maxAbsDiff(yq!, yf!)).toBeLessThan(0.02);
    expect(ep.graph.nodes.some((n) => n.op.startsWith("quantize"))).toBe(false); // the input program is untouched
  });

  it("dynamic: linear layers get choose_qparams at run time, no calibration data needed", () => {
    const ep = mlp();
    const { program, summary } = quantizeModel(ep, { mode: "dynamic" });
    expect(summary.calibration).toBeUndefined();
    expect(summary.quantized).toEqual({ linear: 2 });
    expect(summary.leftInFloat).toEqual([{ node: expect.any(String), op: "relu", reason: "the xnnpack quantizer does not quantize 'relu' in dynamic mode" }]);
    expect(program.graph.nodes.filter((n) => n.op === "choose_qparams_per_tensor")).toHaveLength(2);
    const x = fromArray("float32", [2, 8], values(16, 99));
    expect(maxAbsDiff(runProgram(program, [x])[0]!, runProgram(ep, [x])[0]!)).toBeLessThan(0.02);
  });

  it("dynamic on x86 exports to ONNX and runs in ONNX Runtime close to float", async () => {
    const ep = mlp();
    const { program } = quantizeModel(ep, { mode: "dynamic", quantizer: "x86" });
    const session = await ort.InferenceSession.create(exportOnnx(program));
    const x = fromArray("float32", [2, 8], values(16, 5));
    const r = await session.run({ [session.inputNames[0]!]: new ort.Tensor("float32", x.data as Float32Array, [2, 8]) });
    const got = tensor("float32", [2, 4], r[session.outputNames[0]!]!.data as Float32Array);
    expect(maxAbsDiff(got, runProgram(ep, [x])[0]!)).toBeLessThan(0.02);
  });

  it("static without samples is BAD_INPUT; a bad sample is named", () => {
    expect(() => quantizeModel(mlp(), {}, [])).toThrow(/BAD_INPUT: static quantization needs calibration data/);
    const bad = [[fromArray("float32", [2, 8], values(16, 1))], [fromArray("float32", [2, 8], [...values(15, 1), NaN])]];
    expect(() => quantizeModel(mlp(), {}, bad)).toThrow(/BAD_DATA: sample 2: input '.*' element 15 is NaN/);
    expect(() => quantizeModel(mlp(), {}, [[fromArray("float32", [2, 7], values(14, 1))]])).toThrow(/BAD_DATA: sample 1: input '.*' has shape \[2, 7\]/);
  });
});

describe("weight-only quantization", () => {
  it("finds the weight axes of gemm (transB 0 / 1) and matmul: per-channel scales on the output axis, groups on K", () => {
    const ep = gemmGraph();
    const perChannel = weightOnlyQuantize(ep, { bits: 8, groupSize: 0 });
    const dq = perChannel.program.graph.nodes.filter((n) => n.op === "dequantize_linear");
    const byWeight = Object.fromEntries(dq.map((n) => [n.inputs[0]!.replace(/_quantized$/, ""), { axis: n.attrs["axis"], scale: perChannel.program.graph.constants[n.inputs[1]!]!.tensor.shape }]));
    // gemm B [K=6, N=5] -> axis 1; gemm transB B [N=4, K=5] -> axis 0; matmul B [K=4, N=3] -> axis 1
    expect(byWeight).toEqual({ w1: { axis: 1, scale: [5] }, w2: { axis: 0, scale: [4] }, w3: { axis: 1, scale: [3] } });
    const grouped = weightOnlyQuantize(ep, { bits: 4, groupSize: 2 });
    const g = grouped.program.graph;
    const blocked = g.nodes.filter((n) => n.op === "dequantize_linear").map((n) => [n.attrs["axis"], n.attrs["block_size"], g.constants[n.inputs[1]!]!.tensor.shape]);
    expect(blocked).toEqual([[0, 2, [3, 5]], [1, 2, [4, 3]], [0, 2, [2, 3]]]);
    expect(Object.keys(g.constants).filter((k) => /^w\d$/.test(k))).toEqual([]); // float weights are gone
    const x = fromArray("float32", [2, 6], values(12, 7));
    expect(maxAbsDiff(runProgram(perChannel.program, [x])[0]!, runProgram(ep, [x])[0]!)).toBeLessThan(0.01);
    expect(maxAbsDiff(runProgram(grouped.program, [x])[0]!, runProgram(ep, [x])[0]!)).toBeLessThan(0.1);
  });

  it("dequantize(quantize(w)) is within half a step of w, in int8 and int4, with one scale per group (fast-check)", () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 10_000 }),
      (rows, cols, group, seed) => {
        const w = fromArray("float32", [rows, cols], values(rows * cols, seed).map((v) => v * 4));
        const axes = { outAxis: 0, inAxis: 1 };
        // a group covering the whole row is one scale per row (per channel)
        const perChannel = cols <= group;
        const g = perChannel ? cols : group;
        const groups = Math.ceil(cols / g);
        const wv = toNumbers(w);
        for (const [bits, lo, hi] of [[4, -8, 7], [8, -128, 127]] as const) {
          const qw = quantizeWeight(w, axes, bits, group);
          expect(qw.scale.shape).toEqual(perChannel ? [rows] : [rows, groups]);
          expect([qw.axis, qw.blockSize]).toEqual(perChannel ? [0, 0] : [1, g]);
          const s = toNumbers(qw.scale);
          const q = toNumbers(qw.q);
          for (let i = 0; i < wv.length; i++) {
            const sc = s[Math.floor(i / cols) * groups + Math.floor((i % cols) / g)]!;
            expect(Math.abs(q[i]! * sc - wv[i]!)).toBeLessThanOrEqual(sc / 2 + 1e-6);
            expect(q[i]!).toBeGreaterThanOrEqual(lo);
            expect(q[i]!).toBeLessThanOrEqual(hi);
          }
          // SQNR is the signal over the error of exactly these integers and scales
          let sig = 0;
          let err = 0;
          wv.forEach((v, i) => { sig += v * v; err += (v - Math.fround(q[i]! * s[Math.floor(i / cols) * groups + Math.floor((i % cols) / g)]!)) ** 2; });
          if (err > 0) expect(qw.sqnrDb).toBeCloseTo(10 * Math.log10(sig / err), 3);
        }
      }), { numRuns: 100 });
  });

  it("a depthwise conv weight (one input channel) is per channel, not one scale per kernel position", () => {
    const w = fromArray("float32", [4, 1, 3, 3], values(36, 11));
    const dw = quantizeWeight(w, { outAxis: 0, inAxis: 1 }, 4, 128);
    expect([dw.axis, dw.blockSize, dw.scale.shape]).toEqual([0, 0, [4]]);
    const wide = quantizeWeight(fromArray("float32", [2, 8, 1, 3], values(48, 12)), { outAxis: 0, inAxis: 1 }, 4, 4);
    expect([wide.axis, wide.blockSize, wide.scale.shape]).toEqual([1, 4, [2, 2, 1, 3]]);
  });

  it("counts bytes (int4 packs two per byte, plus float32 scales) and explains skipped nodes", () => {
    const ep = gemmGraph();
    const { report } = weightOnlyQuantize(ep, { bits: 4, groupSize: 2, excluded: new Map([["mm", "excluded by --exclude-nodes"]]) });
    expect(report.layers.map((l) => [l.node, l.bytesBefore, l.bytesAfter])).toEqual([["g1", 120, 15 + 15 * 4], ["g2", 80, 10 + 12 * 4]]);
    expect(report.skipped).toEqual([{ node: "mm", op: "matmul", reason: "excluded by --exclude-nodes" }]);
    const { summary } = quantizeModel(ep, { mode: "weight-only", weightBits: 4, groupSize: 2, excludeNodes: ["mm"] });
    const text = formatSummary(summary);
    expect(text).toMatch(/^quantized 2 of 3 nodes \(weight-only, int4 groups of 2\): gemm x2$/m);
    expect(text).toMatch(/^ {2}excluded by --exclude-nodes: matmul x1 \(mm\)$/m);
    expect(text).toMatch(/^ {2}total weight bytes: 200 B -> 133 B \(1\.50x smaller\)$/m);
  });

  it("a weight the exporter cannot write is UNSUPPORTED naming the layer that reads it", () => {
    const { program } = weightOnlyQuantize(gemmGraph(), { bits: 4, groupSize: 2 });
    // Store g1's weight as int2, which no ONNX opset up to 21 can dequantize.
    const int2 = produce(program, (d) => {
      const q = d.graph.constants["w1_quantized"]!;
      const t = fromArray("int2", q.tensor.shape, toNumbers(q.tensor).map((v) => Math.max(-2, Math.min(1, v))));
      d.graph.constants["w1_quantized"] = { kind: "parameter", tensor: t as never };
      d.graph.values["w1_quantized"] = { dtype: "int2", shape: [...t.shape] };
      d.graph.nodes.find((n) => n.name === "w1_dq")!.meta = { weightOnly: { weight: "w1", dtype: "int2", groupSize: 2 } };
    });
    expect(() => exportQuantized(int2, "qdq")).toThrow(/UNSUPPORTED: layer 'g1': its int2 weight in groups of 2 cannot be written to ONNX/);
  });
});
