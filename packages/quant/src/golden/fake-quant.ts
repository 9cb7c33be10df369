/**
 * Runs one case of a PyTorch golden `fake_quant.json` (schema: ../shared/golden/README.md) through
 * qforge and compares with the README's pass criteria: every tensor bit-exact (float32 bits, so
 * -0.0 differs from 0.0), except the LSQ totals `grad_scale` / `grad_zero_point` (float32 sums in
 * the kernel's order) within 1e-5 relative. Nothing here depends on case ids, counts or shapes.
 */
import { numel, QforgeError, type DType, type Tensor } from "@qforge/ir";
import {
  dequantizePerChannel, dequantizePerTensor, quantizePerChannel, quantizePerTensor,
} from "../primitives/classic.js";
import { isTorchQDType, type QuantDType } from "../primitives/qdtype.js";
import { fakeQuantizePerChannelAffine, fakeQuantizePerTensorAffine } from "../fake-quant/functional.js";
import {
  FakeQuantize, FusedMovingAvgObsFakeQuantize, OBSERVER_FACTORIES, type FakeQuantizeKwargs, type ObserverFactory,
} from "../fake-quant/modules.js";
import {
  fakeQuantizeLearnablePerChannelAffine, fakeQuantizeLearnablePerTensorAffine, type LearnableFakeQuantResult,
} from "../fake-quant/learnable.js";

export interface GoldenCaseResult {
  id: string;
  ok: boolean;
  /** A few human-readable first differences (empty when ok). */
  diffs: string[];
}

/** A tensor as the golden files write it. */
export interface GoldenTensor {
  dtype: string;
  shape: number[];
  data: number[];
}

const MAX_DIFFS = 6;
const LSQ_SUM_RTOL = 1e-5;

const GOLDEN_DTYPES: Record<string, DType> = {
  float32: "float32", float64: "float64", int64: "int64", int32: "int32", int8: "int8", uint8: "uint8",
};

function isGoldenTensor(v: unknown): v is GoldenTensor {
  return typeof v === "object" && v !== null && Array.isArray((v as GoldenTensor).data) && Array.isArray((v as GoldenTensor).shape);
}

/** A golden Tensor as a qforge Tensor (int64 values become an int64 tensor, read back as numbers). */
export function goldenTensor(v: unknown, name: string): Tensor {
  if (!isGoldenTensor(v)) throw new QforgeError("BAD_INPUT", `golden field '${name}' is not a tensor`);
  const dtype = GOLDEN_DTYPES[v.dtype];
  if (dtype === undefined) throw new QforgeError("BAD_INPUT", `golden field '${name}' has unsupported dtype ${v.dtype}`);
  const n = numel(v.shape);
  if (v.data.length !== n) throw new QforgeError("BAD_INPUT", `golden field '${name}': ${v.data.length} values for shape [${v.shape.join(", ")}]`);
  let data: Tensor["data"];
  switch (dtype) {
    case "float32": data = Float32Array.from(v.data); break;
    case "float64": data = Float64Array.from(v.data); break;
    case "int64": data = BigInt64Array.from(v.data, (x) => BigInt(x)); break;
    case "int32": data = Int32Array.from(v.data); break;
    case "int8": data = Int8Array.from(v.data); break;
    default: data = Uint8Array.from(v.data); break;
  }
  return { dtype, shape: [...v.shape], data };
}

/** A number-or-1-element-tensor field (`qparams_as_tensors` cases give 1-element tensors). */
function goldenScalar(v: unknown, name: string): number {
  if (typeof v === "number") return v;
  if (isGoldenTensor(v) && v.data.length === 1) return v.data[0]!;
  throw new QforgeError("BAD_INPUT", `golden field '${name}' is not a number`);
}

function values(t: Tensor): number[] {
  const d = t.data;
  const out: number[] = [];
  for (let i = 0; i < d.length; i++) out.push(Number(d[i]));
  return out;
}

function shapesDiffer(actual: Tensor, expected: GoldenTensor): boolean {
  return actual.shape.length !== expected.shape.length || actual.shape.some((d, i) => d !== expected.shape[i]);
}

/** Collects differences for one case. */
export class DiffLog {
  readonly diffs: string[] = [];
  private count = 0;

  add(msg: string): void {
    this.count++;
    if (this.diffs.length < MAX_DIFFS) this.diffs.push(msg);
  }

  get failed(): boolean {
    return this.count > 0;
  }

  /** Bit-exact comparison of float32 values (or exact integers). */
  exact(name: string, actual: Tensor | undefined, expected: unknown): void {
    if (expected === null || expected === undefined) return;
    if (!isGoldenTensor(expected)) {
      this.add(`${name}: golden value is not a tensor`);
      return;
    }
    if (actual === undefined) {
      this.add(`${name}: not computed`);
      return;
    }
    if (shapesDiffer(actual, expected)) {
      this.add(`${name}: shape [${actual.shape.join(", ")}] vs expected [${expected.shape.join(", ")}]`);
      return;
    }
    const a = values(actual);
    const float = expected.dtype === "float32" || expected.dtype === "float64";
    let bad = 0;
    let first = "";
    for (let i = 0; i < a.length; i++) {
      const want = float ? Math.fround(expected.data[i]!) : expected.data[i]!;
      if (!Object.is(a[i], want)) {
        if (bad === 0) first = `${name}[${i}]: got ${fmt(a[i]!)}, expected ${fmt(want)}`;
        bad++;
      }
    }
    if (bad > 0) this.add(`${first} (${bad} of ${a.length} differ)`);
  }

  /** |actual - expected| <= rtol * |expected| element by element. */
  close(name: string, actual: Tensor | undefined, expected: unknown, rtol: number): void {
    if (expected === null || expected === undefined) return;
    if (!isGoldenTensor(expected) || actual === undefined) {
      this.add(`${name}: missing`);
      return;
    }
    if (shapesDiffer(actual, expected)) {
      this.add(`${name}: shape [${actual.shape.join(", ")}] vs expected [${expected.shape.join(", ")}]`);
      return;
    }
    const a = values(actual);
    for (let i = 0; i < a.length; i++) {
      const want = expected.data[i]!;
      if (!(Math.abs(a[i]! - want) <= rtol * Math.abs(want))) {
        this.add(`${name}[${i}]: got ${fmt(a[i]!)}, expected ${fmt(want)} (relative tolerance ${rtol})`);
        return;
      }
    }
  }
}

function fmt(v: number): string {
  return Object.is(v, -0) ? "-0" : String(v);
}

function quantDTypeOf(v: unknown): QuantDType {
  if (typeof v === "string" && isTorchQDType(v)) return v;
  throw new QforgeError("BAD_INPUT", `golden dtype ${String(v)} is not quint8/qint8/qint32`);
}

function optionalTensor(v: unknown, name: string): Tensor | undefined {
  return v === null || v === undefined ? undefined : goldenTensor(v, name);
}

function compareLearnable(log: DiffLog, r: LearnableFakeQuantResult, c: Record<string, unknown>): void {
  log.exact("output", r.output, c.output);
  log.exact("grad_input", r.gradInput, c.grad_input);
  log.exact("grad_scale_elements", r.gradScaleElements, c.grad_scale_elements);
  log.exact("grad_zero_point_elements", r.gradZeroPointElements, c.grad_zero_point_elements);
  log.close("grad_scale", r.gradScale, c.grad_scale, LSQ_SUM_RTOL);
  log.close("grad_zero_point", r.gradZeroPoint, c.grad_zero_point, LSQ_SUM_RTOL);
}

/** PyTorch kwargs (snake_case) of a module case as qforge observer kwargs (camelCase). */
function moduleKwargs(kwargs: Record<string, unknown>): FakeQuantizeKwargs {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(kwargs)) {
    if (k === "observer") continue;
    out[k.replace(/_([a-z])/g, (_m, ch: string) => ch.toUpperCase())] = v;
  }
  return out as FakeQuantizeKwargs;
}

/** `FakeQuantize` / `FusedMovingAvgObsFakeQuantize` cases: one training step per entry of `steps`. */
function runModuleSteps(op: "FakeQuantize" | "FusedMovingAvgObsFakeQuantize", c: Record<string, unknown>, log: DiffLog): void {
  const kwargs = (c.kwargs ?? {}) as Record<string, unknown>;
  const observerName = String(kwargs.observer ?? "MovingAverageMinMaxObserver");
  const factory = (OBSERVER_FACTORIES as Record<string, ObserverFactory | undefined>)[observerName];
  if (factory === undefined) {
    log.add(`unknown observer '${observerName}'`);
    return;
  }
  const module = op === "FakeQuantize"
    ? new FakeQuantize(factory, moduleKwargs(kwargs))
    : new FusedMovingAvgObsFakeQuantize(factory, moduleKwargs(kwargs));
  const steps = Array.isArray(c.steps) ? (c.steps as Record<string, unknown>[]) : [];
  if (steps.length === 0) log.add("case has no steps");
  steps.forEach((step, k) => {
    const r = module.forward(goldenTensor(step.input, `steps[${k}].input`), optionalTensor(step.upstream_grad, `steps[${k}].upstream_grad`));
    log.exact(`steps[${k}].output`, r.output, step.output);
    log.exact(`steps[${k}].grad_input`, r.gradInput, step.grad_input);
    log.exact(`steps[${k}].scale`, module.scale, step.scale);
    log.exact(`steps[${k}].zero_point`, module.zeroPoint, step.zero_point);
    log.exact(`steps[${k}].min_val`, module.minVal ?? undefined, step.min_val);
    log.exact(`steps[${k}].max_val`, module.maxVal ?? undefined, step.max_val);
  });
}

function runCase(c: Record<string, unknown>, log: DiffLog): void {
  const op = c.op;
  switch (op) {
    case "fake_quantize_per_tensor_affine": {
      const r = fakeQuantizePerTensorAffine(
        goldenTensor(c.input, "input"), goldenScalar(c.scale, "scale"), goldenScalar(c.zero_point, "zero_point"),
        goldenScalar(c.quant_min, "quant_min"), goldenScalar(c.quant_max, "quant_max"), optionalTensor(c.upstream_grad, "upstream_grad"),
      );
      log.exact("output", r.output, c.output);
      log.exact("grad_input", r.gradInput, c.grad_input);
      return;
    }
    case "fake_quantize_per_channel_affine": {
      const r = fakeQuantizePerChannelAffine(
        goldenTensor(c.input, "input"), goldenTensor(c.scale, "scale"), goldenTensor(c.zero_point, "zero_point"),
        goldenScalar(c.axis, "axis"), goldenScalar(c.quant_min, "quant_min"), goldenScalar(c.quant_max, "quant_max"),
        optionalTensor(c.upstream_grad, "upstream_grad"),
      );
      log.exact("output", r.output, c.output);
      log.exact("grad_input", r.gradInput, c.grad_input);
      return;
    }
    case "quantize_per_tensor": {
      const scale = goldenScalar(c.scale, "scale");
      const zp = goldenScalar(c.zero_point, "zero_point");
      const q = quantizePerTensor(goldenTensor(c.input, "input"), scale, zp, quantDTypeOf(c.dtype));
      log.exact("int_repr", q, c.int_repr);
      log.exact("dequantized", dequantizePerTensor(q, scale, zp), c.dequantized);
      return;
    }
    case "quantize_per_channel": {
      const scale = goldenTensor(c.scale, "scale");
      const zp = goldenTensor(c.zero_point, "zero_point");
      const axis = goldenScalar(c.axis, "axis");
      const q = quantizePerChannel(goldenTensor(c.input, "input"), scale, zp, axis, quantDTypeOf(c.dtype));
      log.exact("int_repr", q, c.int_repr);
      log.exact("dequantized", dequantizePerChannel(q, scale, zp, axis), c.dequantized);
      return;
    }
    case "fake_quantize_learnable_per_tensor_affine": {
      const r = fakeQuantizeLearnablePerTensorAffine(
        goldenTensor(c.input, "input"), goldenTensor(c.scale, "scale"), goldenTensor(c.zero_point, "zero_point"),
        goldenScalar(c.quant_min, "quant_min"), goldenScalar(c.quant_max, "quant_max"), goldenScalar(c.grad_factor, "grad_factor"),
        optionalTensor(c.upstream_grad, "upstream_grad"),
      );
      compareLearnable(log, r, c);
      return;
    }
    case "fake_quantize_learnable_per_channel_affine": {
      const r = fakeQuantizeLearnablePerChannelAffine(
        goldenTensor(c.input, "input"), goldenTensor(c.scale, "scale"), goldenTensor(c.zero_point, "zero_point"),
        goldenScalar(c.axis, "axis"), goldenScalar(c.quant_min, "quant_min"), goldenScalar(c.quant_max, "quant_max"),
        goldenScalar(c.grad_factor, "grad_factor"), optionalTensor(c.upstream_grad, "upstream_grad"),
      );
      compareLearnable(log, r, c);
      return;
    }
    case "FakeQuantize":
    case "FusedMovingAvgObsFakeQuantize":
      runModuleSteps(op, c, log);
      return;
    default:
      log.add(`unknown op '${String(op)}'`);
  }
}

/** Runs one golden fake_quant case and compares it with the README's pass criteria. */
export function checkFakeQuantCase(c: any): GoldenCaseResult {
  const id = typeof c?.id === "string" ? c.id : "<no id>";
  const log = new DiffLog();
  try {
    runCase(c as Record<string, unknown>, log);
  } catch (e) {
    log.add(`threw: ${e instanceof Error ? e.message : String(e)}`);
  }
  return { id, ok: !log.failed, diffs: log.diffs };
}
