/**
 * The compile-time half of the backend (shape-independent): which values are known before the run,
 * constant folding, and for every other node the kernel that runs it — a WGSL kernel, or the
 * reference kernel on the CPU with the reason. The result is the session's `placements`.
 */
import { getOp, resolveAttrs, type Graph, type Node, type Tensor, type ValueType } from "@qforge/ir";
import { runOp, type PlanEntry } from "@qforge/runtime";
import type { GpuCaps } from "../gpu/device.js";
import { gpuLayout } from "../gpu/storage.js";
import { kernelFor } from "../kernels/index.js";
import { isSupported, type FusedWeight, type GpuKernel, type SupportQuery } from "../kernels/types.js";

/** Ops whose outputs depend only on their input's shape, not its data. */
const SHAPE_OPS: ReadonlySet<string> = new Set(["shape", "size"]);

export type Decision =
  /** Folded at compile time (every input a constant). */
  | { readonly kind: "constant" }
  /** Folded when the input shapes are known (depends on shapes, not on data). */
  | { readonly kind: "shape" }
  | { readonly kind: "gpu"; readonly kernel: GpuKernel; readonly name: string; readonly note?: string }
  /** A weight dequantization computed inside its consumers' shaders (never materialized). */
  | { readonly kind: "fused" }
  | { readonly kind: "cpu"; readonly reason: string };

export interface Analysis {
  readonly decisions: readonly Decision[];
  readonly placements: readonly PlanEntry[];
  /** Graph constants and values folded from constants only. */
  readonly constants: ReadonlyMap<string, Tensor>;
  /** Values known on the host before the data arrives: constants, constant-folded and shape-folded values. */
  readonly staticValues: ReadonlySet<string>;
  /** Dequantized weights read by their consumers' shaders, by value name. */
  readonly fusedWeights: ReadonlyMap<string, FusedWeight>;
}

/** Ops whose weight (input 1) may be a fused weight-only dequantization. */
const WEIGHT_CONSUMERS: ReadonlySet<string> = new Set(["matmul", "linear", "gemm"]);
const FUSABLE_DTYPES: ReadonlySet<string> = new Set(["int4", "uint4", "int8", "uint8"]);

/**
 * dequantize_linear nodes of a constant 2-D int4/int8 weight read only as the weight of matmul /
 * linear / gemm nodes: weight-only quantization (torchao Int4WeightOnlyConfig, ORT MatMulNBits),
 * dequantized in the consumers' shaders instead of folded to float32.
 */
function findFusedWeights(g: Graph): Map<string, FusedWeight> {
  const users = new Map<string, { node: Node; at: number }[]>();
  for (const n of g.nodes) n.inputs.forEach((v, at) => { if (v !== "") users.set(v, [...(users.get(v) ?? []), { node: n, at }]); });
  const out = new Map<string, FusedWeight>();
  for (const n of g.nodes) {
    if (n.op !== "dequantize_linear" || n.outputs.length !== 1) continue;
    const q = g.constants[n.inputs[0] ?? ""]?.tensor;
    const scale = g.constants[n.inputs[1] ?? ""]?.tensor;
    const zpName = n.inputs[2];
    const zp = zpName === undefined || zpName === "" ? undefined : g.constants[zpName]?.tensor;
    if (q === undefined || scale === undefined || (zpName !== undefined && zpName !== "" && zp === undefined)) continue;
    if (!FUSABLE_DTYPES.has(q.dtype) || q.shape.length !== 2 || scale.dtype !== "float32") continue;
    if (g.outputs.includes(n.outputs[0]!)) continue;
    const us = users.get(n.outputs[0]!) ?? [];
    if (us.length === 0 || !us.every((u) => WEIGHT_CONSUMERS.has(u.node.op) && u.at === 1 && u.node.inputs.filter((v) => v === n.outputs[0]).length === 1)) continue;
    const attrs = resolveAttrs(getOp(n.op, n.name), n.attrs, n.name);
    if (attrs["output_dtype"] !== undefined && attrs["output_dtype"] !== "" && attrs["output_dtype"] !== "float32") continue;
    const axis = ((attrs["axis"] as number) + 2) % 2;
    out.set(n.outputs[0]!, { node: n, q, scale, zeroPoint: zp, axis, blockSize: attrs["block_size"] as number });
  }
  return out;
}

export function analyze(g: Graph, caps: GpuCaps): Analysis {
  const constants = new Map<string, Tensor>();
  for (const [name, c] of Object.entries(g.constants)) constants.set(name, c.tensor);
  const staticValues = new Set<string>(constants.keys());
  const decisions: Decision[] = [];
  const placements: PlanEntry[] = [];
  const fusedWeights = findFusedWeights(g);
  const fusedBy = new Map([...fusedWeights.values()].map((f) => [f.node.name, f]));
  const usersOf = (v: string): Node[] => g.nodes.filter((n) => n.inputs.includes(v));

  for (const node of g.nodes) {
    if (fusedBy.has(node.name)) {
      const into = usersOf(node.outputs[0]!)[0]!;
      decisions.push({ kind: "fused" });
      placements.push({
        node: node.name, op: node.op, kernel: "fused", tier: "webgpu", fallback: false, fusedInto: into.name,
        note: `weight-only ${fusedBy.get(node.name)!.q.dtype}: dequantized in the consumer's shader`,
      });
      continue;
    }
    const ins = node.inputs.filter((v) => v !== "");
    const allConstant = ins.every((v) => constants.has(v));
    const allStatic = ins.every((v) => staticValues.has(v));
    if (allConstant && node.op !== "shape" && node.op !== "size" && !isImpure(node)) {
      const outs = runOp(node.op, node.inputs.map((v) => (v === "" ? undefined : constants.get(v))), { ...node.attrs }, { numOutputs: node.outputs.length, node: node.name });
      node.outputs.forEach((v, i) => {
        if (v === "") return;
        constants.set(v, outs[i]!);
        staticValues.add(v);
      });
      decisions.push({ kind: "constant" });
      placements.push({ node: node.name, op: node.op, kernel: "constant_fold", tier: "compile-time", fallback: false, note: "every input is a constant: computed once at compile time" });
      continue;
    }
    if (SHAPE_OPS.has(node.op) || (allStatic && !isImpure(node))) {
      for (const v of node.outputs) if (v !== "") staticValues.add(v);
      decisions.push({ kind: "shape" });
      placements.push({ node: node.name, op: node.op, kernel: "shape_fold", tier: "compile-time", fallback: false, note: "depends on input shapes only: computed on the host when the shapes are known" });
      continue;
    }
    const d = decide(g, node, caps, staticValues, constants, fusedWeights);
    decisions.push(d);
    if (d.kind === "gpu") placements.push({ node: node.name, op: node.op, kernel: d.name, tier: "webgpu", fallback: false, ...(d.note === undefined ? {} : { note: d.note }) });
    else placements.push({ node: node.name, op: node.op, kernel: "reference", tier: "reference", fallback: true, note: (d as { reason: string }).reason });
  }
  return { decisions, placements, constants, staticValues, fusedWeights };
}

/** Ops that must run every time (none of the inference ops qforge has are random; dropout in training is refused). */
function isImpure(_node: Node): boolean {
  return false;
}

function decide(g: Graph, node: Node, caps: GpuCaps, staticValues: ReadonlySet<string>, constants: ReadonlyMap<string, Tensor>,
  fusedWeights: ReadonlyMap<string, FusedWeight>): Decision {
  const kernel = kernelFor(node.op);
  if (kernel === undefined) return { kind: "cpu", reason: `no WGSL kernel for '${node.op}'` };
  const type = (v: string): ValueType | undefined => (v === "" ? undefined : g.values[v]);
  for (const v of node.inputs) {
    if (v === "" || staticValues.has(v) || fusedWeights.has(v)) continue;
    const t = type(v);
    if (t !== undefined && gpuLayout(t.dtype) === undefined) return { kind: "cpu", reason: `input '${v}' is ${t.dtype}, which stays on the host` };
  }
  for (const v of node.outputs) {
    const t = type(v);
    if (v !== "" && t !== undefined && gpuLayout(t.dtype) === undefined) return { kind: "cpu", reason: `output '${v}' is ${t.dtype}, which stays on the host` };
  }
  const attrs = resolveAttrs(getOp(node.op, node.name), node.attrs, node.name);
  const q: SupportQuery = {
    node,
    attrs,
    inputs: node.inputs.map(type),
    outputs: node.outputs.map((v) => type(v) ?? { dtype: "float32", shape: [] }),
    isStatic: (i) => {
      const v = node.inputs[i];
      return v !== undefined && v !== "" && staticValues.has(v);
    },
    constant: (i) => {
      const v = node.inputs[i];
      return v === undefined || v === "" ? undefined : constants.get(v);
    },
    fusedWeight: (i) => fusedWeights.get(node.inputs[i] ?? ""),
    caps,
  };
  const s = kernel.supports(q);
  if (!isSupported(s)) {
    if (node.inputs.some((v) => fusedWeights.has(v))) {
      throw new Error(`webgpu: '${node.name}' reads a fused weight but its kernel declines it: ${s.reason}`);
    }
    return { kind: "cpu", reason: s.reason };
  }
  return { kind: "gpu", kernel, name: s.kernel, ...(s.note === undefined ? {} : { note: s.note }) };
}
