/**
 * Integer cores shared by the quantized matmul/linear/conv kernels: int32 accumulation of
 * (x - x_zero_point) * (w - w_zero_point). Accumulators are computed exactly in doubles (every
 * partial sum of int8/int16 products stays far below 2^53) and wrapped to int32 at the end, which
 * is exactly what an int32 accumulator holds whatever the summation order.
 */
import { numel } from "@qforge/ir";
import { conv2dPlanes, planeGeometry } from "../kernels/conv.js";
import { wrapInt32, type IntArray, type Where, fail } from "./common.js";

/** Integer values minus a zero point: `zp[floor(i / run) % zp.length]` for element i (one zero point per run of `run` elements). */
function centered(v: IntArray, zp: readonly number[], run: number): Float64Array {
  const out = new Float64Array(v.length);
  const z = zp.length;
  if (z === 1) {
    const zv = zp[0]!;
    for (let i = 0; i < v.length; i++) out[i] = v[i]! - zv;
    return out;
  }
  for (let start = 0, c = 0; start < v.length; start += run, c = (c + 1) % z) {
    const zv = zp[c]!;
    const end = Math.min(v.length, start + run);
    for (let i = start; i < end; i++) out[i] = v[i]! - zv;
  }
  return out;
}

/**
 * `y[r, n] = sum_k (x[r, k] - xZp) * (w[n, k] - wZp[n])` for x [rows, K] and w [N, K] (torch's
 * linear layout). Returns int32 accumulators, [rows, N] row-major. Every partial sum is an exact
 * integer in a double, so the order of the sums does not matter: four columns share each x load.
 */
export function linearAccumulate(
  x: IntArray, xZp: number, w: IntArray, wZp: readonly number[], rows: number, k: number, n: number,
): Int32Array {
  const xc = centered(x, [xZp], 1);
  const wc = centered(w, wZp, k);
  const out = new Int32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    const xo = r * k;
    const oo = r * n;
    let j = 0;
    for (; j + 4 <= n; j += 4) {
      const w0 = j * k;
      const w1 = w0 + k;
      const w2 = w1 + k;
      const w3 = w2 + k;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let i = 0; i < k; i++) {
        const xv = xc[xo + i]!;
        s0 += xv * wc[w0 + i]!;
        s1 += xv * wc[w1 + i]!;
        s2 += xv * wc[w2 + i]!;
        s3 += xv * wc[w3 + i]!;
      }
      out[oo + j] = wrapInt32(s0);
      out[oo + j + 1] = wrapInt32(s1);
      out[oo + j + 2] = wrapInt32(s2);
      out[oo + j + 3] = wrapInt32(s3);
    }
    for (; j < n; j++) {
      const wo = j * k;
      let acc = 0;
      for (let i = 0; i < k; i++) acc += xc[xo + i]! * wc[wo + i]!;
      out[oo + j] = wrapInt32(acc);
    }
  }
  return out;
}

/** Result of a broadcasting integer matmul: accumulators and the output shape. */
export interface MatmulResult {
  readonly acc: Int32Array;
  readonly shape: number[];
  /** Rows (M) and columns (N) of each matrix product; the output is [...batch, M, N] before 1-D squeezes. */
  readonly m: number;
  readonly n: number;
}

/**
 * numpy.matmul on integers with zero points: `(a - aZp[row]) @ (b - bZp[col])` where `aZp` has one
 * value per row of a (M) and `bZp` one per column of b (N); batch dims broadcast; 1-D operands are
 * promoted and the added dim removed (ONNX MatMul / MatMulInteger).
 */
export function matmulAccumulate(
  where: Where,
  a: IntArray, aShape: readonly number[], aZp: readonly number[],
  b: IntArray, bShape: readonly number[], bZp: readonly number[],
): MatmulResult {
  if (aShape.length === 0 || bShape.length === 0) fail(where, "BAD_SHAPE", "matmul operands must have rank >= 1");
  const a2 = aShape.length === 1 ? [1, aShape[0]!] : [...aShape];
  const b2 = bShape.length === 1 ? [bShape[0]!, 1] : [...bShape];
  const m = a2[a2.length - 2]!;
  const k = a2[a2.length - 1]!;
  const kb = b2[b2.length - 2]!;
  const n = b2[b2.length - 1]!;
  if (k !== kb) fail(where, "BAD_SHAPE", `inner dimensions differ: [${aShape.join(", ")}] @ [${bShape.join(", ")}]`);
  const aBatch = a2.slice(0, -2);
  const bBatch = b2.slice(0, -2);
  const rank = Math.max(aBatch.length, bBatch.length);
  const batch: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = aBatch[i - (rank - aBatch.length)] ?? 1;
    const db = bBatch[i - (rank - bBatch.length)] ?? 1;
    if (da !== db && da !== 1 && db !== 1) fail(where, "BAD_SHAPE", `batch dims do not broadcast: [${aShape.join(", ")}] @ [${bShape.join(", ")}]`);
    batch.push(da === 1 ? db : da);
  }
  const nb = numel(batch);
  // Offsets of each output batch's matrix inside a and b (broadcast dims reuse index 0).
  const matOffset = (dims: number[], flat: number): number => {
    let off = 0;
    let stride = 1;
    let rem = flat;
    const idx = new Array<number>(rank);
    for (let i = rank - 1; i >= 0; i--) {
      idx[i] = rem % batch[i]!;
      rem = Math.floor(rem / batch[i]!);
    }
    for (let i = dims.length - 1; i >= 0; i--) {
      const bi = idx[i + rank - dims.length]!;
      off += (dims[i] === 1 ? 0 : bi) * stride;
      stride *= dims[i]!;
    }
    return off;
  };
  const ac = centered(a, aZp, k);
  const bc = centered(b, bZp, 1);
  const acc = new Int32Array(nb * m * n);
  // Exact integer sums in doubles (order-free): row i accumulates a[i, p] * b[p, :] over p.
  const row = new Float64Array(n);
  for (let t = 0; t < nb; t++) {
    const ao = matOffset(aBatch, t) * m * k;
    const bo = matOffset(bBatch, t) * k * n;
    const oo = t * m * n;
    for (let i = 0; i < m; i++) {
      row.fill(0);
      const ai = ao + i * k;
      for (let p = 0; p < k; p++) {
        const av = ac[ai + p]!;
        if (av === 0) continue;
        const bp = bo + p * n;
        for (let j = 0; j < n; j++) row[j] = row[j]! + av * bc[bp + j]!;
      }
      for (let j = 0; j < n; j++) acc[oo + i * n + j] = wrapInt32(row[j]!);
    }
  }
  const shape = [...batch];
  if (aShape.length > 1) shape.push(m);
  if (bShape.length > 1) shape.push(n);
  return { acc, shape, m, n };
}

/** Convolution geometry with explicit begin/end pads (resolved auto_pad). */
export interface ConvGeometry {
  readonly strides: readonly number[];
  readonly padsBegin: readonly number[];
  readonly dilations: readonly number[];
  readonly group: number;
  readonly outSpatial: readonly number[];
}

/**
 * Resolves ONNX Conv attributes (strides, pads, dilations, group, auto_pad, kernel_shape) against
 * the input and weight shapes, as ONNX's Conv shape inference does.
 */
export function onnxConvGeometry(
  where: Where, xShape: readonly number[], wShape: readonly number[], attrs: Readonly<Record<string, unknown>>,
): ConvGeometry {
  const spatial = xShape.length - 2;
  if (spatial < 1 || wShape.length !== xShape.length) {
    fail(where, "BAD_SHAPE", `input [${xShape.join(", ")}] and weight [${wShape.join(", ")}] do not fit a convolution`);
  }
  const kernel = (attrs["kernel_shape"] as number[] | undefined) ?? wShape.slice(2);
  const strides = (attrs["strides"] as number[] | undefined) ?? new Array<number>(spatial).fill(1);
  const dilations = (attrs["dilations"] as number[] | undefined) ?? new Array<number>(spatial).fill(1);
  const pads = (attrs["pads"] as number[] | undefined) ?? new Array<number>(2 * spatial).fill(0);
  const autoPad = (attrs["auto_pad"] as string | undefined) ?? "NOTSET";
  const group = (attrs["group"] as number | undefined) ?? 1;
  if (kernel.length !== spatial || strides.length !== spatial || dilations.length !== spatial || pads.length !== 2 * spatial) {
    fail(where, "BAD_ATTRIBUTE", `conv attributes do not match ${spatial} spatial dims`);
  }
  const padsBegin: number[] = [];
  const outSpatial: number[] = [];
  for (let i = 0; i < spatial; i++) {
    const inDim = xShape[2 + i]!;
    const eff = (kernel[i]! - 1) * dilations[i]! + 1;
    if (autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") {
      const out = Math.ceil(inDim / strides[i]!);
      const total = Math.max(0, (out - 1) * strides[i]! + eff - inDim);
      padsBegin.push(autoPad === "SAME_UPPER" ? Math.floor(total / 2) : total - Math.floor(total / 2));
      outSpatial.push(out);
    } else if (autoPad === "VALID") {
      padsBegin.push(0);
      outSpatial.push(Math.floor((inDim - eff) / strides[i]!) + 1);
    } else if (autoPad === "NOTSET") {
      padsBegin.push(pads[i]!);
      outSpatial.push(Math.floor((inDim + pads[i]! + pads[spatial + i]! - eff) / strides[i]!) + 1);
    } else {
      fail(where, "BAD_ATTRIBUTE", `unknown auto_pad '${autoPad}'`);
    }
  }
  if (outSpatial.some((d) => d < 1)) fail(where, "BAD_SHAPE", `the kernel does not fit the input [${xShape.join(", ")}]`);
  return { strides, padsBegin, dilations, group, outSpatial };
}

/**
 * N-d grouped convolution of integers: `acc[n, m, o...] = sum_{c, k...} (x[n, g*C/G + c, o*s - p + k*d]
 * - xZp) * (w[m, c, k...] - wZp[m])`, where positions outside the input contribute 0 (the input is
 * padded with its zero point, i.e. the real value 0). Returns int32 accumulators [N, M, out...].
 */
export function convAccumulate(
  where: Where,
  x: IntArray, xShape: readonly number[], xZp: number,
  w: IntArray, wShape: readonly number[], wZp: readonly number[],
  geo: ConvGeometry,
): Int32Array {
  const [batch, channels] = [xShape[0]!, xShape[1]!];
  const inSp = xShape.slice(2);
  const [outCh, cPerGroup] = [wShape[0]!, wShape[1]!];
  const kSp = wShape.slice(2);
  const spatial = inSp.length;
  const g = geo.group;
  if (channels !== cPerGroup * g) fail(where, "BAD_SHAPE", `input channels ${channels} != ${cPerGroup} x group ${g}`);
  if (outCh % g !== 0) fail(where, "BAD_SHAPE", `output channels ${outCh} not divisible by group ${g}`);
  const mPerGroup = outCh / g;
  const inSize = numel(inSp);
  const kSize = numel(kSp);
  const outSize = numel(geo.outSpatial);
  const xc = centered(x, [xZp], 1);
  const wc = centered(w, wZp, cPerGroup * kSize);
  const acc = new Int32Array(batch * outCh * outSize);
  if (spatial <= 2) {
    // The direct loops of the float conv kernel, on exact integers (any summation order is exact).
    const sums = new Float64Array(acc.length);
    const plane = planeGeometry(
      { kernel: kSp, strides: geo.strides, dilations: geo.dilations, padBegin: geo.padsBegin, padEnd: geo.padsBegin },
      inSp, geo.outSpatial,
    );
    conv2dPlanes({ vx: xc, vw: wc, vb: undefined, out: sums, batch, cin: channels, m: outCh, cg: cPerGroup, mg: mPerGroup, plane });
    for (let i = 0; i < acc.length; i++) acc[i] = wrapInt32(sums[i]!);
    return acc;
  }
  const outIdx = new Array<number>(spatial).fill(0);
  const kIdx = new Array<number>(spatial).fill(0);
  // For one output position: the (kernel offset, input offset) pairs that land inside the input.
  const kOffs = new Int32Array(kSize);
  const xOffs = new Int32Array(kSize);
  for (let o = 0; o < outSize; o++) {
    let rem = o;
    for (let d = spatial - 1; d >= 0; d--) {
      outIdx[d] = rem % geo.outSpatial[d]!;
      rem = Math.floor(rem / geo.outSpatial[d]!);
    }
    let valid = 0;
    for (let kp = 0; kp < kSize; kp++) {
      let r = kp;
      for (let d = spatial - 1; d >= 0; d--) {
        kIdx[d] = r % kSp[d]!;
        r = Math.floor(r / kSp[d]!);
      }
      let off = 0;
      let inside = true;
      for (let d = 0; d < spatial; d++) {
        const pos = outIdx[d]! * geo.strides[d]! - geo.padsBegin[d]! + kIdx[d]! * geo.dilations[d]!;
        if (pos < 0 || pos >= inSp[d]!) {
          inside = false;
          break;
        }
        off = off * inSp[d]! + pos;
      }
      if (!inside) continue;
      kOffs[valid] = kp;
      xOffs[valid] = off;
      valid++;
    }
    for (let nIdx = 0; nIdx < batch; nIdx++) {
      for (let m = 0; m < outCh; m++) {
        const grp = Math.floor(m / mPerGroup);
        let s = 0;
        for (let c = 0; c < cPerGroup; c++) {
          const xBase = (nIdx * channels + grp * cPerGroup + c) * inSize;
          const wBase = (m * cPerGroup + c) * kSize;
          for (let v = 0; v < valid; v++) s += xc[xBase + xOffs[v]!]! * wc[wBase + kOffs[v]!]!;
        }
        acc[(nIdx * outCh + m) * outSize + o] = wrapInt32(s);
      }
    }
  }
  return acc;
}
