import { QforgeError, type Graph, type Node } from "@qforge/ir";
import { getAnnotation } from "./annotation.js";
import type { EdgeOrNode, QuantizationSpecBase } from "./spec.js";
import { validateSpec } from "./validate-spec.js";

/** "edge %x -> conv" / "output of node 'relu'", for messages. */
export function describeTarget(t: EdgeOrNode): string {
  return t.kind === "edge" ? `edge %${t.value} -> ${t.node}` : `output of node '${t.node}'`;
}

/**
 * The spec a target is annotated with: the consumer's inputQSpecMap entry for an edge, the producer's
 * outputQSpec for a node. Undefined when the node does not exist, does not read the value, or has no
 * (or a null) spec there.
 */
function specAt(byName: ReadonlyMap<string, Node>, t: EdgeOrNode): QuantizationSpecBase | undefined {
  const n = byName.get(t.node);
  if (n === undefined) return undefined;
  const a = getAnnotation(n);
  if (t.kind === "edge") {
    if (!n.inputs.includes(t.value)) return undefined;
    return a?.inputQSpecMap[t.value] ?? undefined;
  }
  return a?.outputQSpec ?? undefined;
}

function why(byName: ReadonlyMap<string, Node>, t: EdgeOrNode): string {
  const n = byName.get(t.node);
  if (n === undefined) return `there is no node '${t.node}'`;
  if (t.kind === "edge" && !n.inputs.includes(t.value)) return `node '${t.node}' does not read %${t.value}`;
  return `${describeTarget(t)} is not annotated with a quantization spec`;
}

/**
 * Checks every annotation of the graph (what `Quantizer.validate` runs, and what preparePt2e can run
 * before inserting observers). Errors are BAD_CONFIG and name the node whose annotation is wrong:
 * - inputQSpecMap keys that are not inputs of the node, malformed specs (see validateSpec);
 * - a SharedQuantizationSpec whose edge or node has no spec (missing node, unannotated edge/output),
 *   or a ring of shared specs that never reaches a concrete spec;
 * - a DerivedQuantizationSpec whose sources are not all annotated, or whose function is not registered.
 */
export function validateAnnotations(g: Graph): void {
  const byName = new Map(g.nodes.map((n) => [n.name, n] as const));
  for (const node of g.nodes) {
    const a = getAnnotation(node);
    if (a === undefined) continue;
    const entries: [string, QuantizationSpecBase][] = [];
    for (const [value, spec] of Object.entries(a.inputQSpecMap)) {
      if (value === "" || !node.inputs.includes(value)) {
        throw new QforgeError("BAD_CONFIG", `inputQSpecMap names '${value}', which is not an input of node '${node.name}'`, { node: node.name });
      }
      if (spec !== null) entries.push([`input '${value}'`, spec]);
    }
    if (a.outputQSpec !== undefined && a.outputQSpec !== null) entries.push(["output", a.outputQSpec]);
    for (const [where, spec] of entries) {
      validateSpec(spec, node.name, where);
      if (spec.kind === "shared") resolveShared(byName, node.name, where, spec.edgeOrNode);
      if (spec.kind === "derived") {
        spec.derivedFrom.forEach((src, i) => {
          if (specAt(byName, src) === undefined) {
            throw new QforgeError("BAD_CONFIG", `${where} of node '${node.name}' is derived from ${describeTarget(src)}, but ${why(byName, src)}`, {
              node: node.name,
              hint: `annotate every source of derivedFrom (source #${i}) with a spec before deriving from it`,
            });
          }
        });
      }
    }
  }
}

/** Follows shared specs from `start` until a concrete spec; errors on a missing target or a ring. */
function resolveShared(byName: ReadonlyMap<string, Node>, node: string, where: string, start: EdgeOrNode): void {
  const seen = new Set<string>();
  let t = start;
  for (;;) {
    const key = JSON.stringify(t);
    if (seen.has(key)) {
      throw new QforgeError("BAD_CONFIG", `${where} of node '${node}' shares qparams around a ring of shared specs through ${describeTarget(t)}`, {
        node,
        hint: "one target of a group of shared specs must have a concrete QuantizationSpec",
      });
    }
    seen.add(key);
    const spec = specAt(byName, t);
    if (spec === undefined) {
      throw new QforgeError("BAD_CONFIG", `${where} of node '${node}' shares qparams with ${describeTarget(t)}, but ${why(byName, t)}`, {
        node,
        hint: "a SharedQuantizationSpec must point at an edge or node output that is annotated with a spec",
      });
    }
    if (spec.kind !== "shared") return;
    t = spec.edgeOrNode;
  }
}
