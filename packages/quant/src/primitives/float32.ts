/**
 * Float32 emulation helpers. PyTorch computes quantization arithmetic in float32 (C++ `float`), JS
 * in float64; we get PyTorch's bits by rounding after every float32 operation with `Math.fround`.
 * For one +, -, * or / of two float32 operands, computing in float64 and rounding once to float32 is
 * exactly the float32 result: float64 has 53 >= 2*24 + 2 significand bits, so the double rounding is
 * innocuous (Figueroa, "When is double rounding innocuous?", 1995).
 */

export const f32 = Math.fround;

/** float32 machine epsilon 2^-23, `torch.finfo(torch.float32).eps` (the default `eps` of observers and torchao). */
export const FLOAT32_EPS = 1.1920928955078125e-7;

/**
 * 1.5 * 2^52: adding and subtracting it rounds a double of magnitude < 2^51 to an integer, ties to
 * even. Hot loops inline `v + RINT_MAGIC - RINT_MAGIC` where `rint`'s range and sign-of-zero checks
 * cannot matter (the result is clamped, or a zero point is added).
 */
export const RINT_MAGIC = 6755399441055744;
/** 2^51: the magnitude below which `RINT_MAGIC` rounds exactly. */
export const RINT_LIMIT = 2251799813685248;

/**
 * Round half to even, like C's `std::nearbyint` under the default rounding mode (what PyTorch's
 * quantizers and `torch.round` use): rint(2.5) = 2, rint(3.5) = 4, rint(-2.5) = -2.
 * Values of magnitude >= 2^51 are returned as they are (NaN/±Inf pass through): float32 values there
 * are integers, and every caller rounds float32 values (a double in [2^51, 2^52) may keep its .5).
 */
export function rint(x: number): number {
  if (!(Math.abs(x) < RINT_LIMIT)) return x;
  const r = x + RINT_MAGIC - RINT_MAGIC;
  // Keep the sign of a value that rounds to zero (nearbyint(-0.3) = -0.0); it never changes a
  // quantized integer, but fake-quant outputs are compared bit for bit.
  return r === 0 && (x < 0 || Object.is(x, -0)) ? -0 : r;
}

const fmaBuf = new Float32Array(1);
const fmaBits = new Int32Array(fmaBuf.buffer);

/** The float32 adjacent to float32 `r` in the direction of `towardPositive`. */
function adjacentFloat32(r: number, towardPositive: boolean): number {
  if (r === 0) {
    const tiny = 1.401298464324817e-45; // 2^-149, smallest float32 subnormal
    return towardPositive ? tiny : -tiny;
  }
  fmaBuf[0] = r;
  // For positive floats the bit pattern grows with the value; for negative ones it shrinks.
  fmaBits[0] = fmaBits[0]! + ((r > 0) === towardPositive ? 1 : -1);
  return fmaBuf[0]!;
}

/**
 * float32 fused multiply-add: `a * b + c` rounded once to float32 (C's `fmaf`), for float32 `a`, `b`,
 * `c`. PyTorch's LSQ backward kernel is compiled with FP contraction, so `zero_point + x * inv_scale`
 * and `xfq - x` are single FMAs there (golden README, item 6).
 *
 * Why this is exact: `a * b` of two float32 values has at most 48 significand bits, so the float64
 * product `p` is exact. `s = p + c` in float64 is the exact sum rounded once; TwoSum gives the exact
 * rounding error `e` (exact sum = s + e). Rounding `s` to float32 equals rounding the exact sum
 * except in one case: `s` lies exactly halfway between two float32 values while `e != 0` (the first
 * rounding moved the exact sum onto a float32 tie). Then the exact sum is on the side of the tie that
 * `e` points to, so the correct float32 is the neighbour in that direction. Otherwise |e| is at most
 * half a float64 ulp of `s`, far below half a float32 ulp, and cannot change the float32 rounding.
 */
export function fmaF32(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const r = Math.fround(s);
  if (r === s || !Number.isFinite(s)) return r;
  // TwoSum (Knuth): e = (p + c) - s exactly.
  const bb = s - p;
  const e = (p - (s - bb)) + (c - bb);
  if (e === 0) return r;
  // Is s exactly the midpoint between r and its neighbour on the other side of s?
  const other = adjacentFloat32(r, s > r);
  if (s - r !== other - s) return r; // not a tie: r is correct (the difference is exact, both are close)
  // A tie caused by the first rounding: resolve toward the exact sum.
  return (e > 0) === (other > r) ? other : r;
}

/**
 * C++ `static_cast<int64_t>(float)` as x86-64 executes it (cvttss2si): truncation toward zero; NaN
 * and magnitudes >= 2^63 give INT64_MIN ("integer indefinite"). The C++ standard leaves the
 * out-of-range case undefined; PyTorch's x86 builds produce this value, which is then clamped to the
 * quantized range (so NaN quantizes to quant_min in `quantize_per_tensor` and per-channel fake-quant).
 */
export function truncToInt64(x: number): number {
  if (!(Math.abs(x) < 9223372036854775808)) return -9223372036854775808;
  return Math.trunc(x);
}

/**
 * float -> int32 conversion as ATen's CPU kernels do it on x86 (cvttss2si / cvttps2dq): truncation,
 * and the "integer indefinite" value INT32_MIN for NaN and out-of-range inputs.
 */
export function truncToInt32(x: number): number {
  if (!(x > -2147483649 && x < 2147483648)) return -2147483648;
  return Math.trunc(x) | 0;
}

/**
 * `torch.div(a, b, rounding_mode="floor")` for float32 operands, mirroring ATen's
 * `div_floor_floating` (aten/src/ATen/native/cpu/BinaryOpsKernel.cpp): Python-style floor division
 * computed through fmod so that it agrees with `a // b` in Python.
 */
export function floorDivF32(a: number, b: number): number {
  if (b === 0) return f32(a / b);
  const mod = a % b; // fmod is exact, and exact fmod of two float32 values is a float32 value
  let div = f32(f32(a - mod) / b);
  if (mod !== 0 && b < 0 !== mod < 0) div = f32(div - 1);
  if (div !== 0) {
    let floordiv = Math.floor(div);
    if (f32(div - floordiv) > 0.5) floordiv = f32(floordiv + 1);
    return floordiv;
  }
  // copysign(0, a / b)
  return Object.is(f32(a / b), -0) || f32(a / b) < 0 ? -0 : 0;
}
