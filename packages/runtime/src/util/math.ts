/**
 * Scalar functions JavaScript's Math lacks, accurate to a few float64 ulps so that the float32
 * results the kernels round them to are correctly rounded in all but rare ties.
 */

const TWO_OVER_SQRT_PI = 1.1283791670955126;
const ONE_OVER_SQRT_PI = 0.5641895835477563;

/**
 * erfc(x) for x >= 2.5 by its continued fraction (Abramowitz & Stegun 7.1.14), evaluated bottom-up:
 * erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...))))).
 */
function erfcLarge(x: number): number {
  let f = x;
  for (let k = 80; k >= 1; k--) f = x + k / 2 / f;
  return (Math.exp(-x * x) * ONE_OVER_SQRT_PI) / f;
}

/**
 * erf(|x|) for |x| < 2.5 by the all-positive series (A&S 7.1.6)
 * erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_n 2^n x^(2n+1) / (1*3*...*(2n+1)): no cancellation.
 */
function erfSmall(ax: number): number {
  const x2 = ax * ax;
  let term = ax;
  let sum = ax;
  for (let n = 1; n < 200 && term > sum * 1e-17; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
}

/** The error function (ONNX Erf, torch.erf). */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  const v = ax < 2.5 ? erfSmall(ax) : 1 - erfcLarge(ax);
  return x < 0 ? -v : v;
}

/** The complementary error function 1 - erf(x), accurate in the tails. */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x >= 2.5) return erfcLarge(x);
  if (x <= -2.5) return 2 - erfcLarge(-x);
  return 1 - erf(x);
}

/** Round half to even (torch.round, ONNX Round, numpy.round). */
export function roundHalfEven(x: number): number {
  if (!Number.isFinite(x)) return x;
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 ? 2 * Math.round(x / 2) : r;
}
