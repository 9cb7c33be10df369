/// <reference types="@webgpu/types" />
/**
 * Compute pipelines by WGSL source. Kernels bake dtypes and variant flags (fused activation, bias,
 * packed-dot support) into the source and pass shapes through a uniform buffer, so one pipeline
 * serves every shape of an op variant; the source text is the cache key.
 */
import { QforgeError } from "@qforge/ir";

export class PipelineCache {
  private readonly cache = new Map<string, Promise<GPUComputePipeline>>();
  private compiled = 0;

  constructor(private readonly device: GPUDevice) {}

  get(code: string, label: string): Promise<GPUComputePipeline> {
    let p = this.cache.get(code);
    if (p === undefined) {
      p = this.compile(code, label);
      this.cache.set(code, p);
    }
    return p;
  }

  /** Number of distinct pipelines compiled. */
  get size(): number {
    return this.compiled;
  }

  private async compile(code: string, label: string): Promise<GPUComputePipeline> {
    const module = this.device.createShaderModule({ code, label });
    try {
      const p = await this.device.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint: "main" }, label });
      this.compiled++;
      return p;
    } catch (e) {
      const info = await module.getCompilationInfo();
      const msgs = info.messages.map((m) => `${m.type} ${m.lineNum}:${m.linePos} ${m.message}`).join("\n");
      throw new QforgeError("UNSUPPORTED", `webgpu: the '${label}' shader does not compile: ${msgs || String(e)}`, {
        hint: "this is a bug in the WGSL generator",
      });
    }
  }
}
