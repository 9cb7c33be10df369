/**
 * prepareQatPt2e: fake-quant insertion, the simulated conv + batch-norm fusion (qat_utils.py) and
 * its fold at convert, train/eval switching — in the style of torch's test_quantize_pt2e_qat.py.
 */
import { describe, expect, it } from "vitest";
import { freeze } from "immer";
import {
  getElement, GraphBuilder, printGraph, programFromGraph, toFloat64, toNumbers, verifyGraph,
  type ExportedProgram, type Graph, type Node, type Tensor,
} from "@qforge/ir";
import { runProgram } from "@qforge/runtime";
import { FixedQParamsFakeQuantize, FusedMovingAvgObsFakeQuantize } from "@qforge/quant";
import { getSymmetricQuantizationConfig, XnnpackQuantizer } from "@qforge/quantizer";
import {
  convertPt2e, moveExportedModelToEval, moveExportedModelToTrain, prepareQatPt2e, runPrepared, setFakeQuantEnabled,
  setObserverEnabled, QAT_CONV_BN_KEY, type PreparedProgram,
} from "../src/index.js";
import { act, countOps, opCount, quantizerOf, randTensor, sigmoidFixed, smallCnn } from "./prepare-fixtures.js";

const qatQuantizer = (isPerChannel = true) =>
  new XnnpackQuantizer().setGlobal(getSymmetricQuantizationConfig({ isPerChannel, isQat: true }));

const byName = (g: Graph, name: string): Node => {
  const n = g.nodes.find((x) => x.name === name);
  if (n === undefined) throw new Error(`no node ${name}`);
  return n;
};
const producer = (g: Graph, v: string): Node | undefined => g.nodes.find((n) => n.outputs.includes(v));

function maxAbsDiff(a: Tensor, b: Tensor): number {
  const x = toFloat64(a);
  const y = toFloat64(b);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
}

/** Trains the fake-quant modules on a few batches (observers on, fake-quant on). */
function train(p: PreparedProgram, steps = 4): void {
  for (let i = 0; i < steps; i++) runPrepared(p, [randTensor([2, 3, 8, 8], 300 + i)]);
}

describe("prepareQatPt2e", () => {
  it("inserts fake_quantize nodes (no observers) and keeps batch norm with the simulated fusion", () => {
    const p = prepareQatPt2e(smallCnn(), qatQuantizer());
    const g = p.program.graph;
    expect(opCount(g, "observer")).toBe(0);
    // x, 3 weights, bn -> relu output, max_pool, relu_1, pool, flatten, fc: as the PTQ graph.
    expect(opCount(g, "fake_quantize")).toBe(10);
    expect(p.observers.size).toBe(7);
    expect(opCount(g, "batch_norm")).toBe(1);
    const conv = byName(g, "conv");
    expect(conv.meta[QAT_CONV_BN_KEY]).toBeDefined();
    // conv(x, fq(w * scale_factor), zero_bias) -> div -> add(bias) -> batch_norm
    const wfq = producer(g, conv.inputs[1]!)!;
    expect(wfq.op).toBe("fake_quantize");
    const scaled = producer(g, wfq.inputs[0]!)!;
    expect(scaled.op).toBe("mul");
    expect(scaled.inputs[0]).toBe("features.0.weight");
    expect(toNumbers(g.constants[conv.inputs[2]!]!.tensor)).toEqual(new Array(8).fill(0));
    const bn = byName(g, "bn");
    const add = producer(g, bn.inputs[0]!)!;
    expect(add.op).toBe("add");
    expect(producer(g, add.inputs[0]!)!.op).toBe("div");
    expect(producer(g, producer(g, add.inputs[0]!)!.inputs[0]!)!.name).toBe("conv");
    // The weight fake-quant is a FusedMovingAvgObsFakeQuantize over per-channel statistics.
    expect(p.observers.get(wfq.attrs["id"] as string)).toBeInstanceOf(FusedMovingAvgObsFakeQuantize);
    verifyGraph(g);
  });

  it("with fake-quant disabled the QAT graph computes the float model (1e-5), in eval and in train mode", () => {
    const ep = smallCnn();
    const p = prepareQatPt2e(ep, qatQuantizer());
    setFakeQuantEnabled(p, false);
    for (let i = 0; i < 3; i++) {
      const x = randTensor([2, 3, 8, 8], 100 + i);
      expect(maxAbsDiff(runPrepared(p, [x])[0]!, runProgram(ep, [x])[0]!)).toBeLessThan(1e-5);
    }
    const pt = moveExportedModelToTrain(p);
    const ept = moveExportedModelToTrain(ep);
    expect(byName(pt.program.graph, "bn").attrs["training_mode"]).toBe(1);
    const x = randTensor([2, 3, 8, 8], 110);
    // Train mode normalizes with batch statistics: conv(x, w * s) / s + b has the float conv's statistics.
    const trainOut = runPrepared(pt, [x])[0]!;
    expect(maxAbsDiff(trainOut, runProgram(ept, [x])[0]!)).toBeLessThan(1e-5);
    expect(maxAbsDiff(trainOut, runProgram(ep, [x])[0]!)).toBeGreaterThan(1e-3);
  });

  it("with fake-quant enabled the outputs move, and observers follow the data", () => {
    const ep = smallCnn();
    const p = prepareQatPt2e(ep, qatQuantizer());
    const x = randTensor([2, 3, 8, 8], 120);
    const out = runPrepared(p, [x])[0]!;
    const diff = maxAbsDiff(out, runProgram(ep, [x])[0]!);
    expect(diff).toBeGreaterThan(0);
    expect(diff).toBeLessThan(0.1);
    // Disabling the observers freezes the qparams: the same input gives the same output twice.
    setObserverEnabled(p, false);
    const a = runPrepared(p, [randTensor([2, 3, 8, 8], 121)])[0]!;
    const b = runPrepared(p, [randTensor([2, 3, 8, 8], 121)])[0]!;
    expect(maxAbsDiff(a, b)).toBe(0);
  });

  it("fixed-qparams specs get a FixedQParamsFakeQuantize", () => {
    const qatAct = {
      ...act,
      observerOrFakeQuant: { kind: "FakeQuantize" as const, observer: { kind: "MovingAverageMinMaxObserver" as const, options: { eps: 2 ** -12 } } },
    };
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [2, 4]);
    const s = b.node1("sigmoid", [x], {}, { name: "sigmoid" });
    b.output(s);
    const p = prepareQatPt2e(programFromGraph(b.build()), quantizerOf((ctx, g) => {
      const n = g.nodes[0]!;
      ctx.annotate(n.name, { inputQSpecMap: { x: qatAct }, outputQSpec: sigmoidFixed });
    }));
    const fqs = p.program.graph.nodes.filter((n) => n.op === "fake_quantize");
    expect(fqs).toHaveLength(2);
    const m = p.observers.get(fqs[1]!.attrs["id"] as string)!;
    expect(m).toBeInstanceOf(FixedQParamsFakeQuantize);
    expect(getElement((m as FixedQParamsFakeQuantize).scale, 0)).toBe(Math.fround(1 / 256));
    // Fake-quantized with 1/256 steps: every output is a multiple of 1/256.
    const out = toNumbers(runPrepared(p, [randTensor([2, 4], 5, -3, 3)])[0]!);
    out.forEach((v) => expect(Number.isInteger(v * 256)).toBe(true));
  });

  it("never mutates its input program", () => {
    const ep: ExportedProgram = freeze(smallCnn(), true);
    const before = printGraph(ep.graph, { constants: "full" });
    prepareQatPt2e(ep, qatQuantizer());
    expect(printGraph(ep.graph, { constants: "full" })).toBe(before);
  });

  it("moveExportedModelToEval / ToTrain switch batch norms only, and return new programs", () => {
    const ep = smallCnn();
    const t = moveExportedModelToTrain(ep);
    expect(t).not.toBe(ep);
    expect(byName(t.graph, "bn").attrs["training_mode"]).toBe(1);
    expect(byName(ep.graph, "bn").attrs["training_mode"]).toBe(0);
    const e = moveExportedModelToEval(t);
    expect(byName(e.graph, "bn").attrs["training_mode"]).toBe(0);
    expect(moveExportedModelToEval(e)).toBe(e);
    expect(countOps(e.graph)).toEqual(countOps(ep.graph));
  });
});

describe("convertPt2e after QAT", () => {
  it("folds the simulated fusion into one conv: no batch norm, no helper nodes, folded int8 weight", () => {
    const ep = smallCnn();
    const p = prepareQatPt2e(ep, qatQuantizer());
    train(p);
    const c = convertPt2e(moveExportedModelToEval(p));
    const g = c.graph;
    expect(countOps(g)).toEqual({
      quantize_per_tensor: 7, dequantize_per_tensor: 7, dequantize_per_channel: 3,
      conv: 2, relu: 2, max_pool: 1, adaptive_avg_pool2d: 1, flatten: 1, linear: 1,
    });
    const conv = byName(g, "conv");
    expect(conv.meta[QAT_CONV_BN_KEY]).toBeUndefined();
    expect(conv.meta["fusedFrom"]).toEqual(["conv", "bn"]);
    // Folded weight: w * gamma / sqrt(var + eps) (float32, as the QAT graph computed it), quantized with
    // the weight fake-quant's per-channel qparams.
    const wdq = producer(g, conv.inputs[1]!)!;
    const scales = toNumbers(g.constants[wdq.inputs[1]!]!.tensor);
    const wq = toNumbers(g.constants[wdq.inputs[0]!]!.tensor);
    const sd = ep.graph.constants;
    const w = toNumbers(sd["features.0.weight"]!.tensor);
    const gamma = toNumbers(sd["features.1.weight"]!.tensor);
    const variance = toNumbers(sd["features.1.running_var"]!.tensor);
    w.forEach((v, i) => {
      const ch = Math.floor(i / 27);
      const folded = v * gamma[ch]! / Math.sqrt(variance[ch]! + 1e-5);
      expect(Math.abs(wq[i]! * scales[ch]! - folded)).toBeLessThanOrEqual(scales[ch]! / 2 + 1e-6);
    });
    // Folded bias: (b - mean) * gamma / sqrt(var + eps) + beta, in float.
    const b = toNumbers(sd["features.0.bias"]!.tensor);
    const mean = toNumbers(sd["features.1.running_mean"]!.tensor);
    const beta = toNumbers(sd["features.1.bias"]!.tensor);
    const bias = toNumbers(g.constants[conv.inputs[2]!]!.tensor);
    bias.forEach((v, ch) => expect(v).toBeCloseTo((b[ch]! - mean[ch]!) * gamma[ch]! / Math.sqrt(variance[ch]! + 1e-5) + beta[ch]!, 6));
    verifyGraph(g);
  });

  it("the converted QAT model stays close to the float model and to the fake-quantized QAT model", () => {
    const ep = smallCnn();
    const p = prepareQatPt2e(ep, qatQuantizer());
    train(p, 8);
    const c = convertPt2e(p);
    setObserverEnabled(p, false);
    const outScale = getElement(c.graph.constants[byName(c.graph, "fc_q").inputs[1]!]!.tensor, 0);
    for (let i = 0; i < 3; i++) {
      const x = randTensor([2, 3, 8, 8], 400 + i);
      const conv = runProgram(c, [x])[0]!;
      // Fake-quant (ATen's ChooseQuantizationParams) and convert (the observer formula) pick slightly
      // different qparams, as in torch: within 3 output LSB of the fake-quantized model.
      expect(maxAbsDiff(conv, runPrepared(p, [x])[0]!) / outScale).toBeLessThan(3);
      // Against float: moving-average ranges from 8 batches clip some held-out values; 12 output LSB.
      expect(maxAbsDiff(conv, runProgram(ep, [x])[0]!) / outScale).toBeLessThan(12);
    }
  });

  it("a conv + batch norm whose conv output is also read elsewhere is not fused", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [1, 2, 4, 4]);
    const w = b.constant("w", randTensor([2, 2, 1, 1], 1), "parameter");
    const g1 = b.constant("g", randTensor([2], 2, 0.5, 1), "parameter");
    const be = b.constant("be", randTensor([2], 3), "parameter");
    const m = b.constant("m", randTensor([2], 4), "buffer");
    const v = b.constant("v", randTensor([2], 5, 0.5, 1), "buffer");
    const c = b.node1("conv", [x, w], {}, { name: "conv" });
    const bn = b.node1("batch_norm", [c, g1, be, m, v], {}, { name: "bn" });
    b.output(b.node1("add", [bn, c], {}, { name: "add" }));
    const p = prepareQatPt2e(programFromGraph(b.build()), qatQuantizer());
    expect(opCount(p.program.graph, "mul")).toBe(0);
    expect(byName(p.program.graph, "conv").meta[QAT_CONV_BN_KEY]).toBeUndefined();
    // Without bias: the fused pattern has no zero bias and the fold adds the folded bias.
    const b2 = new GraphBuilder();
    const x2 = b2.input("x", "float32", [1, 2, 4, 4]);
    const w2 = b2.constant("w", randTensor([2, 2, 1, 1], 1), "parameter");
    const consts = ["g", "be", "m", "v"].map((n, i) => b2.constant(n, randTensor([2], 10 + i, 0.5, 1), "parameter"));
    const c2 = b2.node1("conv", [x2, w2], {}, { name: "conv" });
    b2.output(b2.node1("batch_norm", [c2, ...consts], {}, { name: "bn" }));
    const ep2 = programFromGraph(b2.build());
    const p2 = prepareQatPt2e(ep2, qatQuantizer());
    expect(byName(p2.program.graph, "conv").inputs).toHaveLength(2);
    setFakeQuantEnabled(p2, false);
    const xin = randTensor([1, 2, 4, 4], 7);
    expect(maxAbsDiff(runPrepared(p2, [xin])[0]!, runProgram(ep2, [xin])[0]!)).toBeLessThan(1e-5);
    setFakeQuantEnabled(p2, true);
    runPrepared(p2, [xin]);
    const g = convertPt2e(p2).graph;
    expect(byName(g, "conv").inputs).toHaveLength(3);
    expect(opCount(g, "batch_norm")).toBe(0);
  });
});
