/**
 * The built-in configs against torchao's formulas, re-derived here independently in float32
 * arithmetic (docs/quantization-math.md, "torchao quantize_").
 */
import { describe, expect, it } from "vitest";
import { Linear, manualSeed, normalTensor } from "@qforge/export";
import { getElement, isQforgeError, tensor, toFloat64, type Tensor } from "@qforge/ir";
import { f32, PerGroup, PerTensor, rint } from "@qforge/quant";
import {
  CodebookWeightOnlyConfig, dequantizeWeight, Float8DynamicActivationFloat8WeightConfig, Float8WeightOnlyConfig, Int4WeightOnlyConfig,
  Int8DynamicActivationInt4WeightConfig, Int8DynamicActivationInt8WeightConfig, Int8DynamicActivationIntxWeightConfig,
  Int8WeightOnlyConfig, intRepr, QuantizedLinear, quantize_, type AffineQuantizedTensor, type QuantizedWeight,
} from "../src/index.js";

/** Quantizes one Linear's weight with `config` and returns the QuantizedLinear. */
function quantizeOne(w: Tensor, config: Parameters<typeof quantize_>[1]): QuantizedLinear {
  const lin = new Linear(w.shape[1]!, w.shape[0]!);
  lin.weight.assign(w);
  const out = quantize_(lin, config);
  expect(out).toBeInstanceOf(QuantizedLinear);
  return out as unknown as QuantizedLinear;
}

function affine(w: QuantizedWeight): AffineQuantizedTensor {
  if (w.kind !== "affine") throw new Error("expected an affine weight");
  return w;
}

function weight(seed: number, n: number, k: number): Tensor {
  manualSeed(seed);
  return normalTensor([n, k], 0, 0.1);
}

const values = (t: Tensor): number[] => Array.from(toFloat64(t));

describe("weight formulas match torchao", () => {
  it("Int8WeightOnlyConfig: symmetric int8 per row, scale = amax / 127.5, q = clamp(rint(w * (1 / scale)), -128, 127)", () => {
    const w = weight(1, 6, 32);
    const q = affine(quantizeOne(w, new Int8WeightOnlyConfig()).weight);
    expect(q.targetDtype).toBe("int8");
    expect(q.blockSize).toEqual([1, 32]);
    expect(q.zeroPoint?.dtype).toBe("int8");
    expect(values(q.zeroPoint!).every((z) => z === 0)).toBe(true);
    const codes = values(intRepr(q));
    for (let r = 0; r < 6; r++) {
      const row = Array.from(w.data.subarray(r * 32, r * 32 + 32) as Float32Array);
      const amax = Math.max(...row.map(Math.abs));
      const scale = f32(amax / 127.5);
      expect(getElement(q.scale, r)).toBe(scale);
      const inv = f32(1 / scale);
      row.forEach((v, i) => expect(codes[r * 32 + i]).toBe(Math.min(127, Math.max(-128, rint(f32(v * inv)))) + 0));
    }
  });

  it("Int4WeightOnlyConfig (tinygemm): uint4 per group, scale = (max - min) / 15, zero = min + 8 * scale, q = rint((w - (zero - 8 * scale)) / scale)", () => {
    const w = weight(2, 4, 64);
    const q = affine(quantizeOne(w, new Int4WeightOnlyConfig({ groupSize: 32 })).weight);
    expect([q.targetDtype, q.zeroPointDomain, q.quantMin, q.quantMax]).toEqual(["uint4", "FLOAT", 0, 15]);
    expect(q.scale.shape).toEqual([4, 2]);
    const codes = values(intRepr(q));
    const d = w.data as Float32Array;
    for (let r = 0; r < 4; r++) {
      for (let g = 0; g < 2; g++) {
        const group = Array.from(d.subarray(r * 64 + g * 32, r * 64 + g * 32 + 32));
        const lo = Math.min(...group);
        const hi = Math.max(...group);
        const scale = Math.max(f32(f32(hi - lo) / 15), f32(2 ** -126));
        const zero = f32(lo + f32(scale * 8));
        expect(getElement(q.scale, r * 2 + g)).toBe(scale);
        expect(getElement(q.zeroPoint!, r * 2 + g)).toBe(zero);
        const minVal = f32(zero - f32(scale * 8));
        group.forEach((v, i) => expect(codes[r * 64 + g * 32 + i]).toBe(Math.min(15, Math.max(0, rint(f32(f32(v - minVal) / scale)))) + 0));
        // dequantize_affine_tinygemm: (q - 8) * scale + zero
        const dq = values(dequantizeWeight(q));
        group.forEach((_, i) => {
          const c = codes[r * 64 + g * 32 + i]!;
          expect(dq[r * 64 + g * 32 + i]).toBe(f32(f32(f32(c - 8) * scale) + zero));
        });
      }
    }
  });

  it("Int8DynamicActivationInt4WeightConfig (8da4w): symmetric int4 per group of 32, scale = amax / 7.5, q in [-8, 7]", () => {
    const w = weight(3, 3, 64);
    const ql = quantizeOne(w, new Int8DynamicActivationInt4WeightConfig());
    const q = affine(ql.weight);
    expect(ql.act).toEqual({ kind: "dynamic", dtype: "int8", mapping: "ASYMMETRIC", granularity: "per_token", compute: "dequantize" });
    expect([q.targetDtype, q.blockSize[1], q.quantMin, q.quantMax]).toEqual(["int4", 32, -8, 7]);
    const codes = values(intRepr(q));
    const d = w.data as Float32Array;
    for (let b = 0; b < 6; b++) {
      const group = Array.from(d.subarray(b * 32, b * 32 + 32));
      const scale = f32(Math.max(...group.map(Math.abs)) / 7.5);
      expect(getElement(q.scale, b)).toBe(scale);
      const inv = f32(1 / scale);
      group.forEach((v, i) => expect(codes[b * 32 + i]).toBe(Math.min(7, Math.max(-8, rint(f32(v * inv)))) + 0));
    }
  });

  it("Float8WeightOnlyConfig: per-row scale = amax / 448, q = e4m3(w / scale)", () => {
    const w = weight(4, 2, 16);
    const q = affine(quantizeOne(w, new Float8WeightOnlyConfig()).weight);
    expect([q.targetDtype, q.zeroPointDomain, q.zeroPoint]).toEqual(["float8_e4m3fn", "NONE", null]);
    const d = w.data as Float32Array;
    for (let r = 0; r < 2; r++) expect(getElement(q.scale, r)).toBe(f32(Math.max(...Array.from(d.subarray(r * 16, r * 16 + 16)).map(Math.abs)) / 448));
    const dq = values(dequantizeWeight(q));
    dq.forEach((v, i) => expect(Math.abs(v - d[i]!)).toBeLessThanOrEqual(Math.abs(d[i]!) * 2 ** -3 + 1e-6));
  });

  it("Int8DynamicActivationInt8WeightConfig uses int32 accumulation with symmetric per-token activations; Float8 dynamic is per tensor", () => {
    const w = weight(5, 4, 16);
    expect(quantizeOne(w, new Int8DynamicActivationInt8WeightConfig()).act).toEqual({ kind: "dynamic", dtype: "int8", mapping: "SYMMETRIC", granularity: "per_token", compute: "integer" });
    const f8 = quantizeOne(w, new Float8DynamicActivationFloat8WeightConfig());
    expect(f8.act).toMatchObject({ dtype: "float8_e4m3fn", granularity: "per_tensor" });
    expect(affine(f8.weight).scale.shape).toEqual([]);
    expect(affine(quantizeOne(w, new Float8DynamicActivationFloat8WeightConfig({ granularity: "per_row" })).weight).scale.shape).toEqual([4]);
    expect(affine(quantizeOne(w, new Int8WeightOnlyConfig({ granularity: PerTensor() })).weight).scale.shape).toEqual([]);
    expect(affine(quantizeOne(w, new Int8WeightOnlyConfig({ granularity: PerGroup(8) })).weight).scale.shape).toEqual([4, 2]);
    const q2 = affine(quantizeOne(w, new Int8DynamicActivationIntxWeightConfig({ weightDtype: "int2", granularity: PerGroup(8) })).weight);
    expect([q2.quantMin, q2.quantMax, q2.targetDtype]).toEqual([-2, 1, "int2"]);
  });

  it("codebook: every code indexes its block's codebook; more bits, less error", () => {
    const w = weight(6, 8, 64);
    const errs = [2, 3, 4].map((bits) => {
      const q = quantizeOne(w, new CodebookWeightOnlyConfig({ bits, groupSize: 32 })).weight;
      expect(q.kind).toBe("codebook");
      if (q.kind !== "codebook") return 0;
      expect(q.codebook.shape).toEqual([16, 2 ** bits]);
      const dq = values(dequantizeWeight(q));
      return dq.reduce((s, v, i) => s + (v - (w.data as Float32Array)[i]!) ** 2, 0);
    });
    expect(errs[0]!).toBeGreaterThan(errs[1]!);
    expect(errs[1]!).toBeGreaterThan(errs[2]!);
  });
});

describe("config validation", () => {
  it("refuses bad options with BAD_CONFIG", () => {
    const bad = [
      () => new Int4WeightOnlyConfig({ groupSize: 48 as 32 }),
      () => new Int8DynamicActivationIntxWeightConfig({ weightDtype: "uint4" }),
      () => new Float8WeightOnlyConfig({ weightDtype: "int8" as "float8_e4m3fn" }),
      () => new CodebookWeightOnlyConfig({ bits: 9 }),
      () => new Int8DynamicActivationInt8WeightConfig({ granularity: PerGroup(32) }),
    ];
    for (const f of bad) {
      try {
        f();
        expect.unreachable();
      } catch (e) {
        expect(isQforgeError(e, "BAD_CONFIG")).toBe(true);
      }
    }
  });

  it("a weight whose K the group size does not divide stays float and is reported", () => {
    const lin = new Linear(48, 4);
    const skipped: string[] = [];
    const out = quantize_(lin, new Int4WeightOnlyConfig({ groupSize: 32 }), undefined, { onSkip: (fqn, why) => skipped.push(`${fqn}: ${why}`) });
    expect(out).toBe(lin);
    expect(skipped).toEqual([": in_features 48 is not divisible by group size 32"]);
  });

  it("tensors built by hand type-check through the op schema", () => {
    const q = affine(quantizeOne(weight(7, 2, 8), new Int8WeightOnlyConfig()).weight);
    expect(() => new QuantizedLinear({ ...q, scale: tensor("float32", [3], new Float32Array(3)) })).toThrow(/scale must have shape/);
  });
});
