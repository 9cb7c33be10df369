/**
 * torchao's affine quantization primitives (torchao/quantization/quant_primitives.py, the API with
 * `preserve_zero` and `zero_point_domain`): `choose_qparams_affine`, `choose_qparams_affine_with_min_max`,
 * `quantize_affine`, `dequantize_affine`, with `block_size` granularity (see blocks.ts).
 *
 * Arithmetic follows PyTorch's float32 tensor ops on a float32 input: every elementwise op rounds to
 * float32, and Python scalars (`1.0 / scale`, `(quant_max - quant_min) / 2`, `mid_point`) are converted
 * to float32 where they meet a float32 tensor. Rounding is `torch.round` (half to even).
 *
 * fp8 targets (float8_e4m3fn / float8_e5m2) use torchao's scaled fp8 path: symmetric, no zero point,
 * `scale = amax / finfo(fp8).max`, quantize `clamp(x / scale, -max, max).to(fp8)` (round to nearest
 * even), dequantize `fp8.to(float32) * scale` (torchao `_choose_scale_float8`, `_quantize_affine_float8`).
 */
import {
  castNumber, dtypeInfo, getElement, numel, QforgeError, tensor, zeros, setElement,
  type DType, type Tensor,
} from "@qforge/ir";
import { blockLayout } from "./blocks.js";
import { f32, FLOAT32_EPS, rint, RINT_MAGIC } from "./float32.js";
import { isFloat8, isIntegerQuantDType, resolveQuantRange } from "./qdtype.js";
import { float32Data, intSink } from "./tensor-io.js";

/** How the float range maps onto the integer range (torchao `MappingType`). */
export const MappingType = {
  /** scale = max(|min|, |max|) / ((qmax - qmin) / 2), zero point at the middle of the range. */
  SYMMETRIC: "SYMMETRIC",
  /** scale = max(min_neg / qmin, max_pos / qmax): symmetric, but no value is clipped. */
  SYMMETRIC_NO_CLIPPING_ERR: "SYMMETRIC_NO_CLIPPING_ERR",
  /** [min, max] maps onto [qmin, qmax]. */
  ASYMMETRIC: "ASYMMETRIC",
} as const;
export type MappingType = (typeof MappingType)[keyof typeof MappingType];

/** Where the zero point lives (torchao `ZeroPointDomain`). */
export const ZeroPointDomain = {
  /** q = round(x / scale) + zero_point (integer zero point). */
  INT: "INT",
  /** q = round((x - (zero_point - scale * mid_point)) / scale) (float zero point, tinygemm style). */
  FLOAT: "FLOAT",
  /** q = round(x / scale): no zero point (fp8, symmetric without offset). */
  NONE: "NONE",
} as const;
export type ZeroPointDomain = (typeof ZeroPointDomain)[keyof typeof ZeroPointDomain];

export interface ChooseQParamsAffineOptions {
  mappingType: MappingType;
  blockSize: readonly number[];
  targetDtype: DType;
  /** Default: the target dtype's range; a given bound must lie within it. */
  quantMin?: number;
  quantMax?: number;
  /** Smallest scale (rounded to float32); default float32 epsilon (2^-23), torchao's `torch.finfo(input.dtype).eps`. */
  eps?: number;
  /** Default float32 (the input dtype). */
  scaleDtype?: DType;
  /** Default int32 for ZeroPointDomain.INT, float32 for FLOAT. */
  zeroPointDtype?: DType;
  /** Extend [min, max] to contain 0 so that 0.0 is exactly representable (default true). */
  preserveZero?: boolean;
  /** Default INT for integer targets, NONE for fp8 targets. */
  zeroPointDomain?: ZeroPointDomain;
}

export interface AffineQParams {
  scale: Tensor;
  /** null when the zero point domain is NONE. */
  zeroPoint: Tensor | null;
}

function checkTargetDtype(d: DType, what: string): void {
  if (!isIntegerQuantDType(d) && !isFloat8(d)) {
    throw new QforgeError("BAD_DTYPE", `${what}: unsupported quantized dtype ${d}`, {
      hint: "use int1..int8, uint1..uint8, int16, int32, float8_e4m3fn or float8_e5m2",
    });
  }
}

function defaultDomain(target: DType): ZeroPointDomain {
  return isFloat8(target) ? ZeroPointDomain.NONE : ZeroPointDomain.INT;
}

function requireFloat32Input(x: Tensor, what: string): Float32Array {
  if (x.dtype !== "float32") {
    throw new QforgeError("UNSUPPORTED", `${what}: input must be float32, got ${x.dtype}`, {
      hint: "torchao computes in the input dtype; cast float16/bfloat16 inputs to float32 first",
    });
  }
  return float32Data(x, what);
}

/** torchao `choose_qparams_affine`: per-block min/max of `input`, then the qparams formula. */
export function chooseQParamsAffine(input: Tensor, opts: ChooseQParamsAffineOptions): AffineQParams {
  const what = "chooseQParamsAffine";
  const x = requireFloat32Input(input, what);
  const layout = blockLayout(input.shape, opts.blockSize, what);
  if (x.length === 0) throw new QforgeError("BAD_DATA", `${what}: cannot choose qparams for an empty tensor`);
  const mins = new Float32Array(layout.numBlocks).fill(Infinity);
  const maxs = new Float32Array(layout.numBlocks).fill(-Infinity);
  let bad = -1;
  layout.forEachRun((start, end, b) => {
    let lo = mins[b]!;
    let hi = maxs[b]!;
    for (let i = start; i < end; i++) {
      const v = x[i]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
      if (v - v !== 0 && bad < 0) bad = i; // NaN or ±Inf
    }
    mins[b] = lo;
    maxs[b] = hi;
  });
  if (bad >= 0) {
    throw new QforgeError("BAD_DATA", `${what}: input element ${bad} is ${x[bad]}; qparams need finite values`);
  }
  return qparamsFromMinMax(mins, maxs, layout.qparamShape, opts, what);
}

/**
 * torchao `choose_qparams_affine_with_min_max`: the same formula from given per-block min/max
 * (e.g. an observer's statistics). The qparams take the shape of `minVal`.
 */
export function chooseQParamsAffineWithMinMax(
  minVal: Tensor,
  maxVal: Tensor,
  opts: Omit<ChooseQParamsAffineOptions, "blockSize">,
): AffineQParams {
  const what = "chooseQParamsAffineWithMinMax";
  if (minVal.dtype !== maxVal.dtype || minVal.shape.length !== maxVal.shape.length
    || minVal.shape.some((d, i) => d !== maxVal.shape[i])) {
    throw new QforgeError("BAD_SHAPE", `${what}: min_val and max_val must have the same dtype and shape`);
  }
  const n = numel(minVal.shape);
  const mins = new Float32Array(n);
  const maxs = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    mins[i] = getElement(minVal, i);
    maxs[i] = getElement(maxVal, i);
    if (!Number.isFinite(mins[i]!) || !Number.isFinite(maxs[i]!)) {
      throw new QforgeError("BAD_DATA", `${what}: min/max element ${i} is not finite`);
    }
  }
  return qparamsFromMinMax(mins, maxs, [...minVal.shape], opts, what);
}

function qparamsFromMinMax(
  mins: Float32Array,
  maxs: Float32Array,
  shape: number[],
  opts: Omit<ChooseQParamsAffineOptions, "blockSize">,
  what: string,
): AffineQParams {
  const target = opts.targetDtype;
  checkTargetDtype(target, what);
  const { quantMin, quantMax } = resolveQuantRange(target, opts.quantMin, opts.quantMax);
  const mapping = opts.mappingType;
  const domain = opts.zeroPointDomain ?? defaultDomain(target);
  const preserveZero = opts.preserveZero ?? true;
  if (isFloat8(target) && (mapping !== MappingType.SYMMETRIC || domain !== ZeroPointDomain.NONE)) {
    throw new QforgeError("BAD_CONFIG", `${what}: ${target} supports only SYMMETRIC mapping without a zero point (ZeroPointDomain.NONE)`);
  }
  const symmetric = mapping === MappingType.SYMMETRIC || mapping === MappingType.SYMMETRIC_NO_CLIPPING_ERR;
  if (!symmetric && mapping !== MappingType.ASYMMETRIC) {
    throw new QforgeError("BAD_CONFIG", `${what}: unknown mapping type ${String(mapping)}`);
  }
  if (symmetric && !preserveZero) {
    throw new QforgeError("BAD_CONFIG", `${what}: preserveZero=false is not supported for symmetric quantization`);
  }
  if (symmetric && domain === ZeroPointDomain.FLOAT) {
    throw new QforgeError("BAD_CONFIG", `${what}: symmetric quantization takes ZeroPointDomain.INT or NONE, not FLOAT`);
  }
  const { scale, zeroPoint } = affineQParamValues(mins, maxs, {
    mappingType: mapping, zeroPointDomain: domain, preserveZero, quantMin, quantMax, eps: opts.eps ?? FLOAT32_EPS,
  });
  const scaleDtype = opts.scaleDtype ?? "float32";
  const zpDtype = opts.zeroPointDtype ?? (domain === ZeroPointDomain.FLOAT ? "float32" : "int32");
  return {
    scale: fromValues(scaleDtype, shape, scale),
    zeroPoint: zeroPoint === null ? null : fromValues(zpDtype, shape, zeroPoint),
  };
}

/** The validated inputs of torchao's qparams formula (see `affineQParamValues`). */
export interface AffineQParamsFormula {
  mappingType: MappingType;
  zeroPointDomain: ZeroPointDomain;
  /** Only ASYMMETRIC may be false. */
  preserveZero: boolean;
  quantMin: number;
  quantMax: number;
  /** Smallest scale; rounded to float32 where it replaces a smaller scale. */
  eps: number;
  /**
   * quant_min, quant_max and quant_max - quant_min as the float32 arithmetic sees them where
   * SYMMETRIC_NO_CLIPPING_ERR divides by them, the INT zero point is clamped to them and ASYMMETRIC
   * divides by the range. torchao turns them into float32 scalars and the range into a `scale_dtype`
   * tensor, which AffineQuantizedMinMaxObserver reproduces; the default, the exact integers, is what
   * chooseQParamsAffine documents (docs/quantization-math.md). The two differ only for ranges that
   * float32 (or the scale dtype) cannot hold exactly.
   */
  floatOperands?: { quantMin: number; quantMax: number; range: number };
}

/**
 * The qparams formula of torchao `_choose_qparams_affine` (quant_primitives.py) once the per-block
 * float32 `mins`/`maxs` are known, in float32 with torchao's operation order:
 *
 *   preserve_zero: min_neg = min(min, 0), max_pos = max(max, 0) (else min/max as given)
 *   SYMMETRIC:     scale = f32(max(-min_neg, max_pos) / f32((qmax - qmin) / 2)),
 *                  zp = int((qmax + qmin + 1) / 2) (truncation, as Python's int())
 *   SYMMETRIC_NO_CLIPPING_ERR: scale = the larger of f32(min_neg / qmin), f32(max_pos / qmax); same zp
 *   ASYMMETRIC:    scale = f32(f32(max_pos - min_neg) / (qmax - qmin))
 *                  INT:   zp = clamp(f32(qmin - rint(f32(min_neg / scale))), qmin, qmax)
 *                  FLOAT: zp = f32(min_neg + f32(scale * f32((qmax + qmin + 1) / 2)))
 *   then scale = max(scale, eps) (`torch.clamp(scale, min=eps)`, before the zero point).
 *
 * Returns float32 scale values and zero point values (null for ZeroPointDomain.NONE) before the
 * cast to the scale and zero point dtypes. Callers validate the formula's inputs.
 */
export function affineQParamValues(
  mins: ArrayLike<number>,
  maxs: ArrayLike<number>,
  formula: AffineQParamsFormula,
): { scale: Float64Array; zeroPoint: Float64Array | null } {
  const { mappingType: mapping, zeroPointDomain: domain, preserveZero, quantMin: qmin, quantMax: qmax, eps } = formula;
  const ops = formula.floatOperands ?? { quantMin: qmin, quantMax: qmax, range: qmax - qmin };
  const symmetric = mapping === MappingType.SYMMETRIC || mapping === MappingType.SYMMETRIC_NO_CLIPPING_ERR;
  const n = mins.length;
  const scale = new Float64Array(n);
  const zp = domain === ZeroPointDomain.NONE ? null : new Float64Array(n);
  const halfRange = f32((qmax - qmin) / 2);
  const symZeroPoint = Math.trunc((qmax + qmin + 1) / 2) + 0; // Python int((qmax + qmin + 1) / 2); + 0: no -0
  const midPoint = f32((qmax + qmin + 1) / 2);
  for (let i = 0; i < n; i++) {
    const minNeg = preserveZero ? (mins[i]! < 0 ? mins[i]! : 0) : mins[i]!;
    const maxPos = preserveZero ? (maxs[i]! > 0 ? maxs[i]! : 0) : maxs[i]!;
    let s: number;
    if (mapping === MappingType.SYMMETRIC) {
      const amax = -minNeg > maxPos ? -minNeg : maxPos;
      s = f32(amax / halfRange);
    } else if (mapping === MappingType.SYMMETRIC_NO_CLIPPING_ERR) {
      const smin = f32(minNeg / ops.quantMin);
      const smax = f32(maxPos / ops.quantMax);
      s = smin > smax ? smin : smax;
    } else {
      s = f32(f32(maxPos - minNeg) / ops.range);
    }
    if (s < eps) s = f32(eps); // torch.clamp(scale, min=eps)
    scale[i] = s;
    if (zp === null) continue;
    if (symmetric) {
      zp[i] = symZeroPoint;
    } else if (domain === ZeroPointDomain.INT) {
      const z = f32(qmin - rint(f32(minNeg / s)));
      zp[i] = z < ops.quantMin ? ops.quantMin : z > ops.quantMax ? ops.quantMax : z;
    } else {
      zp[i] = f32(minNeg + f32(s * midPoint));
    }
  }
  return { scale, zeroPoint: zp };
}

/**
 * rint for float32 values in the quantize loops: exact for |v| < 2^51; larger float32 values are
 * integers (or far outside every integer range, where only the clamp matters). NaN stays NaN.
 */
function roundHalfEven(v: number): number {
  return v + RINT_MAGIC - RINT_MAGIC;
}

function fromValues(dtype: DType, shape: number[], values: Float64Array): Tensor {
  const t = zeros(dtype, shape);
  for (let i = 0; i < values.length; i++) setElement(t, i, values[i]!);
  return t;
}

function qparamVector(t: Tensor | null, numBlocks: number, name: string, what: string): Float64Array | null {
  if (t === null) return null;
  const n = numel(t.shape);
  if (n !== numBlocks) {
    throw new QforgeError("BAD_SHAPE", `${what}: ${name} has ${n} elements but the block size defines ${numBlocks} blocks`);
  }
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = getElement(t, i);
  return out;
}

/**
 * torchao `quantize_affine(input, block_size, scale, zero_point, output_dtype, quant_min, quant_max,
 * zero_point_domain)`. Integer outputs: INT `clamp(round(x * (1 / scale)) + zero_point)`,
 * FLOAT `clamp(round((x - (zero_point - scale * mid_point)) / scale))`, NONE `clamp(round(x * (1 / scale)))`.
 * fp8 outputs: `clamp(x / scale, -max, max)` cast to fp8. NaN inputs throw BAD_DATA (PyTorch's
 * float-to-int cast of NaN is undefined behaviour).
 */
export function quantizeAffine(
  input: Tensor,
  blockSize: readonly number[],
  scale: Tensor,
  zeroPoint: Tensor | null,
  outputDtype: DType,
  quantMin?: number,
  quantMax?: number,
  zeroPointDomain: ZeroPointDomain = defaultDomain(outputDtype),
): Tensor {
  const what = "quantizeAffine";
  checkTargetDtype(outputDtype, what);
  const x = requireFloat32Input(input, what);
  const { quantMin: qmin, quantMax: qmax } = resolveQuantRange(outputDtype, quantMin, quantMax);
  const layout = blockLayout(input.shape, blockSize, what);
  const s = qparamVector(scale, layout.numBlocks, "scale", what)!;
  const z = qparamVector(zeroPoint, layout.numBlocks, "zero_point", what);
  if (zeroPointDomain === ZeroPointDomain.FLOAT && z === null) {
    throw new QforgeError("BAD_CONFIG", `${what}: ZeroPointDomain.FLOAT needs a zero point`);
  }
  if (zeroPointDomain === ZeroPointDomain.NONE && z !== null) {
    throw new QforgeError("BAD_CONFIG", `${what}: zero_point must be null when the zero point domain is NONE`);
  }

  if (isFloat8(outputDtype)) {
    if (zeroPointDomain !== ZeroPointDomain.NONE) {
      throw new QforgeError("BAD_CONFIG", `${what}: ${outputDtype} quantization has no zero point (use ZeroPointDomain.NONE)`);
    }
    const out = zeros(outputDtype, input.shape);
    layout.forEachRun((start, end, b) => {
      const sc = f32(s[b]!);
      for (let i = start; i < end; i++) {
        const v = f32(x[i]! / sc);
        // clamp(min=-max, max=max) keeps NaN, which the fp8 cast turns into NaN.
        setElement(out, i, v < qmin ? qmin : v > qmax ? qmax : v);
      }
    });
    return out;
  }

  const sink = intSink(outputDtype, input.shape);
  const q = sink.values;
  let nanAt = -1;
  const midPoint = f32((qmax + qmin + 1) / 2);
  layout.forEachRun((start, end, b) => {
    const sc = f32(s[b]!);
    if (zeroPointDomain === ZeroPointDomain.FLOAT) {
      const minVal = f32(f32(z![b]!) - f32(sc * midPoint));
      for (let i = start; i < end; i++) {
        const r = roundHalfEven(Math.fround(Math.fround(x[i]! - minVal) / sc));
        if (r !== r) { if (nanAt < 0) nanAt = i; continue; }
        q[i] = r < qmin ? qmin : r > qmax ? qmax : r;
      }
      return;
    }
    const inv = f32(1 / sc);
    const zp = z === null ? 0 : z[b]!;
    for (let i = start; i < end; i++) {
      const r = Math.fround(roundHalfEven(Math.fround(x[i]! * inv)) + zp);
      if (r !== r) { if (nanAt < 0) nanAt = i; continue; }
      q[i] = r < qmin ? qmin : r > qmax ? qmax : r;
    }
  });
  if (nanAt >= 0) {
    throw new QforgeError("BAD_DATA", `${what}: input element ${nanAt} is NaN (or the qparams make it NaN)`);
  }
  return sink.finish();
}

/**
 * torchao `dequantize_affine(input, block_size, scale, zero_point, input_dtype, quant_min, quant_max,
 * zero_point_domain, output_dtype)`. INT: `(q - zero_point) * scale`; FLOAT: `(q - mid_point) * scale +
 * zero_point`; NONE: `q * scale`. Each op rounds to `outputDtype` (float32, float16 or bfloat16).
 */
export function dequantizeAffine(
  input: Tensor,
  blockSize: readonly number[],
  scale: Tensor,
  zeroPoint: Tensor | null,
  inputDtype: DType,
  quantMin?: number,
  quantMax?: number,
  zeroPointDomain: ZeroPointDomain = defaultDomain(inputDtype),
  outputDtype: DType = "float32",
): Tensor {
  const what = "dequantizeAffine";
  checkTargetDtype(inputDtype, what);
  if (input.dtype !== inputDtype) {
    throw new QforgeError("DTYPE_MISMATCH", `${what}: input is ${input.dtype} but input_dtype says ${inputDtype}`);
  }
  if (outputDtype !== "float32" && outputDtype !== "float16" && outputDtype !== "bfloat16") {
    throw new QforgeError("BAD_DTYPE", `${what}: output dtype must be float32, float16 or bfloat16, got ${outputDtype}`);
  }
  const { quantMin: qmin, quantMax: qmax } = resolveQuantRange(inputDtype, quantMin, quantMax);
  const layout = blockLayout(input.shape, blockSize, what);
  const s = qparamVector(scale, layout.numBlocks, "scale", what)!;
  const z = qparamVector(zeroPoint, layout.numBlocks, "zero_point", what);
  if (zeroPointDomain === ZeroPointDomain.FLOAT && z === null) {
    throw new QforgeError("BAD_CONFIG", `${what}: ZeroPointDomain.FLOAT needs a zero point`);
  }
  if (isFloat8(inputDtype) && zeroPointDomain !== ZeroPointDomain.NONE) {
    throw new QforgeError("BAD_CONFIG", `${what}: ${inputDtype} has no zero point (use ZeroPointDomain.NONE)`);
  }
  // Each op of the torch expression rounds to the output dtype.
  const round: (v: number) => number = outputDtype === "float32" ? f32 : (v) => castNumber(outputDtype, v);
  const n = numel(input.shape);
  const out = new Float64Array(n);
  const fast = !dtypeInfo(input.dtype).packed && !isFloat8(input.dtype) ? (input.data as ArrayLike<number>) : null;
  const midPoint = (qmax + qmin + 1) / 2;
  layout.forEachRun((start, end, b) => {
    const sc = s[b]!;
    const zp = z === null ? 0 : z[b]!;
    for (let i = start; i < end; i++) {
      const qi = fast !== null ? fast[i]! : getElement(input, i);
      if (zeroPointDomain === ZeroPointDomain.FLOAT) {
        // (q - mid_point) is an int tensor minus a Python float: a float32 tensor, then cast.
        out[i] = round(round(round(f32(qi - midPoint)) * sc) + zp);
      } else {
        // INT: (q.to(int32) - zp.to(int32)).to(dtype) * scale; NONE: q.to(dtype) * scale.
        out[i] = round(round(qi - Math.trunc(zp)) * sc);
      }
    }
  });
  const result = zeros(outputDtype, input.shape);
  if (outputDtype === "float32") (result.data as Float32Array).set(out);
  else for (let i = 0; i < n; i++) setElement(result, i, out[i]!);
  return tensor(outputDtype, input.shape, result.data);
}
