import type { Graph } from "@qforge/ir";
import type { QuantizationConfig } from "./config.js";
import { annotateGraph, type Quantizer } from "./quantizer.js";
import type { QuantizationSpec } from "./spec.js";
import { validateAnnotations } from "./validate.js";

/**
 * torch's `get_embedding_operators_config` (embedding_quantizer.py): weight-only, uint8 with float
 * qparams per row (per_channel_affine_float_qparams, axis 0), PerChannelMinMaxObserver with eps 2^-12;
 * activations and bias stay float.
 */
export function getEmbeddingQuantizationConfig(): QuantizationConfig {
  const weight: QuantizationSpec = {
    kind: "spec",
    dtype: "uint8",
    qscheme: "per_channel_affine_float_qparams",
    chAxis: 0,
    observerOrFakeQuant: {
      kind: "PerChannelMinMaxObserver",
      options: { dtype: "uint8", qscheme: "per_channel_affine_float_qparams", chAxis: 0, eps: 2 ** -12 },
    },
  };
  return { inputActivation: null, outputActivation: null, weight, bias: null, isQat: false };
}

/**
 * torch's EmbeddingQuantizer: annotates the table of every embedding lookup — canonical
 * `gather(table, ids) {axis: 0}` whose table is a constant float32 matrix (a parameter) — with the
 * embedding weight spec. Nodes already claimed (e.g. by an earlier quantizer of a
 * ComposableQuantizer) are skipped.
 */
export class EmbeddingQuantizer implements Quantizer {
  transformForAnnotation(g: Graph): Graph {
    return g;
  }

  annotate(g: Graph): Graph {
    const weight = getEmbeddingQuantizationConfig().weight!;
    return annotateGraph(g, (ctx) => {
      for (const node of g.nodes) {
        if (node.op !== "gather" || (node.attrs["axis"] ?? 0) !== 0) continue;
        const table = node.inputs[0];
        const c = table === undefined ? undefined : g.constants[table];
        if (c === undefined || c.tensor.dtype !== "float32" || c.tensor.shape.length !== 2) continue;
        if (ctx.isAnnotated(node.name)) continue;
        ctx.annotate(node.name, { inputQSpecMap: { [table!]: weight } });
      }
    });
  }

  validate(g: Graph): void {
    validateAnnotations(g);
  }
}
