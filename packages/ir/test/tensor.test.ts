import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { allClose, fromArray } from "../src/index.js";

const vec = (v: number[]) => fromArray("float32", [v.length], v);

describe("allClose", () => {
  it("an infinity matches only the same infinity", () => {
    expect(allClose(vec([Infinity]), vec([Infinity])).ok).toBe(true);
    expect(allClose(vec([-Infinity]), vec([Infinity])).ok).toBe(false);
    expect(allClose(vec([Infinity]), vec([3e38])).ok).toBe(false);
    expect(allClose(vec([1, NaN]), vec([1, NaN])).ok).toBe(true);
    expect(allClose(vec([NaN]), vec([1])).ok).toBe(false);
  });

  it("is reflexive and bounded by atol for finite values", () => {
    fc.assert(fc.property(fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { minLength: 1, maxLength: 16 }), (v) => {
      const a = vec(v);
      expect(allClose(a, a).ok).toBe(true);
      const b = vec(v.map((x) => Math.fround(x + 1)));
      // Shifting every value by one is not within atol 0.5 unless rtol covers it.
      return allClose(a, b, 0, 0.5).ok === v.every((x) => Math.abs(Math.fround(x + 1) - Math.fround(x)) <= 0.5);
    }));
  });
});
