import { describe, expect, test } from "vitest";
import { createObserver, FusedMovingAvgObsFakeQuantize, OBSERVER_FACTORIES, type ObserverKind } from "@qforge/quant";
import {
  edge, getAnnotation, getSymmetricQuantizationConfig, nodeOutput, sharedWith, validateAnnotations, XnnpackQuantizer,
  type FakeQuantSpec, type ObserverSpec, type QuantizationConfig, type QuantizationSpec,
} from "@qforge/quantizer";
import { byOp, convBnProgram, netProgram, nodeNamed } from "./models.js";

const EPS = 2 ** -12;

function ann(g: Parameters<typeof nodeNamed>[0], name: string) {
  return getAnnotation(nodeNamed(g, name));
}

describe("getSymmetricQuantizationConfig", () => {
  test("default (PTQ, per-tensor) is torch's: int8 HistogramObserver activations, int8 -127..127 MinMax weights, float bias", () => {
    const c = getSymmetricQuantizationConfig();
    const act: QuantizationSpec = {
      kind: "spec", dtype: "int8", quantMin: -128, quantMax: 127, qscheme: "per_tensor_affine", isDynamic: false,
      observerOrFakeQuant: { kind: "HistogramObserver", options: { dtype: "int8", qscheme: "per_tensor_affine", quantMin: -128, quantMax: 127, eps: EPS } },
    };
    expect(c).toEqual({
      inputActivation: act,
      outputActivation: act,
      weight: {
        kind: "spec", dtype: "int8", quantMin: -127, quantMax: 127, qscheme: "per_tensor_symmetric", chAxis: 0, isDynamic: false,
        observerOrFakeQuant: { kind: "MinMaxObserver", options: { dtype: "int8", qscheme: "per_tensor_symmetric", quantMin: -127, quantMax: 127, eps: EPS } },
      },
      bias: null,
      isQat: false,
    });
  });

  test("per-channel weights use PerChannelMinMaxObserver on axis 0", () => {
    const w = getSymmetricQuantizationConfig({ isPerChannel: true }).weight!;
    expect(w.qscheme).toBe("per_channel_symmetric");
    expect(w.chAxis).toBe(0);
    expect(w.observerOrFakeQuant).toEqual({
      kind: "PerChannelMinMaxObserver",
      options: { dtype: "int8", qscheme: "per_channel_symmetric", quantMin: -127, quantMax: 127, eps: EPS, chAxis: 0 },
    });
  });

  test("QAT uses FusedMovingAvgObsFakeQuantize over moving-average observers", () => {
    const c = getSymmetricQuantizationConfig({ isQat: true, isPerChannel: true });
    expect(c.isQat).toBe(true);
    expect(c.inputActivation!.observerOrFakeQuant).toEqual({
      kind: "FusedMovingAvgObsFakeQuantize",
      observer: { kind: "MovingAverageMinMaxObserver", options: { dtype: "int8", qscheme: "per_tensor_affine", quantMin: -128, quantMax: 127, eps: EPS } },
    });
    expect(c.weight!.observerOrFakeQuant).toEqual({
      kind: "FusedMovingAvgObsFakeQuantize",
      observer: {
        kind: "MovingAveragePerChannelMinMaxObserver",
        options: { dtype: "int8", qscheme: "per_channel_symmetric", quantMin: -127, quantMax: 127, eps: EPS, chAxis: 0 },
      },
    });
    const perTensor = getSymmetricQuantizationConfig({ isQat: true }).weight!.observerOrFakeQuant as FakeQuantSpec;
    expect(perTensor.observer.kind).toBe("MovingAverageMinMaxObserver");
  });

  test("dynamic: PlaceholderObserver (PTQ) or FakeQuantize with averaging constant 1 (QAT), and no output activation", () => {
    const d = getSymmetricQuantizationConfig({ isDynamic: true });
    expect(d.outputActivation).toBeNull();
    expect(d.inputActivation!.isDynamic).toBe(true);
    expect(d.inputActivation!.observerOrFakeQuant).toEqual({
      kind: "PlaceholderObserver",
      options: { dtype: "int8", qscheme: "per_tensor_affine", quantMin: -128, quantMax: 127, eps: EPS, isDynamic: true },
    });
    const dq = getSymmetricQuantizationConfig({ isDynamic: true, isQat: true });
    expect(dq.inputActivation!.observerOrFakeQuant).toEqual({
      kind: "FakeQuantize",
      observer: { kind: "MovingAverageMinMaxObserver", options: { dtype: "int8", qscheme: "per_tensor_affine", quantMin: -128, quantMax: 127, eps: EPS, averagingConstant: 1 } },
    });
  });

  test("custom ranges reach the specs and the observer options", () => {
    const c = getSymmetricQuantizationConfig({ actQmin: -64, actQmax: 63, weightQmin: -7, weightQmax: 7 });
    expect([c.inputActivation!.quantMin, c.inputActivation!.quantMax, c.weight!.quantMin, c.weight!.quantMax]).toEqual([-64, 63, -7, 7]);
    expect((c.weight!.observerOrFakeQuant as ObserverSpec).options).toMatchObject({ quantMin: -7, quantMax: 7 });
  });

  test("every observer the configs name can be built by @qforge/quant with the options given", () => {
    const configs = [false, true].flatMap((isPerChannel) => [false, true].flatMap((isDynamic) =>
      [getSymmetricQuantizationConfig({ isPerChannel, isDynamic }), getSymmetricQuantizationConfig({ isPerChannel, isDynamic, isQat: true })]));
    let built = 0;
    for (const c of configs) {
      for (const s of [c.inputActivation, c.weight]) {
        const o = s!.observerOrFakeQuant;
        if (o.kind === "FakeQuantize" || o.kind === "FusedMovingAvgObsFakeQuantize" || o.kind === "FixedQParamsFakeQuantize") {
          const inner = (o as FakeQuantSpec).observer;
          const factory = OBSERVER_FACTORIES[inner.kind as keyof typeof OBSERVER_FACTORIES];
          expect(factory).toBeDefined();
          if (o.kind === "FusedMovingAvgObsFakeQuantize") {
            const fq = new FusedMovingAvgObsFakeQuantize(factory as never, inner.options as never);
            expect(fq.quantMin).toBe(s!.quantMin);
            expect(fq.quantMax).toBe(s!.quantMax);
          }
        } else {
          const obs = createObserver((o as ObserverSpec).kind as ObserverKind, (o as ObserverSpec).options as never);
          expect(obs.kind).toBe(o.kind);
        }
        built++;
      }
    }
    expect(built).toBe(16);
  });
});

describe("XnnpackQuantizer annotations of a traced model", () => {
  const cfg = getSymmetricQuantizationConfig();
  const act = cfg.inputActivation!;
  const w = cfg.weight!;
  const g = new XnnpackQuantizer().setGlobal(cfg).annotate(netProgram().graph);

  test("conv + relu: inputs on the conv (bias left float), output on the relu", () => {
    expect(ann(g, "conv")).toEqual({
      inputQSpecMap: { x: act, "stem.0.weight": w, "stem.0.bias": null }, allowImplicitSharing: true, annotated: true,
    });
    expect(ann(g, "relu")).toEqual({ inputQSpecMap: {}, outputQSpec: act, allowImplicitSharing: true, annotated: true });
  });

  test("conv + relu6 (clip) fuses the same way; a conv feeding an add is annotated alone", () => {
    expect(ann(g, "conv_1")!.outputQSpec).toBeUndefined();
    expect(ann(g, "clip")!.outputQSpec).toEqual(act);
    expect(ann(g, "conv_2")).toEqual({
      inputQSpecMap: { max_pool_1: act, "branch.weight": w, "branch.bias": null }, outputQSpec: act, allowImplicitSharing: true, annotated: true,
    });
  });

  test("max_pool shares its producer's output qparams on input and output", () => {
    expect(ann(g, "max_pool")).toMatchObject({ inputQSpecMap: { relu: sharedWith(nodeOutput("relu")) }, outputQSpec: sharedWith(nodeOutput("relu")) });
    expect(ann(g, "max_pool_1")).toMatchObject({ inputQSpecMap: { clip: sharedWith(nodeOutput("clip")) }, outputQSpec: sharedWith(nodeOutput("clip")) });
  });

  test("add + relu and mul", () => {
    expect(ann(g, "add")).toEqual({ inputQSpecMap: { conv_2: act, max_pool_1: act }, allowImplicitSharing: true, annotated: true });
    expect(ann(g, "relu_1")!.outputQSpec).toEqual(act);
    expect(ann(g, "mul")).toEqual({ inputQSpecMap: { relu_1: act, max_pool_1: act }, outputQSpec: act, allowImplicitSharing: true, annotated: true });
  });

  test("concat: input 0 has the spec, the other inputs and the output share the edge input0 -> concat", () => {
    const shared = sharedWith(edge("relu_1", "concat"));
    expect(ann(g, "concat")).toEqual({ inputQSpecMap: { relu_1: act, mul: shared }, outputQSpec: shared, allowImplicitSharing: true, annotated: true });
  });

  test("adaptive pooling: output shares its input edge; flatten shares the pool's output", () => {
    expect(ann(g, "adaptive_avg_pool2d")).toMatchObject({
      inputQSpecMap: { concat: act }, outputQSpec: sharedWith(edge("concat", "adaptive_avg_pool2d")),
    });
    expect(ann(g, "flatten")).toMatchObject({
      inputQSpecMap: { adaptive_avg_pool2d: sharedWith(nodeOutput("adaptive_avg_pool2d")) }, outputQSpec: sharedWith(nodeOutput("adaptive_avg_pool2d")),
    });
  });

  test("linear + relu, linear, hardswish", () => {
    expect(ann(g, "linear")!.inputQSpecMap).toEqual({ flatten: act, "head.2.weight": w, "head.2.bias": null });
    expect(ann(g, "linear")!.outputQSpec).toBeUndefined();
    expect(ann(g, "relu_2")!.outputQSpec).toEqual(act);
    expect(ann(g, "linear_1")!.outputQSpec).toEqual(act);
    expect(ann(g, "hardswish")).toMatchObject({ inputQSpecMap: { linear_1: act }, outputQSpec: act });
  });

  test("sigmoid/softmax get fixed qparams 1/256 zp -128, tanh 2/256 zp 0 (int8)", () => {
    const fixed01 = { kind: "fixed", dtype: "int8", scale: 1 / 256, zeroPoint: -128, quantMin: -128, quantMax: 127, qscheme: "per_tensor_affine" };
    expect(ann(g, "sigmoid")).toMatchObject({ inputQSpecMap: { hardswish: act }, outputQSpec: fixed01 });
    expect(ann(g, "softmax")!.outputQSpec).toEqual(fixed01);
    expect(ann(g, "tanh")!.outputQSpec).toEqual({ ...fixed01, scale: 2 / 256, zeroPoint: 0 });
  });

  test("every node of the model is annotated and the annotations validate", () => {
    expect(g.nodes.filter((n) => getAnnotation(n)?.annotated !== true).map((n) => n.name)).toEqual([]);
    expect(() => validateAnnotations(g)).not.toThrow();
    expect(() => new XnnpackQuantizer().validate(g)).not.toThrow();
  });

  test("annotate does not modify its input graph", () => {
    const input = netProgram().graph;
    new XnnpackQuantizer().setGlobal(cfg).annotate(input);
    expect(input.nodes.every((n) => getAnnotation(n) === undefined)).toBe(true);
  });

  test("per-channel config puts per-channel weight specs on conv and linear", () => {
    const pc = getSymmetricQuantizationConfig({ isPerChannel: true });
    const gp = new XnnpackQuantizer().setGlobal(pc).annotate(netProgram().graph);
    for (const n of [...byOp(gp, "conv"), ...byOp(gp, "linear")]) expect(getAnnotation(n)!.inputQSpecMap[n.inputs[1]!]).toEqual(pc.weight);
  });

  test("a config without activation specs leaves pooling, concat and fixed-qparams ops alone", () => {
    const weightOnly: QuantizationConfig = { ...cfg, inputActivation: null, outputActivation: null };
    const gw = new XnnpackQuantizer().setGlobal(weightOnly).annotate(netProgram().graph);
    expect(getAnnotation(nodeNamed(gw, "conv"))!.inputQSpecMap).toEqual({ x: null, "stem.0.weight": w, "stem.0.bias": null });
    for (const name of ["concat", "adaptive_avg_pool2d", "sigmoid", "max_pool", "flatten"]) expect(getAnnotation(nodeNamed(gw, name))).toBeUndefined();
    expect(() => validateAnnotations(gw)).not.toThrow();
  });
});

describe("XnnpackQuantizer QAT and dynamic modes", () => {
  test("QAT annotates conv -> batch_norm -> relu as one pattern (batch norm stays unfolded)", () => {
    const qat = getSymmetricQuantizationConfig({ isQat: true });
    const g = new XnnpackQuantizer().setGlobal(qat).annotate(convBnProgram().graph);
    expect(getAnnotation(nodeNamed(g, "conv"))!.inputQSpecMap).toEqual({ x: qat.inputActivation, "0.conv.weight": qat.weight });
    expect(getAnnotation(nodeNamed(g, "batch_norm"))).toEqual({ inputQSpecMap: {}, allowImplicitSharing: true, annotated: true });
    expect(getAnnotation(nodeNamed(g, "relu"))!.outputQSpec).toEqual(qat.outputActivation);
    expect(getAnnotation(nodeNamed(g, "conv_1"))!.inputQSpecMap["relu"]).toEqual(qat.inputActivation);
    expect(getAnnotation(nodeNamed(g, "relu_1"))!.outputQSpec).toEqual(qat.outputActivation);
  });

  test("PTQ does not match conv + batch_norm (it expects batch norm folded): the conv is annotated alone", () => {
    const g = new XnnpackQuantizer().setGlobal(getSymmetricQuantizationConfig()).annotate(convBnProgram().graph);
    expect(getAnnotation(nodeNamed(g, "conv"))!.outputQSpec).toBeDefined();
    expect(getAnnotation(nodeNamed(g, "batch_norm"))).toBeUndefined();
    expect(getAnnotation(nodeNamed(g, "relu"))).toBeUndefined();
  });

  test("a dynamic global config annotates linear only, without output spec", () => {
    const dyn = getSymmetricQuantizationConfig({ isDynamic: true });
    const g = new XnnpackQuantizer().setGlobal(dyn).annotate(netProgram().graph);
    const annotated = g.nodes.filter((n) => getAnnotation(n) !== undefined).map((n) => n.name);
    expect(annotated).toEqual(["linear", "linear_1"]);
    expect(getAnnotation(nodeNamed(g, "linear"))).toEqual({
      inputQSpecMap: { flatten: dyn.inputActivation, "head.2.weight": dyn.weight, "head.2.bias": null },
      outputQSpec: null, allowImplicitSharing: true, annotated: true,
    });
  });
});
