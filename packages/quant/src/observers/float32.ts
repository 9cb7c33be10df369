/**
 * Float32 arithmetic helpers. PyTorch computes observer statistics in float32 tensors, so every
 * intermediate result here is rounded with `f32` (Math.fround). For +, -, *, / of two float32
 * values, computing in float64 and rounding once gives the correctly rounded float32 result
 * (float64 carries more than 2p+2 bits), so `f32(a * b)` is exactly ATen's float32 `a * b`.
 */
export const f32 = Math.fround;

/** float32 machine epsilon, `torch.finfo(torch.float32).eps`. */
export const FLOAT32_EPS = 1.1920928955078125e-7;

/**
 * Round half to even, like `std::nearbyint` / `torch.round` under the default rounding mode.
 * Keeps the sign of zero (torch.round(-0.3) is -0.0).
 */
export function rint(x: number): number {
  const r = Math.round(x);
  if (r - x === 0.5 && r % 2 !== 0) return r - 1;
  return r;
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
