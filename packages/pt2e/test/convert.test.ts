/**
 * convertPt2e in the style of torch's test_quantize_pt2e.py: node counts of the converted graph, the
 * qparams it holds, numerics against the float model, and the graph dump round trip.
 */
import { describe, expect, it } from "vitest";
import { freeze } from "immer";
import {
  fromArray, getElement, GraphBuilder, parseGraph, printGraph, programFromGraph, tensorsEqual, toNumbers, verifyGraph,
  type ExportedProgram, type Graph, type Node, type Tensor,
} from "@qforge/ir";
import { runGraph, runOp, runProgram } from "@qforge/runtime";
import {
  derivedBiasSpec, edge, EmbeddingQuantizer, getSymmetricQuantizationConfig, sharedWith, XnnpackQuantizer, type QuantizationSpec,
} from "@qforge/quantizer";
import { calibrate, convertPt2e, duplicateDequantize, innerObserver, preparePt2e, runPrepared, type PreparedProgram } from "../src/index.js";
import {
  act, convLinearQuantizer, convRelu, countOps, opCount, quantizerOf, randTensor, sigmoidFixed, smallCnn, weightPerChannel, weightPerTensor,
} from "./prepare-fixtures.js";

const byName = (g: Graph, name: string): Node => {
  const n = g.nodes.find((x) => x.name === name);
  if (n === undefined) throw new Error(`no node ${name}`);
  return n;
};
const producer = (g: Graph, v: string): Node | undefined => g.nodes.find((n) => n.outputs.includes(v));
const constant = (g: Graph, v: string): Tensor => {
  const c = g.constants[v];
  if (c === undefined) throw new Error(`no constant ${v}`);
  return c.tensor;
};

function calibrated(ep: ExportedProgram, q: Parameters<typeof preparePt2e>[1], shape: number[], batches = 4): PreparedProgram {
  const p = preparePt2e(ep, q);
  calibrate(p, Array.from({ length: batches }, (_, i) => [randTensor(shape, 500 + i)]), { progress: false });
  return p;
}

const xnnpack = (opts: Parameters<typeof getSymmetricQuantizationConfig>[0] = { isPerChannel: true }) =>
  new XnnpackQuantizer().setGlobal(getSymmetricQuantizationConfig(opts));

describe("convertPt2e: the converted graph", () => {
  it("conv + relu: observers become q/dq pairs; the weight is folded to an int8 constant", () => {
    const p = calibrated(convRelu(), convLinearQuantizer(), [1, 3, 6, 6]);
    const c = convertPt2e(p);
    const g = c.graph;
    expect(countOps(g)).toEqual({
      quantize_per_tensor: 2, dequantize_per_tensor: 2, dequantize_per_channel: 1, conv: 1, relu: 1,
    });
    const conv = byName(g, "conv");
    const wdq = producer(g, conv.inputs[1]!)!;
    expect(wdq.op).toBe("dequantize_per_channel");
    const wq = constant(g, wdq.inputs[0]!);
    expect(wq.dtype).toBe("int8");
    expect(wq.shape).toEqual([4, 3, 3, 3]);
    // The folded weight is what quantize_per_channel computes from the float weight at run time.
    const w = constant(convRelu().graph, "conv.weight");
    const runtime = runOp("quantize_per_channel", [w, constant(g, wdq.inputs[1]!), constant(g, wdq.inputs[2]!)], wdq.attrs)[0]!;
    expect(tensorsEqual(wq, runtime)).toBe(true);
    expect(constant(g, wdq.inputs[1]!).dtype).toBe("float64");
    expect(constant(g, wdq.inputs[2]!).dtype).toBe("int32");
    expect(wdq.attrs).toEqual({ axis: 0, quant_min: -127, quant_max: 127, dtype: "int8" });
    // Per-tensor activation qparams are 0-d float32 / int32 constants.
    const xdq = producer(g, conv.inputs[0]!)!;
    expect(xdq.op).toBe("dequantize_per_tensor");
    expect(constant(g, xdq.inputs[1]!).shape).toEqual([]);
    expect(constant(g, xdq.inputs[1]!).dtype).toBe("float32");
    expect(constant(g, xdq.inputs[2]!).dtype).toBe("int32");
    // The float weight is gone from the program.
    expect(g.constants["conv.weight"]).toBeUndefined();
    verifyGraph(g);
  });

  it("the qparams are the observers' calculateQParams()", () => {
    const p = calibrated(convRelu(), convLinearQuantizer(), [1, 3, 6, 6]);
    const g = convertPt2e(p).graph;
    const xId = p.program.graph.nodes.find((n) => n.op === "observer" && n.inputs[0] === "x")!.attrs["id"] as string;
    const want = p.observers.get(xId)!.calculateQParams();
    const xq = byName(g, "x_q");
    expect(getElement(constant(g, xq.inputs[1]!), 0)).toBe(getElement(want.scale, 0));
    expect(getElement(constant(g, xq.inputs[2]!), 0)).toBe(getElement(want.zeroPoint, 0));
  });

  it("foldQuantize: false keeps the float weight and quantizes it at run time, with identical outputs", () => {
    const p = calibrated(convRelu(), convLinearQuantizer(), [1, 3, 6, 6]);
    const folded = convertPt2e(p);
    const unfolded = convertPt2e(p, { foldQuantize: false });
    expect(opCount(unfolded.graph, "quantize_per_channel")).toBe(1);
    expect(opCount(folded.graph, "quantize_per_channel")).toBe(0);
    expect(unfolded.graph.constants["conv.weight"]).toBeDefined();
    const x = randTensor([1, 3, 6, 6], 900);
    expect(tensorsEqual(runProgram(folded, [x])[0]!, runProgram(unfolded, [x])[0]!)).toBe(true);
  });

  it("small CNN with the XNNPACK quantizer: counts, shared qparams through max_pool/pool/flatten, outputs close to float", () => {
    const ep = smallCnn();
    const p = calibrated(ep, xnnpack(), [2, 3, 8, 8], 8);
    // x, 3 weights, relu, max_pool (shares relu's), relu_1, pool + flatten (share relu_1's), fc
    expect(opCount(p.program.graph, "observer")).toBe(10);
    expect(p.observers.size).toBe(7);
    const c = convertPt2e(p);
    const g = c.graph;
    // Activations: x, relu, max_pool, relu_1, pool, flatten, fc (shared modules still quantize at each
    // observer node, as torch's prepared graph has an observer call at each).
    expect(countOps(g)).toEqual({
      quantize_per_tensor: 7, dequantize_per_tensor: 7, dequantize_per_channel: 3,
      conv: 2, relu: 2, max_pool: 1, adaptive_avg_pool2d: 1, flatten: 1, linear: 1,
    });
    // Batch norm is folded into the first conv before annotation; the conv keeps its name and handle.
    expect(opCount(g, "batch_norm")).toBe(0);
    expect(byName(g, "conv").meta["fusedFrom"]).toEqual(["conv", "bn"]);
    expect(byName(g, "conv").meta.debugHandle).toBe(1);
    // max_pool's output quantize uses relu's scale constant: the same observer instance.
    expect(byName(g, "max_pool_q").inputs[1]).toBe(byName(g, "relu_q").inputs[1]);
    expect(byName(g, "flatten_q").inputs[1]).toBe(byName(g, "pool_q").inputs[1]);
    expect(byName(g, "pool_q").inputs[1]).toBe(byName(g, "relu_1_q").inputs[1]);

    // Numerics: the QDQ model against the float model on held-out data. Tolerance: 3% of the output
    // range per element (int8 activations, per-channel int8 weights, 4 requantized layers).
    const outScale = getElement(constant(g, byName(g, "fc_q").inputs[1]!), 0);
    let worst = 0;
    for (let s = 0; s < 4; s++) {
      const x = randTensor([2, 3, 8, 8], 700 + s);
      const want = toNumbers(runProgram(ep, [x])[0]!);
      const got = toNumbers(runProgram(c, [x])[0]!);
      want.forEach((v, i) => { worst = Math.max(worst, Math.abs(v - got[i]!)); });
    }
    expect(worst / outScale).toBeLessThan(8); // within 8 output LSB
    expect(worst).toBeLessThan(0.03 * 255 * outScale);
    expect(worst).toBeGreaterThan(0); // it is quantized
  });

  it("cat with shared qparams: both inputs and the output dequantize with one scale", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [1, 2, 4, 4]);
    const wa = b.constant("wa", randTensor([3, 2, 1, 1], 6, -2, 2), "parameter");
    const wb = b.constant("wb", randTensor([3, 2, 1, 1], 7, -0.2, 0.2), "parameter");
    const ca = b.node1("conv", [x, wa], {}, { name: "conv_a" });
    const cb = b.node1("conv", [x, wb], {}, { name: "conv_b" });
    b.output(b.node1("concat", [ca, cb], { axis: 1 }, { name: "cat" }));
    const ep = programFromGraph(b.build());
    const q = quantizerOf((ctx, gg) => {
      for (const n of gg.nodes) {
        if (n.op === "conv") ctx.annotate(n.name, { inputQSpecMap: { [n.inputs[0]!]: act, [n.inputs[1]!]: weightPerTensor }, outputQSpec: act });
        if (n.op === "concat") {
          const first = edge(n.inputs[0]!, n.name);
          ctx.annotate(n.name, { inputQSpecMap: { [n.inputs[0]!]: act, [n.inputs[1]!]: sharedWith(first) }, outputQSpec: sharedWith(first) });
        }
      }
    });
    const g = convertPt2e(calibrated(ep, q, [1, 2, 4, 4])).graph;
    const cat = byName(g, "cat");
    const scales = [...cat.inputs, g.outputs[0]!].map((v) => producer(g, v)!.inputs[1]!);
    expect(new Set(scales).size).toBe(1);
    // Two convs' outputs + the cat output; the input x is quantized once (implicit sharing).
    expect(opCount(g, "quantize_per_tensor")).toBe(4);
  });

  it("derived bias qparams: int32 bias with scale = act_scale * weight_scale[c], zero point 0", () => {
    const q = quantizerOf((ctx, gg) => {
      for (const n of gg.nodes) {
        if (n.op !== "conv") continue;
        const [xv, w, bv] = n.inputs as [string, string, string];
        ctx.annotate(n.name, {
          inputQSpecMap: { [xv]: act, [w]: weightPerChannel, [bv]: derivedBiasSpec(edge(xv, n.name), edge(w, n.name), { perChannel: true }) },
          outputQSpec: act,
        });
      }
    });
    const p = calibrated(convRelu(), q, [1, 3, 6, 6]);
    const g = convertPt2e(p).graph;
    const conv = byName(g, "conv");
    const bdq = producer(g, conv.inputs[2]!)!;
    expect(bdq.op).toBe("dequantize_per_channel");
    expect(bdq.attrs["dtype"]).toBe("int32");
    const bq = constant(g, bdq.inputs[0]!);
    expect(bq.dtype).toBe("int32");
    const bScale = toNumbers(constant(g, bdq.inputs[1]!));
    const xScale = getElement(constant(g, producer(g, conv.inputs[0]!)!.inputs[1]!), 0);
    const wScale = toNumbers(constant(g, producer(g, conv.inputs[1]!)!.inputs[1]!));
    expect(bScale).toEqual(wScale.map((s) => Math.fround(xScale * s)));
    expect(toNumbers(constant(g, bdq.inputs[2]!))).toEqual([0, 0, 0, 0]);
    const bias = toNumbers(constant(convRelu().graph, "conv.bias"));
    expect(toNumbers(bq)).toEqual(bias.map((v, i) => Math.round(Math.fround(v * Math.fround(1 / Math.fround(bScale[i]!))))));
    expect(opCount(g, "quantize_per_channel")).toBe(0);
  });

  it("fixed-qparams op: sigmoid's output is quantized with scale 1/256, zero point -128 whatever the data", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [2, 4]);
    const w = b.constant("w", randTensor([3, 4], 9), "parameter");
    const l = b.node1("linear", [x, w], {}, { name: "linear" });
    b.output(b.node1("sigmoid", [l], {}, { name: "sigmoid" }));
    const q = quantizerOf((ctx, gg) => {
      for (const n of gg.nodes) {
        if (n.op === "linear") ctx.annotate(n.name, { inputQSpecMap: { [n.inputs[0]!]: act, [n.inputs[1]!]: weightPerTensor }, outputQSpec: act });
        if (n.op === "sigmoid") ctx.annotate(n.name, { inputQSpecMap: { [n.inputs[0]!]: act }, outputQSpec: sigmoidFixed });
      }
    });
    const g = convertPt2e(calibrated(programFromGraph(b.build()), q, [2, 4])).graph;
    const sq = byName(g, "sigmoid_q");
    expect(getElement(constant(g, sq.inputs[1]!), 0)).toBe(1 / 256);
    expect(getElement(constant(g, sq.inputs[2]!), 0)).toBe(-128);
    expect(sq.attrs).toEqual({ quant_min: -128, quant_max: 127, dtype: "int8" });
  });

  it("dynamic quantization: choose_qparams_per_tensor + quantize + dequantize at run time", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [3, 8]);
    const w = b.constant("fc.weight", randTensor([5, 8], 31), "parameter");
    const bias = b.constant("fc.bias", randTensor([5], 32, -0.1, 0.1), "parameter");
    b.output(b.node1("linear", [x, w, bias], {}, { name: "fc" }));
    const ep = programFromGraph(b.build());
    const p = preparePt2e(ep, xnnpack({ isDynamic: true, isPerChannel: true }));
    const g = convertPt2e(p).graph;
    expect(countOps(g)).toEqual({
      choose_qparams_per_tensor: 1, quantize_per_tensor: 1, dequantize_per_tensor: 1, dequantize_per_channel: 1, linear: 1,
    });
    const choose = g.nodes.find((n) => n.op === "choose_qparams_per_tensor")!;
    expect(choose.inputs).toEqual(["x"]);
    expect(choose.attrs).toMatchObject({ quant_min: -128, quant_max: 127, dtype: "int8", eps: 1.1920928955078125e-7 });
    // Different inputs get different activation qparams; the outputs stay close to float.
    const run = (t: Tensor) => runGraph(g, [t], { keepAll: true }).values!;
    const small = randTensor([3, 8], 33, -0.1, 0.1);
    const large = randTensor([3, 8], 34, -10, 10);
    expect(getElement(run(small).get(choose.outputs[0]!)!, 0)).not.toBe(getElement(run(large).get(choose.outputs[0]!)!, 0));
    const want = toNumbers(runProgram(ep, [large])[0]!);
    const got = toNumbers(runProgram({ ...ep, graph: g }, [large])[0]!);
    // Tolerance: 2% of the largest output (int8 activations over [-10, 10], int8 per-channel weights).
    const maxAbs = Math.max(...want.map(Math.abs));
    want.forEach((v, i) => expect(Math.abs(v - got[i]!)).toBeLessThan(0.02 * maxAbs));
  });

  it("embedding tables: per-row uint8 with float zero points (EmbeddingQuantizer)", () => {
    const b = new GraphBuilder();
    const ids = b.input("ids", "int64", [4]);
    const table = b.constant("emb.weight", randTensor([6, 5], 41, -1, 1), "parameter");
    b.output(b.node1("gather", [table, ids], { axis: 0 }, { name: "embedding" }));
    const ep = programFromGraph(b.build());
    const p = preparePt2e(ep, new EmbeddingQuantizer());
    calibrate(p, [[fromArray("int64", [4], [0, 1, 2, 3])]], { progress: false });
    const g = convertPt2e(p).graph;
    const dq = producer(g, byName(g, "embedding").inputs[0]!)!;
    expect(dq.op).toBe("dequantize_per_channel");
    expect(constant(g, dq.inputs[2]!).dtype).toBe("float32");
    expect(constant(g, dq.inputs[0]!).dtype).toBe("uint8");
    const idsT = fromArray("int64", [4], [5, 0, 3, 3]);
    const want = toNumbers(runProgram(ep, [idsT])[0]!);
    const got = toNumbers(runProgram({ ...ep, graph: g }, [idsT])[0]!);
    // Per row: round(x / s) + zp is truncated by the decomposed op's cast, so up to 1.5 steps.
    const rowScale = toNumbers(constant(g, dq.inputs[1]!));
    want.forEach((v, i) => {
      const row = [5, 0, 3, 3][Math.floor(i / 5)]!;
      expect(Math.abs(v - got[i]!)).toBeLessThanOrEqual(1.5 * rowScale[row]! + 1e-6);
    });
  });

  it("duplicates a dequantize read by several nodes (DuplicateDQPass): one dequantize per reader", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [1, 2, 3, 3]);
    const w = b.constant("w", randTensor([2, 2, 1, 1], 51), "parameter");
    const c = b.node1("conv", [x, w], {}, { name: "conv" });
    const r = b.node1("relu", [c], {}, { name: "relu" });
    const s = b.node1("sigmoid", [c], {}, { name: "sig" });
    b.output(r, s, c);
    const ep = programFromGraph(b.build());
    const q = quantizerOf((ctx, gg) => {
      for (const n of gg.nodes) {
        if (n.op === "conv") ctx.annotate(n.name, { inputQSpecMap: { [n.inputs[0]!]: act, [n.inputs[1]!]: weightPerTensor }, outputQSpec: act });
      }
    });
    const g = convertPt2e(calibrated(ep, q, [1, 2, 3, 3])).graph;
    const convDqs = g.nodes.filter((n) => n.op === "dequantize_per_tensor" && n.inputs[0] === "conv_q");
    expect(convDqs).toHaveLength(3); // relu, sigmoid, graph output
    const readers = [byName(g, "relu").inputs[0], byName(g, "sig").inputs[0], g.outputs[2]];
    expect(new Set(readers).size).toBe(3);
    expect(new Set(readers)).toEqual(new Set(convDqs.map((n) => n.outputs[0])));
    expect(opCount(g, "quantize_per_tensor")).toBe(2);
    // duplicateDequantize is a no-op on its own output.
    expect(duplicateDequantize(g)).toBe(g);
  });
});

describe("convertPt2e: programs", () => {
  it("never mutates the prepared program nor its observers", () => {
    const p = calibrated(smallCnn(), xnnpack(), [2, 3, 8, 8]);
    const frozen: PreparedProgram = { ...p, program: freeze(p.program, true) };
    const before = printGraph(p.program.graph, { constants: "full" });
    const states = JSON.stringify([...p.observers.values()].map((o) => innerObserver(o).state()));
    const c1 = convertPt2e(frozen);
    expect(printGraph(p.program.graph, { constants: "full" })).toBe(before);
    expect(JSON.stringify([...p.observers.values()].map((o) => innerObserver(o).state()))).toBe(states);
    // Converting twice gives the same program.
    expect(printGraph(convertPt2e(p).graph, { constants: "full" })).toBe(printGraph(c1.graph, { constants: "full" }));
    // The prepared program still runs (observers intact).
    expect(runPrepared(p, [randTensor([2, 3, 8, 8], 1)])).toHaveLength(1);
  });

  it("the converted graph prints and parses back to an equal graph that computes the same outputs", () => {
    const c = convertPt2e(calibrated(smallCnn(), xnnpack(), [2, 3, 8, 8]));
    const text = printGraph(c.graph, { constants: "full" });
    const parsed = parseGraph(text);
    expect(printGraph(parsed, { constants: "full" })).toBe(text);
    expect(parsed.nodes.map((n) => [n.name, n.op, n.inputs, n.outputs, n.attrs, n.meta])).toEqual(c.graph.nodes.map((n) => [n.name, n.op, [...n.inputs], [...n.outputs], { ...n.attrs }, n.meta]));
    for (const [k, v] of Object.entries(c.graph.constants)) expect(tensorsEqual(parsed.constants[k]!.tensor, v.tensor)).toBe(true);
    verifyGraph(parsed);
    const x = randTensor([2, 3, 8, 8], 3);
    expect(tensorsEqual(runGraph(parsed, [x]).outputs[0]!, runProgram(c, [x])[0]!)).toBe(true);
  });

  it("keeps debug handles: q/dq of an output observer carry the observed node's handle", () => {
    const c = convertPt2e(calibrated(convRelu(), convLinearQuantizer(), [1, 3, 6, 6]));
    const g = c.graph;
    expect(byName(g, "conv").meta.debugHandle).toBe(1);
    expect(byName(g, "conv_q").meta.debugHandle).toBe(1);
    expect(byName(g, "conv_dq").meta.debugHandle).toBe(1);
    expect(byName(g, "relu").meta.debugHandle).toBe(2);
    expect(byName(g, "x_q").meta.debugHandle).toBeUndefined();
  });

  it("reports observers that saw no data (scale 1, zero point 0, as torch); weight observers observe their constants", () => {
    const p = preparePt2e(convRelu(), convLinearQuantizer());
    const c = convertPt2e(p);
    const meta = c.meta["pt2e"] as { uncalibratedObservers: string[]; observedAtConvert: string[] };
    expect(meta.uncalibratedObservers).toHaveLength(2);
    expect(meta.observedAtConvert).toHaveLength(1);
    // The weight's qparams are the ones calibration would have given, and its module is untouched.
    const wId = meta.observedAtConvert[0]!;
    expect((p.observers.get(wId) as unknown as { initialized: boolean }).initialized).toBe(false);
    const cal = calibrated(convRelu(), convLinearQuantizer(), [1, 3, 6, 6]);
    const wdq = (g: Graph) => producer(g, byName(g, "conv").inputs[1]!)!;
    expect(toNumbers(constant(c.graph, wdq(c.graph).inputs[1]!))).toEqual(toNumbers(constant(convertPt2e(cal).graph, wdq(convertPt2e(cal).graph).inputs[1]!)));
    expect(getElement(constant(c.graph, byName(c.graph, "x_q").inputs[1]!), 0)).toBe(1);
    const ok = convertPt2e(calibrated(convRelu(), convLinearQuantizer(), [1, 3, 6, 6]));
    expect((ok.meta["pt2e"] as { uncalibratedObservers: string[] }).uncalibratedObservers).toEqual([]);
    expect(ok.meta["model"]).toBe("convRelu");
  });

  it("a float16 spec becomes a cast round trip; a float32 spec just drops its observer", () => {
    const half = { kind: "spec" as const, dtype: "float16" as const, qscheme: "per_tensor_affine" as const, observerOrFakeQuant: { kind: "PlaceholderObserver" as const, options: { dtype: "float16" } } };
    const full = { ...half, dtype: "float32" as const, observerOrFakeQuant: { kind: "PlaceholderObserver" as const, options: { dtype: "float32" } } };
    const q = quantizerOf((ctx, gg) => {
      const conv = gg.nodes.find((n) => n.op === "conv")!;
      ctx.annotate(conv.name, { inputQSpecMap: { [conv.inputs[0]!]: half, [conv.inputs[2]!]: full } });
    });
    const p = preparePt2e(convRelu(), q);
    expect(opCount(p.program.graph, "observer")).toBe(2);
    const g = convertPt2e(p).graph;
    expect(countOps(g)).toEqual({ cast: 2, conv: 1, relu: 1 });
    expect(byName(g, "conv").inputs[2]).toBe("conv.bias");
    const x = fromArray("float32", [1, 3, 6, 6], new Array(108).fill(0.1));
    const cast = runGraph(g, [x], { keepAll: true }).values!.get(byName(g, "conv").inputs[0]!)!;
    expect(getElement(cast, 0)).toBe(Math.fround(0.0999755859375));
  });

  it("a converted program with a per-tensor quantized bias scale keeps quantize_per_tensor for runtime inputs", () => {
    const q = quantizerOf((ctx, gg) => {
      for (const n of gg.nodes) {
        if (n.op !== "conv") continue;
        const [xv, w, bv] = n.inputs as [string, string, string];
        ctx.annotate(n.name, {
          inputQSpecMap: { [xv]: act, [w]: weightPerTensor, [bv]: derivedBiasSpec(edge(xv, n.name), edge(w, n.name), { perChannel: false }) },
        });
      }
    });
    const g = convertPt2e(calibrated(convRelu(), q, [1, 3, 6, 6]), { foldQuantize: false }).graph;
    const bq = byName(g, "conv.bias_q");
    expect(bq.op).toBe("quantize_per_tensor");
    expect(bq.attrs["dtype"]).toBe("int32");
    expect(constant(g, bq.inputs[1]!).shape).toEqual([]);
    expect(constant(g, bq.inputs[1]!).dtype).toBe("float32");
  });
});

describe("convertPt2e: per-group (blockSize) weights", () => {
  /** int4 symmetric groups along one axis of the weight, through torchao's affine observer. */
  const groupSpec = (blockSize: number[], groupSize: number): QuantizationSpec => ({
    kind: "spec", dtype: "int4", quantMin: -8, quantMax: 7, qscheme: "per_channel_symmetric", chAxis: 0, blockSize,
    observerOrFakeQuant: {
      kind: "AffineQuantizedMinMaxObserver",
      options: { mappingType: "symmetric", targetDtype: "int4", granularity: { kind: "per_group", groupSize }, quantMin: -8, quantMax: 7 },
    },
  });
  const conv = (spec: QuantizationSpec, on: "weight" | "input") => quantizerOf((ctx, g) => {
    const n = g.nodes.find((x) => x.op === "conv")!;
    ctx.annotate(n.name, { inputQSpecMap: { [n.inputs[on === "weight" ? 1 : 0]!]: spec } });
  });

  it("folds the weight into int4 integers behind one blocked dequantize_linear that reproduces torchao's dequantize", () => {
    // conv weight [4, 3, 3, 3]: groups of 3 along the last axis (torchao's per_group granularity).
    const spec = groupSpec([1, 1, 1, 3], 3);
    const ep = convRelu();
    const conv1 = convertPt2e(calibrated(ep, conv(spec, "weight"), [1, 3, 6, 6], 1));
    const dq = conv1.graph.nodes.filter((n) => n.op === "dequantize_linear");
    expect(dq).toHaveLength(1);
    expect(dq[0]!.attrs).toEqual({ axis: 3, block_size: 3 });
    const [q, scale, zp] = dq[0]!.inputs.map((v) => constant(conv1.graph, v));
    expect([q!.dtype, zp!.dtype, scale!.dtype]).toEqual(["int4", "int4", "float32"]);
    expect(scale!.shape).toEqual([4, 3, 3, 1]);
    // Every integer lies in range and the dequantized weight is within half a step of the float one.
    const w = toNumbers(constant(ep.graph, "conv.weight"));
    const [deq] = runOp("dequantize_linear", [q!, scale!, zp!], { axis: 3, block_size: 3 });
    const d = toNumbers(deq!);
    const qs = toNumbers(q!);
    const sc = toNumbers(scale!);
    for (let i = 0; i < w.length; i++) {
      expect(qs[i]).toBeGreaterThanOrEqual(-8);
      expect(qs[i]).toBeLessThanOrEqual(7);
      const block = Math.floor(i / 3); // [o, c, kh, kw] -> [o, c, kh, 0]
      expect(Math.abs(d[i]! - w[i]!)).toBeLessThanOrEqual(sc[block]! / 2 + 1e-7);
    }
  });

  it("refuses a block size that splits two axes, blocks the observer does not make, and per-group activations", () => {
    const ep = convRelu();
    expect(() => convertPt2e(calibrated(ep, conv(groupSpec([1, 3, 1, 1], 3), "weight"), [1, 3, 6, 6], 1))).toThrow(/differ from the spec's blockSize/);
    expect(() => convertPt2e(calibrated(ep, conv(groupSpec([2, 3, 1, 1], 3), "weight"), [1, 3, 6, 6], 1))).toThrow(/splits 2 axes/);
    let err: unknown;
    try {
      convertPt2e(calibrated(ep, conv(groupSpec([1, 1, 1, 3], 3), "input"), [1, 3, 6, 6], 1));
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: "UNSUPPORTED" });
    expect(String((err as Error).message)).toMatch(/activation 'x'/);
  });
});
