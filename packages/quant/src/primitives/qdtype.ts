import { dtypeInfo, isDType, QforgeError, type DType } from "@qforge/ir";

/** PyTorch's quantized dtypes (`torch.quint8`, `torch.qint8`, `torch.qint32`) by name. */
export type TorchQDType = "quint8" | "qint8" | "qint32";

/** A quantized dtype as the classic PyTorch API names it, or a plain integer dtype. */
export type QuantDType = TorchQDType | DType;

const TORCH_QDTYPE_STORAGE: Record<TorchQDType, DType> = { quint8: "uint8", qint8: "int8", qint32: "int32" };

export function isTorchQDType(d: string): d is TorchQDType {
  return d === "quint8" || d === "qint8" || d === "qint32";
}

/** The integer dtype that holds a quantized dtype's values (`int_repr()`): quint8 -> uint8 etc. */
export function storageDTypeOf(dtype: QuantDType): DType {
  if (isTorchQDType(dtype)) return TORCH_QDTYPE_STORAGE[dtype];
  if (!isDType(dtype)) throw new QforgeError("BAD_DTYPE", `unknown quantized dtype '${String(dtype)}'`);
  return dtype;
}

/** The dtypes an integer quantizer can produce: int1..int8, uint1..uint8, int16, int32. */
const INTEGER_QUANT_DTYPES: ReadonlySet<DType> = new Set<DType>([
  "int1", "int2", "int3", "int4", "int5", "int6", "int7", "int8",
  "uint1", "uint2", "uint3", "uint4", "uint5", "uint6", "uint7", "uint8",
  "int16", "int32",
]);

export function isIntegerQuantDType(d: DType): boolean {
  return INTEGER_QUANT_DTYPES.has(d);
}

export function isFloat8(d: DType): d is "float8_e4m3fn" | "float8_e5m2" {
  return d === "float8_e4m3fn" || d === "float8_e5m2";
}

/**
 * The full representable range of a quantized dtype, PyTorch's `torch.iinfo(dtype)` / torchao's
 * `_DTYPE_TO_QVALUE_BOUNDS` (for fp8: `torch.finfo(dtype).min/max`).
 */
export function quantRange(dtype: QuantDType): { quantMin: number; quantMax: number } {
  const d = storageDTypeOf(dtype);
  if (!isIntegerQuantDType(d) && !isFloat8(d)) {
    throw new QforgeError("BAD_DTYPE", `${String(dtype)} is not a quantized dtype`, {
      hint: "use int1..int8, uint1..uint8, int16, int32, float8_e4m3fn, float8_e5m2, quint8, qint8 or qint32",
    });
  }
  const info = dtypeInfo(d);
  return { quantMin: info.min, quantMax: info.max };
}

/**
 * Resolves optional quant_min/quant_max against the dtype's range and checks them, like torchao's
 * `_get_and_check_qmin_qmax`.
 */
export function resolveQuantRange(
  dtype: QuantDType,
  quantMin: number | undefined,
  quantMax: number | undefined,
): { quantMin: number; quantMax: number } {
  const full = quantRange(dtype);
  const qmin = quantMin ?? full.quantMin;
  const qmax = quantMax ?? full.quantMax;
  const integral = !isFloat8(storageDTypeOf(dtype));
  if (integral && (!Number.isInteger(qmin) || !Number.isInteger(qmax))) {
    throw new QforgeError("BAD_CONFIG", `quant_min/quant_max must be integers, got ${qmin}, ${qmax}`);
  }
  if (qmin < full.quantMin || qmax > full.quantMax) {
    throw new QforgeError("BAD_CONFIG", `quant range [${qmin}, ${qmax}] exceeds ${String(dtype)}'s [${full.quantMin}, ${full.quantMax}]`);
  }
  if (!(qmin <= qmax)) {
    throw new QforgeError("BAD_CONFIG", `quant_min ${qmin} must be <= quant_max ${qmax}`);
  }
  return { quantMin: qmin, quantMax: qmax };
}
