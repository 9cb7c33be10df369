/**
 * The numeric debugger: per-node comparison of a float program with its quantized version, matched
 * through `meta.debugHandle` — the stable id PT2E's `generate_numeric_debug_handle` puts on every
 * node of the float program and every later pass keeps on the nodes that replace it
 * (torch.ao.quantization.pt2e._numeric_debugger: compare_results / NodeAccuracySummary).
 *
 * For each handle the value compared is the output of the last quantized node computing that float
 * node's value (in graph order): in a QDQ program the float op or the dequantize after it (convert
 * gives it the op's handle), in a lowered program the integer op, whose output is dequantized with
 * its output qparams (float-view.ts). Fused nodes are followed (`indexQuantHandles`): a conv folded
 * with its batch norm computes the batch norm's value, a lowered conv + relu the relu's.
 *
 * Besides each node's SQNR against the float reference — which accumulates the error of everything
 * upstream — a row carries `localSqnr`, an estimate of what the node alone loses: the noise-to-signal
 * ratio it adds over the worst of its nearest compared inputs, `r_out - r_in` with
 * r = |x - y|^2 / |x|^2, in dB. Error that merely flows through a node (r_out ≈ r_in) does not count
 * against it, so sorting by it puts the node that loses accuracy first.
 */
import { opFamily, QforgeError, type Graph, type Node, type Tensor } from "@qforge/ir";
import { runGraph } from "@qforge/runtime";
import { floatViewOf } from "./float-view.js";

/** A graph and every value of one run of it (`runGraph(g, feeds, { keepAll: true })`). */
export interface NumericRun {
  readonly graph: Graph;
  readonly values: ReadonlyMap<string, Tensor>;
}

/** Runs `graph` on `feeds` with the reference interpreter, keeping every value. */
export function numericRun(graph: Graph, feeds: Record<string, Tensor> | readonly Tensor[]): NumericRun {
  const { values } = runGraph(graph, feeds, { keepAll: true });
  if (values === undefined) throw new QforgeError("BAD_DATA", "the interpreter returned no values although keepAll was set");
  return { graph, values };
}

/** A node of one of the two programs. */
export interface NodeRef {
  readonly name: string;
  readonly op: string;
}

export interface ComparedNode {
  readonly kind: "compared";
  readonly debugHandle: number;
  readonly float: NodeRef;
  readonly quant: NodeRef;
  /** Innermost module path of the float node (meta.moduleStack), when known. */
  readonly module: string | undefined;
  readonly shape: readonly number[];
  /** 10 * log10(|x|^2 / |x - y|^2) in dB over the whole output; +Infinity when equal. */
  readonly sqnr: number;
  /** What this node alone adds (see the module doc), in dB; +Infinity when it adds nothing. */
  readonly localSqnr: number;
  readonly maxAbsError: number;
  /** The quantized node's output was an integer tensor, compared after dequantizing it. */
  readonly dequantized: boolean;
}

/** A float node with a debug handle that has no comparable counterpart in the quantized run. */
export interface UnmatchedNode {
  readonly kind: "unmatched";
  readonly debugHandle: number;
  readonly float: NodeRef;
  readonly module: string | undefined;
  readonly reason: string;
}

export type NodeComparison = ComparedNode | UnmatchedNode;

function handleOf(n: Node): number | undefined {
  const h = n.meta.debugHandle;
  return typeof h === "number" && Number.isInteger(h) ? h : undefined;
}

function moduleOf(n: Node): string | undefined {
  const stack = n.meta.moduleStack;
  return stack !== undefined && stack.length > 0 ? stack[stack.length - 1]!.path : undefined;
}

interface ErrorStats {
  readonly signal: number;
  readonly noise: number;
  readonly maxAbsError: number;
}

function errorStats(x: ArrayLike<number>, y: ArrayLike<number>): ErrorStats {
  if (x.length !== y.length) throw new QforgeError("BAD_SHAPE", `cannot compare ${x.length} values with ${y.length}`);
  let signal = 0;
  let noise = 0;
  let maxAbsError = 0;
  for (let i = 0; i < x.length; i++) {
    const a = x[i]!;
    const d = a - y[i]!;
    signal += a * a;
    noise += d * d;
    const e = Math.abs(d);
    if (Number.isNaN(e)) maxAbsError = Number.NaN;
    else if (e > maxAbsError) maxAbsError = e;
  }
  return { signal, noise, maxAbsError };
}

function sqnrOf(s: ErrorStats): number {
  if (Number.isNaN(s.signal) || Number.isNaN(s.noise)) return Number.NaN;
  if (s.noise === 0) return Infinity;
  return 10 * Math.log10(s.signal / s.noise);
}

/** Noise-to-signal ratio |x - y|^2 / |x|^2 (NaN when either is NaN; 0 when equal). */
function noiseRatio(s: ErrorStats): number {
  if (Number.isNaN(s.signal) || Number.isNaN(s.noise)) return Number.NaN;
  if (s.noise === 0) return 0;
  return s.noise / s.signal;
}

/**
 * Signal-to-quantization-noise ratio in dB, `10 * log10(|x|^2 / |x - y|^2)` with x the reference
 * (torchao's compute_error / PyTorch's numeric debugger SQNR); +Infinity when x and y are equal.
 */
export function sqnr(x: ArrayLike<number>, y: ArrayLike<number>): number {
  return sqnrOf(errorStats(x, y));
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Nodes by debug handle, in graph order. */
function nodesByHandle(g: Graph): Map<number, Node[]> {
  const m = new Map<number, Node[]>();
  for (const n of g.nodes) {
    const h = handleOf(n);
    if (h === undefined) continue;
    const list = m.get(h);
    if (list) list.push(n);
    else m.set(h, [n]);
  }
  return m;
}

function numbersOf(v: unknown): number[] {
  return Array.isArray(v) ? v.filter((x): x is number => typeof x === "number") : [];
}

function stringsOf(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}

/** The quantized program's nodes by the float value they compute, and the handles fused away. */
interface QuantIndex {
  readonly byValue: Map<number, Node[]>;
  readonly fusedInto: Map<number, Node>;
}

/**
 * Which float node's value each quantized node computes. A node's own handle says so, except where
 * fusion moved the value: a lowered node lists the handles it absorbed in `fusedDebugHandles` and
 * carries the handle of the value it produces; a folded node (conv + batch norm) names the fused
 * float nodes in `fusedFrom` and computes the last one's value; a quantize / dequantize carrying its
 * producer's handle quantizes that producer's value.
 */
function indexQuantHandles(quant: Graph, float: Graph): QuantIndex {
  const floatHandle = new Map<string, number>();
  for (const n of float.nodes) {
    const h = handleOf(n);
    if (h !== undefined) floatHandle.set(n.name, h);
  }
  const producer = new Map<string, Node>();
  for (const n of quant.nodes) for (const o of n.outputs) if (o !== "") producer.set(o, n);
  const valueOf = new Map<string, number | undefined>();
  const byValue = new Map<number, Node[]>();
  const fusedInto = new Map<number, Node>();
  for (const n of quant.nodes) {
    const own = handleOf(n);
    let value = own;
    const absorbed: number[] = [];
    const fusedFrom = stringsOf(n.meta["fusedFrom"]).map((name) => floatHandle.get(name));
    if (own !== undefined && (n.meta["fusedDebugHandles"] !== undefined || fusedFrom.length > 0)) {
      // A lowered node's handle is already its value's; a folded node computes its last float node's.
      const last = fusedFrom[fusedFrom.length - 1];
      if (n.meta["fusedDebugHandles"] === undefined && last !== undefined) value = last;
      absorbed.push(own, ...numbersOf(n.meta["fusedDebugHandles"]), ...fusedFrom.filter((h): h is number => h !== undefined));
    } else if (own !== undefined && opFamily(n.op) === "quantize") {
      const p = producer.get(n.inputs[0] ?? "");
      if (p !== undefined && handleOf(p) === own) value = valueOf.get(p.name) ?? own;
    }
    valueOf.set(n.name, value);
    if (value !== undefined) {
      const list = byValue.get(value);
      if (list) list.push(n);
      else byValue.set(value, [n]);
    }
    for (const h of absorbed) if (h !== value && !fusedInto.has(h)) fusedInto.set(h, n);
  }
  return { byValue, fusedInto };
}

/**
 * Compares every float node that has a debug handle with the last quantized node computing its value
 * (its handle, followed through fusions by `indexQuantHandles`). Rows come in the float graph's
 * order; `sortWorstFirst` ranks them.
 */
export function compareResults(floatRun: NumericRun, quantRun: NumericRun): NodeComparison[] {
  const floatByHandle = nodesByHandle(floatRun.graph);
  const { byValue: quantByHandle, fusedInto } = indexQuantHandles(quantRun.graph, floatRun.graph);
  // The last float node with a handle defines its value (earlier ones are intermediate steps).
  const reference = new Map<string, number>();
  for (const [h, list] of floatByHandle) reference.set(list[list.length - 1]!.name, h);

  const rows: NodeComparison[] = [];
  const ratios = new Map<string, number>();
  for (const fn of floatRun.graph.nodes) {
    const h = reference.get(fn.name);
    if (h === undefined) continue;
    const float: NodeRef = { name: fn.name, op: fn.op };
    const module = moduleOf(fn);
    const unmatched = (reason: string): void => { rows.push({ kind: "unmatched", debugHandle: h, float, module, reason }); };
    const fv = floatViewOf(floatRun.graph, fn, 0, floatRun.values, false);
    if (typeof fv === "string") {
      unmatched(`float run: ${fv}`);
      continue;
    }
    const candidates = quantByHandle.get(h) ?? [];
    if (candidates.length === 0) {
      const into = fusedInto.get(h);
      unmatched(into === undefined
        ? "no node of the quantized program carries this debug handle"
        : `fused into ${into.name} (${into.op}): its value is not materialized in the quantized program`);
      continue;
    }
    let reason = "";
    let done = false;
    for (let i = candidates.length - 1; i >= 0 && !done; i--) {
      const qn = candidates[i]!;
      const qv = floatViewOf(quantRun.graph, qn, 0, quantRun.values, true);
      if (typeof qv === "string") {
        reason ||= `${qn.name}: ${qv}`;
        continue;
      }
      if (!sameShape(qv.shape, fv.shape)) {
        reason ||= `${qn.name} outputs [${qv.shape.join(", ")}], the float node [${fv.shape.join(", ")}]`;
        continue;
      }
      const stats = errorStats(fv.values, qv.values);
      ratios.set(fn.name, noiseRatio(stats));
      rows.push({
        kind: "compared", debugHandle: h, float, quant: { name: qn.name, op: qn.op }, module, shape: fv.shape,
        sqnr: sqnrOf(stats), localSqnr: Number.NaN, maxAbsError: stats.maxAbsError, dequantized: qv.dequantized,
      });
      done = true;
    }
    if (!done) unmatched(reason);
  }
  return withLocalSqnr(floatRun.graph, rows, ratios);
}

const ratioToDb = (r: number): number => (Number.isNaN(r) ? Number.NaN : r <= 0 ? Infinity : -10 * Math.log10(r));

/**
 * Fills `localSqnr`: one forward sweep over the float graph carries, per value, the noise ratio of
 * its nearest compared producers (uncompared nodes pass on the worst of their inputs).
 */
function withLocalSqnr(g: Graph, rows: NodeComparison[], ratios: ReadonlyMap<string, number>): NodeComparison[] {
  const valueRatio = new Map<string, number>();
  const inputRatio = new Map<string, number>();
  // NaN upstream is as bad as it gets: propagate it as an infinite ratio.
  const of = (v: string): number => {
    const r = valueRatio.get(v) ?? 0;
    return Number.isNaN(r) ? Infinity : r;
  };
  for (const n of g.nodes) {
    const rin = n.inputs.reduce((m, v) => (v === "" ? m : Math.max(m, of(v))), 0);
    inputRatio.set(n.name, rin);
    const own = ratios.get(n.name);
    for (const o of n.outputs) if (o !== "") valueRatio.set(o, own ?? rin);
  }
  return rows.map((row) => {
    if (row.kind !== "compared") return row;
    const r = ratios.get(row.float.name)!;
    const rin = inputRatio.get(row.float.name) ?? 0;
    const added = rin === Infinity ? 0 : r - rin;
    return { ...row, localSqnr: ratioToDb(Number.isNaN(r) ? r : Math.max(added, 0)) };
  });
}

export type RankBy = "local" | "sqnr";

/** Ascending with NaN first (a NaN is the worst news). */
function worse(a: number, b: number): number {
  const an = Number.isNaN(a);
  const bn = Number.isNaN(b);
  if (an || bn) return an === bn ? 0 : an ? -1 : 1;
  return a === b ? 0 : a < b ? -1 : 1;
}

/**
 * Worst first: by what each node loses itself (`localSqnr`, default) or by its accumulated `sqnr`,
 * the other as tie-break, then graph order. Unmatched rows follow the compared ones.
 */
export function sortWorstFirst(rows: readonly NodeComparison[], by: RankBy = "local"): NodeComparison[] {
  const indexed = rows.map((row, i) => ({ row, i }));
  indexed.sort((p, q) => {
    const a = p.row;
    const b = q.row;
    if (a.kind !== b.kind) return a.kind === "compared" ? -1 : 1;
    if (a.kind === "compared" && b.kind === "compared") {
      const [k1, k2]: [keyof ComparedNode, keyof ComparedNode] = by === "local" ? ["localSqnr", "sqnr"] : ["sqnr", "localSqnr"];
      const c = worse(a[k1] as number, b[k1] as number) || worse(a[k2] as number, b[k2] as number);
      if (c !== 0) return c;
    }
    return p.i - q.i;
  });
  return indexed.map((x) => x.row);
}
