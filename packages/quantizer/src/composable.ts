import { QforgeError, type Graph } from "@qforge/ir";
import { getAnnotation } from "./annotation.js";
import type { Quantizer } from "./quantizer.js";
import type { QuantizationAnnotation } from "./spec.js";

function quantizerName(q: Quantizer): string {
  return (q as object).constructor?.name ?? "quantizer";
}

/** Same annotation: the same object (immer keeps untouched nodes' meta) or equal JSON data. */
function sameAnnotation(a: QuantizationAnnotation, b: QuantizationAnnotation): boolean {
  if (a === b) return true;
  const canon = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(canon)
      : typeof v === "object" && v !== null ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon((v as Record<string, unknown>)[k])]))
        : v;
  return JSON.stringify(canon(a)) === JSON.stringify(canon(b));
}

/**
 * torch's ComposableQuantizer: runs the quantizers in order (transforms, then annotations), so the
 * first quantizer to annotate a node wins and later ones must skip annotated nodes. After each
 * quantizer it checks that no earlier annotation was changed or removed
 * (`_record_and_validate_annotations`), naming the node and the offending quantizer.
 */
export class ComposableQuantizer implements Quantizer {
  readonly quantizers: readonly Quantizer[];

  constructor(quantizers: readonly Quantizer[]) {
    if (!Array.isArray(quantizers)) throw new QforgeError("BAD_CONFIG", "ComposableQuantizer takes a list of quantizers");
    this.quantizers = [...quantizers];
  }

  transformForAnnotation(g: Graph): Graph {
    return this.quantizers.reduce((acc, q) => q.transformForAnnotation(acc), g);
  }

  annotate(g: Graph): Graph {
    const recorded = new Map<string, QuantizationAnnotation>();
    const record = (graph: Graph, by: Quantizer): void => {
      const present = new Set<string>();
      for (const n of graph.nodes) {
        const a = getAnnotation(n);
        if (a === undefined) continue;
        present.add(n.name);
        const before = recorded.get(n.name);
        if (before !== undefined && !sameAnnotation(before, a)) {
          throw new QforgeError("BAD_CONFIG", `quantizer ${quantizerName(by)} has changed the annotation of node '${n.name}'`, {
            node: n.name,
            hint: "in a ComposableQuantizer the first annotation of a node wins; later quantizers must skip annotated nodes",
          });
        }
        if (before === undefined) recorded.set(n.name, a);
      }
      for (const name of recorded.keys()) {
        if (!present.has(name)) {
          throw new QforgeError("BAD_CONFIG", `quantizer ${quantizerName(by)} has removed the annotation of node '${name}'`, { node: name });
        }
      }
    };
    // Annotations the graph came with count as earlier ones too.
    for (const n of g.nodes) {
      const a = getAnnotation(n);
      if (a !== undefined) recorded.set(n.name, a);
    }
    let out = g;
    for (const q of this.quantizers) {
      out = q.annotate(out);
      record(out, q);
    }
    return out;
  }

  validate(g: Graph): void {
    for (const q of this.quantizers) q.validate(g);
  }
}
