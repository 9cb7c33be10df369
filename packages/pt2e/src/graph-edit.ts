import { freeze } from "immer";
import {
  inferNode, QforgeError,
  type AttrValue, type Constant, type ConstantKind, type ExportedProgram, type Graph, type Node, type NodeMeta, type Tensor,
  type ValueType,
} from "@qforge/ir";

/**
 * A mutable working copy of a Graph for the passes of this package that rebuild the node list in one
 * walk (observer insertion, convert). Node and value names share one namespace, like torch.fx's
 * (`conv`, `conv_1`, ...). The input graph is never touched: arrays and records are copied, nodes are
 * replaced rather than edited, tensors are shared.
 */
export class WorkGraph {
  inputs: string[];
  outputs: string[];
  constants: Record<string, Constant>;
  nodes: Node[];
  values: Record<string, ValueType>;
  private readonly used = new Set<string>();

  constructor(g: Graph) {
    this.inputs = [...g.inputs];
    this.outputs = [...g.outputs];
    this.constants = { ...g.constants };
    this.nodes = [...g.nodes];
    this.values = { ...g.values };
    for (const v of Object.keys(g.values)) this.used.add(v);
    for (const v of Object.keys(g.constants)) this.used.add(v);
    for (const n of g.nodes) {
      this.used.add(n.name);
      for (const o of n.outputs) if (o !== "") this.used.add(o);
    }
  }

  /** `base` if unused, else `base_1`, `base_2`, ...; the name is reserved. */
  fresh(base: string): string {
    const clean = base === "" ? "v" : base;
    let name = clean;
    for (let i = 1; this.used.has(name); i++) name = `${clean}_${i}`;
    this.used.add(name);
    return name;
  }

  typeOf(value: string): ValueType {
    const t = Object.prototype.hasOwnProperty.call(this.values, value) ? this.values[value] : undefined;
    if (t === undefined) throw new QforgeError("DANGLING_INPUT", `value '${value}' is not defined`, { node: value });
    return t;
  }

  /** Adds a constant under a fresh name derived from `base`. */
  addConstant(base: string, tensor: Tensor, kind: ConstantKind = "constant"): string {
    const name = this.fresh(base);
    this.constants[name] = { kind, tensor };
    this.values[name] = { dtype: tensor.dtype, shape: [...tensor.shape] };
    return name;
  }

  /**
   * Builds a node (not yet placed in `nodes`) with a fresh name from `base`, output names from
   * `outputBases` (default: the node name for one output), and output types inferred through the op
   * schema (a bad node fails here, naming it).
   */
  makeNode(op: string, base: string, inputs: readonly string[], attrs: Record<string, AttrValue>, meta: NodeMeta = {}, outputBases?: readonly string[]): Node {
    const name = this.fresh(base);
    const types = inputs.map((v) => (v === "" ? undefined : this.typeOf(v)));
    const numOutputs = outputBases?.length ?? 1;
    const inferred = inferNode(op, name, types, attrs, numOutputs, (i) => this.constants[inputs[i] ?? ""]?.tensor);
    const outputs = outputBases === undefined ? [name] : outputBases.map((b) => this.fresh(b));
    outputs.forEach((o, i) => { this.values[o] = inferred[i]!; });
    return { name, op, inputs: [...inputs], outputs, attrs: { ...attrs }, meta };
  }

  /** Drops the recorded types of values nothing defines any more, and the given constants when no node reads them. */
  prune(candidateConstants: Iterable<string> = []): void {
    const read = new Set<string>(this.outputs);
    for (const n of this.nodes) for (const v of n.inputs) if (v !== "") read.add(v);
    for (const c of candidateConstants) {
      if (!read.has(c) && this.constants[c] !== undefined) delete this.constants[c];
    }
    const defined = new Set<string>([...this.inputs, ...Object.keys(this.constants)]);
    for (const n of this.nodes) for (const o of n.outputs) if (o !== "") defined.add(o);
    for (const v of Object.keys(this.values)) if (!defined.has(v)) delete this.values[v];
  }

  /** The finished graph, deep-frozen like GraphBuilder's (tensor storage stays shared). */
  build(): Graph {
    return freeze({
      inputs: [...this.inputs],
      outputs: [...this.outputs],
      constants: { ...this.constants },
      nodes: this.nodes.map((n) => ({ ...n })),
      values: { ...this.values },
    }, true);
  }
}

/**
 * The program around a rebuilt graph. Every pass here keeps the graph outputs in place (it only
 * renames them), so an output of the signature follows its position in the graph's output list.
 */
export function withGraph(ep: ExportedProgram, graph: Graph, meta: Record<string, unknown>): ExportedProgram {
  if (graph.outputs.length !== ep.graph.outputs.length) {
    throw new QforgeError("PASS_FAILED", `the graph has ${graph.outputs.length} outputs, the program had ${ep.graph.outputs.length}`);
  }
  const position = new Map<string, number>();
  ep.graph.outputs.forEach((v, i) => { if (!position.has(v)) position.set(v, i); });
  return freeze({
    graph,
    inputs: ep.inputs.map((s) => ({ ...s })),
    outputs: ep.outputs.map((s) => {
      const i = position.get(s.value);
      return { name: s.name, value: i === undefined ? s.value : graph.outputs[i]! };
    }),
    meta: { ...ep.meta, ...meta },
  }, true);
}

/** Resolves a chain of renames (a -> b -> c gives c). */
export function follow(rename: ReadonlyMap<string, string>, v: string): string {
  let cur = v;
  for (let i = 0; i <= rename.size; i++) {
    const next = rename.get(cur);
    if (next === undefined || next === cur) return cur;
    cur = next;
  }
  throw new QforgeError("PASS_FAILED", `value renames loop at '${v}'`);
}
