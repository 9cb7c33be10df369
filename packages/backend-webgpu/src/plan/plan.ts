/// <reference types="@webgpu/types" />
/**
 * The per-shape half of the backend: for concrete input shapes, infer every value's shape, fold
 * the shape computations, build each GPU node's dispatches, give every GPU value a buffer (reusing
 * buffers after their last reader: a liveness-based memory plan over the pool) and create the bind
 * groups once. Running the plan then only writes the inputs, records the dispatches and reads the
 * outputs back.
 */
import {
  QforgeError, getOp, inferNode, numel, resolveAttrs, type AttrValue, type Graph, type Node, type Tensor,
} from "@qforge/ir";
import { runOp } from "@qforge/runtime";
import type { GpuCaps } from "../gpu/device.js";
import type { BufferPool } from "../gpu/pool.js";
import type { PipelineCache } from "../gpu/pipelines.js";
import { gpuBytes, uploadBytes } from "../gpu/storage.js";
import type { Binding, BuildContext, BuildResult, DispatchSpec, TensorType } from "../kernels/types.js";
import type { Analysis } from "./analysis.js";

const UNIFORM_USAGE = 0x40 /* UNIFORM */ | 0x8; /* COPY_DST */
const STORAGE_USAGE = 0x80 /* STORAGE */ | 0x8 /* COPY_DST */ | 0x4; /* COPY_SRC */
const STAGING_USAGE = 0x1 /* MAP_READ */ | 0x8; /* COPY_DST */

/** What a session shares with its plans. */
export interface GpuResources {
  readonly device: GPUDevice;
  readonly caps: GpuCaps;
  readonly pool: BufferPool;
  readonly pipelines: PipelineCache;
  /** Session-lifetime buffers: uploaded constants (by value name) and kernel-made buffers (by node/key). */
  readonly constants: Map<string, GPUBuffer>;
}

/** A GPU buffer holding one or more values (aliases share it). */
interface Storage {
  readonly buffer: GPUBuffer;
  /** Values still to be read from it; at 0 it returns to the plan's free list. */
  refs: number;
  /** Session constants are never released by a plan. */
  readonly pinned: boolean;
  /** Back on the free list (aliases may reach zero references more than once). */
  released?: boolean;
}

export interface Slot {
  readonly name: string;
  readonly type: TensorType;
  /** Known on the host when the plan is built (constants, folded values). */
  host?: Tensor;
  storage?: Storage;
  /** Read-back buffer when the host needs this GPU value (a CPU node's input or a graph output). */
  staging?: GPUBuffer;
}

export interface GpuPass {
  readonly pipeline: GPUComputePipeline;
  readonly bindGroup: GPUBindGroup;
  readonly workgroups: readonly [number, number, number];
}

export type Step =
  | { readonly kind: "gpu"; readonly node: Node; readonly passes: readonly GpuPass[] }
  | { readonly kind: "cpu"; readonly node: Node; readonly attrs: Record<string, AttrValue> };

export interface Plan {
  readonly steps: readonly Step[];
  readonly slots: ReadonlyMap<string, Slot>;
  /** Graph inputs that live on the GPU (written at the start of each run). */
  readonly gpuInputs: readonly string[];
  /** Buffers from the pool (returned on dispose) and buffers the plan created (destroyed on dispose). */
  readonly pooled: readonly GPUBuffer[];
  readonly owned: readonly GPUBuffer[];
  /** Dispatches per run. */
  readonly dispatches: number;
}

interface PendingPass {
  readonly spec: DispatchSpec;
  readonly pipeline: Promise<GPUComputePipeline>;
  readonly buffers: readonly GPUBuffer[];
  readonly params?: GPUBuffer;
}

/** A stand-in tensor for shape/size nodes: they read the shape only, never the data. */
function shapeOnly(t: TensorType): Tensor {
  return { dtype: t.dtype, shape: t.shape, data: new Uint8Array(0) };
}

function concrete(node: Node, i: number, shape: readonly (number | string)[]): number[] {
  if (shape.some((d) => typeof d !== "number")) {
    throw new QforgeError("UNSUPPORTED", `output #${i} of '${node.op}' has a data-dependent shape [${shape.join(", ")}]`, {
      node: node.name, hint: "the webgpu backend plans with concrete shapes",
    });
  }
  return shape as number[];
}

export async function buildPlan(g: Graph, an: Analysis, feeds: ReadonlyMap<string, Tensor>, res: GpuResources): Promise<Plan> {
  const { device, pool } = res;
  const slots = new Map<string, Slot>();
  for (const v of g.inputs) {
    const t = feeds.get(v)!;
    slots.set(v, { name: v, type: { dtype: t.dtype, shape: t.shape } });
  }
  for (const [v, t] of an.constants) slots.set(v, { name: v, type: { dtype: t.dtype, shape: t.shape }, host: t });

  // Readers of each value among the nodes that run (GPU or CPU; folded nodes read shapes only).
  const readers = new Map<string, number>();
  const gpuReaders = new Map<string, number>();
  g.nodes.forEach((n, i) => {
    const kind = an.decisions[i]!.kind;
    if (kind !== "gpu" && kind !== "cpu") return;
    for (const v of new Set(n.inputs)) {
      if (v === "") continue;
      readers.set(v, (readers.get(v) ?? 0) + 1);
      if (kind === "gpu") gpuReaders.set(v, (gpuReaders.get(v) ?? 0) + 1);
    }
  });
  const keep = new Set(g.outputs);

  const pooled: GPUBuffer[] = [];
  const owned: GPUBuffer[] = [];
  const free = new Map<number, GPUBuffer[]>();
  const acquire = (bytes: number, label: string): Storage => {
    const size = Math.max(256, bytes);
    // Plan-local reuse first (buffers freed by earlier nodes of this plan), then the pool.
    let best: { list: GPUBuffer[]; i: number } | undefined;
    for (const [sz, list] of free) {
      if (sz >= size && list.length > 0 && sz <= 2 * size && (best === undefined || sz < best.list[best.i]!.size)) best = { list, i: list.length - 1 };
    }
    if (best !== undefined) return { buffer: best.list.splice(best.i, 1)[0]!, refs: 0, pinned: false };
    const b = pool.acquire(size, label);
    pooled.push(b);
    return { buffer: b, refs: 0, pinned: false };
  };
  const releaseStorage = (s: Storage): void => {
    if (s.pinned || s.released === true) return;
    s.released = true;
    const list = free.get(s.buffer.size) ?? [];
    list.push(s.buffer);
    free.set(s.buffer.size, list);
  };
  const unref = (slot: Slot): void => {
    const s = slot.storage;
    if (s === undefined || keep.has(slot.name)) return;
    s.refs--;
    if (s.refs === 0) releaseStorage(s);
  };
  /** Gives a value a buffer of its own, held until its last reader ran (or for good, for graph outputs). */
  const allocate = (slot: Slot): void => {
    const s = acquire(gpuBytes(slot.type.dtype, numel(slot.type.shape)), slot.name);
    s.refs = (readers.get(slot.name) ?? 0) + (keep.has(slot.name) ? 1 : 0);
    slot.storage = s;
  };
  /** A host value needed on the GPU: session constants are uploaded once, folded values per plan. */
  const upload = (slot: Slot): void => {
    const t = slot.host!;
    const isConstant = an.constants.get(slot.name) === t;
    if (isConstant) {
      let b = res.constants.get(`value:${slot.name}`);
      if (b === undefined) {
        b = createFilled(device, uploadBytes(t), STORAGE_USAGE, slot.name);
        res.constants.set(`value:${slot.name}`, b);
      }
      slot.storage = { buffer: b, refs: Infinity, pinned: true };
      return;
    }
    const b = createFilled(device, uploadBytes(t), STORAGE_USAGE, slot.name);
    owned.push(b);
    slot.storage = { buffer: b, refs: Infinity, pinned: true };
  };
  const needStaging = (slot: Slot): void => {
    if (slot.staging !== undefined || slot.storage === undefined) return;
    const b = device.createBuffer({ size: slot.storage.buffer.size, usage: STAGING_USAGE, label: `${slot.name} (read back)` });
    owned.push(b);
    slot.staging = b;
  };

  const gpuInputs: string[] = [];
  for (const v of g.inputs) {
    if ((gpuReaders.get(v) ?? 0) > 0) {
      allocate(slots.get(v)!);
      gpuInputs.push(v);
    }
  }

  const steps: (Step | { kind: "gpu-pending"; node: Node; passes: PendingPass[] })[] = [];
  let dispatches = 0;
  for (let i = 0; i < g.nodes.length; i++) {
    const node = g.nodes[i]!;
    const d = an.decisions[i]!;
    if (d.kind === "constant") continue;
    if (d.kind === "fused") {
      // Only its type: the consumers read the packed weight (Analysis.fusedWeights).
      const t = inferNode(node.op, node.name, node.inputs.map((v) => slots.get(v)?.type), node.attrs, 1, (k) => slots.get(node.inputs[k] ?? "")?.host)[0]!;
      slots.set(node.outputs[0]!, { name: node.outputs[0]!, type: { dtype: t.dtype, shape: concrete(node, 0, t.shape) } });
      continue;
    }
    const inSlots = node.inputs.map((v) => (v === "" ? undefined : slots.get(v)));
    inSlots.forEach((s, k) => {
      if (s === undefined && node.inputs[k] !== "") {
        throw new QforgeError("DANGLING_INPUT", `input '${node.inputs[k]}' has no value when '${node.name}' is planned`, { node: node.name });
      }
    });
    if (d.kind === "shape") {
      const hostIns = inSlots.map((s) => (s === undefined ? undefined : s.host ?? shapeOnly(s.type)));
      const outs = runOp(node.op, hostIns, { ...node.attrs }, { numOutputs: node.outputs.length, node: node.name });
      node.outputs.forEach((v, k) => {
        if (v !== "") slots.set(v, { name: v, type: { dtype: outs[k]!.dtype, shape: outs[k]!.shape }, host: outs[k]! });
      });
      continue;
    }
    const inTypes = inSlots.map((s) => s?.type);
    const outTypes = inferNode(node.op, node.name, inTypes, node.attrs, node.outputs.length, (k) => inSlots[k]?.host)
      .map((t, k): TensorType => ({ dtype: t.dtype, shape: concrete(node, k, t.shape) }));
    const outSlots = node.outputs.map((v, k): Slot | undefined => {
      if (v === "") return undefined;
      const s: Slot = { name: v, type: outTypes[k]! };
      slots.set(v, s);
      return s;
    });
    const attrs = resolveAttrs(getOp(node.op, node.name), node.attrs, node.name);

    if (d.kind === "cpu") {
      for (const s of inSlots) if (s !== undefined && s.host === undefined) needStaging(s);
      for (const s of outSlots) if (s !== undefined && (gpuReaders.get(s.name) ?? 0) > 0) allocate(s);
      steps.push({ kind: "cpu", node, attrs });
    } else {
      const sessionStatic = node.inputs.every((v) => v === "" || !an.staticValues.has(v) || an.constants.has(v));
      const ctx: BuildContext = {
        node,
        attrs,
        inputs: inTypes,
        outputs: outTypes,
        host: (k) => inSlots[k]?.host,
        fusedWeight: (k) => an.fusedWeights.get(node.inputs[k] ?? ""),
        caps: res.caps,
        constant: (key, make) => {
          const fill = (): GPUBuffer => {
            const bytes = make();
            return createFilled(device, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), STORAGE_USAGE, `${node.name} ${key}`);
          };
          // Made from compile-time constants only: kept for the session; else (inputs folded from
          // shapes) for this plan.
          if (!sessionStatic) {
            const b = fill();
            owned.push(b);
            return b;
          }
          const full = `node:${node.name}:${key}`;
          let b = res.constants.get(full);
          if (b === undefined) {
            b = fill();
            res.constants.set(full, b);
          }
          return b;
        },
      };
      const built: BuildResult = d.kernel.build(ctx);
      if ("alias" in built) {
        const src = inSlots[built.alias]!;
        const out = outSlots[0]!;
        out.storage = src.storage;
        if (src.storage !== undefined) src.storage.refs += (readers.get(out.name) ?? 0) + (keep.has(out.name) ? 1 : 0);
        steps.push({ kind: "gpu-pending", node, passes: [] });
      } else {
        for (const s of outSlots) if (s !== undefined) allocate(s);
        const scratch = new Map<string, Storage>();
        const passes: PendingPass[] = built.dispatches.map((spec) => {
          const buffers = spec.bindings.map((b: Binding): GPUBuffer => {
            if ("input" in b) {
              const s = inSlots[b.input]!;
              if (s.storage === undefined) upload(s);
              return s.storage!.buffer;
            }
            if ("output" in b) return outSlots[b.output]!.storage!.buffer;
            if ("buffer" in b) return b.buffer;
            let s = scratch.get(b.scratch);
            if (s === undefined) {
              s = acquire(b.bytes, `${node.name} ${b.scratch}`);
              scratch.set(b.scratch, s);
            }
            return s.buffer;
          });
          let params: GPUBuffer | undefined;
          if (spec.params !== undefined) {
            params = createFilled(device, new Uint8Array(spec.params.buffer, spec.params.byteOffset, spec.params.byteLength), UNIFORM_USAGE, `${node.name} params`);
            owned.push(params);
          }
          return { spec, pipeline: res.pipelines.get(spec.code, spec.label), buffers, ...(params === undefined ? {} : { params }) };
        });
        dispatches += passes.length;
        for (const s of scratch.values()) releaseStorage(s);
        steps.push({ kind: "gpu-pending", node, passes });
      }
    }
    // This node has read its inputs: drop one reference each; free outputs no one reads.
    for (const v of new Set(node.inputs)) {
      if (v === "") continue;
      const s = slots.get(v)!;
      if (s.storage !== undefined && !s.storage.pinned) unref(s);
    }
    for (const s of outSlots) {
      if (s?.storage !== undefined && !s.storage.pinned && s.storage.refs === 0) releaseStorage(s.storage);
    }
  }
  for (const v of g.outputs) {
    const s = slots.get(v);
    if (s === undefined) throw new QforgeError("UNDEFINED_OUTPUT", `graph output '${v}' is not computed`, { node: v });
    if (s.host === undefined) needStaging(s);
  }

  // Wait for every pipeline at once (a failing one then reports, and none is left unobserved).
  await Promise.all(steps.flatMap((st) => (st.kind === "gpu-pending" ? st.passes.map((p) => p.pipeline) : [])));
  const done: Step[] = [];
  for (const st of steps) {
    if (st.kind !== "gpu-pending") {
      done.push(st);
      continue;
    }
    const passes: GpuPass[] = [];
    for (const p of st.passes) {
      const pipeline = await p.pipeline;
      const entries: GPUBindGroupEntry[] = p.buffers.map((buffer, binding) => ({ binding, resource: { buffer } }));
      if (p.params !== undefined) entries.push({ binding: p.buffers.length, resource: { buffer: p.params } });
      const bindGroup = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries, label: p.spec.label });
      passes.push({ pipeline, bindGroup, workgroups: p.spec.workgroups });
    }
    done.push({ kind: "gpu", node: st.node, passes });
  }
  return { steps: done, slots, gpuInputs, pooled, owned, dispatches };
}

function createFilled(device: GPUDevice, bytes: Uint8Array, usage: number, label: string): GPUBuffer {
  const size = Math.max(16, Math.ceil(bytes.byteLength / 4) * 4);
  const b = device.createBuffer({ size, usage, mappedAtCreation: true, label });
  new Uint8Array(b.getMappedRange()).set(bytes);
  b.unmap();
  return b;
}
