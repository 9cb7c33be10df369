/**
 * preparePt2e in the style of torch's test_quantize_pt2e.py: small models, test-local quantizers,
 * counts of observer nodes and which observer instance each target got.
 */
import { describe, expect, it, vi } from "vitest";
import fc from "fast-check";
import { freeze } from "immer";
import {
  GraphBuilder, isQforgeError, printGraph, programFromGraph, tensorsEqual, toNumbers, verifyGraph,
  type ExportedProgram, type Graph, type Node,
} from "@qforge/ir";
import { runProgram } from "@qforge/runtime";
import { derivedBiasSpec, edge, getSymmetricQuantizationConfig, nodeOutput, sharedWith, XnnpackQuantizer } from "@qforge/quantizer";
import { FixedQParamsObserver, PlaceholderObserver } from "@qforge/quant";
import {
  calibrate, convertPt2e, generateNumericDebugHandle, preparePt2e, runPrepared,
  type PreparedProgram,
} from "../src/index.js";
import {
  act, convLinearQuantizer, convRelu, opCount, quantizerOf, randTensor, sigmoidFixed, smallCnn, weightPerChannel, weightPerTensor,
} from "./prepare-fixtures.js";

const observerNodes = (g: Graph): Node[] => g.nodes.filter((n) => n.op === "observer");
const idOf = (g: Graph, reads: string): string[] =>
  observerNodes(g).filter((n) => n.inputs[0] === reads).map((n) => n.attrs["id"] as string);

/** x -> conv(w) and x -> conv_b(w2): one input value read by two annotated nodes. */
function twoConvsOnOneInput(): ExportedProgram {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", [1, 2, 4, 4]);
  const w1 = b.constant("w1", randTensor([3, 2, 1, 1], 3), "parameter");
  const w2 = b.constant("w2", randTensor([3, 2, 1, 1], 4), "parameter");
  const c1 = b.node1("conv", [x, w1], {}, { name: "conv_a" });
  const c2 = b.node1("conv", [x, w2], {}, { name: "conv_b" });
  b.output(b.node1("add", [c1, c2], {}, { name: "add" }));
  return programFromGraph(b.build());
}

/** conv(w) -> conv(w): the same weight constant read twice. */
function sharedWeight(): ExportedProgram {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", [1, 4, 5, 5]);
  const w = b.constant("w", randTensor([4, 4, 1, 1], 5), "parameter");
  const c1 = b.node1("conv", [x, w], {}, { name: "conv_a" });
  b.output(b.node1("conv", [c1, w], {}, { name: "conv_b" }));
  return programFromGraph(b.build());
}

/** conv_a, conv_b -> concat -> relu (torch's two-branch cat model). */
function catModel(): ExportedProgram {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", [1, 2, 4, 4]);
  const wa = b.constant("wa", randTensor([3, 2, 1, 1], 6, -2, 2), "parameter");
  const wb = b.constant("wb", randTensor([3, 2, 1, 1], 7, -0.2, 0.2), "parameter");
  const ca = b.node1("conv", [x, wa], {}, { name: "conv_a" });
  const cb = b.node1("conv", [x, wb], {}, { name: "conv_b" });
  const cat = b.node1("concat", [ca, cb], { axis: 1 }, { name: "cat" });
  b.output(b.node1("relu", [cat], {}, { name: "relu" }));
  return programFromGraph(b.build());
}

/** The cat quantizer of torch's test_shared_qspec: both convs quantized, cat inputs/outputs share input 0's observer. */
const catQuantizer = quantizerOf((ctx, g) => {
  for (const n of g.nodes) {
    if (n.op === "conv") ctx.annotate(n.name, { inputQSpecMap: { [n.inputs[0]!]: act, [n.inputs[1]!]: weightPerTensor }, outputQSpec: act });
    if (n.op === "concat") {
      const first = edge(n.inputs[0]!, n.name);
      ctx.annotate(n.name, {
        inputQSpecMap: { [n.inputs[0]!]: act, [n.inputs[1]!]: sharedWith(first) },
        outputQSpec: sharedWith(first),
      });
    }
  }
});

describe("preparePt2e: observer insertion", () => {
  it("conv + relu: one observer per distinct target (input, weight, output)", () => {
    const p = preparePt2e(convRelu(), convLinearQuantizer());
    const g = p.program.graph;
    expect(opCount(g, "observer")).toBe(3);
    expect(p.observers.size).toBe(3);
    expect(idOf(g, "x")).toHaveLength(1);
    expect(idOf(g, "conv.weight")).toHaveLength(1);
    expect(idOf(g, "conv")).toHaveLength(1);
    // relu is not annotated: it reads the conv's output observer, nothing observes its own output.
    const relu = g.nodes.find((n) => n.name === "relu")!;
    expect(g.nodes.find((n) => n.outputs[0] === relu.inputs[0])!.op).toBe("observer");
    expect(idOf(g, "relu")).toEqual([]);
    const kinds = [...p.observers.values()].map((o) => (o as { kind: string }).kind).sort();
    expect(kinds).toEqual(["MinMaxObserver", "MinMaxObserver", "PerChannelMinMaxObserver"]);
    verifyGraph(g);
  });

  it("observer nodes are identities: the prepared program computes the float outputs exactly", () => {
    const ep = smallCnn();
    const p = preparePt2e(ep, new XnnpackQuantizer().setGlobal(getSymmetricQuantizationConfig({ isPerChannel: true })));
    const x = randTensor([2, 3, 8, 8], 42);
    const [want] = runProgram(ep, [x]);
    const [got] = runPrepared(p, [x]);
    // Batch norm was folded into the conv (in float64), so equal up to float32 rounding.
    const a = toNumbers(want!);
    const b = toNumbers(got!);
    a.forEach((v, i) => expect(Math.abs(v - b[i]!)).toBeLessThan(1e-5));
  });

  it("implicit sharing: two readers of one value with equal specs share one observer node", () => {
    const q = (allowImplicitSharing: boolean) => quantizerOf((ctx, g) => {
      for (const n of g.nodes) {
        if (n.op === "conv") ctx.annotate(n.name, { inputQSpecMap: { [n.inputs[0]!]: act, [n.inputs[1]!]: weightPerTensor }, allowImplicitSharing });
      }
    });
    const shared = preparePt2e(twoConvsOnOneInput(), q(true));
    expect(idOf(shared.program.graph, "x")).toHaveLength(1);
    const readers = shared.program.graph.nodes.filter((n) => n.op === "conv").map((n) => n.inputs[0]);
    expect(new Set(readers).size).toBe(1);
    expect(opCount(shared.program.graph, "observer")).toBe(3);

    const separate = preparePt2e(twoConvsOnOneInput(), q(false));
    const ids = idOf(separate.program.graph, "x");
    expect(ids).toHaveLength(2);
    expect(ids[0]).not.toBe(ids[1]);
    expect(opCount(separate.program.graph, "observer")).toBe(4);
  });

  it("an input edge whose spec equals its producer's output spec reuses the producer's observer", () => {
    const p = preparePt2e(smallCnn(), convLinearQuantizer());
    const g = p.program.graph;
    // conv_1 reads max_pool (not annotated) -> own observer; with BN folded, the first conv's output is
    // observed once and relu reads that observer.
    const conv2 = g.nodes.find((n) => n.name === "conv_1")!;
    const obs = g.nodes.find((n) => n.outputs[0] === conv2.inputs[0])!;
    expect(obs.op).toBe("observer");
    expect(obs.inputs[0]).toBe("max_pool");
    // Output observer of the linear + its input observer on flatten, etc.: every observer id is used by exactly one node here.
    const ids = observerNodes(g).map((n) => n.attrs["id"]);
    expect(new Set(ids).size).toBe(ids.length);

    // Now annotate relu's input edge with the conv's output spec: it must not get a second observer.
    const withRelu = quantizerOf((ctx, gg) => {
      for (const n of gg.nodes) {
        if (n.op === "conv" || n.op === "linear") {
          ctx.annotate(n.name, { inputQSpecMap: { [n.inputs[0]!]: act, [n.inputs[1]!]: weightPerChannel }, outputQSpec: act });
        }
        if (n.op === "relu") ctx.annotate(n.name, { inputQSpecMap: { [n.inputs[0]!]: act } });
      }
    });
    const g2 = preparePt2e(smallCnn(), withRelu).program.graph;
    expect(opCount(g2, "observer")).toBe(opCount(g, "observer"));
  });

  it("a weight read by two convs is observed once (one observer node, one module)", () => {
    const q = quantizerOf((ctx, g) => {
      for (const n of g.nodes) {
        if (n.op === "conv") ctx.annotate(n.name, { inputQSpecMap: { [n.inputs[0]!]: act, [n.inputs[1]!]: weightPerChannel }, outputQSpec: act });
      }
    });
    const p = preparePt2e(sharedWeight(), q);
    const g = p.program.graph;
    expect(idOf(g, "w")).toHaveLength(1);
    const convs = g.nodes.filter((n) => n.op === "conv");
    expect(convs[0]!.inputs[1]).toBe(convs[1]!.inputs[1]);
    // conv_a's output observer is reused as conv_b's input observer (same spec): x, w, conv_a, conv_b.
    expect(opCount(g, "observer")).toBe(4);
    expect(p.observers.size).toBe(4);
  });

  it("SharedQuantizationSpec: cat inputs, output and the producers' outputs use ONE observer instance", () => {
    const p = preparePt2e(catModel(), catQuantizer);
    const g = p.program.graph;
    const catIds = new Set([...idOf(g, "conv_a"), ...idOf(g, "conv_b"), ...idOf(g, "cat")]);
    expect(catIds.size).toBe(1);
    const [id] = [...catIds];
    expect(observerNodes(g).filter((n) => n.attrs["id"] === id)).toHaveLength(3);
    const group = p.groups.get(id!)!;
    expect(group.targets.map((t) => (t.kind === "edge" ? `${t.value}->${t.node}` : t.node)).sort())
      .toEqual(["cat", "conv_a", "conv_a->cat", "conv_b", "conv_b->cat"]);

    // After calibration the shared observer saw both branches: its range covers both.
    const x = randTensor([1, 2, 4, 4], 8);
    calibrate(p, [[x]]);
    const obs = p.observers.get(id!)! as unknown as { range: { min: number; max: number } };
    const ep = catModel();
    const branch = (name: string) => {
      const b = new GraphBuilder(ep.graph);
      const g2 = { ...b.build(), outputs: [name] };
      return toNumbers(runProgram(programFromGraph(g2), [x])[0]!);
    };
    const all = [...branch("conv_a"), ...branch("conv_b")];
    expect(obs.range.min).toBe(Math.fround(Math.min(...all)));
    expect(obs.range.max).toBe(Math.fround(Math.max(...all)));
  });

  it("derived specs get no observer; convert computes them", () => {
    const q = quantizerOf((ctx, g) => {
      for (const n of g.nodes) {
        if (n.op !== "conv") continue;
        const [x, w, b] = n.inputs as [string, string, string];
        ctx.annotate(n.name, {
          inputQSpecMap: { [x]: act, [w]: weightPerChannel, [b]: derivedBiasSpec(edge(x, n.name), edge(w, n.name), { perChannel: true }) },
          outputQSpec: act,
        });
      }
    });
    const p = preparePt2e(convRelu(), q);
    expect(idOf(p.program.graph, "conv.bias")).toEqual([]);
    expect(p.derived).toHaveLength(1);
    expect(p.derived[0]!.targets).toEqual([{ kind: "edge", value: "conv.bias", node: "conv" }]);
    const ids = p.derived[0]!.derivedFrom;
    expect(ids).toEqual([idOf(p.program.graph, "x")[0], idOf(p.program.graph, "conv.weight")[0]]);
  });

  it("a derived spec on an edge whose producer output is observed follows that observer (requantization)", () => {
    const q = quantizerOf((ctx, g) => {
      const conv = g.nodes.find((n) => n.op === "conv")!;
      const [x, w] = conv.inputs as [string, string];
      ctx.annotate(conv.name, { inputQSpecMap: { [x]: act, [w]: weightPerTensor }, outputQSpec: act });
      const relu = g.nodes.find((n) => n.op === "relu")!;
      const derived = { ...derivedBiasSpec(edge(x, conv.name), edge(w, conv.name), { perChannel: false }), dtype: "int8" as const, quantMin: -128, quantMax: 127 };
      ctx.annotate(relu.name, { inputQSpecMap: { [relu.inputs[0]!]: derived } });
    });
    const p = preparePt2e(convRelu(), q);
    const g = p.program.graph;
    const convObs = observerNodes(g).find((n) => n.inputs[0] === "conv")!;
    expect(p.derived).toHaveLength(1);
    expect(p.derived[0]!.targets).toEqual([{ kind: "edge", value: convObs.outputs[0], node: "relu" }]);
    calibrate(p, [[randTensor([1, 3, 6, 6], 60)]], { progress: false });
    const c = convertPt2e(p).graph;
    // relu reads: conv -> q/dq (conv's observer) -> q/dq (derived: act_scale * weight_scale)
    const reluIn = c.nodes.find((n) => n.name === "relu")!.inputs[0]!;
    const dq2 = c.nodes.find((n) => n.outputs[0] === reluIn)!;
    const q2 = c.nodes.find((n) => n.outputs[0] === dq2.inputs[0])!;
    expect(q2.op).toBe("quantize_per_tensor");
    expect(c.nodes.find((n) => n.outputs[0] === q2.inputs[0])!.op).toBe("dequantize_per_tensor");
    const xScale = toNumbers(c.constants[c.nodes.find((n) => n.name === "x_q")!.inputs[1]!]!.tensor)[0]!;
    const wScale = toNumbers(c.constants[c.nodes.find((n) => n.op === "dequantize_per_tensor" && n.inputs[0] === "conv.weight_q")!.inputs[1]!]!.tensor)[0]!;
    expect(toNumbers(c.constants[q2.inputs[1]!]!.tensor)).toEqual([Math.fround(xScale * wScale)]);
  });

  it("fixed-qparams specs get a FixedQParamsObserver; dynamic specs a PlaceholderObserver", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [2, 4]);
    const w = b.constant("w", randTensor([3, 4], 9), "parameter");
    const l = b.node1("linear", [x, w], {}, { name: "linear" });
    b.output(b.node1("sigmoid", [l], {}, { name: "sigmoid" }));
    const ep = programFromGraph(b.build());
    const fixed = preparePt2e(ep, quantizerOf((ctx, g) => {
      for (const n of g.nodes) {
        if (n.op === "linear") ctx.annotate(n.name, { inputQSpecMap: { [n.inputs[0]!]: act, [n.inputs[1]!]: weightPerTensor }, outputQSpec: act });
        if (n.op === "sigmoid") ctx.annotate(n.name, { inputQSpecMap: { [n.inputs[0]!]: act }, outputQSpec: sigmoidFixed });
      }
    }));
    const sigId = idOf(fixed.program.graph, "sigmoid")[0]!;
    const m = fixed.observers.get(sigId)!;
    expect(m).toBeInstanceOf(FixedQParamsObserver);
    expect((m as FixedQParamsObserver).scale).toBe(Math.fround(1 / 256));
    expect((m as FixedQParamsObserver).zeroPoint).toBe(-128);

    const dynamic = preparePt2e(ep, new XnnpackQuantizer().setGlobal(getSymmetricQuantizationConfig({ isDynamic: true })));
    const dynId = idOf(dynamic.program.graph, "x")[0]!;
    const placeholder = dynamic.observers.get(dynId)!;
    expect(placeholder).toBeInstanceOf(PlaceholderObserver);
    expect((placeholder as PlaceholderObserver).isDynamic).toBe(true);
    expect(idOf(dynamic.program.graph, "linear")).toEqual([]);
  });

  it("a node left in float (unannotated, or annotated with null specs) gets no observer", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [1, 2, 4, 4]);
    const w = b.constant("w", randTensor([2, 2, 1, 1], 10), "parameter");
    const c = b.node1("conv", [x, w], {}, { name: "conv" });
    const s = b.node1("softmax", [c], { axis: 1 }, { name: "softmax" });
    const c2 = b.node1("conv", [s, w], {}, { name: "conv_2" });
    b.output(b.node1("sigmoid", [c2], {}, { name: "sig" }));
    const q = quantizerOf((ctx, g) => {
      for (const n of g.nodes) {
        if (n.op === "conv") ctx.annotate(n.name, { inputQSpecMap: { [n.inputs[0]!]: act, [n.inputs[1]!]: weightPerChannel }, outputQSpec: act });
        if (n.op === "sigmoid") ctx.annotate(n.name, { inputQSpecMap: { [n.inputs[0]!]: null }, outputQSpec: null });
      }
    });
    const g = preparePt2e(programFromGraph(b.build()), q).program.graph;
    expect(idOf(g, "softmax")).toHaveLength(1); // conv_2's input edge, not softmax's output
    const softmax = g.nodes.find((n) => n.name === "softmax")!;
    expect(g.nodes.find((n) => n.outputs[0] === softmax.inputs[0])!.op).toBe("observer"); // the conv's output observer
    expect(idOf(g, "sig")).toEqual([]);
    const sig = g.nodes.find((n) => n.name === "sig")!;
    // sigmoid reads conv_2's output observer (conv_2's output spec), nothing for its own null input spec
    expect(observerNodes(g).filter((n) => n.inputs[0] === "conv_2")).toHaveLength(1);
    expect(sig.inputs[0]).toBe(observerNodes(g).find((n) => n.inputs[0] === "conv_2")!.outputs[0]);
    expect(g.outputs).toEqual(["sig"]);
  });

  it("a graph output that is observed reads through the observer, and the signature follows", () => {
    const p = preparePt2e(convRelu(), quantizerOf((ctx, g) => {
      const relu = g.nodes.find((n) => n.op === "relu")!;
      ctx.annotate(relu.name, { inputQSpecMap: { [relu.inputs[0]!]: act }, outputQSpec: act });
    }));
    const g = p.program.graph;
    expect(g.nodes.find((n) => n.outputs[0] === g.outputs[0])!.op).toBe("observer");
    expect(p.program.outputs[0]!.value).toBe(g.outputs[0]);
    expect(p.program.outputs[0]!.name).toBe("relu");
  });

  it("refuses a SharedQuantizationSpec that points at a target without a spec (BAD_CONFIG naming the node)", () => {
    const q = quantizerOf((ctx, g) => {
      const relu = g.nodes.find((n) => n.op === "relu")!;
      ctx.annotate(relu.name, { inputQSpecMap: {}, outputQSpec: sharedWith(nodeOutput("conv")) });
    });
    try {
      preparePt2e(convRelu(), q);
      expect.unreachable();
    } catch (e) {
      expect(isQforgeError(e, "BAD_CONFIG")).toBe(true);
      expect((e as { node?: string }).node).toBe("relu");
    }
  });
});

describe("preparePt2e: programs and handles", () => {
  it("never mutates its input program (deep-frozen input, identical dump afterwards)", () => {
    const ep = freeze(smallCnn(), true);
    const before = printGraph(ep.graph, { constants: "full" });
    const p = preparePt2e(ep, new XnnpackQuantizer().setGlobal(getSymmetricQuantizationConfig({ isPerChannel: true })));
    expect(printGraph(ep.graph, { constants: "full" })).toBe(before);
    expect(ep.graph.nodes.some((n) => n.meta.debugHandle !== undefined)).toBe(false);
    expect(p.program.graph).not.toBe(ep.graph);
  });

  it("generateNumericDebugHandle: unique integers in node order, existing handles kept, idempotent", () => {
    const ep = convRelu();
    const h = generateNumericDebugHandle(ep);
    expect(h.graph.nodes.map((n) => n.meta.debugHandle)).toEqual([1, 2]);
    expect(generateNumericDebugHandle(h)).toBe(h);
    const b = new GraphBuilder(h.graph);
    const extra = b.node1("relu", [h.graph.outputs[0]!], {}, { name: "relu_extra" });
    const g2: Graph = { ...b.build(), outputs: [extra] };
    const h2 = generateNumericDebugHandle(programFromGraph(g2));
    expect(h2.graph.nodes.map((n) => n.meta.debugHandle)).toEqual([1, 2, 3]);
    expect(ep.graph.nodes.every((n) => n.meta.debugHandle === undefined)).toBe(true);
  });

  it("prepare assigns handles and output observers carry the observed node's handle", () => {
    const p = preparePt2e(convRelu(), convLinearQuantizer());
    const g = p.program.graph;
    const conv = g.nodes.find((n) => n.name === "conv")!;
    expect(conv.meta.debugHandle).toBe(1);
    const outObs = observerNodes(g).find((n) => n.inputs[0] === "conv")!;
    expect(outObs.meta.debugHandle).toBe(1);
    expect(observerNodes(g).find((n) => n.inputs[0] === "x")!.meta.debugHandle).toBeUndefined();
  });
});

describe("calibrate", () => {
  const prepared = (): PreparedProgram => preparePt2e(convRelu(), convLinearQuantizer());

  it("feeds every observer: min/max of the input observer are the calibration data's", () => {
    const p = prepared();
    const a = randTensor([1, 3, 6, 6], 21, -2, 1);
    const b = randTensor([1, 3, 6, 6], 22, -1, 3);
    calibrate(p, [[a], [b]], { progress: false });
    const xObs = p.observers.get(idOf(p.program.graph, "x")[0]!) as unknown as { range: { min: number; max: number } };
    const all = [...toNumbers(a), ...toNumbers(b)];
    expect(xObs.range).toEqual({ min: Math.min(...all), max: Math.max(...all) });
  });

  it("refuses empty calibration data (BAD_INPUT)", () => {
    expect(() => calibrate(prepared(), [])).toThrow(/BAD_INPUT: calibration data is empty/);
  });

  it("NaN / Inf in a batch: BAD_DATA naming the observer node and the batch", () => {
    const p = prepared();
    const bad = randTensor([1, 3, 6, 6], 23);
    (bad.data as Float32Array)[5] = NaN;
    try {
      calibrate(p, [[randTensor([1, 3, 6, 6], 24)], [bad]], { progress: false });
      expect.unreachable();
    } catch (e) {
      expect(isQforgeError(e, "BAD_DATA")).toBe(true);
      const obsNode = observerNodes(p.program.graph).find((n) => n.inputs[0] === "x")!.name;
      expect((e as { node?: string }).node).toBe(obsNode);
      expect((e as Error).message).toContain("batch 2 of 2");
    }
  });

  it("draws a progress line on a TTY", () => {
    const p = prepared();
    const writes: string[] = [];
    const spy = vi.spyOn(process.stderr, "write").mockImplementation((s: string | Uint8Array) => { writes.push(String(s)); return true; });
    const tty = Object.getOwnPropertyDescriptor(process.stderr, "isTTY");
    Object.defineProperty(process.stderr, "isTTY", { value: true, configurable: true });
    try {
      calibrate(p, [[randTensor([1, 3, 6, 6], 25)], [randTensor([1, 3, 6, 6], 26)]]);
    } finally {
      spy.mockRestore();
      if (tty !== undefined) Object.defineProperty(process.stderr, "isTTY", tty);
      else delete (process.stderr as { isTTY?: boolean }).isTTY;
    }
    expect(writes).toEqual(["\rcalibrating: batch 1/2", "\rcalibrating: batch 2/2", "\n"]);
  });
});

describe("prepare + convert on random chains (property)", () => {
  /**
   * A chain x -> relu_0 -> ... -> relu_{k-1}; each relu's input edge and output get one of: the act
   * spec, a second spec (uint8), a spec shared with the producer's output, or nothing.
   */
  it("prepared graphs verify and compute the float outputs; converted graphs verify and stay close", () => {
    const act2 = { ...act, dtype: "uint8" as const, quantMin: 0, quantMax: 255 };
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 2 })), { minLength: 1, maxLength: 6 }),
      fc.boolean(),
      (choices, implicit) => {
        const b = new GraphBuilder();
        let v = b.input("x", "float32", [4]);
        const names: string[] = [];
        choices.forEach((_, i) => { v = b.node1(i % 2 === 0 ? "relu" : "neg", [v], {}, { name: `n${i}` }); names.push(v); });
        b.output(v);
        const ep = programFromGraph(b.build());
        const q = quantizerOf((ctx, g) => {
          g.nodes.forEach((n, i) => {
            const [inChoice, outChoice] = choices[i]!;
            const input = n.inputs[0]!;
            const inSpec = inChoice === 0 ? act : inChoice === 1 ? act2 : inChoice === 2 && i > 0 && choices[i - 1]![1] !== 2 ? sharedWith(nodeOutput(g.nodes[i - 1]!.name)) : null;
            const outSpec = outChoice === 0 ? act : outChoice === 1 ? act2 : null;
            ctx.annotate(n.name, { inputQSpecMap: { [input]: inSpec }, outputQSpec: outSpec, allowImplicitSharing: implicit });
          });
        });
        const p = preparePt2e(ep, q);
        verifyGraph(p.program.graph);
        // One observer node per (value, module) pair at most.
        const pairs = observerNodes(p.program.graph).map((n) => `${n.inputs[0]}|${n.attrs["id"]}`);
        expect(new Set(pairs).size).toBe(pairs.length);
        const x = randTensor([4], 77, -3, 3);
        expect(tensorsEqual(runPrepared(p, [x])[0]!, runProgram(ep, [x])[0]!)).toBe(true);
        calibrate(p, [[x]], { progress: false });
        const c = convertPt2e(p);
        verifyGraph(c.graph);
        expect(opCount(c.graph, "observer")).toBe(0);
        const got = toNumbers(runProgram(c, [x])[0]!);
        const want = toNumbers(runProgram(ep, [x])[0]!);
        // Each requantization loses at most half a step of its scale (range <= 6 over 255 levels).
        got.forEach((g, i) => expect(Math.abs(g - want[i]!)).toBeLessThan(0.03 * (choices.length + 1)));
      },
    ), { numRuns: 60 });
  });
});
