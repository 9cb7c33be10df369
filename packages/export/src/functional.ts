/**
 * Functional ops (torch.nn.functional and the torch.* tensor ops), each lowered to one canonical
 * qforge op (ONNX semantics, snake_case names) through `emit`, so the same call computes eagerly
 * and records a node while tracing. Argument names and defaults follow torch.
 */
import { fromArray, full, numel, QforgeError, type Tensor } from "@qforge/ir";
import { dimsOf, dtypeOf, emit1, rankOf, shapeOf, type Operand, type TensorLike } from "./dispatch.js";
import { defaultGenerator } from "./random.js";
import { isState } from "./state.js";
import { activeTracer } from "./trace.js";
import { Var } from "./var.js";

// ---- helpers ---------------------------------------------------------------------------------

/** Normalizes a possibly negative dim (torch's maybe_wrap_dim); rank 0 accepts -1 and 0. */
export function normDim(dim: number, rank: number, op: string): number {
  const r = Math.max(rank, 1);
  if (!Number.isInteger(dim) || dim < -r || dim >= r) {
    throw new QforgeError("BAD_SHAPE", `${op}: dimension ${dim} out of range for rank ${rank} (expected [${-r}, ${r - 1}])`);
  }
  return dim < 0 ? dim + r : dim;
}

function int64(values: readonly number[]): Tensor {
  return fromArray("int64", [values.length], values.map((v) => BigInt(v)));
}

export type Pair = number | readonly [number, number];

function pair(v: Pair, what: string): [number, number] {
  const p: [number, number] = typeof v === "number" ? [v, v] : [v[0], v[1]];
  if (!p.every((x) => Number.isInteger(x))) throw new QforgeError("BAD_CONFIG", `${what} must be integers, got ${JSON.stringify(v)}`);
  return p;
}

function requireRank(x: TensorLike, rank: number, op: string): void {
  const r = rankOf(x);
  if (r !== rank) throw new QforgeError("BAD_SHAPE", `${op} expects a ${rank}-D input, got [${dimsOf(x).join(",")}]`);
}

function bothNumbers(a: Operand, b: Operand, op: string): void {
  if (typeof a === "number" && typeof b === "number") {
    throw new QforgeError("BAD_INPUT", `${op}: at least one operand must be a tensor`, { hint: "compute number-only arithmetic in plain TypeScript" });
  }
}

// ---- elementwise -----------------------------------------------------------------------------

/** torch.add (alpha = 1): ONNX Add, broadcasting. */
export function add(a: Operand, b: Operand): Var { bothNumbers(a, b, "add"); return emit1("add", [a, b]); }
/** torch.sub (alpha = 1): ONNX Sub. */
export function sub(a: Operand, b: Operand): Var { bothNumbers(a, b, "sub"); return emit1("sub", [a, b]); }
/** torch.mul: ONNX Mul. */
export function mul(a: Operand, b: Operand): Var { bothNumbers(a, b, "mul"); return emit1("mul", [a, b]); }
/** torch.div (true division for float operands): ONNX Div. */
export function div(a: Operand, b: Operand): Var { bothNumbers(a, b, "div"); return emit1("div", [a, b]); }
/** torch.pow: ONNX Pow. */
export function pow(a: Operand, b: Operand): Var { bothNumbers(a, b, "pow"); return emit1("pow", [a, b]); }
/** torch.maximum: ONNX Max of two tensors. */
export function maximum(a: Operand, b: Operand): Var { bothNumbers(a, b, "maximum"); return emit1("max", [a, b]); }
/** torch.minimum: ONNX Min of two tensors. */
export function minimum(a: Operand, b: Operand): Var { bothNumbers(a, b, "minimum"); return emit1("min", [a, b]); }
/** torch.eq: bool result. */
export function eq(a: Operand, b: Operand): Var { bothNumbers(a, b, "eq"); return emit1("equal", [a, b]); }
/** torch.gt: bool result. */
export function gt(a: Operand, b: Operand): Var { bothNumbers(a, b, "gt"); return emit1("greater", [a, b]); }
/** torch.lt: bool result. */
export function lt(a: Operand, b: Operand): Var { bothNumbers(a, b, "lt"); return emit1("less", [a, b]); }

/** torch.where(condition, input, other): the traceable replacement for a data-dependent branch. */
export function where(condition: TensorLike, a: Operand, b: Operand): Var {
  if (dtypeOf(condition) !== "bool") throw new QforgeError("BAD_DTYPE", `where: condition must be bool, got ${dtypeOf(condition)}`);
  bothNumbers(a, b, "where");
  const dtype = typeof a === "number" ? dtypeOf(b as TensorLike) : dtypeOf(a);
  return emit1("where", [condition, a, b], {}, { scalarDType: dtype });
}

export function neg(x: TensorLike): Var { return emit1("neg", [x]); }
export function exp(x: TensorLike): Var { return emit1("exp", [x]); }
export function log(x: TensorLike): Var { return emit1("log", [x]); }
export function sqrt(x: TensorLike): Var { return emit1("sqrt", [x]); }
export function abs(x: TensorLike): Var { return emit1("abs", [x]); }

export function relu(x: TensorLike): Var { return emit1("relu", [x]); }
export function sigmoid(x: TensorLike): Var { return emit1("sigmoid", [x]); }
export function tanh(x: TensorLike): Var { return emit1("tanh", [x]); }

/** torch.clamp: ONNX Clip with optional scalar min/max inputs. */
export function clamp(x: TensorLike, min?: number, max?: number): Var {
  if (min === undefined && max === undefined) {
    throw new QforgeError("BAD_INPUT", "clamp: at least one of min and max must be given");
  }
  return emit1("clip", [x, min, max]);
}

/** torch.nn.functional.relu6 = clamp(x, 0, 6), as torch itself lowers it (hardtanh(0, 6)). */
export function relu6(x: TensorLike): Var { return clamp(x, 0, 6); }

/** torch.nn.functional.hardswish: x * relu6(x + 3) / 6 (ONNX HardSwish). */
export function hardswish(x: TensorLike): Var { return emit1("hardswish", [x]); }

/** torch.nn.functional.hardsigmoid: relu6(x + 3) / 6, i.e. ONNX HardSigmoid with alpha 1/6, beta 1/2. */
export function hardsigmoid(x: TensorLike): Var { return emit1("hard_sigmoid", [x], { alpha: 1 / 6, beta: 0.5 }); }

/** torch.nn.functional.gelu: exact (erf) or approximate="tanh". */
export function gelu(x: TensorLike, approximate: "none" | "tanh" = "none"): Var {
  if (approximate !== "none" && approximate !== "tanh") {
    throw new QforgeError("BAD_CONFIG", `gelu: approximate must be 'none' or 'tanh', got '${String(approximate)}'`);
  }
  return emit1("gelu", [x], { approximate });
}

/** torch.softmax(x, dim): ONNX Softmax-13 over one axis. */
export function softmax(x: TensorLike, dim: number): Var {
  return emit1("softmax", [x], { axis: normDim(dim, rankOf(x), "softmax") });
}

// ---- linear algebra ----------------------------------------------------------------------------

/** torch.matmul: numpy matmul semantics (ONNX MatMul). */
export function matmul(a: TensorLike, b: TensorLike): Var { return emit1("matmul", [a, b]); }

/** torch.nn.functional.linear: x @ weight^T + bias. */
export function linear(x: TensorLike, weight: TensorLike, bias?: TensorLike): Var {
  return emit1("linear", [x, weight, bias]);
}

export interface Conv2dOptions {
  stride?: Pair;
  /** Zero padding per side, or torch's "same" (stride 1 only) / "valid". */
  padding?: Pair | "same" | "valid";
  dilation?: Pair;
  groups?: number;
}

/** ONNX pads [top, left, bottom, right] for torch's symmetric padding or "same"/"valid". */
function convPads(padding: Pair | "same" | "valid", kernel: readonly number[], dilation: [number, number], stride: [number, number]): number[] {
  if (padding === "valid") return [0, 0, 0, 0];
  if (padding === "same") {
    if (stride[0] !== 1 || stride[1] !== 1) {
      throw new QforgeError("BAD_CONFIG", "padding='same' is not supported for strided convolutions", { hint: "use stride 1 or explicit padding" });
    }
    // aten _convolution_mode: total = d * (k - 1); left = total / 2 (floor), right = total - left.
    const total = [0, 1].map((i) => dilation[i]! * (kernel[i]! - 1));
    const left = total.map((t) => Math.floor(t / 2));
    return [left[0]!, left[1]!, total[0]! - left[0]!, total[1]! - left[1]!];
  }
  const [ph, pw] = pair(padding, "conv2d padding");
  if (ph < 0 || pw < 0) throw new QforgeError("BAD_CONFIG", `conv2d: negative padding ${JSON.stringify(padding)}`);
  return [ph, pw, ph, pw];
}

/** torch.nn.functional.conv2d: ONNX Conv on NCHW with weight [out, in/groups, kh, kw]. */
export function conv2d(x: TensorLike, weight: TensorLike, bias?: TensorLike, opts: Conv2dOptions = {}): Var {
  requireRank(x, 4, "conv2d");
  requireRank(weight, 4, "conv2d weight");
  const stride = pair(opts.stride ?? 1, "conv2d stride");
  const dilation = pair(opts.dilation ?? 1, "conv2d dilation");
  const groups = opts.groups ?? 1;
  const kernel = shapeOf(weight).slice(2);
  const pads = convPads(opts.padding ?? 0, kernel, dilation, stride);
  return emit1("conv", [x, weight, bias], { strides: stride, pads, dilations: dilation, group: groups });
}

export interface ConvTranspose2dOptions {
  stride?: Pair;
  padding?: Pair;
  outputPadding?: Pair;
  dilation?: Pair;
  groups?: number;
}

/** torch.nn.functional.conv_transpose2d: ONNX ConvTranspose with weight [in, out/groups, kh, kw]. */
export function convTranspose2d(x: TensorLike, weight: TensorLike, bias?: TensorLike, opts: ConvTranspose2dOptions = {}): Var {
  requireRank(x, 4, "conv_transpose2d");
  requireRank(weight, 4, "conv_transpose2d weight");
  const stride = pair(opts.stride ?? 1, "conv_transpose2d stride");
  const dilation = pair(opts.dilation ?? 1, "conv_transpose2d dilation");
  const [ph, pw] = pair(opts.padding ?? 0, "conv_transpose2d padding");
  const outPad = pair(opts.outputPadding ?? 0, "conv_transpose2d output_padding");
  // torch: "output padding must be smaller than either stride or dilation".
  for (let i = 0; i < 2; i++) {
    if (outPad[i]! >= stride[i]! && outPad[i]! >= dilation[i]!) {
      throw new QforgeError("BAD_CONFIG", `conv_transpose2d: output_padding ${outPad[i]} must be smaller than stride ${stride[i]} or dilation ${dilation[i]}`);
    }
  }
  return emit1("conv_transpose", [x, weight, bias], {
    strides: stride, pads: [ph, pw, ph, pw], dilations: dilation, group: opts.groups ?? 1, output_padding: outPad,
  });
}

// ---- normalization -----------------------------------------------------------------------------

export interface BatchNormOptions {
  /** Use batch statistics and update the running ones (eager only). */
  training?: boolean;
  /** Running-stat update factor: new = (1 - momentum) * old + momentum * batch (torch's convention). */
  momentum?: number;
  eps?: number;
}

/**
 * torch.nn.functional.batch_norm over channel dim 1. Inference is ONNX BatchNormalization with the
 * running statistics. Training (eager only) normalizes with the batch mean and biased variance
 * (the same batch_norm op fed batch statistics) and, when the running stats are Buffers, updates
 * them with the unbiased variance, as torch does.
 */
export function batchNorm(
  x: TensorLike, runningMean: TensorLike, runningVar: TensorLike, weight?: TensorLike, bias?: TensorLike, opts: BatchNormOptions = {},
): Var {
  const eps = opts.eps ?? 1e-5;
  const rank = rankOf(x);
  if (rank < 2) throw new QforgeError("BAD_SHAPE", `batch_norm expects an input with a channel dim, got [${dimsOf(x).join(",")}]`);
  const c = shapeOf(runningMean)[0] ?? 0;
  const dtype = dtypeOf(x);
  const scale = weight ?? full(dtype, [c], 1);
  const shift = bias ?? full(dtype, [c], 0);
  if (!opts.training) return emit1("batch_norm", [x, scale, shift, runningMean, runningVar], { epsilon: eps });
  if (activeTracer() !== undefined) {
    throw new QforgeError("UNSUPPORTED", "batch norm in training mode is not supported for export", {
      hint: "call model.eval() before exportModel (batch norm then uses its running statistics)",
    });
  }
  const axes = [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)];
  const shape = shapeOf(x);
  const n = numel(shape) / (shape[1] ?? 1);
  const mean = reduce("reduce_mean", x, axes, false);
  const centered = sub(x, reshape(mean, [1, c, ...new Array<number>(rank - 2).fill(1)]));
  const varBiased = reduce("reduce_mean", mul(centered, centered), axes, false);
  const y = emit1("batch_norm", [x, scale, shift, mean, varBiased], { epsilon: eps });
  const m = opts.momentum ?? 0.1;
  if (isState(runningMean)) runningMean.assign(add(mul(runningMean, 1 - m), mul(mean, m)).toTensor());
  if (isState(runningVar)) {
    const unbiased = n > 1 ? mul(varBiased, n / (n - 1)) : varBiased;
    runningVar.assign(add(mul(runningVar, 1 - m), mul(unbiased, m)).toTensor());
  }
  return y;
}

/** torch.nn.functional.layer_norm over the trailing `normalizedShape` dims (ONNX LayerNormalization). */
export function layerNorm(x: TensorLike, normalizedShape: number | readonly number[], weight?: TensorLike, bias?: TensorLike, eps = 1e-5): Var {
  const ns = typeof normalizedShape === "number" ? [normalizedShape] : [...normalizedShape];
  const dims = dimsOf(x);
  const tail = dims.slice(dims.length - ns.length);
  if (ns.length === 0 || ns.length > dims.length || tail.some((d, i) => d !== ns[i])) {
    throw new QforgeError("BAD_SHAPE", `layer_norm: normalized_shape [${ns.join(",")}] does not match the trailing dims of [${dims.join(",")}]`);
  }
  const scale = weight ?? full(dtypeOf(x), ns, 1);
  return emit1("layer_normalization", [x, scale, bias], { axis: -ns.length, epsilon: eps });
}

/** torch.nn.functional.embedding: rows of `weight` picked by integer ids (ONNX Gather, axis 0). */
export function embedding(ids: TensorLike, weight: TensorLike): Var {
  const dt = dtypeOf(ids);
  if (dt !== "int64" && dt !== "int32") throw new QforgeError("BAD_DTYPE", `embedding: ids must be int64 or int32, got ${dt}`);
  return emit1("gather", [weight, ids], { axis: 0 });
}

/**
 * torch.nn.functional.dropout. In inference it is the identity, recorded as ONNX Dropout (ratio p,
 * not training) so quantizers and dumps still see it. Training mode (eager only) zeroes each
 * element with probability p and scales the rest by 1 / (1 - p), drawing from the default generator.
 */
export function dropout(x: TensorLike, p = 0.5, training = false): Var {
  if (!(p >= 0 && p <= 1)) throw new QforgeError("BAD_CONFIG", `dropout probability has to be between 0 and 1, got ${p}`);
  if (!training) return emit1("dropout", [x, full(dtypeOf(x), [], p)]);
  if (activeTracer() !== undefined) {
    throw new QforgeError("UNSUPPORTED", "dropout in training mode is not supported for export", { hint: "call model.eval() before exportModel" });
  }
  const shape = shapeOf(x);
  const gen = defaultGenerator();
  const keep = p === 1 ? 0 : 1 / (1 - p);
  const mask = fromArray(dtypeOf(x), shape, Array.from({ length: numel(shape) }, () => (gen.random() < p ? 0 : keep)));
  return mul(x, mask);
}

/** torch.nn.Identity's forward, recorded as an identity node (removeIdentityPass drops it). */
export function identity(x: TensorLike): Var { return emit1("identity", [x]); }

// ---- pooling -----------------------------------------------------------------------------------

export interface MaxPool2dOptions {
  /** Defaults to the kernel size. */
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  ceilMode?: boolean;
}

/** torch.nn.functional.max_pool2d (padding is -inf, as ONNX MaxPool). */
export function maxPool2d(x: TensorLike, kernelSize: Pair, opts: MaxPool2dOptions = {}): Var {
  requireRank(x, 4, "max_pool2d");
  const k = pair(kernelSize, "max_pool2d kernel_size");
  const s = pair(opts.stride ?? k, "max_pool2d stride");
  const p = pair(opts.padding ?? 0, "max_pool2d padding");
  const d = pair(opts.dilation ?? 1, "max_pool2d dilation");
  for (let i = 0; i < 2; i++) {
    // aten pool2d_shape_check: pad <= effective kernel / 2.
    const eff = (k[i]! - 1) * d[i]! + 1;
    if (p[i]! < 0 || p[i]! > Math.floor(eff / 2)) {
      throw new QforgeError("BAD_CONFIG", `max_pool2d: pad should be at most half of effective kernel size, got pad=${p[i]}, kernel_size=${k[i]}, dilation=${d[i]}`);
    }
  }
  return emit1("max_pool", [x], { kernel_shape: k, strides: s, pads: [p[0], p[1], p[0], p[1]], dilations: d, ceil_mode: opts.ceilMode ? 1 : 0 });
}

export interface AvgPool2dOptions {
  stride?: Pair;
  padding?: Pair;
  ceilMode?: boolean;
  /** torch's default is true (ONNX's is false). */
  countIncludePad?: boolean;
}

/** torch.nn.functional.avg_pool2d (ONNX AveragePool). */
export function avgPool2d(x: TensorLike, kernelSize: Pair, opts: AvgPool2dOptions = {}): Var {
  requireRank(x, 4, "avg_pool2d");
  const k = pair(kernelSize, "avg_pool2d kernel_size");
  const s = pair(opts.stride ?? k, "avg_pool2d stride");
  const p = pair(opts.padding ?? 0, "avg_pool2d padding");
  for (let i = 0; i < 2; i++) {
    if (p[i]! < 0 || p[i]! > Math.floor(k[i]! / 2)) {
      throw new QforgeError("BAD_CONFIG", `avg_pool2d: pad should be at most half of kernel size, got pad=${p[i]}, kernel_size=${k[i]}`);
    }
  }
  return emit1("average_pool", [x], {
    kernel_shape: k, strides: s, pads: [p[0], p[1], p[0], p[1]],
    ceil_mode: opts.ceilMode ? 1 : 0, count_include_pad: (opts.countIncludePad ?? true) ? 1 : 0,
  });
}

/** torch.nn.functional.adaptive_avg_pool2d; a null size keeps the input's. */
export function adaptiveAvgPool2d(x: TensorLike, outputSize: number | readonly [number | null, number | null]): Var {
  requireRank(x, 4, "adaptive_avg_pool2d");
  const req = typeof outputSize === "number" ? [outputSize, outputSize] : [...outputSize];
  const size = req.map((s, i) => (s === null ? shapeOf(x)[2 + i]! : s));
  if (!size.every((s) => Number.isInteger(s) && s > 0)) {
    throw new QforgeError("BAD_CONFIG", `adaptive_avg_pool2d: output_size must be positive integers, got ${JSON.stringify(outputSize)}`);
  }
  return emit1("adaptive_avg_pool2d", [x], { output_size: size });
}

// ---- shape ops ---------------------------------------------------------------------------------

/** torch.reshape / Tensor.view: one -1 infers a dimension. */
export function reshape(x: TensorLike, shape: readonly number[]): Var {
  if (!shape.every((d) => Number.isInteger(d) && d >= -1)) throw new QforgeError("BAD_SHAPE", `reshape: invalid shape [${shape.join(",")}]`);
  if (shape.filter((d) => d === -1).length > 1) throw new QforgeError("BAD_SHAPE", `reshape: only one dimension can be inferred, got [${shape.join(",")}]`);
  // torch's 0 is an empty dimension; ONNX's is "copy the input dim" unless allowzero is set.
  return emit1("reshape", [x, int64(shape)], shape.includes(0) ? { allowzero: 1 } : {});
}

/** torch.flatten(x, start_dim, end_dim). */
export function flatten(x: TensorLike, startDim = 0, endDim = -1): Var {
  const rank = rankOf(x);
  if (rank === 0) return reshape(x, [1]);
  const s = normDim(startDim, rank, "flatten");
  const e = normDim(endDim, rank, "flatten");
  if (s > e) throw new QforgeError("BAD_SHAPE", `flatten: start_dim ${startDim} comes after end_dim ${endDim}`);
  // ONNX Flatten(axis=1) is exactly torch.flatten(x, 1) and keeps a dynamic batch dim.
  if (s === 1 && e === rank - 1) return emit1("flatten", [x], { axis: 1 });
  if (s === e) return x instanceof Var ? x : reshape(x, shapeOf(x));
  const shape = shapeOf(x);
  return reshape(x, [...shape.slice(0, s), -1, ...shape.slice(e + 1)]);
}

/** torch.permute: ONNX Transpose. */
export function permute(x: TensorLike, dims: readonly number[]): Var {
  const rank = rankOf(x);
  const perm = dims.map((d) => normDim(d, rank, "permute"));
  if (perm.length !== rank || new Set(perm).size !== rank) {
    throw new QforgeError("BAD_SHAPE", `permute: [${dims.join(",")}] is not a permutation of ${rank} dims`);
  }
  return emit1("transpose", [x], { perm });
}

/** torch.transpose: swaps two dims. */
export function transpose(x: TensorLike, dim0: number, dim1: number): Var {
  const rank = rankOf(x);
  const perm = Array.from({ length: rank }, (_, i) => i);
  const a = normDim(dim0, rank, "transpose");
  const b = normDim(dim1, rank, "transpose");
  perm[a] = b;
  perm[b] = a;
  return emit1("transpose", [x], { perm });
}

function reduce(op: "reduce_mean" | "reduce_sum", x: TensorLike, dim: number | readonly number[] | undefined, keepdim: boolean): Var {
  const rank = rankOf(x);
  const dims = dim === undefined ? Array.from({ length: rank }, (_, i) => i) : typeof dim === "number" ? [dim] : [...dim];
  const axes = dims.map((d) => normDim(d, rank, op));
  if (new Set(axes).size !== axes.length) throw new QforgeError("BAD_SHAPE", `${op}: dim [${dims.join(",")}] repeats a dimension`);
  return emit1(op, [x, int64(axes)], { keepdims: keepdim ? 1 : 0 });
}

/** torch.mean(x, dim, keepdim): all dims when dim is omitted (ONNX ReduceMean-18). */
export function mean(x: TensorLike, dim?: number | readonly number[], keepdim = false): Var { return reduce("reduce_mean", x, dim, keepdim); }
/** torch.sum(x, dim, keepdim) (ONNX ReduceSum). */
export function sum(x: TensorLike, dim?: number | readonly number[], keepdim = false): Var { return reduce("reduce_sum", x, dim, keepdim); }

/** torch.cat: ONNX Concat. */
export function cat(xs: readonly TensorLike[], dim = 0): Var {
  const first = xs[0];
  if (first === undefined) throw new QforgeError("BAD_INPUT", "cat expects a non-empty list of tensors");
  return emit1("concat", xs, { axis: normDim(dim, rankOf(first), "cat") });
}
