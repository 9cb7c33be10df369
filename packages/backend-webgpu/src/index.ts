/**
 * @qforge/backend-webgpu: compiles graphs to WGSL compute kernels. Importing the package registers
 * the "webgpu" backend: `compile(graph, { backend: "webgpu", device? })` returns a Session with the
 * CPU backend's API (async run, placements with the kernel or the CPU fallback of every node).
 */
import { registerBackend } from "@qforge/runtime";
import { webgpuBackend } from "./session.js";

registerBackend(webgpuBackend);

export { webgpuBackend, compileWebGpu, defaultGpu, WebGpuSession, type WebGpuCompileOptions, type RunStats } from "./session.js";
export { acquireGpu, adapterUnavailableReason, getGpu, releaseGpu, type GpuCaps, type GpuContext, type AcquireOptions } from "./gpu/device.js";
export { BufferPool, type PoolStats } from "./gpu/pool.js";
export { gpuLayout, type GpuLayout } from "./gpu/storage.js";
export { listGpuOps } from "./kernels/index.js";
export {
  benchWebGpu, formatBenchTable, type WebGpuBenchCase, type WebGpuBenchOptions, type WebGpuBenchRow, type OrtWebLike, type OrtSessionLike,
} from "./bench.js";
