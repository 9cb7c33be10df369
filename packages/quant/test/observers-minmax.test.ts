import { describe, expect, it } from "vitest";
import { tensor, toNumbers } from "@qforge/ir";
import {
  MinMaxObserver,
  MovingAverageMinMaxObserver,
  MovingAveragePerChannelMinMaxObserver,
  PerChannelMinMaxObserver,
  HistogramObserver,
  PercentileObserver,
  EntropyObserver,
  AffineQuantizedMinMaxObserver,
  createObserver,
  type Observer,
} from "../src/observers/index.js";
import { expectCode, f32, t32 } from "./helpers.js";

const qp = (o: Observer): { scale: number[]; zp: number[] } => {
  const q = o.calculateQParams();
  return { scale: toNumbers(q.scale), zp: toNumbers(q.zeroPoint) };
};

describe("MinMaxObserver qparams (observer.py _calculate_qparams, float32)", () => {
  it("affine quint8: scale = (max - min) / 255, zero point = 0 - rint(min / scale)", () => {
    const o = new MinMaxObserver();
    o.observe(t32([4], [-1, 0.5, 2, 1]));
    const scale = f32(f32(2 - -1) / 255);
    expect(qp(o)).toEqual({ scale: [scale], zp: [0 - Math.round(f32(-1 / scale))] });
    expect(qp(o).zp).toEqual([85]);
  });

  it("symmetric divides by 127.5 and uses zero point 128 for quint8, 0 for qint8", () => {
    const data = t32([3], [-3, 1, 2]);
    const u = new MinMaxObserver({ qscheme: "per_tensor_symmetric" });
    const s = new MinMaxObserver({ qscheme: "per_tensor_symmetric", dtype: "qint8" });
    u.observe(data);
    s.observe(data);
    expect(qp(u)).toEqual({ scale: [f32(3 / 127.5)], zp: [128] });
    expect(qp(s)).toEqual({ scale: [f32(3 / 127.5)], zp: [0] });
  });

  it("a customized symmetric quint8 range takes the down-rounded midpoint as zero point", () => {
    const o = new MinMaxObserver({ qscheme: "per_tensor_symmetric", quantMin: 0, quantMax: 15 });
    o.observe(t32([2], [-1, 1]));
    expect(qp(o)).toEqual({ scale: [f32(1 / 7.5)], zp: [7] });
  });

  it("zero point ties round half to even", () => {
    // min_neg / scale = -0.5 * k exactly: scale = 1 (range 255), min = -2.5 -> rint(-2.5) = -2
    const o = new MinMaxObserver();
    o.observe(t32([2], [-2.5, 252.5]));
    expect(qp(o)).toEqual({ scale: [1], zp: [2] });
    const p = new MinMaxObserver();
    p.observe(t32([2], [-3.5, 251.5]));
    expect(qp(p)).toEqual({ scale: [1], zp: [4] });
  });

  it("the range always includes 0 and the scale is at least eps", () => {
    const pos = new MinMaxObserver();
    pos.observe(t32([2], [2, 4]));
    expect(qp(pos)).toEqual({ scale: [f32(4 / 255)], zp: [0] });
    const zero = new MinMaxObserver({ eps: 2 ** -12 });
    zero.observe(t32([3], [0, 0, 0]));
    expect(qp(zero)).toEqual({ scale: [2 ** -12], zp: [0] });
  });

  it("reduce_range halves the 8-bit ranges, floor-dividing a custom range", () => {
    expect(new MinMaxObserver({ reduceRange: true }).quantMax).toBe(127);
    const q = new MinMaxObserver({ dtype: "qint8", reduceRange: true });
    expect([q.quantMin, q.quantMax]).toEqual([-64, 63]);
    const c = new MinMaxObserver({ dtype: "qint8", quantMin: -127, quantMax: 127, reduceRange: true });
    expect([c.quantMin, c.quantMax]).toEqual([-64, 63]);
    const i32 = new MinMaxObserver({ dtype: "qint32", qscheme: "per_tensor_symmetric" });
    expect([i32.quantMin, i32.quantMax]).toEqual([-(2 ** 31), 2 ** 31 - 1]);
  });

  it("accepts the plain integer dtype names as aliases", () => {
    const a = new MinMaxObserver({ dtype: "int8", qscheme: "per_tensor_symmetric" });
    const b = new MinMaxObserver({ dtype: "qint8", qscheme: "per_tensor_symmetric" });
    for (const o of [a, b]) o.observe(t32([3], [-1.25, 0.5, 3]));
    expect(qp(a)).toEqual(qp(b));
    expect(a.config.dtype).toBe("qint8");
    expect(new MinMaxObserver({ dtype: "uint8" }).config.dtype).toBe("quint8");
  });
});

describe("configurations PyTorch refuses are refused at construction (BAD_CONFIG)", () => {
  it("symmetric quint8 with reduce_range", () => {
    expectCode(() => new MinMaxObserver({ qscheme: "per_tensor_symmetric", reduceRange: true }), "BAD_CONFIG", /Cannot reduce range for symmetric quantization for quint8/);
    expectCode(
      () => new PerChannelMinMaxObserver({ qscheme: "per_channel_symmetric", reduceRange: true }),
      "BAD_CONFIG",
      /Cannot reduce range for symmetric quantization for quint8/,
    );
    expectCode(() => new MovingAverageMinMaxObserver({ qscheme: "per_tensor_symmetric", reduceRange: true }), "BAD_CONFIG");
    // qint8 is fine
    expect(() => new MinMaxObserver({ qscheme: "per_tensor_symmetric", reduceRange: true, dtype: "qint8" })).not.toThrow();
  });

  it("a custom range that excludes 0, or is empty", () => {
    expectCode(() => new MinMaxObserver({ quantMin: 1, quantMax: 15 }), "BAD_CONFIG", /must include 0/);
    expectCode(() => new MinMaxObserver({ quantMin: -5, quantMax: -1, dtype: "qint8" }), "BAD_CONFIG", /must include 0/);
    expectCode(() => new MinMaxObserver({ quantMin: 0, quantMax: 0 }), "BAD_CONFIG", /strictly less/);
  });

  it("a qint8 range longer than 256 values", () => {
    expectCode(() => new MinMaxObserver({ dtype: "qint8", quantMin: -200, quantMax: 100 }), "BAD_CONFIG", /maximum bit range \(=256\)/);
  });

  it("a qscheme of the wrong family, an unknown qscheme or dtype, a lone bound", () => {
    expectCode(() => new MinMaxObserver({ qscheme: "per_channel_affine" }), "BAD_CONFIG", /per_tensor/);
    expectCode(() => new PerChannelMinMaxObserver({ qscheme: "per_tensor_affine" }), "BAD_CONFIG", /per_channel/);
    expectCode(() => new MinMaxObserver({ qscheme: "per_row" as never }), "BAD_CONFIG");
    expectCode(() => new MinMaxObserver({ dtype: "float16" as never }), "BAD_CONFIG", /data type/);
    expectCode(() => new MinMaxObserver({ quantMin: 0 }), "BAD_CONFIG", /together/);
  });
});

/** Every observer that derives qparams from statistics, freshly built. */
function statisticsObservers(): Observer[] {
  return [
    new MinMaxObserver(),
    new MovingAverageMinMaxObserver(),
    new PerChannelMinMaxObserver(),
    new MovingAveragePerChannelMinMaxObserver(),
    new HistogramObserver({ bins: 64 }),
    new PercentileObserver({ numBins: 64 }),
    new EntropyObserver(),
    new AffineQuantizedMinMaxObserver({ mappingType: "asymmetric", targetDtype: "uint8", granularity: { kind: "per_tensor" } }),
  ];
}

describe("defined behaviour on bad and missing data", () => {
  it.each([NaN, Infinity, -Infinity])("%s in the data throws BAD_DATA naming the observer", (bad) => {
    for (const o of statisticsObservers()) {
      for (const pos of [0, 3, 5]) {
        const values = [0.5, -1, 2, 0.25, 1, 3];
        values[pos] = bad;
        expectCode(() => o.observe(t32([2, 3], values)), "BAD_DATA", new RegExp(o.kind));
      }
    }
  });

  it("no data at all gives scale 1.0 and zero point 0 (shape [1])", () => {
    for (const o of statisticsObservers()) {
      const q = o.calculateQParams();
      expect(q.scale.shape).toEqual([1]);
      expect(toNumbers(q.scale)).toEqual([1]);
      expect(toNumbers(q.zeroPoint)).toEqual([0]);
    }
  });

  it("empty batches are ignored, before and after real data", () => {
    for (const make of [() => statisticsObservers()]) {
      const withEmpty = make();
      const without = make();
      withEmpty.forEach((o, i) => {
        o.observe(tensor("float32", [0, 3], new Float32Array(0)));
        expect(toNumbers(o.calculateQParams().scale)).toEqual([1]);
        o.observe(t32([2, 3], [0.5, -1, 2, 0.25, 1, 3]));
        o.observe(tensor("float32", [2, 0], new Float32Array(0)));
        without[i]!.observe(t32([2, 3], [0.5, -1, 2, 0.25, 1, 3]));
        expect(o.state()).toEqual(without[i]!.state());
      });
    }
  });

  it("a failed observation leaves the statistics untouched", () => {
    const o = new MinMaxObserver();
    o.observe(t32([2], [-1, 1]));
    expect(() => o.observe(t32([2], [NaN, 50]))).toThrow();
    expect(o.range).toEqual({ min: -1, max: 1 });
  });
});

describe("MovingAverageMinMaxObserver", () => {
  it("the first batch sets min/max, later ones move by f32(c) * f32(cur - old) in float32", () => {
    const o = new MovingAverageMinMaxObserver({ averagingConstant: 0.1 });
    o.observe(t32([2], [-1, 1]));
    expect(o.range).toEqual({ min: -1, max: 1 });
    o.observe(t32([2], [-3, 5]));
    const c = f32(0.1);
    expect(o.range).toEqual({ min: f32(-1 + f32(c * f32(-3 - -1))), max: f32(1 + f32(c * f32(5 - 1))) });
  });

  it("merge applies the other observer's min/max as one more batch", () => {
    const a = new MovingAverageMinMaxObserver({ averagingConstant: 0.25 });
    const b = new MovingAverageMinMaxObserver({ averagingConstant: 0.25 });
    const seq = new MovingAverageMinMaxObserver({ averagingConstant: 0.25 });
    a.observe(t32([2], [-2, 2]));
    b.observe(t32([2], [-6, 10]));
    seq.observe(t32([2], [-2, 2]));
    seq.observe(t32([2], [-6, 10]));
    a.merge(b);
    expect(a.state()).toEqual(seq.state());
    const empty = new MovingAverageMinMaxObserver({ averagingConstant: 0.25 });
    empty.merge(b);
    expect(empty.range).toEqual(b.range);
  });
});

describe("PerChannelMinMaxObserver", () => {
  const x = t32([2, 3], [1, -2, 3, -4, 5, 0.5]);

  it("reduces every axis but chAxis (negative axes count from the end)", () => {
    const rows = new PerChannelMinMaxObserver({ chAxis: 0, dtype: "qint8", qscheme: "per_channel_symmetric" });
    const cols = new PerChannelMinMaxObserver({ chAxis: -1, dtype: "qint8", qscheme: "per_channel_symmetric" });
    rows.observe(x);
    cols.observe(x);
    expect(rows.range).toEqual({ min: Float32Array.of(-2, -4), max: Float32Array.of(3, 5) });
    expect(cols.range).toEqual({ min: Float32Array.of(-4, -2, 0.5), max: Float32Array.of(1, 5, 3) });
    expect(qp(cols).scale).toEqual([f32(4 / 127.5), f32(5 / 127.5), f32(3 / 127.5)]);
    expect(qp(cols).zp).toEqual([0, 0, 0]);
  });

  it("works on 4-d activations with the channel axis in the middle", () => {
    const values = Array.from({ length: 2 * 3 * 2 * 2 }, (_, i) => (i % 7) - 3 + Math.floor(i / 4));
    const o = new PerChannelMinMaxObserver({ chAxis: 1 });
    o.observe(t32([2, 3, 2, 2], values));
    const mins: number[] = [];
    const maxs: number[] = [];
    for (let c = 0; c < 3; c++) {
      const vs = values.filter((_, i) => Math.floor(i / 4) % 3 === c);
      mins.push(Math.min(...vs));
      maxs.push(Math.max(...vs));
    }
    expect(o.range).toEqual({ min: Float32Array.from(mins), max: Float32Array.from(maxs) });
  });

  it("per_channel_affine_float_qparams gives a float zero point -min / scale", () => {
    const o = new PerChannelMinMaxObserver({ qscheme: "per_channel_affine_float_qparams" });
    o.observe(t32([2, 2], [1, 3, -2, 2]));
    const q = o.calculateQParams();
    expect(q.zeroPoint.dtype).toBe("float32");
    const s0 = f32(f32(3 - 1) / 255);
    const s1 = f32(f32(2 - -2) / 255);
    expect(toNumbers(q.scale)).toEqual([s0, s1]);
    expect(toNumbers(q.zeroPoint)).toEqual([f32(-1 / s0), f32(2 / s1)]);
  });

  it("refuses a different channel count or an axis out of range", () => {
    const o = new PerChannelMinMaxObserver({ chAxis: 1 });
    o.observe(x);
    expectCode(() => o.observe(t32([3, 2], [1, 2, 3, 4, 5, 6])), "BAD_SHAPE", /channels/);
    expectCode(() => new PerChannelMinMaxObserver({ chAxis: 2 }).observe(x), "BAD_SHAPE", /axis/);
  });

  it("the moving-average variant averages per channel", () => {
    const o = new MovingAveragePerChannelMinMaxObserver({ averagingConstant: 0.5 });
    o.observe(t32([2, 2], [0, 2, -2, 4]));
    o.observe(t32([2, 2], [-4, 6, 0, 0]));
    expect(o.range).toEqual({ min: Float32Array.of(-2, -1), max: Float32Array.of(4, 2) });
  });
});

describe("createObserver", () => {
  it("builds every PyTorch observer by name with the same results as its constructor", () => {
    const a = createObserver("HistogramObserver", { bins: 32, dtype: "qint8", qscheme: "per_tensor_symmetric" });
    const b = new HistogramObserver({ bins: 32, dtype: "qint8", qscheme: "per_tensor_symmetric" });
    for (const o of [a, b]) o.observe(t32([6], [0.1, -3.5, 2.25, 7, 1, 1]));
    expect(qp(a)).toEqual(qp(b));
    expectCode(() => createObserver("NoSuchObserver" as never, {} as never), "BAD_CONFIG", /unknown observer kind/);
  });
});
