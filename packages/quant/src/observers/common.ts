/**
 * What the observers share: the uniform-quantization config they are built on, the checks of
 * `merge` and `fromState`, and the running statistics of the min/max family (PyTorch's
 * MinMaxObserver / MovingAverageMinMaxObserver update rules, per tensor and per channel).
 */
import { QforgeError } from "@qforge/ir";
import { f32 } from "../primitives/float32.js";
import {
  refuseSymmetricReducedQuint8,
  requirePerChannel,
  requirePerTensor,
  resolveUniformConfig,
  type UniformObserverOptions,
  type UniformQuantConfig,
} from "./config.js";
import type { Observer } from "./types.js";

/**
 * Resolves a uniform observer's options the way its PyTorch `__init__` does: the qscheme family check,
 * `UniformQuantizationObserverBase.__init__` (`resolveUniformConfig`), then MinMaxObserver's refusal
 * of symmetric quint8 with reduce_range, which HistogramObserver does not make
 * (`allowReducedSymmetricQuint8`).
 */
export function uniformConfig(
  kind: string,
  options: UniformObserverOptions,
  family: "per_tensor" | "per_channel",
  allowReducedSymmetricQuint8 = false,
): UniformQuantConfig {
  if (family === "per_tensor") requirePerTensor(kind, options.qscheme);
  else requirePerChannel(kind, options.qscheme);
  const config = resolveUniformConfig(kind, options, family === "per_tensor" ? "per_tensor_affine" : "per_channel_affine");
  if (!allowReducedSymmetricQuint8) refuseSymmetricReducedQuint8(kind, config);
  return config;
}

/** Base of the observers that quantize with a `UniformQuantConfig` (PyTorch's UniformQuantizationObserverBase). */
export abstract class UniformObserverBase {
  readonly config: UniformQuantConfig;

  protected constructor(config: UniformQuantConfig) {
    this.config = config;
  }

  /** The effective quant_min (after reduce_range). */
  get quantMin(): number {
    return this.config.quantMin;
  }
  /** The effective quant_max (after reduce_range). */
  get quantMax(): number {
    return this.config.quantMax;
  }
}

export function checkMergeKind(self: Observer, other: Observer): void {
  if (other.kind !== self.kind) {
    throw new QforgeError("BAD_INPUT", `${self.kind}.merge: cannot merge a ${other.kind}`);
  }
}

export function checkStateKind(kind: string, state: { kind: string }): void {
  if (state.kind !== kind) throw new QforgeError("BAD_INPUT", `${kind}.fromState: got a ${state.kind} state`);
}

export function finiteOrNull(kind: string, v: number | null | undefined): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v !== "number" || !Number.isFinite(v)) throw new QforgeError("BAD_DATA", `${kind}: state holds a non-finite min/max (${String(v)})`);
  return f32(v);
}

/**
 * A per-tensor min/max pair from a state: null when both are null (no data yet), otherwise finite
 * float32 values with min <= max (BAD_DATA otherwise).
 */
export function stateRange(kind: string, minVal: number | null | undefined, maxVal: number | null | undefined): { min: number; max: number } | null {
  const mn = finiteOrNull(kind, minVal);
  const mx = finiteOrNull(kind, maxVal);
  if ((mn === null) !== (mx === null)) throw new QforgeError("BAD_DATA", `${kind}: state has only one of minVal/maxVal`);
  if (mn === null || mx === null) return null;
  if (!(mn <= mx)) throw new QforgeError("BAD_DATA", `${kind}: state min ${mn} should be less than max ${mx}`);
  return { min: mn, max: mx };
}

/**
 * Per-channel (or per-block, `unit`) min/max arrays from a state, as float32; every pair must be
 * finite with min <= max (BAD_DATA naming the `unit` otherwise). The lengths are the caller's check.
 */
export function stateRanges(kind: string, unit: string, minVal: readonly number[], maxVal: readonly number[]): { mins: Float32Array; maxs: Float32Array } {
  const mins = Float32Array.from(minVal);
  const maxs = Float32Array.from(maxVal);
  for (let i = 0; i < mins.length; i++) {
    if (!Number.isFinite(mins[i]) || !Number.isFinite(maxs[i]) || !(mins[i]! <= maxs[i]!)) {
      throw new QforgeError("BAD_DATA", `${kind}: state ${unit} ${i} has an invalid range [${minVal[i]}, ${maxVal[i]}]`);
    }
  }
  return { mins, maxs };
}

/** MinMaxObserver's update, elementwise: the running min/max (in place) absorb a batch's min/max. */
export function foldMinMax(runMin: Float32Array, runMax: Float32Array, mins: Float32Array, maxs: Float32Array): void {
  for (let i = 0; i < runMin.length; i++) {
    if (mins[i]! < runMin[i]!) runMin[i] = mins[i]!;
    if (maxs[i]! > runMax[i]!) runMax[i] = maxs[i]!;
  }
}

/** `averaging_constant` of the moving-average observers: default 0.01, finite. */
export function averagingConstantOf(kind: string, averagingConstant: number | undefined): number {
  const c = averagingConstant ?? 0.01;
  if (!Number.isFinite(c)) throw new QforgeError("BAD_CONFIG", `${kind}: averagingConstant must be finite, got ${c}`);
  return c;
}

/**
 * One moving-average step of MovingAverage(PerChannel)MinMaxObserver,
 * `min_val + averaging_constant * (min_val_cur - min_val)` as float32 tensor ops: `c` is the
 * averaging constant already rounded to float32 (where the Python float meets the tensor).
 */
export function movingAverageStep(avg: number, cur: number, c: number): number {
  return f32(avg + f32(c * f32(cur - avg)));
}
