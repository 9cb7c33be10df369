/**
 * The real-number value behind a node's output, for comparing a quantized program with its float
 * original. Float outputs are read as they are; an integer output of a quantized op is dequantized
 * with the output qparams that op declares (PyTorch's numeric debugger compares `dequantize(q)` of
 * quantized nodes against the float reference in the same way).
 *
 * Where the output qparams come from is read off the op schema, not a per-op list:
 * - ops of the "quantize" family (quantize_per_tensor, quantize_per_channel, ONNX quantize_linear)
 *   quantize their first input with the scale and zero point at inputs 1 and 2 (per axis along the
 *   `axis` attribute when the scale has more than one element); ONNX dynamic_quantize_linear, which
 *   has no qparam inputs, returns them as outputs 1 and 2;
 * - the quantized compute ops (quantized_linear, quantized_add, qlinear_conv, ...) name their output
 *   qparams ports `y_scale` / `y_zero_point`; when those optional ports are omitted the output keeps
 *   the input's qparams (`x_scale` / `x_zero_point`) except for the fixed-qparams activations;
 * - data-movement ops (family "other": flatten, reshape, transpose, ...) that keep their first
 *   input's integer dtype move quantized values around unchanged, so they keep its qparams (a
 *   lowered program runs them on the integers directly).
 */
import {
  dtypeInfo, getElement, getOp, hasOp, numel, resolveAttrs, toFloat64, type DType, type Graph, type Node, type Tensor,
} from "@qforge/ir";

/** What the debugger compares: float64 values, with how they were obtained. */
export interface FloatView {
  readonly shape: readonly number[];
  readonly values: Float64Array;
  /** True when the node's output was integer and has been dequantized with its output qparams. */
  readonly dequantized: boolean;
}

interface OutputQParams {
  readonly scale: Tensor;
  readonly zeroPoint: Tensor | undefined;
  /** Axis of a per-channel scale (undefined = per tensor). */
  readonly axis: number | undefined;
}

/**
 * PyTorch's fixed output qparams of bounded activations (the qsigmoid / qhardsigmoid / qtanh kernels,
 * see @qforge/runtime quantized/torch-float.ts): [0, 1] onto the whole range with scale 2^-bits,
 * [-1, 1] with scale 2^(1-bits) and the middle zero point. Used only when a node omits y_scale.
 */
const FIXED_OUTPUT_RANGE: Readonly<Record<string, "0to1" | "-1to1">> = {
  quantized_sigmoid: "0to1",
  quantized_hardsigmoid: "0to1",
  quantized_tanh: "-1to1",
};

function fixedQParams(dtype: DType, range: "0to1" | "-1to1"): { scale: number; zeroPoint: number } {
  const info = dtypeInfo(dtype);
  const levels = 2 ** info.bits;
  return range === "0to1" ? { scale: 1 / levels, zeroPoint: info.min } : { scale: 2 / levels, zeroPoint: info.min + levels / 2 };
}

function isIntegerDType(d: DType): boolean {
  const k = dtypeInfo(d).kind;
  return k === "int" || k === "uint";
}

function portIndex(op: string, name: string): number {
  return getOp(op).inputs.findIndex((p) => p.name === name);
}

/** Where the run's values come from. */
interface RunView {
  readonly values: ReadonlyMap<string, Tensor>;
  readonly producer: ReadonlyMap<string, Node>;
}

const PRODUCERS = new WeakMap<Graph, Map<string, Node>>();

/** Value -> producing node, built once per graph. */
function producersOf(g: Graph): Map<string, Node> {
  let m = PRODUCERS.get(g);
  if (m === undefined) {
    m = new Map();
    for (const n of g.nodes) for (const o of n.outputs) if (o !== "") m.set(o, n);
    PRODUCERS.set(g, m);
  }
  return m;
}

/** Reads the output qparams of `node` from the run; undefined when the op declares none. */
function outputQParams(node: Node, run: RunView, q: Tensor, depth = 0): OutputQParams | undefined {
  if (!hasOp(node.op)) return undefined;
  const schema = getOp(node.op);
  const values = run.values;
  const value = (name: string | undefined): Tensor | undefined => (name === undefined || name === "" ? undefined : values.get(name));
  if (schema.family === "quantize") {
    const given = value(node.inputs[1]);
    if (given !== undefined) {
      const axisAttr = resolveAttrs(schema, node.attrs, node.name)["axis"];
      const perAxis = numel(given.shape) > 1;
      const axis = perAxis && typeof axisAttr === "number" ? (axisAttr < 0 ? axisAttr + q.shape.length : axisAttr) : undefined;
      return { scale: given, zeroPoint: value(node.inputs[2]), axis };
    }
    const ownScale = value(node.outputs[1]);
    if (ownScale !== undefined) return { scale: ownScale, zeroPoint: value(node.outputs[2]), axis: undefined };
    return undefined;
  }
  if (schema.family === "other") {
    const src = node.inputs[0];
    const p = src === undefined || src === "" ? undefined : run.producer.get(src);
    const t = src === undefined ? undefined : values.get(src);
    if (p === undefined || t === undefined || t.dtype !== q.dtype || depth > 64) return undefined;
    return outputQParams(p, run, t, depth + 1);
  }
  const ys = portIndex(node.op, "y_scale");
  if (ys < 0) return undefined;
  const yScale = value(node.inputs[ys]);
  if (yScale !== undefined) return { scale: yScale, zeroPoint: value(node.inputs[portIndex(node.op, "y_zero_point")]), axis: undefined };
  const fixed = FIXED_OUTPUT_RANGE[node.op];
  if (fixed !== undefined) {
    const p = fixedQParams(q.dtype, fixed);
    return { scale: { dtype: "float64", shape: [], data: Float64Array.of(p.scale) }, zeroPoint: { dtype: "int32", shape: [], data: Int32Array.of(p.zeroPoint) }, axis: undefined };
  }
  const xs = portIndex(node.op, "x_scale");
  const xScale = xs < 0 ? undefined : value(node.inputs[xs]);
  if (xScale === undefined) return undefined;
  return { scale: xScale, zeroPoint: value(node.inputs[portIndex(node.op, "x_zero_point")]), axis: undefined };
}

/**
 * Dequantizes q: per tensor as ATen's `f32(f32(q - zp) * f32(scale))`, per channel as
 * `(q - zp) * scale` in double rounded once (dequantize_per_channel), like @qforge/quant.
 */
function dequantize(q: Tensor, p: OutputQParams): Float64Array {
  const n = numel(q.shape);
  const out = new Float64Array(n);
  const scaleN = numel(p.scale.shape);
  const zpAt = (i: number): number => (p.zeroPoint === undefined ? 0 : getElement(p.zeroPoint, numel(p.zeroPoint.shape) === 1 ? 0 : i));
  if (p.axis === undefined || scaleN === 1) {
    const s = Math.fround(getElement(p.scale, 0));
    const zp = zpAt(0);
    for (let i = 0; i < n; i++) out[i] = Math.fround(Math.fround(getElement(q, i) - zp) * s);
    return out;
  }
  let inner = 1;
  for (let d = p.axis + 1; d < q.shape.length; d++) inner *= q.shape[d]!;
  const channels = q.shape[p.axis] ?? 1;
  for (let i = 0; i < n; i++) {
    const c = Math.floor(i / inner) % channels;
    out[i] = Math.fround((getElement(q, i) - zpAt(c)) * getElement(p.scale, c));
  }
  return out;
}

/**
 * The float view of output `index` of `node` (a node of `g`) in a run of `g`, or a reason why there is none (an integer
 * output the float program computes in float but whose op declares no output qparams).
 */
export function floatViewOf(g: Graph, node: Node, index: number, values: ReadonlyMap<string, Tensor>, floatReference: boolean): FloatView | string {
  const name = node.outputs[index];
  const t = name === undefined || name === "" ? undefined : values.get(name);
  if (t === undefined) return `output '${name ?? ""}' was not kept by the run (run the graph with keepAll)`;
  if (!isIntegerDType(t.dtype) || !floatReference) return { shape: t.shape, values: toFloat64(t), dequantized: false };
  const p = outputQParams(node, { values, producer: producersOf(g) }, t);
  if (p === undefined) return `'${node.op}' outputs ${t.dtype} without output qparams to dequantize it with`;
  return { shape: t.shape, values: dequantize(t, p), dequantized: true };
}

