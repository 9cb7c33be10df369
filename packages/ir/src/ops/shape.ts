import { QforgeError } from "../errors.js";
import { dtypeInfo, isDType, type DType } from "../dtype.js";
import type { Dim, ValueType } from "../graph.js";
import { getElement, numel, type Tensor } from "../tensor.js";
import type { InferContext } from "./registry.js";
import { broadcastShapes, dimsCompatible, normAxis, registerOp, req, sameDType } from "./registry.js";

/**
 * Shape and data-movement ops, plus cast and the shape-producing ops. Semantics, input order and
 * attribute names are those of the latest ONNX opset of each op (named in each doc). Inputs that
 * ONNX passes as tensors (shape, axes, pads, starts, repeats ...) stay inputs; `infer` reads them
 * with `ctx.constant(i)` when they are compile-time constants (the runtime passes the actual values)
 * and otherwise answers with symbolic dims named after the node (`<node>_d<i>`).
 */

// ---- helpers (the exported ones are shared with ops/nn.ts) -------------------------------------

/** A fresh symbolic dim for dimension `i` of output `out` of this node. */
export function symDim(ctx: Pick<InferContext, "node">, i: number, out = 0): string {
  return out === 0 ? `${ctx.node}_d${i}` : `${ctx.node}_o${out}_d${i}`;
}

function tensorValues(t: Tensor): number[] {
  const n = numel(t.shape);
  const out = new Array<number>(n);
  for (let k = 0; k < n; k++) out[k] = getElement(t, k);
  return out;
}

/** Fails unless input i (when present) is an integer tensor of rank <= 1 (ONNX int64 shape/axes inputs). */
export function checkIntVector(ctx: InferContext, i: number, what: string): ValueType | undefined {
  const t = ctx.inputs[i];
  if (t === undefined) return undefined;
  const k = dtypeInfo(t.dtype).kind;
  if (k !== "int" && k !== "uint") {
    throw new QforgeError("DTYPE_MISMATCH", `${ctx.op}: ${what} (input #${i}) must be an integer tensor, got ${t.dtype}`, { node: ctx.node });
  }
  if (t.shape.length > 1) ctx.fail(`${what} (input #${i}) must be 1-D, got [${t.shape.join(",")}]`);
  return t;
}

/** The integer values of input i when it is a constant (int64 values beyond 2^53 round). */
export function constInts(ctx: InferContext, i: number, what: string): number[] | undefined {
  if (checkIntVector(ctx, i, what) === undefined) return undefined;
  const t = ctx.constant(i);
  return t === undefined ? undefined : tensorValues(t);
}

/** The values of a float input i when it is a constant. */
export function constFloats(ctx: InferContext, i: number): number[] | undefined {
  const t = ctx.constant(i);
  return t === undefined ? undefined : tensorValues(t);
}

/** Static length of a 1-D input i (undefined when symbolic). */
export function staticLength(ctx: InferContext, i: number): number | undefined {
  const t = ctx.inputs[i];
  if (t === undefined) return undefined;
  const d = t.shape.length === 0 ? 1 : t.shape[0]!;
  return typeof d === "number" ? d : undefined;
}

/** Normalizes a list of axes for `rank`, failing on out-of-range and repeated axes. */
export function normAxes(ctx: InferContext, axes: readonly number[], rank: number): number[] {
  const out = axes.map((a) => normAxis(ctx, a, rank));
  if (new Set(out).size !== out.length) ctx.fail(`repeated axis in [${axes.join(",")}]`);
  return out;
}

/** Product of dims: a number when all are static, else a fresh symbol. */
function dimProduct(ctx: InferContext, dims: readonly Dim[], i: number): Dim {
  let p = 1;
  let sym: string | undefined;
  for (const d of dims) {
    if (typeof d === "string") {
      // One symbol times static 1s is still that symbol (flatten of [N,C,1,1] keeps N).
      if (sym !== undefined) return symDim(ctx, i);
      sym = d;
    } else p *= d;
  }
  if (sym === undefined) return p;
  return p === 1 ? sym : symDim(ctx, i);
}

/**
 * ONNX Slice-13 index arithmetic for one axis of size `dim`: negative starts/ends count from the
 * end, then starts clamp to [0, dim] ([0, dim-1] for negative steps) and ends to [0, dim]
 * ([-1, dim-1] for negative steps). Returns the first index and the number of elements taken.
 */
function sliceRange(dim: number, start: number, end: number, step: number): { start: number; length: number } {
  let s = start < 0 ? start + dim : start;
  let e = end < 0 ? end + dim : end;
  if (step > 0) {
    s = Math.min(Math.max(s, 0), dim);
    e = Math.min(Math.max(e, 0), dim);
    return { start: s, length: Math.max(0, Math.ceil((e - s) / step)) };
  }
  s = Math.min(Math.max(s, 0), dim - 1);
  e = Math.min(Math.max(e, -1), dim - 1);
  return { start: s, length: Math.max(0, Math.ceil((s - e) / -step)) };
}

// ---- reshape family ---------------------------------------------------------------------------

registerOp({
  name: "reshape",
  family: "other",
  doc: "ONNX Reshape-14: shape is an int64 input; 0 copies the input dim (unless allowzero=1, when 0 is a zero-size dim), -1 is inferred",
  attrs: { allowzero: { type: "int", default: 0 } },
  inputs: [{ name: "data" }, { name: "shape" }],
  outputs: [{ name: "reshaped" }],
  infer: (ctx) => {
    const x = req(ctx, 0);
    checkIntVector(ctx, 1, "shape");
    const allowzero = ctx.attr<number>("allowzero") !== 0;
    const spec = constInts(ctx, 1, "shape");
    if (spec === undefined) {
      const n = staticLength(ctx, 1);
      if (n === undefined) return ctx.fail("the target shape has an unknown length", "make the shape input a constant or give it a static length");
      return [{ dtype: x.dtype, shape: Array.from({ length: n }, (_, i) => symDim(ctx, i)) }];
    }
    if (spec.filter((d) => d === -1).length > 1) ctx.fail(`more than one -1 in [${spec.join(",")}]`);
    if (allowzero && spec.includes(0) && spec.includes(-1)) ctx.fail("allowzero=1 with both 0 and -1 in the shape is invalid (ONNX Reshape-14)");
    const out: Dim[] = spec.map((d, i): Dim => {
      if (d === 0 && !allowzero) {
        if (i >= x.shape.length) ctx.fail(`shape[${i}] = 0 copies input dim ${i}, but the input has rank ${x.shape.length}`);
        return x.shape[i]!;
      }
      if (d < -1) ctx.fail(`invalid dimension ${d} in [${spec.join(",")}]`);
      return d;
    });
    const total = dimProduct(ctx, x.shape, 0);
    const neg = out.indexOf(-1);
    const known = out.filter((_, i) => i !== neg);
    const knownProduct = known.every((d) => typeof d === "number") ? known.reduce<number>((a, d) => a * (d as number), 1) : undefined;
    if (neg >= 0) {
      if (typeof total === "number" && knownProduct !== undefined) {
        if (knownProduct === 0 || total % knownProduct !== 0) ctx.fail(`cannot infer -1: ${total} elements into [${spec.join(",")}]`);
        out[neg] = total / knownProduct;
      } else {
        out[neg] = symDim(ctx, neg);
      }
    } else if (typeof total === "number" && knownProduct !== undefined && total !== knownProduct) {
      ctx.fail(`[${x.shape.join(",")}] (${total} elements) cannot become [${out.join(",")}]`);
    }
    return [{ dtype: x.dtype, shape: out }];
  },
});

registerOp({
  name: "flatten",
  family: "other",
  doc: "ONNX Flatten-13: [d0..d(axis-1), d(axis)..] -> 2-D [prod(d0..d(axis-1)), prod(rest)]; axis in [-r, r]",
  attrs: { axis: { type: "int", default: 1 } },
  inputs: [{ name: "input" }],
  outputs: [{ name: "output" }],
  infer: (ctx) => {
    const x = req(ctx, 0);
    const r = x.shape.length;
    const a = ctx.attr<number>("axis");
    const axis = a < 0 ? a + r : a;
    if (axis < 0 || axis > r) ctx.fail(`axis ${a} out of range for rank ${r}`);
    return [{ dtype: x.dtype, shape: [dimProduct(ctx, x.shape.slice(0, axis), 0), dimProduct(ctx, x.shape.slice(axis), 1)] }];
  },
});

registerOp({
  name: "squeeze",
  family: "other",
  doc: "ONNX Squeeze-13: removes the size-1 dims listed in the optional int64 axes input, or every size-1 dim (a symbolic dim is then assumed not to be 1)",
  attrs: {},
  inputs: [{ name: "data" }, { name: "axes", optional: true }],
  outputs: [{ name: "squeezed" }],
  infer: (ctx) => {
    const x = req(ctx, 0);
    const r = x.shape.length;
    if (ctx.inputs[1] === undefined) return [{ dtype: x.dtype, shape: x.shape.filter((d) => d !== 1) }];
    const axes = constInts(ctx, 1, "axes");
    if (axes === undefined) {
      const k = staticLength(ctx, 1);
      if (k === undefined || k > r) return ctx.fail("axes must be a constant or have a static length", "make axes a constant");
      return [{ dtype: x.dtype, shape: Array.from({ length: r - k }, (_, i) => symDim(ctx, i)) }];
    }
    const drop = new Set(normAxes(ctx, axes, r));
    for (const a of drop) {
      const d = x.shape[a]!;
      if (typeof d === "number" && d !== 1) ctx.fail(`cannot squeeze axis ${a} of size ${d}`);
    }
    return [{ dtype: x.dtype, shape: x.shape.filter((_, i) => !drop.has(i)) }];
  },
});

registerOp({
  name: "unsqueeze",
  family: "other",
  doc: "ONNX Unsqueeze-13: inserts size-1 dims at the int64 axes input, axes counted in the output rank (any order, negative allowed)",
  attrs: {},
  inputs: [{ name: "data" }, { name: "axes" }],
  outputs: [{ name: "expanded" }],
  infer: (ctx) => {
    const x = req(ctx, 0);
    req(ctx, 1);
    const axes = constInts(ctx, 1, "axes");
    if (axes === undefined) {
      const k = staticLength(ctx, 1);
      if (k === undefined) return ctx.fail("axes must be a constant or have a static length", "make axes a constant");
      return [{ dtype: x.dtype, shape: Array.from({ length: x.shape.length + k }, (_, i) => symDim(ctx, i)) }];
    }
    const outRank = x.shape.length + axes.length;
    const ins = new Set(normAxes(ctx, axes, outRank));
    const out: Dim[] = [];
    let j = 0;
    for (let i = 0; i < outRank; i++) out.push(ins.has(i) ? 1 : x.shape[j++]!);
    return [{ dtype: x.dtype, shape: out }];
  },
});

registerOp({
  name: "transpose",
  family: "other",
  doc: "ONNX Transpose-13: output dim i is input dim perm[i]; perm defaults to reversing the dims",
  attrs: { perm: { type: "ints" } },
  inputs: [{ name: "data" }],
  outputs: [{ name: "transposed" }],
  infer: (ctx) => {
    const x = req(ctx, 0);
    const r = x.shape.length;
    const perm = ctx.attrOpt<number[]>("perm") ?? Array.from({ length: r }, (_, i) => r - 1 - i);
    const p = perm.map((a) => (a < 0 ? a + r : a));
    if (p.length !== r || [...p].sort((a, b) => a - b).some((a, i) => a !== i)) ctx.fail(`perm [${perm.join(",")}] is not a permutation of ${r} dims`);
    return [{ dtype: x.dtype, shape: p.map((a) => x.shape[a]!) }];
  },
});

// ---- joining and splitting --------------------------------------------------------------------

registerOp({
  name: "concat",
  family: "other",
  doc: "ONNX Concat-13: joins the inputs along axis (negative allowed); every other dim must agree",
  attrs: { axis: { type: "int", required: true } },
  inputs: [{ name: "inputs", variadic: true }],
  outputs: [{ name: "concat_result" }],
  infer: (ctx) => {
    const ts = ctx.inputs.map((_, i) => req(ctx, i));
    const dtype = sameDType(ctx, ...ts.map((_, i) => i));
    const r = ts[0]!.shape.length;
    if (ts.some((t) => t.shape.length !== r)) ctx.fail(`inputs have different ranks: ${ts.map((t) => `[${t.shape.join(",")}]`).join(" ")}`);
    if (r === 0) ctx.fail("cannot concatenate scalars");
    const axis = normAxis(ctx, ctx.attr<number>("axis"), r);
    const out: Dim[] = [];
    for (let i = 0; i < r; i++) {
      if (i === axis) {
        const dims = ts.map((t) => t.shape[i]!);
        out.push(dims.every((d) => typeof d === "number") ? dims.reduce<number>((a, d) => a + (d as number), 0) : symDim(ctx, i));
        continue;
      }
      let d: Dim = ts[0]!.shape[i]!;
      for (const t of ts) {
        const e = t.shape[i]!;
        if (!dimsCompatible(d, e)) ctx.fail(`dim ${i} differs between inputs: ${d} vs ${e}`);
        if (typeof d === "string" && typeof e === "number") d = e;
      }
      out.push(d);
    }
    return [{ dtype, shape: out }];
  },
});

registerOp({
  name: "split",
  family: "other",
  doc: "ONNX Split-18: splits along axis by the optional int64 split input (sizes), else into num_outputs (default: the node's output count) chunks of ceil(dim/n), the last smaller",
  attrs: { axis: { type: "int", default: 0 }, num_outputs: { type: "int" } },
  inputs: [{ name: "input" }, { name: "split", optional: true }],
  outputs: [{ name: "outputs", variadic: true }],
  infer: (ctx) => {
    const x = req(ctx, 0);
    const r = x.shape.length;
    const axis = normAxis(ctx, ctx.attr<number>("axis"), r);
    const n = ctx.numOutputs;
    const d = x.shape[axis]!;
    const withDim = (size: Dim): ValueType => ({ dtype: x.dtype, shape: x.shape.map((e, i) => (i === axis ? size : e)) });
    const numOutputs = ctx.attrOpt<number>("num_outputs");
    if (ctx.inputs[1] !== undefined) {
      if (numOutputs !== undefined) ctx.fail("give either the split input or num_outputs, not both (ONNX Split-18)");
      const sizes = constInts(ctx, 1, "split");
      if (sizes === undefined) return Array.from({ length: n }, (_, k) => withDim(symDim(ctx, axis, k)));
      if (sizes.length !== n) ctx.fail(`split has ${sizes.length} sizes but the node has ${n} outputs`);
      if (sizes.some((s) => s < 0)) ctx.fail(`negative size in split [${sizes.join(",")}]`);
      const sum = sizes.reduce((a, s) => a + s, 0);
      if (typeof d === "number" && sum !== d) ctx.fail(`split sizes [${sizes.join(",")}] sum to ${sum}, dim ${axis} is ${d}`);
      return sizes.map((s) => withDim(s));
    }
    const chunks = numOutputs ?? n;
    if (chunks !== n) ctx.fail(`num_outputs=${chunks} but the node has ${n} outputs`);
    if (typeof d === "string") return Array.from({ length: n }, (_, k) => withDim(symDim(ctx, axis, k)));
    const chunk = Math.ceil(d / n);
    const last = d - chunk * (n - 1);
    if (last < 0) ctx.fail(`dim ${axis} of size ${d} cannot be split into ${n} chunks of ${chunk}`);
    return Array.from({ length: n }, (_, k) => withDim(k === n - 1 ? last : chunk));
  },
});

registerOp({
  name: "slice",
  family: "other",
  doc: "ONNX Slice-13: data[starts:ends:steps] along axes (int64 inputs; axes default 0..k-1, steps default 1; out-of-range bounds clamp)",
  attrs: {},
  inputs: [{ name: "data" }, { name: "starts" }, { name: "ends" }, { name: "axes", optional: true }, { name: "steps", optional: true }],
  outputs: [{ name: "output" }],
  infer: (ctx) => {
    const x = req(ctx, 0);
    const r = x.shape.length;
    req(ctx, 1);
    req(ctx, 2);
    const starts = constInts(ctx, 1, "starts");
    const ends = constInts(ctx, 2, "ends");
    const axesIn = ctx.inputs[3] !== undefined ? constInts(ctx, 3, "axes") : undefined;
    const steps = ctx.inputs[4] !== undefined ? constInts(ctx, 4, "steps") : undefined;
    const k = starts?.length ?? ends?.length ?? staticLength(ctx, 1);
    let axes: number[] | undefined;
    if (ctx.inputs[3] === undefined) axes = k === undefined ? undefined : Array.from({ length: k }, (_, i) => i);
    else axes = axesIn === undefined ? undefined : normAxes(ctx, axesIn, r);
    if (axes === undefined) return [{ dtype: x.dtype, shape: x.shape.map((_, i) => symDim(ctx, i)) }];
    const out: Dim[] = [...x.shape];
    const known = starts !== undefined && ends !== undefined && (ctx.inputs[4] === undefined || steps !== undefined);
    if (known && (starts.length !== axes.length || ends.length !== axes.length || (steps !== undefined && steps.length !== axes.length))) {
      ctx.fail(`starts, ends, axes and steps must have the same length (${starts.length}, ${ends.length}, ${axes.length}, ${steps?.length ?? "-"})`);
    }
    axes.forEach((a, j) => {
      const d = x.shape[a]!;
      if (!known || typeof d === "string") {
        out[a] = symDim(ctx, a);
        return;
      }
      const step = steps?.[j] ?? 1;
      if (step === 0) ctx.fail("slice step cannot be 0");
      out[a] = sliceRange(d, starts[j]!, ends[j]!, step).length;
    });
    return [{ dtype: x.dtype, shape: out }];
  },
});

registerOp({
  name: "gather",
  family: "other",
  doc: "ONNX Gather-13: out = data indexed along axis by an int32/int64 indices tensor (negative indices count from the end); torch embedding is gather on axis 0",
  attrs: { axis: { type: "int", default: 0 } },
  inputs: [{ name: "data" }, { name: "indices" }],
  outputs: [{ name: "output" }],
  infer: (ctx) => {
    const x = req(ctx, 0);
    const idx = req(ctx, 1);
    if (idx.dtype !== "int32" && idx.dtype !== "int64") {
      throw new QforgeError("DTYPE_MISMATCH", `gather: indices must be int32 or int64, got ${idx.dtype}`, { node: ctx.node });
    }
    if (x.shape.length === 0) ctx.fail("data must have rank >= 1");
    const axis = normAxis(ctx, ctx.attr<number>("axis"), x.shape.length);
    return [{ dtype: x.dtype, shape: [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)] }];
  },
});

registerOp({
  name: "expand",
  family: "other",
  doc: "ONNX Expand-13: broadcasts the input to the int64 shape input numpy-style (a 1 in shape keeps the input dim; the output may have more dims)",
  attrs: {},
  inputs: [{ name: "input" }, { name: "shape" }],
  outputs: [{ name: "output" }],
  infer: (ctx) => {
    const x = req(ctx, 0);
    req(ctx, 1);
    const shape = constInts(ctx, 1, "shape");
    if (shape !== undefined) {
      if (shape.some((d) => d < 0)) ctx.fail(`negative dim in shape [${shape.join(",")}]`);
      return [{ dtype: x.dtype, shape: broadcastShapes(ctx, x.shape, shape) }];
    }
    const k = staticLength(ctx, 1);
    if (k === undefined) return ctx.fail("the shape input has an unknown length", "make it a constant or give it a static length");
    const rank = Math.max(k, x.shape.length);
    // A static input dim other than 1 survives any valid broadcast; every other dim is unknown.
    return [{
      dtype: x.dtype,
      shape: Array.from({ length: rank }, (_, i): Dim => {
        const d = x.shape[i - (rank - x.shape.length)];
        return typeof d === "number" && d !== 1 ? d : symDim(ctx, i);
      }),
    }];
  },
});

registerOp({
  name: "tile",
  family: "other",
  doc: "ONNX Tile-13: repeats the input repeats[i] times along dim i (repeats: int64, one per dim)",
  attrs: {},
  inputs: [{ name: "input" }, { name: "repeats" }],
  outputs: [{ name: "output" }],
  infer: (ctx) => {
    const x = req(ctx, 0);
    req(ctx, 1);
    const reps = constInts(ctx, 1, "repeats");
    if (reps === undefined) return [{ dtype: x.dtype, shape: x.shape.map((_, i) => symDim(ctx, i)) }];
    if (reps.length !== x.shape.length) ctx.fail(`repeats has ${reps.length} entries for rank ${x.shape.length}`);
    if (reps.some((n) => n < 0)) ctx.fail(`negative repeat in [${reps.join(",")}]`);
    return [{ dtype: x.dtype, shape: x.shape.map((d, i) => (typeof d === "number" ? d * reps[i]! : reps[i] === 1 ? d : symDim(ctx, i))) }];
  },
});

registerOp({
  name: "pad",
  family: "other",
  doc: "ONNX Pad-19: pads (int64 [begin..., end...] for each of the optional axes input, default all dims; negative crops), mode constant | reflect | edge | wrap, optional scalar constant_value (default 0)",
  attrs: { mode: { type: "string", default: "constant", doc: "constant | reflect | edge | wrap" } },
  inputs: [{ name: "data" }, { name: "pads" }, { name: "constant_value", optional: true }, { name: "axes", optional: true }],
  outputs: [{ name: "output" }],
  infer: (ctx) => {
    const x = req(ctx, 0);
    req(ctx, 1);
    const r = x.shape.length;
    const mode = ctx.attr<string>("mode");
    if (!["constant", "reflect", "edge", "wrap"].includes(mode)) ctx.fail(`unknown mode '${mode}'`, "use constant, reflect, edge or wrap");
    const cv = ctx.inputs[2];
    if (cv !== undefined) {
      if (cv.dtype !== x.dtype) throw new QforgeError("DTYPE_MISMATCH", `pad: constant_value is ${cv.dtype}, data is ${x.dtype}`, { node: ctx.node });
      if (numelOf(cv.shape) > 1) ctx.fail("constant_value must be a scalar or a 1-element tensor");
    }
    const pads = constInts(ctx, 1, "pads");
    let axes: number[] | undefined = Array.from({ length: r }, (_, i) => i);
    if (ctx.inputs[3] !== undefined) {
      const a = constInts(ctx, 3, "axes");
      axes = a === undefined ? undefined : normAxes(ctx, a, r);
    }
    if (pads === undefined || axes === undefined) return [{ dtype: x.dtype, shape: x.shape.map((_, i) => symDim(ctx, i)) }];
    if (pads.length !== 2 * axes.length) ctx.fail(`pads has ${pads.length} values for ${axes.length} axes (needs begin and end for each)`);
    const out: Dim[] = [...x.shape];
    axes.forEach((a, j) => {
      const d = x.shape[a]!;
      if (typeof d === "string") {
        out[a] = pads[j] === 0 && pads[j + axes!.length] === 0 ? d : symDim(ctx, a);
        return;
      }
      const size = d + pads[j]! + pads[j + axes!.length]!;
      if (size < 0) ctx.fail(`padding [${pads[j]}, ${pads[j + axes!.length]}] makes dim ${a} negative`);
      out[a] = size;
    });
    return [{ dtype: x.dtype, shape: out }];
  },
});

function numelOf(shape: readonly Dim[]): number {
  return shape.reduce<number>((a, d) => a * (typeof d === "number" ? d : 1), 1);
}

// ---- shape-producing ops -----------------------------------------------------------------------

registerOp({
  name: "shape",
  family: "other",
  doc: "ONNX Shape-15: the input's shape as int64, dims [start, end) (negative counts from the end, both clamp to [0, rank])",
  attrs: { start: { type: "int", default: 0 }, end: { type: "int" } },
  inputs: [{ name: "data" }],
  outputs: [{ name: "shape" }],
  infer: (ctx) => {
    const r = req(ctx, 0).shape.length;
    const { start, end } = shapeBounds(r, ctx.attr<number>("start"), ctx.attrOpt<number>("end"));
    return [{ dtype: "int64", shape: [Math.max(0, end - start)] }];
  },
});

/** ONNX Shape-15 start/end normalization. */
function shapeBounds(rank: number, start: number, end: number | undefined): { start: number; end: number } {
  const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + rank : v, 0), rank);
  return { start: clamp(start), end: clamp(end ?? rank) };
}

registerOp({
  name: "size",
  family: "other",
  doc: "ONNX Size-21: the number of elements, as an int64 scalar",
  attrs: {},
  inputs: [{ name: "data" }],
  outputs: [{ name: "size" }],
  infer: (ctx) => {
    req(ctx, 0);
    return [{ dtype: "int64", shape: [] }];
  },
});

registerOp({
  name: "constant_of_shape",
  family: "other",
  doc: "ONNX ConstantOfShape-21: a tensor of the int64 shape input filled with `value` (a number) of dtype `dtype` (a qforge dtype name, default float32)",
  attrs: { value: { type: "float", default: 0 }, dtype: { type: "string", default: "float32" } },
  inputs: [{ name: "input" }],
  outputs: [{ name: "output" }],
  infer: (ctx) => {
    req(ctx, 0);
    const dtype = dtypeAttr(ctx, "dtype");
    const shape = constInts(ctx, 0, "input");
    if (shape !== undefined) {
      if (shape.some((d) => d < 0)) ctx.fail(`negative dim in shape [${shape.join(",")}]`);
      return [{ dtype, shape }];
    }
    const k = staticLength(ctx, 0);
    if (k === undefined) return ctx.fail("the shape input has an unknown length", "make it a constant or give it a static length");
    return [{ dtype, shape: Array.from({ length: k }, (_, i) => symDim(ctx, i)) }];
  },
});

registerOp({
  name: "range",
  family: "other",
  doc: "ONNX Range-11: [start, start + delta, ...) up to limit (exclusive); scalar inputs of one dtype; length max(ceil((limit - start) / delta), 0)",
  attrs: {},
  inputs: [{ name: "start" }, { name: "limit" }, { name: "delta" }],
  outputs: [{ name: "output" }],
  infer: (ctx) => {
    const dtype = sameDType(ctx, 0, 1, 2);
    for (let i = 0; i < 3; i++) if (numelOf(req(ctx, i).shape) !== 1) ctx.fail(`input #${i} must be a scalar`);
    const consts = [0, 1, 2].map((i) => ctx.constant(i));
    if (consts.some((c) => c === undefined)) return [{ dtype, shape: [symDim(ctx, 0)] }];
    const [s, l, d] = consts as Tensor[];
    if (getElement(d!, 0) === 0) ctx.fail("delta cannot be 0");
    if (d!.data instanceof BigInt64Array) {
      // int64: exact, so that ranges near the int64 limits get their true length.
      const [bs, bl, bd] = [s!, l!, d!].map((c) => (c.data as BigInt64Array)[0]!) as [bigint, bigint, bigint];
      const span = bd > 0n ? bl - bs : bs - bl;
      const step = bd > 0n ? bd : -bd;
      return [{ dtype, shape: [span <= 0n ? 0 : Number((span + step - 1n) / step)] }];
    }
    return [{ dtype, shape: [rangeLength(getElement(s!, 0), getElement(l!, 0), getElement(d!, 0))] }];
  },
});

/** ONNX Range: number_of_elements = max(ceil((limit - start) / delta), 0). */
function rangeLength(start: number, limit: number, delta: number): number {
  return Math.max(Math.ceil((limit - start) / delta), 0);
}

// ---- casts -------------------------------------------------------------------------------------

function dtypeAttr(ctx: InferContext, name: string): DType {
  const to = ctx.attr<string>(name);
  if (!isDType(to)) {
    throw new QforgeError("BAD_ATTRIBUTE", `${ctx.op}: '${to}' is not a dtype`, { node: ctx.node, hint: "use a qforge dtype name such as float32, float16, int8, int64, bool" });
  }
  return to;
}

registerOp({
  name: "cast",
  family: "other",
  doc: "ONNX Cast-19 with `to` a qforge dtype name; saturate=1 clamps finite overflow and ±Inf to ±max when the target is a float8 type",
  attrs: { to: { type: "string", required: true }, saturate: { type: "int", default: 1 } },
  inputs: [{ name: "input" }],
  outputs: [{ name: "output" }],
  infer: (ctx) => [{ dtype: dtypeAttr(ctx, "to"), shape: req(ctx, 0).shape }],
});

registerOp({
  name: "cast_like",
  family: "other",
  doc: "ONNX CastLike-19: cast to the dtype of target_type (only its dtype is used)",
  attrs: { saturate: { type: "int", default: 1 } },
  inputs: [{ name: "input" }, { name: "target_type" }],
  outputs: [{ name: "output" }],
  infer: (ctx) => [{ dtype: req(ctx, 1).dtype, shape: req(ctx, 0).shape }],
});
