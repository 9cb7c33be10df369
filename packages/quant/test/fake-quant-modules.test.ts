import { toNumbers } from "@qforge/ir";
import { describe, expect, it } from "vitest";
import { fakeQuantizePerChannelAffine, fakeQuantizePerTensorAffine } from "../src/fake-quant/functional.js";
import {
  FakeQuantize, FIXED_QPARAMS_RANGE_0TO1, FixedQParamsFakeQuantize, FusedMovingAvgObsFakeQuantize, OBSERVER_FACTORIES,
} from "../src/fake-quant/modules.js";
import { MinMaxObserver, MovingAveragePerChannelMinMaxObserver } from "../src/observers/index.js";
import { chooseQuantizationParamsAten } from "../src/primitives/aten-qparams.js";
import { codeOf, f32, t32 } from "./helpers.js";

const batch1 = t32([2, 3], [-1, 0.5, 2, 0.25, -0.75, 1.5]);
const batch2 = t32([2, 3], [-3, 0.5, 1, 0.25, -0.5, 4]);

describe("FakeQuantize", () => {
  it("observes, refreshes scale/zero_point from the observer, then fake-quantizes", () => {
    const fq = new FakeQuantize(); // MovingAverageMinMaxObserver, quint8 [0, 255] affine (PyTorch defaults)
    expect(fq.quantMin).toBe(0);
    expect(fq.quantMax).toBe(255);
    expect(fq.qscheme).toBe("per_tensor_affine");
    expect(fq.minVal).toBeNull();
    const dy = t32([2, 3], [1, 2, 3, 4, 5, 6]);
    const r1 = fq.forward(batch1, dy);
    const q1 = fq.observer.calculateQParams();
    expect(toNumbers(fq.scale)).toEqual(toNumbers(q1.scale));
    expect(fq.zeroPoint.dtype).toBe("int32");
    const ref = fakeQuantizePerTensorAffine(batch1, toNumbers(q1.scale)[0]!, toNumbers(q1.zeroPoint)[0]!, 0, 255, dy);
    expect(toNumbers(r1.output)).toEqual(toNumbers(ref.output));
    expect(toNumbers(r1.gradInput!)).toEqual(toNumbers(ref.gradInput!));
    expect(toNumbers(fq.minVal!)).toEqual([-1]);
    expect(toNumbers(fq.maxVal!)).toEqual([2]);
    fq.forward(batch2);
    // moving average (c = 0.01): min = -1 + 0.01 * (-3 + 1)
    expect(toNumbers(fq.minVal!)).toEqual([f32(-1 + f32(f32(0.01) * -2))]);
  });

  it("freezes qparams with the observer disabled and passes data through with fake-quant disabled", () => {
    const fq = new FakeQuantize((kw) => new MinMaxObserver(kw), { dtype: "qint8", qscheme: "per_tensor_symmetric", quantMin: -128, quantMax: 127 });
    fq.forward(batch1);
    const scale = toNumbers(fq.scale);
    expect(scale).toEqual([f32(2 / 127.5)]);
    fq.disableObserver();
    expect(fq.observerEnabled).toBe(false);
    fq.forward(batch2);
    expect(toNumbers(fq.scale)).toEqual(scale);
    expect(toNumbers(fq.maxVal!)).toEqual([2]);
    fq.disableFakeQuant();
    const dy = t32([2, 3], [-1, 1, -1, 1, -1, 1]);
    const r = fq.forward(batch2, dy);
    expect(toNumbers(r.output)).toEqual(toNumbers(batch2));
    expect(toNumbers(r.mask)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(toNumbers(r.gradInput!)).toEqual(toNumbers(dy));
    fq.enableFakeQuant();
    fq.enableObserver();
    expect(fq.fakeQuantEnabled && fq.observerEnabled).toBe(true);
    fq.forward(batch2);
    expect(toNumbers(fq.scale)).toEqual([f32(4 / 127.5)]);
  });

  it("fake-quantizes per channel with a per-channel observer", () => {
    const fq = new FakeQuantize(OBSERVER_FACTORIES.MovingAveragePerChannelMinMaxObserver, {
      dtype: "qint8", qscheme: "per_channel_symmetric", quantMin: -128, quantMax: 127, chAxis: 1,
    });
    expect(fq.isPerChannel).toBe(true);
    expect(fq.chAxis).toBe(1);
    const r = fq.forward(batch1);
    expect(fq.scale.shape).toEqual([3]);
    expect(toNumbers(fq.scale)).toEqual([1, 0.75, 2].map((a) => f32(a / 127.5)));
    expect(toNumbers(fq.minVal!)).toEqual([-1, -0.75, 1.5]);
    const ref = fakeQuantizePerChannelAffine(batch1, fq.scale, fq.zeroPoint, 1, -128, 127);
    expect(toNumbers(r.output)).toEqual(toNumbers(ref.output));
  });

  it("checks quant_min/quant_max against the dtype and refuses float zero points", () => {
    expect(codeOf(() => new FakeQuantize(undefined, { quantMin: -1, quantMax: 255 }))).toBe("BAD_CONFIG");
    expect(codeOf(() => new FakeQuantize(undefined, { quantMin: 10, quantMax: 5 }))).toBe("BAD_CONFIG");
    expect(codeOf(() => new FakeQuantize((kw) => new MovingAveragePerChannelMinMaxObserver(kw), { qscheme: "per_channel_affine_float_qparams" }))).toBe("UNSUPPORTED");
  });
});

describe("FixedQParamsFakeQuantize", () => {
  it("fake-quantizes with the fixed qparams and ignores the data", () => {
    const fq = new FixedQParamsFakeQuantize(FIXED_QPARAMS_RANGE_0TO1);
    expect(toNumbers(fq.scale)).toEqual([1 / 256]);
    const r = fq.forward(t32([4], [0.5, 2, -1, 0.3]));
    expect(toNumbers(r.output)).toEqual([0.5, 255 / 256, 0, 77 / 256]);
    fq.forward(t32([1], [100]));
    expect(toNumbers(fq.scale)).toEqual([1 / 256]);
    expect(toNumbers(fq.zeroPoint)).toEqual([0]);
  });
});

describe("FusedMovingAvgObsFakeQuantize", () => {
  it("takes its qparams from ATen's ChooseQuantizationParams, not the observer formula", () => {
    // min/max of the golden file's first QAT batch: the two formulas differ in the last bit
    const lo = -2.3084702491760254;
    const hi = 2.3992292881011963;
    const x = t32([2], [lo, hi]);
    const fused = new FusedMovingAvgObsFakeQuantize();
    const plain = new FakeQuantize(undefined, { quantMin: 0, quantMax: 255 });
    fused.forward(x);
    plain.forward(x);
    const aten = chooseQuantizationParamsAten(lo, hi, 0, 255);
    expect(toNumbers(fused.scale)).toEqual([f32(aten.scale)]);
    expect(toNumbers(fused.zeroPoint)).toEqual([aten.zeroPoint]);
    expect(toNumbers(fused.scale)[0]).toBe(0.018461566418409348);
    expect(toNumbers(plain.scale)[0]).toBe(0.018461568281054497);
    expect(toNumbers(fused.observer.calculateQParams().scale)).toEqual(toNumbers(plain.scale));
  });

  it("uses preserve_sparsity for symmetric schemes and handles per-channel axis 0", () => {
    const sym = new FusedMovingAvgObsFakeQuantize(undefined, { dtype: "qint8", qscheme: "per_tensor_symmetric", quantMin: -128, quantMax: 127 });
    expect(sym.isSymmetricQuant).toBe(true);
    sym.forward(t32([2], [-1, 0.5]));
    expect(toNumbers(sym.scale)).toEqual([1 / 128]);
    expect(toNumbers(sym.zeroPoint)).toEqual([0]);
    const pc = new FusedMovingAvgObsFakeQuantize(OBSERVER_FACTORIES.MovingAveragePerChannelMinMaxObserver, {
      dtype: "qint8", qscheme: "per_channel_symmetric", quantMin: -127, quantMax: 127, chAxis: 0,
    });
    pc.forward(batch1);
    expect(pc.scale.shape).toEqual([2]);
    expect(toNumbers(pc.scale)).toEqual([-1, -0.75].map((mn, i) => f32(chooseQuantizationParamsAten(mn, [2, 1.5][i]!, -127, 127, { preserveSparsity: true }).scale)));
  });

  it("does not refresh qparams while fake-quant is off, and needs statistics to fake-quantize", () => {
    const fq = new FusedMovingAvgObsFakeQuantize();
    fq.disableFakeQuant();
    fq.forward(batch1);
    expect(toNumbers(fq.scale)).toEqual([1]);
    expect(toNumbers(fq.minVal!)).toEqual([-1]);
    const fresh = new FusedMovingAvgObsFakeQuantize();
    fresh.disableObserver();
    expect(codeOf(() => fresh.forward(batch1))).toBe("BAD_DATA");
  });

  it("accepts only moving-average observers, per channel only on axis 0", () => {
    expect(codeOf(() => new FusedMovingAvgObsFakeQuantize(OBSERVER_FACTORIES.MinMaxObserver))).toBe("BAD_CONFIG");
    expect(codeOf(() => new FusedMovingAvgObsFakeQuantize(OBSERVER_FACTORIES.MovingAveragePerChannelMinMaxObserver, {
      dtype: "qint8", qscheme: "per_channel_symmetric", quantMin: -128, quantMax: 127, chAxis: 1,
    }))).toBe("BAD_CONFIG");
  });
});
