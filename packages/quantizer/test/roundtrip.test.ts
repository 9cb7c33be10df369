import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { GraphBuilder, parseGraph, printGraph, tensor, type Graph } from "@qforge/ir";
import {
  annotateGraph, ANNOTATION_KEY, derivedBiasSpec, edge, getAnnotation, getDefaultX86InductorQuantizationConfig, getSymmetricQuantizationConfig,
  validateAnnotations, X86InductorQuantizer, XnnpackQuantizer, type Quantizer,
} from "@qforge/quantizer";
import { convBnProgram, netProgram } from "./models.js";

function roundTrip(g: Graph): Graph {
  return parseGraph(printGraph(g, { constants: "full" }));
}

describe("annotated graphs print and parse back", () => {
  test("XNNPACK-annotated model: same graph, same annotations", () => {
    const g = new XnnpackQuantizer().setGlobal(getSymmetricQuantizationConfig({ isPerChannel: true })).annotate(netProgram().graph);
    const back = roundTrip(g);
    expect(back).toEqual(g);
    for (const n of g.nodes) expect(getAnnotation(back.nodes.find((x) => x.name === n.name)!)).toEqual(getAnnotation(n));
    expect(() => validateAnnotations(back)).not.toThrow();
  });

  test("the dump shows the annotation as JSON meta, and summarized dumps parse with the constants supplied", () => {
    const g = new XnnpackQuantizer().setGlobal(getSymmetricQuantizationConfig({ isQat: true })).annotate(convBnProgram().graph);
    const text = printGraph(g);
    const reluLine = text.split("\n").find((l) => l.startsWith("%relu:"))!;
    expect(reluLine).toContain(`${ANNOTATION_KEY}={"allowImplicitSharing": true, "annotated": true, "inputQSpecMap": {}, "outputQSpec": {"dtype": "int8", "isDynamic": false, "kind": "spec", "observerOrFakeQuant": {"kind": "FusedMovingAvgObsFakeQuantize"`);
    expect(parseGraph(text, { constants: g.constants })).toEqual(g);
  });

  test("fixed, shared and derived specs survive the round trip (X86 + a derived int32 bias)", () => {
    const x86 = new X86InductorQuantizer().setGlobal(getDefaultX86InductorQuantizationConfig()).annotate(netProgram().graph);
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [2, 3]);
    const w = b.constant("w", tensor("float32", [2, 3], Float32Array.of(1, 2, 3, -1, -2, -3)), "parameter");
    const bias = b.constant("b", tensor("float32", [2], Float32Array.of(0.5, -0.5)), "parameter");
    b.output(b.node1("linear", [x, w, bias], {}, { name: "fc" }));
    const cfg = getSymmetricQuantizationConfig({ isPerChannel: true });
    const withBias = annotateGraph(b.build(), (ctx) => ctx.annotate("fc", {
      inputQSpecMap: { x: cfg.inputActivation, w: cfg.weight, b: derivedBiasSpec(edge("x", "fc"), edge("w", "fc"), { perChannel: true }) },
      outputQSpec: cfg.outputActivation,
    }));
    for (const g of [x86, withBias, new XnnpackQuantizer().setGlobal(getSymmetricQuantizationConfig()).annotate(netProgram().graph)]) {
      const back = roundTrip(g);
      expect(back).toEqual(g);
      expect(() => validateAnnotations(back)).not.toThrow();
    }
  });
});

/** Random shape-preserving graphs over the ops the quantizers know, built step by step. */
const STEP_OPS = ["conv", "conv_bias", "relu", "clip", "max_pool", "add", "mul", "concat", "sigmoid", "tanh", "hardswish", "batch_norm", "linear_like"] as const;

function randomGraph(steps: { op: (typeof STEP_OPS)[number]; pick: number }[]): Graph {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", [1, 2, 3, 3]);
  const values: { v: string; c: number }[] = [{ v: x, c: 2 }];
  const convAttrs = { strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1], group: 1 };
  const param = (base: string, shape: number[], fill: number) =>
    b.freshConstant(base, tensor("float32", shape, new Float32Array(shape.reduce((a, s) => a * s, 1)).fill(fill)), "parameter");
  let clipMin: string | undefined;
  let clipMax: string | undefined;
  for (const { op, pick } of steps) {
    const cur = values[values.length - 1]!;
    const other = values.filter((t) => t.c === cur.c)[pick % values.filter((t) => t.c === cur.c).length]!;
    let out: { v: string; c: number };
    switch (op) {
      case "conv": out = { v: b.node1("conv", [cur.v, param("w", [2, cur.c, 1, 1], 0.5)], convAttrs), c: 2 }; break;
      case "conv_bias": out = { v: b.node1("conv", [cur.v, param("w", [2, cur.c, 1, 1], -0.5), param("b", [2], 0.1)], convAttrs), c: 2 }; break;
      case "linear_like": out = { v: b.node1("conv", [cur.v, param("w", [cur.c, cur.c, 1, 1], 0.25)], convAttrs), c: cur.c }; break;
      case "clip":
        clipMin ??= b.constant("clip_min", tensor("float32", [], Float32Array.of(0)));
        clipMax ??= b.constant("clip_max", tensor("float32", [], Float32Array.of(6)));
        out = { v: b.node1("clip", [cur.v, clipMin, clipMax]), c: cur.c };
        break;
      case "max_pool":
        out = { v: b.node1("max_pool", [cur.v], { kernel_shape: [1, 1], strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1], ceil_mode: 0 }), c: cur.c };
        break;
      case "add": case "mul": out = { v: b.node1(op, [cur.v, other.v]), c: cur.c }; break;
      case "concat": out = { v: b.node1("concat", [cur.v, other.v], { axis: 1 }), c: cur.c * 2 }; break;
      case "batch_norm":
        out = { v: b.node1("batch_norm", [cur.v, param("g", [cur.c], 1), param("be", [cur.c], 0), param("m", [cur.c], 0), param("var", [cur.c], 1)], { epsilon: 1e-5 }), c: cur.c };
        break;
      default: out = { v: b.node1(op, [cur.v]), c: cur.c };
    }
    if (out.c > 8) out = { v: b.node1("conv", [out.v, param("w", [2, out.c, 1, 1], 0.5)], convAttrs), c: 2 };
    values.push(out);
  }
  b.output(values[values.length - 1]!.v);
  return b.build();
}

describe("laws over random graphs", () => {
  const stepArb = fc.record({ op: fc.constantFrom(...STEP_OPS), pick: fc.nat(20) });
  const quantizerArb = fc.oneof(
    fc.record({ isPerChannel: fc.boolean(), isQat: fc.boolean(), isDynamic: fc.boolean() })
      .map((o): Quantizer => new XnnpackQuantizer().setGlobal(getSymmetricQuantizationConfig(o))),
    fc.record({ isQat: fc.boolean(), reduceRange: fc.boolean() })
      .map((o): Quantizer => new X86InductorQuantizer().setGlobal(getDefaultX86InductorQuantizationConfig(o))),
  );

  test("annotations validate, keys are node inputs, and the graph round-trips through the text format", () => {
    fc.assert(fc.property(fc.array(stepArb, { minLength: 1, maxLength: 12 }), quantizerArb, (steps, q) => {
      const g = randomGraph(steps);
      const annotated = q.annotate(q.transformForAnnotation(g));
      q.validate(annotated);
      expect(annotated.nodes.map((n) => ({ ...n, meta: { ...n.meta, [ANNOTATION_KEY]: undefined } }))).toEqual(g.nodes.map((n) => ({ ...n, meta: { ...n.meta, [ANNOTATION_KEY]: undefined } })));
      for (const n of annotated.nodes) {
        const a = getAnnotation(n);
        if (a === undefined) continue;
        for (const k of Object.keys(a.inputQSpecMap)) expect(n.inputs).toContain(k);
      }
      expect(roundTrip(annotated)).toEqual(annotated);
    }), { numRuns: 150 });
  });

  test("annotation is deterministic, and annotating an annotated graph again changes nothing", () => {
    fc.assert(fc.property(fc.array(stepArb, { minLength: 1, maxLength: 8 }), (steps) => {
      const g = randomGraph(steps);
      const q = new XnnpackQuantizer().setGlobal(getSymmetricQuantizationConfig());
      const once = q.annotate(g);
      expect(q.annotate(g)).toEqual(once);
      // Every annotated node is skipped on a second pass, so annotating again changes nothing.
      expect(q.annotate(once)).toEqual(once);
    }), { numRuns: 60 });
  });
});
