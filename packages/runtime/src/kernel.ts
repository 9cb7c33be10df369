import { QforgeError, type AttrValue, type Tensor, type ValueType } from "@qforge/ir";

/** What a kernel knows about the node it runs for. */
export interface KernelContext {
  /** Node name (the op name for eager calls), for error messages. */
  readonly node: string;
  readonly op: string;
  /** How many outputs the node uses; kernels may skip computing optional outputs beyond it. */
  readonly numOutputs: number;
  /**
   * Output types inferred by the op's schema from the actual input tensors (shape-like inputs are
   * passed to inference as constants), so every dim is a number.
   */
  readonly outputTypes: readonly ValueType[];
}

/**
 * A reference kernel: input tensors (undefined for omitted optional inputs), attributes with schema
 * defaults resolved, and the context. Returns at least `ctx.numOutputs` fresh tensors; never writes
 * into its inputs.
 */
export type Kernel = (
  inputs: readonly (Tensor | undefined)[],
  attrs: Readonly<Record<string, AttrValue>>,
  ctx: KernelContext,
) => Tensor[];

const KERNELS = new Map<string, Kernel>();

/** Registers the reference kernel of an op (one per op name; a second registration is an error). */
export function registerKernel(op: string, kernel: Kernel): void {
  if (KERNELS.has(op)) {
    throw new QforgeError("DUPLICATE_NAME", `a reference kernel for '${op}' is already registered`, { hint: "each op has one reference kernel" });
  }
  KERNELS.set(op, kernel);
}

export function hasKernel(op: string): boolean {
  return KERNELS.has(op);
}

export function getKernel(op: string, node?: string): Kernel {
  const k = KERNELS.get(op);
  if (k === undefined) {
    throw new QforgeError("NO_KERNEL", `no reference kernel for op '${op}'`, { node, hint: "register one with registerKernel (see docs/add-an-op.md)" });
  }
  return k;
}

/** Op names that have a reference kernel, sorted. */
export function listKernels(): string[] {
  return [...KERNELS.keys()].sort();
}
