import { fromArray, numel, toFloat64, type AttrValue, type DType } from "@qforge/ir";
import type { NodeContext } from "./context.js";
import {
  LEGACY_HINT_ATTRS, dtypeAttr, intsAttrToInput, normalizeAxis, rankOf, rename, scalarOf, type Converter,
} from "./convert-util.js";

/**
 * One row per ONNX op the importer understands. `qforge` is the canonical op (snake_case of the ONNX
 * name, with the semantics, input order and attribute names of the op's latest opset); `since` is the
 * oldest opset whose form the converter handles; `note` says what it upgrades. Rows are the single
 * source for docs/onnx-coverage.md (a test checks the two agree).
 */
export interface OpMapping {
  readonly onnx: string;
  readonly qforge: string;
  readonly since: number;
  readonly note?: string;
  readonly convert: Converter;
}

/** FLT_MAX: the default min/max of Clip-6 (onnx/defs/math/old.cc). */
const FLT_MAX = 3.4028234663852886e38;

function row(onnx: string, qforge: string, since: number, convert: Converter = rename(qforge), note?: string): OpMapping {
  return note === undefined ? { onnx, qforge, since, convert } : { onnx, qforge, since, convert, note };
}

// ---- elementwise -------------------------------------------------------------------------------

const UNARY: readonly [string, string, number][] = [
  ["Abs", "abs", 1], ["Acos", "acos", 7], ["Acosh", "acosh", 9], ["Asin", "asin", 7], ["Asinh", "asinh", 9],
  ["Atan", "atan", 7], ["Atanh", "atanh", 9], ["Ceil", "ceil", 1], ["Cos", "cos", 7], ["Cosh", "cosh", 9],
  ["Elu", "elu", 1], ["Erf", "erf", 9], ["Exp", "exp", 1], ["Floor", "floor", 1], ["Gelu", "gelu", 20],
  ["HardSigmoid", "hard_sigmoid", 1], ["HardSwish", "hardswish", 14], ["Identity", "identity", 1],
  ["IsInf", "is_inf", 10], ["IsNaN", "is_nan", 9], ["LeakyRelu", "leaky_relu", 1], ["Log", "log", 1],
  ["Mish", "mish", 18], ["Neg", "neg", 1], ["Not", "not", 1], ["Reciprocal", "reciprocal", 1], ["Relu", "relu", 1],
  ["Round", "round", 11], ["Selu", "selu", 1], ["Shrink", "shrink", 9], ["Sigmoid", "sigmoid", 1], ["Sign", "sign", 9],
  ["Sin", "sin", 7], ["Sinh", "sinh", 9], ["Softplus", "softplus", 1], ["Softsign", "softsign", 1], ["Sqrt", "sqrt", 1],
  ["Tan", "tan", 7], ["Tanh", "tanh", 1], ["ThresholdedRelu", "thresholded_relu", 10], ["Celu", "celu", 12],
  ["BitwiseNot", "bitwise_not", 18],
];

/** Ops whose opset-1 form carried the in-place hint `consumed_inputs` (the opset-1 schemas in onnx/defs/math/old.cc and friends). */
const CONSUMED_INPUTS_V1: ReadonlySet<string> = new Set([
  "Abs", "Ceil", "Elu", "Exp", "Floor", "HardSigmoid", "LeakyRelu", "Log", "Neg", "Reciprocal", "Relu", "Selu",
  "Sigmoid", "Sqrt", "Tanh",
]);

/** Binary ops with multidirectional broadcasting (opset 7+; older forms had `broadcast`/`axis`). */
const BINARY: readonly [string, string, number][] = [
  ["Add", "add", 7], ["Sub", "sub", 7], ["Mul", "mul", 7], ["Div", "div", 7], ["Pow", "pow", 7],
  ["Equal", "equal", 7], ["Less", "less", 7], ["Greater", "greater", 7], ["LessOrEqual", "less_or_equal", 12],
  ["GreaterOrEqual", "greater_or_equal", 12], ["And", "and", 7], ["Or", "or", 7], ["Xor", "xor", 7],
  ["Mod", "mod", 10], ["BitShift", "bit_shift", 11], ["BitwiseAnd", "bitwise_and", 18],
  ["BitwiseOr", "bitwise_or", 18], ["BitwiseXor", "bitwise_xor", 18], ["PRelu", "prelu", 7],
];

/** Variadic Max/Min/Sum/Mean: one input is a copy, two a binary op, more a left-to-right chain. */
function variadic(binary: string, mean = false): Converter {
  return (c: NodeContext) => {
    const xs = c.inputs.filter((v) => v !== "");
    if (xs.length === 0) c.fail("needs at least one input", { code: "BAD_MODEL" });
    if (c.outputs.length !== 1) c.fail(`has one output, the node declares ${c.outputs.length}`, { code: "BAD_MODEL" });
    const out = c.outputs[0] ?? "";
    if (xs.length === 1 && !mean) {
      c.emit("identity", xs, {}, [out]);
      return;
    }
    let acc = xs[0]!;
    for (let i = 1; i < xs.length; i++) {
      const last = i === xs.length - 1 && !mean;
      acc = c.emit(binary, [acc, xs[i]!], {}, last ? [out] : 1)[0]!;
    }
    if (mean) {
      const n = c.constant(scalarOf(c.typeOf(xs[0]!).dtype, xs.length), "count");
      c.emit("div", [acc, n], {}, [out]);
    }
  };
}

/** Clip-6..10 had min/max attributes (defaults ∓FLT_MAX); Clip-11 made them optional inputs. */
const clip: Converter = (c: NodeContext) => {
  if (c.opset >= 11) {
    rename("clip")(c);
    return;
  }
  const dtype = c.typeOf(c.input(0)).dtype;
  const lo = c.constant(scalarOf(dtype, c.attrs.float("min", -FLT_MAX)), "min");
  const hi = c.constant(scalarOf(dtype, c.attrs.float("max", FLT_MAX)), "max");
  c.emit("clip", [c.input(0), lo, hi], {}, c.outputs);
};

/** Cast: `to` (ONNX enum; a type name in Cast-1) becomes the qforge dtype name. */
const cast: Converter = (c: NodeContext) => {
  const to = dtypeAttr(c, "to");
  if (to === undefined) c.fail("attribute 'to' is required", { code: "BAD_MODEL" });
  c.emit("cast", [c.input(0)], { ...c.attrs.plain(["to"]), to }, c.outputs);
};

// ---- tensor / shape ----------------------------------------------------------------------------

/** Constant: the value attribute (or a value_* shorthand) becomes a graph constant; no node. */
const constant: Converter = (c: NodeContext) => {
  if (c.outputs.length !== 1) c.fail(`has one output, the node declares ${c.outputs.length}`, { code: "BAD_MODEL" });
  const out = c.outputs[0]!;
  const names = c.attrs.names();
  if (names.length !== 1) c.fail(`needs exactly one value attribute, has ${names.length === 0 ? "none" : names.join(", ")}`, { code: "BAD_MODEL" });
  const which = names[0]!;
  let t;
  switch (which) {
    case "value": t = c.tensor(c.attrs.tensorProto("value")!, out); break;
    case "value_float": t = fromArray("float32", [], [c.attrs.float("value_float")!]); break;
    case "value_floats": { const v = c.attrs.floats("value_floats")!; t = fromArray("float32", [v.length], v); break; }
    case "value_int": t = fromArray("int64", [], c.attrs.bigints("value_int")!); break;
    case "value_ints": { const v = c.attrs.bigints("value_ints")!; t = fromArray("int64", [v.length], v); break; }
    case "value_string": case "value_strings": c.fail("string constants are not supported (qforge tensors are numeric)");
    case "sparse_value": c.fail("sparse constants are not supported");
    default: c.fail(`unknown attribute '${which}'`, { code: "BAD_MODEL" });
  }
  if (out !== "") c.defineConstant(out, t);
};

/**
 * ConstantOfShape: the `value` tensor attribute (one element, float32 0 by default) becomes the
 * attributes `value` (the element as a number) and `dtype` (qforge dtype name): qforge attributes
 * are scalars and lists, not tensors.
 */
const constantOfShape: Converter = (c: NodeContext) => {
  const p = c.attrs.tensorProto("value");
  let dtype: DType = "float32";
  let value = 0;
  if (p !== undefined) {
    const t = c.tensor(p, `${c.name}.value`);
    if (numel(t.shape) !== 1) c.fail("attribute 'value' must hold exactly one element", { code: "BAD_MODEL" });
    dtype = t.dtype;
    value = toFloat64(t)[0]!;
  }
  c.emit("constant_of_shape", [c.input(0)], { value, dtype }, c.outputs);
};

/** Reshape-1..4 took `shape` as an attribute. */
const reshape: Converter = (c: NodeContext) => {
  const shape = c.attrs.ints("shape");
  if (c.opset >= 5 || shape === undefined) {
    rename("reshape")(c);
    return;
  }
  c.emit("reshape", [c.input(0), c.int64s(shape, "shape")], {}, c.outputs);
};

/** Concat-1..3: `axis` was optional with default 1. */
const concat: Converter = (c: NodeContext) => {
  const attrs = c.attrs.plain();
  if (c.opset < 4 && attrs.axis === undefined) attrs.axis = 1;
  c.emit("concat", c.inputs, attrs, c.outputs);
};

/** Split: `split` attribute -> input before 13; num_outputs made explicit when no sizes are given (18 requires one of them). */
const split: Converter = (c: NodeContext) => {
  const attrs: Record<string, AttrValue> = c.attrs.plain(["split"]);
  const inputs = [c.input(0)];
  const sizes = c.opset < 13 ? c.attrs.ints("split") : undefined;
  if (sizes !== undefined && sizes.length > 0) inputs.push(c.int64s(sizes, "split"));
  else if (c.input(1) !== "") inputs.push(c.input(1));
  if (inputs.length === 1 && attrs.num_outputs === undefined) attrs.num_outputs = c.outputs.length;
  c.emit("split", inputs, attrs, c.outputs);
};

/** Slice-1..9: starts/ends/axes attributes -> inputs (no steps). */
const slice: Converter = (c: NodeContext) => {
  if (c.opset >= 10) {
    rename("slice")(c);
    return;
  }
  const starts = c.attrs.ints("starts");
  const ends = c.attrs.ints("ends");
  if (starts === undefined || ends === undefined) c.fail("attributes 'starts' and 'ends' are required", { code: "BAD_MODEL" });
  const axes = c.attrs.ints("axes");
  const inputs = [c.input(0), c.int64s(starts, "starts"), c.int64s(ends, "ends")];
  if (axes !== undefined) inputs.push(c.int64s(axes, "axes"));
  c.emit("slice", inputs, {}, c.outputs);
};

/** Pad-1 (`paddings`) and Pad-2..10 (`pads`, `value`): attributes -> inputs. */
const pad: Converter = (c: NodeContext) => {
  if (c.opset >= 11) {
    rename("pad")(c);
    return;
  }
  const pads = c.attrs.ints("pads") ?? c.attrs.ints("paddings");
  if (pads === undefined) c.fail("attribute 'pads' is required", { code: "BAD_MODEL" });
  const mode = c.attrs.string("mode", "constant");
  const inputs = [c.input(0), c.int64s(pads, "pads")];
  const value = c.attrs.float("value", 0);
  if (mode === "constant" && value !== 0) inputs.push(c.constant(scalarOf(c.typeOf(c.input(0)).dtype, value), "value"));
  c.emit("pad", inputs, { mode }, c.outputs);
};

/** TopK-1..9: `k` attribute -> int64 [1] input. */
const topK: Converter = (c: NodeContext) => {
  if (c.opset >= 10) {
    rename("top_k")(c);
    return;
  }
  const k = c.attrs.int("k");
  if (k === undefined) c.fail("attribute 'k' is required", { code: "BAD_MODEL" });
  c.emit("top_k", [c.input(0), c.int64s([k], "k")], c.attrs.plain(["k"]), c.outputs);
};

/** EyeLike: `dtype` (ONNX enum) -> qforge dtype name. */
const eyeLike: Converter = (c: NodeContext) => {
  const attrs = c.attrs.plain(["dtype"]);
  const d = dtypeAttr(c, "dtype");
  if (d !== undefined) attrs.dtype = d;
  c.emit("eye_like", c.inputs, attrs, c.outputs);
};

// ---- nn ----------------------------------------------------------------------------------------

/**
 * Softmax/LogSoftmax/Hardmax before 13 coerce the input to 2-D at `axis` (default 1). As in onnx's
 * Softmax_12_13 adapter: when axis is the last dim nothing changes; else flatten -> op(axis=-1) ->
 * reshape back to the input's shape.
 */
function softmaxLike(op: string): Converter {
  return (c: NodeContext) => {
    const x = c.input(0);
    if (c.opset >= 13) {
      rename(op)(c);
      return;
    }
    const rank = rankOf(c, x);
    const axis = normalizeAxis(c, c.attrs.int("axis", 1), rank);
    if (axis === rank - 1) {
      c.emit(op, [x], { axis: -1 }, c.outputs);
      return;
    }
    const flat = c.emit("flatten", [x], { axis }, 1)[0]!;
    const y = c.emit(op, [flat], { axis: -1 }, 1)[0]!;
    const shape = c.emit("shape", [x], {}, 1)[0]!;
    c.emit("reshape", [y, shape], {}, c.outputs);
  };
}

/**
 * BatchNormalization: drops the legacy `consumed_inputs` (1-5), `is_test` (1-6) and `spatial` (1-8;
 * only spatial=1 has a latest form) attributes; before 14 the extra outputs mean training mode, and
 * outputs 4-5 (saved mean / inverse std) no longer exist, so they are allowed only when unused.
 */
const batchNorm: Converter = (c: NodeContext) => {
  const attrs = c.attrs.plain([...LEGACY_HINT_ATTRS, "is_test", "spatial"]);
  if (c.attrs.int("spatial", 1) !== 1) c.fail("spatial=0 (per-activation statistics) has no form in opset 9+");
  let outputs = [...c.outputs];
  if (c.opset < 14) {
    for (const i of [3, 4]) {
      const o = outputs[i];
      if (o !== undefined && c.isUsed(o)) c.fail(`output #${i} (saved mean/variance) was removed in opset 14 and is not supported`);
    }
    outputs = outputs.slice(0, 3);
    while (outputs.length > 1 && outputs[outputs.length - 1] === "") outputs.pop();
    if (outputs.length > 1) attrs.training_mode = 1;
  }
  c.emit("batch_norm", c.inputs.slice(0, 5), attrs, outputs);
};

/**
 * Dropout: `is_test` (1-6) dropped; `ratio` attribute (1-11) -> input, as onnx's Dropout_11_12
 * adapter does; the mask output of 1-9 had the input's dtype (bool since 10), so it is cast back.
 */
const dropout: Converter = (c: NodeContext) => {
  if (c.attrs.has("is_test") && c.attrs.int("is_test", 1) === 0) c.fail("is_test=0 (training-mode Dropout of opset < 7) is not supported");
  const inputs = [...c.inputs];
  if (c.opset < 12 && c.attrs.has("ratio")) inputs[1] = c.constant(scalarOf("float32", c.attrs.float("ratio", 0.5)), "ratio");
  const attrs = c.attrs.plain([...LEGACY_HINT_ATTRS, "is_test", "ratio"]);
  const mask = c.outputs[1] ?? "";
  if (c.opset < 10 && mask !== "") {
    const boolMask = c.fresh("mask");
    c.emit("dropout", inputs, attrs, [c.outputs[0] ?? "", boolMask]);
    c.emit("cast", [boolMask], { to: c.typeOf(c.input(0)).dtype }, [mask]);
    return;
  }
  c.emit("dropout", inputs, attrs, c.outputs);
};

/**
 * Resize-10 / Upsample-7..9: (X, scales) with `mode` only; the behaviour is the asymmetric
 * transform with floor for nearest (x_original = x_resized / scale; onnx's reference Upsample is
 * np.repeat). Upsample-7/8 had scales as an attribute.
 */
function resizeOld(c: NodeContext): void {
  let scales = c.input(1);
  if (c.opType === "Upsample" && c.opset < 9) {
    const s = c.attrs.floats("scales");
    if (s === undefined) c.fail("attribute 'scales' is required", { code: "BAD_MODEL" });
    scales = c.constant(fromArray("float32", [s.length], s), "scales");
  }
  let mode = c.attrs.string("mode", "nearest");
  if (mode === "bilinear") mode = "linear";
  const attrs: Record<string, AttrValue> = { mode, coordinate_transformation_mode: "asymmetric" };
  if (mode === "nearest") attrs.nearest_mode = "floor";
  c.emit("resize", [c.input(0), "", scales], attrs, c.outputs);
}

/** An input that is a known empty tensor (Resize-11/12 used them for "not given"). */
function isEmptyConst(c: NodeContext, v: string): boolean {
  if (v === "") return true;
  const t = c.constValue(v);
  if (t !== undefined) return t.shape.reduce((a, b) => a * b, 1) === 0;
  const shape = c.typeOf(v).shape;
  return shape.length === 1 && shape[0] === 0;
}

/** Resize: 10 -> see resizeOld; 11/12 required roi/scales (empty = not given) and had tf_half_pixel_for_nn. */
const resize: Converter = (c: NodeContext) => {
  if (c.opset < 11) {
    resizeOld(c);
    return;
  }
  const attrs = c.attrs.plain();
  if (attrs.coordinate_transformation_mode === "tf_half_pixel_for_nn") {
    c.fail("coordinate_transformation_mode 'tf_half_pixel_for_nn' (opset 11-12) has no form in opset 13+");
  }
  const inputs = [...c.inputs];
  for (const i of [1, 2]) if (inputs[i] !== undefined && inputs[i] !== "" && isEmptyConst(c, inputs[i]!)) inputs[i] = "";
  while (inputs.length > 1 && inputs[inputs.length - 1] === "") inputs.pop();
  c.emit("resize", inputs, attrs, c.outputs);
};

/**
 * GroupNormalization-18 had per-group scale/bias ([G]); 21 made them per-channel ([C]). As onnx's
 * GroupNormalization_20_21 adapter: reshape [G,1] -> expand [G, C/G] -> reshape [C].
 */
const groupNorm: Converter = (c: NodeContext) => {
  if (c.opset >= 21) {
    rename("group_normalization")(c);
    return;
  }
  const groups = c.attrs.int("num_groups");
  if (groups === undefined) c.fail("attribute 'num_groups' is required", { code: "BAD_MODEL" });
  const ch = c.typeOf(c.input(0)).shape[1];
  if (typeof ch !== "number") c.fail("the channel dim must be static to upgrade opset-18 per-group scale/bias");
  if (groups <= 0 || ch % groups !== 0) c.fail(`${ch} channels do not split into ${groups} groups`, { code: "BAD_MODEL" });
  const perChannel = (v: string, hint: string): string => {
    const g1 = c.emit("reshape", [v, c.int64s([groups, 1], `${hint}_g1`)], {}, 1)[0]!;
    const gc = c.emit("expand", [g1, c.int64s([groups, ch / groups], `${hint}_gc`)], {}, 1)[0]!;
    return c.emit("reshape", [gc, c.int64s([ch], `${hint}_c`)], {}, 1)[0]!;
  };
  const scale = perChannel(c.input(1), "scale");
  const bias = perChannel(c.input(2), "bias");
  c.emit("group_normalization", [c.input(0), scale, bias], c.attrs.plain(), c.outputs);
};

/** GridSample-16..19 modes were bilinear/bicubic (linear/cubic since 20). */
const gridSample: Converter = (c: NodeContext) => {
  const attrs = c.attrs.plain();
  if (attrs.mode === "bilinear") attrs.mode = "linear";
  if (attrs.mode === "bicubic") attrs.mode = "cubic";
  c.emit("grid_sample", c.inputs, attrs, c.outputs);
};

/** RoiAlign-10 behaved as coordinate_transformation_mode='output_half_pixel' (the attribute came in 16). */
const roiAlign: Converter = (c: NodeContext) => {
  const attrs = c.attrs.plain();
  if (c.opset < 16 && attrs.coordinate_transformation_mode === undefined) attrs.coordinate_transformation_mode = "output_half_pixel";
  c.emit("roi_align", c.inputs, attrs, c.outputs);
};

/** Gemm-1..6 had a `broadcast` flag; multidirectional broadcasting of C (7+) covers both settings. */
const gemm: Converter = rename("gemm", ["broadcast"]);

/**
 * Quantize/DequantizeLinear: older opsets are subsets of the latest form (axis since 13, saturate
 * since 19, block_size/output_dtype since 21, precision since 23); the dtype-valued attributes are
 * ONNX enums and become qforge dtype names.
 */
function quantizeLinear(op: string): Converter {
  return (c: NodeContext) => {
    const attrs = c.attrs.plain([...LEGACY_HINT_ATTRS, "output_dtype", "precision"]);
    for (const a of ["output_dtype", "precision"]) {
      const d = dtypeAttr(c, a);
      if (d !== undefined) attrs[a] = d;
    }
    c.emit(op, c.inputs, attrs, c.outputs);
  };
}

/** Control flow and sequences have no qforge form. */
function unsupported(what: string): Converter {
  return (c: NodeContext) => c.fail(what);
}

export const OP_TABLE: readonly OpMapping[] = [
  ...UNARY.map(([o, q, s]) => row(o, q, s, rename(q), CONSUMED_INPUTS_V1.has(o) ? "drops opset-1 `consumed_inputs`" : undefined)),
  ...BINARY.map(([o, q, s]) => row(o, q, s)),
  row("Max", "max", 6, variadic("max"), "variadic: 1 input -> identity, >2 -> chain of binary max"),
  row("Min", "min", 6, variadic("min"), "variadic: 1 input -> identity, >2 -> chain of binary min"),
  row("Sum", "add", 6, variadic("add"), "variadic: 1 input -> identity, >=2 -> chain of add"),
  row("Mean", "add", 6, variadic("add", true), "chain of add, then div by the input count"),
  row("Clip", "clip", 1, clip, "opset < 11: `min`/`max` attributes (default ∓FLT_MAX) -> scalar inputs"),
  row("Where", "where", 9),
  row("Cast", "cast", 1, cast, "`to` (ONNX enum; a type name in Cast-1) -> qforge dtype name"),
  row("CastLike", "cast_like", 15),
  row("Constant", "(graph constant)", 1, constant, "value / value_float(s) / value_int(s) -> a constant; no node"),
  row("ConstantOfShape", "constant_of_shape", 9, constantOfShape, "tensor attribute `value` -> attributes `value` (number) and `dtype` (qforge name)"),
  row("Shape", "shape", 1, rename("shape"), "folded to a constant when the input shape is static"),
  row("Size", "size", 1, rename("size"), "folded to a constant when the input shape is static"),
  row("Reshape", "reshape", 1, reshape, "opset < 5: `shape` attribute -> input"),
  row("Flatten", "flatten", 1),
  row("Transpose", "transpose", 1),
  row("Squeeze", "squeeze", 1, intsAttrToInput("squeeze", "axes", 1, 13), "opset < 13: `axes` attribute -> input"),
  row("Unsqueeze", "unsqueeze", 1, intsAttrToInput("unsqueeze", "axes", 1, 13), "opset < 13: `axes` attribute -> input"),
  row("Concat", "concat", 1, concat, "opset < 4: default axis 1"),
  row("Split", "split", 1, split, "opset < 13: `split` attribute -> input; no sizes -> `num_outputs` = output count"),
  row("Slice", "slice", 1, slice, "opset < 10: `starts`/`ends`/`axes` attributes -> inputs"),
  row("Gather", "gather", 1),
  row("GatherElements", "gather_elements", 11),
  row("GatherND", "gather_nd", 11),
  row("Scatter", "scatter_elements", 9, rename("scatter_elements"), "deprecated Scatter-9/10 is ScatterElements"),
  row("ScatterElements", "scatter_elements", 11),
  row("ScatterND", "scatter_nd", 11),
  row("Expand", "expand", 8),
  row("Tile", "tile", 6),
  row("Pad", "pad", 1, pad, "opset < 11: `pads` (`paddings` in Pad-1) and `value` attributes -> inputs"),
  row("Range", "range", 11),
  row("OneHot", "one_hot", 9),
  row("NonZero", "non_zero", 9),
  row("TopK", "top_k", 1, topK, "opset < 10: `k` attribute -> input"),
  row("ArgMax", "arg_max", 1),
  row("ArgMin", "arg_min", 1),
  row("CumSum", "cum_sum", 11),
  row("Einsum", "einsum", 12),
  row("Trilu", "trilu", 14),
  row("DepthToSpace", "depth_to_space", 1),
  row("SpaceToDepth", "space_to_depth", 1),
  row("Compress", "compress", 9),
  row("ReverseSequence", "reverse_sequence", 10),
  row("EyeLike", "eye_like", 9, eyeLike, "`dtype` (ONNX enum) -> qforge dtype name"),
  row("ReduceSum", "reduce_sum", 1, intsAttrToInput("reduce_sum", "axes", 1, 13), "opset < 13: `axes` attribute -> input"),
  ...(["Mean", "Max", "Min", "Prod", "L1", "L2", "LogSum", "LogSumExp", "SumSquare"] as const).map((k) => {
    const q = `reduce_${k.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase()}`;
    return row(`Reduce${k}`, q, 1, intsAttrToInput(q, "axes", 1, 18), "opset < 18: `axes` attribute -> input");
  }),
  row("MatMul", "matmul", 1),
  row("Gemm", "gemm", 1, gemm, "opset < 7: drops `broadcast`"),
  row("Conv", "conv", 1),
  row("ConvTranspose", "conv_transpose", 1),
  row("MaxPool", "max_pool", 1),
  row("AveragePool", "average_pool", 1),
  row("LpPool", "lp_pool", 2),
  row("GlobalAveragePool", "global_average_pool", 1),
  row("GlobalMaxPool", "global_max_pool", 1),
  row("GlobalLpPool", "global_lp_pool", 2),
  row("BatchNormalization", "batch_norm", 1, batchNorm, "drops `consumed_inputs`/`is_test`/`spatial=1`; opset < 14: extra outputs -> training_mode=1"),
  row("InstanceNormalization", "instance_normalization", 1, rename("instance_normalization"), "drops opset-1 `consumed_inputs`"),
  row("LayerNormalization", "layer_normalization", 17),
  row("GroupNormalization", "group_normalization", 18, groupNorm, "opset < 21: per-group scale/bias -> per-channel (reshape/expand/reshape)"),
  row("LpNormalization", "lp_normalization", 1),
  row("MeanVarianceNormalization", "mean_variance_normalization", 9),
  row("LRN", "lrn", 1),
  row("Softmax", "softmax", 1, softmaxLike("softmax"), "opset < 13: 2-D coercion -> flatten/softmax/reshape (or axis=-1)"),
  row("LogSoftmax", "log_softmax", 1, softmaxLike("log_softmax"), "opset < 13: 2-D coercion -> flatten/log_softmax/reshape"),
  row("Hardmax", "hardmax", 1, softmaxLike("hardmax"), "opset < 13: 2-D coercion -> flatten/hardmax/reshape"),
  row("Dropout", "dropout", 1, dropout, "`is_test` dropped; opset < 12: `ratio` attribute -> input; opset < 10: mask cast to the input dtype"),
  row("Resize", "resize", 10, resize, "opset 10: (X, scales) -> asymmetric/floor; 11-12: empty roi/scales -> omitted"),
  row("Upsample", "resize", 7, resizeOld, "-> resize with asymmetric/floor; opset < 9: `scales` attribute -> input"),
  row("GridSample", "grid_sample", 16, gridSample, "opset < 20: bilinear/bicubic -> linear/cubic"),
  row("RoiAlign", "roi_align", 10, roiAlign, "opset < 16: coordinate_transformation_mode=output_half_pixel"),
  row("NonMaxSuppression", "non_max_suppression", 10),
  row("QuantizeLinear", "quantize_linear", 10, quantizeLinear("quantize_linear"), "dtype attributes (output_dtype, precision) -> qforge dtype names"),
  row("DequantizeLinear", "dequantize_linear", 10, quantizeLinear("dequantize_linear"), "dtype attributes (output_dtype, precision) -> qforge dtype names"),
  row("DynamicQuantizeLinear", "dynamic_quantize_linear", 11),
  row("QLinearMatMul", "qlinear_matmul", 10),
  row("QLinearConv", "qlinear_conv", 10),
  row("MatMulInteger", "matmul_integer", 10),
  row("ConvInteger", "conv_integer", 10),
  ...["If", "Loop", "Scan"].map((o) => row(o, "(unsupported)", 1, unsupported("control flow (subgraphs) is not supported"), "control flow is not supported")),
];

export const OP_BY_NAME: ReadonlyMap<string, OpMapping> = new Map(OP_TABLE.map((r) => [r.onnx, r]));
