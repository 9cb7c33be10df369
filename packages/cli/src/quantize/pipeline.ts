/**
 * `quantizeModel`: post-training quantization of a program, the library function behind
 * `qforge quantize` (and what examples call):
 *
 *   static / dynamic   preparePt2e(ep, quantizer) -> calibrate on each sample (static only) ->
 *                      convertPt2e: a QDQ program (quantize/dequantize around the quantized ops,
 *                      choose_qparams in front of dynamically quantized ones), as torch's
 *                      prepare_pt2e / convert_pt2e and ONNX Runtime's quantize_static /
 *                      quantize_dynamic produce
 *   weight-only        int8 / int4 weights behind dequantize_linear (weight-only.ts)
 *
 * Samples are read and checked one at a time (a folder of images never sits in memory at once);
 * every problem with one names it.
 */
import { isQforgeError, QforgeError, type ExportedProgram } from "@qforge/ir";
import { calibrate, convertPt2e, preparePt2e } from "@qforge/pt2e";
import { bareMessage } from "../data/errors.js";
import type { Sample } from "../data/json.js";
import { conformFeeds, samplesInMemory, type CalibrationSource } from "../data/samples.js";
import { excludingQuantizer, resolveExclusions } from "./exclude.js";
import { describeWeights, makeQuantizer, resolveQuantizeOptions, type QuantizeOptions } from "./options.js";
import { classifyAnnotatedNodes, classifyWeightOnlyNodes, type QuantizeSummary } from "./summary.js";
import { weightOnlyQuantize } from "./weight-only.js";

export interface QuantizeResult {
  /** The quantized program: QDQ form (static / dynamic) or float ops reading dequantized weights (weight-only). */
  readonly program: ExportedProgram;
  readonly summary: QuantizeSummary;
}

/** Called after each calibration sample. */
export type ProgressCallback = (done: number, total: number) => void;

/** A QforgeError again, with `label` (the sample's file) in front of its message and as its node. */
function relabel(e: QforgeError, label: string): QforgeError {
  return new QforgeError(e.code, `${label}: ${bareMessage(e)}`, { node: label, hint: e.hint, cause: e });
}

/**
 * Quantizes `ep` (see the module comment). `samples` are the calibration data (static mode needs at
 * least one; the other modes do not read them); `onProgress` sees each calibrated sample. `ep` is
 * untouched.
 */
export function quantizeModel(
  ep: ExportedProgram,
  options: QuantizeOptions = {},
  samples: readonly Sample[] | CalibrationSource = [],
  onProgress?: ProgressCallback,
): QuantizeResult {
  const o = resolveQuantizeOptions(options);
  const excluded = resolveExclusions(ep.graph, { nodes: o.excludeNodes, opTypes: o.excludeOpTypes });
  const weights = describeWeights(o);

  if (o.mode === "weight-only") {
    const { program, report } = weightOnlyQuantize(ep, { bits: o.weightBits, groupSize: o.groupSize, excluded });
    const { quantized, leftInFloat } = classifyWeightOnlyNodes(program.graph, report);
    const quantizedNodes = Object.values(quantized).reduce((a, b) => a + b, 0);
    return { program, summary: { mode: o.mode, weights, quantized, quantizedNodes, leftInFloat, weightOnly: report } };
  }

  const source: CalibrationSource = Array.isArray(samples) ? samplesInMemory(samples) : (samples as CalibrationSource);
  if (o.mode === "static" && source.size === 0) {
    throw new QforgeError("BAD_INPUT", "static quantization needs calibration data", {
      hint: "pass --calib <folder of .png/.npy/.json samples>, or use --mode dynamic / weight-only",
    });
  }
  const prepared = preparePt2e(ep, excludingQuantizer(makeQuantizer(o), new Set(excluded.keys())));
  let calibration: QuantizeSummary["calibration"];
  if (o.mode === "static") {
    const start = performance.now();
    for (let i = 0; i < source.size; i++) {
      const label = source.label(i);
      try {
        const feeds = conformFeeds(ep.graph, source.read(i), label);
        calibrate(prepared, [feeds], { progress: false });
      } catch (e) {
        if (isQforgeError(e) && e.node !== label) throw relabel(e, label);
        throw e;
      }
      onProgress?.(i + 1, source.size);
    }
    calibration = { samples: source.size, seconds: (performance.now() - start) / 1000 };
  }
  const program = convertPt2e(prepared);
  const { quantized, leftInFloat } = classifyAnnotatedNodes(prepared.program.graph, excluded, o.quantizer, o.mode);
  const quantizedNodes = Object.values(quantized).reduce((a, b) => a + b, 0);
  return {
    program,
    summary: {
      mode: o.mode, quantizer: o.quantizer, ...(o.mode === "static" ? { method: o.method } : {}), weights,
      quantized, quantizedNodes, leftInFloat, ...(calibration !== undefined ? { calibration } : {}),
    },
  };
}
