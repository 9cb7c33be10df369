/**
 * ONNX Resize-19 (antialias=0), following the ONNX reference implementation
 * (onnx/reference/ops/op_resize.py) in float64:
 *
 * - Each axis has a scale: the `scales` value, or out/in for `sizes` (one common scale for the
 *   resized axes with keep_aspect_ratio_policy not_larger/not_smaller). Output sizes are those the
 *   schema inferred.
 * - An output coordinate x maps to x_original by coordinate_transformation_mode, where the "resized
 *   length" is scale * in as a real number (the reference's `output_width`, which is what makes
 *   test_resize_downsample_scales_linear_align_corners give 3.142857).
 * - nearest picks one input index by nearest_mode; linear mixes floor(x_o) and floor(x_o)+1 with
 *   weights 1-r, r; cubic mixes floor(x_o)-1 .. floor(x_o)+2 with Keys' kernel (cubic_coeff_a),
 *   exclude_outside zeroing and renormalizing the weights of taps outside the input. Indices
 *   outside the input clamp to the edge (the reference pads with mode="edge").
 * - tf_crop_and_resize maps into the roi box; a coordinate outside [0, in-1] yields
 *   extrapolation_value.
 * - Interpolation is separable: axes are resized one after the other (innermost first, as the
 *   reference's recursion), accumulating in float64; the result is rounded once (integer outputs
 *   truncate, as the reference's astype).
 */
import { QforgeError, numel } from "@qforge/ir";
import { registerKernel } from "../kernel.js";
import { fromValues, input, outShape, readInts, readNumbers } from "../util/tensors.js";

interface AxisTaps {
  /** Per output coordinate: input indices and weights (empty = extrapolate). */
  readonly idx: number[][];
  readonly w: number[][];
}

/** Keys' cubic convolution kernel with parameter A (ONNX cubic_coeff_a). */
function cubicKernel(t: number, a: number): number {
  const x = Math.abs(t);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

interface AxisSpec {
  readonly inLen: number;
  readonly outLen: number;
  readonly scale: number;
  readonly roiStart: number;
  readonly roiEnd: number;
}

function originalCoordinate(x: number, s: AxisSpec, mode: string): number {
  const outF = s.scale * s.inLen;
  switch (mode) {
    case "half_pixel": return (x + 0.5) / s.scale - 0.5;
    case "half_pixel_symmetric": {
      const adjustment = s.outLen / outF;
      const offset = (s.inLen / 2) * (1 - adjustment);
      return offset + (x + 0.5) / s.scale - 0.5;
    }
    // ONNX spec and ORT: 0 when the resized length is 1 (the reference uses -0.5; linear and
    // nearest give the same value either way).
    case "pytorch_half_pixel": return s.outLen > 1 ? (x + 0.5) / s.scale - 0.5 : 0;
    case "align_corners": return outF === 1 ? 0 : (x * (s.inLen - 1)) / (outF - 1);
    case "asymmetric": return x / s.scale;
    // Resize-11's mode, accepted so that older models import unchanged.
    case "tf_half_pixel_for_nn": return (x + 0.5) / s.scale;
    case "tf_crop_and_resize": {
      const span = (s.roiEnd - s.roiStart) * (s.inLen - 1);
      const base = outF === 1 ? span / 2 : (x * span) / (outF - 1);
      return base + s.roiStart * (s.inLen - 1);
    }
    default: throw new QforgeError("BAD_ATTRIBUTE", `resize: unknown coordinate_transformation_mode '${mode}'`);
  }
}

function axisTaps(s: AxisSpec, attrs: Readonly<Record<string, unknown>>): AxisTaps {
  const mode = attrs["mode"] as string;
  const coord = attrs["coordinate_transformation_mode"] as string;
  const nearestMode = attrs["nearest_mode"] as string;
  const a = attrs["cubic_coeff_a"] as number;
  const excludeOutside = (attrs["exclude_outside"] as number) !== 0;
  const clamp = (i: number): number => Math.min(Math.max(i, 0), s.inLen - 1);
  const idx: number[][] = [];
  const w: number[][] = [];
  for (let x = 0; x < s.outLen; x++) {
    const xo = originalCoordinate(x, s, coord);
    if (coord === "tf_crop_and_resize" && (xo < 0 || xo > s.inLen - 1)) {
      idx.push([]);
      w.push([]);
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
      idx.push([clamp(i)]);
      w.push([1]);
    } else if (mode === "linear") {
      idx.push([clamp(f), clamp(f + 1)]);
      w.push([1 - r, r]);
    } else {
      const taps = [f - 1, f, f + 1, f + 2];
      let ws = [cubicKernel(1 + r, a), cubicKernel(r, a), cubicKernel(1 - r, a), cubicKernel(2 - r, a)];
      if (excludeOutside) {
        ws = ws.map((v, k) => (taps[k]! < 0 || taps[k]! >= s.inLen ? 0 : v));
        const sum = ws.reduce((p, v) => p + v, 0);
        ws = ws.map((v) => v / sum);
      }
      idx.push(taps.map(clamp));
      w.push(ws);
    }
  }
  return { idx, w };
}

registerKernel("resize", (inputs, attrs, ctx) => {
  const x = input(inputs, 0, ctx);
  const shape = outShape(ctx);
  const r = x.shape.length;
  const axes = ((attrs["axes"] as number[] | undefined) ?? x.shape.map((_, i) => i)).map((a) => (a < 0 ? a + r : a));
  const given = (t: typeof x | undefined): boolean => t !== undefined && numel(t.shape) > 0;
  const scalesT = given(inputs[2]) ? inputs[2] : undefined;
  const sizesT = given(inputs[3]) ? inputs[3] : undefined;
  const roiT = given(inputs[1]) ? inputs[1] : undefined;
  const scales = new Array<number>(r).fill(1);
  if (scalesT !== undefined) {
    const s = readNumbers(scalesT);
    axes.forEach((a, j) => { scales[a] = s[j]!; });
  } else if (sizesT !== undefined) {
    const sz = readInts(sizesT);
    axes.forEach((a, j) => { scales[a] = sz[j]! / x.shape[a]!; });
    const policy = attrs["keep_aspect_ratio_policy"] as string;
    if (policy !== "stretch") {
      const picked = axes.map((a) => scales[a]!);
      const common = policy === "not_larger" ? Math.min(...picked) : Math.max(...picked);
      for (const a of axes) scales[a] = common;
    }
  }
  // roi: [start..., end...] over all dims, or over `axes` when given.
  const roiStart = new Array<number>(r).fill(0);
  const roiEnd = new Array<number>(r).fill(1);
  if (roiT !== undefined) {
    const v = readNumbers(roiT);
    const k = v.length / 2;
    const roiAxes = k === axes.length ? axes : x.shape.map((_, i) => i);
    roiAxes.forEach((a, j) => { roiStart[a] = v[j]!; roiEnd[a] = v[k + j]!; });
  }
  const extrapolation = attrs["extrapolation_value"] as number;
  let cur = readNumbers(x);
  let curShape = [...x.shape];
  for (let d = r - 1; d >= 0; d--) {
    const spec: AxisSpec = { inLen: x.shape[d]!, outLen: shape[d]!, scale: scales[d]!, roiStart: roiStart[d]!, roiEnd: roiEnd[d]! };
    const taps = axisTaps(spec, attrs);
    const outer = numel(curShape.slice(0, d));
    const inner = numel(curShape.slice(d + 1));
    const next = new Float64Array(outer * spec.outLen * inner);
    for (let o = 0; o < outer; o++) {
      for (let k = 0; k < spec.outLen; k++) {
        const ti = taps.idx[k]!;
        const tw = taps.w[k]!;
        for (let i = 0; i < inner; i++) {
          let s = 0;
          if (ti.length === 0) s = extrapolation;
          for (let q = 0; q < ti.length; q++) s += tw[q]! * cur[(o * spec.inLen + ti[q]!) * inner + i]!;
          next[(o * spec.outLen + k) * inner + i] = s;
        }
      }
    }
    cur = next;
    curShape = curShape.map((e, i) => (i === d ? spec.outLen : e));
  }
  return [fromValues(x.dtype, shape, cur)];
});
