import { describe, expect } from "vitest";
import { GraphBuilder, fromArray, tensor } from "@qforge/ir";
import { both, expectClose, itGpu, randomFloats, randomInts } from "./gpu-env.js";

const n = (s: number[]) => s.reduce((a, b) => a * b, 1);
const f32 = (shape: number[], seed: number, lo = -1, hi = 1) => tensor("float32", shape, randomFloats(n(shape), seed, lo, hi));

describe("weight-only int4 / int8 matmul (dequantized in the shader)", () => {
  itGpu("matmul, linear and gemm read packed int4/uint4/int8 weights with per-group, per-channel and per-tensor scales", async () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [2, 5, 40]);
    const x2 = b.input("x2", "float32", [7, 40]);
    const dq = (name: string, q: ReturnType<typeof fromArray>, scale: ReturnType<typeof tensor>, attrs: Record<string, number>, zp?: ReturnType<typeof fromArray>) =>
      b.node1("dequantize_linear", [b.constant(`${name}_q`, q), b.constant(`${name}_s`, scale), ...(zp === undefined ? [] : [b.constant(`${name}_z`, zp)])], attrs, { name: `${name}_dq` });
    // matmul: B [K=40, N=24] int4, groups of 16 along K (axis 0): scale [3, 24].
    const wm = dq("wm", fromArray("int4", [40, 24], randomInts(960, 1, -8, 7)), f32([3, 24], 2, 0.01, 0.1), { axis: 0, block_size: 16 });
    // linear: W [N=24, K=40] uint4 with zero points, groups of 16 along K (axis 1): scale [24, 3].
    const wl = dq("wl", fromArray("uint4", [24, 40], randomInts(960, 3, 0, 15)), f32([24, 3], 4, 0.01, 0.1), { axis: 1, block_size: 16 },
      fromArray("uint4", [24, 3], randomInts(72, 5, 6, 9)));
    // gemm: B [K=40, N=12] int8 per output channel (axis 1), and transB with an int4 per-tensor weight.
    const wg = dq("wg", fromArray("int8", [40, 12], randomInts(480, 6, -128, 127)), f32([12], 7, 0.001, 0.01), { axis: 1 });
    const wt = dq("wt", fromArray("int4", [9, 40], randomInts(360, 8, -8, 7)), f32([], 9, 0.05, 0.06), { axis: 0 });
    b.output(
      b.node1("matmul", [x, wm], {}, { name: "mm" }),
      b.node1("linear", [x, wl, b.constant("bl", f32([24], 10))], {}, { name: "lin" }),
      b.node1("gemm", [x2, wg, b.constant("bg", f32([12], 11))], { beta: 0.5 }, { name: "gemm" }),
      b.node1("gemm", [x2, wt], { transB: 1 }, { name: "gemmT" }),
    );
    const { gpu, ref, session } = await both(b.build(), [f32([2, 5, 40], 12), f32([7, 40], 13)]);
    const byNode = Object.fromEntries(session.placements.map((p) => [p.node, p]));
    expect(byNode["wm_dq"]!.kernel).toBe("fused");
    expect(byNode["wm_dq"]!.fusedInto).toBe("mm");
    expect(byNode["mm"]!.kernel).toMatch(/int4w/);
    expect(byNode["lin"]!.kernel).toMatch(/uint4w/);
    expect(byNode["gemm"]!.kernel).toMatch(/int8w/);
    expect(session.placements.some((p) => p.fallback)).toBe(false);
    expectClose(gpu, ref, 1e-4, 1e-5);
  });
  itGpu("a dequantized weight that something else also reads is folded instead", async () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [3, 8]);
    const w = b.node1("dequantize_linear", [b.constant("q", fromArray("int4", [8, 4], randomInts(32, 1, -8, 7))), b.constant("s", f32([], 2, 0.1, 0.2))], {}, { name: "dq" });
    b.output(b.node1("matmul", [x, w], {}, { name: "mm" }), b.node1("relu", [w], {}, { name: "r" }));
    const { gpu, ref, session } = await both(b.build(), [f32([3, 8], 3)]);
    expect(session.placements.find((p) => p.node === "dq")!.kernel).toBe("constant_fold");
    expectClose(gpu, ref, 1e-5, 1e-6);
  });
});
