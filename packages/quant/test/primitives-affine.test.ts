import { fromArray, toNumbers } from "@qforge/ir";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  chooseQParamsAffine, chooseQParamsAffineWithMinMax, dequantizeAffine, MappingType, quantizeAffine, ZeroPointDomain,
} from "../src/primitives/affine.js";
import { blockLayout, blockSizeFor, PerAxis, PerGroup, PerTensor, PerToken } from "../src/primitives/blocks.js";
import { rint } from "../src/primitives/float32.js";
import { codeOf, f32, t32 } from "./helpers.js";

describe("blockSizeFor (torchao get_block_size)", () => {
  const shape = [3, 3, 10, 10];
  it("maps granularities to block sizes", () => {
    expect(blockSizeFor(PerTensor(), shape)).toEqual([3, 3, 10, 10]);
    expect(blockSizeFor(PerAxis(0), shape)).toEqual([1, 3, 10, 10]);
    expect(blockSizeFor(PerAxis(1), shape)).toEqual([3, 1, 10, 10]);
    expect(blockSizeFor(PerAxis(-1), shape)).toEqual([3, 3, 10, 1]);
    expect(blockSizeFor(PerGroup(2), shape)).toEqual([1, 1, 1, 2]);
    expect(blockSizeFor(PerToken(), [2, 3, 4])).toEqual([1, 1, 4]);
  });
  it("refuses groups that do not divide the last dimension and bad axes", () => {
    expect(codeOf(() => blockSizeFor(PerGroup(3), shape))).toBe("BAD_CONFIG");
    expect(codeOf(() => blockSizeFor(PerAxis(4), shape))).toBe("BAD_CONFIG");
    expect(codeOf(() => blockSizeFor(PerToken(), []))).toBe("BAD_SHAPE");
  });
});

describe("blockLayout", () => {
  it("gives torchao's reduced qparam shapes", () => {
    expect(blockLayout([3, 3, 10, 10], [3, 3, 2, 10], "t").qparamShape).toEqual([5]);
    expect(blockLayout([3, 3, 10, 10], [1, 3, 10, 10], "t").qparamShape).toEqual([3]);
    expect(blockLayout([3, 3, 10, 10], [1, 1, 1, 2], "t").qparamShape).toEqual([3, 3, 10, 5]);
    expect(blockLayout([8, 16], [1, 4], "t").qparamShape).toEqual([8, 4]);
    expect(blockLayout([8, 16], [8, 16], "t").qparamShape).toEqual([]);
    expect(blockLayout([8, 16], [8, 16], "t").numBlocks).toBe(1);
  });

  it("enumerates runs that agree with the element-by-element block index", () => {
    const dimBlock = fc.integer({ min: 1, max: 4 }).chain((b) => fc.integer({ min: 1, max: 3 }).map((k) => [b * k, b] as const));
    fc.assert(
      fc.property(fc.array(dimBlock, { minLength: 0, maxLength: 4 }), (dims) => {
        const shape = dims.map(([s]) => s);
        const block = dims.map(([, b]) => b);
        const layout = blockLayout(shape, block, "t");
        const n = shape.reduce((a, s) => a * s, 1);
        const seen = new Int32Array(n).fill(-1);
        let next = 0;
        layout.forEachRun((start, end, b) => {
          expect(start).toBe(next);
          next = end;
          for (let i = start; i < end; i++) seen[i] = b;
        });
        expect(next).toBe(n);
        // naive: block index of element i = row-major index of floor(coord / block) in the block grid
        for (let i = 0; i < n; i++) {
          let rem = i;
          const coord = new Array<number>(shape.length);
          for (let d = shape.length - 1; d >= 0; d--) {
            coord[d] = rem % shape[d]!;
            rem = Math.floor(rem / shape[d]!);
          }
          let idx = 0;
          for (let d = 0; d < shape.length; d++) idx = idx * (shape[d]! / block[d]!) + Math.floor(coord[d]! / block[d]!);
          if (seen[i] !== idx) return false;
        }
        return layout.numBlocks === shape.reduce((a, s, d) => a * (s / block[d]!), 1);
      }),
      { numRuns: 200 },
    );
  });

  it("refuses block sizes that do not divide the shape", () => {
    expect(codeOf(() => blockLayout([6], [4], "t"))).toBe("BAD_CONFIG");
    expect(codeOf(() => blockLayout([6], [0], "t"))).toBe("BAD_CONFIG");
    expect(codeOf(() => blockLayout([6, 2], [6], "t"))).toBe("BAD_CONFIG");
  });
});

describe("chooseQParamsAffine", () => {
  const x = t32([3], [-1, 0.5, 2]);
  const perTensor = [3];

  it("ASYMMETRIC: scale = (max_pos - min_neg) / (qmax - qmin), zp = qmin - round(min_neg / scale)", () => {
    const { scale, zeroPoint } = chooseQParamsAffine(x, { mappingType: MappingType.ASYMMETRIC, blockSize: perTensor, targetDtype: "uint8" });
    expect(scale.dtype).toBe("float32");
    expect(scale.shape).toEqual([]);
    expect(toNumbers(scale)).toEqual([f32(3 / 255)]);
    expect(zeroPoint!.dtype).toBe("int32");
    expect(toNumbers(zeroPoint!)).toEqual([85]);
  });

  it("SYMMETRIC divides by (qmax - qmin) / 2 and puts the zero point at int((qmax + qmin + 1) / 2)", () => {
    const s8 = chooseQParamsAffine(x, { mappingType: MappingType.SYMMETRIC, blockSize: perTensor, targetDtype: "int8" });
    expect(toNumbers(s8.scale)).toEqual([f32(2 / 127.5)]);
    expect(toNumbers(s8.zeroPoint!)).toEqual([0]);
    const u8 = chooseQParamsAffine(x, { mappingType: MappingType.SYMMETRIC, blockSize: perTensor, targetDtype: "uint8" });
    expect(toNumbers(u8.zeroPoint!)).toEqual([128]);
    const i4 = chooseQParamsAffine(x, { mappingType: MappingType.SYMMETRIC, blockSize: perTensor, targetDtype: "int4" });
    expect(toNumbers(i4.scale)).toEqual([f32(2 / 7.5)]);
    const none = chooseQParamsAffine(x, { mappingType: MappingType.SYMMETRIC, blockSize: perTensor, targetDtype: "int8", zeroPointDomain: ZeroPointDomain.NONE });
    expect(none.zeroPoint).toBeNull();
  });

  it("SYMMETRIC_NO_CLIPPING_ERR takes the larger of min_neg / qmin and max_pos / qmax", () => {
    const r = chooseQParamsAffine(x, { mappingType: MappingType.SYMMETRIC_NO_CLIPPING_ERR, blockSize: perTensor, targetDtype: "int8" });
    expect(toNumbers(r.scale)).toEqual([f32(2 / 127)]);
    const neg = chooseQParamsAffine(t32([2], [-4, 1]), { mappingType: MappingType.SYMMETRIC_NO_CLIPPING_ERR, blockSize: [2], targetDtype: "int8" });
    expect(toNumbers(neg.scale)).toEqual([f32(4 / 128)]);
  });

  it("preserveZero=false uses the raw range; FLOAT domain gives min + scale * mid_point", () => {
    const y = t32([2], [1, 3]);
    const raw = chooseQParamsAffine(y, { mappingType: MappingType.ASYMMETRIC, blockSize: [2], targetDtype: "uint4", preserveZero: false });
    expect(toNumbers(raw.scale)).toEqual([f32(2 / 15)]);
    expect(toNumbers(raw.zeroPoint!)).toEqual([0]); // 0 - round(7.5) = -8, clamped to 0
    const fl = chooseQParamsAffine(y, {
      mappingType: MappingType.ASYMMETRIC, blockSize: [2], targetDtype: "uint4", preserveZero: false, zeroPointDomain: ZeroPointDomain.FLOAT,
    });
    const s = f32(2 / 15);
    expect(fl.zeroPoint!.dtype).toBe("float32");
    expect(toNumbers(fl.zeroPoint!)).toEqual([f32(1 + f32(s * 8))]);
  });

  it("clamps the scale to eps and honours scale/zero-point dtypes", () => {
    const zero = chooseQParamsAffine(t32([2], [0, 0]), { mappingType: MappingType.ASYMMETRIC, blockSize: [2], targetDtype: "uint8" });
    expect(toNumbers(zero.scale)).toEqual([2 ** -23]);
    expect(toNumbers(zero.zeroPoint!)).toEqual([0]);
    const custom = chooseQParamsAffine(t32([2], [0, 0]), {
      mappingType: MappingType.ASYMMETRIC, blockSize: [2], targetDtype: "uint8", eps: 1e-3, scaleDtype: "float64", zeroPointDtype: "int64",
    });
    expect(custom.scale.dtype).toBe("float64");
    expect(toNumbers(custom.scale)).toEqual([f32(1e-3)]);
    expect(custom.zeroPoint!.dtype).toBe("int64");
  });

  it("computes one pair per group / token / axis", () => {
    const y = t32([2, 4], [-1, 1, 0, 4, 2, 2, -8, 0]);
    const g = chooseQParamsAffine(y, { mappingType: MappingType.SYMMETRIC, blockSize: [1, 2], targetDtype: "int8" });
    expect(g.scale.shape).toEqual([2, 2]);
    expect(toNumbers(g.scale)).toEqual([1, 4, 2, 8].map((a) => f32(a / 127.5)));
    const tok = chooseQParamsAffine(y, { mappingType: MappingType.SYMMETRIC, blockSize: blockSizeFor(PerToken(), [2, 4]), targetDtype: "int8" });
    expect(toNumbers(tok.scale)).toEqual([4, 8].map((a) => f32(a / 127.5)));
    const ax1 = chooseQParamsAffine(y, { mappingType: MappingType.SYMMETRIC, blockSize: blockSizeFor(PerAxis(1), [2, 4]), targetDtype: "int8" });
    expect(ax1.scale.shape).toEqual([4]);
    expect(toNumbers(ax1.scale)).toEqual([2, 2, 8, 4].map((a) => f32(a / 127.5)));
  });

  it("fp8: scale = amax / finfo.max, no zero point", () => {
    const r = chooseQParamsAffine(t32([3], [-896, 448, 0.5]), { mappingType: MappingType.SYMMETRIC, blockSize: [3], targetDtype: "float8_e4m3fn" });
    expect(toNumbers(r.scale)).toEqual([2]);
    expect(r.zeroPoint).toBeNull();
    const e5 = chooseQParamsAffine(t32([1], [57344 * 4]), { mappingType: MappingType.SYMMETRIC, blockSize: [1], targetDtype: "float8_e5m2" });
    expect(toNumbers(e5.scale)).toEqual([4]);
    expect(codeOf(() => chooseQParamsAffine(x, { mappingType: MappingType.ASYMMETRIC, blockSize: perTensor, targetDtype: "float8_e4m3fn" }))).toBe("BAD_CONFIG");
  });

  it("refuses NaN/Inf, empty and non-float32 inputs and unsupported configurations", () => {
    const opts = { mappingType: MappingType.ASYMMETRIC, blockSize: [2], targetDtype: "uint8" as const };
    expect(codeOf(() => chooseQParamsAffine(t32([2], [NaN, 1]), opts))).toBe("BAD_DATA");
    expect(codeOf(() => chooseQParamsAffine(t32([2], [Infinity, 1]), opts))).toBe("BAD_DATA");
    expect(codeOf(() => chooseQParamsAffine(t32([0], []), { ...opts, blockSize: [0] }))).toBe("BAD_DATA");
    expect(codeOf(() => chooseQParamsAffine(fromArray("float16", [2], [1, 2]), opts))).toBe("UNSUPPORTED");
    expect(codeOf(() => chooseQParamsAffine(t32([2], [1, 2]), { ...opts, targetDtype: "uint16" }))).toBe("BAD_DTYPE");
    expect(codeOf(() => chooseQParamsAffine(t32([2], [1, 2]), { ...opts, quantMin: -1 }))).toBe("BAD_CONFIG");
    expect(codeOf(() => chooseQParamsAffine(t32([2], [1, 2]), { ...opts, mappingType: MappingType.SYMMETRIC, preserveZero: false }))).toBe("BAD_CONFIG");
    expect(codeOf(() => chooseQParamsAffine(t32([2], [1, 2]), { ...opts, mappingType: MappingType.SYMMETRIC, zeroPointDomain: ZeroPointDomain.FLOAT }))).toBe("BAD_CONFIG");
  });
});

describe("chooseQParamsAffineWithMinMax", () => {
  it("matches chooseQParamsAffine on the same statistics", () => {
    const y = t32([2, 4], [-1, 1, 0, 4, 2, 2, -8, 0]);
    const direct = chooseQParamsAffine(y, { mappingType: MappingType.ASYMMETRIC, blockSize: [1, 4], targetDtype: "int4" });
    const mm = chooseQParamsAffineWithMinMax(t32([2], [-1, -8]), t32([2], [4, 2]), { mappingType: MappingType.ASYMMETRIC, targetDtype: "int4" });
    expect(toNumbers(mm.scale)).toEqual(toNumbers(direct.scale));
    expect(toNumbers(mm.zeroPoint!)).toEqual(toNumbers(direct.zeroPoint!));
    expect(codeOf(() => chooseQParamsAffineWithMinMax(t32([1], [0]), t32([2], [1, 2]), { mappingType: MappingType.ASYMMETRIC, targetDtype: "int8" }))).toBe("BAD_SHAPE");
  });
});

describe("quantizeAffine / dequantizeAffine", () => {
  it("INT domain: clamp(round(x * (1 / scale)) + zero_point)", () => {
    const x = t32([5], [0.25, 0.75, -0.25, 100, 200]);
    const q = quantizeAffine(x, [5], t32([], [0.5]), fromArray("int32", [], [3]), "uint8");
    expect(q.dtype).toBe("uint8");
    expect(toNumbers(q)).toEqual([3, 5, 3, 203, 255]);
    const d = dequantizeAffine(q, [5], t32([], [0.5]), fromArray("int32", [], [3]), "uint8");
    expect(toNumbers(d)).toEqual([0, 1, 0, 100, 126]);
  });

  it("FLOAT domain: round((x - (zp - scale * mid)) / scale), dequantize (q - mid) * scale + zp", () => {
    const x = t32([4], [0, -3, 4.5, 5]);
    const scale = t32([1], [0.5]);
    const zp = t32([1], [1]);
    const q = quantizeAffine(x, [4], scale, zp, "uint4", undefined, undefined, ZeroPointDomain.FLOAT);
    expect(toNumbers(q)).toEqual([6, 0, 15, 15]);
    const d = dequantizeAffine(q, [4], scale, zp, "uint4", undefined, undefined, ZeroPointDomain.FLOAT);
    expect(toNumbers(d)).toEqual([0, -3, 4.5, 4.5]);
  });

  it("NONE domain: round(x / scale) with no zero point", () => {
    const q = quantizeAffine(t32([3], [1, -1.25, 1000]), [3], t32([], [0.5]), null, "int8", undefined, undefined, ZeroPointDomain.NONE);
    expect(toNumbers(q)).toEqual([2, -2, 127]);
    expect(toNumbers(dequantizeAffine(q, [3], t32([], [0.5]), null, "int8", undefined, undefined, ZeroPointDomain.NONE))).toEqual([1, -1, 63.5]);
  });

  it("per-group int4 with packed storage round-trips within scale / 2", () => {
    const values = Array.from({ length: 32 }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 8)));
    const x = t32([2, 16], values);
    const block = blockSizeFor(PerGroup(8), x.shape);
    const { scale, zeroPoint } = chooseQParamsAffine(x, { mappingType: MappingType.ASYMMETRIC, blockSize: block, targetDtype: "uint4" });
    const q = quantizeAffine(x, block, scale, zeroPoint, "uint4");
    expect(q.dtype).toBe("uint4");
    expect(q.data.length).toBe(16);
    const d = dequantizeAffine(q, block, scale, zeroPoint, "uint4");
    const s = toNumbers(scale);
    toNumbers(d).forEach((v, i) => {
      expect(Math.abs(v - f32(values[i]!))).toBeLessThanOrEqual(s[Math.floor(i / 8)]! / 2 + 1e-6);
    });
  });

  it("fp8: clamp(x / scale) cast with round-to-nearest-even, dequantize fp8 * scale", () => {
    const x = t32([4], [-896, 3, 1000, 0.3]);
    const scale = t32([], [2]);
    const q = quantizeAffine(x, [4], scale, null, "float8_e4m3fn");
    expect(q.dtype).toBe("float8_e4m3fn");
    // 3 / 2 = 1.5 exact; 1000 / 2 = 500 clamps to 448; 0.15 rounds to the nearest e4m3 value 0.15625
    expect(toNumbers(q)).toEqual([-448, 1.5, 448, 0.15625]);
    expect(toNumbers(dequantizeAffine(q, [4], scale, null, "float8_e4m3fn"))).toEqual([-896, 3, 896, 0.3125]);
    expect(codeOf(() => quantizeAffine(x, [4], scale, fromArray("int32", [], [0]), "float8_e4m3fn", undefined, undefined, ZeroPointDomain.INT))).toBe("BAD_CONFIG");
  });

  it("dequantizes to bfloat16 with per-op rounding", () => {
    const q = fromArray("int8", [2], [3, -100]);
    const d = dequantizeAffine(q, [2], t32([], [f32(0.1)]), fromArray("int32", [], [0]), "int8", undefined, undefined, ZeroPointDomain.INT, "bfloat16");
    expect(d.dtype).toBe("bfloat16");
    expect(toNumbers(d)).toEqual([0.30078125, -10]);
  });

  it("refuses NaN inputs, mismatched qparams and dtype mismatches", () => {
    const x = t32([2], [NaN, 1]);
    expect(codeOf(() => quantizeAffine(x, [2], t32([], [1]), fromArray("int32", [], [0]), "int8"))).toBe("BAD_DATA");
    expect(codeOf(() => quantizeAffine(t32([2], [1, 2]), [1], t32([], [1]), null, "int8", undefined, undefined, ZeroPointDomain.NONE))).toBe("BAD_SHAPE");
    expect(codeOf(() => quantizeAffine(t32([2], [1, 2]), [2], t32([], [1]), null, "int8", undefined, undefined, ZeroPointDomain.FLOAT))).toBe("BAD_CONFIG");
    expect(codeOf(() => dequantizeAffine(fromArray("int8", [2], [1, 2]), [2], t32([], [1]), null, "uint8"))).toBe("DTYPE_MISMATCH");
    expect(rint(0.5)).toBe(0);
  });
});
