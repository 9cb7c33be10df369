/**
 * Matrix products. Float dot products accumulate in float64 and round once to the output dtype: for
 * float32 that is at least as accurate as ORT/PyTorch's float32 accumulation and stays well inside
 * the ONNX test tolerance (rtol 1e-3); a fast float32 kernel differs from it by accumulation-order
 * rounding only. Integer matmul is exact (bigint for 32/64-bit operands) and wraps to the dtype.
 */
import { QforgeError, numel, type DType } from "@qforge/ir";
import { registerKernel, type KernelContext } from "../kernel.js";
import { floatData, type FloatArray } from "./float-data.js";
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
  // Floats, and integers below 32 bits (their products and sums stay exact in float64). Row i of
  // the product accumulates a[i, p] * b[p, :] for p = 0, 1, ...: each element sums its products in
  // the order of p, as a dot product would, but the inner loop runs along contiguous rows of b.
  const va = floatData(a);
  const vb = floatData(b);
  const out = new Float64Array(total);
  for (let t = 0; t < batches; t++) {
    const ao = ia[t]! * m * k;
    const bo = ib[t]! * k * n;
    for (let i = 0; i < m; i++) {
      const oo = (t * m + i) * n;
      const ai = ao + i * k;
      let p = 0;
      // Four rows of b per pass; the additions onto each running sum stay in the order of p.
      for (; p + 4 <= k; p += 4) {
        const a0 = va[ai + p]!;
        const a1 = va[ai + p + 1]!;
        const a2 = va[ai + p + 2]!;
        const a3 = va[ai + p + 3]!;
        const b0 = bo + p * n;
        const b1 = b0 + n;
        const b2 = b1 + n;
        const b3 = b2 + n;
        for (let j = 0; j < n; j++) {
          let s = out[oo + j]!;
          s += a0 * vb[b0 + j]!;
          s += a1 * vb[b1 + j]!;
          s += a2 * vb[b2 + j]!;
          s += a3 * vb[b3 + j]!;
          out[oo + j] = s;
        }
      }
      for (; p < k; p++) {
        const av = va[ai + p]!;
        const bp = bo + p * n;
        for (let j = 0; j < n; j++) out[oo + j] = out[oo + j]! + av * vb[bp + j]!;
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
  const vx = floatData(x);
  const vw = floatData(w);
  const vb = bias === undefined ? undefined : floatData(bias);
  const out = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    const xo = r * inF;
    for (let o = 0; o < outF; o++) {
      const wo = o * inF;
      let s = 0;
      for (let p = 0; p < inF; p++) s += vx[xo + p]! * vw[wo + p]!;
      out[r * outF + o] = s + (vb === undefined ? 0 : vb[o]!);
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
  const va = floatData(a);
  const vb = floatData(b);
  const ic = c === undefined ? undefined : broadcastIndex(c.shape, shape);
  const vc = c === undefined ? undefined : readNumbers(c);
  // A' as [m, k] rows and B' as [n, k] rows (transposed once), so each dot product reads two
  // contiguous rows; the products are summed in the order of p as before.
  const ar = transA ? transposed(va, k, m) : va;
  const br = transB ? vb : transposed(vb, k, n);
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const ai = i * k;
    for (let j = 0; j < n; j++) {
      const bj = j * k;
      let s = 0;
      for (let p = 0; p < k; p++) s += ar[ai + p]! * br[bj + p]!;
      const cv = vc === undefined ? 0 : beta * vc[ic![i * n + j]!]!;
      out[i * n + j] = alpha * s + cv;
    }
  }
  return [fromValues(a.dtype, shape, out)];
});

/** The [cols, rows] transpose of a row-major [rows, cols] matrix. */
function transposed(v: FloatArray, rows: number, cols: number): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = v[r * cols + c]!;
  return t;
}
