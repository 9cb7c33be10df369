/**
 * Float32 matrix products on the tiled GEMM (wgsl/gemm.ts): ONNX MatMul (numpy batching and
 * broadcasting, 1-D operands promoted), torch's linear (x @ W^T + b) and ONNX Gemm (transA/transB,
 * alpha, beta, broadcast C). Sums accumulate in float32 in k order per tile (the reference sums in
 * float64: results agree to float32 rounding of long sums).
 */
import { getElement, numel } from "@qforge/ir";
import { bufferDecl, Params, paramsDecl, rawDecl, strides } from "../wgsl/common.js";
import { gemmGrid, gemmSource } from "../wgsl/gemm.js";
import type { Binding, BuildContext, FusedWeight, GpuKernel, SupportQuery } from "./types.js";

/**
 * A weight-only quantized weight read in the shader: `fn wq(r: u32, c: u32) -> f32` returns
 * f32(f32(q - zp) * scale) of element (r, c) of the [R, C] weight — ONNX DequantizeLinear's rule
 * (runtime/src/quantized/onnx.ts), per tensor, per axis or blocked along one axis. int4 codes are
 * read two to a byte (element i at bits 4i..4i+3, qforge's sub-byte packing), int8 codes one to a byte.
 */
function fusedWeightReader(ctx: BuildContext, fw: FusedWeight, first: number, p: Params): { decls: string; fn: string; bindings: Binding[] } {
  const cols = fw.q.shape[1]!;
  const q = ctx.constant("wq", () => fw.q.data as Uint8Array | Int8Array);
  const scale = ctx.constant("wscale", () => fw.scale.data as Float32Array);
  const zps = fw.zeroPoint === undefined ? [0] : Array.from({ length: numel(fw.zeroPoint.shape) }, (_, i) => getElement(fw.zeroPoint!, i));
  const zp = ctx.constant("wzp", () => Int32Array.from(zps));
  // Scale index = (r / br) * sr + (c / bc) * sc.
  let br = 1;
  let bc = 1;
  let sr = 0;
  let sc = 0;
  if (numel(fw.scale.shape) > 1) {
    if (fw.blockSize === 0) {
      if (fw.axis === 0) sr = 1;
      else sc = 1;
    } else if (fw.axis === 0) {
      br = fw.blockSize;
      sr = cols;
      sc = 1;
    } else {
      bc = fw.blockSize;
      sr = Math.ceil(cols / fw.blockSize);
      sc = 1;
    }
  }
  const at = p.list([cols, br, bc, sr, sc]);
  const int4 = fw.q.dtype === "int4" || fw.q.dtype === "uint4";
  const signed = fw.q.dtype === "int4" || fw.q.dtype === "int8";
  const code = int4
    ? `let u = (WQ[i >> 3u] >> (4u * (i & 7u))) & 0xfu;
  let v = ${signed ? "(bitcast<i32>(u << 28u) >> 28u)" : "i32(u)"};`
    : `let u = (WQ[i >> 2u] >> (8u * (i & 3u))) & 0xffu;
  let v = ${signed ? "(bitcast<i32>(u << 24u) >> 24u)" : "i32(u)"};`;
  const fn = `fn wq(r: u32, c: u32) -> f32 {
  let i = r * pu(${at}u) + c;
  ${code}
  let s = (r / pu(${at + 1}u)) * pu(${at + 3}u) + (c / pu(${at + 2}u)) * pu(${at + 4}u);
  return f32(v - WZ[min(s, ${zps.length - 1}u)]) * WS[s];
}`;
  const decls = `${rawDecl(first, "WQ", "u32", false)}${rawDecl(first + 1, "WS", "f32", false)}${rawDecl(first + 2, "WZ", "i32", false)}`;
  return { decls, fn, bindings: [{ buffer: q }, { buffer: scale }, { buffer: zp }] };
}

function weightNote(fw: FusedWeight | undefined): string | undefined {
  return fw === undefined ? undefined : `weight-only ${fw.q.dtype}${fw.blockSize > 0 ? ` (groups of ${fw.blockSize})` : ""}, dequantized in the shader`;
}

function allFloat(q: SupportQuery, inputs: number): string | undefined {
  for (let i = 0; i < inputs; i++) {
    if (q.fusedWeight(i) !== undefined) continue;
    const t = q.inputs[i];
    if (t !== undefined && t.dtype !== "float32") return `the WGSL ${q.node.op} kernel takes float32, input #${i} is ${t.dtype}`;
  }
  return undefined;
}

export const matmulKernel: GpuKernel = {
  ops: ["matmul"],
  supports(q) {
    const why = allFloat(q, 2);
    if (why !== undefined) return { reason: why };
    const fw = q.fusedWeight(1);
    if (fw !== undefined) return { kernel: `gemm_${q.caps.gemm}_${fw.q.dtype}w_f32`, note: weightNote(fw)! };
    return { kernel: `gemm_${q.caps.gemm}_f32` };
  },
  build(ctx) {
    const a = ctx.inputs[0]!;
    const b = ctx.inputs[1]!;
    const a2 = a.shape.length === 1 ? [1, a.shape[0]!] : [...a.shape];
    const b2 = b.shape.length === 1 ? [b.shape[0]!, 1] : [...b.shape];
    const m = a2[a2.length - 2]!;
    const k = a2[a2.length - 1]!;
    const n = b2[b2.length - 1]!;
    const aBatch = a2.slice(0, -2);
    const bBatch = b2.slice(0, -2);
    const rank = Math.max(aBatch.length, bBatch.length);
    const batch: number[] = [];
    for (let i = 0; i < rank; i++) {
      const da = aBatch[i - (rank - aBatch.length)] ?? 1;
      const db = bBatch[i - (rank - bBatch.length)] ?? 1;
      batch.push(da === 1 ? db : da);
    }
    // Matrix strides of a and b along the output's batch dims (0 where broadcast).
    const matStrides = (dims: number[]): number[] => {
      const s = strides(dims);
      return batch.map((_, i) => {
        const j = i - (rank - dims.length);
        return j < 0 || dims[j] === 1 ? 0 : s[j]!;
      });
    };
    const p = new Params();
    const mAt = p.u(m);
    const nAt = p.u(n);
    const kAt = p.u(k);
    const rankAt = p.u(rank);
    const batchAt = p.list(batch);
    const aStAt = p.list(matStrides(aBatch));
    const bStAt = p.list(matStrides(bBatch));
    const fw = ctx.fusedWeight(1);
    const wr = fw === undefined ? undefined : fusedWeightReader(ctx, fw, 1, p);
    const decls = wr === undefined
      ? `${bufferDecl(0, "A", "float32", false)}${bufferDecl(1, "B", "float32", false)}${bufferDecl(2, "C", "float32", true)}${paramsDecl(3)}`
      : `${bufferDecl(0, "A", "float32", false)}${wr.decls}${bufferDecl(4, "C", "float32", true)}${paramsDecl(5)}`;
    const helpers = `var<private> aBase: u32;
var<private> bBase: u32;
fn loadA(z: u32, m: u32, k: u32) -> f32 { return A[aBase + m * pu(${kAt}u) + k]; }
${wr === undefined ? `fn loadB(z: u32, k: u32, n: u32) -> f32 { return B[bBase + k * pu(${nAt}u) + n]; }` : `${wr.fn}
fn loadB(z: u32, k: u32, n: u32) -> f32 { return wq(k, n); }`}
fn storeC(z: u32, m: u32, n: u32, v: f32) { C[(z * pu(${mAt}u) + m) * pu(${nAt}u) + n] = v; }`;
    const prologue = `var rem = z;
  var am = 0u;
  var bm = 0u;
  for (var i = 0u; i < pu(${rankAt}u); i = i + 1u) {
    let d = pu(${rankAt}u) - 1u - i;
    let c = rem % pu(${batchAt}u + d);
    rem = rem / pu(${batchAt}u + d);
    am = am + c * pu(${aStAt}u + d);
    bm = bm + c * pu(${bStAt}u + d);
  }
  aBase = am * M * K;
  bBase = bm * K * N;`;
    return {
      dispatches: [{
        code: gemmSource({ decls, helpers, prologue, mAt, nAt, kAt }, ctx.caps.gemm),
        label: "matmul",
        bindings: wr === undefined ? [{ input: 0 }, { input: 1 }, { output: 0 }] : [{ input: 0 }, ...wr.bindings, { output: 0 }],
        params: p.finish(),
        workgroups: gemmGrid(m, n, numel(batch), ctx.caps.gemm),
      }],
    };
  },
};

export const linearKernel: GpuKernel = {
  ops: ["linear"],
  supports(q) {
    const why = allFloat(q, 3);
    if (why !== undefined) return { reason: why };
    if (q.inputs[1]?.shape.length !== 2) return { reason: "linear: the weight must be 2-D" };
    const fw = q.fusedWeight(1);
    if (fw !== undefined) return { kernel: `gemm_${q.caps.gemm}_${fw.q.dtype}w_f32`, note: weightNote(fw)! };
    return { kernel: `gemm_${q.caps.gemm}_f32`, note: "x @ W^T (+ b)" };
  },
  build(ctx) {
    const x = ctx.inputs[0]!;
    const w = ctx.inputs[1]!;
    const hasBias = ctx.inputs[2] !== undefined;
    const [n, k] = [w.shape[0]!, w.shape[1]!];
    const m = numel(x.shape) / k;
    const p = new Params();
    const mAt = p.u(m);
    const nAt = p.u(n);
    const kAt = p.u(k);
    const fw = ctx.fusedWeight(1);
    const wr = fw === undefined ? undefined : fusedWeightReader(ctx, fw, 1, p);
    const wCount = wr === undefined ? 1 : 3;
    let decls = `${bufferDecl(0, "X", "float32", false)}${wr === undefined ? bufferDecl(1, "W", "float32", false) : wr.decls}`;
    if (hasBias) decls += bufferDecl(1 + wCount, "Bias", "float32", false);
    const outB = 1 + wCount + (hasBias ? 1 : 0);
    decls += `${bufferDecl(outB, "Y", "float32", true)}${paramsDecl(outB + 1)}`;
    const helpers = `fn loadA(z: u32, m: u32, k: u32) -> f32 { return X[m * pu(${kAt}u) + k]; }
${wr === undefined ? `fn loadB(z: u32, k: u32, n: u32) -> f32 { return W[n * pu(${kAt}u) + k]; }` : `${wr.fn}
fn loadB(z: u32, k: u32, n: u32) -> f32 { return wq(n, k); }`}
fn storeC(z: u32, m: u32, n: u32, v: f32) { Y[m * pu(${nAt}u) + n] = v${hasBias ? " + Bias[n]" : ""}; }`;
    return {
      dispatches: [{
        code: gemmSource({ decls, helpers, mAt, nAt, kAt }, ctx.caps.gemm),
        label: "linear",
        bindings: [{ input: 0 }, ...(wr === undefined ? [{ input: 1 }] : wr.bindings), ...(hasBias ? [{ input: 2 }] : []), { output: 0 }],
        params: p.finish(),
        workgroups: gemmGrid(m, n, 1, ctx.caps.gemm),
      }],
    };
  },
};

export const gemmKernel: GpuKernel = {
  ops: ["gemm"],
  supports(q) {
    const why = allFloat(q, 3);
    if (why !== undefined) return { reason: why };
    const fw = q.fusedWeight(1);
    if (fw !== undefined) return { kernel: `gemm_${q.caps.gemm}_${fw.q.dtype}w_f32`, note: weightNote(fw)! };
    return { kernel: `gemm_${q.caps.gemm}_f32` };
  },
  build(ctx) {
    const a = ctx.inputs[0]!;
    const b = ctx.inputs[1]!;
    const c = ctx.inputs[2];
    const transA = (ctx.attrs["transA"] as number) !== 0;
    const transB = (ctx.attrs["transB"] as number) !== 0;
    const m = transA ? a.shape[1]! : a.shape[0]!;
    const k = transA ? a.shape[0]! : a.shape[1]!;
    const n = transB ? b.shape[0]! : b.shape[1]!;
    const p = new Params();
    const mAt = p.u(m);
    const nAt = p.u(n);
    const kAt = p.u(k);
    const alphaAt = p.f(ctx.attrs["alpha"] as number);
    const betaAt = p.f(ctx.attrs["beta"] as number);
    // C broadcasts to [M, N]: its strides along m and n (0 where it has size 1 or is missing).
    const cs = c === undefined ? [0, 0] : (() => {
      const s2 = c.shape.length === 0 ? [1, 1] : c.shape.length === 1 ? [1, c.shape[0]!] : [c.shape[0]!, c.shape[1]!];
      return [s2[0] === 1 ? 0 : s2[1]!, s2[1] === 1 ? 0 : 1];
    })();
    const csmAt = p.u(cs[0]!);
    const csnAt = p.u(cs[1]!);
    const fw = ctx.fusedWeight(1);
    const wr = fw === undefined ? undefined : fusedWeightReader(ctx, fw, 1, p);
    const wCount = wr === undefined ? 1 : 3;
    let decls = `${bufferDecl(0, "A", "float32", false)}${wr === undefined ? bufferDecl(1, "B", "float32", false) : wr.decls}`;
    if (c !== undefined) decls += bufferDecl(1 + wCount, "Cin", "float32", false);
    const outB = 1 + wCount + (c !== undefined ? 1 : 0);
    decls += `${bufferDecl(outB, "Y", "float32", true)}${paramsDecl(outB + 1)}`;
    const loadA = transA ? `A[k * pu(${mAt}u) + m]` : `A[m * pu(${kAt}u) + k]`;
    const loadB = wr !== undefined ? (transB ? "wq(n, k)" : "wq(k, n)") : transB ? `B[n * pu(${kAt}u) + k]` : `B[k * pu(${nAt}u) + n]`;
    const cTerm = c !== undefined ? ` + pf(${betaAt}u) * Cin[m * pu(${csmAt}u) + n * pu(${csnAt}u)]` : "";
    const helpers = `${wr?.fn ?? ""}
fn loadA(z: u32, m: u32, k: u32) -> f32 { return ${loadA}; }
fn loadB(z: u32, k: u32, n: u32) -> f32 { return ${loadB}; }
fn storeC(z: u32, m: u32, n: u32, v: f32) { Y[m * pu(${nAt}u) + n] = pf(${alphaAt}u) * v${cTerm}; }`;
    return {
      dispatches: [{
        code: gemmSource({ decls, helpers, mAt, nAt, kAt }, ctx.caps.gemm),
        label: "gemm",
        bindings: [{ input: 0 }, ...(wr === undefined ? [{ input: 1 }] : wr.bindings), ...(c !== undefined ? [{ input: 2 }] : []), { output: 0 }],
        params: p.finish(),
        workgroups: gemmGrid(m, n, 1, ctx.caps.gemm),
      }],
    };
  },
};
