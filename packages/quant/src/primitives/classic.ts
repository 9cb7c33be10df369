/**
 * PyTorch's classic (eager-mode) quantize / dequantize: `torch.quantize_per_tensor`,
 * `torch.quantize_per_channel` and `Tensor.dequantize()`, bit-exact with PyTorch 1.13 on x86-64
 * (ATen `quantize_val` / `dequantize_val` in native/quantized/AffineQuantizerBase.cpp and the
 * per-channel loops in native/quantized/cpu/kernels/QuantizedOpKernels.cpp):
 *
 *   quantize:   q = clamp(int64(f32(zero_point + rint(f32(x * f32(1 / f32(scale)))))), qmin, qmax)
 *   dequantize: per tensor   f32(f32(q - zero_point) * f32(scale))
 *               per channel  (q - zero_point) * scale in double (scale stays a double), rounded once
 *
 * The rounded quantity is x times the float32 reciprocal, not x / scale, and the zero point is added
 * after rounding (golden README, "Rounding and the tie rule").
 */
import { numel, QforgeError, type Tensor } from "@qforge/ir";
import { f32, RINT_LIMIT, RINT_MAGIC, truncToInt64 } from "./float32.js";
import { resolveQuantRange, storageDTypeOf, type QuantDType } from "./qdtype.js";
import {
  float32Data, intData, intSink, normalizeAxis, paramValues, splitAtAxis, type ParamVector,
} from "./tensor-io.js";

const TWO_63 = 9223372036854775808;

function checkScale(scale: number, what: string): void {
  if (!(scale > 0) || !Number.isFinite(scale)) {
    throw new QforgeError("BAD_CONFIG", `${what}: scale must be a positive finite number, got ${scale}`);
  }
}

function checkZeroPoint(zp: number, qmin: number, qmax: number, what: string): void {
  if (!Number.isInteger(zp) || zp < qmin || zp > qmax) {
    throw new QforgeError("BAD_CONFIG", `${what}: zero point ${zp} must be an integer in [${qmin}, ${qmax}]`, {
      hint: "PyTorch's checkZeroPoint refuses zero points outside the quantized dtype's range",
    });
  }
}

/**
 * Quantizes `src[begin..end)` into `dst` with one (inv, zp): the ATen `quantize_val` loop. Kept
 * monomorphic over typed arrays so V8 compiles one tight loop per storage type.
 */
function quantizeRun(
  src: Float32Array, dst: Int8Array | Uint8Array | Int16Array | Int32Array, begin: number, end: number,
  inv: number, zp: number, qmin: number, qmax: number,
): void {
  for (let i = begin; i < end; i++) {
    const v = Math.fround(src[i]! * inv);
    // rint(v) + zp in float32. The magic-number rounding is exact for |v| < 2^51; a float32 beyond
    // that is an integer (kept exactly up to 2^104) or so large that only its clamping matters.
    const qf = Math.fround(zp + (v + RINT_MAGIC - RINT_MAGIC));
    // int64 conversion: NaN and |qf| >= 2^63 become INT64_MIN on x86, which clamps to qmin.
    dst[i] = qf >= qmin ? (qf <= qmax ? qf : qf < TWO_63 ? qmax : qmin) : qmin;
  }
}

/**
 * `torch.quantize_per_tensor(x, scale, zero_point, dtype).int_repr()`: the stored integers.
 * `dtype` is `quint8`/`qint8`/`qint32` (PyTorch names) or any integer DType (int1..int8, uint1..uint8,
 * int16, int32; the range is the dtype's full range). Returns a tensor of the storage dtype.
 */
export function quantizePerTensor(x: Tensor, scale: number, zeroPoint: number, dtype: QuantDType): Tensor {
  const what = "quantizePerTensor";
  checkScale(scale, what);
  const { quantMin, quantMax } = resolveQuantRange(dtype, undefined, undefined);
  checkZeroPoint(zeroPoint, quantMin, quantMax, what);
  const src = float32Data(x, what);
  const sink = intSink(storageDTypeOf(dtype), x.shape);
  const inv = f32(1 / f32(scale));
  quantizeRun(src, sink.values, 0, src.length, inv, zeroPoint, quantMin, quantMax);
  return sink.finish();
}

/**
 * `torch.quantize_per_channel(x, scales, zero_points, axis, dtype).int_repr()`. `scales` are doubles
 * (PyTorch keeps them as float64; the quantizer uses float32 of each), one per index along `axis`.
 */
export function quantizePerChannel(
  x: Tensor, scales: ParamVector, zeroPoints: ParamVector, axis: number, dtype: QuantDType,
): Tensor {
  const what = "quantizePerChannel";
  const ax = normalizeAxis(axis, x.shape.length, what);
  const [outer, channels, inner] = splitAtAxis(x.shape, ax);
  const s = paramValues(scales);
  const z = paramValues(zeroPoints);
  if (s.length !== channels || z.length !== channels) {
    throw new QforgeError("BAD_SHAPE", `${what}: ${s.length} scales and ${z.length} zero points for ${channels} channels on axis ${ax}`);
  }
  const { quantMin, quantMax } = resolveQuantRange(dtype, undefined, undefined);
  s.forEach((v) => checkScale(v, what));
  z.forEach((v) => checkZeroPoint(v, quantMin, quantMax, what));
  const src = float32Data(x, what);
  const sink = intSink(storageDTypeOf(dtype), x.shape);
  const inv = s.map((v) => f32(1 / f32(v)));
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < channels; c++) {
      const begin = (o * channels + c) * inner;
      quantizeRun(src, sink.values, begin, begin + inner, inv[c]!, z[c]!, quantMin, quantMax);
    }
  }
  return sink.finish();
}

/** `Tensor.dequantize()` of a per-tensor quantized tensor whose integers are `q`: float32 result. */
export function dequantizePerTensor(q: Tensor, scale: number, zeroPoint: number): Tensor {
  const what = "dequantizePerTensor";
  checkScale(scale, what);
  if (!Number.isInteger(zeroPoint)) throw new QforgeError("BAD_CONFIG", `${what}: zero point ${zeroPoint} is not an integer`);
  const src = intData(q, what);
  const n = numel(q.shape);
  const out = new Float32Array(n);
  const sc = f32(scale);
  for (let i = 0; i < n; i++) out[i] = Math.fround(Math.fround(src[i]! - zeroPoint) * sc);
  return { dtype: "float32", shape: [...q.shape], data: out };
}

/** `Tensor.dequantize()` of a per-channel quantized tensor: `(q - zp) * scale` in double, rounded once. */
export function dequantizePerChannel(q: Tensor, scales: ParamVector, zeroPoints: ParamVector, axis: number): Tensor {
  const what = "dequantizePerChannel";
  const ax = normalizeAxis(axis, q.shape.length, what);
  const [outer, channels, inner] = splitAtAxis(q.shape, ax);
  const s = paramValues(scales);
  const z = paramValues(zeroPoints);
  if (s.length !== channels || z.length !== channels) {
    throw new QforgeError("BAD_SHAPE", `${what}: ${s.length} scales and ${z.length} zero points for ${channels} channels on axis ${ax}`);
  }
  s.forEach((v) => checkScale(v, what));
  z.forEach((v) => {
    if (!Number.isInteger(v)) throw new QforgeError("BAD_CONFIG", `${what}: zero point ${v} is not an integer`);
  });
  const src = intData(q, what);
  const out = new Float32Array(numel(q.shape));
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < channels; c++) {
      const sc = s[c]!;
      const zp = z[c]!;
      const begin = (o * channels + c) * inner;
      for (let i = begin; i < begin + inner; i++) out[i] = f32((src[i]! - zp) * sc);
    }
  }
  return { dtype: "float32", shape: [...q.shape], data: out };
}

/** The element rule of quantizePerTensor for one value (for reference kernels and scalar checks). */
export function quantizeValue(x: number, scale: number, zeroPoint: number, quantMin: number, quantMax: number): number {
  const v = f32(f32(x) * f32(1 / f32(scale)));
  const qf = f32(zeroPoint + (Math.abs(v) < RINT_LIMIT ? v + RINT_MAGIC - RINT_MAGIC : v));
  const q = truncToInt64(qf);
  return q < quantMin ? quantMin : q > quantMax ? quantMax : q;
}
