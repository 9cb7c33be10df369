import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { fromArray, toNumbers, type Tensor } from "@qforge/ir";
import { AffineQuantizedMinMaxObserver, type AffineQuantizedMinMaxObserverOptions } from "../src/observers/index.js";
import { blockSizeFor, chooseQParamsAffine, MappingType, ZeroPointDomain } from "../src/primitives/index.js";
import { codeOf, f32 } from "./helpers.js";

const x23: Tensor = fromArray("float32", [2, 4], [1, -2, 3, 0.5, -4, 5, 0.25, 8]);

function obs(o: Partial<AffineQuantizedMinMaxObserverOptions>): AffineQuantizedMinMaxObserver {
  return new AffineQuantizedMinMaxObserver({ mappingType: "asymmetric", targetDtype: "uint8", granularity: { kind: "per_tensor" }, ...o });
}

describe("AffineQuantizedMinMaxObserver (torchao)", () => {
  it("reduces min/max per block: shapes follow torchao's block_size / _get_reduction_params", () => {
    const cases: Array<[AffineQuantizedMinMaxObserverOptions["granularity"], number[], number[], number[]]> = [
      [{ kind: "per_tensor" }, [], [-4], [8]],
      [{ kind: "per_axis", axis: 0 }, [2], [-2, -4], [3, 8]],
      [{ kind: "per_axis", axis: -1 }, [4], [-4, -2, 0.25, 0.5], [1, 5, 3, 8]],
      [{ kind: "per_group", groupSize: 2 }, [2, 2], [-2, 0.5, -4, 0.25], [1, 3, 5, 8]],
      [{ kind: "per_token" }, [2], [-2, -4], [3, 8]],
    ];
    for (const [granularity, shape, mins, maxs] of cases) {
      const o = obs({ granularity });
      o.observe(x23);
      expect(o.qparamsShape).toEqual(shape);
      expect(o.range).toEqual({ min: Float32Array.from(mins), max: Float32Array.from(maxs) });
      expect(o.calculateQParams().scale.shape).toEqual(shape);
    }
  });

  it("keeps size-1 dimensions that torchao does not reduce", () => {
    const o = obs({ granularity: { kind: "per_tensor" } });
    o.observe(fromArray("float32", [1, 3], [1, 2, 3]));
    expect(o.qparamsShape).toEqual([1]);
  });

  it("asymmetric uint8: scale = (max_pos - min_neg) / 255, zero point = qmin - rint(min_neg / scale)", () => {
    const o = obs({});
    o.observe(x23);
    const s = f32(f32(8 - -4) / 255);
    const q = o.calculateQParams();
    expect(q.scale.dtype).toBe("float32");
    expect(q.zeroPoint.dtype).toBe("int32");
    expect(toNumbers(q.scale)).toEqual([s]);
    expect(toNumbers(q.zeroPoint)).toEqual([0 - Math.round(f32(-4 / s))]);
  });

  it("symmetric int8: scale = max|x| / 127.5, zero point int((qmax + qmin + 1) / 2) = 0", () => {
    const o = obs({ mappingType: "symmetric", targetDtype: "int8", granularity: { kind: "per_axis", axis: 0 } });
    o.observe(x23);
    const q = o.calculateQParams();
    expect(toNumbers(q.scale)).toEqual([f32(3 / 127.5), f32(8 / 127.5)]);
    expect(toNumbers(q.zeroPoint)).toEqual([0, 0]);
  });

  it("symmetric_no_clipping_err takes the larger of min_neg / qmin and max_pos / qmax", () => {
    const o = obs({ mappingType: "symmetric_no_clipping_err", targetDtype: "int4", granularity: { kind: "per_axis", axis: 0 } });
    o.observe(fromArray("float32", [2, 2], [3, -2, -8, 3]));
    // row 0: max 3 / 7 beats -2 / -8; row 1: -8 / -8 beats 3 / 7
    expect(toNumbers(o.calculateQParams().scale)).toEqual([f32(3 / 7), 1]);
  });

  it("preserveZero=false keeps the observed range; float domain gives min + scale * mid", () => {
    const o = obs({ preserveZero: false, zeroPointDomain: "float", targetDtype: "uint4" });
    o.observe(fromArray("float32", [3], [2, 3, 5]));
    const s = f32(f32(5 - 2) / 15);
    const q = o.calculateQParams();
    expect(toNumbers(q.scale)).toEqual([s]);
    expect(q.zeroPoint.dtype).toBe("float32");
    expect(toNumbers(q.zeroPoint)).toEqual([f32(2 + f32(s * 8))]);
  });

  it("returns the scale in scaleDtype and honours eps and custom ranges", () => {
    const o = obs({ scaleDtype: "float16", eps: 0.5, quantMin: 0, quantMax: 15 });
    o.observe(fromArray("float32", [2], [0, 1]));
    const q = o.calculateQParams();
    expect(q.scale.dtype).toBe("float16");
    expect(toNumbers(q.scale)).toEqual([0.5]);
  });

  it("merge is the block-wise min/max; batches must reduce to the same shape", () => {
    const a = obs({ granularity: { kind: "per_group", groupSize: 2 } });
    const b = obs({ granularity: { kind: "per_group", groupSize: 2 } });
    const both = obs({ granularity: { kind: "per_group", groupSize: 2 } });
    const y = fromArray("float32", [2, 4], [9, -1, 0, 0, 2, 2, -7, 1]);
    a.observe(x23);
    b.observe(y);
    both.observe(x23);
    both.observe(y);
    a.merge(b);
    expect(a.state()).toEqual(both.state());
    expect(codeOf(() => a.observe(fromArray("float32", [4, 4], new Array(16).fill(1))))).toBe("BAD_SHAPE");
    expect(codeOf(() => obs({ granularity: { kind: "per_group", groupSize: 3 } }).observe(x23))).toBe("BAD_SHAPE");
  });

  it("refuses what torchao refuses (at construction)", () => {
    expect(codeOf(() => obs({ targetDtype: "int8", quantMin: -200 }))).toBe("BAD_CONFIG");
    expect(codeOf(() => obs({ targetDtype: "uint4", quantMax: 16 }))).toBe("BAD_CONFIG");
    expect(codeOf(() => obs({ mappingType: "symmetric", preserveZero: false, targetDtype: "int8" }))).toBe("BAD_CONFIG");
    expect(codeOf(() => obs({ mappingType: "symmetric", zeroPointDomain: "float", targetDtype: "int8" }))).toBe("BAD_CONFIG");
    expect(codeOf(() => obs({ targetDtype: "float32" }))).toBe("BAD_DTYPE");
    expect(codeOf(() => obs({ granularity: { kind: "per_group", groupSize: 0 } }))).toBe("BAD_CONFIG");
  });

  it("agrees with the primitives' chooseQParamsAffine on a single batch", () => {
    const granularities: AffineQuantizedMinMaxObserverOptions["granularity"][] = [
      { kind: "per_tensor" },
      { kind: "per_axis", axis: 1 },
      { kind: "per_group", groupSize: 4 },
      { kind: "per_token" },
    ];
    fc.assert(
      fc.property(
        fc.array(fc.float({ noNaN: true, min: f32(-1e4), max: f32(1e4) }), { minLength: 24, maxLength: 24 }),
        fc.constantFrom(...granularities),
        fc.constantFrom<["symmetric" | "asymmetric", "int8" | "uint8" | "int4"]>(["symmetric", "int8"], ["asymmetric", "uint8"], ["asymmetric", "int4"], ["symmetric", "int4"]),
        (values, granularity, [mapping, dtype]) => {
          const input = fromArray("float32", [3, 8], values);
          const o = obs({ mappingType: mapping, targetDtype: dtype, granularity });
          o.observe(input);
          const mine = o.calculateQParams();
          const ref = chooseQParamsAffine(input, {
            mappingType: mapping === "symmetric" ? MappingType.SYMMETRIC : MappingType.ASYMMETRIC,
            blockSize: blockSizeFor(granularity, input.shape),
            targetDtype: dtype,
            zeroPointDomain: ZeroPointDomain.INT,
          });
          expect(toNumbers(mine.scale)).toEqual(toNumbers(ref.scale));
          expect(toNumbers(mine.zeroPoint)).toEqual(toNumbers(ref.zeroPoint!));
        },
      ),
      { numRuns: 200 },
    );
  });
});
