/** A small MLP: hidden Linear -> GELU -> LayerNorm -> Dropout blocks in a ModuleList, then a classifier. */
import { Dropout, GELU, LayerNorm, Linear, manualSeed, Module, ModuleList, Softmax, uniformTensor, type Var } from "@qforge/export";
import type { Tensor } from "@qforge/ir";

export class HiddenBlock extends Module {
  fc: Linear;
  act = new GELU();
  norm: LayerNorm;
  drop = new Dropout(0.1);

  constructor(inFeatures: number, outFeatures: number) {
    super();
    this.fc = new Linear(inFeatures, outFeatures);
    this.norm = new LayerNorm(outFeatures);
  }

  forward(x: Var): Var {
    return this.drop.call(this.norm.call(this.act.call(this.fc.call(x))));
  }
}

export class MLP extends Module {
  layers: ModuleList<HiddenBlock>;
  classifier: Linear;
  softmax = new Softmax(-1);

  constructor(sizes: readonly number[] = [16, 32, 32], numClasses = 10) {
    super();
    this.layers = new ModuleList(sizes.slice(1).map((s, i) => new HiddenBlock(sizes[i]!, s)));
    this.classifier = new Linear(sizes[sizes.length - 1]!, numClasses);
  }

  forward(x: Var): Var {
    let h = x;
    for (const layer of this.layers) h = layer.call(h);
    return this.softmax.call(this.classifier.call(h));
  }
}

export function createModel(seed = 0): MLP {
  manualSeed(seed);
  return new MLP().eval();
}

/** A random [n, 16] batch in [-2, 2). */
export function exampleInput(seed = 1, n = 4): Tensor {
  manualSeed(seed);
  return uniformTensor([n, 16], -2, 2);
}
