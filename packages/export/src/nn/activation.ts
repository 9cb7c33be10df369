import * as F from "../functional.js";
import { Module } from "../module.js";
import type { Var } from "../var.js";

/** torch.nn.ReLU */
export class ReLU extends Module {
  forward(x: Var): Var { return F.relu(x); }
}

/** torch.nn.ReLU6: clamp(x, 0, 6). */
export class ReLU6 extends Module {
  forward(x: Var): Var { return F.relu6(x); }
}

/** torch.nn.Hardswish */
export class Hardswish extends Module {
  forward(x: Var): Var { return F.hardswish(x); }
}

/** torch.nn.Hardsigmoid */
export class Hardsigmoid extends Module {
  forward(x: Var): Var { return F.hardsigmoid(x); }
}

/** torch.nn.Sigmoid */
export class Sigmoid extends Module {
  forward(x: Var): Var { return F.sigmoid(x); }
}

/** torch.nn.Tanh */
export class Tanh extends Module {
  forward(x: Var): Var { return F.tanh(x); }
}

/** torch.nn.GELU(approximate="none" | "tanh") */
export class GELU extends Module {
  readonly approximate: "none" | "tanh";
  constructor(opts: { approximate?: "none" | "tanh" } = {}) {
    super();
    this.approximate = opts.approximate ?? "none";
  }
  forward(x: Var): Var { return F.gelu(x, this.approximate); }
}

/** torch.nn.Softmax(dim); the dim is required (torch's implicit-dim form is deprecated). */
export class Softmax extends Module {
  constructor(readonly dim: number) {
    super();
  }
  forward(x: Var): Var { return F.softmax(x, this.dim); }
}
