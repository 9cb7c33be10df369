import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { fromArray, GraphBuilder, scalar, toFloat64, type Graph, type NodeMeta } from "@qforge/ir";
import {
  compareResults, floatViewOf, formatComparison, numericRun, sortWorstFirst, sqnr, type ComparedNode, type NodeComparison,
} from "@qforge/debug";

/** Deterministic pseudo-random floats in [-1, 1). */
function rand(n: number, seed: number): number[] {
  let s = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

const meta = (handle: number, path: string, type: string): NodeMeta => ({ debugHandle: handle, moduleStack: [{ path, type }] });

/** conv -> relu -> max_pool -> flatten -> linear, every node with a debug handle; `perturb` edits one weight. */
function cnn(perturb?: "conv" | "fc"): Graph {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", [1, 2, 6, 6]);
  const w1 = rand(4 * 2 * 3 * 3, 1).map((v) => v * 0.5);
  if (perturb === "conv") w1[5] = w1[5]! + 0.4;
  const cw = b.constant("conv.weight", fromArray("float32", [4, 2, 3, 3], w1), "parameter");
  const cb = b.constant("conv.bias", fromArray("float32", [4], rand(4, 2)), "parameter");
  const c = b.node1("conv", [x, cw, cb], { pads: [1, 1, 1, 1] }, { name: "conv", meta: meta(1, "conv", "Conv2d") });
  const r = b.node1("relu", [c], {}, { name: "relu", meta: meta(2, "relu", "ReLU") });
  const p = b.node1("max_pool", [r], { kernel_shape: [2, 2], strides: [2, 2] }, { name: "pool", meta: meta(3, "pool", "MaxPool2d") });
  const f = b.node1("flatten", [p], { axis: 1 }, { name: "flatten", meta: { debugHandle: 4 } });
  const w2 = rand(5 * 36, 3).map((v) => v * 0.2);
  if (perturb === "fc") w2[7] = w2[7]! - 0.5;
  const fw = b.constant("fc.weight", fromArray("float32", [5, 36], w2), "parameter");
  const fb = b.constant("fc.bias", fromArray("float32", [5], rand(5, 4)), "parameter");
  const y = b.node1("linear", [f, fw, fb], {}, { name: "fc", meta: meta(5, "fc", "Linear") });
  b.output(y);
  return b.build();
}

const input = fromArray("float32", [1, 2, 6, 6], rand(72, 9));
const compared = (rows: readonly NodeComparison[]): ComparedNode[] => rows.filter((r): r is ComparedNode => r.kind === "compared");

describe("sqnr", () => {
  it("is +Infinity for equal values and 10*log10(|x|^2/|x-y|^2) otherwise", () => {
    expect(sqnr([1, 2, 3], [1, 2, 3])).toBe(Infinity);
    expect(sqnr([3, 4], [3, 3])).toBeCloseTo(10 * Math.log10(25 / 1), 12);
    expect(sqnr([0, 0], [1, 0])).toBe(-Infinity);
    expect(Number.isNaN(sqnr([1, Number.NaN], [1, 1]))).toBe(true);
  });

  it("drops by 20 dB when the error grows tenfold", () => {
    fc.assert(fc.property(
      fc.array(fc.double({ min: -10, max: 10, noNaN: true }), { minLength: 1, maxLength: 16 }),
      fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 16, maxLength: 16 }),
      (x, e) => {
        fc.pre(x.some((v) => Math.abs(v) > 1e-3) && e.slice(0, x.length).some((v) => Math.abs(v) > 1e-3));
        const y1 = x.map((v, i) => v + 1e-3 * e[i]!);
        const y10 = x.map((v, i) => v + 1e-2 * e[i]!);
        expect(sqnr(x, y1) - sqnr(x, y10)).toBeCloseTo(20, 6);
      },
    ));
  });
});

describe("compareResults", () => {
  it("matches nodes through meta.debugHandle and finds nothing lost between identical programs", () => {
    const g = cnn();
    const rows = compareResults(numericRun(g, [input]), numericRun(g, [input]));
    expect(rows.map((r) => r.debugHandle)).toEqual([1, 2, 3, 4, 5]);
    for (const r of compared(rows)) {
      expect(r.sqnr).toBe(Infinity);
      expect(r.localSqnr).toBe(Infinity);
      expect(r.maxAbsError).toBe(0);
      expect(r.dequantized).toBe(false);
    }
    expect(compared(rows).find((r) => r.float.name === "fc")!.module).toBe("fc");
  });

  for (const [which, node] of [["conv", "conv"], ["fc", "fc"]] as const) {
    it(`ranks the perturbed node (${node}) first`, () => {
      const rows = compareResults(numericRun(cnn(), [input]), numericRun(cnn(which), [input]));
      const ranked = compared(sortWorstFirst(rows));
      expect(ranked[0]!.float.name).toBe(node);
      expect(ranked[0]!.sqnr).toBeLessThan(60);
      expect(formatComparison(rows).split("\n")[1]).toMatch(new RegExp(`^\\s*1\\s+\\d+\\s+${node} \\(`));
      // Upstream of the perturbation everything is exact.
      if (which === "fc") for (const r of ranked.slice(1)) expect(r.sqnr).toBe(Infinity);
    });
  }

  it("does not blame the nodes an error merely flows through", () => {
    const rows = compared(compareResults(numericRun(cnn(), [input]), numericRun(cnn("conv"), [input])));
    const conv = rows.find((r) => r.float.name === "conv")!;
    for (const r of rows.filter((r) => r.float.name !== "conv" && r.float.name !== "fc")) {
      // relu / pool / flatten pass the conv's error on: their own loss is far below the conv's.
      expect(r.localSqnr).toBeGreaterThan(conv.localSqnr + 6);
    }
  });

  it("ranks a perturbed node of a random chain first (property)", () => {
    // Chains of mul / add by positive constants on positive inputs: relative error never grows
    // downstream, so the perturbed node is the one that loses accuracy.
    fc.assert(fc.property(
      fc.array(fc.record({ op: fc.constantFrom("mul", "add"), c: fc.double({ min: 0.25, max: 4, noNaN: true }) }), { minLength: 2, maxLength: 8 }),
      fc.nat(),
      fc.double({ min: 0.01, max: 0.5, noNaN: true }),
      (steps, pick, delta) => {
        const at = pick % steps.length;
        const build = (perturbed: boolean): Graph => {
          const b = new GraphBuilder();
          let v = b.input("x", "float32", [8]);
          steps.forEach((s, i) => {
            const c = perturbed && i === at ? s.c * (1 + delta) : s.c;
            const k = b.constant(`c${i}`, fromArray("float32", [8], new Array<number>(8).fill(c)));
            v = b.node1(s.op, [v, k], {}, { name: `n${i}`, meta: { debugHandle: 10 + i } });
          });
          b.output(v);
          return b.build();
        };
        const x = fromArray("float32", [8], rand(8, 5).map((r) => 1.5 + r));
        const rows = compareResults(numericRun(build(false), [x]), numericRun(build(true), [x]));
        expect(compared(sortWorstFirst(rows))[0]!.float.name).toBe(`n${at}`);
      },
    ), { numRuns: 60 });
  });

  it("can rank by accumulated SQNR instead", () => {
    const rows = compareResults(numericRun(cnn(), [input]), numericRun(cnn("conv"), [input]));
    const bySqnr = compared(sortWorstFirst(rows, "sqnr"));
    for (let i = 1; i < bySqnr.length; i++) expect(bySqnr[i]!.sqnr).toBeGreaterThanOrEqual(bySqnr[i - 1]!.sqnr);
  });

  it("reports a handle the quantized program lost instead of skipping it silently", () => {
    const g = cnn();
    const other: Graph = { ...g, nodes: g.nodes.map((n) => (n.name === "relu" ? { ...n, meta: {} } : n)) };
    const rows = compareResults(numericRun(g, [input]), numericRun(other, [input]));
    const lost = rows.find((r) => r.debugHandle === 2)!;
    expect(lost.kind).toBe("unmatched");
    expect(formatComparison(rows)).toMatch(/not compared:\n {2}handle 2 {2}relu \(relu\): no node of the quantized program/);
  });

  it("says which node a fused handle went into", () => {
    const g = cnn();
    // conv -> relu fused into one node that computes the relu's value (as lowerQdq does).
    const fused: Graph = { ...g, nodes: g.nodes.map((n) => (n.name === "conv" ? { ...n, meta: {} } : n.name === "relu" ? { ...n, meta: { ...n.meta, fusedDebugHandles: [1] } } : n)) };
    const rows = compareResults(numericRun(g, [input]), numericRun(fused, [input]));
    const conv = rows.find((r) => r.debugHandle === 1)!;
    expect(conv.kind).toBe("unmatched");
    if (conv.kind === "unmatched") expect(conv.reason).toBe("fused into relu (relu): its value is not materialized in the quantized program");
    expect(rows.find((r) => r.debugHandle === 2)!.kind).toBe("compared");
  });

  it("follows a conv folded with its batch norm (fusedFrom) and the quantize / dequantize carrying its handle", () => {
    const fb = new GraphBuilder();
    const x = fb.input("x", "float32", [1, 2, 4, 4]);
    const w = fromArray("float32", [2, 2, 1, 1], [0.5, -0.25, 1, 0.75]);
    const c = fb.node1("conv", [x, fb.constant("w", w)], {}, { name: "conv", meta: { debugHandle: 1 } });
    const bnParams = (name: string, v: number[]): string => fb.constant(name, fromArray("float32", [2], v));
    const bn = fb.node1("batch_norm", [c, bnParams("g", [2, 1]), bnParams("b", [0.5, -1]), bnParams("m", [0, 0]), bnParams("v", [1, 1])], { epsilon: 0 }, { name: "bn", meta: { debugHandle: 2 } });
    fb.output(fb.node1("relu", [bn], {}, { name: "relu", meta: { debugHandle: 3 } }));
    // The folded program: conv with W * gamma and bias beta computes bn's value; its q/dq carry its handle.
    const qb = new GraphBuilder();
    const qx = qb.input("x", "float32", [1, 2, 4, 4]);
    const wf = qb.constant("w", fromArray("float32", [2, 2, 1, 1], [1, -0.5, 1, 0.75]));
    const cf = qb.node1("conv", [qx, wf, qb.constant("bias", fromArray("float32", [2], [0.5, -1]))], {}, { name: "conv_1", meta: { debugHandle: 1, fusedFrom: ["conv", "bn"] } });
    const s = qb.constant("s", scalar("float32", 0.05));
    const z = qb.constant("z", scalar("int32", 0));
    const qattrs = { quant_min: -128, quant_max: 127, dtype: "int8" };
    const q = qb.node1("quantize_per_tensor", [cf, s, z], qattrs, { meta: { debugHandle: 1 } });
    const dq = qb.node1("dequantize_per_tensor", [q, s, z], qattrs, { name: "conv_1_dq", meta: { debugHandle: 1 } });
    qb.output(qb.node1("relu", [dq], {}, { name: "relu", meta: { debugHandle: 3 } }));
    const feed = fromArray("float32", [1, 2, 4, 4], rand(32, 21));
    const rows = compareResults(numericRun(fb.build(), [feed]), numericRun(qb.build(), [feed]));
    const byHandle = new Map(rows.map((r) => [r.debugHandle, r]));
    expect(byHandle.get(1)).toMatchObject({ kind: "unmatched", reason: "fused into conv_1 (conv): its value is not materialized in the quantized program" });
    expect(byHandle.get(2)).toMatchObject({ kind: "compared", quant: { name: "conv_1_dq", op: "dequantize_per_tensor" } });
    const bnRow = byHandle.get(2) as ComparedNode;
    expect(bnRow.sqnr).toBeGreaterThan(25);
    expect(bnRow.maxAbsError).toBeLessThanOrEqual(0.025 + 1e-6);
  });
});

describe("integer outputs", () => {
  const xs = rand(2 * 6, 11);
  const ws = rand(3 * 6, 12).map((v) => v * 0.5);
  const floatLinear = (): Graph => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [2, 6]);
    const w = b.constant("w", fromArray("float32", [3, 6], ws), "parameter");
    const y = b.node1("linear", [x, w], {}, { name: "fc", meta: { debugHandle: 7 } });
    const s = b.node1("sigmoid", [y], {}, { name: "act", meta: { debugHandle: 8 } });
    b.output(s);
    return b.build();
  };
  /** The same computation in integers: quantize_linear -> quantized_linear -> quantized_sigmoid (fixed qparams). */
  const quantLinear = (): Graph => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [2, 6]);
    const xs_ = b.constant("x_scale", scalar("float32", 1 / 127));
    const xz = b.constant("x_zp", scalar("int8", 0));
    const q = b.node1("quantize_linear", [x, xs_, xz], {}, { name: "qx" });
    const wq = b.constant("wq", fromArray("int8", [3, 6], ws.map((v) => Math.round(v * 254))));
    const wsc = b.constant("w_scale", scalar("float32", 1 / 254));
    const wz = b.constant("w_zp", scalar("int32", 0));
    const ysc = b.constant("y_scale", scalar("float32", 0.02));
    const yz = b.constant("y_zp", scalar("int32", 3));
    const y = b.node1("quantized_linear", [q, xs_, xz, wq, wsc, wz, "", ysc, yz], {}, { name: "fc_q", meta: { debugHandle: 7 } });
    const s = b.node1("quantized_sigmoid", [y, ysc, yz], {}, { name: "act_q", meta: { debugHandle: 8 } });
    b.output(s);
    return b.build();
  };
  const x = fromArray("float32", [2, 6], xs);

  it("dequantizes an integer output with the output qparams its op declares", () => {
    const qrun = numericRun(quantLinear(), [x]);
    const rows = compared(compareResults(numericRun(floatLinear(), [x]), qrun));
    expect(rows.map((r) => [r.quant.name, r.dequantized])).toEqual([["fc_q", true], ["act_q", true]]);
    const fcRow = rows[0]!;
    // The compared value is (q - 3) * 0.02, checked against the float linear by hand.
    const q = toFloat64(qrun.values.get("fc_q")!);
    const floatY = toFloat64(numericRun(floatLinear(), [x]).values.get("fc")!);
    const deq = Array.from(q, (v) => Math.fround(Math.fround(v - 3) * Math.fround(0.02)));
    expect(fcRow.sqnr).toBeCloseTo(sqnr(floatY, deq), 10);
    expect(fcRow.sqnr).toBeGreaterThan(25);
    // Omitted y_scale on quantized_sigmoid: PyTorch's fixed 1/256, zero point -128 for int8.
    expect(rows[1]!.sqnr).toBeGreaterThan(25);
    expect(rows[1]!.maxAbsError).toBeLessThan(0.02);
  });

  it("dequantizes a per-axis quantize_linear along its axis", () => {
    const b = new GraphBuilder();
    const v = b.input("v", "float32", [2, 3]);
    const s = b.constant("s", fromArray("float32", [3], [0.5, 0.25, 2]));
    const z = b.constant("z", fromArray("int8", [3], [1, 0, -1]));
    b.output(b.node1("quantize_linear", [v, s, z], { axis: 1 }, { name: "q" }));
    const g = b.build();
    const run = numericRun(g, [fromArray("float32", [2, 3], [1, 1, 4, -1, 0.5, -6])]);
    const view = floatViewOf(g, g.nodes[0]!, 0, run.values, true);
    expect(typeof view).toBe("object");
    if (typeof view === "string") return;
    expect(view.dequantized).toBe(true);
    expect(Array.from(view.values)).toEqual([1, 1, 4, -1, 0.5, -6]);
  });

  it("reads a data-movement op's qparams from the quantized tensor it moves", () => {
    const fb = new GraphBuilder();
    const fx = fb.input("x", "float32", [2, 2, 2]);
    fb.output(fb.node1("flatten", [fx], { axis: 1 }, { name: "flat", meta: { debugHandle: 3 } }));
    const qb = new GraphBuilder();
    const qx = qb.input("x", "float32", [2, 2, 2]);
    const q = qb.node1("quantize_linear", [qx, qb.constant("s", scalar("float32", 0.5)), qb.constant("z", scalar("int8", 2))], {}, { name: "q" });
    qb.output(qb.node1("flatten", [q], { axis: 1 }, { name: "flat_q", meta: { debugHandle: 3 } }));
    const feed = fromArray("float32", [2, 2, 2], [0, 0.5, 1, -1, 2, 3.5, -4, 1.5]);
    const rows = compared(compareResults(numericRun(fb.build(), [feed]), numericRun(qb.build(), [feed])));
    expect(rows).toHaveLength(1);
    expect(rows[0]!.dequantized).toBe(true);
    expect(rows[0]!.sqnr).toBe(Infinity);
  });

  it("says why an integer output without output qparams cannot be compared", () => {
    const qb = new GraphBuilder();
    const v = qb.input("v", "int8", [1, 4]);
    const k = qb.constant("k", fromArray("int8", [4, 1], [1, 1, 1, 1]));
    qb.output(qb.node1("matmul_integer", [v, k], {}, { name: "mm", meta: { debugHandle: 1 } }));
    const fb = new GraphBuilder();
    const fv = fb.input("v", "float32", [1, 4]);
    const w = fb.constant("w", fromArray("float32", [1, 4], [1, 1, 1, 1]));
    fb.output(fb.node1("linear", [fv, w], {}, { name: "mm", meta: { debugHandle: 1 } }));
    const rows = compareResults(
      numericRun(fb.build(), [fromArray("float32", [1, 4], [1, 2, 3, 4])]),
      numericRun(qb.build(), [fromArray("int8", [1, 4], [1, 2, 3, 4])]),
    );
    expect(rows[0]!.kind).toBe("unmatched");
    if (rows[0]!.kind === "unmatched") expect(rows[0]!.reason).toMatch(/matmul_integer' outputs int32 without output qparams/);
  });
});

describe("formatComparison", () => {
  it("prints a table, worst first, with inf for exact nodes and a limit", () => {
    const rows = compareResults(numericRun(cnn(), [input]), numericRun(cnn("fc"), [input]));
    const text = formatComparison(rows);
    const lines = text.split("\n");
    expect(lines[0]).toMatch(/^#\s+handle\s+float node\s+quantized node\s+module\s+local dB\s+SQNR dB\s+max abs err$/);
    expect(lines).toHaveLength(6);
    expect(lines[1]).toMatch(/fc \(linear\)/);
    expect(lines[2]).toMatch(/\binf\s+inf\s+0$/);
    const limited = formatComparison(rows, { limit: 2 }).split("\n");
    expect(limited).toHaveLength(4);
    expect(limited[3]).toBe("... 3 more compared nodes");
  });

  it("keeps the rows it was given (sorting returns a new array)", () => {
    const rows = compareResults(numericRun(cnn(), [input]), numericRun(cnn("fc"), [input]));
    const before = rows.map((r) => r.debugHandle);
    formatComparison(rows);
    expect(rows.map((r) => r.debugHandle)).toEqual(before);
  });
});


