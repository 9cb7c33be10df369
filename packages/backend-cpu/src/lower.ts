/**
 * How a node becomes a step of a CPU session. Each op with a fast kernel has a `Lowering` (in
 * src/ops/); it looks at the node, its constant inputs and its users, prepacks what it can once, and
 * returns a step — or a `Skip` with the reason, and the node then runs the reference kernel, listed
 * as a fallback in the session's placements.
 */
import { QforgeError, getElement, numel, type DType, type Graph, type Node, type Tensor } from "@qforge/ir";
import type { Tier } from "./tiers/tier.js";

/** Allocation of step outputs from the session's buffer pool. */
export interface RunContext {
  /** A tensor whose storage may be reused from an earlier, dead value (contents are arbitrary). */
  alloc(dtype: DType, shape: readonly number[]): Tensor;
}

/** A lowered node: runs its kernel on the runtime inputs and returns the outputs. */
export interface Lowered {
  /** The kernel that runs, e.g. "sgemm_avx512"; shown in the plan. */
  readonly kernel: string;
  /** "native" | "wasm" for tier kernels, "js" for TypeScript kernels. */
  readonly tier: string;
  readonly note?: string;
  /** Nodes computed inside this step (a fused elementwise tail); their outputs are not materialized. */
  readonly fused?: readonly Node[];
  /** The values the step reads ("" for omitted); defaults to the node's inputs. */
  readonly inputs?: readonly string[];
  /** The values the step writes; defaults to the node's outputs. */
  readonly outputs?: readonly string[];
  run(inputs: readonly (Tensor | undefined)[], rc: RunContext): Tensor[];
}

/** Why a node keeps the reference kernel. */
export interface Skip {
  readonly skip: string;
}

export type Lowering = (node: Node, ctx: LowerContext) => Lowered | Skip;

export function skip(reason: string): Skip {
  return { skip: reason };
}

export function isSkip(r: Lowered | Skip): r is Skip {
  return (r as Skip).skip !== undefined;
}

/** What lowerings see of the graph and the session. */
export class LowerContext {
  private readonly usersOf = new Map<string, Node[]>();
  private readonly outputs: ReadonlySet<string>;

  constructor(readonly graph: Graph, readonly tier: Tier) {
    for (const n of graph.nodes) {
      for (const v of new Set(n.inputs)) {
        if (v === "") continue;
        const list = this.usersOf.get(v) ?? [];
        list.push(n);
        this.usersOf.set(v, list);
      }
    }
    this.outputs = new Set(graph.outputs);
  }

  /** The constant tensor behind a value, if it is a graph constant. */
  constant(value: string | undefined): Tensor | undefined {
    if (value === undefined || value === "") return undefined;
    return this.graph.constants[value]?.tensor;
  }

  /** Nodes reading a value (each node once). */
  users(value: string): readonly Node[] {
    return this.usersOf.get(value) ?? [];
  }

  isGraphOutput(value: string): boolean {
    return this.outputs.has(value);
  }

  /** The declared dtype of a value. */
  dtype(value: string): DType | undefined {
    return this.graph.values[value]?.dtype;
  }

  /** The declared rank of a value. */
  rank(value: string): number | undefined {
    return this.graph.values[value]?.shape.length;
  }
}

/** Float32 contents of a constant (copied), or undefined when it is not a float32 constant. */
export function float32Of(t: Tensor | undefined): Float32Array | undefined {
  if (t === undefined || t.dtype !== "float32") return undefined;
  return Float32Array.from(t.data as Float32Array);
}

/** A one-element constant's value. */
export function scalarOf(t: Tensor | undefined): number | undefined {
  if (t === undefined || numel(t.shape) !== 1) return undefined;
  return getElement(t, 0);
}

/** Elements of a tensor as numbers (qparams; small). */
export function numbersOf(t: Tensor): number[] {
  const n = numel(t.shape);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = getElement(t, i);
  return out;
}

/** An internal invariant of a lowering failed: a bug, reported with the node. */
export function internal(node: Node, message: string): never {
  throw new QforgeError("BAD_DATA", `backend-cpu: ${message}`, { node: node.name, hint: "this is a bug in @qforge/backend-cpu" });
}

/** A float32 tensor of `shape` over `data`. */
export function f32Tensor(shape: readonly number[], data: Float32Array): Tensor {
  return { dtype: "float32", shape: [...shape], data };
}
