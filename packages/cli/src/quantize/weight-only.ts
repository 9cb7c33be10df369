/**
 * Weight-only quantization: the constant weight of each conv / linear / gemm / matmul is stored as
 * int8 or int4 and dequantized in the graph (`dequantize_linear`, ONNX DequantizeLinear), while
 * activations and the op itself stay float — torchao's `quantize_(model, Int8WeightOnlyConfig())` /
 * `Int4WeightOnlyConfig(group_size)` / `IntxWeightOnlyConfig`, and ONNX Runtime's weight-only
 * quantizers (MatMulNBits' DequantizeLinear form with `block_size`, opset 21).
 *
 * Per weight: symmetric qparams (torchao `choose_qparams_affine` with MappingType.SYMMETRIC over the
 * full int8 [-128, 127] / int4 [-8, 7] range, zero point 0), either per output channel (group size 0)
 * or per group of `groupSize` consecutive elements along the reduction axis (the input-channel axis
 * of a conv or linear weight, K of a matmul B), which is ONNX's blocked DequantizeLinear: the scale
 * has the weight's shape with that axis divided by the block size (rounded up); a group at least as
 * long as an output channel's whole reduction is per-channel. Then
 * `quantize_affine` / `dequantize_affine` give the stored integers and the per-layer SQNR.
 */
import { produce, type Draft } from "immer";
import { fromArray, numel, QforgeError, tensor, toNumbers, verifyGraph, type ExportedProgram, type Graph, type Node, type Tensor } from "@qforge/ir";
import { chooseQParamsAffine, dequantizeAffine, MappingType, quantizeAffine, ZeroPointDomain } from "@qforge/quant";

export interface WeightOnlyOptions {
  /** 8 (int8) or 4 (int4). */
  readonly bits: 8 | 4;
  /** Elements per group along the reduction axis; 0: one scale per output channel. */
  readonly groupSize: number;
  /** Nodes to leave in float, with the reason to report. */
  readonly excluded?: ReadonlyMap<string, string>;
}

/** One quantized weight. */
export interface WeightLayerReport {
  /** The node reading the weight (the first one when several share it). */
  readonly node: string;
  readonly op: string;
  readonly weight: string;
  readonly shape: readonly number[];
  readonly dtype: "int8" | "int4";
  /** 0: per output channel. */
  readonly groupSize: number;
  /** 10 log10(sum w^2 / sum (w - dequantize(quantize(w)))^2), Infinity when exact. */
  readonly sqnrDb: number;
  readonly bytesBefore: number;
  readonly bytesAfter: number;
}

export interface WeightOnlyReport {
  readonly layers: readonly WeightLayerReport[];
  /** Weighted nodes whose weight stayed float, and why. */
  readonly skipped: readonly { readonly node: string; readonly op: string; readonly reason: string }[];
  readonly bytesBefore: number;
  readonly bytesAfter: number;
}

/** The axes of a weight (input 1 of its op). */
export interface WeightAxes {
  /** The output-channel axis: per-channel scales run along it. */
  readonly outAxis: number;
  /** The reduction (input-channel / K) axis: groups run along it. */
  readonly inAxis: number;
}

/** The ops whose input 1 is a weight, with its axes (or why this node's weight does not qualify). */
function weightAxes(n: Node, rank: number): WeightAxes | string {
  switch (n.op) {
    case "conv":
      // [O, I / group, k...]: per output channel on 0, groups along the input channels.
      return rank >= 3 ? { outAxis: 0, inAxis: 1 } : `a conv weight of rank ${rank}`;
    case "linear":
      return rank === 2 ? { outAxis: 0, inAxis: 1 } : `a linear weight of rank ${rank}`;
    case "gemm":
      // Y = A' @ B': B is [K, N], or [N, K] with transB.
      return rank !== 2 ? `a gemm B of rank ${rank}` : n.attrs["transB"] === 1 ? { outAxis: 0, inAxis: 1 } : { outAxis: 1, inAxis: 0 };
    case "matmul":
      return rank === 2 ? { outAxis: 1, inAxis: 0 } : `a matmul B of rank ${rank} (weight-only quantizes 2-D weights)`;
    default:
      return "not a weighted op";
  }
}

/** Ops weight-only mode quantizes. */
export const WEIGHT_ONLY_OPS: ReadonlySet<string> = new Set(["conv", "linear", "gemm", "matmul"]);

/** A quantized weight as DequantizeLinear reads it: `(q - 0) * scale` along `axis` (blocked when blockSize > 0). */
export interface QuantizedWeight {
  /** int8 or int4 values, the weight's shape. */
  readonly q: Tensor;
  /** float32: [C] per channel, or the weight's shape with `axis` divided into ceil(K / blockSize) blocks. */
  readonly scale: Tensor;
  readonly axis: number;
  /** 0: per channel. */
  readonly blockSize: number;
  readonly sqnrDb: number;
}

function sqnr(w: Float32Array, dq: Tensor): number {
  const d = dq.data as Float32Array;
  let signal = 0;
  let noise = 0;
  for (let i = 0; i < w.length; i++) {
    signal += w[i]! * w[i]!;
    const e = w[i]! - d[i]!;
    noise += e * e;
  }
  if (noise === 0) return Infinity;
  return 10 * Math.log10(signal / noise);
}

/** `t` with its `axis` resized to `size`: cut off, or extended with zeros (row-major, any dtype). */
function resizeAxis(t: Tensor, axis: number, size: number): Tensor {
  const shape = t.shape.map((d, i) => (i === axis ? size : d));
  const from = t.shape[axis]!;
  let inner = 1;
  for (let i = axis + 1; i < t.shape.length; i++) inner *= t.shape[i]!;
  const outer = numel(t.shape) / (from * inner || 1);
  const src = toNumbers(t);
  const out = new Array<number>(numel(shape)).fill(0);
  const keep = Math.min(from, size) * inner;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < keep; j++) out[o * size * inner + j] = src[o * from * inner + j]!;
  }
  return fromArray(t.dtype, shape, out);
}

/**
 * Quantizes one weight. A reduction axis that is not a multiple of the group size ends in a shorter
 * group, as ONNX's blocked DequantizeLinear allows (ceil(K / block_size) scales): the weight is
 * padded with zeros to whole groups for torchao's block functions (a zero changes no symmetric
 * scale: they take max(|min(x, 0)|, max(x, 0)) per block) and the padding is cut off again.
 */
export function quantizeWeight(w: Tensor, axes: WeightAxes, bits: 8 | 4, groupSize: number): QuantizedWeight {
  const dtype = bits === 8 ? "int8" : "int4";
  const [quantMin, quantMax] = bits === 8 ? [-128, 127] : [-8, 7];
  const shape = w.shape;
  const blockSize = shape.map(() => 1);
  let scaleShape: number[];
  let axis: number;
  let block: number;
  let padded = w;
  // A group that covers a whole output channel's reduction (all of I x kh x kw, or K) is one scale
  // per output channel; ONNX blocks split one axis only, so blocking the input-channel axis of a
  // small conv (a depthwise [C, 1, k, k] weight) would instead give one scale per kernel position.
  const reduction = numel(shape) / (shape[axes.outAxis] || 1);
  if (groupSize === 0 || reduction <= groupSize) {
    // One block per output channel: everything but the channel axis is reduced.
    shape.forEach((d, i) => { if (i !== axes.outAxis) blockSize[i] = d; });
    scaleShape = [shape[axes.outAxis]!];
    axis = axes.outAxis;
    block = 0;
  } else {
    const k = shape[axes.inAxis]!;
    const g = Math.min(groupSize, k);
    const groups = Math.ceil(k / g);
    if (groups * g !== k) padded = resizeAxis(w, axes.inAxis, groups * g);
    blockSize[axes.inAxis] = g;
    scaleShape = shape.map((d, i) => (i === axes.inAxis ? groups : d));
    axis = axes.inAxis;
    block = g;
  }
  const { scale, zeroPoint } = chooseQParamsAffine(padded, {
    mappingType: MappingType.SYMMETRIC, blockSize, targetDtype: dtype, quantMin, quantMax, zeroPointDomain: ZeroPointDomain.INT,
  });
  let q = quantizeAffine(padded, blockSize, scale, zeroPoint, dtype, quantMin, quantMax, ZeroPointDomain.INT);
  let dq = dequantizeAffine(q, blockSize, scale, zeroPoint, dtype, quantMin, quantMax, ZeroPointDomain.INT);
  if (padded !== w) {
    q = resizeAxis(q, axis, shape[axis]!);
    dq = resizeAxis(dq, axis, shape[axis]!);
  }
  // torchao's qparams drop block dims equal to the whole axis; ONNX wants the weight's rank (blocked)
  // or 1-D (per axis). The element order is the same row-major order of the blocks.
  const scaleT = tensor("float32", scaleShape, Float32Array.from(scale.data as Float32Array));
  return { q, scale: scaleT, axis, blockSize: block, sqnrDb: sqnr(w.data as Float32Array, dq) };
}

function freshName(taken: Set<string>, base: string): string {
  let name = base;
  for (let i = 1; taken.has(name); i++) name = `${base}_${i}`;
  taken.add(name);
  return name;
}

/**
 * Weight-only quantization of a program (see the module comment): returns the program with
 * `dequantize_linear` nodes in front of the quantized weights, and the per-layer report. The input
 * program is untouched; a weight shared by several nodes is quantized once.
 */
export function weightOnlyQuantize(ep: ExportedProgram, opts: WeightOnlyOptions): { program: ExportedProgram; report: WeightOnlyReport } {
  if (opts.bits !== 8 && opts.bits !== 4) throw new QforgeError("BAD_CONFIG", `weight bits must be 8 or 4, got ${String(opts.bits)}`);
  if (!Number.isInteger(opts.groupSize) || opts.groupSize < 0) {
    throw new QforgeError("BAD_CONFIG", `the group size must be a non-negative integer, got ${opts.groupSize}`);
  }
  const g = ep.graph;
  const layers: WeightLayerReport[] = [];
  const skipped: { node: string; op: string; reason: string }[] = [];
  const taken = new Set<string>([...Object.keys(g.values), ...g.nodes.map((n) => n.name)]);
  // weight value + axes -> the planned dequantize (shared by nodes reading the same weight the same way)
  const planned = new Map<string, { dq: string; q: string; scale: string; qw: QuantizedWeight; weight: string }>();
  const rewires: { node: number; value: string }[] = [];

  g.nodes.forEach((n, index) => {
    if (!WEIGHT_ONLY_OPS.has(n.op)) return;
    const excluded = opts.excluded?.get(n.name);
    if (excluded !== undefined) {
      skipped.push({ node: n.name, op: n.op, reason: excluded });
      return;
    }
    const wName = n.inputs[1] ?? "";
    const c = g.constants[wName];
    if (c === undefined) {
      skipped.push({ node: n.name, op: n.op, reason: `its weight '${wName}' is not a constant` });
      return;
    }
    if (c.tensor.dtype !== "float32") {
      skipped.push({ node: n.name, op: n.op, reason: `its weight '${wName}' is ${c.tensor.dtype}, not float32` });
      return;
    }
    const axes = weightAxes(n, c.tensor.shape.length);
    if (typeof axes === "string") {
      skipped.push({ node: n.name, op: n.op, reason: axes });
      return;
    }
    if (numel(c.tensor.shape) === 0) {
      skipped.push({ node: n.name, op: n.op, reason: "its weight is empty" });
      return;
    }
    const key = `${wName}\u0000${axes.outAxis}\u0000${axes.inAxis}`;
    let p = planned.get(key);
    if (p === undefined) {
      const qw = quantizeWeight(c.tensor, axes, opts.bits, opts.groupSize);
      p = { dq: freshName(taken, `${wName}_dq`), q: freshName(taken, `${wName}_quantized`), scale: freshName(taken, `${wName}_scale`), qw, weight: wName };
      planned.set(key, p);
      const before = numel(c.tensor.shape) * 4;
      const after = Math.ceil((numel(c.tensor.shape) * opts.bits) / 8) + numel(qw.scale.shape) * 4;
      layers.push({
        node: n.name, op: n.op, weight: wName, shape: [...c.tensor.shape], dtype: opts.bits === 8 ? "int8" : "int4",
        groupSize: qw.blockSize, sqnrDb: qw.sqnrDb, bytesBefore: before, bytesAfter: after,
      });
    }
    rewires.push({ node: index, value: p.dq });
  });

  const graph = produce(g, (d: Draft<Graph>) => {
    const dqNodes: Node[] = [];
    for (const p of planned.values()) {
      d.constants[p.q] = { kind: "parameter", tensor: p.qw.q as Draft<Tensor> };
      d.values[p.q] = { dtype: p.qw.q.dtype, shape: [...p.qw.q.shape] };
      d.constants[p.scale] = { kind: "constant", tensor: p.qw.scale as Draft<Tensor> };
      d.values[p.scale] = { dtype: "float32", shape: [...p.qw.scale.shape] };
      d.values[p.dq] = { dtype: "float32", shape: [...p.qw.q.shape] };
      dqNodes.push({
        name: p.dq, op: "dequantize_linear", inputs: [p.q, p.scale], outputs: [p.dq],
        // block_size 0 (per axis) is the default: left out, so the node is also valid before opset 21.
        attrs: p.qw.blockSize > 0 ? { axis: p.qw.axis, block_size: p.qw.blockSize } : { axis: p.qw.axis }, meta: { weightOnly: { weight: p.weight, dtype: p.qw.q.dtype, groupSize: p.qw.blockSize } },
      });
    }
    for (const r of rewires) (d.nodes[r.node]!.inputs as string[])[1] = r.value;
    // The dequantize nodes read only constants: in front of every node keeps the order topological.
    d.nodes.unshift(...(dqNodes as Draft<Node>[]));
    // A float weight nobody reads any more goes (the output file would otherwise keep both copies).
    const read = new Set<string>();
    for (const n of d.nodes) for (const v of n.inputs) read.add(v);
    for (const o of d.outputs) read.add(o);
    for (const p of planned.values()) {
      if (!read.has(p.weight)) {
        delete d.constants[p.weight];
        delete d.values[p.weight];
      }
    }
  });
  verifyGraph(graph);
  const bytesBefore = layers.reduce((s, l) => s + l.bytesBefore, 0);
  const bytesAfter = layers.reduce((s, l) => s + l.bytesAfter, 0);
  return { program: { ...ep, graph }, report: { layers, skipped, bytesBefore, bytesAfter } };
}
