import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { dtypeInfo, fromArray, getElement, numel, toNumbers, type Tensor } from "@qforge/ir";
import { dequantizePerTensor, quantizePerTensor, rint } from "@qforge/quant";
import { runOp } from "../src/index.js";

/** Laws of the quantized reference kernels. */

type QDType = "uint8" | "int8";

/** A per-tensor quantized tensor: dtype, float32 scale, zero point in range, integers. */
const quantized = (n: number, dtype?: QDType) =>
  fc.record({
    dtype: dtype === undefined ? fc.constantFrom<QDType>("uint8", "int8") : fc.constant(dtype),
    scale: fc.float({ min: Math.fround(1e-4), max: Math.fround(10), noNaN: true }),
    zpUnit: fc.double({ min: 0, max: 1, noNaN: true }),
    unit: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: n, maxLength: n }),
  }).map(({ dtype: d, scale, zpUnit, unit }) => {
    const { min, max } = dtypeInfo(d);
    const zeroPoint = min + Math.round(zpUnit * (max - min));
    return { dtype: d, scale, zeroPoint, values: unit.map((u) => min + Math.round(u * (max - min))), min, max };
  });

const s64 = (v: number): Tensor => fromArray("float64", [], [v]);
const zpT = (v: number): Tensor => fromArray("int64", [], [v]);

describe("quantized kernel laws (fast-check)", () => {
  it("relu of non-negative values with equal input/output qparams is the identity", () => {
    fc.assert(fc.property(quantized(12), ({ dtype, scale, zeroPoint, values, max }) => {
      // Non-negative real values: integers at or above the zero point.
      const ints = values.map((v) => Math.min(max, Math.max(v, zeroPoint)));
      const x = fromArray(dtype, [3, 4], ints);
      const [y] = runOp("quantized_relu", [x, s64(scale), zpT(zeroPoint), s64(scale), zpT(zeroPoint)]);
      expect(toNumbers(y!)).toEqual(ints);
    }), { numRuns: 200 });
  });

  it("max_pool2d and upsample_nearest2d with unchanged qparams only move integers", () => {
    fc.assert(fc.property(quantized(16), ({ dtype, scale, zeroPoint, values }) => {
      const x = fromArray(dtype, [1, 1, 4, 4], values);
      const qp = [s64(scale), zpT(zeroPoint)];
      const [pooled] = runOp("quantized_max_pool2d", [x, ...qp], { kernel_size: [2, 2] });
      const maxOf = (r: number, c: number) => Math.max(values[r * 4 + c]!, values[r * 4 + c + 1]!, values[r * 4 + c + 4]!, values[r * 4 + c + 5]!);
      expect(toNumbers(pooled!)).toEqual([maxOf(0, 0), maxOf(0, 2), maxOf(2, 0), maxOf(2, 2)]);
      const [up] = runOp("quantized_upsample_nearest2d", [x, ...qp], { scale_factor: [2, 3] });
      expect(numel(up!.shape)).toBe(16 * 6);
      expect(new Set(toNumbers(up!))).toEqual(new Set(values));
    }), { numRuns: 100 });
  });

  it("quantized_add with a zero tensor equals requantizing the other input", () => {
    fc.assert(fc.property(quantized(6), quantized(1), quantized(1), fc.boolean(), (a, zero, out, broadcastZero) => {
      fc.pre(a.dtype === zero.dtype && zero.dtype === out.dtype);
      const x = fromArray(a.dtype, [2, 3], a.values);
      // Every element of the zero tensor is its zero point: the real value 0.
      const z = broadcastZero ? fromArray(zero.dtype, [1], [zero.zeroPoint]) : fromArray(zero.dtype, [2, 3], new Array(6).fill(zero.zeroPoint));
      const [sum] = runOp("quantized_add", [x, s64(a.scale), zpT(a.zeroPoint), z, s64(zero.scale), zpT(zero.zeroPoint), s64(out.scale), zpT(out.zeroPoint)]);
      const requantized = quantizePerTensor(dequantizePerTensor(x, a.scale, a.zeroPoint), out.scale, out.zeroPoint, a.dtype);
      expect(toNumbers(sum!)).toEqual(toNumbers(requantized));
      const [swapped] = runOp("quantized_add", [z, s64(zero.scale), zpT(zero.zeroPoint), x, s64(a.scale), zpT(a.zeroPoint), s64(out.scale), zpT(out.zeroPoint)]);
      expect(toNumbers(swapped!)).toEqual(toNumbers(requantized));
    }), { numRuns: 300 });
  });

  it("quantize_linear then dequantize_linear is within scale / 2 inside the quantized range", () => {
    fc.assert(fc.property(
      quantized(0),
      fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 32 }),
      ({ dtype, scale, zeroPoint, min, max }, unit) => {
        const lo = (min - zeroPoint) * scale;
        const hi = (max - zeroPoint) * scale;
        const xs = unit.map((u) => Math.fround(lo + u * (hi - lo)));
        const sT = fromArray("float32", [], [scale]);
        const zT = fromArray(dtype, [], [zeroPoint]);
        const [q] = runOp("quantize_linear", [fromArray("float32", [xs.length], xs), sT, zT]);
        const [y] = runOp("dequantize_linear", [q!, sT, zT]);
        xs.forEach((x, i) => {
          if (x < lo || x > hi) return; // float32 rounding of the endpoints
          // half a step, plus the float32 rounding of x / scale and of the product
          const tol = scale / 2 + 4 * 2 ** -24 * Math.max(Math.abs(x), scale);
          expect(Math.abs(getElement(y!, i) - x)).toBeLessThanOrEqual(tol);
        });
      },
    ), { numRuns: 300 });
  });

  it("per-axis quantize/dequantize round trip is within each channel's scale / 2", () => {
    fc.assert(fc.property(quantized(0, "int8"), quantized(0, "int8"), fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 6, maxLength: 6 }),
      (c0, c1, unit) => {
        const scales = [c0.scale, c1.scale];
        const zps = [c0.zeroPoint, c1.zeroPoint];
        // x [3, 2], axis 1: column j uses channel j; keep values inside each channel's range.
        const xs = unit.map((u, i) => {
          const j = i % 2;
          const lo = (-128 - zps[j]!) * scales[j]!;
          const hi = (127 - zps[j]!) * scales[j]!;
          return Math.fround(Math.min(hi, Math.max(lo, u * Math.max(-lo, hi))));
        });
        const sT = fromArray("float32", [2], scales);
        const zT = fromArray("int8", [2], zps);
        const [q] = runOp("quantize_linear", [fromArray("float32", [3, 2], xs), sT, zT], { axis: 1 });
        const [y] = runOp("dequantize_linear", [q!, sT, zT], { axis: 1 });
        xs.forEach((x, i) => {
          const s = scales[i % 2]!;
          expect(Math.abs(getElement(y!, i) - x)).toBeLessThanOrEqual(s / 2 + 4 * 2 ** -24 * Math.max(Math.abs(x), s));
        });
      }), { numRuns: 200 });
  });

  it("a 1x1 quantized_conv2d equals quantized_linear over channels (both engines)", () => {
    fc.assert(fc.property(
      quantized(8, "uint8"), quantized(12, "int8"), quantized(1, "uint8"),
      fc.array(fc.float({ min: -2, max: 2, noNaN: true }), { minLength: 3, maxLength: 3 }),
      fc.constantFrom("qnnpack", "onednn"), fc.boolean(),
      (x, w, out, bias, engine, relu) => {
        const xT = fromArray("uint8", [2, 4], x.values);
        const wT = fromArray("int8", [3, 4], w.values.slice(0, 12));
        const wZp = engine === "onednn" ? 0 : w.zeroPoint;
        const qp = (s: number, z: number) => [s64(s), zpT(z)];
        const b = fromArray("float32", [3], bias);
        const attrs = { engine, fuse_relu: relu };
        const [lin] = runOp("quantized_linear", [xT, ...qp(x.scale, x.zeroPoint), wT, ...qp(w.scale, wZp), b, ...qp(out.scale, out.zeroPoint)], attrs);
        const [conv] = runOp("quantized_conv2d", [
          fromArray("uint8", [2, 4, 1, 1], x.values), ...qp(x.scale, x.zeroPoint), fromArray("int8", [3, 4, 1, 1], w.values.slice(0, 12)),
          ...qp(w.scale, wZp), b, ...qp(out.scale, out.zeroPoint),
        ], attrs);
        expect(toNumbers(conv!)).toEqual(toNumbers(lin!));
      },
    ), { numRuns: 150 });
  });

  it("qlinear_matmul equals matmul_integer followed by float32 requantization", () => {
    fc.assert(fc.property(quantized(6, "uint8"), quantized(6, "int8"), quantized(1, "uint8"), (a, b, y) => {
      const aT = fromArray("uint8", [2, 3], a.values);
      const bT = fromArray("int8", [3, 2], b.values);
      const f = (v: number) => fromArray("float32", [], [v]);
      const [out] = runOp("qlinear_matmul", [
        aT, f(a.scale), fromArray("uint8", [], [a.zeroPoint]), bT, f(b.scale), fromArray("int8", [], [b.zeroPoint]),
        f(y.scale), fromArray("uint8", [], [y.zeroPoint]),
      ]);
      const [acc] = runOp("matmul_integer", [aT, bT, fromArray("uint8", [], [a.zeroPoint]), fromArray("int8", [], [b.zeroPoint])]);
      const m = Math.fround(Math.fround(a.scale * b.scale) / y.scale);
      const want = toNumbers(acc!).map((v) => Math.min(255, Math.max(0, rint(Math.fround(v * m)) + y.zeroPoint)));
      expect(toNumbers(out!)).toEqual(want);
    }), { numRuns: 200 });
  });
});
