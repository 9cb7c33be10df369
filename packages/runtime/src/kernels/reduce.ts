/**
 * ONNX ReduceMean-18 / ReduceSum-13 / ReduceMax-18 / ReduceMin-18 with the axes input. Float sums
 * accumulate in float64 and round once; integer sums are exact (bigint for 32/64-bit dtypes) and
 * wrap to the dtype; an integer mean truncates toward zero (C division, as ORT). Max/min propagate
 * NaN; over an empty set they give -inf/+inf (the dtype's min/max for integers), the sum 0 and the
 * float mean NaN.
 */
import { QforgeError, dtypeInfo, numel, stridesOf, type Tensor } from "@qforge/ir";
import { registerKernel, type KernelContext } from "../kernel.js";
import { fromValues, forEachIndex, input, isFloatDType, isWideInt, outShape, readBigInts, readInts, readNumbers } from "../util/tensors.js";

/** For each input element, the flat index of the output element it reduces into. */
function reductionMap(x: Tensor, attrs: Readonly<Record<string, unknown>>, axesT: Tensor | undefined, ctx: KernelContext): Int32Array {
  const r = x.shape.length;
  const axes = axesT === undefined ? [] : readInts(axesT).map((a) => (a < 0 ? a + r : a));
  const noop = (attrs["noop_with_empty_axes"] as number) !== 0;
  const target = new Int32Array(numel(x.shape));
  if (axes.length === 0 && noop) {
    target.forEach((_, i) => { target[i] = i; });
    return target;
  }
  const reduced = new Set(axes.length === 0 ? x.shape.map((_, i) => i) : axes);
  // Output strides over the input's dims: 0 along reduced dims (keepdims or not, the flat index is the same).
  const kept = x.shape.map((d, i) => (reduced.has(i) ? 1 : d));
  const keptStrides = stridesOf(kept);
  const strides = x.shape.map((_, i) => (reduced.has(i) ? 0 : keptStrides[i]!));
  if (numel(outShape(ctx)) !== numel(kept)) throw new QforgeError("BAD_SHAPE", `${ctx.op}: output shape does not match the reduction`, { node: ctx.node });
  forEachIndex(x.shape, (coords, i) => {
    let t = 0;
    for (let d = 0; d < r; d++) t += coords[d]! * strides[d]!;
    target[i] = t;
  });
  return target;
}

type Kind = "sum" | "mean" | "max" | "min";

function reduceKernel(op: string, kind: Kind): void {
  registerKernel(op, (inputs, attrs, ctx) => {
    const x = input(inputs, 0, ctx);
    const shape = outShape(ctx);
    const m = numel(shape);
    const target = reductionMap(x, attrs, inputs[1], ctx);
    const counts = new Float64Array(m);
    target.forEach((t) => { counts[t]! += 1; });
    const info = dtypeInfo(x.dtype);
    if (isWideInt(x.dtype)) {
      const v = readBigInts(x);
      const acc: (bigint | undefined)[] = new Array(m).fill(undefined);
      v.forEach((e, i) => {
        const t = target[i]!;
        const a = acc[t];
        if (a === undefined) acc[t] = e;
        else if (kind === "max") acc[t] = e > a ? e : a;
        else if (kind === "min") acc[t] = e < a ? e : a;
        else acc[t] = a + e;
      });
      const empty = (): bigint => {
        if (kind === "max") return BigInt(info.min);
        if (kind === "min") return BigInt(info.max);
        if (kind === "mean") throw new QforgeError("BAD_DATA", `${op}: integer mean over an empty set`, { node: ctx.node });
        return 0n;
      };
      return [fromValues(x.dtype, shape, acc.map((a, t) => (a === undefined ? empty() : kind === "mean" ? a / BigInt(counts[t]!) : a)))];
    }
    const float = isFloatDType(x.dtype);
    const v = readNumbers(x);
    const init = kind === "max" ? (float ? -Infinity : info.min) : kind === "min" ? (float ? Infinity : info.max) : 0;
    const acc = new Float64Array(m).fill(init);
    v.forEach((e, i) => {
      const t = target[i]!;
      const a = acc[t]!;
      // Math.max/min return NaN when either operand is NaN.
      if (kind === "max") acc[t] = Math.max(a, e);
      else if (kind === "min") acc[t] = Math.min(a, e);
      else acc[t] = a + e;
    });
    if (kind === "mean") {
      acc.forEach((a, t) => {
        const n = counts[t]!;
        if (float) acc[t] = a / n;
        else if (n === 0) throw new QforgeError("BAD_DATA", `${op}: integer mean over an empty set`, { node: ctx.node });
        else acc[t] = Math.trunc(a / n);
      });
    }
    return [fromValues(x.dtype, shape, acc)];
  });
}

reduceKernel("reduce_sum", "sum");
reduceKernel("reduce_mean", "mean");
reduceKernel("reduce_max", "max");
reduceKernel("reduce_min", "min");
