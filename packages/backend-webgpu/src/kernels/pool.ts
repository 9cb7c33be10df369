/**
 * Float32 pooling and inference batch normalization:
 * - ONNX MaxPool / AveragePool (1-D and 2-D, pads, strides, dilations, ceil mode through the
 *   inferred output shape, count_include_pad): one invocation per output, the window in a loop;
 * - torch adaptive_avg_pool2d (windows [floor(i*H/oh), ceil((i+1)*H/oh)));
 * - BatchNormalization in inference mode with its parameters known before the run, folded on the
 *   host into one scale and shift per channel (computed in double, rounded to float32).
 */
import { numel, toNumbers } from "@qforge/ir";
import { bufferDecl, grid1d, ISNAN, main1d, Params, paramsDecl } from "../wgsl/common.js";
import { padsBegin } from "./conv.js";
import type { GpuKernel, SupportQuery } from "./types.js";

function floatOnly(q: SupportQuery): string | undefined {
  const t = q.inputs[0];
  if (t !== undefined && t.dtype !== "float32") return `the WGSL ${q.node.op} kernel takes float32, input #0 is ${t.dtype}`;
  return undefined;
}

export const windowPoolKernel: GpuKernel = {
  ops: ["max_pool", "average_pool"],
  supports(q) {
    const why = floatOnly(q);
    if (why !== undefined) return { reason: why };
    const r = q.inputs[0]?.shape.length;
    if (r !== 3 && r !== 4) return { reason: `${q.node.op} of rank ${String(r)} (the WGSL kernel pools 1-D and 2-D)` };
    if (q.node.op === "max_pool" && q.node.outputs[1] !== undefined && q.node.outputs[1] !== "") return { reason: "max_pool's Indices output is not computed on the GPU" };
    return { kernel: `pool_${q.node.op === "max_pool" ? "max" : "avg"}_f32` };
  },
  build(ctx) {
    const x = ctx.inputs[0]!;
    const out = ctx.outputs[0]!;
    const one = x.shape.length === 3;
    const inSp = x.shape.slice(2);
    const outSp = out.shape.slice(2);
    const kernel = ctx.attrs["kernel_shape"] as number[];
    const pb = padsBegin(ctx.attrs, inSp, outSp, kernel);
    const st = (ctx.attrs["strides"] as number[] | undefined) ?? inSp.map(() => 1);
    const dl = (ctx.attrs["dilations"] as number[] | undefined) ?? inSp.map(() => 1);
    const pads = (ctx.attrs["pads"] as number[] | undefined) ?? new Array<number>(2 * inSp.length).fill(0);
    const autoPad = (ctx.attrs["auto_pad"] as string | undefined) ?? "NOTSET";
    // End pads: explicit, or what SAME_* adds after the begin pad (for count_include_pad's window).
    const pe = inSp.map((inDim, i) => {
      if (autoPad === "NOTSET") return pads[inSp.length + i]!;
      if (autoPad === "VALID") return 0;
      return Math.max(0, (outSp[i]! - 1) * st[i]! + (kernel[i]! - 1) * dl[i]! + 1 - inDim) - pb[i]!;
    });
    const two = (a: readonly number[], fill: number): [number, number] => (one ? [fill, a[0]!] : [a[0]!, a[1]!]);
    const [h, w] = two(inSp, 1);
    const [oh, ow] = two(outSp, 1);
    const [kh, kw] = two(kernel, 1);
    const [sh, sw] = two(st, 1);
    const [dh, dw] = two(dl, 1);
    const [ph, pw] = two(pb, 0);
    const [peh, pew] = two(pe, 0);
    const p = new Params();
    const total = numel(out.shape);
    const at = p.list([total, h, w, oh, ow, kh, kw, sh, sw, dh, dw]);
    p.i(ph);
    p.i(pw);
    p.i(peh);
    p.i(pew);
    const isMax = ctx.node.op === "max_pool";
    const includePad = (ctx.attrs["count_include_pad"] as number | undefined ?? 0) !== 0;
    const names = ["TOTAL", "H", "W", "OH", "OW", "KH", "KW", "SH", "SW", "DH", "DW", "PH", "PW", "PEH", "PEW"].map((n, i) => `const ${n} = ${at + i}u;`).join("\n");
    const code = `${bufferDecl(0, "X", "float32", false)}${bufferDecl(1, "Y", "float32", true)}${paramsDecl(2)}${names}
${ISNAN}var<private> INF_BITS: u32 = 0x7f800000u;
fn inf() -> f32 { return bitcast<f32>(INF_BITS); }
${main1d(`  if (idx >= pu(TOTAL)) { return; }
  let ow = idx % pu(OW);
  let oh = (idx / pu(OW)) % pu(OH);
  let plane = idx / (pu(OW) * pu(OH));
  let xBase = plane * pu(H) * pu(W);
  var acc = ${isMax ? "-inf()" : "0.0"};
  var count = 0u;
  var padCount = 0u;
  for (var a = 0u; a < pu(KH); a = a + 1u) {
    let ih = i32(oh * pu(SH) + a * pu(DH)) - pi(PH);
    let rowInPad = ih >= -pi(PH) && ih < i32(pu(H)) + pi(PEH);
    for (var b = 0u; b < pu(KW); b = b + 1u) {
      let iw = i32(ow * pu(SW) + b * pu(DW)) - pi(PW);
      if (rowInPad && iw >= -pi(PW) && iw < i32(pu(W)) + pi(PEW)) { padCount = padCount + 1u; }
      if (ih < 0 || ih >= i32(pu(H)) || iw < 0 || iw >= i32(pu(W))) { continue; }
      let v = X[xBase + u32(ih) * pu(W) + u32(iw)];
      ${isMax ? "acc = select(max(acc, v), v, isnan_(v) || (count == 0u));" : "acc = acc + v;"}
      count = count + 1u;
    }
  }
  ${isMax ? "Y[idx] = acc;" : `Y[idx] = acc / f32(${includePad ? "padCount" : "count"});`}`)}`;
    return { dispatches: [{ code, label: ctx.node.op, bindings: [{ input: 0 }, { output: 0 }], params: p.finish(), workgroups: grid1d(total) }] };
  },
};

export const adaptiveAvgPoolKernel: GpuKernel = {
  ops: ["adaptive_avg_pool2d"],
  supports(q) {
    const why = floatOnly(q);
    return why === undefined ? { kernel: "pool_adaptive_avg_f32" } : { reason: why };
  },
  build(ctx) {
    const x = ctx.inputs[0]!;
    const out = ctx.outputs[0]!;
    const r = x.shape.length;
    const total = numel(out.shape);
    const p = new Params();
    const at = p.list([total, x.shape[r - 2]!, x.shape[r - 1]!, out.shape[r - 2]!, out.shape[r - 1]!]);
    const code = `${bufferDecl(0, "X", "float32", false)}${bufferDecl(1, "Y", "float32", true)}${paramsDecl(2)}
${main1d(`  if (idx >= pu(${at}u)) { return; }
  let H = pu(${at + 1}u);
  let W = pu(${at + 2}u);
  let OH = pu(${at + 3}u);
  let OW = pu(${at + 4}u);
  let j = idx % OW;
  let i = (idx / OW) % OH;
  let plane = idx / (OW * OH);
  let h0 = (i * H) / OH;
  let h1 = ((i + 1u) * H + OH - 1u) / OH;
  let w0 = (j * W) / OW;
  let w1 = ((j + 1u) * W + OW - 1u) / OW;
  var s = 0.0;
  for (var y = h0; y < h1; y = y + 1u) {
    for (var z = w0; z < w1; z = z + 1u) { s = s + X[(plane * H + y) * W + z]; }
  }
  Y[idx] = s / f32((h1 - h0) * (w1 - w0));`)}`;
    return { dispatches: [{ code, label: "adaptive_avg_pool2d", bindings: [{ input: 0 }, { output: 0 }], params: p.finish(), workgroups: grid1d(total) }] };
  },
};

/** ONNX BatchNormalization, inference mode, with scale/bias/mean/var known before the run. */
export const batchNormKernel: GpuKernel = {
  ops: ["batch_norm"],
  supports(q) {
    const why = floatOnly(q);
    if (why !== undefined) return { reason: why };
    if ((q.attrs["training_mode"] as number) !== 0) return { reason: "batch_norm in training mode" };
    if (q.node.outputs.slice(1).some((v) => v !== "")) return { reason: "batch_norm's running statistics outputs" };
    for (let i = 1; i <= 4; i++) if (!q.isStatic(i)) return { reason: "batch_norm: scale, bias, mean and var must be known before the run" };
    return { kernel: "batchnorm_affine_f32", note: "folded per channel into y = x * a + b" };
  },
  build(ctx) {
    const x = ctx.inputs[0]!;
    const [scale, bias, mean, variance] = [1, 2, 3, 4].map((i) => toNumbers(ctx.host(i)!)) as [number[], number[], number[], number[]];
    const eps = Math.fround(ctx.attrs["epsilon"] as number);
    const c = x.shape[1]!;
    const ab = new Float32Array(2 * c);
    for (let ch = 0; ch < c; ch++) {
      // The reference's y = (x - mean) * (scale / sqrt(var + eps)) + bias, with the products folded.
      const k = scale[ch]! / Math.sqrt(variance[ch]! + eps);
      ab[2 * ch] = k;
      ab[2 * ch + 1] = bias[ch]! - mean[ch]! * k;
    }
    const table = ctx.constant(`affine:${c}`, () => ab);
    const inner = numel(x.shape.slice(2));
    const total = numel(x.shape);
    const p = new Params();
    const at = p.list([total, inner, c]);
    const code = `${bufferDecl(0, "X", "float32", false)}${bufferDecl(1, "AB", "float32", false)}${bufferDecl(2, "Y", "float32", true)}${paramsDecl(3)}
${main1d(`  if (idx >= pu(${at}u)) { return; }
  let ch = (idx / pu(${at + 1}u)) % pu(${at + 2}u);
  Y[idx] = X[idx] * AB[2u * ch] + AB[2u * ch + 1u];`)}`;
    return { dispatches: [{ code, label: "batch_norm", bindings: [{ input: 0 }, { buffer: table }, { output: 0 }], params: p.finish(), workgroups: grid1d(total) }] };
  },
};
