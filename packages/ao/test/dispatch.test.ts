/**
 * Kernel dispatch by device and layout: the cpu kernels equal the reference kernels bit for bit on
 * every layout they read, and a node without a kernel falls back to the reference kernel with one
 * visible warning.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { exportModel, F, Linear, manualSeed, Module, normalTensor, uniformTensor, type Var } from "@qforge/export";
import { fromArray, getOp, resolveAttrs, tensor, tensorsEqual, type AttrValue, type Tensor } from "@qforge/ir";
import { PerGroup } from "@qforge/quant";
import { getKernel, runOp, runProgram } from "@qforge/runtime";
import {
  affineQuantizeWeight, activationAttrs, affineWeightAttrs, codebookQuantizeWeight, codebookWeightAttrs, Int4PairsLayout,
  Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, listAoKernels, planAoKernels, PlainLayout, quantize_,
  registerAoKernel, runQuantized, selectAoKernel, TilesLayout, U32WordsLayout, unregisterAoKernel, type ActivationQuant, type WeightLayout,
} from "../src/index.js";

const ACTS: ActivationQuant[] = [
  { kind: "none" },
  { kind: "dynamic", dtype: "int8", mapping: "ASYMMETRIC", granularity: "per_token", compute: "dequantize" },
  { kind: "dynamic", dtype: "float8_e4m3fn", mapping: "SYMMETRIC", granularity: "per_tensor", compute: "dequantize" },
  { kind: "static", dtype: "uint8", scale: 0.02, zeroPoint: 100, compute: "dequantize" },
];

/** Runs the cpu kernel the dispatcher selects (on schema-resolved attributes, as the executor passes) and the reference kernel. */
function cpuVsReference(op: string, inputs: (Tensor | undefined)[], attrs: Record<string, AttrValue>): void {
  const resolved = resolveAttrs(getOp(op), attrs);
  const hit = selectAoKernel(op, "cpu", resolved);
  expect(hit).toBeDefined();
  const want = runOp(op, inputs, attrs)[0]!;
  const got = hit!.kernel(inputs, resolved, { node: "n", op, numOutputs: 1, outputTypes: [{ dtype: want.dtype, shape: want.shape }] })[0]!;
  expect(tensorsEqual(got, want)).toBe(true);
}

describe("cpu kernels equal the reference kernels", () => {
  it("affine_quantized_linear, every cpu layout, dtype, granularity and activation treatment", () => {
    const layouts = (bits: number): WeightLayout[] => (bits === 4 ? [PlainLayout(), Int4PairsLayout(), TilesLayout(4, 8), TilesLayout(3, 16)] : [PlainLayout(), TilesLayout(4, 8), TilesLayout(5, 32)]);
    fc.assert(fc.property(fc.integer({ min: 1, max: 11 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 5 }), fc.nat(100), fc.constantFrom(...ACTS), (n, kq, rows, seed, act) => {
      const k = 16 * kq;
      manualSeed(seed);
      const w = normalTensor([n, k], 0, 0.2);
      const x = uniformTensor([rows, k], -2, 2);
      const bias = uniformTensor([n], -1, 1);
      const variants = [
        { targetDtype: "uint4", mappingType: "ASYMMETRIC", blockSize: [1, 16], zeroPointDomain: "FLOAT", preserveZero: false },
        { targetDtype: "int4", mappingType: "SYMMETRIC", blockSize: [1, k] },
        { targetDtype: "int8", mappingType: "SYMMETRIC", blockSize: [n, k] },
        { targetDtype: "int8", mappingType: "ASYMMETRIC", blockSize: [1, 16] },
        { targetDtype: "float8_e4m3fn", mappingType: "SYMMETRIC", blockSize: [1, k] },
      ] as const;
      for (const v of variants) {
        const bits = /^u?int4$/.test(v.targetDtype) ? 4 : 8;
        for (const layout of layouts(bits)) {
          const q = affineQuantizeWeight(w, { ...v, blockSize: [v.blockSize[0], v.blockSize[1]], layout } as Parameters<typeof affineQuantizeWeight>[1]);
          const extra = act.kind === "static" ? [tensor("float32", [], Float32Array.of(act.scale)), fromArray("int32", [], [act.zeroPoint])] : [];
          cpuVsReference("affine_quantized_linear", [x, q.qdata, q.scale, q.zeroPoint ?? undefined, bias, ...extra], { ...affineWeightAttrs(q), ...activationAttrs(act) });
        }
      }
    }), { numRuns: 12 });
  });

  it("affine_quantized_embedding and codebook_quantized_linear", () => {
    manualSeed(9);
    const w = normalTensor([10, 32]);
    const ids = fromArray("int64", [2, 3], [9, 0, 3, 3, 7, 1]);
    for (const layout of [PlainLayout(), Int4PairsLayout(), TilesLayout(4, 16)]) {
      const q = affineQuantizeWeight(w, { targetDtype: "int4", mappingType: "SYMMETRIC", blockSize: [1, 16], layout });
      cpuVsReference("affine_quantized_embedding", [ids, q.qdata, q.scale, q.zeroPoint ?? undefined], affineWeightAttrs(q));
    }
    const cb = codebookQuantizeWeight(w, { bits: 3, blockSize: [2, 16] });
    cpuVsReference("codebook_quantized_linear", [uniformTensor([3, 32], -1, 1), cb.codes, cb.codebook], codebookWeightAttrs(cb));
  });
});

class Two extends Module {
  fc1 = new Linear(32, 16);
  fc2 = new Linear(16, 4);
  forward(x: Var): Var {
    return this.fc2.call(F.relu(this.fc1.call(x)));
  }
}

describe("dispatch by device and layout", () => {
  it("plans show the kernel each node gets; u32_words has no cpu kernel and falls back with one warning per node", () => {
    manualSeed(1);
    const x = uniformTensor([3, 32], -1, 1);
    const ep = quantize_(exportModel(new Two(), [x]), new Int8WeightOnlyConfig({ layout: U32WordsLayout() }), (_m, fqn) => fqn === "fc1");
    const ep2 = quantize_(ep, new Int8WeightOnlyConfig({ layout: TilesLayout() }));
    expect(planAoKernels(ep2.graph, "cpu")).toEqual([
      { node: "linear", op: "affine_quantized_linear", layout: "u32_words", kernel: "reference", fallback: true },
      { node: "linear_1", op: "affine_quantized_linear", layout: "tiles", kernel: "cpu/affine-linear", fallback: false },
    ]);
    const warnings: string[] = [];
    const y = runQuantized(ep2, [x], { device: "cpu", onWarning: (m) => warnings.push(m) })[0]!;
    runQuantized(ep2, [x], { device: "cpu", onWarning: (m) => warnings.push(m) });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/no cpu kernel for affine_quantized_linear \(layout u32_words.*node 'linear'.*dequantizing/);
    expect(tensorsEqual(y, runProgram(ep2, [x])[0]!)).toBe(true);
    // The reference device never warns; an unknown device falls back everywhere.
    const quiet: string[] = [];
    runQuantized(ep2, [x], { device: "reference", onWarning: (m) => quiet.push(m) });
    expect(quiet).toEqual([]);
    expect(planAoKernels(ep2.graph, "webgpu").every((r) => r.fallback)).toBe(true);
  });

  it("A8W8's int32 compute has no cpu kernel: visible fallback, same numbers as the reference", () => {
    manualSeed(2);
    const x = uniformTensor([2, 32], -1, 1);
    const ep = quantize_(exportModel(new Two(), [x]), new Int8DynamicActivationInt8WeightConfig());
    const warnings: string[] = [];
    const y = runQuantized(ep, [x], { onWarning: (m) => warnings.push(m) })[0]!;
    expect(warnings.map((w) => /compute integer/.test(w))).toEqual([true, true]);
    expect(tensorsEqual(y, runProgram(ep, [x])[0]!)).toBe(true);
  });

  it("a backend registers a kernel for (op, device, layout) and it is used", () => {
    manualSeed(3);
    const x = uniformTensor([2, 32], -1, 1);
    const ep = quantize_(exportModel(new Two(), [x]), new Int8WeightOnlyConfig({ granularity: PerGroup(16), layout: U32WordsLayout() }));
    let calls = 0;
    const reference = getKernel("affine_quantized_linear");
    registerAoKernel({ name: "webgpu/test-u32", op: "affine_quantized_linear", device: "webgpu", layouts: ["u32_words"] }, (i, a, c) => {
      calls++;
      return reference(i, a, c);
    });
    try {
      expect(listAoKernels().map((k) => k.name)).toContain("webgpu/test-u32");
      expect(() => registerAoKernel({ name: "webgpu/test-u32", op: "affine_quantized_linear", device: "webgpu", layouts: [] }, reference)).toThrow(/already registered/);
      const warnings: string[] = [];
      runQuantized(ep, [x], { device: "webgpu", onWarning: (m) => warnings.push(m) });
      expect(calls).toBe(2);
      expect(warnings).toEqual([]);
    } finally {
      expect(unregisterAoKernel("webgpu/test-u32")).toBe(true);
    }
    expect(() => registerAoKernel({ name: "x", op: "linear" as never, device: "cpu", layouts: [] }, reference)).toThrow(/unknown op/);
    expect(() => registerAoKernel({ name: "x", op: "affine_quantized_linear", device: "reference", layouts: [] }, reference)).toThrow(/reference device/);
  });
});
