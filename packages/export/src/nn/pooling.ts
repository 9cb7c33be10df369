import * as F from "../functional.js";
import { Module } from "../module.js";
import type { Var } from "../var.js";

/** torch.nn.MaxPool2d (stride defaults to the kernel size). */
export class MaxPool2d extends Module {
  constructor(readonly kernelSize: F.Pair, readonly opts: F.MaxPool2dOptions = {}) {
    super();
  }
  forward(x: Var): Var { return F.maxPool2d(x, this.kernelSize, this.opts); }
}

/** torch.nn.AvgPool2d (count_include_pad defaults to true, as in torch). */
export class AvgPool2d extends Module {
  constructor(readonly kernelSize: F.Pair, readonly opts: F.AvgPool2dOptions = {}) {
    super();
  }
  forward(x: Var): Var { return F.avgPool2d(x, this.kernelSize, this.opts); }
}

/** torch.nn.AdaptiveAvgPool2d */
export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: number | readonly [number | null, number | null]) {
    super();
  }
  forward(x: Var): Var { return F.adaptiveAvgPool2d(x, this.outputSize); }
}
