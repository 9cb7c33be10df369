import { describe, expect, it } from "vitest";
import { fromArray, isQforgeError, tensorsEqual, toNumbers, type Tensor } from "@qforge/ir";
import {
  benchObservers,
  createObserver,
  FixedQParamsObserver,
  HistogramObserver,
  loadObserver,
  MinMaxObserver,
  NoopObserver,
  OBSERVER_KINDS,
  PlaceholderObserver,
  RecordingObserver,
  type ObserverState,
} from "../src/observers/index.js";
import { codeOf, vec } from "./helpers.js";

describe("FixedQParamsObserver", () => {
  it("returns its fixed float32 scale and int32 zero point whatever it observes", () => {
    const o = new FixedQParamsObserver({ scale: 2 / 256, zeroPoint: 128 });
    o.observe(vec([1000, -1000]));
    const q = o.calculateQParams();
    expect(q.scale.dtype).toBe("float32");
    expect(q.zeroPoint.dtype).toBe("int32");
    expect([toNumbers(q.scale), toNumbers(q.zeroPoint)]).toEqual([[2 / 256], [128]]);
    expect([o.quantMin, o.quantMax, o.qscheme]).toEqual([0, 255, "per_tensor_affine"]);
  });

  it("refuses missing or invalid qparams and merging different ones", () => {
    expect(codeOf(() => new FixedQParamsObserver({} as never))).toBe("BAD_CONFIG");
    expect(codeOf(() => new FixedQParamsObserver({ scale: -1, zeroPoint: 0 }))).toBe("BAD_CONFIG");
    expect(codeOf(() => new FixedQParamsObserver({ scale: 1, zeroPoint: 0.5 }))).toBe("BAD_CONFIG");
    const a = new FixedQParamsObserver({ scale: 1 / 256, zeroPoint: 0 });
    expect(codeOf(() => a.merge(new FixedQParamsObserver({ scale: 1 / 128, zeroPoint: 0 }) as never))).toBe("BAD_CONFIG");
  });
});

describe("observers without qparams", () => {
  it("PlaceholderObserver records the dynamic-quantization config and refuses static qparams", () => {
    const o = new PlaceholderObserver({ dtype: "uint8", quantMin: 0, quantMax: 255, isDynamic: true });
    o.observe(vec([1, 2]));
    expect([o.dtype, o.isDynamic, o.quantMin, o.quantMax]).toEqual(["quint8", true, 0, 255]);
    let err: unknown;
    try {
      o.calculateQParams();
    } catch (e) {
      err = e;
    }
    expect(isQforgeError(err, "UNSUPPORTED")).toBe(true);
    expect((err as Error).message).toMatch(/run time/);
    expect(codeOf(() => new PlaceholderObserver({ dtype: "int3" }))).toBe("BAD_CONFIG");
    expect(codeOf(() => new PlaceholderObserver().calculateQParams())).toBe("UNSUPPORTED");
  });

  it("RecordingObserver keeps copies of every tensor, NaN included", () => {
    const o = new RecordingObserver();
    const x = vec([1, NaN, 3]);
    o.observe(x);
    (x.data as Float32Array)[0] = 99; // later mutation must not leak into the record
    o.observe(fromArray("int8", [2], [4, -5]));
    const rec = o.getTensorValues();
    expect(rec.map((r) => r.dtype)).toEqual(["float32", "int8"]);
    expect(toNumbers(rec[0]!)).toEqual([1, NaN, 3]);
    expect(toNumbers(rec[1]!)).toEqual([4, -5]);
    expect(codeOf(() => o.calculateQParams())).toBe("UNSUPPORTED");
    const loaded = loadObserver(JSON.parse(JSON.stringify(o.state())) as ObserverState) as RecordingObserver;
    // NaN survives the JSON round trip
    expect(loaded.getTensorValues().map((r) => toNumbers(r))).toEqual([[1, NaN, 3], [4, -5]]);
    const merged = new RecordingObserver();
    merged.merge(o);
    expect(merged.getTensorValues().length).toBe(2);
  });

  it("NoopObserver passes a float16 dtype and refuses qparams", () => {
    const o = new NoopObserver();
    o.observe(vec([1]));
    expect(o.dtype).toBe("float16");
    expect(codeOf(() => o.calculateQParams())).toBe("UNSUPPORTED");
    expect(loadObserver(o.state()).kind).toBe("NoopObserver");
  });
});

describe("loadObserver", () => {
  it("rebuilds every kind from its state with identical qparams", () => {
    const options: Record<string, unknown> = {
      FixedQParamsObserver: { scale: 0.5, zeroPoint: 3 },
      AffineQuantizedMinMaxObserver: { mappingType: "asymmetric", targetDtype: "uint8", granularity: { kind: "per_token" } },
    };
    const x = fromArray("float32", [2, 3], [0.5, -1, 2, 3.25, 0, -0.75]);
    for (const kind of OBSERVER_KINDS) {
      const o = createObserver(kind, (options[kind] ?? {}) as never);
      o.observe(x);
      const back = loadObserver(JSON.parse(JSON.stringify(o.state())) as ObserverState);
      expect(back.kind).toBe(kind);
      expect(back.state()).toEqual(o.state());
      let a: unknown;
      let b: unknown;
      try {
        a = o.calculateQParams();
      } catch (e) {
        a = (e as Error).message;
      }
      try {
        b = back.calculateQParams();
      } catch (e) {
        b = (e as Error).message;
      }
      if (typeof a === "string") expect(b).toBe(a);
      else {
        const qa = a as { scale: Tensor; zeroPoint: Tensor };
        const qb = b as { scale: Tensor; zeroPoint: Tensor };
        expect(tensorsEqual(qa.scale, qb.scale) && tensorsEqual(qa.zeroPoint, qb.zeroPoint)).toBe(true);
      }
    }
  });

  it("refuses unknown kinds and versions (BAD_INPUT) and inconsistent statistics (BAD_DATA)", () => {
    expect(codeOf(() => loadObserver({ kind: "Nope", version: 1 } as never))).toBe("BAD_INPUT");
    expect(codeOf(() => loadObserver(null as never))).toBe("BAD_INPUT");
    const s = new MinMaxObserver().state();
    expect(codeOf(() => loadObserver({ ...s, version: 2 } as never))).toBe("BAD_INPUT");
    expect(codeOf(() => loadObserver({ ...s, minVal: 3, maxVal: 1 }))).toBe("BAD_DATA");
    expect(codeOf(() => loadObserver({ ...s, minVal: 3, maxVal: null }))).toBe("BAD_DATA");
    const h = new HistogramObserver({ bins: 8 }).state();
    expect(codeOf(() => loadObserver({ ...h, histogram: [1, 2] }))).toBe("BAD_DATA");
  });

  it("merge refuses an observer of another kind", () => {
    expect(codeOf(() => new MinMaxObserver().merge(new HistogramObserver() as never))).toBe("BAD_INPUT");
  });
});

describe("benchObservers", () => {
  it("reports elements/s rows for MinMax, PerChannel and Histogram", () => {
    const rows = benchObservers({ n: 1 << 14 });
    expect(rows.map((r) => r.case.split(" ")[0])).toEqual([
      "MinMaxObserver",
      "PerChannelMinMaxObserver",
      "PerChannelMinMaxObserver",
      "HistogramObserver",
    ]);
    for (const r of rows) {
      expect(r.unit).toBe("elements/s");
      expect(r.threads).toBe(1);
      expect(r.median_ms).toBeGreaterThan(0);
      expect(r.throughput).toBeCloseTo((1 << 14) / (r.median_ms / 1000), 0);
    }
  });
});
