/**
 * Readers for lowering the converted (QDQ) program: the helpers that turn a match of a lowering row
 * (rules.ts) into the inputs, attributes and meta of an integer op, and `Skip` for a match that
 * cannot be lowered after all.
 *
 * The QDQ ops are PyTorch's quantized_decomposed ones (brief, contract item 2):
 *   quantize_per_tensor(x, scale, zero_point) {quant_min, quant_max, dtype}
 *   dequantize_per_tensor(q, scale, zero_point) {quant_min, quant_max, dtype}
 *   quantize_per_channel / dequantize_per_channel(x, scales, zero_points) {axis, ...}
 *   choose_qparams_per_tensor(x) {quant_min, quant_max, eps, dtype} -> (scale, zero_point)
 */
import {
  dtypeInfo, getElement, numel, QforgeError, setElement, zeros, type AttrValue, type DType, type NodeMeta, type Rewriter, type Tensor, type ValueView, type NodeView,
} from "@qforge/ir";
import { ANNOTATION_KEY } from "@qforge/quantizer";
import { runOp } from "@qforge/runtime";

export const QUANTIZE = "quantize_per_tensor";
export const DEQUANTIZE = "dequantize_per_tensor";
export const QUANTIZE_PER_CHANNEL = "quantize_per_channel";
export const DEQUANTIZE_PER_CHANNEL = "dequantize_per_channel";
export const CHOOSE_QPARAMS = "choose_qparams_per_tensor";

/** The ops of the QDQ representation itself (never "left in float"). */
export const QDQ_OPS: ReadonlySet<string> = new Set([QUANTIZE, DEQUANTIZE, QUANTIZE_PER_CHANNEL, DEQUANTIZE_PER_CHANNEL, CHOOSE_QPARAMS]);

/** Integer dtypes (int8, uint8, int32, ...): what quantized values are stored as. */
export const isIntegerDType = (d: unknown): boolean => {
  const k = dtypeInfo(d as DType).kind;
  return k === "int" || k === "uint";
};
export const isFloatDType = (d: unknown): boolean => dtypeInfo(d as DType).kind === "float";

// ---- readers --------------------------------------------------------------------------------

/** A quantized tensor as three value names: integers, scale, zero point. */
export interface QTensor {
  readonly q: string;
  readonly scale: string;
  readonly zeroPoint: string;
  readonly dtype: DType;
}

/** Why a match cannot be lowered after all (recorded in the report, the float path stays). */
export class Skip {
  constructor(readonly reason: string) {}
}

export function skip(reason: string): never {
  throw new Skip(reason);
}

export function node(v: ValueView | undefined): NodeView {
  if (v === undefined || v.kind !== "node") throw new QforgeError("BAD_INPUT", "lowering: expected a node in the matched pattern");
  return v;
}

export function attrNumber(n: NodeView, name: string, fallback: number): number {
  const v = n.attrs[name];
  return typeof v === "number" ? v : fallback;
}

function valueDType(rw: Rewriter, v: string): DType {
  const t = rw.graph.values[v];
  if (t === undefined) throw new QforgeError("DANGLING_INPUT", `lowering: value '${v}' has no type`, { node: v });
  return t.dtype;
}

/** The quantized tensor a dequantize_per_tensor node reads. */
export function dequantized(rw: Rewriter, dq: NodeView): QTensor {
  const [q, s, z] = dq.inputs as [ValueView, ValueView, ValueView];
  return { q: q.value, scale: s.value, zeroPoint: z.value, dtype: valueDType(rw, q.value) };
}

/**
 * The output of a pattern: the quantize_per_tensor root's qparams and dtype. The integer ops
 * saturate at their dtype's range, so a quantize clamping to a narrower [quant_min, quant_max]
 * (e.g. reduce_range's [0, 127]) cannot be absorbed into them.
 */
export function quantizedOutput(rw: Rewriter, root: NodeView): { scale: string; zeroPoint: string; dtype: DType } {
  const dtype = valueDType(rw, root.value);
  const info = dtypeInfo(dtype);
  const qmin = attrNumber(root, "quant_min", info.min);
  const qmax = attrNumber(root, "quant_max", info.max);
  if (qmin !== info.min || qmax !== info.max) {
    skip(`the output quantize clamps to [${qmin}, ${qmax}], narrower than ${dtype}'s range, which the integer op would saturate at`);
  }
  return { scale: root.inputs[1]!.value, zeroPoint: root.inputs[2]!.value, dtype };
}

/** Checks that every input is of the output's dtype (the integer ops keep their input's dtype). */
export function sameDTypes(out: DType, inputs: readonly QTensor[]): void {
  for (const x of inputs) if (x.dtype !== out) skip(`input '${x.q}' is ${x.dtype} but the output is quantized to ${out}`);
}

/** The value of a constant path (a constant, or QDQ ops over constants), computed by their kernels. */
function tensorOf(v: ValueView): Tensor {
  if (v.kind === "constant") return v.tensor;
  const n = node(v);
  const inputs = n.inputs.map((i) => (i.kind === "none" ? undefined : tensorOf(i)));
  return runOp(n.op, inputs, { ...n.attrs } as Record<string, AttrValue>, { node: n.name })[0]!;
}

/** An input of the integer op: an existing value, or a constant that lowering adds (folded weight/bias). */
export type LoweredInput = string | { readonly base: string; readonly tensor: Tensor };

/** An integer weight: its values (a constant, or folded from a quantize) and qparams. */
export interface QWeight {
  readonly q: LoweredInput;
  readonly scale: string;
  readonly zeroPoint: string;
  readonly dtype: DType;
  readonly zeroPoints: Tensor;
}

/**
 * The integer weight behind a dequantize(_per_channel) of a constant. Per-channel weights must be
 * quantized along the output channels (axis 0), the only layout the integer kernels take.
 */
export function weightOf(dq: NodeView): QWeight {
  const [src, s, z] = dq.inputs as [ValueView, ValueView, ValueView];
  const values = tensorOf(src);
  if (dq.op === DEQUANTIZE_PER_CHANNEL) {
    const axis = attrNumber(dq, "axis", 0);
    if (axis !== 0 && axis !== -values.shape.length) {
      skip(`the weight is quantized per channel along axis ${axis}; the integer op takes axis 0 (output channels)`);
    }
  }
  if (!isIntegerDType(values.dtype)) skip(`the weight quantizes to ${values.dtype}, not an integer dtype`);
  const zeroPoints = tensorOf(z);
  if (!isIntegerDType(zeroPoints.dtype)) skip(`the weight has ${zeroPoints.dtype} (float qparams) zero points; the integer ops take integer ones`);
  const q: LoweredInput = src.kind === "node" ? { base: `${src.inputs[0]!.value}_quantized`, tensor: values } : src.value;
  return { q, scale: s.value, zeroPoint: z.value, dtype: values.dtype, zeroPoints };
}

/**
 * The integer weight of a MatMul(x, W[K, N]) (or Gemm with transB=0) as quantized_linear takes it:
 * the values transposed to [N, K], so the per-channel qparams of W's axis 1 (its output columns)
 * become the [N, K] weight's axis 0. With `transposed` the weight already is [N, K] (Gemm transB=1).
 */
export function matmulWeightOf(dq: NodeView, transposed: boolean): QWeight {
  const [src, s, z] = dq.inputs as [ValueView, ValueView, ValueView];
  const values = tensorOf(src);
  if (values.shape.length !== 2) skip(`the weight is ${values.shape.length}-D; a linear takes a 2-D weight`);
  const outAxis = transposed ? 0 : 1;
  if (dq.op === DEQUANTIZE_PER_CHANNEL) {
    const axis = attrNumber(dq, "axis", 0);
    if (axis !== outAxis && axis !== outAxis - 2) {
      skip(`the weight is quantized per channel along axis ${axis}; as a linear it needs its output axis ${outAxis}`);
    }
  }
  if (!isIntegerDType(values.dtype)) skip(`the weight quantizes to ${values.dtype}, not an integer dtype`);
  const zeroPoints = tensorOf(z);
  if (!isIntegerDType(zeroPoints.dtype)) skip(`the weight has ${zeroPoints.dtype} (float qparams) zero points; the integer ops take integer ones`);
  const base = src.kind === "node" ? src.inputs[0]!.value : src.value;
  if (transposed) {
    const q: LoweredInput = src.kind === "node" ? { base: `${base}_quantized`, tensor: values } : src.value;
    return { q, scale: s.value, zeroPoint: z.value, dtype: values.dtype, zeroPoints };
  }
  const [k, n] = [values.shape[0]!, values.shape[1]!];
  const t = zeros(values.dtype, [n, k]);
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) setElement(t, j * k + i, getElement(values, i * n + j));
  return { q: { base: `${base}_t`, tensor: t }, scale: s.value, zeroPoint: z.value, dtype: values.dtype, zeroPoints };
}

/** The bias input of quantized linear/conv: "" when absent, else a float constant. */
export function biasOf(b: ValueView | undefined): LoweredInput {
  if (b === undefined || b.kind === "none") return "";
  if (b.kind === "constant") return b.value;
  // dequantize(int32 bias): the float bias it stands for, computed by the dequantize kernel itself
  // (f32((q - zp) * scale)), so the integer op adds exactly the value the QDQ program adds.
  return { base: `${node(b).inputs[0]!.value}_float`, tensor: tensorOf(b) };
}

/** The constant value of a clip bound input (undefined when omitted). */
export function constantScalar(v: ValueView | undefined): number | undefined {
  if (v === undefined || v.kind === "none") return undefined;
  if (v.kind !== "constant") skip(`clip bound '${v.value}' is not a constant`);
  if (numel(v.tensor.shape) !== 1) skip(`clip bound '${v.value}' is not a scalar`);
  return getElement(v.tensor, 0);
}

/**
 * The meta of the integer node that replaces a chain of float ops (`main` the op that gives it its
 * identity, `last` the op whose value it produces): main's moduleStack and source; the debug handle
 * of `last` (the numeric debugger compares a handle's value, and the fused node computes last's);
 * the handles of the other fused ops in `fusedDebugHandles` so that the debugger can say where they went.
 */
export function loweredMeta(chain: readonly NodeView[], root: NodeView): NodeMeta {
  const main = chain[0]!;
  const last = chain[chain.length - 1]!;
  const handle = last.meta.debugHandle;
  const fused = chain.slice(0, -1).map((n) => n.meta.debugHandle).filter((h): h is number => typeof h === "number");
  const names = [...new Set([...chain.map((n) => n.name), root.name])];
  const meta: Record<string, unknown> = { ...main.meta, loweredFrom: names };
  // The annotation described the float op's inputs for prepare; the integer node has other inputs.
  delete meta[ANNOTATION_KEY];
  delete meta["notLowered"];
  if (handle !== undefined) meta["debugHandle"] = handle;
  else delete meta["debugHandle"];
  if (fused.length > 0) meta["fusedDebugHandles"] = fused;
  return meta as NodeMeta;
}
