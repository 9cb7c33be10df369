/**
 * Reference kernels of PT2E's QDQ ops (schemas: @qforge/ir ops/pt2e.ts). The arithmetic is
 * @qforge/quant's classic primitives (bit-exact with PyTorch, golden/README.md rules); the kernels
 * add the [quant_min, quant_max] clamp of torch.ops.quantized_decomposed.*: clamping the
 * full-range result again to a sub-range equals clamping once to the sub-range.
 *
 * `observer` is the identity (calibration observes through a kernel override, see
 * @qforge/pt2e's calibrate). `fake_quantize` needs the stateful module its `id` names, which only
 * the PreparedProgram holds: run it through @qforge/pt2e (runPrepared), which overrides this kernel.
 */
import { dtypeInfo, getElement, numel, packSubByte, QforgeError, tensor, toFloat64, type Tensor } from "@qforge/ir";
import {
  dequantizePerChannel, dequantizePerTensor, isIntegerQuantDType, qparamsFromMinMax, quantizeAffine, quantizePerChannel,
  quantizePerTensor, ZeroPointDomain, type UniformQuantConfig,
} from "@qforge/quant";
import { registerKernel, type Kernel, type KernelContext } from "../kernel.js";

function fail(ctx: KernelContext, code: "BAD_INPUT" | "BAD_DATA" | "BAD_ATTRIBUTE" | "UNSUPPORTED", message: string, hint?: string): never {
  throw new QforgeError(code, `${ctx.op}: ${message}`, { node: ctx.node, hint });
}

function need(t: Tensor | undefined, what: string, ctx: KernelContext): Tensor {
  if (t === undefined) fail(ctx, "BAD_INPUT", `input '${what}' is required`);
  return t;
}

/** The range attributes (validated by the schema). */
function range(attrs: Readonly<Record<string, unknown>>): { qmin: number; qmax: number; dtype: string } {
  return { qmin: attrs["quant_min"] as number, qmax: attrs["quant_max"] as number, dtype: attrs["dtype"] as string };
}

/** Clamps an integer tensor (in place on a fresh result) to [qmin, qmax]; packed dtypes go through setElement. */
function clampInPlace(q: Tensor, qmin: number, qmax: number): Tensor {
  const d = q.data;
  if (d instanceof Int8Array || d instanceof Uint8Array || d instanceof Int16Array || d instanceof Int32Array) {
    if (q.dtype === "int8" || q.dtype === "uint8" || q.dtype === "int16" || q.dtype === "int32") {
      for (let i = 0; i < d.length; i++) {
        const v = d[i]!;
        if (v < qmin) d[i] = qmin;
        else if (v > qmax) d[i] = qmax;
      }
      return q;
    }
  }
  // Sub-byte packed storage: rebuild from logical values.
  const n = numel(q.shape);
  const values = new Array<number>(n);
  let changed = false;
  for (let i = 0; i < n; i++) {
    const v = getElement(q, i);
    const c = v < qmin ? qmin : v > qmax ? qmax : v;
    if (c !== v) changed = true;
    values[i] = c;
  }
  if (!changed) return q;
  return tensor(q.dtype, q.shape, packSubByte(q.dtype, Int32Array.from(values)));
}

function scalar(t: Tensor, what: string, ctx: KernelContext): number {
  if (numel(t.shape) !== 1) fail(ctx, "BAD_INPUT", `${what} must have one element, got [${t.shape.join(",")}]`);
  return getElement(t, 0);
}

const quantizePerTensorKernel: Kernel = (inputs, attrs, ctx) => {
  const x = need(inputs[0], "input", ctx);
  const scale = scalar(need(inputs[1], "scale", ctx), "scale", ctx);
  const zp = scalar(need(inputs[2], "zero_point", ctx), "zero_point", ctx);
  const { qmin, qmax, dtype } = range(attrs);
  const q = quantizePerTensor(x, scale, zp, dtype as Tensor["dtype"]);
  return [clampInPlace(q, qmin, qmax)];
};

const dequantizePerTensorKernel: Kernel = (inputs, _attrs, ctx) => {
  const q = need(inputs[0], "input", ctx);
  const scale = scalar(need(inputs[1], "scale", ctx), "scale", ctx);
  const zp = scalar(need(inputs[2], "zero_point", ctx), "zero_point", ctx);
  return [dequantizePerTensor(q, scale, zp)];
};

/** The axis as a non-negative index (the schema checked its range). */
function axisOf(attrs: Readonly<Record<string, unknown>>, rank: number): number {
  const a = attrs["axis"] as number;
  return a < 0 ? a + rank : a;
}

const isFloatZeroPoint = (t: Tensor): boolean => dtypeInfo(t.dtype).kind === "float";

const quantizePerChannelKernel: Kernel = (inputs, attrs, ctx) => {
  const x = need(inputs[0], "input", ctx);
  const scales = need(inputs[1], "scales", ctx);
  const zps = need(inputs[2], "zero_points", ctx);
  const { qmin, qmax, dtype } = range(attrs);
  const axis = axisOf(attrs, x.shape.length);
  if (isFloatZeroPoint(zps)) {
    // Float qparams: torchao's quantize_affine with an INT-domain float zero point is the decomposed
    // op's `clamp(round(x * (1 / s)) + zp).to(dtype)` (sum in float32, truncated by the cast); one
    // block per index along `axis`.
    const blockSize = x.shape.map((d, i) => (i === axis ? 1 : d));
    const f32Scales = tensor("float32", [scales.shape[0]!], Float32Array.from(toFloat64(scales)));
    return [quantizeAffine(x, blockSize, f32Scales, zps, dtype as Tensor["dtype"], qmin, qmax, ZeroPointDomain.INT)];
  }
  const q = quantizePerChannel(x, scales, zps, axis, dtype as Tensor["dtype"]);
  return [clampInPlace(q, qmin, qmax)];
};

const dequantizePerChannelKernel: Kernel = (inputs, attrs, ctx) => {
  const q = need(inputs[0], "input", ctx);
  const scales = need(inputs[1], "scales", ctx);
  const zps = need(inputs[2], "zero_points", ctx);
  const axis = axisOf(attrs, q.shape.length);
  if (!isFloatZeroPoint(zps)) return [dequantizePerChannel(q, scales, zps, axis)];
  // Float zero points: the same double-precision rule as the integer case, (q - zp[c]) * s[c]
  // rounded once (dequantizePerChannel only accepts integer zero points).
  const s = toFloat64(scales);
  const z = toFloat64(zps);
  const n = numel(q.shape);
  let inner = 1;
  for (let d = axis + 1; d < q.shape.length; d++) inner *= q.shape[d]!;
  const channels = q.shape[axis]!;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const c = Math.floor(i / inner) % channels;
    out[i] = (getElement(q, i) - z[c]!) * s[c]!;
  }
  return [tensor("float32", q.shape, out)];
};

/**
 * quantized_decomposed.choose_qparams.tensor: `torch.aminmax(input)` then `determine_qparams`
 * (torch/ao/quantization/utils.py) without a customized range — the observers' float32 formula,
 * which @qforge/quant's qparamsFromMinMax implements.
 */
const chooseQParamsPerTensorKernel: Kernel = (inputs, attrs, ctx) => {
  const x = need(inputs[0], "input", ctx);
  const { qmin, qmax, dtype } = range(attrs);
  const n = numel(x.shape);
  if (n === 0) fail(ctx, "BAD_DATA", "cannot choose qparams for an empty tensor", "torch.aminmax refuses empty inputs");
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = getElement(x, i);
    if (!Number.isFinite(v)) fail(ctx, "BAD_DATA", `input holds ${v} at element ${i}`, "dynamic quantization needs finite inputs");
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!isIntegerQuantDType(dtype as Tensor["dtype"])) fail(ctx, "BAD_ATTRIBUTE", `dtype '${dtype}' is not an integer quantized dtype`);
  const cfg: UniformQuantConfig = {
    // Only the symmetric zero point looks at the dtype: 128 for unsigned, 0 for signed.
    dtype: dtype.startsWith("uint") ? "quint8" : "qint8",
    qscheme: attrs["qscheme"] === "per_tensor_symmetric" ? "per_tensor_symmetric" : "per_tensor_affine",
    reduceRange: false,
    quantMin: qmin,
    quantMax: qmax,
    hasCustomizedQrange: false,
    eps: Math.fround(attrs["eps"] as number),
  };
  const qp = qparamsFromMinMax(ctx.node, [Math.fround(lo)], [Math.fround(hi)], cfg);
  return [
    tensor("float32", [], Float32Array.of(getElement(qp.scale, 0))),
    tensor("int32", [], Int32Array.of(getElement(qp.zeroPoint, 0))),
  ];
};

const observerKernel: Kernel = (inputs, _attrs, ctx) => [need(inputs[0], "input", ctx)];

const fakeQuantizeKernel: Kernel = (_inputs, attrs, ctx) =>
  fail(ctx, "UNSUPPORTED", `fake-quant module '${String(attrs["id"])}' is not available to the plain interpreter`, "run the prepared program with runPrepared from @qforge/pt2e (it supplies the module), or convert it with convertPt2e");

registerKernel("quantize_per_tensor", quantizePerTensorKernel);
registerKernel("dequantize_per_tensor", dequantizePerTensorKernel);
registerKernel("quantize_per_channel", quantizePerChannelKernel);
registerKernel("dequantize_per_channel", dequantizePerChannelKernel);
registerKernel("choose_qparams_per_tensor", chooseQParamsPerTensorKernel);
registerKernel("observer", observerKernel);
registerKernel("fake_quantize", fakeQuantizeKernel);
