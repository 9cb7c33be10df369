import { toNumbers } from "@qforge/ir";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fakeQuantizePerTensorAffine } from "../src/fake-quant/functional.js";
import {
  fakeQuantizeLearnablePerChannelAffine, fakeQuantizeLearnablePerTensorAffine,
} from "../src/fake-quant/learnable.js";
import { rint } from "../src/primitives/float32.js";
import { codeOf, f32, t32 } from "./helpers.js";

describe("fakeQuantizeLearnablePerTensorAffine (LSQ)", () => {
  const xs = [0, 1.3, 10, -20, 0.5];
  const x = t32([5], xs);

  it("rounds the zero point with rint forward (2.5 -> 2) and trunc(zp + 0.5) backward (2.5 -> 3)", () => {
    const r = fakeQuantizeLearnablePerTensorAffine(x, 1, 2.5, -8, 7, 0.5);
    expect(toNumbers(r.output)).toEqual(toNumbers(fakeQuantizePerTensorAffine(x, 1, 2, -8, 7).output));
    expect(toNumbers(r.output)).toEqual([0, 1, 5, -10, 0]);
    expect(toNumbers(r.gradInput)).toEqual([1, 1, 0, 0, 1]); // upstream gradient defaults to ones
    // inside: dy * (xfq - x) / scale * grad_factor with xq = rint(x + 3); outside: dy * (qmin|qmax - 3) * grad_factor
    expect(toNumbers(r.gradScaleElements)).toEqual([0, f32(f32(1 - f32(1.3)) * 0.5), 2, -5.5, 0.25]);
    expect(toNumbers(r.gradZeroPointElements)).toEqual([0, 0, -0.5, -0.5, 0]);
    expect(r.gradScale.shape).toEqual([1]);
    expect(toNumbers(r.gradScale)).toEqual([f32(f32(f32(1 - f32(1.3)) * 0.5) + 2 - 5.5 + 0.25)]);
    expect(toNumbers(r.gradZeroPoint)).toEqual([-1]);
  });

  it("adds the zero point before rounding in a fused multiply-add", () => {
    // scale f32(0.3): x * inv_scale rounds to 30.5 in float32 (then 30 + 3 = 33 in the forward), but
    // the exact x * inv_scale + 3 is just below 33.5: the FMA gives 33, a separate add would give 34.
    const scale = f32(0.3);
    const xv = f32(9.149999618530273);
    const inv = f32(1 / scale);
    expect(rint(f32(f32(xv * inv) + 3))).toBe(34);
    const r = fakeQuantizeLearnablePerTensorAffine(t32([1], [xv]), scale, 3, -128, 127, 1);
    expect(toNumbers(r.output)).toEqual([f32(30 * scale)]);
    const dS = toNumbers(r.gradScaleElements)[0]!;
    expect(dS).toBeLessThan(0); // xfq = 30 * scale < x; with xq = 34 it would be positive
    expect(dS).toBe(f32(f32(30 * scale - xv) * inv)); // fma(33 - 3, scale, -x) is exact here
  });

  it("sums the element terms into grad_scale / grad_zero_point, scaled by grad_factor", () => {
    fc.assert(
      fc.property(
        fc.array(fc.float({ min: -50, max: 50, noNaN: true }), { minLength: 1, maxLength: 40 }),
        fc.double({ min: 0.01, max: 2, noNaN: true }),
        fc.double({ min: -10, max: 10, noNaN: true }),
        fc.double({ min: 0.1, max: 2, noNaN: true }),
        (values, scale, zp, gf) => {
          const xt = t32([values.length], values);
          const dy = t32([values.length], values.map((v, i) => ((i % 5) - 2) * 0.5 + v * 1e-3));
          const r = fakeQuantizeLearnablePerTensorAffine(xt, scale, zp, -128, 127, gf, dy);
          const sumS = toNumbers(r.gradScaleElements).reduce((a, b) => a + b, 0);
          const sumZ = toNumbers(r.gradZeroPointElements).reduce((a, b) => a + b, 0);
          const gi = toNumbers(r.gradInput);
          const dyv = toNumbers(dy);
          // grad_input is dy where in range; grad_zero_point terms are 0 exactly there
          const zpTerms = toNumbers(r.gradZeroPointElements);
          return toNumbers(r.gradScale)[0] === f32(sumS) && toNumbers(r.gradZeroPoint)[0] === f32(sumZ)
            && gi.every((g, i) => (g === dyv[i] ? zpTerms[i] === 0 : g === 0));
        },
      ),
      { numRuns: 250 },
    );
  });

  it("refuses ranges without 0 and bad scales", () => {
    expect(codeOf(() => fakeQuantizeLearnablePerTensorAffine(x, 1, 2, 1, 7, 1))).toBe("BAD_CONFIG");
    expect(codeOf(() => fakeQuantizeLearnablePerTensorAffine(x, 0, 2, 0, 7, 1))).toBe("BAD_CONFIG");
    expect(codeOf(() => fakeQuantizeLearnablePerTensorAffine(x, t32([2], [1, 1]), 2, 0, 7, 1))).toBe("BAD_SHAPE");
    expect(codeOf(() => fakeQuantizeLearnablePerTensorAffine(x, 1, NaN, 0, 7, 1))).toBe("BAD_DATA");
  });
});

describe("fakeQuantizeLearnablePerChannelAffine (LSQ)", () => {
  it("uses round-half-even zero points in both passes and sums per channel", () => {
    // one column per channel on axis 1: channel 0 gets the same values as the per-tensor test
    const x = t32([5, 2], [0, 0, 1.3, 0, 10, 0, -20, 0, 0.5, 0]);
    const r = fakeQuantizeLearnablePerChannelAffine(x, [1, 0.5], [2.5, -0.5], 1, -8, 7, 0.5);
    expect(toNumbers(r.output)).toEqual([0, 0, 1, 0, 5, 0, -10, 0, 0, 0]);
    // channel 0: zp 2.5 -> 2 (half to even) backward as well: x = 0.5 gives xq = rint(2.5) = 2, xfq - x = -0.5
    const dS = toNumbers(r.gradScaleElements);
    expect([dS[0], dS[2], dS[4], dS[6], dS[8]]).toEqual([0, f32(f32(1 - f32(1.3)) * 0.5), 2.5, -5, -0.25]);
    expect(r.gradScale.shape).toEqual([2]);
    expect(toNumbers(r.gradScale)[0]).toBe(f32(f32(f32(1 - f32(1.3)) * 0.5) + 2.5 - 5 - 0.25));
    expect(toNumbers(r.gradScale)[1]).toBe(0); // channel 1: x = 0, zp -0.5 -> -0 -> 0, exactly on the grid
    expect(toNumbers(r.gradZeroPoint)).toEqual([-1, 0]);
  });

  it("refuses mismatched parameter vectors", () => {
    const x = t32([2, 2], [1, 2, 3, 4]);
    expect(codeOf(() => fakeQuantizeLearnablePerChannelAffine(x, [1], [0], 1, -8, 7, 1))).toBe("BAD_SHAPE");
    expect(codeOf(() => fakeQuantizeLearnablePerChannelAffine(x, [1, 1], [0, Infinity], 1, -8, 7, 1))).toBe("BAD_DATA");
  });
});
