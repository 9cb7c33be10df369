import { numel, QforgeError, tensor, type Tensor } from "@qforge/ir";
import type { DerivedQuantizationSpec, EdgeOrNode } from "./spec.js";

/**
 * Functions that compute a DerivedQuantizationSpec's qparams from the observers (or fake-quant
 * modules) of the targets it derives from, registered by name so that annotations stay JSON
 * (torch's `DerivedQuantizationSpec.derive_qparams_fn`, which is a Python callable).
 */

/** Anything with torch's `calculate_qparams()`: an Observer, a FakeQuantize module. */
export interface QParamsSource {
  calculateQParams(): { scale: Tensor; zeroPoint: Tensor };
}

/** `fn(observers)` receives the sources in `derivedFrom` order and returns float32 scale(s) and int32 zero point(s). */
export type DeriveQParamsFn = (observers: readonly QParamsSource[]) => { scale: Tensor; zeroPoint: Tensor };

const registry = new Map<string, DeriveQParamsFn>();

/**
 * Registers `fn` under `name`. Registering another function under a taken name is a
 * DUPLICATE_NAME error unless `override` is set (registering the same function again is a no-op).
 */
export function registerDeriveQParamsFn(name: string, fn: DeriveQParamsFn, opts: { override?: boolean } = {}): void {
  if (typeof name !== "string" || name === "") throw new QforgeError("BAD_CONFIG", "a derive-qparams function needs a non-empty name");
  if (typeof fn !== "function") throw new QforgeError("BAD_CONFIG", `derive-qparams function '${name}' is not a function`);
  const existing = registry.get(name);
  if (existing !== undefined && existing !== fn && opts.override !== true) {
    throw new QforgeError("DUPLICATE_NAME", `a derive-qparams function named '${name}' is already registered`, {
      hint: "pick another name, or pass { override: true } to replace it",
    });
  }
  registry.set(name, fn);
}

export function hasDeriveQParamsFn(name: string): boolean {
  return registry.has(name);
}

/** The function registered under `name`; BAD_CONFIG (listing the known names) when there is none. */
export function getDeriveQParamsFn(name: string): DeriveQParamsFn {
  const fn = registry.get(name);
  if (fn === undefined) {
    throw new QforgeError("BAD_CONFIG", `no derive-qparams function named '${name}'`, {
      hint: `register it with registerDeriveQParamsFn first; known: ${[...registry.keys()].join(", ")}`,
    });
  }
  return fn;
}

export const BIAS_SCALE_FROM_INPUT_AND_WEIGHT = "bias_scale_from_input_and_weight";

/**
 * The bias qparams of an int32-bias linear/conv: scale = act_scale * weight_scale (per output channel
 * when the weight is per-channel), zero point 0 — the `derive_qparams_fn` of torch's PT2E tests
 * (test_quantize_pt2e.py, `test_derived_qspec`). The float32 product is exact in double and rounded
 * once, i.e. torch's float32 tensor multiply.
 */
export function biasScaleFromInputAndWeight(observers: readonly QParamsSource[]): { scale: Tensor; zeroPoint: Tensor } {
  if (observers.length !== 2) {
    throw new QforgeError("BAD_CONFIG", `${BIAS_SCALE_FROM_INPUT_AND_WEIGHT} derives from [input activation, weight], got ${observers.length} sources`);
  }
  const act = observers[0]!.calculateQParams();
  const weight = observers[1]!.calculateQParams();
  if (numel(act.scale.shape) !== 1) {
    throw new QforgeError("BAD_CONFIG", `${BIAS_SCALE_FROM_INPUT_AND_WEIGHT}: the input activation must be quantized per tensor, got ${numel(act.scale.shape)} scales`);
  }
  const a = Number(act.scale.data[0]);
  const n = numel(weight.scale.shape);
  const scale = new Float32Array(n);
  for (let i = 0; i < n; i++) scale[i] = Math.fround(a * Number(weight.scale.data[i]));
  return { scale: tensor("float32", [n], scale), zeroPoint: tensor("int32", [n], new Int32Array(n)) };
}

registerDeriveQParamsFn(BIAS_SCALE_FROM_INPUT_AND_WEIGHT, biasScaleFromInputAndWeight);

/**
 * The int32 bias spec of torch's `test_derived_qspec`: qparams derived from the input activation and
 * the weight with "bias_scale_from_input_and_weight"; per channel (axis 0) when the weight is.
 */
export function derivedBiasSpec(input: EdgeOrNode, weight: EdgeOrNode, opts: { perChannel: boolean }): DerivedQuantizationSpec {
  return {
    kind: "derived",
    derivedFrom: [input, weight],
    deriveQParamsFn: BIAS_SCALE_FROM_INPUT_AND_WEIGHT,
    dtype: "int32",
    quantMin: -(2 ** 31),
    quantMax: 2 ** 31 - 1,
    qscheme: opts.perChannel ? "per_channel_symmetric" : "per_tensor_symmetric",
    ...(opts.perChannel ? { chAxis: 0 } : {}),
  };
}
