import type { AttrValue } from "@qforge/ir";
import { forEachIndex } from "./tensors.js";

/** Strides, dilations and the padding actually applied at each end, per spatial dim. */
export interface WindowGeometry {
  readonly kernel: readonly number[];
  readonly strides: readonly number[];
  readonly dilations: readonly number[];
  readonly padBegin: readonly number[];
  readonly padEnd: readonly number[];
}

/**
 * Window geometry of a convolution or pooling node (ONNX Conv/MaxPool/AveragePool attributes).
 * auto_pad SAME_UPPER/SAME_LOWER pad in total max(0, (out-1)*stride + (k-1)*dilation + 1 - in),
 * the odd unit at the end (UPPER) or the beginning (LOWER); VALID pads nothing.
 */
export function windowGeometry(
  attrs: Readonly<Record<string, AttrValue>>, inSpatial: readonly number[], outSpatial: readonly number[], kernel: readonly number[],
): WindowGeometry {
  const n = inSpatial.length;
  const strides = (attrs["strides"] as number[] | undefined) ?? new Array<number>(n).fill(1);
  const dilations = (attrs["dilations"] as number[] | undefined) ?? new Array<number>(n).fill(1);
  const pads = (attrs["pads"] as number[] | undefined) ?? new Array<number>(2 * n).fill(0);
  const autoPad = (attrs["auto_pad"] as string | undefined) ?? "NOTSET";
  const padBegin: number[] = [];
  const padEnd: number[] = [];
  for (let i = 0; i < n; i++) {
    if (autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") {
      const total = Math.max(0, (outSpatial[i]! - 1) * strides[i]! + (kernel[i]! - 1) * dilations[i]! + 1 - inSpatial[i]!);
      const small = Math.floor(total / 2);
      padBegin.push(autoPad === "SAME_UPPER" ? small : total - small);
      padEnd.push(total - padBegin[i]!);
    } else if (autoPad === "VALID") {
      padBegin.push(0);
      padEnd.push(0);
    } else {
      padBegin.push(pads[i]!);
      padEnd.push(pads[n + i]!);
    }
  }
  return { kernel, strides, dilations, padBegin, padEnd };
}

/**
 * For each output position (row-major over `outSpatial`), the kernel taps that land inside the input:
 * pairs [flat kernel index, flat input spatial index]. Input coordinate = out*stride - padBegin + k*dilation.
 */
export function windowTaps(g: WindowGeometry, inSpatial: readonly number[], outSpatial: readonly number[]): Int32Array[] {
  const taps: Int32Array[] = [];
  const n = inSpatial.length;
  const kernelCoords: number[][] = [];
  forEachIndex(g.kernel, (k) => kernelCoords.push([...k]));
  forEachIndex(outSpatial, (o) => {
    const pairs: number[] = [];
    kernelCoords.forEach((k, kf) => {
      let flat = 0;
      for (let d = 0; d < n; d++) {
        const x = o[d]! * g.strides[d]! - g.padBegin[d]! + k[d]! * g.dilations[d]!;
        if (x < 0 || x >= inSpatial[d]!) return;
        flat = flat * inSpatial[d]! + x;
      }
      pairs.push(kf, flat);
    });
    taps.push(Int32Array.from(pairs));
  });
  return taps;
}
