import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { chooseQuantizationParamsAten } from "../src/primitives/aten-qparams.js";
import { codeOf } from "./helpers.js";

const THRESHOLD = Math.fround(6.1e-5);

describe("chooseQuantizationParamsAten (ATen ChooseQuantizationParams)", () => {
  it("computes the scale in double and nudges the zero point with nearbyint", () => {
    // zero point from min: 127.5 (smaller error than from max), nearbyint -> 128
    expect(chooseQuantizationParamsAten(-1, 1, 0, 255)).toEqual({ scale: 2 / 255, zeroPoint: 128 });
    expect(chooseQuantizationParamsAten(0.5, 3, 0, 255)).toEqual({ scale: 3 / 255, zeroPoint: 0 });
    expect(chooseQuantizationParamsAten(-3, -0.5, -128, 127)).toEqual({ scale: 3 / 255, zeroPoint: 127 });
  });

  it("uses 0.1 for a zero range and raises tiny scales to 6.1e-5", () => {
    expect(chooseQuantizationParamsAten(0, 0, 0, 255)).toEqual({ scale: 0.1, zeroPoint: 0 });
    expect(chooseQuantizationParamsAten(0, 1e-3, 0, 255)).toEqual({ scale: THRESHOLD, zeroPoint: 0 });
    expect(chooseQuantizationParamsAten(-1e-3, 0, 0, 255)).toEqual({ scale: THRESHOLD, zeroPoint: 255 });
    const both = chooseQuantizationParamsAten(-1e-3, 1e-3, 0, 255);
    expect(both.scale).toBe(THRESHOLD);
    expect(both.zeroPoint).toBe(128);
  });

  it("halves the range with C++ integer division for reduceRange", () => {
    // [-64, 63]: the zero point from max (-0.5, smaller error) rounds to 0
    expect(chooseQuantizationParamsAten(-1, 1, -128, 127, { reduceRange: true })).toEqual({ scale: 2 / 127, zeroPoint: 0 });
    // -127 / 2 truncates to -63 (not Python's -64)
    const r = chooseQuantizationParamsAten(-1, 0, -127, 127, { reduceRange: true });
    expect(r.scale).toBe(1 / 126);
    expect(r.zeroPoint).toBe(63);
  });

  it("is symmetric around 0 with preserveSparsity: max(|min| / 128, max / 127)", () => {
    expect(chooseQuantizationParamsAten(-1, 0.5, -128, 127, { preserveSparsity: true })).toEqual({ scale: 1 / 128, zeroPoint: 0 });
    const u = chooseQuantizationParamsAten(-1, 2, 0, 255, { preserveSparsity: true });
    expect(u.zeroPoint).toBe(128); // (0 + 255) / 2 = 127.5 -> 128
    expect(Math.abs(u.scale - 2 / 127) / (2 / 127)).toBeLessThan(1e-6);
    // one-sided ranges fall back to the affine formula
    expect(chooseQuantizationParamsAten(0, 2, 0, 255, { preserveSparsity: true })).toEqual({ scale: 2 / 255, zeroPoint: 0 });
  });

  it("rounds the scale to a power of two on request", () => {
    expect(chooseQuantizationParamsAten(0, 1, 0, 255, { forceScaleAsPowerOfTwo: true }).scale).toBe(1 / 128);
    expect(chooseQuantizationParamsAten(0, 1000, 0, 255, { forceScaleAsPowerOfTwo: true }).scale).toBe(4);
  });

  it("keeps 0 exactly representable (zero point in range) for any finite range", () => {
    fc.assert(
      fc.property(
        fc.float({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }),
        fc.float({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }),
        fc.constantFrom([0, 255], [-128, 127], [-127, 127], [0, 15]),
        fc.boolean(),
        (a, b, [qmin, qmax], sym) => {
          const r = chooseQuantizationParamsAten(Math.min(a, b), Math.max(a, b), qmin!, qmax!, { preserveSparsity: sym });
          return Number.isInteger(r.zeroPoint) && r.zeroPoint >= qmin! && r.zeroPoint <= qmax! && r.scale >= THRESHOLD;
        },
      ),
      { numRuns: 300 },
    );
  });

  it("refuses min > max (or NaN) and an empty integer range", () => {
    expect(codeOf(() => chooseQuantizationParamsAten(1, 0, 0, 255))).toBe("BAD_DATA");
    expect(codeOf(() => chooseQuantizationParamsAten(NaN, 0, 0, 255))).toBe("BAD_DATA");
    expect(codeOf(() => chooseQuantizationParamsAten(0, 1, 5, 5))).toBe("BAD_CONFIG");
  });
});
