import { describe, expect, it } from "vitest";
import { Var } from "@qforge/export";
import { tensorsEqual } from "@qforge/ir";
import { planAoKernels } from "@qforge/ao";
import { runProgram } from "@qforge/runtime";
import { createModel, exampleTokens, SMALL } from "./model.js";
import { formatRows, runTransformerExample } from "./quantize.js";

describe("examples/transformer: quantize_ on a small transformer", () => {
  it("A16W8, A16W4 and 8da4w stay close to float, shrink the model, and run on the cpu kernels", () => {
    const t0 = performance.now();
    const { rows, programs } = runTransformerExample({ reps: 2 });
    console.log(formatRows(rows));
    const by = Object.fromEntries(rows.map((r) => [r.name, r]));
    expect(rows.map((r) => r.name)).toEqual(["float32", "A16W8", "A16W4", "8da4w"]);
    expect(by["float32"]!.logitsSqnrDb).toBe(Infinity);
    expect(by["A16W8"]!.logitsSqnrDb).toBeGreaterThan(35);
    expect(by["A16W4"]!.logitsSqnrDb).toBeGreaterThan(18);
    expect(by["8da4w"]!.logitsSqnrDb).toBeGreaterThan(16);
    expect(by["A16W8"]!.top1).toBeGreaterThan(0.95);
    expect(by["A16W4"]!.top1).toBeGreaterThan(0.75);
    expect(by["8da4w"]!.top1).toBeGreaterThan(0.75);
    for (const r of rows.slice(1)) expect(r.cosine).toBeGreaterThan(0.99);
    // Linear weights shrink ~4x (int8) and ~6-7x (int4); the float embeddings and norms stay.
    expect(by["A16W8"]!.modelBytes).toBeLessThan(by["float32"]!.modelBytes * 0.6);
    expect(by["A16W4"]!.modelBytes).toBeLessThan(by["A16W8"]!.modelBytes);
    expect(by["8da4w"]!.modelBytes).toBeLessThan(by["A16W8"]!.modelBytes);
    // Every quantized linear has a cpu kernel (no dequantizing fallback).
    for (const name of ["A16W8", "A16W4", "8da4w"]) {
      const plan = planAoKernels(programs[name]!.graph, "cpu");
      expect(plan).toHaveLength(SMALL.layers * 6 + 1);
      expect(plan.every((p) => !p.fallback)).toBe(true);
    }
    // The exported program computes what the quantized module computes eagerly.
    const ids = exampleTokens();
    expect(tensorsEqual(runProgram(programs["float32"]!, [ids])[0]!, createModel().call(Var.from(ids)).toTensor())).toBe(true);
    expect(performance.now() - t0).toBeLessThan(20_000);
  });
});
