import { QforgeError } from "@qforge/ir";
import { AffineQuantizedMinMaxObserver, type AffineQuantizedMinMaxObserverOptions } from "./affine.js";
import { HistogramObserver, type HistogramObserverOptions } from "./histogram.js";
import { MinMaxObserver, MovingAverageMinMaxObserver, type MovingAverageMinMaxObserverOptions } from "./minmax.js";
import { EntropyObserver, PercentileObserver, type EntropyObserverOptions, type PercentileObserverOptions } from "./ort.js";
import {
  MovingAveragePerChannelMinMaxObserver,
  PerChannelMinMaxObserver,
  type MovingAveragePerChannelMinMaxObserverOptions,
  type PerChannelMinMaxObserverOptions,
} from "./per-channel.js";
import {
  FixedQParamsObserver,
  NoopObserver,
  PlaceholderObserver,
  RecordingObserver,
  type FixedQParamsObserverOptions,
  type PlaceholderObserverOptions,
} from "./simple.js";
import type { UniformObserverOptions } from "./config.js";
import type { Observer, ObserverKind, ObserverState } from "./types.js";

/** Constructor options of each observer kind. */
export interface ObserverOptionsByKind {
  MinMaxObserver: UniformObserverOptions;
  MovingAverageMinMaxObserver: MovingAverageMinMaxObserverOptions;
  PerChannelMinMaxObserver: PerChannelMinMaxObserverOptions;
  MovingAveragePerChannelMinMaxObserver: MovingAveragePerChannelMinMaxObserverOptions;
  HistogramObserver: HistogramObserverOptions;
  FixedQParamsObserver: FixedQParamsObserverOptions;
  PlaceholderObserver: PlaceholderObserverOptions;
  RecordingObserver: { dtype?: string };
  NoopObserver: { dtype?: string };
  AffineQuantizedMinMaxObserver: AffineQuantizedMinMaxObserverOptions;
  PercentileObserver: PercentileObserverOptions;
  EntropyObserver: EntropyObserverOptions;
}

/** Every observer kind, in the order of the table above. */
export const OBSERVER_KINDS: readonly ObserverKind[] = [
  "MinMaxObserver",
  "MovingAverageMinMaxObserver",
  "PerChannelMinMaxObserver",
  "MovingAveragePerChannelMinMaxObserver",
  "HistogramObserver",
  "FixedQParamsObserver",
  "PlaceholderObserver",
  "RecordingObserver",
  "NoopObserver",
  "AffineQuantizedMinMaxObserver",
  "PercentileObserver",
  "EntropyObserver",
];

/** Builds an observer from its kind name and options (e.g. from a serialized QConfig). */
export function createObserver<K extends ObserverKind>(kind: K, options: ObserverOptionsByKind[K]): Observer {
  const o = options as never;
  switch (kind) {
    case "MinMaxObserver":
      return new MinMaxObserver(o);
    case "MovingAverageMinMaxObserver":
      return new MovingAverageMinMaxObserver(o);
    case "PerChannelMinMaxObserver":
      return new PerChannelMinMaxObserver(o);
    case "MovingAveragePerChannelMinMaxObserver":
      return new MovingAveragePerChannelMinMaxObserver(o);
    case "HistogramObserver":
      return new HistogramObserver(o);
    case "FixedQParamsObserver":
      return new FixedQParamsObserver(o);
    case "PlaceholderObserver":
      return new PlaceholderObserver(o);
    case "RecordingObserver":
      return new RecordingObserver(o);
    case "NoopObserver":
      return new NoopObserver(o);
    case "AffineQuantizedMinMaxObserver":
      return new AffineQuantizedMinMaxObserver(o);
    case "PercentileObserver":
      return new PercentileObserver(o);
    case "EntropyObserver":
      return new EntropyObserver(o);
    default:
      throw new QforgeError("BAD_CONFIG", `unknown observer kind '${String(kind)}'`, { hint: `one of ${OBSERVER_KINDS.join(", ")}` });
  }
}

/**
 * Rebuilds an observer from `observer.state()` (also after a JSON round trip): same options, same
 * statistics, so `calculateQParams()` returns identical qparams. Malformed states throw BAD_DATA,
 * unknown kinds or versions BAD_INPUT.
 */
export function loadObserver(state: ObserverState): Observer {
  if (state === null || typeof state !== "object" || typeof (state as { kind?: unknown }).kind !== "string") {
    throw new QforgeError("BAD_INPUT", "loadObserver: expected an observer state object with a 'kind'");
  }
  if (state.version !== 1) {
    throw new QforgeError("BAD_INPUT", `loadObserver: unsupported state version ${String((state as { version?: unknown }).version)} for ${state.kind}`);
  }
  switch (state.kind) {
    case "MinMaxObserver":
      return MinMaxObserver.fromState(state);
    case "MovingAverageMinMaxObserver":
      return MovingAverageMinMaxObserver.fromState(state);
    case "PerChannelMinMaxObserver":
      return PerChannelMinMaxObserver.fromState(state);
    case "MovingAveragePerChannelMinMaxObserver":
      return MovingAveragePerChannelMinMaxObserver.fromState(state);
    case "HistogramObserver":
      return HistogramObserver.fromState(state);
    case "FixedQParamsObserver":
      return FixedQParamsObserver.fromState(state);
    case "PlaceholderObserver":
      return PlaceholderObserver.fromState(state);
    case "RecordingObserver":
      return RecordingObserver.fromState(state);
    case "NoopObserver":
      return NoopObserver.fromState(state);
    case "AffineQuantizedMinMaxObserver":
      return AffineQuantizedMinMaxObserver.fromState(state);
    case "PercentileObserver":
      return PercentileObserver.fromState(state);
    case "EntropyObserver":
      return EntropyObserver.fromState(state);
    default:
      throw new QforgeError("BAD_INPUT", `loadObserver: unknown observer kind '${String((state as { kind: unknown }).kind)}'`);
  }
}
