import { fromArray, isQforgeError, toNumbers, type DType, type Tensor } from "@qforge/ir";
import { HistogramObserver } from "../observers/histogram.js";
import { createObserver, OBSERVER_KINDS } from "../observers/load.js";
import type { Observer, ObserverKind, QParams } from "../observers/types.js";

/**
 * Conformance check of one case of a golden `observers.json` (schema in shared/golden/README.md):
 * construct the observer from `kwargs`, feed `inputs` in order, and compare against PyTorch 1.13:
 * per-step min/max/histogram/scale/zero point, the effective attributes, the final state, the
 * histogram search (start/end bins, new min/max, total and the trace of evaluated candidates), and
 * the final scale/zero point. Floats compare as float32 values (signed zeros compare equal: the
 * sign of a zero min/max depends on ATen's SIMD lane order and never changes qparams), integers
 * exactly. `error` cases must be refused at construction with BAD_CONFIG.
 * Nothing depends on case ids, counts or shapes.
 */
export function checkObserverCase(c: any): { id: string; ok: boolean; diffs: string[] } {
  const id = String(c?.id ?? "<no id>");
  const diffs: string[] = [];
  try {
    runCase(c, diffs);
  } catch (e) {
    diffs.push(`threw: ${e instanceof Error ? e.message : String(e)}`);
  }
  return { id, ok: diffs.length === 0, diffs };
}

/** snake_case PyTorch kwargs -> camelCase options. */
function toOptions(kwargs: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(kwargs ?? {})) {
    out[k.replace(/_([a-z])/g, (_m, ch: string) => ch.toUpperCase())] = v;
  }
  return out;
}

function construct(name: string, options: any): Observer {
  if (!OBSERVER_KINDS.includes(name as ObserverKind)) throw new Error(`unknown observer class '${name}'`);
  return createObserver(name as ObserverKind, options);
}

function goldenTensor(t: any): Tensor {
  const dtype = String(t.dtype) as DType;
  return fromArray(dtype, t.shape as number[], t.data as number[]);
}

function sameFloat32(a: number, b: number): boolean {
  return Math.fround(a) === Math.fround(b) || (Number.isNaN(a) && Number.isNaN(b));
}

function compareFloats(label: string, actual: ArrayLike<number>, expected: ArrayLike<number>, diffs: string[]): void {
  if (actual.length !== expected.length) {
    diffs.push(`${label}: length ${actual.length} vs expected ${expected.length}`);
    return;
  }
  let bad = 0;
  for (let i = 0; i < expected.length; i++) {
    if (!sameFloat32(actual[i]!, expected[i]!)) {
      if (bad < 3) diffs.push(`${label}[${i}]: ${actual[i]} vs expected ${expected[i]}`);
      bad++;
    }
  }
  if (bad > 3) diffs.push(`${label}: ${bad} values differ`);
}

function compareInts(label: string, actual: ArrayLike<number>, expected: ArrayLike<number>, diffs: string[]): void {
  if (actual.length !== expected.length) {
    diffs.push(`${label}: length ${actual.length} vs expected ${expected.length}`);
    return;
  }
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) {
      diffs.push(`${label}[${i}]: ${actual[i]} vs expected ${expected[i]}`);
      return;
    }
  }
}

function compareQParams(label: string, q: QParams, scale: any, zeroPoint: any, diffs: string[]): void {
  if (scale) {
    if (q.scale.shape.join(",") !== (scale.shape as number[]).join(",")) diffs.push(`${label}.scale: shape [${q.scale.shape}] vs expected [${scale.shape}]`);
    compareFloats(`${label}.scale`, toNumbers(q.scale), scale.data, diffs);
  }
  if (zeroPoint) {
    if (q.zeroPoint.shape.join(",") !== (zeroPoint.shape as number[]).join(",")) diffs.push(`${label}.zero_point: shape [${q.zeroPoint.shape}] vs expected [${zeroPoint.shape}]`);
    compareInts(`${label}.zero_point`, toNumbers(q.zeroPoint), zeroPoint.data, diffs);
  }
}

/** min/max/histogram of the observer as plain arrays (null before data). */
function stats(o: Observer): { min: number[] | null; max: number[] | null; histogram: number[] | null } {
  const s: any = o.state();
  const wrap = (v: unknown): number[] | null => (v === null || v === undefined ? null : Array.isArray(v) ? (v as number[]) : [v as number]);
  return { min: wrap(s.minVal), max: wrap(s.maxVal), histogram: Array.isArray(s.histogram) ? s.histogram : null };
}

function compareStats(label: string, o: Observer, expected: any, diffs: string[]): void {
  if (expected === null || expected === undefined) {
    const st = stats(o);
    if (st.min !== null) diffs.push(`${label}: expected no statistics (no data), got min ${st.min}`);
    return;
  }
  const st = stats(o);
  for (const [field, got] of [
    ["min_val", st.min],
    ["max_val", st.max],
  ] as const) {
    if (!(field in expected)) continue;
    const exp = expected[field];
    if (exp === null) {
      if (got !== null) diffs.push(`${label}.${field}: expected null (no data), got ${got}`);
      continue;
    }
    if (got === null) {
      diffs.push(`${label}.${field}: missing (observer saw no data)`);
      continue;
    }
    compareFloats(`${label}.${field}`, got, exp.data, diffs);
  }
  if ("histogram" in expected && expected.histogram) {
    if (st.histogram === null) diffs.push(`${label}.histogram: missing`);
    else compareFloats(`${label}.histogram`, st.histogram, expected.histogram.data, diffs);
  }
}

const ATTRIBUTES: Record<string, (o: any) => unknown> = {
  quant_min: (o) => o.quantMin,
  quant_max: (o) => o.quantMax,
  reduce_range: (o) => o.config?.reduceRange,
  has_customized_qrange: (o) => o.config?.hasCustomizedQrange,
  eps: (o) => o.config?.eps,
  dtype: (o) => o.config?.dtype ?? o.dtype,
  qscheme: (o) => o.config?.qscheme ?? o.qscheme,
  ch_axis: (o) => o.chAxis,
  averaging_constant: (o) => o.averagingConstant,
  bins: (o) => o.bins,
  upsample_rate: (o) => o.upsampleRate,
  dst_nbins: (o) => o.dstNbins,
  scale: (o) => o.scale,
  zero_point: (o) => o.zeroPoint,
};

function compareAttributes(o: Observer, attrs: Record<string, unknown>, diffs: string[]): void {
  for (const [k, v] of Object.entries(attrs ?? {})) {
    const get = ATTRIBUTES[k];
    if (get === undefined) continue;
    const got = get(o);
    const same = typeof v === "number" && typeof got === "number" ? sameFloat32(got, v) : got === v;
    if (!same) diffs.push(`attributes.${k}: ${String(got)} vs expected ${String(v)}`);
  }
}

function runCase(c: any, diffs: string[]): void {
  const options = toOptions(c.kwargs);
  if (c.error) {
    try {
      construct(c.observer, options);
      diffs.push(`expected construction to be refused (${c.error.type}: ${c.error.message})`);
    } catch (e) {
      if (!isQforgeError(e, "BAD_CONFIG")) diffs.push(`refused with ${e instanceof Error ? e.message : String(e)}, expected QforgeError BAD_CONFIG`);
    }
    return;
  }
  const obs = construct(c.observer, options);
  compareAttributes(obs, c.attributes, diffs);
  const inputs: any[] = c.inputs ?? [];
  const steps: any[] | undefined = c.steps;
  inputs.forEach((input, i) => {
    obs.observe(goldenTensor(input));
    const step = steps?.[i];
    if (step) {
      compareStats(`steps[${i}]`, obs, step, diffs);
      if (step.scale || step.zero_point) compareQParams(`steps[${i}]`, obs.calculateQParams(), step.scale, step.zero_point, diffs);
    }
  });
  if (steps && steps.length !== inputs.length) diffs.push(`case has ${steps.length} steps for ${inputs.length} inputs`);
  if ("state" in c && obs.kind !== "FixedQParamsObserver") compareStats("state", obs, c.state === null ? null : c.state, diffs);
  if (c.histogram_search) {
    if (!(obs instanceof HistogramObserver)) diffs.push("histogram_search given for a non-histogram observer");
    else {
      const hs = c.histogram_search;
      const r = obs.nonLinearParamSearch();
      if (r.startBin !== hs.start_bin || r.endBin !== hs.end_bin) diffs.push(`histogram_search bins: [${r.startBin}, ${r.endBin}] vs expected [${hs.start_bin}, ${hs.end_bin}]`);
      if (hs.new_min) compareFloats("histogram_search.new_min", [r.newMin], hs.new_min.data, diffs);
      if (hs.new_max) compareFloats("histogram_search.new_max", [r.newMax], hs.new_max.data, diffs);
      if (typeof hs.total === "number" && !sameFloat32(r.total, hs.total)) diffs.push(`histogram_search.total: ${r.total} vs expected ${hs.total}`);
      if (Array.isArray(hs.trace)) {
        if (r.trace.length !== hs.trace.length) diffs.push(`histogram_search.trace: ${r.trace.length} candidates vs expected ${hs.trace.length}`);
        const n = Math.min(r.trace.length, hs.trace.length);
        for (let i = 0; i < n; i++) {
          const [s, e, err] = r.trace[i]!;
          const [es, ee, eerr] = hs.trace[i] as [number, number, number];
          if (s !== es || e !== ee || !sameFloat32(err, eerr)) {
            diffs.push(`histogram_search.trace[${i}]: [${s}, ${e}, ${err}] vs expected [${es}, ${ee}, ${eerr}]`);
            break;
          }
        }
      }
    }
  }
  compareQParams("final", obs.calculateQParams(), c.scale, c.zero_point, diffs);
}
