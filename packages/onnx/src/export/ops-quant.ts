import { dtypeInfo, type DType, type Node } from "@qforge/ir";
import { attr, schemaAttrs } from "./attrs.js";
import { constNumbers, MIN_EXPORT_OPSET, type ExportContext } from "./context.js";
import { exportRow, type ExportRow, type SinceContext } from "./rows.js";

/**
 * Quantization rows: PT2E's decomposed ops (ir/ops/pt2e.ts) become ONNX QuantizeLinear /
 * DequantizeLinear, and ONNX's own quantize_linear / dequantize_linear go back as they came.
 *
 * PT2E -> ONNX, per element (torch.ops.quantized_decomposed vs onnx/defs/quantization/defs.cc):
 *   quantize    clamp(rint(x * (1/s)) + zp, quant_min, quant_max)  ->  saturate(rint(x / s) + zp) to the dtype
 *   dequantize  (q - zp) * s                                      ->  (x - zp) * s
 * The scale becomes float32 (per-channel scales are float64 in the graph; PyTorch uses them as
 * float32 too) and the int32 zero point the quantized dtype. x * (1/s) and x / s can round apart at
 * a tie, one step at most. A quant range narrower than the dtype's (int8 -127..127) is exported as
 * QuantizeLinear followed by an integer Clip to [quant_min, quant_max], which is exact:
 * clamp(saturate(v)) = clamp(v) when [quant_min, quant_max] lies inside the dtype. Dequantize never
 * clamps, so folded constant weights (already in range) need nothing.
 */

const F = MIN_EXPORT_OPSET;

/** The opset where QuantizeLinear/DequantizeLinear accept a quantized dtype (Infinity: never up to 21). */
export function qdtypeSince(d: DType): number {
  switch (d) {
    case "int8": case "uint8": case "int32": return F;
    case "float8_e4m3fn": case "float8_e5m2": return 19;
    case "int16": case "uint16": case "int4": case "uint4": return 21;
    default: return Infinity;
  }
}

/** The dtypes QuantizeLinear can produce up to opset 21. */
const QUANTIZE_TARGETS: ReadonlySet<DType> = new Set<DType>(["int8", "uint8", "int16", "uint16", "int4", "uint4"]);

function checkTarget(c: ExportContext, dtype: DType): void {
  if (!QUANTIZE_TARGETS.has(dtype)) {
    c.fail(`QuantizeLinear cannot produce ${dtype}`, "ONNX (up to opset 21) quantizes to int8, uint8, int16, uint16, int4 and uint4");
  }
}

/** Since of a PT2E q/dq node: its dtype's, at least the floor (an unsupported dtype fails in emit with the reason). */
function pt2eSince(n: Node): number {
  const s = qdtypeSince(n.attrs.dtype as DType);
  return Number.isFinite(s) ? s : F;
}

/**
 * A qparam as an ONNX input: `dtype`, and for per-tensor qparams the 0-d shape ONNX's shape checks
 * expect (PT2E stores [] or [1]); a computed value is cast (dynamic quantization's int32 zero point).
 */
function qparam(c: ExportContext, v: string, dtype: DType, perTensor: boolean, hint: string): string {
  const t = c.constant(v);
  if (t !== undefined && perTensor && t.shape.length > 0) return c.valueAs(v, dtype, hint, []);
  return c.valueAs(v, dtype, hint);
}

/** QuantizeLinear into `out`, then the integer Clip of a narrowed range. */
function quantizeTo(c: ExportContext, inputs: string[], attrs: ReturnType<typeof schemaAttrs>, dtype: DType, out: string): void {
  const n = c.node;
  const info = dtypeInfo(dtype);
  const qmin = n.attrs.quant_min as number;
  const qmax = n.attrs.quant_max as number;
  const narrowed = qmin > info.min || qmax < info.max;
  if (!narrowed) {
    c.emit("QuantizeLinear", inputs, attrs, [out]);
    return;
  }
  if (info.bits < 8) {
    c.fail(`quant range [${qmin}, ${qmax}] is narrower than ${dtype}'s and ONNX's Clip has no ${dtype}`, "use the full range of the dtype for activations");
  }
  const q = c.emit("QuantizeLinear", inputs, attrs)[0]!;
  c.emit("Clip", [q, c.scalar(dtype, qmin, "quant_min"), c.scalar(dtype, qmax, "quant_max")], [], [out]);
}

function requireFloat32Input(c: ExportContext, v: string): void {
  const d = c.type(v).dtype;
  if (d !== "float32") c.fail(`input is ${d}; PT2E's quantize ops are exported for float32 inputs`);
}

const quantizePerTensor = exportRow("quantize_per_tensor", "QuantizeLinear (+ Clip)", pt2eSince, (n, c) => {
  const dtype = n.attrs.dtype as DType;
  checkTarget(c, dtype);
  requireFloat32Input(c, n.inputs[0]!);
  const inputs = [c.value(n.inputs[0]!), qparam(c, n.inputs[1]!, "float32", true, "scale"), qparam(c, n.inputs[2]!, dtype, true, "zero_point")];
  quantizeTo(c, inputs, [], dtype, c.name(n.outputs[0]!));
}, "narrowed [quant_min, quant_max]: + Clip on the integers");

/** int32 dequantization has no zero point in ONNX (DequantizeLinear: it is 0). */
function dequantizeZeroPoint(c: ExportContext, n: Node, perTensor: boolean): string {
  const dtype = n.attrs.dtype as DType;
  const zp = n.inputs[2]!;
  if (dtype !== "int32") return qparam(c, zp, dtype, perTensor, "zero_point");
  const t = c.constant(zp);
  if (t === undefined || constNumbers(t).some((v) => v !== 0)) {
    c.fail("int32 dequantization with a nonzero zero point has no ONNX form", "ONNX's DequantizeLinear takes int32 with zero point 0 only");
  }
  return "";
}

function checkDequantDType(c: ExportContext, dtype: DType): void {
  if (!Number.isFinite(qdtypeSince(dtype)) || dtypeInfo(dtype).kind === "float") {
    c.fail(`DequantizeLinear cannot read ${dtype}`, "ONNX (up to opset 21) dequantizes int8, uint8, int16, uint16, int4, uint4 and int32");
  }
}

const dequantizePerTensor = exportRow("dequantize_per_tensor", "DequantizeLinear", pt2eSince, (n, c) => {
  checkDequantDType(c, n.attrs.dtype as DType);
  const inputs = [c.value(n.inputs[0]!), qparam(c, n.inputs[1]!, "float32", true, "scale"), dequantizeZeroPoint(c, n, true)];
  c.emit("DequantizeLinear", inputs, [], [c.name(n.outputs[0]!)]);
});

const quantizePerChannel = exportRow("quantize_per_channel", "QuantizeLinear(axis) (+ Clip)", pt2eSince, (n, c) => {
  const dtype = n.attrs.dtype as DType;
  checkTarget(c, dtype);
  requireFloat32Input(c, n.inputs[0]!);
  if (dtypeInfo(c.type(n.inputs[2]!).dtype).kind === "float") {
    c.fail("float zero points (per_channel_affine_float_qparams) have no ONNX form", "ONNX zero points are integers of the quantized dtype");
  }
  const inputs = [c.value(n.inputs[0]!), qparam(c, n.inputs[1]!, "float32", false, "scales"), qparam(c, n.inputs[2]!, dtype, false, "zero_points")];
  quantizeTo(c, inputs, [attr.int("axis", n.attrs.axis as number)], dtype, c.name(n.outputs[0]!));
}, "per-axis; narrowed range: + Clip");

const dequantizePerChannel = exportRow("dequantize_per_channel", "DequantizeLinear(axis)", pt2eSince, (n, c) => {
  checkDequantDType(c, n.attrs.dtype as DType);
  // Float zero points that hold integers (as float qparams of a symmetric table can) convert exactly;
  // any other value fails in valueAs with the offending number.
  const inputs = [c.value(n.inputs[0]!), qparam(c, n.inputs[1]!, "float32", false, "scales"), dequantizeZeroPoint(c, n, false)];
  c.emit("DequantizeLinear", inputs, [attr.int("axis", n.attrs.axis as number)], [c.name(n.outputs[0]!)]);
}, "per-axis; float zero points only when they hold integers");

/**
 * choose_qparams.tensor (dynamic quantization), written out in float32 ONNX ops with the observers'
 * formula (torch/ao/quantization/utils.py determine_qparams, @qforge/quant qparamsFromMinMax):
 *   affine     s = max((max(x, 0) - min(x, 0)) / (qmax - qmin), eps); zp = clamp(qmin - round(min(x, 0) / s), qmin, qmax)
 *   symmetric  s = max(max(-min(x, 0), max(x, 0)) / ((qmax - qmin) / 2), eps); zp = 128 for unsigned dtypes, else 0
 * Every step is one float32 operation, as in the reference, so the qparams agree exactly.
 */
const chooseQParams = exportRow("choose_qparams_per_tensor", "ReduceMin/ReduceMax + float32 arithmetic", F, (n, c) => {
  requireFloat32Input(c, n.inputs[0]!);
  const x = c.value(n.inputs[0]!);
  const qmin = n.attrs.quant_min as number;
  const qmax = n.attrs.quant_max as number;
  const f = (v: number, hint: string): string => c.scalar("float32", v, hint);
  const keep0 = [attr.int("keepdims", 0)];
  const zero = f(0, "zero");
  const minNeg = c.emit("Min", [c.emit("ReduceMin", [x], keep0)[0]!, zero])[0]!;
  const maxPos = c.emit("Max", [c.emit("ReduceMax", [x], keep0)[0]!, zero])[0]!;
  const eps = f(Math.fround(n.attrs.eps as number), "eps");
  const [scaleOut, zpOut] = [c.out(0), c.out(1)];
  const symmetric = n.attrs.qscheme === "per_tensor_symmetric";
  const spread = symmetric
    ? c.emit("Max", [c.emit("Neg", [minNeg])[0]!, maxPos])[0]!
    : c.emit("Sub", [maxPos, minNeg])[0]!;
  const levels = f(symmetric ? Math.fround((qmax - qmin) / 2) : qmax - qmin, "levels");
  const raw = c.emit("Div", [spread, levels])[0]!;
  const scale = c.emit("Max", [raw, eps], [], scaleOut === "" ? 1 : [scaleOut])[0]!;
  if (zpOut === "") return;
  if (symmetric) {
    const zp = (n.attrs.dtype as string).startsWith("uint") ? 128 : 0;
    c.emit("Identity", [c.scalar("int32", zp, "zero_point")], [], [zpOut]);
    return;
  }
  const r = c.emit("Round", [c.emit("Div", [minNeg, scale])[0]!])[0]!;
  const z = c.emit("Sub", [f(qmin, "quant_min"), r])[0]!;
  const clamped = c.emit("Clip", [z, f(qmin, "quant_min"), f(qmax, "quant_max")])[0]!;
  c.emit("Cast", [clamped], [attr.dtype("to", "int32")], [zpOut]);
}, "the observers' determine_qparams formula in float32 ONNX ops");

// ---- ONNX's own quantize_linear / dequantize_linear ---------------------------------------------

function linearSince(quantized: DType, scale: DType, blockSize: number, outputDType: boolean): number {
  const q = qdtypeSince(quantized);
  let s = Number.isFinite(q) ? q : F;
  if (scale !== "float32") s = Math.max(s, 19);
  if (blockSize !== 0 || outputDType) s = Math.max(s, 21);
  return s;
}

/** block_size exists from opset 21 only: write it when blocked, leave the default 0 out (older opsets refuse it). */
function pushBlockSize(n: Node, attrs: ReturnType<typeof schemaAttrs>): void {
  const b = (n.attrs.block_size as number | undefined) ?? 0;
  if (b !== 0) attrs.push(attr.int("block_size", b));
}

function quantizeLinearDType(n: Node, c: SinceContext): DType {
  const zp = n.inputs[2] ?? "";
  return zp !== "" ? c.type(zp).dtype : ((n.attrs.output_dtype as DType | undefined) ?? "uint8");
}

const quantizeLinear = exportRow("quantize_linear", "QuantizeLinear", (n, c) => linearSince(
  quantizeLinearDType(n, c), c.type(n.inputs[1]!).dtype, (n.attrs.block_size as number | undefined) ?? 0, n.attrs.output_dtype !== undefined,
), (n, c) => {
  const dtype = quantizeLinearDType(n, c);
  if (!Number.isFinite(qdtypeSince(dtype))) c.fail(`QuantizeLinear cannot produce ${dtype} up to opset 21`);
  const scaleType = c.type(n.inputs[1]!).dtype;
  const xType = c.type(n.inputs[0]!).dtype;
  if (xType !== scaleType && xType !== "int32") c.fail(`x is ${xType} and y_scale ${scaleType}; up to opset 21 they must match`);
  const precision = n.attrs.precision as DType | undefined;
  if (precision !== undefined && precision !== scaleType) c.fail(`precision ${precision} needs a newer opset than 21`);
  const attrs = schemaAttrs(n, ["output_dtype", "precision", "saturate", "block_size"]);
  pushBlockSize(n, attrs);
  if (n.attrs.output_dtype !== undefined) attrs.push(attr.dtype("output_dtype", n.attrs.output_dtype as string, n.name));
  if (n.attrs.saturate !== undefined && dtypeInfo(dtype).kind === "float") attrs.push(attr.int("saturate", n.attrs.saturate as number));
  c.emit("QuantizeLinear", n.inputs.map((v) => c.value(v)), attrs, [c.name(n.outputs[0]!)]);
}, "`output_dtype` -> ONNX enum (opset 21); `saturate` only for float8");

const dequantizeLinear = exportRow("dequantize_linear", "DequantizeLinear", (n, c) => linearSince(
  c.type(n.inputs[0]!).dtype, c.type(n.inputs[1]!).dtype, (n.attrs.block_size as number | undefined) ?? 0, false,
), (n, c) => {
  const dtype = c.type(n.inputs[0]!).dtype;
  if (!Number.isFinite(qdtypeSince(dtype))) c.fail(`DequantizeLinear cannot read ${dtype} up to opset 21`);
  const out = n.attrs.output_dtype as DType | undefined;
  if (out !== undefined && out !== c.type(n.inputs[1]!).dtype) c.fail(`output_dtype ${out} differs from the scale's dtype; that needs opset 23`);
  const attrs = schemaAttrs(n, ["output_dtype", "block_size"]);
  pushBlockSize(n, attrs);
  c.emit("DequantizeLinear", n.inputs.map((v) => c.value(v)), attrs, [c.name(n.outputs[0]!)]);
}, "`block_size` needs opset 21; `output_dtype` only when it is the scale's dtype (opset 23 otherwise)");

/** Ops that only live in prepared (not converted) programs. */
function preparedOnly(op: string): ExportRow {
  return exportRow(op, "(none)", F, (_n, c) => {
    c.fail("prepared programs have no ONNX form", "export the converted program: convertPt2e(prepared)");
  }, "UNSUPPORTED: convert the program first");
}

export const QUANT_ROWS: readonly ExportRow[] = [
  quantizePerTensor, dequantizePerTensor, quantizePerChannel, dequantizePerChannel, chooseQParams,
  quantizeLinear, dequantizeLinear, preparedOnly("observer"), preparedOnly("fake_quantize"),
];
