import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { fromArray, isQforgeError, tensorsEqual, toNumbers } from "@qforge/ir";
import {
  AffineQuantizedMinMaxObserver,
  EntropyObserver,
  HistogramObserver,
  loadObserver,
  MinMaxObserver,
  MovingAverageMinMaxObserver,
  MovingAveragePerChannelMinMaxObserver,
  PercentileObserver,
  PerChannelMinMaxObserver,
  type Observer,
  type ObserverState,
  type UniformObserverOptions,
} from "../src/observers/index.js";
import { f32, vec } from "./helpers.js";

const RUNS = 200;

/** float32 values, including subnormals, signed zeros and large magnitudes (but no overflow of max - min). */
const f32Value = fc.float({ noNaN: true, noDefaultInfinity: true, min: f32(-1e30), max: f32(1e30) });
const f32Values = fc.array(f32Value, { minLength: 1, maxLength: 40 });
/** Values on a 1/8 grid: ties, constants and repeated values are common. */
const gridValues = fc.array(fc.integer({ min: -400, max: 400 }).map((i) => i / 8), { minLength: 1, maxLength: 60 });

function sameQParams(a: Observer, b: Observer): void {
  const qa = a.calculateQParams();
  const qb = b.calculateQParams();
  expect(tensorsEqual(qa.scale, qb.scale)).toBe(true);
  expect(tensorsEqual(qa.zeroPoint, qb.zeroPoint)).toBe(true);
}

/** Uniform configurations, including ones PyTorch refuses (the property then skips them). */
const uniformOptions = (perChannel: boolean): fc.Arbitrary<UniformObserverOptions> =>
  fc.record(
    {
      dtype: fc.constantFrom("quint8", "qint8", "qint32", "uint8", "int8"),
      qscheme: perChannel ? fc.constantFrom("per_channel_affine", "per_channel_symmetric") : fc.constantFrom("per_tensor_affine", "per_tensor_symmetric"),
      reduceRange: fc.boolean(),
      range: fc.option(fc.constantFrom([0, 15], [-8, 7], [-127, 127], [0, 255], [-128, 127], [-3, 100]), { nil: undefined }),
      eps: fc.option(fc.constantFrom(2 ** -12, 1e-3), { nil: undefined }),
    },
    { requiredKeys: ["dtype", "qscheme", "reduceRange"] },
  ).map(({ range, ...rest }) => (range ? { ...rest, quantMin: range[0], quantMax: range[1] } : rest) as UniformObserverOptions);

function build<T>(make: () => T): T | null {
  try {
    return make();
  } catch (e) {
    if (isQforgeError(e, "BAD_CONFIG")) return null;
    throw e;
  }
}

describe("merge laws (exact)", () => {
  it("MinMaxObserver: merge(observe(a), observe(b)) == observe(a ++ b)", () => {
    fc.assert(
      fc.property(uniformOptions(false), f32Values, f32Values, (opts, a, b) => {
        const left = build(() => new MinMaxObserver(opts));
        fc.pre(left !== null);
        const right = new MinMaxObserver(opts);
        const both = new MinMaxObserver(opts);
        left!.observe(vec(a));
        right.observe(vec(b));
        both.observe(vec([...a, ...b]));
        left!.merge(right);
        expect(left!.state()).toEqual(both.state());
        sameQParams(left!, both);
      }),
      { numRuns: RUNS },
    );
  });

  it("PerChannelMinMaxObserver: merging batches concatenated along a non-channel axis", () => {
    const batch = (channels: number) =>
      fc.integer({ min: 1, max: 4 }).chain((rows) => fc.array(f32Value, { minLength: rows * channels, maxLength: rows * channels }).map((v) => ({ rows, v })));
    fc.assert(
      fc.property(
        uniformOptions(true),
        fc.integer({ min: 1, max: 5 }).chain((c) => fc.tuple(fc.constant(c), batch(c), batch(c))),
        fc.boolean(),
        (opts, [channels, a, b], lastAxis) => {
          // [rows, C] with chAxis 1 (or -1); concatenation along axis 0
          const o = { ...opts, chAxis: lastAxis ? -1 : 1 };
          const left = build(() => new PerChannelMinMaxObserver(o));
          fc.pre(left !== null);
          const right = new PerChannelMinMaxObserver(o);
          const both = new PerChannelMinMaxObserver(o);
          left!.observe(fromArray("float32", [a.rows, channels], a.v));
          right.observe(fromArray("float32", [b.rows, channels], b.v));
          both.observe(fromArray("float32", [a.rows + b.rows, channels], [...a.v, ...b.v]));
          left!.merge(right);
          expect(left!.state()).toEqual(both.state());
          sameQParams(left!, both);
        },
      ),
      { numRuns: RUNS },
    );
  });
});

describe("state() / loadObserver round trip (through JSON)", () => {
  const observers: Array<[string, () => Observer]> = [
    ["MinMaxObserver", () => new MinMaxObserver({ dtype: "qint8" })],
    ["MovingAverageMinMaxObserver", () => new MovingAverageMinMaxObserver({ averagingConstant: 0.3 })],
    ["PerChannelMinMaxObserver", () => new PerChannelMinMaxObserver({ chAxis: 1, qscheme: "per_channel_symmetric", dtype: "qint8" })],
    ["MovingAveragePerChannelMinMaxObserver", () => new MovingAveragePerChannelMinMaxObserver({ chAxis: -1 })],
    ["HistogramObserver", () => new HistogramObserver({ bins: 32, upsampleRate: 8 })],
    ["PercentileObserver", () => new PercentileObserver({ numBins: 64, percentile: 99, symmetric: true })],
    ["EntropyObserver", () => new EntropyObserver({ numBins: 64, numQuantizedBins: 16 })],
    ["AffineQuantizedMinMaxObserver", () => new AffineQuantizedMinMaxObserver({ mappingType: "asymmetric", targetDtype: "int4", granularity: { kind: "per_axis", axis: 1 } })],
  ];
  it.each(observers)("%s", (_name, make) => {
    // batches of shape [rows >= 2, 2] on a 1/8 grid
    const batch = fc
      .integer({ min: 2, max: 12 })
      .chain((rows) => fc.array(fc.integer({ min: -400, max: 400 }).map((i) => i / 8), { minLength: rows * 2, maxLength: rows * 2 }));
    fc.assert(
      fc.property(fc.array(batch, { minLength: 0, maxLength: 4 }), (batches) => {
        const o = make();
        for (const b of batches) o.observe(fromArray("float32", [b.length / 2, 2], b));
        const json = JSON.parse(JSON.stringify(o.state())) as ObserverState;
        const loaded = loadObserver(json);
        expect(loaded.kind).toBe(o.kind);
        sameQParams(loaded, o);
        // and the loaded observer keeps observing identically
        const next = fromArray("float32", [2, 2], [1, -2, 3.5, 0]);
        loaded.observe(next);
        o.observe(next);
        sameQParams(loaded, o);
      }),
      { numRuns: RUNS },
    );
  });
});

describe("qparams invariants", () => {
  it("the zero point is an integer in [qmin, qmax], 0.0 maps exactly, observed values are within 1.5 steps", () => {
    fc.assert(
      fc.property(uniformOptions(false), fc.array(fc.float({ noNaN: true, min: f32(-1e6), max: f32(1e6) }), { minLength: 1, maxLength: 40 }), (opts, values) => {
        const o = build(() => new MinMaxObserver(opts));
        fc.pre(o !== null);
        o!.observe(vec(values));
        const { quantMin: qmin, quantMax: qmax } = o!.config;
        const q = o!.calculateQParams();
        const scale = toNumbers(q.scale)[0]!;
        const zp = toNumbers(q.zeroPoint)[0]!;
        expect(Number.isInteger(zp)).toBe(true);
        expect(zp).toBeGreaterThanOrEqual(qmin);
        expect(zp).toBeLessThanOrEqual(qmax);
        expect(scale).toBeGreaterThanOrEqual(o!.config.eps);
        const inv = f32(1 / scale);
        const quant = (x: number): number => Math.min(qmax, Math.max(qmin, Math.round(f32(x * inv)) + zp));
        const dequant = (qv: number): number => f32(f32(qv - zp) * scale);
        expect(dequant(quant(0))).toBe(0);
        // Coverage holds when the zero point sits mid-range (always for affine). PyTorch also accepts
        // symmetric schemes whose custom range is one-sided for the dtype (e.g. qint32 with 0..15,
        // zero point 0): negative values are clipped there by construction.
        const mid = (qmax - qmin) / 2;
        // qint32 is excluded from the coverage check: float32 cannot hold x / scale to the unit there.
        const centred = o!.config.qscheme === "per_tensor_affine" || (zp - qmin >= mid - 1 && qmax - zp >= mid - 1);
        if (!centred || o!.config.dtype === "qint32") return;
        for (const x of values) {
          expect(Math.abs(dequant(quant(x)) - x)).toBeLessThanOrEqual(1.5 * scale + 1e-6 * Math.abs(x));
        }
      }),
      { numRuns: RUNS },
    );
  });
});

describe("HistogramObserver.merge approximation", () => {
  /**
   * Stated bound: a state with range [min, max] and bins counts means count i lives in
   * [min + i w, min + (i + 1) w). After merge, the cumulative count below any edge E of the merged
   * grid lies between the counts of the two inputs' bins that end below E - d and the counts of
   * bins that start below E + d, where d is two sub-bins (w / upsampleRate) of the observer merged
   * into plus float32 slack; total mass is preserved to float32 rounding.
   */
  it("keeps cumulative counts within one sub-bin of the inputs' and preserves mass", () => {
    fc.assert(
      fc.property(gridValues, gridValues, fc.constantFrom(16, 64, 128), fc.constantFrom(4, 16, 128), (a, b, bins, up) => {
        const ha = new HistogramObserver({ bins, upsampleRate: up });
        const hb = new HistogramObserver({ bins, upsampleRate: up });
        ha.observe(vec(a));
        hb.observe(vec(b));
        const sa = ha.state();
        const sb = hb.state();
        ha.merge(hb);
        const m = ha.state();
        const massA = sa.histogram.reduce((x, y) => x + y, 0);
        const massB = sb.histogram.reduce((x, y) => x + y, 0);
        const mass = m.histogram.reduce((x, y) => x + y, 0);
        expect(Math.abs(mass - (massA + massB))).toBeLessThanOrEqual(1e-4 * (massA + massB) + 1e-3);
        expect(m.minVal).toBe(Math.min(sa.minVal!, sb.minVal!));
        expect(m.maxVal!).toBeGreaterThanOrEqual(Math.max(sa.maxVal!, sb.maxVal!));
        const span = m.maxVal! - m.minVal!;
        const slack = 1e-5 * (Math.abs(m.minVal!) + Math.abs(m.maxVal!)) + 1e-9;
        const dA = sa.maxVal! > sa.minVal! ? (2 * (sa.maxVal! - sa.minVal!)) / (bins * up) : 0;
        const sources = [
          { s: sa, d: dA + slack },
          { s: sb, d: slack },
        ];
        let cum = 0;
        for (let k = 0; k <= bins; k++) {
          const edge = m.minVal! + (k * span) / bins;
          let lower = 0;
          let upper = 0;
          for (const { s, d } of sources) {
            const w = (s.maxVal! - s.minVal!) / bins;
            s.histogram.forEach((c, i) => {
              const lo = s.minVal! + i * w;
              const hi = s.minVal! + (i + 1) * w;
              if (hi <= edge - d) lower += c;
              if (lo < edge + d) upper += c;
            });
          }
          const tol = 1e-4 * (massA + massB) + 1e-3;
          expect(cum).toBeGreaterThanOrEqual(lower - tol);
          expect(cum).toBeLessThanOrEqual(upper + tol);
          if (k < bins) cum += m.histogram[k]!;
        }
      }),
      { numRuns: RUNS },
    );
  });
});
