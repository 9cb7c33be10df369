import { describe, expect, test } from "vitest";
import { P } from "ts-pattern";
import { GraphBuilder, tensor, type ValueView } from "@qforge/ir";
import { chainPattern, findChains, graphViews, matchNodes } from "@qforge/quantizer";
import { convBnProgram, netProgram } from "./models.js";

describe("pattern matching over value views", () => {
  test("findChains finds conv -> batch_norm -> relu, first op first", () => {
    const g = convBnProgram().graph;
    expect(findChains(g, ["conv", "batch_norm", "relu"]).map((c) => c.map((n) => n.name))).toEqual([
      ["conv", "batch_norm", "relu"], ["conv_1", "batch_norm_1", "relu_1"],
    ]);
    expect(findChains(g, ["conv", "relu"])).toEqual([]);
  });

  test("alternatives: conv -> relu | clip", () => {
    const g = netProgram().graph;
    expect(findChains(g, ["conv", ["relu", "clip"]]).map((c) => c.map((n) => n.name))).toEqual([["conv", "relu"], ["conv_1", "clip"]]);
    expect(findChains(g, ["add", "relu"]).map((c) => c.map((n) => n.name))).toEqual([["add", "relu_1"]]);
    expect(findChains(g, ["linear", "relu"]).map((c) => c.map((n) => n.name))).toEqual([["linear", "relu_2"]]);
  });

  test("singleUse refuses a chain whose inner value has another user (or is a graph output)", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [1, 2, 4, 4]);
    const w = b.constant("w", tensor("float32", [2, 2, 1, 1], Float32Array.of(1, 0, 0, 1)), "parameter");
    const c = b.node1("conv", [x, w], { strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1], group: 1 });
    const r = b.node1("relu", [c]);
    const s = b.node1("sigmoid", [c]);
    b.output(r, s);
    const g = b.build();
    expect(findChains(g, ["conv", "relu"]).length).toBe(1);
    expect(findChains(g, ["conv", "relu"], { singleUse: true })).toEqual([]);
    const b2 = new GraphBuilder();
    const x2 = b2.input("x", "float32", [2]);
    const r2 = b2.node1("relu", [x2]);
    const s2 = b2.node1("sigmoid", [r2]);
    b2.output(r2, s2);
    expect(findChains(b2.build(), ["relu", "sigmoid"], { singleUse: true })).toEqual([]);
  });

  test("matchNodes takes any ts-pattern pattern over ValueView, e.g. add with a constant operand", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [2]);
    const one = b.constant("one", tensor("float32", [], Float32Array.of(1)));
    const a1 = b.node1("add", [x, one], {}, { name: "plus_one" });
    const a2 = b.node1("add", [a1, a1], {}, { name: "double" });
    b.output(a2);
    const g = b.build();
    const pattern: P.Pattern<ValueView> = { kind: "node", op: "add", inputs: [P._, { kind: "constant", tensor: { shape: [] } }] };
    expect(matchNodes(g, pattern).map((v) => v.name)).toEqual(["plus_one"]);
    expect(matchNodes(g, chainPattern(["add", "add"])).map((v) => v.name)).toEqual(["double"]);
  });

  test("views: kinds, use counts (graph outputs count) and users", () => {
    const g = netProgram().graph;
    const v = graphViews(g);
    expect(v.view("x")).toMatchObject({ kind: "input", users: 1 });
    expect(v.view("stem.0.weight")).toMatchObject({ kind: "constant", constKind: "parameter" });
    expect(v.view("")).toMatchObject({ kind: "none" });
    expect(v.view("max_pool_1")).toMatchObject({ kind: "node", op: "max_pool", users: 3 });
    expect(v.view("sigmoid")).toMatchObject({ kind: "node", users: 1 });
    expect(v.users("hardswish").map((n) => n.name)).toEqual(["sigmoid", "tanh", "softmax"]);
    expect(v.view("relu")).toBe(v.view("relu"));
  });

  test("an empty chain is refused", () => {
    expect(() => chainPattern([])).toThrow(/BAD_INPUT/);
  });
});
