import { fromArray, isQforgeError, QforgeError, toFloat64, toNumbers, type ExportedProgram, type Graph, type Node, type Tensor } from "@qforge/ir";
import { runOp, runProgram } from "@qforge/runtime";
import { convertPt2e } from "../convert.js";
import { lowerQdqWithReport } from "../lowering/index.js";
import { createObserverOrFakeQuant, innerObserver, type ObserverOrFakeQuantize } from "../observers.js";
import { preparePt2e, type PreparedProgram } from "../prepare.js";
import { calibrate } from "../run.js";
import { targetKey } from "../targets.js";
import { FxQnnpackQuantizer, type FxQuantizationPlan } from "./fx-quantizer.js";
import { buildFxModelProgram, type FxArchitecture } from "./model.js";
import { parseFxQConfigMapping } from "./qconfig.js";
import {
  compareFloat, compareLsb, goldenBatches, goldenNumbers, goldenScalar, goldenTensor, isGoldenTensor, type LsbComparison,
} from "./tensors.js";

/**
 * Conformance of one golden fx_models case (shared/golden/README.md, "fx_models.json"): PyTorch 1.13's
 * FX flow (prepare_fx -> calibrate -> convert_fx / convert_to_reference_fx, qnnpack) reproduced
 * through qforge's PT2E flow:
 *
 *   float model   buildFxModelProgram(architecture, state_dict), checked against float_outputs (1e-5)
 *   quantizer     FxQnnpackQuantizer(qconfig_mapping): FX's observers as PT2E annotations
 *   flow          preparePt2e -> calibrate(calibration_inputs) -> convertPt2e -> lowerQdq({engine})
 *   observers     every golden edge key maps to one qforge observer: class, dtype, range, scale, zero
 *                 point, min/max exact; `shared_with` edges share one module, other edges do not
 *   weights       integers and qparams of every quantized weight exact (after BN folding)
 *   outputs       the converted (QDQ) program against reference_outputs and the lowered program
 *                 against quantized_outputs: within one output step on >= 99.9 % of the values and
 *                 within 3 steps on all. PyTorch's own two models differ by 1 step on ~0.5 % of the
 *                 values and by 2-3 steps on a handful, so a value counts as agreeing with PyTorch when
 *                 it is close to either of PyTorch's answers (reference or quantized); the distance to
 *                 the field itself is reported too (`raw`).
 *
 * Nothing depends on case ids, counts, model names or shapes; every expectation comes from the case.
 */

export interface FxOutputStats {
  readonly total: number;
  /** Values within one output step of PyTorch (of either of PyTorch's two models, see compareOutputs). */
  readonly within1: number;
  readonly within3: number;
  readonly maxLsb: number;
  /** The same against this golden field alone. */
  readonly raw: { readonly within1: number; readonly maxLsb: number };
}

/** What a diff is about; `diffs` lists them all, `details.diffs` by category. */
export type FxDiffCategory = "float" | "plan" | "qparams" | "summation" | "weights" | "outputs" | "error";

export interface FxModelCaseDetails {
  readonly float: { readonly bad: number; readonly total: number; readonly maxRelErr: number };
  /** Golden observer edges whose qparams (and min/max) qforge reproduces exactly. */
  readonly observers?: {
    readonly exact: number;
    readonly total: number;
    /**
     * MinMax / FixedQParams observers rebuilt from the plan's spec and fed PyTorch's own min/max
     * reproduce PyTorch's qparams (separates the qparams logic from float-kernel rounding).
     */
    readonly fromGoldenStats: { readonly exact: number; readonly total: number };
    /** Largest distance, in float32 ulps, between qforge's and PyTorch's observed min/max. */
    readonly maxStatUlps: number;
    /** Edges not exact only because their statistics are within FX_STAT_ULPS (the "summation" diffs). */
    readonly summation: number;
  };
  readonly weights?: { readonly exact: number; readonly total: number };
  /** Folded conv/linear float parameters equal to PyTorch's `fused_float_params` bit for bit (informational). */
  readonly fusedParams?: { readonly exact: number; readonly total: number; readonly first?: string };
  readonly reference?: FxOutputStats;
  readonly quantized?: FxOutputStats;
  /** Float nodes the lowering left between quantize/dequantize, with the reason. */
  readonly notLowered?: readonly string[];
  /** The stage that threw, when one did. */
  readonly failedAt?: string;
  readonly diffs: Readonly<Record<FxDiffCategory, readonly string[]>>;
}

export interface FxModelCaseResult {
  readonly id: string;
  readonly ok: boolean;
  readonly diffs: string[];
  /** Largest |qforge - PyTorch| of the quantized outputs, in output quantization steps. */
  readonly maxOutputDiffLsb?: number;
  /** Share of quantized output values within one step of PyTorch's. */
  readonly outputWithin1Lsb?: number;
  readonly details?: FxModelCaseDetails;
}

/** Minimum share of output values within one quantization step. */
export const FX_WITHIN_1_LSB = 0.999;
/** No output value may be further off than this many steps. */
export const FX_MAX_LSB = 3;
/**
 * How far (float32 ulps) an observed min/max may be from PyTorch's before it counts as a failure.
 * The reference conv/linear kernels sum in float64 and round once; PyTorch 1.13 sums in float32 in its
 * BLAS's (OpenBLAS / oneDNN) blocking order, so an activation can differ by a few ulps, and an
 * observer's min/max with it. Those edges (and the qparams computed from them) are reported under
 * "summation", apart from real qparams errors, and listed by `conformance golden`.
 */
export const FX_STAT_ULPS = 4;
/** Relative tolerance of the float model against float_outputs. */
export const FX_FLOAT_RTOL = 1e-5;

type Diffs = Record<FxDiffCategory, string[]>;

function message(e: unknown): string {
  return isQforgeError(e) ? e.message : e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

function sameFloat32(a: number, b: number): boolean {
  return Math.fround(a) === Math.fround(b);
}

/** Distance between two float32 values in units in the last place (signed zeros are equal). */
function ulps(a: number, b: number): number {
  const bits = (x: number): number => {
    const i = new Int32Array(Float32Array.of(x).buffer)[0]!;
    // Map to a monotonic integer line: negative floats count down from -0.
    return i < 0 ? -(i & 0x7fffffff) : i;
  };
  return Math.abs(bits(a) - bits(b));
}

/** The observer id of a plan target in the prepared program (its group lists the target). */
function observerIdOf(prepared: PreparedProgram, target: Parameters<typeof targetKey>[0]): string | undefined {
  const key = targetKey(target);
  for (const [id, g] of prepared.groups) if (g.targets.some((t) => targetKey(t) === key)) return id;
  return undefined;
}

function moduleFacts(m: ObserverOrFakeQuantize): { kind: string; dtype?: string; qscheme?: string; quantMin?: number; quantMax?: number; bins?: number } {
  const o = innerObserver(m) as unknown as Record<string, unknown>;
  const config = o["config"] as { dtype?: string; qscheme?: string } | undefined;
  return {
    kind: String(o["kind"]),
    dtype: (config?.dtype ?? o["dtype"]) as string | undefined,
    qscheme: (config?.qscheme ?? o["qscheme"]) as string | undefined,
    quantMin: o["quantMin"] as number | undefined,
    quantMax: o["quantMax"] as number | undefined,
    bins: o["bins"] as number | undefined,
  };
}

function qparamsDiffer(q: { scale: Tensor; zeroPoint: Tensor }, es: readonly number[], ez: readonly number[]): string | undefined {
  const scale = toNumbers(q.scale);
  const zp = toNumbers(q.zeroPoint);
  if (scale.length !== es.length || scale.some((s, i) => !sameFloat32(s, es[i]!))) return `scale ${scale.join(",")} vs expected ${es.join(",")}`;
  if (zp.length !== ez.length || zp.some((z, i) => z !== ez[i])) return `zero_point ${zp.join(",")} vs expected ${ez.join(",")}`;
  return undefined;
}

/**
 * Observer edges: every golden key against the plan's observer and the prepared module behind it.
 * Structure (which edges, which share, class, dtype, range) goes to "plan"; numbers to "qparams".
 */
function checkObservers(c: any, plan: FxQuantizationPlan, prepared: PreparedProgram, diffs: Diffs): NonNullable<FxModelCaseDetails["observers"]> {
  const golden = (c.observers ?? {}) as Record<string, any>;
  const byKey = new Map(plan.observers.map((o) => [o.key, o] as const));
  const idOfKey = new Map<string, string>();
  let exact = 0;
  let fromGolden = 0;
  let fromGoldenTotal = 0;
  let maxStatUlps = 0;
  let summation = 0;
  for (const [key, exp] of Object.entries(golden)) {
    const p = byKey.get(key);
    if (p === undefined) {
      diffs.plan.push(`observer ${key}: PyTorch observes this edge, qforge's plan does not (plan: ${plan.observers.map((o) => o.key).join(", ") || "none"})`);
      continue;
    }
    const id = observerIdOf(prepared, p.target);
    if (id === undefined) {
      diffs.plan.push(`observer ${key}: no observer of the prepared program quantizes ${JSON.stringify(p.target)}`);
      continue;
    }
    idOfKey.set(key, id);
    const m = prepared.observers.get(id)!;
    const f = moduleFacts(m);
    if (f.kind !== exp.observer) diffs.plan.push(`observer ${key}: ${f.kind} vs expected ${exp.observer}`);
    if (exp.dtype !== undefined && f.dtype !== exp.dtype) diffs.plan.push(`observer ${key}: dtype ${f.dtype} vs expected ${exp.dtype}`);
    if (exp.qscheme !== undefined && f.qscheme !== undefined && f.qscheme !== exp.qscheme) diffs.plan.push(`observer ${key}: qscheme ${f.qscheme} vs expected ${exp.qscheme}`);
    if (exp.quant_min !== undefined && f.quantMin !== exp.quant_min) diffs.plan.push(`observer ${key}: quant_min ${f.quantMin} vs expected ${exp.quant_min}`);
    if (exp.quant_max !== undefined && f.quantMax !== exp.quant_max) diffs.plan.push(`observer ${key}: quant_max ${f.quantMax} vs expected ${exp.quant_max}`);
    if (exp.bins !== undefined && f.bins !== exp.bins) diffs.plan.push(`observer ${key}: bins ${f.bins} vs expected ${exp.bins}`);

    const edgeDiffs: string[] = [];
    const es = goldenNumbers(exp.scale, `observers['${key}'].scale`);
    const ez = goldenNumbers(exp.zero_point, `observers['${key}'].zero_point`);
    const wrong = qparamsDiffer(m.calculateQParams(), es, ez);
    if (wrong !== undefined) edgeDiffs.push(`observer ${key}: ${wrong}`);
    const state = innerObserver(m).state() as unknown as { minVal?: number | number[] | null; maxVal?: number | number[] | null };
    const stats: number[] = [];
    let edgeUlps = 0;
    let statsComparable = true;
    for (const [field, got] of [["min_val", state.minVal], ["max_val", state.maxVal]] as const) {
      if (exp[field] === undefined || exp[field] === null) continue;
      const want = goldenNumbers(exp[field], `observers['${key}'].${field}`);
      stats.push(...want);
      const have = got === null || got === undefined ? [] : Array.isArray(got) ? got : [got];
      if (have.length !== want.length) statsComparable = false;
      have.forEach((v, i) => { if (i < want.length) edgeUlps = Math.max(edgeUlps, ulps(v, want[i]!)); });
      // Signed zeros compare equal: their sign depends on ATen's SIMD lane order and never changes qparams.
      if (have.length !== want.length || have.some((v, i) => !sameFloat32(v, want[i]!))) edgeDiffs.push(`observer ${key}: ${field} ${have.join(",") || "none"} vs expected ${want.join(",")}`);
    }
    maxStatUlps = Math.max(maxStatUlps, edgeUlps);
    if (edgeDiffs.length === 0) exact++;
    // Statistics a few ulps off (float32 summation order, FX_STAT_ULPS) explain the edge's differences;
    // anything else, or qparams wrong while the statistics are exact, is a qparams error.
    else if (statsComparable && edgeUlps > 0 && edgeUlps <= FX_STAT_ULPS) {
      summation++;
      diffs.summation.push(...edgeDiffs.map((d) => `${d} (statistics ${edgeUlps} ulp off)`));
    } else diffs.qparams.push(...edgeDiffs);

    // The qparams logic alone: a fresh module of the plan's spec fed PyTorch's own min/max.
    if (p.observer === "MinMaxObserver" || p.observer === "FixedQParamsObserver") {
      fromGoldenTotal++;
      const fresh = createObserverOrFakeQuant(p.spec, false, p.target.node, key);
      if (stats.length > 0) innerObserver(fresh).observe(fromArray("float32", [stats.length], stats));
      if (qparamsDiffer(fresh.calculateQParams(), es, ez) === undefined) fromGolden++;
    }
  }
  for (const p of plan.observers) {
    if (!(p.key in golden)) diffs.plan.push(`observer ${p.key}: qforge observes this edge, PyTorch does not`);
  }
  // Sharing: edges share a module exactly when PyTorch's observers are one instance.
  const rootOf = (key: string): string => {
    let k = key;
    for (let guard = 0; guard < 1000 && typeof golden[k]?.shared_with === "string"; guard++) k = golden[k].shared_with;
    return k;
  };
  const keys = [...idOfKey.keys()];
  for (let i = 0; i < keys.length; i++) {
    for (let j = i + 1; j < keys.length; j++) {
      const a = keys[i]!;
      const b = keys[j]!;
      const goldenShared = rootOf(a) === rootOf(b);
      const qforgeShared = idOfKey.get(a) === idOfKey.get(b);
      if (goldenShared && !qforgeShared) diffs.plan.push(`observers ${a} and ${b}: PyTorch shares one observer, qforge uses ${idOfKey.get(a)} and ${idOfKey.get(b)}`);
      if (!goldenShared && qforgeShared) diffs.plan.push(`observers ${a} and ${b}: separate observers in PyTorch, one module (${idOfKey.get(a)}) in qforge`);
    }
  }
  return { exact, total: Object.keys(golden).length, fromGoldenStats: { exact: fromGolden, total: fromGoldenTotal }, maxStatUlps, summation };
}

function producerOf(g: Graph, value: string): Node | undefined {
  return g.nodes.find((n) => n.outputs.includes(value));
}

/** The integer weight, its qparams and axis as the converted program holds them for conv/linear `node`. */
function convertedWeight(g: Graph, node: string, module: string): { q: Tensor; scale: number[]; zeroPoint: number[]; axis?: number } | string {
  const n = g.nodes.find((x) => x.name === node && (x.op === "conv" || x.op === "linear"))
    ?? g.nodes.find((x) => (x.op === "conv" || x.op === "linear") && x.meta.moduleStack?.[x.meta.moduleStack.length - 1]?.path === module);
  if (n === undefined) return `no conv/linear node '${node}' in the converted program`;
  const dq = producerOf(g, n.inputs[1] ?? "");
  if (dq === undefined || (dq.op !== "dequantize_per_tensor" && dq.op !== "dequantize_per_channel")) {
    return `the weight of '${n.name}' is not dequantized (it comes from ${dq?.op ?? "a constant"}): it stays float`;
  }
  const constant = (v: string): Tensor | undefined => g.constants[v]?.tensor;
  const scale = constant(dq.inputs[1] ?? "");
  const zp = constant(dq.inputs[2] ?? "");
  if (scale === undefined || zp === undefined) return `the weight qparams of '${n.name}' are not constants`;
  let q = constant(dq.inputs[0] ?? "");
  if (q === undefined) {
    const qn = producerOf(g, dq.inputs[0] ?? "");
    const x = constant(qn?.inputs[0] ?? "");
    if (qn === undefined || x === undefined) return `the weight of '${n.name}' is not a quantized constant`;
    q = runOp(qn.op, qn.inputs.map((v) => constant(v)), { ...qn.attrs })[0]!;
  }
  return {
    q, scale: Array.from(toFloat64(scale)), zeroPoint: toNumbers(zp),
    ...(dq.op === "dequantize_per_channel" ? { axis: dq.attrs["axis"] as number } : {}),
  };
}

function checkWeights(c: any, plan: FxQuantizationPlan, converted: ExportedProgram, diffs: Diffs): { exact: number; total: number } {
  const golden = (c.weights ?? {}) as Record<string, any>;
  const byKey = new Map(plan.weights.map((w) => [w.key, w] as const));
  let exact = 0;
  for (const [key, exp] of Object.entries(golden)) {
    const p = byKey.get(key);
    if (p === undefined) {
      diffs.plan.push(`weight ${key}: PyTorch quantizes it, qforge's plan does not`);
      continue;
    }
    const got = convertedWeight(converted.graph, p.node, key.replace(/\.weight$/, ""));
    if (typeof got === "string") {
      diffs.weights.push(`weight ${key}: ${got}`);
      continue;
    }
    const before = diffs.weights.length;
    const want = goldenTensor(exp.int_repr, `weights['${key}'].int_repr`);
    const wantDType = exp.dtype === "quint8" ? "uint8" : exp.dtype === "qint8" ? "int8" : want.dtype;
    if (got.q.dtype !== wantDType) diffs.weights.push(`weight ${key}: dtype ${got.q.dtype} vs expected ${wantDType}`);
    if (got.q.shape.join(",") !== want.shape.join(",")) diffs.weights.push(`weight ${key}: shape [${got.q.shape}] vs expected [${want.shape}]`);
    else {
      const a = toNumbers(got.q);
      const e = toNumbers(want);
      const bad = e.reduce((k, v, i) => k + (a[i] !== v ? 1 : 0), 0);
      if (bad > 0) {
        const i = e.findIndex((v, j) => a[j] !== v);
        diffs.weights.push(`weight ${key}: ${bad} of ${e.length} integers differ (first [${i}]: ${a[i]} vs expected ${e[i]})`);
      }
    }
    const perChannel = String(exp.qscheme).startsWith("per_channel");
    const es = goldenNumbers(exp.scale, `weights['${key}'].scale`);
    const ez = goldenNumbers(exp.zero_point, `weights['${key}'].zero_point`);
    // Per-tensor scales are the double PyTorch stores, i.e. the observer's float32 value; per channel float64.
    const badScale = got.scale.length !== es.length ? 0 : got.scale.findIndex((s, i) => s !== es[i]);
    if (badScale >= 0) diffs.weights.push(`weight ${key}: scale[${badScale}] ${got.scale[badScale]} vs expected ${es[badScale]} (${got.scale.length} vs ${es.length} scales)`);
    if (got.zeroPoint.length !== ez.length || got.zeroPoint.some((z, i) => z !== ez[i])) diffs.weights.push(`weight ${key}: zero_point ${got.zeroPoint.slice(0, 4).join(",")} vs expected ${ez.slice(0, 4).join(",")}`);
    if (perChannel && got.axis !== (exp.axis ?? 0)) diffs.weights.push(`weight ${key}: axis ${got.axis} vs expected ${exp.axis}`);
    if (!perChannel && got.axis !== undefined) diffs.weights.push(`weight ${key}: quantized per channel, expected per tensor`);
    if (diffs.weights.length === before) exact++;
  }
  for (const w of plan.weights) if (!(w.key in golden)) diffs.plan.push(`weight ${w.key}: qforge quantizes it, PyTorch does not`);
  return { exact, total: Object.keys(golden).length };
}

/** Folded conv/linear float parameters of the prepared program against `fused_float_params`, bit for bit. */
function checkFusedParams(c: any, plan: FxQuantizationPlan, prepared: PreparedProgram): { exact: number; total: number; first?: string } {
  const golden = (c.fused_float_params ?? {}) as Record<string, unknown>;
  const g = prepared.program.graph;
  let exact = 0;
  let total = 0;
  let first: string | undefined;
  for (const w of plan.weights) {
    const n = g.nodes.find((x) => x.name === w.node);
    const module = w.key.replace(/\.weight$/, "");
    for (const [role, index] of [["weight", 1], ["bias", 2]] as const) {
      const exp = golden[`${module}.${role}`];
      if (!isGoldenTensor(exp)) continue;
      total++;
      let v = n?.inputs[index] ?? "";
      // The prepared graph reads the weight through its observer.
      const obs = producerOf(g, v);
      if (obs !== undefined && (obs.op === "observer" || obs.op === "fake_quantize")) v = obs.inputs[0] ?? "";
      const t = g.constants[v]?.tensor;
      const e = exp.data;
      const a = t === undefined ? undefined : toFloat64(t);
      const bad = a === undefined || a.length !== e.length ? e.length : e.reduce((k, x, i) => k + (a[i] !== x ? 1 : 0), 0);
      if (bad === 0) exact++;
      else {
        const i = a !== undefined && a.length === e.length ? e.findIndex((x, j) => a[j] !== x) : -1;
        first ??= `${module}.${role}: ${bad} of ${e.length} values differ${i >= 0 ? ` (first [${i}]: ${a![i]} vs ${e[i]})` : ""}`;
      }
    }
  }
  return { exact, total, ...(first !== undefined ? { first } : {}) };
}

/** The output quantization step of each program output (the golden observer's scale), or undefined for a float output. */
function outputSteps(c: any, plan: FxQuantizationPlan): (number | undefined)[] {
  return plan.outputKeys.map((k) => (k === undefined || c.observers?.[k] === undefined ? undefined : goldenScalar(c.observers[k].scale, `observers['${k}'].scale`)));
}

/**
 * Runs `ep` on every test batch and compares with `expected` in output steps. A value's distance is
 * the smaller of its distances to `expected` and to `other` (PyTorch's other model, when it ran):
 * PyTorch's reference and quantized models are two answers to the same QDQ semantics that differ by
 * up to 3 steps on a handful of values, and agreeing with either is agreeing with PyTorch. The
 * distance to `expected` alone is kept in `raw`. Float outputs (not quantized) compare with 1e-5.
 */
function compareOutputs(
  label: string, ep: ExportedProgram, batches: Tensor[][], expected: Tensor[][], other: Tensor[][] | undefined,
  steps: readonly (number | undefined)[], diffs: Diffs,
): FxOutputStats {
  let total = 0;
  let within1 = 0;
  let within3 = 0;
  let maxLsb = 0;
  let rawWithin1 = 0;
  let rawMax = 0;
  if (expected.length !== batches.length) diffs.outputs.push(`${label}: ${expected.length} expected results for ${batches.length} test inputs`);
  batches.forEach((batch, b) => {
    const got = runProgram(ep, batch);
    const exp = expected[b] ?? [];
    if (got.length !== exp.length) diffs.outputs.push(`${label}[${b}]: ${got.length} outputs vs expected ${exp.length}`);
    exp.forEach((e, k) => {
      const a = got[k];
      if (a === undefined) return;
      const step = steps[k];
      if (step === undefined) {
        const r = compareFloat(a, e, FX_FLOAT_RTOL);
        total += r.total;
        within1 += r.total - r.bad;
        within3 += r.total - r.bad;
        rawWithin1 += r.total - r.bad;
        if (r.bad > 0) {
          maxLsb = rawMax = Infinity;
          diffs.outputs.push(`${label}[${b}][${k}] (float output): ${r.bad} of ${r.total} values off by more than ${FX_FLOAT_RTOL} relative; first ${r.first}`);
        }
        return;
      }
      const raw = compareLsb(a, e, step);
      rawWithin1 += raw.within1;
      rawMax = Math.max(rawMax, raw.maxLsb);
      const o = other?.[b]?.[k];
      const alt = o !== undefined ? compareLsbEither(a, e, o, step) : raw;
      total += alt.total;
      within1 += alt.within1;
      within3 += alt.within3;
      maxLsb = Math.max(maxLsb, alt.maxLsb);
    });
  });
  if (total > 0 && within1 / total < FX_WITHIN_1_LSB) {
    diffs.outputs.push(`${label}: ${within1} of ${total} values (${((100 * within1) / total).toFixed(2)} %) within one output step, need ${(100 * FX_WITHIN_1_LSB).toFixed(1)} %`);
  }
  if (within3 < total) diffs.outputs.push(`${label}: ${total - within3} values more than ${FX_MAX_LSB} output steps off (max ${maxLsb})`);
  return { total, within1, within3, maxLsb, raw: { within1: rawWithin1, maxLsb: rawMax } };
}

/** Per value, the distance in steps to the nearer of two expectations. */
function compareLsbEither(actual: Tensor, e1: Tensor, e2: Tensor, step: number): LsbComparison {
  if (e2.shape.join(",") !== e1.shape.join(",")) return compareLsb(actual, e1, step);
  const a = toFloat64(actual);
  const n = a.length;
  const x = toFloat64(e1);
  const y = toFloat64(e2);
  const nearer = new Float64Array(n);
  for (let i = 0; i < n; i++) nearer[i] = Math.abs(a[i]! - x[i]!) <= Math.abs(a[i]! - y[i]!) ? x[i]! : y[i]!;
  return compareLsb(actual, fromArray("float64", e1.shape, nearer), step);
}

function emptyDiffs(): Diffs {
  return { float: [], plan: [], qparams: [], summation: [], weights: [], outputs: [], error: [] };
}

export function checkFxModelCase(c: any): FxModelCaseResult {
  const id = String(c?.id ?? "<no id>");
  const diffs = emptyDiffs();
  let stage = "float model";
  const details: { -readonly [K in keyof FxModelCaseDetails]: FxModelCaseDetails[K] } = { float: { bad: 0, total: 0, maxRelErr: 0 }, diffs };
  let maxOutputDiffLsb: number | undefined;
  let outputWithin1Lsb: number | undefined;
  try {
    if (typeof c?.mode === "string" && !c.mode.startsWith("eval")) {
      throw new QforgeError("UNSUPPORTED", `mode '${c.mode}' is not supported: the harness reproduces post-training static quantization (eval)`);
    }
    const ep = buildFxModelProgram(c.architecture as FxArchitecture, c.state_dict ?? {}, { model: c.model, config: c.config });
    const testBatches = goldenBatches(c.test_inputs, "test_inputs");
    const floatExpected = goldenBatches(c.float_outputs, "float_outputs");
    let bad = 0;
    let total = 0;
    let maxRelErr = 0;
    testBatches.forEach((batch, b) => {
      const got = runProgram(ep, batch);
      (floatExpected[b] ?? []).forEach((e, k) => {
        const a = got[k];
        if (a === undefined) {
          diffs.float.push(`float_outputs[${b}][${k}]: the model has no output #${k}`);
          return;
        }
        const r = compareFloat(a, e, FX_FLOAT_RTOL);
        bad += r.bad;
        total += r.total;
        maxRelErr = Math.max(maxRelErr, r.maxRelErr);
        if (r.bad > 0) diffs.float.push(`float_outputs[${b}][${k}]: ${r.bad} of ${r.total} values off by more than ${FX_FLOAT_RTOL} relative; first ${r.first}`);
      });
    });
    details.float = { bad, total, maxRelErr };

    stage = "prepare";
    const quantizer = new FxQnnpackQuantizer(parseFxQConfigMapping(c.qconfig_mapping));
    const prepared = preparePt2e(ep, quantizer);
    const plan = quantizer.lastPlan!;
    details.fusedParams = checkFusedParams(c, plan, prepared);

    stage = "calibrate";
    calibrate(prepared, goldenBatches(c.calibration_inputs, "calibration_inputs"), { progress: false });
    details.observers = checkObservers(c, plan, prepared, diffs);

    stage = "convert";
    const converted = convertPt2e(prepared);
    details.weights = checkWeights(c, plan, converted, diffs);
    const steps = outputSteps(c, plan);
    const quantizedExpected = c.quantized_outputs === null || c.quantized_outputs === undefined ? undefined : goldenBatches(c.quantized_outputs, "quantized_outputs");
    const referenceExpected = c.reference_outputs === null || c.reference_outputs === undefined ? undefined : goldenBatches(c.reference_outputs, "reference_outputs");
    if (referenceExpected === undefined && quantizedExpected === undefined) diffs.outputs.push("the case has neither reference_outputs nor quantized_outputs to compare with");
    if (referenceExpected !== undefined) {
      stage = "reference outputs";
      details.reference = compareOutputs("reference_outputs", converted, testBatches, referenceExpected, quantizedExpected, steps, diffs);
    }

    stage = "lowering";
    const { program: lowered, report } = lowerQdqWithReport(converted, { engine: c.engine ?? "qnnpack" });
    details.notLowered = report.notLowered.map((n) => `${n.node} (${n.op}): ${n.reason}`);
    if (quantizedExpected !== undefined) {
      stage = "quantized outputs";
      const q = compareOutputs("quantized_outputs", lowered, testBatches, quantizedExpected, referenceExpected, steps, diffs);
      details.quantized = q;
      maxOutputDiffLsb = q.maxLsb;
      outputWithin1Lsb = q.total > 0 ? q.within1 / q.total : 1;
    }
    // Without quantized_outputs PyTorch could not run its converted model (quantized_error): the
    // lowered program has nothing to compare with; the reference comparison above still holds.
  } catch (e) {
    details.failedAt = stage;
    diffs.error.push(`${stage} threw: ${message(e)}`);
  }
  const all = [...diffs.error, ...diffs.float, ...diffs.plan, ...diffs.qparams, ...diffs.weights, ...diffs.outputs];
  return {
    id, ok: all.length === 0, diffs: all,
    ...(maxOutputDiffLsb !== undefined ? { maxOutputDiffLsb } : {}),
    ...(outputWithin1Lsb !== undefined ? { outputWithin1Lsb } : {}),
    details,
  };
}
