import {
  QforgeError, dtypeInfo, fromArray, inferNode,
  type AttrValue, type Constant, type DType, type Graph, type Node, type NodeMeta, type Tensor, type ValueType,
} from "@qforge/ir";
import { NameScope } from "../import/context.js";

/**
 * Turns the integer ops of a lowered PT2E program (`lowerQdq`: quantized_linear, quantized_conv2d,
 * quantized_add, ...; schemas in ir/ops/quantized.ts) back into the QDQ form convertPt2e writes:
 * dequantize_per_tensor / _per_channel of each quantized input, the float op(s), quantize_per_tensor
 * to the output qparams. That is the reference representation the integer op stands for
 * (torch/ao/quantization/pt2e/representation, "the integer op == quantize(f(dequantize(x)))"), and
 * ONNX expresses it with QuantizeLinear / DequantizeLinear; the QOperator form then fuses the
 * conv/matmul patterns back into QLinearConv / QLinearMatMul. A pure Graph -> Graph pass: the result
 * runs in the reference runtime like any converted program.
 */

/** 2^-23, torch.finfo(torch.float32).eps: the smallest scale dynamic qparams may take. */
const FLOAT32_EPS = 1.1920928955078125e-7;

/** The qparams torch picks for [0, 1] (sigmoid, hardsigmoid) and [-1, 1] (tanh) outputs: scale, zero point by dtype. */
const FIXED_QPARAMS: Readonly<Record<string, { scale: number; zp: Readonly<Record<string, number>> }>> = {
  quantized_sigmoid: { scale: 1 / 256, zp: { uint8: 0, int8: -128 } },
  quantized_hardsigmoid: { scale: 1 / 256, zp: { uint8: 0, int8: -128 } },
  quantized_tanh: { scale: 2 / 256, zp: { uint8: 128, int8: 0 } },
};

class Rebuild {
  readonly nodes: Node[] = [];
  readonly values: Record<string, ValueType>;
  readonly constants: Record<string, Constant>;
  private readonly names: NameScope;

  constructor(private readonly g: Graph) {
    this.values = { ...g.values };
    this.constants = { ...g.constants };
    this.names = new NameScope(new Set([...Object.keys(g.values), ...g.nodes.map((n) => n.name)]));
  }

  fresh(base: string): string {
    return this.names.fresh(base);
  }

  type(v: string): ValueType {
    const t = this.values[v];
    if (t === undefined) throw new QforgeError("DANGLING_INPUT", `value '${v}' is not defined`, { node: v });
    return t;
  }

  constantTensor(v: string): Tensor | undefined {
    return this.constants[v]?.tensor;
  }

  constant(t: Tensor, base: string): string {
    const v = this.fresh(base);
    this.constants[v] = { kind: "constant", tensor: t };
    this.values[v] = { dtype: t.dtype, shape: [...t.shape] };
    return v;
  }

  /** Adds a node (types through the op schema); `out` names its single output, else a fresh one. */
  node(op: string, inputs: readonly string[], attrs: Record<string, AttrValue>, base: string, meta: NodeMeta, out?: string, exactName = false): string {
    const name = exactName ? base : this.fresh(base);
    const output = out ?? this.fresh(`${base}_out`);
    const types = inputs.map((v) => (v === "" ? undefined : this.type(v)));
    const [t] = inferNode(op, name, types, attrs, 1, (i) => this.constants[inputs[i] ?? ""]?.tensor);
    this.values[output] = t!;
    this.nodes.push({ name, op, inputs: [...inputs], outputs: [output], attrs, meta });
    return output;
  }

  keep(n: Node): void {
    this.nodes.push(n);
  }

  build(): Graph {
    const used = new Set<string>([...this.g.outputs]);
    for (const n of this.nodes) for (const v of n.inputs) used.add(v);
    // Qparam constants only the replaced integer ops read are dropped with them.
    const constants: Record<string, Constant> = {};
    const values: Record<string, ValueType> = {};
    for (const [k, c] of Object.entries(this.constants)) if (used.has(k)) constants[k] = c;
    for (const [k, t] of Object.entries(this.values)) if (this.constants[k] === undefined || used.has(k)) values[k] = t;
    return { inputs: [...this.g.inputs], outputs: [...this.g.outputs], constants, nodes: this.nodes, values };
  }
}

/** Everything an unlowering needs: the graph under construction and the integer node being replaced. */
interface Site {
  readonly b: Rebuild;
  readonly n: Node;
  /** Dequantizes a per-tensor quantized input. */
  dq(x: string, scale: string, zp: string): string;
  /** Dequantizes a weight: per tensor for one scale, else per output channel (axis 0). */
  dqWeight(w: string, scale: string, zp: string): string;
  /** Quantizes the float result to the node's output value with the given qparams. */
  q(y: string, scale: string, zp: string): string;
  /** A float op on the way. */
  op(op: string, inputs: readonly string[], attrs?: Record<string, AttrValue>): string;
  fail(message: string): never;
}

function site(b: Rebuild, n: Node): Site {
  const meta: NodeMeta = { ...n.meta, unloweredFrom: n.name };
  // The first float op takes the integer node's name (free again: the node is replaced).
  let named = false;
  const full = (d: DType): Record<string, AttrValue> => ({ quant_min: dtypeInfo(d).min, quant_max: dtypeInfo(d).max, dtype: d });
  return {
    b, n,
    dq: (x, s, z) => b.node("dequantize_per_tensor", [x, s, z], full(b.type(x).dtype), `${n.name}_dq`, meta),
    dqWeight: (w, s, z) => {
      const perTensor = b.type(s).shape.every((d) => d === 1);
      return perTensor
        ? b.node("dequantize_per_tensor", [w, s, z], full(b.type(w).dtype), `${n.name}_dq_w`, meta)
        : b.node("dequantize_per_channel", [w, s, z], { axis: 0, ...full(b.type(w).dtype) }, `${n.name}_dq_w`, meta);
    },
    q: (y, s, z) => b.node("quantize_per_tensor", [y, s, z], full(b.type(n.outputs[0]!).dtype), `${n.name}_q`, meta, n.outputs[0]!),
    op: (op, inputs, attrs = {}) => {
      const exact = !named;
      named = true;
      return b.node(op, inputs, attrs, n.name, meta, undefined, exact);
    },
    fail: (message) => {
      throw new QforgeError("UNSUPPORTED", `${n.op}: ${message}`, { node: n.name });
    },
  };
}

const pair = (v: AttrValue | undefined, fallback: readonly number[]): number[] => {
  const a = Array.isArray(v) ? (v as number[]) : [...fallback];
  return a.length === 1 ? [a[0]!, a[0]!] : [...a];
};

/** A fused relu of quantized_linear/conv2d/add/mul: relu before the output quantize. */
const maybeRelu = (s: Site, y: string): string => (s.n.attrs.fuse_relu === true ? s.op("relu", [y]) : y);

/** The output qparams of a quantized unary op: given, else the input's or torch's fixed ones. */
function unaryOutput(s: Site): [string, string] {
  const [, xs, xz, ys = "", yz = ""] = s.n.inputs;
  if (ys !== "" && yz !== "") return [ys, yz];
  const fixed = FIXED_QPARAMS[s.n.op];
  if (fixed === undefined) return [xs!, xz!];
  const dtype = s.b.type(s.n.inputs[0]!).dtype;
  const zp = fixed.zp[dtype];
  if (zp === undefined) s.fail(`has no fixed output qparams for ${dtype}`);
  return [s.b.constant(fromArray("float32", [], [fixed.scale]), `${s.n.name}_y_scale`), s.b.constant(fromArray("int32", [], [zp]), `${s.n.name}_y_zero_point`)];
}

function unary(f: (s: Site, x: string) => string): (s: Site) => void {
  return (s) => {
    const [x, xs, xz] = s.n.inputs as [string, string, string];
    const [ys, yz] = unaryOutput(s);
    s.q(f(s, s.dq(x, xs, xz)), ys, yz);
  };
}

function require4d(s: Site): void {
  const r = s.b.type(s.n.inputs[0]!).shape.length;
  if (r !== 4) s.fail(`a ${r}-D input has no ONNX pooling form here (only [N, C, H, W])`);
}

const UNLOWER: ReadonlyMap<string, (s: Site) => void> = new Map<string, (s: Site) => void>([
  ["quantized_linear", (s) => {
    const [x, xs, xz, w, ws, wz, bias = "", ys, yz] = s.n.inputs as string[];
    const y = s.op("linear", [s.dq(x!, xs!, xz!), s.dqWeight(w!, ws!, wz!), bias]);
    s.q(maybeRelu(s, y), ys!, yz!);
  }],
  ["quantized_conv2d", (s) => {
    const [x, xs, xz, w, ws, wz, bias = "", ys, yz] = s.n.inputs as string[];
    const [ph, pw] = pair(s.n.attrs.padding, [0, 0]);
    const attrs = {
      strides: pair(s.n.attrs.stride, [1, 1]), pads: [ph!, pw!, ph!, pw!], dilations: pair(s.n.attrs.dilation, [1, 1]),
      group: (s.n.attrs.groups as number | undefined) ?? 1,
    };
    const y = s.op("conv", [s.dq(x!, xs!, xz!), s.dqWeight(w!, ws!, wz!), bias], attrs);
    s.q(maybeRelu(s, y), ys!, yz!);
  }],
  ["dynamic_quantized_linear", (s) => {
    // linear_dynamic quantizes x to quint8 over [0, 255] ([0, 127] on onednn with reduce_range).
    const [x, w, ws, wz, bias = ""] = s.n.inputs as string[];
    const reduce = s.n.attrs.engine === "onednn" && s.n.attrs.reduce_range !== false;
    const range = { quant_min: 0, quant_max: reduce ? 127 : 255, dtype: "uint8" };
    const meta: NodeMeta = { ...s.n.meta, unloweredFrom: s.n.name };
    const chooseName = s.b.fresh(`${s.n.name}_choose_qparams`);
    const [scale, zp] = [s.b.fresh(`${s.n.name}_x_scale`), s.b.fresh(`${s.n.name}_x_zero_point`)];
    const attrs = { ...range, eps: FLOAT32_EPS, qscheme: "per_tensor_affine" };
    const types = inferNode("choose_qparams_per_tensor", chooseName, [s.b.type(x!)], attrs, 2);
    s.b.values[scale] = types[0]!;
    s.b.values[zp] = types[1]!;
    s.b.keep({ name: chooseName, op: "choose_qparams_per_tensor", inputs: [x!], outputs: [scale, zp], attrs, meta });
    const q = s.b.node("quantize_per_tensor", [x!, scale, zp], range, `${s.n.name}_q_x`, meta);
    const xf = s.b.node("dequantize_per_tensor", [q, scale, zp], range, `${s.n.name}_dq_x`, meta);
    s.b.node("linear", [xf, s.dqWeight(w!, ws!, wz!), bias], {}, s.n.name, meta, s.n.outputs[0]!, true);
  }],
  ["quantized_add", (s) => binary(s, "add")],
  ["quantized_mul", (s) => binary(s, "mul")],
  ["quantized_cat", (s) => {
    const [ys, yz, ...rest] = s.n.inputs as string[];
    const xs: string[] = [];
    for (let i = 0; i < rest.length; i += 3) xs.push(s.dq(rest[i]!, rest[i + 1]!, rest[i + 2]!));
    s.q(s.op("concat", xs, { axis: (s.n.attrs.dim as number | undefined) ?? 0 }), ys!, yz!);
  }],
  ["quantized_relu", unary((s, x) => s.op("relu", [x]))],
  ["quantized_hardswish", unary((s, x) => s.op("hardswish", [x]))],
  ["quantized_sigmoid", unary((s, x) => s.op("sigmoid", [x]))],
  ["quantized_hardsigmoid", unary((s, x) => s.op("hard_sigmoid", [x], { alpha: 1 / 6, beta: 0.5 }))],
  ["quantized_tanh", unary((s, x) => s.op("tanh", [x]))],
  ["quantized_leaky_relu", unary((s, x) => s.op("leaky_relu", [x], { alpha: (s.n.attrs.negative_slope as number | undefined) ?? 0.01 }))],
  ["quantized_hardtanh", unary((s, x) => {
    const bound = (a: string, d: number): string => s.b.constant(fromArray("float32", [], [(s.n.attrs[a] as number | undefined) ?? d]), `${s.n.name}_${a}`);
    return s.op("clip", [x, bound("min_val", -1), bound("max_val", 1)]);
  })],
  ["quantized_max_pool2d", unary((s, x) => {
    require4d(s);
    const k = pair(s.n.attrs.kernel_size, []);
    const stride = pair((s.n.attrs.stride as number[] | undefined)?.length ? s.n.attrs.stride : k, k);
    const [ph, pw] = pair(s.n.attrs.padding, [0, 0]);
    return s.op("max_pool", [x], {
      kernel_shape: k, strides: stride, pads: [ph!, pw!, ph!, pw!], dilations: pair(s.n.attrs.dilation, [1, 1]),
      ceil_mode: s.n.attrs.ceil_mode === true ? 1 : 0,
    });
  })],
  ["quantized_avg_pool2d", unary((s, x) => {
    require4d(s);
    if (((s.n.attrs.divisor_override as number | undefined) ?? 0) !== 0) s.fail("divisor_override has no ONNX AveragePool form");
    const k = pair(s.n.attrs.kernel_size, []);
    const stride = pair((s.n.attrs.stride as number[] | undefined)?.length ? s.n.attrs.stride : k, k);
    const [ph, pw] = pair(s.n.attrs.padding, [0, 0]);
    return s.op("average_pool", [x], {
      kernel_shape: k, strides: stride, pads: [ph!, pw!, ph!, pw!], ceil_mode: s.n.attrs.ceil_mode === true ? 1 : 0,
      count_include_pad: s.n.attrs.count_include_pad === false ? 0 : 1,
    });
  })],
  ["quantized_adaptive_avg_pool2d", unary((s, x) => s.op("adaptive_avg_pool2d", [x], { output_size: pair(s.n.attrs.output_size, []) }))],
  ["quantized_mean", unary((s, x) => {
    const dims = s.n.attrs.dim as number[];
    const axes = s.b.constant(fromArray("int64", [dims.length], dims), `${s.n.name}_axes`);
    return s.op("reduce_mean", [x, axes], { keepdims: s.n.attrs.keepdim === true ? 1 : 0 });
  })],
  ["quantized_upsample_nearest2d", unary((s, x) => {
    // torch's legacy nearest: src = floor(dst * in / out) (or dst / scale_factor) = ONNX Resize
    // nearest with coordinate_transformation_mode asymmetric and nearest_mode floor.
    const t = s.b.type(x);
    const rank = t.shape.length;
    const attrs = { mode: "nearest", coordinate_transformation_mode: "asymmetric", nearest_mode: "floor" };
    const sf = s.n.attrs.scale_factor as number[] | undefined;
    if (sf !== undefined) {
      const [sh, sw] = pair(sf, []);
      const scales = s.b.constant(fromArray("float32", [rank], [...new Array<number>(rank - 2).fill(1), sh!, sw!]), `${s.n.name}_scales`);
      return s.op("resize", [x, "", scales], attrs);
    }
    const size = pair(s.n.attrs.output_size, []);
    const lead = t.shape.slice(0, -2);
    if (lead.some((d) => typeof d !== "number")) {
      const sizes = s.b.constant(fromArray("int64", [2], size), `${s.n.name}_sizes`);
      return s.op("resize", [x, "", "", sizes], { ...attrs, axes: [rank - 2, rank - 1] });
    }
    const sizes = s.b.constant(fromArray("int64", [rank], [...(lead as number[]), ...size]), `${s.n.name}_sizes`);
    return s.op("resize", [x, "", "", sizes], attrs);
  })],
]);

function binary(s: Site, op: "add" | "mul"): void {
  const [a, as, az, b, bs, bz, ys, yz] = s.n.inputs as string[];
  s.q(maybeRelu(s, s.op(op, [s.dq(a!, as!, az!), s.dq(b!, bs!, bz!)])), ys!, yz!);
}

/** The integer ops unlowerQuantizedOps rewrites. */
export const UNLOWERED_OPS: ReadonlySet<string> = new Set(UNLOWER.keys());

/** The lowered program's integer ops as QDQ (see the file comment); graphs without them are returned as they are. */
export function unlowerQuantizedOps(g: Graph): Graph {
  if (!g.nodes.some((n) => UNLOWER.has(n.op))) return g;
  const b = new Rebuild(g);
  for (const n of g.nodes) {
    const f = UNLOWER.get(n.op);
    if (f === undefined) b.keep(n);
    else f(site(b, n));
  }
  return b.build();
}
