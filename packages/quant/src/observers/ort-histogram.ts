import { QforgeError } from "@qforge/ir";
import { f32, floorDivF32 } from "../primitives/float32.js";

/**
 * ONNX Runtime's calibration histograms (onnxruntime/python/tools/quantization/calibrate.py,
 * `HistogramCollector`), with numpy's float32 arithmetic as numpy >= 2 performs it (NEP 50: Python
 * scalars do not widen float32): `np.histogram`, `np.linspace` and `np.arange` are re-implemented
 * below with their operation order.
 */
export interface OrtHistogram {
  /** Bin counts (integers while only raw data was collected; fractional after `merge`). */
  hist: Float64Array;
  /** float32 bin edges, hist.length + 1 of them. */
  edges: Float32Array;
  /** float32 min and max of the raw data seen. */
  minVal: number;
  maxVal: number;
  /** collect_value: the histogram spans [-threshold, threshold]; collect_absolute_value: the last edge. */
  threshold: number;
}

function tooManyBins(kind: string, bins: number): QforgeError {
  return new QforgeError("BAD_DATA", `${kind}: Too many bins for data range. Cannot create ${bins} finite-sized bins.`, {
    hint: "numpy (and so ONNX Runtime) refuses this range: the data range is too narrow for float32 bins; use fewer bins",
  });
}

/** `np.linspace(start, stop, num, dtype=float32)` for float32 start/stop: f32(f32(i * step) + start), last = stop. */
export function linspaceF32(start: number, stop: number, num: number): Float32Array {
  const out = new Float32Array(num);
  const step = f32(f32(stop - start) / (num - 1));
  for (let i = 0; i < num; i++) out[i] = f32(f32(i * step) + start);
  if (num > 1) out[num - 1] = stop;
  return out;
}

/**
 * `np.arange(start, stop, step)` with numpy float32 scalars, as numpy 2 runs it: the length
 * ceil(f32(f32(stop - start) / step)) and the second element f32(start + step) come from float32
 * scalar arithmetic, but the result is float64 and the rest is filled in double,
 * `start + i * (second - start)` (DOUBLE_fill).
 */
export function arangeF32(start: number, stop: number, step: number): Float64Array {
  const len = Math.max(0, Math.ceil(f32(f32(stop - start) / step)));
  const out = new Float64Array(len);
  if (len === 0) return out;
  out[0] = start;
  if (len === 1) return out;
  out[1] = f32(start + step);
  const delta = out[1]! - start;
  for (let i = 2; i < len; i++) out[i] = start + i * delta;
  return out;
}

/**
 * `np.histogram(data, bins, range=(first, last))` (or range=None: the data's min/max) for float32 data:
 * equal-width edges from linspace, bin index trunc(f32(f32(f32(x - first) / f32(last - first)) * bins))
 * corrected by one against the edges, values outside [first, last] skipped, last bin closed.
 */
export function histogramUniform(kind: string, data: Float32Array, bins: number, first: number, last: number): { hist: Float64Array; edges: Float32Array } {
  let lo = f32(first);
  let hi = f32(last);
  if (lo === hi) {
    // numpy expands an empty range to avoid dividing by zero
    lo = f32(lo - 0.5);
    hi = f32(hi + 0.5);
  }
  const edges = linspaceF32(lo, hi, bins + 1);
  for (let i = 0; i < bins; i++) if (!(edges[i]! < edges[i + 1]!)) throw tooManyBins(kind, bins);
  const hist = new Float64Array(bins);
  const denom = f32(hi - lo);
  for (let k = 0; k < data.length; k++) {
    const x = data[k]!;
    if (!(x >= lo && x <= hi)) continue;
    let idx = Math.trunc(f32(f32(f32(x - lo) / denom) * bins));
    if (idx === bins) idx -= 1;
    if (x < edges[idx]!) idx -= 1;
    if (x >= edges[idx + 1]! && idx !== bins - 1) idx += 1;
    hist[idx]! += 1;
  }
  return { hist, edges };
}

/** Index of the first edge >= x ('left') or > x ('right') (np.searchsorted on sorted edges). */
function searchSorted(edges: ArrayLike<number>, x: number, right: boolean): number {
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const e = edges[mid]!;
    if (right ? e <= x : e < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * `np.histogram(data, bins=edges)` with explicit (monotonic) edges: bin i holds edges[i] <= x <
 * edges[i+1], the last bin also x == edges[-1]; values outside the edges are not counted
 * (numpy's searchsorted-based path).
 */
export function histogramWithEdges(data: Float32Array, edges: ArrayLike<number>): Float64Array {
  const bins = edges.length - 1;
  const hist = new Float64Array(bins);
  const first = edges[0]!;
  const last = edges[bins]!;
  for (let k = 0; k < data.length; k++) {
    const x = data[k]!;
    if (!(x >= first && x <= last)) continue;
    // bin = (number of edges <= x) - 1, the last edge closing the last bin
    let idx = searchSorted(edges, x, true) - 1;
    if (idx >= bins) idx = bins - 1;
    hist[idx]! += 1;
  }
  return hist;
}

function dataMinMax(data: Float32Array): { min: number; max: number } {
  let mn = Infinity;
  let mx = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v < mn) mn = v;
    if (v > mx) mx = v;
  }
  return { min: mn, max: mx };
}

/**
 * `HistogramCollector.collect_value` + `merge_histogram`: histograms on [-threshold, threshold],
 * threshold = max(|min|, |max|) of the batch. A batch within the current threshold is counted on the
 * current bins; a wider one grows the histogram by whole old-width bins on both sides (the old
 * counts land in the middle), except when the old threshold was 0, where old counts are added
 * bin by bin to a histogram on the new range.
 */
export function collectValue(kind: string, h: OrtHistogram | null, data: Float32Array, numBins: number): OrtHistogram {
  const { min, max } = dataMinMax(data);
  const threshold = Math.max(Math.abs(min), Math.abs(max));
  if (h === null) {
    const { hist, edges } = histogramUniform(kind, data, numBins, -threshold, threshold);
    return { hist, edges, minVal: min, maxVal: max, threshold };
  }
  const minVal = Math.min(h.minVal, min);
  const maxVal = Math.max(h.maxVal, max);
  const oldBins = h.hist.length;
  if (threshold <= h.threshold) {
    const fresh = histogramUniform(kind, data, oldBins, -h.threshold, h.threshold).hist;
    for (let i = 0; i < oldBins; i++) fresh[i]! += h.hist[i]!;
    return { hist: fresh, edges: h.edges, minVal, maxVal, threshold: h.threshold };
  }
  if (h.threshold === 0) {
    const { hist, edges } = histogramUniform(kind, data, oldBins, -threshold, threshold);
    for (let i = 0; i < oldBins; i++) hist[i]! += h.hist[i]!;
    return { hist, edges, minVal, maxVal, threshold };
  }
  const grown = growSymmetric(h, threshold);
  const { hist, edges } = histogramUniform(kind, data, grown.bins, -grown.threshold, grown.threshold);
  for (let i = 0; i < oldBins; i++) hist[grown.half + i]! += h.hist[i]!;
  return { hist, edges, minVal, maxVal, threshold: grown.threshold };
}

/** merge_histogram's growth: whole old-stride bins added on both sides until `threshold` fits. */
function growSymmetric(h: OrtHistogram, threshold: number): { half: number; bins: number; threshold: number } {
  const oldBins = h.hist.length;
  const oldStride = f32(f32(2 * h.threshold) / oldBins);
  // int((new_threshold - old_threshold) // old_stride + 1): numpy float32 floor_divide, then + 1
  const half = Math.trunc(f32(floorDivF32(f32(threshold - h.threshold), oldStride) + 1));
  return { half, bins: oldBins + 2 * half, threshold: f32(f32(half * oldStride) + h.threshold) };
}

/**
 * `HistogramCollector.collect_absolute_value` (percentile with symmetric=True): histogram of |x|;
 * the first batch spans [min|x|, max|x|] with `numBins` bins, later batches extend the edges with
 * `np.arange(last + width, amax + width, width)` and are counted on the extended edges (values below
 * the first edge are not counted); old counts add to the first bins.
 */
export function collectAbsolute(kind: string, h: OrtHistogram | null, data: Float32Array, numBins: number): OrtHistogram {
  const { min, max } = dataMinMax(data);
  const abs = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) abs[i] = Math.abs(data[i]!);
  const a = dataMinMax(abs);
  if (h === null) {
    const { hist, edges } = histogramUniform(kind, abs, numBins, a.min, a.max);
    return { hist, edges, minVal: min, maxVal: max, threshold: edges[edges.length - 1]! };
  }
  const countingEdges = extendEdges(h.edges, a.max);
  const hist = histogramWithEdges(abs, countingEdges);
  for (let i = 0; i < h.hist.length; i++) hist[i]! += h.hist[i]!;
  // `hist_edges.astype(data.dtype)`: counted against the float64 edges, stored as float32
  const edges = Float32Array.from(countingEdges);
  return { hist, edges, minVal: Math.min(h.minVal, min), maxVal: Math.max(h.maxVal, max), threshold: edges[edges.length - 1]! };
}

/**
 * Edges extended past `amax` with the first bin's width (collect_absolute_value):
 * `np.hstack((edges, np.arange(last + width, amax + width, width)))`, a float64 array because
 * numpy's arange of float32 scalars is float64.
 */
function extendEdges(edges: Float32Array, amax: number): Float64Array {
  const last = edges[edges.length - 1]!;
  if (!(amax > last)) return Float64Array.from(edges);
  const width = f32(edges[1]! - edges[0]!);
  const extra = arangeF32(f32(last + width), f32(amax + width), width);
  const out = new Float64Array(edges.length + extra.length);
  out.set(edges);
  out.set(extra, edges.length);
  return out;
}

/** First index with cdf[i] >= v (np.searchsorted(cdf, v), side='left'). */
function searchLeft(cdf: Float64Array, v: number): number {
  return searchSorted(cdf, v, false);
}

function cdfOf(hist: Float64Array): Float64Array {
  let total = 0;
  for (let i = 0; i < hist.length; i++) total += hist[i]!;
  const cdf = new Float64Array(hist.length);
  let acc = 0;
  for (let i = 0; i < hist.length; i++) {
    acc += hist[i]! / total;
    cdf[i] = acc;
  }
  return cdf;
}

/**
 * `HistogramCollector.compute_percentile`: the edge where the normalized cumulative histogram reaches
 * the percentile (symmetric: [-e, e] from the |x| histogram; otherwise (100 - p) / 200 cut on each
 * side), clipped to the observed [min, max].
 */
export function percentileRange(h: OrtHistogram, percentile: number, symmetric: boolean): { min: number; max: number } {
  const cdf = cdfOf(h.hist);
  let lo: number;
  let hi: number;
  if (symmetric) {
    const e = h.edges[searchLeft(cdf, percentile / 100)]!;
    lo = -e;
    hi = e;
  } else {
    const cut = (100 - percentile) / 200;
    hi = h.edges[searchLeft(cdf, 1 - cut)]!;
    lo = h.edges[searchLeft(cdf, cut)]!;
  }
  if (lo < h.minVal) lo = h.minVal;
  if (hi > h.maxVal) hi = h.maxVal;
  return { min: lo, max: hi };
}

/** `smooth_distribution(p, eps=0.0001)` in float32; null where ORT gives up (all zero, or eps1 >= 1). */
function smooth(p: Float64Array): Float64Array | null {
  const eps = 0.0001;
  let zeros = 0;
  for (let i = 0; i < p.length; i++) if (p[i] === 0) zeros++;
  const nonzeros = p.length - zeros;
  if (nonzeros === 0) return null;
  const eps1 = (eps * zeros) / nonzeros;
  if (!(eps1 < 1)) return null;
  const out = new Float64Array(p.length);
  const addZero = f32(eps);
  const addNonzero = f32(-eps1);
  for (let i = 0; i < p.length; i++) {
    const v = f32(f32(p[i]!) + (p[i] === 0 ? addZero : addNonzero));
    if (!(v > 0)) return null;
    out[i] = v;
  }
  return out;
}

/** scipy.stats.entropy(p, q): KL divergence of the normalized distributions (float64 here). */
function klDivergence(p: Float64Array, q: Float64Array): number {
  let sp = 0;
  let sq = 0;
  for (let i = 0; i < p.length; i++) {
    sp += p[i]!;
    sq += q[i]!;
  }
  let s = 0;
  for (let i = 0; i < p.length; i++) {
    const pi = p[i]! / sp;
    const qi = q[i]! / sq;
    if (pi > 0) s += pi * Math.log(pi / qi);
  }
  return s;
}

/**
 * `HistogramCollector.get_entropy_threshold`: for every symmetric window of 2i+1 bins around the
 * zero bin (i from num_quantized_bins/2 to num_bins/2), fold the outliers into the end bins (p),
 * merge the window into num_quantized_bins bins and spread them back over the non-empty positions
 * (q, truncated to integers as ORT's int64 array does), smooth both and take the window with the
 * smallest KL divergence; clip its edges to the observed [min, max]. The divergence is computed in
 * float64 (ORT: float32 via scipy), which can only matter for near-ties between windows.
 */
export function entropyRange(h: OrtHistogram, numQuantizedBins: number): { min: number; max: number } {
  const hist = h.hist;
  const numBins = hist.length;
  const zero = Math.floor(numBins / 2);
  const halfQ = Math.floor(numQuantizedBins / 2);
  let best = Infinity;
  let bestRange = { min: h.edges[0]!, max: h.edges[numBins]! };
  let first = true;
  for (let i = halfQ; i <= zero; i++) {
    const start = zero - i;
    const end = Math.min(zero + i + 1, numBins);
    const candidate = { min: h.edges[start]!, max: h.edges[end]! };
    const size = end - start;
    const p = new Float64Array(size);
    for (let k = 0; k < size; k++) p[k] = hist[start + k]!;
    let left = 0;
    for (let k = 0; k < start; k++) left += hist[k]!;
    let right = 0;
    for (let k = end; k < numBins; k++) right += hist[k]!;
    p[0]! += left;
    p[size - 1]! += right;
    const merged = Math.floor(size / numQuantizedBins);
    const quantized = new Float64Array(numQuantizedBins);
    for (let b = 0; b < numQuantizedBins; b++) {
      let s = 0;
      for (let k = b * merged; k < (b + 1) * merged; k++) s += hist[start + k]!;
      quantized[b] = s;
    }
    for (let k = numQuantizedBins * merged; k < size; k++) quantized[numQuantizedBins - 1]! += hist[start + k]!;
    const q = new Float64Array(size);
    for (let b = 0; b < numQuantizedBins; b++) {
      let norm = 0;
      for (let k = b * merged; k < (b + 1) * merged; k++) if (p[k] !== 0) norm++;
      if (norm !== 0) {
        const v = Math.trunc(quantized[b]! / norm); // float assigned into an int64 array
        for (let k = b * merged; k < (b + 1) * merged; k++) q[k] = v;
      }
    }
    const ps = smooth(p);
    const qs = smooth(q);
    const kl = ps !== null && qs !== null ? klDivergence(ps, qs) : Infinity;
    // np.argmin: the first smallest value (an all-inf list picks the first window)
    if (first || kl < best) {
      best = kl;
      bestRange = candidate;
      first = false;
    }
  }
  let { min, max } = bestRange;
  if (min < h.minVal) min = h.minVal;
  if (max > h.maxVal) max = h.maxVal;
  return { min, max };
}

/**
 * Adds `src`'s counts to `dst` re-binned onto `dst.edges`: each source bin's count is split into
 * `up` equal parts at its sub-bin centres (a piecewise-uniform density, the same assumption
 * PyTorch's `_combine_histograms` makes). Parts outside the destination edges go to the end bins.
 */
export function addRebinned(dstHist: Float64Array, dstEdges: Float32Array, srcHist: Float64Array, srcEdges: Float32Array, up: number): void {
  const bins = dstHist.length;
  for (let i = 0; i < srcHist.length; i++) {
    const c = srcHist[i]!;
    if (c === 0) continue;
    const a = srcEdges[i]!;
    const w = srcEdges[i + 1]! - a;
    const part = c / up;
    for (let s = 0; s < up; s++) {
      const v = a + ((s + 0.5) / up) * w;
      let idx = searchSorted(dstEdges, v, true) - 1;
      if (idx < 0) idx = 0;
      if (idx >= bins) idx = bins - 1;
      dstHist[idx]! += part;
    }
  }
}

/**
 * Folds histogram `b` into `a` (observer merge). collect_value histograms: grown like a wider batch
 * would grow them (merge_histogram), `a`'s counts placed as ORT places old counts, `b`'s re-binned by
 * `addRebinned`. |x| histograms: edges extended to `b`'s last edge, `b` re-binned.
 */
export function mergeOrtHistograms(kind: string, a: OrtHistogram, b: OrtHistogram, absolute: boolean, up: number): OrtHistogram {
  const minVal = Math.min(a.minVal, b.minVal);
  const maxVal = Math.max(a.maxVal, b.maxVal);
  if (absolute) {
    const edges = Float32Array.from(extendEdges(a.edges, b.edges[b.edges.length - 1]!));
    const hist = new Float64Array(edges.length - 1);
    hist.set(a.hist);
    addRebinned(hist, edges, b.hist, b.edges, up);
    return { hist, edges, minVal, maxVal, threshold: edges[edges.length - 1]! };
  }
  let base: OrtHistogram;
  if (b.threshold <= a.threshold) {
    base = { hist: a.hist.slice(), edges: a.edges, minVal, maxVal, threshold: a.threshold };
  } else if (a.threshold === 0) {
    const { edges } = histogramUniform(kind, new Float32Array(0), a.hist.length, -b.threshold, b.threshold);
    base = { hist: a.hist.slice(), edges, minVal, maxVal, threshold: b.threshold };
  } else {
    const grown = growSymmetric(a, b.threshold);
    const { hist, edges } = histogramUniform(kind, new Float32Array(0), grown.bins, -grown.threshold, grown.threshold);
    for (let i = 0; i < a.hist.length; i++) hist[grown.half + i]! += a.hist[i]!;
    base = { hist, edges, minVal, maxVal, threshold: grown.threshold };
  }
  addRebinned(base.hist, base.edges, b.hist, b.edges, up);
  return base;
}
