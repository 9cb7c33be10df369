export * from "./types.js";
export * from "./config.js";
export { defaultQParams, qparamsFromMinMax, type QParams } from "./qparams.js";
export { MinMaxObserver, MovingAverageMinMaxObserver, type MovingAverageMinMaxObserverOptions } from "./minmax.js";
export {
  PerChannelMinMaxObserver,
  MovingAveragePerChannelMinMaxObserver,
  type PerChannelMinMaxObserverOptions,
  type MovingAveragePerChannelMinMaxObserverOptions,
} from "./per-channel.js";
export { HistogramObserver, type HistogramObserverOptions, type HistogramSearchResult, type HistogramSearchStep } from "./histogram.js";
export {
  FixedQParamsObserver,
  PlaceholderObserver,
  RecordingObserver,
  NoopObserver,
  type FixedQParamsObserverOptions,
  type PlaceholderObserverOptions,
} from "./simple.js";
export {
  AffineQuantizedMinMaxObserver,
  type AffineQuantizedMinMaxObserverOptions,
  type Granularity as AffineObserverGranularity,
  type MappingType as AffineObserverMappingType,
  type ZeroPointDomain as AffineObserverZeroPointDomain,
} from "./affine.js";
export { PercentileObserver, EntropyObserver, type PercentileObserverOptions, type EntropyObserverOptions } from "./ort.js";
export { createObserver, loadObserver, OBSERVER_KINDS, type ObserverOptionsByKind } from "./load.js";
export { benchObservers } from "./bench.js";
