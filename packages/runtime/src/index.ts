/**
 * @qforge/runtime: the reference interpreter. One exact, readable kernel per registered op (the
 * oracle fast kernels are tested against), eager execution (`runOp`), graph and program
 * interpretation (`runGraph`, `runProgram`) and the `Backend` interface backends implement.
 */
import "./kernels/index.js";
import "./quantized/index.js";
import "./quantized/index.js";
import "./pt2e/index.js";

export { registerKernel, getKernel, hasKernel, listKernels, type Kernel, type KernelContext } from "./kernel.js";
export { runOp } from "./eager.js";
export { runGraph, runProgram, type RunOptions, type GraphRunResult } from "./interpreter.js";
export { referenceBackend, type Backend, type Session } from "./backend.js";
export { compile, registerBackend, getBackend, listBackends, type CompileOptions, type PlanEntry } from "./backend.js";
export { erf, erfc, roundHalfEven } from "./util/math.js";
export { onnxConvGeometry, type ConvGeometry } from "./quantized/int-core.js";
export { checkQuantizedOpCase, type QuantizedOpCaseResult } from "./golden/quantized-ops.js";
