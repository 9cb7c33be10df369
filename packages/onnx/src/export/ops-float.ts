import { fromArray, toNumbers, type DType, type Node, type Tensor } from "@qforge/ir";
import { attr, schemaAttrs } from "./attrs.js";
import { constNumbers, MIN_EXPORT_OPSET, type ExportContext } from "./context.js";
import { exportRow, type ExportRow, type SinceContext } from "./rows.js";

/**
 * Rows for the canonical float and shape ops: the ONNX op of the same (PascalCase) name, with the
 * node's attributes written under their ONNX names, plus the torch-only ops (`linear`,
 * `adaptive_avg_pool2d`) and the ops whose latest form is newer than opset 13 (they pick the older
 * form when the model's opset needs it).
 */

const F = MIN_EXPORT_OPSET;

/** The plain inverse of the importer's rename: same inputs, outputs and attributes. */
export function passThrough(onnx: string, omit: readonly string[] = []): (n: Node, c: ExportContext) => void {
  return (n, c) => {
    c.emit(onnx, n.inputs.map((v) => c.value(v)), schemaAttrs(n, omit), n.outputs.map((v) => c.name(v)));
  };
}

function simple(op: string, onnx: string, since = F): ExportRow {
  return exportRow(op, onnx, since, passThrough(onnx));
}

const has = (n: Node, a: string): boolean => n.attrs[a] !== undefined;

/** ONNX ops whose form from `since` on is exactly the canonical op (types aside). */
const SIMPLE: readonly [string, string, number?][] = [
  ["relu", "Relu"], ["sigmoid", "Sigmoid"], ["tanh", "Tanh"], ["erf", "Erf"], ["sqrt", "Sqrt"], ["exp", "Exp"], ["log", "Log"],
  ["neg", "Neg"], ["abs", "Abs"], ["reciprocal", "Reciprocal"], ["floor", "Floor"], ["ceil", "Ceil"], ["round", "Round"],
  ["identity", "Identity"], ["softplus", "Softplus"], ["leaky_relu", "LeakyRelu"], ["hard_sigmoid", "HardSigmoid"],
  ["hardswish", "HardSwish", 14], ["gelu", "Gelu", 20],
  ["add", "Add"], ["sub", "Sub"], ["mul", "Mul"], ["div", "Div"], ["pow", "Pow"], ["max", "Max"], ["min", "Min"],
  ["equal", "Equal"], ["less", "Less"], ["greater", "Greater"], ["where", "Where"], ["clip", "Clip"],
  ["dropout", "Dropout"], ["concat", "Concat"], ["flatten", "Flatten"], ["transpose", "Transpose"], ["gather", "Gather"],
  ["expand", "Expand"], ["tile", "Tile"], ["slice", "Slice"], ["squeeze", "Squeeze"], ["unsqueeze", "Unsqueeze"],
  ["size", "Size"], ["range", "Range"], ["matmul", "MatMul"], ["gemm", "Gemm"], ["conv", "Conv"],
  ["conv_transpose", "ConvTranspose"], ["max_pool", "MaxPool"], ["global_average_pool", "GlobalAveragePool"],
  ["global_max_pool", "GlobalMaxPool"], ["softmax", "Softmax"], ["log_softmax", "LogSoftmax"],
  ["layer_normalization", "LayerNormalization", 17],
  ["dynamic_quantize_linear", "DynamicQuantizeLinear"], ["matmul_integer", "MatMulInteger"], ["qlinear_matmul", "QLinearMatMul"],
  ["conv_integer", "ConvInteger"], ["qlinear_conv", "QLinearConv"],
];

// ---- casts ---------------------------------------------------------------------------------------

/** The opset where ONNX's Cast/CastLike/ConstantOfShape first accept a dtype. */
function castTypeSince(d: DType): number {
  if (d === "float8_e4m3fn" || d === "float8_e5m2") return 19;
  if (d === "int4" || d === "uint4") return 21;
  return F;
}

const isFloat8 = (d: DType): boolean => d === "float8_e4m3fn" || d === "float8_e5m2";

/** Cast: `to` becomes the ONNX enum; `saturate` (Cast-19) is written only for float8 targets, where it means something. */
function castAttrs(n: Node, to: DType) {
  const out = n.op === "cast" ? [attr.dtype("to", to, n.name)] : [];
  if (has(n, "saturate") && isFloat8(to)) out.push(attr.int("saturate", n.attrs.saturate as number));
  return out;
}

const cast = exportRow("cast", "Cast", (n, c) => Math.max(castTypeSince(n.attrs.to as DType), castTypeSince(c.type(n.inputs[0]!).dtype)), (n, c) => {
  c.emit("Cast", [c.value(n.inputs[0]!)], castAttrs(n, n.attrs.to as DType), [c.name(n.outputs[0]!)]);
}, "`to` (qforge dtype name) -> ONNX enum; `saturate` only for float8 targets (opset 19)");

const castLike = exportRow("cast_like", "CastLike", (n, c) => Math.max(15, castTypeSince(c.type(n.inputs[1]!).dtype), castTypeSince(c.type(n.inputs[0]!).dtype)), (n, c) => {
  c.emit("CastLike", n.inputs.map((v) => c.value(v)), castAttrs(n, c.type(n.inputs[1]!).dtype), [c.name(n.outputs[0]!)]);
});

/** ConstantOfShape: attributes `value`/`dtype` -> the one-element `value` tensor attribute. */
const constantOfShape = exportRow("constant_of_shape", "ConstantOfShape", (n) => {
  const d = (n.attrs.dtype as DType | undefined) ?? "float32";
  return d === "bfloat16" || isFloat8(d) ? 20 : castTypeSince(d);
}, (n, c) => {
  const dtype = (n.attrs.dtype as DType | undefined) ?? "float32";
  const value = fromArray(dtype, [1], [(n.attrs.value as number | undefined) ?? 0]);
  c.emit("ConstantOfShape", [c.value(n.inputs[0]!)], [attr.tensor("value", value)], [c.name(n.outputs[0]!)]);
}, "attributes `value`/`dtype` -> the one-element tensor attribute `value`");

// ---- ops whose newest attributes came after 13 ---------------------------------------------------

const batchNorm = exportRow("batch_norm", "BatchNormalization", (n) => (n.attrs.training_mode === 1 ? 14 : F), (n, c) => {
  passThrough("BatchNormalization", n.attrs.training_mode === 1 ? [] : ["training_mode"])(n, c);
}, "`training_mode=0` is not written (BatchNormalization-9's form); `training_mode=1` needs opset 14");

const reshape = exportRow("reshape", "Reshape", (n) => (n.attrs.allowzero === 1 ? 14 : F), passThrough("Reshape"), "`allowzero=1` needs opset 14");

const shapeRow = exportRow("shape", "Shape", (n) => (has(n, "start") || has(n, "end") ? 15 : F), passThrough("Shape"), "`start`/`end` need opset 15");

const averagePool = exportRow("average_pool", "AveragePool", (n) => (has(n, "dilations") ? 19 : F), passThrough("AveragePool"), "`dilations` needs opset 19");

const pad = exportRow("pad", "Pad", (n) => (n.attrs.mode === "wrap" ? 19 : (n.inputs[3] ?? "") !== "" ? 18 : F), passThrough("Pad"),
  "the `axes` input needs opset 18, mode `wrap` 19");

/** Resize-13 lacks antialias/axes/keep_aspect_ratio_policy (18) and half_pixel_symmetric (19). */
const resize = exportRow("resize", "Resize", (n) => {
  if (n.attrs.coordinate_transformation_mode === "half_pixel_symmetric") return 19;
  const newer = (n.attrs.antialias ?? 0) !== 0 || has(n, "axes") || (n.attrs.keep_aspect_ratio_policy ?? "stretch") !== "stretch";
  return newer ? 18 : F;
}, (n, c) => {
  if (n.attrs.coordinate_transformation_mode === "tf_half_pixel_for_nn") {
    c.fail("coordinate_transformation_mode 'tf_half_pixel_for_nn' was removed in Resize-13", "use half_pixel with nearest_mode as needed");
  }
  const omit = c.opset >= 18 ? [] : ["antialias", "keep_aspect_ratio_policy"];
  passThrough("Resize", omit)(n, c);
}, "antialias/axes/keep_aspect_ratio_policy need opset 18 (defaults are dropped below it), half_pixel_symmetric 19");

/**
 * Split: with a `split` input, Split-13. Without one, Split-18's `num_outputs`; below 18 (static
 * dim) the same ceil(dim / n) chunks are written as an explicit `split` input.
 */
const split = exportRow("split", "Split", (n, c) => {
  if ((n.inputs[1] ?? "") !== "") return F;
  const t = c.type(n.inputs[0]!);
  const r = t.shape.length;
  const a = (n.attrs.axis as number | undefined) ?? 0;
  return typeof t.shape[a < 0 ? a + r : a] === "number" ? F : 18;
}, (n, c) => {
  const x = c.value(n.inputs[0]!);
  const outs = n.outputs.map((v) => c.name(v));
  if ((n.inputs[1] ?? "") !== "") {
    c.emit("Split", [x, c.value(n.inputs[1]!)], schemaAttrs(n, ["num_outputs"]), outs);
    return;
  }
  const count = n.outputs.length;
  if (c.opset >= 18) {
    c.emit("Split", [x], [...schemaAttrs(n, ["num_outputs"]), attr.int("num_outputs", count)], outs);
    return;
  }
  const t = c.type(n.inputs[0]!);
  const a = (n.attrs.axis as number | undefined) ?? 0;
  const d = t.shape[a < 0 ? a + t.shape.length : a] as number;
  const chunk = Math.ceil(d / count);
  const sizes = Array.from({ length: count }, (_, k) => (k === count - 1 ? d - chunk * (count - 1) : chunk));
  c.emit("Split", [x, c.int64s(sizes, "split")], schemaAttrs(n, ["num_outputs"]), outs);
}, "no `split` input: `num_outputs` (opset 18), or below 18 the chunk sizes as a `split` input");

/**
 * Reductions: the axes input form (ReduceSum-13, the others 18). Below 18 ReduceMean/Max/Min take
 * constant axes as an attribute; no/empty axes reduce everything, or are the identity with
 * noop_with_empty_axes=1 (which the attribute form does not have).
 */
function reduction(op: string, onnx: string, inputSince: number): ExportRow {
  const constAxes = (n: Node, c: SinceContext): boolean => (n.inputs[1] ?? "") === "" || c.constant(n.inputs[1]!) !== undefined;
  return exportRow(op, onnx, (n, c) => (inputSince <= F || constAxes(n, c) ? F : inputSince), (n, c) => {
    if (c.opset >= inputSince) {
      passThrough(onnx)(n, c);
      return;
    }
    const axesValue = n.inputs[1] ?? "";
    const axes = axesValue === "" ? [] : constNumbers(c.constant(axesValue)!);
    const out = [c.name(n.outputs[0]!)];
    const x = c.value(n.inputs[0]!);
    if (axes.length === 0 && n.attrs.noop_with_empty_axes === 1) {
      c.emit("Identity", [x], [], out);
      return;
    }
    const attrs = schemaAttrs(n, ["noop_with_empty_axes"]);
    if (axes.length > 0) attrs.push(attr.ints("axes", axes));
    c.emit(onnx, [x], attrs, out);
  }, inputSince > F ? `constant axes: the \`axes\` attribute below opset ${inputSince}` : undefined);
}

// ---- torch-only ops ------------------------------------------------------------------------------

/** A 2-D tensor transposed (any dtype; values go through their logical numbers). */
export function transpose2d(t: Tensor): Tensor {
  const [r, k] = t.shape as [number, number];
  const v = toNumbers(t);
  const out = new Array<number>(r * k);
  for (let i = 0; i < r; i++) for (let j = 0; j < k; j++) out[j * r + i] = v[i * k + j]!;
  return fromArray(t.dtype, [k, r], out);
}

/**
 * torch.nn.functional.linear, y = x @ W^T + b: Gemm(transB=1) for a 2-D input; otherwise MatMul with
 * W^T (transposed at export when W is a constant, else a Transpose node) and Add of the bias, as
 * torch.onnx exports it.
 */
const linear = exportRow("linear", "Gemm or MatMul (+ Add)", F, (n, c) => {
  const [x, w, b = ""] = n.inputs as [string, string, string?];
  const out = c.name(n.outputs[0]!);
  if (c.type(x).shape.length === 2) {
    c.emit("Gemm", [c.value(x), c.value(w), c.value(b)], [attr.int("transB", 1)], [out]);
    return;
  }
  const wt = c.constant(w);
  const wT = wt !== undefined ? c.initializer(transpose2d(wt), "weight_t") : c.emit("Transpose", [c.value(w)], [attr.ints("perm", [1, 0])])[0]!;
  if (b === "") {
    c.emit("MatMul", [c.value(x), wT], [], [out]);
    return;
  }
  const y = c.emit("MatMul", [c.value(x), wT])[0]!;
  c.emit("Add", [y, c.value(b)], [], [out]);
}, "2-D input: Gemm(transB=1); else MatMul with W^T (+ Add bias)");

/**
 * torch's adaptive_avg_pool2d: output 1x1 is GlobalAveragePool; when the output size divides the
 * (static) input size every window has the same size and stride in/out, i.e. AveragePool; any other
 * size has no ONNX form. A 3-D [C, H, W] input is unsqueezed to [1, C, H, W] and back.
 */
const adaptiveAvgPool = exportRow("adaptive_avg_pool2d", "GlobalAveragePool or AveragePool", F, (n, c) => {
  const x = n.inputs[0]!;
  const t = c.type(x);
  const [oh, ow] = n.attrs.output_size as [number, number];
  const [h, w] = t.shape.slice(-2);
  const global = oh === 1 && ow === 1;
  const divisible = typeof h === "number" && typeof w === "number" && h % oh === 0 && w % ow === 0;
  if (!global && !divisible) {
    c.fail(`output size [${oh}, ${ow}] of input [${t.shape.join(",")}] has no ONNX form`, "ONNX has GlobalAveragePool (output 1x1) and AveragePool (input size a multiple of the output size)");
  }
  const out = c.name(n.outputs[0]!);
  const batched = t.shape.length === 4;
  let input = c.value(x);
  if (!batched) input = c.emit("Unsqueeze", [input, c.int64s([0], "axes")])[0]!;
  const pooled = global
    ? c.emit("GlobalAveragePool", [input], [], batched ? [out] : 1)[0]!
    : c.emit("AveragePool", [input], [attr.ints("kernel_shape", [(h as number) / oh, (w as number) / ow]), attr.ints("strides", [(h as number) / oh, (w as number) / ow])], batched ? [out] : 1)[0]!;
  if (!batched) c.emit("Squeeze", [pooled, c.int64s([0], "axes")], [], [out]);
}, "output 1x1: GlobalAveragePool; input size a multiple of the output: AveragePool; else UNSUPPORTED");

export const FLOAT_ROWS: readonly ExportRow[] = [
  ...SIMPLE.map(([op, onnx, since]) => simple(op, onnx, since ?? F)),
  cast, castLike, constantOfShape, batchNorm, reshape, shapeRow, averagePool, pad, resize, split,
  reduction("reduce_sum", "ReduceSum", 13),
  reduction("reduce_mean", "ReduceMean", 18),
  reduction("reduce_max", "ReduceMax", 18),
  reduction("reduce_min", "ReduceMin", 18),
  linear, adaptiveAvgPool,
];
