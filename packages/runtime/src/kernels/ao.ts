/**
 * Reference kernels of the torchao-style quantized-weight ops (schemas and the packed layouts in
 * @qforge/ir src/ops/ao.ts; formulas in docs/quantization-math.md, "torchao quantize_").
 *
 * The weight math is the @qforge/quant primitives (torchao's `dequantize_affine`, `quantize_affine`,
 * `choose_qparams_affine`): a weight-only linear is exactly `linear(x, dequantize_affine(W), b)`
 * with float64 accumulation rounded once to float32, like the float `linear` kernel. These kernels
 * are the oracle the device kernels of @qforge/ao are tested against, and the fallback those use
 * when a device has no kernel for a layout.
 */
import {
  QforgeError, dtypeInfo, getElement, numel, packSubByte, tensor, unpackSubByte, zeros,
  type AttrValue, type DType, type Tensor,
} from "@qforge/ir";
import {
  chooseQParamsAffine, dequantizeAffine, f32, MappingType, quantizeAffine, ZeroPointDomain,
} from "@qforge/quant";
import { registerKernel, type KernelContext } from "../kernel.js";
import { input, outShape, readNumbers } from "../util/tensors.js";

type Attrs = Readonly<Record<string, AttrValue>>;

function fail(ctx: KernelContext, code: "BAD_INPUT" | "BAD_DATA" | "UNSUPPORTED", message: string): never {
  throw new QforgeError(code, `${ctx.op}: ${message}`, { node: ctx.node });
}

// ---- codes and layouts ------------------------------------------------------------------------

/** The raw `bits`-wide code of every element of a plain weight (two's complement; fp8: its byte). */
function rawCodes(w: Tensor): Uint8Array {
  const info = dtypeInfo(w.dtype);
  const n = numel(w.shape);
  const mask = info.bits >= 8 ? 0xff : (1 << info.bits) - 1;
  const out = new Uint8Array(n);
  if (w.data instanceof Uint8Array && !info.packed) {
    out.set(w.data.subarray(0, n)); // uint8 values, fp8 bytes
    return out;
  }
  if (info.packed) {
    const vals = unpackSubByte(w.dtype, w.data as Uint8Array, n);
    for (let i = 0; i < n; i++) out[i] = vals[i]! & mask;
    return out;
  }
  for (let i = 0; i < n; i++) out[i] = getElement(w, i) & mask;
  return out;
}

/** The plain [n, k] tensor of `dtype` whose raw codes are `codes` (inverse of rawCodes). */
function fromCodes(dtype: DType, shape: readonly [number, number], codes: Uint8Array): Tensor {
  const info = dtypeInfo(dtype);
  const n = shape[0] * shape[1];
  const signed = info.kind === "int";
  const value = (c: number): number => (signed && c >= 1 << (info.bits - 1) ? c - (1 << info.bits) : c);
  if (info.packed) {
    const vals = new Array<number>(n);
    for (let i = 0; i < n; i++) vals[i] = value(codes[i]!);
    return tensor(dtype, shape, packSubByte(dtype, vals));
  }
  const t = zeros(dtype, shape);
  const d = t.data as Uint8Array | Int8Array;
  for (let i = 0; i < n; i++) d[i] = value(codes[i]!);
  return t;
}

function codeBits(dtype: DType): number {
  return dtypeInfo(dtype).bits;
}

/** Packs row-major [n, k] codes into `layout` (types from the schema, see src/ops/ao.ts in ir). */
function packCodes(layout: string, codes: Uint8Array, n: number, k: number, bits: number, tile: readonly number[], outShapeDims: number[]): Tensor {
  switch (layout) {
    case "int4_pairs": {
      const out = new Uint8Array(n * (k / 2));
      for (let r = 0; r < n; r++) {
        for (let j = 0; j < k / 2; j++) out[r * (k / 2) + j] = (codes[r * k + 2 * j]! << 4) | codes[r * k + 2 * j + 1]!;
      }
      return tensor("uint8", outShapeDims, out);
    }
    case "tiles": {
      const [tn, tk] = [tile[0]!, tile[1]!];
      const [nt, kt] = [outShapeDims[0]!, outShapeDims[1]!];
      const rowBytes = (tk * bits) / 8;
      const out = new Uint8Array(nt * kt * tn * rowBytes);
      for (let a = 0; a < nt; a++) {
        for (let b = 0; b < kt; b++) {
          for (let r = 0; r < tn; r++) {
            const row = a * tn + r;
            const base = ((a * kt + b) * tn + r) * rowBytes;
            for (let c = 0; c < tk; c++) {
              const col = b * tk + c;
              const code = row < n && col < k ? codes[row * k + col]! : 0;
              if (bits === 8) out[base + c] = code;
              else out[base + (c >> 1)]! |= (c & 1) === 0 ? code << 4 : code;
            }
          }
        }
      }
      return tensor("uint8", outShapeDims, out);
    }
    case "u32_words": {
      const per = 32 / bits;
      const words = outShapeDims[1]!;
      const out = new Uint32Array(n * words);
      for (let r = 0; r < n; r++) {
        for (let c = 0; c < k; c++) {
          const w = r * words + Math.floor(c / per);
          out[w] = (out[w]! | (codes[r * k + c]! << ((c % per) * bits))) >>> 0;
        }
      }
      return tensor("uint32", outShapeDims, out);
    }
    default:
      throw new QforgeError("BAD_ATTRIBUTE", `unknown layout '${layout}'`);
  }
}

/** Row-major [n, k] codes from packed data (inverse of packCodes). */
function unpackCodes(layout: string, packed: Tensor, n: number, k: number, bits: number, tile: readonly number[]): Uint8Array {
  const codes = new Uint8Array(n * k);
  switch (layout) {
    case "int4_pairs": {
      const d = packed.data as Uint8Array;
      for (let r = 0; r < n; r++) {
        for (let j = 0; j < k / 2; j++) {
          const byte = d[r * (k / 2) + j]!;
          codes[r * k + 2 * j] = byte >> 4;
          codes[r * k + 2 * j + 1] = byte & 0xf;
        }
      }
      return codes;
    }
    case "tiles": {
      const d = packed.data as Uint8Array;
      const [tn, tk] = [tile[0]!, tile[1]!];
      const kt = packed.shape[1]!;
      const rowBytes = (tk * bits) / 8;
      for (let row = 0; row < n; row++) {
        const a = Math.floor(row / tn);
        const r = row % tn;
        for (let col = 0; col < k; col++) {
          const b = Math.floor(col / tk);
          const c = col % tk;
          const base = ((a * kt + b) * tn + r) * rowBytes;
          codes[row * k + col] = bits === 8 ? d[base + c]! : (c & 1) === 0 ? d[base + (c >> 1)]! >> 4 : d[base + (c >> 1)]! & 0xf;
        }
      }
      return codes;
    }
    case "u32_words": {
      const d = packed.data as Uint32Array;
      const per = 32 / bits;
      const words = packed.shape[1]!;
      const mask = bits === 32 ? 0xffffffff : (1 << bits) - 1;
      for (let r = 0; r < n; r++) {
        for (let c = 0; c < k; c++) codes[r * k + c] = (d[r * words + Math.floor(c / per)]! >>> ((c % per) * bits)) & mask;
      }
      return codes;
    }
    default:
      throw new QforgeError("BAD_ATTRIBUTE", `unknown layout '${layout}'`);
  }
}

function weightShapeAttr(attrs: Attrs): [number, number] {
  const s = attrs["weight_shape"] as readonly number[];
  return [s[0]!, s[1]!];
}

/** The plain [N, K] weight of `dtypeAttr` behind `qdata` packed as attrs.layout says. */
function plainWeight(qdata: Tensor, attrs: Attrs, dtypeAttr: "weight_dtype" | "code_dtype"): Tensor {
  const layout = attrs["layout"] as string;
  const dtype = attrs[dtypeAttr] as DType;
  if (layout === "plain") return qdata;
  const [n, k] = weightShapeAttr(attrs);
  return fromCodes(dtype, [n, k], unpackCodes(layout, qdata, n, k, codeBits(dtype), attrs["tile"] as readonly number[]));
}

registerKernel("pack_quantized_weight", (inputs, attrs, ctx) => {
  const w = input(inputs, 0, ctx);
  const layout = attrs["layout"] as string;
  if (layout === "plain") return [{ dtype: w.dtype, shape: [...w.shape], data: w.data.slice() }];
  const [n, k] = [w.shape[0]!, w.shape[1]!];
  return [packCodes(layout, rawCodes(w), n, k, codeBits(w.dtype), attrs["tile"] as readonly number[], outShape(ctx))];
});

registerKernel("unpack_quantized_weight", (inputs, attrs, ctx) => {
  const p = input(inputs, 0, ctx);
  const w = plainWeight(p, attrs, "weight_dtype");
  return [w === p ? { dtype: p.dtype, shape: [...p.shape], data: p.data.slice() } : w];
});

// ---- affine weights ---------------------------------------------------------------------------

/** dequantize_affine of the weight (float32 values, row-major [N, K]). */
function dequantizeWeight(qdata: Tensor, scale: Tensor, zeroPoint: Tensor | undefined, attrs: Attrs): Float32Array {
  const dtype = attrs["weight_dtype"] as DType;
  const w = plainWeight(qdata, attrs, "weight_dtype");
  const domain = attrs["zero_point_domain"] as ZeroPointDomain;
  const dq = dequantizeAffine(
    w, attrs["block_size"] as readonly number[], scale, zeroPoint ?? null, dtype,
    attrs["quant_min"] as number | undefined, attrs["quant_max"] as number | undefined, domain, "float32",
  );
  return dq.data as Float32Array;
}

/** y[r, o] = f32(sum_p x[r, p] * w[o, p] + b[o]), float64 accumulation in increasing p (the float linear kernel). */
function floatLinear(x: ArrayLike<number>, w: ArrayLike<number>, bias: Float64Array | undefined, rows: number, n: number, k: number): Float32Array {
  const out = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < n; o++) {
      let s = 0;
      const xo = r * k;
      const wo = o * k;
      for (let p = 0; p < k; p++) s += x[xo + p]! * w[wo + p]!;
      out[r * n + o] = s + (bias?.[o] ?? 0);
    }
  }
  return out;
}

interface ActQuant {
  readonly q: Tensor;
  /** One scale / zero point per row (per token) or one for all (per tensor). */
  readonly scale: Float64Array;
  readonly zeroPoint: Float64Array;
  readonly blockSize: number[];
  readonly scaleT: Tensor;
  readonly zeroPointT: Tensor | null;
  readonly dtype: DType;
}

/**
 * Quantizes the activation as the node's attributes say: dynamic = torchao's
 * `_choose_quant_func_and_quantize_tensor` / `_apply_int8_act_asym_per_token_quant_dequant`
 * (choose_qparams_affine per token or per tensor, eps = float32 eps) then quantize_affine; static =
 * quantize_affine per tensor with the given X_scale / X_zero_point.
 */
function quantizeActivation(x: Tensor, inputs: readonly (Tensor | undefined)[], attrs: Attrs): ActQuant {
  const dtype = attrs["act_dtype"] as DType;
  const fp8 = dtype === "float8_e4m3fn" || dtype === "float8_e5m2";
  const k = x.shape[x.shape.length - 1]!;
  const perToken = attrs["act_quant"] === "dynamic" && attrs["act_granularity"] === "per_token";
  const blockSize = perToken ? [...x.shape.slice(0, -1).map(() => 1), k] : [...x.shape];
  let scaleT: Tensor;
  let zpT: Tensor | null;
  if (attrs["act_quant"] === "static") {
    scaleT = tensor("float32", [], Float32Array.of(getElement(inputs[5]!, 0)));
    const zp = inputs[6];
    zpT = fp8 ? null : tensor("int32", [], Int32Array.of(zp === undefined ? 0 : getElement(zp, 0)));
  } else {
    const mapping = attrs["act_mapping"] === "SYMMETRIC" ? MappingType.SYMMETRIC : MappingType.ASYMMETRIC;
    const qp = chooseQParamsAffine(x, { mappingType: mapping, blockSize, targetDtype: dtype });
    scaleT = qp.scale;
    zpT = qp.zeroPoint;
  }
  const domain = fp8 ? ZeroPointDomain.NONE : ZeroPointDomain.INT;
  const q = quantizeAffine(x, blockSize, scaleT, zpT, dtype, undefined, undefined, domain);
  return {
    q, blockSize, scaleT, zeroPointT: zpT, dtype,
    scale: readNumbers(scaleT),
    zeroPoint: zpT === null ? new Float64Array(numel(scaleT.shape)) : readNumbers(zpT),
  };
}

function biasValues(inputs: readonly (Tensor | undefined)[], i: number): Float64Array | undefined {
  const b = inputs[i];
  return b === undefined ? undefined : readNumbers(b);
}

registerKernel("affine_quantized_linear", (inputs, attrs, ctx) => {
  const x = input(inputs, 0, ctx);
  const qdata = input(inputs, 1, ctx);
  const scale = input(inputs, 2, ctx);
  const zp = inputs[3];
  const bias = biasValues(inputs, 4);
  const [n, k] = weightShapeAttr(attrs);
  const rows = numel(x.shape) / k;
  const shape = outShape(ctx);
  const act = attrs["act_quant"] as string;

  if (attrs["compute"] === "integer") return [tensor("float32", shape, integerLinear(ctx, x, inputs, attrs, qdata, scale, zp, bias, rows, n, k))];

  const w = dequantizeWeight(qdata, scale, zp, attrs);
  let xv: ArrayLike<number> = x.data as Float32Array;
  if (act !== "none") {
    // Fake-quantized activation: dequantize_affine(quantize_affine(x)), then the float matmul.
    const a = quantizeActivation(x, inputs, attrs);
    const domain = a.zeroPointT === null ? ZeroPointDomain.NONE : ZeroPointDomain.INT;
    xv = dequantizeAffine(a.q, a.blockSize, a.scaleT, a.zeroPointT, a.dtype, undefined, undefined, domain, "float32").data as Float32Array;
  }
  return [tensor("float32", shape, floatLinear(xv, w, bias, rows, n, k))];
});

/**
 * torchao Int8Tensor's linear with activation quantization (int8_tensor.py): int32 accumulation
 * `acc = x_q @ (w_q - w_zp)^T`, then `y = acc * x_scale` (float32), minus the asymmetric activation
 * correction `(x_zp * x_scale) * rowsum(w_q - w_zp)`, times `w_scale`, plus bias, each step rounded to
 * float32 as the torch ops are.
 */
function integerLinear(
  ctx: KernelContext, x: Tensor, inputs: readonly (Tensor | undefined)[], attrs: Attrs,
  qdata: Tensor, scale: Tensor, zp: Tensor | undefined, bias: Float64Array | undefined, rows: number, n: number, k: number,
): Float32Array {
  const wdtype = attrs["weight_dtype"] as DType;
  const w = plainWeight(qdata, attrs, "weight_dtype");
  const wv = readNumbers(w);
  const ws = readNumbers(scale);
  const wz = zp === undefined ? undefined : readNumbers(zp);
  const perRowW = ws.length === n && n !== 1 ? true : ws.length === 1 ? false : fail(ctx, "BAD_INPUT", `weight scale must be per row or per tensor for compute integer (${wdtype})`);
  const centered = new Float64Array(n * k);
  const rowSum = new Float64Array(n);
  for (let o = 0; o < n; o++) {
    const z = wz === undefined ? 0 : wz[perRowW ? o : 0]!;
    let s = 0;
    for (let p = 0; p < k; p++) {
      const v = wv[o * k + p]! - z;
      centered[o * k + p] = v;
      s += v;
    }
    rowSum[o] = s;
  }
  const a = quantizeActivation(x, inputs, attrs);
  const xq = readNumbers(a.q);
  const perRowX = a.scale.length !== 1;
  const out = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    const xs = f32(a.scale[perRowX ? r : 0]!);
    const xz = a.zeroPoint[perRowX ? r : 0]!;
    const corrScale = f32(xz * xs);
    for (let o = 0; o < n; o++) {
      let acc = 0;
      for (let p = 0; p < k; p++) acc += xq[r * k + p]! * centered[o * k + p]!;
      let y = f32(f32(acc) * xs);
      if (xz !== 0) y = f32(y - f32(corrScale * f32(rowSum[o]!)));
      y = f32(y * f32(ws[perRowW ? o : 0]!));
      out[r * n + o] = bias === undefined ? y : f32(y + bias[o]!);
    }
  }
  return out;
}

registerKernel("affine_quantized_embedding", (inputs, attrs, ctx) => {
  const ids = input(inputs, 0, ctx);
  const w = dequantizeWeight(input(inputs, 1, ctx), input(inputs, 2, ctx), inputs[3], attrs);
  const [rowsW, k] = weightShapeAttr(attrs);
  const count = numel(ids.shape);
  const out = new Float32Array(count * k);
  for (let i = 0; i < count; i++) {
    const id = getElement(ids, i);
    if (!Number.isInteger(id) || id < 0 || id >= rowsW) fail(ctx, "BAD_DATA", `index ${id} is out of range for ${rowsW} embeddings`);
    out.set(w.subarray(id * k, id * k + k), i * k);
  }
  return [tensor("float32", outShape(ctx), out)];
});

// ---- codebook weights -------------------------------------------------------------------------

registerKernel("codebook_quantized_linear", (inputs, attrs, ctx) => {
  const x = input(inputs, 0, ctx);
  const codes = rawCodes(plainWeight(input(inputs, 1, ctx), attrs, "code_dtype"));
  const book = input(inputs, 2, ctx).data as Float32Array;
  const bias = biasValues(inputs, 3);
  const [n, k] = weightShapeAttr(attrs);
  const [bn, bk] = attrs["block_size"] as readonly number[] as [number, number];
  const entries = 2 ** codeBits(attrs["code_dtype"] as DType);
  const blocksPerRow = k / bk;
  const w = new Float32Array(n * k);
  for (let o = 0; o < n; o++) {
    for (let p = 0; p < k; p++) {
      const block = Math.floor(o / bn) * blocksPerRow + Math.floor(p / bk);
      w[o * k + p] = book[block * entries + codes[o * k + p]!]!;
    }
  }
  return [tensor("float32", outShape(ctx), floatLinear(x.data as Float32Array, w, bias, numel(x.shape) / k, n, k))];
});
