import type { DType } from "./dtype.js";
import type { Tensor } from "./tensor.js";

/** A dimension: a size, or a symbol (e.g. "N", "H") for a dynamic size. */
export type Dim = number | string;

/** What is known about a value: its dtype and (possibly symbolic) shape. */
export interface ValueType {
  readonly dtype: DType;
  readonly shape: readonly Dim[];
}

/**
 * Attribute values. Integers and floats are both JS numbers: the op schema says which one an
 * attribute is. Lists are homogeneous.
 */
export type AttrValue = number | string | boolean | readonly number[] | readonly string[];
export type Attrs = Readonly<Record<string, AttrValue>>;

/** One frame of the module stack a node was traced from (like torch's nn_module_stack). */
export interface ModuleFrame {
  /** Qualified name, e.g. "features.0". */
  readonly path: string;
  /** Module class, e.g. "Conv2d". */
  readonly type: string;
}

/**
 * Everything about a node that is not its computation. Known keys are typed; passes may add their
 * own (e.g. `quantization_annotation`), as JSON-compatible data so that dumps round-trip.
 */
export interface NodeMeta {
  /** Innermost module last. */
  readonly moduleStack?: readonly ModuleFrame[];
  /** "file:line:col" of the user code that created the node. */
  readonly source?: string;
  /** Stable id that survives passes, for the numeric debugger. */
  readonly debugHandle?: number;
  readonly [key: string]: unknown;
}

/**
 * A node computes `outputs` from `inputs` with `op` (looked up in the op registry). Inputs and
 * outputs are value names; "" marks an omitted optional input.
 */
export interface Node {
  readonly name: string;
  readonly op: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attrs: Attrs;
  readonly meta: NodeMeta;
}

/** parameter / buffer as in torch's state_dict; constant for everything else (folded values, qparams). */
export type ConstantKind = "parameter" | "buffer" | "constant";

export interface Constant {
  readonly kind: ConstantKind;
  readonly tensor: Tensor;
}

/**
 * The graph: plain immutable data. `nodes` are kept in a topological order (the verifier checks it).
 * Every value (graph input, constant, node output) has exactly one entry in `values`.
 */
export interface Graph {
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly constants: Readonly<Record<string, Constant>>;
  readonly nodes: readonly Node[];
  readonly values: Readonly<Record<string, ValueType>>;
}

export function emptyGraph(): Graph {
  return { inputs: [], outputs: [], constants: {}, nodes: [], values: {} };
}

/** Where a value comes from. */
export type ValueSource =
  | { readonly kind: "input"; readonly index: number }
  | { readonly kind: "constant"; readonly constant: Constant }
  | { readonly kind: "node"; readonly node: Node; readonly index: number };

/** Map value name -> where it is defined. Values defined twice keep the first definition. */
export function valueSources(g: Graph): Map<string, ValueSource> {
  const m = new Map<string, ValueSource>();
  g.inputs.forEach((v, index) => { if (!m.has(v)) m.set(v, { kind: "input", index }); });
  for (const [name, constant] of Object.entries(g.constants)) if (!m.has(name)) m.set(name, { kind: "constant", constant });
  for (const node of g.nodes) node.outputs.forEach((v, index) => { if (v !== "" && !m.has(v)) m.set(v, { kind: "node", node, index }); });
  return m;
}

/** Map value name -> nodes that read it (in node order; a node reading a value twice appears once). */
export function valueUsers(g: Graph): Map<string, Node[]> {
  const m = new Map<string, Node[]>();
  for (const node of g.nodes) {
    for (const v of new Set(node.inputs)) {
      if (v === "") continue;
      const list = m.get(v);
      if (list) list.push(node);
      else m.set(v, [node]);
    }
  }
  return m;
}

export function formatShape(shape: readonly Dim[]): string {
  return `[${shape.map(String).join(",")}]`;
}
