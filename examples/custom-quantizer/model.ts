/**
 * The model of the custom-quantizer example: two Linear layers around a matmul by a learned
 * projection matrix (a bare Parameter, as in attention or LoRA code), with ReLUs in between.
 */
import { F, Linear, manualSeed, Module, Parameter, ReLU, uniformTensor, type Var } from "@qforge/export";
import type { Tensor } from "@qforge/ir";

export class ProjectedMlp extends Module {
  fc1 = new Linear(64, 32);
  act = new ReLU();
  proj = new Parameter(uniformTensor([32, 16], -0.25, 0.25));
  fc2 = new Linear(16, 10);

  forward(x: Var): Var {
    const h = this.act.call(this.fc1.call(x));
    return this.fc2.call(F.relu(F.matmul(h, this.proj)));
  }
}

export function createModel(seed = 0): ProjectedMlp {
  manualSeed(seed);
  return new ProjectedMlp();
}

/** A batch of `n` random rows in [-1, 1). */
export function exampleBatch(seed: number, n = 4): Tensor {
  manualSeed(1000 + seed);
  return uniformTensor([n, 64], -1, 1);
}
