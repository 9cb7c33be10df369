import { QforgeError, valueSources, valueUsers, type Graph } from "@qforge/ir";
import {
  describeTarget, getAnnotation,
  type DerivedQuantizationSpec, type EdgeOrNode, type FixedQParamsQuantizationSpec, type QuantizationSpec,
  type QuantizationSpecBase,
} from "@qforge/quantizer";

/**
 * The quantization targets of an annotated graph and how they group into shared observers: the
 * union-find of torch/ao/quantization/pt2e/prepare.py (`_get_edge_or_node_to_qspec`,
 * `_get_edge_or_node_to_group_id`), with its implicit-sharing rule and its order of unions.
 */

/** A stable map key for an EdgeOrNode. */
export type TargetKey = string;

export function targetKey(t: EdgeOrNode): TargetKey {
  return t.kind === "edge" ? `edge\u0000${t.value}\u0000${t.node}` : `node\u0000${t.node}`;
}

export function edgeKey(value: string, node: string): TargetKey {
  return targetKey({ kind: "edge", value, node });
}

export function nodeKey(node: string): TargetKey {
  return targetKey({ kind: "node", node });
}

/** A spec that owns qparams (everything but SharedQuantizationSpec). */
export type RootSpec = QuantizationSpec | FixedQParamsQuantizationSpec | DerivedQuantizationSpec;

export interface TargetSpec {
  readonly target: EdgeOrNode;
  readonly spec: QuantizationSpecBase;
}

/** One group of targets that share an observer (or derived qparams). */
export interface TargetGroup {
  readonly index: number;
  /** The union-find root; its (unwrapped) spec builds the group's observer. */
  readonly root: TargetKey;
  readonly spec: RootSpec;
  readonly members: readonly TargetKey[];
}

export interface TargetGrouping {
  /** Every annotated (non-null) target, in annotation order: per node, inputs then output. */
  readonly targets: ReadonlyMap<TargetKey, TargetSpec>;
  readonly groupOf: ReadonlyMap<TargetKey, TargetGroup>;
  readonly groups: readonly TargetGroup[];
}

/** torch's `_get_edge_or_node_to_qspec`: null specs (explicitly float) are left out. */
export function collectTargets(g: Graph): Map<TargetKey, TargetSpec> {
  const out = new Map<TargetKey, TargetSpec>();
  for (const node of g.nodes) {
    const a = getAnnotation(node);
    if (a === undefined) continue;
    for (const [value, spec] of Object.entries(a.inputQSpecMap)) {
      if (spec === null) continue;
      if (!node.inputs.includes(value)) {
        throw new QforgeError("BAD_CONFIG", `inputQSpecMap names '${value}', which is not an input of node '${node.name}'`, { node: node.name });
      }
      const target: EdgeOrNode = { kind: "edge", value, node: node.name };
      out.set(targetKey(target), { target, spec });
    }
    if (a.outputQSpec !== undefined && a.outputQSpec !== null) {
      if (node.outputs[0] === undefined || node.outputs[0] === "") {
        throw new QforgeError("BAD_CONFIG", `node '${node.name}' has an output spec but no first output`, { node: node.name });
      }
      const target: EdgeOrNode = { kind: "node", node: node.name };
      out.set(targetKey(target), { target, spec: a.outputQSpec });
    }
  }
  return out;
}

/**
 * The fields torch's `_union_input_edge_with` compares (`_has_same_attr`) before sharing an input
 * edge's observer with another target of the same tensor: dtype, is_dynamic, quant_min, quant_max,
 * qscheme, ch_axis (QuantizationSpec / DerivedQuantizationSpec only) and scale, zero_point
 * (FixedQParamsQuantizationSpec only). An attribute one spec kind lacks only matches its absence.
 * The observer constructor is not compared (as in torch).
 */
function sharingSignature(s: RootSpec): string {
  const base: Record<string, unknown> = {
    dtype: s.dtype,
    isDynamic: s.isDynamic ?? false,
    quantMin: s.quantMin ?? null,
    quantMax: s.quantMax ?? null,
    qscheme: s.qscheme,
  };
  if (s.kind === "fixed") {
    base["scale"] = s.scale;
    base["zeroPoint"] = s.zeroPoint;
  } else {
    base["chAxis"] = s.chAxis ?? null;
  }
  return JSON.stringify(base);
}

/** Groups the targets of an annotated graph (see the module comment). */
export function groupTargets(g: Graph, targets: ReadonlyMap<TargetKey, TargetSpec> = collectTargets(g)): TargetGrouping {
  const parent = new Map<TargetKey, TargetKey>();
  for (const k of targets.keys()) parent.set(k, k);

  const describe = (k: TargetKey): string => {
    const t = targets.get(k)?.target;
    if (t !== undefined) return describeTarget(t);
    const [kind, a, b] = k.split("\u0000");
    return kind === "edge" ? describeTarget({ kind: "edge", value: a!, node: b! }) : describeTarget({ kind: "node", node: a! });
  };

  // _find_root_edge_or_node, iterative with path compression.
  const find = (k: TargetKey, referrer?: TargetKey): TargetKey => {
    if (!parent.has(k)) {
      const who = referrer === undefined ? "" : ` (referenced by ${describe(referrer)})`;
      throw new QforgeError("BAD_CONFIG", `${describe(k)} has no quantization spec${who}`, {
        node: targets.get(referrer ?? "")?.target.node,
        hint: "a SharedQuantizationSpec or DerivedQuantizationSpec may only refer to an annotated edge or node output",
      });
    }
    let root = k;
    while (parent.get(root) !== root) root = parent.get(root)!;
    let cur = k;
    while (cur !== root) {
      const next = parent.get(cur)!;
      parent.set(cur, root);
      cur = next;
    }
    return root;
  };

  // _union: the root of `child`'s tree now points at the root of `parentKey`'s.
  const union = (parentKey: TargetKey, child: TargetKey, referrer?: TargetKey): void => {
    const rp = find(parentKey, referrer);
    const rc = find(child, referrer);
    if (rp !== rc) parent.set(rc, rp);
  };

  // _unwrap_shared_qspec: follow shared specs to the root spec that owns qparams.
  const unwrap = (spec: QuantizationSpecBase, owner: TargetKey): RootSpec => {
    let s = spec;
    for (let steps = 0; s.kind === "shared"; steps++) {
      if (steps > targets.size) {
        throw new QforgeError("BAD_CONFIG", `the shared specs starting at ${describe(owner)} form a ring`, {
          node: targets.get(owner)?.target.node,
          hint: "every chain of SharedQuantizationSpecs must end at a spec that owns qparams",
        });
      }
      const root = find(targetKey(s.edgeOrNode), owner);
      s = targets.get(root)!.spec;
    }
    return s;
  };

  const users = valueUsers(g);
  const sources = valueSources(g);
  const byName = new Map(g.nodes.map((n) => [n.name, n] as const));

  const unionInputEdgeWith = (inputEdge: TargetKey, inputRoot: RootSpec, other: TargetKey): void => {
    const t = targets.get(other);
    if (t === undefined) return;
    const otherRoot = unwrap(t.spec, other);
    if (sharingSignature(otherRoot) === sharingSignature(inputRoot)) union(other, inputEdge, inputEdge);
  };

  for (const [key, { target, spec }] of targets) {
    if (target.kind === "node") {
      if (spec.kind === "shared") union(targetKey(spec.edgeOrNode), key, key);
      continue;
    }
    const inputRoot = unwrap(spec, key);
    const consumer = byName.get(target.node)!;
    if (getAnnotation(consumer)?.allowImplicitSharing === true) {
      // torch's order: first the other users of the producer, then the producer's output (the
      // reverse order can build a cycle, see prepare.py).
      for (const user of users.get(target.value) ?? []) {
        if (user.name === target.node) continue;
        unionInputEdgeWith(key, inputRoot, edgeKey(target.value, user.name));
      }
      const src = sources.get(target.value);
      if (src?.kind === "node" && src.index === 0) unionInputEdgeWith(key, inputRoot, nodeKey(src.node.name));
    }
    if (spec.kind === "shared") union(targetKey(spec.edgeOrNode), key, key);
  }

  // Group ids in order of first appearance of each root (torch numbers them the same way).
  const groups: TargetGroup[] = [];
  const byRoot = new Map<TargetKey, { index: number; root: TargetKey; members: TargetKey[] }>();
  for (const key of targets.keys()) {
    const root = find(key);
    let grp = byRoot.get(root);
    if (grp === undefined) {
      grp = { index: byRoot.size, root, members: [] };
      byRoot.set(root, grp);
    }
    grp.members.push(key);
  }
  const groupOf = new Map<TargetKey, TargetGroup>();
  for (const grp of byRoot.values()) {
    const done: TargetGroup = { index: grp.index, root: grp.root, spec: unwrap(targets.get(grp.root)!.spec, grp.root), members: grp.members };
    groups.push(done);
    for (const m of grp.members) groupOf.set(m, done);
  }
  return { targets, groupOf, groups };
}
