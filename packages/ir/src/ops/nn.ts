import { QforgeError } from "../errors.js";
import { dtypeInfo, type DType } from "../dtype.js";
import type { Dim, ValueType } from "../graph.js";
import { windowAttrs, windowOutDim } from "./linalg.js";
import type { InferContext } from "./registry.js";
import { broadcastShapes, normAxis, registerOp, req } from "./registry.js";
import { constFloats, constInts, normAxes, staticLength, symDim } from "./shape.js";

/**
 * Pooling, normalization, softmax, reductions and resize. ONNX semantics (latest opset, named in
 * each doc) unless the op is torch-only (adaptive_avg_pool2d). NC... layout throughout.
 */

// ---- pooling ----------------------------------------------------------------------------------

const AUTO_PADS = ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"];

const poolAttrs = {
  kernel_shape: { type: "ints", required: true },
  strides: { type: "ints", doc: "per spatial dim; default 1" },
  pads: { type: "ints", doc: "[begin..., end...]; default 0" },
  dilations: { type: "ints", doc: "default 1" },
  auto_pad: { type: "string", default: "NOTSET", doc: "NOTSET | SAME_UPPER | SAME_LOWER | VALID" },
  ceil_mode: { type: "int", default: 0 },
} as const;

function poolShape(ctx: InferContext): ValueType {
  const x = req(ctx, 0);
  if (x.shape.length < 3) ctx.fail(`input must be N x C x spatial..., got [${x.shape.join(",")}]`);
  const spatial = x.shape.length - 2;
  const kernel = ctx.attr<number[]>("kernel_shape");
  const { strides, pads, dilations, autoPad } = windowAttrs(ctx, spatial, kernel);
  if (!AUTO_PADS.includes(autoPad)) ctx.fail(`unknown auto_pad '${autoPad}'`);
  if (kernel.some((k) => k < 1) || strides.some((s) => s < 1) || dilations.some((d) => d < 1)) {
    ctx.fail(`kernel_shape [${kernel}], strides [${strides}] and dilations [${dilations}] must be positive`);
  }
  const ceil = ctx.attr<number>("ceil_mode") !== 0;
  const out: Dim[] = [x.shape[0]!, x.shape[1]!];
  for (let i = 0; i < spatial; i++) {
    out.push(windowOutDim(ctx, x.shape[2 + i]!, kernel[i]!, strides[i]!, pads[i]!, pads[spatial + i]!, dilations[i]!, autoPad, ceil));
  }
  return { dtype: x.dtype, shape: out };
}

registerOp({
  name: "max_pool",
  family: "compute",
  doc: "ONNX MaxPool-12 (padding never wins; optional Indices output: flat int64 index into the input, row-major, or column-major over the spatial dims with storage_order=1)",
  attrs: { ...poolAttrs, storage_order: { type: "int", default: 0 } },
  inputs: [{ name: "X" }],
  outputs: [{ name: "Y" }, { name: "Indices", optional: true }],
  infer: (ctx) => {
    const y = poolShape(ctx);
    return [y, { dtype: "int64", shape: y.shape }];
  },
});

registerOp({
  name: "average_pool",
  family: "compute",
  doc: "ONNX AveragePool-19 (dilations, ceil_mode; count_include_pad=1 divides by the window size clipped to the padded input)",
  attrs: { ...poolAttrs, count_include_pad: { type: "int", default: 0 } },
  inputs: [{ name: "X" }],
  outputs: [{ name: "Y" }],
  infer: (ctx) => [poolShape(ctx)],
});

function globalPool(name: string, doc: string): void {
  registerOp({
    name, family: "compute", doc, attrs: {},
    inputs: [{ name: "X" }],
    outputs: [{ name: "Y" }],
    infer: (ctx) => {
      const x = req(ctx, 0);
      if (x.shape.length < 3) ctx.fail(`input must be N x C x spatial..., got [${x.shape.join(",")}]`);
      return [{ dtype: x.dtype, shape: x.shape.map((d, i) => (i < 2 ? d : 1)) }];
    },
  });
}

globalPool("global_average_pool", "ONNX GlobalAveragePool: mean over all spatial dims, kept as size 1");
globalPool("global_max_pool", "ONNX GlobalMaxPool: max over all spatial dims, kept as size 1");

registerOp({
  name: "adaptive_avg_pool2d",
  family: "compute",
  doc: "torch.nn.functional.adaptive_avg_pool2d on [N, C, H, W] or [C, H, W]: output cell i averages input rows floor(i*H/oh) .. ceil((i+1)*H/oh)-1 (likewise columns)",
  attrs: { output_size: { type: "ints", required: true, doc: "[oh, ow]" } },
  inputs: [{ name: "input" }],
  outputs: [{ name: "output" }],
  infer: (ctx) => {
    const x = req(ctx, 0);
    const size = ctx.attr<number[]>("output_size");
    if (x.shape.length !== 3 && x.shape.length !== 4) ctx.fail(`input must be 3-D or 4-D, got [${x.shape.join(",")}]`);
    if (size.length !== 2 || size.some((s) => s < 1)) ctx.fail(`output_size must be two positive sizes, got [${size.join(",")}]`);
    for (const i of [0, 1]) {
      const d = x.shape[x.shape.length - 2 + i]!;
      if (d === 0) ctx.fail("cannot pool an empty spatial dim");
    }
    return [{ dtype: x.dtype, shape: [...x.shape.slice(0, -2), size[0]!, size[1]!] }];
  },
});

// ---- softmax and normalization ----------------------------------------------------------------

function requireFloat(ctx: InferContext, t: ValueType, what = "input"): void {
  if (dtypeInfo(t.dtype).kind !== "float") {
    throw new QforgeError("DTYPE_MISMATCH", `${ctx.op}: ${what} must be a float tensor, got ${t.dtype}`, { node: ctx.node });
  }
}

for (const [name, doc] of [
  ["softmax", "ONNX Softmax-13: exp(x - max) / sum(exp(x - max)) along axis (default -1)"],
  ["log_softmax", "ONNX LogSoftmax-13: x - max - log(sum(exp(x - max))) along axis (default -1)"],
] as const) {
  registerOp({
    name, family: "compute", doc,
    attrs: { axis: { type: "int", default: -1 } },
    inputs: [{ name: "input" }],
    outputs: [{ name: "output" }],
    infer: (ctx) => {
      const x = req(ctx, 0);
      requireFloat(ctx, x);
      if (x.shape.length > 0) normAxis(ctx, ctx.attr<number>("axis"), x.shape.length);
      return [{ ...x }];
    },
  });
}

/** ONNX TensorProto.DataType numbers accepted as LayerNormalization stash_type. */
const STASH_TYPES: Readonly<Record<number, DType>> = { 1: "float32", 10: "float16", 11: "float64", 16: "bfloat16" };

/** The dtype LayerNormalization's Mean/InvStdDev outputs (and its statistics) use. */
function stashDType(ctx: Pick<InferContext, "node" | "op">, stashType: number): DType {
  const d = STASH_TYPES[stashType];
  if (d === undefined) {
    throw new QforgeError("BAD_ATTRIBUTE", `${ctx.op}: stash_type ${stashType} is not a float type`, { node: ctx.node, hint: "1 (float32), 10 (float16), 11 (float64) or 16 (bfloat16)" });
  }
  return d;
}

registerOp({
  name: "layer_normalization",
  family: "compute",
  doc: "ONNX LayerNormalization-17: normalizes over dims [axis, rank) with epsilon; Scale and optional B broadcast to those dims; optional Mean and InvStdDev outputs (dims from axis on set to 1, dtype from stash_type)",
  attrs: { axis: { type: "int", default: -1 }, epsilon: { type: "float", default: 1e-5 }, stash_type: { type: "int", default: 1 } },
  inputs: [{ name: "X" }, { name: "Scale" }, { name: "B", optional: true }],
  outputs: [{ name: "Y" }, { name: "Mean", optional: true }, { name: "InvStdDev", optional: true }],
  infer: (ctx) => {
    const x = req(ctx, 0);
    requireFloat(ctx, x);
    const r = x.shape.length;
    const axis = normAxis(ctx, ctx.attr<number>("axis"), r);
    const normShape = x.shape.slice(axis);
    for (const i of [1, 2]) {
      const p = ctx.inputs[i];
      if (p === undefined) continue;
      if (p.dtype !== x.dtype) throw new QforgeError("DTYPE_MISMATCH", `layer_normalization: input #${i} is ${p.dtype}, X is ${x.dtype}`, { node: ctx.node });
      if (p.shape.length > normShape.length) ctx.fail(`input #${i} [${p.shape.join(",")}] has more dims than the normalized shape [${normShape.join(",")}]`);
      broadcastShapes(ctx, normShape, p.shape);
    }
    const stash = stashDType(ctx, ctx.attr<number>("stash_type"));
    const statShape = x.shape.map((d, i) => (i < axis ? d : 1));
    return [{ ...x }, { dtype: stash, shape: statShape }, { dtype: stash, shape: statShape }];
  },
});

// ---- reductions --------------------------------------------------------------------------------

function reduction(name: string, doc: string): void {
  registerOp({
    name, family: "compute", doc,
    attrs: { keepdims: { type: "int", default: 1 }, noop_with_empty_axes: { type: "int", default: 0 } },
    inputs: [{ name: "data" }, { name: "axes", optional: true }],
    outputs: [{ name: "reduced" }],
    infer: (ctx) => {
      const x = req(ctx, 0);
      const r = x.shape.length;
      const keep = ctx.attr<number>("keepdims") !== 0;
      const noop = ctx.attr<number>("noop_with_empty_axes") !== 0;
      let axes: number[] | undefined = [];
      if (ctx.inputs[1] !== undefined) axes = constInts(ctx, 1, "axes");
      if (axes === undefined) {
        const k = staticLength(ctx, 1);
        if (keep) return [{ dtype: x.dtype, shape: x.shape.map((_, i) => symDim(ctx, i)) }];
        if (k === undefined || k === 0) return ctx.fail("with keepdims=0 the axes input must be a constant or have a static nonzero length");
        return [{ dtype: x.dtype, shape: Array.from({ length: r - k }, (_, i) => symDim(ctx, i)) }];
      }
      if (axes.length === 0 && noop) return [{ ...x }];
      const reduced = new Set(axes.length === 0 ? x.shape.map((_, i) => i) : normAxes(ctx, axes, r));
      const out: Dim[] = [];
      x.shape.forEach((d, i) => {
        if (!reduced.has(i)) out.push(d);
        else if (keep) out.push(1);
      });
      return [{ dtype: x.dtype, shape: out }];
    },
  });
}

reduction("reduce_mean", "ONNX ReduceMean-18: mean over the optional int64 axes input (empty/absent: all dims, or identity with noop_with_empty_axes=1); keepdims keeps reduced dims as 1");
reduction("reduce_sum", "ONNX ReduceSum-13: sum over the optional int64 axes input (same axes rules as reduce_mean)");
reduction("reduce_max", "ONNX ReduceMax-18: max over the optional int64 axes input (NaN propagates; an empty reduction gives -inf / the dtype's min)");
reduction("reduce_min", "ONNX ReduceMin-18: min over the optional int64 axes input (NaN propagates; an empty reduction gives +inf / the dtype's max)");

// ---- resize ------------------------------------------------------------------------------------

const COORD_MODES = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_crop_and_resize", "tf_half_pixel_for_nn"];
const NEAREST_MODES = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"];

/** True when Resize input i is given and not an empty tensor (ONNX lets roi/scales be empty). */
function resizeInputGiven(ctx: InferContext, i: number): boolean {
  const t = ctx.inputs[i];
  if (t === undefined) return false;
  return !(t.shape.length === 1 && t.shape[0] === 0);
}

/**
 * ONNX Resize-19 output sizes: from `sizes` (with keep_aspect_ratio_policy not_larger/not_smaller:
 * one scale s for all resized axes, size = round_half_up(s * in), as the ONNX reference), else
 * floor(in * scale).
 */
function resizeOutShape(
  inShape: readonly number[], axes: readonly number[], scales: readonly number[] | undefined, sizes: readonly number[] | undefined, policy: string,
): number[] {
  const out = [...inShape];
  if (sizes !== undefined) {
    axes.forEach((a, j) => { out[a] = sizes[j]!; });
    if (policy !== "stretch") {
      const ratios = axes.map((a, j) => sizes[j]! / inShape[a]!);
      const s = policy === "not_larger" ? Math.min(...ratios) : Math.max(...ratios);
      for (const a of axes) out[a] = Math.floor(s * inShape[a]! + 0.5);
    }
  } else if (scales !== undefined) {
    axes.forEach((a, j) => { out[a] = Math.floor(inShape[a]! * scales[j]!); });
  }
  return out;
}

registerOp({
  name: "resize",
  family: "compute",
  doc: "ONNX Resize-19 (antialias=0): nearest / linear / cubic interpolation of the axes (default all) by `scales` (float) or `sizes` (int64); roi is used by tf_crop_and_resize",
  attrs: {
    antialias: { type: "int", default: 0, doc: "only 0 is supported" },
    axes: { type: "ints" },
    coordinate_transformation_mode: { type: "string", default: "half_pixel" },
    cubic_coeff_a: { type: "float", default: -0.75 },
    exclude_outside: { type: "int", default: 0 },
    extrapolation_value: { type: "float", default: 0 },
    keep_aspect_ratio_policy: { type: "string", default: "stretch", doc: "stretch | not_larger | not_smaller" },
    mode: { type: "string", default: "nearest", doc: "nearest | linear | cubic" },
    nearest_mode: { type: "string", default: "round_prefer_floor" },
  },
  inputs: [{ name: "X" }, { name: "roi", optional: true }, { name: "scales", optional: true }, { name: "sizes", optional: true }],
  outputs: [{ name: "Y" }],
  infer: (ctx) => {
    const x = req(ctx, 0);
    const r = x.shape.length;
    if (ctx.attr<number>("antialias") !== 0) {
      throw new QforgeError("UNSUPPORTED", "resize: antialias=1 is not supported", { node: ctx.node, hint: "export the model with antialias=0" });
    }
    const mode = ctx.attr<string>("mode");
    if (!["nearest", "linear", "cubic"].includes(mode)) ctx.fail(`unknown mode '${mode}'`);
    const coord = ctx.attr<string>("coordinate_transformation_mode");
    if (!COORD_MODES.includes(coord)) ctx.fail(`unknown coordinate_transformation_mode '${coord}'`);
    if (!NEAREST_MODES.includes(ctx.attr<string>("nearest_mode"))) ctx.fail(`unknown nearest_mode '${ctx.attr<string>("nearest_mode")}'`);
    const policy = ctx.attr<string>("keep_aspect_ratio_policy");
    if (!["stretch", "not_larger", "not_smaller"].includes(policy)) ctx.fail(`unknown keep_aspect_ratio_policy '${policy}'`);
    const axes = normAxes(ctx, ctx.attrOpt<number[]>("axes") ?? x.shape.map((_, i) => i), r);
    const hasScales = resizeInputGiven(ctx, 2);
    const hasSizes = resizeInputGiven(ctx, 3);
    if (hasScales === hasSizes) ctx.fail("exactly one of scales and sizes must be given");
    if (coord === "tf_crop_and_resize" && !resizeInputGiven(ctx, 1)) ctx.fail("tf_crop_and_resize needs the roi input");
    const scales = hasScales ? constFloats(ctx, 2) : undefined;
    const sizes = hasSizes ? constInts(ctx, 3, "sizes") : undefined;
    if (hasScales) {
      const s = ctx.inputs[2]!;
      if (dtypeInfo(s.dtype).kind !== "float") throw new QforgeError("DTYPE_MISMATCH", `resize: scales must be float, got ${s.dtype}`, { node: ctx.node });
    }
    const given = scales ?? sizes;
    if (given !== undefined && given.length !== axes.length) ctx.fail(`${hasScales ? "scales" : "sizes"} has ${given.length} values for ${axes.length} axes`);
    if (scales?.some((s) => !(s > 0))) ctx.fail(`scales must be positive, got [${scales.join(",")}]`);
    if (sizes?.some((s) => s < 0)) ctx.fail(`sizes must be non-negative, got [${sizes.join(",")}]`);
    const static_ = x.shape.every((d) => typeof d === "number");
    if (given === undefined || !static_) {
      // Unknown values (or a symbolic input dim): a resized axis is unknown, the others keep their size.
      const resized = new Set(axes);
      return [{
        dtype: x.dtype,
        shape: x.shape.map((d, i): Dim => {
          if (!resized.has(i)) return d;
          if (sizes !== undefined && policy === "stretch") return sizes[axes.indexOf(i)]!;
          return symDim(ctx, i);
        }),
      }];
    }
    return [{ dtype: x.dtype, shape: resizeOutShape(x.shape as number[], axes, scales, sizes, policy) }];
  },
});
