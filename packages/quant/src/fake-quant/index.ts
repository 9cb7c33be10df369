export {
  fakeQuantizePerTensorAffine, fakeQuantizePerChannelAffine, type FakeQuantResult,
} from "./functional.js";
export {
  fakeQuantizeLearnablePerTensorAffine, fakeQuantizeLearnablePerChannelAffine, type LearnableFakeQuantResult,
} from "./learnable.js";
export {
  FakeQuantize, FixedQParamsFakeQuantize, FusedMovingAvgObsFakeQuantize, OBSERVER_FACTORIES,
  FIXED_QPARAMS_RANGE_0TO1, FIXED_QPARAMS_RANGE_NEG1TO1,
  type FakeQuantizeObserver, type FakeQuantizeKwargs, type ObserverFactory,
} from "./modules.js";
