export { printGraph, formatType, formatDim, type PrintOptions } from "./printer.js";
export { parseGraph, type ParseOptions } from "./parser.js";
export { fnv1a64, tensorHash } from "./hash.js";
