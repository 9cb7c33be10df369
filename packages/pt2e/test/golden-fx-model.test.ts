import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { foldConvBnWeights, fromArray, isQforgeError, tensor, toFloat64, type Tensor } from "@qforge/ir";
import { runOp, runProgram } from "@qforge/runtime";
import {
  buildFxModelProgram, compareFloat, compareLsb, foldConvBatchNormTorch, fxSpec, goldenBatches,
  goldenTensor, observerFacts, parseFxQConfigMapping, qnnpackUnsupportedReason, resolveFxQConfig, type FxArchitecture,
} from "../src/golden/index.js";

const goldenDir = process.env.QFORGE_GOLDEN_DIR ?? fileURLToPath(new URL("../../../../shared/golden/", import.meta.url));
const golden = JSON.parse(readFileSync(join(goldenDir, "fx_models.json"), "utf8")) as { cases: any[] };

function expectCode(f: () => unknown, code: Parameters<typeof isQforgeError>[1], pattern: RegExp): void {
  let thrown: unknown;
  try {
    f();
  } catch (e) {
    thrown = e;
  }
  expect(isQforgeError(thrown, code), String(thrown)).toBe(true);
  expect(String((thrown as Error).message)).toMatch(pattern);
}

const f32s = (n: number, seed: number): number[] => {
  let s = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.fround(s / 2 ** 32 - 0.5);
  });
};
const tj = (shape: number[], seed: number) => ({ dtype: "float32", shape, data: f32s(shape.reduce((a, b) => a * b, 1), seed) });

describe("buildFxModelProgram", () => {
  it("names parameters by state_dict key and gives module nodes their module stack", () => {
    const c = golden.cases.find((x) => x.architecture.nodes.some((n: any) => n.op === "batch_norm2d"))!;
    const ep = buildFxModelProgram(c.architecture, c.state_dict);
    for (const n of c.architecture.nodes.filter((x: any) => x.op !== "input")) {
      const node = ep.graph.nodes.find((x) => x.name === n.name)!;
      expect(node, n.name).toBeDefined();
      if (n.module !== undefined) expect(node.meta.moduleStack).toEqual([{ path: n.module, type: expect.any(String) }]);
      else expect(node.meta.moduleStack).toBeUndefined();
      for (const key of Object.values<string>(n.params ?? {})) {
        expect(node.inputs).toContain(key);
        expect(ep.graph.constants[key]!.kind).toBe(/running_/.test(key) ? "buffer" : "parameter");
        expect(Array.from(toFloat64(ep.graph.constants[key]!.tensor))).toEqual(c.state_dict[key].data);
      }
    }
    expect(ep.inputs.map((s) => s.name)).toEqual(c.architecture.inputs);
    expect(ep.outputs.map((s) => s.value)).toEqual(c.architecture.outputs);
  });

  it("maps every architecture op of the golden cases to a canonical op", () => {
    const ops = new Map<string, string>();
    for (const c of golden.cases) {
      const ep = buildFxModelProgram(c.architecture, c.state_dict);
      for (const n of c.architecture.nodes) if (n.op !== "input") ops.set(n.op, ep.graph.nodes.find((x) => x.name === n.name)!.op);
    }
    const expected: Record<string, string> = {
      linear: "linear", conv2d: "conv", batch_norm2d: "batch_norm", relu: "relu", hardswish: "hardswish", hardsigmoid: "hard_sigmoid",
      adaptive_avg_pool2d: "adaptive_avg_pool2d", layer_norm: "layer_normalization", add: "add", mul: "mul", cat: "concat", flatten: "flatten", softmax: "softmax",
    };
    for (const [op, canonical] of ops) expect(canonical, op).toBe(expected[op]);
  });

  it("runs max_pool2d and a flatten over inner dims like torch", () => {
    const arch: FxArchitecture = {
      inputs: ["x"], outputs: ["f"],
      nodes: [
        { name: "x", op: "input", shape: [1, 2, 4, 4], dtype: "float32" },
        { name: "p", op: "max_pool2d", module: "p", inputs: ["x"], attrs: { kernel_size: 2, stride: null, padding: 0, dilation: 1, ceil_mode: false } },
        { name: "f", op: "flatten", inputs: ["p"], attrs: { start_dim: 0, end_dim: 1 } },
      ],
    };
    const ep = buildFxModelProgram(arch, {});
    const x = fromArray("float32", [1, 2, 4, 4], Array.from({ length: 32 }, (_, i) => ((i * 7) % 11) - 5));
    const [y] = runProgram(ep, [x]);
    expect(y!.shape).toEqual([2, 2, 2]);
    // max over each 2x2 window, computed directly
    const xv = toFloat64(x);
    const want: number[] = [];
    for (let c = 0; c < 2; c++) for (let i = 0; i < 2; i++) for (let j = 0; j < 2; j++) {
      want.push(Math.max(...[0, 1].flatMap((a) => [0, 1].map((b) => xv[c * 16 + (2 * i + a) * 4 + 2 * j + b]!))));
    }
    expect(Array.from(toFloat64(y!))).toEqual(want);
  });

  it("refuses a malformed architecture naming the node", () => {
    const base = { inputs: ["x"], outputs: ["y"] };
    const x = { name: "x", op: "input", shape: [1, 3], dtype: "float32" };
    expectCode(() => buildFxModelProgram({ ...base, nodes: [x, { name: "y", op: "gelu", inputs: ["x"] }] }, {}), "BAD_DATA", /'y' \(gelu\): unknown op/);
    expectCode(() => buildFxModelProgram({ ...base, nodes: [x, { name: "y", op: "linear", module: "y", inputs: ["x"], params: { weight: "y.weight" } }] }, {}), "BAD_DATA", /not in state_dict/);
    expectCode(() => buildFxModelProgram({ ...base, nodes: [x, { name: "y", op: "relu", inputs: ["z"] }] }, {}), "BAD_DATA", /input 'z' is not an earlier node/);
    expectCode(() => buildFxModelProgram({ inputs: ["x", "w"], outputs: ["x"], nodes: [x] }, {}), "BAD_DATA", /'w' is not an input node/);
  });

  it("flatten(x, s, e) has torch's shape for every start and end dim", () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 4 }), fc.nat(), fc.nat(), (shape, a, b) => {
      const r = shape.length;
      const s = a % r;
      const e = s + (b % (r - s));
      const arch: FxArchitecture = {
        inputs: ["x"], outputs: ["f"],
        nodes: [{ name: "x", op: "input", shape, dtype: "float32" }, { name: "f", op: "flatten", inputs: ["x"], attrs: { start_dim: s, end_dim: e - r } }],
      };
      const n = shape.reduce((p, d) => p * d, 1);
      const [y] = runProgram(buildFxModelProgram(arch, {}), [fromArray("float32", shape, Array.from({ length: n }, (_, i) => i))]);
      expect(y!.shape).toEqual([...shape.slice(0, s), shape.slice(s, e + 1).reduce((p, d) => p * d, 1), ...shape.slice(e + 1)]);
      expect(Array.from(toFloat64(y!))).toEqual(Array.from({ length: n }, (_, i) => i));
    }), { numRuns: 60 });
  });
});

describe("conv + batch norm folding with PyTorch's float32 order", () => {
  it("reproduces fused_float_params of every golden case bit for bit", () => {
    let checked = 0;
    for (const c of golden.cases) {
      const g = foldConvBatchNormTorch(buildFxModelProgram(c.architecture, c.state_dict).graph);
      expect(g.nodes.some((n) => n.op === "batch_norm"), c.id).toBe(false);
      for (const n of g.nodes.filter((x) => x.op === "conv" || x.op === "linear")) {
        const module = n.meta.moduleStack![0]!.path;
        for (const [role, i] of [["weight", 1], ["bias", 2]] as const) {
          const exp = c.fused_float_params[`${module}.${role}`];
          if (exp === undefined) continue;
          expect(Array.from(toFloat64(g.constants[n.inputs[i]!]!.tensor)), `${c.id} ${module}.${role}`).toEqual(exp.data);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(0);
  });

  it("keeps conv + batch_norm outputs (float32 rounding apart) and the conv's module", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), fc.boolean(), fc.nat(), (cin, cout, bias, seed) => {
      const sd: Record<string, unknown> = {
        "c.weight": tj([cout, cin, 3, 3], seed), "b.weight": tj([cout], seed + 1), "b.bias": tj([cout], seed + 2),
        "b.running_mean": tj([cout], seed + 3), "b.running_var": { dtype: "float32", shape: [cout], data: f32s(cout, seed + 4).map((v) => Math.fround(v + 1)) },
        ...(bias ? { "c.bias": tj([cout], seed + 5) } : {}),
      };
      const arch: FxArchitecture = {
        inputs: ["x"], outputs: ["b"],
        nodes: [
          { name: "x", op: "input", shape: [1, cin, 4, 4], dtype: "float32" },
          { name: "c", op: "conv2d", module: "c", inputs: ["x"], attrs: { stride: 1, padding: 1, dilation: 1, groups: 1 }, params: { weight: "c.weight", ...(bias ? { bias: "c.bias" } : {}) } },
          { name: "b", op: "batch_norm2d", module: "b", inputs: ["c"], attrs: { num_features: cout, eps: 1e-5 }, params: { weight: "b.weight", bias: "b.bias", running_mean: "b.running_mean", running_var: "b.running_var" } },
        ],
      };
      const ep = buildFxModelProgram(arch, sd);
      const g = foldConvBatchNormTorch(ep.graph);
      // The folded conv produces the batch norm's output value under a new name: outputs follow by position.
      const folded = { ...ep, graph: g, outputs: ep.outputs.map((s, i) => ({ name: s.name, value: g.outputs[i]! })) };
      const conv = folded.graph.nodes.find((n) => n.op === "conv")!;
      expect(conv.meta.moduleStack).toEqual([{ path: "c", type: "Conv2d" }]);
      const x = fromArray("float32", [1, cin, 4, 4], f32s(16 * cin, seed + 6));
      const r = compareFloat(runProgram(folded, [x])[0]!, runProgram(ep, [x])[0]!, 1e-5);
      expect(r.bad, r.first).toBe(0);
    }), { numRuns: 40 });
  });

  it("rounds every step in float32 (a value where float64 and float32 orders differ)", () => {
    const w = tensor("float32", [1, 1, 1, 1], Float32Array.of(0.1));
    const one = (v: number): Tensor => tensor("float32", [1], Float32Array.of(v));
    const { weight, bias } = foldConvBnWeights(w, one(0.3), one(0.7), one(0.2), one(0.05), one(0.9), 1e-5);
    const f = Math.fround;
    const r = f(1 / f(Math.sqrt(f(f(0.9) + f(1e-5)))));
    expect(toFloat64(weight)[0]).toBe(f(f(0.1) * f(f(0.7) * r)));
    expect(toFloat64(bias)[0]).toBe(f(f(f(f(f(0.3) - f(0.05)) * r) * f(0.7)) + f(0.2)));
  });
});

describe("QConfigMapping", () => {
  const Q = (dtype: string) => ({ activation: { observer: "MinMaxObserver", kwargs: { dtype } }, weight: { observer: "MinMaxObserver", kwargs: { dtype: "qint8", qscheme: "per_tensor_symmetric" } } });

  it("resolves module_name (with parents) over object_type over global", () => {
    const m = parseFxQConfigMapping({
      global: Q("quint8"),
      module_name: { "features": Q("qint8"), "features.2": null },
      object_type: { "torch.nn.Linear": null, "operator.add": Q("qint8") },
    });
    const mod = (path: string, type: string) => resolveFxQConfig(m, { kind: "module", path, types: [type] });
    expect(mod("features.0", "Conv2d")?.activation.kwargs["dtype"]).toBe("qint8");
    expect(mod("features.2", "Conv2d")).toBeNull();
    expect(mod("features.2.sub", "Conv2d")).toBeNull();
    expect(mod("head", "Linear")).toBeNull();
    expect(mod("features.1", "Linear")?.activation.kwargs["dtype"]).toBe("qint8");
    expect(mod("other", "Conv2d")?.activation.kwargs["dtype"]).toBe("quint8");
    expect(resolveFxQConfig(m, { kind: "function", op: "add" })?.activation.kwargs["dtype"]).toBe("qint8");
    expect(resolveFxQConfig(m, { kind: "function", op: "mul" })?.activation.kwargs["dtype"]).toBe("quint8");
  });

  it("refuses unknown sections and observers", () => {
    expectCode(() => parseFxQConfigMapping({ global: null, module_name_object_type_order: {} }), "BAD_CONFIG", /not supported/);
    expectCode(() => parseFxQConfigMapping({ global: { activation: { observer: "MagicObserver", kwargs: {} } } }), "BAD_CONFIG", /unknown observer class/);
    expectCode(() => observerFacts({ observer: "MinMaxObserver", kwargs: { dtype: "quint8", qscheme: "per_tensor_symmetric", reduce_range: true } }), "BAD_CONFIG", /./);
  });

  it("turns observer configs into specs: default ranges stay implicit, custom ones are kept, FixedQParams is fixed", () => {
    expect(fxSpec({ observer: "HistogramObserver", kwargs: { reduce_range: false } })).toEqual({
      kind: "spec", dtype: "uint8", qscheme: "per_tensor_affine", isDynamic: false,
      observerOrFakeQuant: { kind: "HistogramObserver", options: { reduceRange: false } },
    });
    expect(fxSpec({ observer: "MinMaxObserver", kwargs: { dtype: "qint8", qscheme: "per_tensor_symmetric", quant_min: -127, quant_max: 127, eps: 2 ** -12 } })).toMatchObject({
      dtype: "int8", qscheme: "per_tensor_symmetric", quantMin: -127, quantMax: 127,
      observerOrFakeQuant: { options: { quantMin: -127, quantMax: 127, eps: 2 ** -12 } },
    });
    expect(fxSpec({ observer: "PerChannelMinMaxObserver", kwargs: { dtype: "qint8", qscheme: "per_channel_symmetric", ch_axis: 0 } })).toMatchObject({ qscheme: "per_channel_symmetric", chAxis: 0 });
    expect(fxSpec({ observer: "FixedQParamsObserver", kwargs: { scale: 1 / 256, zero_point: 0, dtype: "quint8", quant_min: 0, quant_max: 255 } })).toEqual({
      kind: "fixed", dtype: "uint8", scale: 1 / 256, zeroPoint: 0, quantMin: 0, quantMax: 255, qscheme: "per_tensor_affine",
    });
  });

  it("checks qnnpack's dtype constraints per pattern family", () => {
    const W = { observer: "MinMaxObserver" as const, kwargs: { dtype: "qint8", qscheme: "per_tensor_symmetric" } };
    const W127 = { observer: "MinMaxObserver" as const, kwargs: { dtype: "qint8", qscheme: "per_tensor_symmetric", quant_min: -127, quant_max: 127, eps: 2 ** -12 } };
    const act = (kwargs: Record<string, unknown>) => ({ observer: "MinMaxObserver" as const, kwargs });
    expect(qnnpackUnsupportedReason("weighted", { activation: act({}), weight: W })).toBeUndefined();
    expect(qnnpackUnsupportedReason("weighted", { activation: act({ dtype: "qint8", eps: 2 ** -12 }), weight: W127 })).toBeUndefined();
    expect(qnnpackUnsupportedReason("weighted", { activation: act({ dtype: "qint8", eps: 2 ** -12 }), weight: W })).toMatch(/\[-127, 127\]/);
    expect(qnnpackUnsupportedReason("binary", { activation: act({ dtype: "qint8" }), weight: null })).toMatch(/eps/);
    expect(qnnpackUnsupportedReason("binary", { activation: act({ dtype: "qint32" }), weight: null })).toMatch(/qint32/);
    expect(qnnpackUnsupportedReason("fixed", { activation: act({}), weight: W })).toMatch(/FixedQParamsObserver/);
    expect(qnnpackUnsupportedReason("weighted", { activation: act({}), weight: null })).toMatch(/weight observer/);
  });
});

describe("golden tensors and comparisons", () => {
  it("reads float32 bit for bit, int64 as bigints, and batches of one or several tensors", () => {
    const t = goldenTensor({ dtype: "float32", shape: [2], data: [0.1000000014901161, -0] }, "t");
    expect(Array.from(t.data as Float32Array)).toEqual([Math.fround(0.1), -0]);
    expect(goldenTensor({ dtype: "int64", shape: [], data: [7] }, "n").data).toEqual(BigInt64Array.of(7n));
    const one = { dtype: "float32", shape: [1], data: [1] };
    expect(goldenBatches([one, [one, one]], "b").map((b) => b.length)).toEqual([1, 2]);
    expectCode(() => goldenTensor({ dtype: "float32", shape: [3], data: [1] }, "bad"), "BAD_DATA", /needs 3 values/);
  });

  it("counts output differences in whole quantization steps", () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: -5, max: 5 }), { minLength: 1, maxLength: 30 }), fc.integer({ min: -100, max: 100 }), (offsets, base) => {
      const step = 0.0123;
      const e = fromArray("float32", [offsets.length], offsets.map((_, i) => (base + i) * step));
      const a = fromArray("float32", [offsets.length], offsets.map((o, i) => (base + i + o) * step));
      const r = compareLsb(a, e, step);
      expect(r.maxLsb).toBe(Math.max(...offsets.map(Math.abs)));
      expect(r.within1).toBe(offsets.filter((o) => Math.abs(o) <= 1).length);
      expect(r.within3).toBe(offsets.filter((o) => Math.abs(o) <= 3).length);
    }));
    expect(compareLsb(fromArray("float32", [2], [0, 0]), fromArray("float32", [1, 2], [0, 0]), 1).maxLsb).toBe(Infinity);
  });

  it("compares floats relative to max(|expected|, 1)", () => {
    const e = fromArray("float32", [3], [1000, 1e-3, 0]);
    expect(compareFloat(fromArray("float32", [3], [1000.005, 1e-3 + 5e-6, 5e-6]), e, 1e-5).bad).toBe(0);
    const r = compareFloat(fromArray("float32", [3], [1000.02, 1e-3, 0]), e, 1e-5);
    expect(r.bad).toBe(1);
    expect(r.first).toMatch(/^\[0\]/);
  });

  it("runs the ops the harness relies on through the runtime", () => {
    // hard_sigmoid with torch's alpha/beta equals relu6(x + 3) / 6
    const x = fromArray("float32", [5], [-4, -3, 0, 1.5, 4]);
    const [y] = runOp("hard_sigmoid", [x], { alpha: 1 / 6, beta: 0.5 });
    expect(Array.from(toFloat64(y!))).toEqual([0, 0, 0.5, Math.fround(0.75), 1]);
  });
});
