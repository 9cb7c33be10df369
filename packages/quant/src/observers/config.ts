import { QforgeError } from "@qforge/ir";
import { f32, FLOAT32_EPS } from "../primitives/float32.js";

/**
 * Quantized dtypes of PyTorch's observers (`torch.quint8`, `torch.qint8`, `torch.qint32`). The plain
 * integer names that later PyTorch versions also accept (`torch.uint8`, `torch.int8`, `torch.int32`)
 * are accepted as aliases with the same meaning.
 */
export type ObserverDType = "quint8" | "qint8" | "qint32";
export type ObserverDTypeInput = ObserverDType | "uint8" | "int8" | "int32";

export type QScheme =
  | "per_tensor_affine"
  | "per_tensor_symmetric"
  | "per_channel_affine"
  | "per_channel_symmetric"
  | "per_channel_affine_float_qparams";

const QSCHEMES: readonly QScheme[] = [
  "per_tensor_affine",
  "per_tensor_symmetric",
  "per_channel_affine",
  "per_channel_symmetric",
  "per_channel_affine_float_qparams",
];

/** Options shared by every uniform-quantization observer (PyTorch's kwargs in camelCase). */
export interface UniformObserverOptions {
  dtype?: ObserverDTypeInput;
  qscheme?: QScheme;
  reduceRange?: boolean;
  quantMin?: number;
  quantMax?: number;
  /** Smallest scale; rounded to float32 like PyTorch's `eps` buffer. Default float32 epsilon. */
  eps?: number;
}

/** The effective settings after construction (PyTorch's attributes of the same names). */
export interface UniformQuantConfig {
  readonly dtype: ObserverDType;
  readonly qscheme: QScheme;
  readonly reduceRange: boolean;
  readonly quantMin: number;
  readonly quantMax: number;
  readonly hasCustomizedQrange: boolean;
  /** float32 value of eps. */
  readonly eps: number;
}

export function normalizeDType(dtype: string | undefined, kind: string): ObserverDType {
  switch (dtype ?? "quint8") {
    case "quint8":
    case "uint8":
      return "quint8";
    case "qint8":
    case "int8":
      return "qint8";
    case "qint32":
    case "int32":
      return "qint32";
    default:
      // observer.py UniformQuantizationObserverBase.__init__: assert self.dtype in (...)
      throw new QforgeError("BAD_CONFIG", `${kind}: Default Observer only works for qint8, quint8 and qint32 data type, got '${String(dtype)}'`, {
        hint: "use dtype 'quint8' | 'qint8' | 'qint32' (or 'uint8' | 'int8' | 'int32')",
      });
  }
}

export function isPerTensor(q: QScheme): boolean {
  return q === "per_tensor_affine" || q === "per_tensor_symmetric";
}

export function isPerChannel(q: QScheme): boolean {
  return q === "per_channel_affine" || q === "per_channel_symmetric" || q === "per_channel_affine_float_qparams";
}

export function isSymmetric(q: QScheme): boolean {
  return q === "per_tensor_symmetric" || q === "per_channel_symmetric";
}

function checkInt(kind: string, name: string, v: number): void {
  if (!Number.isSafeInteger(v)) {
    throw new QforgeError("BAD_CONFIG", `${kind}: ${name} must be an integer, got ${v}`);
  }
}

/**
 * torch/ao/quantization/utils.py `calculate_qmin_qmax` as of PyTorch 1.13: a customized range is kept
 * as given (qint8 length <= 256, qint32 length <= 2^32) and halved with floor division under
 * reduce_range; otherwise the 8-bit defaults, halved under reduce_range (qint32 is never reduced).
 */
export function calculateQminQmax(
  kind: string,
  quantMin: number | undefined,
  quantMax: number | undefined,
  dtype: ObserverDType,
  reduceRange: boolean,
): { quantMin: number; quantMax: number; hasCustomizedQrange: boolean } {
  const hasCustom = quantMin !== undefined && quantMax !== undefined;
  if (hasCustom) {
    const qmin = quantMin;
    const qmax = quantMax;
    const len = qmax - qmin + 1;
    if (dtype === "qint8" && !(len > 0 && len <= 256)) {
      throw new QforgeError("BAD_CONFIG", `${kind}: quantization range should be positive and not exceed the maximum bit range (=256).`);
    }
    if (dtype === "qint32" && !(len > 0 && len <= 2 ** 32)) {
      throw new QforgeError("BAD_CONFIG", `${kind}: quantization range should be positive and not exceed the maximum bit range (=4294967296).`);
    }
    if (reduceRange) return { quantMin: Math.floor(qmin / 2), quantMax: Math.floor(qmax / 2), hasCustomizedQrange: true };
    return { quantMin: qmin, quantMax: qmax, hasCustomizedQrange: true };
  }
  switch (dtype) {
    case "qint8":
      return reduceRange ? { quantMin: -64, quantMax: 63, hasCustomizedQrange: false } : { quantMin: -128, quantMax: 127, hasCustomizedQrange: false };
    case "quint8":
      return reduceRange ? { quantMin: 0, quantMax: 127, hasCustomizedQrange: false } : { quantMin: 0, quantMax: 255, hasCustomizedQrange: false };
    case "qint32":
      return { quantMin: -(2 ** 31), quantMax: 2 ** 31 - 1, hasCustomizedQrange: false };
  }
}

/**
 * Resolves and validates the options the way `UniformQuantizationObserverBase.__init__` does
 * (observer.py, PyTorch 1.13), refusing what PyTorch refuses with PyTorch's reason:
 * an unknown qscheme or dtype, a customized range that excludes 0 or is empty
 * (`_validate_qmin_qmax`), a qint8/qint32 range longer than the dtype. The subclass checks
 * (qscheme family, symmetric quint8 with reduce_range) are done by `resolveObserverConfig`'s callers.
 * Unlike PyTorch, a quantMin without quantMax (or the reverse) is refused instead of being ignored.
 */
export function resolveUniformConfig(kind: string, options: UniformObserverOptions, defaultQScheme: QScheme): UniformQuantConfig {
  const qscheme = options.qscheme ?? defaultQScheme;
  if (!QSCHEMES.includes(qscheme)) {
    throw new QforgeError(
      "BAD_CONFIG",
      `${kind}: Default Observer only works for per_tensor_affine, per_tensor_symmetric, per_channel_affine, per_channel_symmetric and per_channel_float_qparams quantization scheme, got '${String(qscheme)}'`,
    );
  }
  const dtype = normalizeDType(options.dtype, kind);
  const reduceRange = options.reduceRange ?? false;
  const { quantMin, quantMax } = options;
  if ((quantMin === undefined) !== (quantMax === undefined)) {
    throw new QforgeError("BAD_CONFIG", `${kind}: quantMin and quantMax must be given together (got only ${quantMin === undefined ? "quantMax" : "quantMin"})`, {
      hint: "PyTorch silently ignores a lone bound; give both or neither",
    });
  }
  if (quantMin !== undefined && quantMax !== undefined) {
    checkInt(kind, "quantMin", quantMin);
    checkInt(kind, "quantMax", quantMax);
    // observer.py _validate_qmin_qmax / utils.py validate_qmin_qmax
    if (!(quantMin <= 0 && 0 <= quantMax)) {
      throw new QforgeError("BAD_CONFIG", `${kind}: Used-specified quantization range must include 0. (got [${quantMin}, ${quantMax}])`);
    }
    if (!(quantMin < quantMax)) {
      throw new QforgeError("BAD_CONFIG", `${kind}: qmin must be strictly less than qmax for user-specified quantization range. (got [${quantMin}, ${quantMax}])`);
    }
  }
  const eps = f32(options.eps ?? FLOAT32_EPS);
  if (!(eps >= 0) || !Number.isFinite(eps)) {
    throw new QforgeError("BAD_CONFIG", `${kind}: eps must be a finite non-negative number, got ${options.eps}`);
  }
  const range = calculateQminQmax(kind, quantMin, quantMax, dtype, reduceRange);
  return { dtype, qscheme, reduceRange, quantMin: range.quantMin, quantMax: range.quantMax, hasCustomizedQrange: range.hasCustomizedQrange, eps };
}

/** MinMaxObserver / PerChannelMinMaxObserver.__init__: symmetric quint8 cannot be reduced (zero point 128 would leave 0..127). */
export function refuseSymmetricReducedQuint8(kind: string, cfg: UniformQuantConfig): void {
  if (isSymmetric(cfg.qscheme) && cfg.reduceRange && cfg.dtype === "quint8") {
    throw new QforgeError("BAD_CONFIG", `${kind}: Cannot reduce range for symmetric quantization for quint8`, {
      hint: "use qint8 for symmetric quantization, or per_tensor_affine with reduceRange",
    });
  }
}

export function requirePerTensor(kind: string, qscheme: QScheme | undefined): void {
  if (qscheme !== undefined && !isPerTensor(qscheme)) {
    throw new QforgeError("BAD_CONFIG", `${kind}'s qscheme only support torch.per_tensor_symmetric and torch.per_tensor_affine (got '${qscheme}')`);
  }
}

export function requirePerChannel(kind: string, qscheme: QScheme | undefined): void {
  if (qscheme !== undefined && !isPerChannel(qscheme)) {
    throw new QforgeError(
      "BAD_CONFIG",
      `${kind}'s qscheme only support torch.per_channel_symmetric, torch.per_channel_affine and torch.per_channel_affine_float_qparams (got '${qscheme}')`,
    );
  }
}

/** Options as they are stored in `state()`: only defined fields, canonical dtype name. */
export function canonicalUniformOptions(options: UniformObserverOptions, cfg: UniformQuantConfig): UniformObserverOptions {
  const out: UniformObserverOptions = { dtype: cfg.dtype, qscheme: cfg.qscheme, reduceRange: cfg.reduceRange, eps: cfg.eps };
  if (options.quantMin !== undefined) out.quantMin = options.quantMin;
  if (options.quantMax !== undefined) out.quantMax = options.quantMax;
  return out;
}
