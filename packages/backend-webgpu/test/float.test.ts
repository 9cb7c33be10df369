import { describe, expect } from "vitest";
import { GraphBuilder, tensor, type Graph } from "@qforge/ir";
import { both, expectClose, itGpu, randomFloats } from "./gpu-env.js";

const f32 = (shape: number[], seed: number, lo = -1, hi = 1) => tensor("float32", shape, randomFloats(shape.reduce((a, b) => a * b, 1), seed, lo, hi));

function unaryGraph(op: string, shape: number[], attrs: Record<string, number | string> = {}): Graph {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", shape);
  b.output(b.node1(op, [x], attrs, { name: op }));
  return b.build();
}

describe("float32 elementwise", () => {
  for (const op of ["relu", "sigmoid", "tanh", "sqrt", "exp", "abs", "neg", "floor", "round", "hardswish", "erf", "softplus", "reciprocal"]) {
    itGpu(`${op} matches the reference`, async () => {
      const lo = op === "sqrt" || op === "reciprocal" ? 0.1 : -4;
      const { gpu, ref, session } = await both(unaryGraph(op, [3, 70]), [f32([3, 70], 7, lo, 4)]);
      expect(session.placements[0]!.tier).toBe("webgpu");
      expectClose(gpu, ref, 2e-5, op === "erf" ? 3e-7 : 1e-6);
    });
  }
  itGpu("hard_sigmoid / leaky_relu read their attributes", async () => {
    for (const [op, attrs] of [["hard_sigmoid", { alpha: 0.3, beta: 0.4 }], ["leaky_relu", { alpha: 0.05 }]] as const) {
      const { gpu, ref } = await both(unaryGraph(op, [257], attrs), [f32([257], 3, -5, 5)]);
      expectClose(gpu, ref, 1e-6, 1e-6);
    }
  });
  itGpu("binary ops broadcast like numpy", async () => {
    for (const op of ["add", "sub", "mul", "div", "max", "min", "pow"]) {
      const b = new GraphBuilder();
      const x = b.input("x", "float32", [2, 3, 4]);
      const y = b.input("y", "float32", [3, 1]);
      const c = b.constant("c", tensor("float32", [], new Float32Array([2])));
      const t = b.node1(op, [x, y], {}, { name: "t" });
      b.output(t, b.node1(op, [t, c], {}, { name: "u" }));
      const lo = op === "pow" ? 0.5 : -2;
      const { gpu, ref } = await both(b.build(), [f32([2, 3, 4], 1, lo, 2), f32([3, 1], 2, op === "div" ? 0.5 : lo, 2)]);
      expectClose(gpu, ref, 1e-5, 1e-6);
    }
  });
  itGpu("clip with and without bounds, pow with integer exponents of negative bases", async () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [50]);
    const lo = b.constant("lo", tensor("float32", [], new Float32Array([-0.5])));
    const hi = b.constant("hi", tensor("float32", [], new Float32Array([0.25])));
    const three = b.constant("three", tensor("float32", [], new Float32Array([3])));
    b.output(b.node1("clip", [x, lo, hi]), b.node1("clip", [x, "", hi]), b.node1("clip", [x, lo]), b.node1("pow", [x, three]));
    const { gpu, ref } = await both(b.build(), [f32([50], 9, -2, 2)]);
    expectClose(gpu, ref, 1e-5, 1e-6);
  });
});

describe("float32 matrix kernels", () => {
  itGpu("matmul with batch broadcasting and 1-D operands", async () => {
    const cases: [number[], number[]][] = [[[70, 33], [33, 65]], [[2, 1, 5, 19], [3, 19, 7]], [[19], [4, 19, 6]], [[3, 5, 19], [19]]];
    for (const [as, bs] of cases) {
      const b = new GraphBuilder();
      const x = b.input("a", "float32", as);
      const y = b.input("b", "float32", bs);
      b.output(b.node1("matmul", [x, y]));
      const { gpu, ref } = await both(b.build(), [f32(as, 3), f32(bs, 4)]);
      expectClose(gpu, ref, 1e-4, 1e-5);
    }
  });
  itGpu("linear and gemm (transposes, alpha/beta, broadcast C)", async () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [2, 5, 40]);
    const w = b.constant("w", f32([17, 40], 5), "parameter");
    const bias = b.constant("bias", f32([17], 6), "parameter");
    const a = b.input("a", "float32", [40, 9]);
    const bb = b.input("bb", "float32", [13, 40]);
    const c = b.constant("c", f32([13], 8));
    b.output(
      b.node1("linear", [x, w, bias]),
      b.node1("linear", [x, w]),
      b.node1("gemm", [a, bb, c], { transA: 1, transB: 1, alpha: 0.5, beta: 2 }),
    );
    const { gpu, ref, session } = await both(b.build(), [f32([2, 5, 40], 1), f32([40, 9], 2), f32([13, 40], 3)]);
    expect(session.placements.every((p) => p.tier === "webgpu")).toBe(true);
    expectClose(gpu, ref, 1e-4, 1e-5);
  });
  itGpu("conv2d: strided, padded, dilated, grouped, depthwise, 1-D, with and without bias", async () => {
    const cases: { x: number[]; w: number[]; attrs: Record<string, number | number[] | string>; bias: boolean }[] = [
      { x: [1, 3, 11, 13], w: [8, 3, 3, 3], attrs: { strides: [2, 2], pads: [1, 1, 1, 1] }, bias: true },
      { x: [2, 4, 9, 9], w: [6, 2, 3, 2], attrs: { group: 2, dilations: [2, 1], pads: [0, 1, 2, 0] }, bias: false },
      { x: [1, 8, 10, 12], w: [8, 1, 3, 3], attrs: { group: 8, pads: [1, 1, 1, 1] }, bias: true },
      { x: [1, 6, 7, 7], w: [70, 6, 1, 1], attrs: {}, bias: true },
      { x: [2, 5, 20], w: [4, 5, 3], attrs: { auto_pad: "SAME_UPPER", strides: [2] }, bias: true },
    ];
    for (const c of cases) {
      const b = new GraphBuilder();
      const x = b.input("x", "float32", c.x);
      const w = b.constant("w", f32(c.w, 2));
      const ins = [x, w];
      if (c.bias) ins.push(b.constant("b", f32([c.w[0]!], 3)));
      b.output(b.node1("conv", ins, c.attrs));
      const { gpu, ref } = await both(b.build(), [f32(c.x, 1)]);
      expectClose(gpu, ref, 1e-4, 1e-5);
    }
  });
});

describe("the tiled GEMM schedule (workgroup memory; what GPUs get)", () => {
  itGpu("a conv through 64x64 tiles matches the reference (the template every matrix kernel shares)", async () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [1, 5, 9, 70]);
    const w = b.constant("w", f32([66, 5, 3, 3], 2));
    const bias = b.constant("b", f32([66], 3));
    const y = b.node1("conv", [x, w, bias], { pads: [1, 1, 1, 1] });
    b.output(y);
    const { gpu, ref, session } = await both(b.build(), [f32([1, 5, 9, 70], 1)], { gemm: "tiled" });
    expect(session.placements[0]!.kernel).toBe("conv_implicit_gemm_tiled_f32");
    expectClose(gpu, ref, 1e-4, 1e-5);
  }, 120_000);
});
