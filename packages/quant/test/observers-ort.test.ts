import { describe, expect, it } from "vitest";
import { isQforgeError, toNumbers } from "@qforge/ir";
import { EntropyObserver, MinMaxObserver, PercentileObserver, qparamsFromMinMax, type Observer } from "../src/observers/index.js";
import { arangeF32, histogramUniform, linspaceF32 } from "../src/observers/ort-histogram.js";
import { f32, vec } from "./helpers.js";


interface OrtCase {
  data: string;
  method: "percentile" | "entropy";
  symmetric: boolean;
  numBins: number;
  percentile?: number;
  numQuantizedBins?: number;
  /** The range ORT's collector picks, and the final histogram's bin count (and counts when short). */
  range: [number, number];
  bins: number;
  hist?: number[];
}

// Expected values: onnxruntime/python/tools/quantization/calibrate.py HistogramCollector logic
// (collect_value / collect_absolute_value / merge_histogram / compute_percentile /
// get_entropy_threshold) run on numpy 2.4 for these batches (values on a 1/64 grid, exact in float32).
const DATA: Record<string, number[][]> = {"growing": [[0.515625, 0.828125, 0.578125, -0.484375, -0.703125, 0.03125, 0.4375, 0.25, 0.90625, 0.375, 0.3125, -0.359375, -0.546875, 0.75, 0.03125, 0.40625, -0.6875, -0.21875, -0.640625, -0.390625, 0.453125, -0.734375, -0.265625, 0.078125], [-1.34375, -0.5, -0.4375, 0.84375, -0.859375, 0.546875, 0.109375, 0.84375, 0.453125, 3.3125, -1.328125, 2.390625, -0.8125, -1.921875, 2.421875, -0.875, -0.78125, -2.78125, -4.203125, 1.265625, -2.328125, 1.5625, 3.703125, -0.234375], [-1.125, 0.390625, 0.765625, -0.265625, 0.015625, 1.328125, 1.265625, 0.703125, -0.859375, -0.046875, 0.609375, -0.21875, -0.609375, -0.765625, -0.625, -0.671875, -0.453125, 1.140625, -0.796875, 0.890625, 0.421875, 0.140625, -0.828125, -0.453125]], "skewed": [[2.0, 1.53125, 1.640625, 1.671875, 1.765625, 1.4375, 1.34375, 1.484375, 1.4375, 1.703125, 1.546875, 1.5625, 1.53125, 1.8125, 1.359375, 1.375, 1.71875, 1.46875, 1.59375, 1.3125, 1.5, 1.609375, 1.171875, 1.328125, -6.0], [2.21875, 3.125, 2.234375, 1.96875, 1.578125, 2.203125, 0.75, 1.96875, 1.828125, 1.734375, 3.15625, 0.765625, 1.984375, 2.03125, 2.234375, 1.203125, 1.765625, 1.25, 1.9375, 2.09375, 2.078125, 1.90625, 2.09375, 2.09375]], "relu": [[0.40625, 0.03125, 0.0, 0.0, 0.34375, 0.0, 0.0, 0.109375, 0.0, 0.890625, 0.515625, 0.0, 0.109375, 0.0, 0.0, 0.0, 0.0, 0.0, 0.25, 1.03125, 0.40625, 1.890625, 1.53125, 0.0], [0.0, 0.0, 0.09375, 0.0, 0.609375, 0.75, 0.0, 0.953125, 0.0, 1.0625, 0.5625, 0.0, 1.984375, 0.890625, 0.03125, 0.25, 2.421875, 1.421875, 0.953125, 0.21875, 0.5625, 0.15625, 0.0, 0.890625]]};
const CASES: OrtCase[] = [
  {"data": "growing", "method": "percentile", "symmetric": false, "numBins": 2048, "range": [-4.203125, 3.702880859375], "bins": 9500, "percentile": 99.999},
  {"data": "growing", "method": "percentile", "symmetric": true, "numBins": 2048, "range": [-4.202880859375, 3.703125], "bins": 9765, "percentile": 99.999},
  {"data": "growing", "method": "percentile", "symmetric": false, "numBins": 32, "range": [-1.92578125, 2.37890625], "bins": 150, "percentile": 90.0},
  {"data": "growing", "method": "percentile", "symmetric": true, "numBins": 16, "range": [-1.125, 1.125], "bins": 77, "percentile": 80.0},
  {"data": "growing", "method": "entropy", "symmetric": false, "numBins": 128, "range": [-2.78955078125, 2.8037109375], "bins": 594, "numQuantizedBins": 128},
  {"data": "growing", "method": "entropy", "symmetric": false, "numBins": 64, "range": [-1.359375, 1.3876953125], "bins": 298, "numQuantizedBins": 8},
  {"data": "skewed", "method": "percentile", "symmetric": false, "numBins": 2048, "range": [-6.0, 3.15234375], "bins": 2048, "percentile": 99.999},
  {"data": "skewed", "method": "percentile", "symmetric": true, "numBins": 2048, "range": [-5.997642517089844, 3.15625], "bins": 2048, "percentile": 99.999},
  {"data": "skewed", "method": "percentile", "symmetric": false, "numBins": 32, "range": [0.75, 1.875], "bins": 32, "percentile": 90.0, "hist": [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 12, 17, 15, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]},
  {"data": "skewed", "method": "percentile", "symmetric": true, "numBins": 16, "range": [-2.0771484375, 2.0771484375], "bins": 16, "percentile": 80.0, "hist": [11, 16, 9, 8, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1]},
  {"data": "skewed", "method": "entropy", "symmetric": false, "numBins": 128, "range": [-6.0, 3.15625], "bins": 128, "numQuantizedBins": 128},
  {"data": "skewed", "method": "entropy", "symmetric": false, "numBins": 64, "range": [-4.3125, 3.15625], "bins": 64, "numQuantizedBins": 8},
  {"data": "relu", "method": "percentile", "symmetric": false, "numBins": 2048, "range": [0.0, 2.4205169677734375], "bins": 2624, "percentile": 99.999},
  {"data": "relu", "method": "percentile", "symmetric": true, "numBins": 2048, "range": [0.0, 2.4214401245117188], "bins": 2624, "percentile": 99.999},
  {"data": "relu", "method": "percentile", "symmetric": false, "numBins": 32, "range": [0.0, 1.7724609375], "bins": 42, "percentile": 90.0},
  {"data": "relu", "method": "percentile", "symmetric": true, "numBins": 16, "range": [0.0, 0.8271484375], "bins": 21, "percentile": 80.0, "hist": [24, 2, 3, 2, 3, 1, 1, 3, 4, 0, 0, 0, 2, 0, 0, 1, 1, 0, 0, 0, 1]},
  {"data": "relu", "method": "entropy", "symmetric": false, "numBins": 128, "range": [0.0, 1.920166015625], "bins": 164, "numQuantizedBins": 128},
  {"data": "relu", "method": "entropy", "symmetric": false, "numBins": 64, "range": [0.0, 2.18603515625], "bins": 82, "numQuantizedBins": 8},
];


function build(c: OrtCase): PercentileObserver | EntropyObserver {
  return c.method === "percentile"
    ? new PercentileObserver({ numBins: c.numBins, percentile: c.percentile!, symmetric: c.symmetric })
    : new EntropyObserver({ numBins: c.numBins, numQuantizedBins: c.numQuantizedBins! });
}

describe("ONNX Runtime calibrators match ORT's HistogramCollector (numpy 2 float32 arithmetic)", () => {
  it.each(CASES.map((c) => [`${c.method} ${c.symmetric ? "symmetric " : ""}bins=${c.numBins} on ${c.data}`, c] as const))("%s", (_name, c) => {
    const o = build(c);
    for (const batch of DATA[c.data]!) o.observe(vec(batch));
    expect(o.calibratedRange()).toEqual({ min: f32(c.range[0]), max: f32(c.range[1]) });
    const h = o.histogram!;
    expect(h.hist.length).toBe(c.bins);
    if (c.hist) expect(Array.from(h.hist)).toEqual(c.hist);
    // qparams: the min/max formula of the configured dtype/qscheme on that range
    const q = o.calculateQParams();
    const ref = qparamsFromMinMax("ref", [Math.min(f32(c.range[0]), 0)], [Math.max(f32(c.range[1]), 0)], o.config);
    expect(toNumbers(q.scale)).toEqual(toNumbers(ref.scale));
    expect(toNumbers(q.zeroPoint)).toEqual(toNumbers(ref.zeroPoint));
  });
});

describe("numpy helpers", () => {
  it("linspace in float32 ends exactly at stop", () => {
    const e = linspaceF32(-1, f32(0.3), 7);
    expect(e[0]).toBe(-1);
    expect(e[6]).toBe(f32(0.3));
    expect(e[3]).toBe(f32(f32(3 * f32(f32(f32(0.3) + 1) / 6)) - 1));
  });

  it("np.histogram expands an empty range by 0.5 on each side and closes the last bin", () => {
    const { hist, edges } = histogramUniform("t", Float32Array.of(2, 2, 2), 4, 2, 2);
    expect([edges[0], edges[4]]).toEqual([1.5, 2.5]);
    expect(Array.from(hist)).toEqual([0, 0, 3, 0]);
    const closed = histogramUniform("t", Float32Array.of(0, 1, 1), 2, 0, 1).hist;
    expect(Array.from(closed)).toEqual([1, 2]);
  });

  it("np.arange of float32 scalars: float32 length and second element, float64 fill", () => {
    const a = arangeF32(f32(2.5), f32(3), f32(0.1));
    expect(a.length).toBe(Math.ceil(f32(f32(f32(3) - f32(2.5)) / f32(0.1))));
    expect(a[1]).toBe(f32(f32(2.5) + f32(0.1)));
    expect(a[3]).toBe(f32(2.5) + 3 * (f32(f32(2.5) + f32(0.1)) - f32(2.5)));
  });
});

describe("PercentileObserver / EntropyObserver", () => {
  it("use ORT's defaults: 2048 bins at 99.999 (asymmetric) and 128/128 bins", () => {
    const p = new PercentileObserver();
    expect([p.numBins, p.percentile, p.symmetric]).toEqual([2048, 99.999, false]);
    const e = new EntropyObserver();
    expect([e.numBins, e.numQuantizedBins]).toEqual([128, 128]);
  });

  it("with 128/128 bins entropy keeps the full observed range, like MinMax", () => {
    const values = [-3.25, 0.5, 1, 2, 7.75, -0.125];
    const e = new EntropyObserver();
    const m = new MinMaxObserver();
    for (const o of [e, m] as Observer[]) o.observe(vec(values));
    expect(e.calibratedRange()).toEqual({ min: -3.25, max: 7.75 });
    expect(toNumbers(e.calculateQParams().scale)).toEqual(toNumbers(m.calculateQParams().scale));
  });

  it("a low percentile cuts outliers", () => {
    const values = [...Array.from({ length: 999 }, (_, i) => (i % 21) / 10 - 1), 500];
    const p = new PercentileObserver({ percentile: 99 });
    p.observe(vec(values));
    const r = p.calibratedRange()!;
    expect(r.max).toBeLessThan(2);
    expect(r.min).toBeGreaterThanOrEqual(-1);
  });

  it("refuses invalid percentiles and bin counts", () => {
    for (const make of [
      () => new PercentileObserver({ percentile: 100.5 }),
      () => new PercentileObserver({ numBins: 0 }),
      () => new EntropyObserver({ numBins: 16, numQuantizedBins: 64 }),
      () => new PercentileObserver({ qscheme: "per_channel_affine" }),
    ]) {
      let err: unknown;
      try {
        make();
      } catch (e) {
        err = e;
      }
      expect(isQforgeError(err, "BAD_CONFIG")).toBe(true);
    }
  });

  it("merge folds histograms: same-grid histograms add exactly, wider ones grow the grid", () => {
    const a = new PercentileObserver({ numBins: 16, percentile: 100 });
    const b = new PercentileObserver({ numBins: 16, percentile: 100 });
    a.observe(vec([-2, -1, 0, 1, 2]));
    b.observe(vec([-2, 0.5, 2, 1.5]));
    const sum = (o: PercentileObserver): number => Array.from(o.histogram!.hist).reduce((x, y) => x + y, 0);
    const both = new PercentileObserver({ numBins: 16, percentile: 100 });
    both.observe(vec([-2, -1, 0, 1, 2]));
    both.observe(vec([-2, 0.5, 2, 1.5]));
    a.merge(b);
    expect(a.histogram!.hist).toEqual(both.histogram!.hist); // same threshold: exact
    const wide = new PercentileObserver({ numBins: 16, percentile: 100 });
    wide.observe(vec([-10, 10]));
    a.merge(wide);
    expect(sum(a)).toBeCloseTo(11, 9);
    expect(a.calibratedRange()).toEqual({ min: -10, max: 10 });
    const abs = new PercentileObserver({ numBins: 8, symmetric: true, percentile: 100 });
    const abs2 = new PercentileObserver({ numBins: 8, symmetric: true, percentile: 100 });
    abs.observe(vec([0.5, -1, 2]));
    abs2.observe(vec([-6, 0.75]));
    abs.merge(abs2);
    expect(sum(abs)).toBeCloseTo(5, 9);
    // [-e, e] with e the left edge of the |x| bin where the cdf reaches 100 % (the bin holding 6),
    // then clipped to the real data range [-6, 2]
    const r = abs.calibratedRange()!;
    expect(r.min).toBeGreaterThan(-6);
    expect(r.min).toBeLessThan(-5);
    expect(r.max).toBe(2);
  });
});
