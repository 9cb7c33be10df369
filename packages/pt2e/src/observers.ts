import { dtypeInfo, isQforgeError, QforgeError, type DType } from "@qforge/ir";
import {
  createObserver, FakeQuantize, FixedQParamsFakeQuantize, FixedQParamsObserver, FusedMovingAvgObsFakeQuantize, PlaceholderObserver,
  type FakeQuantizeKwargs, type FakeQuantizeObserver, type FixedQParamsObserverOptions, type Observer, type ObserverDType,
  type ObserverKind, type ObserverOptionsByKind,
} from "@qforge/quant";
import type { FakeQuantSpec, FixedQParamsQuantizationSpec, ObserverSpec, QuantizationSpec } from "@qforge/quantizer";

/**
 * Building the observer or fake-quant module of a quantization spec — torch's
 * `_create_obs_or_fq_from_qspec` (pt2e/prepare.py): the spec's dtype, range, qscheme and (for
 * per-channel observers) ch_axis are passed on top of the constructor arguments the spec names.
 */

/** A QAT fake-quant module (FakeQuantize, FusedMovingAvgObsFakeQuantize, FixedQParamsFakeQuantize). */
export type FakeQuantizeLike = FakeQuantize<FakeQuantizeObserver>;

/** What an `observer` / `fake_quantize` node of a prepared program runs. */
export type ObserverOrFakeQuantize = Observer | FakeQuantizeLike;

export function isFakeQuantize(m: ObserverOrFakeQuantize): m is FakeQuantizeLike {
  return m instanceof FakeQuantize;
}

const FAKE_QUANT_KINDS = new Set<string>(["FakeQuantize", "FusedMovingAvgObsFakeQuantize", "FixedQParamsFakeQuantize"]);

export function isFakeQuantSpec(s: ObserverSpec | FakeQuantSpec): s is FakeQuantSpec {
  return FAKE_QUANT_KINDS.has(s.kind);
}

/** Observers whose constructor takes torch's uniform-quantization kwargs (dtype, qscheme, range). */
const UNIFORM_KINDS = new Set<ObserverKind>([
  "MinMaxObserver", "MovingAverageMinMaxObserver", "PerChannelMinMaxObserver", "MovingAveragePerChannelMinMaxObserver",
  "HistogramObserver", "PercentileObserver", "EntropyObserver",
]);
const PER_CHANNEL_KINDS = new Set<ObserverKind>(["PerChannelMinMaxObserver", "MovingAveragePerChannelMinMaxObserver"]);

/** The 8-bit quantized dtypes (and qint32) whose default observer range is the dtype's full range. */
const DEFAULT_RANGE_DTYPES = new Set<DType>(["int8", "uint8", "int32"]);

/**
 * The observer dtype for a spec dtype. torch's observers know quint8/qint8/qint32; narrower integer
 * dtypes (int4, uint4, ...) observe as the 8-bit dtype of the same signedness with their own range,
 * which `rangeOf` passes explicitly, and int16 as qint32 with its range.
 */
export function observerDType(d: DType): ObserverDType {
  const info = dtypeInfo(d);
  if (info.kind === "uint" && info.bits <= 8) return "quint8";
  if (info.kind === "int" && info.bits <= 8) return "qint8";
  if (info.kind === "int" && info.bits <= 32) return "qint32";
  throw new QforgeError("UNSUPPORTED", `no observer dtype for ${d}`, { hint: "quantize to int1..int8, uint1..uint8, int16 or int32" });
}

/** quant_min/quant_max as the observer should get them: the spec's, or the dtype's range when it is not an 8-bit/int32 default. */
function rangeOf(spec: { dtype: DType; quantMin?: number; quantMax?: number }): { quantMin?: number; quantMax?: number } {
  const info = dtypeInfo(spec.dtype);
  const explicit = !DEFAULT_RANGE_DTYPES.has(spec.dtype);
  const quantMin = spec.quantMin ?? (explicit ? info.min : undefined);
  const quantMax = spec.quantMax ?? (explicit ? info.max : undefined);
  return { ...(quantMin !== undefined ? { quantMin } : {}), ...(quantMax !== undefined ? { quantMax } : {}) };
}

/** The constructor options of observer `o` for `spec` (torch: `observer_ctr.with_args(**asdict(spec))`). */
function observerOptions(o: ObserverSpec, spec: QuantizationSpec): Record<string, unknown> {
  const out: Record<string, unknown> = { ...(o.options ?? {}) };
  if (!UNIFORM_KINDS.has(o.kind)) return out;
  out["dtype"] = observerDType(spec.dtype);
  out["qscheme"] = spec.qscheme;
  Object.assign(out, rangeOf(spec));
  // torch drops ch_axis unless the observer class is a PerChannel one.
  if (PER_CHANNEL_KINDS.has(o.kind)) {
    if (spec.chAxis !== undefined) out["chAxis"] = spec.chAxis;
  } else {
    delete out["chAxis"];
  }
  return out;
}

function observerFactory(kind: ObserverKind): (kw: FakeQuantizeKwargs) => FakeQuantizeObserver {
  return (kw) => {
    const o = createObserver(kind, kw as ObserverOptionsByKind[typeof kind]) as Partial<FakeQuantizeObserver> & Observer;
    if (typeof o.quantMin !== "number" || typeof o.quantMax !== "number") {
      throw new QforgeError("BAD_CONFIG", `${kind} cannot drive a fake-quant module (it has no quantization range)`, {
        hint: "use MinMaxObserver, MovingAverageMinMaxObserver or a per-channel variant",
      });
    }
    return o as FakeQuantizeObserver;
  };
}

function fixedOptions(spec: FixedQParamsQuantizationSpec): FixedQParamsObserverOptions {
  const info = dtypeInfo(spec.dtype);
  return {
    scale: spec.scale,
    zeroPoint: spec.zeroPoint,
    dtype: observerDType(spec.dtype),
    qscheme: spec.qscheme,
    quantMin: spec.quantMin ?? info.min,
    quantMax: spec.quantMax ?? info.max,
  };
}

function createFakeQuant(f: FakeQuantSpec, spec: QuantizationSpec): FakeQuantizeLike {
  const kwargs = { ...observerOptions(f.observer, spec), ...(f.options ?? {}) } as FakeQuantizeKwargs;
  switch (f.kind) {
    case "FakeQuantize":
      return new FakeQuantize(observerFactory(f.observer.kind), kwargs);
    case "FusedMovingAvgObsFakeQuantize": {
      // torch's class defaults quant_min/quant_max to 0/255: pass the spec dtype's range instead.
      const info = dtypeInfo(spec.dtype);
      return new FusedMovingAvgObsFakeQuantize(observerFactory(f.observer.kind), {
        ...kwargs, quantMin: kwargs.quantMin ?? info.min, quantMax: kwargs.quantMax ?? info.max,
      }) as unknown as FakeQuantizeLike;
    }
    case "FixedQParamsFakeQuantize":
      return new FixedQParamsFakeQuantize({ ...(f.observer.options ?? {}), ...(f.options ?? {}) } as unknown as FixedQParamsObserverOptions) as unknown as FakeQuantizeLike;
  }
}

/**
 * The observer or fake-quant module of one group's root spec. Dynamic specs get a PlaceholderObserver
 * under PTQ (qparams are chosen at run time); fixed-qparams specs a FixedQParamsObserver, or a
 * FixedQParamsFakeQuantize for QAT. Constructor errors name `node` (the group's first target).
 */
export function createObserverOrFakeQuant(spec: QuantizationSpec | FixedQParamsQuantizationSpec, isQat: boolean, node: string, where: string): ObserverOrFakeQuantize {
  try {
    if (spec.kind === "fixed") {
      const opts = fixedOptions(spec);
      return isQat ? (new FixedQParamsFakeQuantize(opts) as unknown as FakeQuantizeLike) : new FixedQParamsObserver(opts);
    }
    const o = spec.observerOrFakeQuant;
    if (isFakeQuantSpec(o)) return createFakeQuant(o, spec);
    if (spec.isDynamic === true && !isQat) {
      const isFloat = dtypeInfo(spec.dtype).kind === "float";
      return new PlaceholderObserver({
        dtype: isFloat ? spec.dtype : observerDType(spec.dtype), qscheme: spec.qscheme, ...rangeOf(spec), isDynamic: true,
      });
    }
    return createObserver(o.kind, observerOptions(o, spec) as ObserverOptionsByKind[typeof o.kind]);
  } catch (e) {
    if (isQforgeError(e)) {
      throw new QforgeError(e.code, `cannot build the observer of ${where}: ${e.message}`, { node, hint: e.hint, cause: e });
    }
    throw e;
  }
}

/** The effective quantized range of a module (after reduce_range), when it has one. */
export function moduleRange(m: ObserverOrFakeQuantize): { quantMin: number; quantMax: number } | undefined {
  const r = m as unknown as { quantMin?: unknown; quantMax?: unknown };
  if (typeof r.quantMin === "number" && typeof r.quantMax === "number") return { quantMin: r.quantMin, quantMax: r.quantMax };
  return undefined;
}

/** The observer behind a module: what derive functions and reports look at. */
export function innerObserver(m: ObserverOrFakeQuantize): Observer {
  return isFakeQuantize(m) ? m.observer : m;
}
