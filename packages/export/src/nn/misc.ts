import { QforgeError } from "@qforge/ir";
import * as F from "../functional.js";
import { Module } from "../module.js";
import type { Var } from "../var.js";

/** torch.nn.Flatten(start_dim=1, end_dim=-1) */
export class Flatten extends Module {
  constructor(readonly startDim = 1, readonly endDim = -1) {
    super();
  }
  forward(x: Var): Var { return F.flatten(x, this.startDim, this.endDim); }
}

/** torch.nn.Dropout(p): identity in eval mode; random zeroing in eager training mode. */
export class Dropout extends Module {
  readonly p: number;
  constructor(p = 0.5) {
    super();
    if (!(p >= 0 && p <= 1)) throw new QforgeError("BAD_CONFIG", `dropout probability has to be between 0 and 1, got ${p}`);
    this.p = p;
  }
  forward(x: Var): Var { return F.dropout(x, this.p, this.training); }
}

/** torch.nn.Identity */
export class Identity extends Module {
  forward(x: Var): Var { return F.identity(x); }
}
