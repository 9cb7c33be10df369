import { fromArray, toNumbers } from "@qforge/ir";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  chooseQParamsAffine, dequantizeAffine, MappingType, quantizeAffine,
} from "../src/primitives/affine.js";
import { blockSizeFor, PerGroup } from "../src/primitives/blocks.js";
import { dequantizePerTensor, quantizePerTensor } from "../src/primitives/classic.js";
import { quantRange } from "../src/primitives/qdtype.js";

const f32 = Math.fround;
const RUNS = { numRuns: 250 };

/** Rounding noise of the float32 products on top of the ideal scale / 2 bound. */
const slack = (x: number, scale: number): number => (Math.abs(x) + scale) * 2 ** -21;

describe("round trip dequantize(quantize(x)) is within scale / 2 inside the range", () => {
  it("quantizePerTensor / dequantizePerTensor (quint8, qint8)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("quint8" as const, "qint8" as const),
        fc.double({ min: 1e-3, max: 10, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 20 }),
        (dtype, scale, zpFrac, fracs) => {
          const { quantMin, quantMax } = quantRange(dtype);
          const zp = quantMin + Math.round(zpFrac * (quantMax - quantMin));
          const s = f32(scale);
          const lo = (quantMin - zp) * s;
          const hi = (quantMax - zp) * s;
          const xs = fracs.map((u) => f32(lo + u * (hi - lo)));
          const q = quantizePerTensor(fromArray("float32", [xs.length], xs), scale, zp, dtype);
          const d = toNumbers(dequantizePerTensor(q, scale, zp));
          return d.every((v, i) => Math.abs(v - xs[i]!) <= s / 2 + slack(xs[i]!, s));
        },
      ),
      RUNS,
    );
  });

  it("chooseQParamsAffine + quantizeAffine + dequantizeAffine per group (ASYMMETRIC and SYMMETRIC)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(MappingType.ASYMMETRIC, MappingType.SYMMETRIC),
        fc.constantFrom("int8" as const, "uint8" as const, "int4" as const, "uint4" as const),
        fc.array(fc.float({ min: -100, max: 100, noNaN: true }), { minLength: 8, maxLength: 8 }),
        fc.array(fc.float({ min: -1, max: 1, noNaN: true }), { minLength: 8, maxLength: 8 }),
        (mapping, dtype, a, b) => {
          const values = [...a, ...b];
          const x = fromArray("float32", [2, 8], values);
          const block = blockSizeFor(PerGroup(4), x.shape);
          const { scale, zeroPoint } = chooseQParamsAffine(x, { mappingType: mapping, blockSize: block, targetDtype: dtype });
          const q = quantizeAffine(x, block, scale, zeroPoint, dtype);
          const d = toNumbers(dequantizeAffine(q, block, scale, zeroPoint, dtype));
          const s = toNumbers(scale);
          const z = toNumbers(zeroPoint!);
          const { quantMin, quantMax } = quantRange(dtype);
          return d.every((v, i) => {
            const g = Math.floor(i / 4);
            const sc = s[g]!;
            const xi = f32(values[i]!);
            const inside = xi >= (quantMin - z[g]!) * sc && xi <= (quantMax - z[g]!) * sc;
            return !inside || Math.abs(v - xi) <= sc / 2 + slack(xi, sc);
          });
        },
      ),
      RUNS,
    );
  });
});

describe("0.0 is exactly representable", () => {
  it("for ASYMMETRIC and SYMMETRIC qparams of any data", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(MappingType.ASYMMETRIC, MappingType.SYMMETRIC),
        fc.constantFrom("int8" as const, "uint8" as const, "int4" as const, "uint2" as const, "int16" as const),
        fc.array(fc.float({ min: -1e4, max: 1e4, noNaN: true }), { minLength: 1, maxLength: 16 }),
        (mapping, dtype, values) => {
          const x = fromArray("float32", [values.length], values);
          const { scale, zeroPoint } = chooseQParamsAffine(x, { mappingType: mapping, blockSize: [values.length], targetDtype: dtype });
          const zero = fromArray("float32", [1], [0]);
          const q = quantizeAffine(zero, [1], scale, zeroPoint, dtype);
          const d = toNumbers(dequantizeAffine(q, [1], scale, zeroPoint, dtype));
          return d[0] === 0 && toNumbers(q)[0] === toNumbers(zeroPoint!)[0];
        },
      ),
      RUNS,
    );
  });
});

describe("symmetric zero points", () => {
  it("are 0 for signed and 2^(bits-1) for unsigned dtypes (PyTorch: qint8 -> 0, quint8 -> 128)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("int8" as const, "uint8" as const, "int4" as const, "uint4" as const, "int2" as const, "uint7" as const, "int16" as const),
        fc.array(fc.float({ min: -50, max: 50, noNaN: true }), { minLength: 1, maxLength: 8 }),
        (dtype, values) => {
          const x = fromArray("float32", [values.length], values);
          const { zeroPoint } = chooseQParamsAffine(x, { mappingType: MappingType.SYMMETRIC, blockSize: [values.length], targetDtype: dtype });
          const { quantMin, quantMax } = quantRange(dtype);
          const expected = quantMin < 0 ? 0 : (quantMax + 1) / 2;
          return toNumbers(zeroPoint!)[0] === expected;
        },
      ),
      RUNS,
    );
  });

  it("sit at int((quant_min + quant_max + 1) / 2) for custom ranges, inside the range", () => {
    fc.assert(
      fc.property(fc.integer({ min: -128, max: 126 }), fc.integer({ min: 1, max: 255 }), (qmin, width) => {
        const qmax = Math.min(127, qmin + width);
        const x = fromArray("float32", [2], [-1, 3]);
        const { zeroPoint } = chooseQParamsAffine(x, {
          mappingType: MappingType.SYMMETRIC, blockSize: [2], targetDtype: "int8", quantMin: qmin, quantMax: qmax,
        });
        const zp = toNumbers(zeroPoint!)[0]!;
        return zp === Math.trunc((qmin + qmax + 1) / 2) && zp >= qmin && zp <= qmax;
      }),
      RUNS,
    );
    expect(toNumbers(chooseQParamsAffine(fromArray("float32", [1], [1]), { mappingType: MappingType.SYMMETRIC, blockSize: [1], targetDtype: "int8", quantMin: -3, quantMax: 1 }).zeroPoint!)).toEqual([0]); // int(-0.5) truncates to 0
  });
});
