import { describe, expect, test } from "vitest";
import { produce } from "immer";
import type { Graph } from "@qforge/ir";
import {
  allNodes, annotatedNodes, annotateGraph, annotateNode, ANNOTATION_KEY, anyNode, ConfiguredQuantizer, fixedQParamsSpec, getAnnotation,
  getBiasQSpec, getInputActQSpec, getSymmetricQuantizationConfig, getWeightQSpec, isPerChannelQScheme, moduleTypeFilter, OP_TO_ANNOTATOR,
  operatorTypeFilter, validateSpec, XnnpackQuantizer, type QuantizationConfig, type QuantizationSpec,
} from "@qforge/quantizer";
import { netProgram, nodeNamed } from "./models.js";

const cfg = getSymmetricQuantizationConfig();

describe("config accessors (torch's get_*_qspec)", () => {
  test("activations must be per tensor, weights symmetric, the bias float", () => {
    const perChannelAct: QuantizationConfig = { ...cfg, inputActivation: { ...cfg.inputActivation!, qscheme: "per_channel_affine", chAxis: 1 } };
    expect(() => getInputActQSpec(perChannelAct)).toThrow(/input activation spec must be per tensor/);
    const affineWeight: QuantizationConfig = { ...cfg, weight: { ...cfg.weight!, qscheme: "per_tensor_affine" } };
    expect(() => getWeightQSpec(affineWeight)).toThrow(/unsupported weight qscheme per_tensor_affine/);
    expect(() => new XnnpackQuantizer().setGlobal(affineWeight).annotate(netProgram().graph)).toThrow(/unsupported weight qscheme/);
    const intBias: QuantizationConfig = { ...cfg, bias: { ...cfg.weight!, dtype: "int32", quantMin: undefined, quantMax: undefined } as QuantizationSpec };
    expect(() => getBiasQSpec(intBias)).toThrow(/only a float bias spec/);
    const floatBias: QuantizationSpec = { kind: "spec", dtype: "float32", qscheme: "per_tensor_affine", observerOrFakeQuant: { kind: "PlaceholderObserver", options: { dtype: "float32" } } };
    expect(getBiasQSpec({ ...cfg, bias: floatBias })).toBe(floatBias);
    expect(getInputActQSpec(null)).toBeNull();
  });

  test("fixed qparams follow the activation range: uint8 1/256 zp 0 and 2/256 zp 128; int8 zp -128 and 0", () => {
    const u8: QuantizationSpec = { ...cfg.inputActivation!, dtype: "uint8", quantMin: 0, quantMax: 255 };
    expect(fixedQParamsSpec("0to1", u8)).toMatchObject({ dtype: "uint8", scale: 1 / 256, zeroPoint: 0, quantMin: 0, quantMax: 255 });
    expect(fixedQParamsSpec("neg1to1", u8)).toMatchObject({ scale: 2 / 256, zeroPoint: 128 });
    expect(fixedQParamsSpec("0to1", cfg.outputActivation!)).toMatchObject({ scale: 1 / 256, zeroPoint: -128 });
    expect(fixedQParamsSpec("neg1to1", cfg.outputActivation!)).toMatchObject({ scale: 2 / 256, zeroPoint: 0 });
    const noRange: QuantizationSpec = { ...u8, quantMin: undefined, quantMax: undefined } as QuantizationSpec;
    expect(fixedQParamsSpec("0to1", noRange)).toMatchObject({ quantMin: 0, quantMax: 255, zeroPoint: 0 });
  });
});

describe("small helpers", () => {
  test("annotatedNodes lists annotated nodes in order; isPerChannelQScheme; partition filters", () => {
    const g = new XnnpackQuantizer().setGlobal(cfg).setModuleName("body", null).annotate(netProgram().graph);
    const names = annotatedNodes(g).map((a) => a.node.name);
    expect(names).not.toContain("conv_1");
    expect(names.slice(0, 3)).toEqual(["conv", "relu", "max_pool"]);
    expect(annotatedNodes(g)[1]!.annotation.outputQSpec).toEqual(cfg.outputActivation);
    expect(["per_channel_symmetric", "per_channel_affine", "per_channel_affine_float_qparams", "per_tensor_affine"].map((q) => isPerChannelQScheme(q as never)))
      .toEqual([true, true, true, false]);
    const conv = nodeNamed(g, "conv");
    const relu = nodeNamed(g, "relu");
    expect(anyNode(operatorTypeFilter("relu"))([conv, relu])).toBe(true);
    expect(allNodes(operatorTypeFilter("relu"))([conv, relu])).toBe(false);
    expect(allNodes(moduleTypeFilter("Sequential"))([conv, relu])).toBe(true);
  });

  test("validateSpec: a block size needs a per-channel qscheme; unknown kinds and dtypes are refused", () => {
    expect(() => validateSpec({ ...cfg.inputActivation!, blockSize: [1, 32] }, "n", "output")).toThrow(/needs a per-channel qscheme/);
    expect(() => validateSpec({ ...cfg.weight!, qscheme: "per_channel_symmetric", blockSize: [1, 0] }, "n", "output")).toThrow(/positive integers/);
    expect(() => validateSpec({ kind: "weird" } as never, "n", "output")).toThrow(/unknown spec kind "weird"/);
    expect(() => validateSpec({ ...cfg.inputActivation!, dtype: "int9" as never }, "n", "output")).toThrow(/unknown dtype "int9"/);
    expect(() => validateSpec({ kind: "fixed", dtype: "int8", scale: 0.1, zeroPoint: 200, quantMin: -128, quantMax: 127, qscheme: "per_tensor_affine" }, "n", "output"))
      .toThrow(/fixed zero point 200 is outside/);
    expect(() => validateSpec({ kind: "shared", edgeOrNode: { kind: "edge", node: "a" } } as never, "n", "input 'x'")).toThrow(/malformed edge-or-node/);
  });

  test("annotateNode merges into an unclaimed annotation left by an earlier helper", () => {
    const g = netProgram().graph;
    const pre = produce(g, (d) => {
      (d.nodes[0]!.meta as Record<string, unknown>)[ANNOTATION_KEY] = { inputQSpecMap: { x: cfg.inputActivation }, allowImplicitSharing: false, annotated: false };
    });
    const out = produce(pre, (d) => annotateNode(d.nodes[0]!, { outputQSpec: cfg.outputActivation }));
    expect(getAnnotation(out.nodes[0]!)).toEqual({
      inputQSpecMap: { x: cfg.inputActivation }, outputQSpec: cfg.outputActivation, allowImplicitSharing: false, annotated: true,
    });
  });

  test("a node without outputs cannot get an output spec", () => {
    const g: Graph = { inputs: ["x"], outputs: [], constants: {}, values: { x: { dtype: "float32", shape: [1] } }, nodes: [{ name: "sink", op: "identity", inputs: ["x"], outputs: [], attrs: {}, meta: {} }] };
    expect(() => annotateGraph(g, (ctx) => ctx.annotate("sink", { outputQSpec: cfg.outputActivation }))).toThrow(/node 'sink' has no output to annotate/);
    expect(() => annotateGraph(g, (ctx) => ctx.annotate("nope", {}))).toThrow(/no node named 'nope'/);
  });
});

describe("a user quantizer built on ConfiguredQuantizer and torch's annotators", () => {
  /** Only linear (+relu) and conv (+relu), with the setters and precedence for free. */
  class LinearConvQuantizer extends ConfiguredQuantizer<QuantizationConfig> {
    annotate(g: Graph): Graph {
      return annotateGraph(g, (ctx) => {
        for (const stage of this.stages()) {
          if (stage.config === null) continue;
          for (const a of [OP_TO_ANNOTATOR.linear_relu, OP_TO_ANNOTATOR.linear, OP_TO_ANNOTATOR.conv_relu, OP_TO_ANNOTATOR.conv]) a(ctx, stage.config, stage.accepts);
        }
      });
    }
  }

  test("annotates only its patterns, honouring setModuleName", () => {
    const g = new LinearConvQuantizer().setGlobal(cfg).setModuleName("fc", null).annotate(netProgram().graph);
    expect(annotatedNodes(g).map((a) => a.node.op)).toEqual(["conv", "relu", "conv", "clip", "conv", "linear", "relu"]);
    expect(getAnnotation(nodeNamed(g, "linear_1"))).toBeUndefined();
    expect(() => new LinearConvQuantizer().validate(g)).not.toThrow();
    expect(new LinearConvQuantizer().transformForAnnotation(g)).toBe(g);
  });
});
