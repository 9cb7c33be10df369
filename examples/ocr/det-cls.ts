/**
 * The detection and direction-classification models of PP-OCR through the same flow as rec:
 * imported, quantized by qforge (static int8, per-channel weights, calibrated on text lines), and
 * compared with their float versions — det by the mean absolute difference of its probability map,
 * cls by how often the predicted class agrees.
 */
import type { ExportedProgram, Tensor } from "@qforge/ir";
import { QforgeError } from "@qforge/ir";
import { modelSession, quantizeModel, type BackendName, type Label, type QuantizeOptions, type Quantized } from "./pipeline.js";
import { clsInput, detInput, readGrayPng } from "./preprocess.js";

export type AuxModel = "det" | "cls";

/** The model input of each line for det or cls. */
export function auxInputs(model: AuxModel, dir: string, labels: readonly Label[]): Tensor[] {
  return labels.map((l) => {
    const img = readGrayPng(`${dir}/${l.file}`);
    return model === "det" ? detInput(img) : clsInput(img);
  });
}

export interface AuxComparison {
  readonly model: AuxModel;
  readonly lines: number;
  /** det: mean |p_float - p_int8| over every pixel of every line's probability map. */
  readonly meanAbsDiff: number;
  /** det: the largest |difference| of one pixel. */
  readonly maxAbsDiff: number;
  /** cls: fraction of lines whose predicted class (argmax) agrees; det: of pixels on the same side of DB's 0.3 threshold. */
  readonly agreement: number;
  readonly meanMsFloat: number;
  readonly meanMsInt8: number;
}

async function runAll(program: ExportedProgram, inputs: readonly Tensor[], backend: BackendName): Promise<{ outputs: Tensor[]; meanMs: number }> {
  const session = await modelSession(program, backend);
  const outputs: Tensor[] = [];
  let ms = 0;
  for (const x of inputs) {
    const t0 = performance.now();
    const [y] = await session.run([x]);
    ms += performance.now() - t0;
    if (y === undefined) throw new QforgeError("UNDEFINED_OUTPUT", "the model returned no output");
    outputs.push(y);
  }
  return { outputs, meanMs: inputs.length === 0 ? 0 : ms / inputs.length };
}

function argmax(v: Float32Array, from: number, n: number): number {
  let best = 0;
  for (let k = 1; k < n; k++) if (v[from + k]! > v[from + best]!) best = k;
  return best;
}

/** DB's default binarization threshold (PaddleOCR det_db_thresh). */
const DB_THRESH = 0.3;

/** Quantizes det or cls (calibrated on `calibration`) and compares float and int8 outputs on `inputs`. */
export async function compareAux(
  model: AuxModel, ep: ExportedProgram, calibration: readonly Tensor[], inputs: readonly Tensor[], backend: BackendName,
  opts: QuantizeOptions = {},
): Promise<AuxComparison & { quantized: Quantized }> {
  const quantized = quantizeModel(ep, calibration, opts);
  const f = await runAll(ep, inputs, backend);
  const q = await runAll(quantized.lowered, inputs, backend);
  let sum = 0;
  let count = 0;
  let max = 0;
  let agree = 0;
  let total = 0;
  f.outputs.forEach((a, i) => {
    const b = q.outputs[i]!;
    const x = a.data as Float32Array;
    const y = b.data as Float32Array;
    if (x.length !== y.length) throw new QforgeError("BAD_SHAPE", `float and int8 outputs differ in size (${x.length} vs ${y.length})`);
    if (model === "det") {
      for (let k = 0; k < x.length; k++) {
        const d = Math.abs(x[k]! - y[k]!);
        sum += d;
        if (d > max) max = d;
        if (x[k]! > DB_THRESH === y[k]! > DB_THRESH) agree++;
      }
      count += x.length;
      total += x.length;
    } else {
      const classes = a.shape[a.shape.length - 1]!;
      for (let r = 0; r < x.length; r += classes) {
        if (argmax(x, r, classes) === argmax(y, r, classes)) agree++;
        total++;
        for (let k = 0; k < classes; k++) {
          const d = Math.abs(x[r + k]! - y[r + k]!);
          sum += d;
          if (d > max) max = d;
        }
        count += classes;
      }
    }
  });
  return {
    model, lines: inputs.length, meanAbsDiff: count === 0 ? 0 : sum / count, maxAbsDiff: max, agreement: total === 0 ? 1 : agree / total,
    meanMsFloat: f.meanMs, meanMsInt8: q.meanMs, quantized,
  };
}
