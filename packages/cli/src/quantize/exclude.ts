/**
 * `--exclude-nodes` / `--exclude-op-types`: nodes the user keeps in float (ONNX Runtime's
 * `quantize_static(nodes_to_exclude=..., op_types_to_quantize=...)`). Names are the node names of
 * the graph or, for an imported model, the ONNX node names; op types are ONNX names (`Conv`,
 * `MatMul`) or qforge's canonical names (`conv`, `matmul`). In the PT2E flow an excluded node is
 * claimed as float before the quantizer annotates (torch X86's `_annotate_nodes_not_quantize`), so no
 * pattern that contains it is quantized.
 */
import { hasOp, QforgeError, type Graph, type Node } from "@qforge/ir";
import { OP_TABLE } from "@qforge/onnx";
import { annotateGraph, type Quantizer } from "@qforge/quantizer";

export interface Exclusions {
  readonly nodes?: readonly string[];
  readonly opTypes?: readonly string[];
}

const ONNX_TO_QFORGE: ReadonlyMap<string, string> = new Map(OP_TABLE.map((r) => [r.onnx, r.qforge]));

function onnxOp(n: Node): string | undefined {
  const op = n.meta["onnxOp"];
  return typeof op === "string" ? op : undefined;
}

/** How an op type given by the user matches nodes. */
function opTypeMatcher(t: string): (n: Node) => boolean {
  const canonical = ONNX_TO_QFORGE.get(t);
  if (canonical !== undefined) {
    // Imported nodes match on the ONNX op they came from (Sum and Add both import as add);
    // nodes of other origins on the canonical op.
    return (n) => {
      const from = onnxOp(n);
      return from !== undefined ? from === t : n.op === canonical;
    };
  }
  if (hasOp(t)) return (n) => n.op === t;
  throw new QforgeError("BAD_CONFIG", `--exclude-op-types: unknown op type '${t}'`, {
    hint: "use ONNX op types (Conv, MatMul, Gemm, ...) or qforge's canonical names (conv, matmul, linear, ...)",
  });
}

/**
 * The excluded nodes of `g`, each with the reason the summary prints. A name that matches no node is
 * BAD_CONFIG (a typo would otherwise silently quantize the node).
 */
export function resolveExclusions(g: Graph, ex: Exclusions): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of ex.nodes ?? []) {
    const hits = g.nodes.filter((n) => n.name === name || n.meta["onnxName"] === name);
    if (hits.length === 0) {
      const some = g.nodes.slice(0, 5).map((n) => n.name).join(", ");
      throw new QforgeError("BAD_CONFIG", `--exclude-nodes: the model has no node named '${name}'`, { hint: `node names look like: ${some}` });
    }
    for (const n of hits) if (!out.has(n.name)) out.set(n.name, "excluded by --exclude-nodes");
  }
  for (const t of ex.opTypes ?? []) {
    const match = opTypeMatcher(t);
    for (const n of g.nodes) if (match(n) && !out.has(n.name)) out.set(n.name, `excluded by --exclude-op-types ${t}`);
  }
  return out;
}

/** `inner`, except that the named nodes are claimed as float before it annotates. */
export function excludingQuantizer(inner: Quantizer, excluded: ReadonlySet<string>): Quantizer {
  if (excluded.size === 0) return inner;
  return {
    transformForAnnotation: (g) => inner.transformForAnnotation(g),
    annotate: (g) => inner.annotate(annotateGraph(g, (ctx) => {
      for (const n of g.nodes) if (excluded.has(n.name) && !ctx.isAnnotated(n.name)) ctx.claimFloat(n.name);
    })),
    validate: (g) => inner.validate(g),
  };
}
