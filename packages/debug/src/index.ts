export {
  toDot, graphLayout, dotString, clusterLabel, FAMILY_COLORS, KIND_COLORS,
  type DumpOptions, type DumpNode, type DumpNodeKind, type DumpCluster, type DumpEdge, type GraphLayout,
} from "./dot.js";
export { toMermaid, mermaidText } from "./mermaid.js";
export * from "./numeric/index.js";
