/**
 * The native tier: the N-API addon built by scripts/build-native.mjs (node-gyp, the machine's C++
 * compiler), AVX2 / AVX-VNNI / AVX-512 (VNNI) microkernels chosen at run time, a std::thread pool.
 * Kernels read and write the JS typed arrays in place (no copies).
 *
 * Loading never silently degrades: `nativeStatus()` says whether the addon was found, loaded or
 * failed to load (with the error), and the backend's plan entries name the tier that runs each node.
 */
import { QforgeError } from "@qforge/ir";
import {
  EOP_CODES, MAX_EOPS, QEPI_KINDS, QOUT_CODES, convW8RowBytes, geoArray, isDepthwise, k4, paddedPanels,
  type ConvGeo, type EpiF32, type KernelArray, type QEpiParams, type Resident, type Tier,
} from "./tier.js";

/** The addon's exports (native/src/addon.cc). */
interface Addon {
  info(): AddonInfo;
  setIsa(level: string): AddonInfo;
  packBF32(B: Float32Array, K: number, N: number, ldb: number, trans: number, out: Float32Array): void;
  packB8(B: KernelArray, K: number, N: number, ldb: number, trans: number, flip: number, sumSigned: number, out: Uint8Array, colsum: Int32Array | null): void;
  packInt4(q: Uint8Array, N: number, K: number, out: Uint8Array): void;
  packConvW8(geo: Int32Array, W: KernelArray, flip: number, out: Uint8Array, rowsum: Int32Array): void;
  epiF32(bias: Float32Array | null, perRow: number, kinds: Int32Array, ab: Float32Array, vecs: (Float32Array | null)[]): object;
  sgemm(M: number, N: number, K: number, A: Float32Array, lda: number, Bp: Float32Array, C: Float32Array, ldc: number, epi: object, threads: number): void;
  packConvF32(geo: Int32Array, W: Float32Array, out: Float32Array): number;
  convF32(geo: Int32Array, batch: number, X: Float32Array, W: Float32Array, mr: number, Y: Float32Array, epi: object, threads: number): void;
  qepi(ints: Int32Array, za: Int32Array, zb: Int32Array, sa: Int32Array | null, sb: Int32Array | null, bias: Int32Array | null, mult: Float32Array | null,
    dws: Float64Array | null, dadd: Float64Array | null, fbias: Float32Array | null, dfbias: Float64Array | null, xs: number, ys: number,
    lut: Uint8Array | null): object;
  qgemm(M: number, N: number, K: number, A: KernelArray, lda: number, flip: number, needRowSum: number, Bp: Uint8Array, epi: object, Y: KernelArray,
    ldy: number, threads: number): void;
  qgemmB(M: number, N: number, K: number, A: KernelArray, lda: number, flip: number, needRowSum: number, B: KernelArray, ldb: number, bFlip: number,
    needColSum: number, epi: object, Y: KernelArray, ldy: number, threads: number): void;
  convQ8(geo: Int32Array, batch: number, X: KernelArray, flip: number, pad: number, Wp: Uint8Array, epi: object, needColSum: number, Y: KernelArray,
    threads: number): void;
  dwQ8(geo: Int32Array, batch: number, X: KernelArray, xSigned: number, zx: number, W: KernelArray, wSigned: number, zw: Int32Array, epi: object,
    Y: KernelArray, threads: number): void;
  woq8(M: number, N: number, K: number, x: Float32Array, q: KernelArray, scale: Float32Array, bias: Float32Array | null, y: Float32Array, threads: number): void;
  woq4(M: number, N: number, K: number, G: number, x: Float32Array, q: Uint8Array, s: Float32Array, b: Float32Array, bias: Float32Array | null,
    y: Float32Array, threads: number): void;
}

export interface AddonInfo {
  /** The ISA cap in effect ("scalar" | "avx2" | "avxvnni" | "avx512" | "avx512vnni"). */
  readonly level: string;
  /** The best level this CPU supports. */
  readonly best: string;
  readonly sgemm: string;
  readonly qgemm: string;
  readonly woq: string;
  readonly drivers: string;
  /** Rows of the fp32 microkernel (conv weights are packed for it). */
  readonly sgemmMR: number;
  readonly features: readonly string[];
}

export type NativeState = "loaded" | "missing" | "failed" | "unsupported";

export interface NativeStatus {
  readonly state: NativeState;
  /** The addon file that was tried (or the candidates, when none exists). */
  readonly path: string;
  /** Why it is not loaded. */
  readonly reason?: string;
  readonly info?: AddonInfo;
}

let addon: Addon | undefined;
let status: NativeStatus | undefined;

/** Candidate addon paths, relative to this module in src/tiers/ or dist/tiers/. */
const CANDIDATES = ["../native/qforge_cpu.node", "../../dist/native/qforge_cpu.node", "../../build/Release/qforge_cpu.node"];

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === "string";
}

/** Finds and loads the addon once; the outcome is kept and reported by nativeStatus(). */
export async function loadNative(): Promise<NativeStatus> {
  if (status !== undefined) return status;
  if (!isNode()) {
    status = { state: "unsupported", path: "", reason: "not running in Node.js (the native tier is an N-API addon)" };
    return status;
  }
  const { existsSync } = await import("node:fs");
  const { fileURLToPath } = await import("node:url");
  const { createRequire } = await import("node:module");
  const paths = CANDIDATES.map((c) => fileURLToPath(new URL(c, import.meta.url)));
  const found = paths.find((p) => existsSync(p));
  if (found === undefined) {
    status = { state: "missing", path: paths.join(", "), reason: "the addon is not built (npm run build in packages/backend-cpu; needs g++, make and python3)" };
    return status;
  }
  try {
    const req = createRequire(import.meta.url);
    const mod = req(found) as Addon;
    addon = mod;
    status = { state: "loaded", path: found, info: mod.info() };
  } catch (e) {
    status = { state: "failed", path: found, reason: e instanceof Error ? e.message : String(e) };
  }
  return status;
}

/** The outcome of loading the native addon (undefined before the first compile or loadNative()). */
export function nativeStatus(): NativeStatus | undefined {
  return status;
}

/**
 * Caps the instruction set the native kernels use (tests run every level on one machine):
 * "scalar" | "avx2" | "avxvnni" | "avx512" | "avx512vnni" | "best". Affects every native session.
 */
export async function setNativeIsa(level: string): Promise<AddonInfo> {
  const s = await loadNative();
  if (addon === undefined) throw new QforgeError("UNSUPPORTED", `the native tier is not available: ${s.reason ?? s.state}`);
  return addon.setIsa(level);
}

/** A typed array kept as is (the addon reads it in place). */
class NativeArray implements Resident {
  readonly tier = "native" as const;
  /** For packed conv weights: the microkernel height they were packed for (0: not packed). */
  constructor(readonly data: KernelArray, readonly mr = 0) {}
  get bytes(): number {
    return this.data.byteLength;
  }
}

/** An epilogue handle owned by the addon (freed when garbage-collected). */
class NativeEpi implements Resident {
  readonly tier = "native" as const;
  constructor(readonly handle: object, readonly bytes: number) {}
}

function arrOf(r: Resident | null): KernelArray | null {
  if (r === null) return null;
  if (!(r instanceof NativeArray)) throw new QforgeError("UNSUPPORTED", "a resident array of another tier was passed to the native tier");
  return r.data;
}

function epiOf(r: Resident): object {
  if (!(r instanceof NativeEpi)) throw new QforgeError("UNSUPPORTED", "an epilogue of another tier was passed to the native tier");
  return r.handle;
}

export class NativeTier implements Tier {
  readonly name = "native" as const;
  readonly isa: string;
  readonly kernels: { sgemm: string; qgemm: string; woq: string };

  constructor(private readonly a: Addon, readonly threads: number) {
    const info = a.info();
    this.isa = info.level;
    this.kernels = { sgemm: info.sgemm, qgemm: info.qgemm, woq: info.woq };
  }

  resident(a: KernelArray): Resident {
    return new NativeArray(a);
  }

  packBF32(B: Float32Array, K: number, N: number, ldb: number, trans: boolean): Resident {
    const out = new Float32Array(paddedPanels(N) * K * 16);
    this.a.packBF32(B, K, N, ldb, trans ? 1 : 0, out);
    return new NativeArray(out);
  }

  packConvF32(W: Float32Array, g: ConvGeo): Resident {
    if (isDepthwise(g)) return new NativeArray(W);
    const mr = this.a.info().sgemmMR;
    const K = (g.C / g.G) * g.KH * g.KW;
    const out = new Float32Array(Math.ceil(g.M / g.G / mr) * mr * K * g.G);
    const used = this.a.packConvF32(geoArray(g), W, out);
    return new NativeArray(out, used);
  }

  packB8(B: Uint8Array | Int8Array, K: number, N: number, ldb: number, trans: boolean, flip: number): { packed: Resident; colsum: Int32Array } {
    const out = new Uint8Array(paddedPanels(N) * k4(K) * 64);
    const colsum = new Int32Array(N);
    this.a.packB8(B, K, N, ldb, trans ? 1 : 0, flip, 1, out, colsum);
    return { packed: new NativeArray(out), colsum };
  }

  packConvW8(W: Uint8Array | Int8Array, g: ConvGeo, flip: number): { packed: Resident; rowsum: Int32Array } {
    const out = new Uint8Array(g.M * convW8RowBytes(g));
    const rowsum = new Int32Array(g.M);
    this.a.packConvW8(geoArray(g), W, flip, out, rowsum);
    return { packed: new NativeArray(out), rowsum };
  }

  packInt4(q: Uint8Array, N: number, K: number): Resident {
    const out = new Uint8Array((N * K) / 2);
    this.a.packInt4(q, N, K, out);
    return new NativeArray(out);
  }

  qepi(p: QEpiParams): Resident {
    const ints = Int32Array.of(QEPI_KINDS[p.kind], p.perRow ? 1 : 0, QOUT_CODES[p.out], p.zp, p.lo, p.hi, p.K, p.zaPerRow ? 1 : 0, p.zbPerCol ? 1 : 0);
    const h = this.a.qepi(ints, p.za, p.zb, p.sa ?? null, p.sb ?? null, p.bias ?? null, p.mult ?? null, p.dws ?? null, p.dadd ?? null,
      p.fbias ?? null, p.dfbias ?? null, p.xs, p.ys, p.lut ?? null);
    return new NativeEpi(h, 0);
  }

  epiF32(e: EpiF32): Resident {
    if (e.ops.length > MAX_EOPS) throw new QforgeError("UNSUPPORTED", `at most ${MAX_EOPS} fused operations`);
    const kinds = Int32Array.from(e.ops, (o) => EOP_CODES[o.kind]);
    const ab = Float32Array.from(e.ops.flatMap((o) => [o.a ?? 0, o.b ?? 0]));
    return new NativeEpi(this.a.epiF32(e.bias ?? null, e.perRow ? 1 : 0, kinds, ab, e.ops.map((o) => o.vec ?? null)), 0);
  }

  sgemm(M: number, N: number, K: number, A: Float32Array, lda: number, B: Resident, C: Float32Array, ldc: number, epi: Resident): void {
    this.a.sgemm(M, N, K, A, lda, arrOf(B) as Float32Array, C, ldc, epiOf(epi), this.threads);
  }

  private scratch = new Float32Array(0);

  sgemmDynamic(M: number, N: number, K: number, A: Float32Array, lda: number, B: Float32Array, ldb: number, C: Float32Array, ldc: number,
    epi: Resident): void {
    const need = paddedPanels(N) * K * 16;
    if (this.scratch.length < need) this.scratch = new Float32Array(need);
    const packed = this.scratch.subarray(0, need);
    this.a.packBF32(B, K, N, ldb, 0, packed);
    this.a.sgemm(M, N, K, A, lda, packed, C, ldc, epiOf(epi), this.threads);
  }

  convF32(g: ConvGeo, batch: number, X: Float32Array, W: Resident, Y: Float32Array, epi: Resident): void {
    const mr = W instanceof NativeArray ? W.mr : 0;
    this.a.convF32(geoArray(g), batch, X, arrOf(W) as Float32Array, mr, Y, epiOf(epi), this.threads);
  }

  qgemm(M: number, N: number, K: number, A: Uint8Array | Int8Array, lda: number, flip: number, needRowSum: boolean, B: Resident, epi: Resident,
    Y: KernelArray, ldy: number): void {
    this.a.qgemm(M, N, K, A, lda, flip, needRowSum ? 1 : 0, arrOf(B) as Uint8Array, epiOf(epi), Y, ldy, this.threads);
  }

  qgemmB(M: number, N: number, K: number, A: Uint8Array | Int8Array, lda: number, flip: number, needRowSum: boolean, B: Uint8Array | Int8Array,
    ldb: number, bFlip: number, needColSum: boolean, epi: Resident, Y: KernelArray, ldy: number): void {
    this.a.qgemmB(M, N, K, A, lda, flip, needRowSum ? 1 : 0, B, ldb, bFlip, needColSum ? 1 : 0, epiOf(epi), Y, ldy, this.threads);
  }

  convQ8(g: ConvGeo, batch: number, X: Uint8Array | Int8Array, flip: number, pad: number, W: Resident, epi: Resident, needColSum: boolean, Y: KernelArray): void {
    this.a.convQ8(geoArray(g), batch, X, flip, pad, arrOf(W) as Uint8Array, epiOf(epi), needColSum ? 1 : 0, Y, this.threads);
  }

  dwQ8(g: ConvGeo, batch: number, X: Uint8Array | Int8Array, xSigned: boolean, zx: number, W: Resident, wSigned: boolean, zw: Resident, epi: Resident,
    Y: KernelArray): void {
    this.a.dwQ8(geoArray(g), batch, X, xSigned ? 1 : 0, zx, arrOf(W)!, wSigned ? 1 : 0, arrOf(zw) as Int32Array, epiOf(epi), Y, this.threads);
  }

  woq8(M: number, N: number, K: number, x: Float32Array, q: Resident, scale: Resident, bias: Resident | null, y: Float32Array): void {
    this.a.woq8(M, N, K, x, arrOf(q)!, arrOf(scale) as Float32Array, arrOf(bias) as Float32Array | null, y, this.threads);
  }

  woq4(M: number, N: number, K: number, G: number, x: Float32Array, q: Resident, s: Resident, b: Resident, bias: Resident | null, y: Float32Array): void {
    this.a.woq4(M, N, K, G, x, arrOf(q) as Uint8Array, arrOf(s) as Float32Array, arrOf(b) as Float32Array, arrOf(bias) as Float32Array | null, y,
      this.threads);
  }

  dispose(): void {
    // Packed arrays and epilogue handles are garbage-collected with the session.
  }
}

/** A native tier for a session, or undefined (with nativeStatus() saying why). */
export async function nativeTier(threads: number): Promise<NativeTier | undefined> {
  await loadNative();
  return addon === undefined ? undefined : new NativeTier(addon, threads);
}
