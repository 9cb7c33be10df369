/// <reference types="@webgpu/types" />
/**
 * The WebGPU session and backend. `compile` analyses the graph once (placements, constant folding);
 * the first run with a given set of input shapes builds that shape's plan (cached); every run
 * writes the inputs, records the dispatches of GPU nodes into one command encoder, and only breaks
 * it to read values back for a CPU-fallback node or for the outputs.
 */
import {
  QforgeError, isDType, isQforgeError, numel, storageLength, storageName, dtypeInfo, verifyGraph,
  type Graph, type Tensor,
} from "@qforge/ir";
import { runOp, type Backend, type PlanEntry, type Session } from "@qforge/runtime";
import { acquireGpu, type GpuCaps, type GpuContext } from "./gpu/device.js";
import { BufferPool } from "./gpu/pool.js";
import { PipelineCache } from "./gpu/pipelines.js";
import { gpuBytes, tensorFromBytes, uploadBytes } from "./gpu/storage.js";
import { analyze, type Analysis } from "./plan/analysis.js";
import { buildPlan, type GpuResources, type Plan, type Slot } from "./plan/plan.js";

/** Options `compile(g, { backend: "webgpu", ... })` reads. */
export interface WebGpuCompileOptions {
  /** Run on this device (default: a device shared by all sessions, from navigator.gpu or Dawn in Node). */
  readonly device?: GPUDevice;
  /** Use the unpacking fallback even where dot4I8Packed exists (to test or compare it). */
  readonly disablePackedDot?: boolean;
  /** The GEMM schedule: "tiled" (workgroup memory) or "direct"; default by adapter (see GpuCaps.gemm). */
  readonly gemm?: "tiled" | "direct";
  /**
   * Wait for the GPU after every node and record its wall time in `lastRun.nodeMs` (slow: for
   * finding the expensive kernels, not for benchmarks).
   */
  readonly profile?: boolean;
}

/** Per-run counters, for benches and tests. */
export interface RunStats {
  /** Dispatches recorded. */
  readonly dispatches: number;
  /** Command buffers submitted (1 + one per CPU fallback that had to read GPU values back). */
  readonly submits: number;
  /** Values read back for CPU-fallback nodes. */
  readonly downloads: number;
  /** With the profile option: wall milliseconds per node (GPU nodes include waiting for the GPU). */
  readonly nodeMs?: Readonly<Record<string, number>>;
}

interface DeviceShared {
  readonly pool: BufferPool;
  readonly pipelines: PipelineCache;
}
const perDevice = new WeakMap<GPUDevice, DeviceShared>();

function sharedFor(device: GPUDevice): DeviceShared {
  let s = perDevice.get(device);
  if (s === undefined) {
    s = { pool: new BufferPool(device), pipelines: new PipelineCache(device) };
    perDevice.set(device, s);
  }
  return s;
}

let sharedGpu: Promise<GpuContext> | undefined;

/** The device sessions share when no `device` option is given (created on first use). */
export function defaultGpu(): Promise<GpuContext> {
  sharedGpu ??= acquireGpu().catch((e: unknown) => {
    sharedGpu = undefined;
    throw e;
  });
  return sharedGpu;
}

export class WebGpuSession implements Session {
  readonly plan: readonly string[];
  readonly placements: readonly PlanEntry[];
  /** The capabilities the kernels were chosen for. */
  readonly caps: GpuCaps;
  private readonly plans = new Map<string, Promise<Plan>>();
  private queue: Promise<unknown> = Promise.resolve();
  private disposed = false;
  private lastStats: RunStats = { dispatches: 0, submits: 0, downloads: 0 };

  constructor(private readonly g: Graph, private readonly an: Analysis, private readonly res: GpuResources, private readonly profile = false) {
    this.plan = g.nodes.map((n) => n.name);
    this.placements = an.placements;
    this.caps = res.caps;
  }

  /** Counters of the last run. */
  get lastRun(): RunStats {
    return this.lastStats;
  }

  /** The GPU device the session runs on. */
  get device(): GPUDevice {
    return this.res.device;
  }

  /**
   * What the session holds: plans (one per set of input shapes), pool buffers over all plans
   * (intermediate values after memory planning), session buffers (weights and tables, made once),
   * and the device's pipeline cache size.
   */
  async stats(): Promise<{ plans: number; pooledBuffers: number; sessionBuffers: number; pipelines: number }> {
    let pooledBuffers = 0;
    for (const p of this.plans.values()) {
      const plan = await p.catch(() => undefined);
      pooledBuffers += plan?.pooled.length ?? 0;
    }
    return { plans: this.plans.size, pooledBuffers, sessionBuffers: this.res.constants.size, pipelines: this.res.pipelines.size };
  }

  run(feeds: Record<string, Tensor> | readonly Tensor[]): Promise<Tensor[]> {
    const p = this.queue.then(() => this.runNow(feeds));
    this.queue = p.catch(() => undefined);
    return p;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const plans = [...this.plans.values()];
    this.plans.clear();
    const res = this.res;
    void this.queue.then(async () => {
      for (const pp of plans) {
        const p = await pp.catch(() => undefined);
        if (p === undefined) continue;
        for (const b of p.pooled) res.pool.release(b);
        for (const b of p.owned) b.destroy();
      }
      for (const b of res.constants.values()) b.destroy();
      res.constants.clear();
    });
  }

  private planFor(feeds: ReadonlyMap<string, Tensor>): Promise<Plan> {
    const key = this.g.inputs.map((v) => {
      const t = feeds.get(v)!;
      return `${t.dtype}[${t.shape.join(",")}]`;
    }).join("|");
    let p = this.plans.get(key);
    if (p === undefined) {
      p = buildPlan(this.g, this.an, feeds, this.res);
      this.plans.set(key, p);
      p.catch(() => this.plans.delete(key));
    }
    return p;
  }

  private async runNow(feeds: Record<string, Tensor> | readonly Tensor[]): Promise<Tensor[]> {
    if (this.disposed) throw new QforgeError("BAD_CONFIG", "the webgpu session was disposed", { hint: "compile the graph again" });
    const bound = bindFeeds(this.g, feeds);
    const plan = await this.planFor(bound);
    const { device } = this.res;
    device.pushErrorScope("validation");
    device.pushErrorScope("out-of-memory");
    let submits = 0;
    let downloads = 0;
    const host = new Map<string, Tensor>(bound);
    for (const v of plan.gpuInputs) {
      const slot = plan.slots.get(v)!;
      device.queue.writeBuffer(slot.storage!.buffer, 0, uploadBytes(bound.get(v)!));
    }
    let enc = device.createCommandEncoder();
    let pass: GPUComputePassEncoder | undefined;
    let recorded = false;
    const valueOf = (name: string): Tensor | undefined => plan.slots.get(name)?.host ?? host.get(name);
    /** Submits what is recorded, with copies of `slots` into their read-back buffers, and reads them. */
    const flush = async (read: readonly Slot[]): Promise<void> => {
      if (pass !== undefined) {
        pass.end();
        pass = undefined;
      }
      if (!recorded && read.length === 0) return;
      for (const s of read) enc.copyBufferToBuffer(s.storage!.buffer, 0, s.staging!, 0, gpuBytes(s.type.dtype, numel(s.type.shape)));
      device.queue.submit([enc.finish()]);
      submits++;
      recorded = false;
      enc = device.createCommandEncoder();
      await Promise.all(read.map((s) => s.staging!.mapAsync(0x1 /* READ */)));
      for (const s of read) {
        const t = tensorFromBytes(s.type.dtype, s.type.shape, s.staging!.getMappedRange());
        s.staging!.unmap();
        host.set(s.name, t);
      }
    };

    const nodeMs: Record<string, number> | undefined = this.profile ? {} : undefined;
    try {
      for (const step of plan.steps) {
        const t0 = nodeMs === undefined ? 0 : performance.now();
        if (step.kind === "gpu") {
          for (const p of step.passes) {
            pass ??= enc.beginComputePass();
            pass.setPipeline(p.pipeline);
            pass.setBindGroup(0, p.bindGroup);
            pass.dispatchWorkgroups(p.workgroups[0], p.workgroups[1], p.workgroups[2]);
            recorded = true;
          }
          if (nodeMs !== undefined) {
            await flush([]);
            await device.queue.onSubmittedWorkDone();
            nodeMs[step.node.name] = performance.now() - t0;
          }
          continue;
        }
        const node = step.node;
        const missing = [...new Set(node.inputs)].filter((v) => v !== "" && valueOf(v) === undefined).map((v) => plan.slots.get(v)!);
        // Always submit first: the uploads below must not overtake recorded work on reused buffers.
        await flush(missing);
        downloads += missing.length;
        const outs = runOp(node.op, node.inputs.map((v) => (v === "" ? undefined : valueOf(v))), { ...node.attrs }, { numOutputs: node.outputs.length, node: node.name });
        node.outputs.forEach((v, k) => {
          if (v === "") return;
          const t = outs[k]!;
          host.set(v, t);
          const slot = plan.slots.get(v)!;
          if (slot.storage !== undefined) device.queue.writeBuffer(slot.storage.buffer, 0, uploadBytes(t));
        });
        if (nodeMs !== undefined) nodeMs[node.name] = performance.now() - t0;
      }
      const outSlots = this.g.outputs.map((v) => plan.slots.get(v)!);
      await flush([...new Set(outSlots.filter((s) => valueOf(s.name) === undefined))]);
    } finally {
      const oom = await device.popErrorScope();
      const invalid = await device.popErrorScope();
      const err = oom ?? invalid;
      if (err !== null) {
        // eslint-disable-next-line no-unsafe-finally
        throw new QforgeError("UNSUPPORTED", `webgpu: ${err.message}`, { hint: "a kernel made an invalid or too large dispatch" });
      }
    }
    this.lastStats = { dispatches: plan.dispatches, submits, downloads, ...(nodeMs === undefined ? {} : { nodeMs }) };
    return this.g.outputs.map((v) => {
      const t = valueOf(v);
      if (t === undefined) throw new QforgeError("UNDEFINED_OUTPUT", `graph output '${v}' was not computed`, { node: v });
      return t;
    });
  }
}

/** Checks feeds against the graph inputs (dtype, rank, fixed dims, symbolic dims bound consistently). */
function bindFeeds(g: Graph, feeds: Record<string, Tensor> | readonly Tensor[]): Map<string, Tensor> {
  const bound = new Map<string, Tensor>();
  if (Array.isArray(feeds)) {
    const list = feeds as readonly Tensor[];
    if (list.length !== g.inputs.length) {
      throw new QforgeError("BAD_INPUT", `the graph takes ${g.inputs.length} inputs (${g.inputs.join(", ")}), got ${list.length}`);
    }
    g.inputs.forEach((v, i) => bound.set(v, list[i]!));
  } else {
    const rec = feeds as Record<string, Tensor>;
    for (const k of Object.keys(rec)) {
      if (!g.inputs.includes(k)) throw new QforgeError("BAD_INPUT", `'${k}' is not an input of the graph`, { node: k, hint: `inputs: ${g.inputs.join(", ")}` });
    }
    for (const v of g.inputs) {
      const t = rec[v];
      if (t === undefined) throw new QforgeError("BAD_INPUT", `input '${v}' is not fed`, { node: v });
      bound.set(v, t);
    }
  }
  const symbols = new Map<string, number>();
  for (const v of g.inputs) {
    const t = bound.get(v)!;
    const bad = (m: string): never => {
      throw new QforgeError("BAD_INPUT", `input '${v}': ${m}`, { node: v });
    };
    if (t === null || typeof t !== "object" || !Array.isArray(t.shape) || !isDType(t.dtype)) bad("is not a tensor");
    if (storageName(t.data) !== dtypeInfo(t.dtype).storage || t.data.length !== storageLength(t.dtype, numel(t.shape))) bad(`storage does not fit ${t.dtype}[${t.shape.join(",")}]`);
    const want = g.values[v];
    if (want === undefined) continue;
    if (t.dtype !== want.dtype) bad(`expected dtype ${want.dtype}, got ${t.dtype}`);
    if (t.shape.length !== want.shape.length) bad(`expected rank ${want.shape.length}, got [${t.shape.join(",")}]`);
    want.shape.forEach((d, i) => {
      const got = t.shape[i]!;
      if (typeof d === "number") {
        if (d !== got) bad(`dim ${i} must be ${d}, got ${got}`);
      } else if (symbols.has(d) && symbols.get(d) !== got) bad(`dim ${i} is '${d}' = ${symbols.get(d)}, got ${got}`);
      else symbols.set(d, got);
    });
  }
  return bound;
}

/** Compiles a graph for WebGPU: see WebGpuCompileOptions. */
export async function compileWebGpu(g: Graph, opts: WebGpuCompileOptions = {}): Promise<WebGpuSession> {
  verifyGraph(g);
  const ctx = opts.device !== undefined ? await acquireGpu({ device: opts.device }) : await defaultGpu();
  const caps: GpuCaps = { ...ctx.caps, packedDot: ctx.caps.packedDot && opts.disablePackedDot !== true, gemm: opts.gemm ?? ctx.caps.gemm };
  let an: Analysis;
  try {
    an = analyze(g, caps);
  } catch (e) {
    if (isQforgeError(e)) throw e;
    throw new QforgeError("BAD_MODEL", `webgpu: analysing the graph failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  const shared = sharedFor(ctx.device);
  return new WebGpuSession(g, an, { device: ctx.device, caps, pool: shared.pool, pipelines: shared.pipelines, constants: new Map() }, opts.profile === true);
}

/** The backend `compile(g, { backend: "webgpu" })` dispatches to. */
export const webgpuBackend: Backend = {
  name: "webgpu",
  compile: (g, opts) => compileWebGpu(g, (opts ?? {}) as WebGpuCompileOptions),
};
