import { freeze } from "immer";
import { QforgeError } from "./errors.js";
import type { DType } from "./dtype.js";
import type { AttrValue, Constant, ConstantKind, Dim, Graph, Node, NodeMeta, ValueType } from "./graph.js";
import { inferNode } from "./ops/registry.js";
import type { Tensor } from "./tensor.js";

export interface NodeOptions {
  /** Node name; defaults to a fresh name derived from the op. */
  name?: string;
  /** Output value names; defaults to the node name (one output) or `name:i`. */
  outputs?: string[];
  /** Number of outputs when `outputs` is not given (default 1). */
  numOutputs?: number;
  meta?: NodeMeta;
}

/**
 * Mutable helper that assembles a Graph and hands out a frozen copy. Names are made unique the way
 * torch.fx does (`conv`, `conv_1`, ...). Output types are inferred through the op schemas as nodes
 * are added, so a shape error surfaces at the node that causes it.
 */
export class GraphBuilder {
  private readonly g: {
    inputs: string[]; outputs: string[]; constants: Record<string, Constant>; nodes: Node[]; values: Record<string, ValueType>;
  };
  private readonly used = new Set<string>();

  constructor(base?: Graph) {
    this.g = { inputs: [], outputs: [], constants: {}, nodes: [], values: {} };
    if (base) {
      this.g.inputs = [...base.inputs];
      this.g.outputs = [...base.outputs];
      this.g.constants = { ...base.constants };
      this.g.nodes = [...base.nodes];
      this.g.values = { ...base.values };
      for (const v of Object.keys(base.values)) this.used.add(v);
      for (const n of base.nodes) this.used.add(n.name);
    }
  }

  /** A fresh name: `base` if free, else `base_1`, `base_2`, ... */
  fresh(base: string): string {
    const clean = base === "" ? "v" : base;
    if (!this.used.has(clean)) {
      this.used.add(clean);
      return clean;
    }
    for (let i = 1; ; i++) {
      const n = `${clean}_${i}`;
      if (!this.used.has(n)) {
        this.used.add(n);
        return n;
      }
    }
  }

  private claim(name: string): string {
    if (this.used.has(name)) throw new QforgeError("DUPLICATE_NAME", `name '${name}' is already used`, { node: name });
    this.used.add(name);
    return name;
  }

  input(name: string, dtype: DType, shape: readonly Dim[]): string {
    const v = this.claim(name);
    this.g.inputs.push(v);
    this.g.values[v] = { dtype, shape: [...shape] };
    return v;
  }

  constant(name: string, tensor: Tensor, kind: ConstantKind = "constant"): string {
    return this.defineConstant(this.claim(name), tensor, kind);
  }

  private defineConstant(v: string, tensor: Tensor, kind: ConstantKind): string {
    this.g.constants[v] = { kind, tensor };
    this.g.values[v] = { dtype: tensor.dtype, shape: [...tensor.shape] };
    return v;
  }

  /** A constant with a fresh name derived from `base`. */
  freshConstant(base: string, tensor: Tensor, kind: ConstantKind = "constant"): string {
    return this.defineConstant(this.fresh(base), tensor, kind);
  }

  typeOf(value: string): ValueType {
    const t = this.g.values[value];
    if (t === undefined) throw new QforgeError("DANGLING_INPUT", `value '${value}' is not defined`, { node: value });
    return t;
  }

  /** Adds a node; returns its output value names. */
  node(op: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, opts: NodeOptions = {}): string[] {
    const name = opts.name !== undefined ? this.claim(opts.name) : this.fresh(op);
    const n = opts.outputs?.length ?? opts.numOutputs ?? 1;
    const types = inputs.map((v) => (v === "" ? undefined : this.typeOf(v)));
    const constant = (i: number): Tensor | undefined => this.g.constants[inputs[i] ?? ""]?.tensor;
    const inferred = inferNode(op, name, types, attrs, n, constant);
    const outputs = opts.outputs
      ? opts.outputs.map((o) => (o === "" ? "" : this.claim(o)))
      : n === 1 ? [name] : Array.from({ length: n }, (_, i) => this.fresh(`${name}:${i}`));
    outputs.forEach((o, i) => {
      if (o === "") return;
      const t = inferred[i];
      if (t === undefined) throw new QforgeError("UNDEFINED_OUTPUT", `op '${op}' inferred no type for output #${i}`, { node: name });
      this.g.values[o] = t;
    });
    this.g.nodes.push({ name, op, inputs: [...inputs], outputs, attrs: { ...attrs }, meta: opts.meta ?? {} });
    return outputs;
  }

  /** Adds a node with one output and returns it. */
  node1(op: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, opts: NodeOptions = {}): string {
    return this.node(op, inputs, attrs, opts)[0]!;
  }

  output(...values: string[]): void {
    for (const v of values) {
      this.typeOf(v);
      this.g.outputs.push(v);
    }
  }

  /** The graph so far, deep-frozen (tensor storage is left writable: immer does not freeze typed arrays). */
  build(): Graph {
    return freeze(structuredCloneGraph(this.g), true);
  }
}

/** A structural copy that shares tensor storage. */
function structuredCloneGraph(g: Graph): Graph {
  return {
    inputs: [...g.inputs],
    outputs: [...g.outputs],
    constants: { ...g.constants },
    nodes: g.nodes.map((n) => ({ ...n })),
    values: { ...g.values },
  };
}
