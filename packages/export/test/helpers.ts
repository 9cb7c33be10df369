import { expect } from "vitest";
import { fromArray, tensorsEqual, toFloat64, type Tensor } from "@qforge/ir";
import { runProgram } from "@qforge/runtime";
import { exportModel, Generator, Var, type ExportOptions, type Module } from "@qforge/export";

/** float32 tensor from nested-free values. */
export function f32(shape: readonly number[], values: readonly number[]): Tensor {
  return fromArray("float32", shape, values);
}

export function arange(shape: readonly number[], start = 0): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return f32(shape, Array.from({ length: n }, (_, i) => start + i));
}

export function randTensor(seed: number, shape: readonly number[], lo = -1, hi = 1): Tensor {
  const g = new Generator(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return f32(shape, Array.from({ length: n }, () => g.uniform(lo, hi)));
}

/** Elementwise |a - b| <= tol, with the shapes equal. */
export function expectClose(actual: Tensor | Var, expected: readonly number[], tol = 1e-6, shape?: readonly number[]): void {
  const t = actual instanceof Var ? actual.toTensor() : actual;
  if (shape !== undefined) expect(t.shape).toEqual(shape);
  const got = Array.from(toFloat64(t));
  expect(got.length).toBe(expected.length);
  got.forEach((g, i) => {
    if (Math.abs(g - expected[i]!) > tol) expect.fail(`element ${i}: got ${g}, expected ${expected[i]} (tol ${tol}); all: [${got.join(", ")}]`);
  });
}

/**
 * Runs `model` eagerly on `inputs`, exports it, runs the program in the interpreter and checks the
 * two agree bit for bit (both use the runtime's reference kernels). Returns both for more checks.
 */
export function checkExport(model: Module, inputs: readonly Tensor[], opts: ExportOptions = {}): { eager: Tensor[]; traced: Tensor[]; ep: ReturnType<typeof exportModel> } {
  const out: unknown = model.call(...inputs.map((t) => Var.from(t)));
  const eager = (Array.isArray(out) ? out : [out]).map((v) => (v as Var).toTensor());
  const ep = exportModel(model, inputs, opts);
  const traced = runProgram(ep, inputs);
  expect(traced.length).toBe(eager.length);
  traced.forEach((t, i) => {
    const e = eager[i]!;
    expect(t.shape).toEqual(e.shape);
    if (!tensorsEqual(t, e)) {
      const a = toFloat64(t);
      const b = toFloat64(e);
      let max = 0;
      for (let k = 0; k < a.length; k++) max = Math.max(max, Math.abs(a[k]! - b[k]!));
      expect.fail(`output ${i} differs between eager and exported program (max |diff| ${max})`);
    }
  });
  return { eager, traced, ep };
}
