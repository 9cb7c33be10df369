import type { Draft } from "immer";
import { current, isDraft } from "immer";
import { isMatching, type P } from "ts-pattern";
import { QforgeError } from "../errors.js";
import type { AttrValue, Attrs, Constant, ConstantKind, Graph, Node, NodeMeta } from "../graph.js";
import { valueUsers } from "../graph.js";
import { inferNode } from "../ops/registry.js";
import type { Tensor } from "../tensor.js";
import { definePass, type Pass } from "../passes/pass-manager.js";

/**
 * What a rewrite pattern sees: the value being matched and, lazily, its producer chain. Patterns
 * written with ts-pattern over these shapes read naturally:
 *   { kind: "node", op: "batch_norm", inputs: [{ kind: "node", op: "conv", users: 1 }, ...] }
 */
export type ValueView = NodeView | ConstantView | InputView | NoneView;

export interface NodeView {
  readonly kind: "node";
  /** The value being viewed (one output of `node`). */
  readonly value: string;
  readonly outputIndex: number;
  readonly name: string;
  readonly op: string;
  readonly attrs: Attrs;
  readonly meta: NodeMeta;
  /** Views of the node's inputs (built on first access). */
  readonly inputs: readonly ValueView[];
  /** Number of nodes reading this value, plus one if it is a graph output. */
  readonly users: number;
  readonly node: Node;
}

export interface ConstantView {
  readonly kind: "constant";
  readonly value: string;
  readonly constKind: ConstantKind;
  readonly tensor: Tensor;
  readonly users: number;
}

export interface InputView {
  readonly kind: "input";
  readonly value: string;
  readonly users: number;
}

/** An omitted optional input. */
export interface NoneView {
  readonly kind: "none";
  readonly value: "";
  readonly users: 0;
}

export interface RewriteRule<Pat extends P.Pattern<ValueView> = P.Pattern<ValueView>> {
  readonly name: string;
  readonly pattern: Pat;
  /**
   * Called on a match with the root node's view. Returns false when it decides not to rewrite after
   * all (further checks than the pattern can express); anything else counts as a rewrite.
   */
  readonly rewrite: (match: NodeView, rw: Rewriter) => boolean | void;
}

/** Declares a rule (keeps the pattern's literal type for readers and editors). */
export function rule<Pat extends P.Pattern<ValueView>>(r: RewriteRule<Pat>): RewriteRule<Pat> {
  return r;
}

/** Edits available to a rewrite, on the draft graph. Unused nodes are removed after each rewrite. */
export class Rewriter {
  private readonly g: Draft<Graph>;
  private readonly root: string;

  constructor(g: Draft<Graph>, root: string) {
    this.g = g;
    this.root = root;
  }

  get graph(): Graph {
    return this.g as Graph;
  }

  constantTensor(value: string): Tensor | undefined {
    const c = this.g.constants[value] as Constant | undefined;
    return c?.tensor;
  }

  fresh(base: string): string {
    const used = (n: string): boolean => this.g.values[n] !== undefined || this.g.nodes.some((x) => x.name === n);
    if (!used(base)) return base;
    for (let i = 1; ; i++) if (!used(`${base}_${i}`)) return `${base}_${i}`;
  }

  addConstant(base: string, tensor: Tensor, kind: ConstantKind = "constant"): string {
    const name = this.fresh(base);
    this.g.constants[name] = { kind, tensor } as Draft<Constant>;
    this.g.values[name] = { dtype: tensor.dtype, shape: [...tensor.shape] };
    return name;
  }

  /** Inserts a node just before the matched root (so the order stays topological). */
  addNode(op: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, opts: { name?: string; meta?: NodeMeta; numOutputs?: number } = {}): string[] {
    const name = this.fresh(opts.name ?? op);
    const n = opts.numOutputs ?? 1;
    const types = inputs.map((v) => (v === "" ? undefined : (this.g.values[v] as Graph["values"][string] | undefined)));
    types.forEach((t, i) => {
      if (t === undefined && inputs[i] !== "") throw new QforgeError("DANGLING_INPUT", `rewrite uses undefined value '${inputs[i]}'`, { node: name });
    });
    const inferred = inferNode(op, name, types, attrs, n, (i) => this.constantTensor(inputs[i] ?? ""));
    const outputs = n === 1 ? [name] : Array.from({ length: n }, (_, i) => this.fresh(`${name}:${i}`));
    outputs.forEach((o, i) => { this.g.values[o] = inferred[i]! as Draft<Graph["values"][string]>; });
    const at = this.g.nodes.findIndex((x) => x.name === this.root);
    const node = { name, op, inputs: [...inputs], outputs, attrs: { ...attrs }, meta: opts.meta ?? {} };
    this.g.nodes.splice(at < 0 ? this.g.nodes.length : at, 0, node as Draft<Node>);
    return outputs;
  }

  /** Points every reader of `from` (and the graph outputs) at `to`. */
  replaceUses(from: string, to: string): void {
    for (const n of this.g.nodes) {
      for (let i = 0; i < n.inputs.length; i++) if (n.inputs[i] === from) n.inputs[i] = to;
    }
    for (let i = 0; i < this.g.outputs.length; i++) if (this.g.outputs[i] === from) this.g.outputs[i] = to;
  }
}

/** Removes nodes none of whose outputs are used, and constants nobody reads. Returns how many went. */
export function eliminateDeadCode(g: Draft<Graph>): number {
  let removed = 0;
  for (;;) {
    const users = valueUsers(g as Graph);
    const live = new Set(g.outputs);
    const before = g.nodes.length;
    const keep = g.nodes.filter((n) => n.outputs.some((o) => o !== "" && (users.has(o) || live.has(o))));
    if (keep.length === before) break;
    const dead = g.nodes.filter((n) => !keep.includes(n));
    for (const n of dead) for (const o of n.outputs) delete g.values[o];
    g.nodes.splice(0, g.nodes.length, ...keep);
    removed += before - keep.length;
  }
  const users = valueUsers(g as Graph);
  const live = new Set(g.outputs);
  for (const name of Object.keys(g.constants)) {
    if (!users.has(name) && !live.has(name)) {
      delete g.constants[name];
      delete g.values[name];
    }
  }
  return removed;
}

function makeViews(g: Graph): (value: string) => ValueView {
  const producers = new Map<string, { node: Node; index: number }>();
  for (const n of g.nodes) n.outputs.forEach((o, index) => { if (o !== "") producers.set(o, { node: n, index }); });
  const users = valueUsers(g);
  const outs = new Set(g.outputs);
  const countUsers = (v: string): number => (users.get(v)?.length ?? 0) + (outs.has(v) ? 1 : 0);
  const view = (value: string): ValueView => {
    if (value === "") return { kind: "none", value: "", users: 0 };
    const c = g.constants[value];
    if (c !== undefined) return { kind: "constant", value, constKind: c.kind, tensor: c.tensor, users: countUsers(value) };
    const p = producers.get(value);
    if (p === undefined) return { kind: "input", value, users: countUsers(value) };
    let inputs: ValueView[] | undefined;
    return {
      kind: "node",
      value,
      outputIndex: p.index,
      name: p.node.name,
      op: p.node.op,
      attrs: p.node.attrs,
      meta: p.node.meta,
      node: p.node,
      users: countUsers(value),
      get inputs(): ValueView[] {
        inputs ??= p.node.inputs.map(view);
        return inputs;
      },
    };
  };
  return view;
}

export interface RewriteStats {
  /** Rule name -> number of times it fired. */
  readonly fired: Record<string, number>;
}

/**
 * Applies the rules to a fixed point: scan nodes in order, try each rule on each node's first output,
 * rewrite on the first match, clean up dead nodes, and start over. Works on a draft (inside a pass).
 */
export function applyRewrites(g: Draft<Graph>, rules: readonly RewriteRule[], opts: { maxRewrites?: number } = {}): RewriteStats {
  const fired: Record<string, number> = {};
  const max = opts.maxRewrites ?? 10 * g.nodes.length + 100;
  let total = 0;
  outer: for (;;) {
    const snapshot = (isDraft(g) ? current(g) : g) as Graph;
    const view = makeViews(snapshot);
    for (const node of snapshot.nodes) {
      const first = node.outputs.find((o) => o !== "");
      if (first === undefined) continue;
      const v = view(first);
      for (const r of rules) {
        // The rule's own type checked the pattern against ValueView; isMatching only needs the value.
        if (!isMatching(r.pattern as P.Pattern<unknown>, v as unknown)) continue;
        const result = r.rewrite(v as NodeView, new Rewriter(g, node.name));
        if (result === false) continue;
        fired[r.name] = (fired[r.name] ?? 0) + 1;
        eliminateDeadCode(g);
        if (++total > max) {
          throw new QforgeError("PASS_FAILED", `rewrites did not reach a fixed point after ${max} steps (last rule '${r.name}')`, {
            node: node.name, hint: "a rule probably re-creates its own pattern",
          });
        }
        continue outer;
      }
    }
    return { fired };
  }
}

/** A pass that applies `rules` to a fixed point. */
export function rewritePass(name: string, rules: readonly RewriteRule[]): Pass {
  return definePass(name, (g) => {
    applyRewrites(g, rules);
  });
}
