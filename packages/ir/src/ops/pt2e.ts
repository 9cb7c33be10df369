import type { DType } from "../dtype.js";
import { dtypeInfo, isDType } from "../dtype.js";
import { QforgeError } from "../errors.js";
import type { Dim, ValueType } from "../graph.js";
import type { AttrSpec, InferContext } from "./registry.js";
import { dimsCompatible, normAxis, registerOp, req } from "./registry.js";

/**
 * The ops of PT2E's prepared and converted graphs (torch.ops.quantized_decomposed.*, snake_case):
 *
 * - quantize_per_tensor / dequantize_per_tensor, quantize_per_channel / dequantize_per_channel:
 *   the QDQ reference representation convert_pt2e produces. Scales and zero points are inputs
 *   (constants after convert, or choose_qparams outputs for dynamic quantization); the quantized
 *   range and the integer dtype are attributes, as in PyTorch's decomposed ops.
 * - choose_qparams_per_tensor: dynamic quantization's run-time qparams
 *   (quantized_decomposed.choose_qparams.tensor).
 * - observer / fake_quantize: the nodes preparePt2e / prepareQatPt2e insert. They are identities
 *   for shape inference; the stateful module behind each one lives in the PreparedProgram, looked up
 *   by the `id` attribute.
 *
 * Numerics (reference kernels in @qforge/runtime, src/pt2e/) follow golden/README.md:
 *   quantize    q = clamp(rint(f32(x * f32(1 / f32(scale)))) + zero_point, quant_min, quant_max)
 *   dequantize  per tensor f32(f32(q - zero_point) * f32(scale)); per channel in double, rounded once.
 */

function badAttr(ctx: InferContext, message: string, hint?: string): never {
  throw new QforgeError("BAD_ATTRIBUTE", `${ctx.op}: ${message}`, { node: ctx.node, hint });
}

function badDType(ctx: InferContext, message: string, hint?: string): never {
  throw new QforgeError("DTYPE_MISMATCH", `${ctx.op}: ${message}`, { node: ctx.node, hint });
}

const INTEGER_KINDS = new Set(["int", "uint"]);

/** The integer dtype named by the `dtype` attribute, with quant_min <= quant_max inside its range. */
function quantDType(ctx: InferContext): DType {
  const d = ctx.attr<string>("dtype");
  if (!isDType(d) || !INTEGER_KINDS.has(dtypeInfo(d).kind) || d === "int64" || d === "uint32" || d === "uint16") {
    badAttr(ctx, `dtype must be an integer quantized dtype (int1..int8, uint1..uint8, int16, int32), got '${d}'`);
  }
  const info = dtypeInfo(d);
  const qmin = ctx.attr<number>("quant_min");
  const qmax = ctx.attr<number>("quant_max");
  if (!(qmin <= qmax) || qmin < info.min || qmax > info.max) {
    badAttr(ctx, `quant range [${qmin}, ${qmax}] must be ordered and inside ${d}'s [${info.min}, ${info.max}]`);
  }
  return d;
}

function requireFloat(ctx: InferContext, i: number, what: string): ValueType {
  const t = req(ctx, i);
  if (dtypeInfo(t.dtype).kind !== "float") badDType(ctx, `${what} must be a floating-point tensor, got ${t.dtype}`);
  return t;
}

function requireInteger(ctx: InferContext, i: number, what: string): ValueType {
  const t = req(ctx, i);
  if (!INTEGER_KINDS.has(dtypeInfo(t.dtype).kind)) badDType(ctx, `${what} must be an integer tensor, got ${t.dtype}`);
  return t;
}

function staticNumel(shape: readonly Dim[]): number | undefined {
  let n = 1;
  for (const d of shape) {
    if (typeof d !== "number") return undefined;
    n *= d;
  }
  return n;
}

/** A per-tensor qparam: one element (0-d or [1]). */
function requireOneElement(ctx: InferContext, i: number, what: string): void {
  const t = req(ctx, i);
  const n = staticNumel(t.shape);
  if (n !== undefined && n !== 1) ctx.fail(`${what} must have one element (per tensor), got [${t.shape.join(",")}]`);
}

/** A per-channel qparam: 1-D with x.shape[axis] entries. */
function requireChannelVector(ctx: InferContext, i: number, what: string, channels: Dim): void {
  const t = req(ctx, i);
  if (t.shape.length !== 1 || !dimsCompatible(t.shape[0]!, channels)) {
    ctx.fail(`${what} must be 1-D with ${channels} entries (x.shape[axis]), got [${t.shape.join(",")}]`);
  }
}

/** Per-channel zero points: integers, or float32 for per_channel_affine_float_qparams (embedding tables). */
function requireZeroPoints(ctx: InferContext, i: number): void {
  const t = req(ctx, i);
  if (!INTEGER_KINDS.has(dtypeInfo(t.dtype).kind) && t.dtype !== "float32") {
    badDType(ctx, `zero_points must be an integer tensor (or float32 float qparams), got ${t.dtype}`);
  }
}

const rangeAttrs: Record<string, AttrSpec> = {
  quant_min: { type: "int", required: true, doc: "smallest quantized value (clamp bound)" },
  quant_max: { type: "int", required: true, doc: "largest quantized value (clamp bound)" },
  dtype: { type: "string", required: true, doc: "integer storage dtype of the quantized tensor (int8, uint8, int4, int32, ...)" },
};

registerOp({
  name: "quantize_per_tensor",
  family: "quantize",
  doc: "quantized_decomposed.quantize_per_tensor: q = clamp(rint(f32(x * f32(1 / f32(scale)))) + zero_point, quant_min, quant_max) "
    + "as `dtype`; scale a float32 scalar, zero_point an int32 scalar",
  attrs: rangeAttrs,
  inputs: [{ name: "input" }, { name: "scale" }, { name: "zero_point" }],
  outputs: [{ name: "output" }],
  infer: (ctx) => {
    const x = requireFloat(ctx, 0, "input");
    requireFloat(ctx, 1, "scale");
    requireOneElement(ctx, 1, "scale");
    requireInteger(ctx, 2, "zero_point");
    requireOneElement(ctx, 2, "zero_point");
    return [{ dtype: quantDType(ctx), shape: x.shape }];
  },
});

registerOp({
  name: "dequantize_per_tensor",
  family: "quantize",
  doc: "quantized_decomposed.dequantize_per_tensor: y = f32(f32(q - zero_point) * f32(scale)) as float32; input must have `dtype`",
  attrs: rangeAttrs,
  inputs: [{ name: "input" }, { name: "scale" }, { name: "zero_point" }],
  outputs: [{ name: "output" }],
  infer: (ctx) => {
    const q = requireInteger(ctx, 0, "input");
    const d = quantDType(ctx);
    if (q.dtype !== d) badDType(ctx, `input is ${q.dtype} but dtype says ${d}`);
    requireFloat(ctx, 1, "scale");
    requireOneElement(ctx, 1, "scale");
    requireInteger(ctx, 2, "zero_point");
    requireOneElement(ctx, 2, "zero_point");
    return [{ dtype: "float32", shape: q.shape }];
  },
});

const channelAttrs: Record<string, AttrSpec> = {
  axis: { type: "int", required: true, doc: "the channel axis the scales and zero points run along" },
  ...rangeAttrs,
};

registerOp({
  name: "quantize_per_channel",
  family: "quantize",
  doc: "quantized_decomposed.quantize_per_channel: per index c along `axis`, the quantize_per_tensor rule with scales[c] "
    + "(float64 [C], used as float32) and zero_points[c] (int32 [C]; float32 float qparams are added after rounding and the "
    + "clamped sum truncated, as the decomposed op's `.to(dtype)`)",
  attrs: channelAttrs,
  inputs: [{ name: "input" }, { name: "scales" }, { name: "zero_points" }],
  outputs: [{ name: "output" }],
  infer: (ctx) => {
    const x = requireFloat(ctx, 0, "input");
    if (x.shape.length === 0) ctx.fail("a scalar cannot be quantized per channel");
    const axis = normAxis(ctx, ctx.attr<number>("axis"), x.shape.length);
    requireFloat(ctx, 1, "scales");
    requireChannelVector(ctx, 1, "scales", x.shape[axis]!);
    requireZeroPoints(ctx, 2);
    requireChannelVector(ctx, 2, "zero_points", x.shape[axis]!);
    return [{ dtype: quantDType(ctx), shape: x.shape }];
  },
});

registerOp({
  name: "dequantize_per_channel",
  family: "quantize",
  doc: "quantized_decomposed.dequantize_per_channel: y = (q - zero_points[c]) * scales[c] computed in double, rounded once to float32 "
    + "(zero points int32, or float32 float qparams)",
  attrs: channelAttrs,
  inputs: [{ name: "input" }, { name: "scales" }, { name: "zero_points" }],
  outputs: [{ name: "output" }],
  infer: (ctx) => {
    const q = requireInteger(ctx, 0, "input");
    const d = quantDType(ctx);
    if (q.dtype !== d) badDType(ctx, `input is ${q.dtype} but dtype says ${d}`);
    if (q.shape.length === 0) ctx.fail("a scalar cannot be dequantized per channel");
    const axis = normAxis(ctx, ctx.attr<number>("axis"), q.shape.length);
    requireFloat(ctx, 1, "scales");
    requireChannelVector(ctx, 1, "scales", q.shape[axis]!);
    requireZeroPoints(ctx, 2);
    requireChannelVector(ctx, 2, "zero_points", q.shape[axis]!);
    return [{ dtype: "float32", shape: q.shape }];
  },
});

registerOp({
  name: "choose_qparams_per_tensor",
  family: "quantize",
  doc: "quantized_decomposed.choose_qparams.tensor: (scale float32 [], zero_point int32 []) from the input's min/max with the "
    + "observer formula (determine_qparams) over [quant_min, quant_max]; qscheme per_tensor_affine (default) or per_tensor_symmetric",
  attrs: {
    ...rangeAttrs,
    eps: { type: "float", required: true, doc: "smallest scale (float32 epsilon in PT2E's convert)" },
    qscheme: { type: "string", default: "per_tensor_affine", doc: "per_tensor_affine | per_tensor_symmetric" },
  },
  inputs: [{ name: "input" }],
  outputs: [{ name: "scale" }, { name: "zero_point" }],
  infer: (ctx) => {
    requireFloat(ctx, 0, "input");
    quantDType(ctx);
    const q = ctx.attr<string>("qscheme");
    if (q !== "per_tensor_affine" && q !== "per_tensor_symmetric") badAttr(ctx, `qscheme must be per_tensor_affine or per_tensor_symmetric, got '${q}'`);
    if (!(ctx.attr<number>("eps") >= 0)) badAttr(ctx, `eps must be >= 0, got ${ctx.attr<number>("eps")}`);
    return [{ dtype: "float32", shape: [] }, { dtype: "int32", shape: [] }];
  },
});

const idAttr: Record<string, AttrSpec> = {
  id: { type: "string", required: true, doc: "key of the observer / fake-quant module in the PreparedProgram" },
};

registerOp({
  name: "observer",
  family: "observer",
  doc: "PT2E observer (activation_post_process): y = x; calibration feeds x to the PreparedProgram's observer `id`",
  attrs: idAttr,
  inputs: [{ name: "input" }],
  outputs: [{ name: "output" }],
  infer: (ctx) => {
    requireFloat(ctx, 0, "input");
    return [{ ...req(ctx, 0) }];
  },
});

registerOp({
  name: "fake_quantize",
  family: "observer",
  doc: "PT2E QAT fake-quant: y = the forward of the PreparedProgram's fake-quant module `id` on x (observe, then quantize-dequantize)",
  attrs: idAttr,
  inputs: [{ name: "input" }],
  outputs: [{ name: "output" }],
  infer: (ctx) => {
    requireFloat(ctx, 0, "input");
    return [{ ...req(ctx, 0) }];
  },
});
