/**
 * The kernels of both tiers at the Tier interface, against the reference interpreter's kernels
 * (conv, conv_integer, matmul_integer) or a direct float64 computation: exact for integer outputs,
 * a relative tolerance for float32 accumulation order. The native tier runs at every ISA level
 * this CPU has (scalar, AVX2, AVX-VNNI, AVX-512, AVX-512 VNNI), so each microkernel is checked.
 */
import { afterAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { tensor } from "@qforge/ir";
import { runOp } from "@qforge/runtime";
import { loadNative, nativeTier, setNativeIsa } from "../src/tiers/native.js";
import { wasmTier } from "../src/tiers/wasm.js";
import { type ConvGeo, type Tier } from "../src/tiers/tier.js";
import { bytes8, rng, closeTo } from "./util.js";

interface TierCase {
  readonly label: string;
  make(): Promise<Tier>;
}

const native = await loadNative();
const levels = native.state === "loaded" ? ["scalar", "avx2", "avxvnni", "avx512", "avx512vnni"].filter((l) => {
  const order = ["scalar", "avx2", "avxvnni", "avx512", "avx512vnni"];
  return order.indexOf(l) <= order.indexOf(native.info!.best);
}) : [];

const CASES: TierCase[] = [
  { label: "wasm", make: () => wasmTier() },
  ...levels.flatMap((level) => [1, 2].map((threads): TierCase => ({
    label: `native ${level} x${threads}`,
    make: async () => {
      await setNativeIsa(level);
      return (await nativeTier(threads))!;
    },
  }))),
];

afterAll(async () => {
  if (native.state === "loaded") await setNativeIsa("best");
});

function convOut(H: number, k: number, s: number, p0: number, p1: number, d: number): number {
  return Math.floor((H + p0 + p1 - ((k - 1) * d + 1)) / s) + 1;
}

describe.each(CASES)("$label", ({ make }) => {
  it("sgemm (x W^T and A x B, bias per row/column, relu/clip) matches float64 within 1e-5 relative", async () => {
    const t = await make();
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 80 }), fc.integer({ min: 0, max: 300 }), fc.boolean(), fc.integer({ min: 0, max: 2 }), fc.integer(),
      async (M, N, K, trans, actSel, seed) => {
        const r = rng(seed);
        const A = Float32Array.from({ length: M * K }, () => r() * 2 - 1);
        const B = Float32Array.from({ length: K * N }, () => r() * 2 - 1);
        const bias = Float32Array.from({ length: trans ? N : M }, () => r() - 0.5);
        const packed = t.packBF32(B, K, N, trans ? K : N, trans);
        const C = new Float32Array(M * N).fill(Number.NaN);
        const ops = actSel === 0 ? [] : actSel === 1 ? [{ kind: "relu" as const }] : [{ kind: "clip" as const, a: -0.5, b: 0.75 }];
        t.sgemm(M, N, K, A, K, packed, C, N, t.epiF32(trans ? { bias, perRow: false, ops } : { bias: undefined, perRow: false, ops }));
        for (let i = 0; i < M; i++) {
          for (let j = 0; j < N; j++) {
            let s = 0;
            let mag = 0;
            for (let k = 0; k < K; k++) {
              const b = trans ? B[j * K + k]! : B[k * N + j]!;
              s += A[i * K + k]! * b;
              mag += Math.abs(A[i * K + k]! * b);
            }
            if (trans) s += bias[j]!;
            if (actSel === 1) s = Math.max(s, 0);
            if (actSel === 2) s = Math.min(Math.max(s, Math.fround(-0.5)), 0.75);
            closeTo(C[i * N + j]!, s, 1e-5 * (mag + 1), `C[${i},${j}]`);
          }
        }
      }), { numRuns: 25 });
    t.dispose();
  });

  it("fp32 conv (grouped, depthwise, strided, padded, dilated, fused hardswish chain) matches the reference conv", async () => {
    const t = await make();
    await fc.assert(fc.asyncProperty(
      fc.record({
        batch: fc.integer({ min: 1, max: 2 }), G: fc.integer({ min: 1, max: 3 }), cg: fc.integer({ min: 1, max: 4 }), mg: fc.integer({ min: 1, max: 5 }),
        H: fc.integer({ min: 1, max: 12 }), W: fc.integer({ min: 1, max: 23 }), KH: fc.integer({ min: 1, max: 3 }), KW: fc.integer({ min: 1, max: 3 }),
        S: fc.integer({ min: 1, max: 2 }), P: fc.integer({ min: 0, max: 2 }), D: fc.integer({ min: 1, max: 2 }), dw: fc.boolean(), hs: fc.boolean(), seed: fc.integer(),
      }),
      async (c) => {
        const G = c.dw ? c.cg * c.G : c.G;
        const C = c.dw ? G : c.G * c.cg;
        const M = c.dw ? G : c.G * c.mg;
        const OH = convOut(c.H, c.KH, c.S, c.P, c.P, c.D);
        const OW = convOut(c.W, c.KW, c.S, c.P, 0, c.D);
        if (OH < 1 || OW < 1) return;
        const g: ConvGeo = { C, H: c.H, W: c.W, M, G, KH: c.KH, KW: c.KW, SH: c.S, SW: c.S, PH: c.P, PW: c.P, DH: c.D, DW: c.D, OH, OW };
        const r = rng(c.seed);
        const x = Float32Array.from({ length: c.batch * C * c.H * c.W }, () => r() * 2 - 1);
        const w = Float32Array.from({ length: M * (C / G) * c.KH * c.KW }, () => r() * 2 - 1);
        const b = Float32Array.from({ length: M }, () => r() - 0.5);
        const y = new Float32Array(c.batch * M * OH * OW).fill(Number.NaN);
        // A per-channel affine and the exported hardswish chain, as PP-OCR's blocks have.
        const scale = Float32Array.from({ length: M }, () => r() + 0.5);
        const ops = c.hs ? [{ kind: "mul" as const, vec: scale }, { kind: "add" as const, a: 0.25 }, { kind: "hswish_chain" as const }] : [];
        t.convF32(g, c.batch, x, t.packConvF32(w, g), y, t.epiF32({ bias: b, perRow: true, ops }));
        const [ref] = runOp("conv", [tensor("float32", [c.batch, C, c.H, c.W], x), tensor("float32", [M, C / G, c.KH, c.KW], w), tensor("float32", [M], b)], {
          group: G, strides: [c.S, c.S], pads: [c.P, c.P, c.P, 0], dilations: [c.D, c.D],
        });
        expect(ref!.shape).toEqual([c.batch, M, OH, OW]);
        const want = ref!.data as Float32Array;
        for (let i = 0; i < want.length; i++) {
          let v = want[i]!;
          if (c.hs) {
            v = Math.fround(Math.fround(v * scale[Math.floor(i / (OH * OW)) % M]!) + 0.25);
            v = Math.fround(Math.fround(v * Math.min(Math.max(Math.fround(v + 3), 0), 6)) / 6);
          }
          closeTo(y[i]!, v, 2e-5 * (1 + (C / G) * c.KH * c.KW), `y[${i}]`);
        }
      }), { numRuns: 40 });
    t.dispose();
  });

  it("int8 GEMM with zero points on both sides is exact (matmul_integer), for u8/s8 activations and weights", async () => {
    const t = await make();
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 90 }), fc.integer({ min: 1, max: 200 }), fc.boolean(), fc.boolean(), fc.boolean(), fc.integer(),
      async (M, N, K, aSigned, bSigned, perCol, seed) => {
        const r = rng(seed);
        const byte = (signed: boolean): number => Math.floor(r() * 256) - (signed ? 128 : 0);
        const A = bytes8(aSigned, M * K, () => byte(aSigned));
        const B = bytes8(bSigned, K * N, () => byte(bSigned));
        const za = byte(aSigned);
        const zb = Int32Array.from({ length: perCol ? N : 1 }, () => byte(bSigned));
        // Kernel domains: A as uint8 (flip int8 by 0x80), B as int8 (flip uint8 by 0x80).
        const aFlip = aSigned ? 0x80 : 0;
        const bFlip = bSigned ? 0 : 0x80;
        const { packed, colsum } = t.packB8(B, K, N, N, false, bFlip);
        const epi = t.qepi({
          kind: "i32", perRow: false, out: "i32", zp: 0, lo: 0, hi: 0, K,
          za: Int32Array.of(za + (aSigned ? 128 : 0)), zaPerRow: false, zb: zb.map((z) => z - (bSigned ? 0 : 128)), zbPerCol: perCol,
          sb: colsum, xs: 0, ys: 0,
        });
        const Y = new Int32Array(M * N);
        t.qgemm(M, N, K, A, K, aFlip, true, packed, epi, Y, N);
        const [ref] = runOp("matmul_integer", [
          tensor(aSigned ? "int8" : "uint8", [M, K], A), tensor(bSigned ? "int8" : "uint8", [K, N], B),
          tensor(aSigned ? "int8" : "uint8", [], (aSigned ? Int8Array : Uint8Array).of(za)),
          tensor(bSigned ? "int8" : "uint8", perCol ? [N] : [], (bSigned ? Int8Array : Uint8Array).from(zb)),
        ]);
        expect(Array.from(Y)).toEqual(Array.from(ref!.data as Int32Array));
      }), { numRuns: 30 });
    t.dispose();
  });

  it("int8 conv (im2col and depthwise) with zero points is exact (conv_integer)", async () => {
    const t = await make();
    await fc.assert(fc.asyncProperty(
      fc.record({
        batch: fc.integer({ min: 1, max: 2 }), G: fc.integer({ min: 1, max: 2 }), cg: fc.integer({ min: 1, max: 5 }), mg: fc.integer({ min: 1, max: 4 }),
        H: fc.integer({ min: 1, max: 9 }), W: fc.integer({ min: 1, max: 21 }), K: fc.integer({ min: 1, max: 3 }), S: fc.integer({ min: 1, max: 2 }),
        P: fc.integer({ min: 0, max: 1 }), dw: fc.boolean(), xSigned: fc.boolean(), wSigned: fc.boolean(), perCh: fc.boolean(), seed: fc.integer(),
      }),
      async (c) => {
        const G = c.dw ? c.cg : c.G;
        const C = c.dw ? G : c.G * c.cg;
        const M = c.dw ? G : c.G * c.mg;
        const OH = convOut(c.H, c.K, c.S, c.P, c.P, 1);
        const OW = convOut(c.W, c.K, c.S, c.P, c.P, 1);
        if (OH < 1 || OW < 1) return;
        const g: ConvGeo = { C, H: c.H, W: c.W, M, G, KH: c.K, KW: c.K, SH: c.S, SW: c.S, PH: c.P, PW: c.P, DH: 1, DW: 1, OH, OW };
        const r = rng(c.seed);
        const byte = (signed: boolean): number => Math.floor(r() * 256) - (signed ? 128 : 0);
        const X = bytes8(c.xSigned, c.batch * C * c.H * c.W, () => byte(c.xSigned));
        const Kk = (C / G) * c.K * c.K;
        const Wt = bytes8(c.wSigned, M * Kk, () => byte(c.wSigned));
        const zx = byte(c.xSigned);
        const zw = Int32Array.from({ length: c.perCh ? M : 1 }, () => byte(c.wSigned));
        const zwAll = Int32Array.from({ length: M }, (_, i) => zw[c.perCh ? i : 0]!);
        const Y = new Int32Array(c.batch * M * OH * OW);
        if (c.dw && G === C) {
          const epi = t.qepi({ kind: "i32", perRow: true, out: "i32", zp: 0, lo: 0, hi: 0, K: Kk, za: Int32Array.of(0), zaPerRow: false, zb: Int32Array.of(0), zbPerCol: false, xs: 0, ys: 0 });
          t.dwQ8(g, c.batch, X, c.xSigned, zx, t.resident(Wt), c.wSigned, t.resident(zwAll), epi, Y);
        } else {
          // W is the broadcast operand (int8 domain), the image columns the vector operand (uint8 domain).
          const wFlip = c.wSigned ? 0 : 0x80;
          const xFlip = c.xSigned ? 0x80 : 0;
          const { packed, rowsum } = t.packConvW8(Wt, g, wFlip);
          const epi = t.qepi({
            kind: "i32", perRow: true, out: "i32", zp: 0, lo: 0, hi: 0, K: Kk,
            za: zwAll.map((z) => z - (c.wSigned ? 0 : 128)), zaPerRow: true, zb: Int32Array.of(zx + (c.xSigned ? 128 : 0)), zbPerCol: false, sa: rowsum, xs: 0, ys: 0,
          });
          t.convQ8(g, c.batch, X, xFlip, (zx + (c.xSigned ? 128 : 0)) & 255, packed, epi, true, Y);
        }
        const xd = c.xSigned ? "int8" : "uint8";
        const wd = c.wSigned ? "int8" : "uint8";
        const [ref] = runOp("conv_integer", [
          tensor(xd, [c.batch, C, c.H, c.W], X), tensor(wd, [M, C / G, c.K, c.K], Wt),
          tensor(xd, [], (c.xSigned ? Int8Array : Uint8Array).of(zx)), tensor(wd, c.perCh ? [M] : [], (c.wSigned ? Int8Array : Uint8Array).from(zw)),
        ], { group: G, strides: [c.S, c.S], pads: [c.P, c.P, c.P, c.P] });
        expect(Array.from(Y)).toEqual(Array.from(ref!.data as Int32Array));
      }), { numRuns: 30 });
    t.dispose();
  });

  it("weight-only int8 and int4 GEMV match float64 within 1e-5 relative", async () => {
    const t = await make();
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 4 }), fc.constantFrom(32, 64),
      fc.integer(), async (M, N, kBlocks, G, seed) => {
        const r = rng(seed);
        const K = kBlocks * G;
        const x = Float32Array.from({ length: M * K }, () => r() * 2 - 1);
        const q8 = Int8Array.from({ length: N * K }, () => Math.floor(r() * 256) - 128);
        const sc = Float32Array.from({ length: N }, () => r() * 0.1 + 0.01);
        const bias = Float32Array.from({ length: N }, () => r() - 0.5);
        const y8 = new Float32Array(M * N);
        t.woq8(M, N, K, x, t.resident(q8), t.resident(sc), t.resident(bias), y8);
        const q4 = Uint8Array.from({ length: N * K }, () => Math.floor(r() * 16));
        const ng = K / G;
        const s = Float32Array.from({ length: N * ng }, () => r() * 0.1 + 0.01);
        const b = Float32Array.from({ length: N * ng }, () => r() * 0.2 - 0.1);
        const y4 = new Float32Array(M * N);
        t.woq4(M, N, K, G, x, t.packInt4(q4, N, K), t.resident(s), t.resident(b), null, y4);
        for (let m = 0; m < M; m++) {
          for (let n = 0; n < N; n++) {
            let a8 = 0;
            let a4 = 0;
            let mag8 = 0;
            let mag4 = 0;
            for (let k = 0; k < K; k++) {
              const xv = x[m * K + k]!;
              a8 += xv * q8[n * K + k]!;
              mag8 += Math.abs(xv * q8[n * K + k]!);
              const g = Math.floor(k / G);
              const w = q4[n * K + k]! * s[n * ng + g]! + b[n * ng + g]!;
              a4 += xv * w;
              mag4 += Math.abs(xv * w) + Math.abs(xv * b[n * ng + g]!);
            }
            closeTo(y8[m * N + n]!, a8 * sc[n]! + bias[n]!, 1e-5 * (mag8 * sc[n]! + 1), `woq8[${m},${n}]`);
            closeTo(y4[m * N + n]!, a4, 1e-5 * (mag4 + 1), `woq4[${m},${n}]`);
          }
        }
      }), { numRuns: 20 });
    t.dispose();
  });
});
