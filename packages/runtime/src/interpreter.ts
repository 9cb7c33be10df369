import {
  QforgeError, isDType, numel, storageLength, storageName, dtypeInfo,
  type ExportedProgram, type Graph, type Node, type Tensor, type ValueType,
} from "@qforge/ir";
import { executeOp } from "./execute.js";
import type { Kernel } from "./kernel.js";

export interface RunOptions {
  /** keep every intermediate value */
  keepAll?: boolean;
  /** Called after each node with its outputs (for debuggers and observers). */
  onNode?: (node: Node, outputs: Tensor[]) => void;
  /**
   * Per-run kernels by op name, used instead of the registered reference kernels for this run only
   * (e.g. PT2E's observer / fake_quantize nodes, whose stateful modules live outside the graph).
   * Schema inference and output checks still apply.
   */
  kernels?: Readonly<Record<string, Kernel>>;
}

export interface GraphRunResult {
  outputs: Tensor[];
  /** Every value (inputs, constants, node outputs) by name; only with keepAll. */
  values?: Map<string, Tensor>;
}

/**
 * Interprets a graph with the reference kernels, node by node in the graph's (topological) order.
 * Feeds are checked against the graph inputs' dtypes and shapes (a symbolic dim binds to the first
 * size it meets and must get the same size everywhere). A value is dropped after its last reader
 * ran, unless `keepAll`.
 */
export function runGraph(g: Graph, feeds: Record<string, Tensor> | readonly Tensor[], opts: RunOptions = {}): GraphRunResult {
  return execute(g, bindFeeds(g, feeds), opts, new Set(g.outputs));
}

/** Runs an ExportedProgram: `inputs` follow its input signature; returns its outputs in signature order. */
export function runProgram(ep: ExportedProgram, inputs: readonly Tensor[], opts: RunOptions = {}): Tensor[] {
  if (inputs.length !== ep.inputs.length) {
    throw new QforgeError("BAD_INPUT", `the program takes ${ep.inputs.length} inputs (${ep.inputs.map((s) => s.name).join(", ")}), got ${inputs.length}`);
  }
  const feeds: Record<string, Tensor> = {};
  ep.inputs.forEach((s, i) => { feeds[s.value] = inputs[i]!; });
  const keep = new Set(ep.outputs.map((s) => s.value));
  const { values } = execute(ep.graph, bindFeeds(ep.graph, feeds, (v) => ep.inputs.find((s) => s.value === v)?.name ?? v), { ...opts }, keep, true);
  return ep.outputs.map((s) => {
    const t = values!.get(s.value);
    if (t === undefined) throw new QforgeError("UNDEFINED_OUTPUT", `program output '${s.name}' (value '${s.value}') was not computed`, { node: s.value });
    return t;
  });
}

/** Checks feeds against the graph's inputs and returns them by value name. */
function bindFeeds(g: Graph, feeds: Record<string, Tensor> | readonly Tensor[], label: (v: string) => string = (v) => v): Map<string, Tensor> {
  const bound = new Map<string, Tensor>();
  if (Array.isArray(feeds)) {
    const list = feeds as readonly Tensor[];
    if (list.length !== g.inputs.length) {
      throw new QforgeError("BAD_INPUT", `the graph takes ${g.inputs.length} inputs (${g.inputs.join(", ")}), got ${list.length}`);
    }
    g.inputs.forEach((v, i) => bound.set(v, list[i]!));
  } else {
    const rec = feeds as Record<string, Tensor>;
    for (const k of Object.keys(rec)) {
      if (!g.inputs.includes(k)) {
        throw new QforgeError("BAD_INPUT", `'${k}' is not an input of the graph`, { node: k, hint: `inputs: ${g.inputs.join(", ")}` });
      }
    }
    for (const v of g.inputs) {
      const t = rec[v];
      if (t === undefined) throw new QforgeError("BAD_INPUT", `input '${label(v)}' is not fed`, { node: label(v) });
      bound.set(v, t);
    }
  }
  const symbols = new Map<string, { size: number; input: string }>();
  for (const v of g.inputs) checkFeed(label(v), bound.get(v)!, g.values[v], symbols);
  return bound;
}

function checkFeed(name: string, t: Tensor, want: ValueType | undefined, symbols: Map<string, { size: number; input: string }>): void {
  const bad = (msg: string, hint?: string): never => { throw new QforgeError("BAD_INPUT", `input '${name}': ${msg}`, { node: name, hint }); };
  if (t === null || typeof t !== "object" || !Array.isArray(t.shape) || !isDType(t.dtype)) bad("is not a tensor");
  if (t.shape.some((d) => !Number.isInteger(d) || d < 0)) bad(`invalid shape [${t.shape.join(",")}]`);
  if (storageName(t.data) !== dtypeInfo(t.dtype).storage || t.data.length !== storageLength(t.dtype, numel(t.shape))) {
    bad(`storage does not fit ${t.dtype}[${t.shape.join(",")}]`);
  }
  if (want === undefined) return;
  if (t.dtype !== want.dtype) bad(`expected dtype ${want.dtype}, got ${t.dtype}`, "cast the tensor before feeding it");
  const shapeText = `[${want.shape.join(",")}]`;
  if (t.shape.length !== want.shape.length) bad(`expected rank ${want.shape.length} ${shapeText}, got [${t.shape.join(",")}]`);
  want.shape.forEach((d, i) => {
    const got = t.shape[i]!;
    if (typeof d === "number") {
      if (d !== got) bad(`dim ${i} must be ${d} (shape ${shapeText}), got ${got}`);
      return;
    }
    const prev = symbols.get(d);
    if (prev === undefined) symbols.set(d, { size: got, input: name });
    else if (prev.size !== got) bad(`dim ${i} is '${d}' = ${prev.size} (from input '${prev.input}'), got ${got}`, "inputs sharing a symbolic dim must agree on its size");
  });
}

function execute(g: Graph, feeds: Map<string, Tensor>, opts: RunOptions, keep: ReadonlySet<string>, keepKept = false): GraphRunResult {
  const keepAll = opts.keepAll ?? false;
  const values = new Map<string, Tensor>(feeds);
  for (const [name, c] of Object.entries(g.constants)) values.set(name, c.tensor);
  // Index of the last node reading each value, to free it afterwards.
  const lastUse = new Map<string, number>();
  g.nodes.forEach((n, i) => { for (const v of n.inputs) if (v !== "") lastUse.set(v, i); });
  const release = (v: string, i: number): void => {
    if (keepAll || keep.has(v)) return;
    const last = lastUse.get(v);
    if (last === undefined || last <= i) values.delete(v);
  };
  if (!keepAll) for (const v of [...values.keys()]) release(v, -1);

  g.nodes.forEach((node, i) => {
    const inputs = node.inputs.map((v) => {
      if (v === "") return undefined;
      const t = values.get(v);
      if (t === undefined) {
        throw new QforgeError("DANGLING_INPUT", `input '${v}' has no value when '${node.name}' runs`, { node: node.name, hint: "nodes must be in topological order (sortNodes)" });
      }
      return t;
    });
    const override = opts.kernels !== undefined && Object.prototype.hasOwnProperty.call(opts.kernels, node.op) ? opts.kernels[node.op] : undefined;
    const outputs = executeOp(node.op, node.name, inputs, node.attrs, node.outputs.length, override);
    node.outputs.forEach((v, k) => { if (v !== "") values.set(v, outputs[k]!); });
    opts.onNode?.(node, outputs);
    for (const v of node.inputs) if (v !== "") release(v, i);
    for (const v of node.outputs) if (v !== "") release(v, i);
  });

  const outputs = g.outputs.map((v) => {
    const t = values.get(v);
    if (t === undefined) throw new QforgeError("UNDEFINED_OUTPUT", `graph output '${v}' was not computed`, { node: v });
    return t;
  });
  return keepAll || keepKept ? { outputs, values } : { outputs };
}
