/**
 * A compiled CPU session: steps in graph order (a fast kernel, possibly with fused nodes, or the
 * reference kernel), and a buffer pool. Every intermediate value is dropped after its last reader
 * ran; storage the session allocated goes back to the pool (keyed by dtype and length) and is reused
 * by later steps and later runs, so a steady-state run allocates only its outputs.
 */
import {
  QforgeError, allocStorage, dtypeInfo, isDType, numel, storageLength, storageName,
  type DType, type Graph, type Tensor, type TypedArray, type ValueType,
} from "@qforge/ir";
import type { PlanEntry, Session } from "@qforge/runtime";
import type { RunContext } from "./lower.js";
import type { Tier } from "./tiers/tier.js";

/** One step of a session. */
export interface Step {
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  run(inputs: readonly (Tensor | undefined)[], rc: RunContext): Tensor[];
}

/** Storage reuse across values and runs. */
class BufferPool {
  private readonly free = new Map<string, TypedArray[]>();
  /** Live references to storage the pool handed out (a view kernel's output shares its input's). */
  private readonly refs = new Map<TypedArray, number>();

  alloc(dtype: DType, shape: readonly number[]): Tensor {
    const len = storageLength(dtype, numel(shape));
    const key = `${dtypeInfo(dtype).storage}:${len}`;
    const data = this.free.get(key)?.pop() ?? allocStorage(dtype, len);
    this.refs.set(data, 0);
    return { dtype, shape: [...shape], data };
  }

  /** A value now refers to this storage. */
  retain(data: TypedArray): void {
    const r = this.refs.get(data);
    if (r !== undefined) this.refs.set(data, r + 1);
  }

  /** A value referring to this storage died; the last one returns it to the pool. */
  release(data: TypedArray): void {
    const r = this.refs.get(data);
    if (r === undefined) return;
    if (r > 1) {
      this.refs.set(data, r - 1);
      return;
    }
    this.refs.delete(data);
    const key = `${storageName(data)}:${data.length}`;
    const list = this.free.get(key) ?? [];
    list.push(data);
    this.free.set(key, list);
  }

  /** Storage that leaves the session (a graph output) is never reused. */
  disown(data: TypedArray): void {
    this.refs.delete(data);
  }
}

function checkFeed(name: string, t: Tensor, want: ValueType | undefined, symbols: Map<string, number>): void {
  const bad = (msg: string, hint?: string): never => {
    throw new QforgeError("BAD_INPUT", `input '${name}': ${msg}`, { node: name, hint });
  };
  if (t === null || typeof t !== "object" || !Array.isArray(t.shape) || !isDType(t.dtype)) bad("is not a tensor");
  if (storageName(t.data) !== dtypeInfo(t.dtype).storage || t.data.length !== storageLength(t.dtype, numel(t.shape))) {
    bad(`storage does not fit ${t.dtype}[${t.shape.join(",")}]`);
  }
  if (want === undefined) return;
  if (t.dtype !== want.dtype) bad(`expected dtype ${want.dtype}, got ${t.dtype}`, "cast the tensor before feeding it");
  if (t.shape.length !== want.shape.length) bad(`expected rank ${want.shape.length}, got [${t.shape.join(",")}]`);
  want.shape.forEach((d, i) => {
    const got = t.shape[i]!;
    if (typeof d === "number") {
      if (d !== got) bad(`dim ${i} must be ${d}, got ${got}`);
    } else if (symbols.has(d) && symbols.get(d) !== got) {
      bad(`dim ${i} is '${d}' = ${symbols.get(d)}, got ${got}`, "inputs sharing a symbolic dim must agree on its size");
    } else {
      symbols.set(d, got);
    }
  });
}

export class CpuSession implements Session {
  readonly plan: readonly string[];
  private readonly pool = new BufferPool();
  /** Index of the last step reading each value (graph outputs are kept). */
  private readonly lastUse = new Map<string, number>();
  private disposed = false;

  constructor(
    private readonly graph: Graph,
    private readonly steps: readonly Step[],
    readonly placements: readonly PlanEntry[],
    readonly tier: Tier,
  ) {
    this.plan = placements.map((p) => p.node);
    steps.forEach((s, i) => { for (const v of s.inputs) if (v !== "") this.lastUse.set(v, i); });
  }

  async run(feeds: Record<string, Tensor> | readonly Tensor[]): Promise<Tensor[]> {
    return this.runSync(feeds);
  }

  /**
   * Runs once and reports the milliseconds of each step (by the name of the node the step lowers;
   * fused nodes are inside their producer's time).
   */
  profile(feeds: Record<string, Tensor> | readonly Tensor[]): { outputs: Tensor[]; steps: { node: string; op: string; kernel: string; ms: number }[] } {
    const steps: { node: string; op: string; kernel: string; ms: number }[] = [];
    const owners = this.placements.filter((p) => p.kernel !== "fused");
    const outputs = this.runSync(feeds, (i, ms) => {
      const p = owners[i]!;
      steps.push({ node: p.node, op: p.op, kernel: p.kernel, ms });
    });
    return { outputs, steps };
  }

  /** The same as run, synchronously (every kernel is synchronous). */
  runSync(feeds: Record<string, Tensor> | readonly Tensor[], onStep?: (step: number, ms: number) => void): Tensor[] {
    if (this.disposed) throw new QforgeError("BAD_CONFIG", "the session was disposed");
    const g = this.graph;
    const values = new Map<string, Tensor>();
    if (Array.isArray(feeds)) {
      const list = feeds as readonly Tensor[];
      if (list.length !== g.inputs.length) throw new QforgeError("BAD_INPUT", `the graph takes ${g.inputs.length} inputs (${g.inputs.join(", ")}), got ${list.length}`);
      g.inputs.forEach((v, i) => values.set(v, list[i]!));
    } else {
      const rec = feeds as Record<string, Tensor>;
      for (const k of Object.keys(rec)) {
        if (!g.inputs.includes(k)) throw new QforgeError("BAD_INPUT", `'${k}' is not an input of the graph`, { node: k, hint: `inputs: ${g.inputs.join(", ")}` });
      }
      for (const v of g.inputs) {
        const t = rec[v];
        if (t === undefined) throw new QforgeError("BAD_INPUT", `input '${v}' is not fed`, { node: v });
        values.set(v, t);
      }
    }
    const symbols = new Map<string, number>();
    for (const v of g.inputs) checkFeed(v, values.get(v)!, g.values[v], symbols);

    const keep = new Set(g.outputs);
    const pool = this.pool;
    const rc: RunContext = { alloc: (dtype, shape) => pool.alloc(dtype, shape) };
    const get = (v: string): Tensor => {
      const t = values.get(v) ?? g.constants[v]?.tensor;
      if (t === undefined) throw new QforgeError("DANGLING_INPUT", `value '${v}' has no value when it is read`, { node: v });
      return t;
    };
    this.steps.forEach((step, i) => {
      const inputs = step.inputs.map((v) => (v === "" ? undefined : get(v)));
      const t0 = onStep === undefined ? 0 : performance.now();
      const outs = step.run(inputs, rc);
      if (onStep !== undefined) onStep(i, performance.now() - t0);
      step.outputs.forEach((v, k) => {
        if (v === "") return;
        const t = outs[k];
        if (t === undefined) throw new QforgeError("UNDEFINED_OUTPUT", `a step did not produce '${v}'`, { node: v });
        pool.retain(t.data);
        values.set(v, t);
      });
      // Values whose last reader was this step die now (and outputs nobody reads).
      for (const v of new Set([...step.inputs, ...step.outputs])) {
        if (v === "" || keep.has(v) || (this.lastUse.get(v) ?? -1) > i || !values.has(v)) continue;
        pool.release(values.get(v)!.data);
        values.delete(v);
      }
    });
    return g.outputs.map((v) => {
      const t = get(v);
      pool.disown(t.data);
      return t;
    });
  }

  dispose(): void {
    this.disposed = true;
    this.tier.dispose();
  }
}
