import type { Dim } from "../graph.js";
import type { InferContext } from "./registry.js";
import { broadcastShapes, dimsCompatible, registerOp, req, sameDType } from "./registry.js";

/** Matrix products and convolutions: ONNX semantics unless stated; `linear` is torch's. */

function mismatch(ctx: InferContext, what: string, a: Dim, b: Dim): void {
  if (!dimsCompatible(a, b)) ctx.fail(`${what}: ${a} vs ${b}`);
}

registerOp({
  name: "matmul",
  family: "compute",
  doc: "numpy.matmul (ONNX MatMul): 1-D operands are promoted and the added dim removed; batch dims broadcast",
  attrs: {},
  inputs: [{ name: "A" }, { name: "B" }],
  outputs: [{ name: "Y" }],
  infer: (ctx) => {
    const dtype = sameDType(ctx, 0, 1);
    const a = req(ctx, 0).shape;
    const b = req(ctx, 1).shape;
    if (a.length === 0 || b.length === 0) ctx.fail("matmul operands must have rank >= 1");
    const a2 = a.length === 1 ? [1, a[0]!] : a;
    const b2 = b.length === 1 ? [b[0]!, 1] : b;
    mismatch(ctx, "inner dimensions differ", a2[a2.length - 1]!, b2[b2.length - 2]!);
    const batch = broadcastShapes(ctx, a2.slice(0, -2), b2.slice(0, -2));
    const shape: Dim[] = [...batch];
    if (a.length > 1) shape.push(a2[a2.length - 2]!);
    if (b.length > 1) shape.push(b2[b2.length - 1]!);
    return [{ dtype, shape }];
  },
});

registerOp({
  name: "linear",
  family: "compute",
  doc: "torch.nn.functional.linear: y = x @ W^T + b with W [out, in], b [out]",
  attrs: {},
  inputs: [{ name: "input" }, { name: "weight" }, { name: "bias", optional: true }],
  outputs: [{ name: "output" }],
  infer: (ctx) => {
    const x = req(ctx, 0);
    const w = req(ctx, 1).shape;
    if (w.length !== 2) ctx.fail(`weight must be 2-D, got [${w.join(",")}]`);
    if (x.shape.length < 1) ctx.fail("input must have rank >= 1");
    mismatch(ctx, "input features differ from weight's", x.shape[x.shape.length - 1]!, w[1]!);
    const b = ctx.inputs[2];
    if (b !== undefined && (b.shape.length !== 1 || !dimsCompatible(b.shape[0]!, w[0]!))) {
      ctx.fail(`bias must be [${w[0]}], got [${b.shape.join(",")}]`);
    }
    return [{ dtype: x.dtype, shape: [...x.shape.slice(0, -1), w[0]!] }];
  },
});

registerOp({
  name: "gemm",
  family: "compute",
  doc: "ONNX Gemm: Y = alpha * A' @ B' + beta * C, A' = transA ? A^T : A (2-D operands)",
  attrs: {
    alpha: { type: "float", default: 1 }, beta: { type: "float", default: 1 },
    transA: { type: "int", default: 0 }, transB: { type: "int", default: 0 },
  },
  inputs: [{ name: "A" }, { name: "B" }, { name: "C", optional: true }],
  outputs: [{ name: "Y" }],
  infer: (ctx) => {
    const a = req(ctx, 0).shape;
    const b = req(ctx, 1).shape;
    if (a.length !== 2 || b.length !== 2) ctx.fail("gemm operands must be 2-D");
    const [m, ka] = ctx.attr<number>("transA") ? [a[1]!, a[0]!] : [a[0]!, a[1]!];
    const [kb, n] = ctx.attr<number>("transB") ? [b[1]!, b[0]!] : [b[0]!, b[1]!];
    mismatch(ctx, "inner dimensions differ", ka, kb);
    const c = ctx.inputs[2];
    if (c !== undefined) broadcastShapes(ctx, [m, n], c.shape);
    return [{ dtype: req(ctx, 0).dtype, shape: [m, n] }];
  },
});

/** Spatial output size of a convolution or pooling window (ONNX conv/pool formulas). */
export function windowOutDim(
  ctx: Pick<InferContext, "fail">,
  inDim: Dim, kernel: number, stride: number, padBegin: number, padEnd: number, dilation: number,
  autoPad: string, ceilMode = false,
): Dim {
  if (typeof inDim === "string") return `${inDim}'`;
  const eff = (kernel - 1) * dilation + 1;
  if (autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") return Math.ceil(inDim / stride);
  const padded = autoPad === "VALID" ? inDim : inDim + padBegin + padEnd;
  if (padded < eff) ctx.fail(`window of ${eff} does not fit a dimension of ${padded}`);
  const q = (padded - eff) / stride;
  let out = (ceilMode ? Math.ceil(q) : Math.floor(q)) + 1;
  // ONNX/torch: the last pooling window must start inside the input or left padding.
  if (ceilMode && (out - 1) * stride >= inDim + padBegin) out -= 1;
  return out;
}

/** Reads kernel/stride/pad/dilation attributes for `spatial` dims with ONNX defaults. */
export function windowAttrs(ctx: InferContext, spatial: number, kernelShape: readonly number[]): {
  strides: number[]; pads: number[]; dilations: number[]; autoPad: string;
} {
  const strides = ctx.attrOpt<number[]>("strides") ?? new Array<number>(spatial).fill(1);
  const pads = ctx.attrOpt<number[]>("pads") ?? new Array<number>(spatial * 2).fill(0);
  const dilations = ctx.attrOpt<number[]>("dilations") ?? new Array<number>(spatial).fill(1);
  const autoPad = ctx.attrOpt<string>("auto_pad") ?? "NOTSET";
  if (strides.length !== spatial || dilations.length !== spatial || pads.length !== 2 * spatial || kernelShape.length !== spatial) {
    ctx.fail(`window attributes do not match ${spatial} spatial dims (strides [${strides}], pads [${pads}], dilations [${dilations}], kernel [${kernelShape}])`);
  }
  return { strides: [...strides], pads: [...pads], dilations: [...dilations], autoPad };
}

const convAttrs = {
  strides: { type: "ints", doc: "per spatial dim; default 1" },
  pads: { type: "ints", doc: "[begin..., end...]; default 0" },
  dilations: { type: "ints", doc: "default 1" },
  group: { type: "int", default: 1 },
  auto_pad: { type: "string", default: "NOTSET", doc: "NOTSET | SAME_UPPER | SAME_LOWER | VALID" },
  kernel_shape: { type: "ints", doc: "defaults to the weight's spatial shape" },
} as const;

registerOp({
  name: "conv",
  family: "compute",
  doc: "N-d convolution, ONNX Conv semantics (NC... layout, weight [M, C/group, k...]); torch Conv1d/2d/3d lower to it",
  attrs: convAttrs,
  inputs: [{ name: "X" }, { name: "W" }, { name: "B", optional: true }],
  outputs: [{ name: "Y" }],
  infer: (ctx) => {
    const x = req(ctx, 0);
    const w = req(ctx, 1).shape;
    if (x.shape.length < 3 || w.length !== x.shape.length) ctx.fail(`input [${x.shape.join(",")}] and weight [${w.join(",")}] ranks do not fit a convolution`);
    const spatial = x.shape.length - 2;
    const group = ctx.attr<number>("group");
    const c = x.shape[1]!;
    if (typeof c === "number" && typeof w[1] === "number" && c !== w[1] * group) {
      ctx.fail(`input channels ${c} != weight channels ${w[1]} x group ${group}`);
    }
    const kernel = w.slice(2).map((d) => (typeof d === "number" ? d : ctx.fail("weight spatial dims must be static")));
    const { strides, pads, dilations, autoPad } = windowAttrs(ctx, spatial, ctx.attrOpt<number[]>("kernel_shape") ?? kernel);
    const out: Dim[] = [x.shape[0]!, w[0]!];
    for (let i = 0; i < spatial; i++) {
      out.push(windowOutDim(ctx, x.shape[2 + i]!, kernel[i]!, strides[i]!, pads[i]!, pads[spatial + i]!, dilations[i]!, autoPad));
    }
    const b = ctx.inputs[2];
    if (b !== undefined && (b.shape.length !== 1 || !dimsCompatible(b.shape[0]!, w[0]!))) ctx.fail(`bias must be [${w[0]}]`);
    return [{ dtype: x.dtype, shape: out }];
  },
});

registerOp({
  name: "conv_transpose",
  family: "compute",
  doc: "N-d transposed convolution, ONNX ConvTranspose semantics (weight [C, M/group, k...])",
  attrs: { ...convAttrs, output_padding: { type: "ints" }, output_shape: { type: "ints" } },
  inputs: [{ name: "X" }, { name: "W" }, { name: "B", optional: true }],
  outputs: [{ name: "Y" }],
  infer: (ctx) => {
    const x = req(ctx, 0);
    const w = req(ctx, 1).shape;
    if (x.shape.length < 3 || w.length !== x.shape.length) ctx.fail("input and weight ranks do not fit a transposed convolution");
    const spatial = x.shape.length - 2;
    const group = ctx.attr<number>("group");
    const kernel = w.slice(2).map((d) => (typeof d === "number" ? d : ctx.fail("weight spatial dims must be static")));
    const { strides, pads, dilations, autoPad } = windowAttrs(ctx, spatial, ctx.attrOpt<number[]>("kernel_shape") ?? kernel);
    const outPad = ctx.attrOpt<number[]>("output_padding") ?? new Array<number>(spatial).fill(0);
    const outShape = ctx.attrOpt<number[]>("output_shape");
    const m = typeof w[1] === "number" ? w[1] * group : w[1]!;
    const out: Dim[] = [x.shape[0]!, m];
    for (let i = 0; i < spatial; i++) {
      const d = x.shape[2 + i]!;
      if (outShape !== undefined) {
        out.push(outShape[outShape.length - spatial + i]!);
      } else if (typeof d === "string") {
        out.push(`${d}'`);
      } else if (autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") {
        out.push(d * strides[i]!);
      } else {
        out.push(strides[i]! * (d - 1) + outPad[i]! + (kernel[i]! - 1) * dilations[i]! + 1 - pads[i]! - pads[spatial + i]!);
      }
    }
    return [{ dtype: x.dtype, shape: out }];
  },
});

registerOp({
  name: "batch_norm",
  family: "compute",
  doc: "ONNX BatchNormalization (inference: y = (x - mean) / sqrt(var + eps) * scale + B over channel dim 1)",
  attrs: { epsilon: { type: "float", default: 1e-5 }, momentum: { type: "float", default: 0.9 }, training_mode: { type: "int", default: 0 } },
  inputs: [{ name: "X" }, { name: "scale" }, { name: "B" }, { name: "input_mean" }, { name: "input_var" }],
  outputs: [{ name: "Y" }, { name: "running_mean", optional: true }, { name: "running_var", optional: true }],
  infer: (ctx) => {
    const x = req(ctx, 0);
    if (x.shape.length < 2) ctx.fail("input must have a channel dim");
    const c = x.shape[1]!;
    for (let i = 1; i < 5; i++) {
      const p = req(ctx, i).shape;
      if (p.length !== 1 || !dimsCompatible(p[0]!, c)) ctx.fail(`parameter #${i} must be [${c}], got [${p.join(",")}]`);
    }
    return [{ ...x }, { dtype: req(ctx, 3).dtype, shape: [c] }, { dtype: req(ctx, 4).dtype, shape: [c] }];
  },
});
