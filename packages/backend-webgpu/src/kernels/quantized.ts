/**
 * 8-bit quantized kernels with the reference's exact integer results (quant/tables.ts explains the
 * method): tensors stay packed four codes to a word; quantizers and requantizers are threshold
 * searches, elementwise quantized ops are lookup tables built by the reference kernels themselves,
 * and products accumulate exactly in int32 with `dot4I8Packed` (or its unpacking fallback) on
 * operands shifted to signed bytes (uint8 codes minus 128, zero points alike), using
 * sum((a - za)(b - zb)) = sum(ab) - zb*sum(a) - za*sum(b) + K*za*zb, which holds mod 2^32 whatever
 * the order — exactly what the reference's wrapped int32 accumulator holds.
 */
import { dtypeInfo, getElement, numel, tensor, type DType, type Tensor } from "@qforge/ir";
import { onnxRequant, torchRequant, type ChannelRequant } from "../quant/requant.js";
import { binaryTable, floatThresholds, runWith, unaryTable, values } from "../quant/tables.js";
import {
  bufferDecl, coalesceDims, broadcastStrides, dot4Fn, grid1d, main1d, PACK4, Params, paramsDecl, rawDecl, reader, strides, thresholdSearch,
} from "../wgsl/common.js";
import { onnxConvGeometry, geometryNames, geometryParams, type Conv2dGeometry } from "./conv.js";
import type { Binding, BuildContext, DispatchSpec, GpuKernel, SupportQuery, TensorType } from "./types.js";

const is8 = (d: DType | undefined): boolean => d === "int8" || d === "uint8";

/** The node's static inputs as host tensors (data inputs left undefined). */
function hostInputs(ctx: BuildContext): (Tensor | undefined)[] {
  return ctx.node.inputs.map((_, i) => ctx.host(i));
}

/** Every input except `dynamic` ones must be known before the run. */
function needStatic(q: SupportQuery, dynamic: readonly number[]): string | undefined {
  for (let i = 0; i < q.node.inputs.length; i++) {
    if (dynamic.includes(i) || q.node.inputs[i] === "") continue;
    if (!q.isStatic(i)) return `${q.node.op}: input #${i} (a qparam or weight) must be known before the run`;
  }
  return undefined;
}

function oneElement(q: SupportQuery, i: number): boolean {
  const t = q.inputs[i];
  return t === undefined || t.shape.every((d) => d === 1);
}

// ---- lookup-table unary ops -----------------------------------------------------------------

const LUT_UNARY = [
  "dequantize_per_tensor", "dequantize_linear", "quantized_relu", "quantized_hardswish", "quantized_sigmoid", "quantized_hardsigmoid",
  "quantized_tanh", "quantized_leaky_relu", "quantized_hardtanh",
];

export const lutUnaryKernel: GpuKernel = {
  ops: LUT_UNARY,
  supports(q) {
    if (!is8(q.inputs[0]?.dtype)) return { reason: `${q.node.op}: the WGSL kernel takes int8/uint8 input, got ${String(q.inputs[0]?.dtype)}` };
    const out = q.outputs[0]!.dtype;
    if (out !== "float32" && !is8(out)) return { reason: `${q.node.op}: output ${out}` };
    if (q.node.op === "dequantize_linear" && !oneElement(q, 1)) return { reason: "dequantize_linear per axis or per block (the WGSL table is per tensor)" };
    const why = needStatic(q, [0]);
    if (why !== undefined) return { reason: why };
    return { kernel: `lut_${out === "float32" ? "dequant" : "u8"}`, note: "a 256-entry table made by the reference kernel" };
  },
  build(ctx) {
    const x = ctx.inputs[0]!;
    const out = ctx.outputs[0]!;
    const table = ctx.constant("lut", () => unaryTable(ctx.node, ctx.attrs, hostInputs(ctx), 0, x.dtype));
    const n = numel(out.shape);
    const p = new Params();
    const nAt = p.u(n);
    const decls = `${rawDecl(0, "X", "u32", false)}${rawDecl(1, "LUT", "u32", false)}${bufferDecl(2, "Y", out.dtype, true)}${paramsDecl(3)}`;
    let body: string;
    let count: number;
    if (out.dtype === "float32") {
      body = `  if (idx >= pu(${nAt}u)) { return; }
  Y[idx] = bitcast<f32>(LUT[(X[idx >> 2u] >> (8u * (idx & 3u))) & 0xffu]);`;
      count = n;
    } else {
      body = `  if (idx * 4u >= pu(${nAt}u)) { return; }
  let w = X[idx];
  Y[idx] = LUT[w & 0xffu] | (LUT[(w >> 8u) & 0xffu] << 8u) | (LUT[(w >> 16u) & 0xffu] << 16u) | (LUT[w >> 24u] << 24u);`;
      count = Math.ceil(n / 4);
    }
    return { dispatches: [{ code: `${decls}${main1d(body)}`, label: ctx.node.op, bindings: [{ input: 0 }, { buffer: table }, { output: 0 }], params: p.finish(), workgroups: grid1d(count) }] };
  },
};

// ---- quantizers (float32 -> 8-bit) ------------------------------------------------------------

export const quantizeKernel: GpuKernel = {
  ops: ["quantize_per_tensor", "quantize_linear"],
  supports(q) {
    if (q.inputs[0]?.dtype !== "float32") return { reason: `${q.node.op}: the WGSL kernel quantizes float32, got ${String(q.inputs[0]?.dtype)}` };
    if (!is8(q.outputs[0]!.dtype)) return { reason: `${q.node.op}: output ${q.outputs[0]!.dtype} (the WGSL kernel writes int8/uint8)` };
    if (q.node.op === "quantize_linear" && !oneElement(q, 1)) return { reason: "quantize_linear per axis or per block (the WGSL table is per tensor)" };
    const why = needStatic(q, [0]);
    if (why !== undefined) return { reason: why };
    return { kernel: "quantize_thresholds", note: "256 thresholds found with the reference quantizer, searched per element" };
  },
  build(ctx) {
    const out = ctx.outputs[0]!;
    const info = dtypeInfo(out.dtype);
    const ins = hostInputs(ctx);
    const evaluate = (xs: Float32Array): number[] => {
      const t = [...ins];
      t[0] = tensor("float32", [xs.length], xs);
      return values(runWith(ctx.node, ctx.attrs, t));
    };
    const th = floatThresholds(evaluate, info.min, info.max);
    const nanCode = evaluate(Float32Array.from([NaN]))[0]!;
    const table = ctx.constant("thresholds", () => th.words);
    const n = numel(out.shape);
    const p = new Params();
    const nAt = p.u(n);
    const loAt = p.i(th.lo);
    const fminAt = p.i(th.fmin);
    const fmaxAt = p.i(th.fmax);
    const nanAt = p.i(nanCode);
    // Past the drop (PyTorch's int64 overflow of huge values) the result is constant.
    const dropAtAt = p.f(th.drop?.at ?? Infinity);
    const dropCodeAt = p.i(th.drop?.code ?? th.fmax);
    const hasDrop = th.drop !== undefined;
    const code = `${bufferDecl(0, "X", "float32", false)}${rawDecl(1, "T", "u32", false)}${rawDecl(2, "Y", "u32", true)}${paramsDecl(3)}${PACK4}
${thresholdSearch("search", "T", "f32", th.size)}
fn quant(v: f32) -> i32 {
  if ((bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u) { return pi(${nanAt}u); }
  ${hasDrop ? `if (v >= pf(${dropAtAt}u)) { return pi(${dropCodeAt}u); }` : ""}
  return clamp(pi(${loAt}u) + search(0u, v), pi(${fminAt}u), pi(${fmaxAt}u));
}
${main1d(`  if (idx * 4u >= pu(${nAt}u)) { return; }
  var q = vec4<i32>(0);
  for (var j = 0u; j < 4u; j = j + 1u) {
    let e = idx * 4u + j;
    if (e < pu(${nAt}u)) { q[j] = quant(X[e]); }
  }
  Y[idx] = pack4(q);`)}`;
    return { dispatches: [{ code, label: ctx.node.op, bindings: [{ input: 0 }, { buffer: table }, { output: 0 }], params: p.finish(), workgroups: grid1d(Math.ceil(n / 4)) }] };
  },
};

// ---- quantized add / mul (a 256 x 256 table) --------------------------------------------------

export const lutBinaryKernel: GpuKernel = {
  ops: ["quantized_add", "quantized_mul"],
  supports(q) {
    if (!is8(q.inputs[0]?.dtype) || q.inputs[0]?.dtype !== q.inputs[3]?.dtype) return { reason: `${q.node.op}: the WGSL kernel takes two int8 or two uint8 inputs` };
    const why = needStatic(q, [0, 3]);
    if (why !== undefined) return { reason: why };
    return { kernel: "lut2_u8", note: "a 256x256 table made by the reference kernel, with broadcasting" };
  },
  build(ctx) {
    const a = ctx.inputs[0]!;
    const b = ctx.inputs[3]!;
    const out = ctx.outputs[0]!;
    const bytes = binaryTable(ctx.node, ctx.attrs, hostInputs(ctx), 0, 3, a.dtype, b.dtype);
    const table = ctx.constant("lut2", () => {
      const w = new Uint32Array(bytes.length / 4);
      for (let i = 0; i < bytes.length; i++) w[i >> 2] = (w[i >> 2]! | (bytes[i]! << (8 * (i & 3)))) >>> 0;
      return w;
    });
    const n = numel(out.shape);
    // Inputs with the output's shape are read at the element index, one-element inputs at 0, the
    // others through coalesced broadcast strides.
    const access = (t: TensorType): "same" | "scalar" | "strided" =>
      numel(t.shape) === 1 ? "scalar" : numel(t.shape) === n ? "same" : "strided";
    const acA = access(a);
    const acB = access(b);
    const co = coalesceDims(out.shape, [broadcastStrides(a.shape, out.shape), broadcastStrides(b.shape, out.shape)]);
    const p = new Params();
    const nAt = p.u(n);
    const rankAt = p.u(co.shape.length);
    const shapeAt = p.list(co.shape);
    const aAt = p.list(co.strides[0]!);
    const bAt = p.list(co.strides[1]!);
    const walk = acA === "strided" || acB === "strided";
    const index = (ac: string, name: string): string => (ac === "same" ? "e" : ac === "scalar" ? "0u" : name);
    const code = `${rawDecl(0, "A", "u32", false)}${rawDecl(1, "B", "u32", false)}${rawDecl(2, "LUT", "u32", false)}${rawDecl(3, "Y", "u32", true)}${paramsDecl(4)}
fn byteAt(w: u32, i: u32) -> u32 { return (w >> (8u * (i & 3u))) & 0xffu; }
${main1d(`  if (idx * 4u >= pu(${nAt}u)) { return; }
  var word = 0u;
  for (var j = 0u; j < 4u; j = j + 1u) {
    let e = idx * 4u + j;
    if (e >= pu(${nAt}u)) { break; }
    var oa = 0u;
    var ob = 0u;
    ${walk ? `var rem = e;
    for (var k = 0u; k < pu(${rankAt}u); k = k + 1u) {
      let d = pu(${rankAt}u) - 1u - k;
      let c = rem % pu(${shapeAt}u + d);
      rem = rem / pu(${shapeAt}u + d);
      oa = oa + c * pu(${aAt}u + d);
      ob = ob + c * pu(${bAt}u + d);
    }` : ""}
    let ia = ${index(acA, "oa")};
    let ib = ${index(acB, "ob")};
    let t = byteAt(A[ia >> 2u], ia) * 256u + byteAt(B[ib >> 2u], ib);
    word = word | (byteAt(LUT[t >> 2u], t) << (8u * j));
  }
  Y[idx] = word;`)}`;
    return { dispatches: [{ code, label: ctx.node.op, bindings: [{ input: 0 }, { input: 3 }, { buffer: table }, { output: 0 }], params: p.finish(), workgroups: grid1d(Math.ceil(n / 4)) }] };
  },
};

// ---- quantized cat (per-input remap table + concat gather) ------------------------------------

const CAT_MAX = 5;

export const quantizedCatKernel: GpuKernel = {
  ops: ["quantized_cat"],
  supports(q) {
    const parts = (q.node.inputs.length - 2) / 3;
    if (!Number.isInteger(parts) || parts < 1) return { reason: "quantized_cat: malformed inputs" };
    if (parts > CAT_MAX) return { reason: `quantized_cat of ${parts} inputs (the WGSL kernel reads up to ${CAT_MAX})` };
    const dyn = Array.from({ length: parts }, (_, j) => 2 + 3 * j);
    for (const i of dyn) if (!is8(q.inputs[i]?.dtype)) return { reason: "quantized_cat: the WGSL kernel takes int8/uint8 inputs" };
    const why = needStatic(q, dyn);
    if (why !== undefined) return { reason: why };
    return { kernel: "gather_cat_lut", note: "each input remapped to the output qparams by a table from the reference kernel" };
  },
  build(ctx) {
    const out = ctx.outputs[0]!;
    const parts = (ctx.node.inputs.length - 2) / 3;
    const ins = hostInputs(ctx);
    const r = out.shape.length;
    const dimAttr = ctx.attrs["dim"] as number;
    const axis = dimAttr < 0 ? dimAttr + r : dimAttr;
    // Remap tables: quantized_cat of one input over all codes.
    const tables = new Uint32Array(256 * parts);
    for (let j = 0; j < parts; j++) {
      const x = ctx.inputs[2 + 3 * j]!;
      const one = [ins[0], ins[1], undefined, ins[3 + 3 * j], ins[4 + 3 * j]];
      tables.set(unaryTable(ctx.node, { ...ctx.attrs, dim: 0 }, one, 2, x.dtype), 256 * j);
    }
    const table = ctx.constant("remap", () => tables);
    const inner = numel(out.shape.slice(axis + 1));
    const total = out.shape[axis]!;
    const p = new Params();
    const nAt = p.u(numel(out.shape));
    const innerAt = p.u(inner);
    const totalAt = p.u(total);
    let decls = "";
    const bindings: Binding[] = [];
    const branches: string[] = [];
    let offset = 0;
    for (let j = 0; j < parts; j++) {
      const x = ctx.inputs[2 + 3 * j]!;
      const len = x.shape[axis]!;
      decls += rawDecl(bindings.length, `in${j}`, "u32", false);
      bindings.push({ input: 2 + 3 * j });
      const lo = p.u(offset);
      const ln = p.u(len);
      branches.push(`  if (a >= pu(${lo}u) && a < pu(${lo}u) + pu(${ln}u)) { let s = (o * pu(${ln}u) + (a - pu(${lo}u))) * pu(${innerAt}u) + r; return R[${256 * j}u + ((in${j}[s >> 2u] >> (8u * (s & 3u))) & 0xffu)]; }`);
      offset += len;
    }
    decls += rawDecl(bindings.length, "R", "u32", false);
    bindings.push({ buffer: table });
    decls += rawDecl(bindings.length, "Y", "u32", true);
    bindings.push({ output: 0 });
    const code = `${decls}${paramsDecl(bindings.length)}
fn fetch(e: u32) -> u32 {
  let r = e % pu(${innerAt}u);
  let a = (e / pu(${innerAt}u)) % pu(${totalAt}u);
  let o = e / (pu(${innerAt}u) * pu(${totalAt}u));
${branches.join("\n")}
  return 0u;
}
${main1d(`  if (idx * 4u >= pu(${nAt}u)) { return; }
  var word = 0u;
  for (var j = 0u; j < 4u; j = j + 1u) {
    let e = idx * 4u + j;
    if (e < pu(${nAt}u)) { word = word | (fetch(e) << (8u * j)); }
  }
  Y[idx] = word;`)}`;
    return { dispatches: [{ code, label: "quantized_cat", bindings, params: p.finish(), workgroups: grid1d(Math.ceil(numel(out.shape) / 4)) }] };
  },
};

// ---- quantized max pool (max of codes, then a table) -----------------------------------------

export const quantizedMaxPoolKernel: GpuKernel = {
  ops: ["quantized_max_pool2d"],
  supports(q) {
    if (!is8(q.inputs[0]?.dtype)) return { reason: "quantized_max_pool2d: the WGSL kernel takes int8/uint8" };
    const why = needStatic(q, [0]);
    if (why !== undefined) return { reason: why };
    return { kernel: "pool_max_u8", note: "max of the codes (dequantization is increasing), then the reference's requantization as a table" };
  },
  build(ctx) {
    const x = ctx.inputs[0]!;
    const out = ctx.outputs[0]!;
    const pair = (v: unknown, fb: [number, number]): [number, number] => {
      const a = (v as number[] | undefined) ?? [];
      return a.length === 0 ? fb : a.length === 1 ? [a[0]!, a[0]!] : [a[0]!, a[1]!];
    };
    const k = pair(ctx.attrs["kernel_size"], [1, 1]);
    const s = pair(ctx.attrs["stride"], k);
    const pad = pair(ctx.attrs["padding"], [0, 0]);
    const d = pair(ctx.attrs["dilation"], [1, 1]);
    // Requantization of one code: the same op over a 1x1 window.
    const ins = hostInputs(ctx);
    ins[0] = tensor(x.dtype, [1, 1, 1, 256], unaryCodes(x.dtype));
    const lut = values(runWith(ctx.node, { ...ctx.attrs, kernel_size: [1, 1], stride: [1, 1], padding: [0, 0], dilation: [1, 1], ceil_mode: false }, ins));
    const table = ctx.constant("lut", () => Uint32Array.from(lut, (v) => v & 0xff));
    const r = x.shape.length;
    const [h, w] = [x.shape[r - 2]!, x.shape[r - 1]!];
    const [oh, ow] = [out.shape[r - 2]!, out.shape[r - 1]!];
    const n = numel(out.shape);
    const p = new Params();
    const at = p.list([n, h, w, oh, ow, k[0], k[1], s[0], s[1], d[0], d[1], pad[0], pad[1]]);
    const names = ["TOTAL", "H", "W", "OH", "OW", "KH", "KW", "SH", "SW", "DH", "DW", "PH", "PW"].map((nm, i) => `const ${nm} = ${at + i}u;`).join("\n");
    const code = `${rawDecl(0, "X", "u32", false)}${rawDecl(1, "LUT", "u32", false)}${rawDecl(2, "Y", "u32", true)}${paramsDecl(3)}${names}
${reader("X", x.dtype)}
fn pooled(e: u32) -> u32 {
  let ow = e % pu(OW);
  let oh = (e / pu(OW)) % pu(OH);
  let plane = e / (pu(OW) * pu(OH));
  var m = -1000;
  for (var a = 0u; a < pu(KH); a = a + 1u) {
    let ih = i32(oh * pu(SH) + a * pu(DH)) - i32(pu(PH));
    if (ih < 0 || ih >= i32(pu(H))) { continue; }
    for (var b = 0u; b < pu(KW); b = b + 1u) {
      let iw = i32(ow * pu(SW) + b * pu(DW)) - i32(pu(PW));
      if (iw < 0 || iw >= i32(pu(W))) { continue; }
      m = max(m, rd_X((plane * pu(H) + u32(ih)) * pu(W) + u32(iw)));
    }
  }
  return LUT[u32(m) & 0xffu];
}
${main1d(`  if (idx * 4u >= pu(TOTAL)) { return; }
  var word = 0u;
  for (var j = 0u; j < 4u; j = j + 1u) {
    let e = idx * 4u + j;
    if (e < pu(TOTAL)) { word = word | (pooled(e) << (8u * j)); }
  }
  Y[idx] = word;`)}`;
    return { dispatches: [{ code, label: "quantized_max_pool2d", bindings: [{ input: 0 }, { buffer: table }, { output: 0 }], params: p.finish(), workgroups: grid1d(Math.ceil(n / 4)) }] };
  },
};

function unaryCodes(dtype: DType): Int8Array | Uint8Array {
  if (dtype === "int8") return Int8Array.from({ length: 256 }, (_, b) => (b < 128 ? b : b - 256));
  return Uint8Array.from({ length: 256 }, (_, b) => b);
}

// ---- integer GEMM: pack to signed-byte words, dot4, requantize ---------------------------------

/** The zero point as the signed-byte operand sees it (uint8 codes are shifted by -128). */
function signedZp(dtype: DType, zp: number): number {
  return dtype === "uint8" ? zp - 128 : zp;
}

/** Packs a constant [rows, K] integer matrix (row-major) into signed-byte words [rows][K4], K padded with `pad`. */
function packRows(t: Tensor, rows: number, k: number, pad: number): Uint32Array {
  const k4 = Math.ceil(k / 4);
  const out = new Uint32Array(Math.max(1, rows * k4));
  const shift = t.dtype === "uint8" ? 128 : 0;
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < k4 * 4; i++) {
      const v = i < k ? getElement(t, r * k + i) - shift : pad;
      const w = r * k4 + (i >> 2);
      out[w] = (out[w]! | ((v & 0xff) << (8 * (i & 3)))) >>> 0;
    }
  }
  return out;
}

type PackMode =
  | { readonly kind: "rows"; readonly z: number; readonly r: number; readonly k: number }
  | { readonly kind: "cols"; readonly z: number; readonly r: number; readonly k: number }
  | { readonly kind: "im2col"; readonly g: Conv2dGeometry };

/** A dispatch packing input `input` (8-bit, `dtype`) into signed-byte words in scratch `into`. */
function packDispatch(input: number, dtype: DType, mode: PackMode, zp: number, into: string, words: number): DispatchSpec {
  const p = new Params();
  const k = mode.kind === "im2col" ? (mode.g.c / mode.g.group) * mode.g.kh * mode.g.kw : mode.k;
  const k4 = Math.ceil(k / 4);
  const r = mode.kind === "im2col" ? mode.g.oh * mode.g.ow : mode.r;
  const wordsAt = p.u(words);
  const kAt = p.u(k);
  const k4At = p.u(k4);
  const rAt = p.u(r);
  const padAt = p.i(zp);
  const geoAt = mode.kind === "im2col" ? geometryParams(p, mode.g) : 0;
  let src: string;
  if (mode.kind === "rows") src = `(z * pu(${rAt}u) + row) * pu(${kAt}u) + kk`;
  else if (mode.kind === "cols") src = `(z * pu(${kAt}u) + kk) * pu(${rAt}u) + row`;
  else src = "0u";
  const shift = dtype === "uint8" ? " - 128" : "";
  const fetch = mode.kind === "im2col"
    ? `  let khw = pu(G_KH) * pu(G_KW);
  let cg = pu(G_C) / pu(G_GROUP);
  let grp = z % pu(G_GROUP);
  let n = z / pu(G_GROUP);
  let c = kk / khw;
  let t = kk % khw;
  let ih = i32((row / pu(G_OW)) * pu(G_SH) + (t / pu(G_KW)) * pu(G_DH)) - pi(G_PH);
  let iw = i32((row % pu(G_OW)) * pu(G_SW) + (t % pu(G_KW)) * pu(G_DW)) - pi(G_PW);
  if (ih < 0 || iw < 0 || ih >= i32(pu(G_H)) || iw >= i32(pu(G_W))) { return pi(${padAt}u); }
  return rd_X(((n * pu(G_C) + grp * cg + c) * pu(G_H) + u32(ih)) * pu(G_W) + u32(iw))${shift};`
    : `  return rd_X(${src})${shift};`;
  const code = `${rawDecl(0, "X", "u32", false)}${rawDecl(1, "O", "u32", true)}${paramsDecl(2)}${PACK4}${mode.kind === "im2col" ? geometryNames(geoAt) : ""}
${reader("X", dtype)}
fn value(z: u32, row: u32, kk: u32) -> i32 {
${fetch}
}
${main1d(`  if (idx >= pu(${wordsAt}u)) { return; }
  let k4 = idx % pu(${k4At}u);
  let row = (idx / pu(${k4At}u)) % pu(${rAt}u);
  let z = idx / (pu(${k4At}u) * pu(${rAt}u));
  var v = vec4<i32>(pi(${padAt}u));
  for (var j = 0u; j < 4u; j = j + 1u) {
    let kk = k4 * 4u + j;
    if (kk < pu(${kAt}u)) { v[j] = value(z, row, kk); }
  }
  O[idx] = pack4(v);`)}`;
  return { code, label: `pack int8 (${mode.kind})`, bindings: [{ input }, { scratch: into, bytes: 4 * Math.max(1, words) }], params: p.finish(), workgroups: grid1d(words) };
}

/** Where the GEMM's A or B words come from. */
type Operand = { readonly scratch: string; readonly words: number } | { readonly buffer: GPUBuffer };

interface IntGemm {
  readonly a: Operand;
  readonly b: Operand;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  /** Output batch dims and, per dim, the A/B matrix strides (0 where broadcast). */
  readonly batch: readonly number[];
  readonly aBatchStrides: readonly number[];
  readonly bBatchStrides: readonly number[];
  /** Zero points (signed-byte domain) per A row / B column: the buffer and its strides over (az, m) / (bz, n). */
  readonly za: GPUBuffer;
  readonly zaStrides: readonly [number, number];
  readonly zb: GPUBuffer;
  readonly zbStrides: readonly [number, number];
  /** Accumulators go to the node's output 0 (int32 ops) or to scratch "acc". */
  readonly toOutput: boolean;
}

function operandBinding(o: Operand): Binding {
  return "buffer" in o ? { buffer: o.buffer } : { scratch: o.scratch, bytes: 4 * Math.max(1, o.words) };
}

/** The int32 GEMM dispatch: acc[z][m][n] = sum_k (a - za)(b - zb), four rows by four columns per invocation. */
function intGemmDispatch(g: IntGemm, packedDot: boolean): DispatchSpec {
  const k4 = Math.ceil(g.k / 4);
  const p = new Params();
  const mAt = p.u(g.m);
  const nAt = p.u(g.n);
  const k4At = p.u(k4);
  const rankAt = p.u(g.batch.length);
  const batchAt = p.list(g.batch);
  const asAt = p.list(g.aBatchStrides);
  const bsAt = p.list(g.bBatchStrides);
  const zaAt = p.list([...g.zaStrides]);
  const zbAt = p.list([...g.zbStrides]);
  const code = `${rawDecl(0, "A", "u32", false)}${rawDecl(1, "B", "u32", false)}${rawDecl(2, "ZA", "i32", false)}${rawDecl(3, "ZB", "i32", false)}${rawDecl(4, "ACC", "i32", true)}${paramsDecl(5)}
${dot4Fn(packedDot)}
@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let M = pu(${mAt}u);
  let N = pu(${nAt}u);
  let K4 = pu(${k4At}u);
  let z = gid.z;
  let gm = gid.y * 4u;
  let gn = gid.x * 4u;
  if (gm >= M || gn >= N) { return; }
  var rem = z;
  var az = 0u;
  var bz = 0u;
  for (var i = 0u; i < pu(${rankAt}u); i = i + 1u) {
    let d = pu(${rankAt}u) - 1u - i;
    let c = rem % pu(${batchAt}u + d);
    rem = rem / pu(${batchAt}u + d);
    az = az + c * pu(${asAt}u + d);
    bz = bz + c * pu(${bsAt}u + d);
  }
  let rows = min(vec4<u32>(gm, gm + 1u, gm + 2u, gm + 3u), vec4<u32>(M - 1u));
  let cols = min(vec4<u32>(gn, gn + 1u, gn + 2u, gn + 3u), vec4<u32>(N - 1u));
  let ar = (vec4<u32>(az * M) + rows) * K4;
  let bc = (vec4<u32>(bz * N) + cols) * K4;
  var d0 = vec4<i32>(0);
  var d1 = vec4<i32>(0);
  var d2 = vec4<i32>(0);
  var d3 = vec4<i32>(0);
  var sa = vec4<i32>(0);
  var sb = vec4<i32>(0);
  let ones = 0x01010101u;
  for (var k = 0u; k < K4; k = k + 1u) {
    let a = vec4<u32>(A[ar.x + k], A[ar.y + k], A[ar.z + k], A[ar.w + k]);
    let b = vec4<u32>(B[bc.x + k], B[bc.y + k], B[bc.z + k], B[bc.w + k]);
    d0 = d0 + vec4<i32>(dot4(a.x, b.x), dot4(a.x, b.y), dot4(a.x, b.z), dot4(a.x, b.w));
    d1 = d1 + vec4<i32>(dot4(a.y, b.x), dot4(a.y, b.y), dot4(a.y, b.z), dot4(a.y, b.w));
    d2 = d2 + vec4<i32>(dot4(a.z, b.x), dot4(a.z, b.y), dot4(a.z, b.z), dot4(a.z, b.w));
    d3 = d3 + vec4<i32>(dot4(a.w, b.x), dot4(a.w, b.y), dot4(a.w, b.z), dot4(a.w, b.w));
    sa = sa + vec4<i32>(dot4(a.x, ones), dot4(a.y, ones), dot4(a.z, ones), dot4(a.w, ones));
    sb = sb + vec4<i32>(dot4(b.x, ones), dot4(b.y, ones), dot4(b.z, ones), dot4(b.w, ones));
  }
  let za = vec4<i32>(ZA[az * pu(${zaAt}u) + rows.x * pu(${zaAt + 1}u)], ZA[az * pu(${zaAt}u) + rows.y * pu(${zaAt + 1}u)],
    ZA[az * pu(${zaAt}u) + rows.z * pu(${zaAt + 1}u)], ZA[az * pu(${zaAt}u) + rows.w * pu(${zaAt + 1}u)]);
  let zb = vec4<i32>(ZB[bz * pu(${zbAt}u) + cols.x * pu(${zbAt + 1}u)], ZB[bz * pu(${zbAt}u) + cols.y * pu(${zbAt + 1}u)],
    ZB[bz * pu(${zbAt}u) + cols.z * pu(${zbAt + 1}u)], ZB[bz * pu(${zbAt}u) + cols.w * pu(${zbAt + 1}u)]);
  // sum (a - za)(b - zb) over the padded K (pads of one operand equal its zero point: they add 0).
  let kp = i32(K4 * 4u);
  let dd = array<vec4<i32>, 4>(d0, d1, d2, d3);
  for (var r = 0u; r < 4u; r = r + 1u) {
    let m = gm + r;
    if (m >= M) { break; }
    let v = dd[r] - zb * sa[r] - za[r] * sb + vec4<i32>(kp * za[r]) * zb;
    for (var c = 0u; c < 4u; c = c + 1u) {
      if (gn + c < N) { ACC[(z * M + m) * N + gn + c] = v[c]; }
    }
  }
}
`;
  const zbinds: Binding[] = [operandBinding(g.a), operandBinding(g.b), { buffer: g.za }, { buffer: g.zb }];
  const out: Binding = g.toOutput ? { output: 0 } : { scratch: "acc", bytes: 4 * Math.max(1, numel(g.batch) * g.m * g.n) };
  return {
    code, label: "int8 gemm", bindings: [...zbinds, out], params: p.finish(),
    workgroups: [Math.ceil(g.n / 32), Math.ceil(g.m / 32), numel(g.batch)],
  };
}

/**
 * The requantization table of an op as one i32 buffer ([add, table] per channel, [fmin, fmax] per
 * table, then the thresholds) and the WGSL `fn requant(e: u32, acc: i32) -> i32` reading it from a
 * binding named RQ, with channel c = (e / inner) % C.
 */
function requantParts(ctx: BuildContext, rq: ChannelRequant, inner: number, channels: number, p: Params): { buffer: GPUBuffer; wgsl: string } {
  const size = rq.tables[0]!.size;
  const lo = rq.tables[0]!.lo;
  const words = new Int32Array(2 * channels + 2 * rq.tables.length + size * rq.tables.length);
  for (let c = 0; c < channels; c++) {
    words[2 * c] = rq.add[c]! | 0;
    words[2 * c + 1] = rq.tableOf[c]!;
  }
  const metaAt = 2 * channels;
  const tabAt = metaAt + 2 * rq.tables.length;
  rq.tables.forEach((t, i) => {
    words[metaAt + 2 * i] = t.fmin;
    words[metaAt + 2 * i + 1] = t.fmax;
    words.set(new Int32Array(t.words.buffer, t.words.byteOffset, t.words.length), tabAt + i * size);
  });
  const buffer = ctx.constant(`requant:${channels}:${inner}`, () => words);
  const innerAt = p.u(inner);
  const cAt = p.u(channels);
  const loAt = p.i(lo);
  const wgsl = `fn search(base: u32, v: i32) -> i32 {
  var pos = 0u;
  var s = ${size}u;
  loop {
    if (s <= 1u) { break; }
    s = s >> 1u;
    if (RQ[base + pos + s - 1u] <= v) { pos = pos + s; }
  }
  return i32(pos + select(0u, 1u, RQ[base + pos] <= v));
}
fn requant(e: u32, acc: i32) -> i32 {
  let c = (e / pu(${innerAt}u)) % pu(${cAt}u);
  let t = acc + RQ[2u * c];
  let tb = u32(RQ[2u * c + 1u]);
  let q = pi(${loAt}u) + search(${tabAt}u + tb * ${size}u, t);
  return clamp(q, RQ[${metaAt}u + 2u * tb], RQ[${metaAt}u + 2u * tb + 1u]);
}
`;
  return { buffer, wgsl };
}

/** The requantize dispatch: int32 accumulators (scratch "acc") to packed 8-bit outputs. */
function requantDispatch(ctx: BuildContext, rq: ChannelRequant, inner: number, channels: number): DispatchSpec {
  const out = ctx.outputs[0]!;
  const n = numel(out.shape);
  const p = new Params();
  const nAt = p.u(n);
  const parts = requantParts(ctx, rq, inner, channels, p);
  const code = `${rawDecl(0, "ACC", "i32", false)}${rawDecl(1, "RQ", "i32", false)}${rawDecl(2, "Y", "u32", true)}${paramsDecl(3)}${PACK4}
${parts.wgsl}
${main1d(`  if (idx * 4u >= pu(${nAt}u)) { return; }
  var q = vec4<i32>(0);
  for (var j = 0u; j < 4u; j = j + 1u) {
    let e = idx * 4u + j;
    if (e < pu(${nAt}u)) { q[j] = requant(e, ACC[e]); }
  }
  Y[idx] = pack4(q);`)}`;
  return { code, label: `${ctx.node.op} requantize`, bindings: [{ scratch: "acc", bytes: 4 * Math.max(1, n) }, { buffer: parts.buffer }, { output: 0 }], params: p.finish(), workgroups: grid1d(Math.ceil(n / 4)) };
}

/**
 * A grouped convolution with few output channels per group (depthwise) directly: one invocation
 * per output word, each output's taps summed as (x - x_zp) * (w - w_zp) in i32, then requantized
 * (or written as int32 for conv_integer).
 */
function directConvDispatch(ctx: BuildContext, geo: Conv2dGeometry, xAt: number, wAt: number, xZp: number, wZps: readonly number[], rq: ChannelRequant | undefined): DispatchSpec {
  const x = ctx.inputs[xAt]!;
  const w = ctx.inputs[wAt]!;
  const out = ctx.outputs[0]!;
  const n = numel(out.shape);
  const p = new Params();
  const nAt = p.u(n);
  const geoAt = geometryParams(p, geo);
  const xzAt = p.i(xZp);
  const zps = ctx.constant("wzp:direct", () => Int32Array.from(wZps.length === 1 ? new Array<number>(geo.m).fill(wZps[0]!) : wZps));
  const parts = rq === undefined ? undefined : requantParts(ctx, rq, geo.oh * geo.ow, geo.m, p);
  const accFn = `fn accAt(e: u32) -> i32 {
  let OW = pu(G_OW);
  let OH = pu(G_OH);
  let H = i32(pu(G_H));
  let W = i32(pu(G_W));
  let KH = pu(G_KH);
  let KW = pu(G_KW);
  let ow = e % OW;
  let oh = (e / OW) % OH;
  let oc = (e / (OW * OH)) % pu(G_M);
  let n = e / (OW * OH * pu(G_M));
  let cg = pu(G_C) / pu(G_GROUP);
  let grp = oc / (pu(G_M) / pu(G_GROUP));
  let ih0 = i32(oh * pu(G_SH)) - pi(G_PH);
  let iw0 = i32(ow * pu(G_SW)) - pi(G_PW);
  let xz = pi(${xzAt}u);
  let wz = WZ[oc];
  var acc = 0;
  for (var c = 0u; c < cg; c = c + 1u) {
    let xBase = i32((n * pu(G_C) + grp * cg + c) * pu(G_H) * pu(G_W));
    var wi = (oc * cg + c) * KH * KW;
    for (var a = 0u; a < KH; a = a + 1u) {
      let ih = ih0 + i32(a * pu(G_DH));
      if (ih < 0 || ih >= H) { wi = wi + KW; continue; }
      for (var b = 0u; b < KW; b = b + 1u) {
        let iw = iw0 + i32(b * pu(G_DW));
        if (iw >= 0 && iw < W) { acc = acc + (rd_X(u32(xBase + ih * W + iw)) - xz) * (rd_Wt(wi) - wz); }
        wi = wi + 1u;
      }
    }
  }
  return acc;
}
`;
  const decls = `${rawDecl(0, "X", "u32", false)}${rawDecl(1, "Wt", "u32", false)}${rawDecl(2, "WZ", "i32", false)}`;
  if (parts === undefined) {
    const code = `${decls}${rawDecl(3, "Y", "i32", true)}${paramsDecl(4)}${geometryNames(geoAt)}
${reader("X", x.dtype)}${reader("Wt", w.dtype)}${accFn}
${main1d(`  if (idx >= pu(${nAt}u)) { return; }
  Y[idx] = accAt(idx);`)}`;
    return { code, label: `${ctx.node.op} (direct)`, bindings: [{ input: xAt }, { input: wAt }, { buffer: zps }, { output: 0 }], params: p.finish(), workgroups: grid1d(n) };
  }
  const code = `${decls}${rawDecl(3, "RQ", "i32", false)}${rawDecl(4, "Y", "u32", true)}${paramsDecl(5)}${PACK4}${geometryNames(geoAt)}
${reader("X", x.dtype)}${reader("Wt", w.dtype)}${accFn}${parts.wgsl}
${main1d(`  if (idx * 4u >= pu(${nAt}u)) { return; }
  var q = vec4<i32>(0);
  for (var j = 0u; j < 4u; j = j + 1u) {
    let e = idx * 4u + j;
    if (e < pu(${nAt}u)) { q[j] = requant(e, accAt(e)); }
  }
  Y[idx] = pack4(q);`)}`;
  return {
    code, label: `${ctx.node.op} (direct)`, bindings: [{ input: xAt }, { input: wAt }, { buffer: zps }, { buffer: parts.buffer }, { output: 0 }],
    params: p.finish(), workgroups: grid1d(Math.ceil(n / 4)),
  };
}

/** Depthwise-like: grouped with few output channels per group. */
function isDirect(geo: Conv2dGeometry): boolean {
  return geo.group > 1 && geo.m / geo.group < 16;
}

function scalarOf(t: Tensor | undefined, fallback = 0): number {
  return t === undefined ? fallback : getElement(t, 0);
}

function zpBuffer(ctx: BuildContext, key: string, vals: readonly number[]): GPUBuffer {
  return ctx.constant(`zp:${key}`, () => Int32Array.from(vals.length === 0 ? [0] : vals));
}

function convPair(v: unknown): [number, number] {
  const a = v as number[];
  return a.length === 1 ? [a[0]!, a[0]!] : [a[0]!, a[1]!];
}

/** torch quantized_conv2d attrs -> the geometry the pack kernel reads. */
function torchConvGeometry(x: TensorType, w: TensorType, out: TensorType, attrs: Readonly<Record<string, unknown>>): Conv2dGeometry {
  const [sh, sw] = convPair(attrs["stride"]);
  const [ph, pw] = convPair(attrs["padding"]);
  const [dh, dw] = convPair(attrs["dilation"]);
  return {
    n: x.shape[0]!, c: x.shape[1]!, h: x.shape[2]!, w: x.shape[3]!, m: w.shape[0]!, kh: w.shape[2]!, kw: w.shape[3]!,
    oh: out.shape[2]!, ow: out.shape[3]!, sh, sw, ph, pw, dh, dw, group: (attrs["groups"] as number | undefined) ?? 1,
  };
}

/** A convolution as the integer GEMM: A = packed weights per group (constant), B = the im2col of x. */
function convDispatches(ctx: BuildContext, geo: Conv2dGeometry, xAt: number, wAt: number, xZp: number, wZps: readonly number[], toOutput: boolean): DispatchSpec[] {
  const x = ctx.inputs[xAt]!;
  const w = ctx.host(wAt)!;
  const mg = geo.m / geo.group;
  const k = (geo.c / geo.group) * geo.kh * geo.kw;
  const k4 = Math.ceil(k / 4);
  const p = geo.oh * geo.ow;
  const wWords = ctx.constant("weights", () => packRows(w, geo.m, k, 0));
  const zaVals = wZps.length === 1 ? [signedZp(w.dtype, wZps[0]!)] : wZps.map((z) => signedZp(w.dtype, z));
  const zbVal = signedZp(x.dtype, xZp);
  const bWords = geo.n * geo.group * p * k4;
  return [
    packDispatch(xAt, x.dtype, { kind: "im2col", g: geo }, zbVal, "cols", bWords),
    intGemmDispatch({
      a: { buffer: wWords }, b: { scratch: "cols", words: bWords }, m: mg, n: p, k,
      batch: [geo.n, geo.group], aBatchStrides: [0, 1], bBatchStrides: [geo.group, 1],
      za: zpBuffer(ctx, "w", zaVals), zaStrides: zaVals.length === 1 ? [0, 0] : [mg, 1],
      zb: zpBuffer(ctx, `x:${zbVal}`, [zbVal]), zbStrides: [0, 0], toOutput,
    }, ctx.caps.packedDot),
  ];
}

function intSupport(q: SupportQuery, dynamic: readonly number[], weight?: number): string | undefined {
  for (const i of dynamic) if (!is8(q.inputs[i]?.dtype)) return `${q.node.op}: the WGSL kernel takes int8/uint8 activations, got ${String(q.inputs[i]?.dtype)}`;
  if (weight !== undefined && !is8(q.inputs[weight]?.dtype)) return `${q.node.op}: the WGSL kernel takes int8/uint8 weights`;
  return needStatic(q, dynamic);
}

const dotNote = (q: SupportQuery): string => (q.caps.packedDot ? "int8 GEMM with dot4I8Packed" : "int8 GEMM, dot4 unpacked (no packed_4x8_integer_dot_product)");

/** torch quantized_conv2d (qnnpack / onednn requantization). */
export const quantizedConv2dKernel: GpuKernel = {
  ops: ["quantized_conv2d"],
  supports(q) {
    const why = intSupport(q, [0], 3);
    if (why !== undefined) return { reason: why };
    if (q.inputs[0]?.shape.length !== 4) return { reason: "quantized_conv2d: 4-D input" };
    const w = q.inputs[3]!;
    const g = q.attrs["groups"] as number;
    if (g > 1 && typeof w.shape[0] === "number" && w.shape[0] / g < 16) return { kernel: "qconv2d_direct", note: "depthwise: taps summed in i32 per output, requantized in place" };
    return { kernel: `qconv2d_${q.caps.packedDot ? "dot4" : "unpacked"}`, note: dotNote(q) };
  },
  build(ctx) {
    const x = ctx.inputs[0]!;
    const geo = torchConvGeometry(x, ctx.inputs[3]!, ctx.outputs[0]!, ctx.attrs);
    const wZps = values(ctx.host(5));
    const rq = torchRequant({
      engine: ctx.attrs["engine"] as "qnnpack" | "onednn", xDType: x.dtype, xScale: scalarOf(ctx.host(1)), wScales: ctx.host(4)!, bias: ctx.host(6),
      yScale: scalarOf(ctx.host(7)), yZeroPoint: scalarOf(ctx.host(8)), fuseRelu: ctx.attrs["fuse_relu"] === true, channels: geo.m,
    });
    if (isDirect(geo)) return { dispatches: [directConvDispatch(ctx, geo, 0, 3, scalarOf(ctx.host(2)), wZps, rq)] };
    return { dispatches: [...convDispatches(ctx, geo, 0, 3, scalarOf(ctx.host(2)), wZps, false), requantDispatch(ctx, rq, geo.oh * geo.ow, geo.m)] };
  },
};

/** ONNX QLinearConv and ConvInteger. */
export const qlinearConvKernel: GpuKernel = {
  ops: ["qlinear_conv", "conv_integer"],
  supports(q) {
    const why = intSupport(q, [0], q.node.op === "qlinear_conv" ? 3 : 1);
    if (why !== undefined) return { reason: why };
    const r = q.inputs[0]?.shape.length;
    if (r !== 3 && r !== 4) return { reason: `${q.node.op} of rank ${String(r)} (the WGSL kernel does 1-D and 2-D)` };
    const w = q.inputs[q.node.op === "qlinear_conv" ? 3 : 1]!;
    const g = q.attrs["group"] as number;
    const direct = g > 1 && typeof w.shape[0] === "number" && w.shape[0] / g < 16;
    return { kernel: `${q.node.op}_${direct ? "direct" : q.caps.packedDot ? "dot4" : "unpacked"}`, note: direct ? "depthwise: taps summed in i32 per output" : dotNote(q) };
  },
  build(ctx) {
    const qlinear = ctx.node.op === "qlinear_conv";
    const wAt = qlinear ? 3 : 1;
    const geo = onnxConvGeometry(ctx, 0, wAt);
    const xZp = scalarOf(ctx.host(qlinear ? 2 : 2));
    const wZps = values(ctx.host(qlinear ? 5 : 3));
    if (!qlinear) {
      const zps = wZps.length === 0 ? [0] : wZps;
      return { dispatches: isDirect(geo) ? [directConvDispatch(ctx, geo, 0, 1, xZp, zps, undefined)] : convDispatches(ctx, geo, 0, 1, xZp, zps, true) };
    }
    const wScales = values(ctx.host(4));
    const bias = ctx.host(8) === undefined ? undefined : values(ctx.host(8));
    const rq = onnxRequant(scalarOf(ctx.host(1)), wScales.length === 1 ? new Array<number>(geo.m).fill(wScales[0]!) : wScales,
      scalarOf(ctx.host(6)), scalarOf(ctx.host(7)), ctx.host(7)!.dtype, bias);
    if (isDirect(geo)) return { dispatches: [directConvDispatch(ctx, geo, 0, 3, xZp, wZps, rq)] };
    return { dispatches: [...convDispatches(ctx, geo, 0, 3, xZp, wZps, false), requantDispatch(ctx, rq, geo.oh * geo.ow, geo.m)] };
  },
};

/** torch quantized_linear: A = packed activations (rows), B = the constant weight [N, K]. */
export const quantizedLinearKernel: GpuKernel = {
  ops: ["quantized_linear"],
  supports(q) {
    const why = intSupport(q, [0], 3);
    if (why !== undefined) return { reason: why };
    return { kernel: `qlinear_${q.caps.packedDot ? "dot4" : "unpacked"}`, note: dotNote(q) };
  },
  build(ctx) {
    const x = ctx.inputs[0]!;
    const w = ctx.host(3)!;
    const [n, k] = [w.shape[0]!, w.shape[1]!];
    const rows = numel(x.shape) / k;
    const k4 = Math.ceil(k / 4);
    const xZp = signedZp(x.dtype, scalarOf(ctx.host(2)));
    const wZps = values(ctx.host(5)).map((z) => signedZp(w.dtype, z));
    const wWords = ctx.constant("weights", () => packRows(w, n, k, 0));
    const rq = torchRequant({
      engine: ctx.attrs["engine"] as "qnnpack" | "onednn", xDType: x.dtype, xScale: scalarOf(ctx.host(1)), wScales: ctx.host(4)!, bias: ctx.host(6),
      yScale: scalarOf(ctx.host(7)), yZeroPoint: scalarOf(ctx.host(8)), fuseRelu: ctx.attrs["fuse_relu"] === true, channels: n,
    });
    const aWords = rows * k4;
    return {
      dispatches: [
        packDispatch(0, x.dtype, { kind: "rows", z: 1, r: rows, k }, xZp, "rows", aWords),
        intGemmDispatch({
          a: { scratch: "rows", words: aWords }, b: { buffer: wWords }, m: rows, n, k, batch: [1], aBatchStrides: [0], bBatchStrides: [0],
          za: zpBuffer(ctx, `x:${xZp}`, [xZp]), zaStrides: [0, 0], zb: zpBuffer(ctx, "w", wZps), zbStrides: [0, wZps.length === 1 ? 0 : 1], toOutput: false,
        }, ctx.caps.packedDot),
        requantDispatch(ctx, rq, 1, n),
      ],
    };
  },
};

/** ONNX QLinearMatMul and MatMulInteger with both operands at run time (numpy batching). */
export const qlinearMatmulKernel: GpuKernel = {
  ops: ["qlinear_matmul", "matmul_integer"],
  supports(q) {
    const qlinear = q.node.op === "qlinear_matmul";
    const aAt = 0;
    const bAt = qlinear ? 3 : 1;
    for (const i of [aAt, bAt]) if (!is8(q.inputs[i]?.dtype)) return { reason: `${q.node.op}: the WGSL kernel takes int8/uint8 operands` };
    const dyn = [aAt, bAt];
    const why = needStatic(q, dyn);
    if (why !== undefined) return { reason: why };
    // Per-row a/y qparams would need a table per (row, column): per-tensor a, y; b per tensor or per column.
    if (qlinear && (!oneElement(q, 1) || !oneElement(q, 2) || !oneElement(q, 6) || !oneElement(q, 7))) return { reason: "qlinear_matmul with per-row a or y qparams" };
    if (!qlinear && !oneElement(q, 2)) return { reason: "matmul_integer with per-row a_zero_point" };
    return { kernel: `${q.node.op}_${q.caps.packedDot ? "dot4" : "unpacked"}`, note: dotNote(q) };
  },
  build(ctx) {
    const qlinear = ctx.node.op === "qlinear_matmul";
    const a = ctx.inputs[0]!;
    const b = ctx.inputs[qlinear ? 3 : 1]!;
    const a2 = a.shape.length === 1 ? [1, a.shape[0]!] : [...a.shape];
    const b2 = b.shape.length === 1 ? [b.shape[0]!, 1] : [...b.shape];
    const m = a2[a2.length - 2]!;
    const k = a2[a2.length - 1]!;
    const n = b2[b2.length - 1]!;
    const aBatch = a2.slice(0, -2);
    const bBatch = b2.slice(0, -2);
    const rank = Math.max(aBatch.length, bBatch.length, 1);
    const batch: number[] = [];
    for (let i = 0; i < rank; i++) {
      const da = aBatch[i - (rank - aBatch.length)] ?? 1;
      const db = bBatch[i - (rank - bBatch.length)] ?? 1;
      batch.push(da === 1 ? db : da);
    }
    const matStrides = (dims: number[]): number[] => {
      const s = strides(dims);
      return batch.map((_, i) => {
        const j = i - (rank - dims.length);
        return j < 0 || dims[j] === 1 ? 0 : s[j]!;
      });
    };
    const za = signedZp(a.dtype, scalarOf(ctx.host(qlinear ? 2 : 2)));
    const zbRaw = values(ctx.host(qlinear ? 5 : 3));
    const zb = (zbRaw.length === 0 ? [0] : zbRaw).map((z) => signedZp(b.dtype, z));
    const k4 = Math.ceil(k / 4);
    const za_ = numel(aBatch);
    const zb_ = numel(bBatch);
    const aWords = za_ * m * k4;
    const bWords = zb_ * n * k4;
    const dispatches: DispatchSpec[] = [
      packDispatch(0, a.dtype, { kind: "rows", z: za_, r: m, k }, za, "a", aWords),
      packDispatch(qlinear ? 3 : 1, b.dtype, { kind: "cols", z: zb_, r: n, k }, zb.length === 1 ? zb[0]! : 0, "b", bWords),
      intGemmDispatch({
        a: { scratch: "a", words: aWords }, b: { scratch: "b", words: bWords }, m, n, k, batch,
        aBatchStrides: matStrides(aBatch), bBatchStrides: matStrides(bBatch),
        za: zpBuffer(ctx, `a:${za}`, [za]), zaStrides: [0, 0], zb: zpBuffer(ctx, "b", zb), zbStrides: [0, zb.length === 1 ? 0 : 1], toOutput: !qlinear,
      }, ctx.caps.packedDot),
    ];
    if (!qlinear) return { dispatches };
    const bScales = values(ctx.host(4));
    const rq = onnxRequant(scalarOf(ctx.host(1)), bScales.length === 1 ? new Array<number>(n).fill(bScales[0]!) : bScales,
      scalarOf(ctx.host(6)), scalarOf(ctx.host(7)), ctx.host(7)!.dtype, undefined);
    dispatches.push(requantDispatch(ctx, rq, 1, n));
    return { dispatches };
  },
};

