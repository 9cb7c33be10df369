/**
 * Reference kernels of ONNX's quantized ops (latest opset semantics): QuantizeLinear,
 * DequantizeLinear, DynamicQuantizeLinear, MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv.
 *
 * ONNX divides by the scale (`x / y_scale`, onnx/reference/ops/op_quantize_linear.py), unlike
 * PyTorch, which multiplies by the float32 reciprocal; both round half to even. The QLinear ops
 * requantize with the float32 multiplier `x_scale * w_scale / y_scale` and `rint(acc * multiplier)`,
 * as ONNX Runtime's MlasRequantizeOutput does.
 */
import {
  castNumber, dtypeInfo, float32ToFloat8E4M3FnBits, float32ToFloat8E5M2Bits, isDType, numel, tensor, zeros, setElement,
  type DType, type Tensor,
} from "@qforge/ir";
import { f32, rint } from "@qforge/quant";
import {
  checkScales, clamp, fail, intRange, intTensor, intValues, need, numbers, paramVector, scalarParam, wrapInt32,
  type Kernel, type Where,
} from "./common.js";
import { convAccumulate, matmulAccumulate, onnxConvGeometry } from "./int-core.js";

function where(ctx: { node: string; op: string }): Where {
  return { node: ctx.node, op: ctx.op };
}

/** Rounds a double to a float dtype's precision (the precision of one arithmetic step in that dtype). */
function rounderFor(w: Where, dtype: DType): (v: number) => number {
  switch (dtype) {
    case "float64": return (v) => v;
    case "float32": return f32;
    case "float16": case "bfloat16": return (v) => castNumber(dtype, v);
    default: return fail(w, "BAD_DTYPE", `arithmetic precision must be a float dtype, got ${dtype}`);
  }
}

/**
 * Maps an element index of x to the index of its scale/zero point for ONNX's three granularities:
 * one element = per tensor; 1-D = per axis; same rank as x = blocked along `axis` by `blockSize`
 * (onnx/reference/ops/_quant_utils.py reshape_input).
 */
function paramIndexer(w: Where, xShape: readonly number[], pShape: readonly number[], axisAttr: number, blockSize: number): (i: number) => number {
  const pn = numel(pShape);
  if (pn === 1 && blockSize === 0) return () => 0;
  const rank = xShape.length;
  const axis = axisAttr < 0 ? axisAttr + rank : axisAttr;
  if (axis < 0 || axis >= rank) fail(w, "BAD_ATTRIBUTE", `axis ${axisAttr} is out of range for rank ${rank}`);
  const dim = xShape[axis]!;
  let inner = 1;
  for (let i = axis + 1; i < rank; i++) inner *= xShape[i]!;
  if (blockSize === 0) {
    if (pShape.length !== 1 || pShape[0] !== dim) {
      fail(w, "BAD_SHAPE", `per-axis qparams must be 1-D of ${dim} (x.shape[${axis}]), got [${pShape.join(", ")}]`);
    }
    return (i) => Math.floor(i / inner) % dim;
  }
  if (blockSize < 0) fail(w, "BAD_ATTRIBUTE", `block_size must be >= 0, got ${blockSize}`);
  const blocks = Math.ceil(dim / blockSize);
  const ok = pShape.length === rank && pShape.every((d, i) => (i === axis ? d === blocks : d === xShape[i]));
  if (!ok) {
    fail(w, "BAD_SHAPE", `blocked qparams must be [${xShape.map((d, i) => (i === axis ? blocks : d)).join(", ")}], got [${pShape.join(", ")}]`);
  }
  return (i) => {
    const r = i % inner;
    const rest = Math.floor(i / inner);
    const c = rest % dim;
    const outer = Math.floor(rest / dim);
    return (outer * blocks + Math.floor(c / blockSize)) * inner + r;
  };
}

/** Scale and zero point have the same shape (a scalar and a one-element vector both mean per tensor). */
function checkSameShape(w: Where, scale: Tensor, zp: Tensor | undefined): void {
  if (zp === undefined || (numel(zp.shape) === 1 && numel(scale.shape) === 1)) return;
  if (zp.shape.length !== scale.shape.length || zp.shape.some((d, i) => d !== scale.shape[i])) {
    fail(w, "BAD_SHAPE", `scale [${scale.shape.join(", ")}] and zero point [${zp.shape.join(", ")}] must have the same shape`);
  }
}

function dtypeAttr(w: Where, v: unknown, name: string): DType | undefined {
  if (v === undefined || v === "") return undefined;
  if (typeof v !== "string" || !isDType(v)) return fail(w, "BAD_ATTRIBUTE", `${name} '${String(v)}' is not a dtype`);
  return v;
}

/** ONNX QuantizeLinear (opset 25 semantics, qforge dtypes). */
export const quantizeLinear: Kernel = (inputs, attrs, ctx) => {
  const w = where(ctx);
  const x = need(w, inputs[0], "x");
  const scaleT = need(w, inputs[1], "y_scale");
  const zpT = inputs[2];
  checkSameShape(w, scaleT, zpT);
  const outAttr = dtypeAttr(w, attrs["output_dtype"], "output_dtype");
  if (zpT !== undefined && outAttr !== undefined && zpT.dtype !== outAttr) {
    fail(w, "BAD_DTYPE", `output_dtype ${outAttr} differs from y_zero_point's dtype ${zpT.dtype}`);
  }
  const dtype: DType = zpT?.dtype ?? outAttr ?? "uint8";
  const precision = dtypeAttr(w, attrs["precision"], "precision") ?? scaleT.dtype;
  const round = rounderFor(w, precision);
  const index = paramIndexer(w, x.shape, scaleT.shape, attrs["axis"] as number, attrs["block_size"] as number);
  const scales = numbers(scaleT);
  const zps = zpT === undefined ? new Array<number>(scales.length).fill(0) : numbers(zpT);
  const xs = numbers(x);
  const n = xs.length;
  if (dtype === "float8_e4m3fn" || dtype === "float8_e5m2") {
    // y = cast(x / y_scale + y_zero_point): the zero point is normally 0 and then not added at
    // all, which keeps the sign of -0 (the reference implementation ignores it).
    const saturate = (attrs["saturate"] as number) !== 0;
    const encode = dtype === "float8_e4m3fn" ? float32ToFloat8E4M3FnBits : float32ToFloat8E5M2Bits;
    const data = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const p = index(i);
      let v = round(xs[i]! / scales[p]!);
      if (zps[p] !== 0) v = round(v + zps[p]!);
      data[i] = encode(v, { saturate });
    }
    return [tensor(dtype, x.shape, data)];
  }
  const info = dtypeInfo(dtype);
  if ((info.kind !== "int" && info.kind !== "uint") || info.bits > 16) {
    fail(w, "BAD_DTYPE", `cannot quantize to ${dtype}`, "quantize_linear produces (u)int2/4/8/16 or float8");
  }
  const [lo, hi] = intRange(dtype);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const p = index(i);
    out[i] = clamp(rint(round(xs[i]! / scales[p]!)) + zps[p]!, lo, hi);
  }
  return [intTensor(dtype, x.shape, out)];
};

/** ONNX DequantizeLinear: `(x - x_zero_point) * x_scale`, the subtraction in float32. */
export const dequantizeLinear: Kernel = (inputs, attrs, ctx) => {
  const w = where(ctx);
  const x = need(w, inputs[0], "x");
  const scaleT = need(w, inputs[1], "x_scale");
  const zpT = inputs[2];
  checkSameShape(w, scaleT, zpT);
  if (dtypeInfo(scaleT.dtype).kind !== "float") fail(w, "BAD_DTYPE", `x_scale must be float, got ${scaleT.dtype}`);
  const outDType = dtypeAttr(w, attrs["output_dtype"], "output_dtype") ?? scaleT.dtype;
  const fp8 = x.dtype === "float8_e4m3fn" || x.dtype === "float8_e5m2";
  if (!fp8) intValues(w, x, "x");
  if (zpT !== undefined && zpT.dtype !== x.dtype) fail(w, "BAD_DTYPE", `x_zero_point must have x's dtype ${x.dtype}, got ${zpT.dtype}`);
  const index = paramIndexer(w, x.shape, scaleT.shape, attrs["axis"] as number, attrs["block_size"] as number);
  const scales = numbers(scaleT);
  const zps = zpT === undefined ? new Array<number>(scales.length).fill(0) : numbers(zpT);
  if (fp8 && zps.some((z) => z !== 0)) fail(w, "BAD_DATA", "x_zero_point must be 0 for float8 inputs");
  // numpy: x.astype(float32) - zero_point, then times the scale in the wider of float32 and the scale's dtype.
  const mul = scaleT.dtype === "float64" ? (a: number, b: number) => a * b : (a: number, b: number) => f32(a * b);
  const xs = numbers(x);
  const out = zeros(outDType, x.shape);
  for (let i = 0; i < xs.length; i++) {
    const p = index(i);
    setElement(out, i, mul(f32(f32(xs[i]!) - f32(zps[p]!)), scales[p]!));
  }
  return [out];
};

/** ONNX DynamicQuantizeLinear (onnx/reference/ops/op_dynamic_quantize_linear.py), float32 arithmetic. */
export const dynamicQuantizeLinear: Kernel = (inputs, _attrs, ctx) => {
  const w = where(ctx);
  const x = need(w, inputs[0], "x");
  if (dtypeInfo(x.dtype).kind !== "float") fail(w, "BAD_DTYPE", `x must be float, got ${x.dtype}`);
  const xs = numbers(x);
  let max = 0;
  let min = 0;
  for (const v of xs) {
    if (v > max) max = v;
    if (v < min) min = v;
  }
  max = f32(max);
  min = f32(min);
  // The range always contains 0, so max == min only for an all-zero input: scale 1, zero point 0.
  const scale = max === min ? 1 : f32(f32(max - min) / 255);
  const zp = rint(clamp(f32(0 - f32(min / scale)), 0, 255));
  const q = new Int32Array(xs.length);
  for (let i = 0; i < xs.length; i++) q[i] = clamp(rint(f32(xs[i]! / scale)) + zp, 0, 255);
  const scaleOut = zeros(x.dtype, []);
  setElement(scaleOut, 0, scale);
  return [intTensor("uint8", x.shape, q), scaleOut, intTensor("uint8", [], [zp])];
};

/** Rows of a (second-to-last dim, 1 for 1-D) and columns of b (last dim, 1 for 1-D). */
function rowsCols(a: Tensor, b: Tensor): [number, number] {
  return [a.shape.length >= 2 ? a.shape[a.shape.length - 2]! : 1, b.shape.length >= 2 ? b.shape[b.shape.length - 1]! : 1];
}

/** ONNX MatMulInteger: int32 `(A - a_zero_point) @ (B - b_zero_point)`. */
export const matmulInteger: Kernel = (inputs, _attrs, ctx) => {
  const w = where(ctx);
  const a = need(w, inputs[0], "A");
  const b = need(w, inputs[1], "B");
  const [m, n] = rowsCols(a, b);
  const aZp = paramVector(w, inputs[2], m, "a_zero_point");
  const bZp = paramVector(w, inputs[3], n, "b_zero_point");
  const r = matmulAccumulate(w, intValues(w, a, "A"), a.shape, aZp, intValues(w, b, "B"), b.shape, bZp);
  return [tensor("int32", r.shape, r.acc)];
};

/** ONNX ConvInteger: int32 convolution of `x - x_zero_point` and `w - w_zero_point` (per output channel). */
export const convInteger: Kernel = (inputs, attrs, ctx) => {
  const w = where(ctx);
  const x = need(w, inputs[0], "x");
  const wt = need(w, inputs[1], "w");
  const xZp = inputs[2] === undefined ? 0 : scalarParam(w, inputs[2], "x_zero_point");
  const wZp = paramVector(w, inputs[3], wt.shape[0]!, "w_zero_point");
  const geo = onnxConvGeometry(w, x.shape, wt.shape, attrs);
  const acc = convAccumulate(w, intValues(w, x, "x"), x.shape, xZp, intValues(w, wt, "w"), wt.shape, wZp, geo);
  return [tensor("int32", [x.shape[0]!, wt.shape[0]!, ...geo.outSpatial], acc)];
};

/** `clamp(rint(f32(acc * multiplier)) + zero point)`: ONNX Runtime's float requantization. */
function requantizeFloat(acc: number, multiplier: number, zp: number, lo: number, hi: number): number {
  return clamp(rint(f32(acc * multiplier)) + zp, lo, hi);
}

/** ONNX QLinearMatMul. */
export const qlinearMatmul: Kernel = (inputs, _attrs, ctx) => {
  const w = where(ctx);
  const a = need(w, inputs[0], "a");
  const b = need(w, inputs[3], "b");
  const yZpT = need(w, inputs[7], "y_zero_point");
  const [m, n] = rowsCols(a, b);
  const aS = paramVector(w, need(w, inputs[1], "a_scale"), m, "a_scale");
  const aZp = paramVector(w, need(w, inputs[2], "a_zero_point"), m, "a_zero_point");
  const bS = paramVector(w, need(w, inputs[4], "b_scale"), n, "b_scale");
  const bZp = paramVector(w, need(w, inputs[5], "b_zero_point"), n, "b_zero_point");
  const yS = paramVector(w, need(w, inputs[6], "y_scale"), m, "y_scale");
  const yZp = paramVector(w, yZpT, m, "y_zero_point");
  checkScales(w, [...aS, ...bS, ...yS], "scales");
  const r = matmulAccumulate(w, intValues(w, a, "a"), a.shape, aZp, intValues(w, b, "b"), b.shape, bZp);
  const [lo, hi] = intRange(yZpT.dtype);
  const out = new Int32Array(r.acc.length);
  for (let i = 0; i < out.length; i++) {
    const row = Math.floor(i / r.n) % r.m;
    const col = i % r.n;
    const mult = f32(f32(aS[row]! * bS[col]!) / yS[row]!);
    out[i] = requantizeFloat(r.acc[i]!, mult, yZp[row]!, lo, hi);
  }
  return [intTensor(yZpT.dtype, r.shape, out)];
};

/** ONNX QLinearConv: int32 convolution plus int32 bias, requantized per output channel. */
export const qlinearConv: Kernel = (inputs, attrs, ctx) => {
  const w = where(ctx);
  const x = need(w, inputs[0], "x");
  const wt = need(w, inputs[3], "w");
  const yZpT = need(w, inputs[7], "y_zero_point");
  const m = wt.shape[0]!;
  const xS = scalarParam(w, inputs[1], "x_scale");
  const xZp = scalarParam(w, inputs[2], "x_zero_point");
  const wS = paramVector(w, need(w, inputs[4], "w_scale"), m, "w_scale");
  const wZp = paramVector(w, need(w, inputs[5], "w_zero_point"), m, "w_zero_point");
  const yS = scalarParam(w, inputs[6], "y_scale");
  const yZp = scalarParam(w, yZpT, "y_zero_point");
  checkScales(w, [xS, ...wS, yS], "scales");
  const bias = inputs[8] === undefined ? undefined : intValues(w, inputs[8], "B");
  if (bias !== undefined && bias.length !== m) fail(w, "BAD_SHAPE", `B must have ${m} values, got ${bias.length}`);
  const geo = onnxConvGeometry(w, x.shape, wt.shape, attrs);
  const acc = convAccumulate(w, intValues(w, x, "x"), x.shape, xZp, intValues(w, wt, "w"), wt.shape, wZp, geo);
  const outSize = numel(geo.outSpatial);
  const mult = wS.map((s) => f32(f32(xS * s) / yS));
  const [lo, hi] = intRange(yZpT.dtype);
  const out = new Int32Array(acc.length);
  for (let i = 0; i < acc.length; i++) {
    const ch = Math.floor(i / outSize) % m;
    const total = bias === undefined ? acc[i]! : wrapInt32(acc[i]! + bias[ch]!);
    out[i] = requantizeFloat(total, mult[ch]!, yZp, lo, hi);
  }
  return [intTensor(yZpT.dtype, [x.shape[0]!, m, ...geo.outSpatial], out)];
};
