import { describe, expect, test } from "vitest";
import { produce } from "immer";
import { GraphBuilder, isQforgeError, tensor, type Graph, type Tensor } from "@qforge/ir";
import { MinMaxObserver, PerChannelMinMaxObserver } from "@qforge/quant";
import {
  annotateGraph, annotateNode, ANNOTATION_KEY, BIAS_SCALE_FROM_INPUT_AND_WEIGHT, biasScaleFromInputAndWeight, derivedBiasSpec, edge,
  getAnnotation, getDeriveQParamsFn, getSymmetricQuantizationConfig, hasDeriveQParamsFn, isAnnotated, nodeOutput, registerDeriveQParamsFn,
  sharedWith, validateAnnotations, type DerivedQuantizationSpec, type QuantizationSpec,
} from "@qforge/quantizer";

const act = getSymmetricQuantizationConfig().inputActivation!;
const weight = getSymmetricQuantizationConfig({ isPerChannel: true }).weight!;

/** x -> linear(W, b) -> relu -> linear(W2) -> out */
function mlp(): Graph {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", [2, 4]);
  const w = b.constant("w", tensor("float32", [3, 4], new Float32Array(12).fill(0.5)), "parameter");
  const bias = b.constant("b", tensor("float32", [3], new Float32Array(3)), "parameter");
  const w2 = b.constant("w2", tensor("float32", [2, 3], new Float32Array(6).fill(-0.25)), "parameter");
  const l1 = b.node1("linear", [x, w, bias], {}, { name: "fc1" });
  const r = b.node1("relu", [l1], {}, { name: "act" });
  const l2 = b.node1("linear", [r, w2], {}, { name: "fc2" });
  b.output(l2);
  return b.build();
}

function expectQforge(fn: () => unknown, code: string, node: string, message: RegExp): void {
  try {
    fn();
  } catch (e) {
    expect(isQforgeError(e)).toBe(true);
    if (!isQforgeError(e)) return;
    expect(e.code).toBe(code);
    expect(e.node).toBe(node);
    expect(e.message).toMatch(message);
    return;
  }
  expect.fail("expected a QforgeError");
}

describe("annotateNode and friends", () => {
  test("writes the annotation under meta.quantization_annotation on a draft, leaving the input alone", () => {
    const g = mlp();
    const out = produce(g, (d) => annotateNode(d.nodes[0]!, { inputQSpecMap: { x: act, w: weight, b: null }, outputQSpec: act }));
    expect(out.nodes[0]!.meta[ANNOTATION_KEY]).toEqual({ inputQSpecMap: { x: act, w: weight, b: null }, outputQSpec: act, allowImplicitSharing: true, annotated: true });
    expect(isAnnotated(out.nodes[0]!)).toBe(true);
    expect(getAnnotation(g.nodes[0]!)).toBeUndefined();
    expect(isAnnotated(out.nodes[1]!)).toBe(false);
  });

  test("annotating a node twice is a BAD_CONFIG error naming the node", () => {
    expectQforge(() => annotateGraph(mlp(), (ctx) => {
      ctx.annotate("act", { outputQSpec: act });
      ctx.annotate("act", { outputQSpec: act });
    }), "BAD_CONFIG", "act", /node 'act' is annotated twice/);
    // claimFloat counts as an annotation too.
    expectQforge(() => annotateGraph(mlp(), (ctx) => {
      ctx.claimFloat("fc2");
      ctx.annotate("fc2", { outputQSpec: act });
    }), "BAD_CONFIG", "fc2", /annotated twice/);
  });

  test("a node annotated by an earlier run is refused as well", () => {
    const once = annotateGraph(mlp(), (ctx) => ctx.annotate("fc1", { outputQSpec: act }));
    expectQforge(() => annotateGraph(once, (ctx) => ctx.annotate("fc1", { outputQSpec: act })), "BAD_CONFIG", "fc1", /annotated twice/);
  });

  test("an input spec for a value the node does not read is refused", () => {
    expectQforge(() => annotateGraph(mlp(), (ctx) => ctx.annotate("act", { inputQSpecMap: { x: act } })), "BAD_CONFIG", "act", /'x', which is not an input of node 'act'/);
  });

  test("malformed specs are refused with the node and the place", () => {
    const bad = { ...act, quantMin: 10, quantMax: 5 };
    expectQforge(() => annotateGraph(mlp(), (ctx) => ctx.annotate("fc1", { inputQSpecMap: { x: bad } })), "BAD_CONFIG", "fc1", /input 'x' of node 'fc1'.*quant_min 10/);
    const negAxis: QuantizationSpec = { ...weight, chAxis: -1 };
    expectQforge(() => annotateGraph(mlp(), (ctx) => ctx.annotate("fc1", { inputQSpecMap: { w: negAxis } })), "BAD_CONFIG", "fc1", /chAxis/);
    const outOfRange: QuantizationSpec = { ...act, quantMax: 300 };
    expectQforge(() => annotateGraph(mlp(), (ctx) => ctx.annotate("fc1", { outputQSpec: outOfRange })), "BAD_CONFIG", "fc1", /above the int8 range/);
    const unknownObserver = { ...act, observerOrFakeQuant: { kind: "MagicObserver" } } as unknown as QuantizationSpec;
    expectQforge(() => annotateGraph(mlp(), (ctx) => ctx.annotate("fc1", { outputQSpec: unknownObserver })), "BAD_CONFIG", "fc1", /unknown observer/);
    const badFixed = { kind: "fixed", dtype: "int8", scale: 0, zeroPoint: 0, qscheme: "per_tensor_affine" } as const;
    expectQforge(() => annotateGraph(mlp(), (ctx) => ctx.annotate("act", { outputQSpec: badFixed })), "BAD_CONFIG", "act", /scale must be positive/);
  });

  test("a thrown annotation leaves nothing behind (immer discards the draft)", () => {
    const g = mlp();
    expect(() => annotateGraph(g, (ctx) => {
      ctx.annotate("fc1", { outputQSpec: act });
      ctx.annotate("fc1", { outputQSpec: act });
    })).toThrow();
    expect(g.nodes.some((n) => getAnnotation(n) !== undefined)).toBe(false);
  });

  test("getAnnotation refuses malformed meta with BAD_DATA naming the node", () => {
    const g = produce(mlp(), (d) => { (d.nodes[1]!.meta as Record<string, unknown>)[ANNOTATION_KEY] = { output: "int8" }; });
    expectQforge(() => getAnnotation(g.nodes[1]!), "BAD_DATA", "act", /not a QuantizationAnnotation/);
  });
});

describe("validateAnnotations", () => {
  test("a shared spec pointing at an unannotated edge names the node that holds it", () => {
    const g = annotateGraph(mlp(), (ctx) => ctx.annotate("fc2", { inputQSpecMap: { act: sharedWith(edge("x", "fc1")) } }));
    expectQforge(() => validateAnnotations(g), "BAD_CONFIG", "fc2", /input 'act' of node 'fc2' shares qparams with edge %x -> fc1, but edge %x -> fc1 is not annotated/);
  });

  test("a shared spec pointing at an unannotated node output, a missing node, or an edge the node does not read", () => {
    const g1 = annotateGraph(mlp(), (ctx) => ctx.annotate("fc2", { outputQSpec: sharedWith(nodeOutput("act")) }));
    expectQforge(() => validateAnnotations(g1), "BAD_CONFIG", "fc2", /output of node 'act' is not annotated/);
    const g2 = annotateGraph(mlp(), (ctx) => ctx.annotate("fc2", { outputQSpec: sharedWith(nodeOutput("nope")) }));
    expectQforge(() => validateAnnotations(g2), "BAD_CONFIG", "fc2", /there is no node 'nope'/);
    const g3 = annotateGraph(mlp(), (ctx) => {
      ctx.annotate("fc1", { inputQSpecMap: { x: act } });
      ctx.annotate("fc2", { outputQSpec: sharedWith(edge("act", "fc1")) });
    });
    expectQforge(() => validateAnnotations(g3), "BAD_CONFIG", "fc2", /node 'fc1' does not read %act/);
  });

  test("shared specs that resolve (directly or through a chain) validate", () => {
    const g = annotateGraph(mlp(), (ctx) => {
      ctx.annotate("fc1", { inputQSpecMap: { x: act }, outputQSpec: act });
      ctx.annotate("act", { inputQSpecMap: { fc1: sharedWith(nodeOutput("fc1")) }, outputQSpec: sharedWith(edge("fc1", "act")) });
      ctx.annotate("fc2", { inputQSpecMap: { act: sharedWith(nodeOutput("act")) } });
    });
    expect(() => validateAnnotations(g)).not.toThrow();
  });

  test("a ring of shared specs with no concrete spec is refused", () => {
    const g = annotateGraph(mlp(), (ctx) => {
      ctx.annotate("fc1", { outputQSpec: sharedWith(nodeOutput("act")) });
      ctx.annotate("act", { outputQSpec: sharedWith(nodeOutput("fc1")) });
    });
    expectQforge(() => validateAnnotations(g), "BAD_CONFIG", "fc1", /ring of shared specs/);
  });

  test("a derived spec whose sources are not annotated names the node", () => {
    const bias = derivedBiasSpec(edge("x", "fc1"), edge("w", "fc1"), { perChannel: true });
    const g = annotateGraph(mlp(), (ctx) => ctx.annotate("fc1", { inputQSpecMap: { x: act, b: bias } }));
    expectQforge(() => validateAnnotations(g), "BAD_CONFIG", "fc1", /input 'b' of node 'fc1' is derived from edge %w -> fc1, but edge %w -> fc1 is not annotated/);
    const ok = annotateGraph(mlp(), (ctx) => ctx.annotate("fc1", { inputQSpecMap: { x: act, w: weight, b: bias } }));
    expect(() => validateAnnotations(ok)).not.toThrow();
  });

  test("a derived spec with no sources, or with an unregistered function, is refused", () => {
    const noSources: DerivedQuantizationSpec = { ...derivedBiasSpec(edge("x", "fc1"), edge("w", "fc1"), { perChannel: false }), derivedFrom: [] };
    expectQforge(() => annotateGraph(mlp(), (ctx) => ctx.annotate("fc1", { inputQSpecMap: { b: noSources } })), "BAD_CONFIG", "fc1", /at least one source/);
    const unknownFn: DerivedQuantizationSpec = { ...derivedBiasSpec(edge("x", "fc1"), edge("w", "fc1"), { perChannel: false }), deriveQParamsFn: "nope" };
    expectQforge(() => annotateGraph(mlp(), (ctx) => ctx.annotate("fc1", { inputQSpecMap: { b: unknownFn } })), "BAD_CONFIG", "fc1", /"nope" is not registered/);
  });

  test("annotations written past the helpers (e.g. a hand-edited dump) are checked too", () => {
    const g = produce(mlp(), (d) => {
      (d.nodes[1]!.meta as Record<string, unknown>)[ANNOTATION_KEY] = { inputQSpecMap: { w: act }, allowImplicitSharing: true, annotated: true };
    });
    expectQforge(() => validateAnnotations(g), "BAD_CONFIG", "act", /'w', which is not an input of node 'act'/);
  });
});

describe("derive-qparams functions", () => {
  function observed(values: number[][]): { act: MinMaxObserver; w: PerChannelMinMaxObserver } {
    const a = new MinMaxObserver({ dtype: "int8", qscheme: "per_tensor_affine", quantMin: -128, quantMax: 127 });
    a.observe(tensor("float32", [4], Float32Array.of(-1, 0.5, 2, 3.1)));
    const w = new PerChannelMinMaxObserver({ dtype: "int8", qscheme: "per_channel_symmetric", quantMin: -127, quantMax: 127, chAxis: 0 });
    w.observe(tensor("float32", [values.length, values[0]!.length], Float32Array.from(values.flat())));
    return { act: a, w };
  }

  test("bias_scale_from_input_and_weight: scale = f32(act_scale * weight_scale[c]), zero point 0 (int32)", () => {
    const { act: a, w } = observed([[0.5, -1], [0.25, 0.1], [-3, 2]]);
    const fn = getDeriveQParamsFn(BIAS_SCALE_FROM_INPUT_AND_WEIGHT);
    expect(fn).toBe(biasScaleFromInputAndWeight);
    const { scale, zeroPoint } = fn([a, w]);
    const as = a.calculateQParams().scale.data[0] as number;
    const ws = Array.from(w.calculateQParams().scale.data as Float32Array);
    expect(scale.dtype).toBe("float32");
    expect(scale.shape).toEqual([3]);
    expect(Array.from(scale.data as Float32Array)).toEqual(ws.map((s) => Math.fround(as * s)));
    expect(zeroPoint.dtype).toBe("int32");
    expect(Array.from(zeroPoint.data as Int32Array)).toEqual([0, 0, 0]);
  });

  test("it needs [activation, weight] with a per-tensor activation", () => {
    const { act: a, w } = observed([[1, 2]]);
    expect(() => biasScaleFromInputAndWeight([a])).toThrow(/got 1 sources/);
    expect(() => biasScaleFromInputAndWeight([w, w])).not.toThrow(); // one channel: a per-tensor scale
    const { w: w2 } = observed([[1, 2], [3, 4]]);
    expect(() => biasScaleFromInputAndWeight([w2, a])).toThrow(/input activation must be quantized per tensor/);
  });

  test("registry: custom functions, duplicate names, unknown names", () => {
    const half = (obs: readonly { calculateQParams(): { scale: Tensor; zeroPoint: Tensor } }[]) => {
      const s = obs[0]!.calculateQParams().scale;
      return { scale: tensor("float32", [1], Float32Array.of((s.data[0] as number) / 2)), zeroPoint: tensor("int32", [1], Int32Array.of(0)) };
    };
    registerDeriveQParamsFn("test_half_scale", half);
    registerDeriveQParamsFn("test_half_scale", half); // same function again: fine
    expect(hasDeriveQParamsFn("test_half_scale")).toBe(true);
    expect(() => registerDeriveQParamsFn("test_half_scale", (o) => half(o))).toThrow(/already registered/);
    registerDeriveQParamsFn("test_half_scale", (o) => half(o), { override: true });
    expect(() => getDeriveQParamsFn("missing_fn")).toThrow(/no derive-qparams function named 'missing_fn'/);
    expect(() => registerDeriveQParamsFn(BIAS_SCALE_FROM_INPUT_AND_WEIGHT, half)).toThrow(/DUPLICATE_NAME/);
  });
});
