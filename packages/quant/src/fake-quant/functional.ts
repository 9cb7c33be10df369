/**
 * Fake quantization (quantize then dequantize in float, with a straight-through gradient), bit-exact
 * with PyTorch 1.13's `torch.fake_quantize_per_tensor_affine` / `torch.fake_quantize_per_channel_affine`
 * (ATen `_fake_quantize_tensor_helper` and `_fake_quant_per_channel_cachemask_cpu_helper` in
 * native/quantized/cpu/kernels/QuantizedOpKernels.cpp, backward `dY * mask`):
 *
 *   q_unclamped = f32(zero_point + rint(f32(x * f32(1 / scale))))
 *   output      = f32((clamp(q_unclamped, quant_min, quant_max) - zero_point) * scale)
 *   mask        = quant_min <= q_unclamped <= quant_max
 *   grad_input  = upstream_grad * mask      (so a masked negative gradient is -0.0, as in PyTorch)
 */
import { numel, QforgeError, type Tensor } from "@qforge/ir";
import { f32, RINT_MAGIC, truncToInt64 } from "../primitives/float32.js";
import { float32Data, normalizeAxis, paramValues, splitAtAxis, type ParamVector } from "../primitives/tensor-io.js";

export interface FakeQuantResult {
  /** Fake-quantized input (float32, the input's shape). */
  output: Tensor;
  /** bool tensor: 1 where the unclamped quantized value is inside [quant_min, quant_max]. */
  mask: Tensor;
  /** `upstreamGrad * mask`, present when an upstream gradient was given. */
  gradInput?: Tensor;
}

export function checkQuantRange(quantMin: number, quantMax: number, what: string): void {
  if (!Number.isInteger(quantMin) || !Number.isInteger(quantMax) || quantMin > quantMax) {
    throw new QforgeError("BAD_CONFIG", `${what}: quant_min (${quantMin}) must be an integer <= quant_max (${quantMax})`);
  }
}

export function checkFakeQuantScale(scale: number, what: string): void {
  if (!(scale > 0) || !Number.isFinite(scale)) {
    throw new QforgeError("BAD_CONFIG", `${what}: scale must be a positive finite number, got ${scale}`);
  }
}

export function checkGradShape(x: Tensor, g: Tensor | undefined, what: string): Float32Array | undefined {
  if (g === undefined) return undefined;
  if (g.shape.length !== x.shape.length || g.shape.some((d, i) => d !== x.shape[i])) {
    throw new QforgeError("BAD_SHAPE", `${what}: upstream gradient shape [${g.shape.join(", ")}] differs from input shape [${x.shape.join(", ")}]`);
  }
  return float32Data(g, `${what} (upstream gradient)`);
}

function f32Tensor(shape: readonly number[], data: Float32Array): Tensor {
  return { dtype: "float32", shape: [...shape], data };
}

function boolTensor(shape: readonly number[], data: Uint8Array): Tensor {
  return { dtype: "bool", shape: [...shape], data };
}

/**
 * Per-tensor kernel over [begin, end): writes output and mask. Shared by the per-tensor op and the
 * fake-quant modules.
 */
function fakeQuantRun(
  x: Float32Array, out: Float32Array, mask: Uint8Array, begin: number, end: number,
  scale: number, zp: number, qmin: number, qmax: number,
): void {
  const sc = f32(scale);
  const inv = f32(1 / sc);
  for (let i = begin; i < end; i++) {
    const v = Math.fround(x[i]! * inv);
    // rint(v) + zp in float32 (magic-number rounding: exact for |v| < 2^51; larger float32 values
    // are integers or far outside any quantized range).
    const qf = Math.fround(zp + (v + RINT_MAGIC - RINT_MAGIC));
    // std::fmin(std::fmax(qf, qmin), qmax): a NaN qf becomes qmin.
    const inRange = qf >= qmin && qf <= qmax;
    const qc = inRange ? qf : qf > qmax ? qmax : qmin;
    out[i] = Math.fround((qc - zp) * sc);
    mask[i] = inRange ? 1 : 0;
  }
}

function applyMask(dy: Float32Array, mask: Uint8Array): Float32Array {
  const g = new Float32Array(dy.length);
  // dY * mask: multiplying (not selecting) keeps PyTorch's -0.0 for masked negative gradients.
  for (let i = 0; i < dy.length; i++) g[i] = dy[i]! * mask[i]!;
  return g;
}

/**
 * `torch.fake_quantize_per_tensor_affine(x, scale, zero_point, quant_min, quant_max)` and, with
 * `upstreamGrad`, its gradient w.r.t. `x`. `scale` is rounded to float32 as ATen does.
 */
export function fakeQuantizePerTensorAffine(
  x: Tensor, scale: number, zeroPoint: number, quantMin: number, quantMax: number, upstreamGrad?: Tensor,
): FakeQuantResult {
  const what = "fakeQuantizePerTensorAffine";
  checkQuantRange(quantMin, quantMax, what);
  checkFakeQuantScale(scale, what);
  if (!Number.isInteger(zeroPoint) || zeroPoint < quantMin || zeroPoint > quantMax) {
    throw new QforgeError("BAD_CONFIG", `${what}: zero_point ${zeroPoint} must be an integer between quant_min and quant_max`);
  }
  const src = float32Data(x, what);
  const dy = checkGradShape(x, upstreamGrad, what);
  const n = src.length;
  const out = new Float32Array(n);
  const mask = new Uint8Array(n);
  fakeQuantRun(src, out, mask, 0, n, scale, zeroPoint, quantMin, quantMax);
  const result: FakeQuantResult = { output: f32Tensor(x.shape, out), mask: boolTensor(x.shape, mask) };
  if (dy !== undefined) result.gradInput = f32Tensor(x.shape, applyMask(dy, mask));
  return result;
}

/**
 * `torch.fake_quantize_per_channel_affine(x, scale, zero_point, axis, quant_min, quant_max)` with
 * float32 scales and integer zero points (one per index along `axis`), and its input gradient.
 * The per-channel kernel converts the unclamped value to int64 before clamping (NaN -> quant_min).
 */
export function fakeQuantizePerChannelAffine(
  x: Tensor, scale: ParamVector, zeroPoint: ParamVector, axis: number, quantMin: number, quantMax: number,
  upstreamGrad?: Tensor,
): FakeQuantResult {
  const what = "fakeQuantizePerChannelAffine";
  checkQuantRange(quantMin, quantMax, what);
  const ax = normalizeAxis(axis, x.shape.length, what);
  const [outer, channels, inner] = splitAtAxis(x.shape, ax);
  const s = paramValues(scale).map((v) => f32(v));
  const z = paramValues(zeroPoint);
  if (s.length !== channels || z.length !== channels) {
    throw new QforgeError("BAD_SHAPE", `${what}: ${s.length} scales and ${z.length} zero points for ${channels} channels on axis ${ax}`);
  }
  s.forEach((v) => checkFakeQuantScale(v, what));
  z.forEach((v) => {
    if (!Number.isInteger(v) || v < quantMin || v > quantMax) {
      throw new QforgeError("BAD_CONFIG", `${what}: zero point ${v} must be an integer between quant_min and quant_max`);
    }
  });
  const src = float32Data(x, what);
  const dy = checkGradShape(x, upstreamGrad, what);
  const n = numel(x.shape);
  const out = new Float32Array(n);
  const mask = new Uint8Array(n);
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < channels; c++) {
      const sc = s[c]!;
      const inv = f32(1 / sc);
      const zp = z[c]!;
      const begin = (o * channels + c) * inner;
      for (let i = begin; i < begin + inner; i++) {
        const v = Math.fround(src[i]! * inv);
        const qf = Math.fround(zp + (v + RINT_MAGIC - RINT_MAGIC));
        const qi = truncToInt64(qf);
        const qc = qi < quantMin ? quantMin : qi > quantMax ? quantMax : qi;
        out[i] = f32((qc - zp) * sc);
        mask[i] = qi >= quantMin && qi <= quantMax ? 1 : 0;
      }
    }
  }
  const result: FakeQuantResult = { output: f32Tensor(x.shape, out), mask: boolTensor(x.shape, mask) };
  if (dy !== undefined) result.gradInput = f32Tensor(x.shape, applyMask(dy, mask));
  return result;
}
