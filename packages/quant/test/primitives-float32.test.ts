import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fmaF32, rint, truncToInt64 } from "../src/primitives/float32.js";

/** Exact float32 rounding of a*b + c with BigInt arithmetic (reference for fmaF32). */
function exactFmaF32(a: number, b: number, c: number): number {
  // Every float32 is m * 2^-149 * 2^k with integer m; scale everything to multiples of 2^-298.
  const toScaled = (v: number, shift: number): bigint => {
    // v * 2^shift is an integer for float32 v and shift >= 149
    return BigInt(v * 2 ** 149) * 2n ** BigInt(shift - 149);
  };
  const exact = toScaled(a, 149) * toScaled(b, 149) + toScaled(c, 149) * 2n ** 149n; // units of 2^-298
  if (exact === 0n) return (a * b) + c; // sign rule of an exact zero, same in double
  const neg = exact < 0n;
  const mag = neg ? -exact : exact;
  // Find the float32 quantum for this magnitude: 2^(e-23) with e = floor(log2(value)), at least 2^-149.
  const bits = mag.toString(2).length; // value in [2^(bits-1), 2^bits) units of 2^-298
  const e = bits - 1 - 298;
  const quantumExp = Math.max(e - 23, -149); // exponent of the float32 ulp
  const shift = BigInt(quantumExp + 298);
  const unit = 2n ** shift;
  let q = mag / unit;
  const rem = mag - q * unit;
  const half = unit / 2n;
  if (rem > half || (rem === half && (q & 1n) === 1n)) q += 1n;
  const v = Number(q) * 2 ** quantumExp;
  const r = Math.fround(v);
  return neg ? -r : r;
}

const F32_LIMIT = Math.fround(1e15);
const f32Arb = fc.float({ noNaN: true, noDefaultInfinity: true, min: -F32_LIMIT, max: F32_LIMIT });

describe("rint (round half to even)", () => {
  it("rounds ties to even", () => {
    expect([20.5, 21.5, -2.5, -10.5, 0.5, 1.5, -0.5].map(rint)).toEqual([20, 22, -2, -10, 0, 2, -0]);
    expect(Object.is(rint(-0.3), -0)).toBe(true);
    expect(rint(2.4999999)).toBe(2);
    expect(rint(2 ** 53 + 2)).toBe(2 ** 53 + 2);
    expect(rint(Infinity)).toBe(Infinity);
    expect(Number.isNaN(rint(NaN))).toBe(true);
  });

  it("agrees with a reference definition on random doubles", () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, min: -1e9, max: 1e9 }), (x) => {
        const fl = Math.floor(x);
        const d = x - fl;
        const ref = d < 0.5 ? fl : d > 0.5 ? fl + 1 : fl % 2 === 0 ? fl : fl + 1;
        return rint(x) === ref || (rint(x) === 0 && ref === 0);
      }),
      { numRuns: 300 },
    );
  });
});

describe("fmaF32", () => {
  it("rounds once where the float64 sum would double-round onto a float32 tie", () => {
    // a*b = 2^-24 + 2^-60 exactly; 1 + a*b rounds in float64 to the float32 midpoint 1 + 2^-24.
    const a = Math.fround((2 ** 23 + 2048) / 2 ** 23);
    const b = Math.fround((2 ** 24 - 4095) / 2 ** 48);
    expect(a * b).toBe(2 ** -24 + 2 ** -60);
    expect(Math.fround(a * b + 1)).toBe(1); // the naive emulation is wrong here
    expect(fmaF32(a, b, 1)).toBe(1 + 2 ** -23);
    expect(fmaF32(-a, b, -1)).toBe(-1 - 2 ** -23);
    expect(fmaF32(a, -b, 1)).toBe(1 - 2 ** -24); // below 1 the float32 spacing is 2^-24: no tie there
  });

  it("equals exact rounding of a*b + c for random float32 operands", () => {
    fc.assert(
      fc.property(f32Arb, f32Arb, f32Arb, (a, b, c) => Object.is(fmaF32(a, b, c), exactFmaF32(a, b, c))),
      { numRuns: 500 },
    );
  });

  it("equals exact rounding on operands built to land near float32 ties", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2 ** 23, max: 2 ** 24 - 1 }),
        fc.integer({ min: 2 ** 23, max: 2 ** 24 - 1 }),
        fc.integer({ min: 18, max: 30 }),
        fc.constantFrom(1, -1),
        (u, v, k, sign) => {
          const a = u / 2 ** 23;
          const b = v / 2 ** (23 + k);
          const c = sign * (k % 2 === 0 ? 1 : 1.5);
          return Object.is(fmaF32(a, b, c), exactFmaF32(a, b, c));
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("truncToInt64", () => {
  it("truncates and maps NaN / out-of-range to INT64_MIN like x86 cvttss2si", () => {
    expect(truncToInt64(2.9)).toBe(2);
    expect(truncToInt64(-2.9)).toBe(-2);
    expect(truncToInt64(NaN)).toBe(-9223372036854775808);
    expect(truncToInt64(1e30)).toBe(-9223372036854775808);
    expect(truncToInt64(-Infinity)).toBe(-9223372036854775808);
  });
});
