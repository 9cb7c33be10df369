/**
 * ONNX-imported graphs: the hardswish decompositions fused back, constant affines folded into convs,
 * MatMul/Gemm linears annotated like torch's linear (weights per channel along their output axis),
 * activation matmuls on request, node-name scopes, and int64 shape arithmetic left alone.
 */
import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { fromArray, GraphBuilder, scalar, type Graph, type Tensor } from "@qforge/ir";
import { runGraph } from "@qforge/runtime";
import {
  foldAffineIntoConv, foldConvAffine, fuseOnnxHardswish, getAnnotation, getDefaultX86InductorQuantizationConfig, getSymmetricQuantizationConfig,
  normalizeOnnxForAnnotation, validateAnnotations, withChannelAxis, X86InductorQuantizer, XnnpackQuantizer, type QuantizationSpec,
} from "@qforge/quantizer";

function rand(n: number, seed: number, lo = -1, hi = 1): number[] {
  let s = (seed * 2654435761) >>> 0 || 1;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + ((hi - lo) * s) / 2 ** 32;
  });
}
const f32 = (shape: number[], v: number[]): Tensor => fromArray("float32", shape, v);
const ops = (g: Graph): string[] => g.nodes.map((n) => n.op);
const node = (g: Graph, name: string) => g.nodes.find((n) => n.name === name)!;
function maxDiff(a: Tensor, b: Tensor): number {
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  return x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0);
}

type Spelling = "div6" | "mul-sixth" | "hard-sigmoid" | "swapped";

/** x = conv(in) -> hardswish spelled the ONNX way -> output. */
function hardswishGraph(spelling: Spelling): Graph {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", [1, 2, 3, 3]);
  const c3 = b.constant("three", scalar("float32", 3));
  const c0 = b.constant("zero", scalar("float32", 0));
  const c6 = b.constant("six", scalar("float32", 6));
  let y: string;
  if (spelling === "hard-sigmoid") {
    y = b.node1("mul", [x, b.node1("hard_sigmoid", [x], { alpha: 1 / 6, beta: 0.5 })], {}, { name: "last" });
  } else {
    const add = spelling === "swapped" ? b.node1("add", [c3, x]) : b.node1("add", [x, c3]);
    const clip = b.node1("clip", [add, c0, c6]);
    const mul = spelling === "swapped" ? b.node1("mul", [clip, x]) : b.node1("mul", [x, clip]);
    y = spelling === "mul-sixth"
      ? b.node1("mul", [b.constant("sixth", scalar("float32", 1 / 6)), mul], {}, { name: "last", meta: { debugHandle: 9 } })
      : b.node1("div", [mul, c6], {}, { name: "last", meta: { debugHandle: 9 } });
  }
  b.output(y);
  return b.build();
}

describe("fuseOnnxHardswish", () => {
  for (const spelling of ["div6", "mul-sixth", "hard-sigmoid", "swapped"] as const) {
    test(`fuses ${spelling} into one hardswish with the same values (within float32 rounding)`, () => {
      const g = hardswishGraph(spelling);
      const fused = fuseOnnxHardswish(g);
      expect(ops(fused)).toEqual(["hardswish"]);
      const hs = fused.nodes[0]!;
      expect(hs.meta["fusedFrom"]).toContain("last");
      expect((hs.meta["fusedFrom"] as string[]).at(-1)).toBe("last");
      fc.assert(fc.property(fc.integer({ min: 1, max: 1e6 }), (seed) => {
        const x = f32([1, 2, 3, 3], rand(18, seed, -5, 5));
        expect(maxDiff(runGraph(fused, [x]).outputs[0]!, runGraph(g, [x]).outputs[0]!)).toBeLessThanOrEqual(1e-6);
      }), { numRuns: 20 });
    });
  }

  test("leaves the pattern alone when an intermediate value has another reader, or the constants differ", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [4]);
    const add = b.node1("add", [x, b.constant("three", scalar("float32", 3))]);
    const clip = b.node1("clip", [add, b.constant("zero", scalar("float32", 0)), b.constant("six", scalar("float32", 6))]);
    const y = b.node1("div", [b.node1("mul", [x, clip]), b.constant("six2", scalar("float32", 6))]);
    b.output(y, add);
    const g = b.build();
    expect(fuseOnnxHardswish(g)).toEqual(g);
    const b2 = new GraphBuilder();
    const x2 = b2.input("x", "float32", [4]);
    const clip2 = b2.node1("clip", [b2.node1("add", [x2, b2.constant("four", scalar("float32", 4))]), b2.constant("zero", scalar("float32", 0)), b2.constant("six", scalar("float32", 6))]);
    b2.output(b2.node1("div", [b2.node1("mul", [x2, clip2]), b2.constant("six2", scalar("float32", 6))]));
    expect(ops(fuseOnnxHardswish(b2.build()))).toEqual(["add", "clip", "mul", "div"]);
  });
});

describe("foldConvAffine", () => {
  function convAffine(scale: Tensor | undefined, shift: Tensor | undefined, bias: boolean): Graph {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [1, 3, 5, 5]);
    const w = b.constant("w", f32([4, 3, 3, 3], rand(108, 1)), "parameter");
    const inputs = [x, w];
    if (bias) inputs.push(b.constant("b", f32([4], rand(4, 2)), "parameter"));
    let v = b.node1("conv", inputs, { pads: [1, 1, 1, 1] }, { name: "conv", meta: { debugHandle: 1 } });
    if (scale !== undefined) v = b.node1("mul", [b.constant("scale", scale), v], {}, { name: "mul" });
    if (shift !== undefined) v = b.node1("add", [v, b.constant("shift", shift)], {}, { name: "add" });
    b.output(b.node1("relu", [v]));
    return b.build();
  }

  const cases: [string, Tensor | undefined, Tensor | undefined, boolean][] = [
    ["scalar mul and add, conv with bias", f32([1], [1.7]), f32([1], [-0.4]), true],
    ["per-channel [1, C, 1, 1] mul and [C, 1, 1] add, conv without bias", f32([1, 4, 1, 1], [0.5, 2, -1, 3]), f32([4, 1, 1], [0.1, 0.2, 0.3, -0.4]), false],
    ["a mul alone", f32([], [0.25]), undefined, true],
    ["an add alone", undefined, f32([1], [2]), false],
  ];
  for (const [label, scale, shift, bias] of cases) {
    test(`folds ${label} into the conv (same outputs within float32 rounding)`, () => {
      const g = convAffine(scale, shift, bias);
      const folded = foldConvAffine(g);
      expect(ops(folded)).toEqual(["conv", "relu"]);
      expect(folded.nodes[0]!.meta["fusedFrom"]).toEqual(["conv", ...(scale ? ["mul"] : []), ...(shift ? ["add"] : [])]);
      const x = f32([1, 3, 5, 5], rand(75, 3));
      expect(maxDiff(runGraph(folded, [x]).outputs[0]!, runGraph(g, [x]).outputs[0]!)).toBeLessThanOrEqual(1e-5);
    });
  }

  test("does not fold a constant that broadcasts along another dim, or a conv output read twice", () => {
    const g = convAffine(f32([5], [1, 2, 3, 4, 5]), undefined, true);
    expect(ops(foldConvAffine(g))).toEqual(["conv", "mul", "relu"]);
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [1, 1, 3, 3]);
    const c = b.node1("conv", [x, b.constant("w", f32([1, 1, 1, 1], [2]), "parameter")]);
    b.output(b.node1("mul", [c, b.constant("s", f32([1], [3]))]), c);
    expect(ops(foldConvAffine(b.build()))).toEqual(["conv", "mul"]);
  });
});

describe("foldAffineIntoConv", () => {
  function affineConv(opts: { pads?: number[]; group?: number; kernel?: number; scale?: Tensor; shift?: Tensor; bias?: boolean }): Graph {
    const g = opts.group ?? 1;
    const k = opts.kernel ?? 1;
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [1, 4, 5, 5]);
    let v = b.node1("relu", [x]);
    if (opts.scale !== undefined) v = b.node1("mul", [v, b.constant("a", opts.scale)], {}, { name: "lab_mul" });
    if (opts.shift !== undefined) v = b.node1("add", [b.constant("b", opts.shift), v], {}, { name: "lab_add" });
    const inputs = [v, b.constant("w", f32([6, 4 / g, k, k], rand(24 * k * k / g, 5)), "parameter")];
    if (opts.bias !== false) inputs.push(b.constant("c", f32([6], rand(6, 6)), "parameter"));
    b.output(b.node1("conv", inputs, { group: g, ...(opts.pads ? { pads: opts.pads } : {}) }, { name: "pw", meta: { debugHandle: 3 } }));
    return b.build();
  }
  const cases: [string, Parameters<typeof affineConv>[0]][] = [
    ["a scalar mul and a per-channel add before a 1x1 conv", { scale: f32([1], [1.3]), shift: f32([1, 4, 1, 1], [0.1, -0.2, 0.3, 0.05]) }],
    ["a per-channel mul alone before a grouped 3x3 conv without padding and bias", { scale: f32([4, 1, 1], [0.5, 2, -1, 1.5]), group: 2, kernel: 3, bias: false }],
    ["an add alone before a 3x3 conv without padding", { shift: f32([], [0.75]), kernel: 3 }],
  ];
  for (const [label, opts] of cases) {
    test(`folds ${label}; the conv keeps its name`, () => {
      const g = affineConv(opts);
      const folded = foldAffineIntoConv(g);
      expect(ops(folded)).toEqual(["relu", "conv"]);
      const conv = folded.nodes[1]!;
      expect(conv.name).toBe("pw");
      expect((conv.meta["fusedFrom"] as string[]).at(-1)).toBe("pw");
      expect(conv.meta.debugHandle).toBe(3);
      const x = f32([1, 4, 5, 5], rand(100, 8, -2, 2));
      expect(maxDiff(runGraph(folded, [x]).outputs[0]!, runGraph(g, [x]).outputs[0]!)).toBeLessThanOrEqual(1e-5);
    });
  }

  test("keeps the affine of a padded conv, whose border windows read padded zeros", () => {
    const g = affineConv({ shift: f32([1], [0.5]), kernel: 3, pads: [1, 1, 1, 1] });
    expect(ops(foldAffineIntoConv(g))).toEqual(["relu", "add", "conv"]);
  });
});

/** x[2, 3, K] -> matmul(W[K, N]) -> add(bias) -> relu?, then a softmax. */
function linearGraph(opts: { relu?: boolean; gemm?: "transB" | "plain" } = {}): Graph {
  const [K, N] = [4, 3];
  const b = new GraphBuilder();
  const x = b.input("x", "float32", opts.gemm !== undefined ? [5, K] : [2, 3, K]);
  let v: string;
  if (opts.gemm !== undefined) {
    const w = b.constant("W", f32(opts.gemm === "transB" ? [N, K] : [K, N], rand(12, 1)), "parameter");
    v = b.node1("gemm", [x, w, b.constant("C", f32([N], rand(N, 2)), "parameter")], { transB: opts.gemm === "transB" ? 1 : 0 }, { name: "gemm" });
  } else {
    const mm = b.node1("matmul", [x, b.constant("W", f32([K, N], rand(12, 1)), "parameter")], {}, { name: "mm" });
    v = b.node1("add", [mm, b.constant("bias", f32([N], rand(N, 2)), "parameter")], {}, { name: "bias_add" });
  }
  if (opts.relu === true) v = b.node1("relu", [v], {}, { name: "act" });
  b.output(b.node1("softmax", [v], { axis: -1 }, { name: "sm" }));
  return b.build();
}

const xnnpack = () => new XnnpackQuantizer().setGlobal(getSymmetricQuantizationConfig({ isPerChannel: true }));

describe("ONNX linears in XnnpackQuantizer", () => {
  test("matmul(x, W[K, N]) + add(bias): activation and weight (per channel on axis 1) on the matmul, output on the add", () => {
    const g = xnnpack().annotate(linearGraph());
    validateAnnotations(g);
    const mm = getAnnotation(node(g, "mm"))!;
    const w = mm.inputQSpecMap["W"] as QuantizationSpec;
    expect(w.qscheme).toBe("per_channel_symmetric");
    expect(w.chAxis).toBe(1);
    expect((w.observerOrFakeQuant as { options: Record<string, unknown> }).options["chAxis"]).toBe(1);
    expect((mm.inputQSpecMap["x"] as QuantizationSpec).dtype).toBe("int8");
    expect(mm.outputQSpec).toBeUndefined();
    const add = getAnnotation(node(g, "bias_add"))!;
    expect(add.inputQSpecMap).toEqual({ bias: null });
    expect((add.outputQSpec as QuantizationSpec).dtype).toBe("int8");
  });

  test("a following relu joins the pattern and carries the output", () => {
    const g = xnnpack().annotate(linearGraph({ relu: true }));
    expect(getAnnotation(node(g, "bias_add"))!.outputQSpec).toBeUndefined();
    expect(getAnnotation(node(g, "act"))!.outputQSpec).toBeDefined();
  });

  for (const [gemm, axis] of [["transB", 0], ["plain", 1]] as const) {
    test(`gemm with ${gemm} quantizes its weight along axis ${axis}, the bias stays float`, () => {
      const g = xnnpack().annotate(linearGraph({ gemm }));
      const a = getAnnotation(node(g, "gemm"))!;
      expect((a.inputQSpecMap["W"] as QuantizationSpec).chAxis).toBe(axis);
      expect(a.inputQSpecMap["C"]).toBeNull();
      expect(a.outputQSpec).toBeDefined();
    });
  }

  test("setNodeName(name, null) keeps that linear in float; other nodes stay quantized", () => {
    const g = xnnpack().setNodeName("mm", null).setNodeName("bias_add", null).annotate(linearGraph());
    expect(getAnnotation(node(g, "mm"))).toBeUndefined();
    expect(getAnnotation(node(g, "bias_add"))).toBeUndefined();
    expect(getAnnotation(node(g, "sm"))).toBeDefined();
    // A scope covers the patterns containing the node: naming only the matmul leaves the bias add
    // to the patterns that fit it alone (here a quantized add), as torch's module-name scopes do.
    const onlyMm = xnnpack().setNodeName("mm", null).annotate(linearGraph());
    expect(getAnnotation(node(onlyMm, "mm"))).toBeUndefined();
    expect(getAnnotation(node(onlyMm, "bias_add"))?.outputQSpec).toBeDefined();
    // A named node with a config gets that config over the global one.
    const act = getSymmetricQuantizationConfig({ actQmin: -64, actQmax: 63 });
    const named = xnnpack().setNodeName("mm", act).annotate(linearGraph());
    expect((getAnnotation(node(named, "mm"))!.inputQSpecMap["x"] as QuantizationSpec).quantMax).toBe(63);
    expect(() => xnnpack().setNodeName("", null)).toThrow(/non-empty/);
  });

  test("matmuls of two activations are quantized only with withActivationMatmuls", () => {
    const b = new GraphBuilder();
    const q = b.input("q", "float32", [2, 3, 4]);
    const k = b.input("k", "float32", [2, 4, 3]);
    b.output(b.node1("matmul", [q, k], {}, { name: "qk" }));
    const g = b.build();
    expect(getAnnotation(node(xnnpack().annotate(g), "qk"))).toBeUndefined();
    const a = getAnnotation(node(xnnpack().withActivationMatmuls().annotate(g), "qk"))!;
    expect(Object.keys(a.inputQSpecMap).sort()).toEqual(["k", "q"]);
    expect(a.outputQSpec).toBeDefined();
  });

  test("transformForAnnotation folds conv affines and fuses hardswish, so conv and hardswish patterns apply", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [1, 2, 4, 4]);
    const c = b.node1("conv", [x, b.constant("w", f32([2, 2, 1, 1], rand(4, 1)), "parameter")], {}, { name: "conv" });
    const m = b.node1("mul", [c, b.constant("s", f32([1], [1.5]))]);
    const a = b.node1("add", [m, b.constant("t", f32([1], [0.5]))]);
    const h = b.node1("div", [b.node1("mul", [a, b.node1("clip", [b.node1("add", [a, b.constant("three", scalar("float32", 3))]), b.constant("z", scalar("float32", 0)), b.constant("six", scalar("float32", 6))])]), b.constant("six2", scalar("float32", 6))]);
    b.output(h);
    const g = b.build();
    const t = xnnpack().transformForAnnotation(g);
    expect(ops(t)).toEqual(["conv", "hardswish"]);
    // Each fused node keeps its model name through all three rewrites (node-name scopes rely on it).
    expect(t.nodes[0]!.name).toBe("conv");
    expect(t.nodes[1]!.name).toBe(g.nodes[g.nodes.length - 1]!.name);
    expect(normalizeOnnxForAnnotation(g)).toEqual(t);
    const annotated = xnnpack().annotate(t);
    expect(annotated.nodes.every((n) => getAnnotation(n)?.annotated === true)).toBe(true);
    const x0 = f32([1, 2, 4, 4], rand(32, 4, -4, 4));
    expect(maxDiff(runGraph(t, [x0]).outputs[0]!, runGraph(g, [x0]).outputs[0]!)).toBeLessThanOrEqual(1e-5);
  });

  test("int64 shape arithmetic (concat of shape pieces) is not annotated", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [2, 6]);
    const s = b.node1("shape", [x]);
    const cat = b.node1("concat", [s, b.constant("extra", fromArray("int64", [1], [1]))], { axis: 0 }, { name: "shape_cat" });
    b.output(b.node1("reshape", [b.node1("relu", [x]), b.node1("slice", [cat, b.constant("s0", fromArray("int64", [1], [0])), b.constant("s1", fromArray("int64", [1], [2]))])], {}, { name: "rs" }));
    const g = xnnpack().annotate(b.build());
    expect(getAnnotation(node(g, "shape_cat"))).toBeUndefined();
    validateAnnotations(g);
  });
});

describe("ONNX linears in X86InductorQuantizer", () => {
  test("the global config quantizes matmul + add linears: uint8 input, int8 weight on axis 1, output left to the consumer", () => {
    const g = new X86InductorQuantizer().setGlobal(getDefaultX86InductorQuantizationConfig()).annotate(linearGraph());
    const mm = getAnnotation(node(g, "mm"))!;
    expect((mm.inputQSpecMap["x"] as QuantizationSpec).dtype).toBe("uint8");
    expect((mm.inputQSpecMap["W"] as QuantizationSpec).chAxis).toBe(1);
    expect(getAnnotation(node(g, "bias_add"))!.annotated).toBe(true);
    expect(getAnnotation(node(g, "bias_add"))!.outputQSpec).toBeUndefined();
  });
});

describe("withChannelAxis", () => {
  test("moves a per-channel spec (and its observer) to another axis; per-tensor specs are unchanged", () => {
    const w = getSymmetricQuantizationConfig({ isPerChannel: true }).weight!;
    const moved = withChannelAxis(w, 1)!;
    expect(moved.chAxis).toBe(1);
    expect((moved.observerOrFakeQuant as { options: Record<string, unknown> }).options["chAxis"]).toBe(1);
    expect(w.chAxis).toBe(0);
    const t = getSymmetricQuantizationConfig().weight!;
    expect(withChannelAxis(t, 1)).toBe(t);
    const qat = withChannelAxis(getSymmetricQuantizationConfig({ isPerChannel: true, isQat: true }).weight!, 1)!;
    expect((qat.observerOrFakeQuant as { observer: { options: Record<string, unknown> } }).observer.options["chAxis"]).toBe(1);
  });
});
