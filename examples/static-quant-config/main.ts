// npx tsx examples/static-quant-config/main.ts — a custom quantize_ config (torchao's StaticQuantConfig
// tutorial): insert observers, calibrate, quantize, compare with float, print the quantized graph.
import { exportModel, Var } from "@qforge/export";
import { printGraph, toFloat64 } from "@qforge/ir";
import { formatWeightReport, insertObservers_, isObservedLinear, quantize_, weightReport } from "@qforge/ao";
import { batch, createModel } from "./model.js";
import { actObserver, StaticQuantConfig } from "./static-quant-config.js";

const model = insertObservers_(createModel(), { observer: () => actObserver("uint8") });
for (let i = 0; i < 10; i++) model.call(Var.from(batch(i)));
quantize_(model, new StaticQuantConfig("uint8"), isObservedLinear);

const x = batch(99);
const ref = toFloat64(createModel().call(Var.from(x)).toTensor());
const y = toFloat64(model.call(Var.from(x)).toTensor());
let num = 0;
let den = 0;
ref.forEach((v, i) => { num += (v - y[i]!) ** 2; den += v * v; });
console.log(printGraph(exportModel(model, [x]).graph));
console.log(formatWeightReport(weightReport(createModel(), model)));
console.log(`\noutput relative L2 error vs float: ${Math.sqrt(num / den).toExponential(2)}`);
