/**
 * The QAT fake-quant modules of `torch.ao.quantization.fake_quantize` (PyTorch 1.13): stateful
 * objects that observe the tensors flowing through them, keep (scale, zero_point) up to date and
 * fake-quantize. They hold an observer (PyTorch's `activation_post_process`) built by a factory that
 * receives the observer kwargs, like PyTorch's `observer(**observer_kwargs)`.
 *
 * - `FakeQuantize`: observe, then `calculate_qparams()` of the observer (observer formula), then
 *   `fake_quantize_per_tensor_affine` / `fake_quantize_per_channel_affine`.
 * - `FixedQParamsFakeQuantize`: fixed qparams (e.g. sigmoid's scale 1/256).
 * - `FusedMovingAvgObsFakeQuantize` (PyTorch's default QAT activation fake-quant): the same moving
 *   average, but its qparams come from ATen's `ChooseQuantizationParams` (double arithmetic, nudged
 *   zero point), not from the observer formula (golden README item 5).
 */
import { numel, QforgeError, tensor, type Tensor } from "@qforge/ir";
import {
  FixedQParamsObserver, HistogramObserver, MinMaxObserver, MovingAverageMinMaxObserver,
  MovingAveragePerChannelMinMaxObserver, PerChannelMinMaxObserver,
  type FixedQParamsObserverOptions, type HistogramObserverOptions, type MovingAveragePerChannelMinMaxObserverOptions,
  type Observer, type ObserverDType, type ObserverDTypeInput, type QScheme, type UniformQuantConfig,
} from "../observers/index.js";
import { chooseQuantizationParamsAten } from "../primitives/aten-qparams.js";
import { f32 } from "../primitives/float32.js";
import { quantRange } from "../primitives/qdtype.js";
import { fakeQuantizePerChannelAffine, fakeQuantizePerTensorAffine, type FakeQuantResult } from "./functional.js";

/**
 * What a fake-quant module needs from its observer: the `Observer` contract plus its effective
 * quantization range. Uniform observers expose `config` (dtype, qscheme); FixedQParamsObserver exposes
 * `qscheme`/`dtype` directly; per-channel observers add `chAxis`; observers that keep statistics
 * expose them as `range`.
 */
export interface FakeQuantizeObserver extends Observer {
  readonly quantMin: number;
  readonly quantMax: number;
  readonly config?: Pick<UniformQuantConfig, "dtype" | "qscheme">;
  readonly qscheme?: QScheme;
  readonly dtype?: ObserverDType;
  readonly chAxis?: number;
  readonly averagingConstant?: number;
  readonly range?: { readonly min: number | Float32Array; readonly max: number | Float32Array } | null;
}

/** Observer kwargs a fake-quant module passes to its observer factory (PyTorch's `**observer_kwargs`). */
export type FakeQuantizeKwargs = MovingAveragePerChannelMinMaxObserverOptions & Pick<HistogramObserverOptions, "bins" | "upsampleRate">;

export type ObserverFactory<O extends FakeQuantizeObserver = FakeQuantizeObserver> = (kwargs: FakeQuantizeKwargs) => O;

/** PyTorch's observer classes by name, for configs that name them (`observer: "MovingAverageMinMaxObserver"`). */
export const OBSERVER_FACTORIES = {
  MinMaxObserver: (kw: FakeQuantizeKwargs) => new MinMaxObserver(kw),
  MovingAverageMinMaxObserver: (kw: FakeQuantizeKwargs) => new MovingAverageMinMaxObserver(kw),
  PerChannelMinMaxObserver: (kw: FakeQuantizeKwargs) => new PerChannelMinMaxObserver(kw),
  MovingAveragePerChannelMinMaxObserver: (kw: FakeQuantizeKwargs) => new MovingAveragePerChannelMinMaxObserver(kw),
  HistogramObserver: (kw: FakeQuantizeKwargs) => new HistogramObserver(kw),
} as const satisfies Record<string, ObserverFactory>;

function qschemeOf(o: FakeQuantizeObserver): QScheme {
  return o.config?.qscheme ?? o.qscheme ?? "per_tensor_affine";
}

function dtypeOf(o: FakeQuantizeObserver): ObserverDType {
  return o.config?.dtype ?? o.dtype ?? "quint8";
}

function isPerChannelScheme(q: QScheme): boolean {
  return q === "per_channel_affine" || q === "per_channel_symmetric" || q === "per_channel_affine_float_qparams";
}

/** Stored dtype of a quantized dtype name, for the `quant_min/quant_max out of bound` check. */
function dtypeBounds(dtype: ObserverDTypeInput | undefined): { quantMin: number; quantMax: number } {
  const d = dtype ?? "quint8";
  return quantRange(d === "uint8" ? "quint8" : d === "int8" ? "qint8" : d === "int32" ? "qint32" : d);
}

function passThrough(x: Tensor, upstreamGrad: Tensor | undefined): FakeQuantResult {
  const n = numel(x.shape);
  const result: FakeQuantResult = {
    output: { dtype: x.dtype, shape: [...x.shape], data: x.data.slice() as Tensor["data"] },
    mask: tensor("bool", x.shape, new Uint8Array(n).fill(1)),
  };
  if (upstreamGrad !== undefined) {
    result.gradInput = { dtype: upstreamGrad.dtype, shape: [...upstreamGrad.shape], data: upstreamGrad.data.slice() as Tensor["data"] };
  }
  return result;
}

/**
 * `torch.ao.quantization.FakeQuantize(observer, quant_min, quant_max, **observer_kwargs)`.
 * `forward(x, upstreamGrad)` returns the fake-quantized tensor, the in-range mask and the
 * straight-through input gradient.
 */
export class FakeQuantize<O extends FakeQuantizeObserver = FakeQuantizeObserver> {
  /** The observer (PyTorch's `activation_post_process`). */
  readonly observer: O;
  readonly qscheme: QScheme;
  readonly dtype: ObserverDType;
  /** Channel axis for per-channel schemes, -1 otherwise. */
  readonly chAxis: number;
  /** float32 scale(s): shape [1] per tensor, [C] per channel once observed. */
  scale: Tensor = tensor("float32", [1], Float32Array.of(1));
  /** int32 zero point(s), same shape as `scale`. */
  zeroPoint: Tensor = tensor("int32", [1], Int32Array.of(0));
  private observerOn = true;
  private fakeQuantOn = true;

  constructor(observer: ObserverFactory<O> = OBSERVER_FACTORIES.MovingAverageMinMaxObserver as unknown as ObserverFactory<O>, kwargs: FakeQuantizeKwargs = {}) {
    const what = new.target.name;
    if (kwargs.quantMin !== undefined && kwargs.quantMax !== undefined) {
      // fake_quantize.py: quant_min <= quant_max and both inside iinfo(dtype)
      const bounds = dtypeBounds(kwargs.dtype);
      if (!(kwargs.quantMin <= kwargs.quantMax)) {
        throw new QforgeError("BAD_CONFIG", `${what}: quant_min must be less than or equal to quant_max`);
      }
      if (kwargs.quantMin < bounds.quantMin || kwargs.quantMax > bounds.quantMax) {
        throw new QforgeError("BAD_CONFIG", `${what}: quant range [${kwargs.quantMin}, ${kwargs.quantMax}] out of bound for ${kwargs.dtype ?? "quint8"}`);
      }
    }
    this.observer = observer(kwargs);
    this.qscheme = qschemeOf(this.observer);
    this.dtype = dtypeOf(this.observer);
    if (this.qscheme === "per_channel_affine_float_qparams") {
      throw new QforgeError("UNSUPPORTED", `${what}: per_channel_affine_float_qparams (float zero points) is not supported by fake-quant`, {
        hint: "use per_channel_affine or per_channel_symmetric",
      });
    }
    this.chAxis = isPerChannelScheme(this.qscheme) ? (this.observer.chAxis ?? 0) : -1;
  }

  /** The observer's effective quant_min (after reduce_range). */
  get quantMin(): number {
    return this.observer.quantMin;
  }
  get quantMax(): number {
    return this.observer.quantMax;
  }
  get isPerChannel(): boolean {
    return this.chAxis >= 0;
  }
  get observerEnabled(): boolean {
    return this.observerOn;
  }
  get fakeQuantEnabled(): boolean {
    return this.fakeQuantOn;
  }
  enableObserver(enabled = true): void {
    this.observerOn = enabled;
  }
  disableObserver(): void {
    this.observerOn = false;
  }
  enableFakeQuant(enabled = true): void {
    this.fakeQuantOn = enabled;
  }
  disableFakeQuant(): void {
    this.fakeQuantOn = false;
  }

  /** The observer's running min (0-d per tensor, [C] per channel), or null before any data. */
  get minVal(): Tensor | null {
    return rangeTensor(this.observer.range, "min");
  }
  get maxVal(): Tensor | null {
    return rangeTensor(this.observer.range, "max");
  }

  /** `calculate_qparams()`: what the observer's statistics give now. */
  calculateQParams(): { scale: Tensor; zeroPoint: Tensor } {
    return this.observer.calculateQParams();
  }

  /** One training-mode step: observe (if enabled), refresh scale/zero_point, fake-quantize (if enabled). */
  forward(x: Tensor, upstreamGrad?: Tensor): FakeQuantResult {
    if (this.observerOn) {
      this.observer.observe(x);
      const { scale, zeroPoint } = this.calculateQParams();
      this.scale = toFloat32Vector(scale);
      this.zeroPoint = toInt32Vector(zeroPoint);
    }
    if (!this.fakeQuantOn) return passThrough(x, upstreamGrad);
    return this.fakeQuantize(x, upstreamGrad);
  }

  protected fakeQuantize(x: Tensor, upstreamGrad: Tensor | undefined): FakeQuantResult {
    if (this.isPerChannel) {
      return fakeQuantizePerChannelAffine(x, this.scale, this.zeroPoint, this.chAxis, this.quantMin, this.quantMax, upstreamGrad);
    }
    if (numel(this.scale.shape) !== 1) {
      throw new QforgeError("BAD_SHAPE", `${this.constructor.name}: per-tensor fake-quant needs one scale, got [${this.scale.shape.join(", ")}]`);
    }
    return fakeQuantizePerTensorAffine(
      x, this.scale.data[0] as number, this.zeroPoint.data[0] as number, this.quantMin, this.quantMax, upstreamGrad,
    );
  }
}

function rangeTensor(range: FakeQuantizeObserver["range"], which: "min" | "max"): Tensor | null {
  if (range === undefined || range === null) return null;
  const v = range[which];
  return typeof v === "number"
    ? tensor("float32", [], Float32Array.of(v))
    : tensor("float32", [v.length], Float32Array.from(v));
}

function toFloat32Vector(t: Tensor): Tensor {
  const n = numel(t.shape);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Number(t.data[i]);
  return tensor("float32", [n], out);
}

function toInt32Vector(t: Tensor): Tensor {
  const n = numel(t.shape);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = Number(t.data[i]);
  return tensor("int32", [n], out);
}

/**
 * `FixedQParamsFakeQuantize(observer=FixedQParamsObserver.with_args(scale, zero_point, ...))`:
 * fake-quant with fixed qparams; observing changes nothing.
 */
export class FixedQParamsFakeQuantize extends FakeQuantize<FixedQParamsObserver> {
  constructor(options: FixedQParamsObserverOptions) {
    super(() => new FixedQParamsObserver(options));
    const { scale, zeroPoint } = this.observer.calculateQParams();
    this.scale = toFloat32Vector(scale);
    this.zeroPoint = toInt32Vector(zeroPoint);
  }
}

/** PyTorch's `default_fixed_qparams_range_0to1_observer` (sigmoid, hardsigmoid, softmax outputs). */
export const FIXED_QPARAMS_RANGE_0TO1: FixedQParamsObserverOptions = { scale: 1 / 256, zeroPoint: 0, dtype: "quint8", quantMin: 0, quantMax: 255 };
/** PyTorch's `default_fixed_qparams_range_neg1to1_observer` (tanh outputs). */
export const FIXED_QPARAMS_RANGE_NEG1TO1: FixedQParamsObserverOptions = { scale: 2 / 256, zeroPoint: 128, dtype: "quint8", quantMin: 0, quantMax: 255 };

/**
 * `FusedMovingAvgObsFakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
 * **observer_kwargs)`: `torch.fused_moving_avg_obs_fake_quant`. The moving average is the observer's
 * (the fused kernel's float arithmetic is the same); the qparams are ATen's
 * `ChooseQuantizationParams(min, max, quant_min, quant_max, preserve_sparsity=symmetric)`, the
 * double scale stored as float32.
 */
export class FusedMovingAvgObsFakeQuantize<
  O extends FakeQuantizeObserver = MovingAverageMinMaxObserver | MovingAveragePerChannelMinMaxObserver,
> extends FakeQuantize<O> {
  readonly isSymmetricQuant: boolean;

  constructor(
    observer: ObserverFactory<O> = OBSERVER_FACTORIES.MovingAverageMinMaxObserver as unknown as ObserverFactory<O>,
    kwargs: FakeQuantizeKwargs = {},
  ) {
    super(observer, { ...kwargs, quantMin: kwargs.quantMin ?? 0, quantMax: kwargs.quantMax ?? 255 });
    const kind = this.observer.kind;
    if (kind !== "MovingAverageMinMaxObserver" && kind !== "MovingAveragePerChannelMinMaxObserver") {
      throw new QforgeError("BAD_CONFIG", `FusedMovingAvgObsFakeQuantize only works with MovingAverageMinMaxObserver or MovingAveragePerChannelMinMaxObserver, got ${kind}`);
    }
    if (this.isPerChannel && this.chAxis !== 0) {
      throw new QforgeError("BAD_CONFIG", `FusedMovingAvgObsFakeQuantize: per-channel fake-quant is only supported on axis 0, got ${this.chAxis}`);
    }
    this.isSymmetricQuant = this.qscheme === "per_tensor_symmetric" || this.qscheme === "per_channel_symmetric";
  }

  override forward(x: Tensor, upstreamGrad?: Tensor): FakeQuantResult {
    if (this.observerEnabled) this.observer.observe(x);
    if (!this.fakeQuantEnabled) return passThrough(x, upstreamGrad);
    const range = this.observer.range;
    if (range === undefined || range === null) {
      throw new QforgeError("BAD_DATA", "FusedMovingAvgObsFakeQuantize: no statistics yet (min > max); observe data before fake-quantizing");
    }
    const mins = typeof range.min === "number" ? [range.min] : Array.from(range.min);
    const maxs = typeof range.max === "number" ? [range.max] : Array.from(range.max);
    const scale = new Float32Array(mins.length);
    const zeroPoint = new Int32Array(mins.length);
    for (let i = 0; i < mins.length; i++) {
      const p = chooseQuantizationParamsAten(mins[i]!, maxs[i]!, this.quantMin, this.quantMax, { preserveSparsity: this.isSymmetricQuant });
      scale[i] = f32(p.scale);
      zeroPoint[i] = p.zeroPoint;
    }
    this.scale = tensor("float32", [scale.length], scale);
    this.zeroPoint = tensor("int32", [zeroPoint.length], zeroPoint);
    return this.fakeQuantize(x, upstreamGrad);
  }
}
