/**
 * `qforge compare`: the numeric debugger on the command line. Runs a float program and its
 * quantized version on one sample input and prints, per node matched through `meta.debugHandle`,
 * the SQNR and max |error|, worst node first (@qforge/debug compareResults / formatComparison).
 * With one model it quantizes it first (XNNPACK int8 through prepare / calibrate / convert / lower);
 * with two graphs it compares them as given.
 *
 * Tensors are JSON files in the golden format (see data/json.ts).
 */
import { parseArgs } from "node:util";
import { programFromGraph, QforgeError, type Graph } from "@qforge/ir";
import { compareResults, formatComparison, numericRun, type RankBy } from "@qforge/debug";
import { getSymmetricQuantizationConfig, XnnpackQuantizer } from "@qforge/quantizer";
import {
  calibrate, convertPt2e, generateNumericDebugHandle, lowerQdqWithReport, preparePt2e, type LoweringEngine,
} from "@qforge/pt2e";
import { loadGraph } from "./dump.js";
import { feedsFor, readSample, readSampleDir, type Sample } from "../data/json.js";

export interface CompareTableOptions {
  /** Rank by what each node loses itself ("local", default) or by accumulated SQNR. */
  readonly by?: RankBy;
  /** Print at most this many rows. */
  readonly limit?: number;
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
