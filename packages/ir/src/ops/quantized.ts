import type { DType } from "../dtype.js";
import { dtypeInfo, isDType } from "../dtype.js";
import { QforgeError } from "../errors.js";
import type { Dim, ValueType } from "../graph.js";
import type { AttrSpec, InferContext, OpSchema, PortSpec } from "./registry.js";
import { broadcastShapes, dimsCompatible, getOp, normAxis, registerOp, req } from "./registry.js";
import { windowOutDim } from "./linalg.js";

/**
 * Quantized ops: integer tensors with their scales and zero points as explicit inputs.
 *
 * Two families share this file:
 * - ONNX's quantized ops (latest opset, snake_case names, ONNX input order and attributes):
 *   quantize_linear, dequantize_linear, dynamic_quantize_linear, qlinear_matmul, qlinear_conv,
 *   matmul_integer, conv_integer.
 * - The integer ops PT2E lowering produces from `dequantize -> float op -> quantize` patterns, with
 *   PyTorch 1.13's quantized-kernel semantics (`torch.ops.quantized.*`): quantized_linear,
 *   quantized_conv2d, quantized_add, quantized_mul, quantized_cat, the quantized activations,
 *   pooling, mean, upsampling and dynamic_quantized_linear. A quantized tensor is three inputs:
 *   the integer tensor, its scale (float, one element or one per channel) and its zero point.
 *   Outputs keep the integer dtype of the (first) quantized input.
 *
 * Scales may be float32 or float64 tensors: PyTorch keeps per-tensor scales as doubles and the
 * kernels use them with the precision each PyTorch kernel uses (see the reference kernels in
 * @qforge/runtime, src/quantized/).
 */

// ---- helpers --------------------------------------------------------------------------------

function badAttr(ctx: InferContext, message: string, hint?: string): never {
  throw new QforgeError("BAD_ATTRIBUTE", `${ctx.op}: ${message}`, { node: ctx.node, hint });
}

function badDType(ctx: InferContext, message: string, hint?: string): never {
  throw new QforgeError("DTYPE_MISMATCH", `${ctx.op}: ${message}`, { node: ctx.node, hint });
}

function requireInteger(ctx: InferContext, i: number, what: string): ValueType {
  const t = req(ctx, i);
  const k = dtypeInfo(t.dtype).kind;
  if (k !== "int" && k !== "uint") badDType(ctx, `${what} must be an integer tensor, got ${t.dtype}`);
  return t;
}

function requireFloat(ctx: InferContext, i: number, what: string): ValueType {
  const t = req(ctx, i);
  if (dtypeInfo(t.dtype).kind !== "float") badDType(ctx, `${what} must be a floating-point tensor, got ${t.dtype}`);
  return t;
}

/** Element count of a static shape, or undefined when a dim is symbolic. */
function staticNumel(shape: readonly Dim[]): number | undefined {
  let n = 1;
  for (const d of shape) {
    if (typeof d !== "number") return undefined;
    n *= d;
  }
  return n;
}

/** A per-tensor qparam: a scalar or a one-element tensor (checked when the shape is static). */
function requireScalarParam(ctx: InferContext, i: number, what: string): void {
  const t = ctx.inputs[i];
  if (t === undefined) return;
  const n = staticNumel(t.shape);
  if (n !== undefined && n !== 1) ctx.fail(`${what} must have one element (per-tensor), got [${t.shape.join(",")}]`);
}

/** A qparam that is either one element or a vector of `count` (per channel / row / column). */
function requireParamVector(ctx: InferContext, i: number, what: string, count: Dim): void {
  const t = ctx.inputs[i];
  if (t === undefined) return;
  const n = staticNumel(t.shape);
  if (n === 1) return;
  if (t.shape.length !== 1 || !dimsCompatible(t.shape[0]!, count)) {
    ctx.fail(`${what} must have one element or ${count}, got [${t.shape.join(",")}]`);
  }
}

function engineAttr(): AttrSpec {
  return {
    type: "string", default: "qnnpack",
    doc: "qnnpack | onednn: the PyTorch quantized engine whose requantization is reproduced (they round differently)",
  };
}

function checkEngine(ctx: InferContext): void {
  const e = ctx.attr<string>("engine");
  if (e !== "qnnpack" && e !== "onednn") badAttr(ctx, `engine must be "qnnpack" or "onednn", got "${e}"`);
}

const qTensor = (prefix: string, opt = false): PortSpec[] => [
  { name: prefix }, { name: `${prefix}_scale` }, { name: `${prefix}_zero_point`, optional: opt },
];

// ---- ONNX: QuantizeLinear / DequantizeLinear / DynamicQuantizeLinear ------------------------

/** The dtypes QuantizeLinear produces (ONNX's list restricted to qforge's dtypes). */
const QUANTIZE_LINEAR_DTYPES: ReadonlySet<DType> = new Set<DType>([
  "uint8", "int8", "uint16", "int16", "uint4", "int4", "uint2", "int2", "float8_e4m3fn", "float8_e5m2",
]);

/**
 * Checks the scale shape against the granularity ONNX derives from it: one element = per tensor;
 * 1-D of x.shape[axis] = per axis; same rank as x with ceil(x.shape[axis] / block_size) on `axis`
 * and x's dims elsewhere = blocked.
 */
function checkLinearQuantParams(ctx: InferContext, x: ValueType, scaleIndex: number, zpIndex: number): void {
  const s = req(ctx, scaleIndex);
  const zp = ctx.inputs[zpIndex];
  const perTensor = (t: ValueType): boolean => staticNumel(t.shape) === 1;
  const sameShape = (a: ValueType, b: ValueType): boolean => a.shape.length === b.shape.length && a.shape.every((d, i) => dimsCompatible(d, b.shape[i]!));
  if (zp !== undefined && !(perTensor(zp) && perTensor(s)) && !sameShape(zp, s)) {
    ctx.fail(`scale [${s.shape.join(",")}] and zero point [${zp.shape.join(",")}] must have the same shape`);
  }
  const blockSize = ctx.attr<number>("block_size");
  if (blockSize < 0) badAttr(ctx, `block_size must be >= 0, got ${blockSize}`);
  const n = staticNumel(s.shape);
  if (n === 1 && blockSize === 0) return;
  if (x.shape.length === 0) ctx.fail("a scalar input can only be quantized per tensor");
  const axis = normAxis(ctx, ctx.attr<number>("axis"), x.shape.length);
  const ax = x.shape[axis]!;
  if (blockSize === 0) {
    if (s.shape.length !== 1 || !dimsCompatible(s.shape[0]!, ax)) {
      ctx.fail(`per-axis scale must be 1-D of x.shape[${axis}] = ${ax}, got [${s.shape.join(",")}]`);
    }
    return;
  }
  if (s.shape.length !== x.shape.length) ctx.fail(`blocked scale must have x's rank ${x.shape.length}, got [${s.shape.join(",")}]`);
  s.shape.forEach((d, i) => {
    const want: Dim = i === axis ? (typeof ax === "number" ? Math.ceil(ax / blockSize) : d) : x.shape[i]!;
    if (!dimsCompatible(d, want)) ctx.fail(`blocked scale dim ${i} must be ${want}, got ${d}`);
  });
}

function dtypeAttr(ctx: InferContext, name: string): DType | undefined {
  const v = ctx.attrOpt<string>(name);
  if (v === undefined || v === "") return undefined;
  if (!isDType(v)) badAttr(ctx, `${name} '${v}' is not a dtype`);
  return v;
}

registerOp({
  name: "quantize_linear",
  family: "quantize",
  doc: "ONNX QuantizeLinear: y = saturate(round_half_even(x / y_scale) + y_zero_point); per tensor, per axis or blocked; "
    + "float8 outputs are cast(x / y_scale) (saturating when saturate=1). Output dtype: y_zero_point's, else output_dtype, else uint8.",
  attrs: {
    axis: { type: "int", default: 1, doc: "the per-axis / blocked quantization axis" },
    saturate: { type: "int", default: 1, doc: "float8 outputs only: 1 clamps overflow to the largest finite value" },
    block_size: { type: "int", default: 0, doc: "blocked quantization: elements along axis sharing one scale (0 = not blocked)" },
    output_dtype: { type: "string", doc: "the quantized dtype when y_zero_point is omitted (qforge dtype name; the importer maps ONNX's enum)" },
    precision: { type: "string", doc: "float dtype of the division x / y_scale (default: y_scale's dtype)" },
  },
  inputs: [{ name: "x" }, { name: "y_scale" }, { name: "y_zero_point", optional: true }],
  outputs: [{ name: "y" }],
  infer: (ctx) => {
    const x = req(ctx, 0);
    const xk = dtypeInfo(x.dtype).kind;
    if (xk !== "float" && x.dtype !== "int32") badDType(ctx, `x must be float or int32, got ${x.dtype}`);
    requireFloat(ctx, 1, "y_scale");
    const zp = ctx.inputs[2];
    const outAttr = dtypeAttr(ctx, "output_dtype");
    if (zp !== undefined && outAttr !== undefined && zp.dtype !== outAttr) {
      badDType(ctx, `output_dtype ${outAttr} differs from y_zero_point's dtype ${zp.dtype}`);
    }
    const dtype = zp?.dtype ?? outAttr ?? "uint8";
    if (!QUANTIZE_LINEAR_DTYPES.has(dtype)) {
      badDType(ctx, `cannot quantize to ${dtype}`, `use one of ${[...QUANTIZE_LINEAR_DTYPES].join(", ")}`);
    }
    const precision = dtypeAttr(ctx, "precision");
    if (precision !== undefined && dtypeInfo(precision).kind !== "float") badAttr(ctx, `precision must be a float dtype, got ${precision}`);
    checkLinearQuantParams(ctx, x, 1, 2);
    return [{ dtype, shape: x.shape }];
  },
});

registerOp({
  name: "dequantize_linear",
  family: "quantize",
  doc: "ONNX DequantizeLinear: y = (x - x_zero_point) * x_scale (float arithmetic in the scale's dtype); per tensor, per axis or "
    + "blocked. Output dtype: output_dtype, else x_scale's.",
  attrs: {
    axis: { type: "int", default: 1 },
    block_size: { type: "int", default: 0 },
    output_dtype: { type: "string", doc: "float dtype of y (default: x_scale's dtype)" },
  },
  inputs: [{ name: "x" }, { name: "x_scale" }, { name: "x_zero_point", optional: true }],
  outputs: [{ name: "y" }],
  infer: (ctx) => {
    const x = req(ctx, 0);
    const xk = dtypeInfo(x.dtype).kind;
    if (xk !== "int" && xk !== "uint" && x.dtype !== "float8_e4m3fn" && x.dtype !== "float8_e5m2") {
      badDType(ctx, `x must be a quantized (integer or float8) tensor, got ${x.dtype}`);
    }
    const scale = requireFloat(ctx, 1, "x_scale");
    const zp = ctx.inputs[2];
    if (zp !== undefined && zp.dtype !== x.dtype) badDType(ctx, `x_zero_point must have x's dtype ${x.dtype}, got ${zp.dtype}`);
    const out = dtypeAttr(ctx, "output_dtype");
    if (out !== undefined && dtypeInfo(out).kind !== "float") badAttr(ctx, `output_dtype must be a float dtype, got ${out}`);
    checkLinearQuantParams(ctx, x, 1, 2);
    return [{ dtype: out ?? scale.dtype, shape: x.shape }];
  },
});

registerOp({
  name: "dynamic_quantize_linear",
  family: "quantize",
  doc: "ONNX DynamicQuantizeLinear: uint8 quantization with scale = (max(0, max x) - min(0, min x)) / 255 (1 when that range is empty), "
    + "zero point = round_half_even(clamp(-min(0, min x) / scale, 0, 255)), y = saturate(round_half_even(x / scale) + zero point)",
  attrs: {},
  inputs: [{ name: "x" }],
  outputs: [{ name: "y" }, { name: "y_scale" }, { name: "y_zero_point" }],
  infer: (ctx) => {
    const x = requireFloat(ctx, 0, "x");
    return [{ dtype: "uint8", shape: x.shape }, { dtype: x.dtype, shape: [] }, { dtype: "uint8", shape: [] }];
  },
});

// ---- ONNX: integer matmul / conv ------------------------------------------------------------

/** matmul's shape rule on two integer operands (dtype replaced so that matmul's same-dtype check passes). */
function matmulShape(ctx: InferContext, a: ValueType, b: ValueType): readonly Dim[] {
  const matmul = getOp("matmul");
  const inner: InferContext = { ...ctx, op: ctx.op, inputs: [{ dtype: "int32", shape: a.shape }, { dtype: "int32", shape: b.shape }] };
  return matmul.infer(inner)[0]!.shape;
}

/** conv's shape rule (ONNX Conv attributes) on x and w. */
function convShape(ctx: InferContext, x: ValueType, w: ValueType): readonly Dim[] {
  const conv = getOp("conv");
  const inner: InferContext = { ...ctx, inputs: [{ dtype: "int32", shape: x.shape }, { dtype: "int32", shape: w.shape }] };
  return conv.infer(inner)[0]!.shape;
}

const onnxConvAttrs: Record<string, AttrSpec> = {
  auto_pad: { type: "string", default: "NOTSET", doc: "NOTSET | SAME_UPPER | SAME_LOWER | VALID" },
  dilations: { type: "ints", doc: "default 1 per spatial dim" },
  group: { type: "int", default: 1 },
  kernel_shape: { type: "ints", doc: "defaults to the weight's spatial shape" },
  pads: { type: "ints", doc: "[begin..., end...]; default 0" },
  strides: { type: "ints", doc: "default 1 per spatial dim" },
};

/** Rows of a (second-to-last dim; 1 for a 1-D a) and columns of b (last dim; 1 for a 1-D b). */
function matmulRowsCols(a: ValueType, b: ValueType): [Dim, Dim] {
  const rows = a.shape.length >= 2 ? a.shape[a.shape.length - 2]! : 1;
  const cols = b.shape.length >= 2 ? b.shape[b.shape.length - 1]! : 1;
  return [rows, cols];
}

registerOp({
  name: "matmul_integer",
  family: "compute",
  doc: "ONNX MatMulInteger: int32 (a - a_zero_point) @ (b - b_zero_point); a_zero_point per tensor or per row of a, "
    + "b_zero_point per tensor or per column of b",
  attrs: {},
  inputs: [{ name: "A" }, { name: "B" }, { name: "a_zero_point", optional: true }, { name: "b_zero_point", optional: true }],
  outputs: [{ name: "Y" }],
  infer: (ctx) => {
    const a = requireInteger(ctx, 0, "A");
    const b = requireInteger(ctx, 1, "B");
    const [rows, cols] = matmulRowsCols(a, b);
    requireParamVector(ctx, 2, "a_zero_point", rows);
    requireParamVector(ctx, 3, "b_zero_point", cols);
    return [{ dtype: "int32", shape: matmulShape(ctx, a, b) }];
  },
});

registerOp({
  name: "qlinear_matmul",
  family: "compute",
  doc: "ONNX QLinearMatMul: y = saturate(round_half_even((a - a_zp) @ (b - b_zp) * (a_scale * b_scale / y_scale)) + y_zp) with an "
    + "int32 product; a's qparams per tensor or per row, b's per tensor or per column, y's per tensor or per row",
  attrs: {},
  inputs: [...qTensor("a"), ...qTensor("b"), { name: "y_scale" }, { name: "y_zero_point" }],
  outputs: [{ name: "y" }],
  infer: (ctx) => {
    const a = requireInteger(ctx, 0, "a");
    const b = requireInteger(ctx, 3, "b");
    const y = requireInteger(ctx, 7, "y_zero_point");
    const [rows, cols] = matmulRowsCols(a, b);
    requireParamVector(ctx, 1, "a_scale", rows);
    requireParamVector(ctx, 2, "a_zero_point", rows);
    requireParamVector(ctx, 4, "b_scale", cols);
    requireParamVector(ctx, 5, "b_zero_point", cols);
    requireParamVector(ctx, 6, "y_scale", rows);
    requireParamVector(ctx, 7, "y_zero_point", rows);
    return [{ dtype: y.dtype, shape: matmulShape(ctx, a, b) }];
  },
});

registerOp({
  name: "conv_integer",
  family: "compute",
  doc: "ONNX ConvInteger: int32 convolution of (x - x_zero_point) and (w - w_zero_point); padding is the real 0 (= x_zero_point); "
    + "w_zero_point per tensor or per output channel",
  attrs: onnxConvAttrs,
  inputs: [{ name: "x" }, { name: "w" }, { name: "x_zero_point", optional: true }, { name: "w_zero_point", optional: true }],
  outputs: [{ name: "y" }],
  infer: (ctx) => {
    const x = requireInteger(ctx, 0, "x");
    const w = requireInteger(ctx, 1, "w");
    requireScalarParam(ctx, 2, "x_zero_point");
    requireParamVector(ctx, 3, "w_zero_point", w.shape[0] ?? 1);
    return [{ dtype: "int32", shape: convShape(ctx, x, w) }];
  },
});

registerOp({
  name: "qlinear_conv",
  family: "compute",
  doc: "ONNX QLinearConv: int32 convolution of (x - x_zp) and (w - w_zp) plus the int32 bias B, requantized with "
    + "x_scale * w_scale / y_scale (round half to even) and saturated; w's qparams per tensor or per output channel",
  attrs: onnxConvAttrs,
  inputs: [...qTensor("x"), ...qTensor("w"), { name: "y_scale" }, { name: "y_zero_point" }, { name: "B", optional: true }],
  outputs: [{ name: "y" }],
  infer: (ctx) => {
    const x = requireInteger(ctx, 0, "x");
    const w = requireInteger(ctx, 3, "w");
    const y = requireInteger(ctx, 7, "y_zero_point");
    const m = w.shape[0] ?? 1;
    requireScalarParam(ctx, 1, "x_scale");
    requireScalarParam(ctx, 2, "x_zero_point");
    requireParamVector(ctx, 4, "w_scale", m);
    requireParamVector(ctx, 5, "w_zero_point", m);
    requireScalarParam(ctx, 6, "y_scale");
    requireScalarParam(ctx, 7, "y_zero_point");
    const bias = ctx.inputs[8];
    if (bias !== undefined) {
      if (bias.dtype !== "int32") badDType(ctx, `B must be int32, got ${bias.dtype}`);
      if (bias.shape.length !== 1 || !dimsCompatible(bias.shape[0]!, m)) ctx.fail(`B must be [${m}], got [${bias.shape.join(",")}]`);
    }
    return [{ dtype: y.dtype, shape: convShape(ctx, x, w) }];
  },
});

// ---- PyTorch (PT2E lowering): linear / conv2d / dynamic linear -----------------------------

/** The weight of quantized linear/conv: integer, qparams per tensor or per output channel (dim 0). */
function checkWeight(ctx: InferContext, wIndex: number): ValueType {
  const w = requireInteger(ctx, wIndex, "weight");
  const out = w.shape[0] ?? 1;
  requireParamVector(ctx, wIndex + 1, "w_scale", out);
  requireParamVector(ctx, wIndex + 2, "w_zero_point", out);
  return w;
}

function checkFloatBias(ctx: InferContext, i: number, out: Dim): void {
  const b = ctx.inputs[i];
  if (b === undefined) return;
  if (dtypeInfo(b.dtype).kind !== "float") badDType(ctx, `bias must be float (PyTorch quantized ops take a float bias), got ${b.dtype}`);
  if (b.shape.length !== 1 || !dimsCompatible(b.shape[0]!, out)) ctx.fail(`bias must be [${out}], got [${b.shape.join(",")}]`);
}

const weightPorts: PortSpec[] = [...qTensor("w"), { name: "bias", optional: true }];
const outPorts: PortSpec[] = [{ name: "y_scale" }, { name: "y_zero_point" }];

registerOp({
  name: "quantized_linear",
  family: "compute",
  doc: "torch.ops.quantized.linear / linear_relu (PyTorch 1.13): int32 (x - x_zp) @ (w - w_zp)^T, requantized to (y_scale, "
    + "y_zero_point) the way `engine` does it; w [out, in] per tensor or per output channel; float bias",
  attrs: { engine: engineAttr(), fuse_relu: { type: "bool", default: false, doc: "linear_relu: clamp the output at y_zero_point" } },
  inputs: [...qTensor("x"), ...weightPorts, ...outPorts],
  outputs: [{ name: "y" }],
  infer: (ctx) => {
    checkEngine(ctx);
    const x = requireInteger(ctx, 0, "x");
    const w = checkWeight(ctx, 3);
    requireScalarParam(ctx, 1, "x_scale");
    requireScalarParam(ctx, 2, "x_zero_point");
    requireScalarParam(ctx, 7, "y_scale");
    requireScalarParam(ctx, 8, "y_zero_point");
    if (w.shape.length !== 2) ctx.fail(`weight must be 2-D [out, in], got [${w.shape.join(",")}]`);
    if (x.shape.length < 1 || !dimsCompatible(x.shape[x.shape.length - 1]!, w.shape[1]!)) {
      ctx.fail(`input features [${x.shape.join(",")}] do not match weight [${w.shape.join(",")}]`);
    }
    checkFloatBias(ctx, 6, w.shape[0]!);
    return [{ dtype: x.dtype, shape: [...x.shape.slice(0, -1), w.shape[0]!] }];
  },
});

function pairAttr(ctx: InferContext, name: string): [number, number] {
  const v = ctx.attr<number[]>(name);
  if (v.length === 1) return [v[0]!, v[0]!];
  if (v.length !== 2) badAttr(ctx, `${name} must have 1 or 2 values, got [${v.join(",")}]`);
  return [v[0]!, v[1]!];
}

registerOp({
  name: "quantized_conv2d",
  family: "compute",
  doc: "torch.ops.quantized.conv2d / conv2d_relu (PyTorch 1.13): int32 convolution of (x - x_zp) and (w - w_zp) (padding is "
    + "the real 0), requantized the way `engine` does it; NCHW, w [out, in/groups, kh, kw] per tensor or per output channel",
  attrs: {
    stride: { type: "ints", default: [1, 1] },
    padding: { type: "ints", default: [0, 0], doc: "[h, w], both sides" },
    dilation: { type: "ints", default: [1, 1] },
    groups: { type: "int", default: 1 },
    engine: engineAttr(),
    fuse_relu: { type: "bool", default: false, doc: "conv2d_relu: clamp the output at y_zero_point" },
  },
  inputs: [...qTensor("x"), ...weightPorts, ...outPorts],
  outputs: [{ name: "y" }],
  infer: (ctx) => {
    checkEngine(ctx);
    const x = requireInteger(ctx, 0, "x");
    const w = checkWeight(ctx, 3);
    requireScalarParam(ctx, 1, "x_scale");
    requireScalarParam(ctx, 2, "x_zero_point");
    requireScalarParam(ctx, 7, "y_scale");
    requireScalarParam(ctx, 8, "y_zero_point");
    if (x.shape.length !== 4 || w.shape.length !== 4) ctx.fail(`input [${x.shape.join(",")}] and weight [${w.shape.join(",")}] must be 4-D`);
    const groups = ctx.attr<number>("groups");
    if (!(groups >= 1)) badAttr(ctx, `groups must be >= 1, got ${groups}`);
    const c = x.shape[1]!;
    const wc = w.shape[1]!;
    if (typeof c === "number" && typeof wc === "number" && c !== wc * groups) ctx.fail(`input channels ${c} != ${wc} x groups ${groups}`);
    const o = w.shape[0]!;
    if (typeof o === "number" && o % groups !== 0) ctx.fail(`output channels ${o} not divisible by groups ${groups}`);
    checkFloatBias(ctx, 6, o);
    const stride = pairAttr(ctx, "stride");
    const pad = pairAttr(ctx, "padding");
    const dil = pairAttr(ctx, "dilation");
    const out: Dim[] = [x.shape[0]!, o];
    for (let i = 0; i < 2; i++) {
      const k = w.shape[2 + i]!;
      if (typeof k !== "number") return ctx.fail("weight spatial dims must be static");
      out.push(windowOutDim(ctx, x.shape[2 + i]!, k, stride[i]!, pad[i]!, pad[i]!, dil[i]!, "NOTSET"));
    }
    return [{ dtype: x.dtype, shape: out }];
  },
});

registerOp({
  name: "dynamic_quantized_linear",
  family: "compute",
  doc: "torch.ops.quantized.linear_dynamic (PyTorch 1.13): float x is quantized to quint8 with ATen's ChooseQuantizationParams "
    + "on its min/max, multiplied with the integer weight, and the int32 result is scaled back to float32 plus the float bias",
  attrs: {
    engine: engineAttr(),
    reduce_range: { type: "bool", default: true, doc: "halve the activation range (onednn honours it; qnnpack ignores it)" },
  },
  inputs: [{ name: "x" }, ...weightPorts],
  outputs: [{ name: "y" }],
  infer: (ctx) => {
    checkEngine(ctx);
    const x = requireFloat(ctx, 0, "x");
    const w = checkWeight(ctx, 1);
    if (w.shape.length !== 2) ctx.fail(`weight must be 2-D [out, in], got [${w.shape.join(",")}]`);
    if (x.shape.length < 1 || !dimsCompatible(x.shape[x.shape.length - 1]!, w.shape[1]!)) {
      ctx.fail(`input features [${x.shape.join(",")}] do not match weight [${w.shape.join(",")}]`);
    }
    checkFloatBias(ctx, 4, w.shape[0]!);
    return [{ dtype: "float32", shape: [...x.shape.slice(0, -1), w.shape[0]!] }];
  },
});

// ---- PyTorch: elementwise -------------------------------------------------------------------

registerOp({
  name: "quantized_add",
  family: "compute",
  doc: "torch.ops.quantized.add / add_relu: quantize(dequantize(a) + dequantize(b)) in float32 with numpy broadcasting",
  attrs: { fuse_relu: { type: "bool", default: false } },
  inputs: [...qTensor("a"), ...qTensor("b"), ...outPorts],
  outputs: [{ name: "y" }],
  infer: (ctx) => binaryQuantizedType(ctx),
});

registerOp({
  name: "quantized_mul",
  family: "compute",
  doc: "torch.ops.quantized.mul / mul_relu: quantize(dequantize(a) * dequantize(b)) in float32 with numpy broadcasting",
  attrs: { fuse_relu: { type: "bool", default: false } },
  inputs: [...qTensor("a"), ...qTensor("b"), ...outPorts],
  outputs: [{ name: "y" }],
  infer: (ctx) => binaryQuantizedType(ctx),
});

function binaryQuantizedType(ctx: InferContext): ValueType[] {
  const a = requireInteger(ctx, 0, "a");
  const b = requireInteger(ctx, 3, "b");
  if (a.dtype !== b.dtype) badDType(ctx, `a and b must have the same dtype, got ${a.dtype} and ${b.dtype}`);
  for (const i of [1, 2, 4, 5, 6, 7]) requireScalarParam(ctx, i, `input #${i}`);
  return [{ dtype: a.dtype, shape: broadcastShapes(ctx, a.shape, b.shape) }];
}

registerOp({
  name: "quantized_cat",
  family: "compute",
  doc: "torch.ops.quantized.cat: every input dequantized, concatenated along dim, quantized to (y_scale, y_zero_point). Inputs as in "
    + "ONNX Runtime's QLinearConcat: y_scale, y_zero_point, then (x, x_scale, x_zero_point) per tensor",
  attrs: { dim: { type: "int", default: 0 } },
  inputs: [{ name: "y_scale" }, { name: "y_zero_point" }, { name: "inputs", variadic: true, min: 3 }],
  outputs: [{ name: "y" }],
  infer: (ctx) => {
    requireScalarParam(ctx, 0, "y_scale");
    requireScalarParam(ctx, 1, "y_zero_point");
    const rest = ctx.inputs.length - 2;
    if (rest % 3 !== 0) ctx.fail(`inputs after y_scale, y_zero_point must be (x, scale, zero point) triples, got ${rest} values`);
    const xs: ValueType[] = [];
    for (let i = 2; i < ctx.inputs.length; i += 3) {
      xs.push(requireInteger(ctx, i, `input #${i}`));
      requireScalarParam(ctx, i + 1, `input #${i + 1}`);
      requireScalarParam(ctx, i + 2, `input #${i + 2}`);
    }
    const first = xs[0]!;
    const dim = normAxis(ctx, ctx.attr<number>("dim"), first.shape.length);
    let total: Dim = 0;
    for (const t of xs) {
      if (t.dtype !== first.dtype) badDType(ctx, `all inputs must have dtype ${first.dtype}, got ${t.dtype}`);
      if (t.shape.length !== first.shape.length) ctx.fail("all inputs must have the same rank");
      t.shape.forEach((d, i) => {
        if (i !== dim && !dimsCompatible(d, first.shape[i]!)) ctx.fail(`dim ${i} differs: ${d} vs ${first.shape[i]}`);
      });
      const d = t.shape[dim]!;
      total = typeof total === "number" && typeof d === "number" ? total + d : `${ctx.node}_cat`;
    }
    const shape = [...first.shape];
    shape[dim] = total;
    return [{ dtype: first.dtype, shape }];
  },
});

/**
 * A quantized unary op: (x, x_scale, x_zero_point, y_scale?, y_zero_point?). Omitted output qparams
 * default to `outputDefault` (the input's, or the fixed qparams PyTorch's kernel picks).
 */
function quantizedUnary(name: string, doc: string, attrs: Record<string, AttrSpec>, outputDefault: string,
  shape: (ctx: InferContext, x: ValueType) => readonly Dim[] = (_ctx, x) => x.shape): OpSchema {
  return registerOp({
    name, family: "compute", attrs,
    doc: `${doc}. Computed as quantize(f(dequantize(x))) in float32. Omitted y_scale/y_zero_point: ${outputDefault}`,
    inputs: [...qTensor("x"), { name: "y_scale", optional: true }, { name: "y_zero_point", optional: true }],
    outputs: [{ name: "y" }],
    infer: (ctx) => {
      const x = requireInteger(ctx, 0, "x");
      for (const i of [1, 2, 3, 4]) requireScalarParam(ctx, i, `input #${i}`);
      if ((ctx.inputs[3] === undefined) !== (ctx.inputs[4] === undefined)) ctx.fail("give both y_scale and y_zero_point or neither");
      return [{ dtype: x.dtype, shape: shape(ctx, x) }];
    },
  });
}

const KEEP = "the input's qparams";
const FIXED_0_1 = "scale 1/256 with zero point 0 (uint8) or -128 (int8), PyTorch's fixed output qparams for [0, 1] outputs";

quantizedUnary("quantized_relu", "torch.nn.functional.relu on a quantized tensor: max(x, 0)", {}, KEEP);
quantizedUnary("quantized_hardswish", "torch.ops.quantized.hardswish: x * min(max(x + 3, 0), 6) / 6", {}, KEEP);
quantizedUnary("quantized_sigmoid", "torch.sigmoid on a quantized tensor: 1 / (1 + exp(-x))", {}, FIXED_0_1);
quantizedUnary("quantized_hardsigmoid", "torch.nn.functional.hardsigmoid on a quantized tensor: min(max(x + 3, 0), 6) / 6", {}, FIXED_0_1);
quantizedUnary("quantized_tanh", "torch.tanh on a quantized tensor", {},
  "scale 2/256 with zero point 128 (uint8) or 0 (int8), PyTorch's fixed output qparams for [-1, 1] outputs");
quantizedUnary("quantized_leaky_relu", "torch.ops.quantized.leaky_relu: x if x > 0 else negative_slope * x",
  { negative_slope: { type: "float", default: 0.01 } }, KEEP);
quantizedUnary("quantized_hardtanh", "torch.ops.quantized.hardtanh: clamp(x, min_val, max_val)",
  { min_val: { type: "float", default: -1 }, max_val: { type: "float", default: 1 } }, KEEP);

/** Pooling output dims over the last two dims of an N-d (rank >= 3) input. */
function pool2dShape(ctx: InferContext, x: ValueType, stridesName: string): Dim[] {
  if (x.shape.length < 3) ctx.fail(`input must be [N, C, H, W] or [C, H, W], got [${x.shape.join(",")}]`);
  const kernel = pairAttr(ctx, "kernel_size");
  const strideRaw = ctx.attr<number[]>(stridesName);
  const stride = strideRaw.length === 0 ? kernel : pairAttr(ctx, stridesName);
  const pad = pairAttr(ctx, "padding");
  const dil = ctx.attrOpt<number[]>("dilation") !== undefined ? pairAttr(ctx, "dilation") : [1, 1];
  const ceil = ctx.attr<boolean>("ceil_mode");
  const r = x.shape.length;
  const out = [...x.shape];
  for (let i = 0; i < 2; i++) {
    if (pad[i]! > Math.floor(kernel[i]! / 2)) badAttr(ctx, `padding ${pad[i]} must be at most half the kernel ${kernel[i]}`);
    out[r - 2 + i] = windowOutDim(ctx, x.shape[r - 2 + i]!, kernel[i]!, stride[i]!, pad[i]!, pad[i]!, dil[i]!, "NOTSET", ceil);
  }
  return out;
}

quantizedUnary("quantized_max_pool2d", "torch.nn.functional.max_pool2d on a quantized tensor (padding is -inf)", {
  kernel_size: { type: "ints", required: true },
  stride: { type: "ints", default: [], doc: "default: kernel_size" },
  padding: { type: "ints", default: [0, 0] },
  dilation: { type: "ints", default: [1, 1] },
  ceil_mode: { type: "bool", default: false },
}, KEEP, (ctx, x) => pool2dShape(ctx, x, "stride"));

quantizedUnary("quantized_avg_pool2d", "torch.nn.functional.avg_pool2d on a quantized tensor", {
  kernel_size: { type: "ints", required: true },
  stride: { type: "ints", default: [], doc: "default: kernel_size" },
  padding: { type: "ints", default: [0, 0] },
  ceil_mode: { type: "bool", default: false },
  count_include_pad: { type: "bool", default: true },
  divisor_override: { type: "int", default: 0, doc: "0 = none" },
}, KEEP, (ctx, x) => pool2dShape(ctx, x, "stride"));

quantizedUnary("quantized_adaptive_avg_pool2d",
  "torch.nn.functional.adaptive_avg_pool2d on a quantized tensor: window i covers [floor(i*in/out), ceil((i+1)*in/out))",
  { output_size: { type: "ints", required: true } }, KEEP, (ctx, x) => {
    if (x.shape.length < 3) ctx.fail(`input must be [N, C, H, W] or [C, H, W], got [${x.shape.join(",")}]`);
    const size = pairAttr(ctx, "output_size");
    if (!(size[0] >= 1 && size[1] >= 1)) badAttr(ctx, `output_size must be positive, got [${size.join(",")}]`);
    return [...x.shape.slice(0, -2), size[0], size[1]];
  });

quantizedUnary("quantized_mean", "torch.mean(x, dim, keepdim) on a quantized tensor", {
  dim: { type: "ints", required: true },
  keepdim: { type: "bool", default: false },
}, KEEP, (ctx, x) => {
  const dims = new Set(ctx.attr<number[]>("dim").map((d) => normAxis(ctx, d, x.shape.length)));
  const keep = ctx.attr<boolean>("keepdim");
  const out: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (!dims.has(i)) out.push(d);
    else if (keep) out.push(1);
  });
  return out;
});

quantizedUnary("quantized_upsample_nearest2d",
  "torch.nn.functional.interpolate(mode='nearest') on a quantized tensor: source index floor(dst * scale), scale = 1/scale_factor "
  + "when given, else in/out", {
    output_size: { type: "ints", doc: "[oh, ow]; or give scale_factor" },
    scale_factor: { type: "floats", doc: "[sh, sw] or one value for both; output = floor(in * scale_factor)" },
  }, KEEP, (ctx, x) => {
    if (x.shape.length < 3) ctx.fail(`input must be [N, C, H, W] or [C, H, W], got [${x.shape.join(",")}]`);
    const size = ctx.attrOpt<number[]>("output_size");
    const sf = ctx.attrOpt<number[]>("scale_factor");
    if ((size === undefined) === (sf === undefined)) badAttr(ctx, "give exactly one of output_size and scale_factor");
    if (size !== undefined) return [...x.shape.slice(0, -2), ...pairAttr(ctx, "output_size")];
    const s = sf!.length === 1 ? [sf![0]!, sf![0]!] : sf!;
    if (s.length !== 2 || !(s[0]! > 0 && s[1]! > 0)) badAttr(ctx, `scale_factor must be 1 or 2 positive values, got [${s.join(",")}]`);
    const r = x.shape.length;
    return [...x.shape.slice(0, -2), ...[0, 1].map((i) => {
      const d = x.shape[r - 2 + i]!;
      return typeof d === "number" ? Math.floor(d * s[i]!) : `${d}'`;
    })];
  });
