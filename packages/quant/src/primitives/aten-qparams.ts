/**
 * ATen's `ChooseQuantizationParams` (aten/src/ATen/native/quantized/cpu/QuantUtils.h, identical to
 * fbgemm::ChooseQuantizationParams): the qparams of `FusedMovingAvgObsFakeQuantize` (PyTorch's default
 * QAT activation fake-quant), of dynamic Linear's activations (`torch._choose_qparams_per_tensor`) and
 * of FBGEMM's weight packing. It is NOT the observers' formula: the scale is computed in double, tiny
 * scales are raised to 6.1e-5, and the zero point is "nudged" from whichever of min/max gives the
 * smaller error before `nearbyint`.
 */
import { QforgeError } from "@qforge/ir";
import { f32, rint } from "./float32.js";

export interface AtenQParams {
  /** The double scale ATen returns (callers that store it in a float tensor round it to float32). */
  scale: number;
  zeroPoint: number;
}

export interface AtenQParamsOptions {
  /** Symmetric around zero when min < 0 < max (`preserve_sparsity`, used for symmetric qschemes). */
  preserveSparsity?: boolean;
  /** Round the scale to a power of two. */
  forceScaleAsPowerOfTwo?: boolean;
  /** Halve the integer range with C++ integer division (truncation toward zero). */
  reduceRange?: boolean;
}

/** `SMALL_SCALE_THRESHOLD = 6.1e-5f`: fp16's smallest normal, so scales never land in fp16 subnormals. */
const SMALL_SCALE_THRESHOLD = f32(6.1e-5);

/**
 * `ChooseQuantizationParams(min, max, qmin, qmax, preserve_sparsity, force_scale_power_of_two,
 * reduce_range)`. `min`/`max` are C++ floats (rounded to float32 here); every step keeps the
 * float/double types of the C++ source.
 */
export function chooseQuantizationParamsAten(
  min: number,
  max: number,
  qmin: number,
  qmax: number,
  opts: AtenQParamsOptions = {},
): AtenQParams {
  let lo = f32(min);
  let hi = f32(max);
  if (!(lo <= hi)) {
    throw new QforgeError("BAD_DATA", `chooseQuantizationParamsAten: min (${min}) must be <= max (${max})`, {
      hint: "NaN or an inverted range reached ChooseQuantizationParams",
    });
  }
  if (!Number.isInteger(qmin) || !Number.isInteger(qmax)) {
    throw new QforgeError("BAD_CONFIG", `chooseQuantizationParamsAten: qmin/qmax must be integers, got ${qmin}, ${qmax}`);
  }
  if (opts.reduceRange === true) {
    qmin = Math.trunc(qmin / 2); // C++ int division
    qmax = Math.trunc(qmax / 2);
  }
  const preserveSparsity = opts.preserveSparsity === true;
  if (lo < 0 && hi > 0 && preserveSparsity) {
    const symQmax = Math.trunc((qmax - qmin) / 2);
    const symQmin = -(symQmax + 1);
    // float / int is a float division; max_scale is a double holding that float.
    const a = Math.abs(f32(lo / symQmin));
    const b = Math.abs(f32(hi / symQmax));
    const maxScale = a > b ? a : b;
    lo = f32(maxScale * symQmin);
    hi = f32(maxScale * symQmax);
  }
  // std::min(min, 0.f) / std::max(max, 0.f): extend the range to contain 0.
  lo = 0 < lo ? 0 : lo;
  hi = hi < 0 ? 0 : hi;
  if (!(qmin < qmax)) {
    throw new QforgeError("BAD_CONFIG", `chooseQuantizationParamsAten: qmin (${qmin}) must be less than qmax (${qmax})`);
  }
  let scale = (hi - lo) / (qmax - qmin); // double
  // A zero scale, or one whose float reciprocal overflows, becomes 0.1 (fbgemm precomputes 1/scale).
  if (f32(scale) === 0 || !Number.isFinite(f32(1 / f32(scale)))) scale = 0.1;
  if (opts.forceScaleAsPowerOfTwo === true) {
    scale = scale < 1
      ? 1 / 2 ** Math.floor(Math.log(1 / scale) / Math.log(2))
      : 2 ** Math.ceil(Math.log(scale) / Math.log(2));
  }
  if (scale < SMALL_SCALE_THRESHOLD) {
    const orgScale = f32(scale);
    scale = SMALL_SCALE_THRESHOLD;
    // Adjust min and max to the new scale (float arithmetic).
    if (lo === 0) {
      hi = f32(SMALL_SCALE_THRESHOLD * (qmax - qmin));
    } else if (hi === 0) {
      lo = f32(-SMALL_SCALE_THRESHOLD * (qmax - qmin));
    } else {
      const amplifier = f32(SMALL_SCALE_THRESHOLD / orgScale);
      lo = f32(lo * amplifier);
      hi = f32(hi * amplifier);
    }
  }
  // Zero point from whichever (real, quantized) pair adds the smaller terms (double arithmetic).
  const zpFromMin = qmin - lo / scale;
  const zpFromMax = qmax - hi / scale;
  const zpFromMinError = Math.abs(qmin) - Math.abs(lo / scale);
  const zpFromMaxError = Math.abs(qmax) - Math.abs(hi / scale);
  let initialZeroPoint = zpFromMinError < zpFromMaxError ? zpFromMin : zpFromMax;
  if (lo < 0 && hi > 0 && preserveSparsity) initialZeroPoint = (qmin + qmax) / 2;
  let zeroPoint: number;
  if (initialZeroPoint < qmin) zeroPoint = qmin;
  else if (initialZeroPoint > qmax) zeroPoint = qmax;
  else zeroPoint = rint(initialZeroPoint) + 0; // + 0: an int32 has no negative zero
  return { scale, zeroPoint };
}
