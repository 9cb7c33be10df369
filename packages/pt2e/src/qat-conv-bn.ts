import {
  fromArray, getElement, QforgeError, toFloat64, valueUsers,
  type Graph, type Node, type NodeMeta, type Tensor,
} from "@qforge/ir";
import { runOp } from "@qforge/runtime";
import {
  ANNOTATION_KEY, getAnnotation,
  type EdgeOrNode, type QuantizationAnnotation, type QuantizationSpecBase,
} from "@qforge/quantizer";
import { WorkGraph } from "./graph-edit.js";

/**
 * PT2E's simulated conv + batch-norm fusion for QAT (torchao/quantization/pt2e/qat_utils.py):
 *
 * prepare (`_fuse_conv_bn_qat`, after annotation): `batch_norm(conv(x, w, b))` becomes
 *   scale_factor  = gamma / sqrt(running_var + eps)
 *   scaled_weight = w * scale_factor.reshape([-1, 1, ...])      <- the weight (fake-)quant goes here
 *   y = conv(x, scaled_weight, zeros_like(b)) / scale_factor.reshape([1, -1, 1, ...]) + b.reshape(...)
 *   batch_norm(y, gamma, beta, running_mean, running_var)
 * so training sees the weights folded the way inference will use them, while batch norm still runs
 * (in train mode it normalizes with batch statistics). Annotations are carried over: the conv's weight
 * and bias specs move to `scaled_weight` and the zero bias, and shared/derived specs that named the old
 * edges are re-pointed (`_update_special_qspecs_after_replacement`).
 *
 * convert (`_fold_conv_bn_qat`): the pattern is folded back into one conv whose weight is exactly the
 * `scaled_weight` the fake-quant saw and whose bias is (b - mean) * scale_factor + beta; batch norm goes.
 *
 * The fusion is recorded in the conv's `meta.qat_conv_bn` (JSON, so it survives printing) and the
 * helper nodes carry the conv's module stack.
 */

export const QAT_CONV_BN_KEY = "qat_conv_bn";

/** What prepare records on the conv node of a fused QAT conv + batch norm. */
export interface QatConvBnInfo {
  readonly bn: string;
  /** The float weight and bias constants of the conv (bias null when it had none). */
  readonly weight: string;
  readonly bias: string | null;
  /** The value the conv reads as its weight (the weight quantization target). */
  readonly scaledWeight: string;
  /** gamma / sqrt(running_var + eps), [C]. */
  readonly scaleFactor: string;
  /** The zero bias constant the conv reads (null when it had no bias). */
  readonly zeroBias: string | null;
  /** Helper nodes computing scaled_weight from the batch-norm parameters, in order. */
  readonly weightNodes: readonly string[];
  /** Helper nodes between the conv output and the batch norm, in order. */
  readonly outputNodes: readonly string[];
}

function isFloatConstant(g: Graph, v: string | undefined): boolean {
  return v !== undefined && v !== "" && g.constants[v]?.tensor.dtype === "float32";
}

/** Rewrites the edges of shared/derived specs through `edgeMap` (old edge key -> new value). */
function rewriteSpec(spec: QuantizationSpecBase | null | undefined, remap: (t: EdgeOrNode) => EdgeOrNode): QuantizationSpecBase | null | undefined {
  if (spec === null || spec === undefined) return spec;
  if (spec.kind === "shared") return { ...spec, edgeOrNode: remap(spec.edgeOrNode) };
  if (spec.kind === "derived") return { ...spec, derivedFrom: spec.derivedFrom.map(remap) };
  return spec;
}

function rekeyAnnotation(a: QuantizationAnnotation, keys: ReadonlyMap<string, string>, remap: (t: EdgeOrNode) => EdgeOrNode): QuantizationAnnotation {
  const inputQSpecMap: Record<string, QuantizationSpecBase | null> = {};
  for (const [v, s] of Object.entries(a.inputQSpecMap)) inputQSpecMap[keys.get(v) ?? v] = rewriteSpec(s, remap) ?? null;
  const out = rewriteSpec(a.outputQSpec, remap);
  return { ...a, inputQSpecMap, ...(out !== undefined ? { outputQSpec: out } : {}) };
}

/** The frames of meta a helper node inherits from the node it was made for. */
function helperMeta(of: Node): NodeMeta {
  const m: Record<string, unknown> = {};
  if (of.meta.moduleStack !== undefined) m["moduleStack"] = of.meta.moduleStack;
  if (of.meta.source !== undefined) m["source"] = of.meta.source;
  return m;
}

interface Match {
  readonly conv: Node;
  readonly bn: Node;
}

function findMatches(g: Graph): Match[] {
  const users = valueUsers(g);
  const producer = new Map<string, Node>();
  for (const n of g.nodes) if (n.outputs[0] !== undefined) producer.set(n.outputs[0], n);
  const outs = new Set(g.outputs);
  const out: Match[] = [];
  for (const bn of g.nodes) {
    if (bn.op !== "batch_norm") continue;
    const x = bn.inputs[0]!;
    const conv = producer.get(x);
    if (conv === undefined || conv.op !== "conv" || conv.meta[QAT_CONV_BN_KEY] !== undefined) continue;
    if ((users.get(x)?.length ?? 0) !== 1 || outs.has(x)) continue;
    if (!isFloatConstant(g, conv.inputs[1]) || g.constants[conv.inputs[1]!]!.tensor.shape.length < 3) continue;
    const b = conv.inputs[2];
    if (b !== undefined && b !== "" && !isFloatConstant(g, b)) continue;
    if (!bn.inputs.slice(1, 5).every((v) => isFloatConstant(g, v))) continue;
    if (bn.outputs.slice(1).some((o) => o !== "" && ((users.get(o)?.length ?? 0) > 0 || outs.has(o)))) continue;
    out.push({ conv, bn });
  }
  return out;
}

/**
 * `_fuse_conv_bn_qat`: rewrites every `batch_norm(conv(x, w, b))` with constant parameters (and a
 * conv output read only by the batch norm) into the simulated fusion above. Returns a new graph.
 */
export function fuseConvBnQat(g: Graph): Graph {
  const matches = findMatches(g);
  if (matches.length === 0) return g;
  const w = new WorkGraph(g);
  const byConv = new Map(matches.map((m) => [m.conv.name, m] as const));
  const bnInputs = new Map<string, string>();
  const convInfos = new Map<string, QatConvBnInfo>();
  const edgeRemap = new Map<string, string>(); // `${value}\0${node}` -> new value
  const keyRemaps = new Map<string, Map<string, string>>(); // node -> old input -> new input
  const before = new Map<string, Node[]>(); // conv name -> nodes to place before it
  const after = new Map<string, Node[]>();
  const replacement = new Map<string, Node>();

  for (const { conv, bn } of matches) {
    const meta = helperMeta(conv);
    const weight = conv.inputs[1]!;
    const wt = g.constants[weight]!.tensor;
    const rank = wt.shape.length;
    const cout = wt.shape[0]!;
    const bias = conv.inputs[2] !== undefined && conv.inputs[2] !== "" ? conv.inputs[2] : null;
    const [, gamma, , , variance] = bn.inputs as [string, string, string, string, string];
    const eps = w.addConstant(`${bn.name}_eps`, fromArray("float32", [], [(bn.attrs["epsilon"] as number | undefined) ?? 1e-5]));
    const wShape = w.addConstant(`${conv.name}_weight_shape`, fromArray("int64", [rank], [-1, ...new Array<number>(rank - 1).fill(1)]));
    const yShape = w.addConstant(`${conv.name}_channel_shape`, fromArray("int64", [rank], [1, -1, ...new Array<number>(rank - 2).fill(1)]));
    const varEps = w.makeNode("add", `${bn.name}_var_eps`, [variance, eps], {}, meta);
    const std = w.makeNode("sqrt", `${bn.name}_running_std`, [varEps.outputs[0]!], {}, meta);
    const sf = w.makeNode("div", `${bn.name}_scale_factor`, [gamma, std.outputs[0]!], {}, meta);
    const sfw = w.makeNode("reshape", `${conv.name}_scale_factor_w`, [sf.outputs[0]!, wShape], {}, meta);
    const scaled = w.makeNode("mul", `${conv.name}_scaled_weight`, [weight, sfw.outputs[0]!], {}, meta);
    const zeroBias = bias === null ? null : w.addConstant(`${conv.name}_zero_bias`, fromArray("float32", [cout], new Float32Array(cout)));
    const newConv: Node = {
      ...conv,
      inputs: zeroBias === null ? [conv.inputs[0]!, scaled.outputs[0]!] : [conv.inputs[0]!, scaled.outputs[0]!, zeroBias],
    };
    const sfb = w.makeNode("reshape", `${conv.name}_scale_factor_y`, [sf.outputs[0]!, yShape], {}, meta);
    const unscaled = w.makeNode("div", `${conv.name}_unscaled`, [conv.outputs[0]!, sfb.outputs[0]!], {}, meta);
    const tail: Node[] = [sfb, unscaled];
    let bnInput = unscaled.outputs[0]!;
    if (bias !== null) {
      const biasY = w.makeNode("reshape", `${conv.name}_bias_y`, [bias, yShape], {}, meta);
      const withBias = w.makeNode("add", `${conv.name}_with_bias`, [bnInput, biasY.outputs[0]!], {}, meta);
      tail.push(biasY, withBias);
      bnInput = withBias.outputs[0]!;
    }
    before.set(conv.name, [varEps, std, sf, sfw, scaled]);
    after.set(conv.name, tail);
    replacement.set(conv.name, newConv);
    bnInputs.set(bn.name, bnInput);
    convInfos.set(conv.name, {
      bn: bn.name, weight, bias, scaledWeight: scaled.outputs[0]!, scaleFactor: sf.outputs[0]!, zeroBias,
      weightNodes: [varEps, std, sf, sfw, scaled].map((n) => n.name),
      outputNodes: tail.map((n) => n.name),
    });
    edgeRemap.set(`${weight}\u0000${conv.name}`, scaled.outputs[0]!);
    const convKeys = new Map<string, string>([[weight, scaled.outputs[0]!]]);
    if (bias !== null && zeroBias !== null) {
      edgeRemap.set(`${bias}\u0000${conv.name}`, zeroBias);
      convKeys.set(bias, zeroBias);
    }
    keyRemaps.set(conv.name, convKeys);
    edgeRemap.set(`${conv.outputs[0]!}\u0000${bn.name}`, bnInput);
    keyRemaps.set(bn.name, new Map([[conv.outputs[0]!, bnInput]]));
  }

  const remap = (t: EdgeOrNode): EdgeOrNode => {
    if (t.kind !== "edge") return t;
    const v = edgeRemap.get(`${t.value}\u0000${t.node}`);
    return v === undefined ? t : { kind: "edge", value: v, node: t.node };
  };
  const withAnnotation = (n: Node): Node => {
    const a = getAnnotation(n);
    if (a === undefined) return n;
    return { ...n, meta: { ...n.meta, [ANNOTATION_KEY]: rekeyAnnotation(a, keyRemaps.get(n.name) ?? new Map(), remap) } };
  };

  const nodes: Node[] = [];
  for (const n of g.nodes) {
    const m = byConv.get(n.name);
    if (m !== undefined) {
      nodes.push(...before.get(n.name)!);
      const c = replacement.get(n.name)!;
      nodes.push(withAnnotation({ ...c, meta: { ...c.meta, [QAT_CONV_BN_KEY]: convInfos.get(n.name)! as unknown as Record<string, unknown> } }));
      nodes.push(...after.get(n.name)!);
      continue;
    }
    const bnInput = bnInputs.get(n.name);
    const base = bnInput === undefined ? n : { ...n, inputs: [bnInput, ...n.inputs.slice(1)] };
    nodes.push(withAnnotation(base));
  }
  w.nodes = nodes;
  w.prune();
  return w.build();
}

/** The QatConvBnInfo of a node, or undefined. */
export function qatConvBnInfo(n: Node): QatConvBnInfo | undefined {
  const v = n.meta[QAT_CONV_BN_KEY];
  if (v === undefined) return undefined;
  const i = v as Partial<QatConvBnInfo>;
  if (typeof i.bn !== "string" || typeof i.weight !== "string" || typeof i.scaledWeight !== "string" || typeof i.scaleFactor !== "string" || !Array.isArray(i.weightNodes) || !Array.isArray(i.outputNodes)) {
    throw new QforgeError("BAD_DATA", `meta.${QAT_CONV_BN_KEY} is malformed`, { node: n.name });
  }
  return v as QatConvBnInfo;
}

/** Runs constant-only nodes with the reference kernels (what the QAT graph computes for them). */
function evaluate(g: Graph, names: readonly string[], byName: ReadonlyMap<string, Node>): Map<string, Tensor> {
  const values = new Map<string, Tensor>();
  for (const name of names) {
    const n = byName.get(name);
    if (n === undefined) throw new QforgeError("BAD_INPUT", `QAT conv-bn helper node '${name}' is missing`, { node: name });
    const inputs = n.inputs.map((v) => {
      const t = values.get(v) ?? g.constants[v]?.tensor;
      if (t === undefined) throw new QforgeError("UNSUPPORTED", `QAT conv-bn fold: '${v}' is not a constant`, { node: n.name, hint: "the batch-norm parameters and the conv weight must stay constants" });
      return t;
    });
    const outs = runOp(n.op, inputs, n.attrs, { node: n.name, numOutputs: n.outputs.length });
    n.outputs.forEach((o, i) => values.set(o, outs[i]!));
  }
  return values;
}

export interface FoldResult {
  readonly graph: Graph;
  /** Old value -> the value that replaced it (scaled weight -> folded weight, zero bias -> folded bias, bn output -> conv output). */
  readonly rename: ReadonlyMap<string, string>;
}

/**
 * `_fold_conv_bn_qat` on a prepared graph (observer / fake_quantize nodes still in place): each fused
 * conv gets the folded weight (read by whatever read `scaled_weight`, i.e. its weight fake-quant) and
 * the folded bias; the helper nodes and the batch norm go, and readers of the batch-norm output read
 * the conv output. The conv keeps its name and debug handle (`meta.fusedFrom` names both nodes).
 */
export function foldConvBnQat(g: Graph): FoldResult {
  const fused = g.nodes.filter((n) => n.meta[QAT_CONV_BN_KEY] !== undefined);
  if (fused.length === 0) return { graph: g, rename: new Map() };
  const w = new WorkGraph(g);
  const byName = new Map(g.nodes.map((n) => [n.name, n] as const));
  const users = valueUsers(g);
  const rename = new Map<string, string>();
  const remove = new Set<string>();
  const candidates = new Set<string>();
  const replaced = new Map<string, Node>();

  for (const conv of fused) {
    const info = qatConvBnInfo(conv)!;
    const bn = byName.get(info.bn);
    if (bn === undefined || bn.op !== "batch_norm") throw new QforgeError("BAD_INPUT", `QAT conv-bn: batch norm '${info.bn}' is missing`, { node: conv.name });
    // The data chain conv -> div (-> add) -> batch_norm must be private: anything else reading it would
    // see a value that no longer exists after folding (torch's matcher would not match either).
    const helpers = new Set(info.outputNodes);
    for (let cur: Node = conv; cur.name !== bn.name;) {
      const v = cur.outputs[0]!;
      const readers = users.get(v) ?? [];
      const next = readers[0];
      if (readers.length !== 1 || next === undefined || g.outputs.includes(v) || (next.name !== bn.name && !helpers.has(next.name))) {
        throw new QforgeError("UNSUPPORTED", `QAT conv-bn fold: '${cur.name}' must feed only the fused pattern (it is read by ${readers.map((n) => `'${n.name}'`).join(", ") || "nothing"})`, {
          node: conv.name, hint: "do not annotate or read the conv output of a conv + batch-norm pattern",
        });
      }
      cur = next;
    }
    const computed = evaluate(g, info.weightNodes, byName);
    const scaled = computed.get(info.scaledWeight);
    if (scaled === undefined) throw new QforgeError("BAD_INPUT", `QAT conv-bn: '${info.scaledWeight}' is not computed by the recorded helper nodes`, { node: conv.name });
    const sf = computed.get(info.scaleFactor);
    if (sf === undefined) throw new QforgeError("BAD_INPUT", `QAT conv-bn: '${info.scaleFactor}' is not computed by the recorded helper nodes`, { node: conv.name });
    const scaleFactor = toFloat64(sf);
    const [, , beta, mean] = bn.inputs.map((v) => (v === "" ? undefined : g.constants[v]?.tensor));
    if (beta === undefined || mean === undefined) throw new QforgeError("UNSUPPORTED", "QAT conv-bn fold: batch-norm parameters must be constants", { node: bn.name });
    const cout = scaled.shape[0]!;
    const b = info.bias === null ? new Float64Array(cout) : toFloat64(g.constants[info.bias]!.tensor);
    const foldedB = new Float64Array(cout);
    // torch.nn.utils.fusion.fuse_conv_bn_weights: (b - mean) * gamma / sqrt(var + eps) + beta.
    for (let c = 0; c < cout; c++) foldedB[c] = (b[c]! - getElement(mean, c)) * scaleFactor[c]! + getElement(beta, c);
    const wName = w.addConstant(`${info.weight}_fused`, scaled, "parameter");
    const bName = w.addConstant(info.bias === null ? `${conv.name}.bias_fused` : `${info.bias}_fused`, fromArray("float32", [cout], foldedB), "parameter");
    rename.set(info.scaledWeight, wName);
    if (info.zeroBias !== null) rename.set(info.zeroBias, bName);
    rename.set(bn.outputs[0]!, conv.outputs[0]!);
    for (const name of [...info.weightNodes, ...info.outputNodes, bn.name]) {
      remove.add(name);
      for (const v of byName.get(name)?.inputs ?? []) if (g.constants[v] !== undefined) candidates.add(v);
    }
    for (const v of [info.weight, info.bias, info.zeroBias]) if (v !== null) candidates.add(v);
    const a = getAnnotation(conv);
    const keys = new Map<string, string>([[info.scaledWeight, wName], ...(info.zeroBias !== null ? [[info.zeroBias, bName] as [string, string]] : [])]);
    const { [QAT_CONV_BN_KEY]: _dropped, ...meta } = conv.meta;
    replaced.set(conv.name, {
      ...conv,
      inputs: info.zeroBias === null ? [conv.inputs[0]!, conv.inputs[1]!, bName] : conv.inputs,
      meta: {
        ...meta,
        fusedFrom: [conv.name, bn.name],
        ...(a !== undefined ? { [ANNOTATION_KEY]: rekeyAnnotation(a, keys, (t) => t) } : {}),
      },
    });
  }

  const r = (v: string): string => rename.get(v) ?? v;
  w.nodes = g.nodes
    .filter((n) => !remove.has(n.name))
    .map((n) => {
      const base = replaced.get(n.name) ?? n;
      return base.inputs.some((v) => rename.has(v)) ? { ...base, inputs: base.inputs.map(r) } : base;
    });
  w.outputs = w.outputs.map(r);
  w.prune(candidates);
  return { graph: w.build(), rename };
}
