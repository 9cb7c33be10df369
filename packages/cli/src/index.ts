export { main } from "./main.js";
export { runGolden, type FamilyReport } from "./conformance/golden.js";
export { runOnnxNodeTests } from "./conformance/onnx.js";
export { dump, loadGraph } from "./commands/dump.js";
