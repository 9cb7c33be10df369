import { QforgeError, type Tensor } from "@qforge/ir";
import {
  canonicalUniformOptions,
  refuseSymmetricReducedQuint8,
  requirePerTensor,
  resolveUniformConfig,
  type UniformObserverOptions,
  type UniformQuantConfig,
} from "./config.js";
import { f32 } from "./float32.js";
import { defaultQParams, qparamsFromMinMax, type QParams } from "./qparams.js";
import { aminmax, asFloat32, isEmpty } from "./reduce.js";
import type { MinMaxObserverState, MovingAverageMinMaxObserverState, Observer } from "./types.js";

export function checkMergeKind(self: Observer, other: Observer): void {
  if (other.kind !== self.kind) {
    throw new QforgeError("BAD_INPUT", `${self.kind}.merge: cannot merge a ${other.kind}`);
  }
}

function checkStateKind(kind: string, state: { kind: string }): void {
  if (state.kind !== kind) throw new QforgeError("BAD_INPUT", `${kind}.fromState: got a ${state.kind} state`);
}

function finiteOrNull(kind: string, v: number | null | undefined): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v !== "number" || !Number.isFinite(v)) throw new QforgeError("BAD_DATA", `${kind}: state holds a non-finite min/max (${String(v)})`);
  return f32(v);
}

/**
 * Shared machinery of the per-tensor min/max observers (PyTorch's MovingAverageMinMaxObserver
 * subclasses MinMaxObserver; here both extend this base and differ in `update`).
 */
export abstract class PerTensorMinMaxBase implements Observer {
  abstract readonly kind: "MinMaxObserver" | "MovingAverageMinMaxObserver";
  readonly config: UniformQuantConfig;
  protected readonly options: UniformObserverOptions;
  /** float32 running min/max; +Inf/-Inf before any data (PyTorch's initial buffers). */
  protected minVal = Infinity;
  protected maxVal = -Infinity;

  /** Name used in errors raised while constructing (the subclass's `kind` is not set yet then). */
  static readonly observerKind: string = "MinMaxObserver";

  constructor(options: UniformObserverOptions = {}) {
    const kind = (new.target as unknown as { observerKind: string }).observerKind;
    requirePerTensor(kind, options.qscheme);
    this.config = resolveUniformConfig(kind, options, "per_tensor_affine");
    refuseSymmetricReducedQuint8(kind, this.config);
    this.options = canonicalUniformOptions(options, this.config);
  }

  get quantMin(): number {
    return this.config.quantMin;
  }
  get quantMax(): number {
    return this.config.quantMax;
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
    const mn = finiteOrNull(this.kind, minVal);
    const mx = finiteOrNull(this.kind, maxVal);
    if ((mn === null) !== (mx === null)) throw new QforgeError("BAD_DATA", `${this.kind}: state has only one of minVal/maxVal`);
    if (mn !== null && mx !== null) {
      if (!(mn <= mx)) throw new QforgeError("BAD_DATA", `${this.kind}: state min ${mn} should be less than max ${mx}`);
      this.minVal = mn;
      this.maxVal = mx;
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
    const c = options.averagingConstant ?? 0.01;
    if (!Number.isFinite(c)) throw new QforgeError("BAD_CONFIG", `MovingAverageMinMaxObserver: averagingConstant must be finite, got ${c}`);
    this.averagingConstant = c;
  }

  protected update(min: number, max: number): void {
    if (!this.initialized) {
      this.minVal = min;
      this.maxVal = max;
      return;
    }
    const c = f32(this.averagingConstant);
    this.minVal = f32(this.minVal + f32(c * f32(min - this.minVal)));
    this.maxVal = f32(this.maxVal + f32(c * f32(max - this.maxVal)));
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

export { checkStateKind, finiteOrNull };
