/**
 * Host-side requantization rules of the int32-accumulating ops, as threshold tables per output
 * channel. Each rule is the reference's formula step for step (the reference kernels do not export
 * their requantize functions): runtime/src/quantized/torch-linear.ts `requantize` for
 * quantized_linear / quantized_conv2d (qnnpack and onednn engines) and runtime/src/quantized/onnx.ts
 * `requantizeFloat` for QLinearConv / QLinearMatMul. The tests check every rule bit for bit against
 * the reference kernels.
 */
import { dtypeInfo, getElement, numel, type DType, type Tensor } from "@qforge/ir";
import { f32, quantizeValue, rint } from "@qforge/quant";
import { intThresholds, type Thresholds } from "./tables.js";

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

/** What the requantize pass needs per output channel: a value added to the accumulator first (int32 wrap) and a table. */
export interface ChannelRequant {
  /** Added to the accumulator (int32 wrapping) before the table lookup. */
  readonly add: readonly number[];
  /** Table index per channel (channels with identical rules share a table). */
  readonly tableOf: readonly number[];
  readonly tables: readonly Thresholds[];
}

function nums(t: Tensor | undefined): number[] {
  if (t === undefined) return [];
  const n = numel(t.shape);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = getElement(t, i);
  return out;
}

function perChannel(v: number[], count: number): number[] {
  return v.length === 1 ? new Array<number>(count).fill(v[0]!) : v;
}

/** Builds the tables, sharing one per distinct rule key. */
function build(channels: number, add: (c: number) => number, key: (c: number) => string, f: (c: number) => (t: number) => number, lo: number, hi: number): ChannelRequant {
  const byKey = new Map<string, number>();
  const tables: Thresholds[] = [];
  const tableOf: number[] = [];
  const adds: number[] = [];
  for (let c = 0; c < channels; c++) {
    adds.push(add(c));
    const k = key(c);
    let idx = byKey.get(k);
    if (idx === undefined) {
      idx = tables.length;
      tables.push(intThresholds(f(c), lo, hi));
      byKey.set(k, idx);
    }
    tableOf.push(idx);
  }
  return { add: adds, tableOf, tables };
}

export interface TorchRequantInputs {
  readonly engine: "qnnpack" | "onednn";
  readonly xDType: DType;
  readonly xScale: number;
  readonly wScales: Tensor;
  readonly bias: Tensor | undefined;
  readonly yScale: number;
  readonly yZeroPoint: number;
  readonly fuseRelu: boolean;
  readonly channels: number;
}

/**
 * quantized_linear / quantized_conv2d (PyTorch 1.13 qnnpack and onednn, see torch-linear.ts):
 * qnnpack adds the int32-quantized bias and maps `clamp(rint(f32(f32(t) * M)) + y_zp)`; onednn maps
 * the accumulator with `clamp(rint(acc * x_scale * w_scale / y_scale + bias / y_scale) + y_zp)` in double.
 */
export function torchRequant(r: TorchRequantInputs): ChannelRequant {
  const info = dtypeInfo(r.xDType);
  const [qmin, qmax] = [info.min, info.max];
  const lo = r.fuseRelu ? Math.max(qmin, r.yZeroPoint) : qmin;
  const hi = qmax;
  const ws = perChannel(nums(r.wScales), r.channels);
  const bias = r.bias === undefined ? undefined : nums(r.bias).map(f32);
  const clampQ = (v: number): number => (v < lo ? lo : v > hi ? hi : v);
  if (r.engine === "qnnpack") {
    const biasQ = ws.map((s, c) => (bias === undefined ? 0 : quantizeValue(bias[c]!, s * r.xScale, 0, INT32_MIN, INT32_MAX)));
    const mult = ws.map((s) => {
      const sx = f32(r.xScale);
      const sw = f32(s);
      const sy = f32(r.yScale);
      // requantizationScale: QNNPACK (quint8) or XNNPACK (qint8) float32 scale.
      return r.xDType === "uint8" ? f32(f32(sw * sx) * f32(1 / sy)) : f32(f32(sx * sw) / sy);
    });
    return build(r.channels, (c) => biasQ[c]!, (c) => String(mult[c]), (c) => (t) => clampQ(rint(f32(f32(t) * mult[c]!)) + r.yZeroPoint), lo, hi);
  }
  const b = ws.map((_, c) => (bias === undefined ? 0 : bias[c]! / r.yScale));
  return build(
    r.channels, () => 0, (c) => `${ws[c]}:${b[c]}`,
    (c) => (acc) => clampQ(rint((acc * r.xScale * ws[c]!) / r.yScale + b[c]!) + r.yZeroPoint), lo, hi,
  );
}

/** ONNX QLinearConv / QLinearMatMul: `clamp(rint(f32((acc + bias) * f32(f32(x_scale * w_scale) / y_scale))) + y_zp)`. */
export function onnxRequant(xScale: number, wScales: readonly number[], yScale: number, yZeroPoint: number, yDType: DType, bias: readonly number[] | undefined): ChannelRequant {
  const info = dtypeInfo(yDType);
  const [lo, hi] = [info.min, info.max];
  const mult = wScales.map((s) => f32(f32(xScale * s) / yScale));
  const clampQ = (v: number): number => (v < lo ? lo : v > hi ? hi : v);
  return build(
    wScales.length, (c) => (bias === undefined ? 0 : bias[c]!), (c) => String(mult[c]),
    (c) => (t) => clampQ(rint(f32(t * mult[c]!)) + yZeroPoint), lo, hi,
  );
}
