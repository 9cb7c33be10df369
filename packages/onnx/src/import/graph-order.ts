import { QforgeError } from "@qforge/ir";
import type { NodeProto } from "../proto/types.js";

/**
 * The nodes in an order where every producer comes before its readers. ONNX requires graphs to be
 * stored topologically sorted; the common case costs one pass, otherwise nodes are ordered by a
 * stable Kahn sort (iterative: deep chains must not exhaust the stack). A cycle is BAD_MODEL.
 */
export function topologicalNodes(nodes: readonly NodeProto[], available: ReadonlySet<string>, label: (i: number) => string): NodeProto[] {
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => {
    for (const o of n.output ?? []) if (o !== "") producer.set(o, i);
  });
  const deps = nodes.map((n, i) => {
    const d = new Set<number>();
    for (const v of n.input ?? []) {
      if (v === "" || available.has(v)) continue;
      const p = producer.get(v);
      if (p !== undefined && p !== i) d.add(p);
      if (p === i) throw new QforgeError("BAD_MODEL", `node reads its own output '${v}'`, { node: label(i) });
    }
    return d;
  });
  if (deps.every((d, i) => [...d].every((p) => p < i))) return [...nodes];

  const indegree = deps.map((d) => d.size);
  const readers = nodes.map(() => [] as number[]);
  deps.forEach((d, i) => d.forEach((p) => readers[p]!.push(i)));
  // A min-heap would give the exact stable order; a sorted ready list is plenty for graph sizes here.
  const ready = indegree.flatMap((k, i) => (k === 0 ? [i] : []));
  const order: number[] = [];
  while (ready.length > 0) {
    ready.sort((a, b) => a - b);
    const i = ready.shift()!;
    order.push(i);
    for (const r of readers[i]!) if (--indegree[r]! === 0) ready.push(r);
  }
  if (order.length !== nodes.length) {
    const stuck = indegree.findIndex((k) => k > 0);
    throw new QforgeError("BAD_MODEL", "the graph has a cycle", { node: label(stuck), hint: "ONNX graphs must be acyclic" });
  }
  return order.map((i) => nodes[i]!);
}
