/**
 * Finds the elementwise tail that an fp32 GEMM/conv can compute in its epilogue: a chain of
 * single-user nodes after the producer, each one float32 operation with a constant scalar or
 * per-output-channel operand (add/sub/mul/div/max/min, relu, clip, hardswish, hard_sigmoid), plus
 * the hardswish that torch exports as `div(mul(v, clip(add(v, 3), 0, 6)), 6)`. PP-OCRv4's blocks are
 * conv -> mul/add (a learned affine) -> that hardswish -> mul/add, which fuse into one kernel.
 *
 * The fused step computes each operation in float32 exactly as the unfused node would (one rounding
 * per node), so fusing changes no result beyond the producer's own accumulation order.
 */
import { getOp, numel, resolveAttrs, type Node, type Tensor } from "@qforge/ir";
import { float32Of, scalarOf, type LowerContext } from "./lower.js";
import { MAX_EOPS, type Eop, type EopKind } from "./tiers/tier.js";

/** Where the channel of a per-channel operand is: NCHW axis 1 (conv), or the last axis (linear). */
export interface ChannelAxis {
  readonly layout: "nchw" | "last";
  readonly channels: number;
  /** Rank of the producer's output. */
  readonly rank: number;
}

export interface Tail {
  readonly ops: Eop[];
  readonly nodes: Node[];
  /** The value the fused step writes (the producer's output when nothing fused). */
  readonly output: string;
}

/** A constant operand as a scalar or a per-channel vector, or undefined when it broadcasts otherwise. */
function operand(t: Tensor | undefined, axis: ChannelAxis): { a: number } | { vec: Float32Array } | undefined {
  if (t === undefined || t.dtype !== "float32" || t.shape.length > axis.rank) return undefined;
  const n = numel(t.shape);
  if (n === 1) return { a: scalarOf(t)! };
  if (n !== axis.channels) return undefined;
  // The channel dim, right-aligned against the output's rank.
  const at = axis.layout === "last" ? axis.rank - 1 : 1;
  const offset = axis.rank - t.shape.length;
  const ok = t.shape.every((d, i) => (i + offset === at ? d === axis.channels : d === 1));
  return ok ? { vec: float32Of(t)! } : undefined;
}

const COMMUTATIVE: Readonly<Record<string, EopKind>> = { add: "add", mul: "mul", max: "max", min: "min" };
const ORDERED: Readonly<Record<string, [EopKind, EopKind]>> = { sub: ["sub", "rsub"], div: ["div", "rdiv"] };

/** One node applied to `cur` as a fused step, or undefined. */
function matchOne(ctx: LowerContext, u: Node, cur: string, axis: ChannelAxis): Eop | undefined {
  if (u.outputs.length !== 1 || ctx.dtype(u.outputs[0]!) !== "float32") return undefined;
  if (u.inputs[0] !== cur && !(u.op in COMMUTATIVE || u.op in ORDERED)) return undefined;
  switch (u.op) {
    case "relu": return { kind: "relu" };
    case "hardswish": return { kind: "hardswish" };
    case "hard_sigmoid": {
      const attrs = resolveAttrs(getOp(u.op), u.attrs, u.name);
      return { kind: "hardsigmoid", a: Math.fround(attrs["alpha"] as number), b: Math.fround(attrs["beta"] as number) };
    }
    case "clip": {
      const lo = u.inputs[1] === undefined || u.inputs[1] === "" ? -Infinity : scalarOf(ctx.constant(u.inputs[1]));
      const hi = u.inputs[2] === undefined || u.inputs[2] === "" ? Infinity : scalarOf(ctx.constant(u.inputs[2]));
      if (lo === undefined || hi === undefined) return undefined;
      if (u.inputs[1] && ctx.constant(u.inputs[1])?.dtype !== "float32") return undefined;
      if (u.inputs[2] && ctx.constant(u.inputs[2])?.dtype !== "float32") return undefined;
      return { kind: "clip", a: lo, b: hi };
    }
    default: break;
  }
  const [x, y] = u.inputs;
  if (u.inputs.length !== 2 || x === undefined || y === undefined || x === y) return undefined;
  const first = x === cur;
  if (!first && y !== cur) return undefined;
  const c = operand(ctx.constant(first ? y : x), axis);
  if (c === undefined) return undefined;
  let kind: EopKind | undefined = COMMUTATIVE[u.op];
  if (kind === undefined) {
    const ordered = ORDERED[u.op];
    if (ordered === undefined) return undefined;
    kind = first ? ordered[0] : ordered[1];
  }
  return { kind, ...c };
}

/** `div(mul(v, clip(add(v, 3), 0, 6)), 6)` starting at v with users add and mul. */
function matchHardswishChain(ctx: LowerContext, cur: string, users: readonly Node[]): { nodes: Node[]; output: string } | undefined {
  const add = users.find((n) => n.op === "add");
  const mul = users.find((n) => n.op === "mul");
  if (add === undefined || mul === undefined || add === mul) return undefined;
  const scalarIs = (v: string | undefined, want: number): boolean => {
    const t = ctx.constant(v);
    return t !== undefined && t.dtype === "float32" && scalarOf(t) === want && t.shape.length <= (ctx.rank(cur) ?? 0);
  };
  const other = (n: Node, v: string): string | undefined => (n.inputs[0] === v ? n.inputs[1] : n.inputs[1] === v ? n.inputs[0] : undefined);
  if (add.inputs.length !== 2 || !scalarIs(other(add, cur), 3)) return undefined;
  const a = add.outputs[0]!;
  const clipUsers = ctx.users(a);
  const clip = clipUsers[0];
  if (clipUsers.length !== 1 || clip === undefined || clip.op !== "clip" || clip.inputs[0] !== a || ctx.isGraphOutput(a)) return undefined;
  if (!scalarIs(clip.inputs[1], 0) || !scalarIs(clip.inputs[2], 6)) return undefined;
  const c = clip.outputs[0]!;
  if (ctx.isGraphOutput(c) || ctx.users(c).length !== 1 || ctx.users(c)[0] !== mul || other(mul, cur) !== c) return undefined;
  const m = mul.outputs[0]!;
  const divUsers = ctx.users(m);
  const div = divUsers[0];
  if (ctx.isGraphOutput(m) || divUsers.length !== 1 || div === undefined || div.op !== "div" || div.inputs[0] !== m || !scalarIs(div.inputs[1], 6)) {
    return undefined;
  }
  if ([a, c, m, div.outputs[0]!].some((v) => ctx.dtype(v) !== "float32")) return undefined;
  return { nodes: [add, clip, mul, div], output: div.outputs[0]! };
}

/** The longest fusible tail after `producer` (whose first output is float32 with `axis` channels). */
export function fuseTail(ctx: LowerContext, producer: Node, axis: ChannelAxis): Tail {
  const ops: Eop[] = [];
  const nodes: Node[] = [];
  let cur = producer.outputs[0]!;
  while (ops.length < MAX_EOPS && !ctx.isGraphOutput(cur)) {
    const users = ctx.users(cur);
    if (users.length === 1) {
      const op = matchOne(ctx, users[0]!, cur, axis);
      if (op === undefined) break;
      ops.push(op);
      nodes.push(users[0]!);
      cur = users[0]!.outputs[0]!;
      continue;
    }
    if (users.length === 2) {
      const chain = matchHardswishChain(ctx, cur, users);
      if (chain === undefined) break;
      ops.push({ kind: "hswish_chain" });
      nodes.push(...chain.nodes);
      cur = chain.output;
      continue;
    }
    break;
  }
  return { ops, nodes, output: cur };
}

/** A short description of a fused tail for plan notes ("bias + mul + add + hswish_chain"). */
export function describeTail(bias: boolean, ops: readonly Eop[]): string | undefined {
  const parts = [...(bias ? ["bias"] : []), ...ops.map((o) => o.kind + (o.vec !== undefined ? "[c]" : ""))];
  return parts.length === 0 ? undefined : `epilogue: ${parts.join(" + ")}`;
}
