export {
  compareResults, numericRun, sortWorstFirst, sqnr,
  type ComparedNode, type NodeComparison, type NodeRef, type NumericRun, type RankBy, type UnmatchedNode,
} from "./compare.js";
export { floatViewOf, type FloatView } from "./float-view.js";
export { formatComparison, type FormatComparisonOptions } from "./format.js";
