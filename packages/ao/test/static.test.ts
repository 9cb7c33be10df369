/**
 * The static-quantization tutorial flow: insert observers, calibrate, quantize_ with fixed activation
 * qparams; and the same on an ExportedProgram through calibrateLinearInputs.
 */
import { describe, expect, it } from "vitest";
import { exportModel, F, Linear, manualSeed, Module, uniformTensor, Var } from "@qforge/export";
import { tensorsEqual, toFloat64, type Tensor } from "@qforge/ir";
import { MinMaxObserver } from "@qforge/quant";
import { runProgram } from "@qforge/runtime";
import {
  calibrateLinearInputs, insertObservers_, Int8StaticActivationInt8WeightConfig, ObservedLinear, QuantizedLinear, quantize_,
} from "../src/index.js";

class Net extends Module {
  fc1 = new Linear(32, 32);
  fc2 = new Linear(32, 8);
  forward(x: Var): Var {
    return this.fc2.call(F.relu(this.fc1.call(x)));
  }
}

function net(): Net {
  manualSeed(21);
  return new Net();
}

const BATCHES: Tensor[] = [0, 1, 2, 3].map((i) => {
  manualSeed(100 + i);
  return uniformTensor([4, 32], -1, 1);
});

function relErr(a: Tensor, b: Tensor): number {
  const x = toFloat64(a);
  const y = toFloat64(b);
  let n = 0;
  let d = 0;
  x.forEach((v, i) => { n += (v - y[i]!) ** 2; d += v * v; });
  return Math.sqrt(n / d);
}

describe("static quantization", () => {
  it("insertObservers_ -> calibrate -> quantize_: observed ranges become the fixed activation qparams", () => {
    const model = insertObservers_(net(), { filter: (m, fqn) => m instanceof Linear && fqn === "fc1" });
    expect(model.fc1).toBeInstanceOf(ObservedLinear);
    expect(model.fc2).toBeInstanceOf(Linear);
    // Parameters are shared: the state dict does not change.
    expect(Object.keys(model.stateDict())).toEqual(["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]);
    for (const b of BATCHES) model.call(Var.from(b));
    const qp = (model.fc1 as ObservedLinear).actObserver.calculateQParams();
    quantize_(model, new Int8StaticActivationInt8WeightConfig());
    const q = model.fc1 as unknown as QuantizedLinear;
    expect(q).toBeInstanceOf(QuantizedLinear);
    expect(model.fc2).toBeInstanceOf(Linear); // the default filter takes observed linears only
    expect(q.act).toEqual({ kind: "static", dtype: "int8", scale: qp.scale.data[0], zeroPoint: 0, compute: "integer" });
    // Every calibration value is in [-1, 1): the symmetric int8 scale is max|x| / 127.5.
    const amax = Math.max(...BATCHES.flatMap((b) => Array.from(b.data as Float32Array).map(Math.abs)));
    expect(q.act.kind === "static" && q.act.scale).toBe(Math.fround(amax / 127.5));
    const ep = exportModel(model, [BATCHES[0]!]);
    expect(ep.graph.constants["fc1.input_scale"]?.tensor.data[0]).toBe(q.act.kind === "static" ? q.act.scale : NaN);
    const y = runProgram(ep, [BATCHES[0]!])[0]!;
    expect(relErr(net().call(Var.from(BATCHES[0]!)).toTensor(), y)).toBeLessThan(0.02);
  });

  it("calibrateLinearInputs on the program gives the module flow's qparams, and the same quantized program", () => {
    const epFloat = exportModel(net(), [BATCHES[0]!]);
    const qparams = calibrateLinearInputs(epFloat, BATCHES.map((b) => [b]));
    expect(Object.keys(qparams)).toEqual(["fc1", "fc2"]);
    const viaProgram = quantize_(epFloat, new Int8StaticActivationInt8WeightConfig({ actQParams: qparams }));

    const model = insertObservers_(net());
    for (const b of BATCHES) model.call(Var.from(b));
    quantize_(model, new Int8StaticActivationInt8WeightConfig());
    for (const fqn of ["fc1", "fc2"] as const) {
      const act = (model[fqn] as unknown as QuantizedLinear).act;
      expect(act.kind === "static" && { scale: act.scale, zeroPoint: act.zeroPoint }).toEqual(qparams[fqn]);
    }
    const viaModule = exportModel(model, [BATCHES[0]!]);
    for (const b of BATCHES) expect(tensorsEqual(runProgram(viaProgram, [b])[0]!, runProgram(viaModule, [b])[0]!)).toBe(true);
  });

  it("any observer works (uint8 asymmetric MinMaxObserver with a uint8 config)", () => {
    const model = insertObservers_(net(), { observer: () => new MinMaxObserver({ dtype: "quint8" }) });
    for (const b of BATCHES) model.call(Var.from(b));
    quantize_(model, new Int8StaticActivationInt8WeightConfig({ actDtype: "uint8" }));
    const act = (model.fc1 as unknown as QuantizedLinear).act;
    expect(act).toMatchObject({ kind: "static", dtype: "uint8" });
    expect(act.kind === "static" && act.zeroPoint).toBeGreaterThan(100);
    const y = model.call(Var.from(BATCHES[1]!)).toTensor();
    expect(relErr(net().call(Var.from(BATCHES[1]!)).toTensor(), y)).toBeLessThan(0.02);
  });

  it("a plain Linear without qparams is an error that says what to do", () => {
    expect(() => quantize_(net(), new Int8StaticActivationInt8WeightConfig(), (m) => m instanceof Linear)).toThrow(/no activation qparams for 'fc1'[\s\S]*insertObservers_/);
  });
});
