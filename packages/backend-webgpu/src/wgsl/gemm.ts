/**
 * The float32 GEMM every matrix kernel shares: C[z, m, n] = sum_k A(z, m, k) * B(z, k, n). Kernels
 * plug in how A and B are read (`loadA`/`loadB`: plain matrices, transposed weights, an implicit
 * im2col of a convolution input, int4 weights dequantized on the fly) and how C is stored
 * (`storeC`: bias, alpha/beta, NCHW layout); a per-z prologue may set private bases. Two schedules:
 *
 * - "tiled" (GPUs): 64x64 output tiles per 16x16 workgroup, 4x4 per invocation, K in steps of 16
 *   staged through workgroup memory;
 * - "direct" (CPU adapters such as SwiftShader): 4x4 per invocation read straight from the buffers.
 *   A CPU's caches do what workgroup memory does on a GPU, and SwiftShader compiles a shader with
 *   workgroup barriers 20-50x slower (seconds per pipeline).
 */

export const GEMM_TM = 64;
export const GEMM_TN = 64;
export const GEMM_TK = 16;

export interface GemmParts {
  /** Binding declarations (storage buffers and the Params block). */
  readonly decls: string;
  /** Helper functions: must define loadA(z, m, k) -> f32, loadB(z, k, n) -> f32, storeC(z, m, n, v: f32). */
  readonly helpers: string;
  /** Statements run once per workgroup with `z` known (set `var<private>` bases). */
  readonly prologue?: string;
  /**
   * Direct schedule only: statements run once per invocation with its columns gn, n1, n2, n3 known,
   * and a `fn loadB4(z: u32, k: u32) -> vec4<f32>` reading B at those columns (hoists per-column
   * index math out of the k loop).
   */
  readonly columns?: { readonly prologue: string; readonly loadB4: string };
  /** Parameter indices of M, N, K. */
  readonly mAt: number;
  readonly nAt: number;
  readonly kAt: number;
}

export type GemmVariant = "tiled" | "direct";

export function gemmSource(parts: GemmParts, variant: GemmVariant): string {
  return variant === "tiled" ? tiledSource(parts) : directSource(parts);
}

function directSource(parts: GemmParts): string {
  return `${parts.decls}
${parts.helpers}
${parts.columns?.loadB4 ?? ""}
@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let M = pu(${parts.mAt}u);
  let N = pu(${parts.nAt}u);
  let K = pu(${parts.kAt}u);
  let z = g.z;
  ${parts.prologue ?? ""}
  let gm = g.y * 4u;
  let gn = g.x * 4u;
  if (gm >= M || gn >= N) { return; }
  // Rows/columns past the edge repeat the last one (their results are not stored).
  let m1 = min(gm + 1u, M - 1u);
  let m2 = min(gm + 2u, M - 1u);
  let m3 = min(gm + 3u, M - 1u);
  let n1 = min(gn + 1u, N - 1u);
  let n2 = min(gn + 2u, N - 1u);
  let n3 = min(gn + 3u, N - 1u);
  ${parts.columns?.prologue ?? ""}
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var k = 0u; k < K; k = k + 1u) {
    let a = vec4<f32>(loadA(z, gm, k), loadA(z, m1, k), loadA(z, m2, k), loadA(z, m3, k));
    let b = ${parts.columns === undefined ? "vec4<f32>(loadB(z, k, gn), loadB(z, k, n1), loadB(z, k, n2), loadB(z, k, n3))" : "loadB4(z, k)"};
    acc0 = acc0 + a.x * b;
    acc1 = acc1 + a.y * b;
    acc2 = acc2 + a.z * b;
    acc3 = acc3 + a.w * b;
  }
${STORE}
}
`;
}

const STORE = `  for (var j = 0u; j < 4u; j = j + 1u) {
    if (gn + j >= N) { break; }
    if (gm < M) { storeC(z, gm, gn + j, acc0[j]); }
    if (gm + 1u < M) { storeC(z, gm + 1u, gn + j, acc1[j]); }
    if (gm + 2u < M) { storeC(z, gm + 2u, gn + j, acc2[j]); }
    if (gm + 3u < M) { storeC(z, gm + 3u, gn + j, acc3[j]); }
  }`;

function tiledSource(parts: GemmParts): string {
  const TM = GEMM_TM;
  const TN = GEMM_TN;
  const TK = GEMM_TK;
  return `${parts.decls}
${parts.helpers}
var<workgroup> As: array<f32, ${TM * TK}>;
var<workgroup> Bs: array<f32, ${TK * TN}>;
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let M = pu(${parts.mAt}u);
  let N = pu(${parts.nAt}u);
  let K = pu(${parts.kAt}u);
  let z = wid.z;
  ${parts.prologue ?? ""}
  let m0 = wid.y * ${TM}u;
  let n0 = wid.x * ${TN}u;
  let tid = lid.y * 16u + lid.x;
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < K; k0 = k0 + ${TK}u) {
    for (var i = 0u; i < ${(TM * TK) / 256}u; i = i + 1u) {
      let e = tid + i * 256u;
      let mm = e / ${TK}u;
      let kk = e % ${TK}u;
      var v = 0.0;
      if (m0 + mm < M && k0 + kk < K) { v = loadA(z, m0 + mm, k0 + kk); }
      As[kk * ${TM}u + mm] = v;
    }
    for (var i = 0u; i < ${(TK * TN) / 256}u; i = i + 1u) {
      let e = tid + i * 256u;
      let kk = e / ${TN}u;
      let nn = e % ${TN}u;
      var v = 0.0;
      if (n0 + nn < N && k0 + kk < K) { v = loadB(z, k0 + kk, n0 + nn); }
      Bs[kk * ${TN}u + nn] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${TK}u; kk = kk + 1u) {
      let a = vec4<f32>(As[kk * ${TM}u + lid.y * 4u], As[kk * ${TM}u + lid.y * 4u + 1u], As[kk * ${TM}u + lid.y * 4u + 2u], As[kk * ${TM}u + lid.y * 4u + 3u]);
      let b = vec4<f32>(Bs[kk * ${TN}u + lid.x * 4u], Bs[kk * ${TN}u + lid.x * 4u + 1u], Bs[kk * ${TN}u + lid.x * 4u + 2u], Bs[kk * ${TN}u + lid.x * 4u + 3u]);
      acc0 = acc0 + a.x * b;
      acc1 = acc1 + a.y * b;
      acc2 = acc2 + a.z * b;
      acc3 = acc3 + a.w * b;
    }
    workgroupBarrier();
  }
  let gm = m0 + lid.y * 4u;
  let gn = n0 + lid.x * 4u;
${STORE}
}
`;
}

/** Workgroups of a GEMM of M x N over `batch` z slices. */
export function gemmGrid(m: number, n: number, batch: number, variant: GemmVariant): [number, number, number] {
  const t = variant === "tiled" ? [GEMM_TM, GEMM_TN] : [32, 32];
  return [Math.ceil(n / t[1]!), Math.ceil(m / t[0]!), batch];
}
