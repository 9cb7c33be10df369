import { QforgeError, type Tensor } from "@qforge/ir";
import { checkMergeKind, checkStateKind, uniformConfig, UniformObserverBase } from "./common.js";
import { canonicalUniformOptions, type UniformObserverOptions } from "./config.js";
import {
  collectAbsolute,
  collectValue,
  entropyRange,
  mergeOrtHistograms,
  percentileRange,
  type OrtHistogram,
} from "./ort-histogram.js";
import { defaultQParams, qparamsFromMinMax, type QParams } from "./qparams.js";
import { aminmax, asFloat32, isEmpty } from "./reduce.js";
import type { EntropyObserverState, Observer, OrtHistogramJson, PercentileObserverState } from "./types.js";

/** Sub-bins per bin when merging two histograms (see addRebinned). */
const MERGE_UPSAMPLE = 128;

function toJson(h: OrtHistogram | null): OrtHistogramJson | null {
  if (h === null) return null;
  return { hist: Array.from(h.hist), edges: Array.from(h.edges), minVal: h.minVal, maxVal: h.maxVal, threshold: h.threshold };
}

function fromJson(kind: string, j: OrtHistogramJson | null | undefined): OrtHistogram | null {
  if (j === null || j === undefined) return null;
  if (!Array.isArray(j.hist) || !Array.isArray(j.edges) || j.edges.length !== j.hist.length + 1 || j.hist.length === 0) {
    throw new QforgeError("BAD_DATA", `${kind}: state histogram needs hist and hist.length + 1 edges`);
  }
  const edges = Float32Array.from(j.edges);
  for (let i = 0; i + 1 < edges.length; i++) {
    if (!(edges[i]! <= edges[i + 1]!)) throw new QforgeError("BAD_DATA", `${kind}: state histogram edges must increase`);
  }
  const hist = Float64Array.from(j.hist);
  if (!hist.every((v) => Number.isFinite(v) && v >= 0)) throw new QforgeError("BAD_DATA", `${kind}: state histogram has negative or non-finite counts`);
  for (const v of [j.minVal, j.maxVal, j.threshold]) {
    if (typeof v !== "number" || !Number.isFinite(v)) throw new QforgeError("BAD_DATA", `${kind}: state histogram min/max/threshold must be finite numbers`);
  }
  return { hist, edges, minVal: Math.fround(j.minVal), maxVal: Math.fround(j.maxVal), threshold: Math.fround(j.threshold) };
}

/** Common part of the two ONNX Runtime calibrators: a per-tensor observer around an OrtHistogram. */
abstract class OrtHistogramObserver extends UniformObserverBase implements Observer {
  abstract readonly kind: "PercentileObserver" | "EntropyObserver";
  readonly numBins: number;
  protected hist: OrtHistogram | null = null;
  protected readonly baseOptions: UniformObserverOptions;

  protected constructor(kind: string, options: UniformObserverOptions, numBins: number) {
    super(uniformConfig(kind, options, "per_tensor"));
    if (!Number.isInteger(numBins) || numBins < 1) throw new QforgeError("BAD_CONFIG", `${kind}: numBins must be a positive integer, got ${numBins}`);
    this.numBins = numBins;
    this.baseOptions = canonicalUniformOptions(options, this.config);
  }

  get initialized(): boolean {
    return this.hist !== null;
  }
  /** The collected histogram (copies), or null before any data. */
  get histogram(): { hist: Float64Array; edges: Float32Array; minVal: number; maxVal: number } | null {
    const h = this.hist;
    return h ? { hist: h.hist.slice(), edges: h.edges.slice(), minVal: h.minVal, maxVal: h.maxVal } : null;
  }

  protected abstract collect(h: OrtHistogram | null, data: Float32Array): OrtHistogram;
  /** The calibrated [min, max] (float32 values) of a non-empty histogram. */
  protected abstract rangeOf(h: OrtHistogram): { min: number; max: number };
  protected abstract absolute(): boolean;

  observe(x: Tensor): void {
    if (isEmpty(x)) return; // ORT would histogram an empty batch as [0, 0]; PyTorch's observers skip it
    const data = asFloat32(x);
    aminmax(this.kind, data); // NaN/Inf check
    this.hist = this.collect(this.hist, data);
  }

  /** The range the calibrator picks, or null before any data. */
  calibratedRange(): { min: number; max: number } | null {
    return this.hist ? this.rangeOf(this.hist) : null;
  }

  calculateQParams(): QParams {
    const r = this.calibratedRange();
    if (r === null) return defaultQParams();
    // The formula widens the range to include 0 anyway; doing it first keeps a clipped window whose
    // ends crossed (all data beyond the window) valid, as ORT's own scale computation does.
    return qparamsFromMinMax(this.kind, [Math.min(r.min, 0)], [Math.max(r.max, 0)], this.config);
  }

  /**
   * Folds the other histogram in: this histogram is grown the way ORT grows it for a wider batch
   * (its counts kept bin for bin), and the other's counts are re-binned onto the result assuming a
   * uniform density inside each bin (128 sub-bins per bin). Counts can become fractional.
   */
  merge(other: this): void {
    checkMergeKind(this, other);
    if (other.hist === null) return;
    if (this.hist === null) {
      this.hist = { ...other.hist, hist: other.hist.hist.slice(), edges: other.hist.edges.slice() };
      return;
    }
    this.hist = mergeOrtHistograms(this.kind, this.hist, other.hist, this.absolute(), MERGE_UPSAMPLE);
  }

  abstract state(): PercentileObserverState | EntropyObserverState;

  protected restoreHistogram(j: OrtHistogramJson | null | undefined): void {
    this.hist = fromJson(this.kind, j);
  }

  protected histogramJson(): OrtHistogramJson | null {
    return toJson(this.hist);
  }
}

export interface PercentileObserverOptions extends UniformObserverOptions {
  /** Histogram bins (ORT PercentileCalibrater default 2048). */
  numBins?: number;
  /** Percentile in [0, 100] (default 99.999). */
  percentile?: number;
  /**
   * ORT's `symmetric`: histogram |x| and take [-t, t]. Default false (PercentileCalibrater's default;
   * note ORT's `create_calibrator`/`quantize_static` pass symmetric=True unless told otherwise).
   */
  symmetric?: boolean;
}

/**
 * ONNX Runtime's percentile calibration (PercentileCalibrater / HistogramCollector.compute_percentile):
 * collects a histogram batch by batch exactly as ORT does (|x| with growing edges when symmetric,
 * otherwise a [-t, t] histogram that grows by whole bins), picks the range where the cumulative
 * histogram crosses the percentile, clipped to the observed min/max, then applies the min/max
 * qparams formula of the configured dtype/qscheme (qparams.ts).
 */
export class PercentileObserver extends OrtHistogramObserver {
  readonly kind = "PercentileObserver" as const;
  readonly percentile: number;
  readonly symmetric: boolean;

  constructor(options: PercentileObserverOptions = {}) {
    super("PercentileObserver", options, options.numBins ?? 2048);
    const p = options.percentile ?? 99.999;
    if (!(p >= 0 && p <= 100)) throw new QforgeError("BAD_CONFIG", `PercentileObserver: Invalid percentile. Must be in range 0 <= percentile <= 100. (got ${p})`);
    this.percentile = p;
    this.symmetric = options.symmetric ?? false;
  }

  protected collect(h: OrtHistogram | null, data: Float32Array): OrtHistogram {
    return this.symmetric ? collectAbsolute(this.kind, h, data, this.numBins) : collectValue(this.kind, h, data, this.numBins);
  }

  protected rangeOf(h: OrtHistogram): { min: number; max: number } {
    return percentileRange(h, this.percentile, this.symmetric);
  }

  protected absolute(): boolean {
    return this.symmetric;
  }

  state(): PercentileObserverState {
    return {
      kind: "PercentileObserver",
      version: 1,
      options: { ...this.baseOptions, numBins: this.numBins, percentile: this.percentile, symmetric: this.symmetric },
      histogram: this.histogramJson(),
    };
  }

  static fromState(state: PercentileObserverState): PercentileObserver {
    checkStateKind("PercentileObserver", state);
    const o = new PercentileObserver(state.options);
    o.restoreHistogram(state.histogram);
    return o;
  }
}

export interface EntropyObserverOptions extends UniformObserverOptions {
  /** Histogram bins (ORT EntropyCalibrater default 128). */
  numBins?: number;
  /** Bins of the quantized distribution compared by KL divergence (default 128). */
  numQuantizedBins?: number;
}

/**
 * ONNX Runtime's entropy calibration (EntropyCalibrater / HistogramCollector.get_entropy_threshold):
 * a [-t, t] histogram collected like ORT's collect_value, then the symmetric window around the zero
 * bin whose quantized version has the smallest KL divergence, clipped to the observed min/max, then
 * the min/max qparams formula. With ORT's defaults (128 bins, 128 quantized bins) only the full
 * window is a candidate, so the range is the observed one (clipped to [-t, t]).
 */
export class EntropyObserver extends OrtHistogramObserver {
  readonly kind = "EntropyObserver" as const;
  readonly numQuantizedBins: number;

  constructor(options: EntropyObserverOptions = {}) {
    super("EntropyObserver", options, options.numBins ?? 128);
    const q = options.numQuantizedBins ?? 128;
    if (!Number.isInteger(q) || q < 1) throw new QforgeError("BAD_CONFIG", `EntropyObserver: numQuantizedBins must be a positive integer, got ${q}`);
    if (Math.floor(q / 2) > Math.floor(this.numBins / 2)) {
      throw new QforgeError("BAD_CONFIG", `EntropyObserver: numQuantizedBins (${q}) must not exceed numBins (${this.numBins})`, {
        hint: "ORT's search has no candidate window then (argmin of an empty sequence)",
      });
    }
    this.numQuantizedBins = q;
  }

  protected collect(h: OrtHistogram | null, data: Float32Array): OrtHistogram {
    return collectValue(this.kind, h, data, this.numBins);
  }

  protected rangeOf(h: OrtHistogram): { min: number; max: number } {
    return entropyRange(h, this.numQuantizedBins);
  }

  protected absolute(): boolean {
    return false;
  }

  state(): EntropyObserverState {
    return {
      kind: "EntropyObserver",
      version: 1,
      options: { ...this.baseOptions, numBins: this.numBins, numQuantizedBins: this.numQuantizedBins },
      histogram: this.histogramJson(),
    };
  }

  static fromState(state: EntropyObserverState): EntropyObserver {
    checkStateKind("EntropyObserver", state);
    const o = new EntropyObserver(state.options);
    o.restoreHistogram(state.histogram);
    return o;
  }
}
