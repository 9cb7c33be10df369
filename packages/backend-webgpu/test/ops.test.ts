import { describe, expect } from "vitest";
import { GraphBuilder, fromArray, tensor, type Graph } from "@qforge/ir";
import { both, expectClose, itGpu, randomFloats, randomInts } from "./gpu-env.js";

const f32 = (shape: number[], seed: number, lo = -1, hi = 1) => tensor("float32", shape, randomFloats(shape.reduce((a, b) => a * b, 1), seed, lo, hi));
const i64 = (vals: number[]) => fromArray("int64", [vals.length], vals);

describe("data movement (float32 and packed int8)", () => {
  for (const dtype of ["float32", "int8"] as const) {
    itGpu(`${dtype}: transpose, slice (negative step), expand, concat, split, gather, pad, tile, reshape`, async () => {
      const b = new GraphBuilder();
      const x = b.input("x", dtype, [2, 3, 5]);
      const y = b.input("y", dtype, [2, 2, 5]);
      const outs = [
        b.node1("transpose", [x], { perm: [2, 0, 1] }),
        b.node1("slice", [x, b.constant("st", i64([4, 1])), b.constant("en", i64([-6, 3])), b.constant("ax", i64([2, 1])), b.constant("sp", i64([-2, 1]))]),
        b.node1("expand", [b.node1("reshape", [x, b.constant("shp", i64([2, 1, 3, 5]))]), b.constant("es", i64([2, 3, 3, 5]))]),
        b.node1("concat", [x, y, x], { axis: 1 }),
        ...b.node("split", [x, b.constant("sz", i64([1, 2]))], { axis: 1 }, { numOutputs: 2 }),
        b.node1("gather", [x, b.constant("gi", i64([4, 0, -1]))], { axis: 2 }),
        b.node1("pad", [x, b.constant("pads", i64([0, 1, 2, 1, 0, 1]))], { mode: "constant" }),
        b.node1("tile", [y, b.constant("rep", i64([1, 2, 3]))]),
        b.node1("squeeze", [b.node1("unsqueeze", [x, b.constant("ua", i64([1]))]), b.constant("sa", i64([1]))]),
      ];
      b.output(...outs);
      const feed = (shape: number[], seed: number) => dtype === "float32" ? f32(shape, seed) : fromArray("int8", shape, randomInts(shape.reduce((a, c) => a * c, 1), seed, -128, 127));
      const { gpu, ref, session } = await both(b.build(), [feed([2, 3, 5], 1), feed([2, 2, 5], 2)]);
      const onGpu = session.placements.filter((p) => p.tier === "webgpu").map((p) => p.op);
      expect(onGpu).toEqual(expect.arrayContaining(["transpose", "slice", "expand", "concat", "split", "gather", "pad", "tile", "reshape", "squeeze", "unsqueeze"]));
      expect(session.placements.some((p) => p.fallback)).toBe(false);
      expectClose(gpu, ref, 0, 0);
    });
  }
});

describe("row reductions, pooling, normalization", () => {
  itGpu("softmax / log_softmax on inner and outer axes, layer_normalization, reduce_* over contiguous axes", async () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [3, 70, 5]);
    const scale = b.constant("s", f32([5], 4));
    const bias = b.constant("bb", f32([5], 5));
    b.output(
      b.node1("softmax", [x], { axis: -1 }),
      b.node1("softmax", [x], { axis: 1 }),
      b.node1("log_softmax", [x], { axis: 1 }),
      b.node1("layer_normalization", [x, scale, bias], { axis: -1, epsilon: 1e-5 }),
      b.node1("reduce_mean", [x, b.constant("a1", i64([-1]))], { keepdims: 1 }),
      b.node1("reduce_sum", [x, b.constant("a2", i64([1, 2]))], { keepdims: 0 }),
      b.node1("reduce_max", [x, b.constant("a3", i64([0]))]),
      b.node1("reduce_min", [x]),
    );
    const { gpu, ref, session } = await both(b.build(), [f32([3, 70, 5], 9, -3, 3)]);
    expect(session.placements.every((p) => p.tier === "webgpu")).toBe(true);
    expectClose(gpu, ref, 1e-4, 1e-5);
  });
  itGpu("max/average pool (pads, strides, ceil mode, count_include_pad), global pools, adaptive pool, batch_norm", async () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [2, 3, 9, 11]);
    const c = (n: string, s: number, lo = -1, hi = 1) => b.constant(n, f32([3], s, lo, hi));
    b.output(
      b.node1("max_pool", [x], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }),
      b.node1("average_pool", [x], { kernel_shape: [3, 2], strides: [2, 3], pads: [1, 0, 1, 1], count_include_pad: 1, ceil_mode: 1 }),
      b.node1("average_pool", [x], { kernel_shape: [2, 2], pads: [1, 1, 0, 0] }),
      b.node1("global_average_pool", [x]),
      b.node1("global_max_pool", [x]),
      b.node1("adaptive_avg_pool2d", [x], { output_size: [4, 3] }),
      b.node1("batch_norm", [x, c("sc", 1), c("bi", 2), c("me", 3), c("va", 4, 0.5, 2)], { epsilon: 1e-5 }),
    );
    const { gpu, ref, session } = await both(b.build(), [f32([2, 3, 9, 11], 7, -3, 3)]);
    expect(session.placements.every((p) => p.tier === "webgpu")).toBe(true);
    expectClose(gpu, ref, 1e-5, 1e-5);
  });
});

describe("resize", () => {
  itGpu("nearest, linear and cubic with scales, sizes, roi and every coordinate mode", async () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [1, 2, 5, 7]);
    const f = (name: string, v: number[]) => b.constant(name, tensor("float32", [v.length], Float32Array.from(v)));
    const outs = [
      b.node1("resize", [x, "", f("s1", [1, 1, 2, 2])], { mode: "nearest", coordinate_transformation_mode: "asymmetric", nearest_mode: "floor" }),
      b.node1("resize", [x, "", f("s2", [1, 1, 1.5, 0.6])], { mode: "nearest" }),
      b.node1("resize", [x, "", f("s3", [1, 1, 2, 3])], { mode: "linear", coordinate_transformation_mode: "half_pixel" }),
      b.node1("resize", [x, "", f("s4", [1, 1, 0.7, 1.3])], { mode: "linear", coordinate_transformation_mode: "align_corners" }),
      b.node1("resize", [x, "", "", b.constant("sz", i64([1, 2, 9, 4]))], { mode: "cubic", coordinate_transformation_mode: "pytorch_half_pixel", exclude_outside: 1 }),
      b.node1("resize", [x, f("roi", [0, 0, 0.2, 0.1, 1, 1, 0.9, 1.2]), "", b.constant("sz2", i64([1, 2, 4, 6]))], { mode: "linear", coordinate_transformation_mode: "tf_crop_and_resize", extrapolation_value: 7 }),
    ];
    b.output(...outs);
    const { gpu, ref, session } = await both(b.build(), [f32([1, 2, 5, 7], 3, -2, 2)]);
    expect(session.placements.every((p) => p.tier === "webgpu" || p.tier === "compile-time")).toBe(true);
    expectClose(gpu, ref, 1e-5, 1e-5);
  });
});

/** x -> relu -> reshape -> (cast: no WGSL kernel, runs on the CPU) -> sigmoid, and x's shape. */
function mixed(): Graph {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", ["N", 4]);
  const r = b.node1("relu", [x], {}, { name: "relu" });
  const sh = b.node1("shape", [r], {}, { name: "shape" });
  const flat = b.node1("reshape", [r, b.constant("m1", i64([-1]))], {}, { name: "flat" });
  const t = b.node1("cast", [flat], { to: "float32" }, { name: "cast" });
  const s = b.node1("sigmoid", [t], {}, { name: "sigmoid" });
  b.output(s, sh);
  return b.build();
}

describe("plans, placements and fallback", () => {
  itGpu("a node without a WGSL kernel runs on the CPU, visibly, between GPU nodes; shapes fold per input shape", async () => {
    const g = mixed();
    const { gpu, ref, session } = await both(g, [f32([3, 4], 1)]);
    const byNode = Object.fromEntries(session.placements.map((p) => [p.node, p]));
    expect(byNode["relu"]!.tier).toBe("webgpu");
    expect(byNode["shape"]!.kernel).toBe("shape_fold");
    expect(byNode["flat"]!.kernel).toBe("alias");
    expect(byNode["cast"]!.fallback).toBe(true);
    expect(byNode["cast"]!.note).toContain("no WGSL kernel");
    expect(byNode["sigmoid"]!.tier).toBe("webgpu");
    expectClose(gpu, ref, 1e-6, 1e-7);
    expect(session.lastRun.downloads).toBe(1);
    // Another batch size: a second plan with its own shapes.
    const x2 = f32([5, 4], 2);
    const [a, shape] = await session.run([x2]);
    const [ra, rshape] = (await both(g, [x2])).ref;
    expectClose([a!, shape!], [ra!, rshape!], 1e-6, 1e-7);
  });
});
