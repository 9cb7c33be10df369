import { describe, expect } from "vitest";
import fc from "fast-check";
import { GraphBuilder, isQforgeError, programFromGraph, tensor, type Graph } from "@qforge/ir";
import { compile, listBackends, runGraph } from "@qforge/runtime";
import { compileWebGpu } from "../src/index.js";
import { both, expectClose, itGpu, randomFloats } from "./gpu-env.js";

const f32 = (shape: number[], seed: number) => tensor("float32", shape, randomFloats(shape.reduce((a, b) => a * b, 1), seed, -2, 2));

function chain(n: number): Graph {
  const b = new GraphBuilder();
  let v = b.input("x", "float32", ["N", 64]);
  for (let i = 0; i < n; i++) v = b.node1(i % 2 === 0 ? "relu" : "neg", [v], {}, { name: `n${i}` });
  b.output(v);
  return b.build();
}

describe("the webgpu backend through compile()", () => {
  itGpu("registers as 'webgpu' and runs an ExportedProgram in signature order", async () => {
    expect(listBackends()).toContain("webgpu");
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [3]);
    const y = b.input("y", "float32", [3]);
    b.output(b.node1("sub", [x, y], {}, { name: "sub" }));
    const g = b.build();
    const ep = { ...programFromGraph(g) };
    const s = await compile(ep, { backend: "webgpu" });
    expect(s.placements[0]).toMatchObject({ node: "sub", tier: "webgpu", fallback: false });
    const [out] = await s.run([f32([3], 1), f32([3], 2)]);
    expectClose([out!], runGraph(g, [f32([3], 1), f32([3], 2)]).outputs, 1e-6, 0);
  });

  itGpu("checks feeds, refuses runs after dispose, and serializes concurrent runs", async () => {
    const s = await compileWebGpu(chain(4));
    await expect(s.run([tensor("int32", [2, 64], new Int32Array(128))])).rejects.toSatisfy((e: unknown) => isQforgeError(e, "BAD_INPUT"));
    await expect(s.run([f32([2, 63], 1)])).rejects.toSatisfy((e: unknown) => isQforgeError(e, "BAD_INPUT"));
    const inputs = [f32([2, 64], 1), f32([5, 64], 2), f32([2, 64], 3)];
    const outs = await Promise.all(inputs.map((x) => s.run([x])));
    outs.forEach((o, i) => expectClose(o, runGraph(chain(4), [inputs[i]!]).outputs, 0, 0));
    s.dispose();
    await expect(s.run([inputs[0]!])).rejects.toSatisfy((e: unknown) => isQforgeError(e, "BAD_CONFIG"));
  });

  itGpu("memory planning reuses buffers along a chain; weights are uploaded once across plans; pipelines are shared", async () => {
    const s = await compileWebGpu(chain(20));
    await s.run([f32([4, 64], 1)]);
    const st = await s.stats();
    // Input + two buffers ping-ponging along the chain (each value dies after its one reader).
    expect(st.pooledBuffers).toBeLessThanOrEqual(3);

    const b = new GraphBuilder();
    const x = b.input("x", "float32", [1, 3, "H", "W"]);
    b.output(b.node1("conv", [x, b.constant("w", f32([4, 3, 3, 3], 5)), b.constant("b", f32([4], 6))], { pads: [1, 1, 1, 1] }, { name: "conv" }));
    const conv = await compileWebGpu(b.build());
    await conv.run([f32([1, 3, 6, 7], 1)]);
    const one = await conv.stats();
    await conv.run([f32([1, 3, 9, 5], 2)]);
    const two = await conv.stats();
    expect(two.plans).toBe(2);
    expect(two.sessionBuffers).toBe(one.sessionBuffers);
    expect(two.pipelines).toBe(one.pipelines);
  });

  itGpu("property: broadcasting elementwise ops agree with the reference for random shapes", async () => {
    const dim = fc.integer({ min: 1, max: 5 });
    await fc.assert(fc.asyncProperty(
      fc.array(dim, { minLength: 1, maxLength: 4 }), fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), fc.constantFrom("add", "mul", "sub", "max"), fc.integer({ min: 0, max: 99 }),
      async (shape, ones, op, seed) => {
        // b: a suffix of a's shape with some dims set to 1.
        const bShape = shape.slice(seed % shape.length).map((d, i) => (ones[i] === true ? 1 : d));
        const g = new GraphBuilder();
        const a = g.input("a", "float32", shape);
        const c = g.input("b", "float32", bShape);
        g.output(g.node1(op, [a, c]), g.node1(op, [c, a]));
        const { gpu, ref } = await both(g.build(), [f32(shape, seed), f32(bShape, seed + 1)]);
        expectClose(gpu, ref, 1e-6, 1e-6);
      }), { numRuns: 15, seed: 3 });
  });
});
