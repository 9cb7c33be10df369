/**
 * fp32 graphs through compile(…, { backend: "cpu" }) on both tiers, against the reference
 * interpreter (runGraph): conv (plain, strided, grouped, depthwise, asymmetric pads) with fused
 * PP-OCR-style tails, linear/gemm/matmul (constant and runtime right-hand sides), and the plan:
 * which nodes fuse, which kernels run, which fall back. Tolerance: float32 accumulation order.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { GraphBuilder, tensor, type Graph, type Tensor } from "@qforge/ir";
import { compile, runGraph } from "@qforge/runtime";
import "../src/index.js";
import { closeTo, rng } from "./util.js";

const TIERS = ["native", "wasm"] as const;

function rand(shape: number[], seed: number, scale = 1): Tensor {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor("float32", shape, Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale));
}

function expectNear(got: Tensor, want: Tensor, tol: number): void {
  expect(got.shape).toEqual(want.shape);
  const g = got.data as Float32Array;
  const w = want.data as Float32Array;
  let worst = 0;
  for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(g[i]! - w[i]!) / (1 + Math.abs(w[i]!)));
  if (!(worst <= tol)) closeTo(worst, 0, tol, "max relative error");
}

/** conv -> mul(scale[c]) -> add(shift) -> torch's exported hardswish -> mul(s) -> add(b): PP-OCRv4's block. */
function ocrBlock(c: { C: number; M: number; G: number; H: number; W: number; k: number; s: number; pads: number[]; seed: number }): Graph {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", ["N", c.C, c.H, c.W]);
  const w = b.constant("w", rand([c.M, c.C / c.G, c.k, c.k], c.seed));
  const bias = b.constant("bias", rand([c.M], c.seed + 1, 0.5));
  const y = b.node1("conv", [x, w, bias], { group: c.G, strides: [c.s, c.s], pads: c.pads, kernel_shape: [c.k, c.k] }, { name: "conv" });
  const scale = b.constant("scale", rand([1, c.M, 1, 1], c.seed + 2));
  const m1 = b.node1("mul", [scale, y], {}, { name: "affine_mul" });
  const shift = b.constant("shift", tensor("float32", [1], Float32Array.of(0.125)));
  const a1 = b.node1("add", [m1, shift], {}, { name: "affine_add" });
  const three = b.constant("three", tensor("float32", [], Float32Array.of(3)));
  const zero = b.constant("zero", tensor("float32", [], Float32Array.of(0)));
  const six = b.constant("six", tensor("float32", [], Float32Array.of(6)));
  const p3 = b.node1("add", [a1, three], {}, { name: "hs_add" });
  const cl = b.node1("clip", [p3, zero, six], {}, { name: "hs_clip" });
  const mm = b.node1("mul", [a1, cl], {}, { name: "hs_mul" });
  const dv = b.node1("div", [mm, six], {}, { name: "hs_div" });
  const s2 = b.constant("s2", tensor("float32", [1], Float32Array.of(0.75)));
  const m2 = b.node1("mul", [s2, dv], {}, { name: "post_mul" });
  const relu = b.node1("relu", [m2], {}, { name: "relu" });
  b.output(relu);
  return b.build();
}

describe.each(TIERS)("%s tier", (tier) => {
  it("fuses conv + affine + exported hardswish + scale + relu into one step and matches runGraph", async () => {
    const g = ocrBlock({ C: 8, M: 16, G: 1, H: 9, W: 13, k: 3, s: 1, pads: [1, 1, 1, 1], seed: 3 });
    const s = await compile(g, { backend: "cpu", tier, threads: 2 });
    const conv = s.placements.find((p) => p.node === "conv")!;
    expect(conv.tier).toBe(tier);
    expect(conv.kernel).toMatch(/conv_f32_im2col_sgemm/);
    expect(conv.note).toMatch(/bias \+ mul\[c\] \+ add \+ hswish_chain \+ mul \+ relu/);
    for (const n of ["affine_mul", "affine_add", "hs_add", "hs_clip", "hs_mul", "hs_div", "post_mul", "relu"]) {
      expect(s.placements.find((p) => p.node === n)).toMatchObject({ kernel: "fused", fusedInto: "conv", fallback: false });
    }
    const x = rand([2, 8, 9, 13], 7);
    const [got] = await s.run({ x });
    expectNear(got!, runGraph(g, { x }).outputs[0]!, 1e-5);
  });

  it("conv geometry: random strides, pads (asymmetric), groups and depthwise, with symbolic batch", async () => {
    await fc.assert(fc.asyncProperty(fc.record({
      G: fc.integer({ min: 1, max: 3 }), cg: fc.integer({ min: 1, max: 3 }), mg: fc.integer({ min: 1, max: 4 }), dw: fc.boolean(),
      H: fc.integer({ min: 3, max: 10 }), W: fc.integer({ min: 3, max: 20 }), k: fc.integer({ min: 1, max: 3 }), s: fc.integer({ min: 1, max: 2 }),
      pads: fc.array(fc.integer({ min: 0, max: 1 }), { minLength: 4, maxLength: 4 }), seed: fc.integer({ min: 0, max: 1e6 }),
    }), async (c) => {
      const G = c.dw ? c.G * c.cg : c.G;
      const C = c.dw ? G : c.G * c.cg;
      const M = c.dw ? G : c.G * c.mg;
      const g = ocrBlock({ C, M, G, H: c.H, W: c.W, k: c.k, s: c.s, pads: c.pads, seed: c.seed });
      const s = await compile(g, { backend: "cpu", tier, threads: 2 });
      expect(s.placements.filter((p) => p.fallback)).toEqual([]);
      const x = rand([1, C, c.H, c.W], c.seed + 9);
      const [got] = await s.run({ x });
      expectNear(got!, runGraph(g, { x }).outputs[0]!, 2e-5);
    }), { numRuns: 20 });
  });

  it("linear (+relu), gemm (transB, C) and matmul (constant and runtime rhs, batched) match runGraph", async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 70 }),
      fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 1e6 }), async (M, N, K, B, seed) => {
        const b = new GraphBuilder();
        const x = b.input("x", "float32", [B, M, K]);
        const x2 = b.input("x2", "float32", [M, K]);
        const y = b.input("y", "float32", [B, K, N]);
        const w = b.constant("w", rand([N, K], seed));
        const bias = b.constant("bias", rand([N], seed + 1));
        const lin = b.node1("linear", [x, w, bias], {}, { name: "linear" });
        const r = b.node1("relu", [lin], {}, { name: "relu" });
        const wt = b.constant("wt", rand([N, K], seed + 2));
        const cc = b.constant("cc", rand([N], seed + 3));
        const gm = b.node1("gemm", [x2, wt, cc], { transB: 1 }, { name: "gemm" });
        const mc = b.constant("mc", rand([K, N], seed + 4));
        const m1 = b.node1("matmul", [x, mc], {}, { name: "matmul_const" });
        const m2 = b.node1("matmul", [x, y], {}, { name: "matmul_rt" });
        b.output(r, gm, m1, m2);
        const g = b.build();
        const s = await compile(g, { backend: "cpu", tier, threads: 2 });
        expect(s.placements.filter((p) => p.fallback)).toEqual([]);
        expect(s.placements.find((p) => p.node === "relu")).toMatchObject({ kernel: "fused", fusedInto: "linear" });
        const feeds = { x: rand([B, M, K], seed + 5), x2: rand([M, K], seed + 6), y: rand([B, K, N], seed + 7) };
        const got = await s.run(feeds);
        const want = runGraph(g, feeds).outputs;
        want.forEach((w2, i) => expectNear(got[i]!, w2, 1e-5));
      }), { numRuns: 15 });
  });

  it("keeps the reference kernel, visibly, where no fast kernel applies", async () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [2, 3]);
    const w = b.input("w", "float32", [4, 3]);
    const lin = b.node1("linear", [x, w], {}, { name: "runtime_weight" });
    b.output(b.node1("erf", [lin], {}, { name: "erf" }));
    const g = b.build();
    const s = await compile(g, { backend: "cpu", tier });
    expect(s.placements.find((p) => p.node === "runtime_weight")).toMatchObject({ fallback: true, kernel: "reference", tier: "reference" });
    expect(s.placements.find((p) => p.node === "runtime_weight")!.note).toMatch(/weight is not a constant/);
    const feeds = { x: rand([2, 3], 1), w: rand([4, 3], 2) };
    expectNear((await s.run(feeds))[0]!, runGraph(g, feeds).outputs[0]!, 1e-6);
  });
});
