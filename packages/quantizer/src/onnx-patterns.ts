/**
 * What ONNX-imported graphs need before and during annotation. Exporters (torch.onnx, paddle2onnx)
 * spell torch's modules as ONNX op chains:
 *   nn.Linear         MatMul(x, W[K, N]) + Add(bias)   or   Gemm(x, W, bias) {transB}
 *   nn.Hardswish      x * Clip(x + 3, 0, 6) / 6        or   x * HardSigmoid(x) {alpha 1/6, beta 1/2}
 *   a scale + shift   Mul(c) / Add(d) by constants around a conv (BatchNorm-like affines, e.g.
 *                     PP-LCNet's "learnable affine blocks")
 * The graph rewrites here (a quantizer's `transformForAnnotation`, torch's hook for rewriting the
 * graph it annotates) fuse the hardswish back into `hardswish` and fold the affines into the convs
 * next to them; the linear annotators treat a MatMul / Gemm with a constant 2-D weight as the linear
 * it is: activation in, weight quantized per output channel, bias left in float, activation out.
 */
import {
  applyRewrites, definePass, getElement, numel, restoreNodeNames, rule, runPass,
  type Graph, type Node, type NodeMeta, type NodeView, type Rewriter, type ValueView,
} from "@qforge/ir";
import { P } from "ts-pattern";
import { getBiasQSpec, getInputActQSpec, getOutputActQSpec, getWeightQSpec, type QuantizationConfig } from "./config.js";
import type { PartitionFilter } from "./filters.js";
import type { AnnotateContext } from "./quantizer.js";
import type { FakeQuantSpec, ObserverSpec, QuantizationSpec, QuantizationSpecBase } from "./spec.js";
import { isPerChannelQScheme } from "./validate-spec.js";

// ---- hardswish --------------------------------------------------------------------------------

/** A one-element float constant equal to `v` (within float32 rounding). */
function scalarIs(v: number) {
  return {
    kind: "constant",
    tensor: P.when((t: unknown) => {
      const x = t as { shape: readonly number[]; dtype: string };
      return numel(x.shape) === 1 && (x.dtype === "float32" || x.dtype === "float64" || x.dtype === "float16")
        && Math.abs(getElement(t as never, 0) - v) <= 1e-6 * Math.max(1, Math.abs(v));
    }),
  } as const;
}

/** clip(x + 3, 0, 6) (either operand order of the add): relu6(x + 3). */
const relu6Plus3 = {
  kind: "node", op: "clip", users: 1,
  inputs: [
    { kind: "node", op: "add", users: 1, inputs: P.union([P._, scalarIs(3)], [scalarIs(3), P._]) },
    scalarIs(0), scalarIs(6),
  ],
} as const;

/** hard_sigmoid(x) with torch's slope: max(0, min(1, x/6 + 1/2)). */
const hardSigmoidSixth = {
  kind: "node", op: "hard_sigmoid", users: 1,
  attrs: { alpha: P.when((a: unknown) => typeof a === "number" && Math.abs(a - 1 / 6) < 1e-6), beta: P.when((b: unknown) => typeof b === "number" && Math.abs(b - 0.5) < 1e-7) },
} as const;

/** x * relu6(x + 3), either order. */
const timesRelu6 = { kind: "node", op: "mul", users: 1, inputs: P.union([P._, relu6Plus3], [relu6Plus3, P._]) } as const;

/** The value `x` of the pattern: the multiplicand that is not the clip / hard_sigmoid branch. */
function hardswishInput(mul: NodeView): string | undefined {
  const [a, b] = mul.inputs as [ValueView, ValueView];
  const branch = a.kind === "node" && (a.op === "clip" || a.op === "hard_sigmoid") ? a : b;
  const x = branch === a ? b : a;
  if (branch.kind !== "node") return undefined;
  // The branch must read the same x: clip(add(x, 3)) or hard_sigmoid(x).
  const inner = branch.op === "clip" ? (branch.inputs[0] as NodeView).inputs.find((v) => v.kind !== "constant") : branch.inputs[0];
  return inner !== undefined && inner.value === x.value ? x.value : undefined;
}

function fusedMeta(root: NodeView, parts: readonly string[]): NodeMeta {
  // The root computes the fused value: its debug handle and place in the model stay with it.
  return { ...root.meta, fusedFrom: [...parts] } as NodeMeta;
}

function chainNames(root: NodeView): string[] {
  const names: string[] = [];
  const walk = (v: ValueView): void => {
    if (v.kind !== "node" || !["div", "mul", "clip", "add", "hard_sigmoid"].includes(v.op) || names.includes(v.name)) return;
    names.push(v.name);
    if (v !== root && v.users !== 1) return;
    for (const i of v.inputs) if (i.kind === "node" && i.users === 1) walk(i);
  };
  walk(root);
  return names;
}

/** Names the rewrites of one pass gave their new nodes -> the model's name each should take back. */
type Renames = Map<string, string>;

const hardswishRules = (renamed: Renames) => [
  rule({
    // x * relu6(x + 3) / 6
    name: "hardswish-div",
    pattern: { kind: "node", op: "div", inputs: [timesRelu6, scalarIs(6)] },
    rewrite: (m, rw) => replaceWithHardswish(m, m.inputs[0] as NodeView, rw, renamed),
  }),
  rule({
    // x * relu6(x + 3) * (1/6), either order of the outer mul
    name: "hardswish-mul",
    pattern: { kind: "node", op: "mul", inputs: P.union([timesRelu6, scalarIs(1 / 6)], [scalarIs(1 / 6), timesRelu6]) },
    rewrite: (m, rw) => replaceWithHardswish(m, (m.inputs[0]!.kind === "node" ? m.inputs[0] : m.inputs[1]) as NodeView, rw, renamed),
  }),
  rule({
    // x * hard_sigmoid(x) {alpha 1/6, beta 1/2}
    name: "hardswish-hard-sigmoid",
    pattern: { kind: "node", op: "mul", inputs: P.union([P._, hardSigmoidSixth], [hardSigmoidSixth, P._]) },
    rewrite: (m, rw) => replaceWithHardswish(m, m, rw, renamed),
  }),
];

function replaceWithHardswish(root: NodeView, mul: NodeView, rw: Rewriter, renamed: Renames): boolean {
  const x = hardswishInput(mul);
  if (x === undefined) return false;
  // fusedFrom lists the replaced ops in graph order: the numeric debugger takes the last one's value.
  const order = new Map(rw.graph.nodes.map((n, i) => [n.name, i]));
  const parts = chainNames(root).sort((a, b) => order.get(a)! - order.get(b)!);
  const [y] = rw.addNode("hardswish", [x], {}, { name: rw.fresh(root.name), meta: fusedMeta(root, parts) });
  renamed.set(y!, renamed.get(root.name) ?? root.name);
  rw.replaceUses(root.value, y!);
  return true;
}

/**
 * Replaces ONNX's decompositions of hardswish — x * Clip(x + 3, 0, 6) / 6 (or * 1/6) and
 * x * HardSigmoid(x) with alpha 1/6, beta 1/2 — by one `hardswish` node, as torch.export shows
 * nn.Hardswish. The fused node keeps the last op's name and meta (debug handle, source) and lists the
 * ops it replaces in `meta.fusedFrom`. Intermediate values used elsewhere block the fusion. `g` is untouched.
 */
export function fuseOnnxHardswish(g: Graph): Graph {
  if (!g.nodes.some((n) => n.op === "clip" || n.op === "hard_sigmoid")) return g;
  // The hardswish computes the last op's value: it takes that op's name.
  const renamed: Renames = new Map();
  const out = runPass(definePass("fuse-onnx-hardswish", (d) => { applyRewrites(d, hardswishRules(renamed)); }), g).graph;
  return restoreNames(out, renamed);
}

// ---- conv followed by a constant affine -----------------------------------------------------------

/** A float32 constant of one element, or one per output channel laid out along dim 1 of NCHW ([C,1,1] / [1,C,1,1]). */
function channelConstant(v: ValueView, channels: number, rank: number): Float64Array | undefined {
  if (v.kind !== "constant" || v.tensor.dtype !== "float32") return undefined;
  const s = v.tensor.shape;
  const n = numel(s);
  const out = new Float64Array(channels);
  if (n === 1) return out.fill(getElement(v.tensor, 0));
  if (n !== channels || s.length > rank) return undefined;
  // Trailing-aligned broadcast: the channel dim is rank - 1 - (spatial dims) from the end.
  const channelFromEnd = rank - 1;
  const idx = s.length - channelFromEnd;
  if (idx < 0 || s[idx] !== channels || s.some((d, i) => i !== idx && d !== 1)) return undefined;
  for (let c = 0; c < channels; c++) out[c] = getElement(v.tensor, c);
  return out;
}

const convUsedOnce = { kind: "node", op: "conv", users: 1 } as const;
const constF32 = { kind: "constant", tensor: { dtype: "float32" } } as const;
const mulConv = { kind: "node", op: "mul", users: 1, inputs: P.union([convUsedOnce, constF32], [constF32, convUsedOnce]) } as const;

/** The conv / mul / add nodes of an affine chain ending at `root`, first to last, with the constants. */
function affineChain(root: NodeView): { conv: NodeView; scale: ValueView | undefined; mul: NodeView | undefined; shift: ValueView | undefined } | undefined {
  const split = (n: NodeView, inner: string): [NodeView, ValueView] | undefined => {
    const [a, b] = n.inputs as [ValueView, ValueView];
    if (a.kind === "node" && a.op === inner) return [a, b];
    if (b.kind === "node" && b.op === inner) return [b, a];
    return undefined;
  };
  if (root.op === "mul") {
    const p = split(root, "conv");
    return p === undefined ? undefined : { conv: p[0], scale: p[1], mul: root, shift: undefined };
  }
  const viaMul = split(root, "mul");
  if (viaMul !== undefined) {
    const p = split(viaMul[0], "conv");
    return p === undefined ? undefined : { conv: p[0], scale: p[1], mul: viaMul[0], shift: viaMul[1] };
  }
  const p = split(root, "conv");
  return p === undefined ? undefined : { conv: p[0], scale: undefined, mul: undefined, shift: p[1] };
}

const f32 = Math.fround;

/**
 * conv -> mul(c) -> add(d) (either step alone too) with constants c, d of one value or one per output
 * channel becomes conv with W' = W * c and b' = b * c + d per output channel, in float32 steps as
 * conv-bn folding computes them. PP-LCNet's "learnable affine blocks" (and reparameterized
 * MobileOne scales) export as exactly this; folded, the conv's output is quantized once instead of
 * three times.
 */
const foldConvAffineRules = (renamed: Renames) => [
  rule({
    name: "fold-conv-mul-add",
    pattern: { kind: "node", op: "add", inputs: P.union([P.union(mulConv, convUsedOnce), constF32], [constF32, P.union(mulConv, convUsedOnce)]) },
    rewrite: (m, rw) => foldAffine(m, rw, renamed),
  }),
  rule({ name: "fold-conv-mul", pattern: mulConv, rewrite: (m, rw) => foldAffine(m, rw, renamed) }),
];

function foldAffine(root: NodeView, rw: Rewriter, renamed: Renames): boolean {
  const chain = affineChain(root);
  if (chain === undefined) return false;
  const conv = chain.conv;
  const [xV, wV, bV] = conv.inputs as [ValueView, ValueView, ValueView | undefined];
  if (wV.kind !== "constant" || wV.tensor.dtype !== "float32") return false;
  if (bV !== undefined && bV.kind !== "none" && (bV.kind !== "constant" || bV.tensor.dtype !== "float32")) return false;
  const rank = rw.graph.values[conv.value]?.shape.length ?? 0;
  const cout = wV.tensor.shape[0]!;
  const scale = chain.scale === undefined ? new Float64Array(cout).fill(1) : channelConstant(chain.scale, cout, rank);
  const shift = chain.shift === undefined ? new Float64Array(cout) : channelConstant(chain.shift, cout, rank);
  if (scale === undefined || shift === undefined) return false;
  const per = numel(wV.tensor.shape) / cout;
  const w = wV.tensor.data as Float32Array;
  const w2 = new Float32Array(w.length);
  const b2 = new Float32Array(cout);
  const b = bV !== undefined && bV.kind === "constant" ? (bV.tensor.data as Float32Array) : undefined;
  for (let c = 0; c < cout; c++) {
    const sc = f32(scale[c]!);
    for (let k = 0; k < per; k++) w2[c * per + k] = f32(w[c * per + k]! * sc);
    b2[c] = f32(f32((b?.[c] ?? 0) * sc) + f32(shift[c]!));
  }
  const wName = rw.addConstant(`${wV.value}_affine`, { dtype: "float32", shape: [...wV.tensor.shape], data: w2 }, "parameter");
  const bName = rw.addConstant(bV !== undefined && bV.kind === "constant" ? `${bV.value}_affine` : `${conv.name}.bias_affine`, { dtype: "float32", shape: [cout], data: b2 }, "parameter");
  const before = conv.meta["fusedFrom"];
  const head = Array.isArray(before) && before.every((n) => typeof n === "string") ? (before as string[]) : [conv.name];
  const parts = [...head, ...(chain.mul !== undefined ? [chain.mul.name] : []), ...(root !== chain.mul ? [root.name] : [])];
  const [y] = rw.addNode("conv", [xV.value, wName, bName], { ...conv.attrs }, {
    name: rw.fresh(conv.name), meta: { ...conv.meta, fusedFrom: parts } as NodeMeta,
  });
  renamed.set(y!, renamed.get(conv.name) ?? conv.name);
  rw.replaceUses(root.value, y!);
  return true;
}

/**
 * Folds a constant per-channel affine after a conv (conv -> mul(c) -> add(d), or one of the two) into
 * the conv's weight and bias — the same rewrite as folding a batch norm, whose y = x * c + d it
 * generalizes. The folded conv keeps the conv's name and lists the nodes it replaces in
 * `meta.fusedFrom`. `g` is untouched.
 */
export function foldConvAffine(g: Graph): Graph {
  if (!g.nodes.some((n) => n.op === "conv")) return g;
  const renamed: Renames = new Map();
  const out = runPass(definePass("fold-conv-affine", (d) => { applyRewrites(d, foldConvAffineRules(renamed)); }), g).graph;
  return restoreNames(out, renamed);
}

/**
 * A rewrite names its new node afresh (the node it replaces still exists while it is built); once the
 * old nodes are gone, give each new node of the pass the name it stands for (`renamed`) — node and
 * output value — when that name is free, so that dumps, reports and node-name scopes keep the model's
 * names.
 */
function restoreNames(g: Graph, renamed: Renames): Graph {
  return restoreNodeNames(g, (n) => renamed.get(n.name));
}

// ---- a constant affine before an unpadded conv ------------------------------------------------------

/** A float32 constant of one element, or one per input channel (dim 1 of NCHW): [C,1,1] or [1,C,1,1]. */
const affineInput = {
  kind: "node", users: 1,
  op: P.union("mul", "add"),
  inputs: P.union([P._, constF32], [constF32, P._]),
} as const;

function noPadding(conv: NodeView): boolean {
  const autoPad = (conv.attrs["auto_pad"] as string | undefined) ?? "NOTSET";
  if (autoPad === "VALID") return true;
  if (autoPad !== "NOTSET") return false;
  const pads = conv.attrs["pads"] as number[] | undefined;
  return pads === undefined || pads.every((p) => p === 0);
}

/**
 * mul(h, a) -> add(., b) -> conv(W, c) without padding (either step alone too; a, b one value or one
 * per input channel) becomes conv(h, W') with W'[o, i, k] = W[o, i, k] * a[i] and
 * c'[o] = c[o] + sum over i, k of W[o, i, k] * b[i]. Exact (up to float32 rounding) because no padded
 * zero enters the window — with padding, the border windows would add b where the original added 0.
 * PP-LCNet's affine block after each activation (and before each 1x1 conv) folds away like this.
 */
/**
 * y = x * a + b read backwards from `v`: an add of a channel constant (used once), then a mul by one
 * (used once); either may be missing, not both. Returns x and the constants, or undefined.
 */
function peelAffine(v: ValueView, channels: number, rank: number): {
  source: ValueView; scale: Float64Array | undefined; shift: Float64Array | undefined; parts: string[];
} | undefined {
  const split = (n: NodeView): [ValueView, Float64Array] | undefined => {
    const [l, r] = n.inputs as [ValueView, ValueView];
    const [c, x] = l.kind === "constant" ? [l, r] : [r, l];
    const values = channelConstant(c, channels, rank);
    return values === undefined || x.kind === "constant" ? undefined : [x, values];
  };
  let cur = v;
  let scale: Float64Array | undefined;
  let shift: Float64Array | undefined;
  const parts: string[] = [];
  if (cur.kind === "node" && cur.op === "add" && cur.users === 1) {
    const s = split(cur);
    if (s === undefined) return undefined;
    parts.unshift(cur.name);
    [cur, shift] = s;
  }
  if (cur.kind === "node" && cur.op === "mul" && cur.users === 1) {
    const s = split(cur);
    if (s !== undefined) {
      parts.unshift(cur.name);
      [cur, scale] = s;
    }
  }
  return parts.length === 0 ? undefined : { source: cur, scale, shift, parts };
}

function foldAffineConvRule(renamed: Renames) {
  return rule({
    name: "fold-affine-conv",
    pattern: { kind: "node", op: "conv", inputs: P.union([affineInput, constF32], [affineInput, constF32, P.union(constF32, { kind: "none" })]) },
    rewrite: (conv, rw) => {
      if (!noPadding(conv)) return false;
      const [xV, wV, bV] = conv.inputs as [ValueView, ValueView & { kind: "constant" }, ValueView | undefined];
      const rank = rw.graph.values[conv.value]?.shape.length ?? 0;
      const w = wV.tensor;
      const [m, cg] = [w.shape[0]!, w.shape[1]!];
      const group = (conv.attrs["group"] as number | undefined) ?? 1;
      const cin = cg * group;
      const peeled = peelAffine(xV, cin, rank);
      if (peeled === undefined) return false;
      const { source, scale, shift, parts } = peeled;
      const per = numel(w.shape) / (m * cg);
      const wv = w.data as Float32Array;
      const w2 = new Float32Array(wv.length);
      const b2 = new Float32Array(m);
      const b0 = bV !== undefined && bV.kind === "constant" ? (bV.tensor.data as Float32Array) : undefined;
      const mg = m / group;
      for (let o = 0; o < m; o++) {
        const g = Math.floor(o / mg);
        let acc = b0?.[o] ?? 0;
        for (let i = 0; i < cg; i++) {
          const ic = g * cg + i;
          const a = scale?.[ic] ?? 1;
          const b = shift?.[ic] ?? 0;
          for (let k = 0; k < per; k++) {
            const idx = (o * cg + i) * per + k;
            w2[idx] = f32(wv[idx]! * f32(a));
            acc += wv[idx]! * f32(b);
          }
        }
        b2[o] = f32(acc);
      }
      const wName = rw.addConstant(`${wV.value}_affine_in`, { dtype: "float32", shape: [...w.shape], data: w2 }, "parameter");
      const bName = rw.addConstant(b0 !== undefined ? `${(bV as ValueView).value}_affine_in` : `${conv.name}.bias_affine_in`, { dtype: "float32", shape: [m], data: b2 }, "parameter");
      const before = conv.meta["fusedFrom"];
      const tail = Array.isArray(before) && before.every((n) => typeof n === "string") ? (before as string[]) : [conv.name];
      const [y] = rw.addNode("conv", [source.value, wName, bName], { ...conv.attrs }, {
        name: rw.fresh(conv.name), meta: { ...conv.meta, fusedFrom: [...parts, ...tail] } as NodeMeta,
      });
      renamed.set(y!, renamed.get(conv.name) ?? conv.name);
      rw.replaceUses(conv.value, y!);
      return true;
    },
  });
}

/**
 * Folds a constant per-input-channel affine (mul and/or add) that only feeds an unpadded conv into
 * the conv's weight and bias (see FOLD_AFFINE_CONV_RULE). The conv keeps its name. `g` is untouched.
 */
export function foldAffineIntoConv(g: Graph): Graph {
  if (!g.nodes.some((n) => n.op === "conv")) return g;
  // New node name -> the conv's own name, which it takes back once the old conv is gone.
  const renamed: Renames = new Map();
  const out = runPass(definePass("fold-affine-into-conv", (d) => { applyRewrites(d, [foldAffineConvRule(renamed)]); }), g).graph;
  return restoreNames(out, renamed);
}

/**
 * The graph rewrites the built-in quantizers apply to ONNX-imported graphs before annotating
 * (`transformForAnnotation`): fold constant affines after convs into them (so one quantized output
 * replaces several), fuse hardswish decompositions, then fold constant affines that only feed an
 * unpadded conv into it.
 */
export function normalizeOnnxForAnnotation(g: Graph): Graph {
  return foldAffineIntoConv(fuseOnnxHardswish(foldConvAffine(g)));
}

// ---- linear layers spelled as matmul / gemm -------------------------------------------------------

/** A spec observing along `axis` instead (per-channel weight specs; others are returned as they are). */
export function withChannelAxis(spec: QuantizationSpec | null, axis: number): QuantizationSpec | null {
  if (spec === null || !isPerChannelQScheme(spec.qscheme) || spec.chAxis === axis) return spec;
  const obs = spec.observerOrFakeQuant;
  const moved = (o: ObserverSpec): ObserverSpec => ({ ...o, options: { ...(o.options ?? {}), chAxis: axis } });
  const observerOrFakeQuant: ObserverSpec | FakeQuantSpec = "observer" in obs ? { ...obs, observer: moved(obs.observer) } : moved(obs);
  return { ...spec, chAxis: axis, observerOrFakeQuant };
}

/** A constant 2-D float weight. */
function isWeight2d(ctx: AnnotateContext, value: string | undefined): boolean {
  const c = value === undefined ? undefined : ctx.graph.constants[value];
  return c !== undefined && c.tensor.shape.length === 2 && (c.tensor.dtype === "float32" || c.tensor.dtype === "float64" || c.tensor.dtype === "float16");
}

/** The bias input of an add after a [.., N] linear output: a float constant of N elements broadcast along the last dim. */
function biasOf(ctx: AnnotateContext, add: Node, from: string, n: number): string | undefined {
  if (add.inputs.length !== 2) return undefined;
  const other = add.inputs[0] === from ? add.inputs[1] : add.inputs[1] === from ? add.inputs[0] : undefined;
  const c = other === undefined ? undefined : ctx.graph.constants[other];
  if (c === undefined || c.tensor.dtype !== "float32") return undefined;
  const s = c.tensor.shape;
  return numel(s) === n && (s.length === 0 ? n === 1 : s[s.length - 1] === n) ? other : undefined;
}

/** The single reader of a node's output (undefined when it has several or is a graph output). */
function onlyUser(ctx: AnnotateContext, node: Node): Node | undefined {
  const out = node.outputs[0];
  if (out === undefined || ctx.graph.outputs.includes(out)) return undefined;
  const users = ctx.views.users(out);
  return users.length === 1 ? users[0] : undefined;
}

/** Activation ops fused after a linear (torch's linear-relu and linear-hardtanh/relu6 patterns). */
const LINEAR_ACTIVATIONS = new Set(["relu", "clip"]);

/** A linear layer found in an ONNX graph: its nodes (first to last), input, weight (and its channel axis) and bias. */
export interface OnnxLinear {
  readonly nodes: readonly Node[];
  readonly input: string;
  readonly weight: string;
  /** The weight's output-channel axis: 1 for MatMul's [K, N] and Gemm's transB=0, 0 for Gemm's transB=1. */
  readonly weightAxis: 0 | 1;
  readonly bias: string | undefined;
}

/**
 * The linear layers of an ONNX graph, in node order: MatMul(x, W[K, N] constant) optionally followed
 * by Add(constant bias [N]) — each intermediate value used once — and Gemm(x, W, C?) with transA=0;
 * with `withActivation`, also the relu / clip that follows.
 */
export function findOnnxLinears(ctx: AnnotateContext, withActivation: boolean): OnnxLinear[] {
  const out: OnnxLinear[] = [];
  for (const node of ctx.graph.nodes) {
    let lin: OnnxLinear | undefined;
    if (node.op === "matmul" && isWeight2d(ctx, node.inputs[1]) && node.inputs[0] !== "" && node.inputs[0] !== node.inputs[1]) {
      const w = ctx.graph.constants[node.inputs[1]!]!.tensor;
      const add = onlyUser(ctx, node);
      const bias = add?.op === "add" ? biasOf(ctx, add, node.outputs[0]!, w.shape[1]!) : undefined;
      lin = { nodes: bias !== undefined ? [node, add!] : [node], input: node.inputs[0]!, weight: node.inputs[1]!, weightAxis: 1, bias };
    } else if (node.op === "gemm" && isWeight2d(ctx, node.inputs[1]) && (node.attrs["transA"] ?? 0) === 0 && node.inputs[0] !== "") {
      const c = node.inputs[2];
      lin = {
        nodes: [node], input: node.inputs[0]!, weight: node.inputs[1]!, weightAxis: (node.attrs["transB"] ?? 0) === 0 ? 1 : 0,
        bias: c !== undefined && c !== "" ? c : undefined,
      };
    }
    if (lin === undefined) continue;
    if (withActivation) {
      const last = lin.nodes[lin.nodes.length - 1]!;
      const act = onlyUser(ctx, last);
      if (act === undefined || !LINEAR_ACTIVATIONS.has(act.op) || act.inputs[0] !== last.outputs[0]) continue;
      lin = { ...lin, nodes: [...lin.nodes, act] };
    }
    out.push(lin);
  }
  return out;
}

/** The specs of a linear's inputs: activation, weight (per channel along its output axis), float bias. */
export function onnxLinearInputSpecs(lin: OnnxLinear, config: QuantizationConfig, act: QuantizationSpec | null = getInputActQSpec(config)): {
  first: Record<string, QuantizationSpecBase | null>;
  bias: Record<string, QuantizationSpecBase | null>;
} {
  const first: Record<string, QuantizationSpecBase | null> = { [lin.input]: act, [lin.weight]: withChannelAxis(getWeightQSpec(config), lin.weightAxis) };
  const bias: Record<string, QuantizationSpecBase | null> = {};
  if (lin.bias !== undefined) (lin.nodes.length > 1 && lin.nodes[0]!.op === "matmul" ? bias : first)[lin.bias] = getBiasQSpec(config);
  return { first, bias };
}

/**
 * torch's linear / linear-relu annotators for ONNX's spelling of nn.Linear (XNNPACK style): the
 * input activation and the weight on the matmul / gemm, the bias add (and activation) claimed, the
 * output activation on the last node.
 */
export function annotateOnnxLinears(ctx: AnnotateContext, config: QuantizationConfig, accepts: PartitionFilter, withActivation: boolean): void {
  for (const lin of findOnnxLinears(ctx, withActivation)) {
    if (ctx.anyAnnotated(lin.nodes.map((n) => n.name)) || !accepts(lin.nodes)) continue;
    const { first, bias } = onnxLinearInputSpecs(lin, config);
    const output = getOutputActQSpec(config);
    const [head, ...rest] = lin.nodes;
    if (rest.length === 0) {
      ctx.annotate(head!.name, { inputQSpecMap: first, outputQSpec: output });
      continue;
    }
    ctx.annotate(head!.name, { inputQSpecMap: first });
    rest.forEach((n, i) => {
      const last = i === rest.length - 1;
      const map = n.op === "add" ? bias : {};
      if (last) ctx.annotate(n.name, { inputQSpecMap: map, outputQSpec: output });
      else if (Object.keys(map).length > 0) ctx.annotate(n.name, { inputQSpecMap: map });
      else ctx.claimFloat(n.name);
    });
  }
}

/**
 * matmul of two activations (attention's Q @ K^T and P @ V): both inputs and the output quantized
 * per tensor, as torch's X86 quantizer does for matmul under an operator-type config.
 */
export function annotateActivationMatmuls(ctx: AnnotateContext, config: QuantizationConfig, accepts: PartitionFilter): void {
  const act = getInputActQSpec(config);
  if (act === null) return;
  for (const node of ctx.graph.nodes) {
    if (node.op !== "matmul" || node.inputs.some((v) => v === "" || ctx.graph.constants[v] !== undefined)) continue;
    if (ctx.isAnnotated(node.name) || !accepts([node])) continue;
    const map: Record<string, QuantizationSpecBase | null> = {};
    for (const v of node.inputs) map[v] = act;
    ctx.annotate(node.name, { inputQSpecMap: map, outputQSpec: getOutputActQSpec(config) });
  }
}
