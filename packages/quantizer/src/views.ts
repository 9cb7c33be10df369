import { QforgeError, valueUsers, type Graph, type Node, type NodeView, type ValueView } from "@qforge/ir";
import { isMatching, P } from "ts-pattern";

/**
 * Pattern matching for annotators, over the same `ValueView` shapes as @qforge/ir's rewrite engine
 * (a value, its producer node and, lazily, the producer's inputs), so one ts-pattern pattern reads
 * like the op chain it finds:
 *
 *   { kind: "node", op: "relu", inputs: [{ kind: "node", op: "conv" }, ...P.array()] }
 *
 * matches relu(conv(...)). torch finds these with `find_sequential_partitions` and the subgraph
 * matcher; here a pattern is plain data checked by ts-pattern.
 */
export interface GraphViews {
  /** The view of a value (node output, constant, graph input, or "" for an omitted input). */
  view(value: string): ValueView;
  /** The view of a node's first output, or undefined for a node without outputs. */
  nodeView(node: Node): NodeView | undefined;
  /** Nodes reading a value, in node order. */
  users(value: string): readonly Node[];
}

export function graphViews(g: Graph): GraphViews {
  const producers = new Map<string, { node: Node; index: number }>();
  for (const n of g.nodes) n.outputs.forEach((o, index) => { if (o !== "" && !producers.has(o)) producers.set(o, { node: n, index }); });
  const readers = valueUsers(g);
  const outs = new Set(g.outputs);
  const cache = new Map<string, ValueView>();
  // A graph output counts as one more use, as in the rewrite engine: fusing through it would change it.
  const uses = (v: string): number => (readers.get(v)?.length ?? 0) + (outs.has(v) ? 1 : 0);
  const view = (value: string): ValueView => {
    const hit = cache.get(value);
    if (hit !== undefined) return hit;
    let v: ValueView;
    const c = g.constants[value];
    const p = producers.get(value);
    if (value === "") v = { kind: "none", value: "", users: 0 };
    else if (c !== undefined) v = { kind: "constant", value, constKind: c.kind, tensor: c.tensor, users: uses(value) };
    else if (p === undefined) v = { kind: "input", value, users: uses(value) };
    else {
      let inputs: ValueView[] | undefined;
      const node = p.node;
      v = {
        kind: "node", value, outputIndex: p.index, name: node.name, op: node.op, attrs: node.attrs, meta: node.meta, node,
        users: uses(value),
        get inputs(): ValueView[] {
          inputs ??= node.inputs.map(view);
          return inputs;
        },
      };
    }
    cache.set(value, v);
    return v;
  };
  return {
    view,
    nodeView: (node) => {
      const first = node.outputs.find((o) => o !== "");
      return first === undefined ? undefined : (view(first) as NodeView);
    },
    users: (value) => readers.get(value) ?? [],
  };
}

/** Views of the nodes (their first outputs) that match `pattern`, in node order. */
export function matchNodes(g: Graph, pattern: P.Pattern<ValueView>, views: GraphViews = graphViews(g)): NodeView[] {
  const out: NodeView[] = [];
  for (const n of g.nodes) {
    const v = views.nodeView(n);
    // The pattern was type-checked against ValueView by the caller; isMatching only needs the value.
    if (v !== undefined && isMatching(pattern as P.Pattern<unknown>, v as unknown)) out.push(v);
  }
  return out;
}

/** One step of an op chain: an op name or alternatives (e.g. ["relu", "clip"]). */
export type OpChoice = string | readonly string[];

export interface ChainOptions {
  /**
   * Every value inside the chain has exactly one use (the next op), as torch's subgraph matcher
   * requires for conv -> batch_norm. Default false (torch's conv -> relu annotators do not check).
   */
  readonly singleUse?: boolean;
}

/**
 * The ts-pattern pattern of a chain of ops, first op first, each feeding input 0 of the next:
 * `chainPattern(["conv", "batch_norm", ["relu", "clip"]])` matches relu(batch_norm(conv(...))) or the
 * clip form, rooted at the last op.
 */
export function chainPattern(ops: readonly OpChoice[], opts: ChainOptions = {}): P.Pattern<ValueView> {
  if (ops.length === 0) throw new QforgeError("BAD_INPUT", "chainPattern needs at least one op");
  const opPattern = (o: OpChoice): unknown => (typeof o === "string" ? o : P.union(...(o as [string, ...string[]])));
  let pattern: Record<string, unknown> = { kind: "node", op: opPattern(ops[0]!) };
  for (let i = 1; i < ops.length; i++) {
    const inner = opts.singleUse === true ? { ...pattern, users: 1 } : pattern;
    pattern = { kind: "node", op: opPattern(ops[i]!), inputs: [inner, ...P.array()] };
  }
  return pattern as P.Pattern<ValueView>;
}

/**
 * Every occurrence of the op chain, as its nodes first to last (e.g. [conv, batch_norm, relu]), in
 * the order of the chain's last node. Occurrences may overlap; annotators skip claimed nodes.
 */
export function findChains(g: Graph, ops: readonly OpChoice[], opts: ChainOptions = {}, views: GraphViews = graphViews(g)): Node[][] {
  return matchNodes(g, chainPattern(ops, opts), views).map((root) => {
    const nodes: Node[] = [];
    let v: ValueView = root;
    for (let i = 0; i < ops.length; i++) {
      const nv = v as NodeView;
      nodes.unshift(nv.node);
      if (i < ops.length - 1) v = nv.inputs[0]!;
    }
    return nodes;
  });
}
