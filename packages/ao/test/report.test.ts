import { describe, expect, it } from "vitest";
import { exportModel, F, Linear, manualSeed, Module, uniformTensor, type Var } from "@qforge/export";
import { tensor } from "@qforge/ir";
import {
  dequantizeWeight, formatWeightReport, Int4WeightOnlyConfig, Int8WeightOnlyConfig, QuantizedLinear, quantize_, quantizedWeights, sqnr,
  weightNbytes, weightReport,
} from "../src/index.js";

class Net extends Module {
  fc1 = new Linear(64, 32);
  fc2 = new Linear(32, 8);
  forward(x: Var): Var {
    return this.fc2.call(F.relu(this.fc1.call(x)));
  }
}

function net(): Net {
  manualSeed(31);
  return new Net();
}

describe("weightReport", () => {
  it("per-layer SQNR and bytes, and model totals, for Modules and programs alike", () => {
    const before = net();
    const after = quantize_(net(), new Int8WeightOnlyConfig(), (_m, fqn) => fqn === "fc1");
    const r = weightReport(before, after);
    expect(r.layers.map((l) => l.name)).toEqual(["fc1"]);
    const row = r.layers[0]!;
    const q = (after.fc1 as unknown as QuantizedLinear).weight;
    expect(row.sqnrDb).toBe(sqnr(before.fc1.weight.data, dequantizeWeight(q)));
    expect(row.sqnrDb).toBeGreaterThan(40); // int8 per row on a uniform weight: about 48 dB
    expect(row.bytesBefore).toBe(32 * 64 * 4);
    expect(row.bytesAfter).toBe(32 * 64 + 32 * 4 + 32); // int8 codes, float32 scales, int8 zero points
    expect(row.bytesAfter).toBe(weightNbytes(q));
    expect(r.totalBytesBefore).toBe((32 * 64 + 32 + 8 * 32 + 8) * 4);
    expect(r.totalBytesAfter).toBe(r.totalBytesBefore - row.bytesBefore + row.bytesAfter);
    const x = uniformTensor([2, 64], -1, 1);
    const viaPrograms = weightReport(exportModel(before, [x]), quantize_(exportModel(before, [x]), new Int8WeightOnlyConfig(), (_m, fqn) => fqn === "fc1"));
    expect(viaPrograms).toEqual(r);
    expect([...quantizedWeights(exportModel(after, [x])).keys()]).toEqual(["fc1"]);
  });

  it("int4 loses more than int8, and the table prints both", () => {
    const before = net();
    const r8 = weightReport(before, quantize_(net(), new Int8WeightOnlyConfig()));
    const r4 = weightReport(before, quantize_(net(), new Int4WeightOnlyConfig({ groupSize: 32 })));
    r4.layers.forEach((l, i) => {
      expect(l.sqnrDb).toBeLessThan(r8.layers[i]!.sqnrDb - 15);
      expect(l.bytesAfter).toBeLessThan(r8.layers[i]!.bytesAfter);
    });
    const text = formatWeightReport(r4);
    expect(text).toMatch(/^\| layer \| shape \| quantization \| SQNR \(dB\) \| bytes before \| bytes after \|/);
    expect(text).toMatch(/\| fc1 \| 32x64 \| uint4 asym group 32 float-zp plain \| \d+\.\d \| 8\.0 KiB \| 1\.5 KiB \|/);
    expect(text).toMatch(/total: .* smaller\)$/);
  });

  it("sqnr: exact copies are infinite, halving the signal is 6 dB", () => {
    const a = tensor("float32", [4], Float32Array.of(1, -2, 3, -4));
    expect(sqnr(a, a)).toBe(Infinity);
    expect(sqnr(a, tensor("float32", [4], Float32Array.of(0.5, -1, 1.5, -2)))).toBeCloseTo(6.0206, 3);
  });
});
