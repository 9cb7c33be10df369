// Importing this module declares every built-in op (each file calls registerOp at load).
import "./elementwise.js";
import "./linalg.js";
import "./nn.js";
import "./shape.js";
import "./quantized.js";
import "./pt2e.js";
import "./ao.js";
export * from "./registry.js";
export { windowAttrs, windowOutDim } from "./linalg.js";
