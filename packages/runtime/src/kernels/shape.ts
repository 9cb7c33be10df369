/**
 * Shape and data-movement kernels (ONNX semantics, opsets named in the schemas in
 * packages/ir/src/ops/shape.ts). Output shapes come from the schema's inference, which saw the
 * actual shape/axes/pads inputs; the kernels only move elements (raw storage, so every dtype
 * including int64 and packed sub-byte integers moves exactly) and always return fresh storage.
 */
import {
  QforgeError, clone, dtypeInfo, float32ToFloat8E4M3FnBits, float32ToFloat8E5M2Bits, getElement, numel, stridesOf, tensor, zeros,
  type DType, type Tensor,
} from "@qforge/ir";
import { registerKernel, type KernelContext } from "../kernel.js";
import {
  broadcastIndex, copyElement, elementCopier, fromValues, input, int64Tensor, isWideInt, moveElements, outShape, readBigInts, readInts, readNumbers,
} from "../util/tensors.js";

/** A copy of x's storage under the inferred output shape (reshape, flatten, squeeze, unsqueeze). */
function viewKernel(op: string): void {
  registerKernel(op, (inputs, _attrs, ctx) => {
    const x = input(inputs, 0, ctx);
    const shape = outShape(ctx);
    if (numel(shape) !== numel(x.shape)) {
      throw new QforgeError("BAD_SHAPE", `${op}: [${x.shape.join(",")}] cannot become [${shape.join(",")}]`, { node: ctx.node });
    }
    return [tensor(x.dtype, shape, clone(x).data)];
  });
}

viewKernel("reshape");
viewKernel("flatten");
viewKernel("squeeze");
viewKernel("unsqueeze");

function normAxis(a: number, rank: number, ctx: KernelContext): number {
  const v = a < 0 ? a + rank : a;
  if (v < 0 || v >= rank) throw new QforgeError("BAD_DATA", `${ctx.op}: axis ${a} out of range for rank ${rank}`, { node: ctx.node });
  return v;
}

/** ONNX Transpose: out[c] = x[i] with i[perm[d]] = c[d] (output dim d walks input dim perm[d]). */
registerKernel("transpose", (inputs, attrs, ctx) => {
  const x = input(inputs, 0, ctx);
  const r = x.shape.length;
  const perm = ((attrs["perm"] as number[] | undefined) ?? x.shape.map((_, i) => r - 1 - i)).map((a) => (a < 0 ? a + r : a));
  const inStrides = stridesOf(x.shape);
  const strides = perm.map((a) => inStrides[a]!);
  return [moveElements(x, outShape(ctx), (c) => {
    let s = 0;
    for (let d = 0; d < r; d++) s += c[d]! * strides[d]!;
    return s;
  })];
});

registerKernel("concat", (inputs, attrs, ctx) => {
  const xs = inputs.map((_, i) => input(inputs, i, ctx));
  const shape = outShape(ctx);
  const axis = normAxis(attrs["axis"] as number, shape.length, ctx);
  const out = zeros(xs[0]!.dtype, shape);
  const outer = numel(shape.slice(0, axis));
  const inner = numel(shape.slice(axis + 1));
  const outRow = shape[axis]! * inner;
  let offset = 0;
  for (const x of xs) {
    const row = x.shape[axis]! * inner;
    const copy = elementCopier(x, out);
    for (let o = 0; o < outer; o++) for (let k = 0; k < row; k++) copy(o * row + k, o * outRow + offset + k);
    offset += row;
  }
  return [out];
});

/** ONNX Split-18: output k takes the next shape[axis] rows of its inferred shape. */
registerKernel("split", (inputs, attrs, ctx) => {
  const x = input(inputs, 0, ctx);
  const axis = normAxis(attrs["axis"] as number, x.shape.length, ctx);
  const outer = numel(x.shape.slice(0, axis));
  const inner = numel(x.shape.slice(axis + 1));
  const inRow = x.shape[axis]! * inner;
  let offset = 0;
  const outs: Tensor[] = [];
  for (let k = 0; k < ctx.numOutputs; k++) {
    const shape = outShape(ctx, k);
    const out = zeros(x.dtype, shape);
    const row = shape[axis]! * inner;
    const copy = elementCopier(x, out);
    for (let o = 0; o < outer; o++) for (let e = 0; e < row; e++) copy(o * inRow + offset + e, o * row + e);
    offset += row;
    outs.push(out);
  }
  return outs;
});

/**
 * ONNX Slice-13: per sliced axis, the first index is start (negative: + dim) clamped to [0, dim]
 * ([0, dim-1] for negative steps); the count is the inferred output dim.
 */
registerKernel("slice", (inputs, _attrs, ctx) => {
  const x = input(inputs, 0, ctx);
  const r = x.shape.length;
  const starts = readInts(input(inputs, 1, ctx));
  const axes = inputs[3] === undefined ? starts.map((_, i) => i) : readInts(inputs[3]).map((a) => normAxis(a, r, ctx));
  const steps = inputs[4] === undefined ? starts.map(() => 1) : readInts(inputs[4]);
  const first = new Array<number>(r).fill(0);
  const step = new Array<number>(r).fill(1);
  axes.forEach((a, j) => {
    const d = x.shape[a]!;
    const st = steps[j]!;
    let s = starts[j]!;
    s = s < 0 ? s + d : s;
    first[a] = st > 0 ? Math.min(Math.max(s, 0), d) : Math.min(Math.max(s, 0), d - 1);
    step[a] = st;
  });
  const strides = stridesOf(x.shape);
  return [moveElements(x, outShape(ctx), (c) => {
    let s = 0;
    for (let d = 0; d < r; d++) s += (first[d]! + c[d]! * step[d]!) * strides[d]!;
    return s;
  })];
});

/** ONNX Gather-13: out[pre, j..., post] = data[pre, indices[j...], post]; negative indices + dim. */
registerKernel("gather", (inputs, attrs, ctx) => {
  const x = input(inputs, 0, ctx);
  const indicesT = input(inputs, 1, ctx);
  const r = x.shape.length;
  const axis = normAxis(attrs["axis"] as number, r, ctx);
  const dim = x.shape[axis]!;
  const indices = readInts(indicesT).map((i) => {
    const v = i < 0 ? i + dim : i;
    if (v < 0 || v >= dim) throw new QforgeError("BAD_DATA", `gather: index ${i} is out of range for dim ${axis} of size ${dim}`, { node: ctx.node });
    return v;
  });
  const q = indicesT.shape.length;
  const idxStrides = stridesOf(indicesT.shape);
  const strides = stridesOf(x.shape);
  return [moveElements(x, outShape(ctx), (c) => {
    let j = 0;
    for (let d = 0; d < q; d++) j += c[axis + d]! * idxStrides[d]!;
    let s = indices[j]! * strides[axis]!;
    for (let d = 0; d < axis; d++) s += c[d]! * strides[d]!;
    for (let d = axis + 1; d < r; d++) s += c[d + q - 1]! * strides[d]!;
    return s;
  })];
});

registerKernel("expand", (inputs, _attrs, ctx) => {
  const x = input(inputs, 0, ctx);
  const shape = outShape(ctx);
  const map = broadcastIndex(x.shape, shape);
  const strides = stridesOf(shape);
  return [moveElements(x, shape, (c) => {
    let f = 0;
    for (let d = 0; d < c.length; d++) f += c[d]! * strides[d]!;
    return map[f]!;
  })];
});

registerKernel("tile", (inputs, _attrs, ctx) => {
  const x = input(inputs, 0, ctx);
  const strides = stridesOf(x.shape);
  return [moveElements(x, outShape(ctx), (c) => {
    let s = 0;
    for (let d = 0; d < c.length; d++) s += (c[d]! % x.shape[d]!) * strides[d]!;
    return s;
  })];
});

/**
 * ONNX Pad-19. Negative pads crop first; the padded region then reads the cropped tensor: constant
 * (constant_value, default 0), edge (nearest element), reflect (mirror without repeating the edge,
 * as numpy.pad(mode="reflect"), repeatedly for pads longer than the dim) or wrap (periodic).
 */
registerKernel("pad", (inputs, attrs, ctx) => {
  const x = input(inputs, 0, ctx);
  const r = x.shape.length;
  const pads = readInts(input(inputs, 1, ctx));
  const axes = inputs[3] === undefined ? x.shape.map((_, i) => i) : readInts(inputs[3]).map((a) => normAxis(a, r, ctx));
  const mode = attrs["mode"] as string;
  const begin = new Array<number>(r).fill(0);
  const end = new Array<number>(r).fill(0);
  axes.forEach((a, j) => { begin[a] = pads[j]!; end[a] = pads[j + axes.length]!; });
  // The cropped source along each dim: [cropStart, cropStart + len).
  const cropStart = begin.map((b) => Math.max(0, -b));
  const len = x.shape.map((d, i) => d - cropStart[i]! - Math.max(0, -end[i]!));
  const lead = begin.map((b) => Math.max(0, b));
  const shape = outShape(ctx);
  if (mode !== "constant") {
    shape.forEach((d, i) => {
      if (len[i]! <= 0 && d > 0) throw new QforgeError("BAD_DATA", `pad: mode ${mode} cannot pad dim ${i}, which is empty after cropping`, { node: ctx.node });
    });
  }
  const mapIndex = (p: number, n: number): number => {
    if (p >= 0 && p < n) return p;
    if (mode === "edge") return p < 0 ? 0 : n - 1;
    if (mode === "wrap") return ((p % n) + n) % n;
    if (mode === "reflect") {
      if (n === 1) return 0;
      const period = 2 * (n - 1);
      const m = ((p % period) + period) % period;
      return m < n ? m : period - m;
    }
    return -1;
  };
  const strides = stridesOf(x.shape);
  const fill = zeros(x.dtype, [1]);
  const cv = inputs[2];
  if (cv !== undefined && numel(cv.shape) > 0) copyElement(cv, 0, fill, 0);
  return [moveElements(x, shape, (c) => {
    let s = 0;
    for (let d = 0; d < r; d++) {
      const i = mapIndex(c[d]! - lead[d]!, len[d]!);
      if (i < 0) return -1;
      s += (cropStart[d]! + i) * strides[d]!;
    }
    return s;
  }, fill)];
});

registerKernel("shape", (inputs, attrs, ctx) => {
  const x = input(inputs, 0, ctx);
  const r = x.shape.length;
  const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
  const start = clamp(attrs["start"] as number);
  const end = clamp((attrs["end"] as number | undefined) ?? r);
  return [int64Tensor(x.shape.slice(start, Math.max(start, end)))];
});

registerKernel("size", (inputs, _attrs, ctx) => [int64Tensor([numel(input(inputs, 0, ctx).shape)], [])]);

/**
 * Converts every element to `dtype` (the rules of @qforge/ir's convert.ts: floats round to nearest
 * even, integers truncate toward zero and wrap, nonzero -> true). int64 sources convert through
 * bigint so that integer targets get exact bits. saturate=1 with a float8 target clamps finite
 * overflow and ±Inf to ±max (ONNX Cast-19); saturate=0 gives NaN (e4m3fn) or ±Inf (e5m2).
 */
function castTo(x: Tensor, dtype: DType, saturate: boolean): Tensor {
  const n = numel(x.shape);
  if (dtype === "float8_e4m3fn" || dtype === "float8_e5m2") {
    const out = zeros(dtype, x.shape);
    const enc = dtype === "float8_e4m3fn" ? float32ToFloat8E4M3FnBits : float32ToFloat8E5M2Bits;
    const v = readNumbers(x);
    for (let i = 0; i < n; i++) (out.data as Uint8Array)[i] = enc(v[i]!, { saturate });
    return out;
  }
  const kind = dtypeInfo(dtype).kind;
  if (x.dtype === "int64" && kind !== "float") return fromValues(dtype, x.shape, readBigInts(x));
  return fromValues(dtype, x.shape, readNumbers(x));
}

registerKernel("cast", (inputs, attrs, ctx) => [castTo(input(inputs, 0, ctx), ctx.outputTypes[0]!.dtype, (attrs["saturate"] as number) !== 0)]);
registerKernel("cast_like", (inputs, attrs, ctx) => [castTo(input(inputs, 0, ctx), ctx.outputTypes[0]!.dtype, (attrs["saturate"] as number) !== 0)]);

registerKernel("constant_of_shape", (inputs, attrs, ctx) => {
  input(inputs, 0, ctx);
  const t = ctx.outputTypes[0]!;
  const shape = outShape(ctx);
  const value = attrs["value"] as number;
  return [fromValues(t.dtype, shape, new Array<number>(numel(shape)).fill(value))];
});

/** ONNX Range-11: output[i] = start + i * delta (the spec's formula), i < the inferred length. */
registerKernel("range", (inputs, _attrs, ctx) => {
  const [start, , delta] = [0, 1, 2].map((i) => input(inputs, i, ctx));
  const n = outShape(ctx)[0]!;
  const dtype = start!.dtype;
  if (isWideInt(dtype)) {
    const s = readBigInts(start!)[0]!;
    const d = readBigInts(delta!)[0]!;
    return [fromValues(dtype, [n], Array.from({ length: n }, (_, i) => s + BigInt(i) * d))];
  }
  const s = getElement(start!, 0);
  const d = getElement(delta!, 0);
  return [fromValues(dtype, [n], Array.from({ length: n }, (_, i) => s + i * d))];
});
