import { numel, QforgeError, toFloat64, type Tensor } from "@qforge/ir";

/**
 * The observed values as float32. PyTorch's min/max observers run `x.to(torch.float32)` first; a
 * float32 tensor is used in place (no copy), any other dtype is converted once.
 */
export function asFloat32(x: Tensor): Float32Array {
  if (x.dtype === "float32" && x.data instanceof Float32Array) return x.data;
  if (x.dtype === "bool") {
    throw new QforgeError("BAD_DTYPE", `observers take numeric tensors, got bool`);
  }
  return Float32Array.from(toFloat64(x));
}

function nonFinite(kind: string, where: string): QforgeError {
  return new QforgeError("BAD_DATA", `${kind}: observed data contains NaN or Inf${where}`, {
    hint: "an observer cannot derive a finite quantization range from NaN/Inf; find the op that produced them (e.g. with the numeric debugger)",
  });
}

/**
 * min and max of float32 values in one pass; throws BAD_DATA naming `kind` when a NaN or +-Inf is
 * present. `data` must be non-empty. Four independent lanes keep the loop free of long dependency
 * chains; `x - x` (0 for finite x, NaN for NaN/Inf) accumulates the NaN/Inf check. A zero min/max is
 * returned as +0: the sign of a zero extremum depends on reduction order (ATen's SIMD lanes) and
 * never changes qparams, so it is normalized to keep results independent of batching.
 */
export function aminmax(kind: string, data: Float32Array): { min: number; max: number } {
  const n = data.length;
  let mn0 = Infinity;
  let mx0 = -Infinity;
  let mn1 = Infinity;
  let mx1 = -Infinity;
  let mn2 = Infinity;
  let mx2 = -Infinity;
  let mn3 = Infinity;
  let mx3 = -Infinity;
  let z = 0;
  let i = 0;
  for (; i + 3 < n; i += 4) {
    const a = data[i]!;
    const b = data[i + 1]!;
    const c = data[i + 2]!;
    const d = data[i + 3]!;
    if (a < mn0) mn0 = a;
    if (a > mx0) mx0 = a;
    if (b < mn1) mn1 = b;
    if (b > mx1) mx1 = b;
    if (c < mn2) mn2 = c;
    if (c > mx2) mx2 = c;
    if (d < mn3) mn3 = d;
    if (d > mx3) mx3 = d;
    z += a - a + (b - b) + (c - c) + (d - d);
  }
  for (; i < n; i++) {
    const v = data[i]!;
    if (v < mn0) mn0 = v;
    if (v > mx0) mx0 = v;
    z += v - v;
  }
  if (z !== 0) throw nonFinite(kind, "");
  const mn = Math.min(Math.min(mn0, mn1), Math.min(mn2, mn3)) + 0;
  const mx = Math.max(Math.max(mx0, mx1), Math.max(mx2, mx3)) + 0;
  return { min: mn, max: mx };
}

/** Normalizes a (possibly negative) channel axis against `rank`. */
export function normalizeAxis(kind: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(axis) || a < 0 || a >= rank) {
    throw new QforgeError("BAD_SHAPE", `${kind}: channel axis ${axis} is out of range for a tensor of rank ${rank}`);
  }
  return a;
}

/**
 * Per-channel min and max along `axis` (PerChannelMinMaxObserver: permute the channel axis to the
 * front, flatten the rest, aminmax over dim 1). Writes into `mins`/`maxs` of length shape[axis].
 * Throws BAD_DATA naming `kind` on NaN/Inf. Zero extrema are +0 (see `aminmax`).
 */
export function aminmaxPerChannel(kind: string, data: Float32Array, shape: readonly number[], axis: number, mins: Float32Array, maxs: Float32Array): void {
  const channels = shape[axis]!;
  let outer = 1;
  for (let i = 0; i < axis; i++) outer *= shape[i]!;
  let inner = 1;
  for (let i = axis + 1; i < shape.length; i++) inner *= shape[i]!;
  mins.fill(Infinity);
  maxs.fill(-Infinity);
  let nan = false;
  if (inner === 1) {
    // channel is the innermost axis: walk rows of `channels` values
    for (let o = 0; o < outer; o++) {
      const base = o * channels;
      for (let c = 0; c < channels; c++) {
        const v = data[base + c]!;
        if (v < mins[c]!) mins[c] = v;
        if (v > maxs[c]!) maxs[c] = v;
        if (v !== v) nan = true;
      }
    }
  } else {
    for (let o = 0; o < outer; o++) {
      for (let c = 0; c < channels; c++) {
        const base = (o * channels + c) * inner;
        let mn = mins[c]!;
        let mx = maxs[c]!;
        let i = 0;
        if (o === 0) {
          // seed from the first value so that the `else if` chain below stays correct
          mn = data[base]!;
          mx = mn;
          if (mn !== mn) nan = true;
          i = 1;
        }
        for (; i < inner; i++) {
          const v = data[base + i]!;
          if (v < mn) mn = v;
          else if (v > mx) mx = v;
          else if (v !== v) nan = true;
        }
        mins[c] = mn;
        maxs[c] = mx;
      }
    }
  }
  for (let c = 0; c < channels; c++) {
    if (mins[c] === -Infinity || maxs[c] === Infinity) nan = true;
    // +0 for a zero extremum, as in `aminmax`
    mins[c] = mins[c]! + 0;
    maxs[c] = maxs[c]! + 0;
  }
  if (nan) throw nonFinite(kind, "");
}

export function isEmpty(x: Tensor): boolean {
  return numel(x.shape) === 0;
}
