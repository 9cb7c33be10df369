/**
 * Normalization and softmax. Statistics (means, variances, exp sums) are computed in float64 and
 * each output element is rounded once: at least as accurate as ORT's float32 computation and within
 * the ONNX tolerance of it.
 */
import { QforgeError, numel } from "@qforge/ir";
import { registerKernel } from "../kernel.js";
import { broadcastIndex, fromValues, input, opmathRound, outShape, readNumbers } from "../util/tensors.js";

/** Splits a shape at `axis` into outer (before), n (the axis) and inner (after) element counts. */
function around(shape: readonly number[], axis: number): { outer: number; n: number; inner: number } {
  return { outer: numel(shape.slice(0, axis)), n: shape[axis] ?? 1, inner: numel(shape.slice(axis + 1)) };
}

function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** ONNX Softmax-13 / LogSoftmax-13 along one axis, max-subtracted for range. */
function softmaxKernel(op: string, log: boolean): void {
  registerKernel(op, (inputs, attrs, ctx) => {
    const x = input(inputs, 0, ctx);
    const r = x.shape.length;
    const axis = r === 0 ? 0 : normAxis(attrs["axis"] as number, r);
    const { outer, n, inner } = around(x.shape, axis);
    const v = readNumbers(x);
    const out = new Float64Array(v.length);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        const at = (k: number): number => (o * n + k) * inner + i;
        let max = -Infinity;
        for (let k = 0; k < n; k++) max = Math.max(max, v[at(k)]!);
        let sum = 0;
        for (let k = 0; k < n; k++) sum += Math.exp(v[at(k)]! - max);
        const logSum = Math.log(sum);
        for (let k = 0; k < n; k++) {
          const d = v[at(k)]! - max;
          out[at(k)] = log ? d - logSum : Math.exp(d) / sum;
        }
      }
    }
    return [fromValues(x.dtype, x.shape, out)];
  });
}

softmaxKernel("softmax", false);
softmaxKernel("log_softmax", true);

/**
 * ONNX LayerNormalization-17: over dims [axis, rank): mean, variance mean((x - mean)^2) (population),
 * InvStdDev = 1 / sqrt(var + epsilon), Y = (x - mean) * InvStdDev * Scale + B.
 */
registerKernel("layer_normalization", (inputs, attrs, ctx) => {
  const x = input(inputs, 0, ctx);
  const scale = input(inputs, 1, ctx);
  const bias = inputs[2];
  const r = x.shape.length;
  const axis = normAxis(attrs["axis"] as number, r);
  const normShape = x.shape.slice(axis);
  const outer = numel(x.shape.slice(0, axis));
  const n = numel(normShape);
  const eps = attrs["epsilon"] as number;
  const v = readNumbers(x);
  const vs = readNumbers(scale);
  const is = broadcastIndex(scale.shape, normShape);
  const vb = bias === undefined ? undefined : readNumbers(bias);
  const ib = bias === undefined ? undefined : broadcastIndex(bias.shape, normShape);
  const y = new Float64Array(v.length);
  const means = new Float64Array(outer);
  const invStd = new Float64Array(outer);
  for (let o = 0; o < outer; o++) {
    let s = 0;
    for (let k = 0; k < n; k++) s += v[o * n + k]!;
    const mean = s / n;
    let sq = 0;
    for (let k = 0; k < n; k++) sq += (v[o * n + k]! - mean) ** 2;
    const inv = 1 / Math.sqrt(sq / n + eps);
    means[o] = mean;
    invStd[o] = inv;
    for (let k = 0; k < n; k++) {
      y[o * n + k] = (v[o * n + k]! - mean) * inv * vs[is[k]!]! + (vb === undefined ? 0 : vb[ib![k]!]!);
    }
  }
  const outs = [fromValues(x.dtype, x.shape, y)];
  if (ctx.numOutputs > 1) {
    // Mean and InvStdDev: the stash type the schema inferred, dims from axis on kept as 1.
    const statType = ctx.outputTypes[1]!.dtype;
    const statShape = outShape(ctx, 1);
    outs.push(fromValues(statType, statShape, means), fromValues(statType, statShape, invStd));
  }
  return outs;
});

/**
 * ONNX BatchNormalization-15 over channel dim 1. Inference: y = (x - mean) / sqrt(var + eps) * scale
 * + B with the given statistics. training_mode=1: the batch's own mean and population variance
 * normalize, and running_mean/var = input * momentum + batch statistic * (1 - momentum).
 */
registerKernel("batch_norm", (inputs, attrs, ctx) => {
  const x = input(inputs, 0, ctx);
  const [scale, bias, mean, variance] = [1, 2, 3, 4].map((i) => readNumbers(input(inputs, i, ctx)));
  const training = (attrs["training_mode"] as number) !== 0;
  if (x.shape.length < 2) throw new QforgeError("BAD_SHAPE", "batch_norm: input needs a channel dim", { node: ctx.node });
  const c = x.shape[1]!;
  const { outer: batch, inner } = around(x.shape, 1);
  const r = opmathRound(x.dtype);
  const eps = r(attrs["epsilon"] as number);
  const momentum = r(attrs["momentum"] as number);
  const v = readNumbers(x);
  const useMean = new Float64Array(c);
  const useVar = new Float64Array(c);
  for (let ch = 0; ch < c; ch++) {
    if (!training) {
      useMean[ch] = mean![ch]!;
      useVar[ch] = variance![ch]!;
      continue;
    }
    const count = batch * inner;
    let s = 0;
    for (let b = 0; b < batch; b++) for (let i = 0; i < inner; i++) s += v[(b * c + ch) * inner + i]!;
    const m = s / count;
    let sq = 0;
    for (let b = 0; b < batch; b++) for (let i = 0; i < inner; i++) sq += (v[(b * c + ch) * inner + i]! - m) ** 2;
    useMean[ch] = m;
    useVar[ch] = sq / count;
  }
  const y = new Float64Array(v.length);
  for (let b = 0; b < batch; b++) {
    for (let ch = 0; ch < c; ch++) {
      const k = scale![ch]! / Math.sqrt(useVar[ch]! + eps);
      for (let i = 0; i < inner; i++) {
        const at = (b * c + ch) * inner + i;
        y[at] = (v[at]! - useMean[ch]!) * k + bias![ch]!;
      }
    }
  }
  const outs = [fromValues(x.dtype, x.shape, y)];
  if (ctx.numOutputs > 1) {
    const blend = (running: Float64Array, batchStat: Float64Array): Float64Array =>
      running.map((rv, ch) => (training ? rv * momentum + batchStat[ch]! * (1 - momentum) : rv));
    outs.push(fromValues(ctx.outputTypes[1]!.dtype, [c], blend(mean!, useMean)));
    if (ctx.numOutputs > 2) outs.push(fromValues(ctx.outputTypes[2]!.dtype, [c], blend(variance!, useVar)));
  }
  return outs;
});
