import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { produce } from "immer";
import {
  GraphBuilder, GraphIndex, PassManager, QforgeError, definePass, foldConvBatchNormPass, formatPatches,
  removeIdentityPass, runPass, sortNodes, verifyGraph, type Graph,
} from "../src/index.js";
import { convBnGraph } from "./helpers.js";

describe("PassManager", () => {
  it("runs passes in order, verifies, records timing and patches", () => {
    const g = convBnGraph();
    const pm = new PassManager([removeIdentityPass, foldConvBatchNormPass]);
    const { graph, records } = pm.run(g);
    expect(records.map((r) => r.name)).toEqual(["remove-identity", "fold-conv-batchnorm"]);
    expect(records.every((r) => r.changed && r.patches.length > 0 && r.ms >= 0)).toBe(true);
    expect(graph.nodes.map((n) => n.op)).toEqual(["conv", "relu"]);
    expect(g.nodes.map((n) => n.op)).toEqual(["conv", "batch_norm", "relu", "identity"]); // input untouched
  });

  it("a pass that throws leaves its input untouched and names the pass", () => {
    const g = convBnGraph();
    const bad = definePass("bad", (d) => {
      d.nodes.pop();
      throw new Error("boom");
    });
    expect(() => runPass(bad, g)).toThrow(/pass 'bad' threw: boom/);
    expect(g.nodes).toHaveLength(4);
    try { runPass(bad, g); } catch (e) { expect((e as QforgeError).code).toBe("PASS_FAILED"); }
  });

  it("verification after a pass catches a broken graph", () => {
    const g = convBnGraph();
    const breaker = definePass("breaker", (d) => { d.nodes[2]!.inputs[0] = "nope"; });
    expect(() => new PassManager([breaker]).run(g)).toThrow(/after pass 'breaker'/);
  });

  it("prints after the chosen passes (graph or patches)", () => {
    const lines: string[] = [];
    new PassManager([removeIdentityPass, foldConvBatchNormPass], { printAfter: ["remove-identity"], printPatches: true, log: (s) => lines.push(s) }).run(convBnGraph());
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/after remove-identity/);
    expect(lines[0]).toMatch(/remove nodes\.3|replace outputs\.0/);
  });

  it("rejects duplicate pass names", () => {
    expect(() => new PassManager([removeIdentityPass, removeIdentityPass])).toThrow(QforgeError);
  });

  it("formatPatches summarizes tensors", () => {
    const { patches } = runPass(foldConvBatchNormPass, convBnGraph());
    expect(formatPatches(patches)).toMatch(/<Float32Array\(\d+\)>/);
  });
});

describe("rewrites", () => {
  it("conv+bn folding removes the batch norm and keeps metadata", () => {
    const { graph } = runPass(foldConvBatchNormPass, convBnGraph());
    verifyGraph(graph);
    const conv = graph.nodes.find((n) => n.op === "conv")!;
    expect(graph.nodes.some((n) => n.op === "batch_norm")).toBe(false);
    expect(conv.meta["fusedFrom"]).toEqual(["conv", "batch_norm"]);
    expect(Object.keys(graph.constants).sort()).toEqual(["conv.bias_fused", "conv.weight_fused"]);
  });

  it("conv+bn folding also handles a conv without bias", () => {
    const { graph } = runPass(foldConvBatchNormPass, convBnGraph(3, 2, 5, false));
    verifyGraph(graph);
    expect(graph.nodes.map((n) => n.op)).toEqual(["conv", "relu", "identity"]);
    expect(graph.constants["conv.bias_fused"]!.tensor.shape).toEqual([5]);
  });

  it("does not fold when the conv output has another user", () => {
    const b = new GraphBuilder(convBnGraph());
    b.output("conv");
    const g = b.build();
    const { graph, patches } = runPass(foldConvBatchNormPass, g);
    expect(patches).toHaveLength(0);
    expect(graph).toBe(g);
  });

  it("remove-identity keeps a graph output that would alias a graph input", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [2]);
    b.output(b.node1("identity", [x]));
    const g = b.build();
    expect(runPass(removeIdentityPass, g).graph.nodes).toHaveLength(1);
  });

  it("dropout with a used mask is kept", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [2]);
    const [y, mask] = b.node("dropout", [x], {}, { numOutputs: 2 });
    b.output(b.node1("relu", [y!]), mask!);
    expect(runPass(removeIdentityPass, b.build()).graph.nodes.map((n) => n.op)).toEqual(["dropout", "relu"]);
  });

  it("passes are idempotent on random identity chains (fast-check)", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom("identity", "relu", "dropout", "sigmoid"), { minLength: 1, maxLength: 12 }), (ops) => {
        const b = new GraphBuilder();
        let v = b.input("x", "float32", [3]);
        for (const op of ops) v = b.node1(op, [v]);
        b.output(v);
        const once = runPass(removeIdentityPass, b.build()).graph;
        const twice = runPass(removeIdentityPass, once);
        expect(twice.patches).toHaveLength(0);
        verifyGraph(once);
        const kept = once.nodes.map((n) => n.op);
        expect(kept.filter((o) => o === "relu" || o === "sigmoid")).toEqual(ops.filter((o) => o === "relu" || o === "sigmoid"));
      }),
      { numRuns: 200 },
    );
  });
});

describe("GraphIndex and sortNodes", () => {
  it("answers users/producers/reachability and topological order", () => {
    const g = convBnGraph();
    const idx = new GraphIndex(g);
    expect(idx.users("conv").map((n) => n.name)).toEqual(["batch_norm"]);
    expect(idx.producers("relu").map((n) => n.name)).toEqual(["batch_norm"]);
    expect(idx.producerOf("x")).toBeUndefined();
    expect(idx.reaches("conv", "identity")).toBe(true);
    expect(idx.reaches("identity", "conv")).toBe(false);
    expect(idx.topologicalOrder()).toEqual(["conv", "batch_norm", "relu", "identity"]);
    expect(idx.isAcyclic()).toBe(true);
  });

  it("sortNodes restores a valid order from any permutation (fast-check)", () => {
    const g = convBnGraph();
    fc.assert(
      fc.property(fc.shuffledSubarray([0, 1, 2, 3], { minLength: 4, maxLength: 4 }), (perm) => {
        const shuffled = produce(g, (d) => { d.nodes = perm.map((i) => g.nodes[i]!) as never; });
        const sorted: Graph = { ...shuffled, nodes: sortNodes(shuffled) };
        verifyGraph(sorted);
        expect(sorted.nodes.map((n) => n.name)).toEqual(g.nodes.map((n) => n.name));
      }),
    );
  });
});

describe("GraphBuilder", () => {
  it("freshConstant picks a free name and defines the constant", () => {
    const b = new GraphBuilder();
    const t = { dtype: "float32" as const, shape: [1], data: new Float32Array([1]) };
    expect(b.freshConstant("c", t)).toBe("c");
    expect(b.freshConstant("c", t)).toBe("c_1");
    const x = b.input("x", "float32", [1]);
    b.output(b.node1("add", [x, "c_1"]));
    const g = b.build();
    verifyGraph(g);
    expect(Object.keys(g.constants)).toEqual(["c", "c_1"]);
  });

  it("rejects a taken name with DUPLICATE_NAME", () => {
    const b = new GraphBuilder();
    b.input("x", "float32", [1]);
    expect(() => b.input("x", "float32", [1])).toThrow(QforgeError);
  });
});
