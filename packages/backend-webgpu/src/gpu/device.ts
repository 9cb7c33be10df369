/// <reference types="@webgpu/types" />
/**
 * Getting a GPUDevice: the one the caller passes, `navigator.gpu` in a browser, or Dawn through the
 * `webgpu` npm package in Node (loaded lazily, so a browser bundle never pulls it in). The adapter's
 * optional capabilities this backend uses are read once into `GpuCaps`.
 */
import { QforgeError } from "@qforge/ir";

/** What the kernels may use on this device. */
export interface GpuCaps {
  /** WGSL language feature `packed_4x8_integer_dot_product`: `dot4I8Packed` / `dot4U8Packed` are available. */
  readonly packedDot: boolean;
  /** The `shader-f16` feature is enabled on the device. */
  readonly shaderF16: boolean;
  readonly maxWorkgroupStorage: number;
  readonly maxStorageBuffersPerStage: number;
  readonly maxStorageBufferBindingSize: number;
  readonly maxBufferSize: number;
  /** Adapter description for plans and benches ("SwiftShader", vendor/architecture, ...). */
  readonly description: string;
  /** A CPU implementation (SwiftShader, llvmpipe, WARP) or the adapter says it is a fallback adapter. */
  readonly cpuAdapter: boolean;
  /** The GEMM schedule the matrix kernels use (wgsl/gemm.ts): "tiled" on GPUs, "direct" on CPU adapters. */
  readonly gemm: "tiled" | "direct";
}

/** A device with its capabilities. `owned` devices are destroyed by `releaseGpu`. */
export interface GpuContext {
  readonly device: GPUDevice;
  readonly caps: GpuCaps;
  readonly owned: boolean;
}

export interface AcquireOptions {
  /** Use this device (its adapter's features are taken from `device.features`). */
  readonly device?: GPUDevice;
  /** Act as if the packed-integer-dot-product language feature were absent (tests the fallback). */
  readonly disablePackedDot?: boolean;
  /** Force a GEMM schedule (default: "direct" on CPU adapters, "tiled" elsewhere). */
  readonly gemm?: "tiled" | "direct";
  /** Power preference passed to requestAdapter. */
  readonly powerPreference?: GPUPowerPreference;
}

interface NodeWebgpuModule {
  create(flags: string[]): GPU;
  globals: Record<string, unknown>;
}

let nodeGpu: Promise<GPU | undefined> | undefined;

/** The GPU object of this JS environment, or undefined (with no WebGPU at all). */
export async function getGpu(): Promise<GPU | undefined> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu !== undefined) return nav.gpu;
  nodeGpu ??= (async () => {
    try {
      // A computed specifier: bundlers leave it alone, browsers never reach this line.
      const spec = "webgpu";
      const mod = (await import(/* @vite-ignore */ spec)) as NodeWebgpuModule;
      // Dawn's node binding defines GPUBufferUsage & co. as module exports; kernels need them global.
      for (const [k, v] of Object.entries(mod.globals)) {
        if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
      }
      return mod.create([]);
    } catch {
      return undefined;
    }
  })();
  return nodeGpu;
}

/**
 * Why no adapter can be had here, or undefined when one can. Tests use it to skip with a printed
 * reason; `acquireGpu` throws the same reason.
 */
export async function adapterUnavailableReason(): Promise<string | undefined> {
  const gpu = await getGpu();
  if (gpu === undefined) return "no WebGPU implementation: neither navigator.gpu nor the 'webgpu' npm package is available";
  const adapter = await gpu.requestAdapter();
  if (adapter === null) {
    return "requestAdapter() returned null: no GPU driver (in Node without a GPU, install Debian's chromium and libvulkan1 and set VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json)";
  }
  return undefined;
}

function capsOf(device: GPUDevice, adapterInfo: GPUAdapterInfo | undefined, gpu: GPU | undefined, opts: AcquireOptions): GpuCaps {
  const lang = (gpu as { wgslLanguageFeatures?: ReadonlySet<string> } | undefined)?.wgslLanguageFeatures;
  const packedDot = opts.disablePackedDot !== true && lang !== undefined && lang.has("packed_4x8_integer_dot_product");
  const info = adapterInfo;
  const parts = info === undefined ? [] : [info.vendor, info.architecture, info.device, info.description].filter((s) => typeof s === "string" && s !== "");
  const fallback = (info as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter === true;
  const cpuAdapter = fallback || /swiftshader|llvmpipe|lavapipe|warp|software/i.test(parts.join(" "));
  return {
    cpuAdapter,
    gemm: opts.gemm ?? (cpuAdapter ? "direct" : "tiled"),
    packedDot,
    shaderF16: device.features.has("shader-f16"),
    maxWorkgroupStorage: device.limits.maxComputeWorkgroupStorageSize,
    maxStorageBuffersPerStage: device.limits.maxStorageBuffersPerShaderStage,
    maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
    maxBufferSize: device.limits.maxBufferSize,
    description: parts.length > 0 ? parts.join(" ") : "unknown adapter",
  };
}

/**
 * A device for the backend. With `opts.device` the caller keeps ownership; otherwise a new device is
 * requested from the default adapter with the limits this backend wants raised to what the adapter
 * allows (storage buffers per stage and binding size).
 */
export async function acquireGpu(opts: AcquireOptions = {}): Promise<GpuContext> {
  const gpu = await getGpu();
  if (opts.device !== undefined) {
    const info = (opts.device as { adapterInfo?: GPUAdapterInfo }).adapterInfo;
    return { device: opts.device, caps: capsOf(opts.device, info, gpu, opts), owned: false };
  }
  const why = await adapterUnavailableReason();
  if (why !== undefined || gpu === undefined) {
    throw new QforgeError("UNSUPPORTED", `webgpu backend: ${why ?? "no WebGPU"}`, { hint: "pass { device } to compile, or run where WebGPU is available" });
  }
  const adapter = (await gpu.requestAdapter(opts.powerPreference === undefined ? undefined : { powerPreference: opts.powerPreference }))!;
  const requiredFeatures: GPUFeatureName[] = [];
  if (adapter.features.has("shader-f16")) requiredFeatures.push("shader-f16");
  const device = await adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxStorageBuffersPerShaderStage: adapter.limits.maxStorageBuffersPerShaderStage,
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
      maxBufferSize: adapter.limits.maxBufferSize,
      maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
    },
  });
  return { device, caps: capsOf(device, adapter.info, gpu, opts), owned: true };
}

/** Destroys a device this module created (a caller's device is left alone). */
export function releaseGpu(ctx: GpuContext): void {
  if (ctx.owned) ctx.device.destroy();
}
