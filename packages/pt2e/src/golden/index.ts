/**
 * Golden conformance of the PT2E flow against PyTorch 1.13's FX graph mode (shared/golden
 * fx_models.json): the float model from a case's architecture, a quantizer that annotates like FX's
 * qnnpack BackendConfig, and the case check (`checkFxModelCase`).
 */
export {
  checkFxModelCase, FX_FLOAT_RTOL, FX_MAX_LSB, FX_WITHIN_1_LSB, FX_STAT_ULPS,
  type FxModelCaseResult, type FxModelCaseDetails, type FxOutputStats, type FxDiffCategory,
} from "./check.js";
export { buildFxModelProgram, FX_MODULE_CLASS, type FxArchitecture, type FxArchNode } from "./model.js";
export {
  parseFxQConfigMapping, resolveFxQConfig, fxSpec, observerFacts, qnnpackUnsupportedReason, storageDType,
  type FxQConfig, type FxQConfigMapping, type FxObserverConfig, type FxCallee, type FxPatternFamily, type ObserverFacts,
} from "./qconfig.js";
export {
  FxQnnpackQuantizer, planFxQuantization,
  type FxQuantizationPlan, type FxObserverPlan, type FxWeightPlan, type FxPatternPlan,
} from "./fx-quantizer.js";
export { foldConvBatchNormTorch } from "./bn-fold.js";
export { goldenTensor, goldenBatches, compareFloat, compareLsb, type LsbComparison, type FloatComparison } from "./tensors.js";
