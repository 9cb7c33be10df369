import type { Tensor } from "@qforge/ir";
import { f32 } from "../primitives/float32.js";
import {
  averagingConstantOf,
  checkMergeKind,
  checkStateKind,
  movingAverageStep,
  stateRange,
  uniformConfig,
  UniformObserverBase,
} from "./common.js";
import { canonicalUniformOptions, type UniformObserverOptions } from "./config.js";
import { defaultQParams, qparamsFromMinMax, type QParams } from "./qparams.js";
import { aminmax, asFloat32, isEmpty } from "./reduce.js";
import type { MinMaxObserverState, MovingAverageMinMaxObserverState, Observer } from "./types.js";

/**
 * Shared machinery of the per-tensor min/max observers (PyTorch's MovingAverageMinMaxObserver
 * subclasses MinMaxObserver; here both extend this base and differ in `update`).
 */
export abstract class PerTensorMinMaxBase extends UniformObserverBase implements Observer {
  abstract readonly kind: "MinMaxObserver" | "MovingAverageMinMaxObserver";
  protected readonly options: UniformObserverOptions;
  /** float32 running min/max; +Inf/-Inf before any data (PyTorch's initial buffers). */
  protected minVal = Infinity;
  protected maxVal = -Infinity;

  /** Name used in errors raised while constructing (the subclass's `kind` is not set yet then). */
  static readonly observerKind: string = "MinMaxObserver";

  constructor(options: UniformObserverOptions = {}) {
    super(uniformConfig((new.target as unknown as { observerKind: string }).observerKind, options, "per_tensor"));
    this.options = canonicalUniformOptions(options, this.config);
  }

  /** Whether any data was observed. */
  get initialized(): boolean {
    return this.minVal !== Infinity || this.maxVal !== -Infinity;
  }
  /** Observed range as float32 values, or null before any data. */
  get range(): { min: number; max: number } | null {
    return this.initialized ? { min: this.minVal, max: this.maxVal } : null;
  }

  observe(x: Tensor): void {
    if (isEmpty(x)) return; // PyTorch: `if x_orig.numel() == 0: return x_orig`
    const { min, max } = aminmax(this.kind, asFloat32(x));
    this.update(min, max);
  }

  /** Folds one batch's min/max into the running statistics. */
  protected abstract update(min: number, max: number): void;

  calculateQParams(): QParams {
    if (!this.initialized) return defaultQParams();
    return qparamsFromMinMax(this.kind, [this.minVal], [this.maxVal], this.config);
  }

  merge(other: this): void {
    checkMergeKind(this, other);
    if (!other.initialized) return;
    this.update(other.minVal, other.maxVal);
  }

  abstract state(): MinMaxObserverState | MovingAverageMinMaxObserverState;

  protected restore(minVal: number | null, maxVal: number | null): void {
    const r = stateRange(this.kind, minVal, maxVal);
    if (r !== null) {
      this.minVal = r.min;
      this.maxVal = r.max;
    }
  }
}

/**
 * `torch.ao.quantization.MinMaxObserver`: running min and max of everything observed; qparams by
 * the min/max formula (qparams.ts). Per tensor only.
 */
export class MinMaxObserver extends PerTensorMinMaxBase {
  readonly kind = "MinMaxObserver" as const;

  protected update(min: number, max: number): void {
    if (min < this.minVal) this.minVal = min;
    if (max > this.maxVal) this.maxVal = max;
  }

  /** Exact: merge(observe(a), observe(b)) equals observe(a ++ b). */
  override merge(other: this): void {
    super.merge(other);
  }

  state(): MinMaxObserverState {
    return {
      kind: "MinMaxObserver",
      version: 1,
      options: { ...this.options },
      minVal: this.initialized ? this.minVal : null,
      maxVal: this.initialized ? this.maxVal : null,
    };
  }

  static fromState(state: MinMaxObserverState): MinMaxObserver {
    checkStateKind("MinMaxObserver", state);
    const o = new MinMaxObserver(state.options);
    o.restore(state.minVal, state.maxVal);
    return o;
  }
}

export interface MovingAverageMinMaxObserverOptions extends UniformObserverOptions {
  /** Weight of the new batch, rounded to float32 where it multiplies (default 0.01). */
  averagingConstant?: number;
}

/**
 * `torch.ao.quantization.MovingAverageMinMaxObserver`: the first batch sets min/max, later batches
 * move them by `min + f32(f32(c) * f32(cur_min - min))` (float32 tensor ops with a Python float).
 */
export class MovingAverageMinMaxObserver extends PerTensorMinMaxBase {
  readonly kind = "MovingAverageMinMaxObserver" as const;
  static override readonly observerKind: string = "MovingAverageMinMaxObserver";
  readonly averagingConstant: number;

  constructor(options: MovingAverageMinMaxObserverOptions = {}) {
    super(options);
    this.averagingConstant = averagingConstantOf("MovingAverageMinMaxObserver", options.averagingConstant);
  }

  protected update(min: number, max: number): void {
    if (!this.initialized) {
      this.minVal = min;
      this.maxVal = max;
      return;
    }
    const c = f32(this.averagingConstant);
    this.minVal = movingAverageStep(this.minVal, min, c);
    this.maxVal = movingAverageStep(this.maxVal, max, c);
  }

  /**
   * Applies the other observer's current min/max as one more batch (moving average step). Not
   * associative: merge order matters, as batch order does for the observer itself.
   */
  override merge(other: this): void {
    super.merge(other);
  }

  state(): MovingAverageMinMaxObserverState {
    return {
      kind: "MovingAverageMinMaxObserver",
      version: 1,
      options: { ...this.options, averagingConstant: this.averagingConstant },
      minVal: this.initialized ? this.minVal : null,
      maxVal: this.initialized ? this.maxVal : null,
    };
  }

  static fromState(state: MovingAverageMinMaxObserverState): MovingAverageMinMaxObserver {
    checkStateKind("MovingAverageMinMaxObserver", state);
    const o = new MovingAverageMinMaxObserver(state.options);
    o.restore(state.minVal, state.maxVal);
    return o;
  }
}
