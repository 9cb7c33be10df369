/**
 * Test environment: points Vulkan at SwiftShader when no ICD is configured and the Debian chromium
 * package ships one, then asks for an adapter. Tests that need it use `itGpu` (skipped, with the
 * reason printed once, when there is none).
 */
import { existsSync } from "node:fs";
import { it } from "vitest";
import { runGraph } from "@qforge/runtime";
import { allClose, type Graph, type Tensor } from "@qforge/ir";
import { adapterUnavailableReason, compileWebGpu, type WebGpuCompileOptions, type WebGpuSession } from "../src/index.js";

const SWIFTSHADER_ICD = "/usr/lib/chromium/vk_swiftshader_icd.json";
if (process.env["VK_ICD_FILENAMES"] === undefined && existsSync(SWIFTSHADER_ICD)) process.env["VK_ICD_FILENAMES"] = SWIFTSHADER_ICD;

export const noGpuReason: string | undefined = await adapterUnavailableReason();
if (noGpuReason !== undefined) console.log(`[backend-webgpu] skipping GPU tests: ${noGpuReason}`);

/** `it` that is skipped (with the reason above printed) where no WebGPU adapter exists. */
export const itGpu = it.skipIf(noGpuReason !== undefined);

/** Runs a graph on WebGPU and on the reference interpreter. */
export async function both(g: Graph, feeds: readonly Tensor[], opts: WebGpuCompileOptions = {}): Promise<{ gpu: Tensor[]; ref: Tensor[]; session: WebGpuSession }> {
  const session = await compileWebGpu(g, opts);
  const gpu = await session.run(feeds);
  const ref = runGraph(g, feeds).outputs;
  return { gpu, ref, session };
}

/** allClose with a message naming the output. */
export function expectClose(gpu: readonly Tensor[], ref: readonly Tensor[], rtol = 1e-4, atol = 1e-5): void {
  if (gpu.length !== ref.length) throw new Error(`${gpu.length} outputs vs ${ref.length}`);
  gpu.forEach((t, i) => {
    const r = allClose(t, ref[i]!, rtol, atol);
    if (!r.ok) throw new Error(`output #${i}: ${r.message}`);
  });
}

/** Deterministic pseudo-random floats in [lo, hi). */
export function randomFloats(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = lo + ((s >>> 0) / 4294967296) * (hi - lo);
  }
  return out;
}

/** Deterministic pseudo-random integers in [lo, hi]. */
export function randomInts(n: number, seed: number, lo: number, hi: number): number[] {
  const f = randomFloats(n, seed, 0, 1);
  return Array.from(f, (v) => lo + Math.min(hi - lo, Math.floor(v * (hi - lo + 1))));
}
