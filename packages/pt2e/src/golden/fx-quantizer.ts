import { dtypeInfo, QforgeError, valueUsers, type Graph, type Node } from "@qforge/ir";
import type { ObserverKind } from "@qforge/quant";
import {
  annotateGraph, edge, nodeOutput, sharedWith, validateAnnotations,
  type AnnotationInput, type EdgeOrNode, type FixedQParamsQuantizationSpec, type Quantizer, type QuantizationSpec,
  type QuantizationSpecBase,
} from "@qforge/quantizer";
import { foldConvBatchNormTorch } from "./bn-fold.js";
import {
  fxSpec, observerFacts, qnnpackUnsupportedReason, resolveFxQConfig,
  type FxCallee, type FxObserverConfig, type FxPatternFamily, type FxQConfig, type FxQConfigMapping, type ObserverFacts,
} from "./qconfig.js";

/**
 * A Quantizer that annotates a graph the way PyTorch 1.13's FX graph mode quantizes it with
 * `get_qnnpack_backend_config()` (torch/ao/quantization/fx/prepare.py, `insert_observers_for_model`),
 * so that preparePt2e reproduces FX's observers one for one:
 *
 * 1. FX fuses modules first (conv [+ bn] [+ relu], linear + relu, bn + relu; inner values single-use):
 *    one FX node per fused module, named by the first module's path.
 * 2. Patterns of the backend config: conv/linear ("weighted"), add/mul (+ relu) ("binary"), cat,
 *    hardswish/layer_norm ("default": own output observer), hardsigmoid/sigmoid/tanh/nn.Softmax
 *    ("fixed"), pools/relu/flatten/reshape/... ("share": the output shares the input's observer),
 *    batch norm ("bn"). An op without a pattern (e.g. torch.softmax) or with a null qconfig stays float.
 * 3. Observers are inserted node by node, in graph order, by FX's dtype rules: an input gets a new
 *    observer when the dtype its producer outputs differs from the dtype this node reads (reusing an
 *    observer of the same class and dtype already on that value), the pattern's last node gets an
 *    output observer, and share ops (and cat) then point their input and output observers at the
 *    first input's observer instance (`maybe_make_input_output_share_observers`).
 *
 * The simulated observers become PT2E annotations: an output observer is the output spec of the
 * pattern's last node, an input observer the spec of the edge it sits on, and every observer after
 * the first one of an instance a SharedQuantizationSpec to that first one. Implicit sharing is
 * switched off: the groups are exactly FX's observer instances. The plan of the last `annotate` call
 * (which observer is which FX edge key) is kept for reports and golden checks.
 */

/** How FX's prepare sees a value's dtype (DO_NOT_OBS dtypes are "other"). */
type TargetDType = "float" | "quint8" | "qint8" | "other";

/** One FX node after fusion. */
interface FxNode {
  readonly index: number;
  /** The qforge nodes it covers, first to last (a fused module: conv [, batch_norm] [, relu]). */
  readonly nodes: readonly Node[];
  readonly head: Node;
  readonly tail: Node;
  /** FX's name for observer keys: the module path of a module call, the node name of a function call. */
  readonly name: string;
  readonly callee: FxCallee;
  /** The activation inputs (non-constant inputs of the first node), in argument order. */
  readonly args: readonly string[];
}

interface FxPattern {
  readonly nodes: readonly FxNode[];
  readonly family: FxPatternFamily | undefined;
  /** OUTPUT_SHARE_OBSERVER_WITH_INPUT (FX's "general tensor value op"). */
  readonly sharesInputObserver: boolean;
}

/** An FX observer as the plan reports it. */
export interface FxObserverPlan {
  /** The golden edge key: `input:<v>`, `<node or module>.output`, `<consumer>.input<k>`. */
  readonly key: string;
  /** Observers with equal instances are one PyTorch observer module (shared qparams). */
  readonly instance: number;
  readonly observer: ObserverKind;
  /** The spec of the instance (what every target of the instance is quantized with). */
  readonly spec: QuantizationSpec | FixedQParamsQuantizationSpec;
  /** Where preparePt2e puts it: the output of the pattern's last node, or an input edge. */
  readonly target: EdgeOrNode;
  /** The float value it watches (at the start of a chain of observers). */
  readonly observes: string;
  /** It watches another observer's output (FX inserted it for a dtype change). */
  readonly chained: boolean;
  /** The key of the observer it watches, when chained. */
  readonly after?: string;
}

export interface FxWeightPlan {
  /** `<module>.weight`, as golden `weights` keys it. */
  readonly key: string;
  /** The conv/linear node and its weight value. */
  readonly node: string;
  readonly weight: string;
  readonly spec: QuantizationSpec | FixedQParamsQuantizationSpec;
}

export interface FxPatternPlan {
  /** qforge node names covered, first to last. */
  readonly nodes: readonly string[];
  readonly family: FxPatternFamily | undefined;
  readonly quantized: boolean;
  /** Why a pattern stays float. */
  readonly reason?: string;
}

export interface FxQuantizationPlan {
  readonly observers: readonly FxObserverPlan[];
  readonly weights: readonly FxWeightPlan[];
  readonly patterns: readonly FxPatternPlan[];
  /** Per graph output: the key of the observer that quantizes it, or undefined when it stays float. */
  readonly outputKeys: readonly (string | undefined)[];
  /** The annotation of each node, by node name. */
  readonly annotations: ReadonlyMap<string, AnnotationInput>;
}

// ---- FX's view of the graph ----------------------------------------------------------------------

function innerModule(n: Node): { path: string; type: string } | undefined {
  const stack = n.meta.moduleStack ?? [];
  const last = stack[stack.length - 1];
  return last !== undefined && last.path !== "" ? last : undefined;
}

const FUSABLE_HEADS = new Set(["conv", "linear", "batch_norm"]);

/**
 * FX's fusion (fuser_method_mappings / backend config fusion patterns, eval mode): conv + bn + relu,
 * conv + bn, conv + relu, linear + relu and bn + relu, each inner value used once (FX's matcher allows
 * one user below the root). The fused module keeps the first module's name.
 */
function fuse(g: Graph): FxNode[] {
  const users = valueUsers(g);
  const outs = new Set(g.outputs);
  const uses = (v: string): number => (users.get(v)?.length ?? 0) + (outs.has(v) ? 1 : 0);
  const only = (n: Node): Node | undefined => {
    const v = n.outputs[0] ?? "";
    return uses(v) === 1 ? users.get(v)?.[0] : undefined;
  };
  const claimed = new Set<string>();
  const units: FxNode[] = [];
  for (const n of g.nodes) {
    if (claimed.has(n.name)) continue;
    const chain = [n];
    // FX fuses modules only (a batch norm must be an nn.BatchNorm2d; conv/linear may be functional,
    // whose (op, relu) quantization pattern places observers the same way).
    if (FUSABLE_HEADS.has(n.op) && (n.op !== "batch_norm" || innerModule(n) !== undefined)) {
      let cur = n;
      if (n.op === "conv") {
        const next = only(cur);
        if (next?.op === "batch_norm" && innerModule(next) !== undefined && next.inputs[0] === cur.outputs[0]) {
          chain.push(next);
          cur = next;
        }
      }
      const relu = only(cur);
      if (relu?.op === "relu" && relu.inputs[0] === cur.outputs[0]) chain.push(relu);
    }
    for (const c of chain) claimed.add(c.name);
    const head = chain[0]!;
    const mod = innerModule(head);
    // The classes inside FX's fused module: in eval mode a batch norm after a conv is folded into the
    // conv (ConvReLU2d holds Conv2d + ReLU), so it only counts when it heads the fusion (BNReLU2d).
    const types = chain.filter((c) => c === head || c.op !== "batch_norm").map((c) => innerModule(c)?.type ?? (c.op === "relu" ? "ReLU" : c.op));
    const callee: FxCallee = mod !== undefined ? { kind: "module", path: mod.path, types } : { kind: "function", op: head.op };
    const weighted = head.op === "conv" || head.op === "linear";
    const args = weighted ? head.inputs.slice(0, 1) : head.inputs.filter((v) => v !== "" && g.constants[v] === undefined);
    units.push({ index: units.length, nodes: chain, head, tail: chain[chain.length - 1]!, name: mod?.path ?? head.name, callee, args });
  }
  return units;
}

const DEFAULT_OPS = new Set(["hardswish", "layer_normalization", "leaky_relu", "elu", "dropout", "instance_normalization"]);
const FIXED_OPS = new Set(["hard_sigmoid", "sigmoid", "tanh"]);
const SHARE_OPS = new Set(["adaptive_avg_pool2d", "max_pool", "average_pool", "relu", "clip", "transpose", "squeeze", "unsqueeze", "reduce_mean", "identity"]);

/** The pattern family of an FX node, or undefined when qnnpack's BackendConfig has no pattern for it. */
function familyOf(u: FxNode): { family: FxPatternFamily | undefined; share: boolean } {
  const op = u.head.op;
  const isModule = u.callee.kind === "module";
  if (op === "conv" || op === "linear") return { family: "weighted", share: false };
  if (op === "batch_norm") return isModule ? { family: "bn", share: false } : { family: undefined, share: false };
  if (op === "add" || op === "mul") return { family: "binary", share: u.args.length === 1 };
  if (op === "concat") return { family: "cat", share: true };
  if (DEFAULT_OPS.has(op)) return { family: "default", share: false };
  if (FIXED_OPS.has(op)) return { family: "fixed", share: false };
  // nn.Softmax has a fixed-qparams pattern; torch.softmax / F.softmax have none in 1.13.
  if (op === "softmax") return isModule ? { family: "fixed", share: false } : { family: undefined, share: false };
  if (SHARE_OPS.has(op)) return { family: "share", share: true };
  // torch.flatten / Tensor.reshape share their input's observer; nn.Flatten has no pattern in 1.13.
  if (op === "flatten" || op === "reshape") return isModule ? { family: undefined, share: false } : { family: "share", share: true };
  return { family: undefined, share: false };
}

/** Quantization patterns: (add|mul, relu) when the relu is the single user, else one FX node each. */
function patterns(g: Graph, units: readonly FxNode[]): FxPattern[] {
  const users = valueUsers(g);
  const outs = new Set(g.outputs);
  const unitOfHead = new Map(units.map((u) => [u.head.name, u] as const));
  const taken = new Set<number>();
  const out: FxPattern[] = [];
  for (const u of units) {
    if (taken.has(u.index)) continue;
    const f = familyOf(u);
    if (f.family === "binary") {
      const v = u.tail.outputs[0] ?? "";
      const readers = users.get(v) ?? [];
      const relu = readers.length === 1 && !outs.has(v) ? unitOfHead.get(readers[0]!.name) : undefined;
      if (relu !== undefined && relu.nodes.length === 1 && relu.head.op === "relu") {
        taken.add(u.index).add(relu.index);
        out.push({ nodes: [u, relu], family: "binary", sharesInputObserver: f.share });
        continue;
      }
    }
    taken.add(u.index);
    out.push({ nodes: [u], family: f.family, sharesInputObserver: f.share });
  }
  return out;
}

// ---- the observer simulation ---------------------------------------------------------------------

type Ref = { readonly kind: "value"; readonly value: string } | { readonly kind: "obs"; readonly id: number };

interface Instance {
  readonly id: number;
  readonly cfg: FxObserverConfig;
  readonly facts: ObserverFacts;
}

interface SimObserver {
  readonly id: number;
  slot: number;
  readonly reads: Ref;
  readonly role: { readonly kind: "output"; readonly unit: FxNode } | { readonly kind: "input"; readonly unit: FxNode; readonly arg: number };
  live: boolean;
}

function sameRef(a: Ref, b: Ref): boolean {
  return a.kind === "value" ? b.kind === "value" && b.value === a.value : b.kind === "obs" && b.id === a.id;
}

function actDType(q: FxQConfig): TargetDType {
  const d = observerFacts(q.activation).dtype;
  return d === "quint8" || d === "qint8" ? d : "other";
}

/**
 * Plans FX 1.13's observers for `g` under `mapping` (see the module comment). Pure: `g` is read only.
 * Throws BAD_CONFIG for a QConfigMapping FX refuses (e.g. different object_type qconfigs inside one
 * fused module) or an observer PyTorch cannot construct.
 */
export function planFxQuantization(g: Graph, mapping: FxQConfigMapping): FxQuantizationPlan {
  const units = fuse(g);
  const pats = patterns(g, units);
  const patternOf = new Map<number, FxPattern>();
  for (const p of pats) for (const u of p.nodes) patternOf.set(u.index, p);
  const producerUnit = new Map<string, FxNode>();
  for (const u of units) for (const n of u.nodes) for (const o of n.outputs) if (o !== "") producerUnit.set(o, u);

  // Per FX node: its qconfig and, when quantized, the dtype it reads and writes (FX's target dtype info).
  const qconfig = new Map<number, FxQConfig | null>();
  const quantized = new Map<number, boolean>();
  const patternPlans: FxPatternPlan[] = [];
  for (const p of pats) {
    let reason: string | undefined;
    for (const u of p.nodes) {
      const q = resolveFxQConfig(mapping, u.callee);
      qconfig.set(u.index, q);
      let ok = q !== null && p.family !== undefined;
      if (q === null) reason ??= `qconfig of '${u.name}' is None`;
      else if (p.family === undefined) reason ??= `qnnpack's BackendConfig has no pattern for '${u.head.op}' (${u.callee.kind === "module" ? u.callee.types.join(" + ") : "function"})`;
      else {
        const why = qnnpackUnsupportedReason(p.family, q);
        if (why !== undefined) {
          ok = false;
          reason ??= `'${u.name}': ${why}`;
        }
      }
      quantized.set(u.index, ok);
    }
    const all = p.nodes.every((u) => quantized.get(u.index) === true);
    patternPlans.push({ nodes: p.nodes.flatMap((u) => u.nodes.map((n) => n.name)), family: p.family, quantized: all, ...(all ? {} : { reason: reason ?? "part of the pattern is float" }) });
  }
  const dtypeIn = (u: FxNode): TargetDType => (quantized.get(u.index) === true ? actDType(qconfig.get(u.index)!) : "float");
  const valueDType = (v: string): TargetDType => {
    const p = producerUnit.get(v);
    if (p !== undefined) return dtypeIn(p);
    const t = g.values[v];
    return t !== undefined && dtypeInfo(t.dtype).kind === "float" ? "float" : "other";
  };

  const instances: Instance[] = [];
  const observers: SimObserver[] = [];
  const argRefs = new Map<number, Ref[]>(units.map((u) => [u.index, u.args.map((value) => ({ kind: "value", value }) as Ref)]));
  const newInstance = (cfg: FxObserverConfig): number => {
    instances.push({ id: instances.length, cfg, facts: observerFacts(cfg) });
    return instances.length - 1;
  };
  const observerOf = (r: Ref): SimObserver | undefined => (r.kind === "obs" ? observers[r.id] : undefined);
  // get_arg_target_dtype_as_output: an observer stands for the value it watches.
  const refDType = (r: Ref): TargetDType => {
    const o = observerOf(r);
    if (o === undefined) return valueDType((r as { value: string }).value);
    return o.reads.kind === "value" ? valueDType(o.reads.value) : (instances[o.slot]!.facts.dtype as TargetDType);
  };

  for (const u of units) {
    if (quantized.get(u.index) !== true) continue;
    const q = qconfig.get(u.index)!;
    const want = dtypeIn(u);
    const refs = argRefs.get(u.index)!;
    // _maybe_insert_input_observer_for_arg_or_kwarg, argument by argument.
    refs.forEach((ref, k) => {
      const have = refDType(ref);
      if (have === want || have === "other") return;
      const cls = q.activation.observer;
      const existing = observers.find((o) => o.live && sameRef(o.reads, ref) && instances[o.slot]!.cfg.observer === cls && instances[o.slot]!.facts.dtype === want);
      if (existing !== undefined) {
        refs[k] = { kind: "obs", id: existing.id };
        return;
      }
      const o: SimObserver = { id: observers.length, slot: newInstance(q.activation), reads: ref, role: { kind: "input", unit: u, arg: k }, live: true };
      observers.push(o);
      refs[k] = { kind: "obs", id: o.id };
    });
    const p = patternOf.get(u.index)!;
    if (p.nodes[p.nodes.length - 1] !== u) continue;
    // maybe_insert_output_observer_for_node: the pattern's last node, statically quantized output.
    const raw = u.tail.outputs[0] ?? "";
    const out: SimObserver = { id: observers.length, slot: newInstance(q.activation), reads: { kind: "value", value: raw }, role: { kind: "output", unit: u }, live: true };
    observers.push(out);
    const rerouted: Ref[][] = [];
    for (const r of argRefs.values()) {
      let hit = false;
      r.forEach((x, i) => {
        if (x.kind === "value" && x.value === raw) {
          r[i] = { kind: "obs", id: out.id };
          hit = true;
        }
      });
      if (hit) rerouted.push(r);
    }
    if (p.sharesInputObserver && !shareWithInput(u, out)) {
      // remove_output_observer: users read the raw value again.
      out.live = false;
      for (const r of rerouted) r.forEach((x, i) => { if (x.kind === "obs" && x.id === out.id) r[i] = { kind: "value", value: raw }; });
    }
  }

  /** maybe_make_input_output_share_observers: every input observer and the output observer take the first input's instance. */
  function shareWithInput(u: FxNode, out: SimObserver): boolean {
    const refs = argRefs.get(u.index)!;
    if (refs.length === 0) return false;
    const traceFirst = (start: Ref): SimObserver | undefined => {
      let r: Ref | undefined = start;
      for (let guard = 0; r !== undefined && guard < 10000; guard++) {
        const o = observerOf(r);
        if (o !== undefined) return o;
        const p = producerUnit.get((r as { value: string }).value);
        if (p === undefined) return undefined; // a placeholder: no observer up the chain
        r = argRefs.get(p.index)![0];
      }
      return undefined;
    };
    const first = traceFirst(refs[0]!);
    if (first === undefined) return false;
    const use = first.slot;
    if (u.head.op === "concat") {
      for (let k = 1; k < refs.length; k++) {
        const o = traceFirst(refs[k]!);
        if (o === undefined) return false;
        o.slot = use;
      }
    }
    out.slot = use;
    return true;
  }

  // ---- the plan: keys, targets, specs ------------------------------------------------------------
  const live = observers.filter((o) => o.live);
  const rawOf = (o: SimObserver): string => {
    let r: Ref = o.reads;
    while (r.kind === "obs") r = observers[r.id]!.reads;
    return r.value;
  };
  const targetOf = (o: SimObserver): EdgeOrNode => (o.role.kind === "output" ? nodeOutput(o.role.unit.tail.name) : edge(rawOf(o), o.role.unit.head.name));
  const keyOf = (o: SimObserver): string => {
    if (o.reads.kind === "obs") return `${o.role.unit.name}.input${(o.role as { arg: number }).arg}`;
    const v = o.reads.value;
    const p = producerUnit.get(v);
    return p === undefined ? `input:${v}` : `${p.name}.output`;
  };
  const specCache = new Map<number, QuantizationSpec | FixedQParamsQuantizationSpec>();
  const specOf = (slot: number): QuantizationSpec | FixedQParamsQuantizationSpec => {
    let s = specCache.get(slot);
    if (s === undefined) {
      s = fxSpec(instances[slot]!.cfg);
      specCache.set(slot, s);
    }
    return s;
  };
  const owner = new Map<number, EdgeOrNode>();
  for (const o of live) if (!owner.has(o.slot)) owner.set(o.slot, targetOf(o));
  const specAt = (slot: number, t: EdgeOrNode): QuantizationSpecBase => {
    const first = owner.get(slot)!;
    return JSON.stringify(first) === JSON.stringify(t) ? specOf(slot) : sharedWith(first);
  };

  const usedKeys = new Map<string, number>();
  const keyById = new Map<number, string>();
  for (const o of live) {
    let key = keyOf(o);
    const n = (usedKeys.get(key) ?? 0) + 1;
    usedKeys.set(key, n);
    if (n > 1) key = `${key}#${n}`;
    keyById.set(o.id, key);
  }
  const planObservers: FxObserverPlan[] = live.map((o) => ({
    key: keyById.get(o.id)!, instance: o.slot, observer: instances[o.slot]!.cfg.observer, spec: specOf(o.slot), target: targetOf(o),
    observes: rawOf(o), chained: o.reads.kind === "obs",
    ...(o.reads.kind === "obs" ? { after: keyById.get(o.reads.id) ?? "" } : {}),
  }));

  // Annotations: input edges of quantized FX nodes, weights, and the outputs of pattern roots.
  const maps = new Map<string, Record<string, QuantizationSpecBase | null>>();
  const outSpecs = new Map<string, QuantizationSpecBase>();
  const weights: FxWeightPlan[] = [];
  for (const u of units) {
    if (quantized.get(u.index) !== true) continue;
    const map = maps.get(u.head.name) ?? {};
    maps.set(u.head.name, map);
    argRefs.get(u.index)!.forEach((r, k) => {
      const o = observerOf(r);
      if (o === undefined) return;
      const raw = u.args[k]!;
      map[raw] = specAt(o.slot, edge(raw, u.head.name));
    });
    if (u.head.op === "conv" || u.head.op === "linear") {
      const q = qconfig.get(u.index)!;
      const w = u.head.inputs[1] ?? "";
      if (q.weight === null || w === "") throw new QforgeError("BAD_CONFIG", `'${u.name}' is quantized without a weight observer`, { node: u.head.name });
      const spec = fxSpec(q.weight);
      map[w] = spec;
      weights.push({ key: `${u.name}.weight`, node: u.head.name, weight: w, spec });
    }
  }
  for (const o of live) {
    if (o.role.kind !== "output") continue;
    outSpecs.set(o.role.unit.tail.name, specAt(o.slot, nodeOutput(o.role.unit.tail.name)));
  }
  const annotations = new Map<string, AnnotationInput>();
  for (const n of g.nodes) {
    const map = maps.get(n.name);
    const out = outSpecs.get(n.name);
    if (map === undefined && out === undefined) continue;
    annotations.set(n.name, { inputQSpecMap: map ?? {}, ...(out !== undefined ? { outputQSpec: out } : {}), allowImplicitSharing: false });
  }

  const outputKeys = g.outputs.map((v) => planObservers.find((p) => p.target.kind === "node" && p.observes === v)?.key);
  return { observers: planObservers, weights, patterns: patternPlans, outputKeys, annotations };
}

/**
 * The FX (PyTorch 1.13, qnnpack BackendConfig) quantizer for golden fx_models cases:
 *
 *   const q = new FxQnnpackQuantizer(parseFxQConfigMapping(c.qconfig_mapping));
 *   const prepared = preparePt2e(ep, q);   // q.lastPlan: which observer is which FX edge
 *
 * `transformForAnnotation` folds conv + batch_norm with PyTorch's float32 arithmetic (FX fuses them
 * before observing; a no-op where prepare already folded).
 */
export class FxQnnpackQuantizer implements Quantizer {
  private plan: FxQuantizationPlan | undefined;

  constructor(readonly mapping: FxQConfigMapping) {}

  /** The plan of the last `annotate` call (undefined before the first). */
  get lastPlan(): FxQuantizationPlan | undefined {
    return this.plan;
  }

  transformForAnnotation(g: Graph): Graph {
    return foldConvBatchNormTorch(g);
  }

  annotate(g: Graph): Graph {
    const plan = planFxQuantization(g, this.mapping);
    const annotated = annotateGraph(g, (ctx) => {
      for (const [name, a] of plan.annotations) ctx.annotate(name, a);
    });
    this.plan = plan;
    return annotated;
  }

  validate(g: Graph): void {
    validateAnnotations(g);
  }
}
