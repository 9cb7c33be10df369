/**
 * Pooling (ONNX MaxPool-12, AveragePool-19, GlobalAveragePool, GlobalMaxPool; torch
 * adaptive_avg_pool2d). Sums accumulate in float64 and round once.
 */
import { QforgeError, dtypeInfo, numel } from "@qforge/ir";
import { registerKernel } from "../kernel.js";
import { fromValues, input, int64Tensor, isFloatDType, outShape, readNumbers } from "../util/tensors.js";
import { windowGeometry, windowTaps } from "../util/window.js";

/**
 * ONNX MaxPool: the max over the window's taps inside the input (padding never wins). NaN
 * propagates (as torch.max_pool2d); ties keep the first tap in row-major order (as ORT). Indices
 * are flat over the whole input: ((n*C + c) * spatial_size + spatial offset), the spatial offset
 * row-major, or column-major when storage_order=1 (ORT: h + w*H).
 */
registerKernel("max_pool", (inputs, attrs, ctx) => {
  const x = input(inputs, 0, ctx);
  const shape = outShape(ctx);
  const planes = x.shape[0]! * x.shape[1]!;
  const inSpatial = x.shape.slice(2);
  const outSpatial = shape.slice(2);
  const kernel = attrs["kernel_shape"] as number[];
  const taps = windowTaps(windowGeometry(attrs, inSpatial, outSpatial, kernel), inSpatial, outSpatial);
  const inSize = numel(inSpatial);
  const outSize = numel(outSpatial);
  const vx = readNumbers(x);
  const out = new Float64Array(planes * outSize);
  const idx = new Array<number>(planes * outSize);
  const columnMajor = (attrs["storage_order"] as number) === 1;
  const colIndex = (flat: number): number => {
    // Row-major flat spatial offset -> column-major offset.
    let r = flat;
    let res = 0;
    let mul = 1;
    const coords = new Array<number>(inSpatial.length);
    for (let d = inSpatial.length - 1; d >= 0; d--) { coords[d] = r % inSpatial[d]!; r = Math.floor(r / inSpatial[d]!); }
    for (let d = 0; d < inSpatial.length; d++) { res += coords[d]! * mul; mul *= inSpatial[d]!; }
    return res;
  };
  const lowest = isFloatDType(x.dtype) ? -Infinity : dtypeInfo(x.dtype).min;
  for (let p = 0; p < planes; p++) {
    for (let o = 0; o < outSize; o++) {
      const t = taps[o]!;
      let best = lowest;
      let bestAt = -1;
      for (let q = 1; q < t.length; q += 2) {
        const v = vx[p * inSize + t[q]!]!;
        if (bestAt < 0 || v > best || (Number.isNaN(v) && !Number.isNaN(best))) {
          best = v;
          bestAt = t[q]!;
        }
      }
      out[p * outSize + o] = best;
      idx[p * outSize + o] = bestAt < 0 ? -1 : p * inSize + (columnMajor ? colIndex(bestAt) : bestAt);
    }
  }
  const y = fromValues(x.dtype, shape, out);
  return ctx.numOutputs > 1 ? [y, int64Tensor(idx, shape)] : [y];
});

/**
 * ONNX AveragePool: the sum of the taps inside the input divided by their number
 * (count_include_pad=0) or by the number of taps inside the padded input [-padBegin, in + padEnd)
 * (count_include_pad=1; a ceil_mode window hanging past the end padding is clipped, as ORT and
 * torch's avg_pool do).
 */
registerKernel("average_pool", (inputs, attrs, ctx) => {
  const x = input(inputs, 0, ctx);
  if (!isFloatDType(x.dtype)) throw new QforgeError("BAD_DTYPE", `average_pool: the reference kernel supports float tensors, got ${x.dtype}`, { node: ctx.node });
  const shape = outShape(ctx);
  const planes = x.shape[0]! * x.shape[1]!;
  const inSpatial = x.shape.slice(2);
  const outSpatial = shape.slice(2);
  const kernel = attrs["kernel_shape"] as number[];
  const geo = windowGeometry(attrs, inSpatial, outSpatial, kernel);
  const taps = windowTaps(geo, inSpatial, outSpatial);
  const includePad = (attrs["count_include_pad"] as number) !== 0;
  const inSize = numel(inSpatial);
  const outSize = numel(outSpatial);
  // Per output position: the divisor.
  const divisors = new Float64Array(outSize);
  const outCoords = new Array<number>(outSpatial.length);
  for (let o = 0; o < outSize; o++) {
    if (!includePad) {
      divisors[o] = taps[o]!.length / 2;
      continue;
    }
    let r = o;
    for (let d = outSpatial.length - 1; d >= 0; d--) { outCoords[d] = r % outSpatial[d]!; r = Math.floor(r / outSpatial[d]!); }
    let count = 1;
    for (let d = 0; d < outSpatial.length; d++) {
      let c = 0;
      for (let k = 0; k < kernel[d]!; k++) {
        const pos = outCoords[d]! * geo.strides[d]! - geo.padBegin[d]! + k * geo.dilations[d]!;
        if (pos >= -geo.padBegin[d]! && pos < inSpatial[d]! + geo.padEnd[d]!) c++;
      }
      count *= c;
    }
    divisors[o] = count;
  }
  const vx = readNumbers(x);
  const out = new Float64Array(planes * outSize);
  for (let p = 0; p < planes; p++) {
    for (let o = 0; o < outSize; o++) {
      const t = taps[o]!;
      let s = 0;
      for (let q = 1; q < t.length; q += 2) s += vx[p * inSize + t[q]!]!;
      out[p * outSize + o] = s / divisors[o]!;
    }
  }
  return [fromValues(x.dtype, shape, out)];
});

function globalPool(op: string, reduce: (v: Float64Array, start: number, n: number) => number): void {
  registerKernel(op, (inputs, _attrs, ctx) => {
    const x = input(inputs, 0, ctx);
    const shape = outShape(ctx);
    const planes = x.shape[0]! * x.shape[1]!;
    const size = numel(x.shape.slice(2));
    const vx = readNumbers(x);
    const out = new Float64Array(planes);
    for (let p = 0; p < planes; p++) out[p] = reduce(vx, p * size, size);
    return [fromValues(x.dtype, shape, out)];
  });
}

globalPool("global_average_pool", (v, start, n) => {
  let s = 0;
  for (let i = 0; i < n; i++) s += v[start + i]!;
  return s / n;
});
globalPool("global_max_pool", (v, start, n) => {
  let m = -Infinity;
  for (let i = 0; i < n; i++) {
    const e = v[start + i]!;
    if (e > m || Number.isNaN(e)) m = e;
    if (Number.isNaN(m)) break;
  }
  return m;
});

/**
 * torch adaptive_avg_pool2d: output cell (i, j) averages rows [floor(i*H/oh), ceil((i+1)*H/oh)) and
 * columns [floor(j*W/ow), ceil((j+1)*W/ow)) (aten/src/ATen/native/AdaptiveAveragePooling.cpp
 * start_index / end_index).
 */
registerKernel("adaptive_avg_pool2d", (inputs, _attrs, ctx) => {
  const x = input(inputs, 0, ctx);
  const shape = outShape(ctx);
  const r = x.shape.length;
  const [h, w] = [x.shape[r - 2]!, x.shape[r - 1]!];
  const [oh, ow] = [shape[r - 2]!, shape[r - 1]!];
  const planes = numel(x.shape.slice(0, -2));
  const vx = readNumbers(x);
  const out = new Float64Array(planes * oh * ow);
  const start = (i: number, n: number, on: number): number => Math.floor((i * n) / on);
  const end = (i: number, n: number, on: number): number => Math.ceil(((i + 1) * n) / on);
  for (let p = 0; p < planes; p++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        const [h0, h1, w0, w1] = [start(i, h, oh), end(i, h, oh), start(j, w, ow), end(j, w, ow)];
        let s = 0;
        for (let y = h0; y < h1; y++) for (let z = w0; z < w1; z++) s += vx[(p * h + y) * w + z]!;
        out[(p * oh + i) * ow + j] = s / ((h1 - h0) * (w1 - w0));
      }
    }
  }
  return [fromValues(x.dtype, shape, out)];
});
