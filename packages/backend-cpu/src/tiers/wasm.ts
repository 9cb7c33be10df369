/**
 * The WebAssembly tier: wasm/kernels.wasm (SIMD128; built from wasm/src/kernels.c and the portable
 * kernels by scripts/build-wasm.mjs, checked in). Runs in Node and in browsers. One instance per
 * session: packed weights stay resident in its memory; activations are copied in and results out
 * around each kernel call, through a stack of temporaries that is popped after the call (so the
 * memory a session needs is its weights plus the largest single call). Single-threaded.
 */
import { QforgeError } from "@qforge/ir";
import {
  EOP_CODES, MAX_EOPS, QEPI_KINDS, QOUT_CODES, convW8RowBytes, geoArray, isDepthwise, k4, paddedPanels,
  type ConvGeo, type EpiF32, type KernelArray, type QEpiParams, type Resident, type Tier,
} from "./tier.js";

/** The exports the loader expects (a test checks the checked-in .wasm against this list). */
export const WASM_EXPORTS = [
  "memory", "__heap_base", "abi_version", "qepi_size", "conv_pixels_per_block", "pack_b_f32", "pack_b_8", "pack_int4", "sgemm_mr", "sgemm",
  "pack_conv_f32", "conv_f32_scratch", "conv_f32", "epi_size", "epi_init", "qepi_init", "qgemm", "qgemm_b_scratch", "qgemm_b", "pack_conv_w8", "conv_q8_scratch", "conv_q8", "dw_q8_scratch", "dw_q8", "woq8", "woq4",
] as const;
export const WASM_ABI_VERSION = 2;

type Fn = (...args: number[]) => number;
interface Exports {
  memory: WebAssembly.Memory;
  __heap_base: WebAssembly.Global;
  [name: string]: unknown;
}

let source: BufferSource | URL | undefined;
let modulePromise: Promise<WebAssembly.Module> | undefined;

/** Where to load kernels.wasm from (a URL in browsers that serve it elsewhere, or the bytes). */
export function setWasmSource(src: BufferSource | URL): void {
  source = src;
  modulePromise = undefined;
}

async function wasmBytes(): Promise<BufferSource> {
  if (source !== undefined && !(source instanceof URL)) return source;
  const url = source ?? new URL("../../wasm/kernels.wasm", import.meta.url);
  if (url.protocol === "file:") {
    const { readFile } = await import("node:fs/promises");
    const { fileURLToPath } = await import("node:url");
    const buf = await readFile(fileURLToPath(url));
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  const res = await fetch(url);
  if (!res.ok) throw new QforgeError("IO_ERROR", `could not fetch ${url.href}: ${res.status}`);
  return await res.arrayBuffer();
}

/** The compiled module (compiled once per process). */
export function wasmModule(): Promise<WebAssembly.Module> {
  modulePromise ??= wasmBytes().then((b) => WebAssembly.compile(b));
  return modulePromise;
}

class WasmPtr implements Resident {
  readonly tier = "wasm" as const;
  constructor(readonly ptr: number, readonly bytes: number) {}
}

function ptrOf(r: Resident | null): number {
  if (r === null) return 0;
  if (!(r instanceof WasmPtr)) throw new QforgeError("UNSUPPORTED", "a resident array of another tier was passed to the WebAssembly tier");
  return r.ptr;
}

function bytesOf(a: KernelArray): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export class WasmTier implements Tier {
  readonly name = "wasm" as const;
  readonly isa = "simd128";
  readonly kernels = { sgemm: "simd128", qgemm: "simd128", woq: "simd128" };
  readonly threads = 1;
  private top: number;
  private readonly x: Exports;
  private readonly f: Record<string, Fn>;
  private disposed = false;

  constructor(instance: WebAssembly.Instance) {
    this.x = instance.exports as unknown as Exports;
    this.f = instance.exports as unknown as Record<string, Fn>;
    this.top = align(Number(this.x.__heap_base.value), 64);
  }

  private get mem(): ArrayBuffer {
    if (this.disposed) throw new QforgeError("UNSUPPORTED", "the session was disposed");
    return this.x.memory.buffer;
  }

  /** Bump allocation, 64-byte aligned; grows the memory as needed. */
  private alloc(bytes: number): number {
    const p = align(this.top, 64);
    const end = p + Math.max(bytes, 0);
    const have = this.x.memory.buffer.byteLength;
    if (end > have) this.x.memory.grow(Math.ceil((end - have) / 65536));
    this.top = end;
    return p;
  }

  private upload(a: KernelArray): number {
    const p = this.alloc(a.byteLength);
    new Uint8Array(this.mem, p, a.byteLength).set(bytesOf(a));
    return p;
  }

  private download(p: number, into: KernelArray): void {
    bytesOf(into).set(new Uint8Array(this.mem, p, into.byteLength));
  }

  /** Runs fn with temporaries that are released afterwards. */
  private temp<T>(fn: () => T): T {
    const mark = this.top;
    try {
      return fn();
    } finally {
      this.top = mark;
    }
  }

  resident(a: KernelArray): Resident {
    return new WasmPtr(this.upload(a), a.byteLength);
  }

  packBF32(B: Float32Array, K: number, N: number, ldb: number, trans: boolean): Resident {
    const bytes = paddedPanels(N) * K * 16 * 4;
    const out = this.alloc(bytes);
    this.temp(() => this.f["pack_b_f32"]!(this.upload(B), K, N, ldb, trans ? 1 : 0, out));
    return new WasmPtr(out, bytes);
  }

  packConvF32(W: Float32Array, g: ConvGeo): Resident {
    if (isDepthwise(g)) return this.resident(W);
    const mr = this.f["sgemm_mr"]!();
    const bytes = Math.ceil(g.M / g.G / mr) * mr * ((g.C / g.G) * g.KH * g.KW) * g.G * 4;
    const out = this.alloc(bytes);
    this.temp(() => this.f["pack_conv_f32"]!(this.upload(geoArray(g)), this.upload(W), out));
    return new WasmPtr(out, bytes);
  }

  packB8(B: Uint8Array | Int8Array, K: number, N: number, ldb: number, trans: boolean, flip: number): { packed: Resident; colsum: Int32Array } {
    const bytes = paddedPanels(N) * k4(K) * 64;
    const out = this.alloc(bytes);
    const colsum = new Int32Array(N);
    this.temp(() => {
      const cs = this.alloc(N * 4);
      this.f["pack_b_8"]!(this.upload(B), K, N, ldb, trans ? 1 : 0, flip, 1, out, cs);
      this.download(cs, colsum);
    });
    return { packed: new WasmPtr(out, bytes), colsum };
  }

  packConvW8(W: Uint8Array | Int8Array, g: ConvGeo, flip: number): { packed: Resident; rowsum: Int32Array } {
    const bytes = g.M * convW8RowBytes(g);
    const out = this.alloc(bytes);
    const rowsum = new Int32Array(g.M);
    this.temp(() => {
      const rs = this.alloc(g.M * 4);
      this.f["pack_conv_w8"]!(this.upload(geoArray(g)), this.upload(W), flip, out, rs);
      this.download(rs, rowsum);
    });
    return { packed: new WasmPtr(out, bytes), rowsum };
  }

  packInt4(q: Uint8Array, N: number, K: number): Resident {
    const bytes = (N * K) / 2;
    const out = this.alloc(bytes);
    this.temp(() => this.f["pack_int4"]!(this.upload(q), N, K, out));
    return new WasmPtr(out, bytes);
  }

  qepi(p: QEpiParams): Resident {
    const opt = (a: KernelArray | undefined): number => (a === undefined ? 0 : this.upload(a));
    const za = this.upload(p.za);
    const zb = this.upload(p.zb);
    const sa = opt(p.sa);
    const sb = opt(p.sb);
    const bias = opt(p.bias);
    const mult = opt(p.mult);
    const dws = opt(p.dws);
    const dadd = opt(p.dadd);
    const fbias = opt(p.fbias);
    const dfbias = opt(p.dfbias);
    const lut = opt(p.lut);
    const size = this.f["qepi_size"]!();
    const e = this.alloc(size);
    this.f["qepi_init"]!(e, QEPI_KINDS[p.kind], p.perRow ? 1 : 0, QOUT_CODES[p.out], p.zp, p.lo, p.hi, p.K, za, p.zaPerRow ? 1 : 0, zb,
      p.zbPerCol ? 1 : 0, sa, sb, bias, mult, dws, dadd, fbias, dfbias, p.xs, p.ys, lut);
    return new WasmPtr(e, size);
  }

  epiF32(e: EpiF32): Resident {
    if (e.ops.length > MAX_EOPS) throw new QforgeError("UNSUPPORTED", `at most ${MAX_EOPS} fused operations`);
    const bias = e.bias === undefined ? 0 : this.upload(e.bias);
    const kinds = this.upload(Int32Array.from(e.ops, (o) => EOP_CODES[o.kind]));
    const ab = this.upload(Float32Array.from(e.ops.flatMap((o) => [o.a ?? 0, o.b ?? 0])));
    const vecs = this.upload(Int32Array.from(e.ops, (o) => (o.vec === undefined ? 0 : this.upload(o.vec))));
    const size = this.f["epi_size"]!();
    const p = this.alloc(size);
    this.f["epi_init"]!(p, bias, e.perRow ? 1 : 0, e.ops.length, kinds, ab, vecs);
    return new WasmPtr(p, size);
  }

  sgemm(M: number, N: number, K: number, A: Float32Array, lda: number, B: Resident, C: Float32Array, ldc: number, epi: Resident): void {
    if (M <= 0 || N <= 0) return;
    this.temp(() => {
      const pa = this.upload(A.subarray(0, (M - 1) * lda + K));
      const span = C.subarray(0, (M - 1) * ldc + N);
      const pc = ldc === N ? this.alloc(span.byteLength) : this.upload(span);
      const mr = this.f["sgemm_mr"]!();
      const scratch = this.alloc(Math.ceil(M / mr) * mr * K * 4);
      this.f["sgemm"]!(M, N, K, pa, lda, ptrOf(B), pc, ldc, ptrOf(epi), scratch);
      this.download(pc, span);
    });
  }

  sgemmDynamic(M: number, N: number, K: number, A: Float32Array, lda: number, B: Float32Array, ldb: number, C: Float32Array, ldc: number,
    epi: Resident): void {
    if (M <= 0 || N <= 0) return;
    this.temp(() => {
      const bytes = paddedPanels(N) * K * 16 * 4;
      const packed = this.alloc(bytes);
      if (K > 0) this.temp(() => this.f["pack_b_f32"]!(this.upload(B.subarray(0, (K - 1) * ldb + N)), K, N, ldb, 0, packed));
      this.sgemm(M, N, K, A, lda, new WasmPtr(packed, bytes), C, ldc, epi);
    });
  }

  convF32(g: ConvGeo, batch: number, X: Float32Array, W: Resident, Y: Float32Array, epi: Resident): void {
    this.temp(() => {
      const geo = this.upload(geoArray(g));
      const px = this.upload(X.subarray(0, batch * g.C * g.H * g.W));
      const span = Y.subarray(0, batch * g.M * g.OH * g.OW);
      const py = this.alloc(span.byteLength);
      const scratch = this.alloc(this.f["conv_f32_scratch"]!(geo));
      this.f["conv_f32"]!(geo, batch, px, ptrOf(W), py, ptrOf(epi), scratch);
      this.download(py, span);
    });
  }

  qgemm(M: number, N: number, K: number, A: Uint8Array | Int8Array, lda: number, flip: number, needRowSum: boolean, B: Resident, epi: Resident,
    Y: KernelArray, ldy: number): void {
    if (M <= 0 || N <= 0) return;
    this.temp(() => {
      const pa = this.upload(A.subarray(0, (M - 1) * lda + K));
      const span = Y.subarray(0, (M - 1) * ldy + N);
      const py = ldy === N ? this.alloc(span.byteLength) : this.upload(span);
      const scratch = this.alloc(align(M * k4(K) * 4, 16) + align(M, 4) * 4 + 64 * 4);
      this.f["qgemm"]!(M, N, K, pa, lda, flip, needRowSum ? 1 : 0, ptrOf(B), ptrOf(epi), py, ldy, scratch);
      this.download(py, span);
    });
  }

  qgemmB(M: number, N: number, K: number, A: Uint8Array | Int8Array, lda: number, flip: number, needRowSum: boolean, B: Uint8Array | Int8Array,
    ldb: number, bFlip: number, needColSum: boolean, epi: Resident, Y: KernelArray, ldy: number): void {
    if (M <= 0 || N <= 0) return;
    this.temp(() => {
      const pa = this.upload(A.subarray(0, (M - 1) * lda + K));
      const pb = this.upload(B.subarray(0, K > 0 ? (K - 1) * ldb + N : 0));
      const span = Y.subarray(0, (M - 1) * ldy + N);
      const py = ldy === N ? this.alloc(span.byteLength) : this.upload(span);
      const scratch = this.alloc(this.f["qgemm_b_scratch"]!(M, N, K));
      this.f["qgemm_b"]!(M, N, K, pa, lda, flip, needRowSum ? 1 : 0, pb, ldb, bFlip, needColSum ? 1 : 0, ptrOf(epi), py, ldy, scratch);
      this.download(py, span);
    });
  }

  convQ8(g: ConvGeo, batch: number, X: Uint8Array | Int8Array, flip: number, pad: number, W: Resident, epi: Resident, needColSum: boolean,
    Y: KernelArray): void {
    this.temp(() => {
      const geo = this.upload(geoArray(g));
      const px = this.upload(X.subarray(0, batch * g.C * g.H * g.W));
      const span = Y.subarray(0, batch * g.M * g.OH * g.OW);
      const py = this.alloc(span.byteLength);
      const scratch = this.alloc(this.f["conv_q8_scratch"]!(geo));
      this.f["conv_q8"]!(geo, batch, px, flip, pad, ptrOf(W), ptrOf(epi), needColSum ? 1 : 0, py, scratch);
      this.download(py, span);
    });
  }

  dwQ8(g: ConvGeo, batch: number, X: Uint8Array | Int8Array, xSigned: boolean, zx: number, W: Resident, wSigned: boolean, zw: Resident, epi: Resident,
    Y: KernelArray): void {
    this.temp(() => {
      const geo = this.upload(geoArray(g));
      const px = this.upload(X.subarray(0, batch * g.C * g.H * g.W));
      const span = Y.subarray(0, batch * g.M * g.OH * g.OW);
      const py = this.alloc(span.byteLength);
      const scratch = this.alloc(this.f["dw_q8_scratch"]!(geo));
      this.f["dw_q8"]!(geo, batch, px, xSigned ? 1 : 0, zx, ptrOf(W), wSigned ? 1 : 0, ptrOf(zw), ptrOf(epi), py, scratch);
      this.download(py, span);
    });
  }

  woq8(M: number, N: number, K: number, x: Float32Array, q: Resident, scale: Resident, bias: Resident | null, y: Float32Array): void {
    this.temp(() => {
      const px = this.upload(x.subarray(0, M * K));
      const span = y.subarray(0, M * N);
      const py = this.alloc(span.byteLength);
      this.f["woq8"]!(M, N, K, px, ptrOf(q), ptrOf(scale), ptrOf(bias), py);
      this.download(py, span);
    });
  }

  woq4(M: number, N: number, K: number, G: number, x: Float32Array, q: Resident, s: Resident, b: Resident, bias: Resident | null, y: Float32Array): void {
    this.temp(() => {
      const px = this.upload(x.subarray(0, M * K));
      const span = y.subarray(0, M * N);
      const py = this.alloc(span.byteLength);
      const scratch = this.alloc(M * (K / G) * 4);
      this.f["woq4"]!(M, N, K, G, px, ptrOf(q), ptrOf(s), ptrOf(b), ptrOf(bias), py, scratch);
      this.download(py, span);
    });
  }

  /** Bytes of WebAssembly memory in use (weights and epilogues). */
  get residentBytes(): number {
    return this.top - Number(this.x.__heap_base.value);
  }

  dispose(): void {
    this.disposed = true;
  }
}

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** A fresh WebAssembly tier (one instance, one memory) for a session. */
export async function wasmTier(): Promise<WasmTier> {
  const mod = await wasmModule();
  const missing = WASM_EXPORTS.filter((e) => !WebAssembly.Module.exports(mod).some((x) => x.name === e));
  if (missing.length > 0) {
    throw new QforgeError("BAD_CONFIG", `kernels.wasm lacks the exports ${missing.join(", ")}`, { hint: "rebuild it with npm run build:wasm in packages/backend-cpu" });
  }
  const inst = await WebAssembly.instantiate(mod, {});
  const version = (inst.exports["abi_version"] as Fn)();
  if (version !== WASM_ABI_VERSION) {
    throw new QforgeError("BAD_CONFIG", `kernels.wasm has ABI version ${version}, the loader expects ${WASM_ABI_VERSION}`, { hint: "rebuild it with npm run build:wasm" });
  }
  return new WasmTier(inst);
}
