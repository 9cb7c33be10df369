/**
 * @qforge/export: nn modules in TypeScript that run eagerly on the runtime's reference kernels
 * and trace (with proxy Vars) into an ExportedProgram, like torch.nn + torch.export.
 */
export { Var, type VarRef } from "./var.js";
export { Parameter, Buffer, type State } from "./state.js";
export { Module, type LoadResult } from "./module.js";
export { exportModel, forwardParamNames, type ExportOptions } from "./export.js";
export { emit, emit1, type Operand, type TensorLike, type EmitOptions } from "./dispatch.js";
export { Generator, manualSeed, defaultGenerator, uniformTensor, normalTensor, kaimingUniformTensor } from "./random.js";
export { parseStackFrame, userCallSite, formatLocation, type SourceLocation } from "./source.js";
export * as F from "./functional.js";
export { Linear, Embedding } from "./nn/linear.js";
export { Conv2d, ConvTranspose2d, type Conv2dConfig, type ConvTranspose2dConfig } from "./nn/conv.js";
export { BatchNorm2d, LayerNorm } from "./nn/norm.js";
export { ReLU, ReLU6, Hardswish, Hardsigmoid, Sigmoid, Tanh, GELU, Softmax } from "./nn/activation.js";
export { MaxPool2d, AvgPool2d, AdaptiveAvgPool2d } from "./nn/pooling.js";
export { Flatten, Dropout, Identity } from "./nn/misc.js";
export { Sequential, ModuleList } from "./nn/container.js";
