/**
 * Matrix products. Float dot products accumulate in float64 and round once to the output dtype: for
 * float32 that is at least as accurate as ORT/PyTorch's float32 accumulation and stays well inside
 * the ONNX test tolerance (rtol 1e-3); a fast float32 kernel differs from it by accumulation-order
 * rounding only. Integer matmul is exact (bigint for 32/64-bit operands) and wraps to the dtype.
 */
import { QforgeError, numel, type DType } from "@qforge/ir";
import { registerKernel, type KernelContext } from "../kernel.js";
import { broadcastIndex, fromValues, input, isFloatDType, isWideInt, opmathRound, outShape, readBigInts, readNumbers } from "../util/tensors.js";

function requireFloat(ctx: KernelContext, dtype: DType): void {
  if (!isFloatDType(dtype)) throw new QforgeError("BAD_DTYPE", `${ctx.op}: the reference kernel supports float tensors, got ${dtype}`, { node: ctx.node });
}

/** numpy.matmul (ONNX MatMul): 1-D operands are promoted to matrices and the added dim dropped. */
registerKernel("matmul", (inputs, _attrs, ctx) => {
  const a = input(inputs, 0, ctx);
  const b = input(inputs, 1, ctx);
  const shape = outShape(ctx);
  const as = a.shape.length === 1 ? [1, a.shape[0]!] : [...a.shape];
  const bs = b.shape.length === 1 ? [b.shape[0]!, 1] : [...b.shape];
  const m = as[as.length - 2]!;
  const k = as[as.length - 1]!;
  const n = bs[bs.length - 1]!;
  const batchShape = shape.slice(0, shape.length - (a.shape.length > 1 ? 1 : 0) - (b.shape.length > 1 ? 1 : 0));
  const ia = broadcastIndex(as.slice(0, -2), batchShape);
  const ib = broadcastIndex(bs.slice(0, -2), batchShape);
  const batches = numel(batchShape);
  const total = batches * m * n;
  if (isWideInt(a.dtype)) {
    const va = readBigInts(a);
    const vb = readBigInts(b);
    const out = new Array<bigint>(total);
    for (let t = 0; t < batches; t++) {
      const ao = ia[t]! * m * k;
      const bo = ib[t]! * k * n;
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let s = 0n;
          for (let p = 0; p < k; p++) s += va[ao + i * k + p]! * vb[bo + p * n + j]!;
          out[(t * m + i) * n + j] = s;
        }
      }
    }
    return [fromValues(a.dtype, shape, out)];
  }
  // Floats, and integers below 32 bits (their products and sums stay exact in float64).
  const va = readNumbers(a);
  const vb = readNumbers(b);
  const out = new Float64Array(total);
  for (let t = 0; t < batches; t++) {
    const ao = ia[t]! * m * k;
    const bo = ib[t]! * k * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += va[ao + i * k + p]! * vb[bo + p * n + j]!;
        out[(t * m + i) * n + j] = s;
      }
    }
  }
  return [fromValues(a.dtype, shape, out)];
});

/** torch.nn.functional.linear: y = x @ W^T + b, W [out, in]. */
registerKernel("linear", (inputs, _attrs, ctx) => {
  const x = input(inputs, 0, ctx);
  const w = input(inputs, 1, ctx);
  const bias = inputs[2];
  requireFloat(ctx, x.dtype);
  const shape = outShape(ctx);
  const [outF, inF] = [w.shape[0]!, w.shape[1]!];
  const rows = numel(x.shape) / (inF || 1);
  const vx = readNumbers(x);
  const vw = readNumbers(w);
  const vb = bias === undefined ? undefined : readNumbers(bias);
  const out = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outF; o++) {
      let s = 0;
      for (let p = 0; p < inF; p++) s += vx[r * inF + p]! * vw[o * inF + p]!;
      out[r * outF + o] = s + (vb?.[o] ?? 0);
    }
  }
  return [fromValues(x.dtype, shape, out)];
});

/** ONNX Gemm-13: Y = alpha * A' @ B' + beta * C, A' = A^T when transA (likewise B); C broadcasts to [M, N]. */
registerKernel("gemm", (inputs, attrs, ctx) => {
  const a = input(inputs, 0, ctx);
  const b = input(inputs, 1, ctx);
  const c = inputs[2];
  requireFloat(ctx, a.dtype);
  const shape = outShape(ctx);
  const [m, n] = [shape[0]!, shape[1]!];
  const transA = (attrs["transA"] as number) !== 0;
  const transB = (attrs["transB"] as number) !== 0;
  const k = transA ? a.shape[0]! : a.shape[1]!;
  const r = opmathRound(a.dtype);
  const alpha = r(attrs["alpha"] as number);
  const beta = r(attrs["beta"] as number);
  const va = readNumbers(a);
  const vb = readNumbers(b);
  const ic = c === undefined ? undefined : broadcastIndex(c.shape, shape);
  const vc = c === undefined ? undefined : readNumbers(c);
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) {
        const av = transA ? va[p * m + i]! : va[i * k + p]!;
        const bv = transB ? vb[j * k + p]! : vb[p * n + j]!;
        s += av * bv;
      }
      const cv = vc === undefined ? 0 : beta * vc[ic![i * n + j]!]!;
      out[i * n + j] = alpha * s + cv;
    }
  }
  return [fromValues(a.dtype, shape, out)];
});
