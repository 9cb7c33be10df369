/**
 * What a quantization did, as plain data (for examples and tests) and as the text `qforge quantize`
 * prints: which nodes were quantized (by op type), which stayed float and why, calibration time,
 * and for weight-only mode the per-layer weight SQNR and the weight bytes before and after.
 */
import type { Graph, Node } from "@qforge/ir";
import { getAnnotation, type QuantizationAnnotation } from "@qforge/quantizer";
import type { WeightOnlyReport } from "./weight-only.js";
import type { CalibrationMethod, QuantizeMode, QuantizerName } from "./options.js";

/** A node left in float. */
export interface FloatNode {
  readonly node: string;
  /** The op as the user knows it: the ONNX op type for imported models, else the canonical op. */
  readonly op: string;
  readonly reason: string;
}

export interface QuantizeSummary {
  readonly mode: QuantizeMode;
  /** The quantizer (static / dynamic modes). */
  readonly quantizer?: QuantizerName;
  /** The activation observer (static mode). */
  readonly method?: CalibrationMethod;
  /** Weight granularity, e.g. "per-channel int8", "int4 groups of 128". */
  readonly weights: string;
  /** Op type -> how many nodes of it were quantized. */
  readonly quantized: Readonly<Record<string, number>>;
  readonly quantizedNodes: number;
  readonly leftInFloat: readonly FloatNode[];
  /** Calibration samples and seconds (static mode). */
  readonly calibration?: { readonly samples: number; readonly seconds: number };
  /** Weight-only mode: per layer SQNR and bytes. */
  readonly weightOnly?: WeightOnlyReport;
}

/** The op name to show for a node. */
export function displayOp(n: Node): string {
  const onnx = n.meta["onnxOp"];
  return typeof onnx === "string" ? onnx : n.op;
}

function quantizes(a: QuantizationAnnotation): boolean {
  return Object.values(a.inputQSpecMap).some((s) => s !== null) || (a.outputQSpec !== undefined && a.outputQSpec !== null);
}

/** Nodes that only exist for quantization (observers) are not part of the user's model. */
const INSTRUMENTATION = new Set(["observer", "fake_quantize"]);

/**
 * Classifies the nodes of an annotated (prepared) graph: quantized when its annotation quantizes an
 * input or its output; float with the user's reason when excluded, else why the quantizer left it.
 */
export function classifyAnnotatedNodes(
  g: Graph, excluded: ReadonlyMap<string, string>, quantizer: string, mode: QuantizeMode,
): { quantized: Record<string, number>; leftInFloat: FloatNode[] } {
  const quantized: Record<string, number> = {};
  const leftInFloat: FloatNode[] = [];
  const annotatedOps = new Set<string>();
  const nodes = g.nodes.filter((n) => !INSTRUMENTATION.has(n.op));
  for (const n of nodes) {
    const a = getAnnotation(n);
    if (a !== undefined && quantizes(a)) annotatedOps.add(n.op);
  }
  for (const n of nodes) {
    const op = displayOp(n);
    const a = getAnnotation(n);
    const userReason = excluded.get(n.name);
    if (userReason !== undefined) {
      leftInFloat.push({ node: n.name, op, reason: userReason });
    } else if (a !== undefined && quantizes(a)) {
      quantized[op] = (quantized[op] ?? 0) + 1;
    } else if (a !== undefined) {
      leftInFloat.push({ node: n.name, op, reason: `kept in float by the ${quantizer} quantizer` });
    } else if (annotatedOps.has(n.op)) {
      leftInFloat.push({ node: n.name, op, reason: `not in a pattern the ${quantizer} quantizer quantizes` });
    } else {
      leftInFloat.push({ node: n.name, op, reason: `the ${quantizer} quantizer does not quantize '${n.op}' in ${mode} mode` });
    }
  }
  return { quantized, leftInFloat };
}

/** Classifies the nodes of a weight-only program: quantized = its weight was quantized. */
export function classifyWeightOnlyNodes(g: Graph, report: WeightOnlyReport): { quantized: Record<string, number>; leftInFloat: FloatNode[] } {
  const quantized: Record<string, number> = {};
  const leftInFloat: FloatNode[] = [];
  const skipped = new Map(report.skipped.map((s) => [s.node, s.reason]));
  const dq = new Set(g.nodes.filter((n) => n.meta["weightOnly"] !== undefined).map((n) => n.outputs[0]!));
  for (const n of g.nodes) {
    if (n.meta["weightOnly"] !== undefined) continue;
    const op = displayOp(n);
    if (dq.has(n.inputs[1] ?? "")) quantized[op] = (quantized[op] ?? 0) + 1;
    else if (skipped.has(n.name)) leftInFloat.push({ node: n.name, op, reason: skipped.get(n.name)! });
    else leftInFloat.push({ node: n.name, op, reason: "weight-only mode quantizes the weights of conv, gemm, matmul and linear" });
  }
  return { quantized, leftInFloat };
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(2)} MiB`;
}

function formatSqnr(db: number): string {
  return Number.isFinite(db) ? db.toFixed(2) : "inf";
}

/** `Conv x3, Relu x2`, most frequent first. */
function opCounts(counts: Readonly<Record<string, number>>): string {
  return Object.entries(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([op, k]) => `${op} x${k}`).join(", ");
}

export interface SummaryFiles {
  readonly input?: { readonly path: string; readonly bytes: number };
  readonly output?: { readonly path: string; readonly bytes: number };
}

/** The summary as the lines `qforge quantize` prints. At most `maxNames` node names per group. */
export function formatSummary(s: QuantizeSummary, files: SummaryFiles = {}, maxNames = 6): string {
  const lines: string[] = [];
  const how = s.mode === "weight-only" ? `weight-only, ${s.weights}` : `${s.mode}, ${s.quantizer}${s.method !== undefined ? `, ${s.method}` : ""}, ${s.weights} weights`;
  const total = s.quantizedNodes + s.leftInFloat.length;
  lines.push(`quantized ${s.quantizedNodes} of ${total} nodes (${how})${s.quantizedNodes > 0 ? `: ${opCounts(s.quantized)}` : ""}`);
  if (s.quantizedNodes === 0) lines.push("warning: nothing was quantized; the output computes what the input does");
  if (s.leftInFloat.length > 0) {
    lines.push(`left in float: ${s.leftInFloat.length} node(s)`);
    const byReason = new Map<string, FloatNode[]>();
    for (const f of s.leftInFloat) byReason.set(f.reason, [...(byReason.get(f.reason) ?? []), f]);
    for (const [reason, nodes] of byReason) {
      const counts: Record<string, number> = {};
      for (const f of nodes) counts[f.op] = (counts[f.op] ?? 0) + 1;
      const names = nodes.slice(0, maxNames).map((f) => f.node).join(", ") + (nodes.length > maxNames ? `, ... (${nodes.length - maxNames} more)` : "");
      lines.push(`  ${reason}: ${opCounts(counts)} (${names})`);
    }
  }
  if (s.calibration !== undefined) {
    lines.push(`calibration: ${s.calibration.samples} sample(s) in ${s.calibration.seconds.toFixed(1)}s`);
  }
  const wo = s.weightOnly;
  if (wo !== undefined && wo.layers.length > 0) {
    lines.push("weights (SQNR of dequantize(quantize(w)) against w):");
    const rows = wo.layers.map((l) => [
      l.node, `[${l.shape.join("x")}]`, l.groupSize === 0 ? `${l.dtype} per-channel` : `${l.dtype} g${l.groupSize}`,
      `${formatSqnr(l.sqnrDb)} dB`, `${formatBytes(l.bytesBefore)} -> ${formatBytes(l.bytesAfter)}`,
    ]);
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const r of rows) lines.push(`  ${r.map((c, i) => (i === 3 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join("  ").trimEnd()}`);
    const ratio = wo.bytesAfter > 0 ? ` (${(wo.bytesBefore / wo.bytesAfter).toFixed(2)}x smaller)` : "";
    lines.push(`  total weight bytes: ${formatBytes(wo.bytesBefore)} -> ${formatBytes(wo.bytesAfter)}${ratio}`);
  }
  if (files.input !== undefined || files.output !== undefined) {
    const before = files.input !== undefined ? formatBytes(files.input.bytes) : "?";
    const after = files.output !== undefined ? `${formatBytes(files.output.bytes)} (${files.output.path})` : "?";
    lines.push(`file size: ${before} -> ${after}`);
  }
  return lines.join("\n");
}
