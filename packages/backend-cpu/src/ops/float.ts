/**
 * fp32 linear / gemm / matmul / conv on the tier's packed-panel GEMM, with the elementwise tail
 * fused into the epilogue. Constant weights are packed once at compile time; a runtime right-hand
 * side (attention's q @ k^T) is packed per call. Accumulation is float32 in the kernel's order, so
 * results differ from the reference interpreter (which sums in float64) by rounding only.
 */
import { QforgeError, getOp, numel, resolveAttrs, type Node } from "@qforge/ir";
import { onnxConvGeometry } from "@qforge/runtime";
import { describeTail, fuseTail } from "../fusion.js";
import { float32Of, skip, type LowerContext, type Lowered, type Lowering } from "../lower.js";
import type { ConvGeo, Resident } from "../tiers/tier.js";

function badShape(node: Node, message: string): never {
  throw new QforgeError("BAD_SHAPE", `${node.op}: ${message}`, { node: node.name });
}

/**
 * x [..., K] times a constant B (packed) into [..., N]: shared by linear, gemm and matmul with a
 * constant right-hand side.
 */
function constRhs(node: Node, ctx: LowerContext, x: string, packed: Resident, K: number, N: number, bias: Float32Array | undefined,
  rank: number, what: string): Lowered {
  const tier = ctx.tier;
  const tail = fuseTail(ctx, node, { layout: "last", channels: N, rank });
  const epi = tier.epiF32({ bias, perRow: false, ops: tail.ops });
  return {
    kernel: `sgemm_${tier.kernels.sgemm}`,
    tier: tier.name,
    note: [what, describeTail(bias !== undefined, tail.ops)].filter((s) => s !== undefined).join("; "),
    fused: tail.nodes,
    inputs: [x],
    outputs: [tail.output],
    run([xt], rc) {
      const t = xt!;
      if (t.shape.length < 1 || t.shape[t.shape.length - 1] !== K) badShape(node, `input [${t.shape.join(", ")}] does not end in ${K}`);
      const M = numel(t.shape) / K;
      const out = rc.alloc("float32", [...t.shape.slice(0, -1), N]);
      tier.sgemm(M, N, K, t.data as Float32Array, K, packed, out.data as Float32Array, N, epi);
      return [out];
    },
  };
}

function constBias(ctx: LowerContext, v: string | undefined, n: number): Float32Array | undefined | null {
  if (v === undefined || v === "") return undefined;
  const b = ctx.constant(v);
  if (b === undefined || b.dtype !== "float32" || numel(b.shape) !== n) return null;
  return float32Of(b);
}

/** torch linear: y = x W^T + b, W [N, K] constant. */
export const linear: Lowering = (node, ctx) => {
  const [xv, wv, bv] = node.inputs;
  if (ctx.dtype(xv!) !== "float32") return skip("the fast kernels are float32");
  const w = ctx.constant(wv);
  if (w === undefined || w.dtype !== "float32" || w.shape.length !== 2) return skip("the weight is not a constant float32 matrix");
  const [N, K] = [w.shape[0]!, w.shape[1]!];
  const bias = constBias(ctx, bv, N);
  if (bias === null) return skip("the bias is not a constant float32 vector");
  const packed = ctx.tier.packBF32(w.data as Float32Array, K, N, K, true);
  return constRhs(node, ctx, xv!, packed, K, N, bias, ctx.rank(node.outputs[0]!) ?? 2, `W [${N}, ${K}] prepacked`);
};

/** ONNX Gemm with alpha 1, A not transposed, constant B, and C absent or a constant row vector. */
export const gemm: Lowering = (node, ctx) => {
  const attrs = resolveAttrs(getOp("gemm"), node.attrs, node.name);
  const [av, bv, cv] = node.inputs;
  if (ctx.dtype(av!) !== "float32") return skip("the fast kernels are float32");
  if (attrs["alpha"] !== 1 || attrs["transA"] !== 0) return skip("alpha != 1 or transA");
  const b = ctx.constant(bv);
  if (b === undefined || b.dtype !== "float32" || b.shape.length !== 2) return skip("B is not a constant float32 matrix");
  const transB = attrs["transB"] !== 0;
  const [K, N] = transB ? [b.shape[1]!, b.shape[0]!] : [b.shape[0]!, b.shape[1]!];
  let bias: Float32Array | undefined;
  if (cv !== undefined && cv !== "") {
    const c = ctx.constant(cv);
    const beta = attrs["beta"] as number;
    if (c === undefined || c.dtype !== "float32" || numel(c.shape) !== N || c.shape.length > 2 || (c.shape.length === 2 && c.shape[0] !== 1)) {
      return skip("C is not a constant row vector");
    }
    if (beta !== 1) return skip("beta != 1");
    bias = float32Of(c);
  }
  const packed = ctx.tier.packBF32(b.data as Float32Array, K, N, transB ? K : N, transB);
  return constRhs(node, ctx, av!, packed, K, N, bias, 2, `B [${b.shape.join(", ")}] prepacked`);
};

/** numpy matmul: a constant 2-D right-hand side, or runtime operands with equal (or no) batch dims. */
export const matmul: Lowering = (node, ctx) => {
  const [av, bv] = node.inputs;
  if (ctx.dtype(av!) !== "float32") return skip("the fast kernels are float32");
  const ra = ctx.rank(av!) ?? 0;
  const rb = ctx.rank(bv!) ?? 0;
  if (ra < 2 || rb < 2) return skip("1-D operands");
  const b = ctx.constant(bv);
  if (b !== undefined) {
    if (b.dtype !== "float32" || numel(b.shape.slice(0, -2)) !== 1) return skip("a batched constant right-hand side");
    const [K, N] = [b.shape[b.shape.length - 2]!, b.shape[b.shape.length - 1]!];
    if (rb > ra) return skip("the right-hand side has more dims");
    const packed = ctx.tier.packBF32(b.data as Float32Array, K, N, N, false);
    return constRhs(node, ctx, av!, packed, K, N, undefined, ctx.rank(node.outputs[0]!) ?? ra, `B [${K}, ${N}] prepacked`);
  }
  if (ra !== rb) return skip("operands of different ranks");
  const tier = ctx.tier;
  const epi = tier.epiF32({ perRow: false, ops: [] });
  return {
    kernel: `sgemm_${tier.kernels.sgemm}`,
    tier: tier.name,
    note: "right-hand side packed per call",
    run([at, bt], rc) {
      const a = at!;
      const bb = bt!;
      const r = a.shape.length;
      const [M, K] = [a.shape[r - 2]!, a.shape[r - 1]!];
      const [K2, N] = [bb.shape[r - 2]!, bb.shape[r - 1]!];
      const batch = a.shape.slice(0, -2);
      if (K !== K2 || bb.shape.length !== r || bb.shape.slice(0, -2).some((d, i) => d !== batch[i])) {
        badShape(node, `[${a.shape.join(", ")}] @ [${bb.shape.join(", ")}]: the fast kernel takes equal batch dims`);
      }
      const out = rc.alloc("float32", [...batch, M, N]);
      const nb = numel(batch);
      const ad = a.data as Float32Array;
      const bd = bb.data as Float32Array;
      const od = out.data as Float32Array;
      for (let i = 0; i < nb; i++) {
        tier.sgemmDynamic(M, N, K, ad.subarray(i * M * K, (i + 1) * M * K), K, bd.subarray(i * K * N, (i + 1) * K * N), N,
          od.subarray(i * M * N, (i + 1) * M * N), N, epi);
      }
      return [out];
    },
  };
};

/** The tier's conv geometry of one image from ONNX Conv attributes and the input shape. */
export function convGeo(node: Node, xShape: readonly number[], wShape: readonly number[], attrs: Readonly<Record<string, unknown>>): ConvGeo {
  const g = onnxConvGeometry({ node: node.name, op: node.op }, xShape, wShape, attrs);
  return {
    C: xShape[1]!, H: xShape[2]!, W: xShape[3]!, M: wShape[0]!, G: g.group,
    KH: wShape[2]!, KW: wShape[3]!, SH: g.strides[0]!, SW: g.strides[1]!, PH: g.padsBegin[0]!, PW: g.padsBegin[1]!,
    DH: g.dilations[0]!, DW: g.dilations[1]!, OH: g.outSpatial[0]!, OW: g.outSpatial[1]!,
  };
}

/** A cache of geometries by input shape (symbolic dims make each run's shape a lookup). */
export function geoCache(make: (shape: readonly number[]) => ConvGeo): (shape: readonly number[]) => ConvGeo {
  const cache = new Map<string, ConvGeo>();
  return (shape) => {
    const key = shape.join(",");
    let g = cache.get(key);
    if (g === undefined) {
      g = make(shape);
      cache.set(key, g);
    }
    return g;
  };
}

/** ONNX Conv, 2-D, float32, constant weights (im2col + GEMM, or the direct depthwise kernel). */
export const conv: Lowering = (node, ctx) => {
  const [xv, wv, bv] = node.inputs;
  if (ctx.dtype(xv!) !== "float32") return skip("the fast kernels are float32");
  if (ctx.rank(xv!) !== 4) return skip("only 2-D convolutions (NCHW) have a fast kernel");
  const w = ctx.constant(wv);
  if (w === undefined || w.dtype !== "float32" || w.shape.length !== 4) return skip("the weight is not a constant float32 tensor");
  const attrs = resolveAttrs(getOp("conv"), node.attrs, node.name);
  const M = w.shape[0]!;
  const bias = constBias(ctx, bv, M);
  if (bias === null) return skip("the bias is not a constant float32 vector");
  const G = attrs["group"] as number;
  if (M % G !== 0) return skip("output channels not divisible by group");
  const kshape = attrs["kernel_shape"] as number[] | undefined;
  if (kshape !== undefined && (kshape[0] !== w.shape[2] || kshape[1] !== w.shape[3])) return skip("kernel_shape differs from the weight");
  const tier = ctx.tier;
  // Packing needs only the channel and kernel sizes; the spatial ones come with each input.
  const C = w.shape[1]! * G;
  const shapeGeo: ConvGeo = { C, H: 1, W: 1, M, G, KH: w.shape[2]!, KW: w.shape[3]!, SH: 1, SW: 1, PH: 0, PW: 0, DH: 1, DW: 1, OH: 1, OW: 1 };
  const packed = tier.packConvF32(w.data as Float32Array, shapeGeo);
  const tail = fuseTail(ctx, node, { layout: "nchw", channels: M, rank: 4 });
  const epi = tier.epiF32({ bias, perRow: true, ops: tail.ops });
  const geoOf = geoCache((shape) => convGeo(node, shape, w.shape, attrs));
  const depthwise = G === C && G === M;
  const scalarNote = describeTail(bias !== undefined, tail.ops);
  return {
    kernel: depthwise ? "dwconv_f32_direct" : `conv_f32_im2col_sgemm_${tier.kernels.sgemm}`,
    tier: tier.name,
    note: [`W [${w.shape.join(", ")}] ${depthwise ? "kept" : "prepacked"}`, scalarNote].filter((s) => s !== undefined).join("; "),
    fused: tail.nodes,
    inputs: [xv!],
    outputs: [tail.output],
    run([xt], rc) {
      const x = xt!;
      if (x.shape.length !== 4 || x.shape[1] !== C) badShape(node, `input [${x.shape.join(", ")}] does not have ${C} channels`);
      const g = geoOf(x.shape);
      const out = rc.alloc("float32", [x.shape[0]!, M, g.OH, g.OW]);
      tier.convF32(g, x.shape[0]!, x.data as Float32Array, packed, out.data as Float32Array, epi);
      return [out];
    },
  };
};

