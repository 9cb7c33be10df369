export * from "./errors.js";
export * from "./dtype.js";
export * from "./convert.js";
export * from "./tensor.js";
export * from "./graph.js";
export * from "./ops/index.js";
export * from "./builder.js";
export * from "./analysis.js";
export * from "./verify.js";
export * from "./program.js";
export * from "./passes/pass-manager.js";
export * from "./passes/builtin.js";
export * from "./rewrite/engine.js";
// export * from "./text/index.js";  (enabled when text/ lands)
