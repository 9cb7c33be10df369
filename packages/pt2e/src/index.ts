/**
 * @qforge/pt2e: the PT2E flow (torch.ao.quantization.quantize_pt2e / torchao.quantization.pt2e):
 *
 *   const prepared = preparePt2e(ep, quantizer);       // observers per annotation
 *   calibrate(prepared, batches);                     // observers record statistics
 *   const converted = convertPt2e(prepared);          // observers -> quantize / dequantize (QDQ)
 *   const lowered = lowerQdq(converted);              // QDQ patterns -> integer ops
 *
 * QAT: prepareQatPt2e inserts fake-quant modules (and the simulated conv + batch-norm fusion); run it
 * with runPrepared, switch with moveExportedModelToTrain / ToEval and setFakeQuantEnabled /
 * setObserverEnabled, then convertPt2e as above.
 */
export { generateNumericDebugHandle, assignDebugHandles, debugHandles } from "./debug-handle.js";
export {
  preparePt2e, prepareQatPt2e, insertObservers,
  type PreparedProgram, type ObserverGroup, type DerivedGroup,
} from "./prepare.js";
export {
  calibrate, runPrepared, preparedKernels, setObserverEnabled, setFakeQuantEnabled, moveExportedModelToEval,
  moveExportedModelToTrain, type CalibrateOptions,
} from "./run.js";
export { convertPt2e, duplicateDequantize, type ConvertOptions } from "./convert.js";
export {
  createObserverOrFakeQuant, isFakeQuantize, innerObserver, observerDType,
  type FakeQuantizeLike, type ObserverOrFakeQuantize,
} from "./observers.js";
export { fuseConvBnQat, foldConvBnQat, qatConvBnInfo, QAT_CONV_BN_KEY, type QatConvBnInfo, type FoldResult } from "./qat-conv-bn.js";
export {
  collectTargets, groupTargets, targetKey, edgeKey, nodeKey,
  type TargetKey, type TargetSpec, type TargetGroup, type TargetGrouping, type RootSpec,
} from "./targets.js";
export * from "./lowering/index.js";
export * from "./golden/index.js";
