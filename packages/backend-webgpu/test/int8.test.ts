import { describe, expect } from "vitest";
import fc from "fast-check";
import { GraphBuilder, fromArray, tensor, tensorsEqual, type DType, type Graph, type Tensor } from "@qforge/ir";
import { runGraph } from "@qforge/runtime";
import { compileWebGpu } from "../src/index.js";
import { both, itGpu, randomFloats, randomInts } from "./gpu-env.js";

const n = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const f32 = (shape: number[], seed: number, lo = -1, hi = 1) => tensor("float32", shape, randomFloats(n(shape), seed, lo, hi));
const codes = (dtype: DType, shape: number[], seed: number) => fromArray(dtype, shape, randomInts(n(shape), seed, dtype === "int8" ? -128 : 0, dtype === "int8" ? 127 : 255));
const fs = (v: number) => tensor("float32", [], new Float32Array([v]));
const i32 = (v: number | number[]) => (Array.isArray(v) ? fromArray("int32", [v.length], v) : fromArray("int32", [], [v]));
const fv = (v: number[]) => tensor("float32", [v.length], Float32Array.from(v));

function expectExact(gpu: readonly Tensor[], ref: readonly Tensor[]): void {
  gpu.forEach((t, i) => {
    if (!tensorsEqual(t, ref[i]!)) {
      const a = Array.from(t.data as ArrayLike<number>);
      const b = Array.from(ref[i]!.data as ArrayLike<number>);
      const bad = a.findIndex((v, j) => v !== b[j]);
      throw new Error(`output #${i} differs at ${bad}: gpu ${a[bad]} vs reference ${b[bad]} (${t.dtype}[${t.shape}] vs ${ref[i]!.dtype}[${ref[i]!.shape}])`);
    }
  });
}

/** Most outputs are strictly between the extremes of their dtype (the case exercises rounding, not clamping). */
function expectSpread(t: Tensor): void {
  const v = Array.from(t.data as ArrayLike<number>);
  const lo = Math.min(...v);
  const hi = Math.max(...v);
  const inside = v.filter((x) => x > lo && x < hi).length;
  expect(inside / v.length).toBeGreaterThan(0.4);
}

describe("quantize / dequantize (bit-exact)", () => {
  itGpu("quantize_per_tensor and quantize_linear at ties, infinities and NaN; dequantize back", async () => {
    const scale = 0.0371;
    const ties = Array.from({ length: 200 }, (_, i) => Math.fround((i - 100 + 0.5) * scale));
    const xs = Float32Array.from([...ties, ...randomFloats(300, 3, -6, 6), Infinity, -Infinity, NaN, 1e30, -1e30, 0, -0]);
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [xs.length]);
    const q8 = b.node1("quantize_per_tensor", [x, b.constant("s", fs(scale)), b.constant("z", i32(3))], { quant_min: -128, quant_max: 127, dtype: "int8" });
    const qn = b.node1("quantize_per_tensor", [x, b.constant("s2", fs(0.11)), b.constant("z2", i32(-5))], { quant_min: -100, quant_max: 90, dtype: "int8" });
    const qu = b.node1("quantize_linear", [x, b.constant("s3", fs(scale)), b.constant("z3", fromArray("uint8", [], [128]))]);
    const qi = b.node1("quantize_linear", [x, b.constant("s4", fs(0.05)), b.constant("z4", fromArray("int8", [], [-7]))]);
    const d8 = b.node1("dequantize_per_tensor", [q8, b.constant("s5", fs(scale)), b.constant("z5", i32(3))], { quant_min: -128, quant_max: 127, dtype: "int8" });
    const du = b.node1("dequantize_linear", [qu, b.constant("s6", fs(scale)), b.constant("z6", fromArray("uint8", [], [128]))]);
    b.output(q8, qn, qu, qi, d8, du);
    const { gpu, ref, session } = await both(b.build(), [tensor("float32", [xs.length], xs)]);
    expect(session.placements.every((p) => p.tier === "webgpu")).toBe(true);
    expectExact(gpu, ref);
  });
});

describe("elementwise quantized ops (tables from the reference kernels)", () => {
  itGpu("unary activations, add/mul with broadcasting and fused relu, cat, max pool", async () => {
    for (const dt of ["int8", "uint8"] as const) {
      const zp = dt === "int8" ? -3 : 120;
      const b = new GraphBuilder();
      const x = b.input("x", dt, [2, 3, 5, 7]);
      const y = b.input("y", dt, [3, 1, 7]);
      const q = (name: string) => [b.constant(`${name}s`, fs(0.043)), b.constant(`${name}z`, i32(zp))];
      const outs: string[] = [];
      for (const op of ["quantized_relu", "quantized_hardswish", "quantized_sigmoid", "quantized_hardsigmoid", "quantized_tanh"]) outs.push(b.node1(op, [x, ...q("x" + op)]));
      outs.push(b.node1("quantized_leaky_relu", [x, ...q("lr")], { negative_slope: 0.1 }));
      outs.push(b.node1("quantized_hardtanh", [x, ...q("ht")], { min_val: -1, max_val: 2 }));
      for (const op of ["quantized_add", "quantized_mul"]) {
        for (const relu of [false, true]) {
          outs.push(b.node1(op, [x, ...q("a" + op + relu), y, b.constant(`bs${op}${relu}`, fs(0.02)), b.constant(`bz${op}${relu}`, i32(zp + 1)), b.constant(`ys${op}${relu}`, fs(0.07)), b.constant(`yz${op}${relu}`, i32(zp - 2))], { fuse_relu: relu }));
        }
      }
      outs.push(b.node1("quantized_cat", [b.constant("cs", fs(0.05)), b.constant("cz", i32(zp)), x, ...q("c1"), x, b.constant("c2s", fs(0.09)), b.constant("c2z", i32(zp + 4))], { dim: 2 }));
      outs.push(b.node1("quantized_max_pool2d", [x, ...q("mp"), b.constant("mpys", fs(0.05)), b.constant("mpyz", i32(zp))], { kernel_size: [3, 3], stride: [2, 2], padding: [1, 1] }));
      b.output(...outs);
      const { gpu, ref, session } = await both(b.build(), [codes(dt, [2, 3, 5, 7], 1), codes(dt, [3, 1, 7], 2)]);
      expect(session.placements.filter((p) => p.fallback)).toEqual([]);
      expectExact(gpu, ref);
    }
  });
});

describe("quantized average pooling (exact window sums)", () => {
  itGpu("avg_pool2d (padding, ceil mode, count_include_pad, divisor_override) and adaptive_avg_pool2d, int8 and uint8", async () => {
    for (const dt of ["int8", "uint8"] as const) {
      const zp = dt === "int8" ? 7 : 125;
      const b = new GraphBuilder();
      const x = b.input("x", dt, [2, 3, 9, 13]);
      const q = (name: string, s = 0.037, z = zp) => [b.constant(`${name}s`, fs(s)), b.constant(`${name}z`, i32(z))];
      b.output(
        b.node1("quantized_avg_pool2d", [x, ...q("a")], { kernel_size: [3, 3], stride: [2, 2], padding: [1, 1] }),
        b.node1("quantized_avg_pool2d", [x, ...q("b"), ...q("by", 0.021, zp - 3)], { kernel_size: [2, 3], stride: [2, 2], padding: [1, 1], ceil_mode: true, count_include_pad: true }),
        b.node1("quantized_avg_pool2d", [x, ...q("c")], { kernel_size: [3, 2], divisor_override: 5 }),
        b.node1("quantized_adaptive_avg_pool2d", [x, ...q("d")], { output_size: [4, 5] }),
        b.node1("quantized_adaptive_avg_pool2d", [x, ...q("e"), ...q("ey", 0.011, zp + 1)], { output_size: [1, 1] }),
      );
      const { gpu, ref, session } = await both(b.build(), [codes(dt, [2, 3, 9, 13], 3)]);
      expect(session.placements.filter((p) => p.fallback)).toEqual([]);
      expectExact(gpu, ref);
    }
  });
});

interface ConvCase {
  x: number[];
  w: number[];
  attrs: Record<string, number | number[] | string | boolean>;
  perChannel: boolean;
  bias: boolean;
}

function quantizedConvGraph(op: "quantized_conv2d" | "quantized_linear", dt: "int8" | "uint8", c: ConvCase, seed: number): { g: Graph; feeds: Tensor[] } {
  const b = new GraphBuilder();
  const x = b.input("x", dt, c.x);
  const out = c.w[0]!;
  const wzp = c.attrs["engine"] === "onednn" ? 0 : 2;
  const wScales = c.perChannel ? fv(Array.from(randomFloats(out, seed, 0.002, 0.02))) : fs(0.011);
  const wZps = c.perChannel ? i32(new Array<number>(out).fill(wzp).map((z, i) => (c.attrs["engine"] === "onednn" ? 0 : z + (i % 3)))) : i32(wzp);
  const ins = [
    x, b.constant("xs", fs(0.031)), b.constant("xz", i32(dt === "int8" ? 5 : 131)),
    b.constant("w", codes("int8", c.w, seed + 1)), b.constant("ws", wScales), b.constant("wz", wZps),
    c.bias ? b.constant("bias", f32([out], seed + 2, -0.5, 0.5)) : "",
    b.constant("ys", fs(0.35)), b.constant("yz", i32(dt === "int8" ? -4 : 118)),
  ];
  b.output(b.node1(op, ins, c.attrs));
  return { g: b.build(), feeds: [codes(dt, c.x, seed + 3)] };
}

describe("int8 GEMM kernels (dot4 on packed words, exact requantization)", () => {
  const convCases: ConvCase[] = [
    { x: [1, 5, 9, 11], w: [7, 5, 3, 3], attrs: { stride: [2, 1], padding: [1, 1] }, perChannel: true, bias: true },
    { x: [2, 6, 7, 7], w: [6, 1, 3, 3], attrs: { groups: 6, padding: [1, 1], dilation: [2, 2] }, perChannel: false, bias: true },
    { x: [1, 8, 5, 6], w: [10, 4, 1, 1], attrs: { groups: 2, fuse_relu: true }, perChannel: true, bias: false },
  ];
  for (const engine of ["qnnpack", "onednn"] as const) {
    for (const dt of ["int8", "uint8"] as const) {
      itGpu(`quantized_conv2d and quantized_linear, ${engine}, ${dt} activations`, async () => {
        let seed = 10;
        for (const c of convCases) {
          const { g, feeds } = quantizedConvGraph("quantized_conv2d", dt, { ...c, attrs: { ...c.attrs, engine } }, seed++);
          const { gpu, ref, session } = await both(g, feeds);
          expect(session.placements[0]!.tier).toBe("webgpu");
          expectExact(gpu, ref);
          expectSpread(ref[0]!);
        }
        for (const [x, w, bias, perChannel] of [[[3, 37], [9, 37], true, true], [[2, 2, 16], [5, 16], false, false]] as const) {
          const { g, feeds } = quantizedConvGraph("quantized_linear", dt, { x: [...x], w: [...w], attrs: { engine, fuse_relu: !bias }, perChannel, bias }, seed++);
          const { gpu, ref } = await both(g, feeds);
          expectExact(gpu, ref);
          expectSpread(ref[0]!);
        }
      });
    }
  }
  itGpu("the unpacking dot4 fallback gives the same integers", async () => {
    const { g, feeds } = quantizedConvGraph("quantized_conv2d", "uint8", { ...convCases[0]!, attrs: { ...convCases[0]!.attrs, engine: "qnnpack" } }, 99);
    const { gpu, ref, session } = await both(g, feeds, { disablePackedDot: true });
    expect(session.placements[0]!.kernel).toBe("qconv2d_unpacked");
    expectExact(gpu, ref);
  });
  itGpu("ONNX qlinear_conv, conv_integer, qlinear_matmul (batched, broadcast), matmul_integer", async () => {
    const b = new GraphBuilder();
    const x = b.input("x", "uint8", [1, 4, 6, 6]);
    const a = b.input("a", "int8", [2, 3, 5, 13]);
    const bb = b.input("b", "int8", [3, 13, 6]);
    const u8 = (v: number) => fromArray("uint8", [], [v]);
    const s8 = (v: number) => fromArray("int8", [], [v]);
    b.output(
      b.node1("qlinear_conv", [x, b.constant("xs", fs(0.02)), b.constant("xz", u8(128)), b.constant("w", codes("int8", [5, 4, 3, 3], 4)),
        b.constant("ws", fv([0.01, 0.02, 0.015, 0.012, 0.03])), b.constant("wz", fromArray("int8", [5], [0, 0, 0, 0, 0])), b.constant("ys", fs(0.05)),
        b.constant("yz", u8(100)), b.constant("bias", fromArray("int32", [5], [100, -200, 3000, 0, -5]))], { pads: [1, 1, 1, 1], strides: [2, 2] }),
      b.node1("conv_integer", [x, b.constant("w2", codes("uint8", [3, 4, 2, 2], 5)), b.constant("xz2", u8(120)), b.constant("wz2", u8(7))], {}),
      b.node1("qlinear_matmul", [a, b.constant("as", fs(0.03)), b.constant("az", s8(-2)), bb, b.constant("bs", fs(0.02)), b.constant("bz", s8(3)), b.constant("qys", fs(0.1)), b.constant("qyz", s8(1))]),
      b.node1("matmul_integer", [a, bb, b.constant("az2", s8(4)), b.constant("bz2", s8(-1))]),
    );
    const { gpu, ref, session } = await both(b.build(), [codes("uint8", [1, 4, 6, 6], 6), codes("int8", [2, 3, 5, 13], 7), codes("int8", [3, 13, 6], 8)]);
    expect(session.placements.filter((p) => p.fallback)).toEqual([]);
    expectExact(gpu, ref);
  });
  itGpu("property: quantized_linear over random shapes and qparams is bit-exact", async () => {
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 70 }), fc.integer({ min: 1, max: 20 }),
      fc.double({ min: 0.001, max: 0.2, noNaN: true }), fc.integer({ min: -128, max: 127 }), fc.boolean(), fc.integer({ min: 0, max: 1000 }),
      async (rows, k, out, ys, yz, relu, seed) => {
        const b = new GraphBuilder();
        const x = b.input("x", "int8", [rows, k]);
        b.output(b.node1("quantized_linear", [x, b.constant("xs", fs(0.02)), b.constant("xz", i32(1)), b.constant("w", codes("int8", [out, k], seed)),
          b.constant("ws", fs(0.005)), b.constant("wz", i32(0)), b.constant("bias", f32([out], seed, -1, 1)), b.constant("ys", fs(ys)), b.constant("yz", i32(yz))], { fuse_relu: relu }));
        const g = b.build();
        const feeds = [codes("int8", [rows, k], seed + 1)];
        const s = await compileWebGpu(g);
        expectExact(await s.run(feeds), runGraph(g, feeds).outputs);
        s.dispose?.();
      }), { numRuns: 12, seed: 7 });
  });
});
