import { full, QforgeError, scalar, zeros } from "@qforge/ir";
import * as F from "../functional.js";
import { Module } from "../module.js";
import { Buffer, Parameter } from "../state.js";
import type { Var } from "../var.js";

/**
 * torch.nn.BatchNorm2d. State names follow torch's state_dict (`running_mean`, `running_var`,
 * `num_batches_tracked`), hence the snake_case properties. Eval mode normalizes with the running
 * statistics; training mode (eager only) with the batch's, updating the running ones.
 */
export class BatchNorm2d extends Module {
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number;
  weight: Parameter | undefined;
  bias: Parameter | undefined;
  running_mean: Buffer;
  running_var: Buffer;
  num_batches_tracked: Buffer;

  constructor(numFeatures: number, opts: { eps?: number; momentum?: number; affine?: boolean } = {}) {
    super();
    if (!Number.isInteger(numFeatures) || numFeatures <= 0) throw new QforgeError("BAD_CONFIG", `BatchNorm2d num_features must be a positive integer, got ${numFeatures}`);
    this.numFeatures = numFeatures;
    this.eps = opts.eps ?? 1e-5;
    this.momentum = opts.momentum ?? 0.1;
    const affine = opts.affine ?? true;
    this.weight = affine ? new Parameter(full("float32", [numFeatures], 1)) : undefined;
    this.bias = affine ? new Parameter(zeros("float32", [numFeatures])) : undefined;
    this.running_mean = new Buffer(zeros("float32", [numFeatures]));
    this.running_var = new Buffer(full("float32", [numFeatures], 1));
    this.num_batches_tracked = new Buffer(scalar("int64", 0n));
  }

  forward(x: Var): Var {
    if (x.ndim !== 4) throw new QforgeError("BAD_SHAPE", `BatchNorm2d expected 4D input, got [${x.dims.join(",")}]`);
    const y = F.batchNorm(x, this.running_mean, this.running_var, this.weight, this.bias, {
      training: this.training, momentum: this.momentum, eps: this.eps,
    });
    if (this.training) {
      const n = this.num_batches_tracked.data.data[0] as bigint;
      this.num_batches_tracked.assign(scalar("int64", n + 1n), "num_batches_tracked");
    }
    return y;
  }
}

/** torch.nn.LayerNorm over the trailing `normalizedShape` dims. */
export class LayerNorm extends Module {
  readonly normalizedShape: number[];
  readonly eps: number;
  weight: Parameter | undefined;
  bias: Parameter | undefined;

  constructor(normalizedShape: number | readonly number[], opts: { eps?: number; elementwiseAffine?: boolean; bias?: boolean } = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === "number" ? [normalizedShape] : [...normalizedShape];
    if (this.normalizedShape.length === 0 || !this.normalizedShape.every((d) => Number.isInteger(d) && d > 0)) {
      throw new QforgeError("BAD_CONFIG", `LayerNorm normalized_shape must be positive integers, got [${this.normalizedShape.join(",")}]`);
    }
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.elementwiseAffine ?? true;
    this.weight = affine ? new Parameter(full("float32", this.normalizedShape, 1)) : undefined;
    this.bias = affine && (opts.bias ?? true) ? new Parameter(zeros("float32", this.normalizedShape)) : undefined;
  }

  forward(x: Var): Var {
    return F.layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}
