export {
  lowerQdq, lowerQdqPass, lowerQdqWithReport, type LowerQdqOptions, type LoweringReport, type NotLowered,
} from "./lower.js";
export { loweringRules, LOWERABLE_OPS, type LoweringContext, type LoweringEngine } from "./rules.js";
