/**
 * Element conversions between JS numbers and every dtype's storage (see dtype.ts for layouts).
 *
 * Rules (each one mirrors what `torch.Tensor.to(dtype)` does on CPU, except where C leaves it
 * undefined, in which case the rule is ours and says so):
 *
 * - float64: stored as is. float32: `Math.fround` (round to nearest, ties to even).
 * - float16 / bfloat16 / float8_e4m3fn / float8_e5m2: the value is first rounded to float32, then to
 *   the narrow format with round-to-nearest-even, subnormals included. This is PyTorch's path:
 *   c10::Half, c10::BFloat16 and c10::Float8_* are constructed from `float`, so a double goes
 *   double -> float -> narrow. (The double rounding is harmless: float32 has 24 significand bits,
 *   at least 2p+2 for every narrow format here, so the result equals direct rounding.)
 *   Overflow and special values:
 *     float16   (c10/util/Half.h fp16_ieee_from_fp32_value): |x| >= 65520 -> ±Inf.
 *     bfloat16  (c10/util/BFloat16.h round_to_nearest_even): RNE on the float32 bits; a carry out of
 *               the largest finite value gives ±Inf.
 *     e4m3fn    (c10/util/Float8_e4m3fn.h fp8e4m3fn_from_fp32_value): the format has no infinity;
 *               anything that rounds above 448 (|x| > 464), ±Inf and NaN become NaN (0x7F), keeping
 *               the sign of a non-NaN input (-1000 -> 0xFF).
 *     e5m2      (c10/util/Float8_e5m2.h fp8e5m2_from_fp32_value): |x| >= 61440 rounds to ±Inf (0x7C).
 *   NaN inputs encode to the canonical positive quiet NaN of each format (fp16 0x7E00, bf16 0x7FC0,
 *   fp8 0x7F): a JS NaN has no observable sign, so we do not try to carry one.
 *   The fp8 encoders also take `{ saturate: true }`, the rule of ONNX Cast(saturate=1), ONNX
 *   Runtime's Float8E4M3FN/Float8E5M2(float, saturate) and torchao's scaled fp8 casts
 *   (`x.clamp(-max, max).to(fp8)`): finite overflow and ±Inf clamp to ±max (448 / 57344), NaN stays NaN.
 * - Integer dtypes: finite values truncate toward zero (as PyTorch/C `static_cast`). Values outside
 *   the dtype's range wrap modulo 2^bits, which is what C's conversion of an in-range int64 to a
 *   narrower integer does; we extend the same wrap to every finite double (exact: truncated doubles
 *   are integers, reduced exactly). NaN and ±Inf are undefined behaviour in C; we define them as 0
 *   (the same as ECMAScript's ToInt8/ToInt32 family, which typed-array stores apply).
 *   Sub-byte ints (int1..int7, uint1..uint7) follow the same rule with their own bit width and are
 *   sign-extended on decode. bigint inputs wrap with BigInt.asIntN / asUintN.
 * - bool: nonzero -> 1 (NaN counts as nonzero, as `static_cast<bool>(NaN)` is true), 0 and -0 -> 0.
 * - int64 storage is a BigInt64Array; it accepts bigint (wrapped to 64 bits) or number (rule above).
 *   Decoding int64 to a number rounds beyond 2^53.
 */
import { allocStorage, dtypeInfo, storageLength, type DType, type TypedArray } from "./dtype.js";
import { QforgeError } from "./errors.js";

// ---------------------------------------------------------------------------------------------
// Narrow binary floating-point formats, described by their field widths.

interface FloatFormat {
  /** Exponent field width. */
  readonly expBits: number;
  /** Mantissa (fraction) field width. */
  readonly mantBits: number;
  readonly bias: number;
  /** How the all-ones exponent field is used. "ieee": Inf (mantissa 0) and NaN; "fn": only all-ones
   * exponent + all-ones mantissa is NaN, every other pattern is finite (OCP FP8 E4M3). */
  readonly specials: "ieee" | "fn";
  /** Bits of the canonical NaN this encoder produces. */
  readonly nan: number;
}

const F16: FloatFormat = { expBits: 5, mantBits: 10, bias: 15, specials: "ieee", nan: 0x7e00 };
const BF16: FloatFormat = { expBits: 8, mantBits: 7, bias: 127, specials: "ieee", nan: 0x7fc0 };
const E4M3FN: FloatFormat = { expBits: 4, mantBits: 3, bias: 7, specials: "fn", nan: 0x7f };
const E5M2: FloatFormat = { expBits: 5, mantBits: 2, bias: 15, specials: "ieee", nan: 0x7f };

/** Largest finite float8_e4m3fn value (0x7E): S.1111.110 = 1.75 * 2^8. */
export const FLOAT8_E4M3FN_MAX = 448;
/** Largest finite float8_e5m2 value (0x7B): S.11110.11 = 1.75 * 2^15. */
export const FLOAT8_E5M2_MAX = 57344;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Bits of the float32 nearest to x. */
function float32Bits(x: number): number {
  f32[0] = x;
  return u32[0]!;
}

/** Largest magnitude bit pattern (sign cleared) that is finite in the format. */
function maxFiniteBits(fmt: FloatFormat): number {
  const expAllOnes = (1 << fmt.expBits) - 1;
  return fmt.specials === "ieee"
    ? ((expAllOnes - 1) << fmt.mantBits) | ((1 << fmt.mantBits) - 1)
    : (expAllOnes << fmt.mantBits) | ((1 << fmt.mantBits) - 2);
}

/**
 * Rounds a float32 (given as bits) to `fmt` with round-to-nearest-even and returns the bits.
 * `overflow` says what a magnitude beyond the largest finite value becomes.
 */
function encodeFromFloat32Bits(bits: number, fmt: FloatFormat, overflow: "inf" | "nan" | "saturate"): number {
  const signBit = 1 << (fmt.expBits + fmt.mantBits);
  const sign = bits >>> 31 ? signBit : 0;
  const e32 = (bits >>> 23) & 0xff;
  const m32 = bits & 0x7fffff;
  const maxFinite = maxFiniteBits(fmt);
  const overflowBits = (): number => {
    if (overflow === "saturate") return sign | maxFinite;
    if (overflow === "nan") return sign | fmt.nan;
    return sign | (((1 << fmt.expBits) - 1) << fmt.mantBits); // ±Inf
  };
  if (e32 === 0xff) {
    if (m32 !== 0) return fmt.nan;
    return overflowBits();
  }
  if (e32 === 0 && m32 === 0) return sign;
  // value = sig * 2^(exp2 - 23), sig a 24-bit integer (implicit 1 for normals).
  const sig = e32 === 0 ? m32 : m32 | 0x800000;
  const exp2 = e32 === 0 ? -126 : e32 - 127;
  const emin = 1 - fmt.bias;
  // The target exponent is the value's own exponent, or emin for target subnormals; the target
  // quantum is 2^(targetExp - mantBits). A float32 subnormal is m32 * 2^-149 (exp2 = -126, no
  // implicit bit); every format here has emin >= -126, so it lands in the target's subnormal range.
  const targetExp = Math.max(exp2, emin);
  const shift = targetExp - fmt.mantBits - (exp2 - 23);
  // shift >= 13 for every format here (mantBits <= 10, targetExp >= exp2); a huge shift just gives 0.
  let q = Math.floor(sig / 2 ** shift);
  const rem = sig - q * 2 ** shift;
  const half = 2 ** (shift - 1);
  if (rem > half || (rem === half && (q & 1) === 1)) q += 1;
  // Normal: q in [2^mb, 2^(mb+1)], field = (biasedExp - 1) << mb + q, where a rounding carry to
  // 2^(mb+1) moves into the exponent by itself. Subnormal: targetExp = emin, biasedExp - 1 = 0.
  const magnitude = (targetExp + fmt.bias - 1) * 2 ** fmt.mantBits + q;
  if (magnitude > maxFinite) return overflowBits();
  return sign | magnitude;
}

/** Exact value of a bit pattern in `fmt`. */
function decodeBits(bits: number, fmt: FloatFormat): number {
  const mantMask = (1 << fmt.mantBits) - 1;
  const expMask = (1 << fmt.expBits) - 1;
  const negative = (bits >>> (fmt.expBits + fmt.mantBits)) & 1;
  const e = (bits >>> fmt.mantBits) & expMask;
  const m = bits & mantMask;
  let v: number;
  if (fmt.specials === "ieee" && e === expMask) v = m === 0 ? Infinity : NaN;
  else if (fmt.specials === "fn" && e === expMask && m === mantMask) v = NaN;
  else if (e === 0) v = m * 2 ** (1 - fmt.bias - fmt.mantBits);
  else v = (m + 2 ** fmt.mantBits) * 2 ** (e - fmt.bias - fmt.mantBits);
  return negative ? -v : v;
}

export interface Float8CastOptions {
  /** Clamp finite overflow and ±Inf to ±max instead of producing NaN (e4m3fn) / ±Inf (e5m2). */
  readonly saturate?: boolean;
}

/** IEEE binary16 bits of x (x rounded to float32 first, then RNE; overflow -> ±Inf). */
export function float32ToFloat16Bits(x: number): number {
  return encodeFromFloat32Bits(float32Bits(x), F16, "inf");
}

export function float16BitsToFloat32(bits: number): number {
  return decodeBits(bits & 0xffff, F16);
}

/** bfloat16 bits of x (RNE on the float32 bits, like c10::detail::round_to_nearest_even). */
export function float32ToBfloat16Bits(x: number): number {
  return encodeFromFloat32Bits(float32Bits(x), BF16, "inf");
}

export function bfloat16BitsToFloat32(bits: number): number {
  return decodeBits(bits & 0xffff, BF16);
}

/**
 * float8_e4m3fn bits of x. Default (PyTorch `.to(torch.float8_e4m3fn)`): overflow, ±Inf, NaN -> NaN.
 * `{ saturate: true }` (ONNX Cast saturate=1, scaled fp8): overflow and ±Inf -> ±448.
 */
export function float32ToFloat8E4M3FnBits(x: number, opts: Float8CastOptions = {}): number {
  return encodeFromFloat32Bits(float32Bits(x), E4M3FN, opts.saturate ? "saturate" : "nan");
}

export function float8E4M3FnBitsToFloat32(bits: number): number {
  return decodeBits(bits & 0xff, E4M3FN);
}

/**
 * float8_e5m2 bits of x. Default (PyTorch): overflow -> ±Inf, NaN -> NaN.
 * `{ saturate: true }`: overflow and ±Inf -> ±57344.
 */
export function float32ToFloat8E5M2Bits(x: number, opts: Float8CastOptions = {}): number {
  return encodeFromFloat32Bits(float32Bits(x), E5M2, opts.saturate ? "saturate" : "inf");
}

export function float8E5M2BitsToFloat32(bits: number): number {
  return decodeBits(bits & 0xff, E5M2);
}

export type Float8DType = "float8_e4m3fn" | "float8_e5m2";

/**
 * The value x becomes after a saturating cast to an fp8 dtype (clamp to ±max, then RNE), as a number:
 * what `x.clamp(-max, max).to(fp8).to(float32)` gives in torchao's scaled fp8 quantization.
 */
export function saturatingCast(dtype: Float8DType, x: number): number {
  return dtype === "float8_e4m3fn"
    ? float8E4M3FnBitsToFloat32(float32ToFloat8E4M3FnBits(x, { saturate: true }))
    : float8E5M2BitsToFloat32(float32ToFloat8E5M2Bits(x, { saturate: true }));
}

// ---------------------------------------------------------------------------------------------
// Integers.

/** trunc(v) mod 2^bits as an unsigned integer (bits <= 32); NaN and ±Inf -> 0. */
function wrapUnsigned(v: number, bits: number): number {
  if (!Number.isFinite(v)) return 0;
  const m = 2 ** bits;
  const r = Math.trunc(v) % m; // exact for every double
  return r < 0 ? r + m : r + 0; // + 0 turns -0 into 0
}

function signExtend(u: number, bits: number): number {
  return u >= 2 ** (bits - 1) ? u - 2 ** bits : u;
}

function toInt64(v: number | bigint): bigint {
  if (typeof v === "bigint") return BigInt.asIntN(64, v);
  if (!Number.isFinite(v)) return 0n;
  return BigInt.asIntN(64, BigInt(Math.trunc(v)));
}

/** Integer value (unsigned, < 2^bits) that `v` wraps to in a `bits`-wide integer. */
function wrapToBits(v: number | bigint, bits: number): number {
  return typeof v === "bigint" ? Number(BigInt.asUintN(bits, v)) : wrapUnsigned(v, bits);
}

// ---------------------------------------------------------------------------------------------
// Packed sub-byte integers: a little-endian bit stream, element i at stream bits [i*bits, (i+1)*bits),
// stream bit q at bit (q % 8) of byte floor(q / 8). For bits dividing 8 this is "element i in byte
// floor(i*bits/8) at bit offset (i*bits) % 8, low bits first" (dtype.ts).

function readBits(data: Uint8Array, i: number, bits: number): number {
  let u = 0;
  const start = i * bits;
  for (let k = 0; k < bits; k++) {
    const q = start + k;
    u |= ((data[q >>> 3]! >>> (q & 7)) & 1) << k;
  }
  return u;
}

function writeBits(data: Uint8Array, i: number, bits: number, u: number): void {
  const start = i * bits;
  for (let k = 0; k < bits; k++) {
    const q = start + k;
    const byte = q >>> 3;
    const mask = 1 << (q & 7);
    data[byte] = (u >>> k) & 1 ? data[byte]! | mask : data[byte]! & ~mask;
  }
}

function requirePacked(dtype: DType): { bits: number; signed: boolean; min: number; max: number } {
  const info = dtypeInfo(dtype);
  if (!info.packed) {
    throw new QforgeError("BAD_DTYPE", `${dtype} is not a packed sub-byte integer dtype`, {
      hint: "packSubByte/unpackSubByte take int1..int7 or uint1..uint7",
    });
  }
  return { bits: info.bits, signed: info.kind === "int", min: info.min, max: info.max };
}

/**
 * Packs integer values into a sub-byte dtype's storage. Values must already be integers in the
 * dtype's range (this is for quantized data, where an out-of-range value is a bug upstream): anything
 * else throws BAD_DATA rather than wrapping silently.
 */
export function packSubByte(dtype: DType, values: ArrayLike<number>): Uint8Array {
  const { bits, min, max } = requirePacked(dtype);
  const out = new Uint8Array(storageLength(dtype, values.length));
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isInteger(v) || v < min || v > max) {
      throw new QforgeError("BAD_DATA", `packSubByte: element ${i} = ${v} is not an integer in [${min}, ${max}] for ${dtype}`, {
        hint: "clamp and round before packing (quantizeAffine does)",
      });
    }
    writeBits(out, i, bits, wrapUnsigned(v, bits));
  }
  return out;
}

/** The first `numel` logical values of packed sub-byte storage (signed dtypes sign-extended). */
export function unpackSubByte(dtype: DType, data: Uint8Array, numel: number): number[] {
  const { bits, signed } = requirePacked(dtype);
  const need = storageLength(dtype, numel);
  if (data.length < need) {
    throw new QforgeError("BAD_TENSOR", `unpackSubByte: ${numel} ${dtype} elements need ${need} bytes, got ${data.length}`);
  }
  const out = new Array<number>(numel);
  for (let i = 0; i < numel; i++) {
    const u = readBits(data, i, bits);
    out[i] = signed ? signExtend(u, bits) : u;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Element access used by tensor.ts (getElement/setElement/cast/fromArray).

/** Logical element i of `data` (storage of `dtype`) as a JS number. */
export function decodeElement(dtype: DType, data: TypedArray, i: number): number {
  switch (dtype) {
    case "float16": return float16BitsToFloat32(data[i] as number);
    case "bfloat16": return bfloat16BitsToFloat32(data[i] as number);
    case "float8_e4m3fn": return float8E4M3FnBitsToFloat32(data[i] as number);
    case "float8_e5m2": return float8E5M2BitsToFloat32(data[i] as number);
    case "int64": return Number(data[i] as bigint);
    case "bool": return (data[i] as number) !== 0 ? 1 : 0;
    case "float32": case "float64":
    case "int8": case "int16": case "int32": case "uint8": case "uint16": case "uint32":
      return data[i] as number;
    default: {
      const { bits, signed } = requirePacked(dtype);
      const u = readBits(data as Uint8Array, i, bits);
      return signed ? signExtend(u, bits) : u;
    }
  }
}

/** Stores `v` as logical element i of `data`, converting with the rules at the top of this file. */
export function encodeElement(dtype: DType, data: TypedArray, i: number, v: number | bigint): void {
  switch (dtype) {
    case "float64": (data as Float64Array)[i] = Number(v); return;
    case "float32": (data as Float32Array)[i] = Math.fround(Number(v)); return;
    case "float16": (data as Uint16Array)[i] = float32ToFloat16Bits(Number(v)); return;
    case "bfloat16": (data as Uint16Array)[i] = float32ToBfloat16Bits(Number(v)); return;
    case "float8_e4m3fn": (data as Uint8Array)[i] = float32ToFloat8E4M3FnBits(Number(v)); return;
    case "float8_e5m2": (data as Uint8Array)[i] = float32ToFloat8E5M2Bits(Number(v)); return;
    case "int64": (data as BigInt64Array)[i] = toInt64(v); return;
    case "bool": (data as Uint8Array)[i] = (typeof v === "bigint" ? v !== 0n : v !== 0) ? 1 : 0; return;
    case "int8": (data as Int8Array)[i] = wrapToBits(v, 8); return; // the store sign-wraps
    case "int16": (data as Int16Array)[i] = wrapToBits(v, 16); return;
    case "int32": (data as Int32Array)[i] = wrapToBits(v, 32); return;
    case "uint8": (data as Uint8Array)[i] = wrapToBits(v, 8); return;
    case "uint16": (data as Uint16Array)[i] = wrapToBits(v, 16); return;
    case "uint32": (data as Uint32Array)[i] = wrapToBits(v, 32); return;
    default: {
      const { bits } = requirePacked(dtype);
      writeBits(data as Uint8Array, i, bits, wrapToBits(v, bits));
    }
  }
}

/** The number `x` becomes when stored as `dtype` and read back (e.g. castNumber("int8", 200.7) = -56). */
export function castNumber(dtype: DType, x: number | bigint): number {
  const buf = allocStorage(dtype, 1);
  encodeElement(dtype, buf, 0, x);
  return decodeElement(dtype, buf, 0);
}
