/**
 * The lowering table: one row per `dequantize -> float op(s) -> quantize` pattern of a converted PT2E
 * program and the integer op (packages/ir/src/ops/quantized.ts) that replaces it, like FX's
 * _lower_to_native_backend (torch/ao/quantization/fx/_lower_to_native_backend.py: STATIC_LOWER_*
 * maps, _match_static_pattern) and tinygrad's PatternMatcher: adding a lowering is adding a row.
 *
 * A row's `lower` reads the match and returns what to emit, or throws `Skip` with the reason the
 * pattern cannot be lowered after all (narrowed output range, engine limits, ...); the float path
 * then stays and the reason is reported. Rows never edit the graph themselves: `toRule` emits.
 */
import { P } from "ts-pattern";
import {
  dtypeInfo, getElement, numel, rule, scalar, toNumbers, type AttrValue, type DType, type NodeView, type Rewriter, type RewriteRule, type ValueView,
} from "@qforge/ir";
import { quantizeValue } from "@qforge/quant";
import {
  attrNumber, biasOf, CHOOSE_QPARAMS, constantScalar, DEQUANTIZE, DEQUANTIZE_PER_CHANNEL, dequantized, isFloatDType,
  isIntegerDType, loweredMeta, matmulWeightOf, node, QDQ_OPS, QUANTIZE, QUANTIZE_PER_CHANNEL, quantizedOutput, sameDTypes, skip, Skip,
  weightOf, type LoweredInput,
} from "./match.js";

export type LoweringEngine = "qnnpack" | "onednn";

/** What a row decided to emit. */
export interface Lowering {
  readonly op: string;
  readonly inputs: readonly LoweredInput[];
  readonly attrs: Record<string, AttrValue>;
  /** The float ops replaced: the first names the result (moduleStack, source), the last produces its value. */
  readonly chain: readonly NodeView[];
}

export interface LoweringContext {
  readonly engine: LoweringEngine;
  /** Float node name -> why its pattern was not lowered (filled as rows skip). */
  readonly skipped: Map<string, string>;
}

interface Row {
  readonly name: string;
  /**
   * The float ops this row lowers, each with how many of its leading inputs must be dequantized
   * (for diagnosing nodes left in float; a fused activation's input is the op it is fused to; a
   * linear's bias add is not listed, so that a lone add keeps the add row's diagnosis).
   */
  readonly ops: Readonly<Record<string, number>>;
  readonly pattern: P.Pattern<ValueView>;
  readonly lower: (m: NodeView, rw: Rewriter, ctx: LoweringContext) => Lowering;
}

// ---- pattern fragments --------------------------------------------------------------------

/** A qparam (scale or zero point): a constant. */
const qparam = { kind: "constant" } as const;

const floatConst = { kind: "constant", tensor: { dtype: P.when(isFloatDType) } } as const;
const intConst = { kind: "constant", tensor: { dtype: P.when(isIntegerDType) } } as const;
const none = { kind: "none" } as const;

/** An activation dequantized per tensor with constant qparams: dequantize_per_tensor(q, scale, zp). */
const dqAct = { kind: "node", op: DEQUANTIZE, inputs: [P.union({ kind: "node" }, { kind: "input" }, intConst), qparam, qparam] } as const;

/**
 * A constant dequantized per tensor or per channel: the weight (and int32 bias) path of a converted
 * program. With fold_quantize the integer constant feeds the dequantize directly; without it the
 * float constant is still behind its quantize, which lowering folds.
 */
const dqConst = {
  kind: "node",
  op: P.union(DEQUANTIZE, DEQUANTIZE_PER_CHANNEL),
  inputs: [P.union(intConst, { kind: "node", op: P.union(QUANTIZE, QUANTIZE_PER_CHANNEL), inputs: [floatConst, qparam, qparam] }), qparam, qparam],
} as const;

/** The bias of linear / conv: absent, a float constant, or a dequantized (int32) constant. */
const bias = P.union(none, floatConst, dqConst);

/** `quantize_per_tensor(inner, scale, zp)`: the root of every static pattern. */
function quantizeOf<const I>(inner: I) {
  return { kind: "node", op: QUANTIZE, inputs: [inner, qparam, qparam] } as const;
}

/** A float op whose output only feeds the next node of the pattern. */
function floatOp<const O, const I>(op: O, inputs: I) {
  return { kind: "node", op, users: 1, inputs } as const;
}

/** A float op of one dequantized activation. */
function unaryOf<const O>(op: O) {
  return floatOp(op, [dqAct] as const);
}

// ---- shared pieces of rows ------------------------------------------------------------------

/** The float op under the quantize root, and the ops under it down to the first QDQ node. */
function floatChain(root: NodeView): NodeView[] {
  const chain: NodeView[] = [];
  let v: ValueView | undefined = QDQ_OPS.has(root.op) ? root.inputs[0] : root;
  while (v !== undefined && v.kind === "node" && !QDQ_OPS.has(v.op)) {
    chain.unshift(v);
    v = v.inputs[0];
  }
  return chain;
}

/** linear / conv inputs: dequantized activation, dequantized constant weight, optional bias. */
const WEIGHTED_INPUTS = P.union([dqAct, dqConst], [dqAct, dqConst, bias]);

/** A clip that acts as a relu on the quantized output: min 0 and a max that never binds below qmax. */
function checkClipIsRelu(clip: NodeView, root: NodeView, rw: Rewriter): void {
  const min = constantScalar(clip.inputs[1]);
  const max = constantScalar(clip.inputs[2]);
  if (min !== 0) skip(`clip min ${min ?? "(none)"} is not 0, so it is not a relu`);
  if (max === undefined) return;
  const [, scaleV, zpV] = root.inputs;
  if (scaleV?.kind !== "constant" || zpV?.kind !== "constant") skip("the output qparams are not constants");
  const dtype = rw.graph.values[root.value]?.dtype;
  if (dtype === undefined) skip(`value '${root.value}' has no type`);
  const info = dtypeInfo(dtype);
  const qmax = attrNumber(root, "quant_max", info.max);
  // quantize(clip(v, 0, max)) == the fused relu's clamp iff quantize(max) already saturates.
  if (quantizeValue(max, getElement(scaleV.tensor, 0), getElement(zpV.tensor, 0), attrNumber(root, "quant_min", info.min), qmax) < qmax) {
    skip(`clip max ${max} lies inside the output range: quantized_* fuse only a relu`);
  }
}

/** quantize(linear/conv(dq(x), dq(w), b)) with an optional relu/clip: quantized_linear / quantized_conv2d. */
function weighted(op: "quantized_linear" | "quantized_conv2d", opAttrs: (f: NodeView, rw: Rewriter) => Record<string, AttrValue>) {
  return (m: NodeView, rw: Rewriter, ctx: LoweringContext): Lowering => {
    const chain = floatChain(m);
    const f = chain[0]!;
    const act = chain[chain.length - 1]!;
    if (act.op === "clip") checkClipIsRelu(act, m, rw);
    const out = quantizedOutput(rw, m);
    const x = dequantized(rw, node(f.inputs[0]));
    if (x.dtype !== "uint8" && x.dtype !== "int8") skip(`the ${ctx.engine} engine takes uint8 or int8 activations, got ${x.dtype}`);
    sameDTypes(out.dtype, [x]);
    const w = weightOf(node(f.inputs[1]));
    if (ctx.engine === "onednn" && toNumbers(w.zeroPoints).some((z) => z !== 0)) {
      skip("the onednn engine refuses weights with a non-zero zero point");
    }
    const attrs = { ...opAttrs(f, rw), engine: ctx.engine, fuse_relu: chain.length > 1 };
    return {
      op, attrs, chain,
      inputs: [x.q, x.scale, x.zeroPoint, w.q, w.scale, w.zeroPoint, biasOf(f.inputs[2]), out.scale, out.zeroPoint],
    };
  };
}

function ints(n: NodeView, name: string, fallback: readonly number[]): number[] {
  const v = n.attrs[name];
  return Array.isArray(v) ? (v as number[]).slice() : [...fallback];
}

/** ONNX conv attributes as quantized_conv2d's (2-D, symmetric padding). */
function conv2dAttrs(conv: NodeView, rw: Rewriter): Record<string, AttrValue> {
  const rank = rw.graph.values[conv.value]?.shape.length;
  if (rank !== 4) skip(`only 2-D convolutions lower to quantized_conv2d (output rank ${rank})`);
  const autoPad = (conv.attrs["auto_pad"] as string | undefined) ?? "NOTSET";
  if (autoPad !== "NOTSET" && autoPad !== "VALID") skip(`auto_pad ${autoPad} has no quantized_conv2d equivalent`);
  const pads = autoPad === "VALID" ? [0, 0, 0, 0] : ints(conv, "pads", [0, 0, 0, 0]);
  if (pads[0] !== pads[2] || pads[1] !== pads[3]) skip(`asymmetric pads [${pads.join(", ")}]: quantized_conv2d pads both sides alike`);
  return {
    stride: ints(conv, "strides", [1, 1]), padding: [pads[0]!, pads[1]!], dilation: ints(conv, "dilations", [1, 1]),
    groups: attrNumber(conv, "group", 1),
  };
}

/** quantize(op(dq(x))) -> integer op on x, with the output qparams of the quantize. */
function unary(op: string, attrs: (f: NodeView, rw: Rewriter) => Record<string, AttrValue> = () => ({})) {
  return (m: NodeView, rw: Rewriter): Lowering => {
    const f = node(m.inputs[0]);
    const out = quantizedOutput(rw, m);
    const x = dequantized(rw, node(f.inputs[0]));
    sameDTypes(out.dtype, [x]);
    return { op, attrs: attrs(f, rw), chain: [f], inputs: [x.q, x.scale, x.zeroPoint, out.scale, out.zeroPoint] };
  };
}

/** quantize(add/mul(dq(a), dq(b))) with an optional relu. */
function binary(op: "quantized_add" | "quantized_mul") {
  return (m: NodeView, rw: Rewriter): Lowering => {
    const chain = floatChain(m);
    const f = chain[0]!;
    const out = quantizedOutput(rw, m);
    const a = dequantized(rw, node(f.inputs[0]));
    const b = dequantized(rw, node(f.inputs[1]));
    sameDTypes(out.dtype, [a, b]);
    return {
      op, chain, attrs: { fuse_relu: chain.length > 1 },
      inputs: [a.q, a.scale, a.zeroPoint, b.q, b.scale, b.zeroPoint, out.scale, out.zeroPoint],
    };
  };
}

/** 2-D pooling window attributes of ONNX max_pool / average_pool (kernel, strides, symmetric pads). */
function pool2d(f: NodeView, rw: Rewriter, withDilation: boolean): Record<string, AttrValue> {
  const kernel = ints(f, "kernel_shape", []);
  if (kernel.length !== 2) skip(`only 2-D pooling lowers (kernel_shape [${kernel.join(", ")}])`);
  const autoPad = (f.attrs["auto_pad"] as string | undefined) ?? "NOTSET";
  if (autoPad !== "NOTSET" && autoPad !== "VALID") skip(`auto_pad ${autoPad} has no quantized pooling equivalent`);
  const pads = autoPad === "VALID" ? [0, 0, 0, 0] : ints(f, "pads", [0, 0, 0, 0]);
  if (pads[0] !== pads[2] || pads[1] !== pads[3]) skip(`asymmetric pads [${pads.join(", ")}]`);
  if (pads[0]! > kernel[0]! / 2 || pads[1]! > kernel[1]! / 2) skip(`pads [${pads.join(", ")}] exceed half the kernel, which PyTorch's pooling refuses`);
  const dilation = ints(f, "dilations", [1, 1]);
  if (!withDilation && (dilation[0] !== 1 || dilation[1] !== 1)) skip(`dilations [${dilation.join(", ")}]: quantized_avg_pool2d has none`);
  const users = f.node.outputs.length > 1 && f.node.outputs[1] !== "" && rw.graph.nodes.some((n) => n.inputs.includes(f.node.outputs[1]!));
  if (users || rw.graph.outputs.includes(f.node.outputs[1] ?? "\u0000")) skip("the Indices output of max_pool is used");
  const attrs: Record<string, AttrValue> = {
    kernel_size: kernel, stride: ints(f, "strides", [1, 1]), padding: [pads[0]!, pads[1]!], ceil_mode: attrNumber(f, "ceil_mode", 0) !== 0,
  };
  if (withDilation) attrs["dilation"] = dilation;
  return attrs;
}

/** Two per-tensor qparam constants with equal values. */
function sameQParam(a: ValueView | undefined, b: ValueView | undefined): boolean {
  if (a === undefined || b === undefined || a.kind !== "constant" || b.kind !== "constant") return false;
  if (a.value === b.value) return true;
  return numel(a.tensor.shape) === 1 && numel(b.tensor.shape) === 1 && getElement(a.tensor, 0) === getElement(b.tensor, 0);
}

// ---- ONNX linears (MatMul + Add, Gemm) and activation matmuls ------------------------------------

/**
 * quantize([relu|clip](add(matmul(dq(x), dq(W[K, N])), bias))) and the forms without bias or
 * activation, and quantize([relu|clip](gemm(dq(x), dq(W), bias?))): ONNX's nn.Linear, lowered to
 * quantized_linear with W transposed to torch's [N, K] (per-channel qparams of W's output axis).
 */
function onnxLinear(m: NodeView, rw: Rewriter, ctx: LoweringContext): Lowering {
  let v = node(m.inputs[0]);
  const act = v.op === "relu" || v.op === "clip" ? v : undefined;
  if (act !== undefined) v = node(act.inputs[0]);
  let add: NodeView | undefined;
  let biasView: ValueView | undefined;
  if (v.op === "add") {
    add = v;
    const [l, r] = v.inputs as [ValueView, ValueView];
    const inner = l.kind === "node" && (l.op === "matmul") ? l : r;
    biasView = inner === l ? r : l;
    v = node(inner);
  }
  const f = v;
  if (act?.op === "clip") checkClipIsRelu(act, m, rw);
  let transposed = false;
  if (f.op === "gemm") {
    if (attrNumber(f, "transA", 0) !== 0) skip("gemm with transA has no quantized_linear equivalent");
    if (attrNumber(f, "alpha", 1) !== 1 || (f.inputs[2] !== undefined && f.inputs[2].kind !== "none" && attrNumber(f, "beta", 1) !== 1)) {
      skip("gemm with alpha or beta other than 1 has no quantized_linear equivalent");
    }
    transposed = attrNumber(f, "transB", 0) !== 0;
    biasView = f.inputs[2];
  }
  const out = quantizedOutput(rw, m);
  const x = dequantized(rw, node(f.inputs[0]));
  if (x.dtype !== "uint8" && x.dtype !== "int8") skip(`the ${ctx.engine} engine takes uint8 or int8 activations, got ${x.dtype}`);
  sameDTypes(out.dtype, [x]);
  const w = matmulWeightOf(node(f.inputs[1]), transposed);
  if (ctx.engine === "onednn" && toNumbers(w.zeroPoints).some((z) => z !== 0)) skip("the onednn engine refuses weights with a non-zero zero point");
  let b = biasOf(biasView);
  if (typeof b === "string" && b !== "") {
    // An ONNX bias may be [1, N] (or [N] already); quantized_linear takes [N].
    const t = rw.constantTensor(b)!;
    if (t.shape.length !== 1) {
      const n = t.shape[t.shape.length - 1]!;
      if (numel(t.shape) !== n) skip(`the bias [${t.shape.join(", ")}] is not one value per output feature`);
      b = { base: `${b}_1d`, tensor: { ...t, shape: [n] } };
    }
  }
  const chain = [f, ...(add !== undefined ? [add] : []), ...(act !== undefined ? [act] : [])];
  return {
    op: "quantized_linear", chain, attrs: { engine: ctx.engine, fuse_relu: act !== undefined },
    inputs: [x.q, x.scale, x.zeroPoint, w.q, w.scale, w.zeroPoint, b, out.scale, out.zeroPoint],
  };
}

/** A zero point as the integer dtype of the tensor it belongs to (QLinear ops read the output dtype from it). */
function zeroPointAs(rw: Rewriter, zp: string, dtype: DType): LoweredInput {
  const t = rw.constantTensor(zp);
  if (t === undefined) skip(`zero point '${zp}' is not a constant`);
  if (t.dtype === dtype) return zp;
  if (numel(t.shape) !== 1) skip(`zero point '${zp}' is not one value`);
  return { base: `${zp}_${dtype}`, tensor: scalar(dtype, getElement(t, 0)) };
}

/** quantize(matmul(dq(a), dq(b))) of two activations: ONNX QLinearMatMul (its float32 requantization). */
function activationMatmul(m: NodeView, rw: Rewriter): Lowering {
  const f = node(m.inputs[0]);
  const out = quantizedOutput(rw, m);
  const a = dequantized(rw, node(f.inputs[0]));
  const b = dequantized(rw, node(f.inputs[1]));
  for (const t of [a, b]) if (t.dtype !== "uint8" && t.dtype !== "int8") skip(`QLinearMatMul takes uint8 or int8 inputs, got ${t.dtype}`);
  if (out.dtype !== "uint8" && out.dtype !== "int8") skip(`QLinearMatMul produces uint8 or int8, not ${out.dtype}`);
  return {
    op: "qlinear_matmul", chain: [f], attrs: {},
    inputs: [
      a.q, a.scale, zeroPointAs(rw, a.zeroPoint, a.dtype), b.q, b.scale, zeroPointAs(rw, b.zeroPoint, b.dtype),
      out.scale, zeroPointAs(rw, out.zeroPoint, out.dtype),
    ],
  };
}

// ---- dynamic quantization -------------------------------------------------------------------

const chosen = (i: number) => ({ kind: "node", op: CHOOSE_QPARAMS, outputIndex: i }) as const;
/** dequantize(quantize(x, choose_qparams(x))): torch's dynamic activation quantization. */
const dynAct = {
  kind: "node", op: DEQUANTIZE,
  inputs: [{ kind: "node", op: QUANTIZE, inputs: [P._, chosen(0), chosen(1)] }, chosen(0), chosen(1)],
} as const;

function dynamicLinear(m: NodeView, _rw: Rewriter, ctx: LoweringContext): Lowering {
  const dq = node(m.inputs[0]);
  const q = node(dq.inputs[0]);
  const choose = node(q.inputs[1]);
  const x = q.inputs[0]!;
  const sameNode = [q.inputs[2], dq.inputs[1], dq.inputs[2]].every((v) => v?.kind === "node" && v.name === choose.name);
  if (!sameNode || choose.inputs[0]?.value !== x.value || dq.inputs[1]!.value !== q.inputs[1]!.value || dq.inputs[2]!.value !== q.inputs[2]!.value) {
    skip("the activation's quantize/dequantize do not use the qparams chosen from that same activation");
  }
  const qscheme = (choose.attrs["qscheme"] as string | undefined) ?? "per_tensor_affine";
  if (qscheme !== "per_tensor_affine") skip(`choose_qparams with ${qscheme}: linear_dynamic picks affine qparams`);
  const qmin = attrNumber(choose, "quant_min", 0);
  const qmax = attrNumber(choose, "quant_max", 255);
  // linear_dynamic picks quint8 qparams over [0, 255] (any full 8-bit range is the same affine map)
  // or, on onednn with reduce_range, over [0, 127].
  let reduceRange: boolean;
  if (qmax - qmin === 255) reduceRange = false;
  else if (qmax - qmin === 127 && ctx.engine === "onednn") reduceRange = true;
  else skip(`choose_qparams over [${qmin}, ${qmax}] has no ${ctx.engine} linear_dynamic equivalent`);
  const w = weightOf(node(m.inputs[1]));
  if (ctx.engine === "onednn" && toNumbers(w.zeroPoints).some((z) => z !== 0)) {
    skip("the onednn engine refuses weights with a non-zero zero point");
  }
  return {
    op: "dynamic_quantized_linear", chain: [m], attrs: { engine: ctx.engine, reduce_range: reduceRange },
    inputs: [x.value, w.q, w.scale, w.zeroPoint, biasOf(m.inputs[2])],
  };
}

// ---- the table ------------------------------------------------------------------------------

const relu = <I>(inner: I) => floatOp("relu", [inner] as const);
const clip = <I>(inner: I) => floatOp("clip", P.union([inner] as const, [inner, P._] as const, [inner, P._, P._] as const));
const linear = floatOp("linear", WEIGHTED_INPUTS);
const conv = floatOp("conv", WEIGHTED_INPUTS);
const add = floatOp("add", [dqAct, dqAct]);
const mul = floatOp("mul", [dqAct, dqAct]);
const isSixth = (a: unknown): boolean => typeof a === "number" && Math.abs(a - 1 / 6) < 1e-7;
const matmulW = floatOp("matmul", [dqAct, dqConst]);
const addBias = <I>(inner: I) => floatOp("add", P.union([inner, floatConst] as const, [floatConst, inner] as const));
const gemm = floatOp("gemm", WEIGHTED_INPUTS);

const ROWS: readonly Row[] = [
  { name: "linear", ops: { linear: 2 }, pattern: quantizeOf(linear), lower: weighted("quantized_linear", () => ({})) },
  { name: "linear-relu", ops: { linear: 2, relu: 0 }, pattern: quantizeOf(relu(linear)), lower: weighted("quantized_linear", () => ({})) },
  { name: "linear-clip", ops: { linear: 2, clip: 0 }, pattern: quantizeOf(clip(linear)), lower: weighted("quantized_linear", () => ({})) },
  { name: "conv2d", ops: { conv: 2 }, pattern: quantizeOf(conv), lower: weighted("quantized_conv2d", conv2dAttrs) },
  { name: "conv2d-relu", ops: { conv: 2, relu: 0 }, pattern: quantizeOf(relu(conv)), lower: weighted("quantized_conv2d", conv2dAttrs) },
  { name: "conv2d-clip", ops: { conv: 2, clip: 0 }, pattern: quantizeOf(clip(conv)), lower: weighted("quantized_conv2d", conv2dAttrs) },
  { name: "matmul-linear", ops: { matmul: 2 }, pattern: quantizeOf(matmulW), lower: onnxLinear },
  { name: "matmul-add-linear", ops: { matmul: 2 }, pattern: quantizeOf(addBias(matmulW)), lower: onnxLinear },
  { name: "matmul-relu", ops: { matmul: 2, relu: 0 }, pattern: quantizeOf(relu(matmulW)), lower: onnxLinear },
  { name: "matmul-clip", ops: { matmul: 2, clip: 0 }, pattern: quantizeOf(clip(matmulW)), lower: onnxLinear },
  { name: "matmul-add-relu", ops: { matmul: 2, relu: 0 }, pattern: quantizeOf(relu(addBias(matmulW))), lower: onnxLinear },
  { name: "matmul-add-clip", ops: { matmul: 2, clip: 0 }, pattern: quantizeOf(clip(addBias(matmulW))), lower: onnxLinear },
  { name: "gemm-linear", ops: { gemm: 2 }, pattern: quantizeOf(gemm), lower: onnxLinear },
  { name: "gemm-relu", ops: { gemm: 2, relu: 0 }, pattern: quantizeOf(relu(gemm)), lower: onnxLinear },
  { name: "gemm-clip", ops: { gemm: 2, clip: 0 }, pattern: quantizeOf(clip(gemm)), lower: onnxLinear },
  { name: "matmul", ops: { matmul: 2 }, pattern: quantizeOf(floatOp("matmul", [dqAct, dqAct])), lower: activationMatmul },
  { name: "dynamic-linear", ops: { linear: 2 }, pattern: floatOp("linear", P.union([dynAct, dqConst], [dynAct, dqConst, P.union(none, floatConst, dqConst)])), lower: dynamicLinear },
  { name: "add", ops: { add: 2 }, pattern: quantizeOf(add), lower: binary("quantized_add") },
  { name: "add-relu", ops: { add: 2, relu: 0 }, pattern: quantizeOf(relu(add)), lower: binary("quantized_add") },
  { name: "mul", ops: { mul: 2 }, pattern: quantizeOf(mul), lower: binary("quantized_mul") },
  { name: "mul-relu", ops: { mul: 2, relu: 0 }, pattern: quantizeOf(relu(mul)), lower: binary("quantized_mul") },
  {
    name: "cat", ops: { concat: Infinity }, pattern: quantizeOf(floatOp("concat", P.array(dqAct))),
    lower: (m, rw) => {
      const f = node(m.inputs[0]);
      const out = quantizedOutput(rw, m);
      const xs = f.inputs.map((v) => dequantized(rw, node(v)));
      sameDTypes(out.dtype, xs);
      return { op: "quantized_cat", chain: [f], attrs: { dim: attrNumber(f, "axis", 0) }, inputs: [out.scale, out.zeroPoint, ...xs.flatMap((x) => [x.q, x.scale, x.zeroPoint])] };
    },
  },
  { name: "relu", ops: { relu: 1 }, pattern: quantizeOf(unaryOf("relu")), lower: unary("quantized_relu") },
  { name: "hardswish", ops: { hardswish: 1 }, pattern: quantizeOf(unaryOf("hardswish")), lower: unary("quantized_hardswish") },
  { name: "sigmoid", ops: { sigmoid: 1 }, pattern: quantizeOf(unaryOf("sigmoid")), lower: unary("quantized_sigmoid") },
  {
    // torch's hardsigmoid is ONNX HardSigmoid with alpha 1/6, beta 1/2; other slopes have no integer op.
    name: "hard-sigmoid", ops: { hard_sigmoid: 1 },
    pattern: quantizeOf({ ...unaryOf("hard_sigmoid"), attrs: { alpha: P.when(isSixth), beta: 0.5 } }), lower: unary("quantized_hardsigmoid"),
  },
  { name: "tanh", ops: { tanh: 1 }, pattern: quantizeOf(unaryOf("tanh")), lower: unary("quantized_tanh") },
  { name: "max-pool2d", ops: { max_pool: 1 }, pattern: quantizeOf(unaryOf("max_pool")), lower: unary("quantized_max_pool2d", (f, rw) => pool2d(f, rw, true)) },
  {
    name: "avg-pool2d", ops: { average_pool: 1 }, pattern: quantizeOf(unaryOf("average_pool")),
    lower: unary("quantized_avg_pool2d", (f, rw) => ({ ...pool2d(f, rw, false), count_include_pad: attrNumber(f, "count_include_pad", 0) !== 0 })),
  },
  {
    name: "adaptive-avg-pool2d", ops: { adaptive_avg_pool2d: 1 }, pattern: quantizeOf(unaryOf("adaptive_avg_pool2d")),
    lower: unary("quantized_adaptive_avg_pool2d", (f) => ({ output_size: ints(f, "output_size", []) })),
  },
  {
    name: "global-avg-pool", ops: { global_average_pool: 1 }, pattern: quantizeOf(unaryOf("global_average_pool")),
    lower: unary("quantized_adaptive_avg_pool2d", (f, rw) => {
      const rank = rw.graph.values[f.value]?.shape.length;
      if (rank !== 4) skip(`global_average_pool over ${rank === undefined ? "?" : rank - 2} spatial dims: only 2-D lowers`);
      return { output_size: [1, 1] };
    }),
  },
  {
    // Data movement commutes with (de)quantization: with equal input and output qparams the shape
    // op runs on the integers directly (quantize(dequantize(q)) == q for the same qparams).
    name: "shape-passthrough", ops: { flatten: 1, reshape: 1 },
    pattern: quantizeOf(floatOp(P.union("flatten", "reshape"), P.union([dqAct], [dqAct, P._]))),
    lower: (m, rw) => {
      const f = node(m.inputs[0]);
      const dq = node(f.inputs[0]);
      const out = quantizedOutput(rw, m);
      const x = dequantized(rw, dq);
      sameDTypes(out.dtype, [x]);
      if (!sameQParam(dq.inputs[1], m.inputs[1]) || !sameQParam(dq.inputs[2], m.inputs[2])) skip("the output qparams differ from the input's");
      return { op: f.op, chain: [f], attrs: { ...f.attrs }, inputs: [x.q, ...f.node.inputs.slice(1)] };
    },
  },
];

/** Every float op some row lowers -> the fewest leading inputs any row needs dequantized. */
export const LOWERABLE_OPS: ReadonlyMap<string, number> = ROWS.reduce((m, r) => {
  for (const [op, k] of Object.entries(r.ops)) m.set(op, Math.min(k, m.get(op) ?? Infinity));
  return m;
}, new Map<string, number>());

function materialize(rw: Rewriter, v: LoweredInput): string {
  return typeof v === "string" ? v : rw.addConstant(v.base, v.tensor, "parameter");
}

/** A row as a rewrite rule: plan (or skip with a reason), then emit the integer node and reroute the root's readers. */
function toRule(row: Row, ctx: LoweringContext): RewriteRule {
  return rule({
    name: row.name,
    pattern: row.pattern,
    rewrite: (m, rw) => {
      let plan: Lowering;
      try {
        plan = row.lower(m, rw, ctx);
      } catch (e) {
        if (!(e instanceof Skip)) throw e;
        for (const f of floatChain(m)) ctx.skipped.set(f.name, `${row.name}: ${e.reason}`);
        return false;
      }
      const inputs = plan.inputs.map((v) => materialize(rw, v));
      const main = plan.chain[0]!;
      const [y] = rw.addNode(plan.op, inputs, plan.attrs, { name: main.name, meta: loweredMeta(plan.chain, m) });
      rw.replaceUses(m.value, y!);
    },
  });
}

/** The lowering table as rewrite rules for one engine; skip reasons go to `ctx.skipped`. */
export function loweringRules(ctx: LoweringContext): RewriteRule[] {
  return ROWS.map((r) => toRule(r, ctx));
}
