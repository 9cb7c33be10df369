import { QforgeError } from "./errors.js";
import { dtypeInfo, isDType } from "./dtype.js";
import type { Graph, ValueType } from "./graph.js";
import { GraphIndex } from "./analysis.js";
import { dimsCompatible, getOp, hasOp, inferNode } from "./ops/registry.js";
import { numel } from "./tensor.js";

export interface VerifyOptions {
  /** Re-run shape inference and compare with the recorded types (default true). */
  checkTypes?: boolean;
}

/**
 * Checks a graph's invariants and throws the first violation as a QforgeError naming the node:
 * DUPLICATE_NAME, UNKNOWN_OP, DANGLING_INPUT, CYCLE, NOT_TOPOLOGICAL, UNDEFINED_OUTPUT,
 * BAD_ARITY / BAD_ATTRIBUTE (through the schema), SHAPE_MISMATCH, DTYPE_MISMATCH, BAD_TENSOR.
 */
export function verifyGraph(g: Graph, opts: VerifyOptions = {}): void {
  const checkTypes = opts.checkTypes ?? true;
  // 1. Names: node names unique, every value defined once.
  const nodeNames = new Set<string>();
  const defined = new Set<string>();
  const define = (v: string, where: string): void => {
    if (defined.has(v)) throw new QforgeError("DUPLICATE_NAME", `value '${v}' is defined twice`, { node: where, hint: "give every value a unique name" });
    defined.add(v);
  };
  for (const v of g.inputs) define(v, v);
  for (const [name, c] of Object.entries(g.constants)) {
    define(name, name);
    if (!isDType(c.tensor.dtype)) throw new QforgeError("BAD_TENSOR", `constant '${name}' has unknown dtype '${c.tensor.dtype}'`, { node: name });
    const want = dtypeInfo(c.tensor.dtype).packed ? Math.ceil((numel(c.tensor.shape) * dtypeInfo(c.tensor.dtype).bits) / 8) : numel(c.tensor.shape);
    if (c.tensor.data.length !== want) {
      throw new QforgeError("BAD_TENSOR", `constant '${name}' holds ${c.tensor.data.length} elements for shape [${c.tensor.shape.join(",")}]`, { node: name });
    }
  }
  for (const n of g.nodes) {
    if (nodeNames.has(n.name)) throw new QforgeError("DUPLICATE_NAME", `node name '${n.name}' is used twice`, { node: n.name });
    nodeNames.add(n.name);
    if (!hasOp(n.op)) getOp(n.op, n.name); // throws UNKNOWN_OP
    for (const o of n.outputs) if (o !== "") define(o, n.name);
  }
  // 2. Every input refers to a defined value.
  for (const n of g.nodes) {
    for (const v of n.inputs) {
      if (v !== "" && !defined.has(v)) {
        throw new QforgeError("DANGLING_INPUT", `input '${v}' is not produced by any node, input or constant`, { node: n.name });
      }
    }
  }
  for (const v of g.outputs) {
    if (!defined.has(v)) throw new QforgeError("DANGLING_INPUT", `graph output '${v}' is not defined`, { node: v });
  }
  // 3. Acyclic, and the node list is a topological order.
  const idx = new GraphIndex(g);
  const cycles = idx.cycles();
  if (cycles.length > 0 || !idx.isAcyclic()) {
    const c = cycles[0] ?? [];
    throw new QforgeError("CYCLE", `data-flow cycle through ${c.join(" -> ")}`, { node: c[0], hint: "a value may not depend on itself" });
  }
  const seen = new Set<string>([...g.inputs, ...Object.keys(g.constants)]);
  for (const n of g.nodes) {
    for (const v of n.inputs) {
      if (v !== "" && !seen.has(v)) {
        throw new QforgeError("NOT_TOPOLOGICAL", `input '${v}' is used before the node that produces it`, { node: n.name, hint: "reorder with sortNodes(graph)" });
      }
    }
    for (const o of n.outputs) if (o !== "") seen.add(o);
  }
  // 4. Recorded types exist and agree with inference.
  for (const v of defined) {
    if (g.values[v] === undefined) throw new QforgeError("UNDEFINED_OUTPUT", `value '${v}' has no recorded type`, { node: v });
  }
  for (const [name, c] of Object.entries(g.constants)) {
    checkSame(g.values[name]!, { dtype: c.tensor.dtype, shape: c.tensor.shape }, name, name);
  }
  if (!checkTypes) return;
  for (const n of g.nodes) {
    const types = n.inputs.map((v) => (v === "" ? undefined : g.values[v]));
    const inferred = inferNode(n.op, n.name, types, n.attrs, n.outputs.length, (i) => g.constants[n.inputs[i] ?? ""]?.tensor);
    n.outputs.forEach((o, i) => {
      if (o === "") return;
      const want = inferred[i];
      if (want === undefined) throw new QforgeError("UNDEFINED_OUTPUT", `op '${n.op}' infers no output #${i}`, { node: n.name });
      checkSame(g.values[o]!, want, o, n.name);
    });
  }
}

function checkSame(recorded: ValueType, inferred: ValueType, value: string, node: string): void {
  if (recorded.dtype !== inferred.dtype) {
    throw new QforgeError("DTYPE_MISMATCH", `value '${value}' is recorded as ${recorded.dtype} but computes ${inferred.dtype}`, { node });
  }
  const a = recorded.shape;
  const b = inferred.shape;
  if (a.length !== b.length || a.some((d, i) => !dimsCompatible(d, b[i]!))) {
    throw new QforgeError("SHAPE_MISMATCH", `value '${value}' is recorded as [${a.join(",")}] but computes [${b.join(",")}]`, { node });
  }
}
