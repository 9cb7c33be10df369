/**
 * Convolutions (ONNX Conv-11 / ConvTranspose-11, NC... layout). Dot products accumulate in float64
 * and round once to the output dtype (see kernels/linalg.ts for why that is the oracle's choice).
 */
import { QforgeError, numel } from "@qforge/ir";
import { registerKernel } from "../kernel.js";
import { fromValues, input, isFloatDType, outShape, readNumbers } from "../util/tensors.js";
import { windowGeometry, windowTaps, type WindowGeometry } from "../util/window.js";
import { floatData, type FloatArray } from "./float-data.js";

/**
 * y[n, m, o] = b[m] + sum over c in m's group and taps k of x[n, c, o*s - pad + k*d] * w[m, c', k].
 * 1-D and 2-D convolutions run the direct loops of `conv2dPlanes`; other ranks walk the window taps.
 * Either way every output element sums the same products in the same order (bias first, then input
 * channel by channel, kernel taps in row-major order), so the float64 sums, and the one rounding to
 * the output dtype, are identical.
 */
registerKernel("conv", (inputs, attrs, ctx) => {
  const x = input(inputs, 0, ctx);
  const w = input(inputs, 1, ctx);
  const bias = inputs[2];
  if (!isFloatDType(x.dtype)) throw new QforgeError("BAD_DTYPE", `conv: the reference kernel supports float tensors, got ${x.dtype}`, { node: ctx.node });
  const shape = outShape(ctx);
  const [batch, cin] = [x.shape[0]!, x.shape[1]!];
  const m = w.shape[0]!;
  const group = attrs["group"] as number;
  const cg = cin / group;
  const mg = m / group;
  const inSpatial = x.shape.slice(2);
  const outSpatial = shape.slice(2);
  const kernel = w.shape.slice(2);
  const geo = windowGeometry(attrs, inSpatial, outSpatial, kernel);
  const vx = floatData(x);
  const vw = floatData(w);
  const vb = bias === undefined ? undefined : floatData(bias);
  const out = new Float64Array(numel(shape));
  if (inSpatial.length <= 2) {
    const plane = planeGeometry(geo, inSpatial, outSpatial);
    conv2dPlanes({ vx, vw, vb, out, batch, cin, m, cg, mg, plane });
    return [fromValues(x.dtype, shape, out)];
  }
  const taps = windowTaps(geo, inSpatial, outSpatial);
  const inSize = numel(inSpatial);
  const outSize = numel(outSpatial);
  const kSize = numel(kernel);
  for (let n = 0; n < batch; n++) {
    for (let oc = 0; oc < m; oc++) {
      const g = Math.floor(oc / mg);
      for (let o = 0; o < outSize; o++) {
        const t = taps[o]!;
        let s = vb?.[oc] ?? 0;
        for (let ci = 0; ci < cg; ci++) {
          const xBase = (n * cin + g * cg + ci) * inSize;
          const wBase = (oc * cg + ci) * kSize;
          for (let p = 0; p < t.length; p += 2) s += vx[xBase + t[p + 1]!]! * vw[wBase + t[p]!]!;
        }
        out[(n * m + oc) * outSize + o] = s;
      }
    }
  }
  return [fromValues(x.dtype, shape, out)];
});

/** A 1-D or 2-D window as 2-D (a 1-D one is a single row: height 1, kernel height 1). */
export interface PlaneGeometry {
  readonly inH: number;
  readonly inW: number;
  readonly outH: number;
  readonly outW: number;
  readonly kH: number;
  readonly kW: number;
  readonly sH: number;
  readonly sW: number;
  readonly pH: number;
  readonly pW: number;
  readonly dH: number;
  readonly dW: number;
}

export function planeGeometry(geo: WindowGeometry, inSpatial: readonly number[], outSpatial: readonly number[]): PlaneGeometry {
  if (inSpatial.length === 1) {
    return {
      inH: 1, inW: inSpatial[0]!, outH: 1, outW: outSpatial[0]!, kH: 1, kW: geo.kernel[0]!,
      sH: 1, sW: geo.strides[0]!, pH: 0, pW: geo.padBegin[0]!, dH: 1, dW: geo.dilations[0]!,
    };
  }
  return {
    inH: inSpatial[0]!, inW: inSpatial[1]!, outH: outSpatial[0]!, outW: outSpatial[1]!, kH: geo.kernel[0]!, kW: geo.kernel[1]!,
    sH: geo.strides[0]!, sW: geo.strides[1]!, pH: geo.padBegin[0]!, pW: geo.padBegin[1]!, dH: geo.dilations[0]!, dW: geo.dilations[1]!,
  };
}

/**
 * The output positions [lo, hi) along one axis whose input coordinate o*stride - pad + k*dilation
 * lies inside [0, size) for kernel offset k.
 */
export function validRange(k: number, stride: number, pad: number, dilation: number, size: number, outSize: number): [number, number] {
  const shift = k * dilation - pad; // input = o*stride + shift
  const lo = shift >= 0 ? 0 : Math.ceil(-shift / stride);
  const hi = Math.min(outSize, Math.floor((size - 1 - shift) / stride) + 1);
  return [lo, Math.max(lo, hi)];
}

export interface ConvPlanes {
  readonly vx: FloatArray;
  readonly vw: FloatArray;
  /** Per output channel, or undefined for none (the sums then start at 0). */
  readonly vb: ArrayLike<number> | undefined;
  readonly out: Float64Array;
  readonly batch: number;
  readonly cin: number;
  readonly m: number;
  readonly cg: number;
  readonly mg: number;
  readonly plane: PlaneGeometry;
}

/**
 * Direct 2-D convolution into `out` ([batch, m, outH, outW]): for each output plane, the bias, then
 * for each input channel of the group and each kernel tap (kh, kw) in order, the tap's products over
 * the output positions where it lands inside the input — the taps a padded border skips are simply
 * not visited. The inner loop is a strided run over one input row, with no per-element index
 * tables or calls. Also exact for integer-valued inputs (the quantized kernels' accumulators).
 */
/**
 * A 1x1 convolution (stride 1, no padding) of one image and group: out[oc, o] = b[oc] + sum over c
 * of x[c, o] * w[oc, c], summed in the order of c. The group's input is first laid out channels-last
 * (`xt[o, c]`, one contiguous run of channels per position), so each output is a dot product of two
 * contiguous rows; four output channels share every load of x.
 */
function pointwiseGroup(
  vx: FloatArray, xBase: number, vw: FloatArray, vb: ArrayLike<number> | undefined,
  ocFirst: number, ocCount: number, channels: number, out: Float64Array, outBase: number, size: number,
): void {
  const xt = new Float64Array(size * channels);
  for (let c = 0; c < channels; c++) {
    const xc = xBase + c * size;
    for (let o = 0; o < size; o++) xt[o * channels + c] = vx[xc + o]!;
  }
  const bias = (oc: number): number => (vb === undefined ? 0 : vb[oc]!);
  let oc = ocFirst;
  const ocEnd = ocFirst + ocCount;
  for (; oc + 4 <= ocEnd; oc += 4) {
    const w0 = oc * channels;
    const w1 = w0 + channels;
    const w2 = w1 + channels;
    const w3 = w2 + channels;
    const b0 = bias(oc);
    const b1 = bias(oc + 1);
    const b2 = bias(oc + 2);
    const b3 = bias(oc + 3);
    const o0 = outBase + oc * size;
    let o = 0;
    for (; o < size; o++) {
      const xo = o * channels;
      let s0 = b0;
      let s1 = b1;
      let s2 = b2;
      let s3 = b3;
      for (let c = 0; c < channels; c++) {
        const xv = xt[xo + c]!;
        s0 += xv * vw[w0 + c]!;
        s1 += xv * vw[w1 + c]!;
        s2 += xv * vw[w2 + c]!;
        s3 += xv * vw[w3 + c]!;
      }
      out[o0 + o] = s0;
      out[o0 + size + o] = s1;
      out[o0 + 2 * size + o] = s2;
      out[o0 + 3 * size + o] = s3;
    }
  }
  for (; oc < ocEnd; oc++) {
    const w0 = oc * channels;
    const b0 = bias(oc);
    const o0 = outBase + oc * size;
    for (let o = 0; o < size; o++) {
      const xo = o * channels;
      let s = b0;
      for (let c = 0; c < channels; c++) s += xt[xo + c]! * vw[w0 + c]!;
      out[o0 + o] = s;
    }
  }
}

export function conv2dPlanes(c: ConvPlanes): void {
  const { vx, vw, vb, out, batch, cin, m, cg, mg, plane: p } = c;
  const inSize = p.inH * p.inW;
  const outSize = p.outH * p.outW;
  const kSize = p.kH * p.kW;
  const pointwise = kSize === 1 && p.sH === 1 && p.sW === 1 && p.pH === 0 && p.pW === 0 && p.inH === p.outH && p.inW === p.outW;
  const rowLo = new Int32Array(p.kH);
  const rowHi = new Int32Array(p.kH);
  const colLo = new Int32Array(p.kW);
  const colHi = new Int32Array(p.kW);
  for (let kh = 0; kh < p.kH; kh++) [rowLo[kh], rowHi[kh]] = validRange(kh, p.sH, p.pH, p.dH, p.inH, p.outH);
  for (let kw = 0; kw < p.kW; kw++) [colLo[kw], colHi[kw]] = validRange(kw, p.sW, p.pW, p.dW, p.inW, p.outW);
  const sW = p.sW;
  // Pointwise weights as doubles once (their products are the same either way).
  const w64 = pointwise && cg > 1 && !(vw instanceof Float64Array) ? Float64Array.from(vw) : vw;
  for (let n = 0; n < batch; n++) {
    if (pointwise && cg > 1) {
      for (let g = 0; g < m / mg; g++) pointwiseGroup(vx, (n * cin + g * cg) * inSize, w64, vb, g * mg, mg, cg, out, n * m * outSize, outSize);
      continue;
    }
    for (let oc = 0; oc < m; oc++) {
      const g = Math.floor(oc / mg);
      const o0 = (n * m + oc) * outSize;
      const b = vb === undefined ? 0 : vb[oc]!;
      for (let o = 0; o < outSize; o++) out[o0 + o] = b;
      for (let ci = 0; ci < cg; ci++) {
        const xBase = (n * cin + g * cg + ci) * inSize;
        const wBase = (oc * cg + ci) * kSize;
        for (let kh = 0; kh < p.kH; kh++) {
          const ohLo = rowLo[kh]!;
          const ohHi = rowHi[kh]!;
          for (let kw = 0; kw < p.kW; kw++) {
            const wv = vw[wBase + kh * p.kW + kw]!;
            const owLo = colLo[kw]!;
            const owHi = colHi[kw]!;
            for (let oh = ohLo; oh < ohHi; oh++) {
              const xRow = xBase + (oh * p.sH - p.pH + kh * p.dH) * p.inW - p.pW + kw * p.dW;
              const oRow = o0 + oh * p.outW;
              for (let ow = owLo; ow < owHi; ow++) out[oRow + ow] = out[oRow + ow]! + vx[xRow + ow * sW]! * wv;
            }
          }
        }
      }
    }
  }
}

/**
 * ONNX ConvTranspose: every input element scatters x[n, c, i] * w[c, m', k] to output position
 * i*stride - padBegin + k*dilation. With output_shape or auto_pad SAME_*, the padding is
 * total = stride*(in-1) + output_padding + (k-1)*dilation + 1 - out, split as the ONNX spec says:
 * SAME_UPPER puts floor(total/2) at the beginning, otherwise total - floor(total/2) goes there.
 */
registerKernel("conv_transpose", (inputs, attrs, ctx) => {
  const x = input(inputs, 0, ctx);
  const w = input(inputs, 1, ctx);
  const bias = inputs[2];
  if (!isFloatDType(x.dtype)) throw new QforgeError("BAD_DTYPE", `conv_transpose: the reference kernel supports float tensors, got ${x.dtype}`, { node: ctx.node });
  const shape = outShape(ctx);
  const [batch, cin] = [x.shape[0]!, x.shape[1]!];
  const group = attrs["group"] as number;
  const cg = cin / group;
  const mg = w.shape[1]!;
  const m = mg * group;
  const inSpatial = x.shape.slice(2);
  const outSpatial = shape.slice(2);
  const kernel = w.shape.slice(2);
  const nd = inSpatial.length;
  const strides = (attrs["strides"] as number[] | undefined) ?? new Array<number>(nd).fill(1);
  const dilations = (attrs["dilations"] as number[] | undefined) ?? new Array<number>(nd).fill(1);
  const outPad = (attrs["output_padding"] as number[] | undefined) ?? new Array<number>(nd).fill(0);
  const pads = (attrs["pads"] as number[] | undefined) ?? new Array<number>(2 * nd).fill(0);
  const autoPad = attrs["auto_pad"] as string;
  const computed = attrs["output_shape"] !== undefined || autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER";
  const padBegin = inSpatial.map((d, i) => {
    if (!computed) return autoPad === "VALID" ? 0 : pads[i]!;
    const total = strides[i]! * (d - 1) + outPad[i]! + (kernel[i]! - 1) * dilations[i]! + 1 - outSpatial[i]!;
    return autoPad === "SAME_UPPER" ? Math.floor(total / 2) : total - Math.floor(total / 2);
  });
  const inSize = numel(inSpatial);
  const outSize = numel(outSpatial);
  const kSize = numel(kernel);
  const vx = readNumbers(x);
  const vw = readNumbers(w);
  const out = new Float64Array(numel(shape));
  if (bias !== undefined) {
    const vb = readNumbers(bias);
    for (let n = 0; n < batch; n++) for (let oc = 0; oc < m; oc++) out.fill(vb[oc]!, (n * m + oc) * outSize, (n * m + oc + 1) * outSize);
  }
  // Input spatial coordinates and kernel coordinates, enumerated once.
  const coordsOf = (dims: readonly number[], size: number): number[][] =>
    Array.from({ length: size }, (_, f) => {
      const c = new Array<number>(dims.length);
      for (let d = dims.length - 1; d >= 0; d--) { c[d] = f % dims[d]!; f = Math.floor(f / dims[d]!); }
      return c;
    });
  const inCoords = coordsOf(inSpatial, inSize);
  const kCoords = coordsOf(kernel, kSize);
  for (let n = 0; n < batch; n++) {
    for (let c = 0; c < cin; c++) {
      const g = Math.floor(c / cg);
      for (let i = 0; i < inSize; i++) {
        const xv = vx[(n * cin + c) * inSize + i]!;
        for (let k = 0; k < kSize; k++) {
          let flat = 0;
          let inside = true;
          for (let d = 0; d < nd; d++) {
            const o = inCoords[i]![d]! * strides[d]! - padBegin[d]! + kCoords[k]![d]! * dilations[d]!;
            if (o < 0 || o >= outSpatial[d]!) { inside = false; break; }
            flat = flat * outSpatial[d]! + o;
          }
          if (!inside) continue;
          for (let mi = 0; mi < mg; mi++) {
            out[(n * m + g * mg + mi) * outSize + flat]! += xv * vw[(c * mg + mi) * kSize + k]!;
          }
        }
      }
    }
  }
  return [fromValues(x.dtype, shape, out)];
});
