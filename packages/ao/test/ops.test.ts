import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  dtypeInfo, fromArray, isQforgeError, packSubByte, tensor, tensorsEqual, toFloat64, zeros, type DType, type Tensor,
} from "@qforge/ir";
import { dequantizeAffine, f32, rint } from "@qforge/quant";
import { runOp } from "@qforge/runtime";

/** A plain [n, k] weight of `dtype` whose raw codes are `codes`. */
function plainFromCodes(dtype: DType, n: number, k: number, codes: number[]): Tensor {
  const info = dtypeInfo(dtype);
  if (info.kind === "float") return tensor(dtype, [n, k], Uint8Array.from(codes));
  const vals = codes.map((c) => (info.kind === "int" && c >= 2 ** (info.bits - 1) ? c - 2 ** info.bits : c));
  if (info.packed) return tensor(dtype, [n, k], packSubByte(dtype, vals));
  return fromArray(dtype, [n, k], vals);
}

const LAYOUTS_FOR_BITS: Record<number, string[]> = {
  1: ["plain", "u32_words"], 2: ["plain", "u32_words"], 3: ["plain"], 4: ["plain", "int4_pairs", "tiles", "u32_words"], 8: ["plain", "tiles", "u32_words"],
};

describe("pack_quantized_weight / unpack_quantized_weight", () => {
  it("hand-packed int4: pairs put element 2j in the high nibble, u32 words fill from the low bits", () => {
    const w = fromArray("int4", [1, 4], [-8, 7, 1, -1]);
    const pairs = runOp("pack_quantized_weight", [w], { layout: "int4_pairs" })[0]!;
    expect(pairs.dtype).toBe("uint8");
    expect(Array.from(toFloat64(pairs))).toEqual([0x87, 0x1f]);
    const words = runOp("pack_quantized_weight", [w], { layout: "u32_words" })[0]!;
    expect(words.shape).toEqual([1, 1]);
    expect(Array.from(toFloat64(words))).toEqual([0xf178]);
  });

  it("hand-packed int8 tiles: [3, 5] in 2x4 tiles is [2, 2, 2, 4] with zero padding", () => {
    const w = fromArray("int8", [3, 5], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, -1, -2, -3, -4, -5]);
    const t = runOp("pack_quantized_weight", [w], { layout: "tiles", tile: [2, 4] })[0]!;
    expect(t.shape).toEqual([2, 2, 2, 4]);
    expect(Array.from(toFloat64(t))).toEqual([
      1, 2, 3, 4, 6, 7, 8, 9, // tile (0, 0): rows 0-1, cols 0-3
      5, 0, 0, 0, 10, 0, 0, 0, // tile (0, 1): col 4 then padding
      255, 254, 253, 252, 0, 0, 0, 0, // tile (1, 0): row 2, padded row 3
      251, 0, 0, 0, 0, 0, 0, 0,
    ]);
  });

  it("unpack(pack(w)) == w for every dtype, layout and shape", () => {
    const dtypes: DType[] = ["int1", "int2", "int3", "int4", "uint2", "uint3", "uint4", "int8", "uint8", "float8_e4m3fn", "float8_e5m2"];
    fc.assert(fc.property(
      fc.constantFrom(...dtypes), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 6 }), fc.nat(),
      (dtype, n, halfK, tn, tkHalf, seed) => {
        const bits = dtypeInfo(dtype).bits;
        const k = 2 * halfK;
        const codes = Array.from({ length: n * k }, (_, i) => (seed * 7919 + i * 104729) % 2 ** bits);
        const w = plainFromCodes(dtype, n, k, codes);
        for (const layout of LAYOUTS_FOR_BITS[bits]!) {
          const attrs = { layout, tile: [tn, 2 * tkHalf] };
          const p = runOp("pack_quantized_weight", [w], attrs)[0]!;
          const back = runOp("unpack_quantized_weight", [p], { ...attrs, weight_shape: [n, k], weight_dtype: dtype })[0]!;
          expect(tensorsEqual(back, w)).toBe(true);
        }
      },
    ), { numRuns: 60 });
  });

  it("refuses layouts that cannot hold the dtype", () => {
    const w = zeros("int8", [2, 4]);
    expect(() => runOp("pack_quantized_weight", [w], { layout: "int4_pairs" })).toThrow(/int4_pairs packs 4-bit/);
    expect(() => runOp("pack_quantized_weight", [zeros("int3", [2, 4])], { layout: "u32_words" })).toThrow(/u32_words packs/);
    expect(() => runOp("pack_quantized_weight", [w], { layout: "zigzag" })).toThrow(/unknown layout/);
  });
});

/** A random float32 [rows, k] tensor from a seed (deterministic). */
function randomTensor(shape: number[], seed: number, scale = 1): Tensor {
  let s = seed >>> 0 || 1;
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    d[i] = ((s / 2 ** 32) * 2 - 1) * scale;
  }
  return tensor("float32", shape, d);
}

function linearRef(x: Tensor, w: Tensor, b?: Tensor): Tensor {
  return runOp("linear", b === undefined ? [x, w] : [x, w, b])[0]!;
}

describe("affine_quantized_linear (reference kernel)", () => {
  it("weight-only is exactly linear(x, dequantize_affine(W), b), for every layout", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 4 }), fc.nat(), fc.constantFrom("int4", "uint4", "int8"), (n, kq, seed, dtype) => {
      const k = 8 * kq;
      const info = dtypeInfo(dtype);
      const codes = Array.from({ length: n * k }, (_, i) => (seed + i * 31) % 2 ** info.bits);
      const w = plainFromCodes(dtype, n, k, codes);
      const scale = tensor("float32", [n, kq], Float32Array.from({ length: n * kq }, (_, i) => 0.01 + 0.001 * ((seed + i) % 7)));
      const zp = fromArray("int32", [n, kq], Array.from({ length: n * kq }, (_, i) => (i % 3) - 1));
      const x = randomTensor([3, k], seed + 1);
      const b = randomTensor([n], seed + 2);
      const dq = dequantizeAffine(w, [1, 8], scale, zp, dtype);
      const want = linearRef(x, dq, b);
      const layouts = info.bits === 4 ? ["plain", "int4_pairs", "tiles", "u32_words"] : ["plain", "tiles", "u32_words"];
      for (const layout of layouts) {
        const packed = runOp("pack_quantized_weight", [w], { layout, tile: [4, 8] })[0]!;
        const y = runOp("affine_quantized_linear", [x, packed, scale, zp, b], {
          weight_shape: [n, k], weight_dtype: dtype, block_size: [1, 8], layout, tile: [4, 8],
        })[0]!;
        expect(tensorsEqual(y, want)).toBe(true);
      }
    }), { numRuns: 25 });
  });

  it("FLOAT zero point domain (tinygemm): w = (q - 8) * scale + zero", () => {
    const w = fromArray("uint4", [1, 2], [0, 15]);
    const y = runOp("affine_quantized_linear", [
      tensor("float32", [1, 2], Float32Array.of(1, 1)), w, tensor("float32", [1], Float32Array.of(0.5)), tensor("float32", [1], Float32Array.of(0.25)),
    ], { weight_shape: [1, 2], weight_dtype: "uint4", block_size: [1, 2], zero_point_domain: "FLOAT" })[0]!;
    // (0 - 8) * 0.5 + 0.25 = -3.75; (15 - 8) * 0.5 + 0.25 = 3.75
    expect(Array.from(toFloat64(y))).toEqual([0]);
  });

  it("dynamic asymmetric per-token int8 activations are fake-quantized before the matmul", () => {
    const x = tensor("float32", [2, 4], Float32Array.of(-1, 0.5, 2, 3, 0.1, 0.2, 0.3, 0.4));
    const w = fromArray("int8", [1, 4], [1, 1, 1, 1]);
    const s = tensor("float32", [1], Float32Array.of(1));
    const y = runOp("affine_quantized_linear", [x, w, s], {
      weight_shape: [1, 4], weight_dtype: "int8", block_size: [1, 4], act_quant: "dynamic", act_dtype: "int8", act_mapping: "ASYMMETRIC", act_granularity: "per_token",
    })[0]!;
    // Row 0: min_neg = -1, max_pos = 3: scale = f32(4 / 255), zp = clamp(-128 - rint(-1 / scale)) = -128 + 64 = -64.
    const fq = (v: number, sc: number, zp: number): number => f32(f32(Math.min(127, Math.max(-128, rint(f32(v * f32(1 / sc))) + zp)) - zp) * sc);
    const s0 = f32(f32(4) / 255);
    const want0 = f32([-1, 0.5, 2, 3].reduce((a, v) => a + fq(v, s0, -64), 0));
    const s1 = f32(f32(0.4 - 0) / 255);
    const zp1 = Math.min(127, Math.max(-128, -128 - rint(f32(0 / s1))));
    const want1 = f32([0.1, 0.2, 0.3, 0.4].map((v) => f32(v)).reduce((a, v) => a + fq(v, s1, zp1), 0));
    expect(y.data[0]).toBe(want0);
    expect(y.data[1]).toBe(want1);
  });

  it("integer compute follows torchao's _int_scaled_matmul: f32(f32(acc) * x_scale) * w_scale + b", () => {
    const x = tensor("float32", [1, 2], Float32Array.of(1, -0.5));
    const w = fromArray("int8", [2, 2], [10, -20, 127, 3]);
    const ws = tensor("float32", [2], Float32Array.of(0.02, 0.5));
    const b = tensor("float32", [2], Float32Array.of(0.1, -0.1));
    const y = runOp("affine_quantized_linear", [x, w, ws, undefined, b], {
      weight_shape: [2, 2], weight_dtype: "int8", block_size: [1, 2], act_quant: "dynamic", act_mapping: "SYMMETRIC", compute: "integer",
    })[0]!;
    // Symmetric per token: scale = f32(1 / 127.5); x * (1 / scale) = [127.5, -63.75] -> rint [128 -> 127, -64].
    const xs = f32(1 / 127.5);
    const xq = [127, -64];
    const acc = [xq[0]! * 10 + xq[1]! * -20, xq[0]! * 127 + xq[1]! * 3];
    const wsv = toFloat64(ws);
    const bv = toFloat64(b);
    const want = acc.map((a, o) => f32(f32(f32(f32(a) * xs) * wsv[o]!) + bv[o]!));
    expect(Array.from(toFloat64(y))).toEqual(want);
  });

  it("static activations use the given per-tensor scale and zero point", () => {
    const x = tensor("float32", [1, 2], Float32Array.of(0.3, -0.2));
    const w = fromArray("int8", [1, 2], [2, 3]);
    const ws = tensor("float32", [1], Float32Array.of(0.1));
    const y = runOp("affine_quantized_linear", [x, w, ws, undefined, undefined, tensor("float32", [], Float32Array.of(0.01)), fromArray("int32", [], [5])], {
      weight_shape: [1, 2], weight_dtype: "int8", block_size: [1, 2], act_quant: "static", act_dtype: "int8", compute: "integer",
    })[0]!;
    const xs = f32(0.01);
    const xq = [0.3, -0.2].map((v) => rint(f32(f32(v) * f32(1 / xs))) + 5); // [35, -15]
    const acc = xq[0]! * 2 + xq[1]! * 3;
    const rowSum = 5;
    const want = f32(f32(f32(f32(acc) * xs) - f32(f32(5 * xs) * rowSum)) * f32(0.1));
    expect(y.data[0]).toBe(want);
  });

  it("schema errors name the problem", () => {
    const x = zeros("float32", [1, 8]);
    const w = zeros("int8", [2, 8]);
    const s = zeros("float32", [2, 2]);
    const base = { weight_shape: [2, 8], weight_dtype: "int8", block_size: [1, 4] };
    expect(() => runOp("affine_quantized_linear", [x, w, s], { ...base, compute: "integer", act_quant: "dynamic" })).toThrow(/one weight scale per output row/);
    expect(() => runOp("affine_quantized_linear", [x, w, s], { ...base, act_quant: "static" })).toThrow(/needs X_scale/);
    expect(() => runOp("affine_quantized_linear", [x, w, zeros("float32", [2])], base)).toThrow(/scale must have shape \[2,2\]/);
    expect(() => runOp("affine_quantized_linear", [zeros("float32", [1, 7]), w, s], base)).toThrow(/in_features 8/);
    try {
      runOp("affine_quantized_linear", [x, w, s], { ...base, zero_point_domain: "FLOAT" });
      expect.unreachable();
    } catch (e) {
      expect(isQforgeError(e, "BAD_ATTRIBUTE")).toBe(true);
    }
  });
});

describe("affine_quantized_embedding and codebook_quantized_linear", () => {
  it("embedding rows are the dequantized table's rows; out-of-range ids are BAD_DATA", () => {
    const w = fromArray("int8", [3, 2], [1, 2, 3, 4, 5, 6]);
    const s = tensor("float32", [3], Float32Array.of(0.5, 1, 2));
    const ids = fromArray("int64", [2, 2], [2, 0, 1, 2]);
    const y = runOp("affine_quantized_embedding", [ids, w, s], { weight_shape: [3, 2], weight_dtype: "int8", block_size: [1, 2] })[0]!;
    expect(y.shape).toEqual([2, 2, 2]);
    expect(Array.from(toFloat64(y))).toEqual([10, 12, 0.5, 1, 3, 4, 10, 12]);
    expect(() => runOp("affine_quantized_embedding", [fromArray("int64", [1], [3]), w, s], { weight_shape: [3, 2], weight_dtype: "int8", block_size: [1, 2] })).toThrow(/out of range/);
  });

  it("codebook linear looks weights up per block", () => {
    const codes = fromArray("uint2", [2, 4], [0, 1, 2, 3, 3, 2, 1, 0]);
    // Two blocks per row ([1, 2]): 4 blocks x 4 entries.
    const book = tensor("float32", [4, 4], Float32Array.from({ length: 16 }, (_, i) => i));
    const x = tensor("float32", [1, 4], Float32Array.of(1, 10, 100, 1000));
    const y = runOp("codebook_quantized_linear", [x, codes, book], { weight_shape: [2, 4], code_dtype: "uint2", block_size: [1, 2] })[0]!;
    // Row 0: blocks 0, 1 -> [0, 1, 6, 7]; row 1: blocks 2, 3 -> [11, 10, 13, 12].
    expect(Array.from(toFloat64(y))).toEqual([0 + 10 + 600 + 7000, 11 + 100 + 1300 + 12000]);
    const words = runOp("pack_quantized_weight", [codes], { layout: "u32_words" })[0]!;
    const y2 = runOp("codebook_quantized_linear", [x, words, book], { weight_shape: [2, 4], code_dtype: "uint2", block_size: [1, 2], layout: "u32_words" })[0]!;
    expect(tensorsEqual(y, y2)).toBe(true);
  });
});
