/**
 * The "cpu" device kernels of the quantized-weight ops: they decode the packed codes a few rows at
 * a time (a tile row for the tiles layout) straight from the layout, dequantize those rows with
 * torchao's `dequantize_affine` (@qforge/quant) and multiply four output rows per pass over the
 * activation row. Accumulation is float64 in increasing k and rounds once, as in the reference
 * kernels, so results are bit-identical to them (tested); the speed comes from never materializing
 * the float weight and from the register blocking.
 *
 * Not covered here (the dispatcher falls back to the reference kernel with a warning): the
 * u32_words layout (a WebGPU layout), int32 `compute: integer` (A8W8), and block sizes with
 * 1 < block rows < N.
 */
import { dtypeInfo, getElement, numel, QforgeError, tensor, type AttrValue, type DType, type Tensor } from "@qforge/ir";
import {
  chooseQParamsAffine, dequantizeAffine, MappingType, quantizeAffine, ZeroPointDomain,
} from "@qforge/quant";
import type { Kernel } from "@qforge/runtime";
import { registerAoKernel } from "../dispatch.js";

type Attrs = Readonly<Record<string, AttrValue>>;

/** Decodes the raw codes of weight rows [r0, r1) (row-major, K per row) into `out`. */
type RowDecoder = (r0: number, r1: number, out: Uint8Array) => void;

function rowDecoder(packed: Tensor, layout: string, bits: number, k: number, tile: readonly number[]): RowDecoder {
  const d = packed.data as Uint8Array;
  const mask = bits >= 8 ? 0xff : (1 << bits) - 1;
  switch (layout) {
    case "plain":
      if (bits === 8) {
        // int8 / uint8 / fp8: one storage element per code.
        const src = packed.data as Uint8Array | Int8Array;
        return (r0, r1, out) => { for (let i = r0 * k, j = 0; i < r1 * k; i++, j++) out[j] = src[i]! & 0xff; };
      }
      // Sub-byte storage: a little-endian bit stream.
      return (r0, r1, out) => {
        for (let e = r0 * k, j = 0; e < r1 * k; e++, j++) {
          const bit = e * bits;
          const byte = bit >> 3;
          out[j] = (((d[byte]! | ((d[byte + 1] ?? 0) << 8)) >> (bit & 7)) & mask);
        }
      };
    case "int4_pairs":
      return (r0, r1, out) => {
        const half = k / 2;
        for (let r = r0, j = 0; r < r1; r++) {
          for (let c = 0; c < half; c++, j += 2) {
            const byte = d[r * half + c]!;
            out[j] = byte >> 4;
            out[j + 1] = byte & 0xf;
          }
        }
      };
    case "tiles": {
      const [tn, tk] = [tile[0]!, tile[1]!];
      const kt = packed.shape[1]!;
      const rowBytes = (tk * bits) / 8;
      return (r0, r1, out) => {
        for (let r = r0, j = 0; r < r1; r++) {
          const a = Math.floor(r / tn);
          const rr = r % tn;
          for (let b = 0; b < kt; b++) {
            const base = ((a * kt + b) * tn + rr) * rowBytes;
            const cols = Math.min(tk, k - b * tk);
            if (bits === 8) {
              for (let c = 0; c < cols; c++) out[j++] = d[base + c]!;
            } else {
              for (let c = 0; c < cols; c++) {
                const byte = d[base + (c >> 1)]!;
                out[j++] = (c & 1) === 0 ? byte >> 4 : byte & 0xf;
              }
            }
          }
        }
      };
    }
    default:
      throw new QforgeError("UNSUPPORTED", `cpu kernels do not read the ${layout} layout`);
  }
}

/** The code tensor dequantize_affine reads: int8/uint8 holding the values (fp8: the raw bytes). */
function codeTensor(dtype: DType, rows: number, k: number, codes: Uint8Array): { t: Tensor; dtype: DType } {
  const info = dtypeInfo(dtype);
  if (info.kind === "float") return { t: tensor(dtype, [rows, k], codes.slice(0, rows * k)), dtype };
  if (info.kind === "uint") return { t: tensor("uint8", [rows, k], codes.slice(0, rows * k)), dtype: "uint8" };
  const half = 1 << (info.bits - 1);
  const full = 1 << info.bits;
  const v = new Int8Array(rows * k);
  for (let i = 0; i < rows * k; i++) v[i] = codes[i]! >= half && info.bits < 8 ? codes[i]! - full : (codes[i]! << 24) >> 24;
  return { t: tensor("int8", [rows, k], v), dtype: "int8" };
}

function sliceParam(t: Tensor | undefined, from: number, to: number): Tensor | null {
  if (t === undefined) return null;
  return { dtype: t.dtype, shape: [to - from], data: t.data.subarray(from, to) as Tensor["data"] };
}

/**
 * dequantize_affine of weight rows [r0, r1), as the reference kernel computes them for the whole
 * weight. When a group has more elements than there are codes (4-bit codes in groups of 32), the
 * primitive runs once on every possible code of each group (a lookup table with the exact values)
 * and the rows are read out of the table.
 */
function dequantRows(codes: Uint8Array, r0: number, r1: number, n: number, k: number, scale: Tensor, zp: Tensor | undefined, attrs: Attrs): Float32Array {
  const wdtype = attrs["weight_dtype"] as DType;
  const info = dtypeInfo(wdtype);
  const [bn, bk] = attrs["block_size"] as readonly number[] as [number, number];
  if (bn !== 1 && bn !== n) throw new QforgeError("UNSUPPORTED", `cpu kernels take block rows 1 or N, got ${bn}`);
  const rows = r1 - r0;
  const perRow = k / bk;
  const [from, to] = bn === 1 ? [r0 * perRow, r1 * perRow] : [0, perRow];
  const qmin = (attrs["quant_min"] as number | undefined) ?? info.min;
  const qmax = (attrs["quant_max"] as number | undefined) ?? info.max;
  const domain = attrs["zero_point_domain"] as ZeroPointDomain;
  const entries = 1 << info.bits;
  if (entries < bk) {
    const groups = to - from;
    const all = new Uint8Array(groups * entries);
    for (let g = 0; g < groups; g++) for (let c = 0; c < entries; c++) all[g * entries + c] = c;
    const { t, dtype } = codeTensor(wdtype, groups, entries, all);
    const lut = dequantizeAffine(t, [1, entries], sliceParam(scale, from, to)!, sliceParam(zp, from, to), dtype, qmin, qmax, domain, "float32").data as Float32Array;
    const out = new Float32Array(rows * k);
    for (let r = 0; r < rows; r++) {
      const g0 = bn === 1 ? r * perRow : 0;
      for (let p = 0; p < k; p++) out[r * k + p] = lut[(g0 + Math.floor(p / bk)) * entries + codes[r * k + p]!]!;
    }
    return out;
  }
  const { t, dtype } = codeTensor(wdtype, rows, k, codes);
  const blockSize = bn === 1 ? [1, bk] : [rows, bk];
  return dequantizeAffine(t, blockSize, sliceParam(scale, from, to)!, sliceParam(zp, from, to), dtype, qmin, qmax, domain, "float32").data as Float32Array;
}

/**
 * The activation the matmul multiplies, exactly as the reference kernel prepares it: x itself
 * (weight-only) or dequantize_affine(quantize_affine(x)) with dynamic (choose_qparams_affine per token
 * or per tensor) or static (X_scale / X_zero_point) qparams.
 */
export function activationOperand(x: Tensor, inputs: readonly (Tensor | undefined)[], attrs: Attrs): Float32Array {
  const act = attrs["act_quant"] as string;
  if (act === "none") return x.data as Float32Array;
  const dtype = attrs["act_dtype"] as DType;
  const fp8 = dtype.startsWith("float8");
  const k = x.shape[x.shape.length - 1]!;
  const perToken = act === "dynamic" && attrs["act_granularity"] === "per_token";
  const blockSize = perToken ? [...x.shape.slice(0, -1).map(() => 1), k] : [...x.shape];
  let scale: Tensor;
  let zp: Tensor | null;
  if (act === "static") {
    scale = tensor("float32", [], Float32Array.of(getElement(inputs[5]!, 0)));
    zp = fp8 ? null : tensor("int32", [], Int32Array.of(inputs[6] === undefined ? 0 : getElement(inputs[6], 0)));
  } else {
    const mapping = attrs["act_mapping"] === "SYMMETRIC" ? MappingType.SYMMETRIC : MappingType.ASYMMETRIC;
    ({ scale, zeroPoint: zp } = chooseQParamsAffine(x, { mappingType: mapping, blockSize, targetDtype: dtype }));
  }
  const domain = fp8 ? ZeroPointDomain.NONE : ZeroPointDomain.INT;
  const q = quantizeAffine(x, blockSize, scale, zp, dtype, undefined, undefined, domain);
  return dequantizeAffine(q, blockSize, scale, zp, dtype, undefined, undefined, zp === null ? ZeroPointDomain.NONE : ZeroPointDomain.INT, "float32").data as Float32Array;
}

/**
 * out[m, o] = f32(sum_p x[m, p] * w[o - r0, p] + b[o]) for o in [r0, r1): four output rows per pass
 * over x's row, each with its own float64 accumulator in increasing p.
 */
function matmulRows(x: ArrayLike<number>, w: Float32Array, bias: Tensor | undefined, out: Float32Array, rowsX: number, n: number, k: number, r0: number, r1: number): void {
  const b = bias === undefined ? undefined : (bias.data as Float32Array);
  for (let m = 0; m < rowsX; m++) {
    const xo = m * k;
    let o = r0;
    for (; o + 4 <= r1; o += 4) {
      const w0 = (o - r0) * k;
      const w1 = w0 + k;
      const w2 = w1 + k;
      const w3 = w2 + k;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let p = 0; p < k; p++) {
        const xv = x[xo + p]!;
        s0 += xv * w[w0 + p]!;
        s1 += xv * w[w1 + p]!;
        s2 += xv * w[w2 + p]!;
        s3 += xv * w[w3 + p]!;
      }
      out[m * n + o] = s0 + (b?.[o] ?? 0);
      out[m * n + o + 1] = s1 + (b?.[o + 1] ?? 0);
      out[m * n + o + 2] = s2 + (b?.[o + 2] ?? 0);
      out[m * n + o + 3] = s3 + (b?.[o + 3] ?? 0);
    }
    for (; o < r1; o++) {
      const wo = (o - r0) * k;
      let s = 0;
      for (let p = 0; p < k; p++) s += x[xo + p]! * w[wo + p]!;
      out[m * n + o] = s + (b?.[o] ?? 0);
    }
  }
}

/** Weight rows decoded and dequantized per pass: about 64 (whole tile rows for the tiles layout). */
function rowsPerPass(attrs: Attrs): number {
  if (attrs["layout"] !== "tiles") return 64;
  const tn = (attrs["tile"] as readonly number[])[0]!;
  return tn * Math.max(1, Math.round(64 / tn));
}

function weightShape(attrs: Attrs): [number, number] {
  const s = attrs["weight_shape"] as readonly number[];
  return [s[0]!, s[1]!];
}

function outShapeOf(x: Tensor, n: number): number[] {
  return [...x.shape.slice(0, -1), n];
}

const affineLinear: Kernel = (inputs, attrs) => {
  const x = inputs[0]!;
  const [n, k] = weightShape(attrs);
  const rowsX = numel(x.shape) / k;
  const xv = activationOperand(x, inputs, attrs);
  const bits = dtypeInfo(attrs["weight_dtype"] as DType).bits;
  const decode = rowDecoder(inputs[1]!, attrs["layout"] as string, bits, k, attrs["tile"] as readonly number[]);
  const step = rowsPerPass(attrs);
  const codes = new Uint8Array(step * k);
  const out = new Float32Array(rowsX * n);
  for (let r0 = 0; r0 < n; r0 += step) {
    const r1 = Math.min(n, r0 + step);
    decode(r0, r1, codes);
    const w = dequantRows(codes, r0, r1, n, k, inputs[2]!, inputs[3], attrs);
    matmulRows(xv, w, inputs[4], out, rowsX, n, k, r0, r1);
  }
  return [tensor("float32", outShapeOf(x, n), out)];
};

const affineEmbedding: Kernel = (inputs, attrs, ctx) => {
  const ids = inputs[0]!;
  const [n, k] = weightShape(attrs);
  const bits = dtypeInfo(attrs["weight_dtype"] as DType).bits;
  const decode = rowDecoder(inputs[1]!, attrs["layout"] as string, bits, k, attrs["tile"] as readonly number[]);
  const count = numel(ids.shape);
  const out = new Float32Array(count * k);
  const codes = new Uint8Array(k);
  const rows = new Map<number, Float32Array>();
  for (let i = 0; i < count; i++) {
    const id = getElement(ids, i);
    if (!Number.isInteger(id) || id < 0 || id >= n) {
      throw new QforgeError("BAD_DATA", `affine_quantized_embedding: index ${id} is out of range for ${n} embeddings`, { node: ctx.node });
    }
    let row = rows.get(id);
    if (row === undefined) {
      decode(id, id + 1, codes);
      row = dequantRows(codes, id, id + 1, n, k, inputs[2]!, inputs[3], attrs);
      rows.set(id, row);
    }
    out.set(row, i * k);
  }
  return [tensor("float32", [...ids.shape, k], out)];
};

const codebookLinear: Kernel = (inputs, attrs) => {
  const x = inputs[0]!;
  const [n, k] = weightShape(attrs);
  const [bn, bk] = attrs["block_size"] as readonly number[] as [number, number];
  const bits = dtypeInfo(attrs["code_dtype"] as DType).bits;
  const entries = 1 << bits;
  const book = inputs[2]!.data as Float32Array;
  const decode = rowDecoder(inputs[1]!, attrs["layout"] as string, bits, k, attrs["tile"] as readonly number[]);
  const step = 8;
  const codes = new Uint8Array(step * k);
  const w = new Float32Array(step * k);
  const out = new Float32Array((numel(x.shape) / k) * n);
  for (let r0 = 0; r0 < n; r0 += step) {
    const r1 = Math.min(n, r0 + step);
    decode(r0, r1, codes);
    for (let o = r0; o < r1; o++) {
      for (let p = 0; p < k; p++) {
        const block = Math.floor(o / bn) * (k / bk) + Math.floor(p / bk);
        w[(o - r0) * k + p] = book[block * entries + codes[(o - r0) * k + p]!]!;
      }
    }
    matmulRows(x.data as Float32Array, w, inputs[3], out, numel(x.shape) / k, n, k, r0, r1);
  }
  return [tensor("float32", outShapeOf(x, n), out)];
};

/** Block rows of 1 or N: the cpu kernels slice qparams by weight row. */
function rowSliceable(attrs: Attrs): boolean {
  const [n] = weightShape(attrs);
  const bn = (attrs["block_size"] as readonly number[])[0];
  return bn === 1 || bn === n;
}

registerAoKernel({
  name: "cpu/affine-linear",
  op: "affine_quantized_linear",
  device: "cpu",
  layouts: ["plain", "int4_pairs", "tiles"],
  supports: (a) => a["compute"] !== "integer" && rowSliceable(a),
}, affineLinear);

registerAoKernel({
  name: "cpu/affine-embedding",
  op: "affine_quantized_embedding",
  device: "cpu",
  layouts: ["plain", "int4_pairs", "tiles"],
  supports: rowSliceable,
}, affineEmbedding);

registerAoKernel({
  name: "cpu/codebook-linear",
  op: "codebook_quantized_linear",
  device: "cpu",
  layouts: ["plain"],
}, codebookLinear);
