import { QforgeError, type Tensor } from "@qforge/ir";
import { f32 } from "../primitives/float32.js";
import {
  averagingConstantOf,
  checkMergeKind,
  checkStateKind,
  foldMinMax,
  movingAverageStep,
  stateRanges,
  uniformConfig,
  UniformObserverBase,
} from "./common.js";
import { canonicalUniformOptions, type UniformObserverOptions } from "./config.js";
import { defaultQParams, qparamsFromMinMax, type QParams } from "./qparams.js";
import { aminmaxPerChannel, asFloat32, isEmpty, normalizeAxis } from "./reduce.js";
import type { MovingAveragePerChannelMinMaxObserverState, Observer, PerChannelMinMaxObserverState } from "./types.js";

export interface PerChannelMinMaxObserverOptions extends UniformObserverOptions {
  /** The channel axis (negative counts from the end). Default 0. */
  chAxis?: number;
}

/** Shared machinery of the per-channel min/max observers; subclasses differ in `update`. */
export abstract class PerChannelMinMaxBase extends UniformObserverBase implements Observer {
  abstract readonly kind: "PerChannelMinMaxObserver" | "MovingAveragePerChannelMinMaxObserver";
  static readonly observerKind: string = "PerChannelMinMaxObserver";
  readonly chAxis: number;
  protected readonly options: UniformObserverOptions & { chAxis: number };
  /** float32 per-channel running min/max; null before any data (PyTorch's empty buffers). */
  protected minVals: Float32Array | null = null;
  protected maxVals: Float32Array | null = null;

  constructor(options: PerChannelMinMaxObserverOptions = {}) {
    const kind = (new.target as unknown as { observerKind: string }).observerKind;
    super(uniformConfig(kind, options, "per_channel"));
    const chAxis = options.chAxis ?? 0;
    if (!Number.isInteger(chAxis)) throw new QforgeError("BAD_CONFIG", `${kind}: chAxis must be an integer, got ${chAxis}`);
    this.chAxis = chAxis;
    this.options = { ...canonicalUniformOptions(options, this.config), chAxis };
  }

  get initialized(): boolean {
    return this.minVals !== null;
  }
  /** Number of channels seen so far (0 before any data). */
  get channels(): number {
    return this.minVals?.length ?? 0;
  }
  /** Per-channel observed range (float32 values), or null before any data. */
  get range(): { min: Float32Array; max: Float32Array } | null {
    return this.minVals && this.maxVals ? { min: this.minVals.slice(), max: this.maxVals.slice() } : null;
  }

  observe(x: Tensor): void {
    if (isEmpty(x)) return;
    const axis = normalizeAxis(this.kind, this.chAxis, x.shape.length);
    const c = x.shape[axis]!;
    if (this.minVals !== null && this.minVals.length !== c) {
      throw new QforgeError("BAD_SHAPE", `${this.kind}: got ${c} channels on axis ${this.chAxis}, earlier batches had ${this.minVals.length}`);
    }
    const mins = new Float32Array(c);
    const maxs = new Float32Array(c);
    aminmaxPerChannel(this.kind, asFloat32(x), x.shape, axis, mins, maxs);
    this.update(mins, maxs);
  }

  protected abstract update(mins: Float32Array, maxs: Float32Array): void;

  calculateQParams(): QParams {
    if (this.minVals === null || this.maxVals === null) return defaultQParams();
    return qparamsFromMinMax(this.kind, this.minVals, this.maxVals, this.config);
  }

  merge(other: this): void {
    checkMergeKind(this, other);
    if (other.minVals === null || other.maxVals === null) return;
    if (this.minVals !== null && this.minVals.length !== other.minVals.length) {
      throw new QforgeError("BAD_SHAPE", `${this.kind}.merge: ${other.minVals.length} channels vs ${this.minVals.length}`);
    }
    this.update(other.minVals.slice(), other.maxVals.slice());
  }

  abstract state(): PerChannelMinMaxObserverState | MovingAveragePerChannelMinMaxObserverState;

  protected stats(): { minVal: number[] | null; maxVal: number[] | null } {
    return {
      minVal: this.minVals ? Array.from(this.minVals) : null,
      maxVal: this.maxVals ? Array.from(this.maxVals) : null,
    };
  }

  protected restore(minVal: number[] | null, maxVal: number[] | null): void {
    if (minVal === null && maxVal === null) return;
    if (!Array.isArray(minVal) || !Array.isArray(maxVal) || minVal.length !== maxVal.length) {
      throw new QforgeError("BAD_DATA", `${this.kind}: state minVal/maxVal must be arrays of equal length`);
    }
    const { mins, maxs } = stateRanges(this.kind, "channel", minVal, maxVal);
    this.minVals = mins;
    this.maxVals = maxs;
  }
}

/**
 * `torch.ao.quantization.PerChannelMinMaxObserver`: running min/max per channel along `chAxis`
 * (every other axis is reduced). Scales and zero points have one entry per channel.
 */
export class PerChannelMinMaxObserver extends PerChannelMinMaxBase {
  readonly kind = "PerChannelMinMaxObserver" as const;

  protected update(mins: Float32Array, maxs: Float32Array): void {
    if (this.minVals === null || this.maxVals === null) {
      this.minVals = mins;
      this.maxVals = maxs;
      return;
    }
    foldMinMax(this.minVals, this.maxVals, mins, maxs);
  }

  /** Exact: merge(observe(a), observe(b)) equals observe(a ++ b) (concatenated along a non-channel axis). */
  override merge(other: this): void {
    super.merge(other);
  }

  state(): PerChannelMinMaxObserverState {
    return { kind: "PerChannelMinMaxObserver", version: 1, options: { ...this.options }, ...this.stats() };
  }

  static fromState(state: PerChannelMinMaxObserverState): PerChannelMinMaxObserver {
    checkStateKind("PerChannelMinMaxObserver", state);
    const o = new PerChannelMinMaxObserver(state.options);
    o.restore(state.minVal, state.maxVal);
    return o;
  }
}

export interface MovingAveragePerChannelMinMaxObserverOptions extends PerChannelMinMaxObserverOptions {
  averagingConstant?: number;
}

/**
 * `torch.ao.quantization.MovingAveragePerChannelMinMaxObserver`: per-channel moving averages,
 * `min + f32(f32(c) * f32(cur - min))` per channel after the first batch.
 */
export class MovingAveragePerChannelMinMaxObserver extends PerChannelMinMaxBase {
  readonly kind = "MovingAveragePerChannelMinMaxObserver" as const;
  static override readonly observerKind: string = "MovingAveragePerChannelMinMaxObserver";
  readonly averagingConstant: number;

  constructor(options: MovingAveragePerChannelMinMaxObserverOptions = {}) {
    super(options);
    this.averagingConstant = averagingConstantOf("MovingAveragePerChannelMinMaxObserver", options.averagingConstant);
  }

  protected update(mins: Float32Array, maxs: Float32Array): void {
    if (this.minVals === null || this.maxVals === null) {
      this.minVals = mins;
      this.maxVals = maxs;
      return;
    }
    const c = f32(this.averagingConstant);
    const a = this.minVals;
    const b = this.maxVals;
    for (let i = 0; i < a.length; i++) {
      a[i] = movingAverageStep(a[i]!, mins[i]!, c);
      b[i] = movingAverageStep(b[i]!, maxs[i]!, c);
    }
  }

  /** Applies the other observer's per-channel min/max as one more batch (order matters). */
  override merge(other: this): void {
    super.merge(other);
  }

  state(): MovingAveragePerChannelMinMaxObserverState {
    return {
      kind: "MovingAveragePerChannelMinMaxObserver",
      version: 1,
      options: { ...this.options, averagingConstant: this.averagingConstant },
      ...this.stats(),
    };
  }

  static fromState(state: MovingAveragePerChannelMinMaxObserverState): MovingAveragePerChannelMinMaxObserver {
    checkStateKind("MovingAveragePerChannelMinMaxObserver", state);
    const o = new MovingAveragePerChannelMinMaxObserver(state.options);
    o.restore(state.minVal, state.maxVal);
    return o;
  }
}
