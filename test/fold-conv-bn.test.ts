import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { GraphBuilder, fromArray, runPass, foldConvBatchNormPass, verifyGraph, toFloat64, type Tensor } from "@qforge/ir";
import { runGraph } from "@qforge/runtime";

function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function rand(r: () => number, shape: number[], lo: number, hi: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return fromArray("float32", shape, Array.from({ length: n }, () => lo + r() * (hi - lo)));
}

describe("fold-conv-batchnorm preserves outputs", () => {
  it("on random conv+bn(+relu) models, within 1e-5", () => {
    fc.assert(
      fc.property(
        fc.record({
          seed: fc.integer({ min: 0, max: 1 << 30 }),
          group: fc.constantFrom(1, 2),
          cinPerGroup: fc.integer({ min: 1, max: 3 }),
          coutPerGroup: fc.integer({ min: 1, max: 3 }),
          k: fc.integer({ min: 1, max: 3 }),
          stride: fc.integer({ min: 1, max: 2 }),
          pad: fc.integer({ min: 0, max: 1 }),
          size: fc.integer({ min: 3, max: 7 }),
          bias: fc.boolean(),
          relu: fc.boolean(),
        }),
        (c) => {
          const r = seeded(c.seed);
          const cin = c.cinPerGroup * c.group;
          const cout = c.coutPerGroup * c.group;
          const b = new GraphBuilder();
          const x = b.input("x", "float32", [2, cin, c.size, c.size]);
          const w = b.constant("w", rand(r, [cout, c.cinPerGroup, c.k, c.k], -1, 1), "parameter");
          const inputs = [x, w];
          if (c.bias) inputs.push(b.constant("b", rand(r, [cout], -1, 1), "parameter"));
          const conv = b.node1("conv", inputs, { strides: [c.stride, c.stride], pads: [c.pad, c.pad, c.pad, c.pad], group: c.group });
          const bn = b.node1("batch_norm", [
            conv,
            b.constant("gamma", rand(r, [cout], 0.5, 1.5), "parameter"),
            b.constant("beta", rand(r, [cout], -1, 1), "parameter"),
            b.constant("mean", rand(r, [cout], -0.5, 0.5), "buffer"),
            b.constant("var", rand(r, [cout], 0.2, 2), "buffer"),
          ], { epsilon: 1e-5 });
          b.output(c.relu ? b.node1("relu", [bn]) : bn);
          const g = b.build();
          const folded = runPass(foldConvBatchNormPass, g).graph;
          verifyGraph(folded);
          expect(folded.nodes.some((n) => n.op === "batch_norm")).toBe(false);
          const input = rand(r, [2, cin, c.size, c.size], -2, 2);
          const want = toFloat64(runGraph(g, [input]).outputs[0]!);
          const got = toFloat64(runGraph(folded, [input]).outputs[0]!);
          expect(got.length).toBe(want.length);
          for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(want[i]!)));
        },
      ),
      { numRuns: 100 },
    );
  });
});
