import { clone, fromArray, QforgeError, tensor, toNumbers, type Tensor } from "@qforge/ir";
import { isPerTensor, normalizeDType, type ObserverDType, type ObserverDTypeInput, type QScheme } from "./config.js";
import { f32 } from "../primitives/float32.js";
import { checkMergeKind, checkStateKind } from "./common.js";
import type { QParams } from "./qparams.js";
import type {
  FixedQParamsObserverState,
  NoopObserverState,
  Observer,
  PlaceholderObserverState,
  RecordingObserverState,
  SerializedTensor,
} from "./types.js";

export interface FixedQParamsObserverOptions {
  scale: number;
  zeroPoint: number;
  dtype?: ObserverDTypeInput;
  qscheme?: QScheme;
  quantMin?: number;
  quantMax?: number;
}

/**
 * `torch.ao.quantization.FixedQParamsObserver`: qparams fixed at construction (e.g. scale 1/256,
 * zero point 0 for sigmoid outputs); observing changes nothing. scale is stored as float32 and the
 * zero point as int32, like PyTorch's buffers. Per tensor only.
 */
export class FixedQParamsObserver implements Observer {
  readonly kind = "FixedQParamsObserver" as const;
  readonly scale: number;
  readonly zeroPoint: number;
  readonly dtype: ObserverDType;
  readonly qscheme: QScheme;
  readonly quantMin: number;
  readonly quantMax: number;

  constructor(options: FixedQParamsObserverOptions) {
    const kind = "FixedQParamsObserver";
    if (options === undefined || typeof options.scale !== "number" || typeof options.zeroPoint !== "number") {
      throw new QforgeError("BAD_CONFIG", `${kind}: scale and zeroPoint are required`);
    }
    const scale = f32(options.scale);
    if (!(scale > 0) || !Number.isFinite(scale)) throw new QforgeError("BAD_CONFIG", `${kind}: scale must be a positive finite number, got ${options.scale}`);
    if (!Number.isInteger(options.zeroPoint)) throw new QforgeError("BAD_CONFIG", `${kind}: zeroPoint must be an integer, got ${options.zeroPoint}`);
    this.qscheme = options.qscheme ?? "per_tensor_affine";
    if (!isPerTensor(this.qscheme)) throw new QforgeError("BAD_CONFIG", `${kind}: only per tensor quantization is supported (got '${this.qscheme}')`);
    this.dtype = normalizeDType(options.dtype, kind);
    this.quantMin = options.quantMin ?? 0;
    this.quantMax = options.quantMax ?? 255;
    if (!Number.isInteger(this.quantMin) || !Number.isInteger(this.quantMax) || this.quantMin > this.quantMax) {
      throw new QforgeError("BAD_CONFIG", `${kind}: invalid quantization range [${this.quantMin}, ${this.quantMax}]`);
    }
    this.scale = scale;
    this.zeroPoint = options.zeroPoint | 0;
  }

  /** Ignores the data (PyTorch's forward returns X untouched). */
  observe(_x: Tensor): void {}

  calculateQParams(): QParams {
    return { scale: tensor("float32", [1], Float32Array.of(this.scale)), zeroPoint: tensor("int32", [1], Int32Array.of(this.zeroPoint)) };
  }

  /** Nothing to merge; refuses observers with different fixed qparams. */
  merge(other: this): void {
    checkMergeKind(this, other);
    if (other.scale !== this.scale || other.zeroPoint !== this.zeroPoint) {
      throw new QforgeError("BAD_CONFIG", `FixedQParamsObserver.merge: fixed qparams differ (${this.scale}, ${this.zeroPoint}) vs (${other.scale}, ${other.zeroPoint})`);
    }
  }

  state(): FixedQParamsObserverState {
    return {
      kind: "FixedQParamsObserver",
      version: 1,
      options: { scale: this.scale, zeroPoint: this.zeroPoint, dtype: this.dtype, qscheme: this.qscheme, quantMin: this.quantMin, quantMax: this.quantMax },
    };
  }

  static fromState(state: FixedQParamsObserverState): FixedQParamsObserver {
    checkStateKind("FixedQParamsObserver", state);
    return new FixedQParamsObserver(state.options as FixedQParamsObserverOptions);
  }
}

/** An observer that produces no qparams: what calculateQParams says instead. */
function noQParams(kind: string, why: string, hint: string): QforgeError {
  return new QforgeError("UNSUPPORTED", `${kind}: calculateQParams should not be called: ${why}`, { hint });
}

export interface PlaceholderObserverOptions {
  /** dtype of the quantize node: a quantized dtype, or 'float16'/'float32' for float casts. Default 'float32'. */
  dtype?: string;
  qscheme?: QScheme;
  quantMin?: number;
  quantMax?: number;
  /** True for dynamic quantization: qparams are computed from each input at run time. */
  isDynamic?: boolean;
}

/**
 * `torch.ao.quantization.PlaceholderObserver`: records the configuration (dtype, qscheme, range,
 * whether quantization is dynamic) for the convert step; collects nothing. With `isDynamic` the
 * quantize op picks qparams from each input at run time, so `calculateQParams` refuses (typed
 * UNSUPPORTED error) instead of inventing static values.
 */
export class PlaceholderObserver implements Observer {
  readonly kind = "PlaceholderObserver" as const;
  readonly dtype: string;
  readonly qscheme: QScheme | undefined;
  readonly quantMin: number | undefined;
  readonly quantMax: number | undefined;
  readonly isDynamic: boolean;

  constructor(options: PlaceholderObserverOptions = {}) {
    const dtype = options.dtype ?? "float32";
    const known = ["quint8", "qint8", "qint32", "uint8", "int8", "int32", "float16", "bfloat16", "float32"];
    if (!known.includes(dtype)) throw new QforgeError("BAD_CONFIG", `PlaceholderObserver: unsupported dtype '${dtype}'`, { hint: `one of ${known.join(", ")}` });
    this.dtype = ["quint8", "qint8", "qint32", "uint8", "int8", "int32"].includes(dtype) ? normalizeDType(dtype, this.kind) : dtype;
    this.qscheme = options.qscheme;
    this.quantMin = options.quantMin;
    this.quantMax = options.quantMax;
    this.isDynamic = options.isDynamic ?? false;
  }

  observe(_x: Tensor): void {}

  calculateQParams(): QParams {
    if (this.isDynamic) {
      throw noQParams(this.kind, "this edge is quantized dynamically, its qparams are computed from each input at run time", "use the dynamic quantize op (choose_qparams at run time) for this edge");
    }
    throw noQParams(this.kind, `a placeholder only records dtype ${this.dtype} for the convert step`, "use a statistics observer (MinMaxObserver, HistogramObserver, ...) for static quantization");
  }

  merge(other: this): void {
    checkMergeKind(this, other);
  }

  state(): PlaceholderObserverState {
    const options: PlaceholderObserverState["options"] = { dtype: this.dtype, isDynamic: this.isDynamic };
    if (this.qscheme !== undefined) options.qscheme = this.qscheme;
    if (this.quantMin !== undefined) options.quantMin = this.quantMin;
    if (this.quantMax !== undefined) options.quantMax = this.quantMax;
    return { kind: "PlaceholderObserver", version: 1, options };
  }

  static fromState(state: PlaceholderObserverState): PlaceholderObserver {
    checkStateKind("PlaceholderObserver", state);
    return new PlaceholderObserver(state.options as PlaceholderObserverOptions);
  }
}

function serialize(t: Tensor): SerializedTensor {
  return {
    dtype: t.dtype,
    shape: [...t.shape],
    data: toNumbers(t).map((v) => (Number.isFinite(v) ? v : Number.isNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity")),
  };
}

function deserialize(t: SerializedTensor): Tensor {
  const values = t.data.map((v) => (typeof v === "number" ? v : v === "NaN" ? NaN : v === "Infinity" ? Infinity : v === "-Infinity" ? -Infinity : badValue(v)));
  return fromArray(t.dtype, t.shape, values);
}

function badValue(v: unknown): never {
  throw new QforgeError("BAD_DATA", `RecordingObserver: state tensor holds a non-numeric value ${JSON.stringify(v)}`);
}

/**
 * `torch.ao.quantization.RecordingObserver`: a debugging observer that keeps a copy of every tensor
 * it sees (NaN and Inf included, unlike the statistics observers). It produces no qparams.
 */
export class RecordingObserver implements Observer {
  readonly kind = "RecordingObserver" as const;
  readonly dtype: string;
  private readonly tensors: Tensor[] = [];

  constructor(options: { dtype?: string } = {}) {
    this.dtype = options.dtype ?? "quint8";
  }

  observe(x: Tensor): void {
    this.tensors.push(clone(x));
  }

  /** The recorded tensors, in observation order (copies). */
  getTensorValues(): Tensor[] {
    return this.tensors.map(clone);
  }

  calculateQParams(): QParams {
    throw noQParams(this.kind, "it only records tensors for debugging", "read them with getTensorValues()");
  }

  /** Appends the other observer's recorded tensors after this one's. */
  merge(other: this): void {
    checkMergeKind(this, other);
    for (const t of other.tensors) this.tensors.push(clone(t));
  }

  state(): RecordingObserverState {
    return { kind: "RecordingObserver", version: 1, options: { dtype: this.dtype }, tensors: this.tensors.map(serialize) };
  }

  static fromState(state: RecordingObserverState): RecordingObserver {
    checkStateKind("RecordingObserver", state);
    const o = new RecordingObserver(state.options);
    for (const t of state.tensors) o.tensors.push(deserialize(t));
    return o;
  }
}

/**
 * `torch.ao.quantization.NoopObserver`: passes a dtype (default float16) to the convert step for
 * casts that need no range; observes nothing and produces no qparams.
 */
export class NoopObserver implements Observer {
  readonly kind = "NoopObserver" as const;
  readonly dtype: string;

  constructor(options: { dtype?: string } = {}) {
    this.dtype = options.dtype ?? "float16";
  }

  observe(_x: Tensor): void {}

  calculateQParams(): QParams {
    throw noQParams(this.kind, `it only passes dtype ${this.dtype} to the convert step`, "a cast to a float dtype needs no qparams");
  }

  merge(other: this): void {
    checkMergeKind(this, other);
  }

  state(): NoopObserverState {
    return { kind: "NoopObserver", version: 1, options: { dtype: this.dtype } };
  }

  static fromState(state: NoopObserverState): NoopObserver {
    checkStateKind("NoopObserver", state);
    return new NoopObserver(state.options);
  }
}
