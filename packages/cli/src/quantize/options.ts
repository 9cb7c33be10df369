/**
 * The settings of `quantizeModel` / `qforge quantize`, and how they become a PT2E quantizer:
 *   quantizer  xnnpack: torch's XNNPACKQuantizer with get_symmetric_quantization_config (int8
 *                       activations, int8 symmetric weights, per tensor or --per-channel);
 *              x86:     torch's X86InductorQuantizer with its default config (uint8 activations,
 *                       int8 per-channel weights; always per channel)
 *   method     the activation observer (static mode): minmax (MinMaxObserver), histogram
 *              (HistogramObserver, the quantizers' default), percentile (ONNX Runtime's
 *              PercentileCalibrater with symmetric=True as its quantize tool passes it), entropy
 *              (ONNX Runtime's EntropyCalibrater)
 *   mode       static (calibrated activations), dynamic (activation qparams chosen per batch at
 *              run time, choose_qparams; the quantizers annotate linear layers only, as torch's
 *              DYNAMIC_OPS), weight-only (see weight-only.ts)
 */
import { QforgeError } from "@qforge/ir";
import {
  getDefaultX86InductorQuantizationConfig, getSymmetricQuantizationConfig, X86InductorQuantizer, XnnpackQuantizer,
  type ObserverSpec, type QuantizationConfig, type QuantizationSpec, type Quantizer,
} from "@qforge/quantizer";

export type QuantizerName = "xnnpack" | "x86";
export type QuantizeMode = "static" | "dynamic" | "weight-only";
export type CalibrationMethod = "minmax" | "histogram" | "percentile" | "entropy";

export const QUANTIZERS: readonly QuantizerName[] = ["xnnpack", "x86"];
export const MODES: readonly QuantizeMode[] = ["static", "dynamic", "weight-only"];
export const METHODS: readonly CalibrationMethod[] = ["minmax", "histogram", "percentile", "entropy"];

export interface QuantizeOptions {
  /** Default "xnnpack". */
  readonly quantizer?: QuantizerName;
  /** XNNPACK: per-channel weights (default false). X86 weights are always per channel. */
  readonly perChannel?: boolean;
  /** Activation observer in static mode (default "histogram"). */
  readonly method?: CalibrationMethod;
  /** Default "static". */
  readonly mode?: QuantizeMode;
  /** Weight-only: 8 or 4 (default 8). */
  readonly weightBits?: 8 | 4;
  /** Weight-only: group size along the reduction axis; 0 = per output channel (default 128 for 4 bits, 0 for 8). */
  readonly groupSize?: number;
  /** Node names (or ONNX node names) to leave in float. */
  readonly excludeNodes?: readonly string[];
  /** Op types (ONNX or canonical names) to leave in float. */
  readonly excludeOpTypes?: readonly string[];
}

/** The options with every default filled in (and checked). */
export interface ResolvedQuantizeOptions {
  readonly quantizer: QuantizerName;
  readonly perChannel: boolean;
  readonly method: CalibrationMethod;
  readonly mode: QuantizeMode;
  readonly weightBits: 8 | 4;
  readonly groupSize: number;
  readonly excludeNodes: readonly string[];
  readonly excludeOpTypes: readonly string[];
}

function oneOf<T extends string>(what: string, v: T | undefined, all: readonly T[], fallback: T): T {
  if (v === undefined) return fallback;
  if (!all.includes(v)) throw new QforgeError("BAD_CONFIG", `${what} must be one of ${all.join(", ")}, got ${JSON.stringify(v)}`);
  return v;
}

export function resolveQuantizeOptions(o: QuantizeOptions): ResolvedQuantizeOptions {
  const weightBits = o.weightBits ?? 8;
  if (weightBits !== 8 && weightBits !== 4) throw new QforgeError("BAD_CONFIG", `weight bits must be 8 or 4, got ${String(weightBits)}`);
  const groupSize = o.groupSize ?? (weightBits === 4 ? 128 : 0);
  if (!Number.isInteger(groupSize) || groupSize < 0) throw new QforgeError("BAD_CONFIG", `the group size must be a non-negative integer, got ${groupSize}`);
  const mode = oneOf("mode", o.mode, MODES, "static");
  if (mode !== "weight-only" && (o.weightBits !== undefined || o.groupSize !== undefined)) {
    throw new QforgeError("BAD_CONFIG", "weight bits and group size apply to weight-only mode", { hint: "add --mode weight-only (or --weight-only int4|int8)" });
  }
  return {
    quantizer: oneOf("quantizer", o.quantizer, QUANTIZERS, "xnnpack"),
    perChannel: o.perChannel ?? false,
    method: oneOf("method", o.method, METHODS, "histogram"),
    mode,
    weightBits,
    groupSize,
    excludeNodes: o.excludeNodes ?? [],
    excludeOpTypes: o.excludeOpTypes ?? [],
  };
}

/** The activation observer of a calibration method, keeping the spec's dtype / range / qscheme / eps. */
export function activationObserver(method: CalibrationMethod, options: Readonly<Record<string, unknown>>): ObserverSpec {
  switch (method) {
    case "minmax":
      return { kind: "MinMaxObserver", options };
    case "histogram":
      return { kind: "HistogramObserver", options };
    case "percentile":
      return { kind: "PercentileObserver", options: { ...options, symmetric: true } };
    case "entropy":
      return { kind: "EntropyObserver", options };
  }
}

function withObserver(spec: QuantizationSpec | null, method: CalibrationMethod): QuantizationSpec | null {
  if (spec === null || spec.isDynamic === true) return spec;
  const o = spec.observerOrFakeQuant;
  if ("observer" in o) return spec; // a fake-quant (QAT) spec: not calibrated here
  return { ...spec, observerOrFakeQuant: activationObserver(method, o.options ?? {}) };
}

/** The quantization config of the chosen quantizer, mode and method. */
export function quantizationConfig(o: ResolvedQuantizeOptions): QuantizationConfig {
  const isDynamic = o.mode === "dynamic";
  const base = o.quantizer === "xnnpack"
    ? getSymmetricQuantizationConfig({ isPerChannel: o.perChannel, isDynamic })
    : getDefaultX86InductorQuantizationConfig({ isDynamic });
  if (isDynamic) return base;
  return { ...base, inputActivation: withObserver(base.inputActivation, o.method), outputActivation: withObserver(base.outputActivation, o.method) };
}

/** The configured quantizer (static and dynamic modes). */
export function makeQuantizer(o: ResolvedQuantizeOptions): Quantizer {
  const config = quantizationConfig(o);
  return o.quantizer === "xnnpack" ? new XnnpackQuantizer().setGlobal(config) : new X86InductorQuantizer().setGlobal(config);
}

/** "per-tensor int8", "per-channel int8", "int4 groups of 128" for the summary. */
export function describeWeights(o: ResolvedQuantizeOptions): string {
  if (o.mode === "weight-only") {
    const dtype = o.weightBits === 4 ? "int4" : "int8";
    return o.groupSize === 0 ? `${dtype} per-channel` : `${dtype} groups of ${o.groupSize}`;
  }
  return o.quantizer === "x86" || o.perChannel ? "per-channel int8" : "per-tensor int8";
}
