import { produce } from "immer";
import type { ExportedProgram, Graph } from "@qforge/ir";

/**
 * torchao's `generate_numeric_debug_handle(ep)` (pt2e/_numeric_debugger.py): every node gets an
 * integer `meta.debugHandle`, unique in the graph. Handles a node already has are kept (so calling it
 * again, or on a program whose passes kept the handles, changes nothing); new handles continue after
 * the largest existing one, in node order. Returns a new program; `ep` is untouched.
 *
 * The passes of this package keep the handle on the nodes that replace a node (a folded conv keeps
 * the conv's; an output observer and the quantize/dequantize pair it becomes carry the handle of the
 * node whose output they quantize), which is what the numeric debugger matches on.
 */
export function generateNumericDebugHandle(ep: ExportedProgram): ExportedProgram {
  const graph = assignDebugHandles(ep.graph);
  return graph === ep.graph ? ep : { ...ep, graph };
}

/** The graph-level step of generateNumericDebugHandle (returns `g` itself when every node has a handle). */
export function assignDebugHandles(g: Graph): Graph {
  let max = 0;
  let missing = false;
  for (const n of g.nodes) {
    const h = n.meta.debugHandle;
    if (typeof h === "number" && Number.isInteger(h)) max = Math.max(max, h);
    else missing = true;
  }
  if (!missing) return g;
  let next = max + 1;
  return produce(g, (d) => {
    for (const n of d.nodes) {
      const h = n.meta.debugHandle;
      if (typeof h === "number" && Number.isInteger(h)) continue;
      (n.meta as { debugHandle?: number }).debugHandle = next++;
    }
  });
}

/** Node name -> debug handle, for the nodes that have one. */
export function debugHandles(g: Graph): Map<string, number> {
  const out = new Map<string, number>();
  for (const n of g.nodes) if (typeof n.meta.debugHandle === "number") out.set(n.name, n.meta.debugHandle);
  return out;
}
