import { randomBytes } from "node:crypto";
import { rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { QforgeError, isQforgeError, type Dim, type ExportedProgram, type Graph, type Node } from "@qforge/ir";
import { MAX_OPSET } from "../import/import.js";
import { encodeModel, makeTensorValueInfo } from "../proto/encode.js";
import type { ModelProto, NodeProto, TensorProto, ValueInfoProto } from "../proto/types.js";
import { ExportContext, MIN_EXPORT_OPSET } from "./context.js";
import { FLOAT_ROWS } from "./ops-float.js";
import { QUANT_ROWS } from "./ops-quant.js";
import { emitQOperator, planQOperator, type QOperatorFusion } from "./qoperator.js";
import type { ExportRow, SinceContext } from "./rows.js";
import { unlowerQuantizedOps } from "./unlower.js";

export type ExportForm = "qdq" | "qoperator";

export interface ExportOptions {
  /**
   * The ai.onnx opset to write (13..21). Default: the lowest every node's form allows, at least 13
   * (the first opset with per-axis Q/DQ and axes/split as inputs).
   */
  opset?: number;
  /**
   * How quantized graphs are written. "qdq" (default): QuantizeLinear / DequantizeLinear around
   * float ops. "qoperator": conv / matmul / linear patterns become QLinearConv, QLinearMatMul or
   * MatMulInteger, the rest stays QDQ. Float graphs are the same in both.
   */
  form?: ExportForm;
  /** ModelProto.producer_name (default "qforge"). */
  producerName?: string;
  /** GraphProto.name (default: the program's meta.graphName, else "qforge"). */
  graphName?: string;
}

/** Every export row by qforge op. */
export const EXPORT_ROWS: ReadonlyMap<string, ExportRow> = new Map([...FLOAT_ROWS, ...QUANT_ROWS].map((r) => [r.op, r]));

/** ONNX's IR version for an opset (onnx/helper.py VERSION_TABLE): 13-14 -> 7, 15-18 -> 8, 19-20 -> 9, 21 -> 10. */
export function irVersionForOpset(opset: number): number {
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
}

/** Protobuf messages cannot exceed 2 GiB; larger models need external data, which the exporter does not write. */
const MAX_PROTO_BYTES = 2 ** 31 - 1;

function rowFor(n: Node): ExportRow {
  const row = EXPORT_ROWS.get(n.op);
  if (row === undefined) {
    throw new QforgeError("UNSUPPORTED", `op '${n.op}' has no ONNX form`, {
      node: n.name, hint: "see docs/onnx-export.md for the ops the exporter writes",
    });
  }
  return row;
}

/** The opset to write: the caller's (checked against every node), or the lowest that works. */
function chooseOpset(g: Graph, exported: readonly Node[], requested: number | undefined): number {
  let need = MIN_EXPORT_OPSET;
  let needBy: Node | undefined;
  const view: SinceContext = {
    graph: g,
    type: (v: string) => {
      const t = g.values[v];
      if (t === undefined) throw new QforgeError("DANGLING_INPUT", `value '${v}' is not defined`, { node: v });
      return t;
    },
    constant: (v: string) => (v === "" ? undefined : g.constants[v]?.tensor),
  };
  for (const n of exported) {
    const s = rowFor(n).since(n, view);
    if (s > need) {
      need = s;
      needBy = n;
    }
  }
  if (requested === undefined) {
    if (need > MAX_OPSET) throw new QforgeError("UNSUPPORTED", `${needBy!.op} needs opset ${need}; the exporter writes up to ${MAX_OPSET}`, { node: needBy!.name });
    return need;
  }
  if (!Number.isInteger(requested) || requested < MIN_EXPORT_OPSET || requested > MAX_OPSET) {
    throw new QforgeError("BAD_INPUT", `opset ${requested} is not one the exporter writes (${MIN_EXPORT_OPSET}..${MAX_OPSET})`);
  }
  if (requested < need) {
    throw new QforgeError("UNSUPPORTED", `${needBy!.op} needs opset ${need}, but opset ${requested} was requested`, {
      node: needBy!.name, hint: `export with opset >= ${need}, or leave opset out to get the lowest that works`,
    });
  }
  return requested;
}

/**
 * ONNX names of the signature: inputs keep their signature names, and an output produced by a node
 * takes its signature name directly; other outputs (graph inputs, constants, a value listed twice)
 * get an Identity node writing the signature name.
 */
function planNames(ep: ExportedProgram): { names: Map<string, string>; identities: [string, string][]; outputNames: string[] } {
  const g = ep.graph;
  const names = new Map<string, string>();
  const taken = new Set<string>();
  const producedByNode = new Set(g.nodes.flatMap((n) => n.outputs));
  const unique = (want: string): string => {
    let n = want;
    for (let i = 1; taken.has(n); i++) n = `${want}_${i}`;
    taken.add(n);
    return n;
  };
  for (const s of ep.inputs) names.set(s.value, unique(s.name));
  const identities: [string, string][] = [];
  const outputNames: string[] = [];
  for (const s of ep.outputs) {
    if (producedByNode.has(s.value) && !names.has(s.value) && !taken.has(s.name)) {
      taken.add(s.name);
      names.set(s.value, s.name);
      outputNames.push(s.name);
      continue;
    }
    const out = unique(s.name);
    identities.push([s.value, out]);
    outputNames.push(out);
  }
  return { names, identities, outputNames };
}

/**
 * A value's ONNX type: every static dim, and the symbolic dims of the graph inputs by name
 * (dim_param); a dim computed from a symbol (e.g. conv's "H'") is written as unknown, since
 * ONNX would read a new name as a new, unrelated size.
 */
function valueInfo(name: string, g: Graph, v: string, inputSymbols: ReadonlySet<string>): ValueInfoProto {
  const t = g.values[v]!;
  const vi = makeTensorValueInfo(name, t.dtype, t.shape.map((d: Dim) => (typeof d === "number" || inputSymbols.has(d) ? d : "")));
  for (const dim of vi.type?.tensor_type?.shape?.dim ?? []) if (dim.dim_param === "") delete dim.dim_param;
  return vi;
}

/** Drops nodes whose outputs nobody reads (what a fused pattern left behind) and initializers nobody reads. */
function removeDead(nodes: NodeProto[], initializers: TensorProto[], outputs: readonly string[]): { nodes: NodeProto[]; initializers: TensorProto[] } {
  const needed = new Set(outputs);
  const kept: NodeProto[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    if (!(n.output ?? []).some((o) => o !== "" && needed.has(o))) continue;
    kept.push(n);
    for (const v of n.input ?? []) if (v !== "") needed.add(v);
  }
  return { nodes: kept.reverse(), initializers: initializers.filter((t) => needed.has(t.name ?? "")) };
}

/** The ModelProto of a program (see exportOnnx). */
export function exportModelProto(ep: ExportedProgram, opts: ExportOptions = {}): ModelProto {
  const form = opts.form ?? "qdq";
  if (form !== "qdq" && form !== "qoperator") throw new QforgeError("BAD_INPUT", `form must be "qdq" or "qoperator", got ${JSON.stringify(form)}`);
  const g = unlowerQuantizedOps(ep.graph);
  const fusions: Map<string, QOperatorFusion> = form === "qoperator" ? planQOperator(g) : new Map();
  const absorbed = new Set([...fusions.values()].flatMap((f) => f.absorbed.map((n) => n.name)));
  const exported = g.nodes.filter((n) => !absorbed.has(n.name) && !fusions.has(n.name));
  const opset = chooseOpset(g, exported, opts.opset);

  const program = g === ep.graph ? ep : { ...ep, graph: g };
  const { names, identities, outputNames } = planNames(program);
  const reserved = new Set([...Object.keys(g.values), ...ep.inputs.map((s) => s.name), ...outputNames]);
  const c = new ExportContext(g, opset, names, reserved, identities.map(([, out]) => out));
  for (const n of g.nodes) {
    if (absorbed.has(n.name)) continue;
    c.at(n);
    const f = fusions.get(n.name);
    if (f !== undefined) emitQOperator(c, f);
    else rowFor(n).emit(n, c);
  }
  c.leave();
  for (const [v, out] of identities) c.emit("Identity", [c.value(v)], [], [out]);

  const { nodes, initializers } = removeDead(c.nodes, c.initializers, outputNames);
  let bytes = 0;
  for (const t of initializers) bytes += t.raw_data?.byteLength ?? 0;
  if (bytes > MAX_PROTO_BYTES) {
    throw new QforgeError("UNSUPPORTED", `the initializers hold ${bytes} bytes, over protobuf's 2 GiB message limit`, {
      hint: "ONNX models this large need external data, which the exporter does not write",
    });
  }
  const inputSymbols = new Set(ep.inputs.flatMap((s) => g.values[s.value]!.shape.filter((d): d is string => typeof d === "string")));
  const graphName = opts.graphName ?? (typeof ep.meta.graphName === "string" && ep.meta.graphName !== "" ? ep.meta.graphName : "qforge");
  return {
    ir_version: irVersionForOpset(opset),
    opset_import: [{ domain: "", version: opset }],
    producer_name: opts.producerName ?? "qforge",
    producer_version: "0.1.0",
    graph: {
      name: graphName,
      node: nodes,
      initializer: initializers,
      input: ep.inputs.map((s) => valueInfo(names.get(s.value)!, g, s.value, inputSymbols)),
      output: ep.outputs.map((s, i) => valueInfo(outputNames[i]!, g, s.value, inputSymbols)),
    },
  };
}

/**
 * Writes an ExportedProgram as ONNX bytes: float graphs op for op (canonical ops back to their ONNX
 * ops, torch-only ones to their ONNX equivalents), converted PT2E graphs as QDQ (or QOperator with
 * `form: "qoperator"`), lowered PT2E graphs through their QDQ meaning. Parameters and constants
 * become initializers (raw_data, little-endian); symbolic input dims become dim_param. An op with
 * no ONNX form, or a form the requested opset lacks, is a QforgeError UNSUPPORTED naming the node.
 * See docs/onnx-export.md.
 */
export function exportOnnx(ep: ExportedProgram, opts: ExportOptions = {}): Uint8Array {
  return encodeModel(exportModelProto(ep, opts));
}

/**
 * exportOnnx, written to `path` atomically: the bytes go to a temporary file in the same folder,
 * which is then renamed over `path`. An export error writes nothing; a write error removes the
 * temporary file and is a QforgeError IO_ERROR.
 */
export async function saveOnnx(ep: ExportedProgram, path: string, opts: ExportOptions = {}): Promise<void> {
  const bytes = exportOnnx(ep, opts);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    await writeFile(tmp, bytes, { flag: "wx" });
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    if (isQforgeError(e)) throw e;
    throw new QforgeError("IO_ERROR", `cannot write '${path}': ${(e as Error).message}`, { cause: e, hint: "check that the folder exists and is writable" });
  }
}
