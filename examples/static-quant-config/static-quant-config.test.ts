import { describe, expect, it } from "vitest";
import { exportModel, Linear, Var } from "@qforge/export";
import { isQforgeError, tensorsEqual, toFloat64, type Tensor } from "@qforge/ir";
import { runProgram } from "@qforge/runtime";
import {
  insertObservers_, isObservedLinear, loadQuantizedModule, ObservedLinear, QuantizedLinear, quantize_, saveQuantizedModule,
} from "@qforge/ao";
import { batch, createModel } from "./model.js";
import { actObserver, StaticQuantConfig } from "./static-quant-config.js";

function relErr(a: Tensor, b: Tensor): number {
  const x = toFloat64(a);
  const y = toFloat64(b);
  let n = 0;
  let d = 0;
  x.forEach((v, i) => { n += (v - y[i]!) ** 2; d += v * v; });
  return Math.sqrt(n / d);
}

function calibrated(skip?: string) {
  const model = insertObservers_(createModel(), {
    observer: () => actObserver("uint8"),
    filter: (m, fqn) => m instanceof Linear && fqn !== skip,
  });
  for (let i = 0; i < 10; i++) model.call(Var.from(batch(i)));
  return model;
}

describe("examples/static-quant-config: a user config registered with registerQuantizeModuleHandler", () => {
  it("swaps the observed linears for static uint8 QuantizedLinears close to float", () => {
    const model = calibrated("linear3");
    expect(model.linear1).toBeInstanceOf(ObservedLinear);
    expect(model.linear3).toBeInstanceOf(Linear);
    quantize_(model, new StaticQuantConfig("uint8"), isObservedLinear);
    const q1 = model.linear1 as unknown as QuantizedLinear;
    expect(q1).toBeInstanceOf(QuantizedLinear);
    expect(model.linear3).toBeInstanceOf(Linear);
    expect(q1.act).toMatchObject({ kind: "static", dtype: "uint8", compute: "integer" });
    expect(q1.weight).toMatchObject({ kind: "affine", targetDtype: "uint8", blockSize: [1, 64], mappingType: "ASYMMETRIC" });
    const x = batch(99);
    const y = model.call(Var.from(x)).toTensor();
    expect(relErr(createModel().call(Var.from(x)).toTensor(), y)).toBeLessThan(0.03);
    const ep = exportModel(model, [x]);
    const ops = ep.graph.nodes.map((n) => n.op);
    expect(ops).toEqual(["affine_quantized_linear", "relu", "affine_quantized_linear", "relu", "linear"]);
    expect(ep.graph.nodes[0]!.attrs["act_quant"]).toBe("static");
    expect(tensorsEqual(runProgram(ep, [x])[0]!, y)).toBe(true);
  });

  it("the quantized model saves and loads back bit-exactly into a fresh float model", () => {
    const model = calibrated();
    quantize_(model, new StaticQuantConfig("uint8"), isObservedLinear);
    const loaded = loadQuantizedModule(createModel(5), saveQuantizedModule(model));
    const x = batch(7);
    expect(tensorsEqual(loaded.call(Var.from(x)).toTensor(), model.call(Var.from(x)).toTensor())).toBe(true);
  });

  it("a module-only handler cannot rewrite an ExportedProgram, and refuses unobserved layers", () => {
    const ep = exportModel(createModel(), [batch(0)]);
    try {
      quantize_(ep, new StaticQuantConfig());
      expect.unreachable();
    } catch (e) {
      expect(isQforgeError(e, "UNSUPPORTED")).toBe(true);
    }
    expect(() => quantize_(createModel(), new StaticQuantConfig())).toThrow(/quantizes observed linears/);
  });
});
