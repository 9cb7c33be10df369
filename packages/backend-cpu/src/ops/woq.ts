/**
 * Weight-only quantized linear (torchao `int4_weight_only` / `int8_weight_only`): the ao op
 * `affine_quantized_linear` with act_quant "none" and compute "dequantize", lowered to the tiers'
 * A16W4 / A16W8 GEMV kernels. The weight stays packed (int4: two codes per byte in 32-blocks,
 * int8: one per byte) and is dequantized inside the dot product:
 *
 *   int4, group g of row n: w = c * s[n,g] + b[n,g] for codes c in 0..15, with b folding the zero
 *   point of each torchao domain (INT: w = (v - zp) * s; FLOAT: w = (v - mid) * s + zp; NONE: v * s,
 *   v the signed or unsigned value of the code), so y = sum_g s * (x . c)_g + b * (sum x)_g.
 *   int8, per output channel, symmetric: y = s[n] * (x . q_n).
 *
 * The reference kernel dequantizes to float32 first and sums in float64; these kernels sum in
 * float32 and apply the scale per group, so results agree to float32 rounding (tested at 1e-5
 * relative to the magnitude of the sum).
 */
import { dtypeInfo, numel, unpackSubByte, type DType, type Tensor } from "@qforge/ir";
import { f32 } from "@qforge/quant";
import { float32Of, numbersOf, skip, type Lowering } from "../lower.js";

/** Values (not codes) of a plain or int4_pairs weight, row-major [N, K]. */
function weightValues(qdata: Tensor, layout: string, dtype: DType, n: number, k: number): Int32Array | undefined {
  const info = dtypeInfo(dtype);
  if (layout === "plain") {
    if (qdata.dtype !== dtype) return undefined;
    if (info.packed) return Int32Array.from(unpackSubByte(dtype, qdata.data as Uint8Array, n * k));
    return Int32Array.from(qdata.data as Int8Array | Uint8Array);
  }
  if (layout === "int4_pairs" && info.bits === 4) {
    // Element 2j in the high nibble, 2j+1 in the low one (ir ops/ao.ts).
    const d = qdata.data as Uint8Array;
    const out = new Int32Array(n * k);
    const signed = info.kind === "int";
    for (let i = 0; i < (n * k) / 2; i++) {
      const hi = d[i]! >> 4;
      const lo = d[i]! & 15;
      out[2 * i] = signed && hi >= 8 ? hi - 16 : hi;
      out[2 * i + 1] = signed && lo >= 8 ? lo - 16 : lo;
    }
    return out;
  }
  return undefined;
}

export const affineQuantizedLinear: Lowering = (node, ctx) => {
  const a = node.attrs;
  if ((a["act_quant"] ?? "none") !== "none" || (a["compute"] ?? "dequantize") !== "dequantize") {
    return skip("only weight-only (act_quant none, compute dequantize) has a fast kernel");
  }
  const [xv, wv, sv, zv, bv] = node.inputs;
  if (ctx.dtype(xv!) !== "float32") return skip("float32 activations only");
  const [N, K] = a["weight_shape"] as readonly number[] as [number, number];
  const dtype = a["weight_dtype"] as DType;
  const layout = (a["layout"] as string | undefined) ?? "plain";
  const block = a["block_size"] as readonly number[];
  const domain = (a["zero_point_domain"] as string | undefined) ?? "INT";
  const qdata = ctx.constant(wv);
  const scaleT = ctx.constant(sv);
  const zpT = zv === undefined || zv === "" ? undefined : ctx.constant(zv);
  if (qdata === undefined || scaleT === undefined || (zv !== undefined && zv !== "" && zpT === undefined)) return skip("the weight and its qparams are not constants");
  if (block[0] !== 1) return skip(`block_size [${block.join(", ")}] groups rows`);
  const G = block[1]!;
  let bias: Float32Array | undefined;
  if (bv !== undefined && bv !== "") {
    bias = float32Of(ctx.constant(bv));
    if (bias === undefined || bias.length !== N) return skip("the bias is not a constant float32 vector");
  }
  const info = dtypeInfo(dtype);
  const values = weightValues(qdata, layout, dtype, N, K);
  if (values === undefined) return skip(`layout ${layout} of ${dtype} weights`);
  const ng = K / G;
  const scales = numbersOf(scaleT);
  const zps = zpT === undefined ? undefined : numbersOf(zpT);
  if (scales.length !== N * ng) return skip("scale shape");
  const tier = ctx.tier;
  const residentBias = bias === undefined ? null : tier.resident(bias);

  if (info.bits === 4 && G % 32 === 0 && K % G === 0) {
    // Codes c = v - off in 0..15; then w = c * s + bGroup.
    const off = info.kind === "int" ? -8 : 0;
    const qmin = (a["quant_min"] as number | undefined) ?? info.min;
    const qmax = (a["quant_max"] as number | undefined) ?? info.max;
    const mid = (qmax + qmin + 1) / 2;
    const codes = Uint8Array.from(values, (v) => v - off);
    const s = Float32Array.from(scales, f32);
    const b = new Float32Array(N * ng);
    for (let i = 0; i < N * ng; i++) {
      const zp = zps?.[i] ?? 0;
      const si = s[i]!;
      b[i] = domain === "FLOAT" ? (off - mid) * si + zp : domain === "NONE" ? off * si : (off - Math.trunc(zp)) * si;
    }
    const packed = tier.packInt4(codes, N, K);
    const sr = tier.resident(s);
    const br = tier.resident(b);
    return {
      kernel: `woq4_gemv_${tier.kernels.woq}`,
      tier: tier.name,
      note: `int4 weight [${N}, ${K}] group ${G}, ${domain} zero points, kept packed (${(N * K) / 2} bytes)`,
      inputs: [xv!],
      run([xt], rc) {
        const x = xt!;
        const M = numel(x.shape) / K;
        const out = rc.alloc("float32", [...x.shape.slice(0, -1), N]);
        tier.woq4(M, N, K, G, x.data as Float32Array, packed, sr, br, residentBias, out.data as Float32Array);
        return [out];
      },
    };
  }
  if (info.bits === 8 && info.kind === "int" && layout === "plain" && G === K && (zps === undefined || zps.every((z) => z === 0))) {
    const q = tier.resident(Int8Array.from(values));
    const sr = tier.resident(Float32Array.from(scales, f32));
    return {
      kernel: `woq8_gemv_${tier.kernels.woq}`,
      tier: tier.name,
      note: `int8 weight [${N}, ${K}] per channel, kept quantized (${N * K} bytes)`,
      inputs: [xv!],
      run([xt], rc) {
        const x = xt!;
        const M = numel(x.shape) / K;
        const out = rc.alloc("float32", [...x.shape.slice(0, -1), N]);
        tier.woq8(M, N, K, x.data as Float32Array, q, sr, residentBias, out.data as Float32Array);
        return [out];
      },
    };
  }
  return skip(`${dtype} weights with block_size [${block.join(", ")}] (fast: int4/uint4 in groups of 32k, int8 per channel with zero point 0)`);
};
