import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { checkFakeQuantCase } from "../src/golden/fake-quant.js";

// The shared golden folder sits next to the repository (../shared/golden); QFORGE_GOLDEN_DIR overrides it.
const goldenDir = process.env.QFORGE_GOLDEN_DIR ?? fileURLToPath(new URL("../../../../shared/golden/", import.meta.url));
const file = join(goldenDir, "fake_quant.json");

/** A synthetic case in the golden schema, computed by hand: scale 0.25, zero point 2, range [0, 15]. */
function syntheticCase(): Record<string, unknown> {
  const tensor = (data: number[]) => ({ dtype: "float32", shape: [4], data });
  return {
    id: "synthetic-0",
    op: "fake_quantize_per_tensor_affine",
    input: tensor([-1, 0.26, 0.5, 10]),
    scale: 0.25,
    zero_point: 2,
    quant_min: 0,
    quant_max: 15,
    upstream_grad: tensor([-1, 2, 3, 4]),
    output: tensor([-0.5, 0.25, 0.5, 3.25]),
    grad_input: tensor([-0.0, 2, 3, 0]),
  };
}

describe("checkFakeQuantCase", () => {
  it("accepts a correct case", () => {
    expect(checkFakeQuantCase(syntheticCase())).toEqual({ id: "synthetic-0", ok: true, diffs: [] });
  });

  it("reports the first differences of a wrong case, bit for bit (-0.0 is not 0.0)", () => {
    const c = syntheticCase();
    (c.output as { data: number[] }).data[3] = 3.5;
    (c.grad_input as { data: number[] }).data[0] = 0;
    const r = checkFakeQuantCase(c);
    expect(r.ok).toBe(false);
    expect(r.diffs).toEqual([
      "output[3]: got 3.25, expected 3.5 (1 of 4 differ)",
      "grad_input[0]: got -0, expected 0 (1 of 4 differ)",
    ]);
  });

  it("fails unknown ops and malformed cases instead of throwing", () => {
    expect(checkFakeQuantCase({ id: "x", op: "no_such_op" }).ok).toBe(false);
    const r = checkFakeQuantCase({ id: "y", op: "quantize_per_tensor", input: { dtype: "float32", shape: [2], data: [1] } });
    expect(r.ok).toBe(false);
    expect(r.diffs[0]).toMatch(/threw/);
  });

  it("compares LSQ totals with a relative tolerance of 1e-5", () => {
    const t = (shape: number[], data: number[]) => ({ dtype: "float32", shape, data });
    const base = {
      id: "lsq", op: "fake_quantize_learnable_per_tensor_affine",
      input: t([2], [0.5, 10]), scale: t([1], [1]), zero_point: t([1], [0]), quant_min: -8, quant_max: 7, grad_factor: 1,
      upstream_grad: t([2], [1, 1]),
      output: t([2], [0, 7]), grad_input: t([2], [1, 0]),
      grad_scale_elements: t([2], [-0.5, 7]), grad_zero_point_elements: t([2], [0, -1]),
      grad_scale: t([1], [6.5]), grad_zero_point: t([1], [-1]),
    };
    expect(checkFakeQuantCase(base).ok).toBe(true);
    expect(checkFakeQuantCase({ ...base, grad_scale: t([1], [6.5 * (1 + 5e-6)]) }).ok).toBe(true);
    expect(checkFakeQuantCase({ ...base, grad_scale: t([1], [6.5 * (1 + 5e-5)]) }).ok).toBe(false);
  });
});

describe.skipIf(!existsSync(file))("golden fake_quant.json (PyTorch 1.13)", () => {
  const golden = existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as { family: string; cases: unknown[] }) : { family: "", cases: [] };

  it("is a fake_quant case file", () => {
    expect(golden.family).toBe("fake_quant");
    expect(golden.cases.length).toBeGreaterThan(0);
  });

  it("passes every case", () => {
    const results = golden.cases.map((c) => checkFakeQuantCase(c));
    const failing = results.filter((r) => !r.ok);
    for (const f of failing) console.log(`FAIL ${f.id}:\n  ${f.diffs.join("\n  ")}`);
    console.log(`golden fake_quant: ${results.length - failing.length}/${results.length} cases pass`);
    expect(failing.map((f) => f.id)).toEqual([]);
  });
});
