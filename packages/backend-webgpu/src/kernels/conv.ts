/**
 * Float32 ONNX Conv (1-D and 2-D, NCHW, any strides/pads/dilations/groups/auto_pad):
 * - as an implicit GEMM on the tiled GEMM: per (batch, group) z slice, A = the group's weights
 *   [M/G, C/G*KH*KW] as stored, B = the im2col of the input computed on the fly (taps outside the
 *   input read 0), C written straight into NCHW with the bias;
 * - directly (one invocation per output, the taps in a loop) when a group has few output channels
 *   (depthwise convolutions), where 64-row GEMM tiles would sit mostly empty.
 */
import type { AttrValue } from "@qforge/ir";
import { bufferDecl, grid1d, main1d, Params, paramsDecl } from "../wgsl/common.js";
import { gemmGrid, gemmSource } from "../wgsl/gemm.js";
import type { BuildContext, GpuKernel } from "./types.js";

/** 2-D window geometry (a 1-D conv is a 2-D one of height 1). */
export interface Conv2dGeometry {
  readonly n: number;
  readonly c: number;
  readonly h: number;
  readonly w: number;
  readonly m: number;
  readonly kh: number;
  readonly kw: number;
  readonly oh: number;
  readonly ow: number;
  readonly sh: number;
  readonly sw: number;
  readonly ph: number;
  readonly pw: number;
  readonly dh: number;
  readonly dw: number;
  readonly group: number;
}

/**
 * Begin pads of an ONNX window op (runtime/src/util/window.ts windowGeometry): auto_pad SAME_UPPER /
 * SAME_LOWER put the odd unit at the end / the beginning.
 */
export function padsBegin(attrs: Readonly<Record<string, AttrValue>>, inSp: readonly number[], outSp: readonly number[], kernel: readonly number[]): number[] {
  const r = inSp.length;
  const strides = (attrs["strides"] as number[] | undefined) ?? new Array<number>(r).fill(1);
  const dil = (attrs["dilations"] as number[] | undefined) ?? new Array<number>(r).fill(1);
  const pads = (attrs["pads"] as number[] | undefined) ?? new Array<number>(2 * r).fill(0);
  const autoPad = (attrs["auto_pad"] as string | undefined) ?? "NOTSET";
  return inSp.map((inDim, i) => {
    if (autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") {
      const total = Math.max(0, (outSp[i]! - 1) * strides[i]! + (kernel[i]! - 1) * dil[i]! + 1 - inDim);
      const small = Math.floor(total / 2);
      return autoPad === "SAME_UPPER" ? small : total - small;
    }
    if (autoPad === "VALID") return 0;
    return pads[i]!;
  });
}

/** The geometry of an ONNX conv node from its concrete input/weight/output shapes. */
export function onnxConvGeometry(ctx: BuildContext, xAt: number, wAt: number): Conv2dGeometry {
  const x = ctx.inputs[xAt]!;
  const wt = ctx.inputs[wAt]!;
  const out = ctx.outputs[0]!;
  const one = x.shape.length === 3;
  const inSp = x.shape.slice(2);
  const outSp = out.shape.slice(2);
  const kSp = wt.shape.slice(2);
  const pb = padsBegin(ctx.attrs, inSp, outSp, kSp);
  const st = (ctx.attrs["strides"] as number[] | undefined) ?? inSp.map(() => 1);
  const dl = (ctx.attrs["dilations"] as number[] | undefined) ?? inSp.map(() => 1);
  const at = (a: readonly number[], i: number): number => (one ? (i === 0 ? 1 : a[0]!) : a[i]!);
  const z = (a: readonly number[], i: number): number => (one ? (i === 0 ? 0 : a[0]!) : a[i]!);
  return {
    n: x.shape[0]!, c: x.shape[1]!, h: at(inSp, 0), w: at(inSp, 1), m: wt.shape[0]!, kh: at(kSp, 0), kw: at(kSp, 1),
    oh: at(outSp, 0), ow: at(outSp, 1), sh: at(st, 0), sw: at(st, 1), ph: z(pb, 0), pw: z(pb, 1), dh: at(dl, 0), dw: at(dl, 1),
    group: (ctx.attrs["group"] as number | undefined) ?? 1,
  };
}

/** Writes the geometry into the params; returns the index of the first word (layout below). */
export function geometryParams(p: Params, g: Conv2dGeometry): number {
  const at = p.u(g.n);
  // Order matters: convIndexing() reads them by offset from `at`.
  for (const v of [g.c, g.h, g.w, g.m, g.kh, g.kw, g.oh, g.ow, g.sh, g.sw]) p.u(v);
  p.i(g.ph);
  p.i(g.pw);
  for (const v of [g.dh, g.dw, g.group]) p.u(v);
  return at;
}

/** WGSL constants naming the geometry words written by geometryParams at `at`. */
export function geometryNames(at: number): string {
  const names = ["G_N", "G_C", "G_H", "G_W", "G_M", "G_KH", "G_KW", "G_OH", "G_OW", "G_SH", "G_SW", "G_PH", "G_PW", "G_DH", "G_DW", "G_GROUP"];
  return names.map((n, i) => `const ${n} = ${at + i}u;`).join("\n");
}

export const convKernel: GpuKernel = {
  ops: ["conv"],
  supports(q) {
    for (let i = 0; i < 3; i++) {
      const t = q.inputs[i];
      if (t !== undefined && t.dtype !== "float32") return { reason: `the WGSL conv kernel takes float32, input #${i} is ${t.dtype}` };
    }
    const r = q.inputs[0]?.shape.length;
    if (r !== 3 && r !== 4) return { reason: `conv of rank ${String(r)} (the WGSL kernels do 1-D and 2-D)` };
    const wt = q.inputs[1];
    const g = q.attrs["group"] as number;
    if (wt !== undefined && typeof wt.shape[0] === "number" && g > 1 && wt.shape[0] / g < 16) return { kernel: "conv_direct_f32", note: "direct: few output channels per group" };
    return { kernel: `conv_implicit_gemm_${q.caps.gemm}_f32`, note: q.caps.gemm === "tiled" ? "implicit im2col GEMM, tiled through workgroup memory" : "implicit im2col GEMM, 4x4 register blocks" };
  },
  build(ctx) {
    const g = onnxConvGeometry(ctx, 0, 1);
    const hasBias = ctx.inputs[2] !== undefined;
    const mg = g.m / g.group;
    const cg = g.c / g.group;
    const p = new Params();
    const geoAt = geometryParams(p, g);
    let decls = `${bufferDecl(0, "X", "float32", false)}${bufferDecl(1, "Wt", "float32", false)}`;
    if (hasBias) decls += bufferDecl(2, "Bias", "float32", false);
    const outB = hasBias ? 3 : 2;
    decls += `${bufferDecl(outB, "Y", "float32", true)}${paramsDecl(outB + 1)}${geometryNames(geoAt)}\n`;
    const bindings = hasBias ? [{ input: 0 }, { input: 1 }, { input: 2 }, { output: 0 }] : [{ input: 0 }, { input: 1 }, { output: 0 }];
    const bias = hasBias ? "Bias[oc]" : "0.0";
    if (g.group > 1 && mg < 16) {
      const total = g.n * g.m * g.oh * g.ow;
      const totalAt = p.u(total);
      const code = `${decls}
${main1d(`  if (idx >= pu(${totalAt}u)) { return; }
  let OW = pu(G_OW);
  let OH = pu(G_OH);
  let H = i32(pu(G_H));
  let W = i32(pu(G_W));
  let KH = pu(G_KH);
  let KW = pu(G_KW);
  let SH = i32(pu(G_SH));
  let SW = i32(pu(G_SW));
  let DH = i32(pu(G_DH));
  let DW = i32(pu(G_DW));
  let ow = idx % OW;
  let oh = (idx / OW) % OH;
  let oc = (idx / (OW * OH)) % pu(G_M);
  let n = idx / (OW * OH * pu(G_M));
  let mg = pu(G_M) / pu(G_GROUP);
  let cg = pu(G_C) / pu(G_GROUP);
  let grp = oc / mg;
  let ih0 = i32(oh) * SH - pi(G_PH);
  let iw0 = i32(ow) * SW - pi(G_PW);
  var s = ${bias};
  for (var c = 0u; c < cg; c = c + 1u) {
    let xBase = i32(((n * pu(G_C) + grp * cg + c) * pu(G_H)) * pu(G_W));
    var wi = (oc * cg + c) * KH * KW;
    for (var a = 0u; a < KH; a = a + 1u) {
      let ih = ih0 + i32(a) * DH;
      if (ih < 0 || ih >= H) { wi = wi + KW; continue; }
      let row = xBase + ih * W;
      for (var b = 0u; b < KW; b = b + 1u) {
        let iw = iw0 + i32(b) * DW;
        if (iw >= 0 && iw < W) { s = s + X[u32(row + iw)] * Wt[wi]; }
        wi = wi + 1u;
      }
    }
  }
  Y[idx] = s;`)}`;
      return { dispatches: [{ code, label: "conv (direct)", bindings, params: p.finish(), workgroups: grid1d(total) }] };
    }
    const mAt = p.u(mg);
    const nAt = p.u(g.oh * g.ow);
    const kAt = p.u(cg * g.kh * g.kw);
    // A pointwise conv's im2col is the input itself: B[k, n] = X[c = k, pixel n].
    const pointwise = g.kh === 1 && g.kw === 1 && g.sh === 1 && g.sw === 1 && g.ph === 0 && g.pw === 0 && g.h === g.oh && g.w === g.ow;
    const loadB = pointwise
      ? `fn loadB(z: u32, k: u32, n: u32) -> f32 { return X[xBase + k * pu(${nAt}u) + n]; }`
      : `fn loadB(z: u32, k: u32, n: u32) -> f32 {
  let khw = pu(G_KH) * pu(G_KW);
  let c = k / khw;
  let r = k % khw;
  let ih = i32((n / pu(G_OW)) * pu(G_SH) + (r / pu(G_KW)) * pu(G_DH)) - pi(G_PH);
  let iw = i32((n % pu(G_OW)) * pu(G_SW) + (r % pu(G_KW)) * pu(G_DW)) - pi(G_PW);
  if (ih < 0 || iw < 0 || ih >= i32(pu(G_H)) || iw >= i32(pu(G_W))) { return 0.0; }
  return X[xBase + (c * pu(G_H) + u32(ih)) * pu(G_W) + u32(iw)];
}`;
    const helpers = `var<private> xBase: u32;
var<private> wBase: u32;
var<private> yBase: u32;
var<private> ocBase: u32;
fn loadA(z: u32, m: u32, k: u32) -> f32 { return Wt[wBase + m * pu(${kAt}u) + k]; }
${loadB}
fn storeC(z: u32, m: u32, n: u32, v: f32) {
  let oc = ocBase + m;
  Y[yBase + m * pu(${nAt}u) + n] = v + ${bias};
}`;
    const prologue = `let grp = z % pu(G_GROUP);
  let bn = z / pu(G_GROUP);
  let cg = pu(G_C) / pu(G_GROUP);
  ocBase = grp * M;
  xBase = (bn * pu(G_C) + grp * cg) * pu(G_H) * pu(G_W);
  wBase = ocBase * K;
  yBase = (bn * pu(G_M) + ocBase) * N;`;
    // Direct schedule, windowed conv: each invocation's four output pixels are decoded once.
    const columns = pointwise ? undefined : {
      prologue: `let cols = vec4<u32>(gn, n1, n2, n3);
  ihBase = vec4<i32>((cols / pu(G_OW)) * pu(G_SH)) - vec4<i32>(pi(G_PH));
  iwBase = vec4<i32>((cols % pu(G_OW)) * pu(G_SW)) - vec4<i32>(pi(G_PW));`,
      loadB4: `var<private> ihBase: vec4<i32>;
var<private> iwBase: vec4<i32>;
fn loadB4(z: u32, k: u32) -> vec4<f32> {
  let khw = pu(G_KH) * pu(G_KW);
  let c = k / khw;
  let r = k % khw;
  let ih = ihBase + vec4<i32>(i32((r / pu(G_KW)) * pu(G_DH)));
  let iw = iwBase + vec4<i32>(i32((r % pu(G_KW)) * pu(G_DW)));
  let inside = (ih >= vec4<i32>(0)) & (iw >= vec4<i32>(0)) & (ih < vec4<i32>(i32(pu(G_H)))) & (iw < vec4<i32>(i32(pu(G_W))));
  let at = vec4<i32>(i32(xBase + c * pu(G_H) * pu(G_W))) + ih * i32(pu(G_W)) + iw;
  var v = vec4<f32>(0.0);
  if (inside.x) { v.x = X[u32(at.x)]; }
  if (inside.y) { v.y = X[u32(at.y)]; }
  if (inside.z) { v.z = X[u32(at.z)]; }
  if (inside.w) { v.w = X[u32(at.w)]; }
  return v;
}`,
    };
    return {
      dispatches: [{
        code: gemmSource({ decls, helpers, prologue, mAt, nAt, kAt, ...(columns === undefined ? {} : { columns }) }, ctx.caps.gemm),
        label: "conv (implicit gemm)",
        bindings,
        params: p.finish(),
        workgroups: gemmGrid(mg, g.oh * g.ow, g.n * g.group, ctx.caps.gemm),
      }],
    };
  },
};

