/**
 * `lowerQdq`: the pass that turns a converted (QDQ) program into integer ops — the step between
 * convert_pt2e and a backend, as FX's `_lower_to_native_backend` does for PyTorch's quantized
 * kernels. The rewrites are the rows of rules.ts applied to a fixed point by the IR's rewrite
 * engine; what stays in float next to quantize/dequantize nodes is reported, with the reason, in the
 * report and on the node (`meta.notLowered`), never changed silently.
 */
import { current, type Draft } from "immer";
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

/** A mutable copy of `g` deep enough for the rewriter's edits (node lists, inputs/outputs, records). */
function workingCopy(g: Graph): Graph {
  return {
    ...g,
    inputs: [...g.inputs],
    outputs: [...g.outputs],
    nodes: g.nodes.map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs] })),
    constants: { ...g.constants },
    values: { ...g.values },
  };
}

/**
 * A lowered node is built while the float node it replaces still exists, so it gets a fresh name
 * (`conv_1`); once the float node is gone it takes back the name of the op it stands for
 * (`meta.loweredFrom[0]`), so dumps and reports show the model's names. Only the node is renamed:
 * its output value keeps its name.
 */
function restoreLoweredNames(work: Graph): void {
  const used = new Set(work.nodes.map((n) => n.name));
  for (const n of work.nodes) {
    const from = n.meta["loweredFrom"];
    const want = Array.isArray(from) && typeof from[0] === "string" ? from[0] : undefined;
    if (want === undefined || want === n.name || used.has(want)) continue;
    used.delete(n.name);
    used.add(want);
    (n as { name: string }).name = want;
  }
}

/**
 * Makes the draft (whose state was `base` when `work` was copied from it) equal to `work`, assigning
 * only what changed — nodes, constants and values that are not the very objects of `base` — so
 * immer's patches list the lowering's edits, not the whole graph.
 */
function writeBack(g: Draft<Graph>, base: Graph, work: Graph): void {
  const same = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((v, i) => v === b[i]);
  const baseNodes = new Map(base.nodes.map((n, i) => [n.name, i]));
  const unchangedNode = (n: Node): number | undefined => {
    const i = baseNodes.get(n.name);
    const o = i === undefined ? undefined : base.nodes[i]!;
    return o !== undefined && o.op === n.op && o.attrs === n.attrs && o.meta === n.meta && same(o.inputs, n.inputs) && same(o.outputs, n.outputs) ? i : undefined;
  };
  const allSame = work.nodes.length === base.nodes.length && work.nodes.every((n, i) => unchangedNode(n) === i);
  if (!allSame) {
    const drafts = [...g.nodes];
    g.nodes = work.nodes.map((n) => {
      const i = unchangedNode(n);
      return i !== undefined ? drafts[i]! : (n as Draft<Node>);
    });
  }
  if (!same(base.outputs, work.outputs)) g.outputs = [...work.outputs];
  for (const k of Object.keys(base.constants)) if (work.constants[k] !== base.constants[k]) delete g.constants[k];
  for (const [k, c] of Object.entries(work.constants)) if (base.constants[k] !== c) g.constants[k] = c as Draft<Graph["constants"][string]>;
  for (const k of Object.keys(base.values)) if (work.values[k] !== base.values[k]) delete g.values[k];
  for (const [k, t] of Object.entries(work.values)) if (base.values[k] !== t) g.values[k] = t as Draft<Graph["values"][string]>;
}

/** The lowering as a pass over a graph (for PassManager pipelines); `report` receives the report. */
export function lowerQdqPass(opts: LowerQdqOptions = {}, report?: (r: LoweringReport) => void): Pass {
  const engine = engineOf(opts);
  return definePass("lower-qdq", (g: Draft<Graph>) => {
    const ctx: LoweringContext = { engine, skipped: new Map() };
    // The rewrite engine takes a fresh snapshot of the graph after every rewrite; on an immer draft
    // that is a copy of everything drafted so far (`current`), which made lowering a large model
    // quadratic. The rows run on a plain working copy instead, written back into the draft once.
    const base = current(g) as Graph;
    const work = workingCopy(base);
    const stats = applyRewrites(work as Draft<Graph>, loweringRules(ctx));
    restoreLoweredNames(work);
    writeBack(g, base, work);
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
