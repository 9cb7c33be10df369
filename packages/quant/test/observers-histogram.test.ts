import { describe, expect, it } from "vitest";
import { isQforgeError, toNumbers } from "@qforge/ir";
import { HistogramObserver, qparamsFromMinMax } from "../src/observers/index.js";
import { torchCumsumF32, torchSumF32 } from "../src/observers/torch-sum.js";
import { histcAccumulate, histcEdges } from "../src/observers/histc.js";
import { vec } from "./helpers.js";

const sum = (xs: ArrayLike<number>): number => Array.from(xs).reduce((a, b) => a + b, 0);

describe("ATen summation order (torch-sum.ts)", () => {
  it("torch.sum adds 8 SIMD lanes separately: [2^24, 1 x 15] sums to 2^24 + 14, not 2^24", () => {
    const x = new Float32Array(16).fill(1);
    x[0] = 2 ** 24;
    expect(torchSumF32(x)).toBe(2 ** 24 + 14);
    // a sequential float32 loop would lose every 1
    let seq = 0;
    for (const v of x) seq = Math.fround(seq + v);
    expect(seq).toBe(2 ** 24);
  });

  it("sums short vectors on the scalar path and integer data exactly", () => {
    expect(torchSumF32([])).toBe(0);
    expect(torchSumF32([1.5, 2.25, -1])).toBe(2.75);
    const ints = Float32Array.from({ length: 2048 }, (_, i) => (i * 37) % 101);
    expect(torchSumF32(ints)).toBe(sum(ints));
  });

  it("torch.cumsum accumulates in double and stores float32", () => {
    const out = new Float32Array(3);
    torchCumsumF32([2 ** 24, 1, 1], out);
    expect(Array.from(out)).toEqual([2 ** 24, 2 ** 24, 2 ** 24 + 2]);
  });
});

describe("torch.histc as HistogramObserver calls it", () => {
  it("bins by trunc(f32(f32(f32(x - lo) * bins) / f32(hi - lo))), last bin closed, outside values skipped", () => {
    const h = new Float32Array(4);
    const counted = histcAccumulate(h, Float32Array.of(-0.5, 0, 0.49, 0.5, 1.99, 2, 2.5), 0, 2);
    expect(counted).toBe(5);
    expect(Array.from(h)).toEqual([2, 1, 0, 2]);
  });

  it("falls back to the data's range when min == max, widened by 1 when that is empty too", () => {
    expect(histcEdges(8, 0, 0, -0.25, 0.75)).toEqual({ lo: -0.25, hi: 0.75 });
    expect(histcEdges(8, 3, 3, 3, 3)).toEqual({ lo: 2, hi: 4 });
  });
});

describe("HistogramObserver (PyTorch 1.13)", () => {
  it("truncates the histc bounds to integers: values beyond trunc(min)..trunc(max) are not counted", () => {
    const o = new HistogramObserver({ bins: 8 });
    o.observe(vec([-0.5, 0.3, 1.7, 2.9]));
    const s = o.state();
    expect([s.minVal, s.maxVal]).toEqual([-0.5, Math.fround(2.9)]);
    expect(sum(s.histogram)).toBe(2); // 0.3 and 1.7 only: histc over [0, 2]
  });

  it("uses the batch's own range when both bounds truncate to the same integer", () => {
    const o = new HistogramObserver({ bins: 8 });
    o.observe(vec([-0.5, 0.3, 0.9]));
    expect(sum(o.state().histogram)).toBe(3);
  });

  it("restarts the histogram when every earlier batch was constant", () => {
    const o = new HistogramObserver({ bins: 16 });
    o.observe(vec([1.5, 1.5, 1.5]));
    o.observe(vec([0, 1, 2, 3]));
    const fresh = new HistogramObserver({ bins: 16 });
    fresh.observe(vec([0, 1, 2, 3]));
    expect(o.state()).toEqual(fresh.state());
  });

  it("re-bins the old histogram when the range grows, keeping its mass", () => {
    const o = new HistogramObserver({ bins: 32 });
    o.observe(vec([0, 1, 1.5, 2, 3, 4]));
    const before = sum(o.state().histogram);
    o.observe(vec([-8, 0.5, 9]));
    const s = o.state();
    expect(s.minVal).toBe(-8);
    expect(s.maxVal!).toBeGreaterThanOrEqual(9); // _adjust_min_max stretches the max
    expect(sum(s.histogram)).toBeCloseTo(before + 3, 4);
  });

  it("calculateQParams is the min/max formula applied to the search's range", () => {
    const o = new HistogramObserver({ bins: 64, dtype: "qint8", qscheme: "per_tensor_symmetric" });
    const values = Array.from({ length: 500 }, (_, i) => Math.sin(i * 0.37) * 2 + (i === 7 ? 40 : 0));
    o.observe(vec(values));
    const r = o.nonLinearParamSearch();
    expect(r.trace.length).toBeGreaterThan(0);
    expect(r.startBin).toBeLessThanOrEqual(r.endBin);
    // the outlier at 40 is cut off
    expect(r.newMax).toBeLessThan(40);
    const q = o.calculateQParams();
    const ref = qparamsFromMinMax("x", [r.newMin], [r.newMax], o.config);
    expect(toNumbers(q.scale)).toEqual(toNumbers(ref.scale));
    expect(toNumbers(q.zeroPoint)).toEqual(toNumbers(ref.zeroPoint));
  });

  it("targets 256 destination bins whatever the 8-bit range", () => {
    expect(new HistogramObserver({ quantMin: 0, quantMax: 15 }).dstNbins).toBe(256);
    expect(new HistogramObserver({ dtype: "qint8", reduceRange: true }).dstNbins).toBe(256);
  });

  it("refuses bad settings and ranges float32 cannot re-bin", () => {
    expect(() => new HistogramObserver({ bins: 0 })).toThrow(/bins/);
    expect(() => new HistogramObserver({ upsampleRate: 1.5 })).toThrow(/upsampleRate/);
    // PyTorch 1.13 accepts symmetric quint8 with reduce_range here (unlike MinMaxObserver)
    const odd = new HistogramObserver({ qscheme: "per_tensor_symmetric", reduceRange: true });
    odd.observe(vec([-1, 1]));
    expect([odd.quantMax, toNumbers(odd.calculateQParams().zeroPoint)[0]]).toEqual([127, 128]);
    const o = new HistogramObserver();
    o.observe(vec([1e-45, 3e-45]));
    let err: unknown;
    try {
      o.observe(vec([0, 1]));
    } catch (e) {
      err = e;
    }
    expect(isQforgeError(err, "BAD_DATA")).toBe(true);
  });

  it("merge folds the other histogram in and copies it into an empty observer", () => {
    const a = new HistogramObserver({ bins: 64 });
    const b = new HistogramObserver({ bins: 64 });
    a.observe(vec([-1, -0.5, 0, 0.5, 1, 1.5, 2]));
    b.observe(vec([-3, -2, 5, 6]));
    const empty = new HistogramObserver({ bins: 64 });
    empty.merge(b);
    expect(empty.state()).toEqual(b.state());
    const massA = sum(a.state().histogram);
    const massB = sum(b.state().histogram);
    expect([massA, massB]).toEqual([7, 4]);
    a.merge(b);
    const s = a.state();
    expect(s.minVal).toBe(-3);
    expect(s.maxVal!).toBeGreaterThanOrEqual(6);
    expect(sum(s.histogram)).toBeCloseTo(massA + massB, 4);
    expect(() => a.merge(new HistogramObserver({ bins: 32 }) as never)).toThrow(/bins differ/);
  });
});
