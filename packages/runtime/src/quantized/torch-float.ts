/**
 * PyTorch's other quantized ops (activations, add/mul, cat, pooling, mean, nearest upsampling),
 * specified as `quantize(f(dequantize(x)))` with float32 values: dequantize is ATen's
 * `f32(f32(q - zp) * f32(scale))`, f is the float op rounded to float32, quantize is ATen's
 * `quantize_val` (x times the float32 reciprocal of the scale, round half to even, + zp, clamp).
 * PyTorch's integer kernels agree with this within one unit, mostly exactly (golden README item 8):
 * relu, sigmoid, hardsigmoid, tanh, leaky_relu, hardtanh, max_pool2d, cat, upsample and add_relu
 * match exactly; add, mul, avg/adaptive pooling, mean and onednn's hardswish are off by one on a
 * few values because the engines requantize in fixed point.
 *
 * Reductions (avg pooling, mean) sum the float32 values in double and round the mean once to
 * float32: the float32 result of the exact mean, independent of summation order.
 */
import { dtypeInfo, numel, type DType, type Tensor } from "@qforge/ir";
import { dequantizePerTensor, f32, quantizePerTensor } from "@qforge/quant";
import { broadcastPlan, forEachRow } from "../kernels/broadcast.js";
import { checkScales, fail, intValues, need, scalarParam, type Kernel, type Where } from "./common.js";

/** A float view of a quantized input (values = dequantized float32). */
interface Dequantized {
  readonly values: Float32Array;
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly scale: number;
  readonly zeroPoint: number;
}

function dequantizeInput(w: Where, inputs: readonly (Tensor | undefined)[], at: number, name: string): Dequantized {
  const q = need(w, inputs[at], name);
  intValues(w, q, name);
  const scale = scalarParam(w, inputs[at + 1], `${name}_scale`);
  const zeroPoint = scalarParam(w, inputs[at + 2], `${name}_zero_point`);
  checkScales(w, [scale], `${name}_scale`);
  const values = dequantizePerTensor(q, scale, zeroPoint).data as Float32Array;
  return { values, shape: q.shape, dtype: q.dtype, scale, zeroPoint };
}

/** Output qparams: the given (y_scale, y_zero_point) inputs, or a default when both are omitted. */
function outputQParams(w: Where, sT: Tensor | undefined, zT: Tensor | undefined, fallback: () => [number, number]): [number, number] {
  return sT === undefined && zT === undefined ? fallback() : requiredOutputQParams(w, sT, zT);
}

function requiredOutputQParams(w: Where, sT: Tensor | undefined, zT: Tensor | undefined): [number, number] {
  const s = scalarParam(w, sT, "y_scale");
  checkScales(w, [s], "y_scale");
  return [s, scalarParam(w, zT, "y_zero_point")];
}

function quantizeOutput(values: Float32Array, shape: readonly number[], dtype: DType, qp: [number, number]): Tensor {
  return quantizePerTensor({ dtype: "float32", shape: [...shape], data: values }, qp[0], qp[1], dtype);
}

function map(values: Float32Array, f: (v: number) => number): Float32Array {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f(values[i]!);
  return out;
}

/**
 * PyTorch's fixed output qparams for activations with a bounded range (qsigmoid / qtanh /
 * qhardsigmoid kernels): [0, 1] maps onto the whole integer range with scale 2^-bits (quint8: 1/256,
 * zero point 0; qint8: zero point -128); [-1, 1] uses scale 2^(1-bits) with the mid zero point
 * (quint8: 2/256, 128; qint8: 0).
 */
function fixedOutputQParams(dtype: DType, range: "0to1" | "-1to1"): [number, number] {
  const info = dtypeInfo(dtype);
  const levels = 2 ** info.bits;
  return range === "0to1" ? [1 / levels, info.min] : [2 / levels, info.min + levels / 2];
}

/** A unary op: (x, x_scale, x_zero_point, y_scale?, y_zero_point?) with f applied per element. */
function unaryKernel(f: (v: number, attrs: Readonly<Record<string, unknown>>) => number, fixed?: "0to1" | "-1to1"): Kernel {
  return (inputs, attrs, ctx) => {
    const w: Where = { node: ctx.node, op: ctx.op };
    const x = dequantizeInput(w, inputs, 0, "x");
    const qp = outputQParams(w, inputs[3], inputs[4], () => (fixed === undefined ? [x.scale, x.zeroPoint] : fixedOutputQParams(x.dtype, fixed)));
    return [quantizeOutput(map(x.values, (v) => f(v, attrs)), x.shape, x.dtype, qp)];
  };
}

export const quantizedRelu = unaryKernel((v) => (v > 0 ? v : 0));

/** torch's float hardswish: `x * min(max(x + 3, 0), 6) / 6`, each step in float32. */
export const quantizedHardswish = unaryKernel((v) => f32(f32(v * Math.min(Math.max(f32(v + 3), 0), 6)) / 6));

export const quantizedSigmoid = unaryKernel((v) => f32(1 / (1 + Math.exp(-v))), "0to1");

export const quantizedHardsigmoid = unaryKernel((v) => f32(Math.min(Math.max(f32(v + 3), 0), 6) / 6), "0to1");

export const quantizedTanh = unaryKernel((v) => f32(Math.tanh(v)), "-1to1");

export const quantizedLeakyRelu = unaryKernel((v, a) => (v > 0 ? v : f32(v * f32(a["negative_slope"] as number))));

export const quantizedHardtanh = unaryKernel((v, a) => {
  const lo = f32(a["min_val"] as number);
  const hi = f32(a["max_val"] as number);
  return v < lo ? lo : v > hi ? hi : v;
});

/** numpy broadcasting of two shapes (trailing dims aligned). */
function broadcastShapes(w: Where, a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const shape: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[i - (rank - a.length)] ?? 1;
    const db = b[i - (rank - b.length)] ?? 1;
    if (da !== db && da !== 1 && db !== 1) fail(w, "BAD_SHAPE", `cannot broadcast [${a.join(", ")}] and [${b.join(", ")}]`);
    shape.push(da === 1 ? db : da);
  }
  return shape;
}

/** `out[o + i] = f32(a[ia + i*sa] op b[ib + i*sb])` over one broadcast row, then relu when asked. */
type QuantizedRow = (a: Float32Array, ia: number, sa: number, b: Float32Array, ib: number, sb: number, out: Float32Array, o: number, len: number, relu: boolean) => void;

function binaryKernel(row: QuantizedRow): Kernel {
  return (inputs, attrs, ctx) => {
    const w: Where = { node: ctx.node, op: ctx.op };
    const a = dequantizeInput(w, inputs, 0, "a");
    const b = dequantizeInput(w, inputs, 3, "b");
    if (a.dtype !== b.dtype) fail(w, "BAD_DTYPE", `a and b must have the same dtype, got ${a.dtype} and ${b.dtype}`);
    const qp = requiredOutputQParams(w, inputs[6], inputs[7]);
    const relu = attrs["fuse_relu"] === true;
    const shape = broadcastShapes(w, a.shape, b.shape);
    const out = new Float32Array(numel(shape));
    forEachRow(broadcastPlan([a.shape, b.shape], shape), (o, off, len, st) => row(a.values, off[0]!, st[0]!, b.values, off[1]!, st[1]!, out, o, len, relu));
    return [quantizeOutput(out, shape, a.dtype, qp)];
  };
}

// `relu && !(v > 0)` maps NaN and -0 to +0 as torch's fused relu does.
export const quantizedAdd = binaryKernel((a, ia, sa, b, ib, sb, out, o, len, relu) => {
  for (let i = 0; i < len; i++, ia += sa, ib += sb) {
    const v = Math.fround(a[ia]! + b[ib]!);
    out[o + i] = relu && !(v > 0) ? 0 : v;
  }
});
export const quantizedMul = binaryKernel((a, ia, sa, b, ib, sb, out, o, len, relu) => {
  for (let i = 0; i < len; i++, ia += sa, ib += sb) {
    const v = Math.fround(a[ia]! * b[ib]!);
    out[o + i] = relu && !(v > 0) ? 0 : v;
  }
});

/** torch.ops.quantized.cat: inputs (y_scale, y_zero_point, then (x, scale, zero point) per tensor). */
export const quantizedCat: Kernel = (inputs, attrs, ctx) => {
  const w: Where = { node: ctx.node, op: ctx.op };
  const qp = requiredOutputQParams(w, inputs[0], inputs[1]);
  if ((inputs.length - 2) % 3 !== 0 || inputs.length < 5) fail(w, "BAD_INPUT", "inputs after y_scale, y_zero_point must be (x, scale, zero point) triples");
  const parts: Dequantized[] = [];
  for (let i = 2; i < inputs.length; i += 3) parts.push(dequantizeInput(w, inputs, i, `x${(i - 2) / 3}`));
  const first = parts[0]!;
  const rank = first.shape.length;
  const dimAttr = attrs["dim"] as number;
  const dim = dimAttr < 0 ? dimAttr + rank : dimAttr;
  if (dim < 0 || dim >= rank) fail(w, "BAD_ATTRIBUTE", `dim ${dimAttr} is out of range for rank ${rank}`);
  let outer = 1;
  let inner = 1;
  for (let i = 0; i < dim; i++) outer *= first.shape[i]!;
  for (let i = dim + 1; i < rank; i++) inner *= first.shape[i]!;
  let total = 0;
  for (const p of parts) {
    const ok = p.dtype === first.dtype && p.shape.length === rank && p.shape.every((d, i) => i === dim || d === first.shape[i]);
    if (!ok) fail(w, "BAD_SHAPE", `cannot concatenate ${p.dtype} [${p.shape.join(", ")}] with ${first.dtype} [${first.shape.join(", ")}] on dim ${dim}`);
    total += p.shape[dim]!;
  }
  const out = new Float32Array(outer * total * inner);
  let offset = 0;
  for (const p of parts) {
    const chunk = p.shape[dim]! * inner;
    for (let o = 0; o < outer; o++) out.set(p.values.subarray(o * chunk, (o + 1) * chunk), o * total * inner + offset);
    offset += chunk;
  }
  const shape = [...first.shape];
  shape[dim] = total;
  return [quantizeOutput(out, shape, first.dtype, qp)];
};

// ---- pooling over the last two dims -------------------------------------------------------

function pairOf(w: Where, v: unknown, name: string, fallback?: [number, number]): [number, number] {
  const a = (v as number[] | undefined) ?? [];
  if (a.length === 0 && fallback !== undefined) return fallback;
  if (a.length === 1) return [a[0]!, a[0]!];
  if (a.length !== 2) fail(w, "BAD_ATTRIBUTE", `${name} must have 1 or 2 values, got [${a.join(", ")}]`);
  return [a[0]!, a[1]!];
}

/** PyTorch's pooling output size (pooling_output_shape): ceil mode drops a window that starts in the right padding. */
function poolOut(inDim: number, k: number, s: number, p: number, d: number, ceil: boolean): number {
  const span = inDim + 2 * p - d * (k - 1) - 1 + (ceil ? s - 1 : 0);
  let out = Math.floor(span / s) + 1;
  if (ceil && (out - 1) * s >= inDim + p) out -= 1;
  return out;
}

interface Planes {
  readonly x: Dequantized;
  readonly planes: number;
  readonly h: number;
  readonly w: number;
}

function planesOf(w: Where, x: Dequantized): Planes {
  const r = x.shape.length;
  if (r < 3) fail(w, "BAD_SHAPE", `input must be [N, C, H, W] or [C, H, W], got [${x.shape.join(", ")}]`);
  const h = x.shape[r - 2]!;
  const wd = x.shape[r - 1]!;
  return { x, planes: numel(x.shape) / (h * wd || 1), h, w: wd };
}

/** A prepared window op: the output size and the reduction of one output cell of a plane. */
interface WindowOp {
  readonly size: [number, number];
  reduce(plane: Float32Array, oh: number, ow: number): number;
}

/** A pooling-style op: each output (plane, oh, ow) reduces a window of its plane. */
function windowKernel(prepare: (w: Where, p: Planes, attrs: Readonly<Record<string, unknown>>) => WindowOp): Kernel {
  return (inputs, attrs, ctx) => {
    const w: Where = { node: ctx.node, op: ctx.op };
    const x = dequantizeInput(w, inputs, 0, "x");
    const p = planesOf(w, x);
    const qp = outputQParams(w, inputs[3], inputs[4], () => [x.scale, x.zeroPoint]);
    const op = prepare(w, p, attrs);
    const [oh, ow] = op.size;
    if (!(oh >= 1 && ow >= 1)) fail(w, "BAD_SHAPE", `output size [${oh}, ${ow}] is empty for input [${x.shape.join(", ")}]`);
    const out = new Float32Array(p.planes * oh * ow);
    for (let pl = 0; pl < p.planes; pl++) {
      const plane = x.values.subarray(pl * p.h * p.w, (pl + 1) * p.h * p.w);
      for (let i = 0; i < oh; i++) {
        for (let j = 0; j < ow; j++) out[(pl * oh + i) * ow + j] = op.reduce(plane, i, j);
      }
    }
    return [quantizeOutput(out, [...x.shape.slice(0, -2), oh, ow], x.dtype, qp)];
  };
}

interface PoolGeometry {
  readonly k: [number, number];
  readonly s: [number, number];
  readonly pad: [number, number];
  readonly d: [number, number];
  readonly size: [number, number];
}

function poolGeometry(w: Where, p: Planes, attrs: Readonly<Record<string, unknown>>): PoolGeometry {
  const k = pairOf(w, attrs["kernel_size"], "kernel_size");
  const s = pairOf(w, attrs["stride"], "stride", k);
  const pad = pairOf(w, attrs["padding"], "padding");
  const d = pairOf(w, attrs["dilation"], "dilation", [1, 1]);
  if (pad[0] > k[0] / 2 || pad[1] > k[1] / 2) fail(w, "BAD_ATTRIBUTE", `padding [${pad.join(", ")}] must be at most half the kernel [${k.join(", ")}]`);
  const ceil = attrs["ceil_mode"] === true;
  const size: [number, number] = [poolOut(p.h, k[0], s[0], pad[0], d[0], ceil), poolOut(p.w, k[1], s[1], pad[1], d[1], ceil)];
  return { k, s, pad, d, size };
}

/** max_pool2d: the maximum over the window's positions inside the input (padding is -inf). */
export const quantizedMaxPool2d = windowKernel((w, p, attrs) => {
  const g = poolGeometry(w, p, attrs);
  return {
    size: g.size,
    reduce: (plane, oh, ow) => {
      let m = -Infinity;
      for (let a = 0; a < g.k[0]; a++) {
        const ih = oh * g.s[0] - g.pad[0] + a * g.d[0];
        if (ih < 0 || ih >= p.h) continue;
        for (let b = 0; b < g.k[1]; b++) {
          const iw = ow * g.s[1] - g.pad[1] + b * g.d[1];
          if (iw < 0 || iw >= p.w) continue;
          const v = plane[ih * p.w + iw]!;
          if (v > m) m = v;
        }
      }
      return m;
    },
  };
});

/**
 * avg_pool2d (ATen AvgPoolKernel.cpp): the window is clipped to the padded input for the
 * count_include_pad divisor and to the input for the sum; divisor_override replaces the divisor.
 */
export const quantizedAvgPool2d = windowKernel((w, p, attrs) => {
  const g = poolGeometry(w, p, attrs);
  const override = attrs["divisor_override"] as number;
  const includePad = attrs["count_include_pad"] === true;
  return {
    size: g.size,
    reduce: (plane, oh, ow) => {
      let h0 = oh * g.s[0] - g.pad[0];
      let w0 = ow * g.s[1] - g.pad[1];
      let h1 = Math.min(h0 + g.k[0], p.h + g.pad[0]);
      let w1 = Math.min(w0 + g.k[1], p.w + g.pad[1]);
      const poolSize = (h1 - h0) * (w1 - w0);
      h0 = Math.max(h0, 0);
      w0 = Math.max(w0, 0);
      h1 = Math.min(h1, p.h);
      w1 = Math.min(w1, p.w);
      if (h0 >= h1 || w0 >= w1) return 0;
      let sum = 0;
      for (let i = h0; i < h1; i++) for (let j = w0; j < w1; j++) sum += plane[i * p.w + j]!;
      const divisor = override > 0 ? override : includePad ? poolSize : (h1 - h0) * (w1 - w0);
      return f32(sum / divisor);
    },
  };
});

/** adaptive_avg_pool2d: output cell i averages input [floor(i * in / out), ceil((i + 1) * in / out)). */
export const quantizedAdaptiveAvgPool2d = windowKernel((w, p, attrs) => {
  const [outH, outW] = pairOf(w, attrs["output_size"], "output_size");
  return {
    size: [outH, outW],
    reduce: (plane, oh, ow) => {
      const h0 = Math.floor((oh * p.h) / outH);
      const h1 = Math.ceil(((oh + 1) * p.h) / outH);
      const w0 = Math.floor((ow * p.w) / outW);
      const w1 = Math.ceil(((ow + 1) * p.w) / outW);
      let sum = 0;
      for (let i = h0; i < h1; i++) for (let j = w0; j < w1; j++) sum += plane[i * p.w + j]!;
      return f32(sum / ((h1 - h0) * (w1 - w0)));
    },
  };
});

/**
 * upsample_nearest2d (ATen UpSample.h nearest_idx): source index `min(floor(f32(dst * scale)), in - 1)`
 * with the float32 scale `1 / scale_factor` when a scale factor is given, else `in / out`; equal
 * sizes copy and exact doubling halves the index.
 */
export const quantizedUpsampleNearest2d = windowKernel((w, p, attrs) => {
  const sizeAttr = attrs["output_size"] as number[] | undefined;
  const sf = attrs["scale_factor"] as number[] | undefined;
  if ((sizeAttr === undefined) === (sf === undefined)) fail(w, "BAD_ATTRIBUTE", "give exactly one of output_size and scale_factor");
  let size: [number, number];
  let scales: [number, number];
  if (sizeAttr !== undefined) {
    size = pairOf(w, sizeAttr, "output_size");
    scales = [f32(p.h / size[0]), f32(p.w / size[1])];
  } else {
    const [sh, sw] = pairOf(w, sf, "scale_factor");
    if (!(sh > 0 && sw > 0)) fail(w, "BAD_ATTRIBUTE", `scale_factor must be positive, got [${sh}, ${sw}]`);
    size = [Math.floor(p.h * sh), Math.floor(p.w * sw)];
    scales = [f32(1 / sh), f32(1 / sw)];
  }
  const src = (dst: number, inDim: number, outDim: number, scale: number): number => {
    if (outDim === inDim) return dst;
    if (outDim === 2 * inDim) return dst >> 1;
    return Math.min(Math.floor(f32(dst * scale)), inDim - 1);
  };
  return { size, reduce: (plane, oh, ow) => plane[src(oh, p.h, size[0], scales[0]) * p.w + src(ow, p.w, size[1], scales[1])]! };
});

/** torch.mean(x, dim, keepdim) on a quantized tensor. */
export const quantizedMean: Kernel = (inputs, attrs, ctx) => {
  const w: Where = { node: ctx.node, op: ctx.op };
  const x = dequantizeInput(w, inputs, 0, "x");
  const qp = outputQParams(w, inputs[3], inputs[4], () => [x.scale, x.zeroPoint]);
  const rank = x.shape.length;
  const dims = new Set((attrs["dim"] as number[]).map((d) => {
    const a = d < 0 ? d + rank : d;
    if (a < 0 || a >= rank) fail(w, "BAD_ATTRIBUTE", `dim ${d} is out of range for rank ${rank}`);
    return a;
  }));
  const keep = attrs["keepdim"] === true;
  const outShape: number[] = [];
  const keptShape: number[] = [];
  x.shape.forEach((d, i) => {
    if (!dims.has(i)) {
      outShape.push(d);
      keptShape.push(d);
    } else if (keep) outShape.push(1);
  });
  const outN = numel(keptShape);
  const sums = new Float64Array(outN);
  let count = 1;
  for (const d of dims) count *= x.shape[d]!;
  const idx = new Array<number>(rank).fill(0);
  for (let i = 0; i < x.values.length; i++) {
    let rem = i;
    for (let d = rank - 1; d >= 0; d--) {
      idx[d] = rem % x.shape[d]!;
      rem = Math.floor(rem / x.shape[d]!);
    }
    let o = 0;
    for (let d = 0; d < rank; d++) if (!dims.has(d)) o = o * x.shape[d]! + idx[d]!;
    sums[o] = sums[o]! + x.values[i]!;
  }
  const out = new Float32Array(outN);
  for (let o = 0; o < outN; o++) out[o] = f32(sums[o]! / count);
  return [quantizeOutput(out, outShape, x.dtype, qp)];
};
