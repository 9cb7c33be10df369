import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { isQforgeError, numel, toFloat64, type Graph } from "@qforge/ir";
import { getAnnotation, validateAnnotations } from "@qforge/quantizer";
import {
  buildFxModelProgram, foldConvBatchNormTorch, FxQnnpackQuantizer, parseFxQConfigMapping, planFxQuantization,
  type FxArchNode, type FxArchitecture, type FxObserverPlan, type FxQuantizationPlan,
} from "../src/golden/index.js";
import { calibrate, convertPt2e, groupTargets, lowerQdq, preparePt2e, targetKey } from "../src/index.js";
import { runProgram } from "@qforge/runtime";

const goldenDir = process.env.QFORGE_GOLDEN_DIR ?? fileURLToPath(new URL("../../../../shared/golden/", import.meta.url));
const golden = JSON.parse(readFileSync(join(goldenDir, "fx_models.json"), "utf8")) as { cases: any[] };

// ---- qconfigs in the golden JSON form ------------------------------------------------------------

const W8 = { observer: "MinMaxObserver", kwargs: { dtype: "qint8", qscheme: "per_tensor_symmetric" } };
const Q8 = { activation: { observer: "MinMaxObserver", kwargs: { dtype: "quint8" } }, weight: W8 };
const QS = {
  activation: { observer: "MinMaxObserver", kwargs: { dtype: "qint8", eps: 2 ** -12 } },
  weight: { observer: "MinMaxObserver", kwargs: { dtype: "qint8", qscheme: "per_tensor_symmetric", quant_min: -127, quant_max: 127, eps: 2 ** -12 } },
};
const QPC = {
  activation: { observer: "MinMaxObserver", kwargs: {} },
  weight: { observer: "PerChannelMinMaxObserver", kwargs: { dtype: "qint8", qscheme: "per_channel_symmetric", ch_axis: 0 } },
};
/** qint8 activations with the default eps: qnnpack's BackendConfig refuses it (scale_min_lower_bound 2^-12). */
const QBAD = { activation: { observer: "MinMaxObserver", kwargs: { dtype: "qint8" } }, weight: W8 };
const FIXED = {
  activation: { observer: "FixedQParamsObserver", kwargs: { scale: 1 / 256, zero_point: 0, dtype: "quint8", quant_min: 0, quant_max: 255 } },
  weight: W8,
};

// ---- small models in the golden architecture form ------------------------------------------------

/** Deterministic float32 values (mulberry32). */
function values(n: number, seed: number, lo = -1, hi = 1): number[] {
  let a = seed >>> 0;
  return Array.from({ length: n }, () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.fround(lo + ((hi - lo) * ((t ^ (t >>> 14)) >>> 0)) / 4294967296);
  });
}

const tensorJson = (shape: number[], seed: number, lo = -0.5, hi = 0.5) => ({ dtype: "float32", shape, data: values(shape.reduce((a, b) => a * b, 1), seed, lo, hi) });

/** Builds architectures node by node with parameters in a state_dict. */
class ArchBuilder {
  readonly nodes: FxArchNode[] = [];
  readonly sd: Record<string, unknown> = {};
  private seed = 1;
  private count = 0;

  input(name: string, shape: number[]): string {
    this.nodes.push({ name, op: "input", shape, dtype: "float32" });
    return name;
  }

  private fresh(base: string): string {
    return `${base}${this.count++}`;
  }

  module(op: string, inputs: string[], attrs: Record<string, unknown> = {}, params: Record<string, number[]> = {}, base = op): string {
    const name = this.fresh(base);
    const p: Record<string, string> = {};
    for (const [role, shape] of Object.entries(params)) {
      p[role] = `${name}.${role}`;
      this.sd[`${name}.${role}`] = role === "running_var" ? tensorJson(shape, this.seed++, 0.5, 1.5) : tensorJson(shape, this.seed++);
    }
    this.nodes.push({ name, op, module: name, inputs, attrs, params: p });
    return name;
  }

  fn(op: string, inputs: string[], attrs: Record<string, unknown> = {}): string {
    const name = this.fresh(op);
    this.nodes.push({ name, op, inputs, attrs });
    return name;
  }

  conv(x: string, cin: number, cout: number, k: number): string {
    return this.module("conv2d", [x], {
      in_channels: cin, out_channels: cout, kernel_size: [k, k], stride: [1, 1], padding: [(k - 1) / 2, (k - 1) / 2], dilation: [1, 1], groups: 1, bias: true,
    }, { weight: [cout, cin, k, k], bias: [cout] }, "conv");
  }

  bn(x: string, c: number): string {
    return this.module("batch_norm2d", [x], { num_features: c, eps: 1e-5 }, { weight: [c], bias: [c], running_mean: [c], running_var: [c] }, "bn");
  }

  arch(inputs: string[], outputs: string[]): FxArchitecture {
    return { inputs, outputs, nodes: this.nodes };
  }
}

/** One step of a random model over a [N, C, H, W] stream (C = 4). */
type Step = "conv" | "conv_bn" | "conv_bn_relu" | "conv_relu" | "hardswish" | "relu" | "maxpool" | "add_prev" | "add_relu" | "mul_gate" | "cat_conv" | "layer_norm";
const STEPS: readonly Step[] = ["conv", "conv_bn", "conv_bn_relu", "conv_relu", "hardswish", "relu", "maxpool", "add_prev", "add_relu", "mul_gate", "cat_conv", "layer_norm"];

function randomModel(steps: readonly { step: Step; pick: number }[], head: boolean): { arch: FxArchitecture; sd: Record<string, unknown>; modules: string[] } {
  const b = new ArchBuilder();
  const C = 4;
  let cur = b.input("x", [2, C, 5, 5]);
  const seen = [cur];
  for (const { step, pick } of steps) {
    const prev = seen[pick % seen.length]!;
    switch (step) {
      case "conv": cur = b.conv(cur, C, C, 3); break;
      case "conv_bn": cur = b.bn(b.conv(cur, C, C, 3), C); break;
      case "conv_bn_relu": cur = b.module("relu", [b.bn(b.conv(cur, C, C, 3), C)], {}, {}, "relu"); break;
      case "conv_relu": cur = b.module("relu", [b.conv(cur, C, C, 1)], {}, {}, "relu"); break;
      case "hardswish": cur = b.module("hardswish", [cur], {}, {}, "hs"); break;
      case "relu": cur = b.module("relu", [cur], {}, {}, "relu"); break;
      case "maxpool": cur = b.module("max_pool2d", [cur], { kernel_size: 3, stride: 1, padding: 1, dilation: 1, ceil_mode: false }, {}, "pool"); break;
      case "add_prev": cur = b.fn("add", [cur, prev]); break;
      case "add_relu": cur = b.module("relu", [b.fn("add", [cur, prev])], {}, {}, "relu"); break;
      case "mul_gate": cur = b.fn("mul", [cur, b.module("hardsigmoid", [b.conv(cur, C, C, 1)], {}, {}, "gate")]); break;
      case "cat_conv": cur = b.conv(b.fn("cat", [cur, b.conv(cur, C, C, 1)], { dim: 1 }), 2 * C, C, 1); break;
      case "layer_norm": cur = b.module("layer_norm", [cur], { normalized_shape: [5], eps: 1e-5, elementwise_affine: true }, { weight: [5], bias: [5] }, "ln"); break;
    }
    seen.push(cur);
  }
  if (head) {
    const pooled = b.module("adaptive_avg_pool2d", [cur], { output_size: [1, 1] }, {}, "gap");
    const flat = b.fn("flatten", [pooled], { start_dim: 1, end_dim: -1 });
    cur = b.module("linear", [flat], { in_features: C, out_features: 3, bias: true }, { weight: [3, C], bias: [3] }, "fc");
  }
  const modules = b.nodes.filter((n) => n.module !== undefined).map((n) => n.module!);
  return { arch: b.arch(["x"], [cur]), sd: b.sd, modules };
}

function foldedGraph(arch: FxArchitecture, sd: Record<string, unknown>): Graph {
  return foldConvBatchNormTorch(buildFxModelProgram(arch, sd).graph);
}

/** The plan observer whose module quantizes input `value` of `node`, read from the node's annotation. */
function observerRead(plan: FxQuantizationPlan, g: Graph, value: string, node: string): FxObserverPlan | undefined {
  const spec = getAnnotation(g.nodes.find((n) => n.name === node)!)?.inputQSpecMap[value];
  if (spec === undefined || spec === null) return undefined;
  const target = spec.kind === "shared" ? spec.edgeOrNode : { kind: "edge" as const, value, node };
  return plan.observers.find((o) => targetKey(o.target) === targetKey(target));
}

// ---- the golden cases, planned without running anything --------------------------------------------

describe("FxQnnpackQuantizer on the golden cases (planning only)", () => {
  for (const c of golden.cases) {
    it(`${c.id}: observer edges, sharing, classes and weights are FX's`, () => {
      const q = new FxQnnpackQuantizer(parseFxQConfigMapping(c.qconfig_mapping));
      const g = q.transformForAnnotation(buildFxModelProgram(c.architecture, c.state_dict).graph);
      const annotated = q.annotate(g);
      const plan = q.lastPlan!;
      const keys = plan.observers.map((o) => o.key);
      expect([...keys].sort()).toEqual(Object.keys(c.observers).sort());
      expect(plan.weights.map((w) => w.key).sort()).toEqual(Object.keys(c.weights).sort());
      const byKey = new Map(plan.observers.map((o) => [o.key, o] as const));
      for (const [key, exp] of Object.entries<any>(c.observers)) {
        expect(byKey.get(key)!.observer, key).toBe(exp.observer);
        const shared = exp.shared_with as string | undefined;
        if (shared !== undefined) expect(byKey.get(key)!.instance, `${key} shares with ${shared}`).toBe(byKey.get(shared)!.instance);
        else for (const other of keys.filter((k) => k !== key && c.observers[k].shared_with !== key)) expect(byKey.get(other)!.instance, `${key} vs ${other}`).not.toBe(byKey.get(key)!.instance);
      }
      // The annotations encode exactly these observer instances for preparePt2e's grouping.
      validateAnnotations(annotated);
      const grouping = groupTargets(annotated);
      for (const a of plan.observers) {
        for (const b of plan.observers) {
          const same = grouping.groupOf.get(targetKey(a.target)) === grouping.groupOf.get(targetKey(b.target));
          expect(same, `${a.key} / ${b.key}`).toBe(a.instance === b.instance);
        }
      }
      // Nodes PyTorch leaves in float carry no annotation; the output's observer is known.
      for (const p of plan.patterns.filter((p) => !p.quantized)) for (const n of p.nodes) expect(getAnnotation(annotated.nodes.find((x) => x.name === n)!)).toBeUndefined();
      expect(plan.outputKeys.every((k) => k !== undefined && k in c.observers)).toBe(true);
    });
  }
});

// ---- FX's rules on small models ------------------------------------------------------------------------

describe("FX 1.13 rules", () => {
  it("a null global qconfig quantizes nothing and says why", () => {
    const b = new ArchBuilder();
    const y = b.module("relu", [b.conv(b.input("x", [1, 4, 5, 5]), 4, 4, 3)], {}, {}, "relu");
    const plan = planFxQuantization(foldedGraph(b.arch(["x"], [y]), b.sd), parseFxQConfigMapping({ global: null }));
    expect(plan.observers).toEqual([]);
    expect(plan.annotations.size).toBe(0);
    expect(plan.patterns.every((p) => !p.quantized && /None/.test(p.reason ?? ""))).toBe(true);
    expect(plan.outputKeys).toEqual([undefined]);
  });

  it("a float fused module hands its output to the next quantized op's input observer (<module>.output)", () => {
    const b = new ArchBuilder();
    const h = b.module("relu", [b.conv(b.input("x", [1, 4, 5, 5]), 4, 4, 3)], {}, {}, "relu");
    const y = b.conv(h, 4, 4, 1);
    const plan = planFxQuantization(foldedGraph(b.arch(["x"], [y]), b.sd), parseFxQConfigMapping({ global: Q8, module_name: { conv0: null } }));
    expect(plan.observers.map((o) => o.key)).toEqual(["conv0.output", "conv2.output"]);
    expect(plan.observers[0]!.target).toEqual({ kind: "edge", value: "relu1", node: "conv2" });
    expect(plan.weights.map((w) => w.key)).toEqual(["conv2.weight"]);
  });

  it("module_name entries cover submodules; object_type entries match the class", () => {
    const b = new ArchBuilder();
    const x = b.input("x", [1, 4, 5, 5]);
    const y = b.module("hardsigmoid", [b.conv(x, 4, 4, 1)], {}, {}, "gate");
    const g = foldedGraph(b.arch(["x"], [y]), b.sd);
    const fixed = planFxQuantization(g, parseFxQConfigMapping({ global: Q8, object_type: { "torch.nn.Hardsigmoid": FIXED } }));
    expect(fixed.observers.map((o) => `${o.key}:${o.observer}`)).toEqual(["input:x:MinMaxObserver", "conv0.output:MinMaxObserver", "gate1.output:FixedQParamsObserver"]);
    // Without a FixedQParamsObserver the fixed-qparams op stays float, with the reason.
    const plain = planFxQuantization(g, parseFxQConfigMapping({ global: Q8 }));
    expect(plain.observers.map((o) => o.key)).toEqual(["input:x", "conv0.output"]);
    expect(plain.patterns.find((p) => p.nodes.includes("gate1"))!.reason).toMatch(/FixedQParamsObserver/);
  });

  it("a fused module whose classes have different object_type qconfigs is refused, as FX refuses it", () => {
    const b = new ArchBuilder();
    const y = b.module("relu", [b.conv(b.input("x", [1, 4, 5, 5]), 4, 4, 3)], {}, {}, "relu");
    const g = foldedGraph(b.arch(["x"], [y]), b.sd);
    const run = () => planFxQuantization(g, parseFxQConfigMapping({ global: Q8, object_type: { "torch.nn.Conv2d": QS } }));
    expect(run).toThrow(/fuses Conv2d \+ ReLU/);
    try {
      run();
    } catch (e) {
      expect(isQforgeError(e, "BAD_CONFIG")).toBe(true);
    }
    // The same entry for both classes is accepted and applies to the fused module.
    const ok = planFxQuantization(g, parseFxQConfigMapping({ global: Q8, object_type: { "torch.nn.Conv2d": QS, "torch.nn.ReLU": QS } }));
    expect(ok.observers.every((o) => o.spec.dtype === "int8")).toBe(true);
  });

  it("qint8 activations with PyTorch's default eps are not supported by qnnpack: the pattern stays float", () => {
    const b = new ArchBuilder();
    const y = b.conv(b.input("x", [1, 4, 5, 5]), 4, 4, 3);
    const plan = planFxQuantization(foldedGraph(b.arch(["x"], [y]), b.sd), parseFxQConfigMapping({ global: QBAD }));
    expect(plan.observers).toEqual([]);
    expect(plan.patterns[0]!.reason).toMatch(/eps >= 2\^-12/);
  });

  it("max pooling, flatten and cat share one observer with their (first) input; a second input's observer joins it", () => {
    const b = new ArchBuilder();
    const x = b.input("x", [1, 4, 5, 5]);
    const a = b.conv(x, 4, 4, 1);
    const p = b.module("max_pool2d", [a], { kernel_size: 3, stride: 1, padding: 1 }, {}, "pool");
    const c = b.fn("cat", [p, x], { dim: 1 });
    const f = b.fn("flatten", [c], { start_dim: 1, end_dim: -1 });
    const g = foldedGraph(b.arch(["x"], [f]), b.sd);
    const plan = planFxQuantization(g, parseFxQConfigMapping({ global: Q8 }));
    const inst = new Map(plan.observers.map((o) => [o.key, o.instance] as const));
    expect([...inst.keys()]).toEqual(["input:x", "conv0.output", "pool1.output", "cat2.output", "flatten3.output"]);
    expect(inst.get("pool1.output")).toBe(inst.get("conv0.output"));
    expect(inst.get("cat2.output")).toBe(inst.get("conv0.output"));
    expect(inst.get("flatten3.output")).toBe(inst.get("conv0.output"));
    // FX re-points cat's second input observer (input:x, also conv0's input) at the first input's instance.
    expect(inst.get("input:x")).toBe(inst.get("conv0.output"));
  });

  it("a dtype change between two quantized ops chains a second observer (<consumer>.input<k>)", () => {
    const b = new ArchBuilder();
    const x = b.input("x", [1, 4, 5, 5]);
    const y = b.conv(b.conv(x, 4, 4, 1), 4, 4, 1);
    const plan = planFxQuantization(foldedGraph(b.arch(["x"], [y]), b.sd), parseFxQConfigMapping({ global: Q8, module_name: { conv1: QS } }));
    expect(plan.observers.map((o) => `${o.key}${o.chained ? ` after ${o.after}` : ""}`)).toEqual([
      "input:x", "conv0.output", "conv1.input0 after conv0.output", "conv1.output",
    ]);
    expect(plan.observers[2]!.target).toEqual({ kind: "edge", value: "conv0", node: "conv1" });
  });
});

// ---- random models: the plan is FX's rules, its annotations are its groups, and the flow runs ----------

const QCONFIGS = { Q8, QS, QPC, QBAD, null: null } as const;
type QName = keyof typeof QCONFIGS;

describe("random models", () => {
  it("annotations reproduce the plan's observer instances, chains only on dtype changes, share ops share, and the flow runs", () => {
    const step = fc.record({ step: fc.constantFrom(...STEPS), pick: fc.nat({ max: 8 }) });
    const qname = fc.constantFrom<QName>("Q8", "QS", "QPC", "QBAD", "null");
    fc.assert(fc.property(
      fc.array(step, { minLength: 1, maxLength: 6 }), fc.boolean(), fc.constantFrom<QName>("Q8", "QS", "QPC"),
      fc.array(fc.tuple(fc.nat({ max: 30 }), qname), { maxLength: 3 }), fc.boolean(), fc.nat(),
      (steps, head, global, overrides, fixedGate, seed) => {
        const { arch, sd, modules } = randomModel(steps, head);
        const moduleName: Record<string, unknown> = {};
        for (const [i, q] of overrides) moduleName[modules[i % modules.length]!] = QCONFIGS[q];
        const mapping = { global: QCONFIGS[global], module_name: moduleName, ...(fixedGate ? { object_type: { "torch.nn.Hardsigmoid": FIXED } } : {}) };
        const quantizer = new FxQnnpackQuantizer(parseFxQConfigMapping(mapping));
        const ep = buildFxModelProgram(arch, sd);
        const g = quantizer.transformForAnnotation(ep.graph);
        const annotated = quantizer.annotate(g);
        const plan = quantizer.lastPlan!;
        validateAnnotations(annotated);

        const keys = plan.observers.map((o) => o.key);
        expect(new Set(keys).size).toBe(keys.length);
        const grouping = groupTargets(annotated);
        for (const a of plan.observers) {
          expect(grouping.targets.has(targetKey(a.target)), a.key).toBe(true);
          for (const b of plan.observers) {
            expect(grouping.groupOf.get(targetKey(a.target)) === grouping.groupOf.get(targetKey(b.target)), `${a.key} / ${b.key}`).toBe(a.instance === b.instance);
          }
        }
        const byKey = new Map(plan.observers.map((o) => [o.key, o] as const));
        for (const o of plan.observers.filter((x) => x.chained)) {
          // FX only observes an observed value again for another dtype.
          expect(o.spec.dtype, `${o.key} after ${o.after}`).not.toBe(byKey.get(o.after!)!.spec.dtype);
        }
        for (const n of annotated.nodes) {
          if (!["max_pool", "flatten", "concat", "adaptive_avg_pool2d"].includes(n.op)) continue;
          const out = plan.observers.find((o) => o.target.kind === "node" && o.target.node === n.name);
          if (out === undefined) continue;
          const first = observerRead(plan, annotated, n.inputs[0]!, n.name);
          expect(first, n.name).toBeDefined();
          expect(out.instance, `${n.name} shares its input's observer`).toBe(first!.instance);
        }

        // The whole flow runs on the plan: prepare, calibrate, convert, lower.
        const prepared = preparePt2e(ep, new FxQnnpackQuantizer(parseFxQConfigMapping(mapping)));
        const batch = [{ dtype: "float32" as const, shape: [2, 4, 5, 5], data: Float32Array.from(values(200, seed + 1)) }];
        calibrate(prepared, [batch], { progress: false });
        const converted = convertPt2e(prepared);
        const lowered = lowerQdq(converted);
        for (const p of [converted, lowered]) {
          const [y] = runProgram(p, batch);
          expect(Array.from(toFloat64(y!)).every(Number.isFinite)).toBe(true);
          expect(numel(y!.shape)).toBe(head ? 6 : 200);
        }
      },
    ), { numRuns: 40 });
  });
});
