import { describe, expect, test } from "vitest";
import { readFileSync } from "node:fs";
import { exportModel } from "@qforge/export";
import { allClose, printGraph, parseGraph, type Graph } from "@qforge/ir";
import { calibrate, convertPt2e, preparePt2e } from "@qforge/pt2e";
import { runGraph, runProgram } from "@qforge/runtime";
import { ComposableQuantizer, getAnnotation, getSymmetricQuantizationConfig, XnnpackQuantizer } from "@qforge/quantizer";
import { Int4WeightOnlyQuantizer, int4WeightSpec } from "./int4-weight-quantizer.js";
import { createModel, exampleBatch } from "./model.js";
import { DOC_PATH, renderDumps } from "./dump.js";

function traced(): Graph {
  return exportModel(createModel(), [exampleBatch(0)]).graph;
}

function annotationsByNode(g: Graph): Record<string, unknown> {
  return Object.fromEntries(g.nodes.map((n) => [n.name, getAnnotation(n) ?? null]));
}

describe("custom Quantizer plugin: int4 weight-only", () => {
  test("transformForAnnotation turns matmul by a constant into linear by its transpose, same outputs", () => {
    const q = new Int4WeightOnlyQuantizer({ groupSize: 16 });
    const g = traced();
    const t = q.transformForAnnotation(g);
    expect(g.nodes.map((n) => n.op)).toEqual(["linear", "relu", "matmul", "relu", "linear"]);
    expect(t.nodes.map((n) => n.op)).toEqual(["linear", "relu", "linear", "relu", "linear"]);
    const mm = t.nodes[2]!;
    expect(mm.name).toBe(g.nodes[2]!.name);
    expect(mm.outputs).toEqual(g.nodes[2]!.outputs);
    expect(mm.inputs[1]).toBe("proj.t");
    expect(t.constants["proj.t"]!.tensor.shape).toEqual([16, 32]);
    expect(t.constants["proj"]).toBeUndefined();
    expect(t.outputs).toEqual(g.outputs);
    const x = exampleBatch(3);
    const [a] = runGraph(g, [x]).outputs;
    const [b] = runGraph(t, [x]).outputs;
    expect(allClose(a!, b!, 1e-6, 1e-6).ok).toBe(true);
  });

  test("annotate: int4 per-group specs on the three weights, nothing else", () => {
    const q = new Int4WeightOnlyQuantizer({ groupSize: 16 });
    const g = q.annotate(q.transformForAnnotation(traced()));
    q.validate(g);
    const spec = int4WeightSpec({ groupSize: 16 });
    expect(spec).toMatchObject({ dtype: "int4", quantMin: -8, quantMax: 7, qscheme: "per_channel_symmetric", chAxis: 0, blockSize: [1, 16] });
    const byName = annotationsByNode(g);
    const claim = (w: string) => ({ inputQSpecMap: { [w]: spec }, allowImplicitSharing: true, annotated: true });
    const [fc1, relu, mm, relu2, fc2] = g.nodes.map((n) => n.name);
    expect(byName).toEqual({
      [fc1!]: claim("fc1.weight"), [relu!]: null, [mm!]: claim("proj.t"), [relu2!]: null, [fc2!]: claim("fc2.weight"),
    });
  });

  test("without a group size the weights are int4 per output channel", () => {
    const q = new Int4WeightOnlyQuantizer();
    const g = q.annotate(q.transformForAnnotation(traced()));
    const a = getAnnotation(g.nodes[0]!)!;
    expect(a.inputQSpecMap["fc1.weight"]).toEqual(int4WeightSpec());
    expect(int4WeightSpec().blockSize).toBeUndefined();
    q.validate(g);
  });

  test("validate refuses a group size that does not divide in_features, naming the layer", () => {
    const q = new Int4WeightOnlyQuantizer({ groupSize: 24 });
    const g = q.annotate(q.transformForAnnotation(traced()));
    expect(() => q.validate(g)).toThrow(/weight 'fc1.weight' has 64 input features, not a multiple of the group size 24/);
    expect(() => new Int4WeightOnlyQuantizer({ groupSize: 0 })).toThrow(/positive integer/);
  });

  test("composes with XNNPACK: whichever quantizer comes first claims the linears", () => {
    const q = new ComposableQuantizer([new Int4WeightOnlyQuantizer({ groupSize: 16 }), new XnnpackQuantizer().setGlobal(getSymmetricQuantizationConfig())]);
    const g = q.annotate(q.transformForAnnotation(traced()));
    expect(g.nodes.filter((n) => getAnnotation(n) !== undefined).map((n) => n.op)).toEqual(["linear", "linear", "linear"]);
    // The other order: XNNPACK claims every linear (+relu) first, so no int4 spec is left to write.
    const r = new ComposableQuantizer([new XnnpackQuantizer().setGlobal(getSymmetricQuantizationConfig()), new Int4WeightOnlyQuantizer({ groupSize: 16 })]);
    const g2 = r.annotate(r.transformForAnnotation(traced()));
    const weights = g2.nodes.filter((n) => n.op === "linear").map((n) => getAnnotation(n)!.inputQSpecMap[n.inputs[1]!]);
    expect(weights).toEqual([0, 1, 2].map(() => getSymmetricQuantizationConfig().weight));
  });

  test("the annotated graph prints and parses back", () => {
    const q = new Int4WeightOnlyQuantizer({ groupSize: 16 });
    const g = q.annotate(q.transformForAnnotation(traced()));
    expect(parseGraph(printGraph(g, { constants: "full" }))).toEqual(g);
  });

  test("prepare / calibrate / convert: observers on the weights only, then int4 constants and float activations", () => {
    const ep = exportModel(createModel(), [exampleBatch(0)]);
    const prepared = preparePt2e(ep, new Int4WeightOnlyQuantizer());
    const observed = prepared.program.graph.nodes.filter((n) => n.op === "observer").map((n) => n.inputs[0]);
    expect(observed).toEqual(["fc1.weight", "proj.t", "fc2.weight"]);
    calibrate(prepared, [1, 2].map((i) => [exampleBatch(i)]), { progress: false });
    const converted = convertPt2e(prepared);
    const g = converted.graph;
    expect(g.nodes.map((n) => n.op)).toEqual([
      "dequantize_per_channel", "linear", "relu", "dequantize_per_channel", "linear", "relu", "dequantize_per_channel", "linear",
    ]);
    const int4 = Object.entries(g.constants).filter(([, c]) => c.tensor.dtype === "int4").map(([k]) => k);
    expect(int4).toEqual(["fc1.weight_q", "proj.t_q", "fc2.weight_q"]);
    for (const n of g.nodes.filter((x) => x.op === "dequantize_per_channel")) expect(n.attrs).toMatchObject({ dtype: "int4", quant_min: -8, quant_max: 7, axis: 0 });
    const x = exampleBatch(7);
    const [ref] = runProgram(ep, [x]);
    const [q] = runProgram(converted, [x]);
    // int4 weights: close to float, but not equal.
    expect(allClose(q!, ref!, 0, 0.05).ok).toBe(true);
    expect(allClose(q!, ref!, 0, 1e-6).ok).toBe(false);
  });

  test("per-group specs prepare and calibrate: one scale per row and group of 16", () => {
    const prepared = preparePt2e(exportModel(createModel(), [exampleBatch(0)]), new Int4WeightOnlyQuantizer({ groupSize: 16 }));
    calibrate(prepared, [[exampleBatch(1)]], { progress: false });
    const shapes = [...prepared.observers.values()].map((o) => {
      expect((o as { kind?: string }).kind).toBe("AffineQuantizedMinMaxObserver");
      return (o as { calculateQParams(): { scale: { shape: readonly number[] } } }).calculateQParams().scale.shape;
    });
    // rows x groups: 64 / 16, 32 / 16 and 16 / 16 groups per row.
    expect(shapes.map((s) => s.reduce((a, b) => a * b, 1))).toEqual([32 * 4, 16 * 2, 10 * 1]);
  });

  test("per-group convert: int4 constants per row and group of 16 behind blocked dequantize_linear nodes", () => {
    const ep = exportModel(createModel(), [exampleBatch(0)]);
    const prepared = preparePt2e(ep, new Int4WeightOnlyQuantizer({ groupSize: 16 }));
    calibrate(prepared, [[exampleBatch(1)]], { progress: false });
    const converted = convertPt2e(prepared);
    const dqs = converted.graph.nodes.filter((n) => n.op === "dequantize_linear");
    expect(dqs.map((n) => n.attrs)).toEqual([1, 2, 3].map(() => ({ axis: 1, block_size: 16 })));
    for (const n of dqs) {
      const [q, scale, zp] = n.inputs.map((v) => converted.graph.constants[v]!.tensor);
      expect(q!.dtype).toBe("int4");
      expect(zp!.dtype).toBe("int4");
      // One scale per row and group.
      expect(scale!.shape).toEqual([q!.shape[0], q!.shape[1]! / 16]);
    }
    const x = exampleBatch(7);
    const [ref] = runProgram(ep, [x]);
    const [q] = runProgram(converted, [x]);
    expect(allClose(q!, ref!, 0, 0.05).ok).toBe(true);
    // Per-group scales follow the weights more closely than one scale per row.
    const perChannel = convertPt2e((() => {
      const p = preparePt2e(ep, new Int4WeightOnlyQuantizer());
      calibrate(p, [[exampleBatch(1)]], { progress: false });
      return p;
    })());
    const [qc] = runProgram(perChannel, [x]);
    const err = (a: Float32Array) => a.reduce((s, v, i) => s + (v - (ref!.data as Float32Array)[i]!) ** 2, 0);
    expect(err(q!.data as Float32Array)).toBeLessThan(err(qc!.data as Float32Array));
  });

  test("docs/custom-quantizer-dumps.md is what dump.ts generates today", () => {
    expect(readFileSync(DOC_PATH, "utf8"), "regenerate it: npx tsx examples/custom-quantizer/dump.ts").toBe(renderDumps());
  });
});
