/**
 * `lowerQdq`: the pass that turns a converted (QDQ) program into integer ops — the step between
 * convert_pt2e and a backend, as FX's `_lower_to_native_backend` does for PyTorch's quantized
 * kernels. The rewrites are the rows of rules.ts applied to a fixed point by the IR's rewrite
 * engine; what stays in float next to quantize/dequantize nodes is reported, with the reason, in the
 * report and on the node (`meta.notLowered`), never changed silently.
 */
import type { Draft } from "immer";
import {
  applyRewrites, definePass, QforgeError, runPass, valueUsers, verifyGraph, type ExportedProgram, type Graph, type Node, type Pass,
} from "@qforge/ir";
import { DEQUANTIZE, DEQUANTIZE_PER_CHANNEL, QDQ_OPS, QUANTIZE, QUANTIZE_PER_CHANNEL } from "./match.js";
import { LOWERABLE_OPS, loweringRules, type LoweringContext, type LoweringEngine } from "./rules.js";

export interface LowerQdqOptions {
  /** The PyTorch quantized engine whose integer semantics the lowered ops reproduce (default "qnnpack"). */
  readonly engine?: LoweringEngine;
}

/** A float node left between quantize/dequantize nodes, and why. */
export interface NotLowered {
  readonly node: string;
  readonly op: string;
  readonly reason: string;
}

export interface LoweringReport {
  readonly engine: LoweringEngine;
  /** Row name -> how many patterns it lowered. */
  readonly lowered: Readonly<Record<string, number>>;
  readonly notLowered: readonly NotLowered[];
}

const DEQUANTIZE_OPS = new Set([DEQUANTIZE, DEQUANTIZE_PER_CHANNEL]);
const QUANTIZE_OPS = new Set([QUANTIZE, QUANTIZE_PER_CHANNEL]);

function engineOf(opts: LowerQdqOptions): LoweringEngine {
  const e = opts.engine ?? "qnnpack";
  if (e !== "qnnpack" && e !== "onednn") {
    throw new QforgeError("BAD_CONFIG", `lowerQdq: engine must be "qnnpack" or "onednn", got ${JSON.stringify(e)}`);
  }
  return e;
}

/**
 * Float nodes still reading a dequantize or feeding a quantize after lowering, each with the reason
 * a row gave when it skipped it, or a diagnosis of why no row matched.
 */
function findNotLowered(g: Graph, skipped: ReadonlyMap<string, string>): NotLowered[] {
  const producer = new Map<string, Node>();
  for (const n of g.nodes) for (const o of n.outputs) if (o !== "") producer.set(o, n);
  const users = valueUsers(g);
  const out: NotLowered[] = [];
  for (const n of g.nodes) {
    if (QDQ_OPS.has(n.op)) continue;
    const dqInputs = n.inputs.filter((v) => v !== "" && DEQUANTIZE_OPS.has(producer.get(v)?.op ?? ""));
    const readers = users.get(n.outputs[0] ?? "") ?? [];
    const feedsQuantize = readers.some((r) => QUANTIZE_OPS.has(r.op));
    if (dqInputs.length === 0 && !feedsQuantize) continue;
    out.push({ node: n.name, op: n.op, reason: skipped.get(n.name) ?? diagnose(n, g, producer, readers) });
  }
  return out;
}

/** Why no row matched a node that sits next to QDQ nodes. */
function diagnose(n: Node, g: Graph, producer: ReadonlyMap<string, Node>, readers: readonly Node[]): string {
  const needDq = LOWERABLE_OPS.get(n.op);
  if (needDq === undefined) return `no integer op for '${n.op}': it runs in float between dequantize and quantize`;
  const notDq = n.inputs.slice(0, needDq).filter((v) => v !== "" && !DEQUANTIZE_OPS.has(producer.get(v)?.op ?? ""));
  if (notDq.length > 0) return `input '${notDq[0]}' is not dequantized`;
  const out = n.outputs[0] ?? "";
  if (g.outputs.includes(out) || readers.length !== 1) return `its output has ${readers.length + (g.outputs.includes(out) ? 1 : 0)} readers; a lowered pattern's float value must only feed its quantize`;
  if (!QUANTIZE_OPS.has(readers[0]!.op) && readers[0]!.op !== "relu" && readers[0]!.op !== "clip") {
    return `its output feeds '${readers[0]!.op}' (${readers[0]!.name}), not a quantize_per_tensor`;
  }
  return "the surrounding quantize/dequantize nodes do not form a pattern of the lowering table (see the lowering rows)";
}

/** The lowering as a pass over a graph (for PassManager pipelines); `report` receives the report. */
export function lowerQdqPass(opts: LowerQdqOptions = {}, report?: (r: LoweringReport) => void): Pass {
  const engine = engineOf(opts);
  return definePass("lower-qdq", (g: Draft<Graph>) => {
    const ctx: LoweringContext = { engine, skipped: new Map() };
    const stats = applyRewrites(g, loweringRules(ctx));
    const notLowered = findNotLowered(g as Graph, ctx.skipped);
    const reasons = new Map(notLowered.map((r) => [r.node, r.reason]));
    // The reason goes on the node, where dumps show it; a stale one from an earlier run goes away.
    for (const n of g.nodes) {
      const reason = reasons.get(n.name);
      const meta = (n as Draft<Node> & { meta: Record<string, unknown> }).meta;
      if (reason !== undefined && meta["notLowered"] !== reason) meta["notLowered"] = reason;
      if (reason === undefined && "notLowered" in meta) delete meta["notLowered"];
    }
    report?.({ engine, lowered: stats.fired, notLowered });
  });
}

/**
 * Lowers QDQ patterns of a converted program to integer ops and returns the program with the report.
 * The program's output signature follows values the lowering renamed.
 */
export function lowerQdqWithReport(ep: ExportedProgram, opts: LowerQdqOptions = {}): { program: ExportedProgram; report: LoweringReport } {
  let report: LoweringReport | undefined;
  const { graph } = runPass(lowerQdqPass(opts, (r) => { report = r; }), ep.graph);
  verifyGraph(graph);
  const renamed = new Map<string, string>();
  ep.graph.outputs.forEach((v, i) => {
    const now = graph.outputs[i];
    if (now !== undefined && now !== v) renamed.set(v, now);
  });
  const program: ExportedProgram = {
    ...ep,
    graph,
    outputs: ep.outputs.map((s) => (renamed.has(s.value) ? { name: s.name, value: renamed.get(s.value)! } : s)),
  };
  return { program, report: report! };
}

/**
 * `lowerQdq(ep, { engine })`: dequantize -> float op -> quantize patterns become the integer ops of
 * @qforge/ir's ops/quantized.ts; nodes left in float carry `meta.notLowered` with the reason.
 */
export function lowerQdq(ep: ExportedProgram, opts: LowerQdqOptions = {}): ExportedProgram {
  return lowerQdqWithReport(ep, opts).program;
}
