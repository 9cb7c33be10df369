import { dtypeInfo, QforgeError } from "@qforge/ir";
import type { FixedQParamsQuantizationSpec, QuantizationSpec } from "./spec.js";

/**
 * torch's `QuantizationConfig` (xnnpack_quantizer_utils.py): how the activations read and written by a
 * quantized pattern, its weight and its bias are quantized. null leaves that part in float.
 */
export interface QuantizationConfig {
  readonly inputActivation: QuantizationSpec | null;
  readonly outputActivation: QuantizationSpec | null;
  readonly weight: QuantizationSpec | null;
  readonly bias: QuantizationSpec | null;
  /** Annotate for QAT (conv + batch_norm patterns stay unfolded). */
  readonly isQat: boolean;
}

function isPerTensor(s: QuantizationSpec): boolean {
  return s.qscheme === "per_tensor_affine" || s.qscheme === "per_tensor_symmetric";
}

/** torch's `get_input_act_qspec`: activations are quantized per tensor. */
export function getInputActQSpec(config: QuantizationConfig | null): QuantizationSpec | null {
  const s = config?.inputActivation ?? null;
  if (s !== null && !isPerTensor(s)) {
    throw new QforgeError("BAD_CONFIG", `input activation spec must be per tensor, got ${s.qscheme}`);
  }
  return s;
}

/** torch's `get_output_act_qspec`. */
export function getOutputActQSpec(config: QuantizationConfig | null): QuantizationSpec | null {
  const s = config?.outputActivation ?? null;
  if (s !== null && !isPerTensor(s)) {
    throw new QforgeError("BAD_CONFIG", `output activation spec must be per tensor, got ${s.qscheme}`);
  }
  return s;
}

/** torch's `get_weight_qspec`: symmetric weights only (the XNNPACK and x86 kernels assume zero point 0). */
export function getWeightQSpec(config: QuantizationConfig | null): QuantizationSpec | null {
  const s = config?.weight ?? null;
  if (s !== null && s.qscheme !== "per_tensor_symmetric" && s.qscheme !== "per_channel_symmetric") {
    throw new QforgeError("BAD_CONFIG", `unsupported weight qscheme ${s.qscheme}`, { hint: "use per_tensor_symmetric or per_channel_symmetric" });
  }
  return s;
}

/** torch's `get_bias_qspec`: the bias stays float (a float dtype placeholder, or null). */
export function getBiasQSpec(config: QuantizationConfig | null): QuantizationSpec | null {
  const s = config?.bias ?? null;
  if (s !== null && dtypeInfo(s.dtype).kind !== "float") {
    throw new QforgeError("BAD_CONFIG", `only a float bias spec is supported in a QuantizationConfig, got ${s.dtype}`, {
      hint: "for an int32 bias annotate it with a DerivedQuantizationSpec (see derivedBiasSpec)",
    });
  }
  return s;
}

/**
 * Fixed output qparams of ops with a known output range, for the activation range of `act`
 * (torch's `default_fixed_qparams_range_0to1_observer` / `..._neg1to1_...`, and the output qparams
 * ATen's quantized sigmoid/tanh kernels pick):
 *   "0to1" (sigmoid, softmax, hardsigmoid): scale 1/L, zero point qmin
 *   "neg1to1" (tanh):                       scale 2/L, zero point qmin + L/2
 * with L = qmax - qmin + 1 levels: 1/256 with zp 0 (uint8) or -128 (int8); 2/256 with zp 128 / 0.
 */
export function fixedQParamsSpec(range: "0to1" | "neg1to1", act: QuantizationSpec): FixedQParamsQuantizationSpec {
  const info = dtypeInfo(act.dtype);
  const qmin = act.quantMin ?? info.min;
  const qmax = act.quantMax ?? info.max;
  const levels = qmax - qmin + 1;
  return range === "0to1"
    ? { kind: "fixed", dtype: act.dtype, scale: 1 / levels, zeroPoint: qmin, quantMin: qmin, quantMax: qmax, qscheme: "per_tensor_affine" }
    : { kind: "fixed", dtype: act.dtype, scale: 2 / levels, zeroPoint: qmin + Math.floor(levels / 2), quantMin: qmin, quantMax: qmax, qscheme: "per_tensor_affine" };
}
