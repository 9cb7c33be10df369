import { beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fromArray, parseGraph, printGraph, type Tensor } from "@qforge/ir";
import {
  DataType, OP_TABLE, encodeModel, encodeTensor, importOnnx, makeGraph, makeModel, makeNode, makeTensorValueInfo,
} from "@qforge/onnx";
import { runOp } from "@qforge/runtime";
import {
  ONNX_SKIPS, compareOutput, onnxSkipReason, runOnnxNodeTests, type OnnxTestReport,
} from "../packages/cli/src/conformance/onnx.js";

const DIR = fileURLToPath(new URL("../../shared/onnx-node-tests", import.meta.url));
const DOC = fileURLToPath(new URL("../docs/onnx-coverage.md", import.meta.url));
const INDEX = JSON.parse(readFileSync(join(DIR, "index.json"), "utf8")) as { tests: Record<string, { family: string }> };

const QUANTIZED_FAMILIES = ["QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearMatMul", "QLinearConv", "MatMulInteger", "ConvInteger"];

/** The only non-quantized tests that may be skipped (each with its reason in ONNX_SKIPS). */
const EXPECTED_OTHER_SKIPS = [
  "test_cast_FLOAT_to_STRING", "test_cast_STRING_to_FLOAT",
  "test_castlike_BFLOAT16_to_FLOAT_expanded", "test_castlike_FLOAT_to_BFLOAT16_expanded",
  "test_castlike_FLOAT_to_STRING_expanded", "test_castlike_STRING_to_FLOAT_expanded",
  "test_identity_opt", "test_identity_sequence", "test_pow_types_float32_uint64",
  "test_training_dropout", "test_training_dropout_default", "test_training_dropout_default_mask", "test_training_dropout_mask",
];

describe("ONNX backend node tests (../shared/onnx-node-tests)", () => {
  let report: OnnxTestReport;
  const lines: string[] = [];

  beforeAll(async () => {
    report = await runOnnxNodeTests(DIR, { log: (l) => lines.push(l) });
  }, 300_000);

  it("runs every test folder and ends with the summary line", () => {
    expect(report.results.map((r) => r.name)).toEqual(Object.keys(INDEX.tests).sort());
    expect(report.passed + report.failed + report.skipped).toBe(report.results.length);
    expect(lines.at(-1)).toBe(`${report.passed} passed, ${report.failed} failed, ${report.skipped} skipped`);
  });

  it("has no failures", () => {
    expect(report.results.filter((r) => r.status === "fail")).toEqual([]);
    expect(report.failed).toBe(0);
  });

  it("skips only through the table, printing each skip with its reason", () => {
    for (const r of report.results.filter((x) => x.status === "skip")) {
      expect(r.reason).toBe(onnxSkipReason(r.name));
      expect(lines).toContain(`SKIP ${r.name}: ${r.reason}`);
    }
    const others = report.results.filter((r) => r.status === "skip" && !QUANTIZED_FAMILIES.includes(INDEX.tests[r.name]!.family));
    expect(others.map((r) => r.name)).toEqual(EXPECTED_OTHER_SKIPS);
  });

  it("runs and passes every quantized family (none may be skipped)", () => {
    for (const family of QUANTIZED_FAMILIES) {
      expect(OP_TABLE.find((r) => r.onnx === family)?.qforge, family).toMatch(/^[a-z_]+$/);
      const tests = report.results.filter((r) => INDEX.tests[r.name]!.family === family);
      expect(tests.length, family).toBeGreaterThan(0);
      for (const t of tests) expect(t.status, t.name).toBe("pass");
    }
  });

  it("imported models print and parse back to the same text dump", async () => {
    for (const r of report.results.filter((x) => x.status === "pass")) {
      const ep = await importOnnx(join(DIR, r.name, "model.onnx"), {
        fold: (op, inputs, attrs, numOutputs) => runOp(op, inputs, { ...attrs }, { numOutputs }),
      });
      const text = printGraph(ep.graph, { constants: "full" });
      expect(printGraph(parseGraph(text), { constants: "full" }), r.name).toBe(text);
    }
  });

  it("docs/onnx-coverage.md lists every mapped op, every skip with its reason, and the current result", () => {
    const doc = readFileSync(DOC, "utf8");
    for (const r of OP_TABLE) {
      const q = r.qforge.startsWith("(") ? r.qforge : `\`${r.qforge}\``;
      expect(doc, r.onnx).toContain(`| ${r.onnx} | ${q} | ${r.since}–21 |`);
    }
    for (const r of report.results.filter((x) => x.status === "skip")) {
      expect(doc, r.name).toContain(`| \`${r.name}\` | ${INDEX.tests[r.name]!.family} | ${r.reason} |`);
    }
    expect(doc).toContain(`**${report.passed} passed, ${report.failed} failed, ${report.skipped} skipped**`);
    for (const s of ONNX_SKIPS) expect(report.results.some((r) => r.status === "skip" && s.pattern.test(r.name)), String(s.pattern)).toBe(true);
  });
});

/** A one-node test folder: model.onnx plus test_data_set_0 with the given tensors. */
function writeTest(root: string, name: string, op: string, inputs: Tensor[], outputs: Tensor[]): void {
  const dir = join(root, name);
  mkdirSync(join(dir, "test_data_set_0"), { recursive: true });
  const ins = inputs.map((_, i) => `x${i}`);
  const model = makeModel(makeGraph({
    nodes: [makeNode(op, ins, ["y"])],
    inputs: inputs.map((t, i) => makeTensorValueInfo(`x${i}`, t.dtype, t.shape)),
    outputs: [makeTensorValueInfo("y", outputs[0]!.dtype, outputs[0]!.shape)],
  }), { opset: 14 });
  writeFileSync(join(dir, "model.onnx"), encodeModel(model));
  inputs.forEach((t, i) => writeFileSync(join(dir, "test_data_set_0", `input_${i}.pb`), encodeTensor(t)));
  outputs.forEach((t, i) => writeFileSync(join(dir, "test_data_set_0", `output_${i}.pb`), encodeTensor(t)));
}

describe("runOnnxNodeTests on hand-made folders", () => {
  it("passes right outputs, fails wrong ones with the first difference, ignores folders without a model", async () => {
    const root = mkdtempSync(join(tmpdir(), "qforge-node-tests-"));
    onTestFinished(() => rmSync(root, { recursive: true, force: true }));
    const a = fromArray("float32", [3], [1, 2, 3]);
    const b = fromArray("float32", [3], [10, 20, 30]);
    writeTest(root, "test_add_ok", "Add", [a, b], [fromArray("float32", [3], [11, 22, 33])]);
    writeTest(root, "test_add_wrong", "Add", [a, b], [fromArray("float32", [3], [11, 22, 34])]);
    writeTest(root, "test_mul_int", "Mul", [fromArray("int64", [2], [3, 4]), fromArray("int64", [2], [5, 6])], [fromArray("int64", [2], [15, 25])]);
    writeTest(root, "test_cast_FLOAT_to_STRING", "Relu", [a], [a]);
    writeTest(root, "test_unknown_op", "NoSuchOp", [a], [a]);
    mkdirSync(join(root, "not_a_test"));
    const lines: string[] = [];
    const r = await runOnnxNodeTests(root, { log: (l) => lines.push(l) });
    expect(r.results.map((x) => [x.name, x.status])).toEqual([
      ["test_add_ok", "pass"], ["test_add_wrong", "fail"], ["test_cast_FLOAT_to_STRING", "skip"], ["test_mul_int", "fail"], ["test_unknown_op", "fail"],
    ]);
    const reason = (n: string): string => r.results.find((x) => x.name === n)!.reason!;
    expect(reason("test_add_wrong")).toMatch(/output 'y' float32\[3\]: element 2: 33 vs 34/);
    expect(reason("test_mul_int")).toMatch(/element 1: got 24, want 25/);
    expect(reason("test_unknown_op")).toMatch(/^import: UNSUPPORTED/);
    expect(lines.at(-1)).toBe("1 passed, 3 failed, 1 skipped");
    expect(lines.filter((l) => l.startsWith("FAIL "))).toHaveLength(3);

    const only = await runOnnxNodeTests(root, { filter: /_ok$/, log: () => {} });
    expect(only.results.map((x) => x.name)).toEqual(["test_add_ok"]);
    await expect(runOnnxNodeTests(join(root, "missing"), { log: () => {} })).rejects.toThrow(/IO_ERROR/);
  });

  it("compares floats with numpy.isclose(rtol 1e-3, atol 1e-7) and everything else exactly", () => {
    const f = (v: number[]): Tensor => fromArray("float32", [v.length], v);
    expect(compareOutput("y", f([1000.9, Number.NaN]), f([1000, Number.NaN]))).toBeUndefined();
    expect(compareOutput("y", f([1002]), f([1000]))).toMatch(/element 0/);
    expect(compareOutput("y", f([1e-8]), f([0]))).toBeUndefined();
    expect(compareOutput("y", f([1e-6]), f([0]))).toMatch(/element 0/);
    expect(compareOutput("y", f([1]), fromArray("float64", [1], [1]))).toMatch(/got float32\[1\], want float64\[1\]/);
    expect(compareOutput("y", f([1, 2]), fromArray("float32", [2, 1], [1, 2]))).toMatch(/want float32\[2,1\]/);
    expect(compareOutput("y", fromArray("int64", [1], [9007199254740993n]), fromArray("int64", [1], [9007199254740992n]))).toMatch(/element 0/);
    expect(compareOutput("y", fromArray("bool", [2], [1, 0]), fromArray("bool", [2], [1, 0]))).toBeUndefined();
  });

  it("reads bfloat16 test data stored as UINT16 bit patterns", async () => {
    const root = mkdtempSync(join(tmpdir(), "qforge-node-tests-"));
    onTestFinished(() => rmSync(root, { recursive: true, force: true }));
    const bits = fromArray("uint16", [2], [0x3f80, 0xc000]); // 1.0, -2.0
    const dir = join(root, "test_cast_bf16");
    mkdirSync(join(dir, "test_data_set_0"), { recursive: true });
    const model = makeModel(makeGraph({
      nodes: [makeNode("Cast", ["x"], ["y"], { to: DataType.FLOAT })],
      inputs: [makeTensorValueInfo("x", "bfloat16", [2])],
      outputs: [makeTensorValueInfo("y", "float32", [2])],
    }), { opset: 13 });
    writeFileSync(join(dir, "model.onnx"), encodeModel(model));
    writeFileSync(join(dir, "test_data_set_0", "input_0.pb"), encodeTensor(bits));
    writeFileSync(join(dir, "test_data_set_0", "output_0.pb"), encodeTensor(fromArray("float32", [2], [1, -2])));
    const r = await runOnnxNodeTests(root, { log: () => {} });
    expect(r.results).toEqual([{ name: "test_cast_bf16", status: "pass" }]);
  });
});
