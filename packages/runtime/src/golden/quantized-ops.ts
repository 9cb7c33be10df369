/**
 * Runs one case of PyTorch's golden `quantized_ops.json` (../shared/golden, schema in its README)
 * through the quantized reference kernels and compares the integers.
 *
 * Pass criteria (golden README, "Suggested pass criteria"): linear / conv2d (+relu) on both engines
 * and qnnpack's dynamic linear are exact; every other op may differ from PyTorch by one unit (PyTorch's
 * fixed-point requantization against our float reference; such values are counted in `offByOne`);
 * onednn's dynamic linear is compared with a relative error of at most 1e-4 of the output's largest
 * magnitude. Nothing depends on case ids, counts or shapes.
 */
import { fromArray, getElement, isQforgeError, numel, type AttrValue, type DType, type Tensor } from "@qforge/ir";
import { chooseQuantizationParamsAten } from "@qforge/quant";
import { runOp } from "../eager.js";
import "../quantized/index.js";

export interface QuantizedOpCaseResult {
  id: string;
  ok: boolean;
  /** What differs, one line each (empty when ok). */
  diffs: string[];
  /** Output integers that differ from PyTorch's by exactly one (allowed outside the exact ops). */
  offByOne: number;
}

/** Relative tolerance for onednn's dynamic linear (no exact rule is known for oneDNN's float pipeline). */
const ONEDNN_DYNAMIC_RTOL = 1e-4;

/** Ops whose integers must match PyTorch exactly (both engines). */
const EXACT_OPS: ReadonlySet<string> = new Set(["linear", "linear_relu", "conv2d", "conv2d_relu"]);

// ---- reading the JSON -------------------------------------------------------------------------

const TORCH_DTYPES: Readonly<Record<string, DType>> = {
  float32: "float32", float64: "float64", int64: "int64", int32: "int32", int8: "int8", uint8: "uint8",
  quint8: "uint8", qint8: "int8", qint32: "int32",
};

class CaseError extends Error {}

function dtypeOf(name: unknown): DType {
  const d = typeof name === "string" ? TORCH_DTYPES[name] : undefined;
  if (d === undefined) throw new CaseError(`unknown dtype ${JSON.stringify(name)}`);
  return d;
}

function plainTensor(j: any, what: string): Tensor {
  if (j === null || typeof j !== "object" || !Array.isArray(j.shape) || !Array.isArray(j.data)) {
    throw new CaseError(`${what} is not a tensor`);
  }
  return fromArray(dtypeOf(j.dtype), j.shape, j.data);
}

/** A quantized tensor as the kernels take it: integers, scale tensor, zero point tensor. */
interface QTensor {
  q: Tensor;
  scale: Tensor;
  zeroPoint: Tensor;
  perChannel: boolean;
}

function quantizedTensor(j: any, what: string): QTensor {
  if (j === null || typeof j !== "object" || j.int_repr === undefined) throw new CaseError(`${what} is not a quantized tensor`);
  const q = plainTensor(j.int_repr, `${what}.int_repr`);
  if (q.dtype !== dtypeOf(j.dtype)) throw new CaseError(`${what}: int_repr ${q.dtype} does not hold ${j.dtype}`);
  if (j.qscheme === "per_tensor_affine" || j.qscheme === "per_tensor_symmetric") {
    return { q, scale: fromArray("float64", [], [j.scale]), zeroPoint: fromArray("int64", [], [j.zero_point]), perChannel: false };
  }
  if (j.qscheme === "per_channel_affine" || j.qscheme === "per_channel_symmetric") {
    if (j.axis !== 0) throw new CaseError(`${what}: per-channel axis ${j.axis} (quantized weights are per output channel, axis 0)`);
    return { q, scale: plainTensor(j.scale, `${what}.scale`), zeroPoint: plainTensor(j.zero_point, `${what}.zero_point`), perChannel: true };
  }
  throw new CaseError(`${what}: unknown qscheme ${JSON.stringify(j.qscheme)}`);
}

/** The requested output qparams: output_scale/output_zero_point, else the expected output's own. */
function outputQParams(c: any): [Tensor, Tensor] {
  const scale = typeof c.output_scale === "number" ? c.output_scale : c.output?.scale;
  const zp = typeof c.output_zero_point === "number" ? c.output_zero_point : c.output?.zero_point;
  if (typeof scale !== "number" || typeof zp !== "number") throw new CaseError("no per-tensor output qparams");
  return [fromArray("float64", [], [scale]), fromArray("int64", [], [zp])];
}

function pairOf(v: unknown, what: string): number[] {
  if (typeof v === "number") return [v, v];
  if (Array.isArray(v) && v.every((x) => typeof x === "number")) return v as number[];
  throw new CaseError(`${what} is not an int or a pair`);
}

// ---- building the op call ----------------------------------------------------------------------

interface OpCall {
  op: string;
  inputs: (Tensor | undefined)[];
  attrs: Record<string, AttrValue>;
}

function unaryCall(c: any, op: string, attrs: Record<string, AttrValue> = {}): OpCall {
  const x = quantizedTensor(c.input, "input");
  const [ys, yz] = outputQParams(c);
  return { op, inputs: [x.q, x.scale, x.zeroPoint, ys, yz], attrs };
}

function buildCall(c: any, engine: string): OpCall {
  const op: string = c.op;
  switch (op) {
    case "linear":
    case "linear_relu":
    case "conv2d":
    case "conv2d_relu": {
      const x = quantizedTensor(c.input, "input");
      const w = quantizedTensor(c.weight, "weight");
      const bias = c.bias === null || c.bias === undefined ? undefined : plainTensor(c.bias, "bias");
      const [ys, yz] = outputQParams(c);
      const attrs: Record<string, AttrValue> = { engine, fuse_relu: op.endsWith("_relu") };
      if (op.startsWith("conv2d")) {
        if (c.padding_mode !== undefined && c.padding_mode !== "zeros") throw new CaseError(`padding_mode ${c.padding_mode}`);
        attrs["stride"] = pairOf(c.stride, "stride");
        attrs["padding"] = pairOf(c.padding, "padding");
        attrs["dilation"] = pairOf(c.dilation, "dilation");
        attrs["groups"] = c.groups ?? 1;
      }
      return {
        op: op.startsWith("linear") ? "quantized_linear" : "quantized_conv2d",
        inputs: [x.q, x.scale, x.zeroPoint, w.q, w.scale, w.zeroPoint, bias, ys, yz],
        attrs,
      };
    }
    case "add":
    case "add_relu":
    case "mul": {
      const ins = c.inputs as unknown[];
      if (!Array.isArray(ins) || ins.length !== 2) throw new CaseError(`${op} needs two inputs`);
      const a = quantizedTensor(ins[0], "inputs[0]");
      const b = quantizedTensor(ins[1], "inputs[1]");
      const [ys, yz] = outputQParams(c);
      return {
        op: op === "mul" ? "quantized_mul" : "quantized_add",
        inputs: [a.q, a.scale, a.zeroPoint, b.q, b.scale, b.zeroPoint, ys, yz],
        attrs: { fuse_relu: op === "add_relu" },
      };
    }
    case "cat": {
      const ins = c.inputs as unknown[];
      if (!Array.isArray(ins) || ins.length === 0) throw new CaseError("cat needs inputs");
      const [ys, yz] = outputQParams(c);
      const inputs: (Tensor | undefined)[] = [ys, yz];
      ins.forEach((j, i) => {
        const t = quantizedTensor(j, `inputs[${i}]`);
        inputs.push(t.q, t.scale, t.zeroPoint);
      });
      return { op: "quantized_cat", inputs, attrs: { dim: c.dim ?? 0 } };
    }
    case "relu": return unaryCall(c, "quantized_relu");
    case "hardswish": return unaryCall(c, "quantized_hardswish");
    case "sigmoid": return unaryCall(c, "quantized_sigmoid");
    case "hardsigmoid": return unaryCall(c, "quantized_hardsigmoid");
    case "tanh": return unaryCall(c, "quantized_tanh");
    case "leaky_relu": return unaryCall(c, "quantized_leaky_relu", { negative_slope: c.negative_slope ?? 0.01 });
    case "hardtanh": return unaryCall(c, "quantized_hardtanh", { min_val: c.min_val ?? -1, max_val: c.max_val ?? 1 });
    case "max_pool2d": {
      const attrs: Record<string, AttrValue> = {
        kernel_size: pairOf(c.kernel_size, "kernel_size"),
        stride: c.stride === null || c.stride === undefined ? [] : pairOf(c.stride, "stride"),
        padding: pairOf(c.padding ?? 0, "padding"),
        dilation: pairOf(c.dilation ?? 1, "dilation"),
        ceil_mode: c.ceil_mode === true,
      };
      return unaryCall(c, "quantized_max_pool2d", attrs);
    }
    case "avg_pool2d": {
      const attrs: Record<string, AttrValue> = {
        kernel_size: pairOf(c.kernel_size, "kernel_size"),
        stride: c.stride === null || c.stride === undefined ? [] : pairOf(c.stride, "stride"),
        padding: pairOf(c.padding ?? 0, "padding"),
        ceil_mode: c.ceil_mode === true,
        count_include_pad: c.count_include_pad !== false,
        divisor_override: typeof c.divisor_override === "number" ? c.divisor_override : 0,
      };
      return unaryCall(c, "quantized_avg_pool2d", attrs);
    }
    case "adaptive_avg_pool2d": return unaryCall(c, "quantized_adaptive_avg_pool2d", { output_size: pairOf(c.output_size, "output_size") });
    case "mean": {
      const dim = typeof c.dim === "number" ? [c.dim] : (c.dim as number[]);
      return unaryCall(c, "quantized_mean", { dim, keepdim: c.keepdim === true });
    }
    case "upsample_nearest2d": {
      const attrs: Record<string, AttrValue> = {};
      if (c.scale_factor !== null && c.scale_factor !== undefined) attrs["scale_factor"] = pairOf(c.scale_factor, "scale_factor");
      else attrs["output_size"] = pairOf(c.output_size, "output_size");
      return unaryCall(c, "quantized_upsample_nearest2d", attrs);
    }
    case "dynamic_linear": {
      const x = plainTensor(c.input, "input");
      const w = quantizedTensor(c.weight, "weight");
      const bias = c.bias === null || c.bias === undefined ? undefined : plainTensor(c.bias, "bias");
      return {
        op: "dynamic_quantized_linear",
        inputs: [x, w.q, w.scale, w.zeroPoint, bias],
        attrs: { engine, reduce_range: c.reduce_range === true },
      };
    }
    default:
      throw new CaseError(`unknown op ${JSON.stringify(op)}`);
  }
}

// ---- comparing ---------------------------------------------------------------------------------

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

const MAX_LISTED = 8;

function compareIntegers(got: Tensor, want: Tensor, tolerance: number, res: QuantizedOpCaseResult): void {
  if (got.dtype !== want.dtype || !sameShape(got.shape, want.shape)) {
    res.diffs.push(`output is ${got.dtype}[${got.shape.join(",")}], expected ${want.dtype}[${want.shape.join(",")}]`);
    return;
  }
  let bad = 0;
  for (let i = 0; i < numel(want.shape); i++) {
    const d = Math.abs(getElement(got, i) - getElement(want, i));
    if (d === 0) continue;
    if (d === 1) res.offByOne++;
    if (d > tolerance) {
      bad++;
      if (bad <= MAX_LISTED) res.diffs.push(`element ${i}: ${getElement(got, i)}, expected ${getElement(want, i)}`);
    }
  }
  if (bad > MAX_LISTED) res.diffs.push(`... ${bad - MAX_LISTED} more elements differ`);
}

function compareFloats(got: Tensor, want: Tensor, rtol: number, res: QuantizedOpCaseResult): void {
  if (got.dtype !== want.dtype || !sameShape(got.shape, want.shape)) {
    res.diffs.push(`output is ${got.dtype}[${got.shape.join(",")}], expected ${want.dtype}[${want.shape.join(",")}]`);
    return;
  }
  const n = numel(want.shape);
  let scale = 0;
  for (let i = 0; i < n; i++) scale = Math.max(scale, Math.abs(getElement(want, i)));
  let bad = 0;
  for (let i = 0; i < n; i++) {
    const g = getElement(got, i);
    const e = getElement(want, i);
    const ok = rtol === 0 ? Object.is(g, e) || g === e : Math.abs(g - e) <= rtol * scale;
    if (ok) continue;
    bad++;
    if (bad <= MAX_LISTED) res.diffs.push(`element ${i}: ${g}, expected ${e}${rtol === 0 ? "" : ` (|diff| ${Math.abs(g - e)} > ${rtol} x ${scale})`}`);
  }
  if (bad > MAX_LISTED) res.diffs.push(`... ${bad - MAX_LISTED} more elements differ`);
}

/** dynamic_linear: the activation qparams we choose must be the ones PyTorch reports. */
function checkDynamicQParams(c: any, engine: string, res: QuantizedOpCaseResult): void {
  const want = c.input_qparams_choose_qparams;
  if (want === undefined || want === null) return;
  const x = plainTensor(c.input, "input");
  let min = 0;
  let max = 0;
  for (let i = 0; i < numel(x.shape); i++) {
    const v = getElement(x, i);
    if (i === 0 || v < min) min = v;
    if (i === 0 || v > max) max = v;
  }
  const qp = chooseQuantizationParamsAten(min, max, 0, 255, { reduceRange: engine === "onednn" && c.reduce_range === true });
  if (qp.scale !== want.scale || qp.zeroPoint !== want.zero_point) {
    res.diffs.push(`activation qparams (${qp.scale}, ${qp.zeroPoint}), PyTorch chose (${want.scale}, ${want.zero_point})`);
  }
}

/** Runs and checks one quantized_ops.json case. Never throws: problems are reported in `diffs`. */
export function checkQuantizedOpCase(c: any): QuantizedOpCaseResult {
  const res: QuantizedOpCaseResult = { id: String(c?.id ?? "?"), ok: false, diffs: [], offByOne: 0 };
  try {
    const engine = c.engine;
    if (engine !== "qnnpack" && engine !== "onednn") throw new CaseError(`unknown engine ${JSON.stringify(engine)}`);
    const call = buildCall(c, engine);
    const [got] = runOp(call.op, call.inputs, call.attrs, { node: res.id });
    if (c.op === "dynamic_linear") {
      checkDynamicQParams(c, engine, res);
      compareFloats(got!, plainTensor(c.output, "output"), engine === "qnnpack" ? 0 : ONEDNN_DYNAMIC_RTOL, res);
    } else {
      const want = quantizedTensor(c.output, "output");
      compareIntegers(got!, want.q, EXACT_OPS.has(c.op) ? 0 : 1, res);
    }
  } catch (e) {
    if (e instanceof CaseError) res.diffs.push(`bad case: ${e.message}`);
    else if (isQforgeError(e)) res.diffs.push(`kernel refused the case: ${e.message}`);
    else res.diffs.push(`kernel crashed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  }
  res.ok = res.diffs.length === 0;
  return res;
}
