/**
 * Row reductions: the tensor viewed as [outer, n, inner], one 64-invocation workgroup per
 * (outer, inner) row reducing its n elements through workgroup memory. Softmax / LogSoftmax
 * (max, then the sum of exponentials, then the write), LayerNormalization (mean, variance), the
 * ONNX reductions over a contiguous block of axes, and the global pools are rows.
 */
import { numel, toNumbers, type Tensor } from "@qforge/ir";
import { bufferDecl, ISNAN, Params, paramsDecl } from "../wgsl/common.js";
import type { Binding, BuildContext, DispatchSpec, GpuKernel, SupportQuery } from "./types.js";

const RW = 64;

/** Workgroup counts for `rows` one-workgroup rows (wrapped into y past 65535). */
function rowGrid(rows: number): [number, number, number] {
  if (rows <= 65535) return [Math.max(1, rows), 1, 1];
  const y = Math.ceil(rows / 65535);
  return [Math.ceil(rows / y), y, 1];
}

/**
 * The row kernel skeleton. `body` runs per row with `base` (index of element k=0), `stride`
 * (= inner), `n`, `tid` and the helpers `reduceMax(v)` / `reduceSum(v)` (workgroup-wide, every
 * invocation gets the result).
 */
function rowSource(decls: string, body: string, rowsAt: number, outerAt: number, nAt: number, innerAt: number): string {
  return `${decls}
${ISNAN}var<workgroup> red: array<f32, ${RW}>;
fn reduceSum(v: f32, tid: u32) -> f32 {
  red[tid] = v;
  workgroupBarrier();
  for (var s = ${RW / 2}u; s > 0u; s = s >> 1u) {
    if (tid < s) { red[tid] = red[tid] + red[tid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
fn reduceMax(v: f32, tid: u32) -> f32 {
  red[tid] = v;
  workgroupBarrier();
  for (var s = ${RW / 2}u; s > 0u; s = s >> 1u) {
    if (tid < s) { let o = red[tid + s]; red[tid] = select(max(red[tid], o), o, isnan_(o)); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
fn reduceMin(v: f32, tid: u32) -> f32 {
  red[tid] = v;
  workgroupBarrier();
  for (var s = ${RW / 2}u; s > 0u; s = s >> 1u) {
    if (tid < s) { let o = red[tid + s]; red[tid] = select(min(red[tid], o), o, isnan_(o)); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
var<private> INF_BITS: u32 = 0x7f800000u;
fn inf() -> f32 { return bitcast<f32>(INF_BITS); }
@compute @workgroup_size(${RW})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let row = wid.y * nwg.x + wid.x;
  // Every invocation of the workgroup takes part in the barriers, so rows past the end do not return early.
  let live = row < pu(${rowsAt}u);
  let inner = pu(${innerAt}u);
  let n = pu(${nAt}u);
  let o = min(row, pu(${rowsAt}u) - 1u) / inner;
  let i = min(row, pu(${rowsAt}u) - 1u) % inner;
  let base = o * n * inner + i;
  let stride = inner;
  _ = pu(${outerAt}u);
${body}
}
`;
}

interface RowShape {
  readonly outer: number;
  readonly n: number;
  readonly inner: number;
}

function rowDispatch(label: string, shape: RowShape, decls: (paramsBinding: number) => string, bindings: Binding[], body: string, p: Params): DispatchSpec {
  const rows = shape.outer * shape.inner;
  const rowsAt = p.u(rows);
  const outerAt = p.u(shape.outer);
  const nAt = p.u(shape.n);
  const innerAt = p.u(shape.inner);
  return {
    code: rowSource(decls(bindings.length), body, rowsAt, outerAt, nAt, innerAt),
    label,
    bindings,
    params: p.finish(),
    workgroups: rowGrid(rows),
  };
}

function floatOnly(q: SupportQuery, n: number): string | undefined {
  for (let i = 0; i < n; i++) {
    const t = q.inputs[i];
    if (t !== undefined && t.dtype !== "float32") return `the WGSL ${q.node.op} kernel takes float32, input #${i} is ${t.dtype}`;
  }
  return undefined;
}

function around(shape: readonly number[], from: number, to: number): RowShape {
  return { outer: numel(shape.slice(0, from)), n: numel(shape.slice(from, to)), inner: numel(shape.slice(to)) };
}

/** ONNX Softmax-13 / LogSoftmax-13 along one axis. */
export const softmaxKernel: GpuKernel = {
  ops: ["softmax", "log_softmax"],
  supports(q) {
    const why = floatOnly(q, 1);
    return why === undefined ? { kernel: "rows_softmax_f32" } : { reason: why };
  },
  build(ctx) {
    const x = ctx.inputs[0]!;
    const r = x.shape.length;
    const a = ctx.attrs["axis"] as number;
    const axis = r === 0 ? 0 : a < 0 ? a + r : a;
    const log = ctx.node.op === "log_softmax";
    const write = log ? "Y[base + k * stride] = (X[base + k * stride] - mx) - log(sum);" : "Y[base + k * stride] = exp(X[base + k * stride] - mx) / sum;";
    const body = `  var m = -inf();
  for (var k = tid; k < n; k = k + ${RW}u) { if (live) { m = max(m, X[base + k * stride]); } }
  let mx = reduceMax(m, tid);
  var s = 0.0;
  for (var k = tid; k < n; k = k + ${RW}u) { if (live) { s = s + exp(X[base + k * stride] - mx); } }
  let sum = reduceSum(s, tid);
  if (!live) { return; }
  for (var k = tid; k < n; k = k + ${RW}u) { ${write} }`;
    const decls = (pb: number): string => `${bufferDecl(0, "X", "float32", false)}${bufferDecl(1, "Y", "float32", true)}${paramsDecl(pb)}`;
    return { dispatches: [rowDispatch(ctx.node.op, around(x.shape, axis, axis + 1), decls, [{ input: 0 }, { output: 0 }], body, new Params())] };
  },
};

/** ONNX LayerNormalization-17 (only the normalized output; Mean/InvStdDev outputs fall back). */
export const layerNormKernel: GpuKernel = {
  ops: ["layer_normalization"],
  supports(q) {
    const why = floatOnly(q, 3);
    if (why !== undefined) return { reason: why };
    if (q.node.outputs.slice(1).some((v) => v !== "")) return { reason: "layer_normalization's Mean/InvStdDev outputs are not computed on the GPU" };
    return { kernel: "rows_layernorm_f32" };
  },
  build(ctx) {
    const x = ctx.inputs[0]!;
    const r = x.shape.length;
    const a = ctx.attrs["axis"] as number;
    const axis = a < 0 ? a + r : a;
    const norm = x.shape.slice(axis);
    const scale = ctx.inputs[1]!;
    const bias = ctx.inputs[2];
    const p = new Params();
    const epsAt = p.f(ctx.attrs["epsilon"] as number);
    // Scale/bias broadcast over the normalized dims: index k % their size (trailing-aligned).
    const sN = p.u(numel(scale.shape));
    const bN = p.u(bias === undefined ? 1 : numel(bias.shape));
    const okBroadcast = (t: { shape: readonly number[] }): boolean => {
      const s = t.shape;
      return s.every((d, i) => d === 1 || d === norm[norm.length - s.length + i]) && s.filter((d) => d !== 1).length === s.length;
    };
    if (!okBroadcast(scale) || (bias !== undefined && !okBroadcast(bias))) throw new Error("layer_normalization: scale/bias must cover the trailing normalized dims");
    const body = `  var s = 0.0;
  for (var k = tid; k < n; k = k + ${RW}u) { if (live) { s = s + X[base + k]; } }
  let mean = reduceSum(s, tid) / f32(n);
  var q = 0.0;
  for (var k = tid; k < n; k = k + ${RW}u) { if (live) { let d = X[base + k] - mean; q = q + d * d; } }
  let inv = 1.0 / sqrt(reduceSum(q, tid) / f32(n) + pf(${epsAt}u));
  if (!live) { return; }
  for (var k = tid; k < n; k = k + ${RW}u) {
    Y[base + k] = (X[base + k] - mean) * inv * S[k % pu(${sN}u)]${bias === undefined ? "" : ` + B[k % pu(${bN}u)]`};
  }`;
    const decls = (pb: number): string =>
      `${bufferDecl(0, "X", "float32", false)}${bufferDecl(1, "S", "float32", false)}${bias === undefined ? "" : bufferDecl(2, "B", "float32", false)}${bufferDecl(bias === undefined ? 2 : 3, "Y", "float32", true)}${paramsDecl(pb)}`;
    const bindings: Binding[] = bias === undefined ? [{ input: 0 }, { input: 1 }, { output: 0 }] : [{ input: 0 }, { input: 1 }, { input: 2 }, { output: 0 }];
    return { dispatches: [rowDispatch("layer_normalization", { outer: numel(x.shape.slice(0, axis)), n: numel(norm), inner: 1 }, decls, bindings, body, p)] };
  },
};

type ReduceKind = "mean" | "sum" | "max" | "min";
const REDUCE_OPS: Record<string, ReduceKind> = { reduce_mean: "mean", reduce_sum: "sum", reduce_max: "max", reduce_min: "min", global_average_pool: "mean", global_max_pool: "max" };

/** The reduced axes of a reduce node as [from, to), or a reason they are not a contiguous block. */
function reducedBlock(rank: number, axesT: Tensor | undefined, noop: boolean): [number, number] | string {
  const axes = axesT === undefined ? [] : toNumbers(axesT).map((a) => (a < 0 ? a + rank : a)).sort((a, b) => a - b);
  if (axes.length === 0) return noop ? "reduce with no axes and noop_with_empty_axes" : [0, rank];
  for (let i = 1; i < axes.length; i++) if (axes[i] !== axes[i - 1]! + 1) return `reduced axes [${axes.join(", ")}] are not contiguous`;
  return [axes[0]!, axes[axes.length - 1]! + 1];
}

export const reduceKernel: GpuKernel = {
  ops: Object.keys(REDUCE_OPS),
  supports(q) {
    const why = floatOnly(q, 1);
    if (why !== undefined) return { reason: why };
    if (q.node.op.startsWith("global_")) return { kernel: `rows_${REDUCE_OPS[q.node.op]}_f32` };
    if (q.node.inputs[1] !== undefined && q.node.inputs[1] !== "" && !q.isStatic(1)) return { reason: `${q.node.op}: the axes must be known before the run` };
    const c = q.constant(1);
    const rank = q.inputs[0]?.shape.length ?? 0;
    if (c !== undefined || q.node.inputs[1] === undefined || q.node.inputs[1] === "") {
      const b = reducedBlock(rank, c, (q.attrs["noop_with_empty_axes"] as number) !== 0);
      if (typeof b === "string") return { reason: b };
    }
    return { kernel: `rows_${REDUCE_OPS[q.node.op]}_f32` };
  },
  build(ctx: BuildContext) {
    const x = ctx.inputs[0]!;
    const kind = REDUCE_OPS[ctx.node.op]!;
    const r = x.shape.length;
    const block = ctx.node.op.startsWith("global_") ? [2, r] as [number, number] : reducedBlock(r, ctx.host(1), (ctx.attrs["noop_with_empty_axes"] as number) !== 0);
    if (typeof block === "string") throw new Error(`${ctx.node.op}: ${block}`);
    const init = kind === "max" ? "-inf()" : kind === "min" ? "inf()" : "0.0";
    const step = kind === "max" ? "a = select(max(a, v), v, isnan_(v));" : kind === "min" ? "a = select(min(a, v), v, isnan_(v));" : "a = a + v;";
    const fin = kind === "max" ? "reduceMax(a, tid)" : kind === "min" ? "reduceMin(a, tid)" : kind === "sum" ? "reduceSum(a, tid)" : "reduceSum(a, tid) / f32(n)";
    const body = `  var a = ${init};
  for (var k = tid; k < n; k = k + ${RW}u) { if (live) { let v = X[base + k * stride]; ${step} } }
  let res = ${fin};
  if (live && tid == 0u) { Y[row] = res; }`;
    const decls = (pb: number): string => `${bufferDecl(0, "X", "float32", false)}${bufferDecl(1, "Y", "float32", true)}${paramsDecl(pb)}`;
    return { dispatches: [rowDispatch(ctx.node.op, around(x.shape, block[0], block[1]), decls, [{ input: 0 }, { output: 0 }], body, new Params())] };
  },
};
