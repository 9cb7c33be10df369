/**
 * Quantized average pooling (torch quantized avg_pool2d / adaptive_avg_pool2d), bit-exact with the
 * reference (runtime/src/quantized/torch-float.ts): there the codes are dequantized to float32,
 * summed in double — exactly, since every dequantized value is an integer multiple m(q) of one
 * power of two u — and `quantize(f32(sum / divisor))` is the output. Here each code's m(q) comes
 * from a table (split in 16-bit halves so window sums stay exact in i32), the window sum S is an
 * exact integer, and the output is a monotone function of S for each divisor: a threshold search
 * over (high, low) pairs. The tables are computed with the same @qforge/quant primitives.
 */
import { dtypeInfo, getElement, numel, tensor, type Tensor } from "@qforge/ir";
import { dequantizePerTensor, f32, quantizePerTensor } from "@qforge/quant";
import { byteCodes } from "../quant/tables.js";
import { grid1d, main1d, Params, paramsDecl, rawDecl } from "../wgsl/common.js";
import type { BuildContext, GpuKernel } from "./types.js";

interface Window {
  readonly h0: number;
  readonly h1: number;
  readonly w0: number;
  readonly w1: number;
  readonly divisor: number;
}

function pairOf(v: unknown, fallback?: [number, number]): [number, number] {
  const a = (v as number[] | undefined) ?? [];
  if (a.length === 0 && fallback !== undefined) return fallback;
  return a.length === 1 ? [a[0]!, a[0]!] : [a[0]!, a[1]!];
}

/** Per output position, the input window and the divisor, as the reference kernels define them. */
function windows(ctx: BuildContext, h: number, w: number, oh: number, ow: number): Window[] {
  const out: Window[] = [];
  if (ctx.node.op === "quantized_adaptive_avg_pool2d") {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        const h0 = Math.floor((i * h) / oh);
        const h1 = Math.ceil(((i + 1) * h) / oh);
        const w0 = Math.floor((j * w) / ow);
        const w1 = Math.ceil(((j + 1) * w) / ow);
        out.push({ h0, h1, w0, w1, divisor: (h1 - h0) * (w1 - w0) });
      }
    }
    return out;
  }
  // avg_pool2d (ATen AvgPoolKernel.cpp).
  const k = pairOf(ctx.attrs["kernel_size"]);
  const s = pairOf(ctx.attrs["stride"], k);
  const pad = pairOf(ctx.attrs["padding"], [0, 0]);
  const override = (ctx.attrs["divisor_override"] as number | undefined) ?? 0;
  const includePad = ctx.attrs["count_include_pad"] === true;
  for (let i = 0; i < oh; i++) {
    for (let j = 0; j < ow; j++) {
      let h0 = i * s[0] - pad[0];
      let w0 = j * s[1] - pad[1];
      let h1 = Math.min(h0 + k[0], h + pad[0]);
      let w1 = Math.min(w0 + k[1], w + pad[1]);
      const poolSize = (h1 - h0) * (w1 - w0);
      h0 = Math.max(h0, 0);
      w0 = Math.max(w0, 0);
      h1 = Math.min(h1, h);
      w1 = Math.min(w1, w);
      if (h0 >= h1 || w0 >= w1) {
        out.push({ h0: 0, h1: 0, w0: 0, w1: 0, divisor: 1 }); // the reference's 0
        continue;
      }
      out.push({ h0, h1, w0, w1, divisor: override > 0 ? override : includePad ? poolSize : (h1 - h0) * (w1 - w0) });
    }
  }
  return out;
}

/** m(q) = dequantize(q) / u for the 256 codes, and u (a power of two). */
function units(x: Tensor, scale: number, zp: number): { m: number[]; u: number } {
  const v = Array.from(dequantizePerTensor(x, scale, zp).data as Float32Array);
  let u = Infinity;
  for (const a of v) {
    if (a === 0) continue;
    // ulp of a float32: 2^(exponent - 23) (normal numbers; subnormals share 2^-149).
    const e = Math.max(-126, Math.floor(Math.log2(Math.abs(a))));
    u = Math.min(u, 2 ** (e - 23));
  }
  if (!Number.isFinite(u)) u = 1;
  return { m: v.map((a) => a / u), u };
}

const HALF = 65536;

export const quantizedAvgPoolKernel: GpuKernel = {
  ops: ["quantized_avg_pool2d", "quantized_adaptive_avg_pool2d"],
  supports(q) {
    const dt = q.inputs[0]?.dtype;
    if (dt !== "int8" && dt !== "uint8") return { reason: `${q.node.op}: the WGSL kernel takes int8/uint8` };
    for (let i = 1; i < q.node.inputs.length; i++) {
      if (q.node.inputs[i] !== "" && !q.isStatic(i)) return { reason: `${q.node.op}: qparams must be known before the run` };
    }
    return { kernel: "qpool_avg_exact", note: "exact integer window sums, requantized by thresholds per divisor" };
  },
  build(ctx) {
    const x = ctx.inputs[0]!;
    const out = ctx.outputs[0]!;
    const r = x.shape.length;
    const [h, w] = [x.shape[r - 2]!, x.shape[r - 1]!];
    const [oh, ow] = [out.shape[r - 2]!, out.shape[r - 1]!];
    const num = (i: number): number | undefined => (ctx.host(i) === undefined ? undefined : getElement(ctx.host(i)!, 0));
    const xScale = num(1)!;
    const xZp = num(2)!;
    const yScale = num(3) ?? xScale;
    const yZp = num(4) ?? xZp;
    const info = dtypeInfo(x.dtype);
    const { m, u } = units(byteCodes(x.dtype), xScale, xZp);
    const wins = windows(ctx, h, w, oh, ow);
    const divisors = [...new Set(wins.map((wn) => wn.divisor))];
    const maxCount = Math.max(1, ...wins.map((wn) => (wn.h1 - wn.h0) * (wn.w1 - wn.w0)));
    const mMin = Math.min(0, ...m);
    const mMax = Math.max(0, ...m);
    const sMin = maxCount * mMin;
    const sMax = maxCount * mMax;
    const levels = info.max - info.min;
    let size = 1;
    while (size < levels) size *= 2;
    // f_d(S) = quantize(f32(S * u / d)) with the output qparams (quantizeOutput in torch-float.ts).
    const evaluate = (ss: readonly number[], d: number): number[] => {
      const vals = Float32Array.from(ss, (s) => f32((s * u) / d));
      const q = quantizePerTensor(tensor("float32", [vals.length], vals), yScale, yZp, x.dtype);
      return Array.from(q.data as ArrayLike<number>);
    };
    // Table layout (i32): per code [hi, lo]; per window [h0, h1, w0, w1, divisor index];
    // per divisor [fmin, fmax, then size thresholds as (hi, lo)].
    const codeAt = 0;
    const winAt = codeAt + 512;
    const divAt = winAt + 5 * wins.length;
    const per = 2 + 2 * size;
    const words = new Int32Array(divAt + per * divisors.length);
    m.forEach((v, b) => {
      const hi = Math.floor(v / HALF);
      words[codeAt + 2 * b] = hi;
      words[codeAt + 2 * b + 1] = v - hi * HALF;
    });
    wins.forEach((wn, i) => words.set([wn.h0, wn.h1, wn.w0, wn.w1, divisors.indexOf(wn.divisor)], winAt + 5 * i));
    divisors.forEach((d, di) => {
      const base = divAt + per * di;
      const [fmin, fmax] = evaluate([sMin, sMax], d);
      words[base] = fmin!;
      words[base + 1] = fmax!;
      const lowB = new Array<number>(levels).fill(sMin - 1);
      const highB = new Array<number>(levels).fill(sMax);
      const never = new Array<boolean>(levels).fill(false);
      for (let j = 0; j < levels; j++) {
        const q = info.min + 1 + j;
        if (fmax! < q) never[j] = true;
        else if (fmin! >= q) highB[j] = sMin;
      }
      for (let round = 0; round < 60; round++) {
        const open = lowB.some((l, j) => !never[j] && highB[j]! - l > 1);
        if (!open) break;
        const mids = lowB.map((l, j) => Math.floor((l + highB[j]!) / 2));
        const ys = evaluate(mids, d);
        for (let j = 0; j < levels; j++) {
          if (never[j] || highB[j]! - lowB[j]! <= 1) continue;
          if (ys[j]! >= info.min + 1 + j) highB[j] = mids[j]!;
          else lowB[j] = mids[j]!;
        }
      }
      for (let j = 0; j < size; j++) {
        const t = j < levels && !never[j] ? highB[j]! : Number.MAX_SAFE_INTEGER;
        const hi = j < levels && !never[j] ? Math.floor(t / HALF) : 0x7fffffff;
        words[base + 2 + 2 * j] = hi;
        words[base + 3 + 2 * j] = j < levels && !never[j] ? t - hi * HALF : 0;
      }
    });
    const table = ctx.constant(`pool:${h}x${w}->${oh}x${ow}`, () => words);
    const total = numel(out.shape);
    const p = new Params();
    const at = p.list([total, h, w, oh, ow]);
    const loAt = p.i(info.min);
    const code = `${rawDecl(0, "X", "u32", false)}${rawDecl(1, "T", "i32", false)}${rawDecl(2, "Y", "u32", true)}${paramsDecl(3)}
fn le(th: i32, tl: i32, sh: i32, sl: i32) -> bool { return th < sh || (th == sh && tl <= sl); }
fn search(base: u32, sh: i32, sl: i32) -> i32 {
  var pos = 0u;
  var s = ${size}u;
  loop {
    if (s <= 1u) { break; }
    s = s >> 1u;
    let t = base + 2u * (pos + s - 1u);
    if (le(T[t], T[t + 1u], sh, sl)) { pos = pos + s; }
  }
  let t = base + 2u * pos;
  return i32(pos + select(0u, 1u, le(T[t], T[t + 1u], sh, sl)));
}
fn pooled(e: u32) -> i32 {
  let H = pu(${at + 1}u);
  let W = pu(${at + 2}u);
  let npos = pu(${at + 3}u) * pu(${at + 4}u);
  let pos = e % npos;
  let plane = e / npos;
  let wb = ${winAt}u + 5u * pos;
  var sh = 0;
  var sl = 0;
  for (var i = u32(T[wb]); i < u32(T[wb + 1u]); i = i + 1u) {
    for (var j = u32(T[wb + 2u]); j < u32(T[wb + 3u]); j = j + 1u) {
      let k = (plane * H + i) * W + j;
      let b = (X[k >> 2u] >> (8u * (k & 3u))) & 0xffu;
      sh = sh + T[${codeAt}u + 2u * b];
      sl = sl + T[${codeAt}u + 2u * b + 1u];
    }
  }
  sh = sh + (sl >> 16u);
  sl = sl & 0xffff;
  let db = ${divAt}u + ${per}u * u32(T[wb + 4u]);
  return clamp(pi(${loAt}u) + search(db + 2u, sh, sl), T[db], T[db + 1u]);
}
${main1d(`  if (idx * 4u >= pu(${at}u)) { return; }
  var word = 0u;
  for (var j = 0u; j < 4u; j = j + 1u) {
    let e = idx * 4u + j;
    if (e < pu(${at}u)) { word = word | ((u32(pooled(e)) & 0xffu) << (8u * j)); }
  }
  Y[idx] = word;`)}`;
    return { dispatches: [{ code, label: ctx.node.op, bindings: [{ input: 0 }, { buffer: table }, { output: 0 }], params: p.finish(), workgroups: grid1d(Math.ceil(total / 4)) }] };
  },
};
