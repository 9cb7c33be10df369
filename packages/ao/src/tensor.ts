/**
 * Quantized weight tensors, torchao's tensor subclasses as plain data:
 *
 * - `AffineQuantizedTensor` (torchao `AffineQuantizedTensor` / `Int8Tensor` / `Int4Tensor` /
 *   `IntxUnpackedToInt8Tensor` / `Float8Tensor`): integer (or fp8) codes, scales, zero points, the
 *   block size that says which elements share them, the mapping type and zero point domain they were
 *   chosen with, and a layout that says how the codes are packed for a kernel.
 * - `CodebookQuantizedTensor` (torchao prototype `CodebookQuantizedTensor`): b-bit codes indexing a
 *   k-means codebook of 2^b float entries per block.
 *
 * Packing and unpacking run the `pack_quantized_weight` / `unpack_quantized_weight` ops, so the
 * layouts have one definition (their reference kernels in @qforge/runtime).
 */
import {
  dtypeInfo, getElement, inferNode, numel, QforgeError, tensor, type AttrValue, type DType, type Tensor, type ValueType,
} from "@qforge/ir";
import {
  chooseQParamsAffine, dequantizeAffine, MappingType, quantizeAffine, resolveQuantRange, ZeroPointDomain,
} from "@qforge/quant";
import { runOp } from "@qforge/runtime";

/** How the codes of a quantized weight are laid out in memory (torchao's `Layout`). */
export type WeightLayout =
  | { readonly kind: "plain" }
  | { readonly kind: "int4_pairs" }
  | { readonly kind: "tiles"; readonly tileN: number; readonly tileK: number }
  | { readonly kind: "u32_words" };

/** The weight dtype itself, [N, K] (torchao `PlainLayout`). */
export function PlainLayout(): WeightLayout {
  return { kind: "plain" };
}

/** uint8 [N, K/2], element 2j in the high nibble (the byte pairs tinygemm / int4pack kernels take). */
export function Int4PairsLayout(): WeightLayout {
  return { kind: "int4_pairs" };
}

/** uint8 tiles [N/tn, K/tk, tn, tk*bits/8] for the CPU tier's tiled kernel (edges zero-padded). */
export function TilesLayout(tileN = 8, tileK = 32): WeightLayout {
  if (!Number.isInteger(tileN) || tileN < 1 || !Number.isInteger(tileK) || tileK < 1) {
    throw new QforgeError("BAD_CONFIG", `TilesLayout: tile sizes must be positive integers, got ${tileN} x ${tileK}`);
  }
  return { kind: "tiles", tileN, tileK };
}

/** uint32 [N, ceil(K*bits/32)], each row's codes little-end first in 32-bit words (WebGPU storage buffers). */
export function U32WordsLayout(): WeightLayout {
  return { kind: "u32_words" };
}

export interface AffineQuantizedTensor {
  readonly kind: "affine";
  /** Logical [N, K] (out_features, in_features; embeddings: [num, dim]). */
  readonly shape: readonly [number, number];
  /** Codes packed by `layout`. */
  readonly qdata: Tensor;
  /** float32, torchao's reduced qparam shape: [N] per row, [N, K/g] per group, [] per tensor. */
  readonly scale: Tensor;
  /** Shape of `scale`; integer for ZeroPointDomain.INT, float for FLOAT; null for NONE. */
  readonly zeroPoint: Tensor | null;
  readonly blockSize: readonly [number, number];
  /** int1..int8, uint1..uint8, float8_e4m3fn, float8_e5m2. */
  readonly targetDtype: DType;
  readonly quantMin: number;
  readonly quantMax: number;
  readonly mappingType: MappingType;
  readonly zeroPointDomain: ZeroPointDomain;
  readonly layout: WeightLayout;
}

export interface CodebookQuantizedTensor {
  readonly kind: "codebook";
  readonly shape: readonly [number, number];
  /** uint{bits} codes packed by `layout` (plain or u32_words). */
  readonly codes: Tensor;
  /** float32 [numBlocks, 2^bits], blocks in row-major order of the block grid. */
  readonly codebook: Tensor;
  readonly blockSize: readonly [number, number];
  readonly codeDtype: DType;
  readonly layout: WeightLayout;
}

export type QuantizedWeight = AffineQuantizedTensor | CodebookQuantizedTensor;

function layoutAttrs(layout: WeightLayout): Record<string, AttrValue> {
  return layout.kind === "tiles" ? { layout: "tiles", tile: [layout.tileN, layout.tileK] } : { layout: layout.kind };
}

/** The layout named by the ops' `layout` / `tile` attributes. */
export function layoutFromAttrs(attrs: Readonly<Record<string, AttrValue>>): WeightLayout {
  const kind = (attrs["layout"] as string | undefined) ?? "plain";
  if (kind === "tiles") {
    const t = (attrs["tile"] as readonly number[] | undefined) ?? [8, 32];
    return TilesLayout(t[0], t[1]);
  }
  if (kind === "plain" || kind === "int4_pairs" || kind === "u32_words") return { kind };
  throw new QforgeError("BAD_ATTRIBUTE", `unknown weight layout '${kind}'`);
}

/** Packs a plain [N, K] code tensor into `layout` (the pack_quantized_weight op). */
export function packWeight(plain: Tensor, layout: WeightLayout): Tensor {
  return runOp("pack_quantized_weight", [plain], layoutAttrs(layout))[0]!;
}

/** The plain [N, K] code tensor of `dtype` behind packed data (the unpack_quantized_weight op). */
export function unpackWeight(packed: Tensor, dtype: DType, shape: readonly [number, number], layout: WeightLayout): Tensor {
  return runOp("unpack_quantized_weight", [packed], { weight_shape: [...shape], weight_dtype: dtype, ...layoutAttrs(layout) })[0]!;
}

/** The op attributes that describe an affine weight (for affine_quantized_linear / _embedding). */
export function affineWeightAttrs(
  w: Pick<AffineQuantizedTensor, "shape" | "targetDtype" | "blockSize" | "quantMin" | "quantMax" | "zeroPointDomain" | "layout">,
): Record<string, AttrValue> {
  return {
    weight_shape: [...w.shape],
    weight_dtype: w.targetDtype,
    block_size: [...w.blockSize],
    quant_min: w.quantMin,
    quant_max: w.quantMax,
    zero_point_domain: w.zeroPointDomain,
    ...layoutAttrs(w.layout),
  };
}

/** The op attributes that describe a codebook weight (for codebook_quantized_linear). */
export function codebookWeightAttrs(w: Pick<CodebookQuantizedTensor, "shape" | "codeDtype" | "blockSize" | "layout">): Record<string, AttrValue> {
  return { weight_shape: [...w.shape], code_dtype: w.codeDtype, block_size: [...w.blockSize], ...layoutAttrs(w.layout) };
}

export interface AffineWeightOptions {
  mappingType: MappingType;
  /** [1, K] per row, [1, g] per group, [N, K] per tensor. */
  blockSize: readonly [number, number];
  targetDtype: DType;
  quantMin?: number;
  quantMax?: number;
  eps?: number;
  zeroPointDomain?: ZeroPointDomain;
  preserveZero?: boolean;
  zeroPointDtype?: DType;
  layout?: WeightLayout;
}

function require2d(w: Tensor, what: string): [number, number] {
  if (w.dtype !== "float32" || w.shape.length !== 2) {
    throw new QforgeError("BAD_INPUT", `${what}: weight must be a float32 [N, K] tensor, got ${w.dtype}[${w.shape.join(",")}]`);
  }
  return [w.shape[0]!, w.shape[1]!];
}

/**
 * torchao's `from_hp` for affine weights: `choose_qparams_affine` then `quantize_affine` (the
 * @qforge/quant primitives), then packing into `layout`.
 */
export function affineQuantizeWeight(w: Tensor, opts: AffineWeightOptions): AffineQuantizedTensor {
  const shape = require2d(w, "affineQuantizeWeight");
  const domain = opts.zeroPointDomain ?? (opts.targetDtype.startsWith("float8") ? ZeroPointDomain.NONE : ZeroPointDomain.INT);
  const { quantMin, quantMax } = resolveQuantRange(opts.targetDtype, opts.quantMin, opts.quantMax);
  const qp = chooseQParamsAffine(w, {
    mappingType: opts.mappingType,
    blockSize: opts.blockSize,
    targetDtype: opts.targetDtype,
    quantMin,
    quantMax,
    ...(opts.eps !== undefined ? { eps: opts.eps } : {}),
    ...(opts.preserveZero !== undefined ? { preserveZero: opts.preserveZero } : {}),
    ...(opts.zeroPointDtype !== undefined ? { zeroPointDtype: opts.zeroPointDtype } : {}),
    zeroPointDomain: domain,
  });
  const q = quantizeAffine(w, opts.blockSize, qp.scale, qp.zeroPoint, opts.targetDtype, quantMin, quantMax, domain);
  const layout = opts.layout ?? PlainLayout();
  return {
    kind: "affine",
    shape,
    qdata: packWeight(q, layout),
    scale: qp.scale,
    zeroPoint: qp.zeroPoint,
    blockSize: [opts.blockSize[0], opts.blockSize[1]],
    targetDtype: opts.targetDtype,
    quantMin,
    quantMax,
    mappingType: opts.mappingType,
    zeroPointDomain: domain,
    layout,
  };
}

/**
 * torchao's `to_affine_quantized_intx_static`: quantizes with given qparams (e.g. an observer's)
 * instead of choosing them; `scale` / `zeroPoint` have the block grid's element count.
 */
export function affineQuantizeWeightStatic(
  w: Tensor,
  scale: Tensor,
  zeroPoint: Tensor | null,
  opts: Omit<AffineWeightOptions, "eps" | "preserveZero" | "zeroPointDtype">,
): AffineQuantizedTensor {
  const shape = require2d(w, "affineQuantizeWeightStatic");
  const domain = opts.zeroPointDomain ?? (opts.targetDtype.startsWith("float8") ? ZeroPointDomain.NONE : ZeroPointDomain.INT);
  const { quantMin, quantMax } = resolveQuantRange(opts.targetDtype, opts.quantMin, opts.quantMax);
  const q = quantizeAffine(w, opts.blockSize, scale, zeroPoint, opts.targetDtype, quantMin, quantMax, domain);
  const layout = opts.layout ?? PlainLayout();
  return {
    kind: "affine", shape, qdata: packWeight(q, layout), scale, zeroPoint, blockSize: [opts.blockSize[0], opts.blockSize[1]],
    targetDtype: opts.targetDtype, quantMin, quantMax, mappingType: opts.mappingType, zeroPointDomain: domain, layout,
  };
}

/** The same weight with its codes repacked into another layout (no requantization). */
export function withLayout<W extends QuantizedWeight>(w: W, layout: WeightLayout): W {
  if (w.kind === "affine") {
    const plain = unpackWeight(w.qdata, w.targetDtype, w.shape, w.layout);
    return { ...w, qdata: packWeight(plain, layout), layout };
  }
  const plain = unpackWeight(w.codes, w.codeDtype, w.shape, w.layout);
  return { ...w, codes: packWeight(plain, layout), layout };
}

/** The plain [N, K] codes of a quantized weight (its `int_repr()`). */
export function intRepr(w: QuantizedWeight): Tensor {
  return w.kind === "affine" ? unpackWeight(w.qdata, w.targetDtype, w.shape, w.layout) : unpackWeight(w.codes, w.codeDtype, w.shape, w.layout);
}

/**
 * The float32 [N, K] weight a quantized weight stands for: `dequantize_affine` for affine weights,
 * the codebook lookup for codebook weights (what the linear kernels multiply by).
 */
export function dequantizeWeight(w: QuantizedWeight): Tensor {
  const plain = intRepr(w);
  if (w.kind === "affine") {
    return dequantizeAffine(plain, w.blockSize, w.scale, w.zeroPoint, w.targetDtype, w.quantMin, w.quantMax, w.zeroPointDomain, "float32");
  }
  const [n, k] = w.shape;
  const [bn, bk] = w.blockSize;
  const entries = 2 ** dtypeInfo(w.codeDtype).bits;
  const book = w.codebook.data as Float32Array;
  const codes = plain.data instanceof Uint8Array && !dtypeInfo(plain.dtype).packed ? plain.data : Uint8Array.from(codeValues(plain));
  const out = new Float32Array(n * k);
  for (let o = 0; o < n; o++) {
    for (let p = 0; p < k; p++) {
      const block = Math.floor(o / bn) * (k / bk) + Math.floor(p / bk);
      out[o * k + p] = book[block * entries + codes[o * k + p]!]!;
    }
  }
  return tensor("float32", [n, k], out);
}

function codeValues(t: Tensor): number[] {
  const n = numel(t.shape);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = getElement(t, i);
  return out;
}

/** Storage bytes of every tensor a quantized weight holds. */
export function weightNbytes(w: QuantizedWeight): number {
  const parts = w.kind === "affine" ? [w.qdata, w.scale, w.zeroPoint] : [w.codes, w.codebook];
  return parts.reduce((s, t) => s + (t === null ? 0 : t.data.byteLength), 0);
}

/** A one-line description, e.g. `uint4 asym group 32 float-zp int4_pairs` or `codebook uint4 block [1,64] plain`. */
export function describeWeight(w: QuantizedWeight): string {
  const layout = w.layout.kind === "tiles" ? `tiles ${w.layout.tileN}x${w.layout.tileK}` : w.layout.kind;
  if (w.kind === "codebook") return `codebook ${w.codeDtype} block [${w.blockSize.join(",")}] ${layout}`;
  const [bn, bk] = w.blockSize;
  const [n, k] = w.shape;
  const gran = bn === n && bk === k ? "per tensor" : bn === 1 && bk === k ? "per row" : bn === 1 ? `group ${bk}` : `block [${bn},${bk}]`;
  const mapping = w.mappingType === MappingType.ASYMMETRIC ? "asym" : "sym";
  return `${w.targetDtype} ${mapping} ${gran}${w.zeroPointDomain === ZeroPointDomain.FLOAT ? " float-zp" : ""} ${layout}`;
}

/** The non-tensor fields of a quantized weight, as JSON (for files). */
export type WeightDescriptor =
  | (Omit<AffineQuantizedTensor, "qdata" | "scale" | "zeroPoint"> & { readonly hasZeroPoint: boolean })
  | Omit<CodebookQuantizedTensor, "codes" | "codebook">;

export function weightDescriptor(w: QuantizedWeight): WeightDescriptor {
  if (w.kind === "affine") {
    const { qdata: _q, scale: _s, zeroPoint, ...rest } = w;
    return { ...rest, hasZeroPoint: zeroPoint !== null };
  }
  const { codes: _c, codebook: _b, ...rest } = w;
  return rest;
}

/** Names of the tensors a weight flattens into, relative to the weight (torchao's tensor_data_names). */
export function weightTensorNames(w: QuantizedWeight | WeightDescriptor): string[] {
  if (w.kind === "codebook") return ["codes", "codebook"];
  const hasZp = "hasZeroPoint" in w ? w.hasZeroPoint : w.zeroPoint !== null;
  return hasZp ? ["qdata", "scale", "zero_point"] : ["qdata", "scale"];
}

/** The weight's tensors by the names of weightTensorNames. */
export function weightTensors(w: QuantizedWeight): Record<string, Tensor> {
  if (w.kind === "codebook") return { codes: w.codes, codebook: w.codebook };
  return w.zeroPoint === null ? { qdata: w.qdata, scale: w.scale } : { qdata: w.qdata, scale: w.scale, zero_point: w.zeroPoint };
}

/** Rebuilds a weight from its descriptor and tensors (what a file holds), checking their types. */
export function weightFromParts(d: WeightDescriptor, tensors: Readonly<Record<string, Tensor | undefined>>, where = "weight"): QuantizedWeight {
  const get = (name: string): Tensor => {
    const t = tensors[name];
    if (t === undefined) throw new QforgeError("BAD_INPUT", `${where}: missing tensor '${name}'`, { node: where });
    return t;
  };
  const typeOf = (t: Tensor | null): ValueType | undefined => (t === null ? undefined : { dtype: t.dtype, shape: t.shape });
  if (d.kind === "codebook") {
    const w: CodebookQuantizedTensor = { ...d, codes: get("codes"), codebook: get("codebook") };
    // Type-check the parts through the op schema (shapes, dtypes, layout, block size).
    inferNode("codebook_quantized_linear", where, [{ dtype: "float32", shape: [1, d.shape[1]] }, typeOf(w.codes), typeOf(w.codebook)], codebookWeightAttrs(w), 1);
    return w;
  }
  const { hasZeroPoint, ...rest } = d;
  const w: AffineQuantizedTensor = { ...rest, qdata: get("qdata"), scale: get("scale"), zeroPoint: hasZeroPoint ? get("zero_point") : null };
  inferNode("affine_quantized_embedding", where, [{ dtype: "int64", shape: [1] }, typeOf(w.qdata), typeOf(w.scale), typeOf(w.zeroPoint)], affineWeightAttrs(w), 1);
  return w;
}
