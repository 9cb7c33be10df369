import type { DType, Tensor } from "@qforge/ir";
import type { AffineQuantizedMinMaxObserverOptions } from "./affine.js";
import type { UniformObserverOptions } from "./config.js";
import type { QParams } from "./qparams.js";

/**
 * An observer watches the tensors that flow through one edge during calibration (or QAT) and turns
 * what it saw into quantization parameters. Mirrors `torch.ao.quantization.ObserverBase`:
 * `observe` is `forward`, `calculateQParams` is `calculate_qparams`.
 */
export interface Observer {
  /** The class name, PyTorch's where one exists (`MinMaxObserver`, `HistogramObserver`, ...). */
  readonly kind: ObserverKind;
  /** Records statistics of `x`. Empty tensors are ignored; NaN/Inf throw BAD_DATA. */
  observe(x: Tensor): void;
  /** Scale (float32) and zero point (int32) from what was observed; scale 1, zero point 0 when nothing was. */
  calculateQParams(): QParams;
  /** JSON-serializable snapshot (options + statistics); `loadObserver(state)` rebuilds the observer. */
  state(): ObserverState;
  /** Folds the statistics of another observer of the same kind and options into this one. */
  merge(other: this): void;
}

export type ObserverKind =
  | "MinMaxObserver"
  | "MovingAverageMinMaxObserver"
  | "PerChannelMinMaxObserver"
  | "MovingAveragePerChannelMinMaxObserver"
  | "HistogramObserver"
  | "FixedQParamsObserver"
  | "PlaceholderObserver"
  | "RecordingObserver"
  | "NoopObserver"
  | "AffineQuantizedMinMaxObserver"
  | "PercentileObserver"
  | "EntropyObserver";

/**
 * A tensor as plain JSON: logical values row-major (int64 as numbers); NaN and infinities, which JSON
 * cannot hold, are written as the strings "NaN", "Infinity", "-Infinity".
 */
export interface SerializedTensor {
  dtype: DType;
  shape: number[];
  data: Array<number | "NaN" | "Infinity" | "-Infinity">;
}

/** Common fields of every state. `version` lets a later format stay loadable. */
interface StateBase<K extends ObserverKind, O> {
  kind: K;
  version: 1;
  options: O;
}

export interface MinMaxObserverState extends StateBase<"MinMaxObserver", UniformObserverOptions> {
  /** float32 values; null before any data. */
  minVal: number | null;
  maxVal: number | null;
}

export interface MovingAverageMinMaxObserverState
  extends StateBase<"MovingAverageMinMaxObserver", UniformObserverOptions & { averagingConstant: number }> {
  minVal: number | null;
  maxVal: number | null;
}

export interface PerChannelMinMaxObserverState extends StateBase<"PerChannelMinMaxObserver", UniformObserverOptions & { chAxis: number }> {
  /** One float32 value per channel; null before any data. */
  minVal: number[] | null;
  maxVal: number[] | null;
}

export interface MovingAveragePerChannelMinMaxObserverState
  extends StateBase<"MovingAveragePerChannelMinMaxObserver", UniformObserverOptions & { chAxis: number; averagingConstant: number }> {
  minVal: number[] | null;
  maxVal: number[] | null;
}

export interface HistogramObserverState
  extends StateBase<"HistogramObserver", UniformObserverOptions & { bins: number; upsampleRate: number }> {
  minVal: number | null;
  maxVal: number | null;
  /** `bins` float32 counts (fractional after merging batches with different ranges). */
  histogram: number[];
}

export interface FixedQParamsObserverState
  extends StateBase<"FixedQParamsObserver", { scale: number; zeroPoint: number; dtype: string; qscheme: string; quantMin: number; quantMax: number }> {}

export interface PlaceholderObserverState
  extends StateBase<"PlaceholderObserver", { dtype: string; qscheme?: string; quantMin?: number; quantMax?: number; isDynamic: boolean }> {}

export interface RecordingObserverState extends StateBase<"RecordingObserver", { dtype: string }> {
  tensors: SerializedTensor[];
}

export interface NoopObserverState extends StateBase<"NoopObserver", { dtype: string }> {}

export interface AffineQuantizedMinMaxObserverState extends StateBase<"AffineQuantizedMinMaxObserver", AffineObserverOptionsJson> {
  /** Shape of the reduced min/max (one entry per block); null before any data. */
  shape: number[] | null;
  minVal: number[] | null;
  maxVal: number[] | null;
}

/** AffineQuantizedMinMaxObserver options in a state: the constructor's options, which are plain JSON. */
export type AffineObserverOptionsJson = AffineQuantizedMinMaxObserverOptions;

/** Histogram collected the way ONNX Runtime's HistogramCollector does (see ort.ts). */
export interface OrtHistogramJson {
  /** Bin counts (integers). */
  hist: number[];
  /** Bin edges as float32 values, hist.length + 1 of them. */
  edges: number[];
  /** Real data min and max (float32), used to clip the chosen range. */
  minVal: number;
  maxVal: number;
  /** collect_value only: the symmetric threshold of the histogram range [-threshold, threshold]. */
  threshold: number;
}

export interface PercentileObserverState
  extends StateBase<"PercentileObserver", UniformObserverOptions & { numBins: number; percentile: number; symmetric: boolean }> {
  histogram: OrtHistogramJson | null;
}

export interface EntropyObserverState
  extends StateBase<"EntropyObserver", UniformObserverOptions & { numBins: number; numQuantizedBins: number }> {
  histogram: OrtHistogramJson | null;
}

export type ObserverState =
  | MinMaxObserverState
  | MovingAverageMinMaxObserverState
  | PerChannelMinMaxObserverState
  | MovingAveragePerChannelMinMaxObserverState
  | HistogramObserverState
  | FixedQParamsObserverState
  | PlaceholderObserverState
  | RecordingObserverState
  | NoopObserverState
  | AffineQuantizedMinMaxObserverState
  | PercentileObserverState
  | EntropyObserverState;

export type { QParams };
