import type { DType } from "../dtype.js";
import { dtypeInfo, isDType } from "../dtype.js";
import { QforgeError } from "../errors.js";
import type { Dim, ValueType } from "../graph.js";
import type { AttrSpec, InferContext } from "./registry.js";
import { dimsCompatible, registerOp, req } from "./registry.js";

/**
 * torchao-style quantized-weight ops (`quantize_` in @qforge/ao swaps Linear/Embedding weights for
 * them). A quantized weight travels as plain tensors plus attributes, the way torchao's
 * AffineQuantizedTensor flattens into (qdata, scale, zero_point) tensors and (block_size, dtype,
 * layout) attributes:
 *
 * - `qdata` holds the integer (or fp8) codes of the logical [N, K] weight, packed by `layout`:
 *     plain      the weight dtype itself, [N, K] (sub-byte dtypes in qforge's packed storage)
 *     int4_pairs uint8 [N, K/2]: element 2j in the high nibble, 2j+1 in the low one (torchao's
 *                `int_data[:, ::2] << 4 | int_data[:, 1::2]` before `_convert_weight_to_int4pack`)
 *     tiles      uint8 [ceil(N/tn), ceil(K/tk), tn, tk*bits/8]: tn x tk tiles of the weight, row-major
 *                inside a tile, zero-padded at the edges (the CPU tier's micro-kernel order)
 *     u32_words  uint32 [N, ceil(K*bits/32)]: each row's codes packed little-end first into 32-bit
 *                words (what a WebGPU storage buffer reads)
 *   Codes are the two's-complement bit patterns of the values (fp8: the raw byte).
 * - `scale` / `zero_point` have torchao's reduced qparam shape for `block_size` ([N] per channel,
 *   [N, K/g] per group, [] per tensor).
 *
 * Reference kernels live in @qforge/runtime (src/kernels/ao.ts); the math is in
 * docs/quantization-math.md ("torchao quantize_").
 */

export const AO_LAYOUTS = ["plain", "int4_pairs", "tiles", "u32_words"] as const;
export type AoLayout = (typeof AO_LAYOUTS)[number];

function badAttr(ctx: InferContext, message: string, hint?: string): never {
  throw new QforgeError("BAD_ATTRIBUTE", `${ctx.op}: ${message}`, { node: ctx.node, hint });
}

function badDType(ctx: InferContext, message: string): never {
  throw new QforgeError("DTYPE_MISMATCH", `${ctx.op}: ${message}`, { node: ctx.node });
}

/** Weight dtypes a quantized weight may hold: int1..int8, uint1..uint8, fp8. */
function weightDType(ctx: InferContext, name: string): DType {
  const d = ctx.attr<string>(name);
  if (!isDType(d)) badAttr(ctx, `${name} '${d}' is not a dtype`);
  const info = dtypeInfo(d);
  const ok = ((info.kind === "int" || info.kind === "uint") && info.bits <= 8) || d === "float8_e4m3fn" || d === "float8_e5m2";
  if (!ok) badAttr(ctx, `${name} must be int1..int8, uint1..uint8 or float8, got ${d}`);
  return d;
}

function weightShape(ctx: InferContext): [number, number] {
  const s = ctx.attr<readonly number[]>("weight_shape");
  if (s.length !== 2 || s.some((d) => !Number.isInteger(d) || d < 1)) badAttr(ctx, `weight_shape must be [N, K] with positive sizes, got [${s.join(",")}]`);
  return [s[0]!, s[1]!];
}

function layoutOf(ctx: InferContext): AoLayout {
  const l = ctx.attr<string>("layout");
  if (!(AO_LAYOUTS as readonly string[]).includes(l)) badAttr(ctx, `unknown layout '${l}'`, `use one of ${AO_LAYOUTS.join(", ")}`);
  return l as AoLayout;
}

function tileOf(ctx: InferContext): [number, number] {
  const t = ctx.attr<readonly number[]>("tile");
  if (t.length !== 2 || t.some((d) => !Number.isInteger(d) || d < 1)) badAttr(ctx, `tile must be [tn, tk] with positive sizes, got [${t.join(",")}]`);
  return [t[0]!, t[1]!];
}

/**
 * The tensor type `qdata` has for a [N, K] weight of `dtype` packed by `layout` (see the file
 * comment). Exported for @qforge/ao, which packs weights and must agree with the kernels.
 */
export function packedWeightType(layout: AoLayout, dtype: DType, shape: readonly [number, number], tile: readonly [number, number]): ValueType | string {
  const bits = dtypeInfo(dtype).bits;
  const [n, k] = shape;
  switch (layout) {
    case "plain":
      return { dtype, shape: [n, k] };
    case "int4_pairs":
      if (bits !== 4) return `int4_pairs packs 4-bit weights, not ${dtype}`;
      if (k % 2 !== 0) return `int4_pairs needs an even K, got ${k}`;
      return { dtype: "uint8", shape: [n, k / 2] };
    case "tiles": {
      if (bits !== 4 && bits !== 8) return `tiles packs 4- or 8-bit weights, not ${dtype}`;
      const [tn, tk] = tile;
      if ((tk * bits) % 8 !== 0) return `tile K ${tk} must fill whole bytes for ${bits}-bit codes`;
      return { dtype: "uint8", shape: [Math.ceil(n / tn), Math.ceil(k / tk), tn, (tk * bits) / 8] };
    }
    case "u32_words":
      if (32 % bits !== 0) return `u32_words packs 1-, 2-, 4- or 8-bit codes, not ${dtype}`;
      return { dtype: "uint32", shape: [n, Math.ceil((k * bits) / 32)] };
  }
}

/** torchao's reduced qparam shape (`_get_reduction_params`, keepdim=False) for a 2-D weight. */
export function aoQParamShape(shape: readonly [number, number], blockSize: readonly number[]): number[] {
  const out: number[] = [];
  shape.forEach((size, i) => {
    const b = blockSize[i]!;
    if (b === 1) out.push(size);
    else if (b !== size) out.push(size / b);
  });
  return out;
}

function checkBlockSize(ctx: InferContext, shape: readonly [number, number]): number[] {
  const b = ctx.attr<readonly number[]>("block_size");
  if (b.length !== 2) badAttr(ctx, `block_size must have 2 entries, got [${b.join(",")}]`);
  b.forEach((bi, i) => {
    const size = shape[i]!;
    if (!Number.isInteger(bi) || bi < 1 || size % bi !== 0) badAttr(ctx, `block size ${bi} does not divide weight dim ${i} (${size})`);
  });
  return [...b];
}

function sameShape(a: readonly Dim[], b: readonly Dim[]): boolean {
  return a.length === b.length && a.every((d, i) => dimsCompatible(d, b[i]!));
}

function expectType(ctx: InferContext, i: number, what: string, want: ValueType): void {
  const t = req(ctx, i);
  if (t.dtype !== want.dtype) badDType(ctx, `${what} must be ${want.dtype}, got ${t.dtype}`);
  if (!sameShape(t.shape, want.shape)) ctx.fail(`${what} must have shape [${want.shape.join(",")}], got [${t.shape.join(",")}]`);
}

const ZERO_POINT_DOMAINS = ["INT", "FLOAT", "NONE"];

/** Attributes shared by every op that reads an affine-quantized weight. */
const affineWeightAttrs: Record<string, AttrSpec> = {
  weight_shape: { type: "ints", required: true, doc: "logical [N, K] of the weight" },
  weight_dtype: { type: "string", required: true, doc: "int1..int8, uint1..uint8, float8_e4m3fn, float8_e5m2" },
  block_size: { type: "ints", required: true, doc: "torchao block_size: [1, K] per channel, [1, g] per group, [N, K] per tensor" },
  quant_min: { type: "int", doc: "default: the weight dtype's minimum" },
  quant_max: { type: "int", doc: "default: the weight dtype's maximum" },
  zero_point_domain: { type: "string", default: "INT", doc: "INT | FLOAT (tinygemm) | NONE (torchao ZeroPointDomain)" },
  layout: { type: "string", default: "plain", doc: AO_LAYOUTS.join(" | ") },
  tile: { type: "ints", default: [8, 32], doc: "[tn, tk] of the tiles layout" },
};

/** Checks qdata / scale / zero_point (inputs at wIdx, wIdx+1, zpIdx) against the weight attributes. */
function checkAffineWeight(ctx: InferContext, wIdx: number, zpIdx: number): [number, number] {
  const shape = weightShape(ctx);
  const dtype = weightDType(ctx, "weight_dtype");
  const layout = layoutOf(ctx);
  const packed = packedWeightType(layout, dtype, shape, tileOf(ctx));
  if (typeof packed === "string") badAttr(ctx, packed);
  expectType(ctx, wIdx, "qdata", packed);
  const block = checkBlockSize(ctx, shape);
  const qshape = aoQParamShape(shape, block);
  const keepdim = [shape[0] / block[0]!, shape[1] / block[1]!];
  const scale = req(ctx, wIdx + 1);
  if (dtypeInfo(scale.dtype).kind !== "float") badDType(ctx, `scale must be a float tensor, got ${scale.dtype}`);
  // torchao's reduced shape (keepdim=False, what chooseQParamsAffine returns) or its keepdim=True shape.
  if (!sameShape(scale.shape, qshape) && !sameShape(scale.shape, keepdim)) {
    ctx.fail(`scale must have shape [${qshape.join(",")}] (or [${keepdim.join(",")}]) for block_size [${block.join(",")}], got [${scale.shape.join(",")}]`);
  }
  const domain = ctx.attr<string>("zero_point_domain");
  if (!ZERO_POINT_DOMAINS.includes(domain)) badAttr(ctx, `zero_point_domain must be INT, FLOAT or NONE, got '${domain}'`);
  const zp = ctx.inputs[zpIdx];
  if (domain === "NONE" && zp !== undefined) badAttr(ctx, "zero_point_domain NONE takes no zero point input");
  if (domain === "FLOAT" && zp === undefined) badAttr(ctx, "zero_point_domain FLOAT needs a zero point input");
  if (zp !== undefined) {
    if (!sameShape(zp.shape, scale.shape)) ctx.fail(`zero_point must have the shape of scale [${scale.shape.join(",")}], got [${zp.shape.join(",")}]`);
    const k = dtypeInfo(zp.dtype).kind;
    if (domain === "FLOAT" ? k !== "float" : k !== "int" && k !== "uint") badDType(ctx, `zero_point of domain ${domain} cannot be ${zp.dtype}`);
  }
  if ((dtype === "float8_e4m3fn" || dtype === "float8_e5m2") && domain !== "NONE") badAttr(ctx, `${dtype} weights take zero_point_domain NONE`);
  const info = dtypeInfo(dtype);
  const qmin = ctx.attrOpt<number>("quant_min") ?? info.min;
  const qmax = ctx.attrOpt<number>("quant_max") ?? info.max;
  if (!(info.min <= qmin && qmin <= qmax && qmax <= info.max)) badAttr(ctx, `quant range [${qmin}, ${qmax}] is not within ${dtype}'s [${info.min}, ${info.max}]`);
  return shape;
}

function floatInputWithK(ctx: InferContext, i: number, k: number): ValueType {
  const x = req(ctx, i);
  if (x.dtype !== "float32") badDType(ctx, `input must be float32, got ${x.dtype}`);
  if (x.shape.length < 1) ctx.fail("input must have at least one dimension");
  if (!dimsCompatible(x.shape[x.shape.length - 1]!, k)) ctx.fail(`input's last dimension ${x.shape[x.shape.length - 1]} must equal in_features ${k}`);
  return x;
}

function checkBias(ctx: InferContext, i: number, n: number): void {
  const b = ctx.inputs[i];
  if (b === undefined) return;
  if (b.dtype !== "float32") badDType(ctx, `bias must be float32, got ${b.dtype}`);
  if (b.shape.length !== 1 || !dimsCompatible(b.shape[0]!, n)) ctx.fail(`bias must have shape [${n}], got [${b.shape.join(",")}]`);
}

// ---- packing ----------------------------------------------------------------------------------

registerOp({
  name: "pack_quantized_weight",
  family: "quantize",
  doc: "Packs a plain [N, K] quantized weight (int1..int8, uint1..uint8, fp8) into `layout`.",
  inputs: [{ name: "W" }],
  outputs: [{ name: "packed" }],
  attrs: {
    layout: { type: "string", required: true, doc: AO_LAYOUTS.join(" | ") },
    tile: { type: "ints", default: [8, 32], doc: "[tn, tk] of the tiles layout" },
  },
  infer: (ctx) => {
    const w = req(ctx, 0);
    if (!isDType(w.dtype)) badDType(ctx, `unknown dtype ${w.dtype}`);
    if (w.shape.length !== 2 || w.shape.some((d) => typeof d !== "number")) ctx.fail(`W must be a static 2-D tensor, got [${w.shape.join(",")}]`);
    const info = dtypeInfo(w.dtype);
    const ok = ((info.kind === "int" || info.kind === "uint") && info.bits <= 8) || w.dtype === "float8_e4m3fn" || w.dtype === "float8_e5m2";
    if (!ok) badDType(ctx, `W must be int1..int8, uint1..uint8 or float8, got ${w.dtype}`);
    const t = packedWeightType(layoutOf(ctx), w.dtype, [w.shape[0] as number, w.shape[1] as number], tileOf(ctx));
    if (typeof t === "string") badAttr(ctx, t);
    return [t];
  },
});

registerOp({
  name: "unpack_quantized_weight",
  family: "quantize",
  doc: "Inverse of pack_quantized_weight: the plain [N, K] weight of `weight_dtype` from its packed codes.",
  inputs: [{ name: "packed" }],
  outputs: [{ name: "W" }],
  attrs: {
    weight_shape: { type: "ints", required: true },
    weight_dtype: { type: "string", required: true },
    layout: { type: "string", required: true, doc: AO_LAYOUTS.join(" | ") },
    tile: { type: "ints", default: [8, 32] },
  },
  infer: (ctx) => {
    const shape = weightShape(ctx);
    const dtype = weightDType(ctx, "weight_dtype");
    const t = packedWeightType(layoutOf(ctx), dtype, shape, tileOf(ctx));
    if (typeof t === "string") badAttr(ctx, t);
    expectType(ctx, 0, "packed", t);
    return [{ dtype, shape: [...shape] }];
  },
});

// ---- linear / embedding over affine-quantized weights ----------------------------------------

const ACT_QUANT = ["none", "dynamic", "static"];
const ACT_DTYPES = ["int8", "uint8", "float8_e4m3fn", "float8_e5m2"];

registerOp({
  name: "affine_quantized_linear",
  family: "compute",
  doc: "torch.nn.functional.linear with an AffineQuantizedTensor weight (torchao): y = act(x) @ dequantize_affine(W)^T + b, "
    + "act = identity (weight-only), dynamic per-token/per-tensor fake quantization, or static quantization with fixed qparams; "
    + "compute=integer accumulates int8 x int8 in int32 and rescales as torchao's _int_scaled_matmul.",
  inputs: [
    { name: "X" }, { name: "W" }, { name: "W_scale" }, { name: "W_zero_point", optional: true }, { name: "B", optional: true },
    { name: "X_scale", optional: true }, { name: "X_zero_point", optional: true },
  ],
  outputs: [{ name: "Y" }],
  attrs: {
    ...affineWeightAttrs,
    act_quant: { type: "string", default: "none", doc: "none | dynamic | static" },
    act_dtype: { type: "string", default: "int8", doc: "int8 | uint8 | float8_e4m3fn | float8_e5m2" },
    act_mapping: { type: "string", default: "ASYMMETRIC", doc: "SYMMETRIC | ASYMMETRIC (dynamic activations)" },
    act_granularity: { type: "string", default: "per_token", doc: "per_token | per_tensor (dynamic activations)" },
    compute: { type: "string", default: "dequantize", doc: "dequantize (float matmul of dequantized operands) | integer (int32 accumulation)" },
  },
  infer: (ctx) => {
    const [n, k] = checkAffineWeight(ctx, 1, 3);
    const x = floatInputWithK(ctx, 0, k);
    checkBias(ctx, 4, n);
    const act = ctx.attr<string>("act_quant");
    if (!ACT_QUANT.includes(act)) badAttr(ctx, `act_quant must be none, dynamic or static, got '${act}'`);
    const actDtype = ctx.attr<string>("act_dtype");
    if (!ACT_DTYPES.includes(actDtype)) badAttr(ctx, `act_dtype must be one of ${ACT_DTYPES.join(", ")}, got '${actDtype}'`);
    const mapping = ctx.attr<string>("act_mapping");
    if (mapping !== "SYMMETRIC" && mapping !== "ASYMMETRIC") badAttr(ctx, `act_mapping must be SYMMETRIC or ASYMMETRIC, got '${mapping}'`);
    const gran = ctx.attr<string>("act_granularity");
    if (gran !== "per_token" && gran !== "per_tensor") badAttr(ctx, `act_granularity must be per_token or per_tensor, got '${gran}'`);
    const fp8Act = actDtype.startsWith("float8");
    if (fp8Act && act !== "none" && mapping !== "SYMMETRIC") badAttr(ctx, "float8 activations are quantized symmetrically");
    const hasXScale = ctx.inputs[5] !== undefined;
    if (act === "static" && !hasXScale) badAttr(ctx, "act_quant static needs X_scale");
    if (act !== "static" && (hasXScale || ctx.inputs[6] !== undefined)) badAttr(ctx, "X_scale / X_zero_point are only read by act_quant static");
    if (act === "static") {
      const s = req(ctx, 5);
      if (s.shape.some((d) => d !== 1)) ctx.fail(`static activation qparams are per tensor (one element), got X_scale [${s.shape.join(",")}]`);
      if (fp8Act && ctx.inputs[6] !== undefined) badAttr(ctx, "float8 activations take no zero point");
    }
    const compute = ctx.attr<string>("compute");
    if (compute !== "dequantize" && compute !== "integer") badAttr(ctx, `compute must be dequantize or integer, got '${compute}'`);
    if (compute === "integer") {
      const wd = ctx.attr<string>("weight_dtype");
      if (act === "none" || fp8Act) badAttr(ctx, "compute integer needs int8/uint8 activation quantization");
      if (wd.startsWith("float8")) badAttr(ctx, "compute integer needs integer weights");
      if (ctx.attr<string>("zero_point_domain") === "FLOAT") badAttr(ctx, "compute integer needs an integer zero point domain");
      const block = ctx.attr<readonly number[]>("block_size");
      if (block[1] !== k) badAttr(ctx, `compute integer needs one weight scale per output row (block_size [1|N, ${k}]), got [${block.join(",")}]`);
    }
    return [{ dtype: "float32", shape: [...x.shape.slice(0, -1), n] }];
  },
});

registerOp({
  name: "affine_quantized_embedding",
  family: "compute",
  doc: "torch.nn.functional.embedding with an AffineQuantizedTensor weight: rows of dequantize_affine(W) picked by Indices.",
  inputs: [{ name: "Indices" }, { name: "W" }, { name: "W_scale" }, { name: "W_zero_point", optional: true }],
  outputs: [{ name: "Y" }],
  attrs: { ...affineWeightAttrs },
  infer: (ctx) => {
    const [, k] = checkAffineWeight(ctx, 1, 3);
    const ids = req(ctx, 0);
    if (ids.dtype !== "int64" && ids.dtype !== "int32") badDType(ctx, `Indices must be int64 or int32, got ${ids.dtype}`);
    return [{ dtype: "float32", shape: [...ids.shape, k] }];
  },
});

// ---- codebook (lookup-table) quantized weights ----------------------------------------------

registerOp({
  name: "codebook_quantized_linear",
  family: "compute",
  doc: "linear with a CodebookQuantizedTensor weight: W[n, k] = Codebook[block(n, k), Codes[n, k]], y = x @ W^T + b.",
  inputs: [{ name: "X" }, { name: "Codes" }, { name: "Codebook" }, { name: "B", optional: true }],
  outputs: [{ name: "Y" }],
  attrs: {
    weight_shape: { type: "ints", required: true },
    code_dtype: { type: "string", required: true, doc: "uint1..uint8: 2^bits codebook entries" },
    block_size: { type: "ints", required: true, doc: "elements sharing one codebook: [1, K] per row, [1, g] per group" },
    layout: { type: "string", default: "plain", doc: "plain | u32_words" },
    tile: { type: "ints", default: [8, 32] },
  },
  infer: (ctx) => {
    const shape = weightShape(ctx);
    const codeDtype = weightDType(ctx, "code_dtype");
    if (dtypeInfo(codeDtype).kind !== "uint") badAttr(ctx, `code_dtype must be uint1..uint8, got ${codeDtype}`);
    const layout = layoutOf(ctx);
    const packed = packedWeightType(layout, codeDtype, shape, tileOf(ctx));
    if (typeof packed === "string") badAttr(ctx, packed);
    expectType(ctx, 1, "Codes", packed);
    const block = checkBlockSize(ctx, shape);
    const blocks = (shape[0] / block[0]!) * (shape[1] / block[1]!);
    const cb = req(ctx, 2);
    if (cb.dtype !== "float32") badDType(ctx, `Codebook must be float32, got ${cb.dtype}`);
    const entries = 2 ** dtypeInfo(codeDtype).bits;
    if (!sameShape(cb.shape, [blocks, entries])) ctx.fail(`Codebook must have shape [${blocks}, ${entries}], got [${cb.shape.join(",")}]`);
    const x = floatInputWithK(ctx, 0, shape[1]);
    checkBias(ctx, 3, shape[0]);
    return [{ dtype: "float32", shape: [...x.shape.slice(0, -1), shape[0]] }];
  },
});
