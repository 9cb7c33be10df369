/**
 * @qforge/backend-cpu: the "cpu" backend for `compile(graph, { backend: "cpu", threads })`.
 * Importing this package registers it. Two tiers: a native N-API addon (AVX2 / AVX-VNNI / AVX-512
 * VNNI, runtime dispatch, a thread pool) and a portable WebAssembly SIMD module (also in browsers).
 */
import { registerBackend } from "@qforge/runtime";
import { cpuBackend } from "./backend.js";

registerBackend(cpuBackend);

export { cpuBackend, compileCpu, formatPlacements, selectTier, type CpuCompileOptions, type TierChoice } from "./backend.js";
export { CpuSession } from "./session.js";
export { loadNative, nativeStatus, setNativeIsa, type AddonInfo, type NativeState, type NativeStatus } from "./tiers/native.js";
export { setWasmSource, WASM_EXPORTS } from "./tiers/wasm.js";
export type { Tier, TierName } from "./tiers/tier.js";
