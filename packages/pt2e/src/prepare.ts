import {
  foldConvBatchNormPass, QforgeError, restoreNodeNames, runPass, valueSources, verifyGraph,
  type ExportedProgram, type Graph, type Node,
} from "@qforge/ir";
import {
  describeTarget, validateAnnotations,
  type DerivedQuantizationSpec, type EdgeOrNode, type FixedQParamsQuantizationSpec, type QuantizationSpec, type Quantizer,
} from "@qforge/quantizer";
import { assignDebugHandles } from "./debug-handle.js";
import { follow, WorkGraph, withGraph } from "./graph-edit.js";
import { createObserverOrFakeQuant, isFakeQuantize, type ObserverOrFakeQuantize } from "./observers.js";
import { fuseConvBnQat } from "./qat-conv-bn.js";
import { edgeKey, groupTargets, nodeKey, targetKey, type TargetGroup } from "./targets.js";

/** One observer / fake-quant module of a prepared program and the targets it quantizes. */
export interface ObserverGroup {
  /** The `id` attribute of its observer / fake_quantize nodes. */
  readonly id: string;
  /** The spec the module was built from (the group's root spec). */
  readonly spec: QuantizationSpec | FixedQParamsQuantizationSpec;
  /** Every edge / node output sharing this module, in annotation order. */
  readonly targets: readonly EdgeOrNode[];
}

/**
 * Targets whose qparams a DerivedQuantizationSpec computes at convert time from other groups'
 * modules; they get no observer node. Edge targets name the value the node reads in the prepared
 * graph (an output observer's value when the producer's output is observed).
 */
export interface DerivedGroup {
  readonly spec: DerivedQuantizationSpec;
  /** Observer ids of `spec.derivedFrom`, in order. */
  readonly derivedFrom: readonly string[];
  readonly targets: readonly EdgeOrNode[];
}

/**
 * What preparePt2e / prepareQatPt2e return: the program with `observer` (PTQ) or `fake_quantize`
 * (QAT) nodes, and the stateful modules those nodes name by `id`. Calibrating or training mutates the
 * modules (as torch's prepared GraphModule does); the program itself is immutable data.
 */
export interface PreparedProgram {
  readonly program: ExportedProgram;
  readonly observers: Map<string, ObserverOrFakeQuantize>;
  readonly groups: ReadonlyMap<string, ObserverGroup>;
  readonly derived: readonly DerivedGroup[];
  readonly isQat: boolean;
}

/** Observer ids: torch names the modules `activation_post_process_<n>`. */
const ID_PREFIX = "activation_post_process_";

/**
 * torch's `prepare_pt2e(model, quantizer)` (quantize_pt2e.py): debug handles, batch norm folded into
 * the preceding conv (`_fuse_conv_bn_`; only for batch norms in eval mode), then
 * `quantizer.transformForAnnotation`, `annotate`, `validate`, and observer insertion (prepare.py):
 * one observer per group of targets that share qparams. `ep` is untouched.
 */
export function preparePt2e(ep: ExportedProgram, quantizer: Quantizer): PreparedProgram {
  let g = assignDebugHandles(ep.graph);
  g = restoreFusedNames(runPass(foldConvBatchNormPass, g).graph);
  g = annotate(g, quantizer);
  return insertObservers(ep, g, false);
}

/**
 * The conv a batch norm was folded into comes out of the fold under a fresh name (the old conv still
 * existed while the rewrite built it); give it back the conv's name (node and output value) when that
 * name is free again, so dumps and annotations keep the model's names, as torch's fusion keeps the node.
 */
function restoreFusedNames(g: Graph): Graph {
  return restoreNodeNames(g, (n) => {
    const from = n.meta["fusedFrom"];
    return Array.isArray(from) && typeof from[0] === "string" ? from[0] : undefined;
  });
}

/**
 * torch's `prepare_qat_pt2e`: annotation first, then the simulated conv + batch-norm fusion
 * (`_fuse_conv_bn_qat`, see qat-conv-bn.ts), then fake-quant insertion (fixed-qparams specs get a
 * FixedQParamsFakeQuantize). Batch norms keep their mode: use moveExportedModelToTrain / ToEval.
 */
export function prepareQatPt2e(ep: ExportedProgram, quantizer: Quantizer): PreparedProgram {
  let g = assignDebugHandles(ep.graph);
  g = annotate(g, quantizer);
  g = fuseConvBnQat(g);
  return insertObservers(ep, g, true);
}

function annotate(g: Graph, quantizer: Quantizer): Graph {
  let out = quantizer.transformForAnnotation(g);
  out = quantizer.annotate(out);
  quantizer.validate(out);
  // The quantizer's own validate may be lenient; these checks guard observer insertion.
  validateAnnotations(out);
  return out;
}

interface PlannedGroup {
  readonly group: TargetGroup;
  /** Observer id, or undefined for a derived group. */
  readonly id: string | undefined;
}

/**
 * Inserts the observers of an annotated graph (torch's `prepare` in pt2e/prepare.py): targets are
 * grouped by union-find (explicit SharedQuantizationSpecs plus implicit sharing, see targets.ts); each
 * group gets one module. Walking the nodes in order:
 * - an annotated node output gets an observer node right after its producer, and every reader of the
 *   output (graph outputs included) reads the observer instead;
 * - an annotated input edge reads its producer's output observer when that is the same module;
 *   otherwise it reuses an observer node of the same module already reading the value (one node per
 *   value and module: a weight read twice is observed once), or gets a new one just before the node.
 * Derived groups get no node: convert computes them.
 */
export function insertObservers(ep: ExportedProgram, annotated: Graph, isQat: boolean): PreparedProgram {
  const grouping = groupTargets(annotated);
  const observers = new Map<string, ObserverOrFakeQuantize>();
  const groups = new Map<string, ObserverGroup>();
  const planned = new Map<TargetGroup, PlannedGroup>();
  let nextId = 0;
  for (const group of grouping.groups) {
    const firstTarget = grouping.targets.get(group.members[0]!)!.target;
    if (group.spec.kind === "derived") {
      planned.set(group, { group, id: undefined });
      continue;
    }
    const id = `${ID_PREFIX}${nextId++}`;
    const module = createObserverOrFakeQuant(group.spec, isQat, firstTarget.node, describeTarget(firstTarget));
    observers.set(id, module);
    groups.set(id, { id, spec: group.spec, targets: group.members.map((k) => grouping.targets.get(k)!.target) });
    planned.set(group, { group, id });
  }

  const idOfTarget = (t: EdgeOrNode): string | undefined => {
    const grp = grouping.groupOf.get(targetKey(t));
    return grp === undefined ? undefined : planned.get(grp)!.id;
  };

  const w = new WorkGraph(annotated);
  const sources = valueSources(annotated);
  const rename = new Map<string, string>(); // value -> its output observer's value
  const observerNodesOf = new Map<string, Map<string, string>>(); // value read -> id -> observer value
  const derivedTargets = new Map<TargetGroup, EdgeOrNode[]>();
  const nodes: Node[] = [];

  const observerNode = (value: string, id: string, meta: Record<string, unknown>): Node => {
    const op = isFakeQuantize(observers.get(id)!) ? "fake_quantize" : "observer";
    const n = w.makeNode(op, id, [value], { id }, meta);
    let byId = observerNodesOf.get(value);
    if (byId === undefined) observerNodesOf.set(value, (byId = new Map()));
    byId.set(id, n.outputs[0]!);
    return n;
  };

  /** Records a derived target once (an edge by the value the node reads in the prepared graph). */
  const recordDerived = (grp: TargetGroup, t: EdgeOrNode): void => {
    const list = derivedTargets.get(grp) ?? [];
    if (list.some((x) => targetKey(x) === targetKey(t))) return;
    list.push(t);
    derivedTargets.set(grp, list);
  };

  for (const node of annotated.nodes) {
    const inputs = node.inputs.map((v) => (v === "" ? v : follow(rename, v)));
    const before: Node[] = [];
    node.inputs.forEach((v, i) => {
      if (v === "") return;
      const key = edgeKey(v, node.name);
      const grp = grouping.groupOf.get(key);
      if (grp === undefined) return;
      const id = planned.get(grp)!.id;
      const current = inputs[i]!;
      if (id === undefined) {
        recordDerived(grp, { kind: "edge", value: current, node: node.name });
        return;
      }
      // The producer's output observer is this very module: read it (already `current`).
      const src = sources.get(v);
      if (src?.kind === "node" && src.index === 0 && idOfTarget({ kind: "node", node: src.node.name }) === id) return;
      const existing = observerNodesOf.get(current)?.get(id);
      if (existing !== undefined) {
        inputs[i] = existing;
        return;
      }
      const obs = observerNode(current, id, {});
      before.push(obs);
      inputs[i] = obs.outputs[0]!;
    });
    nodes.push(...before);
    nodes.push(inputs.every((v, i) => v === node.inputs[i]) ? node : { ...node, inputs });

    const outKey = nodeKey(node.name);
    const grp = grouping.groupOf.get(outKey);
    if (grp === undefined) continue;
    const id = planned.get(grp)!.id;
    if (id === undefined) {
      recordDerived(grp, { kind: "node", node: node.name });
      continue;
    }
    const out = node.outputs[0]!;
    // The observer of a node's output carries the node's debug handle (torch copies FROM_NODE_KEY).
    const meta = typeof node.meta.debugHandle === "number" ? { debugHandle: node.meta.debugHandle } : {};
    const obs = observerNode(out, id, meta);
    nodes.push(obs);
    rename.set(out, obs.outputs[0]!);
  }
  w.nodes = nodes;
  w.outputs = w.outputs.map((v) => follow(rename, v));
  const graph = w.build();
  verifyGraph(graph);

  const derived: DerivedGroup[] = [];
  for (const [grp, targets] of derivedTargets) {
    const spec = grp.spec as DerivedQuantizationSpec;
    const derivedFrom = spec.derivedFrom.map((t) => {
      const id = idOfTarget(t);
      if (id === undefined) {
        throw new QforgeError("BAD_CONFIG", `a derived spec derives from ${describeTarget(t)}, which has no observer`, {
          node: targets[0]!.node, hint: "derive qparams from targets quantized with a QuantizationSpec or FixedQParamsQuantizationSpec",
        });
      }
      return id;
    });
    derived.push({ spec, derivedFrom, targets });
  }
  const program = withGraph(ep, graph, { pt2e: { stage: "prepared", qat: isQat } });
  return { program, observers, groups, derived, isQat };
}
