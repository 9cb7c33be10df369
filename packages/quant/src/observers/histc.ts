import { f32 } from "../primitives/float32.js";

/**
 * The two outer bin edges `torch.histc(x, bins, min, max)` uses (ATen HistogramKernel.cpp,
 * `histc_select_outer_bin_edges` + `linspace`): when min == max it takes the data's own min/max, and
 * when those are equal too it widens them by 1 on each side. Edges are float32 (`bin_edges` has the
 * input's dtype). `dataMin`/`dataMax` are the batch's float32 min/max.
 */
export function histcEdges(bins: number, min: number, max: number, dataMin: number, dataMax: number): { lo: number; hi: number } {
  let lo = min;
  let hi = max;
  if (lo === hi) {
    lo = dataMin;
    hi = dataMax;
  }
  if (lo === hi) {
    lo -= 1;
    hi += 1;
  }
  const start = f32(lo);
  const end = f32(hi);
  return { lo: start, hi: linspaceLast(start, end, bins + 1) };
}

/**
 * Last element of ATen's CPU `linspace(start, end, steps)` in float32. The scalar path returns `end`
 * exactly; when steps is a multiple of 16 the last element comes from the vectorized path
 * (`Vectorized<float>::arange(end - step * 7, step)` lane 7), which can differ from `end` by rounding.
 */
function linspaceLast(start: number, end: number, steps: number): number {
  if (steps % 16 !== 0 || steps < 16) return end;
  const step = f32(f32(end - start) / (steps - 1));
  const base = f32(end - f32(step * 7));
  return f32(base + f32(7 * step));
}

/**
 * Adds `torch.histc` counts of `data` into `hist` (float32 counts), with the given float32 edges:
 * values outside [lo, hi] are skipped; `pos = trunc(f32(f32(f32(x - lo) * bins) / f32(hi - lo)))`,
 * the last bin closed (HistogramKernel.cpp `histogramdd_cpu_contiguous`, LINEAR_INTERPOLATION).
 * Counts are integers, so they are tallied in an Int32Array and added once; this equals ATen's
 * float32 `+= 1` while a bin holds fewer than 2^24 values (beyond that ATen's result depends on its
 * thread split). Returns how many values were counted.
 */
export function histcAccumulate(hist: Float32Array, data: Float32Array, lo: number, hi: number): number {
  const bins = hist.length;
  const width = f32(hi - lo);
  const counts = new Int32Array(bins);
  const last = bins - 1;
  let counted = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v >= lo && v <= hi) {
      const pos = Math.trunc(f32(f32(f32(v - lo) * bins) / width));
      counts[pos < bins ? pos : last]!++;
      counted++;
    }
  }
  for (let b = 0; b < bins; b++) if (counts[b] !== 0) hist[b] = f32(hist[b]! + counts[b]!);
  return counted;
}
