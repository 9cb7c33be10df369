/**
 * Weight-only quantized linear (the ao op affine_quantized_linear, act_quant none) on both tiers
 * against the reference kernel: int4/uint4 per group (plain and int4_pairs layouts, INT / FLOAT /
 * NONE zero-point domains) and int8 per channel. Float results: the reference sums the dequantized
 * weights in float64, the kernels in float32 per group, so the tolerance is 1e-5 of the sum's size.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { GraphBuilder, packSubByte, tensor, type DType, type Tensor } from "@qforge/ir";
import { compile, runGraph } from "@qforge/runtime";
import "../src/index.js";
import { closeTo, rng } from "./util.js";

function floats(shape: number[], seed: number, lo: number, hi: number): Tensor {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor("float32", shape, Float32Array.from({ length: n }, () => lo + r() * (hi - lo)));
}

describe.each(["native", "wasm"] as const)("%s tier", (tier) => {
  it("int4 per group (plain/int4_pairs, INT/FLOAT/NONE) and int8 per channel match the reference", async () => {
    await fc.assert(fc.asyncProperty(fc.record({
      dtype: fc.constantFrom<DType>("int4", "uint4", "int8"), layout: fc.constantFrom("plain", "int4_pairs"), domain: fc.constantFrom("INT", "FLOAT", "NONE"),
      M: fc.integer({ min: 1, max: 3 }), N: fc.integer({ min: 1, max: 37 }), groups: fc.integer({ min: 1, max: 3 }), G: fc.constantFrom(32, 64),
      bias: fc.boolean(), seed: fc.integer({ min: 0, max: 1e6 }),
    }), async (c) => {
      const int8 = c.dtype === "int8";
      const domain = int8 ? "NONE" : c.domain;
      const layout = int8 ? "plain" : c.layout;
      const K = c.G * c.groups;
      const G = int8 ? K : c.G;
      const r = rng(c.seed);
      const signed = c.dtype !== "uint4";
      const lo = int8 ? -128 : signed ? -8 : 0;
      const span = int8 ? 256 : 16;
      const vals = Array.from({ length: c.N * K }, () => lo + Math.floor(r() * span));
      let qdata: Tensor;
      if (layout === "int4_pairs") {
        const bytes = new Uint8Array((c.N * K) / 2);
        for (let i = 0; i < bytes.length; i++) bytes[i] = ((vals[2 * i]! & 15) << 4) | (vals[2 * i + 1]! & 15);
        qdata = tensor("uint8", [c.N, K / 2], bytes);
      } else {
        qdata = int8 ? tensor("int8", [c.N, K], Int8Array.from(vals)) : tensor(c.dtype, [c.N, K], packSubByte(c.dtype, vals));
      }
      const ng = K / G;
      const b = new GraphBuilder();
      const x = b.input("x", "float32", [c.M, K]);
      const ins = [x, b.constant("w", qdata), b.constant("s", floats(ng === 1 ? [c.N] : [c.N, ng], c.seed + 1, 0.01, 0.1))];
      if (domain === "INT") ins.push(b.constant("zp", tensor("int32", ng === 1 ? [c.N] : [c.N, ng], Int32Array.from({ length: c.N * ng }, () => Math.floor(r() * 6) - 3))));
      else if (domain === "FLOAT") ins.push(b.constant("zp", floats(ng === 1 ? [c.N] : [c.N, ng], c.seed + 2, -0.2, 0.2)));
      else ins.push("");
      ins.push(c.bias ? b.constant("bias", floats([c.N], c.seed + 3, -1, 1)) : "");
      b.output(b.node1("affine_quantized_linear", ins, {
        weight_shape: [c.N, K], weight_dtype: c.dtype, block_size: [1, G], zero_point_domain: domain, layout,
      }, { name: "woq" }));
      const g = b.build();
      const s = await compile(g, { backend: "cpu", tier, threads: 2 });
      const p = s.placements.find((e) => e.node === "woq")!;
      expect(p.fallback, p.note).toBe(false);
      expect(p.kernel).toMatch(int8 ? /^woq8_gemv_/ : /^woq4_gemv_/);
      const feeds = { x: floats([c.M, K], c.seed + 4, -1, 1) };
      const got = (await s.run(feeds))[0]!.data as Float32Array;
      const want = runGraph(g, feeds).outputs[0]!.data as Float32Array;
      const mag = K * (int8 ? 128 * 0.1 : 16 * 0.1 + 0.2);
      for (let i = 0; i < want.length; i++) closeTo(got[i]!, want[i]!, 1e-5 * mag, `y[${i}]`);
    }), { numRuns: 25 });
  });
});
