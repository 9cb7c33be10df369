/**
 * The integer ops of PT2E lowering (quantized_linear, quantized_conv2d and dynamic_quantized_linear
 * on the qnnpack and onednn engines) and ONNX's (qlinear_matmul, qlinear_conv, matmul_integer,
 * conv_integer), on the tiers' int8 GEMM (VNNI / exact int16 madd / SIMD128) and direct depthwise
 * kernels. Results are bit-identical to the reference kernels in packages/runtime/src/quantized:
 * the int32 accumulators are exact (zero points folded in with row and column sums, modulo 2^32),
 * and the requantization parameters below are derived with the same operations in the same order
 * (torch-linear.ts `requantize`/`requantizationScale`, onnx.ts `requantizeFloat`).
 *
 * Kernel domains: the GEMM multiplies uint8 x int8. An int8 activation is XORed with 0x80 (x + 128)
 * and a uint8 weight likewise (w - 128); the zero points move with them, so (x - zx)(w - zw) is
 * unchanged. A node whose qparams are not constants (or invalid) keeps the reference kernel, which
 * also reports the error.
 */
import { QforgeError, dtypeInfo, getOp, numel, resolveAttrs, type DType, type Node, type Tensor } from "@qforge/ir";
import { chooseQuantizationParamsAten, f32, quantizePerTensor, quantizeValue } from "@qforge/quant";
import { convGeo, geoCache } from "./float.js";
import { LUT_UNARY_OPS, tableBytes, unaryTable } from "./qlut.js";
import { numbersOf, scalarOf, skip, type LowerContext, type Lowered, type Lowering } from "../lower.js";
import { isDepthwise, type ConvGeo, type QEpiKind, type QEpiParams, type QOut, type Resident, type Tier } from "../tiers/tier.js";

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

type Engine = "qnnpack" | "onednn";

function is8(d: DType | undefined): d is "uint8" | "int8" {
  return d === "uint8" || d === "int8";
}

function outCode(d: DType): QOut | undefined {
  return d === "uint8" ? "u8" : d === "int8" ? "s8" : d === "int32" ? "i32" : undefined;
}

/** Scales must be positive and finite (the reference's checkScales). */
function goodScales(v: readonly number[]): boolean {
  return v.every((s) => s > 0 && Number.isFinite(s));
}

/** A constant qparam with one element or `count` (a 1-D vector): the reference's paramVector. */
function paramVector(ctx: LowerContext, v: string | undefined, count: number): number[] | undefined {
  const t = ctx.constant(v);
  if (t === undefined) return undefined;
  const vals = numbersOf(t);
  if (vals.length === 1) return new Array<number>(count).fill(vals[0]!);
  if (t.shape.length !== 1 || vals.length !== count) return undefined;
  return vals;
}

/** A constant one-element qparam (the reference's scalarParam). */
function scalarParam(ctx: LowerContext, v: string | undefined): number | undefined {
  return scalarOf(ctx.constant(v));
}

function badShape(node: Node, message: string): never {
  throw new QforgeError("BAD_SHAPE", `${node.op}: ${message}`, { node: node.name });
}

/** uint8 domain of the broadcast operand: XOR and zero-point shift. */
function toU8(d: "uint8" | "int8"): { flip: number; shift: number } {
  return d === "int8" ? { flip: 0x80, shift: 128 } : { flip: 0, shift: 0 };
}

/** int8 domain of the vector operand. */
function toS8(d: "uint8" | "int8"): { flip: number; shift: number } {
  return d === "uint8" ? { flip: 0x80, shift: -128 } : { flip: 0, shift: 0 };
}

function bytes(t: Tensor): Uint8Array | Int8Array {
  return t.data as Uint8Array | Int8Array;
}

/** How the int32 accumulators become output (everything of QEpiParams but the zero-point parts). */
interface Requant {
  readonly kind: QEpiKind;
  readonly out: QOut;
  readonly outDType: DType;
  readonly zp: number;
  readonly lo: number;
  readonly hi: number;
  readonly bias?: Int32Array;
  readonly mult?: Float32Array;
  readonly dws?: Float64Array;
  readonly dadd?: Float64Array;
  readonly xs: number;
  readonly ys: number;
}

/** The float32 requantization scale of PyTorch's qnnpack engine (torch-linear.ts requantizationScale). */
function requantizationScale(xDType: DType, sx: number, sw: number, sy: number): number {
  return xDType === "uint8" ? f32(f32(sw * sx) * f32(1 / sy)) : f32(f32(sx * sw) / sy);
}

/**
 * PyTorch quantized linear/conv2d requantization (torch-linear.ts staticRequant + requantize), or a
 * reason to keep the reference kernel.
 */
function torchRequant(node: Node, ctx: LowerContext, x: "uint8" | "int8", channels: number): Requant | string {
  const attrs = resolveAttrs(getOp(node.op), node.attrs, node.name);
  const engine = attrs["engine"] as Engine;
  if (engine !== "qnnpack" && engine !== "onednn") return `engine ${String(engine)}`;
  const [, xsV, , , wsV, wzpV, biasV, ysV, yzpV] = node.inputs;
  const xs = scalarParam(ctx, xsV);
  const ys = scalarParam(ctx, ysV);
  const yzp = scalarParam(ctx, yzpV);
  const ws = paramVector(ctx, wsV, channels);
  const wzp = paramVector(ctx, wzpV, channels);
  if (xs === undefined || ys === undefined || yzp === undefined || ws === undefined || wzp === undefined) return "the qparams are not constants";
  if (!goodScales([xs, ys, ...ws])) return "a scale is not positive and finite";
  if (engine === "onednn" && wzp.some((z) => z !== 0)) return "onednn refuses weights with a non-zero zero point";
  const info = dtypeInfo(x);
  if (!(yzp >= info.min && yzp <= info.max)) return "y_zero_point is outside the output range";
  let bias: number[] | undefined;
  if (biasV !== undefined && biasV !== "") {
    const b = ctx.constant(biasV);
    if (b === undefined || dtypeInfo(b.dtype).kind !== "float") return "the bias is not a constant";
    bias = numbersOf(b).map(f32);
    if (bias.length !== channels) return "the bias has the wrong length";
  }
  const lo = attrs["fuse_relu"] === true ? Math.max(info.min, yzp) : info.min;
  const base = { out: outCode(x)!, outDType: x, zp: yzp, lo, hi: info.max, xs, ys };
  if (engine === "qnnpack") {
    const biasQ = new Int32Array(channels);
    if (bias !== undefined) for (let c = 0; c < channels; c++) biasQ[c] = quantizeValue(bias[c]!, ws[c]! * xs, 0, INT32_MIN, INT32_MAX);
    const mult = Float32Array.from(ws, (s) => requantizationScale(x, f32(xs), f32(s), f32(ys)));
    if (!mult.every(Number.isFinite)) return "a requantization scale is not finite";
    return { kind: "qnnpack", ...base, bias: biasQ, mult };
  }
  const dadd = Float64Array.from({ length: channels }, (_, c) => (bias === undefined ? 0 : bias[c]! / ys));
  return { kind: "onednn", ...base, dws: Float64Array.from(ws), dadd };
}

/**
 * A per-tensor quantized unary op (quantized_hardswish, ...) that is the only user of the
 * producer's 8-bit output: its 256-entry table is applied in the producer's epilogue.
 */
function fusedUnary(node: Node, ctx: LowerContext, outDType: DType): { lut: Uint8Array; user: Node } | undefined {
  const v = node.outputs[0]!;
  const users = ctx.users(v);
  const u = users[0];
  if (ctx.isGraphOutput(v) || users.length !== 1 || u === undefined || !LUT_UNARY_OPS.has(u.op) || u.inputs[0] !== v) return undefined;
  if (u.op === "dequantize_per_tensor" || u.inputs.slice(1).includes(v)) return undefined;
  const t = unaryTable(u, ctx);
  if (typeof t === "string" || t.dtype !== outDType) return undefined;
  return { lut: tableBytes(t), user: u };
}

/** The epilogue for an exact GEMM with the given zero points and constant sums. */
function epiParams(r: Requant, perRow: boolean, K: number, z: {
  za: Int32Array; zaPerRow: boolean; zb: Int32Array; zbPerCol: boolean; sa?: Int32Array; sb?: Int32Array;
}): QEpiParams {
  return {
    kind: r.kind, perRow, out: r.out, zp: r.zp, lo: r.lo, hi: r.hi, K, ...z,
    ...(r.bias ? { bias: r.bias } : {}), ...(r.mult ? { mult: r.mult } : {}), ...(r.dws ? { dws: r.dws } : {}), ...(r.dadd ? { dadd: r.dadd } : {}),
    xs: r.xs, ys: r.ys,
  };
}

/**
 * x [..., K] (8-bit, activation) times a constant 8-bit weight, given as W [N][K] (trans) or B
 * [K][N]: prepacked int8 panels with column sums, the zero points of x (per tensor) and of the
 * weight (per column). The step writes [..., N] of r.outDType.
 */
function linearStep(node: Node, ctx: LowerContext, xv: string, xd: "uint8" | "int8", xzp: number, w: Tensor, trans: boolean,
  wzp: readonly number[], r: Requant, note: string): Lowered {
  const tier = ctx.tier;
  const [N, K] = trans ? [w.shape[0]!, w.shape[1]!] : [w.shape[1]!, w.shape[0]!];
  const wd = w.dtype as "uint8" | "int8";
  const a = toU8(xd);
  const b = toS8(wd);
  const { packed, colsum } = tier.packB8(bytes(w), K, N, trans ? K : N, trans, b.flip);
  const zb = Int32Array.from(wzp, (z) => z + b.shift);
  const needRowSum = zb.some((z) => z !== 0);
  const fused = r.out === "i32" ? undefined : fusedUnary(node, ctx, r.outDType);
  const epi = tier.qepi({ ...epiParams(r, false, K, { za: Int32Array.of(xzp + a.shift), zaPerRow: false, zb, zbPerCol: true, sb: colsum }),
    ...(fused ? { lut: fused.lut } : {}) });
  return {
    kernel: `qgemm_u8s8_${tier.kernels.qgemm}`,
    tier: tier.name,
    note: `${note}; W prepacked int8, ${r.kind} requantization${fused ? ` + ${fused.user.op} (table)` : ""}`,
    ...(fused ? { fused: [fused.user], outputs: [fused.user.outputs[0]!] } : {}),
    inputs: [xv],
    run([xt], rc) {
      const x = xt!;
      if (x.shape.length < 1 || x.shape[x.shape.length - 1] !== K) badShape(node, `input [${x.shape.join(", ")}] does not end in ${K}`);
      const M = numel(x.shape) / K;
      const out = rc.alloc(r.outDType, [...x.shape.slice(0, -1), N]);
      tier.qgemm(M, N, K, bytes(x), K, a.flip, needRowSum, packed, epi, out.data as Uint8Array, N);
      return [out];
    },
  };
}

/** The convolution step: direct depthwise kernel, or im2col into the int8 GEMM with W as rows. */
function convStep(node: Node, ctx: LowerContext, xv: string, xd: "uint8" | "int8", xzp: number, w: Tensor, wzp: readonly number[], r: Requant,
  groups: number, geoOf: (shape: readonly number[]) => ConvGeo): Lowered {
  const tier: Tier = ctx.tier;
  const M = w.shape[0]!;
  const C = w.shape[1]! * groups;
  const K = w.shape[1]! * w.shape[2]! * w.shape[3]!;
  const wd = w.dtype as "uint8" | "int8";
  const depthwise = groups === C && groups === M;
  const fused = r.out === "i32" ? undefined : fusedUnary(node, ctx, r.outDType);
  const lut = fused ? { lut: fused.lut } : {};
  let run: (x: Tensor, g: ConvGeo, out: Tensor) => void;
  if (depthwise) {
    const epi = tier.qepi({ ...epiParams(r, true, K, { za: Int32Array.of(0), zaPerRow: false, zb: Int32Array.of(0), zbPerCol: false }), ...lut });
    const wr = tier.resident(bytes(w));
    const zw = tier.resident(Int32Array.from(wzp));
    run = (x, g, out) => tier.dwQ8(g, x.shape[0]!, bytes(x), xd === "int8", xzp, wr, wd === "int8", zw, epi, out.data as Uint8Array);
  } else {
    // W is the broadcast operand here (int8 domain), the image columns the vector (uint8 domain).
    const wdom = toS8(wd);
    const xdom = toU8(xd);
    const shapeGeo: ConvGeo = { C, H: 1, W: 1, M, G: groups, KH: w.shape[2]!, KW: w.shape[3]!, SH: 1, SW: 1, PH: 0, PW: 0, DH: 1, DW: 1, OH: 1, OW: 1 };
    const { packed, rowsum } = tier.packConvW8(bytes(w), shapeGeo, wdom.flip);
    const za = Int32Array.from(wzp, (z) => z + wdom.shift);
    const zb = xzp + xdom.shift;
    const needColSum = za.some((z) => z !== 0);
    const epi = tier.qepi({ ...epiParams(r, true, K, { za, zaPerRow: true, zb: Int32Array.of(zb), zbPerCol: false, sa: rowsum }), ...lut });
    run = (x, g, out) => tier.convQ8(g, x.shape[0]!, bytes(x), xdom.flip, zb & 255, packed, epi, needColSum, out.data as Uint8Array);
  }
  return {
    kernel: depthwise ? "dwconv_q8_direct" : `conv_q8_im2col_qgemm_${tier.kernels.qgemm}`,
    tier: tier.name,
    note: `W [${w.shape.join(", ")}] ${depthwise ? "kept" : "prepacked int8"}, ${r.kind} requantization${fused ? ` + ${fused.user.op} (table)` : ""}`,
    ...(fused ? { fused: [fused.user], outputs: [fused.user.outputs[0]!] } : {}),
    inputs: [xv],
    run([xt], rc) {
      const x = xt!;
      if (x.shape.length !== 4 || x.shape[1] !== C) badShape(node, `input [${x.shape.join(", ")}] does not have ${C} channels`);
      const g = geoOf(x.shape);
      const out = rc.alloc(r.outDType, [x.shape[0]!, M, g.OH, g.OW]);
      run(x, g, out);
      return [out];
    },
  };
}

/** The constant 8-bit weight of a node, or why not. */
function weight8(ctx: LowerContext, v: string | undefined, rank: number): Tensor | string {
  const w = ctx.constant(v);
  if (w === undefined) return "the weight is not a constant";
  if (!is8(w.dtype)) return `weights of dtype ${w.dtype}`;
  if (w.shape.length !== rank) return `a weight of rank ${w.shape.length}`;
  return w;
}

/** torch.ops.quantized.linear / linear_relu (qnnpack, onednn). */
export const quantizedLinear: Lowering = (node, ctx) => {
  const [xv, , xzpV, wv, , wzpV] = node.inputs;
  const xd = ctx.dtype(xv!);
  if (!is8(xd)) return skip(`activations of dtype ${String(xd)}`);
  const w = weight8(ctx, wv, 2);
  if (typeof w === "string") return skip(w);
  const N = w.shape[0]!;
  const r = torchRequant(node, ctx, xd, N);
  if (typeof r === "string") return skip(r);
  const xzp = scalarParam(ctx, xzpV);
  const wzp = paramVector(ctx, wzpV, N)!;
  if (xzp === undefined) return skip("x_zero_point is not a constant");
  return linearStep(node, ctx, xv!, xd, xzp, w, true, wzp, r, `W [${w.shape.join(", ")}]`);
};

function pair(v: unknown): [number, number] | undefined {
  const a = v as number[] | undefined;
  if (a === undefined) return undefined;
  if (a.length === 1) return [a[0]!, a[0]!];
  return a.length === 2 ? [a[0]!, a[1]!] : undefined;
}

/** torch.ops.quantized.conv2d / conv2d_relu (NCHW, symmetric padding). */
export const quantizedConv2d: Lowering = (node, ctx) => {
  const [xv, , xzpV, wv, , wzpV] = node.inputs;
  const xd = ctx.dtype(xv!);
  if (!is8(xd)) return skip(`activations of dtype ${String(xd)}`);
  const w = weight8(ctx, wv, 4);
  if (typeof w === "string") return skip(w);
  const M = w.shape[0]!;
  const r = torchRequant(node, ctx, xd, M);
  if (typeof r === "string") return skip(r);
  const xzp = scalarParam(ctx, xzpV);
  if (xzp === undefined) return skip("x_zero_point is not a constant");
  const attrs = resolveAttrs(getOp(node.op), node.attrs, node.name);
  const stride = pair(attrs["stride"]);
  const padding = pair(attrs["padding"]);
  const dilation = pair(attrs["dilation"]);
  const groups = attrs["groups"] as number;
  if (stride === undefined || padding === undefined || dilation === undefined) return skip("stride/padding/dilation must have 1 or 2 values");
  if (!(groups >= 1) || M % groups !== 0) return skip("output channels not divisible by groups");
  const geoOf = geoCache((shape): ConvGeo => {
    const out = [0, 1].map((i) => Math.floor((shape[2 + i]! + 2 * padding[i]! - ((w.shape[2 + i]! - 1) * dilation[i]! + 1)) / stride[i]!) + 1);
    if (out.some((d) => d < 1)) badShape(node, `the kernel does not fit the input [${shape.join(", ")}]`);
    return {
      C: shape[1]!, H: shape[2]!, W: shape[3]!, M, G: groups, KH: w.shape[2]!, KW: w.shape[3]!, SH: stride[0], SW: stride[1],
      PH: padding[0], PW: padding[1], DH: dilation[0], DW: dilation[1], OH: out[0]!, OW: out[1]!,
    };
  });
  return convStep(node, ctx, xv!, xd, xzp, w, paramVector(ctx, wzpV, M)!, r, groups, geoOf);
};

/** ONNX QLinearConv / ConvInteger / QLinearMatMul / MatMulInteger: requantization or int32. */
function onnxRequant(ctx: LowerContext, kind: "qlinear" | "i32", xs: number | undefined, ws: readonly number[] | undefined, ys: number | undefined,
  yzpV: string | undefined, bias: string | undefined, channels: number): Requant | string {
  if (kind === "i32") return { kind: "i32", out: "i32", outDType: "int32", zp: 0, lo: 0, hi: 0, xs: 0, ys: 0 };
  const yzpT = ctx.constant(yzpV);
  const yzp = scalarOf(yzpT);
  if (xs === undefined || ws === undefined || ys === undefined || yzpT === undefined || yzp === undefined) return "the qparams are not per-tensor constants";
  if (!goodScales([xs, ys, ...ws])) return "a scale is not positive and finite";
  const out = outCode(yzpT.dtype);
  if (out === undefined || out === "i32") return `outputs of dtype ${yzpT.dtype}`;
  const info = dtypeInfo(yzpT.dtype);
  let b: Int32Array | undefined;
  if (bias !== undefined && bias !== "") {
    const t = ctx.constant(bias);
    if (t === undefined || t.dtype !== "int32" || numel(t.shape) !== channels) return "B is not a constant int32 vector";
    b = Int32Array.from(t.data as Int32Array);
  }
  // ORT's float multiplier x_scale * w_scale / y_scale (onnx.ts qlinearConv / qlinearMatmul).
  const mult = Float32Array.from(ws, (s) => f32(f32(xs * s) / ys));
  if (!mult.every(Number.isFinite)) return "a requantization scale is not finite";
  return { kind: "qlinear", out, outDType: yzpT.dtype, zp: yzp, lo: info.min, hi: info.max, ...(b ? { bias: b } : {}), mult, xs, ys };
}

function onnxConv(kind: "qlinear" | "i32"): Lowering {
  return (node, ctx) => {
    const q = kind === "qlinear";
    const xv = node.inputs[0]!;
    const wv = node.inputs[q ? 3 : 1];
    const xd = ctx.dtype(xv);
    if (!is8(xd)) return skip(`activations of dtype ${String(xd)}`);
    if (ctx.rank(xv) !== 4) return skip("only 2-D convolutions (NCHW) have a fast kernel");
    const w = weight8(ctx, wv, 4);
    if (typeof w === "string") return skip(w);
    const M = w.shape[0]!;
    const xzpV = node.inputs[q ? 2 : 2];
    const wzpV = node.inputs[q ? 5 : 3];
    const xzp = xzpV === undefined || xzpV === "" ? 0 : scalarParam(ctx, xzpV);
    const wzp = wzpV === undefined || wzpV === "" ? new Array<number>(M).fill(0) : paramVector(ctx, wzpV, M);
    if (xzp === undefined || wzp === undefined) return skip("the zero points are not constants");
    const r = q
      ? onnxRequant(ctx, kind, scalarParam(ctx, node.inputs[1]), paramVector(ctx, node.inputs[4], M), scalarParam(ctx, node.inputs[6]), node.inputs[7], node.inputs[8], M)
      : onnxRequant(ctx, kind, 0, [], 0, undefined, undefined, M);
    if (typeof r === "string") return skip(r);
    const attrs = resolveAttrs(getOp(node.op), node.attrs, node.name);
    const groups = attrs["group"] as number;
    if (!(groups >= 1) || M % groups !== 0) return skip("output channels not divisible by group");
    const kshape = attrs["kernel_shape"] as number[] | undefined;
    if (kshape !== undefined && (kshape[0] !== w.shape[2] || kshape[1] !== w.shape[3])) return skip("kernel_shape differs from the weight");
    const geoOf = geoCache((shape) => convGeo(node, shape, w.shape, attrs));
    return convStep(node, ctx, xv, xd, xzp, w, wzp, r, groups, geoOf);
  };
}

export const qlinearConv = onnxConv("qlinear");
export const convInteger = onnxConv("i32");

function onnxMatmul(kind: "qlinear" | "i32"): Lowering {
  return (node, ctx) => {
    const q = kind === "qlinear";
    const av = node.inputs[0]!;
    const bv = node.inputs[q ? 3 : 1]!;
    const ad = ctx.dtype(av);
    if (!is8(ad)) return skip(`operands of dtype ${String(ad)}`);
    if ((ctx.rank(av) ?? 0) < 2) return skip("a 1-D left operand");
    const azpV = node.inputs[2];
    const bzpV = node.inputs[q ? 5 : 3];
    const azp = azpV === undefined || azpV === "" ? 0 : scalarParam(ctx, azpV);
    if (ctx.constant(bv) === undefined) return runtimeRhs(node, ctx, kind, av, ad, azp, bv, bzpV);
    const b = weight8(ctx, bv, 2);
    if (typeof b === "string") return skip(b);
    const N = b.shape[1]!;
    const bzp = bzpV === undefined || bzpV === "" ? new Array<number>(N).fill(0) : paramVector(ctx, bzpV, N);
    if (azp === undefined || bzp === undefined) return skip("the zero points are not per-tensor (a) / per-column (b) constants");
    const r = q
      ? onnxRequant(ctx, kind, scalarParam(ctx, node.inputs[1]), paramVector(ctx, node.inputs[4], N), scalarParam(ctx, node.inputs[6]), node.inputs[7], undefined, N)
      : onnxRequant(ctx, kind, 0, [], 0, undefined, undefined, N);
    if (typeof r === "string") return skip(r);
    return linearStep(node, ctx, av, ad, azp, b, false, bzp, r, `B [${b.shape.join(", ")}]`);
  };
}

/**
 * QLinearMatMul / MatMulInteger of two runtime 8-bit operands with equal batch dims (attention's
 * q @ k^T): per-tensor qparams; b is packed per call with its column sums.
 */
function runtimeRhs(node: Node, ctx: LowerContext, kind: "qlinear" | "i32", av: string, ad: "uint8" | "int8", azp: number | undefined, bv: string,
  bzpV: string | undefined): Lowered | ReturnType<typeof skip> {
  const bd = ctx.dtype(bv);
  if (!is8(bd)) return skip(`a right-hand side of dtype ${String(bd)}`);
  if (ctx.rank(av) !== ctx.rank(bv)) return skip("operands of different ranks");
  const bzp = bzpV === undefined || bzpV === "" ? 0 : scalarParam(ctx, bzpV);
  if (azp === undefined || bzp === undefined) return skip("runtime right-hand side with zero points that are not per-tensor constants");
  const q = kind === "qlinear";
  const bs = q ? scalarParam(ctx, node.inputs[4]) : 0;
  const r = q
    ? onnxRequant(ctx, kind, scalarParam(ctx, node.inputs[1]), bs === undefined ? undefined : [bs], scalarParam(ctx, node.inputs[6]), node.inputs[7], undefined, 1)
    : onnxRequant(ctx, kind, 0, [], 0, undefined, undefined, 1);
  if (typeof r === "string") return skip(r);
  const tier = ctx.tier;
  const a = toU8(ad);
  const bdom = toS8(bd);
  const za = azp + a.shift;
  const zb = bzp + bdom.shift;
  // The per-column multiplier is one value; the epilogue is made per column count on first use.
  const epis = new Map<number, Resident>();
  const epiFor = (N: number, K: number): Resident => {
    const key = N * 1e6 + K;
    let e = epis.get(key);
    if (e === undefined) {
      const rr: Requant = r.mult === undefined ? r : { ...r, mult: new Float32Array(N).fill(r.mult[0]!) };
      e = tier.qepi(epiParams(rr, false, K, { za: Int32Array.of(za), zaPerRow: false, zb: Int32Array.of(zb), zbPerCol: false }));
      epis.set(key, e);
    }
    return e;
  };
  return {
    kernel: `qgemm_u8s8_${tier.kernels.qgemm}`,
    tier: tier.name,
    note: `runtime right-hand side packed per call, ${r.kind} requantization`,
    inputs: [av, bv],
    run([at, bt], rc) {
      const x = at!;
      const y = bt!;
      const rank = x.shape.length;
      const [M, K] = [x.shape[rank - 2]!, x.shape[rank - 1]!];
      const [K2, N] = [y.shape[rank - 2]!, y.shape[rank - 1]!];
      const batch = x.shape.slice(0, -2);
      if (K !== K2 || y.shape.length !== rank || y.shape.slice(0, -2).some((d, i) => d !== batch[i])) {
        badShape(node, `[${x.shape.join(", ")}] @ [${y.shape.join(", ")}]: the fast kernel takes equal batch dims`);
      }
      const out = rc.alloc(r.outDType, [...batch, M, N]);
      const epi = epiFor(N, K);
      const nb = numel(batch);
      const xb = bytes(x);
      const yb = bytes(y);
      const ob = out.data as Uint8Array;
      for (let i = 0; i < nb; i++) {
        tier.qgemmB(M, N, K, xb.subarray(i * M * K, (i + 1) * M * K), K, a.flip, zb !== 0, yb.subarray(i * K * N, (i + 1) * K * N), N, bdom.flip, za !== 0,
          epi, ob.subarray(i * M * N, (i + 1) * M * N), N);
      }
      return [out];
    },
  };
}

export const qlinearMatmul = onnxMatmul("qlinear");
export const matmulInteger = onnxMatmul("i32");

/**
 * torch.ops.quantized.linear_dynamic: the float input is quantized per run (ATen's
 * ChooseQuantizationParams over its min/max, quint8), multiplied with the prepacked weight exactly in
 * int32, and scaled back as torch-linear.ts dynamicQuantizedLinear does. The activation's zero point
 * changes per run, so its correction and the float scaling run here in TypeScript (O(M*N)).
 */
export const dynamicQuantizedLinear: Lowering = (node, ctx) => {
  const [xv, wv, wsV, wzpV, biasV] = node.inputs;
  if (ctx.dtype(xv!) !== "float32") return skip("float32 activations only");
  const attrs = resolveAttrs(getOp(node.op), node.attrs, node.name);
  const engine = attrs["engine"] as Engine;
  if (engine !== "qnnpack" && engine !== "onednn") return skip(`engine ${String(engine)}`);
  const w = weight8(ctx, wv, 2);
  if (typeof w === "string") return skip(w);
  const [N, K] = [w.shape[0]!, w.shape[1]!];
  const ws = paramVector(ctx, wsV, N);
  const wzp = paramVector(ctx, wzpV, N);
  if (ws === undefined || wzp === undefined) return skip("the weight qparams are not constants");
  if (!goodScales(ws)) return skip("a scale is not positive and finite");
  if (engine === "onednn" && wzp.some((z) => z !== 0)) return skip("onednn refuses weights with a non-zero zero point");
  let bias: number[] | undefined;
  if (biasV !== undefined && biasV !== "") {
    const b = ctx.constant(biasV);
    if (b === undefined || dtypeInfo(b.dtype).kind !== "float") return skip("the bias is not a constant");
    bias = numbersOf(b).map(f32);
    if (bias.length !== N) return skip("the bias has the wrong length");
  }
  const reduceRange = engine === "onednn" && attrs["reduce_range"] === true;
  const tier = ctx.tier;
  const wd = w.dtype as "uint8" | "int8";
  const bdom = toS8(wd);
  const { packed, colsum } = tier.packB8(bytes(w), K, N, K, true, bdom.flip);
  const zb = Int32Array.from(wzp, (z) => z + bdom.shift);
  const needRowSum = zb.some((z) => z !== 0);
  // The kernel applies only the weight zero point's correction; the activation's is added below.
  const epi: Resident = tier.qepi({
    kind: "i32", perRow: false, out: "i32", zp: 0, lo: 0, hi: 0, K, za: Int32Array.of(0), zaPerRow: false, zb, zbPerCol: true, xs: 0, ys: 0,
  });
  const wsF32 = ws.map(f32);
  return {
    kernel: `qgemm_u8s8_${tier.kernels.qgemm}`,
    tier: tier.name,
    note: `W [${N}, ${K}] prepacked int8; activation quantized per run, ${engine} dequantization in TypeScript`,
    inputs: [xv!],
    run([xt], rc) {
      const x = xt!;
      if (x.shape.length < 1 || x.shape[x.shape.length - 1] !== K) badShape(node, `input [${x.shape.join(", ")}] does not end in ${K}`);
      const xs = x.data as Float32Array;
      let min = 0;
      let max = 0;
      if (xs.length > 0) {
        min = xs[0]!;
        max = xs[0]!;
        for (let i = 1; i < xs.length; i++) {
          const v = xs[i]!;
          if (v < min) min = v;
          if (v > max) max = v;
        }
      }
      const qp = chooseQuantizationParamsAten(min, max, 0, 255, { reduceRange });
      const xq = quantizePerTensor({ dtype: "float32", shape: x.shape, data: xs }, qp.scale, qp.zeroPoint, "quint8");
      const M = numel(x.shape) / K;
      const acc = new Int32Array(M * N);
      tier.qgemm(M, N, K, xq.data as Uint8Array, K, 0, needRowSum, packed, epi, acc, N);
      const out = rc.alloc("float32", [...x.shape.slice(0, -1), N]);
      const od = out.data as Float32Array;
      const za = qp.zeroPoint;
      const kza = Math.imul(K, za);
      if (engine === "qnnpack") {
        const mult = wsF32.map((s) => f32(s * f32(qp.scale)));
        for (let i = 0; i < M; i++) {
          for (let c = 0; c < N; c++) {
            const a = (acc[i * N + c]! - Math.imul(za, colsum[c]!) + Math.imul(kza, zb[c]!)) | 0;
            const v = f32(f32(a) * mult[c]!);
            od[i * N + c] = bias === undefined ? v : f32(v + bias[c]!);
          }
        }
      } else {
        for (let i = 0; i < M; i++) {
          for (let c = 0; c < N; c++) {
            const a = (acc[i * N + c]! - Math.imul(za, colsum[c]!) + Math.imul(kza, zb[c]!)) | 0;
            od[i * N + c] = a * qp.scale * ws[c]! + (bias === undefined ? 0 : bias[c]!);
          }
        }
      }
      return [out];
    },
  };
};
