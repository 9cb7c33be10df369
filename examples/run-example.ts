// Shared driver of the examples: run a model eagerly, export it, print the graph, run the exported
// program in the reference interpreter, fold conv+batchnorm, and check all three agree.
import { exportModel, Var, type Module } from "@qforge/export";
import { PassManager, foldConvBatchNormPass, printGraph, removeIdentityPass, toFloat64, type Tensor } from "@qforge/ir";
import { runGraph, runProgram } from "@qforge/runtime";

function maxAbsDiff(a: Tensor, b: Tensor): number {
  const x = toFloat64(a);
  const y = toFloat64(b);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
}

/** Returns the process exit code: 0 when eager, traced and folded outputs agree. */
export function runExample(name: string, model: Module, x: Tensor, dynamicDims: Record<number, string>): number {
  const eager = model.call(Var.from(x)).toTensor();
  const ep = exportModel(model, [x], { dynamicDims: [dynamicDims] });
  console.log(`# ${name}: traced ${ep.graph.nodes.length} nodes, ${Object.keys(ep.graph.constants).length} parameters/buffers\n`);
  console.log(printGraph(ep.graph));
  const [traced] = runProgram(ep, [x]);
  const { graph: folded, records } = new PassManager([removeIdentityPass, foldConvBatchNormPass]).run(ep.graph);
  const [fromFolded] = runGraph(folded, [x]).outputs;
  const dTraced = maxAbsDiff(eager, traced!);
  const dFolded = maxAbsDiff(eager, fromFolded!);
  console.log(`\n# ran input [${x.shape.join(", ")}] -> output [${eager.shape.join(", ")}]`);
  console.log(`#   eager vs exported program (reference interpreter): max |diff| = ${dTraced}`);
  for (const r of records) console.log(`#   pass ${r.name}: ${r.changed ? `${r.patches.length} patches` : "no change"} (${r.ms.toFixed(1)} ms)`);
  console.log(`#   after passes: ${folded.nodes.length} nodes; eager vs folded graph: max |diff| = ${dFolded.toExponential(2)}`);
  return dTraced <= 1e-6 && dFolded <= 1e-4 ? 0 : 1;
}
