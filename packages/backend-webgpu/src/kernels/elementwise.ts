/**
 * Float32 elementwise ops with numpy broadcasting: one invocation per output element. Inputs that
 * have the output's shape are read at the flat index, one-element inputs at 0, others through
 * broadcast strides in the uniform block (the shape walk is only generated for those). The float
 * formulas are the reference kernels' (runtime/src/kernels/elementwise.ts) in float32 arithmetic,
 * so results agree to a few ulps, not bit for bit (exp, tanh and division are not correctly rounded
 * in WGSL).
 */
import { numel, type AttrValue } from "@qforge/ir";
import { broadcastStrides, bufferDecl, coalesceDims, grid1d, ISNAN, main1d, Params, paramsDecl, reader } from "../wgsl/common.js";
import type { BuildContext, BuildResult, GpuKernel, Support, SupportQuery, TensorType } from "./types.js";

type Attrs = Readonly<Record<string, AttrValue>>;

/** WGSL helpers some formulas call. */
const HELPERS = `
${ISNAN}var<private> INF_BITS: u32 = 0x7f800000u;
fn inf() -> f32 { return bitcast<f32>(INF_BITS); }
fn erf_(x: f32) -> f32 {
  // Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), odd extension.
  let t = 1.0 / (1.0 + 0.3275911 * abs(x));
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-x * x);
  return select(-y, y, x >= 0.0);
}
fn pow_(x: f32, y: f32) -> f32 {
  // WGSL pow is exp2(y * log2(x)): undefined for x <= 0. Integer exponents take |x| and the sign.
  if (y == 2.0) { return x * x; }
  if (y == 1.0) { return x; }
  if (y == 0.0) { return 1.0; }
  if (y == 0.5) { return sqrt(x); }
  if (x == 0.0) { return select(inf(), 0.0, y > 0.0); }
  if (x < 0.0) {
    if (y != floor(y)) { return bitcast<f32>(INF_BITS | 0x400000u); }
    let r = pow(-x, y);
    return select(r, -r, fract(y * 0.5) != 0.0);
  }
  return pow(x, y);
}
`;

interface Formula {
  /** Number of data inputs (a, b, c). */
  readonly arity: number;
  /** WGSL expression over a, b, c and the attribute constants passed in `consts`. */
  readonly expr: string;
  /** Float attributes the expression reads as pf(k) (k = index in this list, stored first in the params). */
  readonly consts?: (attrs: Attrs) => number[];
}

const UNARY: Record<string, Formula> = {
  relu: { arity: 1, expr: "select(a, 0.0, a < 0.0)" },
  neg: { arity: 1, expr: "-a" },
  abs: { arity: 1, expr: "abs(a)" },
  floor: { arity: 1, expr: "floor(a)" },
  ceil: { arity: 1, expr: "ceil(a)" },
  round: { arity: 1, expr: "round(a)" }, // WGSL round: half to even, as the reference's roundHalfEven
  sigmoid: { arity: 1, expr: "1.0 / (1.0 + exp(-a))" },
  tanh: { arity: 1, expr: "tanh(clamp(a, -15.0, 15.0))" },
  sqrt: { arity: 1, expr: "sqrt(a)" },
  exp: { arity: 1, expr: "exp(a)" },
  log: { arity: 1, expr: "log(a)" },
  reciprocal: { arity: 1, expr: "1.0 / a" },
  erf: { arity: 1, expr: "erf_(a)" },
  softplus: { arity: 1, expr: "select(log(1.0 + exp(a)), a + log(1.0 + exp(-a)), a > 0.0)" },
  hardswish: { arity: 1, expr: "a * clamp(a / 6.0 + 0.5, 0.0, 1.0)" },
  leaky_relu: { arity: 1, expr: "select(pf(0u) * a, a, a >= 0.0)", consts: (at) => [at["alpha"] as number] },
  hard_sigmoid: { arity: 1, expr: "clamp(pf(0u) * a + pf(1u), 0.0, 1.0)", consts: (at) => [at["alpha"] as number, at["beta"] as number] },
};

const BINARY: Record<string, Formula> = {
  add: { arity: 2, expr: "a + b" },
  sub: { arity: 2, expr: "a - b" },
  mul: { arity: 2, expr: "a * b" },
  div: { arity: 2, expr: "a / b" },
  max: { arity: 2, expr: "select(max(a, b), a + b, isnan_(a) || isnan_(b))" },
  min: { arity: 2, expr: "select(min(a, b), a + b, isnan_(a) || isnan_(b))" },
  pow: { arity: 2, expr: "pow_(a, b)" },
};

function formulaFor(op: string, attrs: Attrs): Formula | undefined {
  if (op === "gelu") {
    const tanh = attrs["approximate"] === "tanh";
    return {
      arity: 1,
      expr: tanh ? "0.5 * a * (1.0 + tanh(clamp(0.7978845608028654 * (a + 0.044715 * a * a * a), -15.0, 15.0)))" : "0.5 * a * (1.0 + erf_(a * 0.7071067811865476))",
    };
  }
  if (op === "clip") return { arity: 3, expr: "clip_(a, b, c)" };
  return UNARY[op] ?? BINARY[op];
}

const CLIP_HELPER = `fn clip_(a: f32, lo: f32, hi: f32) -> f32 { let r = select(a, lo, a < lo); return select(r, hi, r > hi); }\n`;

/** How an input is indexed: at the output's index, at 0, or through broadcast strides. */
type Access = "same" | "scalar" | "strided";

function accessOf(t: TensorType, out: TensorType): Access {
  const n = numel(t.shape);
  if (n === 1) return "scalar";
  if (n === numel(out.shape) && t.shape.length <= out.shape.length && t.shape.every((d, i) => d === out.shape[out.shape.length - t.shape.length + i])) return "same";
  return "strided";
}

function floatSupport(q: SupportQuery, kernel: string, dataInputs: number): Support {
  for (let i = 0; i < dataInputs; i++) {
    const t = q.inputs[i];
    if (t !== undefined && t.dtype !== "float32") return { reason: `the WGSL ${q.node.op} kernel takes float32, input #${i} is ${t.dtype}` };
  }
  if (q.outputs[0]!.dtype !== "float32") return { reason: `the WGSL ${q.node.op} kernel writes float32, the output is ${q.outputs[0]!.dtype}` };
  return { kernel };
}

/** Builds the elementwise dispatch for inputs `present` (undefined = omitted clip bound). */
function buildElementwise(ctx: BuildContext, formula: Formula, label: string): BuildResult {
  const out = ctx.outputs[0]!;
  const n = numel(out.shape);
  const p = new Params();
  const consts = formula.consts?.(ctx.attrs) ?? [];
  for (const c of consts) p.f(c);
  const nAt = p.u(n);
  const names = ["a", "b", "c"];
  let decls = "";
  let readers = "";
  let loads = "";
  let strided = "";
  const bindings: { input: number }[] = [];
  const walk: string[] = [];
  // Broadcast inputs walk the output's (coalesced) dims with their own strides.
  const stridedInputs: number[] = [];
  for (let i = 0; i < formula.arity; i++) {
    const t = ctx.inputs[i];
    if (t !== undefined && accessOf(t, out) === "strided") stridedInputs.push(i);
  }
  const co = coalesceDims(out.shape, stridedInputs.map((i) => broadcastStrides(ctx.inputs[i]!.shape, out.shape)));
  const rankAt = p.u(co.shape.length);
  const shapeAt = p.list(co.shape);
  for (let i = 0; i < formula.arity; i++) {
    const t = ctx.inputs[i];
    const name = names[i]!;
    if (t === undefined) {
      // An omitted clip bound: no clamping on that side.
      loads += `  let ${name} = ${i === 1 ? "-inf()" : "inf()"};\n`;
      continue;
    }
    const binding = bindings.length;
    bindings.push({ input: i });
    decls += bufferDecl(binding, `in${i}`, t.dtype, false);
    readers += reader(`in${i}`, t.dtype);
    const acc = accessOf(t, out);
    if (acc === "same") loads += `  let ${name} = rd_in${i}(idx);\n`;
    else if (acc === "scalar") loads += `  let ${name} = rd_in${i}(0u);\n`;
    else {
      const stAt = p.list(co.strides[stridedInputs.indexOf(i)]!);
      strided += `  var o${i} = 0u;\n`;
      walk.push(`    o${i} = o${i} + c * pu(${stAt}u + d);`);
      loads += `  let ${name} = rd_in${i}(o${i});\n`;
    }
  }
  const outBinding = bindings.length;
  decls += bufferDecl(outBinding, "out", "float32", true);
  const shapeWalk = walk.length === 0 ? "" : `${strided}  var rem = idx;
  for (var k = 0u; k < pu(${rankAt}u); k = k + 1u) {
    let d = pu(${rankAt}u) - 1u - k;
    let dim = pu(${shapeAt}u + d);
    let c = rem % dim;
    rem = rem / dim;
${walk.join("\n")}
  }
`;
  const code = `${decls}${paramsDecl(outBinding + 1)}${HELPERS}${CLIP_HELPER}${readers}
${main1d(`  if (idx >= pu(${nAt}u)) { return; }
${shapeWalk}${loads}  out[idx] = ${formula.expr};`)}`;
  return {
    dispatches: [{ code, label, bindings: [...bindings, { output: 0 }], params: p.finish(), workgroups: grid1d(n) }],
  };
}

const ELEMENTWISE_OPS = [...Object.keys(UNARY), ...Object.keys(BINARY), "gelu", "clip"];

export const elementwiseKernel: GpuKernel = {
  ops: ELEMENTWISE_OPS,
  supports(q) {
    const f = formulaFor(q.node.op, q.attrs);
    if (f === undefined) return { reason: `no WGSL formula for ${q.node.op}` };
    if (q.node.op === "gelu" && q.attrs["approximate"] !== "none" && q.attrs["approximate"] !== "tanh") return { reason: "gelu: unknown approximation" };
    return floatSupport(q, `ew_${q.node.op}_f32`, f.arity);
  },
  build(ctx) {
    return buildElementwise(ctx, formulaFor(ctx.node.op, ctx.attrs)!, `${ctx.node.op} (elementwise)`);
  },
};

/** `where(cond, x, y)` with a bool condition and float32 values. */
export const whereKernel: GpuKernel = {
  ops: ["where"],
  supports(q) {
    if (q.inputs[0]?.dtype !== "bool") return { reason: "where: the condition must be bool" };
    if (q.inputs[1]?.dtype !== "float32" || q.inputs[2]?.dtype !== "float32") return { reason: "the WGSL where kernel selects float32 values" };
    return { kernel: "ew_where_f32" };
  },
  build(ctx) {
    return buildElementwise(ctx, { arity: 3, expr: "select(c, b, bitcast<u32>(a) != 0u)" }, "where (elementwise)");
  },
};
