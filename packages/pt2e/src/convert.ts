import {
  dtypeInfo, getElement, numel, QforgeError, setElement, tensor, valueUsers, verifyGraph, zeros,
  type AttrValue, type DType, type ExportedProgram, type Graph, type Node, type NodeMeta, type Tensor,
} from "@qforge/ir";
import { blockSizeFor, loadObserver, quantizeAffine, ZeroPointDomain as AffineDomain, type Granularity } from "@qforge/quant";

/** AffineQuantizedMinMaxObserver's zero-point domain (torchao ZeroPointDomain, lower case). */
type ObserverZeroPointDomain = "int" | "float" | "none";
import { runOp } from "@qforge/runtime";
import { getDeriveQParamsFn, isPerChannelQScheme, type EdgeOrNode, type QScheme } from "@qforge/quantizer";
import { follow, WorkGraph, withGraph } from "./graph-edit.js";
import { innerObserver, isFakeQuantize, moduleRange, type ObserverOrFakeQuantize } from "./observers.js";
import { foldConvBnQat } from "./qat-conv-bn.js";
import type { DerivedGroup, ObserverGroup, PreparedProgram } from "./prepare.js";
import { edgeKey } from "./targets.js";

/**
 * torch's `convert_pt2e(model, fold_quantize=True)` (quantize_pt2e.py): observers become
 * quantize/dequantize pairs with the observers' qparams (`_convert_to_reference_decomposed_fx`), the
 * QAT conv + batch-norm fusion is folded back (`_fold_conv_bn_qat`), every dequantize gets one user
 * (`DuplicateDQPass`), and with foldQuantize the quantize of a constant is computed now and stored as
 * an integer constant (`constant_fold` with `_quant_node_constraint`).
 *
 * The converted graph, per quantized tensor:
 *   static, per tensor   q = quantize_per_tensor(x, scale, zero_point) {quant_min, quant_max, dtype}
 *                        y = dequantize_per_tensor(q, scale, zero_point) {same attrs}
 *                        scale: float32 [] constant, zero_point: int32 [] constant
 *   static, per channel  quantize_per_channel / dequantize_per_channel {axis, ...}
 *                        scales: float64 [C], zero_points: int32 [C] (float32 for float qparams)
 *   dynamic              (scale, zero_point) = choose_qparams_per_tensor(x) {quant_min, quant_max, eps, dtype}
 *                        then quantize_per_tensor / dequantize_per_tensor on those values
 *   constant + fold      y = dequantize_*(<x>_q, ...) where <x>_q is the integer constant
 *   float16 / bfloat16   cast to the dtype and back to float32 (float32 specs: the observer just goes)
 *   per group (blockSize) constant weights only, always folded: torchao's quantize_affine over the blocks,
 *                        then y = dequantize_linear(<x>_q, scale, zero_point) {axis, block_size}: ONNX's
 *                        blocked DequantizeLinear, (q - zp) * scale in float32 as torchao's
 *                        dequantize_affine (INT / NONE zero-point domain); one axis split into blocks
 * Node names: `<x>_q`, `<x>_dq` (`_1`, `_2`, ... when taken); qparam constants `<x>_scale`,
 * `<x>_zero_point`, shared by every node of one observer. A quantize / dequantize made from an output
 * observer carries the observed node's debug handle. The prepared program is untouched.
 */
export interface ConvertOptions {
  /** Quantize constant inputs (weights, biases) now and store integers (default true). */
  foldQuantize?: boolean;
}

const FLOAT32_EPS = 1.1920928955078125e-7;

interface QParamConsts {
  readonly perChannel: boolean;
  readonly axis: number;
  readonly scale: string;
  readonly zeroPoint: string;
  readonly attrs: Record<string, AttrValue>;
}

/** How one group (observer module or derived spec) quantizes, independent of the node it sits on. */
interface Quantization {
  /** Key for caching qparam constants and folded tensors. */
  readonly key: string;
  readonly dtype: DType;
  readonly qscheme: QScheme;
  readonly isDynamic: boolean;
  /** Base name for the qparam constants. */
  readonly base: string;
  /** Per-group (torchao block size) quantization, with the observer's zero-point domain. */
  readonly blockSize?: readonly number[];
  readonly zeroPointDomain?: ObserverZeroPointDomain;
  /** The block size the observer reduces a tensor of `shape` with, when it says (torchao granularity). */
  readonly observerBlockSize?: (shape: readonly number[]) => number[] | undefined;
  readonly quantMin: number;
  readonly quantMax: number;
  readonly chAxis: number | undefined;
  /** scale / zero point tensors as calculate_qparams returns them (shape [1] or [C]). */
  qparams(): { scale: Tensor; zeroPoint: Tensor };
}

function fail(code: "UNSUPPORTED" | "BAD_CONFIG" | "BAD_DATA", message: string, node: string | undefined, hint?: string): never {
  throw new QforgeError(code, message, { node, hint });
}

export function convertPt2e(prepared: PreparedProgram, opts: ConvertOptions = {}): ExportedProgram {
  const foldQuantize = opts.foldQuantize ?? true;
  const src = prepared.program;
  const { graph: folded, rename: foldRename } = foldConvBnQat(src.graph);
  const w = new WorkGraph(folded);
  const rename = new Map<string, string>(); // observer output -> its replacement
  const r = (v: string): string => (v === "" ? v : follow(rename, v));
  const byId = new Map<string, Quantization>();
  const qparamCache = new Map<string, QParamConsts>();
  const foldCache = new Map<string, string>();
  const uncalibrated = new Set<string>();
  const observedAtConvert = new Set<string>();
  const nodes: Node[] = [];
  // The constants each module observes (weights): an observer that never ran can still observe them.
  const constantsOf = new Map<string, Tensor[] | null>();
  for (const n of folded.nodes) {
    if (n.op !== "observer" && n.op !== "fake_quantize") continue;
    const id = n.attrs["id"] as string;
    const c = folded.constants[n.inputs[0]!]?.tensor;
    const list = constantsOf.get(id);
    if (list === null) continue;
    constantsOf.set(id, c === undefined ? null : [...(list ?? []), c]);
  }

  const moduleQuantization = (id: string, node: string): Quantization => {
    const cached = byId.get(id);
    if (cached !== undefined) return cached;
    const m = prepared.observers.get(id);
    const group = prepared.groups.get(id);
    if (m === undefined || group === undefined) {
      fail("BAD_CONFIG", `no observer module '${id}' in the prepared program`, node, "convert the PreparedProgram that preparePt2e returned");
    }
    const q = quantizationOfModule(id, m, group, node, constantsOf.get(id) ?? null, (observed) => {
      if (observed) observedAtConvert.add(id);
      else uncalibrated.add(id);
    });
    byId.set(id, q);
    return q;
  };

  // Derived groups, with edge values as the folded graph names them.
  const derivedByEdge = new Map<string, DerivedGroup>();
  const derivedByNode = new Map<string, DerivedGroup>();
  for (const d of prepared.derived) {
    for (const t of d.targets) {
      if (t.kind === "edge") derivedByEdge.set(edgeKey(foldRename.get(t.value) ?? t.value, t.node), d);
      else derivedByNode.set(t.node, d);
    }
  }
  const derivedQuantizations = new Map<DerivedGroup, Quantization>();
  const derivedQuantization = (d: DerivedGroup, node: string): Quantization => {
    let q = derivedQuantizations.get(d);
    if (q === undefined) {
      q = quantizationOfDerived(d, prepared, derivedQuantizations.size, (id) => moduleQuantization(id, node), node);
      derivedQuantizations.set(d, q);
    }
    return q;
  };

  /** The constants of one quantization's qparams (made once, shared by all its nodes). */
  const qparamConsts = (q: Quantization, node: string): QParamConsts => {
    const cached = qparamCache.get(q.key);
    if (cached !== undefined) return cached;
    const { scale, zeroPoint } = q.qparams();
    const n = numel(scale.shape);
    if (numel(zeroPoint.shape) !== n) fail("BAD_DATA", `${n} scales but ${numel(zeroPoint.shape)} zero points`, node);
    const perChannel = isPerChannelQScheme(q.qscheme) && !(n === 1 && q.chAxis === undefined);
    const attrs: Record<string, AttrValue> = { quant_min: q.quantMin, quant_max: q.quantMax, dtype: q.dtype };
    let result: QParamConsts;
    if (perChannel) {
      const s = new Float64Array(n);
      for (let i = 0; i < n; i++) s[i] = getElement(scale, i);
      const floatZp = dtypeInfo(zeroPoint.dtype).kind === "float";
      const z = floatZp ? new Float32Array(n) : new Int32Array(n);
      for (let i = 0; i < n; i++) z[i] = getElement(zeroPoint, i);
      const axis = q.chAxis ?? 0;
      result = {
        perChannel, axis,
        scale: w.addConstant(`${q.base}_scale`, tensor("float64", [n], s)),
        zeroPoint: w.addConstant(`${q.base}_zero_point`, tensor(floatZp ? "float32" : "int32", [n], z)),
        attrs: { axis, ...attrs },
      };
    } else {
      if (n !== 1) fail("BAD_DATA", `a per-tensor quantization got ${n} scales`, node, "per-channel observers need a per-channel qscheme in the spec");
      result = {
        perChannel, axis: -1,
        scale: w.addConstant(`${q.base}_scale`, tensor("float32", [], Float32Array.of(getElement(scale, 0)))),
        zeroPoint: w.addConstant(`${q.base}_zero_point`, tensor("int32", [], Int32Array.of(getElement(zeroPoint, 0)))),
        attrs,
      };
    }
    qparamCache.set(q.key, result);
    return result;
  };

  /** Emits the nodes that quantize-dequantize `x` with `q`; returns the float value that replaces `x`. */
  const emit = (x: string, q: Quantization, node: string, meta: NodeMeta): string => {
    const kind = dtypeInfo(q.dtype).kind;
    if (kind === "float") {
      if (q.dtype === "float32") return x;
      const down = w.makeNode("cast", `${x}_to_${q.dtype}`, [x], { to: q.dtype }, meta);
      const up = w.makeNode("cast", `${x}_to_float32`, [down.outputs[0]!], { to: "float32" }, meta);
      nodes.push(down, up);
      return up.outputs[0]!;
    }
    if (q.isDynamic) {
      if (isPerChannelQScheme(q.qscheme)) fail("UNSUPPORTED", "dynamic per-channel quantization is not supported", node, "quantize dynamic activations per tensor");
      const attrs: Record<string, AttrValue> = {
        quant_min: q.quantMin, quant_max: q.quantMax, dtype: q.dtype, eps: FLOAT32_EPS,
        qscheme: q.qscheme === "per_tensor_symmetric" ? "per_tensor_symmetric" : "per_tensor_affine",
      };
      const choose = w.makeNode("choose_qparams_per_tensor", `${x}_choose_qparams`, [x], attrs, meta, [`${x}_scale`, `${x}_zero_point`]);
      const qa = { quant_min: q.quantMin, quant_max: q.quantMax, dtype: q.dtype };
      const qn = w.makeNode("quantize_per_tensor", `${x}_q`, [x, choose.outputs[0]!, choose.outputs[1]!], qa, meta);
      const dq = w.makeNode("dequantize_per_tensor", `${x}_dq`, [qn.outputs[0]!, choose.outputs[0]!, choose.outputs[1]!], qa, meta);
      nodes.push(choose, qn, dq);
      return dq.outputs[0]!;
    }
    if (q.blockSize !== undefined) return emitBlocked(x, q, q.blockSize, node, meta);
    const p = qparamConsts(q, node);
    const qop = p.perChannel ? "quantize_per_channel" : "quantize_per_tensor";
    const dqop = p.perChannel ? "dequantize_per_channel" : "dequantize_per_tensor";
    let qValue: string;
    const constant = w.constants[x];
    if (foldQuantize && constant !== undefined) {
      const cacheKey = `${q.key}\u0000${x}`;
      const hit = foldCache.get(cacheKey);
      if (hit !== undefined) qValue = hit;
      else {
        const [qt] = runOp(qop, [constant.tensor, w.constants[p.scale]!.tensor, w.constants[p.zeroPoint]!.tensor], p.attrs, { node: `${x}_q` });
        qValue = w.addConstant(`${x}_q`, qt!);
        foldCache.set(cacheKey, qValue);
      }
    } else {
      const qn = w.makeNode(qop, `${x}_q`, [x, p.scale, p.zeroPoint], p.attrs, meta);
      nodes.push(qn);
      qValue = qn.outputs[0]!;
    }
    const dq = w.makeNode(dqop, `${x}_dq`, [qValue, p.scale, p.zeroPoint], p.attrs, meta);
    nodes.push(dq);
    return dq.outputs[0]!;
  };

  /** A per-group weight: folded integers and an ONNX blocked dequantize_linear (see the doc above). */
  const emitBlocked = (x: string, q: Quantization, blockSize: readonly number[], node: string, meta: NodeMeta): string => {
    const constant = w.constants[x];
    if (constant === undefined) {
      fail("UNSUPPORTED", `per-group quantization (blockSize ${JSON.stringify(blockSize)}) of the activation '${x}'`, node,
        "per-group specs quantize constant weights; quantize activations per tensor, or per token with a dynamic spec");
    }
    if (!foldQuantize) fail("UNSUPPORTED", `per-group weight '${x}' can only be converted folded`, node, "convert with foldQuantize: true");
    const cacheKey = `${q.key}\u0000${x}\u0000blocked`;
    const hit = foldCache.get(cacheKey);
    if (hit !== undefined) {
      const dq = w.makeNode("dequantize_linear", `${x}_dq`, JSON.parse(hit) as string[], blockedAttrs(blockSize, constant.tensor.shape, node), meta);
      nodes.push(dq);
      return dq.outputs[0]!;
    }
    const t = constant.tensor;
    const attrs = blockedAttrs(blockSize, t.shape, node);
    const domain = q.zeroPointDomain ?? "int";
    if (domain === "float") {
      fail("UNSUPPORTED", `per-group weight '${x}' has a float zero-point domain, which DequantizeLinear cannot express`, node, "use zeroPointDomain 'int' (torchao's current default)");
    }
    const { scale, zeroPoint } = q.qparams();
    const sshape = t.shape.map((d, i) => (i === attrs.axis ? Math.ceil(d / attrs.block_size) : d));
    // The observer's own blocks (torchao get_block_size of its granularity) must be the spec's.
    const observed = q.observerBlockSize?.(t.shape);
    const want = t.shape.flatMap((d, i) => (blockSize[i] === 1 ? [d] : blockSize[i] === d ? [] : [d / blockSize[i]!]));
    const differs = observed !== undefined
      ? observed.length !== blockSize.length || observed.some((b, i) => b !== blockSize[i])
      : scale.shape.length !== want.length || scale.shape.some((d, i) => d !== want[i]);
    if (differs) {
      fail("BAD_CONFIG", `the observer's blocks of '${x}' (${observed !== undefined ? `blockSize ${JSON.stringify(observed)}` : `scales [${scale.shape.join(", ")}]`}) differ from the spec's blockSize ${JSON.stringify(blockSize)}`, node,
        "make the observer's granularity and the spec's blockSize describe the same groups (torchao's per_group runs along the last axis)");
    }
    const qt = quantizeAffine(t, blockSize, scale, domain === "none" ? null : zeroPoint, q.dtype, q.quantMin, q.quantMax,
      domain === "none" ? AffineDomain.NONE : AffineDomain.INT);
    const scaleValues = new Float32Array(numel(sshape));
    for (let i = 0; i < scaleValues.length; i++) scaleValues[i] = getElement(scale, i);
    const inputs = [w.addConstant(`${x}_q`, qt), w.addConstant(`${q.base}_scale`, tensor("float32", sshape, scaleValues))];
    if (domain !== "none") {
      const zp = zeros(q.dtype, sshape);
      for (let i = 0; i < numel(sshape); i++) setElement(zp, i, getElement(zeroPoint, i));
      inputs.push(w.addConstant(`${q.base}_zero_point`, zp));
    }
    foldCache.set(cacheKey, JSON.stringify(inputs));
    const dq = w.makeNode("dequantize_linear", `${x}_dq`, inputs, attrs, meta);
    nodes.push(dq);
    return dq.outputs[0]!;
  };

  const handleMeta = (n: Node): NodeMeta => (typeof n.meta.debugHandle === "number" ? { debugHandle: n.meta.debugHandle } : {});

  for (const node of folded.nodes) {
    if (node.op === "observer" || node.op === "fake_quantize") {
      const id = node.attrs["id"];
      if (typeof id !== "string") fail("BAD_CONFIG", `${node.op} node without a string id`, node.name);
      const x = r(node.inputs[0]!);
      rename.set(node.outputs[0]!, emit(x, moduleQuantization(id, node.name), node.name, handleMeta(node)));
      continue;
    }
    const inputs = node.inputs.map(r);
    node.inputs.forEach((v, i) => {
      if (v === "") return;
      const d = derivedByEdge.get(edgeKey(v, node.name));
      if (d === undefined) return;
      // One quantize-dequantize per distinct input value of the node.
      const first = node.inputs.indexOf(v);
      inputs[i] = first < i ? inputs[first]! : emit(inputs[i]!, derivedQuantization(d, node.name), node.name, {});
    });
    nodes.push(inputs.every((v, i) => v === node.inputs[i]) ? node : { ...node, inputs });
    const d = derivedByNode.get(node.name);
    if (d !== undefined) {
      const out = node.outputs[0]!;
      rename.set(out, emit(out, derivedQuantization(d, node.name), node.name, handleMeta(node)));
    }
  }
  w.nodes = nodes;
  w.outputs = w.outputs.map(r);
  const readBefore = new Set<string>();
  for (const n of folded.nodes) for (const v of n.inputs) if (w.constants[v] !== undefined) readBefore.add(v);
  w.prune(readBefore);
  const graph = duplicateDequantize(w.build());
  verifyGraph(graph);
  return withGraph(src, graph, {
    pt2e: {
      stage: "converted", qat: prepared.isQat, foldQuantize,
      uncalibratedObservers: [...uncalibrated].sort(), observedAtConvert: [...observedAtConvert].sort(),
    },
  });
}

/**
 * The quantization an observer / fake-quant module gives its targets. A module that never saw data
 * gets torch's default qparams (scale 1, zero point 0) and is reported as uncalibrated — unless all it
 * observes are constants (weights, e.g. in a dynamic-quantization flow that is never calibrated): then
 * a copy of its observer observes them now (the prepared program's modules are left as they are).
 */
function quantizationOfModule(
  id: string, m: ObserverOrFakeQuantize, group: ObserverGroup, node: string, constants: readonly Tensor[] | null,
  report: (observedAtConvert: boolean) => void,
): Quantization {
  const spec = group.spec;
  const info = dtypeInfo(spec.dtype);
  const range = moduleRange(m);
  const blockSize = spec.kind === "spec" ? spec.blockSize : undefined;
  if (blockSize !== undefined && (spec.isDynamic === true || isFakeQuantize(m))) {
    fail("UNSUPPORTED", `per-group quantization (blockSize ${JSON.stringify(blockSize)}) is supported for observed (PTQ) weights only`, node);
  }
  const chAxis = isFakeQuantize(m) ? (m.isPerChannel ? m.chAxis : undefined) : (m as { chAxis?: number }).chAxis ?? (spec.kind === "spec" ? spec.chAxis : undefined);
  const inner = innerObserver(m);
  const initialized = (inner as { initialized?: unknown }).initialized;
  return {
    key: `module\u0000${id}`,
    dtype: spec.dtype,
    qscheme: spec.qscheme,
    isDynamic: spec.isDynamic === true,
    base: baseName(group.targets[0]!),
    ...(blockSize !== undefined ? {
      blockSize,
      zeroPointDomain: (inner as { zeroPointDomain?: ObserverZeroPointDomain }).zeroPointDomain ?? "int",
      // torchao get_block_size of the observer's granularity (AffineQuantizedMinMaxObserver keeps one).
      observerBlockSize: (shape: readonly number[]) => {
        const g = (inner as { granularity?: Granularity }).granularity;
        return g === undefined ? undefined : blockSizeFor(g, shape);
      },
    } : {}),
    quantMin: range?.quantMin ?? spec.quantMin ?? info.min,
    quantMax: range?.quantMax ?? spec.quantMax ?? info.max,
    chAxis,
    qparams: () => {
      if (initialized !== false) return m.calculateQParams();
      if (constants !== null && constants.length > 0) {
        const copy = loadObserver(inner.state());
        for (const t of constants) copy.observe(t);
        report(true);
        return copy.calculateQParams();
      }
      report(false);
      return m.calculateQParams();
    },
  };
}

/** A derived spec's quantization: qparams from the registered function over its source modules. */
function quantizationOfDerived(
  d: DerivedGroup, prepared: PreparedProgram, index: number, sourceOf: (id: string) => Quantization, node: string,
): Quantization {
  const spec = d.spec;
  const info = dtypeInfo(spec.dtype);
  const fn = getDeriveQParamsFn(spec.deriveQParamsFn);
  return {
    key: `derived\u0000${index}`,
    dtype: spec.dtype,
    qscheme: spec.qscheme,
    isDynamic: spec.isDynamic === true,
    base: baseName(d.targets[0]!),
    quantMin: spec.quantMin ?? info.min,
    quantMax: spec.quantMax ?? info.max,
    chAxis: spec.chAxis,
    qparams: () => {
      const sources = d.derivedFrom.map((id) => {
        sourceOf(id);
        return innerObserver(prepared.observers.get(id)!);
      });
      try {
        return fn(sources);
      } catch (e) {
        if (e instanceof QforgeError) throw new QforgeError(e.code, `derive function '${spec.deriveQParamsFn}': ${e.message}`, { node, hint: e.hint, cause: e });
        throw e;
      }
    },
  };
}

/**
 * ONNX's blocked DequantizeLinear splits one axis into blocks and keeps every other axis per element:
 * a torchao block size is expressible when exactly one entry differs from 1.
 */
function blockedAttrs(blockSize: readonly number[], shape: readonly number[], node: string): { axis: number; block_size: number } {
  if (blockSize.length !== shape.length) fail("BAD_CONFIG", `blockSize ${JSON.stringify(blockSize)} does not match the weight's rank ${shape.length}`, node);
  const split = blockSize.flatMap((b, d) => (b !== 1 ? [d] : []));
  if (split.length !== 1) {
    fail("UNSUPPORTED", `blockSize ${JSON.stringify(blockSize)} splits ${split.length} axes; blocked dequantize_linear splits exactly one`, node,
      "use a block size like [1, groupSize] (per row and group)");
  }
  return { axis: split[0]!, block_size: blockSize[split[0]!]! };
}

/** The name the qparam constants of a group derive from: the value it first quantizes. */
function baseName(t: EdgeOrNode): string {
  return t.kind === "edge" ? t.value : t.node;
}

const DEQUANTIZE_OPS = new Set(["dequantize_per_tensor", "dequantize_per_channel"]);

/**
 * torch's DuplicateDQPass: a dequantize read by several nodes (or a node and the graph outputs)
 * becomes one dequantize per reader, so lowering can match `dequantize -> op -> quantize` patterns
 * one consumer at a time. Copies are placed right after the original and keep its meta.
 */
export function duplicateDequantize(g: Graph): Graph {
  const users = valueUsers(g);
  const needs = g.nodes.filter((n) => {
    if (!DEQUANTIZE_OPS.has(n.op)) return false;
    const v = n.outputs[0]!;
    return (users.get(v)?.length ?? 0) + g.outputs.filter((o) => o === v).length > 1;
  });
  if (needs.length === 0) return g;
  const w = new WorkGraph(g);
  const replaceIn = new Map<string, Map<string, string>>(); // reader node -> dq value -> copy value
  const outputCopies = new Map<string, string[]>(); // dq value -> values for its later output slots
  const copiesAfter = new Map<string, Node[]>();
  for (const dq of needs) {
    const v = dq.outputs[0]!;
    const readers: ({ kind: "node"; name: string } | { kind: "output" })[] = [
      ...(users.get(v) ?? []).map((n) => ({ kind: "node" as const, name: n.name })),
      ...g.outputs.filter((o) => o === v).map(() => ({ kind: "output" as const })),
    ];
    const copies: Node[] = [];
    // The first reader keeps the original.
    for (const reader of readers.slice(1)) {
      const copy = w.makeNode(dq.op, dq.name, dq.inputs, { ...dq.attrs }, dq.meta);
      copies.push(copy);
      if (reader.kind === "node") {
        const m = replaceIn.get(reader.name) ?? new Map<string, string>();
        m.set(v, copy.outputs[0]!);
        replaceIn.set(reader.name, m);
      } else {
        outputCopies.set(v, [...(outputCopies.get(v) ?? []), copy.outputs[0]!]);
      }
    }
    copiesAfter.set(dq.name, copies);
  }
  const nodes: Node[] = [];
  for (const n of g.nodes) {
    const m = replaceIn.get(n.name);
    nodes.push(m === undefined ? n : { ...n, inputs: n.inputs.map((v) => m.get(v) ?? v) });
    nodes.push(...(copiesAfter.get(n.name) ?? []));
  }
  w.nodes = nodes;
  // Graph-output slots: the first occurrence of a dq value keeps it unless a node reader took the original.
  const seen = new Map<string, number>();
  w.outputs = g.outputs.map((v) => {
    const copies = outputCopies.get(v);
    if (copies === undefined) return v;
    const firstIsNode = (users.get(v)?.length ?? 0) > 0;
    const k = seen.get(v) ?? 0;
    seen.set(v, k + 1);
    const slot = firstIsNode ? k : k - 1;
    return slot < 0 ? v : copies[slot]!;
  });
  return w.build();
}
