import { describe, expect, it } from "vitest";
import { GraphBuilder, tensor } from "@qforge/ir";
import {
  acquireGpu, benchWebGpu, BufferPool, defaultGpu, formatBenchTable, gpuLayout, listGpuOps, releaseGpu,
} from "../src/index.js";
import { itGpu, randomFloats } from "./gpu-env.js";

describe("layouts and kernel table", () => {
  it("keeps 32-bit and 8-bit dtypes on the GPU and the rest on the host", () => {
    expect(gpuLayout("float32")).toBe("f32");
    expect(gpuLayout("int8")).toBe("b8");
    expect(gpuLayout("bool")).toBe("b8");
    expect(gpuLayout("int32")).toBe("i32");
    expect(gpuLayout("int64")).toBeUndefined();
    expect(gpuLayout("float16")).toBeUndefined();
  });
  it("has kernels for the PP-OCRv4 and PT2E-lowered ops", () => {
    const ops = listGpuOps();
    for (const op of ["conv", "matmul", "batch_norm", "softmax", "resize", "quantized_conv2d", "quantized_linear", "qlinear_matmul", "quantize_per_tensor", "quantized_avg_pool2d"]) {
      expect(ops).toContain(op);
    }
  });
  it("sizes pool buffers in powers of two from 256 bytes", () => {
    expect(BufferPool.sizeClass(1)).toBe(256);
    expect(BufferPool.sizeClass(257)).toBe(512);
    expect(BufferPool.sizeClass(4096)).toBe(4096);
  });
});

describe("devices, pool, bench", () => {
  itGpu("a borrowed device keeps its owner; the pool reuses released buffers", async () => {
    const { device } = await defaultGpu();
    const borrowed = await acquireGpu({ device });
    expect(borrowed.owned).toBe(false);
    expect(borrowed.caps.maxStorageBuffersPerStage).toBeGreaterThanOrEqual(8);
    releaseGpu(borrowed);
    const pool = new BufferPool(device);
    const a = pool.acquire(1000);
    pool.release(a);
    const b = pool.acquire(900);
    expect(b).toBe(a);
    expect(pool.stats()).toMatchObject({ created: 1, reused: 1, free: 0 });
    pool.release(b);
    pool.trim();
    expect(pool.stats()).toMatchObject({ bytes: 0, free: 0 });
    expect(() => pool.release(device.createBuffer({ size: 16, usage: 0x80 }))).toThrow(/not come from this pool/);
  });
  itGpu("benchWebGpu measures qforge alone when no onnxruntime-web is given", async () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [8, 16]);
    b.output(b.node1("matmul", [x, b.constant("w", tensor("float32", [16, 8], randomFloats(128, 1)))]));
    const rows = await benchWebGpu([{ name: "tiny gemm", graph: b.build(), feeds: [tensor("float32", [8, 16], randomFloats(128, 2))], work: 2 * 8 * 8 * 16 / 1e9, unit: "GFLOP/s" }], { budgetMs: 50, minRuns: 3 });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ case: "tiny gemm", impl: "qforge", tier: "webgpu" });
    expect(rows[0]!.median_ms).toBeGreaterThan(0);
    expect(rows[0]!.speedup_vs_ort).toBeUndefined();
    expect(formatBenchTable(rows)).toMatch(/tiny gemm\s+qforge\s+webgpu/);
  });
});
