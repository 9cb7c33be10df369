export * from "./primitives/index.js";
export * from "./observers/index.js";
export * from "./fake-quant/index.js";
export * from "./golden/index.js";
export { benchQuant, type BenchRow } from "./bench.js";
