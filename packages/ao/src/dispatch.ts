/**
 * Kernel dispatch for quantized-weight ops by device and layout (torchao dispatches `linear` on a
 * tensor subclass by its layout and device). Backends register kernels with `registerAoKernel`;
 * running a program on a device picks, for each quantized node, the first kernel registered for that
 * (op, device) whose layouts and `supports` accept the node. A node without one runs the reference
 * kernel of @qforge/runtime, which dequantizes the weight, and says so once per node through
 * `onWarning` (default console.warn): a fallback is never silent.
 *
 * Device "reference" always runs the reference kernels (the oracle). Device "cpu" has the JS kernels
 * of ./kernels/cpu.ts; "webgpu" kernels come from a WebGPU backend.
 */
import { QforgeError, type AttrValue, type ExportedProgram, type Graph, type Tensor } from "@qforge/ir";
import { getKernel, runProgram, type Kernel, type RunOptions } from "@qforge/runtime";

export const AO_OPS = ["affine_quantized_linear", "affine_quantized_embedding", "codebook_quantized_linear"] as const;
export type AoOp = (typeof AO_OPS)[number];

export interface AoKernelSpec {
  /** Shown in plans and warnings, e.g. "cpu/tiled-dequant-linear". */
  readonly name: string;
  readonly op: AoOp;
  readonly device: string;
  /** Layouts of the weight the kernel reads: plain, int4_pairs, tiles, u32_words. */
  readonly layouts: readonly string[];
  /** Further conditions on the node's attributes (activation handling, block size, ...). */
  readonly supports?: (attrs: Readonly<Record<string, AttrValue>>) => boolean;
}

interface Entry {
  readonly spec: AoKernelSpec;
  readonly kernel: Kernel;
}

const KERNELS: Entry[] = [];

export function registerAoKernel(spec: AoKernelSpec, kernel: Kernel): void {
  if (!(AO_OPS as readonly string[]).includes(spec.op)) throw new QforgeError("BAD_CONFIG", `registerAoKernel: unknown op '${spec.op}'`, { hint: `use one of ${AO_OPS.join(", ")}` });
  if (spec.device === "reference") throw new QforgeError("BAD_CONFIG", "registerAoKernel: the reference device runs the reference kernels only");
  if (KERNELS.some((e) => e.spec.name === spec.name)) throw new QforgeError("DUPLICATE_NAME", `an ao kernel named '${spec.name}' is already registered`);
  KERNELS.push({ spec, kernel });
}

/** Removes a kernel by name (tests and plugins that replace one). */
export function unregisterAoKernel(name: string): boolean {
  const i = KERNELS.findIndex((e) => e.spec.name === name);
  if (i < 0) return false;
  KERNELS.splice(i, 1);
  return true;
}

export function listAoKernels(): AoKernelSpec[] {
  return KERNELS.map((e) => e.spec);
}

function layoutAttr(attrs: Readonly<Record<string, AttrValue>>): string {
  return (attrs["layout"] as string | undefined) ?? "plain";
}

/** The kernel a node with these attributes gets on `device`, or undefined (reference fallback). */
export function selectAoKernel(op: string, device: string, attrs: Readonly<Record<string, AttrValue>>): { spec: AoKernelSpec; kernel: Kernel } | undefined {
  if (device === "reference") return undefined;
  const layout = layoutAttr(attrs);
  return KERNELS.find((e) => e.spec.op === op && e.spec.device === device && e.spec.layouts.includes(layout) && (e.spec.supports?.(attrs) ?? true));
}

export interface KernelPlanRow {
  readonly node: string;
  readonly op: AoOp;
  readonly layout: string;
  /** Kernel name, or "reference" for the dequantizing fallback. */
  readonly kernel: string;
  readonly fallback: boolean;
}

/** Which kernel each quantized node of a graph gets on `device`. */
export function planAoKernels(g: Graph, device: string): KernelPlanRow[] {
  return g.nodes.filter((n) => (AO_OPS as readonly string[]).includes(n.op)).map((n) => {
    const hit = selectAoKernel(n.op, device, n.attrs);
    return { node: n.name, op: n.op as AoOp, layout: layoutAttr(n.attrs), kernel: hit?.spec.name ?? "reference", fallback: device !== "reference" && hit === undefined };
  });
}

export interface AoRunOptions extends Omit<RunOptions, "kernels"> {
  /** Default "cpu". */
  device?: string;
  /** Receives each fallback warning once per node and graph. Default console.warn. */
  onWarning?: (message: string) => void;
}

const WARNED = new WeakMap<object, Set<string>>();

/** Per-run kernel overrides (RunOptions.kernels) that dispatch the quantized ops of `graph` on `device`. */
export function aoKernels(graph: Graph, device: string, onWarning: (message: string) => void = (m) => console.warn(m)): Record<string, Kernel> {
  if (device === "reference") return {};
  let warned = WARNED.get(graph);
  if (warned === undefined) {
    warned = new Set();
    WARNED.set(graph, warned);
  }
  const seen = warned;
  const out: Record<string, Kernel> = {};
  for (const op of AO_OPS) {
    const reference = getKernel(op);
    out[op] = (inputs, attrs, ctx) => {
      const hit = selectAoKernel(op, device, attrs);
      if (hit !== undefined) return hit.kernel(inputs, attrs, ctx);
      if (!seen.has(ctx.node)) {
        seen.add(ctx.node);
        const act = op === "affine_quantized_linear" ? `, act_quant ${String(attrs["act_quant"])}, compute ${String(attrs["compute"])}` : "";
        onWarning(`qforge/ao: no ${device} kernel for ${op} (layout ${layoutAttr(attrs)}${act}) at node '${ctx.node}': dequantizing the weight on the reference kernel`);
      }
      return reference(inputs, attrs, ctx);
    };
  }
  return out;
}

/** runProgram with the quantized ops dispatched to `device`'s kernels (other ops: reference kernels). */
export function runQuantized(ep: ExportedProgram, inputs: readonly Tensor[], opts: AoRunOptions = {}): Tensor[] {
  const { device = "cpu", onWarning, ...rest } = opts;
  return runProgram(ep, inputs, { ...rest, kernels: aoKernels(ep.graph, device, onWarning) });
}
