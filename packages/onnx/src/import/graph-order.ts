import { QforgeError } from "@qforge/ir";
import type { NodeProto } from "../proto/types.js";

/**
 * The nodes in an order where every producer comes before its readers. ONNX requires graphs to be
 * stored topologically sorted; the common case costs one pass, otherwise nodes are ordered by a
 * stable Kahn sort (iterative: deep chains must not exhaust the stack; a heap: wide graphs must not
 * go quadratic). A cycle is BAD_MODEL.
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
  // Kahn's algorithm taking the lowest ready index first (stable: stored order wherever it is valid);
  // a binary heap keeps it O(n log n) even with thousands of nodes ready at once.
  const ready = new MinHeap();
  indegree.forEach((k, i) => { if (k === 0) ready.push(i); });
  const order: number[] = [];
  while (ready.size > 0) {
    const i = ready.pop();
    order.push(i);
    for (const r of readers[i]!) if (--indegree[r]! === 0) ready.push(r);
  }
  if (order.length !== nodes.length) {
    const stuck = indegree.findIndex((k) => k > 0);
    throw new QforgeError("BAD_MODEL", "the graph has a cycle", { node: label(stuck), hint: "ONNX graphs must be acyclic" });
  }
  return order.map((i) => nodes[i]!);
}

/** A binary min-heap of node indices. */
class MinHeap {
  private readonly a: number[] = [];

  get size(): number {
    return this.a.length;
  }

  push(v: number): void {
    const a = this.a;
    a.push(v);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]! <= v) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = v;
  }

  pop(): number {
    const a = this.a;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const c = l + 1 < a.length && a[l + 1]! < a[l]! ? l + 1 : l;
        if (a[c]! >= last) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}
