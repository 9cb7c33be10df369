import { beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { numel, type ExportedProgram, type Tensor } from "@qforge/ir";
import { importOnnx, type ImportOptions } from "@qforge/onnx";
import { runOp, runProgram } from "@qforge/runtime";
import {
  PPOCR_MODELS, clsInput, ctcGreedyDecode, detInput, loadPpocrKeys, readGrayPng, recInput, type GrayImage,
} from "./ppocr-helpers.js";

/**
 * The Done-when check of ONNX import: the three PP-OCR models, imported by qforge and run by the
 * reference runtime, agree with onnxruntime-node on real text lines within 1e-4 max abs.
 */
const LINES = fileURLToPath(new URL("../../../../shared/data/ocr-lines/", import.meta.url));
const LABELS = JSON.parse(readFileSync(join(LINES, "labels.json"), "utf8")) as { file: string; text: string }[];
const label = (file: string): string => LABELS.find((l) => l.file === file)!.text;

const TOLERANCE = 1e-4;
const fold: ImportOptions["fold"] = (op, inputs, attrs, numOutputs) => runOp(op, inputs, { ...attrs }, { numOutputs });

async function ortRun(session: ort.InferenceSession, x: Tensor): Promise<Tensor> {
  const feeds = { [session.inputNames[0]!]: new ort.Tensor("float32", x.data as Float32Array, [...x.shape]) };
  const out = (await session.run(feeds))[session.outputNames[0]!]!;
  return { dtype: "float32", shape: out.dims.map(Number), data: out.data as Float32Array };
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  expect(a.shape).toEqual(b.shape);
  let m = 0;
  for (let i = 0; i < numel(a.shape); i++) m = Math.max(m, Math.abs((a.data[i] as number) - (b.data[i] as number)));
  return m;
}

/** Runs both and returns qforge's output with the max abs difference (printed for the record). */
async function compare(what: string, ep: ExportedProgram, session: ort.InferenceSession, x: Tensor): Promise<{ got: Tensor; want: Tensor; diff: number }> {
  const t0 = performance.now();
  const [got] = runProgram(ep, [x]);
  const t1 = performance.now();
  const want = await ortRun(session, x);
  const t2 = performance.now();
  const diff = maxAbsDiff(got!, want);
  console.log(`${what}: input [${x.shape.join(",")}] -> [${want.shape.join(",")}], max |qforge - ort| = ${diff.toExponential(2)} (qforge ${(t1 - t0).toFixed(0)} ms, ort ${(t2 - t1).toFixed(0)} ms)`);
  return { got: got!, want, diff };
}

describe("PP-OCR models: qforge's imported graph vs onnxruntime-node", () => {
  const sessions: Partial<Record<"rec" | "det" | "cls", ort.InferenceSession>> = {};
  let short: GrayImage;
  let medium: GrayImage;

  beforeAll(async () => {
    for (const k of ["rec", "det", "cls"] as const) sessions[k] = await ort.InferenceSession.create(PPOCR_MODELS[k]);
    short = readGrayPng(join(LINES, "067.png"));
    medium = readGrayPng(join(LINES, "074.png"));
  });

  it("rec with symbolic dims (the model's own [?, 3, 48, ?]) matches on a line and decodes the same text", async () => {
    const ep = await importOnnx(PPOCR_MODELS.rec, { fold });
    expect(ep.graph.values[ep.inputs[0]!.value]!.shape.filter((d) => typeof d === "string")).toHaveLength(2);
    const x = recInput(short);
    expect(x.shape).toEqual([1, 3, 48, 136]);
    const { got, want, diff } = await compare("rec 067.png (dynamic)", ep, sessions.rec!, x);
    expect(diff).toBeLessThan(TOLERANCE);
    const keys = loadPpocrKeys();
    expect(keys).toHaveLength(got.shape[2]!);
    expect(ctcGreedyDecode(got, keys)).toBe(ctcGreedyDecode(want, keys));
    expect(ctcGreedyDecode(got, keys)).toBe(label("067.png"));
  });

  it("rec imported with inputShapes folds its shape arithmetic and matches on a second line", async () => {
    const x = recInput(medium);
    expect(x.shape).toEqual([1, 3, 48, 192]);
    const ep = await importOnnx(PPOCR_MODELS.rec, { fold, inputShapes: { x: [...x.shape] } });
    const ops = ep.graph.nodes.map((n) => n.op);
    for (const op of ["shape", "cast", "gather", "unsqueeze"]) expect(ops, op).not.toContain(op);
    for (const n of ep.graph.nodes.filter((m) => m.op === "reshape")) expect(ep.graph.constants[n.inputs[1]!], n.name).toBeDefined();
    for (const v of Object.values(ep.graph.values)) expect(v.shape.every((d) => typeof d === "number")).toBe(true);
    const { got, want, diff } = await compare("rec 074.png (static, folded)", ep, sessions.rec!, x);
    expect(diff).toBeLessThan(TOLERANCE);
    const keys = loadPpocrKeys();
    expect(ctcGreedyDecode(got, keys)).toBe(ctcGreedyDecode(want, keys));
    expect(ctcGreedyDecode(got, keys)).toBe(label("074.png"));
  });

  it("det matches on a 64x256 crop/pad of a line", async () => {
    const ep = await importOnnx(PPOCR_MODELS.det, { fold });
    const x = detInput(medium, 64, 256);
    const { got, diff } = await compare("det 074.png", ep, sessions.det!, x);
    expect(diff).toBeLessThan(TOLERANCE);
    // The probability map marks text: some pixels are confidently text, the white margin is not.
    const p = got.data as Float32Array;
    expect(Math.max(...p)).toBeGreaterThan(0.5);
    expect(p[0]!).toBeLessThan(0.5);
  });

  it("cls matches on a 48x192 line and calls the upright line 0 degrees", async () => {
    const ep = await importOnnx(PPOCR_MODELS.cls, { fold });
    const x = clsInput(short);
    expect(x.shape).toEqual([1, 3, 48, 192]);
    const { got, diff } = await compare("cls 067.png", ep, sessions.cls!, x);
    expect(diff).toBeLessThan(TOLERANCE);
    const [p0, p180] = got.data as Float32Array;
    expect(p0!).toBeGreaterThan(p180!);
  });
});
