// npx tsx examples/cnn/main.ts — build the CNN, run it eagerly, export it, print the graph, and
// check the reference interpreter against eager execution.
import { exportModel, Var } from "@qforge/export";
import { printGraph, toFloat64 } from "@qforge/ir";
import { runProgram } from "@qforge/runtime";
import { createModel, exampleInput } from "./model.js";

const model = createModel();
const x = exampleInput();
const eager = model.call(Var.from(x)).toTensor();
const ep = exportModel(model, [x], { dynamicDims: [{ 0: "N" }] });
console.log(printGraph(ep.graph));
const [traced] = runProgram(ep, [x]);
const a = toFloat64(eager);
const b = toFloat64(traced!);
let maxDiff = 0;
for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
console.log(`output [${eager.shape.join(", ")}]: max |eager - traced| = ${maxDiff}`);
if (maxDiff > 1e-6) process.exitCode = 1;
