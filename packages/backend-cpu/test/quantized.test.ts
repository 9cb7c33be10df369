/**
 * The integer ops on both tiers (and, for the native tier, every ISA level of this CPU) against the
 * reference kernels: bit-identical outputs, over random shapes, zero points, dtypes (uint8/int8
 * activations and weights), per-tensor and per-channel qparams, biases, fused relu, both PyTorch
 * engines and ONNX's QLinear and Integer ops.
 */
import { afterAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { GraphBuilder, tensor, type DType, type Graph, type Tensor } from "@qforge/ir";
import { compile, runGraph } from "@qforge/runtime";
import "../src/index.js";
import { loadNative, setNativeIsa } from "../src/index.js";
import { bytes8, rng } from "./util.js";

const native = await loadNative();
const ORDER = ["scalar", "avx2", "avxvnni", "avx512", "avx512vnni"];
const LEVELS = native.state === "loaded" ? ORDER.filter((l) => ORDER.indexOf(l) <= ORDER.indexOf(native.info!.best)) : [];
const CONFIGS: { tier: "native" | "wasm"; level?: string }[] = [{ tier: "wasm" }, ...LEVELS.map((level) => ({ tier: "native" as const, level }))];

afterAll(async () => {
  if (native.state === "loaded") await setNativeIsa("best");
});

function ints(dtype: DType, shape: number[], seed: number): Tensor {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const signed = dtype === "int8";
  return tensor(dtype, shape, bytes8(signed, n, () => Math.floor(r() * 256) - (signed ? 128 : 0)));
}

function floats(shape: number[], seed: number, scale = 1): Tensor {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor("float32", shape, Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale));
}

const scalarF = (v: number): Tensor => tensor("float32", [], Float32Array.of(v));
function zpT(dtype: DType, v: number[], perChannel: boolean): Tensor {
  return tensor(dtype, perChannel ? [v.length] : [], (dtype === "int8" ? Int8Array : Uint8Array).from(perChannel ? v : [v[0]!]));
}

async function expectExact(g: Graph, feeds: Record<string, Tensor>, tier: "native" | "wasm", fastNode: string, kernel: RegExp): Promise<void> {
  const s = await compile(g, { backend: "cpu", tier, threads: 2 });
  const p = s.placements.find((e) => e.node === fastNode)!;
  expect(p.fallback, p.note).toBe(false);
  expect(p.kernel).toMatch(kernel);
  const got = await s.run(feeds);
  const want = runGraph(g, feeds).outputs;
  expect(got[0]!.dtype).toBe(want[0]!.dtype);
  expect(got[0]!.shape).toEqual(want[0]!.shape);
  expect(Array.from(got[0]!.data as ArrayLike<number>)).toEqual(Array.from(want[0]!.data as ArrayLike<number>));
}

const arbQ = fc.record({
  xd: fc.constantFrom<DType>("uint8", "int8"), wd: fc.constantFrom<DType>("uint8", "int8"), perCh: fc.boolean(), bias: fc.boolean(), relu: fc.boolean(),
  engine: fc.constantFrom("qnnpack", "onednn"), seed: fc.integer({ min: 0, max: 1e6 }),
});

describe.each(CONFIGS)("$tier $level", ({ tier, level }) => {
  const prepare = async (): Promise<void> => {
    if (level !== undefined) await setNativeIsa(level);
  };

  it("quantized_linear (qnnpack and onednn) is bit-identical to the reference", async () => {
    await prepare();
    await fc.assert(fc.asyncProperty(arbQ, fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 70 }), fc.integer({ min: 1, max: 90 }),
      async (c, M, N, K) => {
        const r = rng(c.seed);
        const b = new GraphBuilder();
        const x = b.input("x", c.xd, [M, K]);
        const zx = Math.floor(r() * 200) + (c.xd === "int8" ? -100 : 20);
        const wzps = Array.from({ length: N }, () => (c.engine === "onednn" ? 0 : Math.floor(r() * 40) - (c.wd === "int8" ? 20 : -100)));
        const ins = [
          x, b.constant("xs", scalarF(0.02 + r() * 0.05)), b.constant("xzp", zpT(c.xd, [zx], false)),
          b.constant("w", ints(c.wd, [N, K], c.seed + 1)),
          b.constant("ws", c.perCh ? tensor("float32", [N], Float32Array.from({ length: N }, () => 0.001 + r() * 0.01)) : scalarF(0.004)),
          b.constant("wzp", zpT(c.wd, wzps, c.perCh)),
          c.bias ? b.constant("bias", floats([N], c.seed + 3, 2)) : "",
          b.constant("ys", scalarF(0.05 + r() * 0.2)), b.constant("yzp", zpT(c.xd, [c.xd === "int8" ? 3 : 120], false)),
        ];
        const y = b.node1("quantized_linear", ins, { engine: c.engine, fuse_relu: c.relu }, { name: "ql" });
        b.output(c.bias ? b.node1("quantized_sigmoid", [y, b.constant("xs2", scalarF(0.07)), b.constant("xzp2", zpT(c.xd, [c.xd === "int8" ? 3 : 120], false))], {}, { name: "sig" }) : y);
        await expectExact(b.build(), { x: ints(c.xd, [M, K], c.seed + 4) }, tier, "ql", /^qgemm_u8s8_/);
      }), { numRuns: 12 });
  });

  it("quantized_conv2d (im2col and depthwise, groups, strides, padding) is bit-identical to the reference", async () => {
    await prepare();
    await fc.assert(fc.asyncProperty(arbQ, fc.record({
      G: fc.integer({ min: 1, max: 2 }), cg: fc.integer({ min: 1, max: 4 }), mg: fc.integer({ min: 1, max: 3 }), dw: fc.boolean(),
      H: fc.integer({ min: 2, max: 8 }), W: fc.integer({ min: 2, max: 19 }), k: fc.integer({ min: 1, max: 3 }), s: fc.integer({ min: 1, max: 2 }),
      p: fc.integer({ min: 0, max: 1 }),
    }), async (c, d) => {
      if (d.p * 2 + d.H < d.k || d.p * 2 + d.W < d.k) return;
      const r = rng(c.seed);
      const G = d.dw ? d.cg * 2 : d.G;
      const C = d.dw ? G : d.G * d.cg;
      const M = d.dw ? G : d.G * d.mg;
      const b = new GraphBuilder();
      const x = b.input("x", c.xd, [1, C, d.H, d.W]);
      const wzps = Array.from({ length: M }, () => (c.engine === "onednn" ? 0 : Math.floor(r() * 40) - (c.wd === "int8" ? 20 : -100)));
      const ins = [
        x, b.constant("xs", scalarF(0.02 + r() * 0.05)), b.constant("xzp", zpT(c.xd, [c.xd === "int8" ? -7 : 131], false)),
        b.constant("w", ints(c.wd, [M, C / G, d.k, d.k], c.seed + 1)),
        b.constant("ws", c.perCh ? tensor("float32", [M], Float32Array.from({ length: M }, () => 0.001 + r() * 0.02)) : scalarF(0.006)),
        b.constant("wzp", zpT(c.wd, wzps, c.perCh)),
        c.bias ? b.constant("bias", floats([M], c.seed + 3, 2)) : "",
        b.constant("ys", scalarF(0.05 + r() * 0.3)), b.constant("yzp", zpT(c.xd, [c.xd === "int8" ? -5 : 100], false)),
      ];
      const y = b.node1("quantized_conv2d", ins, { engine: c.engine, fuse_relu: c.relu, stride: [d.s, d.s], padding: [d.p, d.p], groups: G }, { name: "qc" });
      // A quantized hardswish after the conv is fused into its epilogue as a table.
      b.output(c.bias ? b.node1("quantized_hardswish", [y, b.constant("ys2", scalarF(0.1)), b.constant("yzp2", zpT(c.xd, [c.xd === "int8" ? -5 : 100], false))], {}, { name: "hs" }) : y);
      const g = b.build();
      await expectExact(g, { x: ints(c.xd, [1, C, d.H, d.W], c.seed + 4) }, tier, "qc", G === C && G === M ? /^dwconv_q8_direct$/ : /^conv_q8_im2col_qgemm_/);
      if (c.bias) {
        const s = await compile(g, { backend: "cpu", tier, threads: 1 });
        expect(s.placements.find((p) => p.node === "hs")).toMatchObject({ kernel: "fused", fusedInto: "qc" });
      }
    }), { numRuns: 12 });
  });

  it("qlinear_conv (asymmetric pads, int32 bias, uint8 in / int8 out) and conv_integer are bit-identical", async () => {
    await prepare();
    await fc.assert(fc.asyncProperty(fc.record({
      xd: fc.constantFrom<DType>("uint8", "int8"), wd: fc.constantFrom<DType>("uint8", "int8"), yd: fc.constantFrom<DType>("uint8", "int8"),
      G: fc.integer({ min: 1, max: 2 }), C: fc.integer({ min: 1, max: 3 }), M: fc.integer({ min: 1, max: 5 }), H: fc.integer({ min: 3, max: 9 }),
      W: fc.integer({ min: 3, max: 17 }), k: fc.integer({ min: 1, max: 3 }), s: fc.integer({ min: 1, max: 2 }),
      pads: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 4, maxLength: 4 }), seed: fc.integer({ min: 0, max: 1e6 }),
    }), async (d) => {
      const r = rng(d.seed);
      const C = d.C * d.G;
      const M = d.M * d.G;
      const wzps = Array.from({ length: M }, () => Math.floor(r() * 30) - (d.wd === "int8" ? 15 : -110));
      const attrs = { group: d.G, strides: [d.s, d.s], pads: d.pads };
      const b = new GraphBuilder();
      const x = b.input("x", d.xd, [2, C, d.H, d.W]);
      const w = b.constant("w", ints(d.wd, [M, d.C, d.k, d.k], d.seed + 1));
      const xzp = b.constant("xzp", zpT(d.xd, [d.xd === "int8" ? 9 : 77], false));
      const wzp = b.constant("wzp", zpT(d.wd, wzps, true));
      const ins = [
        x, b.constant("xs", scalarF(0.03)), xzp, w,
        b.constant("ws", tensor("float32", [M], Float32Array.from({ length: M }, () => 0.002 + r() * 0.02))), wzp,
        b.constant("ys", scalarF(0.1 + r())), b.constant("yzp", zpT(d.yd, [d.yd === "int8" ? -20 : 30], false)),
        b.constant("B", tensor("int32", [M], Int32Array.from({ length: M }, () => Math.floor(r() * 20000) - 10000))),
      ];
      b.output(b.node1("qlinear_conv", ins, attrs, { name: "qlc" }));
      const feeds = { x: ints(d.xd, [2, C, d.H, d.W], d.seed + 4) };
      await expectExact(b.build(), feeds, tier, "qlc", /conv_q8|dwconv_q8/);
      const b2 = new GraphBuilder();
      const x2 = b2.input("x", d.xd, [2, C, d.H, d.W]);
      b2.output(b2.node1("conv_integer", [x2, b2.constant("w", ints(d.wd, [M, d.C, d.k, d.k], d.seed + 1)), b2.constant("xzp", zpT(d.xd, [d.xd === "int8" ? 9 : 77], false)),
        b2.constant("wzp", zpT(d.wd, wzps, true))], attrs, { name: "ci" }));
      await expectExact(b2.build(), feeds, tier, "ci", /conv_q8|dwconv_q8/);
    }), { numRuns: 10 });
  });

  it("qlinear_matmul and matmul_integer (batched a, per-column b) are bit-identical", async () => {
    await prepare();
    await fc.assert(fc.asyncProperty(fc.record({
      ad: fc.constantFrom<DType>("uint8", "int8"), bd: fc.constantFrom<DType>("uint8", "int8"), yd: fc.constantFrom<DType>("uint8", "int8"),
      B: fc.integer({ min: 1, max: 3 }), M: fc.integer({ min: 1, max: 9 }), N: fc.integer({ min: 1, max: 80 }), K: fc.integer({ min: 1, max: 70 }),
      seed: fc.integer({ min: 0, max: 1e6 }),
    }), async (d) => {
      const r = rng(d.seed);
      const bzps = Array.from({ length: d.N }, () => Math.floor(r() * 30) - (d.bd === "int8" ? 15 : -110));
      const b = new GraphBuilder();
      const a = b.input("a", d.ad, [d.B, d.M, d.K]);
      const ins = [
        a, b.constant("as", scalarF(0.05)), b.constant("azp", zpT(d.ad, [d.ad === "int8" ? -3 : 140], false)),
        b.constant("b", ints(d.bd, [d.K, d.N], d.seed + 1)),
        b.constant("bs", tensor("float32", [d.N], Float32Array.from({ length: d.N }, () => 0.002 + r() * 0.02))), b.constant("bzp", zpT(d.bd, bzps, true)),
        b.constant("ys", scalarF(0.2 + r())), b.constant("yzp", zpT(d.yd, [d.yd === "int8" ? 1 : 128], false)),
      ];
      b.output(b.node1("qlinear_matmul", ins, {}, { name: "qmm" }));
      const feeds = { a: ints(d.ad, [d.B, d.M, d.K], d.seed + 4) };
      await expectExact(b.build(), feeds, tier, "qmm", /^qgemm_u8s8_/);
      const b2 = new GraphBuilder();
      const a2 = b2.input("a", d.ad, [d.B, d.M, d.K]);
      b2.output(b2.node1("matmul_integer", [a2, b2.constant("b", ints(d.bd, [d.K, d.N], d.seed + 1)), b2.constant("azp", zpT(d.ad, [d.ad === "int8" ? -3 : 140], false)),
        b2.constant("bzp", zpT(d.bd, bzps, true))], {}, { name: "mi" }));
      await expectExact(b2.build(), feeds, tier, "mi", /^qgemm_u8s8_/);
    }), { numRuns: 10 });
  });

  it("dynamic_quantized_linear (qnnpack, onednn with reduce_range) is bit-identical", async () => {
    await prepare();
    await fc.assert(fc.asyncProperty(fc.record({
      wd: fc.constantFrom<DType>("uint8", "int8"), engine: fc.constantFrom("qnnpack", "onednn"), rr: fc.boolean(), bias: fc.boolean(),
      M: fc.integer({ min: 1, max: 6 }), N: fc.integer({ min: 1, max: 50 }), K: fc.integer({ min: 1, max: 60 }), seed: fc.integer({ min: 0, max: 1e6 }),
    }), async (d) => {
      const r = rng(d.seed);
      const wzps = Array.from({ length: d.N }, () => (d.engine === "onednn" ? 0 : Math.floor(r() * 20) - (d.wd === "int8" ? 10 : -118)));
      const b = new GraphBuilder();
      const x = b.input("x", "float32", [d.M, d.K]);
      const ins = [
        x, b.constant("w", ints(d.wd, [d.N, d.K], d.seed + 1)),
        b.constant("ws", tensor("float32", [d.N], Float32Array.from({ length: d.N }, () => 0.002 + r() * 0.02))), b.constant("wzp", zpT(d.wd, wzps, true)),
        d.bias ? b.constant("bias", floats([d.N], d.seed + 2)) : "",
      ];
      b.output(b.node1("dynamic_quantized_linear", ins, { engine: d.engine, reduce_range: d.rr }, { name: "dq" }));
      await expectExact(b.build(), { x: floats([d.M, d.K], d.seed + 3, 3) }, tier, "dq", /^qgemm_u8s8_/);
    }), { numRuns: 10 });
  });
});
