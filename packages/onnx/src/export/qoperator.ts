import {
  dtypeInfo, fromArray, getElement, numel, toNumbers, valueSources, valueUsers,
  type DType, type Graph, type Node, type Tensor,
} from "@qforge/ir";
import { attr, schemaAttrs } from "./attrs.js";
import type { ExportContext } from "./context.js";
import { transpose2d } from "./ops-float.js";

/**
 * The QOperator form: `dequantize -> conv / linear / matmul (-> relu) -> quantize` patterns of a QDQ
 * graph (convertPt2e's output, or a lowered program after unlowerQuantizedOps) become ONNX's
 * integer operators, the way onnxruntime's quantization tool writes QOperator models:
 *
 *   conv                 -> QLinearConv (bias quantized to int32 with scale x_scale * w_scale)
 *   matmul, linear w/o b -> QLinearMatMul (linear's weight transposed at export)
 *   linear with bias     -> MatMulInteger + Add(int32 bias) + Cast + Mul(x_scale * w_scale) + QuantizeLinear
 *                           (QLinearMatMul has no bias input; this keeps one int32 accumulation and one rounding)
 *   a fused relu         -> Clip of the integers at the output zero point (nothing when that is the dtype's minimum)
 *
 * What a pattern needs: int8/uint8 activations with constant per-tensor qparams, a constant integer
 * weight quantized per tensor or per output channel (per column for matmul), the output quantized
 * per tensor over the dtype's full range to the activation's dtype, and no other reader of the
 * float values inside the pattern. The dequantize/quantize may be PT2E's ops or ONNX's own
 * (an imported QDQ model). Everything else stays QDQ.
 */

/** A dequantize with constant qparams: where its integers come from and how they map to floats. */
interface Dequant {
  readonly q: string;
  readonly dtype: DType;
  readonly scale: Tensor;
  readonly zeroPoint: Tensor | undefined;
  /** The quantized axis for per-axis qparams; undefined when per tensor. */
  readonly axis: number | undefined;
}

export interface QOperatorFusion {
  readonly kind: "conv" | "matmul" | "linear";
  /** The float op the pattern is named after. */
  readonly anchor: Node;
  /** The relu and quantize nodes the fused op absorbs (not exported on their own). */
  readonly absorbed: readonly Node[];
  readonly x: Dequant;
  readonly w: Dequant & { readonly values: Tensor };
  /** Float bias values (conv / linear), when there is one. */
  readonly bias: Float64Array | undefined;
  readonly y: { readonly value: string; readonly scale: Tensor; readonly zeroPoint: Tensor; readonly dtype: DType };
  readonly relu: boolean;
}

const ACT_DTYPES: ReadonlySet<DType> = new Set<DType>(["int8", "uint8"]);

function dequantOf(g: Graph, src: Node | undefined): Dequant | undefined {
  if (src === undefined) return undefined;
  const scale = g.constants[src.inputs[1] ?? ""]?.tensor;
  const zp = src.inputs[2] ? g.constants[src.inputs[2]]?.tensor : undefined;
  if (scale === undefined || (src.inputs[2] && zp === undefined)) return undefined;
  const q = src.inputs[0]!;
  const dtype = g.values[q]?.dtype;
  if (dtype === undefined) return undefined;
  const rank = g.values[q]!.shape.length;
  const axisOf = (a: number): number => (a < 0 ? a + rank : a);
  switch (src.op) {
    case "dequantize_per_tensor":
      return { q, dtype, scale, zeroPoint: zp, axis: undefined };
    case "dequantize_per_channel":
      return { q, dtype, scale, zeroPoint: zp, axis: axisOf(src.attrs.axis as number) };
    case "dequantize_linear": {
      if (((src.attrs.block_size as number | undefined) ?? 0) !== 0 || src.attrs.output_dtype !== undefined) return undefined;
      const perTensor = numel(scale.shape) === 1;
      return { q, dtype, scale, zeroPoint: zp, axis: perTensor ? undefined : axisOf((src.attrs.axis as number | undefined) ?? 1) };
    }
    default:
      return undefined;
  }
}

const perTensor = (d: Dequant): boolean => d.axis === undefined && numel(d.scale.shape) === 1;

/**
 * A per-tensor quantize with constant qparams that saturates at its dtype's range: PT2E's
 * quantize_per_tensor over the full range, or ONNX's quantize_linear (not blocked).
 */
function quantizeOf(g: Graph, n: Node | undefined): { scale: Tensor; zeroPoint: Tensor; dtype: DType } | undefined {
  if (n === undefined) return undefined;
  const scale = g.constants[n.inputs[1] ?? ""]?.tensor;
  if (scale === undefined || numel(scale.shape) !== 1) return undefined;
  const dtype = g.values[n.outputs[0]!]?.dtype;
  if (dtype === undefined) return undefined;
  const zpValue = n.inputs[2] ?? "";
  const zeroPoint = zpValue === "" ? fromArray(dtype, [], [0]) : g.constants[zpValue]?.tensor;
  if (zeroPoint === undefined || numel(zeroPoint.shape) !== 1) return undefined;
  const info = dtypeInfo(dtype);
  if (n.op === "quantize_per_tensor" && n.attrs.quant_min === info.min && n.attrs.quant_max === info.max) return { scale, zeroPoint, dtype };
  if (n.op === "quantize_linear" && ((n.attrs.block_size as number | undefined) ?? 0) === 0) return { scale, zeroPoint, dtype };
  return undefined;
}

/**
 * Finds the patterns, keyed by the anchor node's name. A node joins at most one pattern; a value
 * read by anything outside the pattern keeps the pattern from fusing (its float value is needed).
 */
export function planQOperator(g: Graph): Map<string, QOperatorFusion> {
  const sources = valueSources(g);
  const users = valueUsers(g);
  const outputs = new Set(g.outputs);
  const producer = (v: string): Node | undefined => {
    const s = sources.get(v);
    return s?.kind === "node" ? s.node : undefined;
  };
  const soleUser = (v: string): Node | undefined => {
    const u = users.get(v) ?? [];
    return u.length === 1 && !outputs.has(v) ? u[0] : undefined;
  };
  const plans = new Map<string, QOperatorFusion>();
  for (const n of g.nodes) {
    if (n.op !== "conv" && n.op !== "linear" && n.op !== "matmul") continue;
    const x = dequantOf(g, producer(n.inputs[0]!));
    if (x === undefined || !ACT_DTYPES.has(x.dtype) || !perTensor(x)) continue;
    const wSrc = dequantOf(g, producer(n.inputs[1]!));
    const wValues = wSrc !== undefined ? g.constants[wSrc.q]?.tensor : undefined;
    if (wSrc === undefined || wValues === undefined || !ACT_DTYPES.has(wSrc.dtype)) continue;
    const channelAxis = n.op === "matmul" ? wValues.shape.length - 1 : 0;
    if (!perTensor(wSrc) && wSrc.axis !== channelAxis) continue;
    if (n.op === "matmul" && wValues.shape.length !== 2) continue;
    // conv / linear bias: a float constant, or a dequantized int32 constant (its float value).
    let bias: Float64Array | undefined;
    const b = n.op === "matmul" ? "" : (n.inputs[2] ?? "");
    if (b !== "") {
      const c = g.constants[b]?.tensor;
      const dq = c === undefined ? dequantOf(g, producer(b)) : undefined;
      if (c !== undefined && dtypeInfo(c.dtype).kind === "float") bias = Float64Array.from(toNumbers(c));
      else if (dq !== undefined && perTensor(dq) && g.constants[dq.q] !== undefined) {
        const s = getElement(dq.scale, 0);
        const z = dq.zeroPoint === undefined ? 0 : getElement(dq.zeroPoint, 0);
        bias = Float64Array.from(toNumbers(g.constants[dq.q]!.tensor), (q) => Math.fround(Math.fround(q - z) * s));
      } else continue;
    }
    // The output: -> quantize, or -> relu -> quantize.
    let next = soleUser(n.outputs[0]!);
    const absorbed: Node[] = [];
    let relu = false;
    if (next?.op === "relu") {
      relu = true;
      absorbed.push(next);
      next = soleUser(next.outputs[0]!);
    }
    const y = quantizeOf(g, next);
    if (next === undefined || y === undefined || y.dtype !== x.dtype) continue;
    absorbed.push(next);
    // The dequantized input/weight must feed nothing else that needs the float (they are still
    // exported when something does, and dropped as dead otherwise).
    plans.set(n.name, {
      kind: n.op, anchor: n, absorbed, x, w: { ...wSrc, values: wValues }, bias, relu,
      y: { value: next.outputs[0]!, ...y },
    });
  }
  return plans;
}

/** rint: round half to even (the rounding of ONNX's QuantizeLinear and PyTorch's bias quantization in fbgemm/qnnpack). */
function rint(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 ? 2 * Math.round(v / 2) : r;
}

/** Per-output-channel float32 scales of the weight. */
function weightScales(f: QOperatorFusion, channels: number): number[] {
  const s = toNumbers(f.w.scale).map((v) => Math.fround(v));
  return s.length === 1 ? new Array<number>(channels).fill(s[0]!) : s;
}

/** The weight's qparams as ONNX inputs: float32 scales and zero points of the weight's dtype (0-d or 1-D). */
function weightQParams(c: ExportContext, f: QOperatorFusion): [string, string] {
  const s = toNumbers(f.w.scale).map((v) => Math.fround(v));
  const z = f.w.zeroPoint === undefined ? s.map(() => 0) : toNumbers(f.w.zeroPoint);
  const one = perTensor(f.w);
  const shape = one ? [] : [s.length];
  return [
    c.initializer(fromArray("float32", shape, one ? [s[0]!] : s), "w_scale"),
    c.initializer(fromArray(f.w.dtype, shape, one ? [z[0]!] : z), "w_zero_point"),
  ];
}

function scalarOf(c: ExportContext, t: Tensor | undefined, dtype: DType, hint: string): string {
  return c.initializer(fromArray(dtype, [], [t === undefined ? 0 : getElement(t, 0)]), hint);
}

/** The activation and output qparams as 0-d ONNX inputs. */
function actQParams(c: ExportContext, f: QOperatorFusion): { xs: string; xz: string; ys: string; yz: string } {
  return {
    xs: scalarOf(c, f.x.scale, "float32", "x_scale"),
    xz: scalarOf(c, f.x.zeroPoint, f.x.dtype, "x_zero_point"),
    ys: scalarOf(c, f.y.scale, "float32", "y_scale"),
    yz: scalarOf(c, f.y.zeroPoint, f.y.dtype, "y_zero_point"),
  };
}

/** int32 bias for QLinearConv / the MatMulInteger form: rint(b / (x_scale * w_scale[c])). */
function quantizedBias(f: QOperatorFusion, channels: number): Tensor | undefined {
  if (f.bias === undefined) return undefined;
  const xs = Math.fround(getElement(f.x.scale, 0));
  const ws = weightScales(f, channels);
  const q = Array.from(f.bias, (b, i) => {
    const v = rint(b / Math.fround(xs * ws[i]!));
    return Math.min(Math.max(v, -2147483648), 2147483647);
  });
  return fromArray("int32", [channels], q);
}

/** Writes the integer result to the pattern's output, clamping at the zero point for a fused relu. */
function finish(c: ExportContext, f: QOperatorFusion, write: (out: readonly string[] | number) => string): void {
  const out = c.name(f.y.value);
  const zp = getElement(f.y.zeroPoint, 0);
  if (!f.relu || zp <= dtypeInfo(f.y.dtype).min) {
    write([out]);
    return;
  }
  const y = write(1);
  c.emit("Clip", [y, c.initializer(fromArray(f.y.dtype, [], [zp]), "relu_min")], [], [out]);
}

/** Emits the fused integer op(s) of a planned pattern. */
export function emitQOperator(c: ExportContext, f: QOperatorFusion): void {
  const p = actQParams(c, f);
  const x = c.value(f.x.q);
  if (f.kind === "conv") {
    const m = f.w.values.shape[0]!;
    const [ws, wz] = weightQParams(c, f);
    const w = c.initializer(f.w.values, "w");
    const bias = quantizedBias(f, m);
    const inputs = [x, p.xs, p.xz, w, ws, wz, p.ys, p.yz, ...(bias !== undefined ? [c.initializer(bias, "bias_int32")] : [])];
    finish(c, f, (out) => c.emit("QLinearConv", inputs, schemaAttrs(f.anchor), out)[0]!);
    return;
  }
  // matmul: B is [K, N], per column; linear: W [N, K] per row, transposed to [K, N].
  const b = f.kind === "linear" ? transpose2d(f.w.values) : f.w.values;
  const n = b.shape[1]!;
  const [ws, wz] = weightQParams(c, f);
  const w = c.initializer(b, "w");
  const bias = quantizedBias(f, n);
  if (bias === undefined) {
    finish(c, f, (out) => c.emit("QLinearMatMul", [x, p.xs, p.xz, w, ws, wz, p.ys, p.yz], [], out)[0]!);
    return;
  }
  const acc = c.emit("MatMulInteger", [x, w, p.xz, wz])[0]!;
  const withBias = c.emit("Add", [acc, c.initializer(bias, "bias_int32")])[0]!;
  const xs = Math.fround(getElement(f.x.scale, 0));
  const scales = weightScales(f, n).map((s) => Math.fround(xs * s));
  const scale = c.initializer(fromArray("float32", perTensor(f.w) ? [] : [n], perTensor(f.w) ? [scales[0]!] : scales), "acc_scale");
  const real = c.emit("Mul", [c.emit("Cast", [withBias], [attr.dtype("to", "float32")])[0]!, scale])[0]!;
  finish(c, f, (out) => c.emit("QuantizeLinear", [real, p.ys, p.yz], [], out)[0]!);
}
