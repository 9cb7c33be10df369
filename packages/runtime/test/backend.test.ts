import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { GraphBuilder, isQforgeError, programFromGraph, type Graph, type Tensor } from "@qforge/ir";
import {
  compile, getBackend, listBackends, referenceBackend, registerBackend, runGraph, type Backend, type Session,
} from "../src/index.js";
import { f32, vals } from "./helpers.js";

/** y = relu(x) + c, z = x * 2. */
function smallGraph(): Graph {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", ["N", 3]);
  const c = b.constant("c", f32([3], [1, 2, 3]));
  const two = b.constant("two", f32([], [2]));
  const r = b.node1("relu", [x], {}, { name: "relu" });
  const y = b.node1("add", [r, c], {}, { name: "add" });
  const z = b.node1("mul", [x, two], {}, { name: "mul" });
  b.output(y, z);
  return b.build();
}

/** Two inputs, so that a program signature can reorder them. */
function twoInputs(): Graph {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", [2]);
  const y = b.input("y", "float32", [2]);
  b.output(b.node1("sub", [x, y], {}, { name: "sub" }), b.node1("add", [x, y], {}, { name: "add" }));
  return b.build();
}

describe("compile", () => {
  it("defaults to the reference backend and lists every node as a reference placement", async () => {
    const s = await compile(smallGraph());
    expect(s.plan).toEqual(["relu", "add", "mul"]);
    expect(s.placements.map((p) => [p.node, p.op, p.kernel, p.tier, p.fallback])).toEqual([
      ["relu", "relu", "reference", "reference", false],
      ["add", "add", "reference", "reference", false],
      ["mul", "mul", "reference", "reference", false],
    ]);
  });

  it("runs like runGraph for any input", async () => {
    const g = smallGraph();
    const s = await compile(g, { backend: "reference", threads: 2 });
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.array(fc.integer({ min: -9, max: 9 }), { minLength: 12, maxLength: 12 }), async (n, v) => {
      const x = f32([n, 3], v.slice(0, n * 3));
      const got = await s.run({ x });
      const want = runGraph(g, { x }).outputs;
      expect(vals(got[0])).toEqual(vals(want[0]));
      expect(vals(got[1])).toEqual(vals(want[1]));
    }), { numRuns: 15 });
  });

  it("fails with BAD_CONFIG naming the package for an unregistered backend", async () => {
    await expect(compile(smallGraph(), { backend: "no-such-backend" })).rejects.toSatisfy((e) => isQforgeError(e, "BAD_CONFIG"));
    const err = (() => { try { getBackend("cpu"); return undefined; } catch (e) { return e as Error; } })();
    if (!listBackends().includes("cpu")) expect(err?.message).toMatch(/@qforge\/backend-cpu/);
  });

  it("rejects a non-positive or fractional thread count", async () => {
    for (const threads of [0, -1, 1.5]) {
      await expect(compile(smallGraph(), { threads })).rejects.toSatisfy((e) => isQforgeError(e, "BAD_CONFIG"));
    }
  });

  it("dispatches to a registered backend with the options, and refuses a second backend of the same name", async () => {
    const seen: Record<string, unknown>[] = [];
    const fake: Backend = {
      name: "test-fake",
      async compile(g, opts): Promise<Session> {
        seen.push(opts ?? {});
        const inner = await referenceBackend.compile(g);
        return { ...inner, placements: inner.placements.map((p) => ({ ...p, kernel: "fake", tier: "js" })) };
      },
    };
    registerBackend(fake);
    registerBackend(fake); // the same object again is harmless
    expect(listBackends()).toContain("test-fake");
    const s = await compile(smallGraph(), { backend: "test-fake", threads: 3, custom: "x" });
    expect(seen[0]).toMatchObject({ backend: "test-fake", threads: 3, custom: "x" });
    expect(s.placements.every((p) => p.kernel === "fake" && p.tier === "js")).toBe(true);
    expect(() => registerBackend({ ...fake })).toThrow(/already registered/);
  });

  it("compiles an ExportedProgram in its signature's order", async () => {
    const g = twoInputs();
    const base = programFromGraph(g);
    // Swap the signature: inputs (y, x), outputs (add, sub).
    const ep = { ...base, inputs: [...base.inputs].reverse(), outputs: [...base.outputs].reverse() };
    const s = await compile(ep);
    const x = f32([2], [5, 7]);
    const y = f32([2], [1, 2]);
    const [add, sub] = await s.run([y, x]) as [Tensor, Tensor];
    expect(vals(add)).toEqual([6, 9]);
    expect(vals(sub)).toEqual([4, 5]);
  });
});
