import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  QforgeError, allClose, dtypeInfo, getElement, isQforgeError, numel, sameShape, type ExportedProgram, type Tensor,
} from "@qforge/ir";
import { importOnnx, readTensorProto } from "@qforge/onnx";
import { runOp, runProgram } from "@qforge/runtime";

/**
 * Every node test the runner does not run, with why. A test is skipped only through this table;
 * anything else either passes or fails.
 */
export const ONNX_SKIPS: readonly { readonly pattern: RegExp; readonly reason: string }[] = [
  { pattern: /^test_cast(like)?_(FLOAT_to_STRING|STRING_to_FLOAT)(_expanded)?$/, reason: "string tensors: qforge tensors are numeric" },
  { pattern: /^test_pow_types_float32_uint64$/, reason: "uint64 tensors: qforge has no uint64 dtype" },
  { pattern: /^test_identity_sequence$/, reason: "Sequence values: qforge graphs carry tensors only" },
  { pattern: /^test_identity_opt$/, reason: "Optional values: qforge graphs carry tensors only" },
  {
    pattern: /^test_castlike_(BFLOAT16_to_FLOAT|FLOAT_to_BFLOAT16)_expanded$/,
    reason: "ONNX 1.12 test-data defect: input 'like' is fed as [1] but the model declares [3,4] (onnxruntime rejects the same feed)",
  },
  {
    pattern: /^test_training_dropout(_default)?(_mask)?$/,
    reason: "training-mode Dropout with ratio > 0: the expected mask was drawn with numpy's RNG (np.random.uniform), which qforge does not reproduce",
  },
];

/** ONNX's backend test runner tolerance for float outputs (onnx/backend/test/runner: rtol 1e-3, atol 1e-7). */
export const ONNX_RTOL = 1e-3;
export const ONNX_ATOL = 1e-7;

/**
 * bfloat16 outputs: one bfloat16 ulp relative (8 significant bits, so neighbouring values near x are at
 * most 2^-7·|x| apart). ONNX 1.12 made its bfloat16 expectations by truncating float32
 * (backend/test/case/node/cast.py) while current ONNX (ml_dtypes), PyTorch and qforge round to
 * nearest even; the two differ by at most one ulp, which rtol 1e-3 (about 1/8 ulp) cannot absorb.
 * ONNX's own runner is looser still: numpy has no bfloat16, so it applies allclose(rtol 1e-3) to the
 * uint16 bit patterns.
 */
export const BFLOAT16_RTOL = 2 ** -7;

export interface OnnxTestResult {
  name: string;
  status: "pass" | "fail" | "skip";
  reason?: string;
}

export interface OnnxTestReport {
  passed: number;
  failed: number;
  skipped: number;
  results: OnnxTestResult[];
}

export interface OnnxTestOptions {
  /** Only tests whose folder name matches. */
  filter?: RegExp;
  /** One line per failure and skip, then the summary (default console.log). */
  log?: (line: string) => void;
}

/** The skip reason for a test, or undefined when it runs. */
export function onnxSkipReason(name: string): string | undefined {
  return ONNX_SKIPS.find((s) => s.pattern.test(name))?.reason;
}

function describe(e: unknown): string {
  if (isQforgeError(e)) return e.message.split("\n")[0]!;
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** Files `<prefix><N>.pb` in numeric order of N. */
function numbered(dir: string, prefix: string): string[] {
  const re = new RegExp(`^${prefix}(\\d+)\\.pb$`);
  return readdirSync(dir)
    .flatMap((f) => {
      const m = re.exec(f);
      return m === null ? [] : [{ f, n: Number(m[1]) }];
    })
    .sort((a, b) => a.n - b.n)
    .map(({ f }) => join(dir, f));
}

function dataSets(testDir: string): string[] {
  return readdirSync(testDir)
    .flatMap((f) => {
      const m = /^test_data_set_(\d+)$/.exec(f);
      return m !== null && statSync(join(testDir, f)).isDirectory() ? [{ f, n: Number(m[1]) }] : [];
    })
    .sort((a, b) => a.n - b.n)
    .map(({ f }) => join(testDir, f));
}

function fmt(t: Tensor): string {
  return `${t.dtype}[${t.shape.join(",")}]`;
}

/**
 * Compares one output: dtype and shape exactly; integer and bool values exactly; float values with
 * numpy.isclose(rtol, atol) (NaN matches NaN, an infinity only the same infinity; bfloat16 with
 * BFLOAT16_RTOL). Returns the first difference, or undefined.
 */
export function compareOutput(name: string, got: Tensor, want: Tensor): string | undefined {
  if (got.dtype !== want.dtype || !sameShape(got.shape, want.shape)) return `output '${name}': got ${fmt(got)}, want ${fmt(want)}`;
  if (dtypeInfo(want.dtype).kind === "float") {
    // numpy.isclose: an infinity matches only the same infinity (|inf - -inf| <= rtol * inf would pass).
    const n = numel(want.shape);
    for (let i = 0; i < n; i++) {
      const a = getElement(got, i);
      const b = getElement(want, i);
      if ((!Number.isFinite(a) || !Number.isFinite(b)) && a !== b && !(Number.isNaN(a) && Number.isNaN(b))) {
        return `output '${name}' ${fmt(want)}: element ${i}: got ${a}, want ${b}`;
      }
    }
    const r = allClose(got, want, want.dtype === "bfloat16" ? BFLOAT16_RTOL : ONNX_RTOL, ONNX_ATOL);
    return r.ok ? undefined : `output '${name}' ${fmt(want)}: ${r.message}`;
  }
  const n = numel(want.shape);
  const exact = (t: Tensor, i: number): number | bigint => (t.data instanceof BigInt64Array ? t.data[i]! : getElement(t, i));
  for (let i = 0; i < n; i++) {
    const a = exact(got, i);
    const b = exact(want, i);
    if (a !== b) return `output '${name}' ${fmt(want)}: element ${i}: got ${a}, want ${b}`;
  }
  return undefined;
}

/**
 * numpy has no bfloat16, so ONNX's test generator writes bfloat16 test data as UINT16 tensors of the
 * raw bits (onnx/backend/test/case/node/cast.py). Where the model's value is bfloat16, such a tensor
 * is read as the bfloat16 it encodes (same Uint16Array storage, no conversion).
 */
export function asModelDtype(t: Tensor, modelDtype: string | undefined): Tensor {
  return t.dtype === "uint16" && modelDtype === "bfloat16" ? { dtype: "bfloat16", shape: t.shape, data: t.data } : t;
}

async function runOne(testDir: string): Promise<{ ok: true } | { ok: false; reason: string }> {
  let ep: ExportedProgram;
  try {
    ep = await importOnnx(join(testDir, "model.onnx"), {
      fold: (op, inputs, attrs, numOutputs) => runOp(op, inputs, { ...attrs }, { numOutputs }),
    });
  } catch (e) {
    return { ok: false, reason: `import: ${describe(e)}` };
  }
  const sets = dataSets(testDir);
  if (sets.length === 0) return { ok: false, reason: "no test_data_set_N folder" };
  for (const set of sets) {
    const label = set.slice(testDir.length + 1);
    let inputs: Tensor[];
    let expected: Tensor[];
    try {
      inputs = numbered(set, "input_").map((f) => readTensorProto(readFileSync(f)));
      expected = numbered(set, "output_").map((f) => readTensorProto(readFileSync(f)));
    } catch (e) {
      return { ok: false, reason: `${label}: reading test data: ${describe(e)}` };
    }
    if (inputs.length !== ep.inputs.length) {
      return { ok: false, reason: `${label}: ${inputs.length} input files for ${ep.inputs.length} model inputs` };
    }
    if (expected.length !== ep.outputs.length) {
      return { ok: false, reason: `${label}: ${expected.length} output files for ${ep.outputs.length} model outputs` };
    }
    let got: Tensor[];
    const values = ep.graph.values;
    inputs = inputs.map((t, i) => asModelDtype(t, values[ep.inputs[i]!.value]?.dtype));
    expected = expected.map((t, i) => asModelDtype(t, values[ep.outputs[i]!.value]?.dtype));
    try {
      got = runProgram(ep, inputs);
    } catch (e) {
      return { ok: false, reason: `${label}: run: ${describe(e)}` };
    }
    for (let i = 0; i < expected.length; i++) {
      const diff = compareOutput(ep.outputs[i]!.name, got[i]!, expected[i]!);
      if (diff !== undefined) return { ok: false, reason: `${label}: ${diff}` };
    }
  }
  return { ok: true };
}

/**
 * Runs ONNX backend node tests: every folder of `dir` holding a model.onnx is imported (folding
 * with the runtime's runOp) and run on each test_data_set_N with runProgram; outputs are compared
 * with output_K.pb (see compareOutput). Skips come only from ONNX_SKIPS. Logs one line per failure
 * and skip and ends with `N passed, M failed, K skipped`.
 */
export async function runOnnxNodeTests(dir: string, opts: OnnxTestOptions = {}): Promise<OnnxTestReport> {
  const log = opts.log ?? ((line: string) => console.log(line));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new QforgeError("IO_ERROR", `ONNX node-test folder '${dir}' does not exist`);
  const names = readdirSync(dir)
    .filter((n) => existsSync(join(dir, n, "model.onnx")))
    .filter((n) => opts.filter === undefined || opts.filter.test(n))
    .sort();
  const results: OnnxTestResult[] = [];
  for (const name of names) {
    const skip = onnxSkipReason(name);
    if (skip !== undefined) {
      results.push({ name, status: "skip", reason: skip });
      log(`SKIP ${name}: ${skip}`);
      continue;
    }
    const r = await runOne(join(dir, name));
    if (r.ok) {
      results.push({ name, status: "pass" });
    } else {
      results.push({ name, status: "fail", reason: r.reason });
      log(`FAIL ${name}: ${r.reason}`);
    }
  }
  const count = (s: OnnxTestResult["status"]): number => results.filter((r) => r.status === s).length;
  const report = { passed: count("pass"), failed: count("fail"), skipped: count("skip"), results };
  log(`${report.passed} passed, ${report.failed} failed, ${report.skipped} skipped`);
  return report;
}
