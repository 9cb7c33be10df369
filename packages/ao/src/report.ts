/**
 * Accuracy and size of a quantization: per quantized layer, the SQNR of the dequantized weight
 * against the float weight and the bytes before and after; for the whole model, the bytes of every
 * parameter and buffer before and after.
 */
import { Module } from "@qforge/export";
import { dtypeInfo, QforgeError, toFloat64, type ExportedProgram, type Graph, type Node, type Tensor } from "@qforge/ir";
import { QuantizedEmbedding, QuantizedLinear } from "./modules.js";
import { dequantizeWeight, describeWeight, layoutFromAttrs, weightNbytes, type QuantizedWeight } from "./tensor.js";
import { MappingType, type ZeroPointDomain } from "@qforge/quant";

export interface WeightReportRow {
  /** Layer name (fqn), e.g. "blocks.0.attn.q". */
  readonly name: string;
  readonly shape: readonly [number, number];
  /** describeWeight of the quantized weight. */
  readonly quantization: string;
  /** 10 log10(sum w^2 / sum (w - dequantize(q))^2) in dB; Infinity when exact. */
  readonly sqnrDb: number;
  readonly bytesBefore: number;
  readonly bytesAfter: number;
}

export interface WeightReport {
  readonly layers: readonly WeightReportRow[];
  /** Every parameter, buffer and constant of the model before / after. */
  readonly totalBytesBefore: number;
  readonly totalBytesAfter: number;
}

type Model = Module | ExportedProgram;

/** SQNR in dB of `approx` against `ref` (same element count). */
export function sqnr(ref: Tensor, approx: Tensor): number {
  const a = ref.data as Float32Array;
  const b = approx.data as Float32Array;
  if (a.length !== b.length) throw new QforgeError("BAD_SHAPE", `sqnr: ${a.length} vs ${b.length} elements`);
  let s = 0;
  let e = 0;
  for (let i = 0; i < a.length; i++) {
    s += a[i]! * a[i]!;
    const d = a[i]! - b[i]!;
    e += d * d;
  }
  return e === 0 ? Infinity : 10 * Math.log10(s / e);
}

/** Float tensors of a model by name (Module state_dict, or program constants). */
function floatState(m: Model): Map<string, Tensor> {
  if (m instanceof Module) return new Map(m.namedStates().map(([k, s]) => [k, s.data]));
  return new Map(Object.entries(m.graph.constants).map(([k, c]) => [k, c.tensor]));
}

function totalBytes(m: Model): number {
  let n = 0;
  for (const t of floatState(m).values()) n += t.data.byteLength;
  return n;
}

/** The quantized weights of a model by layer name. */
export function quantizedWeights(m: Model): Map<string, QuantizedWeight> {
  const out = new Map<string, QuantizedWeight>();
  if (m instanceof Module) {
    for (const [fqn, mod] of m.namedModules()) {
      if (mod instanceof QuantizedLinear || mod instanceof QuantizedEmbedding) out.set(fqn, mod.weight);
    }
    return out;
  }
  for (const node of m.graph.nodes) {
    const w = weightOfNode(m.graph, node);
    if (w === undefined) continue;
    const qname = node.inputs[1]!;
    const base = qname.replace(/\.(qdata|codes)(_\d+)?$/, "");
    out.set(base.endsWith(".weight") ? base.slice(0, -".weight".length) : base, w);
  }
  return out;
}

/** The QuantizedWeight a quantized node reads, rebuilt from its constants and attributes. */
export function weightOfNode(g: Graph, node: Node): QuantizedWeight | undefined {
  const c = (i: number): Tensor | undefined => {
    const v = node.inputs[i];
    return v === undefined || v === "" ? undefined : g.constants[v]?.tensor;
  };
  const a = node.attrs;
  const shape = a["weight_shape"] as readonly number[];
  const block = a["block_size"] as readonly number[];
  if (node.op === "affine_quantized_linear" || node.op === "affine_quantized_embedding") {
    const qdata = c(1);
    const scale = c(2);
    if (qdata === undefined || scale === undefined) return undefined;
    const dtype = a["weight_dtype"] as Tensor["dtype"];
    const zp = c(3) ?? null;
    const domain = (a["zero_point_domain"] as ZeroPointDomain | undefined) ?? "INT";
    const info = dtypeInfo(dtype);
    // The mapping type is not an op attribute: a FLOAT zero point, or a nonzero INT one, means asymmetric.
    const asymmetric = domain === "FLOAT" || (zp !== null && Array.from(toFloat64(zp)).some((z) => z !== 0));
    return {
      kind: "affine", shape: [shape[0]!, shape[1]!], qdata, scale, zeroPoint: zp, blockSize: [block[0]!, block[1]!], targetDtype: dtype,
      quantMin: (a["quant_min"] as number | undefined) ?? info.min, quantMax: (a["quant_max"] as number | undefined) ?? info.max,
      mappingType: asymmetric ? MappingType.ASYMMETRIC : MappingType.SYMMETRIC,
      zeroPointDomain: domain, layout: layoutFromAttrs(a),
    };
  }
  if (node.op === "codebook_quantized_linear") {
    const codes = c(1);
    const codebook = c(2);
    if (codes === undefined || codebook === undefined) return undefined;
    return {
      kind: "codebook", shape: [shape[0]!, shape[1]!], codes, codebook, blockSize: [block[0]!, block[1]!],
      codeDtype: a["code_dtype"] as Tensor["dtype"], layout: layoutFromAttrs(a),
    };
  }
  return undefined;
}

/**
 * Compares a float model with its quantized version (Modules or ExportedPrograms, in any
 * combination): one row per quantized layer whose float weight `before` has (`<name>.weight`).
 */
export function weightReport(before: Model, after: Model): WeightReport {
  const floats = floatState(before);
  const layers: WeightReportRow[] = [];
  for (const [name, q] of quantizedWeights(after)) {
    const w = floats.get(name === "" ? "weight" : `${name}.weight`);
    if (w === undefined || w.dtype !== "float32") continue;
    layers.push({
      name,
      shape: q.shape,
      quantization: describeWeight(q),
      sqnrDb: sqnr(w, dequantizeWeight(q)),
      bytesBefore: w.data.byteLength,
      bytesAfter: weightNbytes(q),
    });
  }
  return { layers, totalBytesBefore: totalBytes(before), totalBytesAfter: totalBytes(after) };
}

function fmtBytes(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(2)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`;
}

/** The report as a Markdown table plus a totals line. */
export function formatWeightReport(r: WeightReport): string {
  const lines = [
    "| layer | shape | quantization | SQNR (dB) | bytes before | bytes after |",
    "|---|---|---|---:|---:|---:|",
    ...r.layers.map((l) => `| ${l.name} | ${l.shape.join("x")} | ${l.quantization} | ${Number.isFinite(l.sqnrDb) ? l.sqnrDb.toFixed(1) : "inf"} | ${fmtBytes(l.bytesBefore)} | ${fmtBytes(l.bytesAfter)} |`),
  ];
  const ratio = r.totalBytesAfter === 0 ? 0 : r.totalBytesBefore / r.totalBytesAfter;
  lines.push("", `total: ${fmtBytes(r.totalBytesBefore)} -> ${fmtBytes(r.totalBytesAfter)} (${ratio.toFixed(2)}x smaller)`);
  return lines.join("\n");
}
