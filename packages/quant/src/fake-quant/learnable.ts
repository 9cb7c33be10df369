/**
 * Learnable fake quantization (LSQ, Esser et al. 2020): forward and all gradients of PyTorch 1.13's
 * `torch._fake_quantize_learnable_per_tensor_affine` / `_per_channel_affine`
 * (native/quantized/FakeQuantPerTensorAffine.cpp, FakeQuantPerChannelAffine.cpp and the
 * `fake_quantize_learnable_*_grad_kernel_cpu` kernels in QuantizedOpKernels.cpp).
 *
 * Forward: the zero point (a float) is rounded with rint and clamped, then ordinary fake-quant.
 * Backward, per element, with zp_b the backward zero point:
 *   xq      = rint(fma(x, inv_scale, zp_b))                 zero point added BEFORE rounding, fused
 *   d_x     = dy * (qmin <= xq <= qmax)
 *   inside:  d_scale = f32(f32(f32(dy * fma(xq - zp_b, scale, -x)) * inv_scale) * grad_factor), d_zp = 0
 *   outside: d_scale = f32(f32(dy * (qmin - zp_b | qmax - zp_b)) * grad_factor),
 *            d_zp    = f32(f32(-dy * scale) * grad_factor)
 * and grad_scale / grad_zero_point are the sums of the per-element terms (per channel: over every
 * axis but `axis`). The kernel file is compiled with FP contraction on PyTorch's x86 builds, hence
 * the fused multiply-adds (golden README item 6).
 *
 * The two backward zero points differ: per tensor zp_b = trunc(clamp(zp + 0.5)) (ATen
 * `_get_zero_point_from_tensor(is_forward=false)`, so 2.5 is 2 forward but 3 backward); per channel
 * zp_b = clamp(round(zp)) (`_get_rounded_zero_point`), the same as the forward.
 */
import { numel, QforgeError, type Tensor } from "@qforge/ir";
import { f32, fmaF32, rint, truncToInt64 } from "../primitives/float32.js";
import { float32Data, normalizeAxis, paramValues, splitAtAxis, type ParamVector } from "../primitives/tensor-io.js";
import {
  checkFakeQuantScale, checkGradShape, checkQuantRange, fakeQuantizePerChannelAffine, fakeQuantizePerTensorAffine,
} from "./functional.js";

export interface LearnableFakeQuantResult {
  output: Tensor;
  gradInput: Tensor;
  /** d loss / d scale: shape [1] per tensor, [C] per channel. */
  gradScale: Tensor;
  /** d loss / d zero_point: same shape as gradScale. */
  gradZeroPoint: Tensor;
  /** The per-element terms whose sums are gradScale (input's shape). */
  gradScaleElements: Tensor;
  /** The per-element terms whose sums are gradZeroPoint (input's shape). */
  gradZeroPointElements: Tensor;
}

function f32Tensor(shape: readonly number[], data: Float32Array): Tensor {
  return { dtype: "float32", shape: [...shape], data };
}

function checkLearnableRange(quantMin: number, quantMax: number, what: string): void {
  checkQuantRange(quantMin, quantMax, what);
  if (quantMin > 0 || quantMax < 0) {
    throw new QforgeError("BAD_CONFIG", `${what}: expecting quant_min <= 0 and quant_max >= 0, got [${quantMin}, ${quantMax}]`, {
      hint: "PyTorch's learnable fake-quant backward requires the range to contain 0",
    });
  }
}

function upstreamOrOnes(x: Tensor, g: Tensor | undefined, what: string): Float32Array {
  return checkGradShape(x, g, what) ?? new Float32Array(numel(x.shape)).fill(1);
}

/** The element loop of the LSQ backward for one (scale, zero point) over [begin, end). */
function lsqBackwardRun(
  x: Float32Array, dy: Float32Array, dX: Float32Array, dS: Float32Array, dZ: Float32Array,
  begin: number, end: number, scale: number, zpB: number, qmin: number, qmax: number, gradFactor: number,
): void {
  const inv = f32(1 / scale);
  const dscaleSmall = f32(qmin - zpB);
  const dscaleBig = f32(qmax - zpB);
  for (let i = begin; i < end; i++) {
    const xi = x[i]!;
    const g = dy[i]!;
    const xq = truncToInt64(rint(fmaF32(xi, inv, zpB))); // int64_t xqi = nearbyint(...)
    const inside = xq >= qmin && xq <= qmax; // NaN (int64 min on x86) is outside, below
    dX[i] = g * (inside ? 1 : 0);
    // The element terms are reported as contributions to PyTorch's float32 sum, which starts from
    // +0: a -0.0 term (e.g. a negative dy times an exact zero) is recorded as +0.0 (`+ 0`).
    if (inside) {
      dZ[i] = 0;
      const diff = fmaF32(f32(xq - zpB), scale, -xi); // xfq - x, fused
      dS[i] = f32(f32(f32(g * diff) * inv) * gradFactor) + 0;
    } else {
      dZ[i] = f32(f32(-g * scale) * gradFactor) + 0;
      dS[i] = f32(f32(g * (xq > qmax ? dscaleBig : dscaleSmall)) * gradFactor) + 0;
    }
  }
}

function scalarParam(v: number | Tensor, name: string, what: string): number {
  if (typeof v === "number") return v;
  if (numel(v.shape) !== 1) {
    throw new QforgeError("BAD_SHAPE", `${what}: ${name} must have exactly one element, got shape [${v.shape.join(", ")}]`);
  }
  return paramValues(v)[0]!;
}

/**
 * `torch._fake_quantize_learnable_per_tensor_affine(x, scale, zero_point, quant_min, quant_max,
 * grad_factor)` forward and backward. `scale` and `zeroPoint` are float32 values (numbers or
 * 1-element tensors); `upstreamGrad` defaults to ones (the gradient of `output.sum()`).
 */
export function fakeQuantizeLearnablePerTensorAffine(
  x: Tensor, scale: number | Tensor, zeroPoint: number | Tensor, quantMin: number, quantMax: number,
  gradFactor: number, upstreamGrad?: Tensor,
): LearnableFakeQuantResult {
  const what = "fakeQuantizeLearnablePerTensorAffine";
  checkLearnableRange(quantMin, quantMax, what);
  const s = f32(scalarParam(scale, "scale", what));
  const zp = f32(scalarParam(zeroPoint, "zero_point", what));
  checkFakeQuantScale(s, what);
  if (!Number.isFinite(zp)) throw new QforgeError("BAD_DATA", `${what}: zero_point is ${zp}`);
  const lo = f32(quantMin);
  const hi = f32(quantMax);
  // _get_zero_point_from_tensor: forward rint(zp), backward zp + 0.5; clamp in float; int64 cast truncates.
  const zpF = Math.trunc(Math.min(Math.max(rint(zp), lo), hi)) + 0;
  const zpB = Math.trunc(Math.min(Math.max(f32(zp + 0.5), lo), hi)) + 0;
  const src = float32Data(x, what);
  const dy = upstreamOrOnes(x, upstreamGrad, what);
  const forward = fakeQuantizePerTensorAffine(x, s, zpF, quantMin, quantMax);
  const n = src.length;
  const dX = new Float32Array(n);
  const dS = new Float32Array(n);
  const dZ = new Float32Array(n);
  lsqBackwardRun(src, dy, dX, dS, dZ, 0, n, s, zpB, quantMin, quantMax, f32(gradFactor));
  return {
    output: forward.output,
    gradInput: f32Tensor(x.shape, dX),
    gradScale: f32Tensor([1], Float32Array.of(sumF32(dS, 0, n))),
    gradZeroPoint: f32Tensor([1], Float32Array.of(sumF32(dZ, 0, n))),
    gradScaleElements: f32Tensor(x.shape, dS),
    gradZeroPointElements: f32Tensor(x.shape, dZ),
  };
}

/**
 * `torch._fake_quantize_learnable_per_channel_affine(x, scale, zero_point, axis, quant_min,
 * quant_max, grad_factor)` forward and backward, with float32 `scale`/`zeroPoint` vectors (one per
 * index along `axis`). Element i's terms add up into its channel's gradient.
 */
export function fakeQuantizeLearnablePerChannelAffine(
  x: Tensor, scale: ParamVector, zeroPoint: ParamVector, axis: number, quantMin: number, quantMax: number,
  gradFactor: number, upstreamGrad?: Tensor,
): LearnableFakeQuantResult {
  const what = "fakeQuantizeLearnablePerChannelAffine";
  checkLearnableRange(quantMin, quantMax, what);
  const ax = normalizeAxis(axis, x.shape.length, what);
  const [outer, channels, inner] = splitAtAxis(x.shape, ax);
  const s = paramValues(scale).map((v) => f32(v));
  const z = paramValues(zeroPoint).map((v) => f32(v));
  if (s.length !== channels || z.length !== channels) {
    throw new QforgeError("BAD_SHAPE", `${what}: ${s.length} scales and ${z.length} zero points for ${channels} channels on axis ${ax}`);
  }
  s.forEach((v) => checkFakeQuantScale(v, what));
  z.forEach((v) => {
    if (!Number.isFinite(v)) throw new QforgeError("BAD_DATA", `${what}: zero point ${v} is not finite`);
  });
  // _get_rounded_zero_point: zero_point.round().clamp_(quant_min, quant_max), used by both passes.
  const zpR = z.map((v) => Math.min(Math.max(rint(v), quantMin), quantMax) + 0);
  const src = float32Data(x, what);
  const dy = upstreamOrOnes(x, upstreamGrad, what);
  const forward = fakeQuantizePerChannelAffine(x, s, zpR, ax, quantMin, quantMax);
  const n = src.length;
  const dX = new Float32Array(n);
  const dS = new Float32Array(n);
  const dZ = new Float32Array(n);
  const gf = f32(gradFactor);
  const sumS = new Float64Array(channels);
  const sumZ = new Float64Array(channels);
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < channels; c++) {
      const begin = (o * channels + c) * inner;
      lsqBackwardRun(src, dy, dX, dS, dZ, begin, begin + inner, s[c]!, zpR[c]!, quantMin, quantMax, gf);
      for (let i = begin; i < begin + inner; i++) {
        sumS[c] = sumS[c]! + dS[i]!;
        sumZ[c] = sumZ[c]! + dZ[i]!;
      }
    }
  }
  return {
    output: forward.output,
    gradInput: f32Tensor(x.shape, dX),
    gradScale: f32Tensor([channels], Float32Array.from(sumS)),
    gradZeroPoint: f32Tensor([channels], Float32Array.from(sumZ)),
    gradScaleElements: f32Tensor(x.shape, dS),
    gradZeroPointElements: f32Tensor(x.shape, dZ),
  };
}

/**
 * Sum of float32 terms, accumulated in double and rounded once. PyTorch's float32 `sum()` uses its
 * own (vectorized, cascaded) order, so totals agree to float32 rounding, not bit for bit; the
 * per-element terms are exact.
 */
function sumF32(a: Float32Array, begin: number, end: number): number {
  let acc = 0;
  for (let i = begin; i < end; i++) acc += a[i]!;
  return f32(acc);
}
