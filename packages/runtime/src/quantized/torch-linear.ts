/**
 * PyTorch 1.13's quantized Linear / Conv2d / dynamic Linear (`torch.ops.quantized.linear`,
 * `linear_relu`, `conv2d`, `conv2d_relu`, `linear_dynamic`) on the two engines PT2E targets. Both
 * accumulate `(x - x_zp) * (w - w_zp)` in int32; they differ in how they get back to the output's
 * integers (golden README item 7, exact on every public case):
 *
 * - qnnpack (aten/src/ATen/native/quantized/cpu/qlinear.cpp, qconv.cpp, qnnpack_utils.h): the float
 *   bias is quantized to int32 with the double scale `w_scale * x_scale` (quantize_per_tensor /
 *   _channel rules), the float32 requantization scale M comes from QNNPACK (quint8 activations) or
 *   XNNPACK (qint8 activations; PyTorch 1.13 itself only takes per-tensor weights there), and
 *   `y = clamp(rint(f32(f32(acc + bias_q) * M)) + y_zp)`. Fused ReLU raises the lower clamp to y_zp
 *   (`activationLimits`).
 * - onednn (qlinear.cpp/qconv.cpp's PackedLinearWeightsOnednn): no bias quantization; the output
 *   is `clamp(rint(acc * x_scale * w_scale / y_scale + bias / y_scale) + y_zp)` in double.
 *   oneDNN refuses weights with a non-zero zero point.
 */
import { numel, type DType, type Tensor } from "@qforge/ir";
import { chooseQuantizationParamsAten, f32, quantizePerTensor, quantizeValue, rint } from "@qforge/quant";
import {
  checkScales, clamp, fail, intRange, intTensor, intValues, need, numbers, paramVector, scalarParam, wrapInt32,
  type Kernel, type Where,
} from "./common.js";
import { convAccumulate, linearAccumulate, type ConvGeometry } from "./int-core.js";

export type QuantizedEngine = "qnnpack" | "onednn";

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

function engineOf(w: Where, v: unknown): QuantizedEngine {
  if (v === "qnnpack" || v === "onednn") return v;
  return fail(w, "BAD_ATTRIBUTE", `engine must be "qnnpack" or "onednn", got ${JSON.stringify(v)}`);
}

/** Weight qparams, one entry per output channel (a per-tensor value is repeated). */
interface WeightQParams {
  readonly scales: number[];
  readonly zeroPoints: number[];
}

function weightQParams(w: Where, scaleT: Tensor | undefined, zpT: Tensor | undefined, outChannels: number): WeightQParams {
  const scales = paramVector(w, need(w, scaleT, "w_scale"), outChannels, "w_scale");
  const zeroPoints = paramVector(w, need(w, zpT, "w_zero_point"), outChannels, "w_zero_point");
  checkScales(w, scales, "w_scale");
  return { scales, zeroPoints };
}

function floatBias(w: Where, t: Tensor | undefined, outChannels: number): number[] | undefined {
  if (t === undefined) return undefined;
  const b = numbers(t).map(f32);
  if (b.length !== outChannels) fail(w, "BAD_SHAPE", `bias must have ${outChannels} values, got ${b.length}`);
  return b;
}

/** Everything the requantization step needs besides the accumulators. */
interface Requant {
  readonly engine: QuantizedEngine;
  readonly xDType: DType;
  readonly xScale: number;
  readonly weight: WeightQParams;
  readonly bias: number[] | undefined;
  readonly yScale: number;
  readonly yZeroPoint: number;
  readonly lo: number;
  readonly hi: number;
}

/**
 * Turns int32 accumulators into output integers the way `engine` does. Accumulators come in runs of
 * `run` values of one output channel, channels cycling (`run` 1 for linear's [rows, N], the plane
 * size for conv's [N, C, H, W]).
 */
function requantize(acc: Int32Array, run: number, r: Requant): Int32Array {
  const out = new Int32Array(acc.length);
  const channels = r.weight.scales.length;
  const { lo, hi, yZeroPoint: zp } = r;
  if (r.engine === "qnnpack") {
    // quant_utils::QuantizeBias: scale `weight.q_scale() * input.q_scale()` (per channel the double
    // q_per_channel_scales() times it), then quantize_per_tensor/_channel to qint32.
    const biasQ = new Array<number>(channels).fill(0);
    if (r.bias !== undefined) {
      for (let c = 0; c < channels; c++) biasQ[c] = quantizeValue(r.bias[c]!, r.weight.scales[c]! * r.xScale, 0, INT32_MIN, INT32_MAX);
    }
    const mult = r.weight.scales.map((s) => requantizationScale(r.xDType, f32(r.xScale), f32(s), f32(r.yScale)));
    for (let start = 0, c = 0; start < acc.length; start += run, c = c + 1 === channels ? 0 : c + 1) {
      const bq = biasQ[c]!;
      const m = mult[c]!;
      const end = Math.min(acc.length, start + run);
      for (let i = start; i < end; i++) {
        // The gemm's fp32 requantization: float(acc + bias_q) * scale, rounded half to even (cvtps2dq).
        const v = f32(f32(wrapInt32(acc[i]! + bq)) * m);
        const q = rint(v) + zp;
        out[i] = q < lo ? lo : q > hi ? hi : q;
      }
    }
    return out;
  }
  for (let start = 0, c = 0; start < acc.length; start += run, c = c + 1 === channels ? 0 : c + 1) {
    const b = r.bias === undefined ? 0 : r.bias[c]! / r.yScale;
    const s = r.weight.scales[c]!;
    const end = Math.min(acc.length, start + run);
    for (let i = start; i < end; i++) {
      const q = rint((acc[i]! * r.xScale * s) / r.yScale + b) + zp;
      out[i] = q < lo ? lo : q > hi ? hi : q;
    }
  }
  return out;
}

/**
 * The float32 requantization scale of the qnnpack engine. quint8 activations run PyTorch's QNNPACK,
 * whose `generate_requantization_scales` (qnnpack_utils.h) computes `(w_scale * x_scale) *
 * (1 / y_scale)`; qint8 activations run XNNPACK, whose operators compute `x_scale * w_scale /
 * y_scale` (xnn_create_fully_connected_nc_qs8 / convolution_nhwc_qs8). All operands are floats.
 */
function requantizationScale(xDType: DType, sx: number, sw: number, sy: number): number {
  return xDType === "uint8" ? f32(f32(sw * sx) * f32(1 / sy)) : f32(f32(sx * sw) / sy);
}

/** Shared setup of quantized linear and conv2d: qparams, engine checks and clamp bounds. */
function staticRequant(w: Where, inputs: readonly (Tensor | undefined)[], attrs: Readonly<Record<string, unknown>>,
  x: Tensor, outChannels: number): Requant {
  const engine = engineOf(w, attrs["engine"]);
  if (x.dtype !== "uint8" && x.dtype !== "int8") {
    fail(w, "UNSUPPORTED", `the ${engine} engine takes quint8 or qint8 activations, got ${x.dtype}`);
  }
  const xScale = scalarParam(w, inputs[1], "x_scale");
  const weight = weightQParams(w, inputs[4], inputs[5], outChannels);
  if (engine === "onednn" && weight.zeroPoints.some((z) => z !== 0)) {
    fail(w, "UNSUPPORTED", "the onednn engine refuses weights with a non-zero zero point", "quantize weights symmetrically for onednn");
  }
  const yScale = scalarParam(w, inputs[7], "y_scale");
  const yZeroPoint = scalarParam(w, inputs[8], "y_zero_point");
  checkScales(w, [xScale, yScale], "x_scale/y_scale");
  const [qmin, qmax] = intRange(x.dtype);
  if (!(yZeroPoint >= qmin && yZeroPoint <= qmax)) fail(w, "BAD_DATA", `y_zero_point ${yZeroPoint} is outside ${x.dtype}'s range`);
  const lo = attrs["fuse_relu"] === true ? Math.max(qmin, yZeroPoint) : qmin;
  return { engine, xDType: x.dtype, xScale, weight, bias: floatBias(w, inputs[6], outChannels), yScale, yZeroPoint, lo, hi: qmax };
}

/** torch.ops.quantized.linear / linear_relu. */
export const quantizedLinear: Kernel = (inputs, attrs, ctx) => {
  const w: Where = { node: ctx.node, op: ctx.op };
  const x = need(w, inputs[0], "x");
  const wt = need(w, inputs[3], "w");
  if (wt.shape.length !== 2) fail(w, "BAD_SHAPE", `weight must be [out, in], got [${wt.shape.join(", ")}]`);
  const [n, k] = [wt.shape[0]!, wt.shape[1]!];
  if (x.shape.length < 1 || x.shape[x.shape.length - 1] !== k) {
    fail(w, "BAD_SHAPE", `input [${x.shape.join(", ")}] does not match weight [${wt.shape.join(", ")}]`);
  }
  const r = staticRequant(w, inputs, attrs, x, n);
  const rows = numel(x.shape.slice(0, -1));
  const xZp = scalarParam(w, inputs[2], "x_zero_point");
  const acc = linearAccumulate(intValues(w, x, "x"), xZp, intValues(w, wt, "w"), r.weight.zeroPoints, rows, k, n);
  const out = requantize(acc, 1, r);
  return [intTensor(x.dtype, [...x.shape.slice(0, -1), n], out)];
};

function pair(w: Where, v: unknown, name: string): [number, number] {
  const a = v as number[];
  if (a.length === 1) return [a[0]!, a[0]!];
  if (a.length !== 2) fail(w, "BAD_ATTRIBUTE", `${name} must have 1 or 2 values, got [${a.join(", ")}]`);
  return [a[0]!, a[1]!];
}

/** torch.ops.quantized.conv2d / conv2d_relu (NCHW; padding is the real 0). */
export const quantizedConv2d: Kernel = (inputs, attrs, ctx) => {
  const w: Where = { node: ctx.node, op: ctx.op };
  const x = need(w, inputs[0], "x");
  const wt = need(w, inputs[3], "w");
  if (x.shape.length !== 4 || wt.shape.length !== 4) {
    fail(w, "BAD_SHAPE", `input [${x.shape.join(", ")}] and weight [${wt.shape.join(", ")}] must be 4-D`);
  }
  const outCh = wt.shape[0]!;
  const r = staticRequant(w, inputs, attrs, x, outCh);
  const stride = pair(w, attrs["stride"], "stride");
  const padding = pair(w, attrs["padding"], "padding");
  const dilation = pair(w, attrs["dilation"], "dilation");
  const outSpatial = [0, 1].map((i) => {
    const eff = (wt.shape[2 + i]! - 1) * dilation[i]! + 1;
    return Math.floor((x.shape[2 + i]! + 2 * padding[i]! - eff) / stride[i]!) + 1;
  });
  if (outSpatial.some((d) => d < 1)) fail(w, "BAD_SHAPE", `the kernel does not fit the input [${x.shape.join(", ")}]`);
  const geo: ConvGeometry = { strides: stride, padsBegin: padding, dilations: dilation, group: attrs["groups"] as number, outSpatial };
  const xZp = scalarParam(w, inputs[2], "x_zero_point");
  const acc = convAccumulate(w, intValues(w, x, "x"), x.shape, xZp, intValues(w, wt, "w"), wt.shape, r.weight.zeroPoints, geo);
  const out = requantize(acc, outSpatial[0]! * outSpatial[1]!, r);
  return [intTensor(x.dtype, [x.shape[0]!, outCh, ...outSpatial], out)];
};

/**
 * torch.ops.quantized.linear_dynamic: the float input is quantized to quint8 with ATen's
 * ChooseQuantizationParams over its min/max (qnnpack ignores reduce_range), multiplied with the
 * integer weight in int32, and scaled back:
 * - qnnpack (qlinear_dynamic.cpp + q8gemm dq kernels): `f32(acc) * f32(w_scale * f32(x_scale)) + bias`
 *   in float32 (exact on the public cases);
 * - onednn: `acc * x_scale * w_scale + bias` (oneDNN's own float pipeline agrees with this to ~1e-5
 *   relative; no exact rule is known).
 */
export const dynamicQuantizedLinear: Kernel = (inputs, attrs, ctx) => {
  const w: Where = { node: ctx.node, op: ctx.op };
  const engine = engineOf(w, attrs["engine"]);
  const x = need(w, inputs[0], "x");
  const wt = need(w, inputs[1], "w");
  if (wt.shape.length !== 2) fail(w, "BAD_SHAPE", `weight must be [out, in], got [${wt.shape.join(", ")}]`);
  const [n, k] = [wt.shape[0]!, wt.shape[1]!];
  if (x.shape.length < 1 || x.shape[x.shape.length - 1] !== k) {
    fail(w, "BAD_SHAPE", `input [${x.shape.join(", ")}] does not match weight [${wt.shape.join(", ")}]`);
  }
  const weight = weightQParams(w, inputs[2], inputs[3], n);
  const bias = floatBias(w, inputs[4], n);
  const xs = numbers(x).map(f32);
  let min = 0;
  let max = 0;
  if (xs.length > 0) {
    min = xs[0]!;
    max = xs[0]!;
    for (const v of xs) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
  }
  const qp = chooseQuantizationParamsAten(min, max, 0, 255, { reduceRange: engine === "onednn" && attrs["reduce_range"] === true });
  const xq = quantizePerTensor({ dtype: "float32", shape: x.shape, data: Float32Array.from(xs) }, qp.scale, qp.zeroPoint, "quint8");
  const rows = numel(x.shape.slice(0, -1));
  const acc = linearAccumulate(intValues(w, xq, "x"), qp.zeroPoint, intValues(w, wt, "w"), weight.zeroPoints, rows, k, n);
  const out = new Float32Array(acc.length);
  if (engine === "qnnpack") {
    const mult = weight.scales.map((s) => f32(f32(s) * f32(qp.scale)));
    for (let i = 0; i < acc.length; i++) {
      const c = i % n;
      const v = f32(f32(acc[i]!) * mult[c]!);
      out[i] = bias === undefined ? v : f32(v + bias[c]!);
    }
  } else {
    for (let i = 0; i < acc.length; i++) {
      const c = i % n;
      out[i] = acc[i]! * qp.scale * weight.scales[c]! + (bias === undefined ? 0 : bias[c]!);
    }
  }
  return [{ dtype: "float32", shape: [...x.shape.slice(0, -1), n], data: out }];
};
