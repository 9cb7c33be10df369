import { QforgeError } from "@qforge/ir";
import * as F from "../functional.js";
import { Module } from "../module.js";
import { kaimingUniformTensor } from "../random.js";
import { Parameter } from "../state.js";
import type { Var } from "../var.js";

type Pair = F.Pair;

function pair(v: Pair): [number, number] {
  return typeof v === "number" ? [v, v] : [v[0], v[1]];
}

function checkChannels(kind: string, inChannels: number, outChannels: number, groups: number, kernel: [number, number]): void {
  for (const [what, v] of [["in_channels", inChannels], ["out_channels", outChannels], ["groups", groups]] as const) {
    if (!Number.isInteger(v) || v <= 0) throw new QforgeError("BAD_CONFIG", `${kind} ${what} must be a positive integer, got ${v}`);
  }
  if (inChannels % groups !== 0) throw new QforgeError("BAD_CONFIG", `${kind}: in_channels (${inChannels}) must be divisible by groups (${groups})`);
  if (outChannels % groups !== 0) throw new QforgeError("BAD_CONFIG", `${kind}: out_channels (${outChannels}) must be divisible by groups (${groups})`);
  if (!kernel.every((k) => Number.isInteger(k) && k > 0)) throw new QforgeError("BAD_CONFIG", `${kind}: kernel_size must be positive integers, got [${kernel.join(",")}]`);
}

export interface Conv2dConfig {
  stride?: Pair;
  padding?: Pair | "same" | "valid";
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
}

/** torch.nn.Conv2d (zeros padding mode): weight [out, in/groups, kh, kw]. */
export class Conv2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number] | "same" | "valid";
  readonly dilation: [number, number];
  readonly groups: number;
  weight: Parameter;
  bias: Parameter | undefined;

  constructor(inChannels: number, outChannels: number, kernelSize: Pair, opts: Conv2dConfig = {}) {
    super();
    this.kernelSize = pair(kernelSize);
    this.groups = opts.groups ?? 1;
    checkChannels("Conv2d", inChannels, outChannels, this.groups, this.kernelSize);
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.stride = pair(opts.stride ?? 1);
    this.dilation = pair(opts.dilation ?? 1);
    const padding = opts.padding ?? 0;
    if (typeof padding === "string") {
      if (padding !== "same" && padding !== "valid") {
        throw new QforgeError("BAD_CONFIG", `Conv2d: invalid padding string '${String(padding)}'`, { hint: "use 'same', 'valid' or numbers" });
      }
      if (padding === "same" && (this.stride[0] !== 1 || this.stride[1] !== 1)) {
        throw new QforgeError("BAD_CONFIG", "Conv2d: padding='same' is not supported for strided convolutions");
      }
      this.padding = padding;
    } else {
      this.padding = pair(padding);
    }
    // torch _ConvNd.reset_parameters: fan_in = in/groups * kh * kw for weight and bias bounds.
    const fanIn = (inChannels / this.groups) * this.kernelSize[0] * this.kernelSize[1];
    this.weight = new Parameter(kaimingUniformTensor([outChannels, inChannels / this.groups, ...this.kernelSize], fanIn));
    this.bias = (opts.bias ?? true) ? new Parameter(kaimingUniformTensor([outChannels], fanIn)) : undefined;
  }

  forward(x: Var): Var {
    return F.conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups });
  }
}

export interface ConvTranspose2dConfig {
  stride?: Pair;
  padding?: Pair;
  outputPadding?: Pair;
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
}

/** torch.nn.ConvTranspose2d: weight [in, out/groups, kh, kw]. */
export class ConvTranspose2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly outputPadding: [number, number];
  readonly dilation: [number, number];
  readonly groups: number;
  weight: Parameter;
  bias: Parameter | undefined;

  constructor(inChannels: number, outChannels: number, kernelSize: Pair, opts: ConvTranspose2dConfig = {}) {
    super();
    this.kernelSize = pair(kernelSize);
    this.groups = opts.groups ?? 1;
    checkChannels("ConvTranspose2d", inChannels, outChannels, this.groups, this.kernelSize);
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.stride = pair(opts.stride ?? 1);
    this.padding = pair(opts.padding ?? 0);
    this.outputPadding = pair(opts.outputPadding ?? 0);
    this.dilation = pair(opts.dilation ?? 1);
    // torch computes fan_in from the weight's dim 1 (out/groups) for transposed convolutions.
    const fanIn = (outChannels / this.groups) * this.kernelSize[0] * this.kernelSize[1];
    this.weight = new Parameter(kaimingUniformTensor([inChannels, outChannels / this.groups, ...this.kernelSize], fanIn));
    this.bias = (opts.bias ?? true) ? new Parameter(kaimingUniformTensor([outChannels], fanIn)) : undefined;
  }

  forward(x: Var): Var {
    return F.convTranspose2d(x, this.weight, this.bias, {
      stride: this.stride, padding: this.padding, outputPadding: this.outputPadding, dilation: this.dilation, groups: this.groups,
    });
  }
}
