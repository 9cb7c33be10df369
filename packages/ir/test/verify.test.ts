import { describe, expect, it } from "vitest";
import { produce } from "immer";
import { GraphBuilder, QforgeError, verifyGraph, type Graph, type QforgeErrorCode } from "../src/index.js";
import { convBnGraph } from "./helpers.js";

function expectError(fn: () => unknown, code: QforgeErrorCode, node?: string): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(QforgeError);
    const q = e as QforgeError;
    expect(q.code).toBe(code);
    if (node !== undefined) expect(q.node).toBe(node);
    return;
  }
  throw new Error(`expected ${code}`);
}

const base = convBnGraph();
const edit = (f: (g: { -readonly [K in keyof Graph]: any }) => void): Graph => produce(base, f as never);

describe("verifyGraph", () => {
  it("accepts a well-formed graph", () => {
    expect(() => verifyGraph(base)).not.toThrow();
  });

  it("DANGLING_INPUT names the node reading an undefined value", () => {
    const g = edit((d) => { d.nodes[2].inputs[0] = "nowhere"; });
    expectError(() => verifyGraph(g), "DANGLING_INPUT", g.nodes[2]!.name);
  });

  it("DANGLING_INPUT for an undefined graph output", () => {
    expectError(() => verifyGraph(edit((d) => { d.outputs.push("ghost"); })), "DANGLING_INPUT", "ghost");
  });

  it("CYCLE when a node depends on its own output", () => {
    const g = edit((d) => { d.nodes[0].inputs[0] = d.nodes[2].outputs[0]; });
    expectError(() => verifyGraph(g), "CYCLE");
    try { verifyGraph(g); } catch (e) { expect(["conv", "batch_norm", "relu"]).toContain((e as QforgeError).node); }
  });

  it("NOT_TOPOLOGICAL when nodes are out of order", () => {
    const g = edit((d) => { const [a, b] = [d.nodes[1], d.nodes[2]]; d.nodes[1] = b; d.nodes[2] = a; });
    expectError(() => verifyGraph(g), "NOT_TOPOLOGICAL", "relu");
  });

  it("DUPLICATE_NAME for two nodes with one name", () => {
    const g = edit((d) => { d.nodes[3].name = "relu"; });
    expectError(() => verifyGraph(g), "DUPLICATE_NAME", "relu");
  });

  it("DUPLICATE_NAME for a value defined twice", () => {
    const g = edit((d) => { d.nodes[3].outputs[0] = "relu"; });
    expectError(() => verifyGraph(g), "DUPLICATE_NAME", "identity");
  });

  it("UNKNOWN_OP names the node", () => {
    const g = edit((d) => { d.nodes[2].op = "frobnicate"; });
    expectError(() => verifyGraph(g), "UNKNOWN_OP", "relu");
  });

  it("SHAPE_MISMATCH when a recorded shape disagrees with inference", () => {
    const g = edit((d) => { d.values["relu"] = { dtype: "float32", shape: [1, 4, 6, 7] }; });
    expectError(() => verifyGraph(g), "SHAPE_MISMATCH", "relu");
  });

  it("SHAPE_MISMATCH when an op's inputs do not fit", () => {
    const g = edit((d) => { d.values["bn.weight"] = { dtype: "float32", shape: [5] }; d.constants["bn.weight"].tensor = { dtype: "float32", shape: [5], data: new Float32Array(5) }; });
    expectError(() => verifyGraph(g), "SHAPE_MISMATCH", "batch_norm");
  });

  it("DTYPE_MISMATCH when a recorded dtype disagrees", () => {
    const g = edit((d) => { d.values["relu"] = { dtype: "float16", shape: [1, 4, 6, 6] }; });
    expectError(() => verifyGraph(g), "DTYPE_MISMATCH", "relu");
  });

  it("DTYPE_MISMATCH for binary ops on different dtypes", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [2]);
    const y = b.input("y", "int32", [2]);
    expectError(() => b.node("add", [x, y]), "DTYPE_MISMATCH", "add");
  });

  it("BAD_ATTRIBUTE for an unknown or mistyped attribute", () => {
    expectError(() => verifyGraph(edit((d) => { d.nodes[2].attrs = { alpha: 1 }; })), "BAD_ATTRIBUTE", "relu");
    expectError(() => verifyGraph(edit((d) => { d.nodes[0].attrs = { group: 1.5 }; })), "BAD_ATTRIBUTE", "conv");
  });

  it("BAD_ARITY for a wrong number of inputs", () => {
    expectError(() => verifyGraph(edit((d) => { d.nodes[2].inputs.push("x"); })), "BAD_ARITY", "relu");
  });

  it("UNDEFINED_OUTPUT when a value has no recorded type", () => {
    expectError(() => verifyGraph(edit((d) => { delete d.values["relu"]; })), "UNDEFINED_OUTPUT", "relu");
  });

  it("BAD_TENSOR when constant storage does not fit its shape", () => {
    const g = edit((d) => { d.constants["conv.bias"].tensor = { dtype: "float32", shape: [4], data: new Float32Array(3) }; });
    expectError(() => verifyGraph(g), "BAD_TENSOR", "conv.bias");
  });
});
