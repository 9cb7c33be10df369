import { describe, expect, it } from "vitest";
import { parseGraph, printGraph, tensorsEqual, toFloat64, verifyGraph, type Tensor } from "@qforge/ir";
import { runProgram } from "@qforge/runtime";
import { exportModel, Var } from "@qforge/export";
import * as cnn from "../examples/cnn/model.js";
import * as mlp from "../examples/mlp/model.js";

function maxAbsDiff(a: Tensor, b: Tensor): number {
  const x = toFloat64(a);
  const y = toFloat64(b);
  expect(x.length).toBe(y.length);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
}

describe("examples: eager execution equals the exported program in the reference interpreter", () => {
  it("cnn: conv-bn-relu, residual add, cat, pooling, flatten, linear", () => {
    const model = cnn.createModel();
    const x = cnn.exampleInput();
    const eager = model.call(Var.from(x)).toTensor();
    expect(eager.shape).toEqual([2, 10]);
    const ep = exportModel(model, [x], { dynamicDims: [{ 0: "N" }] });
    verifyGraph(ep.graph);
    const ops = ep.graph.nodes.map((n) => n.op);
    for (const op of ["conv", "batch_norm", "relu", "add", "concat", "max_pool", "adaptive_avg_pool2d", "flatten", "linear"]) expect(ops).toContain(op);
    const [traced] = runProgram(ep, [x]);
    expect(maxAbsDiff(eager, traced!)).toBeLessThanOrEqual(1e-6);
    expect(tensorsEqual(eager, traced!)).toBe(true);
    // The symbolic batch dim lets the same program run on another batch size.
    const x3 = cnn.exampleInput(7, 3);
    expect(tensorsEqual(runProgram(ep, [x3])[0]!, model.call(Var.from(x3)).toTensor())).toBe(true);
    // Batch norm statistics came from the warm-up passes, not the fresh-model defaults.
    const rm = ep.graph.constants["stem.bn.running_mean"]!;
    expect(rm.kind).toBe("buffer");
    expect(Array.from(toFloat64(rm.tensor)).some((v) => v !== 0)).toBe(true);
  });

  it("mlp: Linear, GELU, LayerNorm, Dropout in a ModuleList, softmax", () => {
    const model = mlp.createModel();
    const x = mlp.exampleInput();
    const eager = model.call(Var.from(x)).toTensor();
    const ep = exportModel(model, [x]);
    const [traced] = runProgram(ep, [x]);
    expect(maxAbsDiff(eager, traced!)).toBeLessThanOrEqual(1e-6);
    expect(tensorsEqual(eager, traced!)).toBe(true);
    expect(Object.keys(ep.graph.constants).filter((k) => ep.graph.constants[k]!.kind === "parameter")).toEqual([
      "layers.0.fc.weight", "layers.0.fc.bias", "layers.0.norm.weight", "layers.0.norm.bias",
      "layers.1.fc.weight", "layers.1.fc.bias", "layers.1.norm.weight", "layers.1.norm.bias",
      "classifier.weight", "classifier.bias",
    ]);
    const rows = Array.from(toFloat64(traced!));
    for (let r = 0; r < 4; r++) expect(rows.slice(r * 10, r * 10 + 10).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
  });

  it("the exported graphs print and parse back unchanged (module stacks and sources included)", () => {
    for (const [model, x] of [[cnn.createModel(), cnn.exampleInput()], [mlp.createModel(), mlp.exampleInput()]] as const) {
      const ep = exportModel(model, [x], { dynamicDims: [{ 0: "N" }] });
      const text = printGraph(ep.graph, { constants: "full" });
      expect(text).toContain('moduleStack=<"":');
      expect(parseGraph(text)).toEqual(ep.graph);
    }
  });
});
