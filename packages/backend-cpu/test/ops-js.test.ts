/**
 * The TypeScript-tier kernels and the lookup-table quantized ops against the reference kernels,
 * bit for bit: float32 elementwise (broadcasting), unary, softmax, reduce_mean, pooling, batch_norm,
 * data movement; quantized unary/binary ops through their 256 / 65536-entry tables; int8 matmuls
 * with a runtime right-hand side. Each graph is compiled for both tiers.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { GraphBuilder, tensor, type DType, type Graph, type Tensor } from "@qforge/ir";
import { compile, runGraph } from "@qforge/runtime";
import "../src/index.js";
import { rng } from "./util.js";

function floats(shape: number[], seed: number, scale = 2): Tensor {
  const r = rng(seed);
  return tensor("float32", shape, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (r() * 2 - 1) * scale));
}

function ints(dtype: DType, shape: number[], seed: number): Tensor {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return dtype === "int8"
    ? tensor("int8", shape, Int8Array.from({ length: n }, () => Math.floor(r() * 256) - 128))
    : tensor("uint8", shape, Uint8Array.from({ length: n }, () => Math.floor(r() * 256)));
}

const f = (v: number): Tensor => tensor("float32", [], Float32Array.of(v));
const zp = (dtype: DType, v: number): Tensor => (dtype === "int8" ? tensor("int8", [], Int8Array.of(v)) : tensor("uint8", [], Uint8Array.of(v)));
const i64 = (v: number[]): Tensor => tensor("int64", [v.length], BigInt64Array.from(v.map(BigInt)));

async function expectSame(g: Graph, feeds: Record<string, Tensor>, tier: "native" | "wasm", fast: Record<string, RegExp>): Promise<void> {
  const s = await compile(g, { backend: "cpu", tier, threads: 2 });
  for (const [node, kernel] of Object.entries(fast)) {
    const p = s.placements.find((e) => e.node === node)!;
    expect(p.fallback, `${node}: ${p.note}`).toBe(false);
    expect(p.kernel).toMatch(kernel);
  }
  const got = await s.run(feeds);
  const want = runGraph(g, feeds).outputs;
  want.forEach((w, i) => {
    expect(got[i]!.dtype).toBe(w.dtype);
    expect(got[i]!.shape).toEqual(w.shape);
    expect(Array.from(got[i]!.data as ArrayLike<number>)).toEqual(Array.from(w.data as ArrayLike<number>));
  });
}

const shapes = fc.constantFrom<[number[], number[]]>(
  [[2, 3, 4], [2, 3, 4]], [[2, 3, 4], [4]], [[2, 3, 4], [3, 1]], [[1, 5, 2, 3], [1, 5, 1, 1]], [[3], [2, 3]], [[4, 1], [1, 6]], [[], [2, 2]],
);

describe.each(["native", "wasm"] as const)("%s tier", (tier) => {
  it("float32 binary ops with broadcasting and unary ops equal the reference exactly", async () => {
    await fc.assert(fc.asyncProperty(shapes, fc.constantFrom("add", "sub", "mul", "div", "pow", "max", "min"),
      fc.constantFrom("relu", "sigmoid", "tanh", "exp", "sqrt", "neg", "abs", "hardswish", "hard_sigmoid", "leaky_relu", "erf", "reciprocal", "clip"),
      fc.integer({ min: 0, max: 1e6 }), async ([sa, sb], bop, uop, seed) => {
        const b = new GraphBuilder();
        const x = b.input("x", "float32", sa);
        const y = b.input("y", "float32", sb);
        const out = b.node1(bop, [x, y], {}, { name: "bin" });
        const extra = uop === "clip" ? [b.constant("lo", f(-0.5)), b.constant("hi", f(0.75))] : [];
        const u = b.node1(uop, [uop === "sqrt" ? b.node1("abs", [out], {}, { name: "abs0" }) : out, ...extra], uop === "hard_sigmoid" ? { alpha: 0.3, beta: 0.4 } : {}, { name: "un" });
        b.output(u, out);
        await expectSame(b.build(), { x: floats(sa, seed), y: floats(sb, seed + 1) }, tier, { bin: /^js_/, un: /^js_/ });
      }), { numRuns: 30 });
  });

  it("softmax, reduce_mean, global/average pooling, batch_norm and data movement equal the reference exactly", async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 2, max: 7 }), fc.integer({ min: 2, max: 9 }),
      fc.integer({ min: 0, max: 1e6 }), async (N, C, H, W, seed) => {
        const b = new GraphBuilder();
        const x = b.input("x", "float32", [N, C, H, W]);
        const sm = b.node1("softmax", [x], { axis: 1 }, { name: "softmax" });
        const rm = b.node1("reduce_mean", [sm, b.constant("axes", i64([1, -1]))], { keepdims: 1 }, { name: "rmean" });
        const rl = b.node1("reduce_mean", [x, b.constant("axes2", i64([-1]))], { keepdims: 0 }, { name: "rmean_last" });
        const gp = b.node1("global_average_pool", [x], {}, { name: "gap" });
        const ap = b.node1("average_pool", [x], { kernel_shape: [2, 2], strides: [2, 1] }, { name: "avgpool" });
        const bn = b.node1("batch_norm", [x, b.constant("sc", floats([C], seed + 2)), b.constant("bi", floats([C], seed + 3)),
          b.constant("mu", floats([C], seed + 4)), b.constant("va", tensor("float32", [C], Float32Array.from({ length: C }, (_, i) => 0.5 + i)))], { epsilon: 1e-5 }, { name: "bn" });
        const tr = b.node1("transpose", [bn], { perm: [0, 3, 1, 2] }, { name: "transpose" });
        const rs = b.node1("reshape", [tr, b.constant("shape", i64([N, -1]))], {}, { name: "reshape" });
        const cc = b.node1("concat", [rs, rs], { axis: 1 }, { name: "concat" });
        const sl = b.node1("slice", [cc, b.constant("st", i64([1])), b.constant("en", i64([1000])), b.constant("ax", i64([1])), b.constant("sp", i64([3]))], {}, { name: "slice" });
        b.output(rm, rl, gp, ap, sl);
        await expectSame(b.build(), { x: floats([N, C, H, W], seed) }, tier, {
          softmax: /^js_/, rmean: /^js_/, rmean_last: /^js_/, gap: /^js_/, avgpool: /^js_/, bn: /^js_/, transpose: /^js_/, reshape: /^js_view$/, concat: /^js_/, slice: /^js_/,
        });
      }), { numRuns: 15 });
  });

  it("quantized unary ops, dequantize_per_tensor and quantized add/mul (broadcast, relu) run as tables, bit-exact", async () => {
    await fc.assert(fc.asyncProperty(fc.constantFrom<DType>("uint8", "int8"), fc.constantFrom("quantized_hardswish", "quantized_sigmoid", "quantized_hardsigmoid",
      "quantized_tanh", "quantized_relu", "quantized_leaky_relu", "quantized_hardtanh"), fc.constantFrom("quantized_add", "quantized_mul"), fc.boolean(),
      fc.integer({ min: 0, max: 1e6 }), async (d, uop, bop, relu, seed) => {
        const r = rng(seed);
        const z = d === "int8" ? Math.floor(r() * 40) - 20 : Math.floor(r() * 100) + 80;
        const b = new GraphBuilder();
        const x = b.input("x", d, [2, 4, 3, 5]);
        const y = b.input("y", d, [2, 4, 1, 1]);
        const xs = b.constant("xs", f(0.01 + r() * 0.1));
        const xz = b.constant("xz", zp(d, z));
        const u = b.node1(uop, [x, xs, xz, b.constant("us", f(0.02 + r() * 0.05)), b.constant("uz", zp(d, d === "int8" ? 0 : 128))], {}, { name: "unary" });
        const bin = b.node1(bop, [u, b.constant("as", f(0.03)), b.constant("az", zp(d, d === "int8" ? 0 : 128)), y, xs, xz,
          b.constant("ys", f(0.05 + r() * 0.1)), b.constant("yz", zp(d, z))], { fuse_relu: relu }, { name: "binary" });
        const dq = b.node1("dequantize_per_tensor", [bin, b.constant("ds", f(0.05)), b.constant("dz", zp(d, 3))],
          { quant_min: d === "int8" ? -128 : 0, quant_max: d === "int8" ? 127 : 255, dtype: d }, { name: "dq" });
        b.output(dq, bin);
        await expectSame(b.build(), { x: ints(d, [2, 4, 3, 5], seed), y: ints(d, [2, 4, 1, 1], seed + 1) }, tier, {
          unary: /^js_lut256$/, binary: /^js_lut65536$/, dq: /^js_lut256$/,
        });
      }), { numRuns: 12 });
  });

  it("quantize_per_tensor equals the reference on random and edge values (ties, huge, NaN, infinities)", async () => {
    await fc.assert(fc.asyncProperty(fc.constantFrom<DType>("uint8", "int8"), fc.integer({ min: 0, max: 1e6 }), fc.boolean(), async (d, seed, narrow) => {
      const r = rng(seed);
      const scale = Math.fround(0.001 + r() * 0.2);
      const z = d === "int8" ? Math.floor(r() * 60) - 30 : Math.floor(r() * 200) + 20;
      const edge = [0, -0, 0.5 * scale, 1.5 * scale, -2.5 * scale, 1e30, -1e30, 3.4e38, NaN, Infinity, -Infinity, 1e-45];
      const vals = Float32Array.from({ length: 200 }, (_, i) => (i < edge.length ? edge[i]! : (r() * 2 - 1) * 300 * scale));
      const b = new GraphBuilder();
      const x = b.input("x", "float32", [200]);
      const range = d === "int8" ? (narrow ? [-127, 127] : [-128, 127]) : narrow ? [0, 127] : [0, 255];
      b.output(b.node1("quantize_per_tensor", [x, b.constant("s", f(scale)), b.constant("z", tensor("int64", [], BigInt64Array.of(BigInt(z))))],
        { quant_min: range[0]!, quant_max: range[1]!, dtype: d }, { name: "q" }));
      await expectSame(b.build(), { x: tensor("float32", [200], vals) }, tier, { q: /^js_quantize_per_tensor$/ });
    }), { numRuns: 20 });
  });

  it("qlinear_matmul and matmul_integer with a runtime right-hand side (attention) are bit-exact", async () => {
    await fc.assert(fc.asyncProperty(fc.constantFrom<DType>("uint8", "int8"), fc.constantFrom<DType>("uint8", "int8"), fc.integer({ min: 1, max: 3 }),
      fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 1e6 }),
      async (ad, bd, B, M, N, K, seed) => {
        const b = new GraphBuilder();
        const a = b.input("a", ad, [B, M, K]);
        const bb = b.input("b", bd, [B, K, N]);
        const azp = b.constant("az", zp(ad, ad === "int8" ? 5 : 120));
        const bzp = b.constant("bz", zp(bd, bd === "int8" ? -3 : 130));
        const q = b.node1("qlinear_matmul", [a, b.constant("as", f(0.02)), azp, bb, b.constant("bs", f(0.03)), bzp, b.constant("ys", f(0.4)),
          b.constant("yz", zp("uint8", 128))], {}, { name: "qmm" });
        const mi = b.node1("matmul_integer", [a, bb, azp, bzp], {}, { name: "mi" });
        b.output(q, mi);
        await expectSame(b.build(), { a: ints(ad, [B, M, K], seed), b: ints(bd, [B, K, N], seed + 1) }, tier, { qmm: /^qgemm_u8s8_/, mi: /^qgemm_u8s8_/ });
      }), { numRuns: 15 });
  });
});
