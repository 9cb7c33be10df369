/**
 * The OCR example on a small subset: PP-OCRv4 rec imported, quantized by qforge (calibrated on 4
 * lines from the end of the data set), run in float and int8 on 4 other lines; the int8 model reads
 * them as well as the float one, and qforge's QDQ export runs in onnxruntime-node with the same
 * per-step decisions as qforge's own int8 execution. The full 80-line numbers are in README.md.
 */
import { describe, expect, it } from "vitest";
import ort from "onnxruntime-node";
import { isQforgeError, tensor } from "@qforge/ir";
import { exportOnnx } from "@qforge/onnx";
import { accuracy, argmaxSteps, ctcGreedyDecode, editDistance, loadCharacters, scoreLine } from "./ctc.js";
import {
  evaluateRec, loadLabels, loadLines, loadModel, MODELS, modelSession, quantizeModel, stepAgreement, type Evaluation,
} from "./pipeline.js";
import { DEFAULT_FLOAT_NODES } from "./settings.js";

const DIR = "/work/shared/data/ocr-lines";

describe("CTC decoding and scoring", () => {
  it("merges repeats, drops blanks and maps classes to PaddleOCR's character list (blank, keys, space)", () => {
    const chars = loadCharacters(MODELS.keys);
    expect(chars.length).toBe(6625);
    expect(chars[0]).toBe("blank");
    expect(chars[chars.length - 1]).toBe(" ");
    const a = chars.indexOf("a");
    const b = chars.indexOf("b");
    expect(ctcGreedyDecode([0, a, a, 0, a, b, b, 0, 6624, b], chars)).toBe("aab b");
    const probs = tensor("float32", [1, 3, 4], Float32Array.from([0.1, 0.7, 0.1, 0.1, 0.5, 0.5, 0, 0, 0, 0, 0.2, 0.8]));
    expect(Array.from(argmaxSteps(probs))).toEqual([1, 0, 3]);
  });

  it("scores with the edit distance after trimming surrounding spaces", () => {
    expect(editDistance("kitten", "sitting")).toBe(3);
    expect(editDistance("", "abc")).toBe(3);
    const r = [scoreLine("a", " Paper apple ", "Paper apple"), scoreLine("b", "river", "rivers")];
    expect(r.map((x) => x.distance)).toEqual([0, 1]);
    expect(accuracy(r)).toEqual({ lines: 2, charAcc: 1 - 1 / 16, exactLineAcc: 0.5 });
  });
});

describe("PP-OCRv4 rec: float and int8 on 4 lines", () => {
  it("quantizes, keeps the float accuracy, and agrees with onnxruntime on the exported QDQ model", async () => {
    const labels = loadLabels(DIR);
    const characters = loadCharacters(MODELS.keys);
    const lines = loadLines(DIR, labels.slice(0, 4));
    const calibration = loadLines(DIR, labels.slice(-4)).map((l) => l.input);
    const ep = await loadModel(MODELS.rec);
    const q = quantizeModel(ep, calibration, { floatNodes: DEFAULT_FLOAT_NODES });
    // The integer program runs integer kernels for every conv and linear.
    expect(q.lowered.graph.nodes.filter((n) => n.op === "conv" || n.op === "matmul" && n.inputs.some((v) => q.lowered.graph.constants[v] !== undefined))).toEqual([]);
    expect(q.lowered.graph.nodes.filter((n) => n.op === "quantized_conv2d").length).toBeGreaterThanOrEqual(36);
    expect(q.report.lowered["matmul-add-linear"]).toBeGreaterThanOrEqual(8);

    const fl: Evaluation = await evaluateRec(await modelSession(ep, "reference"), lines, characters);
    const i8: Evaluation = await evaluateRec(await modelSession(q.lowered, "reference"), lines, characters);
    expect(fl.accuracy.charAcc).toBeGreaterThanOrEqual(0.99);
    expect(i8.accuracy.charAcc).toBeGreaterThanOrEqual(fl.accuracy.charAcc - 0.02);
    expect(stepAgreement(fl.steps, i8.steps)).toBeGreaterThanOrEqual(0.95);

    // qforge's QDQ export of the int8 model, run by onnxruntime-node.
    const session = await ort.InferenceSession.create(exportOnnx(q.converted, { form: "qdq" }));
    const ortSteps: Int32Array[] = [];
    for (const l of lines) {
      const out = await session.run({ [session.inputNames[0]!]: new ort.Tensor("float32", l.input.data as Float32Array, l.input.shape) });
      const y = out[session.outputNames[0]!]!;
      ortSteps.push(argmaxSteps(tensor("float32", [...y.dims], y.data as Float32Array)));
    }
    expect(stepAgreement(ortSteps, i8.steps)).toBeGreaterThanOrEqual(0.97);
    expect(ortSteps.map((s) => ctcGreedyDecode(s, characters))).toEqual(i8.steps.map((s) => ctcGreedyDecode(s, characters)));
  }, 240_000);

  it("reads the same on the cpu backend as on the reference interpreter (float and int8), and refuses an unknown backend", async () => {
    const labels = loadLabels(DIR);
    const characters = loadCharacters(MODELS.keys);
    const lines = loadLines(DIR, labels.slice(4, 6));
    const ep = await loadModel(MODELS.rec);
    const q = quantizeModel(ep, loadLines(DIR, labels.slice(-2)).map((l) => l.input), { floatNodes: DEFAULT_FLOAT_NODES });
    for (const program of [ep, q.lowered]) {
      const ref = await evaluateRec(await modelSession(program, "reference"), lines, characters);
      const cpu = await evaluateRec(await modelSession(program, "cpu"), lines, characters);
      // int8 kernels are exact and the float ones agree to rounding: the per-step decisions match.
      expect(stepAgreement(ref.steps, cpu.steps)).toBeGreaterThanOrEqual(0.99);
      expect(cpu.accuracy.charAcc).toBe(ref.accuracy.charAcc);
    }
    const e = await modelSession(ep, "tpu" as never).then(() => undefined, (err: unknown) => err);
    expect(isQforgeError(e) && e.code === "BAD_CONFIG").toBe(true);
  }, 240_000);
});
