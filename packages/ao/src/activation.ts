/**
 * What a quantized linear does to its input before the matmul (torchao's `act_quant_kwargs` /
 * `activation_quantization`): nothing (weight-only), dynamic quantization with qparams chosen per
 * call, or static quantization with qparams fixed at conversion (from observers).
 */
import { QforgeError, type AttrValue } from "@qforge/ir";
import { MappingType } from "@qforge/quant";

export type ActivationDType = "int8" | "uint8" | "float8_e4m3fn" | "float8_e5m2";

/**
 * dequantize: quantize then dequantize the activation and multiply floats (torchao's
 * IntxUnpackedToInt8Tensor and Float8Tensor paths). integer: int32 accumulation of the integer
 * operands, rescaled (torchao Int8Tensor with `_int_scaled_matmul`).
 */
export type LinearCompute = "dequantize" | "integer";

export type ActivationQuant =
  | { readonly kind: "none" }
  | {
    readonly kind: "dynamic";
    readonly dtype: ActivationDType;
    readonly mapping: MappingType;
    readonly granularity: "per_token" | "per_tensor";
    readonly compute: LinearCompute;
  }
  | {
    readonly kind: "static";
    readonly dtype: ActivationDType;
    /** Per tensor, float32. */
    readonly scale: number;
    /** Integer; 0 for symmetric and float8. */
    readonly zeroPoint: number;
    readonly compute: LinearCompute;
  };

export const NO_ACTIVATION_QUANT: ActivationQuant = { kind: "none" };

/** The affine_quantized_linear attributes for an activation treatment. */
export function activationAttrs(a: ActivationQuant): Record<string, AttrValue> {
  switch (a.kind) {
    case "none":
      return { act_quant: "none" };
    case "dynamic":
      return { act_quant: "dynamic", act_dtype: a.dtype, act_mapping: a.mapping, act_granularity: a.granularity, compute: a.compute };
    case "static":
      // The qparams are the X_scale / X_zero_point inputs; act_mapping only concerns dynamic activations.
      return { act_quant: "static", act_dtype: a.dtype, compute: a.compute };
  }
}

export function describeActivation(a: ActivationQuant): string {
  switch (a.kind) {
    case "none":
      return "weight-only";
    case "dynamic":
      return `dynamic ${a.dtype} ${a.mapping === MappingType.SYMMETRIC ? "sym" : "asym"} ${a.granularity.replace("_", "-")}`;
    case "static":
      return `static ${a.dtype} scale=${a.scale} zp=${a.zeroPoint}`;
  }
}

export function checkActivation(a: ActivationQuant): ActivationQuant {
  if (a.kind === "none") return a;
  const fp8 = a.dtype.startsWith("float8");
  if (a.compute === "integer" && fp8) throw new QforgeError("BAD_CONFIG", "integer compute needs int8/uint8 activations");
  if (a.kind === "dynamic" && fp8 && a.mapping !== MappingType.SYMMETRIC) throw new QforgeError("BAD_CONFIG", "float8 activations are quantized symmetrically");
  if (a.kind === "static") {
    if (!(Number.isFinite(a.scale) && a.scale > 0)) throw new QforgeError("BAD_CONFIG", `static activation scale must be positive, got ${a.scale}`);
    if (!Number.isInteger(a.zeroPoint)) throw new QforgeError("BAD_CONFIG", `static activation zero point must be an integer, got ${a.zeroPoint}`);
    const [lo, hi] = a.dtype === "int8" ? [-128, 127] : a.dtype === "uint8" ? [0, 255] : [0, 0];
    if (a.zeroPoint < lo || a.zeroPoint > hi) throw new QforgeError("BAD_CONFIG", `static activation zero point ${a.zeroPoint} is outside ${a.dtype}'s range`);
  }
  return a;
}
