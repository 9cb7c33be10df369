import { fromArray, toNumbers } from "@qforge/ir";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fakeQuantizePerChannelAffine, fakeQuantizePerTensorAffine } from "../src/fake-quant/functional.js";
import { dequantizePerTensor, quantizePerTensor, quantizeValue } from "../src/primitives/classic.js";
import { codeOf, t32 } from "./helpers.js";

describe("fakeQuantizePerTensorAffine", () => {
  const x = t32([6], [-1, -0.3, 0, 0.26, 0.5, 10]);

  it("quantizes, clamps, dequantizes; the mask marks in-range values", () => {
    const r = fakeQuantizePerTensorAffine(x, 0.25, 2, 0, 15);
    expect(r.output.dtype).toBe("float32");
    expect(toNumbers(r.output)).toEqual([-0.5, -0.25, 0, 0.25, 0.5, 3.25]);
    expect(r.mask.dtype).toBe("bool");
    expect(toNumbers(r.mask)).toEqual([0, 1, 1, 1, 1, 0]);
    expect(r.gradInput).toBeUndefined();
  });

  it("passes the upstream gradient straight through where in range (dy * mask keeps -0.0)", () => {
    const r = fakeQuantizePerTensorAffine(x, 0.25, 2, 0, 15, t32([6], [-1, 2, 3, 4, 5, 6]));
    const g = toNumbers(r.gradInput!);
    expect(g).toEqual([-0, 2, 3, 4, 5, 0]);
    expect(Object.is(g[0], -0)).toBe(true);
    expect(Object.is(g[5], 0)).toBe(true);
  });

  it("sends NaN to quant_min (std::fmax ignores NaN) with a zero mask", () => {
    const r = fakeQuantizePerTensorAffine(t32([1], [NaN]), 0.25, 2, 0, 15);
    expect(toNumbers(r.output)).toEqual([-0.5]);
    expect(toNumbers(r.mask)).toEqual([0]);
  });

  it("has mask 1 exactly where the unclamped quantized value is in range", () => {
    fc.assert(
      fc.property(
        fc.array(fc.float({ min: -1000, max: 1000, noNaN: true }), { minLength: 1, maxLength: 30 }),
        fc.double({ min: 1e-3, max: 5, noNaN: true }),
        fc.integer({ min: -20, max: 20 }),
        fc.integer({ min: 1, max: 300 }),
        (xs, scale, lo, width) => {
          const qmin = lo;
          const qmax = lo + width;
          const zp = qmin + Math.floor(width / 2);
          const dy = xs.map((_, i) => (i % 3) - 1.5);
          const r = fakeQuantizePerTensorAffine(t32([xs.length], xs), scale, zp, qmin, qmax, t32([xs.length], dy));
          const mask = toNumbers(r.mask);
          const grad = toNumbers(r.gradInput!);
          return xs.every((v, i) => {
            const q = quantizeValue(v, scale, zp, -1e300, 1e300); // unclamped
            const inRange = q >= qmin && q <= qmax;
            return mask[i] === (inRange ? 1 : 0) && Object.is(grad[i], dy[i]! * (inRange ? 1 : 0));
          });
        },
      ),
      { numRuns: 250 },
    );
  });

  it("equals dequantize(quantize(x)) over the full quint8 range", () => {
    fc.assert(
      fc.property(
        fc.array(fc.float({ min: -100, max: 100, noNaN: true }), { minLength: 1, maxLength: 30 }),
        fc.double({ min: 1e-3, max: 2, noNaN: true }),
        fc.integer({ min: 0, max: 255 }),
        (xs, scale, zp) => {
          const x = t32([xs.length], xs);
          const fq = toNumbers(fakeQuantizePerTensorAffine(x, scale, zp, 0, 255).output);
          const qdq = toNumbers(dequantizePerTensor(quantizePerTensor(x, scale, zp, "quint8"), scale, zp));
          return fq.every((v, i) => Object.is(v, qdq[i]));
        },
      ),
      { numRuns: 250 },
    );
  });

  it("refuses bad configurations", () => {
    expect(codeOf(() => fakeQuantizePerTensorAffine(x, 0.25, 20, 0, 15))).toBe("BAD_CONFIG");
    expect(codeOf(() => fakeQuantizePerTensorAffine(x, 0.25, 0, 5, 4))).toBe("BAD_CONFIG");
    expect(codeOf(() => fakeQuantizePerTensorAffine(x, -1, 0, 0, 15))).toBe("BAD_CONFIG");
    expect(codeOf(() => fakeQuantizePerTensorAffine(x, 0.25, 0, 0, 15, t32([2], [1, 1])))).toBe("BAD_SHAPE");
  });
});

describe("fakeQuantizePerChannelAffine", () => {
  const x = t32([2, 2], [0.3, 0.3, -5, 5]);

  it("uses one scale / zero point per index along the axis", () => {
    const a1 = fakeQuantizePerChannelAffine(x, [0.25, 0.5], [0, 1], 1, -4, 4, t32([2, 2], [1, 1, 1, 1]));
    // column 0: 0.3/0.25 = 1.2 -> 1 -> 0.25; -20 -> -4 clamp (out) -> -1
    // column 1: 0.3/0.5 = 0.6 -> 1 + 1 = 2 -> 0.5; 10 + 1 = 11 -> 4 (out) -> 1.5
    expect(toNumbers(a1.output)).toEqual([0.25, 0.5, -1, 1.5]);
    expect(toNumbers(a1.mask)).toEqual([1, 1, 0, 0]);
    expect(toNumbers(a1.gradInput!)).toEqual([1, 1, 0, 0]);
    const a0 = fakeQuantizePerChannelAffine(x, fromArray("float32", [2], [0.25, 0.5]), fromArray("int32", [2], [0, 1]), 0, -4, 4);
    expect(toNumbers(a0.output)).toEqual([0.25, 0.25, -2.5, 1.5]); // row 1: clamp(-10 + 1) = -4 -> (-4 - 1) * 0.5
  });

  it("converts the unclamped value to int64 first, so NaN lands on quant_min", () => {
    const r = fakeQuantizePerChannelAffine(t32([1, 1], [NaN]), [0.5], [1], 1, -4, 4);
    expect(toNumbers(r.output)).toEqual([-2.5]);
  });

  it("refuses mismatched parameters and non-integer zero points", () => {
    expect(codeOf(() => fakeQuantizePerChannelAffine(x, [0.25], [0], 1, -4, 4))).toBe("BAD_SHAPE");
    expect(codeOf(() => fakeQuantizePerChannelAffine(x, [0.25, 0.5], [0, 0.5], 1, -4, 4))).toBe("BAD_CONFIG");
    expect(codeOf(() => fakeQuantizePerChannelAffine(x, [0.25, 0.5], [0, 9], 1, -4, 4))).toBe("BAD_CONFIG");
    expect(codeOf(() => fakeQuantizePerChannelAffine(x, [0.25, 0.5], [0, 0], 2, -4, 4))).toBe("BAD_CONFIG");
  });
});
