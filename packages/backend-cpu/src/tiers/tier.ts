/**
 * The kernel interface both tiers implement (native: the N-API addon; wasm: the WebAssembly SIMD
 * module). Layouts and exact semantics live in native/portable/qf.h; the TypeScript op plans
 * (src/ops/*) call only this interface, so every op runs on either tier unchanged.
 */

/** Typed arrays a kernel reads as raw bytes or elements. */
export type KernelArray = Float32Array | Float64Array | Int32Array | Uint8Array | Int8Array;

export type TierName = "native" | "wasm";

/**
 * Data a tier keeps for a session: packed weights, biases, epilogue parameters. Opaque outside the
 * tier that made it (native: a typed array or an addon handle; wasm: an offset into its memory).
 */
export interface Resident {
  readonly tier: TierName;
  readonly bytes: number;
}

/** Convolution geometry of one image (NCHW), with the begin pads; end pads are implied by OH/OW. */
export interface ConvGeo {
  readonly C: number; readonly H: number; readonly W: number;
  readonly M: number; readonly G: number;
  readonly KH: number; readonly KW: number;
  readonly SH: number; readonly SW: number;
  readonly PH: number; readonly PW: number;
  readonly DH: number; readonly DW: number;
  readonly OH: number; readonly OW: number;
}

export function geoArray(g: ConvGeo): Int32Array {
  return Int32Array.of(g.C, g.H, g.W, g.M, g.G, g.KH, g.KW, g.SH, g.SW, g.PH, g.PW, g.DH, g.DW, g.OH, g.OW);
}

/** True for a depthwise convolution (one input and one output channel per group). */
export function isDepthwise(g: ConvGeo): boolean {
  return g.G === g.C && g.G === g.M;
}

/**
 * One float32 step of the elementwise tail fused into an fp32 GEMM/conv (QF_OP_* in qf.h), with a
 * scalar operand `a` or a per-channel operand `vec` (channel: output column of a linear, output
 * channel of a conv). `b` is clip's upper bound and hard_sigmoid's beta.
 */
export type EopKind = "add" | "mul" | "sub" | "rsub" | "div" | "rdiv" | "max" | "min" | "relu" | "clip" | "hswish_chain" | "hardswish" | "hardsigmoid";
export interface Eop {
  readonly kind: EopKind;
  readonly a?: number;
  readonly b?: number;
  readonly vec?: Float32Array;
}
export const EOP_CODES: Readonly<Record<EopKind, number>> = {
  add: 0, mul: 1, sub: 2, rsub: 3, div: 4, rdiv: 5, max: 6, min: 7, relu: 8, clip: 9, hswish_chain: 10, hardswish: 11, hardsigmoid: 12,
};
export const MAX_EOPS = 8;

/** Bias plus fused steps, indexed per row (conv) or per column (linear). */
export interface EpiF32 {
  readonly bias?: Float32Array;
  readonly perRow: boolean;
  readonly ops: readonly Eop[];
}

/** The int8 epilogue (qf_qepi): zero-point correction and requantization, see qf.h. */
export type QEpiKind = "i32" | "qlinear" | "qnnpack" | "onednn" | "dyn_qnnpack" | "dyn_onednn";
export type QOut = "u8" | "s8" | "i32" | "f32";
export const QEPI_KINDS: Readonly<Record<QEpiKind, number>> = { i32: 0, qlinear: 1, qnnpack: 2, onednn: 3, dyn_qnnpack: 4, dyn_onednn: 5 };
export const QOUT_CODES: Readonly<Record<QOut, number>> = { u8: 0, s8: 1, i32: 2, f32: 3 };

export interface QEpiParams {
  readonly kind: QEpiKind;
  /** Parameters per row (conv: W x im2col) or per column (linear: x x W^T). */
  readonly perRow: boolean;
  readonly out: QOut;
  readonly zp: number;
  readonly lo: number;
  readonly hi: number;
  /** The reduction length. */
  readonly K: number;
  /** Zero points of A (rows) and B (columns), in the domain the kernel multiplies. */
  readonly za: Int32Array;
  readonly zaPerRow: boolean;
  readonly zb: Int32Array;
  readonly zbPerCol: boolean;
  /** Constant row sums of A (conv weights) / column sums of B (linear weights), when needed. */
  readonly sa?: Int32Array;
  readonly sb?: Int32Array;
  readonly bias?: Int32Array;
  readonly mult?: Float32Array;
  readonly dws?: Float64Array;
  readonly dadd?: Float64Array;
  readonly fbias?: Float32Array;
  readonly dfbias?: Float64Array;
  readonly xs: number;
  readonly ys: number;
  /** A fused quantized unary op as a table over the output byte (8-bit outputs). */
  readonly lut?: Uint8Array;
}

export interface Tier {
  readonly name: TierName;
  /** The instruction set the kernels use: "avx512vnni", "avx2", ... or "simd128". */
  readonly isa: string;
  /** Names of the microkernels that run, for plan entries. */
  readonly kernels: { readonly sgemm: string; readonly qgemm: string; readonly woq: string };
  /** Threads the kernels use (the WebAssembly tier runs single-threaded). */
  readonly threads: number;

  /** Keeps a constant array for the session (uploads it into WebAssembly memory). */
  resident(a: KernelArray): Resident;
  /** fp32 B panels from B [K][N] (trans false, row stride ldb) or B^T [N][K] (trans true). */
  packBF32(B: Float32Array, K: number, N: number, ldb: number, trans: boolean): Resident;
  /** Conv weights [M][C/G][KH][KW] packed per group as GEMM A panels (kept as they are for depthwise). */
  packConvF32(W: Float32Array, g: ConvGeo): Resident;
  /** int8 B panels (bytes XOR flip) and their column sums as int8. */
  packB8(B: Uint8Array | Int8Array, K: number, N: number, ldb: number, trans: boolean, flip: number): { packed: Resident; colsum: Int32Array };
  /**
   * int8 conv weights [M][C/G][KH][KW] as the broadcast rows of convQ8 ((tap, channel) order, bytes
   * XOR flip) and their row sums as int8.
   */
  packConvW8(W: Uint8Array | Int8Array, g: ConvGeo, flip: number): { packed: Resident; rowsum: Int32Array };
  /** int4 values (one per byte, 0..15) [N][K] into the 32-block nibble layout. */
  packInt4(q: Uint8Array, N: number, K: number): Resident;
  qepi(p: QEpiParams): Resident;
  epiF32(e: EpiF32): Resident;

  /** C[M][N] = epi(A[M][K] (row stride lda) x B) with B from packBF32 and epi from epiF32 (per column). */
  sgemm(M: number, N: number, K: number, A: Float32Array, lda: number, B: Resident, C: Float32Array, ldc: number, epi: Resident): void;
  /** sgemm with a runtime B [K][N] (row stride ldb), packed for this call only. */
  sgemmDynamic(M: number, N: number, K: number, A: Float32Array, lda: number, B: Float32Array, ldb: number, C: Float32Array, ldc: number,
    epi: Resident): void;
  /** W from packConvF32 with the same geometry, epi from epiF32 (per row). */
  convF32(g: ConvGeo, batch: number, X: Float32Array, W: Resident, Y: Float32Array, epi: Resident): void;
  qgemm(M: number, N: number, K: number, A: Uint8Array | Int8Array, lda: number, flip: number, needRowSum: boolean, B: Resident,
    epi: Resident, Y: KernelArray, ldy: number): void;
  /** qgemm with a runtime 8-bit B [K][N] (row stride ldb, bytes XOR bFlip), packed for this call with its column sums. */
  qgemmB(M: number, N: number, K: number, A: Uint8Array | Int8Array, lda: number, flip: number, needRowSum: boolean, B: Uint8Array | Int8Array,
    ldb: number, bFlip: number, needColSum: boolean, epi: Resident, Y: KernelArray, ldy: number): void;
  convQ8(g: ConvGeo, batch: number, X: Uint8Array | Int8Array, flip: number, pad: number, W: Resident, epi: Resident, needColSum: boolean,
    Y: KernelArray): void;
  dwQ8(g: ConvGeo, batch: number, X: Uint8Array | Int8Array, xSigned: boolean, zx: number, W: Resident, wSigned: boolean, zw: Resident,
    epi: Resident, Y: KernelArray): void;
  woq8(M: number, N: number, K: number, x: Float32Array, q: Resident, scale: Resident, bias: Resident | null, y: Float32Array): void;
  woq4(M: number, N: number, K: number, G: number, x: Float32Array, q: Resident, s: Resident, b: Resident, bias: Resident | null,
    y: Float32Array): void;

  /** Frees what the tier holds for this session. */
  dispose(): void;
}

/** Rounds a panel count up so a 64-column microkernel tile never reads past a packed buffer. */
export function paddedPanels(N: number): number {
  return Math.ceil(Math.ceil(N / 16) / 4) * 4;
}

export function k4(K: number): number {
  return Math.ceil(K / 4);
}

/** Bytes of one packed int8 conv weight row: taps x channel quads x 4. */
export function convW8RowBytes(g: ConvGeo): number {
  return g.KH * g.KW * k4(g.C / g.G) * 4;
}
