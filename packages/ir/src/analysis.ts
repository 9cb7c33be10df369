import { Graph as GraphlibGraph, alg } from "@dagrejs/graphlib";
import type { Graph, Node } from "./graph.js";

/**
 * A graphlib index over a Graph's nodes (edges producer -> consumer), built on demand for
 * algorithms. It is never a second source of truth: rebuild it after the graph changes.
 */
export class GraphIndex {
  readonly graph: Graph;
  readonly g: GraphlibGraph;
  private readonly byName = new Map<string, Node>();
  private readonly producer = new Map<string, Node>();

  constructor(graph: Graph) {
    this.graph = graph;
    this.g = new GraphlibGraph({ directed: true, multigraph: false });
    for (const n of graph.nodes) {
      this.byName.set(n.name, n);
      this.g.setNode(n.name, n);
      for (const o of n.outputs) if (o !== "") this.producer.set(o, n);
    }
    for (const n of graph.nodes) {
      for (const v of n.inputs) {
        const p = this.producer.get(v);
        if (p !== undefined) this.g.setEdge(p.name, n.name);
      }
    }
  }

  node(name: string): Node | undefined {
    return this.byName.get(name);
  }

  /** The node producing a value (undefined for graph inputs and constants). */
  producerOf(value: string): Node | undefined {
    return this.producer.get(value);
  }

  /** Nodes that read any output of `node`. */
  users(node: string): Node[] {
    return (this.g.successors(node) ?? []).map((s) => this.byName.get(s)!);
  }

  /** Nodes producing any input of `node`. */
  producers(node: string): Node[] {
    return (this.g.predecessors(node) ?? []).map((s) => this.byName.get(s)!);
  }

  /** Node names in a topological order; throws graphlib's CycleException on cycles (check `cycles()` first). */
  topologicalOrder(): string[] {
    return alg.topsort(this.g);
  }

  /** Strongly connected components that form cycles (self-loops included). */
  cycles(): string[][] {
    return alg.findCycles(this.g);
  }

  isAcyclic(): boolean {
    return alg.isAcyclic(this.g);
  }

  /** All nodes reachable from `from` following data flow (excluding `from` itself). */
  reachableFrom(from: string): Set<string> {
    const seen = new Set<string>();
    const stack = [...(this.g.successors(from) ?? [])];
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (seen.has(n)) continue;
      seen.add(n);
      stack.push(...(this.g.successors(n) ?? []));
    }
    return seen;
  }

  /** True when data flows from node `a` to node `b`. */
  reaches(a: string, b: string): boolean {
    return this.reachableFrom(a).has(b);
  }
}

/** Returns the nodes in topological order, keeping the current order where it is already valid. */
export function sortNodes(graph: Graph): Node[] {
  const idx = new GraphIndex(graph);
  const position = new Map(graph.nodes.map((n, i) => [n.name, i]));
  // Kahn's algorithm with a priority on original position: stable for already-sorted graphs.
  const indeg = new Map<string, number>();
  for (const n of graph.nodes) indeg.set(n.name, idx.producers(n.name).length);
  const ready = graph.nodes.filter((n) => indeg.get(n.name) === 0).map((n) => n.name);
  const out: Node[] = [];
  while (ready.length > 0) {
    ready.sort((a, b) => position.get(a)! - position.get(b)!);
    const name = ready.shift()!;
    out.push(idx.node(name)!);
    for (const u of idx.users(name)) {
      const d = indeg.get(u.name)! - 1;
      indeg.set(u.name, d);
      if (d === 0) ready.push(u.name);
    }
  }
  return out;
}

/**
 * Gives nodes back the names they stand for: a rewrite names its new node afresh (the node it replaces
 * still exists while it is built), so once the old nodes are gone a pass can restore the model's name
 * (node and its single output value) where `want(node)` gives one that is free. Used by fusions
 * (conv + batch norm, ONNX pattern normalization) so dumps, reports and annotations keep the names.
 */
export function restoreNodeNames(g: Graph, want: (n: Node) => string | undefined): Graph {
  const used = new Set<string>([...Object.keys(g.values), ...g.nodes.map((n) => n.name)]);
  const rename = new Map<string, string>();
  for (const n of g.nodes) {
    const name = want(n);
    if (name === undefined || name === n.name || used.has(name) || n.outputs.length !== 1 || n.outputs[0] !== n.name) continue;
    rename.set(n.name, name);
    used.add(name);
  }
  if (rename.size === 0) return g;
  const r = (v: string): string => rename.get(v) ?? v;
  const values: Record<string, Graph["values"][string]> = {};
  for (const [k, t] of Object.entries(g.values)) values[r(k)] = t;
  return {
    ...g,
    outputs: g.outputs.map(r),
    nodes: g.nodes.map((n) => (rename.has(n.name) || n.inputs.some((v) => rename.has(v))
      ? { ...n, name: r(n.name), inputs: n.inputs.map(r), outputs: n.outputs.map(r) }
      : n)),
    values,
  };
}
