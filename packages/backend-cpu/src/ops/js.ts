/**
 * TypeScript kernels ("js" tier) for the float32 elementwise, normalization, pooling and
 * data-movement ops around the GEMMs and convolutions (everything PP-OCRv4 needs that is not fused
 * into a conv epilogue). They run on both tiers' sessions, write into pooled buffers, and compute
 * each element with the same float64 formula as the reference kernel, rounded once to float32 on
 * store, so their results equal the reference's; data movement is exact for any unpacked dtype.
 * View ops (reshape, flatten, squeeze, unsqueeze) return the input's storage under a new shape.
 */
import {
  dtypeInfo, getElement, getOp, inferNode, numel, resolveAttrs, stridesOf,
  type DType, type Node, type Tensor, type TypedArray, type ValueType,
} from "@qforge/ir";
import { erf } from "@qforge/runtime";
import { scalarOf, skip, type LowerContext, type Lowered, type Lowering, type RunContext } from "../lower.js";

type F = Float32Array;

function jsStep(kernel: string, run: (inputs: readonly (Tensor | undefined)[], rc: RunContext) => Tensor[], note?: string): Lowered {
  return { kernel: `js_${kernel}`, tier: "js", ...(note !== undefined ? { note } : {}), run };
}

/** Output types of a node for concrete inputs (shape-like inputs read from the tensors). */
function outTypes(node: Node, inputs: readonly (Tensor | undefined)[]): ValueType[] {
  const types = inputs.map((t) => (t === undefined ? undefined : { dtype: t.dtype, shape: t.shape }));
  return inferNode(node.op, node.name, types, node.attrs, node.outputs.length, (i) => inputs[i]);
}

function outShape(node: Node, inputs: readonly (Tensor | undefined)[], i = 0): number[] {
  return outTypes(node, inputs)[i]!.shape as number[];
}

function allFloat32(ctx: LowerContext, node: Node, idx: readonly number[]): boolean {
  return idx.every((i) => node.inputs[i] !== undefined && node.inputs[i] !== "" && ctx.dtype(node.inputs[i]!) === "float32");
}

/** Unpacked storage (data movement copies elements one to one). */
function movable(d: DType | undefined): boolean {
  return d !== undefined && !dtypeInfo(d).packed;
}

// ---- binary with numpy broadcasting ------------------------------------------------------------------

/**
 * Iterates the output of a broadcast in rows: callback(outOffset, aOffset, bOffset, aStride,
 * bStride, len) over the last dimension, after merging adjacent dims that both operands traverse
 * contiguously (or both repeat), so a same-shape or per-channel broadcast becomes few long rows.
 */
export function broadcastRows(out: readonly number[], as: readonly number[], bs: readonly number[],
  row: (o: number, ia: number, ib: number, sa: number, sb: number, len: number) => void): void {
  const r = out.length;
  const stride = (s: readonly number[]): number[] => {
    const full = new Array<number>(r - s.length).fill(1).concat(s);
    const st = stridesOf(full);
    return full.map((d, i) => (d === 1 && out[i] !== 1 ? 0 : st[i]!));
  };
  if (r === 0) {
    row(0, 0, 0, 0, 0, 1);
    return;
  }
  // Coalesce from the innermost dim outwards.
  const dims: number[] = [out[r - 1]!];
  const sta: number[] = [stride(as)[r - 1]!];
  const stb: number[] = [stride(bs)[r - 1]!];
  const fa = stride(as);
  const fb = stride(bs);
  for (let i = r - 2; i >= 0; i--) {
    const inner = dims[0]!;
    if (fa[i] === sta[0]! * inner && fb[i] === stb[0]! * inner) {
      dims[0] = inner * out[i]!;
    } else {
      dims.unshift(out[i]!);
      sta.unshift(fa[i]!);
      stb.unshift(fb[i]!);
    }
  }
  const k = dims.length;
  const len = dims[k - 1]!;
  const rows = numel(dims.slice(0, -1));
  const idx = new Array<number>(k).fill(0);
  let ia = 0;
  let ib = 0;
  for (let q = 0; q < rows; q++) {
    row(q * len, ia, ib, sta[k - 1]!, stb[k - 1]!, len);
    for (let d = k - 2; d >= 0; d--) {
      idx[d]!++;
      ia += sta[d]!;
      ib += stb[d]!;
      if (idx[d]! < dims[d]!) break;
      ia -= sta[d]! * dims[d]!;
      ib -= stb[d]! * dims[d]!;
      idx[d] = 0;
    }
  }
}

export function broadcastShape(a: readonly number[], b: readonly number[]): number[] | undefined {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const da = a[i - (r - a.length)] ?? 1;
    const db = b[i - (r - b.length)] ?? 1;
    if (da !== db && da !== 1 && db !== 1) return undefined;
    out.push(da === 1 ? db : da);
  }
  return out;
}

type BinFn = (x: number, y: number) => number;
const BINARY: Readonly<Record<string, BinFn>> = {
  add: (x, y) => x + y,
  sub: (x, y) => x - y,
  mul: (x, y) => x * y,
  div: (x, y) => x / y,
  pow: Math.pow,
  max: (x, y) => (Number.isNaN(x) || Number.isNaN(y) ? NaN : Math.max(x, y)),
  min: (x, y) => (Number.isNaN(x) || Number.isNaN(y) ? NaN : Math.min(x, y)),
};

const binary: Lowering = (node, ctx) => {
  if (!allFloat32(ctx, node, [0, 1])) return skip("float32 operands only");
  const f = BINARY[node.op]!;
  const add = node.op === "add";
  const mul = node.op === "mul";
  return jsStep(node.op, ([at, bt], rc) => {
    const a = at!;
    const b = bt!;
    const shape = broadcastShape(a.shape, b.shape) ?? outShape(node, [a, b]);
    const out = rc.alloc("float32", shape);
    const o = out.data as F;
    const x = a.data as F;
    const y = b.data as F;
    broadcastRows(shape, a.shape, b.shape, (oo, ia, ib, sa, sb, len) => {
      // The common layouts get loops V8 compiles well; all compute the same float64 op.
      if (sa === 1 && sb === 1) {
        if (add) for (let i = 0; i < len; i++) o[oo + i] = x[ia + i]! + y[ib + i]!;
        else if (mul) for (let i = 0; i < len; i++) o[oo + i] = x[ia + i]! * y[ib + i]!;
        else for (let i = 0; i < len; i++) o[oo + i] = f(x[ia + i]!, y[ib + i]!);
      } else if (sa === 1 && sb === 0) {
        const v = y[ib]!;
        if (add) for (let i = 0; i < len; i++) o[oo + i] = x[ia + i]! + v;
        else if (mul) for (let i = 0; i < len; i++) o[oo + i] = x[ia + i]! * v;
        else for (let i = 0; i < len; i++) o[oo + i] = f(x[ia + i]!, v);
      } else {
        for (let i = 0; i < len; i++) o[oo + i] = f(x[ia + i * sa]!, y[ib + i * sb]!);
      }
    });
    return [out];
  });
};

// ---- unary ---------------------------------------------------------------------------------------------

function unaryFn(node: Node, ctx: LowerContext): ((x: number) => number) | string {
  const attrs = resolveAttrs(getOp(node.op), node.attrs, node.name);
  const r = Math.fround;
  switch (node.op) {
    case "relu": return (x) => (x < 0 ? 0 : x);
    case "sigmoid": return (x) => 1 / (1 + Math.exp(-x));
    case "tanh": return Math.tanh;
    case "exp": return Math.exp;
    case "log": return Math.log;
    case "sqrt": return Math.sqrt;
    case "neg": return (x) => -x;
    case "abs": return Math.abs;
    case "floor": return Math.floor;
    case "ceil": return Math.ceil;
    case "reciprocal": return (x) => 1 / x;
    case "erf": return erf;
    case "identity": return (x) => x;
    case "hardswish": return (x) => x * Math.max(0, Math.min(1, x / 6 + 0.5));
    case "hard_sigmoid": {
      const alpha = r(attrs["alpha"] as number);
      const beta = r(attrs["beta"] as number);
      return (x) => Math.max(0, Math.min(1, alpha * x + beta));
    }
    case "leaky_relu": {
      const alpha = r(attrs["alpha"] as number);
      return (x) => (x >= 0 ? x : alpha * x);
    }
    case "clip": {
      const loV = node.inputs[1];
      const hiV = node.inputs[2];
      const lo = loV === undefined || loV === "" ? -Infinity : scalarOf(ctx.constant(loV));
      const hi = hiV === undefined || hiV === "" ? Infinity : scalarOf(ctx.constant(hiV));
      if (lo === undefined || hi === undefined) return "clip bounds that are not constants";
      return (x) => {
        const v = x < lo ? lo : x;
        return v > hi ? hi : v;
      };
    }
    default: return `no js kernel for ${node.op}`;
  }
}

const unary: Lowering = (node, ctx) => {
  if (!allFloat32(ctx, node, [0])) return skip("float32 input only");
  const f = unaryFn(node, ctx);
  if (typeof f === "string") return skip(f);
  return { ...jsStep(node.op, ([xt], rc) => {
    const x = xt!;
    const out = rc.alloc("float32", x.shape);
    const o = out.data as F;
    const v = x.data as F;
    for (let i = 0; i < v.length; i++) o[i] = f(v[i]!);
    return [out];
  }), inputs: [node.inputs[0]!] };
};

// ---- softmax, reductions, normalization, pooling -----------------------------------------------------

function around(shape: readonly number[], axis: number): [number, number, number] {
  return [numel(shape.slice(0, axis)), shape[axis] ?? 1, numel(shape.slice(axis + 1))];
}

/** ONNX Softmax-13 along one axis: max-subtracted exp in float64, as the reference kernel. */
const softmax: Lowering = (node, ctx) => {
  if (!allFloat32(ctx, node, [0])) return skip("float32 input only");
  const axisAttr = resolveAttrs(getOp("softmax"), node.attrs, node.name)["axis"] as number;
  return jsStep("softmax", ([xt], rc) => {
    const x = xt!;
    const r = x.shape.length;
    const axis = r === 0 ? 0 : axisAttr < 0 ? axisAttr + r : axisAttr;
    const [outer, n, inner] = around(x.shape, axis);
    const v = x.data as F;
    const out = rc.alloc("float32", x.shape);
    const o = out.data as F;
    const e = new Float64Array(n);
    for (let a = 0; a < outer; a++) {
      for (let i = 0; i < inner; i++) {
        const base = a * n * inner + i;
        let max = -Infinity;
        for (let k = 0; k < n; k++) max = Math.max(max, v[base + k * inner]!);
        let sum = 0;
        for (let k = 0; k < n; k++) {
          const t = Math.exp(v[base + k * inner]! - max);
          e[k] = t;
          sum += t;
        }
        for (let k = 0; k < n; k++) o[base + k * inner] = e[k]! / sum;
      }
    }
    return [out];
  });
};

/** reduce_mean (ONNX ReduceMean-18): float64 sums in flat element order, as the reference kernel. */
const reduceMean: Lowering = (node, ctx) => {
  if (!allFloat32(ctx, node, [0])) return skip("float32 input only");
  const axesV = node.inputs[1];
  const axesT = axesV === undefined || axesV === "" ? undefined : ctx.constant(axesV);
  if (axesV !== undefined && axesV !== "" && axesT === undefined) return skip("runtime axes");
  const noop = (resolveAttrs(getOp("reduce_mean"), node.attrs, node.name)["noop_with_empty_axes"] as number) !== 0;
  const axesList = axesT === undefined ? [] : Array.from({ length: numel(axesT.shape) }, (_, i) => getElement(axesT, i));
  return jsStep("reduce_mean", (inputs, rc) => {
    const x = inputs[0]!;
    const shape = outShape(node, inputs);
    const r = x.shape.length;
    const v = x.data as F;
    const out = rc.alloc("float32", shape);
    const o = out.data as F;
    if (axesList.length === 0 && noop) {
      o.set(v);
      return [out];
    }
    const reduced = new Set(axesList.length === 0 ? x.shape.map((_, i) => i) : axesList.map((a) => (a < 0 ? a + r : a)));
    const kept = x.shape.map((d, i) => (reduced.has(i) ? 1 : d));
    const keptStrides = stridesOf(kept);
    const outN = numel(kept);
    const acc = new Float64Array(outN);
    const counts = numel(x.shape) / Math.max(outN, 1);
    if (r > 0 && reduced.size === 1 && reduced.has(r - 1)) {
      // Only the last axis: contiguous rows, summed in order.
      const n = x.shape[r - 1]!;
      for (let q = 0; q < outN; q++) {
        let sum = 0;
        for (let k = 0; k < n; k++) sum += v[q * n + k]!;
        acc[q] = sum;
      }
    } else {
      const strides = x.shape.map((_, i) => (reduced.has(i) ? 0 : keptStrides[i]!));
      broadcastRowsOf(x.shape, strides, (i0, t0, st, len) => {
        for (let i = 0; i < len; i++) acc[t0 + i * st]! += v[i0 + i]!;
      });
    }
    for (let i = 0; i < outN; i++) o[i] = acc[i]! / counts;
    return [out];
  });
};

/** Walks `shape` in flat order by rows, with a target offset advancing by `strides`. */
function broadcastRowsOf(shape: readonly number[], strides: readonly number[], row: (flat: number, target: number, stride: number, len: number) => void): void {
  const r = shape.length;
  if (r === 0) {
    row(0, 0, 0, 1);
    return;
  }
  const len = shape[r - 1]!;
  const rows = numel(shape.slice(0, -1));
  const idx = new Array<number>(r).fill(0);
  let t = 0;
  for (let k = 0; k < rows; k++) {
    row(k * len, t, strides[r - 1]!, len);
    for (let d = r - 2; d >= 0; d--) {
      idx[d]!++;
      t += strides[d]!;
      if (idx[d]! < shape[d]!) break;
      t -= strides[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
}

/** ONNX GlobalAveragePool: the mean over the spatial dims in float64. */
const globalAveragePool: Lowering = (node, ctx) => {
  if (!allFloat32(ctx, node, [0])) return skip("float32 input only");
  return jsStep("global_average_pool", ([xt], rc) => {
    const x = xt!;
    const planes = x.shape[0]! * x.shape[1]!;
    const n = numel(x.shape.slice(2));
    const v = x.data as F;
    const out = rc.alloc("float32", x.shape.map((d, i) => (i < 2 ? d : 1)));
    const o = out.data as F;
    for (let p = 0; p < planes; p++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += v[p * n + i]!;
      o[p] = s / n;
    }
    return [out];
  });
};

/** 2-D AveragePool without padding, dilation or ceil_mode (the window mean in float64). */
const averagePool: Lowering = (node, ctx) => {
  if (!allFloat32(ctx, node, [0]) || ctx.rank(node.inputs[0]!) !== 4) return skip("4-D float32 input only");
  const a = resolveAttrs(getOp("average_pool"), node.attrs, node.name);
  const k = a["kernel_shape"] as number[];
  const s = (a["strides"] as number[] | undefined) ?? [1, 1];
  const pads = (a["pads"] as number[] | undefined) ?? [0, 0, 0, 0];
  const dil = (a["dilations"] as number[] | undefined) ?? [1, 1];
  if (a["auto_pad"] !== "NOTSET" || a["ceil_mode"] !== 0 || pads.some((p) => p !== 0) || dil.some((d) => d !== 1)) {
    return skip("padding, dilation, auto_pad or ceil_mode");
  }
  return jsStep("average_pool", ([xt], rc) => {
    const x = xt!;
    const [N, C, H, W] = x.shape as [number, number, number, number];
    const OH = Math.floor((H - k[0]!) / s[0]!) + 1;
    const OW = Math.floor((W - k[1]!) / s[1]!) + 1;
    const out = rc.alloc("float32", [N, C, OH, OW]);
    const v = x.data as F;
    const o = out.data as F;
    const area = k[0]! * k[1]!;
    for (let p = 0; p < N * C; p++) {
      for (let oy = 0; oy < OH; oy++) {
        for (let ox = 0; ox < OW; ox++) {
          let sum = 0;
          for (let ky = 0; ky < k[0]!; ky++) {
            const row = p * H * W + (oy * s[0]! + ky) * W + ox * s[1]!;
            for (let kx = 0; kx < k[1]!; kx++) sum += v[row + kx]!;
          }
          o[(p * OH + oy) * OW + ox] = sum / area;
        }
      }
    }
    return [out];
  });
};

/** Inference batch_norm with constant parameters: (x - mean) * (scale / sqrt(var + eps)) + bias. */
const batchNorm: Lowering = (node, ctx) => {
  if (!allFloat32(ctx, node, [0]) || node.outputs.filter((v) => v !== "").length !== 1) return skip("float32, one output");
  const a = resolveAttrs(getOp("batch_norm"), node.attrs, node.name);
  if ((a["training_mode"] as number) !== 0) return skip("training mode");
  const params = [1, 2, 3, 4].map((i) => ctx.constant(node.inputs[i]));
  if (params.some((p) => p === undefined)) return skip("parameters that are not constants");
  const [scale, bias, mean, variance] = params.map((p) => Float64Array.from({ length: numel(p!.shape) }, (_, i) => getElement(p!, i)));
  const eps = Math.fround(a["epsilon"] as number);
  const k = scale!.map((sc, ch) => sc / Math.sqrt(variance![ch]! + eps));
  return { ...jsStep("batch_norm", ([xt], rc) => {
    const x = xt!;
    const c = x.shape[1]!;
    const inner = numel(x.shape.slice(2));
    const batch = x.shape[0]!;
    const v = x.data as F;
    const out = rc.alloc("float32", x.shape);
    const o = out.data as F;
    for (let b = 0; b < batch; b++) {
      for (let ch = 0; ch < c; ch++) {
        const m = mean![ch]!;
        const kk = k[ch]!;
        const bb = bias![ch]!;
        const base = (b * c + ch) * inner;
        for (let i = 0; i < inner; i++) o[base + i] = (v[base + i]! - m) * kk + bb;
      }
    }
    return [out];
  }), inputs: [node.inputs[0]!], outputs: [node.outputs[0]!] };
};

// ---- data movement ---------------------------------------------------------------------------------------

/** reshape / flatten / squeeze / unsqueeze: the input's storage under the inferred shape. */
const view: Lowering = (node, ctx) => {
  if (!movable(ctx.dtype(node.inputs[0]!))) return skip("packed dtype");
  return jsStep("view", (inputs) => {
    const x = inputs[0]!;
    return [{ dtype: x.dtype, shape: outShape(node, inputs), data: x.data }];
  }, "no copy: the output shares the input's storage");
};

/** ONNX Transpose by strides. */
const transpose: Lowering = (node, ctx) => {
  if (!movable(ctx.dtype(node.inputs[0]!))) return skip("packed dtype");
  const permAttr = node.attrs["perm"] as readonly number[] | undefined;
  return jsStep("transpose", ([xt], rc) => {
    const x = xt!;
    const r = x.shape.length;
    const perm = permAttr ?? x.shape.map((_, i) => r - 1 - i);
    const shape = perm.map((p) => x.shape[p]!);
    const out = rc.alloc(x.dtype, shape);
    const src = x.data as TypedArray;
    const dst = out.data as TypedArray;
    const st = stridesOf(x.shape);
    const ps = perm.map((p) => st[p]!);
    const n = numel(shape);
    if (r === 0 || n === 0) {
      if (n === 1) dst[0] = src[0]!;
      return [out];
    }
    const inner = shape[r - 1]!;
    const is = ps[r - 1]!;
    const idx = new Array<number>(r).fill(0);
    let off = 0;
    for (let o = 0; o < n; o += inner) {
      if (is === 1) (dst as Float32Array).set((src as Float32Array).subarray(off, off + inner), o);
      else for (let i = 0; i < inner; i++) dst[o + i] = src[off + i * is]!;
      for (let d = r - 2; d >= 0; d--) {
        idx[d]!++;
        off += ps[d]!;
        if (idx[d]! < shape[d]!) break;
        off -= ps[d]! * shape[d]!;
        idx[d] = 0;
      }
    }
    return [out];
  });
};

/** ONNX Concat of unpacked tensors of one dtype. */
const concat: Lowering = (node, ctx) => {
  const d = ctx.dtype(node.inputs[0]!);
  if (!movable(d) || node.inputs.some((v) => ctx.dtype(v) !== d)) return skip("mixed or packed dtypes");
  const axisAttr = node.attrs["axis"] as number;
  return jsStep("concat", (inputs, rc) => {
    const xs = inputs as Tensor[];
    const shape = outShape(node, inputs);
    const r = shape.length;
    const axis = axisAttr < 0 ? axisAttr + r : axisAttr;
    const outer = numel(shape.slice(0, axis));
    const inner = numel(shape.slice(axis + 1));
    const out = rc.alloc(xs[0]!.dtype, shape);
    const dst = out.data as Float32Array;
    const rowOut = shape[axis]! * inner;
    let at = 0;
    for (const x of xs) {
      const w = x.shape[axis]! * inner;
      const src = x.data as Float32Array;
      for (let o = 0; o < outer; o++) dst.set(src.subarray(o * w, o * w + w), o * rowOut + at);
      at += w;
    }
    return [out];
  });
};

/** ONNX Slice (any steps): each output element copied from its input position. */
const slice: Lowering = (node, ctx) => {
  if (!movable(ctx.dtype(node.inputs[0]!))) return skip("packed dtype");
  return jsStep("slice", (inputs, rc) => {
    const x = inputs[0]!;
    const shape = outShape(node, inputs);
    const r = x.shape.length;
    const ints = (t: Tensor | undefined): number[] | undefined => (t === undefined ? undefined : Array.from({ length: numel(t.shape) }, (_, i) => getElement(t, i)));
    const starts = ints(inputs[1])!;
    const axes = (ints(inputs[3]) ?? starts.map((_, i) => i)).map((a) => (a < 0 ? a + r : a));
    const steps = ints(inputs[4]) ?? starts.map(() => 1);
    const first = new Array<number>(r).fill(0);
    const step = new Array<number>(r).fill(1);
    axes.forEach((a, j) => {
      const d = x.shape[a]!;
      const s0 = starts[j]!;
      const s = s0 < 0 ? s0 + d : s0;
      first[a] = steps[j]! > 0 ? Math.min(Math.max(s, 0), d) : Math.min(Math.max(s, 0), d - 1);
      step[a] = steps[j]!;
    });
    const out = rc.alloc(x.dtype, shape);
    const src = x.data as TypedArray;
    const dst = out.data as TypedArray;
    const st = stridesOf(x.shape);
    const n = numel(shape);
    if (n === 0) return [out];
    const inner = shape[r - 1] ?? 1;
    const idx = new Array<number>(r).fill(0);
    const base = first.reduce((s, f, d) => s + f * st[d]!, 0);
    let off = base;
    const is = r === 0 ? 0 : step[r - 1]! * st[r - 1]!;
    for (let o = 0; o < n; o += inner) {
      for (let i = 0; i < inner; i++) dst[o + i] = src[off + i * is]!;
      for (let d = r - 2; d >= 0; d--) {
        idx[d]!++;
        off += step[d]! * st[d]!;
        if (idx[d]! < shape[d]!) break;
        off -= step[d]! * st[d]! * shape[d]!;
        idx[d] = 0;
      }
    }
    return [out];
  });
};

export const JS_LOWERINGS: ReadonlyMap<string, Lowering> = new Map<string, Lowering>([
  ...Object.keys(BINARY).map((op): [string, Lowering] => [op, binary]),
  ...["relu", "sigmoid", "tanh", "exp", "log", "sqrt", "neg", "abs", "floor", "ceil", "reciprocal", "erf", "identity", "hardswish", "hard_sigmoid",
    "leaky_relu", "clip"].map((op): [string, Lowering] => [op, unary]),
  ["softmax", softmax],
  ["reduce_mean", reduceMean],
  ["global_average_pool", globalAveragePool],
  ["average_pool", averagePool],
  ["batch_norm", batchNorm],
  ["reshape", view],
  ["flatten", view],
  ["squeeze", view],
  ["unsqueeze", view],
  ["transpose", transpose],
  ["concat", concat],
  ["slice", slice],
]);
