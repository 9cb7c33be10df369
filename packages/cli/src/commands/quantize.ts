/**
 * `qforge quantize <in.onnx|.qf> --calib <dir> --out <out.onnx|.qf> [options]`: post-training
 * quantization on the command line (ONNX Runtime's `quantize_static` / `quantize_dynamic` /
 * weight-only quantizers, done the PT2E way). A thin wrapper around `quantizeModel`: it loads the
 * model, opens the calibration folder, draws the progress bar, exports the result and writes it
 * atomically, then returns the summary.
 */
import { readFileSync, statSync } from "node:fs";
import { extname } from "node:path";
import { parseArgs } from "node:util";
import { parseGraph, printGraph, programFromGraph, QforgeError, type ExportedProgram } from "@qforge/ir";
import { importOnnx } from "@qforge/onnx";
import { runOp } from "@qforge/runtime";
import { openCalibrationDir, type ImageOptions } from "../data/samples.js";
import type { ChannelOrder, ImageLayout } from "../data/image.js";
import { progressBar, type ProgressStream } from "../progress.js";
import { METHODS, MODES, QUANTIZERS, type CalibrationMethod, type QuantizeMode, type QuantizeOptions, type QuantizerName } from "../quantize/options.js";
import { quantizeModel } from "../quantize/pipeline.js";
import { formatSummary } from "../quantize/summary.js";
import { writeFileAtomic } from "../quantize/write.js";
import { exportQuantized, type OnnxForm } from "../quantize/export.js";

export interface QuantizeCommandIO {
  /** Where the progress bar draws (default process.stderr). */
  readonly stderr?: ProgressStream;
}

function badOption(message: string, hint?: string): never {
  throw new QforgeError("BAD_CONFIG", message, { hint });
}

function positiveInt(name: string, v: string | undefined, allowZero = false): number | undefined {
  if (v === undefined) return undefined;
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || (n === 0 && !allowZero)) badOption(`--${name} must be a ${allowZero ? "non-negative" : "positive"} integer, got '${v}'`);
  return n;
}

/** A number, or a fraction such as 1/255. */
function parseNumber(name: string, v: string): number {
  const m = /^\s*([^/]+?)\s*(?:\/\s*([^/]+?)\s*)?$/.exec(v);
  const a = m ? Number(m[1]) : NaN;
  const b = m?.[2] !== undefined ? Number(m[2]) : 1;
  const x = a / b;
  if (m === null || m[1] === "" || !Number.isFinite(x)) badOption(`--${name} must be a number or a fraction such as 1/255, got '${v}'`);
  return x;
}

function numberList(name: string, v: string | undefined): number[] | undefined {
  return v === undefined ? undefined : v.split(",").map((s) => parseNumber(name, s));
}

function nameList(v: string | undefined): string[] | undefined {
  return v === undefined ? undefined : v.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

function choice<T extends string>(name: string, v: string | undefined, all: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!(all as readonly string[]).includes(v)) badOption(`--${name} must be one of ${all.join(", ")}, got '${v}'`);
  return v as T;
}

/** `--size HxW` */
function parseSize(v: string | undefined): [number, number] | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d+)[xX](\d+)$/.exec(v);
  if (m === null || Number(m[1]) < 1 || Number(m[2]) < 1) badOption(`--size must be HxW (e.g. 48x320), got '${v}'`);
  return [Number(m[1]), Number(m[2])];
}

/** Loads an .onnx model (importOnnx, folding constant shape arithmetic) or a qforge text dump. */
export async function loadProgram(file: string): Promise<ExportedProgram> {
  if (extname(file).toLowerCase() === ".onnx") {
    return importOnnx(file, { fold: (op, inputs, attrs, n) => runOp(op, inputs, { ...attrs }, { numOutputs: n }) });
  }
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new QforgeError("IO_ERROR", `cannot read '${file}': ${(e as Error).message}`, { node: file });
  }
  return programFromGraph(parseGraph(text), { source: "text" });
}

/** The parsed command line of `qforge quantize`. */
export interface QuantizeCommandArgs {
  readonly input: string;
  readonly out: string;
  readonly calib?: string;
  readonly limit?: number;
  readonly form: OnnxForm;
  readonly options: QuantizeOptions;
  readonly image: ImageOptions;
}

/** Parses the arguments; undefined when they do not form a command (print usage). Bad values are BAD_CONFIG. */
export function parseQuantizeArgs(args: readonly string[]): QuantizeCommandArgs | undefined {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args], allowPositionals: true,
      options: {
        calib: { type: "string" }, out: { type: "string" }, quantizer: { type: "string" }, "per-channel": { type: "boolean" },
        method: { type: "string" }, mode: { type: "string" }, "weight-bits": { type: "string" }, "group-size": { type: "string" },
        "weight-only": { type: "string" }, "exclude-nodes": { type: "string" }, "exclude-op-types": { type: "string" },
        form: { type: "string" }, size: { type: "string" }, height: { type: "string" }, "max-width": { type: "string" },
        mean: { type: "string" }, std: { type: "string" }, scale: { type: "string" }, channels: { type: "string" },
        layout: { type: "string" }, limit: { type: "string" },
      },
    });
  } catch (e) {
    badOption((e as Error).message, "run `qforge help` for the options");
  }
  const { values: v, positionals } = parsed;
  const input = positionals[0];
  if (input === undefined || positionals.length > 1 || v.out === undefined) return undefined;

  let mode = choice<QuantizeMode>("mode", v.mode, MODES);
  let weightBits: 8 | 4 | undefined;
  if (v["weight-bits"] !== undefined) {
    if (v["weight-bits"] !== "8" && v["weight-bits"] !== "4") badOption(`--weight-bits must be 8 or 4, got '${v["weight-bits"]}'`);
    weightBits = v["weight-bits"] === "8" ? 8 : 4;
  }
  if (v["weight-only"] !== undefined) {
    // `--weight-only int4` is `--mode weight-only --weight-bits 4`.
    const alias = choice("weight-only", v["weight-only"], ["int4", "int8"] as const);
    const bits = alias === "int4" ? 4 : 8;
    if (mode !== undefined && mode !== "weight-only") badOption(`--weight-only ${alias} contradicts --mode ${mode}`);
    if (weightBits !== undefined && weightBits !== bits) badOption(`--weight-only ${alias} contradicts --weight-bits ${weightBits}`);
    mode = "weight-only";
    weightBits = bits;
  }
  const groupSize = positiveInt("group-size", v["group-size"], true);
  const quantizer = choice<QuantizerName>("quantizer", v.quantizer, QUANTIZERS);
  const method = choice<CalibrationMethod>("method", v.method, METHODS);
  const options: QuantizeOptions = {
    ...(quantizer !== undefined ? { quantizer } : {}),
    ...(v["per-channel"] === true ? { perChannel: true } : {}),
    ...(method !== undefined ? { method } : {}),
    ...(mode !== undefined ? { mode } : {}),
    ...(weightBits !== undefined ? { weightBits } : {}),
    ...(groupSize !== undefined ? { groupSize } : {}),
    ...(v["exclude-nodes"] !== undefined ? { excludeNodes: nameList(v["exclude-nodes"]) } : {}),
    ...(v["exclude-op-types"] !== undefined ? { excludeOpTypes: nameList(v["exclude-op-types"]) } : {}),
  };
  const size = parseSize(v.size);
  const height = positiveInt("height", v.height);
  const maxWidth = positiveInt("max-width", v["max-width"]);
  const mean = numberList("mean", v.mean);
  const std = numberList("std", v.std);
  const channels = choice<ChannelOrder>("channels", v.channels, ["rgb", "bgr", "gray"]);
  const layout = choice<ImageLayout>("layout", v.layout, ["nchw", "nhwc"]);
  const image: ImageOptions = {
    ...(size !== undefined ? { size } : {}), ...(height !== undefined ? { height } : {}), ...(maxWidth !== undefined ? { maxWidth } : {}),
    ...(mean !== undefined ? { mean } : {}), ...(std !== undefined ? { std } : {}),
    ...(v.scale !== undefined ? { scale: parseNumber("scale", v.scale) } : {}),
    ...(channels !== undefined ? { channels } : {}), ...(layout !== undefined ? { layout } : {}),
  };
  const limit = positiveInt("limit", v.limit);
  const form = choice<OnnxForm>("form", v.form, ["qdq", "qoperator"]) ?? "qdq";
  return {
    input, out: v.out, form, options, image,
    ...(v.calib !== undefined ? { calib: v.calib } : {}), ...(limit !== undefined ? { limit } : {}),
  };
}

/** Runs a parsed `qforge quantize`; returns the summary text. Nothing is written unless everything succeeded. */
export async function runQuantize(a: QuantizeCommandArgs, io: QuantizeCommandIO = {}): Promise<string> {
  const ep = await loadProgram(a.input);
  const mode = a.options.mode ?? "static";
  if (mode === "static" && a.calib === undefined) {
    throw new QforgeError("BAD_INPUT", "static quantization needs calibration data: pass --calib <folder>", {
      hint: "a folder of .png images, .npy arrays or .json tensors; or use --mode dynamic / weight-only",
    });
  }
  const source = a.calib !== undefined && mode === "static"
    ? openCalibrationDir(a.calib, ep.graph, { image: a.image, ...(a.limit !== undefined ? { limit: a.limit } : {}) })
    : undefined;
  const stderr = io.stderr ?? process.stderr;
  const bar = source !== undefined ? progressBar(stderr, source.size, { label: "calibrating", unit: "samples" }) : undefined;
  let result;
  try {
    result = quantizeModel(ep, a.options, source ?? [], (done) => bar?.update(done));
  } catch (e) {
    bar?.abort();
    throw e;
  }
  bar?.finish();
  const text = extname(a.out).toLowerCase() === ".qf";
  const bytes = text ? printGraph(result.program.graph, { constants: "full" }) : exportQuantized(result.program, a.form);
  writeFileAtomic(a.out, bytes);
  const inputBytes = statSync(a.input).size;
  const outputBytes = typeof bytes === "string" ? Buffer.byteLength(bytes, "utf8") : bytes.length;
  const summary = formatSummary(result.summary, { input: { path: a.input, bytes: inputBytes }, output: { path: a.out, bytes: outputBytes } });
  // Only static mode calibrates: say so rather than let the user think the data was used.
  return a.calib !== undefined && mode !== "static" ? `note: ${mode} mode reads no calibration data; --calib was not used\n${summary}` : summary;
}

/** Parses and runs `qforge quantize`; undefined when the arguments do not form a command (usage). */
export async function quantizeCommand(args: readonly string[], io: QuantizeCommandIO = {}): Promise<string | undefined> {
  const a = parseQuantizeArgs(args);
  return a === undefined ? undefined : runQuantize(a, io);
}
