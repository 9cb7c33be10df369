/**
 * ONNX Resize (float32, NCHW-style: only the last two axes change size) with nearest, linear and
 * cubic modes and every coordinate_transformation_mode. Resize is separable, so the host computes
 * each resized axis's taps (input index and weight per output coordinate, up to four) with the
 * ONNX reference's rules — the same as runtime/src/kernels/resize.ts, whose helpers are not
 * exported — and the shader sums the products of the row and column taps.
 */
import { numel, toNumbers, type AttrValue } from "@qforge/ir";
import { bufferDecl, grid1d, main1d, Params, paramsDecl, rawDecl } from "../wgsl/common.js";
import type { GpuKernel } from "./types.js";

const TAPS = 4;

interface AxisSpec {
  readonly inLen: number;
  readonly outLen: number;
  readonly scale: number;
  readonly roiStart: number;
  readonly roiEnd: number;
}

/** Keys' cubic convolution kernel with parameter A (ONNX cubic_coeff_a). */
function cubicKernel(t: number, a: number): number {
  const x = Math.abs(t);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

/** onnx/reference/ops/op_resize.py's coordinate transformations. */
function originalCoordinate(x: number, s: AxisSpec, mode: string): number {
  const outF = s.scale * s.inLen;
  switch (mode) {
    case "half_pixel": return (x + 0.5) / s.scale - 0.5;
    case "half_pixel_symmetric": {
      const adjustment = s.outLen / outF;
      return (s.inLen / 2) * (1 - adjustment) + (x + 0.5) / s.scale - 0.5;
    }
    case "pytorch_half_pixel": return s.outLen > 1 ? (x + 0.5) / s.scale - 0.5 : 0;
    case "align_corners": return outF === 1 ? 0 : (x * (s.inLen - 1)) / (outF - 1);
    case "asymmetric": return x / s.scale;
    case "tf_half_pixel_for_nn": return (x + 0.5) / s.scale;
    case "tf_crop_and_resize": {
      const span = (s.roiEnd - s.roiStart) * (s.inLen - 1);
      return (outF === 1 ? span / 2 : (x * span) / (outF - 1)) + s.roiStart * (s.inLen - 1);
    }
    default: throw new Error(`resize: unknown coordinate_transformation_mode '${mode}'`);
  }
}

/** Per output coordinate: TAPS (index, weight) pairs; a coordinate to extrapolate gets index -1. */
function axisTaps(s: AxisSpec, attrs: Readonly<Record<string, AttrValue>>): { idx: Int32Array; w: Float32Array } {
  const mode = attrs["mode"] as string;
  const coord = attrs["coordinate_transformation_mode"] as string;
  const nearestMode = attrs["nearest_mode"] as string;
  const a = attrs["cubic_coeff_a"] as number;
  const excludeOutside = (attrs["exclude_outside"] as number) !== 0;
  const clamp = (i: number): number => Math.min(Math.max(i, 0), s.inLen - 1);
  const idx = new Int32Array(s.outLen * TAPS);
  const w = new Float32Array(s.outLen * TAPS);
  for (let x = 0; x < s.outLen; x++) {
    const xo = originalCoordinate(x, s, coord);
    const at = x * TAPS;
    if (coord === "tf_crop_and_resize" && (xo < 0 || xo > s.inLen - 1)) {
      idx[at] = -1;
      continue;
    }
    const f = Math.floor(xo);
    const r = xo - f;
    if (mode === "nearest") {
      let i: number;
      if (r === 0) i = f;
      else if (nearestMode === "round_prefer_floor") i = r <= 0.5 ? f : f + 1;
      else if (nearestMode === "round_prefer_ceil") i = r < 0.5 ? f : f + 1;
      else if (nearestMode === "floor") i = f;
      else i = f + 1;
      idx[at] = clamp(i);
      w[at] = 1;
    } else if (mode === "linear") {
      idx[at] = clamp(f);
      idx[at + 1] = clamp(f + 1);
      w[at] = 1 - r;
      w[at + 1] = r;
    } else {
      const taps = [f - 1, f, f + 1, f + 2];
      let ws = [cubicKernel(1 + r, a), cubicKernel(r, a), cubicKernel(1 - r, a), cubicKernel(2 - r, a)];
      if (excludeOutside) {
        ws = ws.map((v, k) => (taps[k]! < 0 || taps[k]! >= s.inLen ? 0 : v));
        const sum = ws.reduce((p, v) => p + v, 0);
        ws = ws.map((v) => v / sum);
      }
      taps.forEach((t, k) => {
        idx[at + k] = clamp(t);
        w[at + k] = ws[k]!;
      });
    }
  }
  return { idx, w };
}

export const resizeKernel: GpuKernel = {
  ops: ["resize"],
  supports(q) {
    if (q.inputs[0]?.dtype !== "float32") return { reason: `the WGSL resize kernel takes float32, got ${String(q.inputs[0]?.dtype)}` };
    for (let i = 1; i < q.node.inputs.length; i++) {
      if (q.node.inputs[i] !== "" && !q.isStatic(i)) return { reason: "resize: roi, scales and sizes must be known before the run" };
    }
    if ((q.attrs["antialias"] as number | undefined ?? 0) !== 0) return { reason: "resize with antialias" };
    const x = q.inputs[0]!;
    const r = x.shape.length;
    if (r < 2) return { reason: "resize of rank < 2" };
    // Only the last two axes may change size (known from constant scales or sizes).
    const axes = ((q.attrs["axes"] as number[] | undefined) ?? x.shape.map((_, i) => i)).map((a) => (a < 0 ? a + r : a));
    const scales = q.constant(2);
    const sizes = q.constant(3);
    const lead = (a: number): boolean => a < r - 2;
    if (scales !== undefined && numel(scales.shape) > 0 && toNumbers(scales).some((v, j) => lead(axes[j]!) && v !== 1)) return { reason: "resize of a leading axis (the WGSL kernel resizes the last two)" };
    if (sizes !== undefined && numel(sizes.shape) > 0 && toNumbers(sizes).some((v, j) => lead(axes[j]!) && typeof x.shape[axes[j]!] === "number" && v !== x.shape[axes[j]!])) {
      return { reason: "resize of a leading axis (the WGSL kernel resizes the last two)" };
    }
    return { kernel: `resize_${String(q.attrs["mode"])}_f32`, note: "separable taps computed on the host" };
  },
  build(ctx) {
    const x = ctx.inputs[0]!;
    const out = ctx.outputs[0]!;
    const r = x.shape.length;
    if (x.shape.slice(0, -2).some((d, i) => d !== out.shape[i])) throw new Error("resize: the WGSL kernel resizes the last two axes only");
    const axes = ((ctx.attrs["axes"] as number[] | undefined) ?? x.shape.map((_, i) => i)).map((a) => (a < 0 ? a + r : a));
    const given = (i: number) => {
      const t = ctx.host(i);
      return t !== undefined && numel(t.shape) > 0 ? t : undefined;
    };
    const scales = new Array<number>(r).fill(1);
    const sc = given(2);
    const sz = given(3);
    if (sc !== undefined) {
      const s = toNumbers(sc);
      axes.forEach((a, j) => { scales[a] = s[j]!; });
    } else if (sz !== undefined) {
      const s = toNumbers(sz);
      axes.forEach((a, j) => { scales[a] = s[j]! / x.shape[a]!; });
      const policy = ctx.attrs["keep_aspect_ratio_policy"] as string;
      if (policy !== "stretch") {
        const picked = axes.map((a) => scales[a]!);
        const common = policy === "not_larger" ? Math.min(...picked) : Math.max(...picked);
        for (const a of axes) scales[a] = common;
      }
    }
    const roiStart = new Array<number>(r).fill(0);
    const roiEnd = new Array<number>(r).fill(1);
    const roi = given(1);
    if (roi !== undefined) {
      const v = toNumbers(roi);
      const k = v.length / 2;
      const roiAxes = k === axes.length ? axes : x.shape.map((_, i) => i);
      roiAxes.forEach((a, j) => { roiStart[a] = v[j]!; roiEnd[a] = v[k + j]!; });
    }
    const spec = (d: number): AxisSpec => ({ inLen: x.shape[d]!, outLen: out.shape[d]!, scale: scales[d]!, roiStart: roiStart[d]!, roiEnd: roiEnd[d]! });
    const th = axisTaps(spec(r - 2), ctx.attrs);
    const tw = axisTaps(spec(r - 1), ctx.attrs);
    const [h, w, oh, ow] = [x.shape[r - 2]!, x.shape[r - 1]!, out.shape[r - 2]!, out.shape[r - 1]!];
    const key = `${h}x${w}->${oh}x${ow}:${scales.join(",")}`;
    const idx = ctx.constant(`idx:${key}`, () => Int32Array.from([...th.idx, ...tw.idx]));
    const wts = ctx.constant(`w:${key}`, () => Float32Array.from([...th.w, ...tw.w]));
    const total = numel(out.shape);
    const p = new Params();
    const at = p.list([total, h, w, oh, ow]);
    const extraAt = p.f(ctx.attrs["extrapolation_value"] as number);
    const code = `${bufferDecl(0, "X", "float32", false)}${rawDecl(1, "I", "i32", false)}${rawDecl(2, "Wt", "f32", false)}${bufferDecl(3, "Y", "float32", true)}${paramsDecl(4)}
${main1d(`  if (idx >= pu(${at}u)) { return; }
  let W = pu(${at + 2}u);
  let OH = pu(${at + 3}u);
  let OW = pu(${at + 4}u);
  let j = idx % OW;
  let i = (idx / OW) % OH;
  let plane = idx / (OW * OH);
  let rb = i * ${TAPS}u;
  let cb = OH * ${TAPS}u + j * ${TAPS}u;
  if (I[rb] < 0 || I[cb] < 0) { Y[idx] = pf(${extraAt}u); return; }
  var s = 0.0;
  for (var a = 0u; a < ${TAPS}u; a = a + 1u) {
    let wa = Wt[rb + a];
    if (wa == 0.0) { continue; }
    var row = 0.0;
    for (var b = 0u; b < ${TAPS}u; b = b + 1u) {
      row = row + Wt[cb + b] * X[(plane * pu(${at + 1}u) + u32(I[rb + a])) * W + u32(I[cb + b])];
    }
    s = s + wa * row;
  }
  Y[idx] = s;`)}`;
    return { dispatches: [{ code, label: "resize", bindings: [{ input: 0 }, { buffer: idx }, { buffer: wts }, { output: 0 }], params: p.finish(), workgroups: grid1d(total) }] };
  },
};
