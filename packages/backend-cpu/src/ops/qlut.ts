/**
 * Per-tensor quantized elementwise ops as lookup tables. With constant qparams, the output byte of
 * quantized_hardswish / sigmoid / add / mul / ... depends only on the input byte(s), so the table is
 * built once at compile time by running the reference kernel itself on every possible input (256
 * values, or 65536 pairs for binary ops): the fast path is bit-identical to the reference by
 * construction, whatever the op's float arithmetic. dequantize_per_tensor becomes a 256-entry
 * float table the same way. Binary ops broadcast like numpy at run time.
 */
import { tensor, type DType, type Node, type Tensor } from "@qforge/ir";
import { runOp } from "@qforge/runtime";
import { skip, type LowerContext, type Lowering } from "../lower.js";
import { broadcastRows, broadcastShape } from "./js.js";

/** All 256 bytes as a tensor of dtype (uint8, or int8 read from the same bits). */
function allBytes(dtype: "uint8" | "int8", n: number, byteOf: (i: number) => number): Tensor {
  const raw = Uint8Array.from({ length: n }, (_, i) => byteOf(i));
  return tensor(dtype, [n], dtype === "uint8" ? raw : new Int8Array(raw.buffer));
}

function is8(d: DType | undefined): d is "uint8" | "int8" {
  return d === "uint8" || d === "int8";
}

/** Every input but the data inputs must be a constant (the qparams). */
function constants(node: Node, ctx: LowerContext, data: readonly number[]): (Tensor | undefined)[] | undefined {
  const out: (Tensor | undefined)[] = [];
  for (let i = 0; i < node.inputs.length; i++) {
    const v = node.inputs[i]!;
    if (data.includes(i) || v === "") {
      out.push(undefined);
      continue;
    }
    const t = ctx.constant(v);
    if (t === undefined) return undefined;
    out.push(t);
  }
  return out;
}

/** The output bytes (or floats) of the reference kernel on the given data inputs. */
function reference(node: Node, consts: (Tensor | undefined)[], data: Record<number, Tensor>): Tensor | string {
  const inputs = consts.map((c, i) => data[i] ?? c);
  try {
    return runOp(node.op, inputs, { ...node.attrs }, { numOutputs: 1, node: node.name })[0]!;
  } catch (e) {
    return `the reference kernel rejects this node (${e instanceof Error ? e.message.split("\n")[0] : String(e)})`;
  }
}

function bytesOf(t: Tensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** The ops whose 256-entry table unaryLut builds. */
export const LUT_UNARY_OPS: ReadonlySet<string> = new Set([
  "quantized_hardswish", "quantized_sigmoid", "quantized_hardsigmoid", "quantized_tanh", "quantized_relu", "quantized_leaky_relu",
  "quantized_hardtanh", "dequantize_per_tensor",
]);

/** The reference kernel's output for every input byte of a unary node, or why there is none. */
export function unaryTable(node: Node, ctx: LowerContext): Tensor | string {
  const xd = ctx.dtype(node.inputs[0]!);
  if (!is8(xd)) return `inputs of dtype ${String(xd)}`;
  const consts = constants(node, ctx, [0]);
  if (consts === undefined) return "the qparams are not constants";
  return reference(node, consts, { 0: allBytes(xd, 256, (i) => i) });
}

/** The raw output bytes of a table (as unsigned). */
export function tableBytes(t: Tensor): Uint8Array {
  return Uint8Array.from(bytesOf(t));
}

/** Unary ops with one 8-bit data input (index 0) and constant qparams. */
const unaryLut: Lowering = (node, ctx) => {
  const table = unaryTable(node, ctx);
  if (typeof table === "string") return skip(table);
  const outDType = table.dtype;
  const float = outDType === "float32";
  if (!float && !is8(outDType)) return skip(`outputs of dtype ${outDType}`);
  const lut8 = float ? undefined : Uint8Array.from(bytesOf(table));
  const lutF = float ? Float32Array.from(table.data as Float32Array) : undefined;
  return {
    kernel: "js_lut256",
    tier: "js",
    note: "256-entry table built from the reference kernel",
    inputs: [node.inputs[0]!],
    run([xt], rc) {
      const x = xt!;
      const src = bytesOf(x);
      const out = rc.alloc(outDType, x.shape);
      if (lutF !== undefined) {
        const o = out.data as Float32Array;
        for (let i = 0; i < src.length; i++) o[i] = lutF[src[i]!]!;
      } else {
        const o = bytesOf(out);
        for (let i = 0; i < src.length; i++) o[i] = lut8![src[i]!]!;
      }
      return [out];
    },
  };
};

/** Binary ops with 8-bit data inputs at 0 and 3 (a, a_scale, a_zp, b, b_scale, b_zp, ...). */
const binaryLut: Lowering = (node, ctx) => {
  const ad = ctx.dtype(node.inputs[0]!);
  const bd = ctx.dtype(node.inputs[3]!);
  if (!is8(ad) || !is8(bd)) return skip(`inputs of dtype ${String(ad)}/${String(bd)}`);
  const consts = constants(node, ctx, [0, 3]);
  if (consts === undefined) return skip("the qparams are not constants");
  const table = reference(node, consts, { 0: allBytes(ad, 65536, (i) => i >> 8), 3: allBytes(bd, 65536, (i) => i & 255) });
  if (typeof table === "string") return skip(table);
  if (!is8(table.dtype)) return skip(`outputs of dtype ${table.dtype}`);
  const outDType = table.dtype;
  const lut = Uint8Array.from(bytesOf(table));
  return {
    kernel: "js_lut65536",
    tier: "js",
    note: "256x256 table built from the reference kernel",
    inputs: [node.inputs[0]!, node.inputs[3]!],
    run([at, bt], rc) {
      const a = at!;
      const b = bt!;
      const shape = broadcastShape(a.shape, b.shape);
      if (shape === undefined) return runOp(node.op, [a, ...consts.slice(1, 3), b, ...consts.slice(4)], { ...node.attrs }, { node: node.name });
      const out = rc.alloc(outDType, shape);
      const x = bytesOf(a);
      const y = bytesOf(b);
      const o = bytesOf(out);
      broadcastRows(shape, a.shape, b.shape, (oo, ia, ib, sa, sb, len) => {
        if (sa === 1 && sb === 1) for (let i = 0; i < len; i++) o[oo + i] = lut[(x[ia + i]! << 8) | y[ib + i]!]!;
        else if (sa === 1 && sb === 0) {
          const row = y[ib]!;
          for (let i = 0; i < len; i++) o[oo + i] = lut[(x[ia + i]! << 8) | row]!;
        } else for (let i = 0; i < len; i++) o[oo + i] = lut[(x[ia + i * sa]! << 8) | y[ib + i * sb]!]!;
      });
      return [out];
    },
  };
};

/** 1.5 * 2^52: adding and subtracting it rounds a double to an integer, ties to even (@qforge/quant float32.ts). */
const RINT_MAGIC = 6755399441055744;
const TWO_63 = 9223372036854775808;

/**
 * quantize_per_tensor (quantized_decomposed) from float32 to uint8/int8: the loop of @qforge/quant's
 * quantizePerTensor (ATen quantize_val: q = int64(f32(zp + rint(f32(x * f32(1 / f32(scale)))))),
 * saturated to the dtype), then the [quant_min, quant_max] clamp of the reference kernel.
 */
const quantizePerTensor: Lowering = (node, ctx) => {
  if (ctx.dtype(node.inputs[0]!) !== "float32") return skip("float32 input only");
  const a = node.attrs;
  const dtype = a["dtype"] as string;
  if (dtype !== "uint8" && dtype !== "int8") return skip(`dtype ${dtype}`);
  const scaleT = ctx.constant(node.inputs[1]);
  const zpT = ctx.constant(node.inputs[2]);
  if (scaleT === undefined || zpT === undefined || scaleT.data.length !== 1 || zpT.data.length !== 1) return skip("qparams that are not constant scalars");
  const scale = Number((scaleT.data as ArrayLike<number>)[0]);
  const zp = Number((zpT.data as ArrayLike<number>)[0]);
  const full: [number, number] = dtype === "uint8" ? [0, 255] : [-128, 127];
  const qmin = (a["quant_min"] as number | undefined) ?? full[0];
  const qmax = (a["quant_max"] as number | undefined) ?? full[1];
  if (!(scale > 0) || !Number.isFinite(scale) || !Number.isInteger(zp) || zp < full[0] || zp > full[1]) return skip("invalid qparams (the reference reports them)");
  const inv = Math.fround(1 / Math.fround(scale));
  const lo = Math.max(full[0], qmin);
  const hi = Math.min(full[1], qmax);
  return {
    kernel: "js_quantize_per_tensor",
    tier: "js",
    inputs: [node.inputs[0]!],
    run([xt], rc) {
      const x = xt!;
      const src = x.data as Float32Array;
      const out = rc.alloc(dtype, x.shape);
      const dst = out.data as Uint8Array | Int8Array;
      for (let i = 0; i < src.length; i++) {
        const v = Math.fround(src[i]! * inv);
        const qf = Math.fround(zp + (v + RINT_MAGIC - RINT_MAGIC));
        let q = qf >= full[0] ? (qf <= full[1] ? qf : qf < TWO_63 ? full[1] : full[0]) : full[0];
        if (q < lo) q = lo;
        else if (q > hi) q = hi;
        dst[i] = q;
      }
      return [out];
    },
  };
};

export const LUT_LOWERINGS: ReadonlyMap<string, Lowering> = new Map<string, Lowering>([
  ...[...LUT_UNARY_OPS].map((op): [string, Lowering] => [op, unaryLut]),
  ["quantize_per_tensor", quantizePerTensor],
  ["quantized_add", binaryLut],
  ["quantized_mul", binaryLut],
]);
