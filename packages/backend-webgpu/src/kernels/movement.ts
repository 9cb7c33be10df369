/**
 * Data movement: reshape-like ops alias their input (no copy); transpose, slice, expand, tile, pad,
 * gather, concat and split are gathers — each output element computes where it comes from. For
 * packed 8-bit dtypes one invocation writes a whole word (four elements), so no two invocations
 * touch the same word. Works for every GPU layout (float32, int32, uint32, int8, uint8, bool).
 */
import { numel, toNumbers, type DType } from "@qforge/ir";
import { gpuLayout } from "../gpu/storage.js";
import { bufferDecl, grid1d, isPacked, main1d, PACK4, Params, paramsDecl, rawDecl, reader, strides, valueType } from "../wgsl/common.js";
import type { Binding, DispatchSpec, GpuKernel, SupportQuery, TensorType } from "./types.js";

/** Ops that only reinterpret their input's shape. */
export const aliasKernel: GpuKernel = {
  ops: ["reshape", "flatten", "squeeze", "unsqueeze", "identity", "dropout"],
  supports(q) {
    if (q.node.op === "dropout" && q.node.outputs[1] !== undefined && q.node.outputs[1] !== "") return { reason: "dropout's mask output is not computed on the GPU" };
    if (q.node.op === "dropout" && q.node.inputs[2] !== undefined && q.node.inputs[2] !== "" && !q.isStatic(2)) return { reason: "dropout: training_mode must be known at compile time" };
    if (q.node.op !== "identity" && q.node.op !== "dropout" && q.node.op !== "flatten" && q.node.inputs[1] !== undefined && q.node.inputs[1] !== "" && !q.isStatic(1)) {
      return { reason: `${q.node.op}: the shape/axes input must be known before the run` };
    }
    return { kernel: "alias", note: "a view of its input: no copy" };
  },
  build(ctx) {
    if (ctx.node.op === "dropout") {
      const t = ctx.host(2);
      const r = ctx.host(1);
      if (t !== undefined && toNumbers(t)[0] !== 0 && (r === undefined || toNumbers(r)[0] !== 0)) {
        throw new Error("dropout in training mode is not supported");
      }
    }
    return { alias: 0 };
  },
};

/** A dispatch that writes output 0 element by element from `fetch(e)`. */
function gatherDispatch(label: string, out: TensorType, inputs: readonly { index: number; dtype: DType }[], p: Params, fetch: string,
  extra: readonly { binding: Binding; decl: (b: number) => string }[] = []): DispatchSpec {
  let decls = "";
  let readers = "";
  const bindings: Binding[] = [];
  for (const inp of inputs) {
    decls += bufferDecl(bindings.length, `in${inp.index}`, inp.dtype, false);
    readers += reader(`in${inp.index}`, inp.dtype);
    bindings.push({ input: inp.index });
  }
  for (const e of extra) {
    decls += e.decl(bindings.length);
    bindings.push(e.binding);
  }
  const outB = bindings.length;
  decls += bufferDecl(outB, "out", out.dtype, true);
  bindings.push({ output: 0 });
  const n = numel(out.shape);
  const nAt = p.u(n);
  const vt = valueType(out.dtype);
  const layout = gpuLayout(out.dtype);
  let body: string;
  let count: number;
  if (isPacked(out.dtype)) {
    body = `  if (idx * 4u >= pu(${nAt}u)) { return; }
  var v = vec4<i32>(0);
  for (var k = 0u; k < 4u; k = k + 1u) {
    let e = idx * 4u + k;
    if (e < pu(${nAt}u)) { v[k] = fetch(e); }
  }
  out[idx] = pack4(v);`;
    count = Math.ceil(n / 4);
  } else {
    const store = layout === "u32" ? "bitcast<u32>(fetch(idx))" : "fetch(idx)";
    body = `  if (idx >= pu(${nAt}u)) { return; }
  out[idx] = ${store};`;
    count = n;
  }
  const code = `${decls}${paramsDecl(outB + 1)}${PACK4}${readers}
fn fetch(e: u32) -> ${vt} {
${fetch}
}
${main1d(body)}`;
  return { code, label, bindings, params: p.finish(), workgroups: grid1d(count) };
}

/**
 * fetch for an affine gather: source index = base + sum_d coord_d * stride_d (i32 strides: slices
 * may step backwards), from the input `src`.
 */
function affineFetch(p: Params, outShape: readonly number[], srcStrides: readonly number[], base: number, src: number): string {
  const rankAt = p.u(outShape.length);
  const shapeAt = p.list(outShape);
  const strideAt = p.length;
  for (const s of srcStrides) p.i(s);
  const baseAt = p.i(base);
  return `  var rem = e;
  var s = pi(${baseAt}u);
  for (var k = 0u; k < pu(${rankAt}u); k = k + 1u) {
    let d = pu(${rankAt}u) - 1u - k;
    let dim = pu(${shapeAt}u + d);
    s = s + i32(rem % dim) * pi(${strideAt}u + d);
    rem = rem / dim;
  }
  return rd_in${src}(u32(s));`;
}

function gpuData(q: SupportQuery, i: number): string | undefined {
  const t = q.inputs[i];
  if (t === undefined) return `input #${i} is missing`;
  if (gpuLayout(t.dtype) === undefined) return `${t.dtype} data stays on the host`;
  return undefined;
}

function staticInputs(q: SupportQuery, from: number, what: string): string | undefined {
  for (let i = from; i < q.node.inputs.length; i++) {
    if (q.node.inputs[i] !== "" && !q.isStatic(i)) return `${q.node.op}: ${what} must be known before the run`;
  }
  return undefined;
}

export const transposeKernel: GpuKernel = {
  ops: ["transpose"],
  supports(q) {
    const why = gpuData(q, 0);
    return why === undefined ? { kernel: "gather_transpose" } : { reason: why };
  },
  build(ctx) {
    const x = ctx.inputs[0]!;
    const r = x.shape.length;
    const perm = (ctx.attrs["perm"] as number[] | undefined) ?? Array.from({ length: r }, (_, i) => r - 1 - i);
    const xs = strides(x.shape);
    const p = new Params();
    const fetch = affineFetch(p, ctx.outputs[0]!.shape, perm.map((d) => xs[d < 0 ? d + r : d]!), 0, 0);
    return { dispatches: [gatherDispatch("transpose", ctx.outputs[0]!, [{ index: 0, dtype: x.dtype }], p, fetch)] };
  },
};

/** ONNX Slice-13 (starts/ends/axes/steps known before the run). */
export const sliceKernel: GpuKernel = {
  ops: ["slice"],
  supports(q) {
    const why = gpuData(q, 0) ?? staticInputs(q, 1, "starts/ends/axes/steps");
    return why === undefined ? { kernel: "gather_slice" } : { reason: why };
  },
  build(ctx) {
    const x = ctx.inputs[0]!;
    const r = x.shape.length;
    const ints = (i: number): number[] | undefined => {
      const t = ctx.host(i);
      return t === undefined ? undefined : toNumbers(t);
    };
    // The output shape (inferred from the ends) fixes how many elements; only starts and steps matter here.
    const starts = ints(1)!;
    const axes = (ints(3) ?? starts.map((_, i) => i)).map((a) => (a < 0 ? a + r : a));
    const steps = ints(4) ?? starts.map(() => 1);
    const begin = new Array<number>(r).fill(0);
    const step = new Array<number>(r).fill(1);
    axes.forEach((a, i) => {
      const dim = x.shape[a]!;
      const st = steps[i]!;
      let s = starts[i]!;
      s = s < 0 ? s + dim : s;
      // ONNX clamps starts to [0, dim] for positive steps and [0, dim - 1] for negative ones.
      s = st > 0 ? Math.min(Math.max(s, 0), dim) : Math.min(Math.max(s, 0), dim - 1);
      begin[a] = s;
      step[a] = st;
    });
    const xs = strides(x.shape);
    const base = begin.reduce((acc, b, d) => acc + b * xs[d]!, 0);
    const p = new Params();
    const fetch = affineFetch(p, ctx.outputs[0]!.shape, xs.map((s, d) => s * step[d]!), base, 0);
    return { dispatches: [gatherDispatch("slice", ctx.outputs[0]!, [{ index: 0, dtype: x.dtype }], p, fetch)] };
  },
};

/** ONNX Expand (broadcast copy). */
export const expandKernel: GpuKernel = {
  ops: ["expand"],
  supports(q) {
    const why = gpuData(q, 0) ?? staticInputs(q, 1, "the shape");
    return why === undefined ? { kernel: "gather_expand" } : { reason: why };
  },
  build(ctx) {
    const x = ctx.inputs[0]!;
    const out = ctx.outputs[0]!;
    const xs = strides(x.shape);
    const st = out.shape.map((_, d) => {
      const k = d - (out.shape.length - x.shape.length);
      return k < 0 || x.shape[k] === 1 ? 0 : xs[k]!;
    });
    const p = new Params();
    return { dispatches: [gatherDispatch("expand", out, [{ index: 0, dtype: x.dtype }], p, affineFetch(p, out.shape, st, 0, 0))] };
  },
};

/** ONNX Split-18: one gather per output. */
export const splitKernel: GpuKernel = {
  ops: ["split"],
  supports(q) {
    const why = gpuData(q, 0) ?? staticInputs(q, 1, "the split sizes");
    return why === undefined ? { kernel: "gather_split" } : { reason: why };
  },
  build(ctx) {
    const x = ctx.inputs[0]!;
    const r = x.shape.length;
    const axisAttr = ctx.attrs["axis"] as number;
    const axis = axisAttr < 0 ? axisAttr + r : axisAttr;
    const xs = strides(x.shape);
    const dispatches: DispatchSpec[] = [];
    let offset = 0;
    ctx.outputs.forEach((out, k) => {
      if (ctx.node.outputs[k] !== "") {
        const p = new Params();
        const fetch = affineFetch(p, out.shape, xs, offset * xs[axis]!, 0);
        const spec = gatherDispatch(`split #${k}`, out, [{ index: 0, dtype: x.dtype }], p, fetch);
        dispatches.push({ ...spec, bindings: spec.bindings.map((b) => ("output" in b ? { output: k } : b)) });
      }
      offset += out.shape[axis]!;
    });
    return { dispatches };
  },
};

/** Inputs one concat dispatch may read (the rest of the storage-buffer budget is output + spare). */
const CONCAT_MAX_INPUTS = 6;

/** ONNX Concat: each output element finds its input by the axis coordinate. */
export const concatKernel: GpuKernel = {
  ops: ["concat"],
  supports(q) {
    if (q.node.inputs.length > CONCAT_MAX_INPUTS) return { reason: `concat of ${q.node.inputs.length} inputs (the WGSL kernel reads up to ${CONCAT_MAX_INPUTS})` };
    for (let i = 0; i < q.node.inputs.length; i++) {
      const why = gpuData(q, i);
      if (why !== undefined) return { reason: why };
    }
    return { kernel: "gather_concat" };
  },
  build(ctx) {
    const out = ctx.outputs[0]!;
    const r = out.shape.length;
    const axisAttr = ctx.attrs["axis"] as number;
    const axis = axisAttr < 0 ? axisAttr + r : axisAttr;
    const inner = numel(out.shape.slice(axis + 1));
    const total = out.shape[axis]!;
    const p = new Params();
    const innerAt = p.u(inner);
    const totalAt = p.u(total);
    const present = ctx.inputs.map((t, i) => ({ t, i })).filter((e) => e.t !== undefined && numel(e.t.shape) > 0);
    let offset = 0;
    const branches: string[] = [];
    for (const { t, i } of present) {
      const len = t!.shape[axis]!;
      const lo = p.u(offset);
      const ln = p.u(len);
      branches.push(`  if (a >= pu(${lo}u) && a < pu(${lo}u) + pu(${ln}u)) { return rd_in${i}((o * pu(${ln}u) + (a - pu(${lo}u))) * pu(${innerAt}u) + r); }`);
      offset += len;
    }
    const fetch = `  let r = e % pu(${innerAt}u);
  let a = (e / pu(${innerAt}u)) % pu(${totalAt}u);
  let o = e / (pu(${innerAt}u) * pu(${totalAt}u));
${branches.join("\n")}
  return ${valueType(out.dtype)}(0);`;
    return { dispatches: [gatherDispatch("concat", out, present.map(({ t, i }) => ({ index: i, dtype: t!.dtype })), p, fetch)] };
  },
};

/** ONNX Gather with indices known before the run (uploaded once as i32). */
export const gatherKernel: GpuKernel = {
  ops: ["gather"],
  supports(q) {
    const why = gpuData(q, 0) ?? staticInputs(q, 1, "the indices");
    return why === undefined ? { kernel: "gather_index" } : { reason: why };
  },
  build(ctx) {
    const x = ctx.inputs[0]!;
    const r = x.shape.length;
    const axisAttr = ctx.attrs["axis"] as number;
    const axis = axisAttr < 0 ? axisAttr + r : axisAttr;
    const idx = toNumbers(ctx.host(1)!).map((v) => (v < 0 ? v + x.shape[axis]! : v));
    const table = ctx.constant(`indices:${idx.join(",")}`, () => Int32Array.from(idx.length === 0 ? [0] : idx));
    const inner = numel(x.shape.slice(axis + 1));
    const nIdx = idx.length;
    const p = new Params();
    const innerAt = p.u(inner);
    const nAt = p.u(nIdx);
    const dimAt = p.u(x.shape[axis]!);
    const fetch = `  let r = e % pu(${innerAt}u);
  let j = (e / pu(${innerAt}u)) % pu(${nAt}u);
  let o = e / (pu(${innerAt}u) * pu(${nAt}u));
  return rd_in0((o * pu(${dimAt}u) + u32(tbl[j])) * pu(${innerAt}u) + r);`;
    const extra = [{ binding: { buffer: table } as Binding, decl: (b: number) => rawDecl(b, "tbl", "i32", false) }];
    return { dispatches: [gatherDispatch("gather", ctx.outputs[0]!, [{ index: 0, dtype: x.dtype }], p, fetch, extra)] };
  },
};

/** ONNX Pad-18, constant mode, pads (and constant value) known before the run. */
export const padKernel: GpuKernel = {
  ops: ["pad"],
  supports(q) {
    const why = gpuData(q, 0) ?? staticInputs(q, 1, "pads, constant_value and axes");
    if (why !== undefined) return { reason: why };
    if (q.attrs["mode"] !== "constant") return { reason: `pad mode '${String(q.attrs["mode"])}' (the WGSL kernel pads with a constant)` };
    return { kernel: "gather_pad" };
  },
  build(ctx) {
    const x = ctx.inputs[0]!;
    const out = ctx.outputs[0]!;
    const r = x.shape.length;
    const pads = toNumbers(ctx.host(1)!);
    const cv = ctx.host(2);
    const axes = ctx.host(3) === undefined ? x.shape.map((_, i) => i) : toNumbers(ctx.host(3)!).map((a) => (a < 0 ? a + r : a));
    const begin = new Array<number>(r).fill(0);
    axes.forEach((a, i) => { begin[a] = pads[i]!; });
    const p = new Params();
    const rankAt = p.u(r);
    const outShapeAt = p.list(out.shape);
    const inShapeAt = p.list(x.shape);
    const beginAt = p.length;
    for (const b of begin) p.i(b);
    const value = cv === undefined ? 0 : toNumbers(cv)[0]!;
    const vt = valueType(x.dtype);
    const valueAt = vt === "f32" ? p.f(value) : p.i(value);
    const fetch = `  var rem = e;
  var s = 0u;
  var mul = 1u;
  for (var k = 0u; k < pu(${rankAt}u); k = k + 1u) {
    let d = pu(${rankAt}u) - 1u - k;
    let c = i32(rem % pu(${outShapeAt}u + d)) - pi(${beginAt}u + d);
    rem = rem / pu(${outShapeAt}u + d);
    if (c < 0 || c >= i32(pu(${inShapeAt}u + d))) { return ${vt === "f32" ? `pf(${valueAt}u)` : `pi(${valueAt}u)`}; }
    s = s + u32(c) * mul;
    mul = mul * pu(${inShapeAt}u + d);
  }
  return rd_in0(s);`;
    return { dispatches: [gatherDispatch("pad", out, [{ index: 0, dtype: x.dtype }], p, fetch)] };
  },
};

/** ONNX Tile with repeats known before the run. */
export const tileKernel: GpuKernel = {
  ops: ["tile"],
  supports(q) {
    const why = gpuData(q, 0) ?? staticInputs(q, 1, "repeats");
    return why === undefined ? { kernel: "gather_tile" } : { reason: why };
  },
  build(ctx) {
    const x = ctx.inputs[0]!;
    const out = ctx.outputs[0]!;
    const p = new Params();
    const rankAt = p.u(x.shape.length);
    const outShapeAt = p.list(out.shape);
    const inShapeAt = p.list(x.shape);
    const fetch = `  var rem = e;
  var s = 0u;
  var mul = 1u;
  for (var k = 0u; k < pu(${rankAt}u); k = k + 1u) {
    let d = pu(${rankAt}u) - 1u - k;
    let c = (rem % pu(${outShapeAt}u + d)) % pu(${inShapeAt}u + d);
    rem = rem / pu(${outShapeAt}u + d);
    s = s + c * mul;
    mul = mul * pu(${inShapeAt}u + d);
  }
  return rd_in0(s);`;
    return { dispatches: [gatherDispatch("tile", out, [{ index: 0, dtype: x.dtype }], p, fetch)] };
  },
};
