/**
 * Convolutions (ONNX Conv-11 / ConvTranspose-11, NC... layout). Dot products accumulate in float64
 * and round once to the output dtype (see kernels/linalg.ts for why that is the oracle's choice).
 */
import { QforgeError, numel } from "@qforge/ir";
import { registerKernel } from "../kernel.js";
import { fromValues, input, isFloatDType, outShape, readNumbers } from "../util/tensors.js";
import { windowGeometry, windowTaps } from "../util/window.js";

/** y[n, m, o] = b[m] + sum over c in m's group and taps k of x[n, c, o*s - pad + k*d] * w[m, c', k]. */
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
  const taps = windowTaps(windowGeometry(attrs, inSpatial, outSpatial, kernel), inSpatial, outSpatial);
  const inSize = numel(inSpatial);
  const outSize = numel(outSpatial);
  const kSize = numel(kernel);
  const vx = readNumbers(x);
  const vw = readNumbers(w);
  const vb = bias === undefined ? undefined : readNumbers(bias);
  const out = new Float64Array(numel(shape));
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
