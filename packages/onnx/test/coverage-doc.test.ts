/**
 * docs/onnx-coverage.md stays true: the "not yet runnable" list never hides a runnable op nor claims
 * one, the PP-OCR op list is what the three models use, and no quantized or PP-OCR op is skipped
 * by the node-test runner except for dtypes qforge has no form of (STRING, UINT64) and a data defect.
 */
import { describe, expect, it } from "vitest";
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { hasOp } from "@qforge/ir";
import { OP_TABLE, decodeModelProto } from "@qforge/onnx";
import { hasKernel } from "@qforge/runtime";
import { ONNX_SKIPS, onnxSkipReason } from "../../cli/src/conformance/onnx.js";
import { PPOCR_MODELS } from "./ppocr-helpers.js";

const DOC = readFileSync(fileURLToPath(new URL("../../../docs/onnx-coverage.md", import.meta.url)), "utf8");
const NODE_TESTS = fileURLToPath(new URL("../../../../shared/onnx-node-tests", import.meta.url));
const QUANTIZED = ["QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearMatMul", "QLinearConv", "MatMulInteger", "ConvInteger"];

function section(start: string, end: string): string {
  const a = DOC.indexOf(start);
  const b = DOC.indexOf(end, a + start.length);
  expect(a, start).toBeGreaterThanOrEqual(0);
  expect(b, end).toBeGreaterThan(a);
  return DOC.slice(a + start.length, b);
}

const names = (text: string): string[] => [...text.matchAll(/\b[A-Z][A-Za-z0-9]+\b/g)].map((m) => m[0]);

function ppocrOps(): Set<string> {
  const ops = new Set<string>();
  for (const path of [PPOCR_MODELS.rec, PPOCR_MODELS.det, PPOCR_MODELS.cls]) {
    for (const n of decodeModelProto(readFileSync(path)).graph!.node!) ops.add(n.op_type!);
  }
  return ops;
}

describe("docs/onnx-coverage.md", () => {
  it("lists exactly the mapped ops whose qforge op has no schema or kernel yet", () => {
    const listed = new Set(names(section("a kernel):", "None of them")));
    const mapped = OP_TABLE.filter((r) => !r.qforge.startsWith("("));
    for (const name of listed) expect(OP_TABLE.some((r) => r.onnx === name), name).toBe(true);
    for (const r of mapped) {
      const runnable = hasOp(r.qforge) && hasKernel(r.qforge);
      // Never over-claim: an op missing from the list runs. (An op that gained a kernel may linger in the list.)
      if (!listed.has(r.onnx)) expect(runnable, `${r.onnx} -> ${r.qforge} is not in the not-runnable list but has no schema/kernel`).toBe(true);
    }
  });

  it("names every op the PP-OCR models use, and each one runs", () => {
    const used = ppocrOps();
    const doc = new Set(names(section("opsets 11, 9 and 9) use", "all import and")));
    expect([...doc].sort()).toEqual([...used].sort());
    for (const op of used) {
      const r = OP_TABLE.find((x) => x.onnx === op)!;
      expect(r, op).toBeDefined();
      if (!r.qforge.startsWith("(")) expect(hasOp(r.qforge) && hasKernel(r.qforge), op).toBe(true);
    }
  });

  it("no node test of a quantized or PP-OCR op is skipped, except for dtypes qforge lacks and the CastLike data defect", () => {
    const guarded = new Set([...QUANTIZED, ...ppocrOps(), "CastLike"]);
    const index = JSON.parse(readFileSync(join(NODE_TESTS, "index.json"), "utf8")) as { tests: Record<string, { family: string; ops: string[] }> };
    const tests = readdirSync(NODE_TESTS).filter((t) => existsSync(join(NODE_TESTS, t, "model.onnx")));
    const skipped = tests.filter((t) => onnxSkipReason(t) !== undefined);
    expect(skipped.length).toBeGreaterThan(0);
    for (const t of skipped) {
      const info = index.tests[t]!;
      if (!info.ops.some((op) => guarded.has(op)) && !guarded.has(info.family)) continue;
      expect(t, `${t}: ${onnxSkipReason(t)}`).toMatch(/STRING|uint64|^test_castlike_(BFLOAT16_to_FLOAT|FLOAT_to_BFLOAT16)_expanded$/);
    }
    for (const family of QUANTIZED) expect(tests.filter((t) => index.tests[t]!.family === family && onnxSkipReason(t) !== undefined), family).toEqual([]);
    // Every skip pattern is documented with its reason.
    for (const s of ONNX_SKIPS) expect(DOC, s.reason).toContain(s.reason);
  });
});
