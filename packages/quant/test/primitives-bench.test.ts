import { describe, expect, it } from "vitest";
import { benchQuant } from "../src/bench.js";

describe("benchQuant", () => {
  it("times every case on small inputs and reports elements per second", () => {
    const rows = benchQuant({ n: 4096, repeats: 3, warmup: 1 });
    expect(rows.map((r) => r.case)).toEqual([
      "quantize_per_tensor f32->quint8",
      "dequantize_per_tensor quint8->f32",
      "fake_quantize_per_tensor_affine f32 (output+mask)",
      "quantize_affine per_group(32) f32->int8",
      "baseline: allocate+fill float32 output",
      "baseline: allocate+fill uint8 output",
    ]);
    for (const r of rows) {
      expect(r.impl).toBe("qforge-ts");
      expect(r.threads).toBe(1);
      expect(r.unit).toBe("elements/s");
      expect(r.median_ms).toBeGreaterThanOrEqual(0);
      expect(r.throughput).toBeGreaterThan(0);
    }
    expect(rows.filter((r) => r.tier === "reference")).toHaveLength(4);
  });

  it("refuses sizes that are not whole groups", () => {
    expect(() => benchQuant({ n: 100 })).toThrow(RangeError);
  });
});
