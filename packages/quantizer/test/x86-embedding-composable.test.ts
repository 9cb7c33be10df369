import { describe, expect, test } from "vitest";
import { GraphBuilder, tensor, type Graph } from "@qforge/ir";
import { createObserver, type ObserverKind } from "@qforge/quant";
import {
  annotateGraph, ComposableQuantizer, edge, EmbeddingQuantizer, getAnnotation, getDefaultX86InductorQuantizationConfig, getEmbeddingQuantizationConfig,
  getSymmetricQuantizationConfig, sharedWith, validateAnnotations, X86InductorQuantizer, XnnpackQuantizer,
  type ObserverSpec, type Quantizer,
} from "@qforge/quantizer";
import { convBnProgram, embedProgram, netProgram, nodeNamed } from "./models.js";

const EPS = 2 ** -12;
const ann = (g: Graph, name: string) => getAnnotation(nodeNamed(g, name));
const claimed = { inputQSpecMap: {}, allowImplicitSharing: true, annotated: true };

describe("X86InductorQuantizer", () => {
  const cfg = getDefaultX86InductorQuantizationConfig();
  const act = cfg.inputActivation!;
  const w = cfg.weight!;

  test("default config: uint8 0..255 HistogramObserver activations, int8 -128..127 per-channel weights", () => {
    expect(act).toEqual({
      kind: "spec", dtype: "uint8", quantMin: 0, quantMax: 255, qscheme: "per_tensor_affine", isDynamic: false,
      observerOrFakeQuant: { kind: "HistogramObserver", options: { dtype: "uint8", qscheme: "per_tensor_affine", quantMin: 0, quantMax: 255, eps: EPS } },
    });
    expect(w).toEqual({
      kind: "spec", dtype: "int8", quantMin: -128, quantMax: 127, qscheme: "per_channel_symmetric", chAxis: 0, isDynamic: false,
      observerOrFakeQuant: {
        kind: "PerChannelMinMaxObserver", options: { dtype: "int8", qscheme: "per_channel_symmetric", quantMin: -128, quantMax: 127, chAxis: 0, eps: EPS },
      },
    });
    expect(cfg.outputActivation).toEqual(act);
    expect(cfg.bias).toBeNull();
    for (const s of [act, w]) {
      const o = s.observerOrFakeQuant as ObserverSpec;
      expect(createObserver(o.kind as ObserverKind, o.options as never).kind).toBe(o.kind);
    }
  });

  test("reduceRange gives 0..127 activations; QAT and dynamic pick torch's fake-quant / placeholder", () => {
    expect(getDefaultX86InductorQuantizationConfig({ reduceRange: true }).inputActivation).toMatchObject({ quantMin: 0, quantMax: 127 });
    const qat = getDefaultX86InductorQuantizationConfig({ isQat: true });
    expect(qat.weight!.observerOrFakeQuant).toMatchObject({ kind: "FusedMovingAvgObsFakeQuantize", observer: { kind: "MovingAveragePerChannelMinMaxObserver" } });
    expect(qat.inputActivation!.observerOrFakeQuant).toMatchObject({ kind: "FusedMovingAvgObsFakeQuantize", observer: { kind: "MovingAverageMinMaxObserver" } });
    expect(getDefaultX86InductorQuantizationConfig({ isDynamic: true }).inputActivation!.observerOrFakeQuant).toMatchObject({ kind: "PlaceholderObserver" });
  });

  test("conv/linear patterns quantize their inputs; the pattern end stays float until a quantized consumer", () => {
    const g = new X86InductorQuantizer().setGlobal(cfg).annotate(netProgram().graph);
    expect(ann(g, "conv")).toEqual({ inputQSpecMap: { x: act, "stem.0.weight": w, "stem.0.bias": null }, allowImplicitSharing: true, annotated: true });
    expect(ann(g, "relu")).toEqual(claimed);
    expect(ann(g, "clip")).toEqual(claimed);
    // conv + add + relu: the add's other input is quantized, the relu ends the pattern.
    expect(ann(g, "add")).toEqual({ inputQSpecMap: { max_pool_1: act }, allowImplicitSharing: true, annotated: true });
    expect(ann(g, "relu_1")).toEqual(claimed);
    expect(ann(g, "linear")!.inputQSpecMap).toEqual({ flatten: act, "head.2.weight": w, "head.2.bias": null });
    expect(ann(g, "relu_2")).toEqual(claimed);
    expect(() => validateAnnotations(g)).not.toThrow();
  });

  test("max_pool after a quantized pattern is int8 in, int8 out (output shares the input edge)", () => {
    const g = new X86InductorQuantizer().setGlobal(cfg).annotate(netProgram().graph);
    expect(ann(g, "max_pool")).toEqual({ inputQSpecMap: { relu: act }, outputQSpec: sharedWith(edge("relu", "max_pool")), allowImplicitSharing: true, annotated: true });
    // mul is not an X86 pattern, so the concat (one float input) and what follows stay float.
    for (const name of ["mul", "concat", "adaptive_avg_pool2d", "flatten", "hardswish", "sigmoid"]) expect(ann(g, name)).toBeUndefined();
  });

  test("concat of quantized patterns shares input 0's qparams", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [1, 2, 3, 3]);
    const wt = b.constant("w", tensor("float32", [2, 2, 1, 1], Float32Array.of(1, 0, 0, 1)), "parameter");
    const conv = { strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1], group: 1 };
    const c1 = b.node1("conv", [x, wt], conv, { name: "c1" });
    const c2 = b.node1("conv", [x, wt], conv, { name: "c2" });
    const cat = b.node1("concat", [c1, c2], { axis: 1 }, { name: "cat" });
    b.output(cat);
    const g = new X86InductorQuantizer().setGlobal(cfg).annotate(b.build());
    const shared = sharedWith(edge("c1", "cat"));
    expect(ann(g, "cat")).toEqual({ inputQSpecMap: { c1: act, c2: shared }, outputQSpec: shared, allowImplicitSharing: true, annotated: true });
  });

  test("matmul is only quantized when a module-name or operator-type config asks for it", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [2, 3]);
    const y = b.input("y", "float32", [3, 2]);
    b.output(b.node1("matmul", [x, y], {}, { name: "mm" }));
    const g = b.build();
    expect(ann(new X86InductorQuantizer().setGlobal(cfg).annotate(g), "mm")).toBeUndefined();
    expect(ann(new X86InductorQuantizer().setGlobal(cfg).setOperatorType("matmul", cfg).annotate(g), "mm")).toEqual({
      inputQSpecMap: { x: act, y: act }, allowImplicitSharing: true, annotated: true,
    });
  });

  test("a null config claims its scope as float, so no later stage quantizes it", () => {
    const g = new X86InductorQuantizer().setGlobal(cfg).setModuleName("body", null).annotate(netProgram().graph);
    for (const name of ["conv_1", "clip", "max_pool_1"]) expect(ann(g, name)).toEqual(claimed);
    expect(ann(g, "conv")!.inputQSpecMap["x"]).toEqual(act);
  });

  test("QAT: conv -> batch_norm -> relu with an output spec on the relu", () => {
    const qat = getDefaultX86InductorQuantizationConfig({ isQat: true });
    const g = new X86InductorQuantizer().setGlobal(qat).annotate(convBnProgram().graph);
    expect(ann(g, "conv")!.inputQSpecMap).toEqual({ x: qat.inputActivation, "0.conv.weight": qat.weight });
    expect(ann(g, "batch_norm")).toEqual(claimed);
    expect(ann(g, "relu")!.outputQSpec).toEqual(qat.outputActivation);
  });

  test("mixing QAT with non-QAT configs (or static with dynamic) is refused", () => {
    const q = new X86InductorQuantizer().setGlobal(cfg).setModuleName("body", getDefaultX86InductorQuantizationConfig({ isQat: true }));
    expect(() => q.annotate(netProgram().graph)).toThrow(/mixed QAT and non-QAT/);
    const d = new X86InductorQuantizer().setGlobal(cfg).setModuleName("body", getDefaultX86InductorQuantizationConfig({ isDynamic: true }));
    expect(() => d.annotate(netProgram().graph)).toThrow(/mixed dynamic and static/);
  });

  test("dynamic: linear inputs only", () => {
    const dyn = getDefaultX86InductorQuantizationConfig({ isDynamic: true });
    const g = new X86InductorQuantizer().setGlobal(dyn).annotate(netProgram().graph);
    expect(g.nodes.filter((n) => getAnnotation(n) !== undefined).map((n) => n.name)).toEqual(["linear", "linear_1"]);
    expect(ann(g, "linear")!.inputQSpecMap["flatten"]).toEqual(dyn.inputActivation);
  });
});

describe("EmbeddingQuantizer", () => {
  test("annotates the table of an embedding lookup with torch's uint8 float-qparams per-row spec", () => {
    const g = new EmbeddingQuantizer().annotate(embedProgram().graph);
    const spec = getEmbeddingQuantizationConfig().weight!;
    expect(spec).toEqual({
      kind: "spec", dtype: "uint8", qscheme: "per_channel_affine_float_qparams", chAxis: 0,
      observerOrFakeQuant: { kind: "PerChannelMinMaxObserver", options: { dtype: "uint8", qscheme: "per_channel_affine_float_qparams", chAxis: 0, eps: EPS } },
    });
    expect(ann(g, "gather")).toEqual({ inputQSpecMap: { "emb.weight": spec }, allowImplicitSharing: true, annotated: true });
    expect(ann(g, "linear")).toBeUndefined();
    const o = spec.observerOrFakeQuant as ObserverSpec;
    const obs = createObserver(o.kind as ObserverKind, o.options as never);
    obs.observe(tensor("float32", [2, 2], Float32Array.of(0, 1, -2, 2)));
    expect(obs.calculateQParams().scale.shape).toEqual([2]);
    expect(() => new EmbeddingQuantizer().validate(g)).not.toThrow();
  });

  test("a gather from a non-constant table is left alone", () => {
    const b = new GraphBuilder();
    const t = b.input("table", "float32", [4, 2]);
    const ids = b.input("ids", "int64", [3]);
    b.output(b.node1("gather", [t, ids], { axis: 0 }));
    const g = new EmbeddingQuantizer().annotate(b.build());
    expect(g.nodes.some((n) => getAnnotation(n) !== undefined)).toBe(false);
  });
});

describe("ComposableQuantizer", () => {
  const xnn = () => new XnnpackQuantizer().setGlobal(getSymmetricQuantizationConfig());

  test("embedding + xnnpack: each annotates what it knows", () => {
    for (const order of [[new EmbeddingQuantizer(), xnn()], [xnn(), new EmbeddingQuantizer()]]) {
      const g = new ComposableQuantizer(order).annotate(embedProgram().graph);
      expect(ann(g, "gather")!.inputQSpecMap["emb.weight"]).toEqual(getEmbeddingQuantizationConfig().weight);
      expect(ann(g, "linear")!.inputQSpecMap["gather"]).toEqual(getSymmetricQuantizationConfig().inputActivation);
      expect(ann(g, "relu")!.outputQSpec).toEqual(getSymmetricQuantizationConfig().outputActivation);
    }
  });

  test("the first quantizer to annotate a node wins; later ones skip it", () => {
    const perTensor = getSymmetricQuantizationConfig();
    const perChannel = getSymmetricQuantizationConfig({ isPerChannel: true });
    const a = new XnnpackQuantizer().setGlobal(perTensor).setModuleName("body", null);
    const b = new XnnpackQuantizer().setGlobal(perChannel);
    const g = new ComposableQuantizer([a, b]).annotate(netProgram().graph);
    expect(ann(g, "conv")!.inputQSpecMap["stem.0.weight"]).toEqual(perTensor.weight);
    expect(ann(g, "conv_1")!.inputQSpecMap["body.conv.weight"]).toEqual(perChannel.weight); // left by a, taken by b
    const swapped = new ComposableQuantizer([b, a]).annotate(netProgram().graph);
    expect(ann(swapped, "conv")!.inputQSpecMap["stem.0.weight"]).toEqual(perChannel.weight);
  });

  test("transformForAnnotation runs every quantizer's transform in order", () => {
    const seen: string[] = [];
    const tag = (name: string): Quantizer => ({
      transformForAnnotation: (g) => { seen.push(name); return g; },
      annotate: (g) => g,
      validate: () => { seen.push(`validate ${name}`); },
    });
    const q = new ComposableQuantizer([tag("a"), tag("b")]);
    const g = embedProgram().graph;
    expect(q.transformForAnnotation(g)).toBe(g);
    q.validate(g);
    expect(seen).toEqual(["a", "b", "validate a", "validate b"]);
  });

  test("a quantizer that rewrites or removes an earlier annotation is reported with the node and its name", () => {
    class Overwriter implements Quantizer {
      transformForAnnotation(g: Graph): Graph { return g; }
      annotate(g: Graph): Graph {
        // Bypasses annotateNode (which would refuse): writes meta directly.
        return { ...g, nodes: g.nodes.map((n) => (n.name === "linear" ? { ...n, meta: { ...n.meta, quantization_annotation: { inputQSpecMap: {}, allowImplicitSharing: true, annotated: true } } } : n)) };
      }
      validate(): void {}
    }
    class Remover implements Quantizer {
      transformForAnnotation(g: Graph): Graph { return g; }
      annotate(g: Graph): Graph {
        return { ...g, nodes: g.nodes.map((n) => (n.name === "relu" ? { ...n, meta: {} } : n)) };
      }
      validate(): void {}
    }
    expect(() => new ComposableQuantizer([xnn(), new Overwriter()]).annotate(embedProgram().graph))
      .toThrow(/quantizer Overwriter has changed the annotation of node 'linear'/);
    expect(() => new ComposableQuantizer([xnn(), new Remover()]).annotate(embedProgram().graph))
      .toThrow(/quantizer Remover has removed the annotation of node 'relu'/);
  });

  test("a quantizer annotating through the helpers cannot take an annotated node", () => {
    const greedy: Quantizer = {
      transformForAnnotation: (g) => g,
      annotate: (g) => annotateGraph(g, (ctx) => ctx.claimFloat("linear")),
      validate: () => {},
    };
    expect(() => new ComposableQuantizer([xnn(), greedy]).annotate(embedProgram().graph)).toThrow(/node 'linear' is annotated twice/);
  });
});
