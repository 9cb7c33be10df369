import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { QforgeError, isQforgeError, type DType, type Dim, type ExportedProgram, type NodeMeta } from "@qforge/ir";
import { decodeModelProto, int64ToBigInt, int64ToNumber } from "../proto/codec.js";
import type { GraphProto, ModelProto, ValueInfoProto } from "../proto/types.js";
import { DEFAULT_MAX_TENSOR_BYTES, dtypeForValue, tensorFromProto } from "../tensor.js";
import { OnnxAttrs } from "./attrs.js";
import { ImportState, checkValueSize, makeNodeContext, type FoldFn } from "./context.js";
import { topologicalNodes } from "./graph-order.js";
import { applyKnownSizes } from "./input-shapes.js";
import { OP_BY_NAME } from "./ops.js";

/** The newest default-domain opset whose operator forms the importer knows. */
export const MAX_OPSET = 21;

export interface ImportOptions {
  /**
   * Evaluates an op on constant inputs, for import-time folding of shape arithmetic (pass
   * `runOp` from @qforge/runtime). Without it only Constant, Identity and Shape/Size of static
   * shapes fold.
   */
  fold?: FoldFn;
  /** The folder external data is read from (default: the model file's folder when importing a path). */
  baseDir?: string;
  /**
   * Largest storage one tensor may declare, in bytes (default 2 GiB): initializers, Constant
   * tensors, graph inputs and every statically shaped value the graph computes. Larger is BAD_MODEL,
   * reported before anything is allocated.
   */
  maxTensorBytes?: number;
  /**
   * Known sizes of graph inputs by name, e.g. `{ x: [1, 3, 48, 320] }`: replaces the declared shape
   * (ranks must match, static dims must agree; an input without a declared shape gets this one).
   * With static inputs every shape inferred downstream is static, Shape/Size fold, and with `fold`
   * the Shape -> Gather/Slice -> Concat -> Reshape chains exporters emit become constants. Without
   * it, dynamic dims stay symbolic and the graph runs for any size.
   */
  inputShapes?: Readonly<Record<string, readonly number[]>>;
  /** Sizes for symbolic dims by their `dim_param` name, e.g. `{ batch: 1 }`, in every graph input. */
  dimValues?: Readonly<Record<string, number>>;
}

/**
 * Imports an ONNX model (bytes, or a path to a .onnx file) into an ExportedProgram: initializers
 * become parameters, Constant nodes constants, every node the canonical qforge op of its latest
 * opset (older forms are upgraded), dynamic dims stay symbolic. Any problem with the model is a
 * QforgeError (BAD_MODEL, UNSUPPORTED, PATH_ESCAPE, IO_ERROR, or a shape error naming the node).
 * Tensors read from aligned raw_data are views of the model bytes: they share memory with `input`.
 */
export async function importOnnx(input: Uint8Array | string, opts: ImportOptions = {}): Promise<ExportedProgram> {
  let bytes: Uint8Array;
  let baseDir = opts.baseDir;
  if (typeof input === "string") {
    try {
      bytes = await readFile(input);
    } catch (e) {
      throw new QforgeError("IO_ERROR", `cannot read '${input}': ${(e as Error).message}`, { cause: e });
    }
    baseDir ??= dirname(resolve(input));
  } else if (input instanceof Uint8Array) {
    bytes = input;
  } else {
    throw new QforgeError("BAD_INPUT", `importOnnx takes bytes (Uint8Array) or a file path, got ${typeof input}`);
  }
  const model = decodeModelProto(bytes);
  return importModelProto(model, { ...opts, ...(baseDir !== undefined ? { baseDir } : {}) });
}

/** The errors made by importModelProto's safety net (see isUnexpectedImportError). */
const unexpected = new WeakSet<object>();

/**
 * True for the BAD_MODEL error that importOnnx throws when an exception other than a QforgeError
 * escaped the importer's own checks. The model is still refused with a typed error, but reaching this
 * net means a check is missing: the fuzz tests fail on it.
 */
export function isUnexpectedImportError(e: unknown): boolean {
  return typeof e === "object" && e !== null && unexpected.has(e);
}

/** Imports an already decoded ModelProto (see importOnnx). */
export function importModelProto(model: ModelProto, opts: ImportOptions = {}): ExportedProgram {
  try {
    return importModel(model, opts);
  } catch (e) {
    if (isQforgeError(e)) throw e;
    // Whatever slipped through the checks (a malformed model reaching an unguarded path) is still the
    // model's problem to report, never a bare TypeError/RangeError.
    const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    const err = new QforgeError("BAD_MODEL", `the model could not be imported: ${msg}`, {
      cause: e, hint: "the importer met a case its checks do not cover; please report the model",
    });
    unexpected.add(err);
    throw err;
  }
}

function defaultOpset(model: ModelProto): number | undefined {
  let opset: number | undefined;
  for (const o of model.opset_import ?? []) {
    const domain = o.domain ?? "";
    if (domain === "" || domain === "ai.onnx") opset = int64ToNumber(o.version, "the ai.onnx opset version");
  }
  // IR version < 3 predates opset_import: such models are opset 1.
  if (opset === undefined && int64ToBigInt(model.ir_version) < 3n) opset = 1;
  if (opset !== undefined && opset < 1) throw new QforgeError("BAD_MODEL", `ai.onnx opset ${opset} does not exist`);
  if (opset !== undefined && opset > MAX_OPSET) {
    throw new QforgeError("UNSUPPORTED", `the model uses ai.onnx opset ${opset}; qforge imports opsets up to ${MAX_OPSET}`, {
      hint: `convert the model to opset ${MAX_OPSET} (onnx.version_converter.convert_version)`,
    });
  }
  return opset;
}

/** Fresh symbols for unnamed dims (`unk__0`, ... as onnxruntime names them), avoiding the model's own. */
class DimSymbols {
  private n = 0;
  constructor(private readonly used: ReadonlySet<string>) {}
  next(): string {
    let s: string;
    do s = `unk__${this.n++}`; while (this.used.has(s));
    return s;
  }
}

/** A graph input's dtype and declared dims (undefined: the model gives no shape, i.e. unknown rank). */
function declaredInput(vi: ValueInfoProto, name: string, symbols: DimSymbols, maxBytes: number): { dtype: DType; dims: Dim[] | undefined } {
  const t = vi.type;
  if (t === null || t === undefined) throw new QforgeError("BAD_MODEL", `graph input '${name}' has no type`, { node: name });
  const kind = t.value;
  if (kind !== "tensor_type" || t.tensor_type === null || t.tensor_type === undefined) {
    const what = kind === undefined ? "no type" : kind.replace(/_type$/, "").replace("_", " ");
    throw new QforgeError("UNSUPPORTED", `graph input '${name}' is a ${what}; qforge graphs take tensors only`, { node: name });
  }
  const dtype = dtypeForValue(t.tensor_type.elem_type ?? 0, `graph input '${name}'`);
  const shape = t.tensor_type.shape;
  if (shape === null || shape === undefined) return { dtype, dims: undefined };
  const dims: Dim[] = (shape.dim ?? []).map((d) => {
    if (d.value === "dim_value") {
      const v = int64ToNumber(d.dim_value, `a dim of graph input '${name}'`, name);
      return v >= 0 ? v : symbols.next();
    }
    if (d.value === "dim_param" && (d.dim_param ?? "") !== "") return d.dim_param!;
    return symbols.next();
  });
  checkValueSize(dims, dtype, maxBytes, `graph input '${name}'`, name);
  return { dtype, dims };
}

function collectDimParams(g: GraphProto): Set<string> {
  const out = new Set<string>();
  for (const vi of [...(g.input ?? []), ...(g.output ?? []), ...(g.value_info ?? [])]) {
    for (const d of vi.type?.tensor_type?.shape?.dim ?? []) if (d.dim_param) out.add(d.dim_param);
  }
  return out;
}

function importModel(model: ModelProto, opts: ImportOptions): ExportedProgram {
  const g = model.graph;
  if (g === null || g === undefined) throw new QforgeError("BAD_MODEL", "the model has no graph");
  const opset = defaultOpset(model);
  if ((g.sparse_initializer?.length ?? 0) > 0) {
    throw new QforgeError("UNSUPPORTED", "sparse initializers are not supported", { node: g.sparse_initializer![0]!.values?.name });
  }
  const nodes = g.node ?? [];
  const label = (i: number): string => {
    const n = nodes[i];
    return n === undefined ? `#${i}` : (n.name ?? "") !== "" ? n.name! : `#${i} (${n.op_type ?? "?"})`;
  };

  // ---- names: SSA checks, and the set every fresh name must avoid ----
  const reserved = new Set<string>();
  const initializerNames = new Set<string>();
  for (const t of g.initializer ?? []) {
    const name = t.name ?? "";
    if (name === "") throw new QforgeError("BAD_MODEL", "an initializer has no name");
    if (initializerNames.has(name)) throw new QforgeError("BAD_MODEL", `initializer '${name}' is defined twice`, { node: name });
    initializerNames.add(name);
    reserved.add(name);
  }
  const inputNames = new Set<string>();
  for (const vi of g.input ?? []) {
    const name = vi.name ?? "";
    if (name === "") throw new QforgeError("BAD_MODEL", "a graph input has no name");
    if (inputNames.has(name)) throw new QforgeError("BAD_MODEL", `graph input '${name}' is declared twice`, { node: name });
    inputNames.add(name);
    reserved.add(name);
  }
  const used = new Set<string>();
  const definedByNode = new Set<string>();
  nodes.forEach((n, i) => {
    for (const v of n.input ?? []) if (v !== "") { reserved.add(v); used.add(v); }
    for (const o of n.output ?? []) {
      if (o === "") continue;
      if (initializerNames.has(o) || inputNames.has(o) || definedByNode.has(o)) {
        throw new QforgeError("BAD_MODEL", `value '${o}' is defined more than once`, { node: label(i), hint: "ONNX graphs are in SSA form" });
      }
      definedByNode.add(o);
      reserved.add(o);
    }
  });
  for (const o of g.output ?? []) used.add(o.name ?? "");

  const maxBytes = opts.maxTensorBytes ?? DEFAULT_MAX_TENSOR_BYTES;
  if (typeof maxBytes !== "number" || !(maxBytes >= 0)) {
    throw new QforgeError("BAD_INPUT", `opts.maxTensorBytes must be a non-negative number of bytes, got ${String(maxBytes)}`);
  }
  const tensorOpts = { baseDir: opts.baseDir, maxTensorBytes: maxBytes };
  const state = new ImportState(reserved, opts.fold, tensorOpts);

  // Initializers are parameters (an initializer that is also listed as an input is its default value,
  // which ONNX allows; qforge keeps it a parameter).
  for (const t of g.initializer ?? []) state.addConstant(t.name!, tensorFromProto(t, tensorOpts), "parameter");
  const symbols = new DimSymbols(collectDimParams(g));
  const declared = new Map<string, { dtype: DType; dims: Dim[] | undefined }>();
  for (const vi of g.input ?? []) {
    const name = vi.name!;
    if (!initializerNames.has(name)) declared.set(name, declaredInput(vi, name, symbols, maxBytes));
  }
  const shapes = applyKnownSizes(new Map([...declared].map(([n, d]) => [n, d.dims])), opts);
  const signatureInputs: string[] = [];
  for (const [name, { dtype }] of declared) {
    const dims = shapes.get(name);
    if (dims === undefined) {
      throw new QforgeError("UNSUPPORTED", `graph input '${name}' has no shape (unknown rank)`, {
        node: name, hint: "pass its shape in opts.inputShapes (or give the input a shape, dims may be symbolic) before importing",
      });
    }
    checkValueSize(dims, dtype, maxBytes, `graph input '${name}'`, name);
    state.input(name, dtype, dims);
    signatureInputs.push(name);
  }

  // ---- nodes ----
  const available = new Set([...initializerNames, ...inputNames]);
  const ordered = topologicalNodes(nodes, available, label);
  for (const n of ordered) {
    const opType = n.op_type ?? "";
    const onnxName = n.name ?? "";
    const where = onnxName !== "" ? onnxName : `${opType || "?"} node producing '${(n.output ?? [])[0] ?? "?"}'`;
    const domain = n.domain ?? "";
    if (domain !== "" && domain !== "ai.onnx") {
      throw new QforgeError("UNSUPPORTED", `op '${opType}' of domain '${domain}' is not supported (only ai.onnx)`, { node: where });
    }
    if (opType === "") throw new QforgeError("BAD_MODEL", "a node has no op_type", { node: where });
    const mapping = OP_BY_NAME.get(opType);
    if (mapping === undefined) {
      throw new QforgeError("UNSUPPORTED", `ONNX op '${opType}' is not supported`, { node: where, hint: "see docs/onnx-coverage.md for the ops qforge imports" });
    }
    if (opset === undefined) throw new QforgeError("BAD_MODEL", "the model imports no ai.onnx opset", { node: where });
    if (opset < mapping.since) {
      throw new QforgeError("UNSUPPORTED", `${opType} at opset ${opset}: qforge imports the forms of opset ${mapping.since} and later`, { node: where });
    }
    const inputs = [...(n.input ?? [])];
    while (inputs.length > 0 && inputs[inputs.length - 1] === "") inputs.pop();
    for (const v of inputs) {
      if (v !== "" && !state.isDefined(v)) {
        throw new QforgeError("BAD_MODEL", `${opType} reads '${v}', which no graph input, initializer or node defines`, { node: where });
      }
    }
    const outputs = [...(n.output ?? [])];
    while (outputs.length > 1 && outputs[outputs.length - 1] === "") outputs.pop();
    if (outputs.length === 0 || outputs.every((o) => o === "")) {
      throw new QforgeError("BAD_MODEL", `${opType} has no outputs`, { node: where });
    }
    const base = onnxName !== "" ? onnxName : mapping.qforge.replace(/[()]/g, "").replace(/ /g, "_");
    const name = state.names.fresh(base);
    const meta: NodeMeta = onnxName !== "" ? { onnxOp: opType, onnxName } : { onnxOp: opType };
    const attrs = new OnnxAttrs(n.attribute ?? [], where);
    mapping.convert(makeNodeContext(state, { opType, name, inputs, outputs, attrs, meta }, opset, used));
    for (const o of outputs) {
      // Outputs nobody reads may be dropped by an upgrade (BatchNormalization-9's saved statistics).
      if (o !== "" && used.has(o) && !state.isDefined(o)) {
        throw new QforgeError("UNDEFINED_OUTPUT", `${opType}: output '${o}' was not produced by the conversion`, { node: where });
      }
    }
  }

  // ---- outputs ----
  const signatureOutputs: string[] = [];
  for (const vi of g.output ?? []) {
    const name = vi.name ?? "";
    if (!state.isDefined(name)) {
      throw new QforgeError("BAD_MODEL", `graph output '${name}' is not defined by any input, initializer or node`, { node: name });
    }
    state.output(name);
    signatureOutputs.push(name);
  }

  const graph = state.build();
  return {
    graph,
    inputs: signatureInputs.map((v) => ({ name: v, value: v })),
    outputs: signatureOutputs.map((v) => ({ name: v, value: v })),
    meta: {
      source: "onnx",
      opset: opset ?? null,
      irVersion: Number(int64ToBigInt(model.ir_version)),
      producer: [model.producer_name ?? "", model.producer_version ?? ""].filter((s) => s !== "").join(" "),
      graphName: g.name ?? "",
      folded: state.folded,
    },
  };
}
