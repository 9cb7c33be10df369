/**
 * `qforge compare`: the numeric debugger on the command line. Runs a float program and its
 * quantized version on one sample input and prints, per node matched through `meta.debugHandle`,
 * the SQNR and max |error|, worst node first (@qforge/debug compareResults / formatComparison).
 * With one model it quantizes it first (XNNPACK int8 through prepare / calibrate / convert / lower);
 * with two graphs it compares them as given.
 *
 * Tensors are JSON files in the golden format `{"dtype": D, "shape": [..], "data": [..]}` (row-major);
 * a file may hold one tensor (one-input models), a list of tensors (one per input, in order) or an
 * object keyed by input name.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fromArray, isDType, numel, programFromGraph, QforgeError, type Graph, type Tensor } from "@qforge/ir";
import { compareResults, formatComparison, numericRun, type RankBy } from "@qforge/debug";
import { getSymmetricQuantizationConfig, XnnpackQuantizer } from "@qforge/quantizer";
import {
  calibrate, convertPt2e, generateNumericDebugHandle, lowerQdqWithReport, preparePt2e, type LoweringEngine,
} from "@qforge/pt2e";
import { loadGraph } from "./dump.js";

export interface CompareTableOptions {
  /** Rank by what each node loses itself ("local", default) or by accumulated SQNR. */
  readonly by?: RankBy;
  /** Print at most this many rows. */
  readonly limit?: number;
}

/** One sample: tensors in input order, or by input name. */
export type Sample = readonly Tensor[] | Readonly<Record<string, Tensor>>;

function badData(file: string, message: string): never {
  throw new QforgeError("BAD_DATA", `${file}: ${message}`, { hint: 'a tensor is {"dtype": "float32", "shape": [..], "data": [..]}' });
}

function isTensorJson(v: unknown): v is { dtype: unknown; shape: unknown; data: unknown } {
  return typeof v === "object" && v !== null && "dtype" in v && "shape" in v && "data" in v;
}

function tensorFromJson(v: unknown, file: string, what: string): Tensor {
  if (!isTensorJson(v)) badData(file, `${what} is not a tensor`);
  const { dtype, shape, data } = v;
  if (typeof dtype !== "string" || !isDType(dtype)) badData(file, `${what}: unknown dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) badData(file, `${what}: shape must be a list of sizes`);
  if (!Array.isArray(data) || !data.every((x) => typeof x === "number")) badData(file, `${what}: data must be a flat list of numbers`);
  if (data.length !== numel(shape as number[])) badData(file, `${what}: ${data.length} values for shape [${shape.join(", ")}]`);
  return fromArray(dtype, shape as number[], data as number[]);
}

/** Reads a sample from a JSON file (one tensor, a list, or an object keyed by input name). */
export function readSample(file: string): Sample {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new QforgeError("IO_ERROR", `cannot read tensor file '${file}': ${(e as Error).message}`);
  }
  if (Array.isArray(doc)) return doc.map((t, i) => tensorFromJson(t, file, `tensor #${i}`));
  if (isTensorJson(doc)) return [tensorFromJson(doc, file, "tensor")];
  if (typeof doc === "object" && doc !== null) {
    return Object.fromEntries(Object.entries(doc).map(([k, t]) => [k, tensorFromJson(t, file, `input '${k}'`)]));
  }
  return badData(file, "expected a tensor, a list of tensors or an object of tensors");
}

/** Every *.json sample of a directory, in name order. */
export function readSampleDir(dir: string): Sample[] {
  let names: string[];
  try {
    if (!statSync(dir).isDirectory()) throw new Error("not a directory");
    names = readdirSync(dir).filter((n) => n.endsWith(".json")).sort();
  } catch (e) {
    throw new QforgeError("IO_ERROR", `cannot read calibration directory '${dir}': ${(e as Error).message}`);
  }
  if (names.length === 0) throw new QforgeError("BAD_INPUT", `no .json tensors in '${dir}'`);
  return names.map((n) => readSample(join(dir, n)));
}

/** A sample as the graph's feeds, in `g.inputs` order. */
export function feedsFor(g: Graph, sample: Sample): Tensor[] {
  if (Array.isArray(sample)) {
    const list = sample as readonly Tensor[];
    if (list.length !== g.inputs.length) {
      throw new QforgeError("BAD_INPUT", `the model takes ${g.inputs.length} inputs (${g.inputs.join(", ")}), the sample has ${list.length}`);
    }
    return [...list];
  }
  const rec = sample as Readonly<Record<string, Tensor>>;
  return g.inputs.map((name) => {
    const t = rec[name];
    if (t === undefined) throw new QforgeError("BAD_INPUT", `the sample has no tensor for input '${name}'`, { hint: `inputs: ${g.inputs.join(", ")}` });
    return t;
  });
}

/** The comparison table of two graphs on one sample. */
export function compareGraphTable(floatGraph: Graph, quantGraph: Graph, sample: Sample, opts: CompareTableOptions = {}): string {
  const rows = compareResults(numericRun(floatGraph, feedsFor(floatGraph, sample)), numericRun(quantGraph, feedsFor(quantGraph, sample)));
  if (rows.length === 0) {
    throw new QforgeError("BAD_INPUT", "no node of the float graph carries a debug handle (meta.debugHandle)", {
      hint: "compare programs produced by the PT2E flow (generateNumericDebugHandle), or give the float graph's nodes debugHandle meta",
    });
  }
  return formatComparison(rows, opts);
}

/** `qforge compare <float> <quant> --input <tensor.json>`: two given graphs (.qf dumps or .onnx). */
export async function compareFiles(floatFile: string, quantFile: string, inputFile: string, opts: CompareTableOptions = {}): Promise<string> {
  const [f, q] = [await loadGraph(floatFile), await loadGraph(quantFile)];
  return compareGraphTable(f, q, readSample(inputFile), opts);
}

export interface QuantizeCompareOptions extends CompareTableOptions {
  /** Directory of calibration samples (*.json); default: the sample itself. */
  readonly calibDir?: string;
  /** The sample compared on (a JSON tensor file); default: the first calibration sample. */
  readonly inputFile?: string;
  readonly engine?: LoweringEngine;
  /** Per-channel weights (XNNPACK's symmetric config with is_per_channel). */
  readonly perChannel?: boolean;
}

/**
 * `qforge compare <model>`: quantizes the model the PT2E way — numeric debug handles, XnnpackQuantizer
 * (int8 symmetric config), preparePt2e, calibrate, convertPt2e, lowerQdq — and compares the lowered
 * program with the float one on a sample. Returns the lowering summary and the table.
 */
export async function compareQuantized(file: string, opts: QuantizeCompareOptions = {}): Promise<string> {
  if (opts.calibDir === undefined && opts.inputFile === undefined) {
    throw new QforgeError("BAD_INPUT", "compare needs data: --calib <dir of .json tensors> and/or --input <tensor.json>");
  }
  const float = generateNumericDebugHandle(programFromGraph(await loadGraph(file)));
  const samples = opts.calibDir !== undefined ? readSampleDir(opts.calibDir) : [readSample(opts.inputFile!)];
  const sample = opts.inputFile !== undefined ? readSample(opts.inputFile) : samples[0]!;
  const quantizer = new XnnpackQuantizer().setGlobal(getSymmetricQuantizationConfig({ isPerChannel: opts.perChannel ?? false }));
  const prepared = preparePt2e(float, quantizer);
  calibrate(prepared, samples.map((s) => feedsFor(float.graph, s)), { progress: false });
  const { program, report } = lowerQdqWithReport(convertPt2e(prepared), { engine: opts.engine ?? "qnnpack" });
  const lowered = Object.entries(report.lowered).map(([row, n]) => `${row} x${n}`).join(", ") || "nothing";
  const lines = [`lowered (${report.engine}): ${lowered}`];
  for (const r of report.notLowered) lines.push(`left in float: ${r.node} (${r.op}): ${r.reason}`);
  lines.push("", compareGraphTable(float.graph, program.graph, sample, opts));
  return lines.join("\n");
}

/** Parses `compare` arguments and runs it; undefined when the arguments do not form a command (usage). */
export async function compareCommand(args: readonly string[]): Promise<string | undefined> {
  const { values, positionals } = parseArgs({
    args: [...args], allowPositionals: true,
    options: {
      input: { type: "string" }, calib: { type: "string" }, engine: { type: "string", default: "qnnpack" },
      "per-channel": { type: "boolean", default: false }, by: { type: "string", default: "local" }, limit: { type: "string" },
    },
  });
  const { by, engine } = values;
  const limit = values.limit === undefined ? undefined : Number(values.limit);
  if ((by !== "local" && by !== "sqnr") || (limit !== undefined && !(Number.isInteger(limit) && limit > 0))) return undefined;
  if (engine !== "qnnpack" && engine !== "onednn") return undefined;
  const [first, second] = positionals;
  if (first === undefined || positionals.length > 2) return undefined;
  if (second !== undefined) {
    if (values.input === undefined || values.calib !== undefined) return undefined;
    return compareFiles(first, second, values.input, { by, limit });
  }
  if (values.input === undefined && values.calib === undefined) return undefined;
  return compareQuantized(first, { by, limit, engine, calibDir: values.calib, inputFile: values.input, perChannel: values["per-channel"] });
}
