import { fromArray, getElement, numel, toNumbers } from "@qforge/ir";
import { describe, expect, it } from "vitest";
import {
  dequantizePerChannel, dequantizePerTensor, quantizePerChannel, quantizePerTensor, quantizeValue,
} from "../src/primitives/classic.js";
import { rint } from "../src/primitives/float32.js";
import { expectCode, t32 } from "./helpers.js";

describe("quantizePerTensor", () => {
  it("rounds half to even after multiplying by the reciprocal, adds the zero point after rounding, clamps", () => {
    const q = quantizePerTensor(t32([6], [0.25, 0.75, -0.25, -0.75, 200, -5]), 0.5, 3, "quint8");
    expect(q.dtype).toBe("uint8");
    expect(toNumbers(q)).toEqual([3, 5, 3, 1, 255, 0]);
    const s = quantizePerTensor(t32([3], [-100, 63.75, 64]), 0.5, -1, "qint8");
    expect(s.dtype).toBe("int8");
    expect(toNumbers(s)).toEqual([-128, 127, 127]);
  });

  it("uses x * f32(1 / scale), not x / scale", () => {
    const scale = Math.fround(0.3);
    const inv = Math.fround(1 / scale);
    const differing: number[] = [];
    for (let k = 1; k < 200000 && differing.length < 3; k++) {
      const x = Math.fround(k * 0.00731);
      if (rint(Math.fround(x * inv)) !== rint(Math.fround(x / scale))) differing.push(x);
    }
    expect(differing.length).toBeGreaterThan(0);
    const q = quantizePerTensor(t32([differing.length], differing), scale, 0, "qint32");
    expect(toNumbers(q)).toEqual(differing.map((x) => rint(Math.fround(x * inv))));
  });

  it("adds the zero point in float32 for qint32 (PyTorch 1.13: zero_point + nearbyint(x * inv))", () => {
    // Golden case: -675268.1875 / 0.001 = -675268187.5 rounds to the float32 -675268160.
    const q = quantizePerTensor(t32([2], [-675268.1875, 1047632.4375]), 0.001, 0, "qint32");
    expect(q.dtype).toBe("int32");
    expect(toNumbers(q)).toEqual([-675268160, 1047632384]);
  });

  it("quantizes NaN and infinities to quant_min as PyTorch does on x86 (int64 'indefinite')", () => {
    const q = quantizePerTensor(t32([3], [NaN, Infinity, -Infinity]), 0.1, 128, "quint8");
    expect(toNumbers(q)).toEqual([0, 0, 0]);
  });

  it("writes sub-byte dtypes packed", () => {
    const q = quantizePerTensor(t32([5], [-10, -4, 0.2, 3.4, 10]), 0.5, 0, "int4");
    expect(q.dtype).toBe("int4");
    expect(q.data.length).toBe(3);
    expect(toNumbers(q)).toEqual([-8, -8, 0, 7, 7]);
  });

  it("converts non-float32 float inputs to float32 first", () => {
    const q64 = quantizePerTensor(fromArray("float64", [2], [0.1 + 1e-12, 1.25]), 0.25, 0, "qint8");
    expect(toNumbers(q64)).toEqual([0, 5]);
  });

  it("refuses bad parameters", () => {
    const x = t32([2], [1, 2]);
    expectCode(() => quantizePerTensor(x, 0, 0, "quint8"), "BAD_CONFIG");
    expectCode(() => quantizePerTensor(x, NaN, 0, "quint8"), "BAD_CONFIG");
    expectCode(() => quantizePerTensor(x, 0.1, 256, "quint8"), "BAD_CONFIG");
    expectCode(() => quantizePerTensor(x, 0.1, 1.5, "qint8"), "BAD_CONFIG");
    expectCode(() => quantizePerTensor(x, 0.1, 0, "float32"), "BAD_DTYPE");
    expectCode(() => quantizePerTensor(fromArray("int8", [1], [1]), 0.1, 0, "qint8"), "BAD_DTYPE");
  });

  it("quantizeValue is the same element rule", () => {
    const xs = [0.25, 0.75, -0.25, -0.75, 200, -5, NaN];
    const q = quantizePerTensor(t32([xs.length], xs), 0.5, 3, "quint8");
    expect(xs.map((x) => quantizeValue(x, 0.5, 3, 0, 255))).toEqual(toNumbers(q));
  });
});

describe("dequantizePerTensor", () => {
  it("computes f32(f32(q - zp) * f32(scale))", () => {
    const q = fromArray("uint8", [3], [0, 128, 255]);
    const d = dequantizePerTensor(q, 0.1, 128);
    expect(d.dtype).toBe("float32");
    const s = Math.fround(0.1);
    expect(toNumbers(d)).toEqual([-128, 0, 127].map((k) => Math.fround(k * s)));
  });

  it("reads packed sub-byte tensors", () => {
    const q = quantizePerTensor(t32([3], [-1, 0.5, 3]), 0.5, 0, "int4");
    expect(toNumbers(dequantizePerTensor(q, 0.5, 0))).toEqual([-1, 0.5, 3]);
  });
});

describe("per-channel quantize / dequantize", () => {
  const x = t32([2, 3], [0.5, 1, 1.5, -0.5, -1, -1.5]);

  it("quantizes along axis 1 with one scale and zero point per column", () => {
    const q = quantizePerChannel(x, [0.5, 0.25, 1], [0, 10, -2], 1, "qint8");
    expect(toNumbers(q)).toEqual([1, 14, 0, -1, 6, -4]);
    // 1.5 / 1 = 1.5 -> 2 (tie to even) -2 = 0; -1.5 -> -2 - 2 = -4
    const d = dequantizePerChannel(q, [0.5, 0.25, 1], [0, 10, -2], 1);
    expect(toNumbers(d)).toEqual([0.5, 1, 2, -0.5, -1, -2]);
  });

  it("accepts tensors for scales/zero points and negative axes", () => {
    const scales = fromArray("float64", [2], [0.5, 0.25]);
    const zps = fromArray("int64", [2], [1, -1]);
    const a = quantizePerChannel(x, scales, zps, 0, "qint8");
    const b = quantizePerChannel(x, [0.5, 0.25], [1, -1], -2, "qint8");
    expect(toNumbers(a)).toEqual(toNumbers(b));
    expect(toNumbers(a)).toEqual([2, 3, 4, -3, -5, -7]);
  });

  it("dequantizes in double and rounds once (scale stays a double)", () => {
    const q = fromArray("int8", [1, 2], [9, 7]);
    const scale = 0.1; // not a float32
    const d = dequantizePerChannel(q, [scale, scale], [0, 0], 1);
    expect(toNumbers(d)).toEqual([Math.fround(9 * 0.1), Math.fround(7 * 0.1)]);
    const perTensor = dequantizePerTensor(q, scale, 0);
    expect(toNumbers(perTensor)).toEqual([Math.fround(9 * Math.fround(0.1)), Math.fround(7 * Math.fround(0.1))]);
    expect(getElement(d, 0)).not.toBe(getElement(perTensor, 0));
  });

  it("refuses mismatched parameter counts and bad axes", () => {
    expectCode(() => quantizePerChannel(x, [0.5], [0], 1, "qint8"), "BAD_SHAPE");
    expectCode(() => quantizePerChannel(x, [0.5, 1], [0, 0], 2, "qint8"), "BAD_CONFIG");
    expectCode(() => dequantizePerChannel(fromArray("int8", [2], [1, 2]), [0.5, 0.5], [0, 0.5], 0), "BAD_CONFIG");
    expect(numel(x.shape)).toBe(6);
  });
});
