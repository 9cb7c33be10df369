/** The model of the static-quantization example: three Linear layers with ReLUs (torchao's ToyLinearModel). */
import { F, Linear, manualSeed, Module, uniformTensor, type Var } from "@qforge/export";
import type { Tensor } from "@qforge/ir";

export class ToyLinearModel extends Module {
  linear1 = new Linear(64, 128, { bias: false });
  linear2 = new Linear(128, 64, { bias: false });
  linear3 = new Linear(64, 16);

  forward(x: Var): Var {
    return this.linear3.call(F.relu(this.linear2.call(F.relu(this.linear1.call(x)))));
  }
}

export function createModel(seed = 0): ToyLinearModel {
  manualSeed(seed);
  return new ToyLinearModel().eval();
}

/** Calibration / evaluation batches of `n` rows in [-1, 1). */
export function batch(seed: number, n = 8): Tensor {
  manualSeed(1000 + seed);
  return uniformTensor([n, 64], -1, 1);
}
