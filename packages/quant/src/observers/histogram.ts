import { QforgeError, type Tensor } from "@qforge/ir";
import { f32, floorDivF32, rint } from "../primitives/float32.js";
import { checkMergeKind, checkStateKind, stateRange, uniformConfig, UniformObserverBase } from "./common.js";
import { canonicalUniformOptions, type UniformObserverOptions } from "./config.js";
import { histcAccumulate, histcEdges } from "./histc.js";
import { defaultQParams, qparamsFromMinMax, type QParams } from "./qparams.js";
import { aminmax, asFloat32, isEmpty } from "./reduce.js";
import { torchCumsumF32, torchSumF32 } from "./torch-sum.js";
import type { HistogramObserverState, Observer } from "./types.js";

export interface HistogramObserverOptions extends UniformObserverOptions {
  /** Number of histogram bins (default 2048). */
  bins?: number;
  /** Sub-bins per bin when re-binning an older histogram onto a wider range (default 128). */
  upsampleRate?: number;
}

/** One evaluated candidate of the L2 search: [next_start_bin, next_end_bin, quantization_error]. */
export type HistogramSearchStep = [number, number, number];

/** What `_non_linear_param_search` decided (HistogramObserver.nonLinearParamSearch). */
export interface HistogramSearchResult {
  startBin: number;
  endBin: number;
  /** float32 range handed to the min/max qparams formula. */
  newMin: number;
  newMax: number;
  /** float32 sum of the histogram (torch.sum order). */
  total: number;
  trace: HistogramSearchStep[];
}

/**
 * `torch.ao.quantization.HistogramObserver` with PyTorch 1.13's exact behaviour:
 *
 * - The first batch (or any batch while every earlier batch was constant, min == max) sets min/max
 *   and `torch.histc(x, bins, min=int(min), max=int(max))`: the bounds are truncated to integers,
 *   so values outside [trunc(min), trunc(max)] are dropped from the counts (when both truncate to
 *   the same integer, histc falls back to the batch's own min/max). min/max keep the true values.
 * - Later batches: combined range, `_adjust_min_max` (the max is stretched so the new bin width is
 *   an integer multiple, `downsample_rate`, of the old width / `upsample_rate`), histc of the batch
 *   over the truncated combined range, and the old histogram re-binned by `_combine_histograms`
 *   (upsample by repetition, double cumulative sum, difference, / upsample_rate).
 * - `calculateQParams` runs the L2-error search `_non_linear_param_search` towards
 *   `dst_nbins = 2 ** bits(dtype)` (256 for 8-bit dtypes) and applies the min/max formula to the
 *   range it picks.
 *
 * Every float operation is the float32/float64 operation PyTorch performs (see comments), and sums
 * follow ATen's summation order (torch-sum.ts), so histograms, the search trace and qparams match
 * PyTorch 1.13 bit for bit on the golden cases. Like PyTorch (and unlike MinMaxObserver), symmetric
 * quint8 with reduceRange is accepted and yields zero point 128 with the range 0..127.
 * Inputs of other dtypes are converted to float32 first (PyTorch would histogram float64 input in
 * float64); zero min/max values are kept as +0 (see reduce.ts `aminmax`).
 */
export class HistogramObserver extends UniformObserverBase implements Observer {
  readonly kind = "HistogramObserver" as const;
  readonly bins: number;
  readonly upsampleRate: number;
  /** 2 ** iinfo(dtype).bits: 256 for quint8/qint8 whatever the range; 2^32 for qint32. */
  readonly dstNbins: number;
  private readonly options: UniformObserverOptions & { bins: number; upsampleRate: number };
  private minVal = Infinity;
  private maxVal = -Infinity;
  private histogram: Float32Array;

  constructor(options: HistogramObserverOptions = {}) {
    const kind = "HistogramObserver";
    // Unlike MinMaxObserver, PyTorch's HistogramObserver accepts symmetric quint8 with reduce_range
    // (zero point 128 outside 0..127); so does this one, to stay comparable.
    super(uniformConfig(kind, options, "per_tensor", true));
    const bins = options.bins ?? 2048;
    const up = options.upsampleRate ?? 128;
    if (!Number.isInteger(bins) || bins < 1) throw new QforgeError("BAD_CONFIG", `${kind}: bins must be a positive integer, got ${bins}`);
    if (!Number.isInteger(up) || up < 1) throw new QforgeError("BAD_CONFIG", `${kind}: upsampleRate must be a positive integer, got ${up}`);
    this.bins = bins;
    this.upsampleRate = up;
    this.dstNbins = 2 ** (this.config.dtype === "qint32" ? 32 : 8);
    this.histogram = new Float32Array(bins);
    this.options = { ...canonicalUniformOptions(options, this.config), bins, upsampleRate: up };
  }

  get initialized(): boolean {
    return this.minVal !== Infinity || this.maxVal !== -Infinity;
  }
  get range(): { min: number; max: number } | null {
    return this.initialized ? { min: this.minVal, max: this.maxVal } : null;
  }
  /** A copy of the float32 histogram. */
  get counts(): Float32Array {
    return this.histogram.slice();
  }

  observe(x: Tensor): void {
    if (isEmpty(x)) return;
    const data = asFloat32(x);
    const { min, max } = aminmax(this.kind, data);
    // `same_values = min_val.item() == max_val.item()`; uninitialized is (+inf, -inf)
    if (!this.initialized || this.minVal === this.maxVal) {
      this.minVal = min;
      this.maxVal = max;
      this.histogram.fill(0);
      const { lo, hi } = histcEdges(this.bins, Math.trunc(min), Math.trunc(max), min, max);
      histcAccumulate(this.histogram, data, lo, hi);
      return;
    }
    const combinedMin = Math.min(min, this.minVal);
    const combinedMax = Math.max(max, this.maxVal);
    const adj = this.adjustMinMax(combinedMin, combinedMax);
    const fresh = new Float32Array(this.bins);
    const { lo, hi } = histcEdges(this.bins, Math.trunc(adj.min), Math.trunc(adj.max), min, max);
    histcAccumulate(fresh, data, lo, hi);
    this.absorb(fresh, adj);
  }

  /**
   * `_adjust_min_max` (PyTorch 1.13): float32 tensor arithmetic on 0-d tensors.
   *   hist_bin_width = f32(f32(max - min) / f32(bins * upsample_rate))
   *   downsample_rate = ceil(f32(f32(cmax - cmin) / f32(bins * hist_bin_width)))
   *   e = f32(f32(downsample_rate * f32(bins * hist_bin_width)) - f32(cmax - cmin)); cmax += e
   *   start_idx = rint(f32(f32(min - cmin) / hist_bin_width))
   */
  private adjustMinMax(combinedMin: number, combinedMax: number): { min: number; max: number; downsampleRate: number; startIdx: number } {
    const hbw = f32(f32(this.maxVal - this.minVal) / f32(this.bins * this.upsampleRate));
    const binsTimesHbw = f32(f32(this.bins) * hbw);
    const span = f32(combinedMax - combinedMin);
    const ratio = f32(span / binsTimesHbw);
    if (!(hbw > 0) || !Number.isFinite(ratio)) {
      throw new QforgeError("BAD_DATA", `HistogramObserver: the observed range [${this.minVal}, ${this.maxVal}] is too narrow for float32 to re-bin it (bin width underflows)`, {
        hint: "PyTorch 1.13 fails on the same data; rescale the input or use MinMaxObserver",
      });
    }
    const downsampleRate = Math.ceil(ratio);
    const e = f32(f32(f32(downsampleRate) * binsTimesHbw) - span);
    const max = f32(combinedMax + e);
    const startIdx = rint(f32(f32(this.minVal - combinedMin) / hbw));
    return { min: combinedMin, max, downsampleRate, startIdx };
  }

  /**
   * Folds `fresh` (counts on the adjusted combined grid) with the current histogram and moves the
   * observer to the combined range: plain addition when the range did not change, otherwise the
   * current histogram goes through `_combine_histograms`.
   */
  private absorb(fresh: Float32Array, adj: { min: number; max: number; downsampleRate: number; startIdx: number }): void {
    if (adj.min === this.minVal && adj.max === this.maxVal) {
      for (let i = 0; i < this.bins; i++) fresh[i] = f32(fresh[i]! + this.histogram[i]!);
    } else {
      combineHistograms(fresh, this.histogram, this.upsampleRate, adj.downsampleRate, adj.startIdx);
    }
    this.histogram = fresh;
    this.minVal = adj.min;
    this.maxVal = adj.max;
  }

  /**
   * `_non_linear_param_search` (caffe2 NormMinimization::NonlinearQuantizationParamsSearch as ported
   * to observer.py): move the start or end bin inwards in 1e-5 quantile steps while the L2
   * quantization error does not grow. Records every evaluated candidate in `trace`.
   */
  nonLinearParamSearch(): HistogramSearchResult {
    const bins = this.bins;
    const hist = this.histogram;
    const binWidth = f32(f32(this.maxVal - this.minVal) / f32(bins)); // 0-d float32 tensor
    const total = torchSumF32(hist); // .item(): a float32 value used as a Python float
    const cSum = new Float32Array(bins);
    torchCumsumF32(hist, cSum);
    const stepsize = 1e-5;
    let alpha = 0;
    let beta = 1;
    let startBin = 0;
    let endBin = bins - 1;
    let normMin = Infinity;
    const trace: HistogramSearchStep[] = [];
    while (alpha < beta) {
      const nextAlpha = alpha + stepsize;
      const nextBeta = beta - stepsize;
      // `cSum[l] < next_alpha * total`: a float32 0-d tensor against a Python float, compared in float32
      const lowTarget = f32(nextAlpha * total);
      const highTarget = f32(nextBeta * total);
      let l = startBin;
      let r = endBin;
      while (l < endBin && cSum[l]! < lowTarget) l++;
      while (r > startBin && cSum[r]! > highTarget) r--;
      let nextStart = startBin;
      let nextEnd = endBin;
      if (l - startBin > endBin - r) {
        nextStart = l;
        alpha = nextAlpha;
      } else {
        nextEnd = r;
        beta = nextBeta;
      }
      if (nextStart === startBin && nextEnd === endBin) continue;
      const norm = this.quantizationError(nextStart, nextEnd);
      trace.push([nextStart, nextEnd, norm]);
      if (norm > normMin) break;
      normMin = norm;
      startBin = nextStart;
      endBin = nextEnd;
    }
    const newMin = f32(this.minVal + f32(binWidth * f32(startBin)));
    const newMax = f32(this.minVal + f32(binWidth * f32(endBin + 1)));
    return { startBin, endBin, newMin, newMax, total, trace };
  }

  /**
   * `_compute_quantization_error(next_start_bin, next_end_bin)`: the L2 error of quantizing the
   * histogram's (piecewise uniform) density into `dst_nbins` bins spanning the candidate range.
   * Python floats (double) for the widths, float32 tensors for the per-bin terms, `norm.sum()` in
   * ATen's order.
   */
  quantizationError(nextStartBin: number, nextEndBin: number): number {
    const bins = this.bins;
    const dst = this.dstNbins;
    const binWidthD = (this.maxVal - this.minVal) / bins; // .item() values: double arithmetic
    const dstBinWidthD = (binWidthD * (nextEndBin - nextStartBin + 1)) / dst;
    if (dstBinWidthD === 0) return 0;
    const bw = f32(binWidthD);
    const dbw = f32(dstBinWidthD);
    const half = f32(dstBinWidthD / 2);
    const negHalf = f32(-dstBinWidthD / 2);
    const cube = (v: number): number => f32(f32(v * v) * v);
    // _get_norm(tensor(-dbw/2), tensor(dbw/2), density): the middle-bin norm, a 0-d float32 tensor
    const midNorm = f32(f32(cube(half) - cube(negHalf)) / 3);
    const halfCube = cube(half);
    const negHalfCube = cube(negHalf);
    const dstMax = dst - 1;
    const norm = new Float32Array(bins);
    const hist = this.histogram;
    for (let i = 0; i < bins; i++) {
      const srcBegin = f32(f32(i - nextStartBin) * bw);
      const srcEnd = f32(srcBegin + bw);
      const dBegin = Math.min(Math.max(floorDivF32(srcBegin, dbw), 0), dstMax);
      const dBeginCenter = f32(f32(dBegin + 0.5) * dbw);
      const dEnd = Math.min(Math.max(floorDivF32(srcEnd, dbw), 0), dstMax);
      const density = f32(hist[i]! / bw);
      const deltaBegin = f32(srcBegin - dBeginCenter);
      let n = f32(density * f32(f32(halfCube - cube(deltaBegin)) / 3));
      n = f32(n + f32(f32(f32(dEnd - dBegin) - 1) * f32(density * midNorm)));
      const dEndCenter = f32(f32(dEnd * dbw) + half);
      const deltaEnd = f32(srcEnd - dEndCenter);
      n = f32(n + f32(density * f32(f32(cube(deltaEnd) - negHalfCube) / 3)));
      norm[i] = n;
    }
    return torchSumF32(norm);
  }

  calculateQParams(): QParams {
    if (!this.initialized) return defaultQParams();
    const { newMin, newMax } = this.nonLinearParamSearch();
    return qparamsFromMinMax(this.kind, [newMin], [newMax], this.config);
  }

  /**
   * Folds another histogram into this one. PyTorch has no histogram merge; this applies the same
   * re-binning PyTorch uses between batches: the combined range is adjusted against this
   * observer's range (`_adjust_min_max`), this histogram goes through `_combine_histograms`, and the
   * other histogram - whose raw values are gone - is re-binned onto the combined grid by placing
   * each of its bins' counts at `upsampleRate` evenly spaced sub-bin centres (the same piecewise
   * uniform density assumption `_combine_histograms` makes). The approximation: every count moves by
   * at most one sub-bin (its source bin width / upsampleRate) plus one rounding step of `start_idx`,
   * so cumulative counts at any combined bin edge stay within the counts of the source bins that
   * straddle that edge (tested). Total mass is preserved up to float32 rounding. Unlike observing
   * raw data, no counts are dropped by the 1.13 integer-truncation quirk.
   */
  merge(other: this): void {
    checkMergeKind(this, other);
    if (other.bins !== this.bins) {
      throw new QforgeError("BAD_CONFIG", `HistogramObserver.merge: bins differ (${this.bins} vs ${other.bins})`);
    }
    if (!other.initialized) return;
    if (!this.initialized) {
      this.minVal = other.minVal;
      this.maxVal = other.maxVal;
      this.histogram = other.histogram.slice();
      return;
    }
    const combinedMin = Math.min(this.minVal, other.minVal);
    const combinedMax = Math.max(this.maxVal, other.maxVal);
    if (this.minVal === this.maxVal) {
      // a constant range has no grid to re-bin from: rebuild on [combinedMin, combinedMax]
      const fresh = new Float32Array(this.bins);
      addPointMass(fresh, combinedMin, combinedMax, this.minVal, sumCounts(this.histogram));
      addHistogramMass(fresh, combinedMin, combinedMax, other.histogram, other.minVal, other.maxVal, this.upsampleRate);
      this.histogram = fresh;
      this.minVal = combinedMin;
      this.maxVal = combinedMax;
      return;
    }
    const adj = this.adjustMinMax(combinedMin, combinedMax);
    const fresh = new Float32Array(this.bins);
    addHistogramMass(fresh, adj.min, adj.max, other.histogram, other.minVal, other.maxVal, this.upsampleRate);
    this.absorb(fresh, adj);
  }

  state(): HistogramObserverState {
    return {
      kind: "HistogramObserver",
      version: 1,
      options: { ...this.options },
      minVal: this.initialized ? this.minVal : null,
      maxVal: this.initialized ? this.maxVal : null,
      histogram: Array.from(this.histogram),
    };
  }

  static fromState(state: HistogramObserverState): HistogramObserver {
    checkStateKind("HistogramObserver", state);
    const o = new HistogramObserver(state.options);
    const range = stateRange(o.kind, state.minVal, state.maxVal);
    if (!Array.isArray(state.histogram) || state.histogram.length !== o.bins) {
      throw new QforgeError("BAD_DATA", `HistogramObserver: state histogram must have ${o.bins} bins`);
    }
    if (range !== null) {
      o.minVal = range.min;
      o.maxVal = range.max;
    }
    const h = Float32Array.from(state.histogram);
    if (!h.every((v) => Number.isFinite(v) && v >= 0)) throw new QforgeError("BAD_DATA", "HistogramObserver: state histogram has negative or non-finite counts");
    o.histogram = h;
    return o;
  }
}

/**
 * `_combine_histograms(orig_hist=fresh, new_hist=old, upsample_rate, downsample_rate, start_idx, bins)`:
 * the old histogram repeated `up` times is placed at `startIdx` in a zero array of bins * down
 * sub-bins, cumulated in double, sampled every `down` sub-bins, differenced against the float32 copy
 * of the previous sample (`shifted_integral_histogram` is a float32 tensor) and divided by `up`;
 * the float32 result is added to `fresh` in place.
 *
 * Sub-bins outside the old histogram are zeros, and adding zeros leaves a double sum unchanged, so
 * only the bins * up old sub-bins are summed. Where PyTorch's slice assignment would not fit (the
 * old sub-bins run past the end, which PyTorch reports as a shape mismatch) the overflow is dropped.
 */
function combineHistograms(fresh: Float32Array, old: Float32Array, up: number, down: number, startIdx: number): void {
  const bins = fresh.length;
  const total = bins * down;
  const len = Math.min(bins * up, Math.max(0, total - startIdx));
  let acc = 0;
  let j = 0; // old sub-bins consumed so far
  let prev32 = 0;
  for (let k = 0; k < bins; k++) {
    const lastPos = k * down + down - 1; // position sampled by [down-1::down]
    const upto = Math.min(lastPos - startIdx + 1, len); // old sub-bins at positions <= lastPos
    for (; j < upto; j++) acc += old[Math.floor(j / up)]!;
    const integral = acc;
    const interpolated = f32((integral - prev32) / up);
    fresh[k] = f32(fresh[k]! + interpolated);
    prev32 = f32(integral);
  }
}

/** float64 sum of counts (for moving a whole histogram as one point mass). */
function sumCounts(h: Float32Array): number {
  let s = 0;
  for (let i = 0; i < h.length; i++) s += h[i]!;
  return s;
}

/** Bin of value `v` on the float32 grid [lo, hi] with histc's formula (clamped to the grid). */
function binOf(v: number, lo: number, hi: number, bins: number): number {
  const width = f32(hi - lo);
  if (!(width > 0)) return Math.floor(bins / 2);
  let pos = Math.trunc(f32(f32(f32(v - lo) * bins) / width));
  if (pos >= bins) pos = bins - 1;
  if (pos < 0) pos = 0;
  return pos;
}

function addPointMass(hist: Float32Array, lo: number, hi: number, v: number, count: number): void {
  const b = binOf(v, lo, hi, hist.length);
  hist[b] = f32(hist[b]! + count);
}

/**
 * Re-bins a histogram over [srcMin, srcMax] onto the grid [lo, hi]: each source bin's count is split
 * into `up` equal parts placed at the sub-bin centres.
 */
function addHistogramMass(hist: Float32Array, lo: number, hi: number, src: Float32Array, srcMin: number, srcMax: number, up: number): void {
  const bins = hist.length;
  if (srcMin === srcMax) {
    addPointMass(hist, lo, hi, srcMin, sumCounts(src));
    return;
  }
  const acc = new Float64Array(bins);
  const srcBins = src.length;
  const w = (srcMax - srcMin) / srcBins;
  for (let i = 0; i < srcBins; i++) {
    const c = src[i]!;
    if (c === 0) continue;
    const part = c / up;
    for (let s = 0; s < up; s++) {
      const v = srcMin + (i + (s + 0.5) / up) * w;
      acc[binOf(v, lo, hi, bins)]! += part;
    }
  }
  for (let b = 0; b < bins; b++) if (acc[b] !== 0) hist[b] = f32(hist[b]! + acc[b]!);
}
