/**
 * A user-written Quantizer plugin: int4 weight-only quantization of linear layers (and of matmuls by a
 * constant matrix), everything else left in float — the kind of recipe torchao's
 * `Int4WeightOnlyConfig` applies, written against @qforge/quantizer's plugin API.
 *
 *   transformForAnnotation  rewrites matmul(x, B) with a constant 2-D B into linear(x, B^T), so one
 *                           annotator covers both (and groups run along the reduction dim K)
 *   annotate                puts an int4 spec on each linear weight; activations, bias and outputs stay float
 *   validate                checks the annotations (validateAnnotations) and that every group divides K
 */
import { produce } from "immer";
import { fromArray, QforgeError, toFloat64, type Graph, type Tensor } from "@qforge/ir";
import {
  annotateGraph, findChains, validateAnnotations, getAnnotation, type Quantizer, type QuantizationSpec,
} from "@qforge/quantizer";

export interface Int4WeightOnlyOptions {
  /**
   * Elements of a row of W [N, K] that share one scale (torchao's group_size), e.g. 32. Omitted: one
   * scale per output row (per-channel).
   */
  groupSize?: number;
}

/** int4 symmetric: [-8, 7], zero point 0. */
const INT4_MIN = -8;
const INT4_MAX = 7;

/** The weight spec: per-group through torchao's affine observer, per-channel through PyTorch's classic one. */
export function int4WeightSpec(opts: Int4WeightOnlyOptions = {}): QuantizationSpec {
  const { groupSize } = opts;
  if (groupSize === undefined) {
    return {
      kind: "spec", dtype: "int4", quantMin: INT4_MIN, quantMax: INT4_MAX, qscheme: "per_channel_symmetric", chAxis: 0,
      // PyTorch's observers know 8-bit storage only: int4 is a custom [-8, 7] range of qint8.
      observerOrFakeQuant: {
        kind: "PerChannelMinMaxObserver",
        options: { dtype: "int8", qscheme: "per_channel_symmetric", quantMin: INT4_MIN, quantMax: INT4_MAX, chAxis: 0 },
      },
    };
  }
  if (!Number.isInteger(groupSize) || groupSize <= 0) throw new QforgeError("BAD_CONFIG", `groupSize must be a positive integer, got ${groupSize}`);
  return {
    kind: "spec", dtype: "int4", quantMin: INT4_MIN, quantMax: INT4_MAX, qscheme: "per_channel_symmetric", chAxis: 0, blockSize: [1, groupSize],
    observerOrFakeQuant: {
      kind: "AffineQuantizedMinMaxObserver",
      options: {
        mappingType: "symmetric", targetDtype: "int4", granularity: { kind: "per_group", groupSize }, quantMin: INT4_MIN, quantMax: INT4_MAX,
      },
    },
  };
}

function transpose2d(t: Tensor): Tensor {
  const [k, n] = t.shape as [number, number];
  const src = toFloat64(t);
  const out = new Float64Array(k * n);
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) out[j * k + i] = src[i * n + j]!;
  return fromArray("float32", [n, k], out);
}

export class Int4WeightOnlyQuantizer implements Quantizer {
  readonly spec: QuantizationSpec;

  constructor(readonly opts: Int4WeightOnlyOptions = {}) {
    this.spec = int4WeightSpec(opts);
  }

  /**
   * matmul(x, B) with B a constant float32 [K, N] becomes linear(x, B^T): the node keeps its name,
   * output and meta (so the program's signature is unchanged), the transposed matrix is a new
   * parameter `<B>.t`. Other matmuls are left alone.
   */
  transformForAnnotation(g: Graph): Graph {
    return produce(g, (d) => {
      for (const node of d.nodes) {
        const b = node.inputs[1];
        const c = b === undefined ? undefined : g.constants[b];
        if (node.op !== "matmul" || c === undefined || c.tensor.dtype !== "float32" || c.tensor.shape.length !== 2) continue;
        let name = `${b}.t`;
        for (let i = 1; d.values[name] !== undefined; i++) name = `${b}.t_${i}`;
        const t = transpose2d(c.tensor);
        d.constants[name] = { kind: "parameter", tensor: t } as never;
        d.values[name] = { dtype: "float32", shape: [...t.shape] };
        node.op = "linear";
        node.inputs = [node.inputs[0]!, name];
        node.meta = { ...node.meta, rewrittenFrom: "matmul" };
        if (!d.nodes.some((n) => n.inputs.includes(b!)) && !d.outputs.includes(b!)) {
          delete d.constants[b!];
          delete d.values[b!];
        }
      }
    });
  }

  /** Claims every linear whose weight is a constant: int4 weight, float everything else. */
  annotate(g: Graph): Graph {
    return annotateGraph(g, (ctx) => {
      for (const [linear] of findChains(g, ["linear"], {}, ctx.views)) {
        const w = linear!.inputs[1]!;
        if (ctx.isAnnotated(linear!.name) || g.constants[w] === undefined) continue;
        ctx.annotate(linear!.name, { inputQSpecMap: { [w]: this.spec } });
      }
    });
  }

  /** validateAnnotations, plus: K must be a multiple of the group size. */
  validate(g: Graph): void {
    validateAnnotations(g);
    const groupSize = this.opts.groupSize;
    if (groupSize === undefined) return;
    for (const node of g.nodes) {
      const w = node.inputs[1];
      if (node.op !== "linear" || w === undefined || (getAnnotation(node)?.inputQSpecMap[w] ?? null) === null) continue;
      const k = g.values[w]?.shape[1];
      if (typeof k !== "number" || k % groupSize !== 0) {
        throw new QforgeError("BAD_CONFIG", `weight '${w}' has ${String(k)} input features, not a multiple of the group size ${groupSize}`, {
          node: node.name,
          hint: "pick a group size that divides the layer's in_features",
        });
      }
    }
  }
}
